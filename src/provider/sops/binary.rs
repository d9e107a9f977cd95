//! The `sops` binary, for what keyfill does not decrypt itself: key services
//! other than age (AWS KMS, GCP KMS, Azure Key Vault, Vault transit, PGP), key
//! groups, SSH or plugin age keys, and formats other than YAML, JSON and
//! dotenv. `sops decrypt --output-type json FILE` runs bounded by `--timeout`
//! and `--max-secret-size`; its error output is classified, never echoed (sops
//! quotes parts of a file in some messages). The age key variables reach it
//! only when the file has age recipients.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use secrecy::ExposeSecret as _;

use super::keys;
use super::run::{self, RunError};
use crate::provider::{FetchClass, FetchError};

/// What the file's metadata says about the binary's needs.
pub(crate) struct Needs<'a> {
    /// The key services the file names, for the message when sops is missing.
    pub(crate) services: &'a [&'static str],
    /// Whether the binary may need the age key variables (the file names age
    /// recipients, or keyfill could not read its metadata).
    pub(crate) age: bool,
    /// Why keyfill does not decrypt the file itself.
    pub(crate) why: String,
}

/// Whether an executable named `sops` is on `PATH`.
fn on_path() -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join("sops");
            p.metadata()
                .is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
        })
    })
}

/// Decrypts `path` with the `sops` binary: the whole document as compact JSON.
pub(crate) fn decrypt(
    path: &Path,
    needs: &Needs<'_>,
    limit: u64,
    deadline: Instant,
) -> Result<Vec<u8>, FetchError> {
    let shown = path.display();
    if !on_path() {
        let services = if needs.services.is_empty() {
            String::new()
        } else {
            format!(" (its keys: {})", needs.services.join(", "))
        };
        return Err(FetchError::new(
            FetchClass::Unconfigured,
            format!(
                "sops file `{shown}` needs the `sops` binary, which is not on PATH: {}{services}",
                needs.why
            ),
        ));
    }
    let mut cmd = Command::new("sops");
    cmd.args(["decrypt", "--output-type", "json", "--"]).arg(path);
    if !needs.age {
        for v in keys::VARS {
            cmd.env_remove(v);
        }
    }
    let out = run::run(cmd, limit, deadline).map_err(|e| {
        let class = match e {
            RunError::TooLarge(_) => FetchClass::Invalid,
            RunError::TimedOut | RunError::Spawn(_) => FetchClass::Unreachable,
        };
        FetchError::new(
            class,
            format!("`sops decrypt` of `{shown}` {}", e.describe()),
        )
    })?;
    if !out.status.success() {
        return Err(failure(path, &out.status, out.stderr.expose_secret()));
    }
    let doc: serde_json::Value = serde_json::from_slice(out.stdout.expose_secret()).map_err(|_| {
        FetchError::new(
            FetchClass::Invalid,
            format!("`sops decrypt` of `{shown}` did not print JSON"),
        )
    })?;
    serde_json::to_vec(&doc).map_err(|_| {
        FetchError::new(
            FetchClass::Invalid,
            format!("`sops decrypt` of `{shown}` printed JSON keyfill cannot write back"),
        )
    })
}

/// A failed `sops decrypt`, classified by its error output, which is not shown.
fn failure(path: &Path, status: &std::process::ExitStatus, stderr: &[u8]) -> FetchError {
    let text = String::from_utf8_lossy(stderr);
    let shown = path.display();
    let (class, what) = if text.contains("MAC mismatch") {
        (
            FetchClass::Invalid,
            "its MAC does not match its content (the file was changed after sops wrote it)",
        )
    } else if text.contains("data key") || text.contains("Failed to get the data key") {
        (
            FetchClass::Denied,
            "sops could not decrypt its data key with any of its key services",
        )
    } else if text.contains("metadata not found") {
        (FetchClass::Invalid, "it is no sops-encrypted file")
    } else {
        (FetchClass::Unreachable, "sops could not decrypt it")
    };
    FetchError::new(
        class,
        format!(
            "sops file `{shown}`: {what} (`sops decrypt` {status}; its message is not shown, as it may quote the file: run `sops decrypt {shown}` to see it)"
        ),
    )
}
