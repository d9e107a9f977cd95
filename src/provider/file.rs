//! Files: `<<file|/run/secrets/db_password>>` or `file: ./path`.
//!
//! A relative path is resolved against the folder of the config that names it
//! (the current folder for stdin). The content is used exactly, trailing newline
//! included: keyfill does not guess which bytes of a secret are significant.

use std::fs::File;
use std::io::{ErrorKind, Read as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};

use super::{FetchClass, FetchError, Health, LocatorError, Provider, Readability, Settings};
use crate::secret::SecretBytes;

/// A file path, already resolved against the config's folder.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileLocator {
    /// Absolute or cwd-relative path.
    pub(crate) path: PathBuf,
}

impl FileLocator {
    /// Validates a path and resolves it against `base_dir`.
    pub(crate) fn parse(text: &str, base_dir: &Path) -> Result<Self, LocatorError> {
        if text.trim().is_empty() {
            return Err(LocatorError::new("file path is empty"));
        }
        if let Some(i) = text.find('\0') {
            return Err(LocatorError::new("file path contains a NUL character").at(i..i + 1));
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

impl std::fmt::Display for FileLocator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

/// Reads files, each at most `limit` bytes, all of them by `timeout`.
pub(crate) struct FileProvider {
    /// Largest file read, in bytes (`--max-secret-size`).
    limit: u64,
    /// Deadline for all of one fetch's files (`--timeout`).
    timeout: Duration,
}

impl Provider for FileProvider {
    type Locator = FileLocator;
    const REMOTE: bool = false;

    fn parse(text: &str, base_dir: &Path) -> Result<FileLocator, LocatorError> {
        FileLocator::parse(text, base_dir)
    }

    fn start(settings: Settings) -> Self {
        FileProvider {
            limit: settings.max_secret_size,
            timeout: settings.timeout,
        }
    }

    fn fetch(&self, requests: &[&FileLocator]) -> Vec<Result<SecretBytes, FetchError>> {
        let deadline = Instant::now() + self.timeout;
        requests
            .iter()
            .map(|f| read(&f.path, self.limit, deadline, self.timeout))
            .collect()
    }

    /// Whether each file opens for reading; nothing is read from it.
    fn diagnose(&self, requests: &[&FileLocator]) -> (Health, Vec<Readability>) {
        let each = requests
            .iter()
            .map(|f| match openable(&f.path, self.limit) {
                Ok(()) => Readability::Readable(None),
                Err(e) => Readability::Failed(e),
            })
            .collect();
        (Health::local("none needed"), each)
    }
}

/// Whether `path` opens for reading as [`read`] opens it (non-blocking, so a
/// FIFO without a writer does not hang) and is neither a folder nor over the
/// limit; nothing is read.
fn openable(path: &Path, limit: u64) -> Result<(), FetchError> {
    open(path, limit, "open").map(|_| ())
}

/// Opens `path` non-blocking and refuses a folder, or a regular file over
/// `limit`; errors say `cannot VERB file`.
fn open(path: &Path, limit: u64, verb: &str) -> Result<(File, std::fs::Metadata), FetchError> {
    let shown = path.display();
    let fail = |e: std::io::Error| io_error(path, verb, e);
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| fail(e.into()))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(fail)?;
    if meta.is_dir() {
        return Err(FetchError::new(
            FetchClass::NotFound,
            format!("`{shown}` is a directory, not a file"),
        ));
    }
    if meta.is_file() && meta.len() > limit {
        return Err(too_big(path, limit));
    }
    Ok((file, meta))
}

/// An I/O error on `path` while trying to `verb` it, classed. The io::Error
/// text names only the OS error, never file content.
fn io_error(path: &Path, verb: &str, e: std::io::Error) -> FetchError {
    let class = match e.kind() {
        ErrorKind::NotFound => FetchClass::NotFound,
        ErrorKind::PermissionDenied => FetchClass::Denied,
        _ => FetchClass::Unreachable,
    };
    FetchError::new(class, format!("cannot {verb} file `{}`: {e}", path.display()))
}

fn too_big(path: &Path, limit: u64) -> FetchError {
    FetchError::new(
        FetchClass::Invalid,
        format!(
            "file `{}` is larger than {limit} bytes (raise with --max-secret-size)",
            path.display()
        ),
    )
}

/// Reads `path` whatever it is: a regular file, a FIFO, a device. The file is
/// opened non-blocking and polled before each read, so that a FIFO without a
/// writer ends at the deadline instead of hanging, and at most `limit + 1`
/// bytes are ever held, so that `/dev/zero` ends at the limit. The sops
/// provider reads its files with it too.
pub(crate) fn read(
    path: &Path,
    limit: u64,
    deadline: Instant,
    timeout: Duration,
) -> Result<SecretBytes, FetchError> {
    let shown = path.display();
    let fail = |e: std::io::Error| io_error(path, "read", e);
    let (mut file, meta) = open(path, limit, "read")?;
    let hint = if meta.is_file() { meta.len() } else { 0 };
    let mut buf = Vec::with_capacity(usize::try_from(hint.min(limit) + 1).unwrap_or(0));
    loop {
        wait_readable(&file, deadline).map_err(|e| match e {
            Wait::TimedOut => FetchError::new(
                FetchClass::Unreachable,
                format!(
                    "gave up reading file `{shown}` after {}: its end never came (a FIFO without a writer?); raise with --timeout",
                    humantime(timeout)
                ),
            ),
            Wait::Failed(e) => fail(e),
        })?;
        let room = (limit + 1).saturating_sub(buf.len() as u64);
        // Bytes read before an error stay in `buf`; WouldBlock means "poll again".
        match (&mut file).take(room).read_to_end(&mut buf) {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(fail(e)),
        }
    }
    if buf.len() as u64 > limit {
        return Err(too_big(path, limit));
    }
    Ok(SecretBytes::new(buf))
}

enum Wait {
    TimedOut,
    Failed(std::io::Error),
}

/// Waits until `file` has data or its writer has gone. On Linux a FIFO opened
/// before any writer reports neither until one comes, which is what lets the
/// deadline apply.
fn wait_readable(file: &File, deadline: Instant) -> Result<(), Wait> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Wait::TimedOut);
        }
        let timeout = Timespec::try_from(left).map_err(|_| Wait::TimedOut)?;
        let mut fds = [PollFd::new(file, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) => return Err(Wait::TimedOut),
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Wait::Failed(e.into())),
        }
    }
}

