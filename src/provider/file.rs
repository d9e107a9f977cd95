//! Files: `<<file|/run/secrets/db_password>>` or `file: ./path`.
//!
//! A relative path is resolved against the folder of the config that names it
//! (the current folder for stdin). The content is used exactly, trailing newline
//! included: keyfill does not guess which bytes of a secret are significant.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{FetchClass, FetchError, Locator, Provider, ProviderKind};
use crate::secret::SecretBytes;

/// A file path, already resolved against the config's folder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileLocator {
    /// Absolute or cwd-relative path.
    pub path: PathBuf,
}

impl FileLocator {
    /// Validates a path and resolves it against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("file path is empty".into());
        }
        if text.contains('\0') {
            return Err("file path contains a NUL character".into());
        }
        let p = Path::new(text);
        let path = if p.is_absolute() || base_dir == Path::new(".") {
            p.to_path_buf()
        } else {
            base_dir.join(p.strip_prefix("./").unwrap_or(p))
        };
        Ok(FileLocator { path })
    }
}

/// Reads files.
pub(crate) struct FileProvider;

/// Largest secret file read; a secret is never a whole disk image.
const MAX_FILE: u64 = 64 * 1024 * 1024;

impl Provider for FileProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::File
    }

    fn fetch(&self, requests: &[&Locator]) -> Vec<Result<SecretBytes, FetchError>> {
        requests
            .iter()
            .map(|loc| {
                let Locator::File(f) = loc else {
                    return Err(FetchError::new(FetchClass::Invalid, "not a file locator"));
                };
                read(&f.path)
            })
            .collect()
    }
}

fn read(path: &Path) -> Result<SecretBytes, FetchError> {
    let shown = path.display();
    let fail = |e: std::io::Error| {
        let class = match e.kind() {
            ErrorKind::NotFound => FetchClass::NotFound,
            ErrorKind::PermissionDenied => FetchClass::Denied,
            _ => FetchClass::Unreachable,
        };
        // The io::Error text names only the OS error, never file content.
        FetchError::new(class, format!("cannot read file `{shown}`: {e}"))
    };
    let meta = std::fs::metadata(path).map_err(fail)?;
    if meta.is_dir() {
        return Err(FetchError::new(
            FetchClass::NotFound,
            format!("`{shown}` is a directory, not a file"),
        ));
    }
    if meta.len() > MAX_FILE {
        return Err(FetchError::new(
            FetchClass::Invalid,
            format!(
                "file `{shown}` is larger than {} MiB",
                MAX_FILE / 1024 / 1024
            ),
        ));
    }
    std::fs::read(path).map(SecretBytes::new).map_err(fail)
}