/// `1s`, `500ms`: a duration as the command line spells it.
fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch(path: &Path, limit: u64, timeout: Duration) -> Result<SecretBytes, FetchError> {
        read(path, limit, Instant::now() + timeout, timeout)
    }

    #[test]
    fn a_file_of_exactly_the_limit_is_read_and_one_byte_more_is_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s");
        std::fs::write(&p, "12345").expect("write");
        let got = fetch(&p, 5, Duration::from_secs(5)).expect("at the limit");
        assert_eq!(got.expose(), b"12345");
        let e = fetch(&p, 4, Duration::from_secs(5)).expect_err("over the limit");
        assert_eq!(e.class, FetchClass::Invalid);
        assert_eq!(
            e.message,
            format!(
                "file `{}` is larger than 4 bytes (raise with --max-secret-size)",
                p.display()
            )
        );
    }

    #[test]
    fn endless_and_empty_devices_are_bounded() {
        let e = fetch(Path::new("/dev/zero"), 1024, Duration::from_secs(5)).expect_err("endless");
        assert_eq!(e.class, FetchClass::Invalid);
        let got = fetch(Path::new("/dev/null"), 1024, Duration::from_secs(5)).expect("empty");
        assert_eq!(got.expose(), b"");
    }

    #[test]
    fn a_fifo_without_a_writer_ends_at_the_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        let e = fetch(&p, 1024, Duration::from_millis(100)).expect_err("no writer");
        assert_eq!(e.class, FetchClass::Unreachable);
        assert!(e.message.contains("after 100ms"), "{}", e.message);
    }

    #[test]
    fn a_directory_is_not_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = fetch(dir.path(), 1024, Duration::from_secs(5)).expect_err("directory");
        assert_eq!(e.class, FetchClass::NotFound);
    }
}
