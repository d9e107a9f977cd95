//! Writing the rendered config: atomically, privately, and only when it changed.
//!
//! The bytes go to a temporary file in the output's own folder (same filesystem),
//! which is flushed to disk and renamed over the target, so a reader sees the old
//! file or the new one and never a half-written one. On any error the temporary
//! file is removed and the old output is untouched. A single bind-mounted file
//! cannot be renamed over (EBUSY, EXDEV); that is reported, and with
//! `--in-place-fallback` the file is rewritten in place instead.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use crate::error::{Diagnostic, Exit};

/// How to write.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// File mode of a new output (default 0600).
    pub mode: u32,
    /// Rewrite in place where rename cannot work.
    pub in_place_fallback: bool,
    /// Hold SIGTERM/SIGINT/SIGHUP while the temporary file exists, then die of
    /// them. Off under `exec --watch`, whose signals are the command's to get.
    pub defer_signals: bool,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file already held these bytes; nothing was written.
    Unchanged,
    /// Replaced atomically.
    Written,
    /// Rewritten in place (bind-mount fallback).
    InPlace,
}

fn fail(path: &Path, what: &str, e: &std::io::Error) -> Diagnostic {
    Diagnostic::error(
        Exit::Output,
        format!("cannot write `{}`: {what}: {e}", path.display()),
    )
}

/// Termination signals deferred while a temporary file exists.
const DEFERRED: [i32; 3] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
];

/// While alive, records termination signals instead of dying of them, so the
/// temporary file is always removed (or renamed) first. On drop, a recorded
/// signal is re-delivered with its default action: the process still dies of it,
/// as its parent expects (exit status 128+n).
struct SignalWindow {
    ids: Vec<signal_hook::SigId>,
    flags: Vec<(i32, std::sync::Arc<std::sync::atomic::AtomicBool>)>,
}

impl SignalWindow {
    fn open() -> Self {
        let mut w = SignalWindow {
            ids: Vec::new(),
            flags: Vec::new(),
        };
        for sig in DEFERRED {
            let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            if let Ok(id) = signal_hook::flag::register(sig, std::sync::Arc::clone(&flag)) {
                w.ids.push(id);
                w.flags.push((sig, flag));
            }
        }
        w
    }
}

impl Drop for SignalWindow {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        for (sig, flag) in &self.flags {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = signal_hook::low_level::emulate_default_handler(*sig);
            }
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8], opts: WriteOptions) -> Result<Outcome, Diagnostic> {
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => {
            return Err(Diagnostic::error(
                Exit::Output,
                format!(
                    "cannot write `{}`: it exists and is not a regular file",
                    path.display()
                ),
            ));
        }
        // Only a file of the same length can hold the same bytes.
        Ok(m)
            if m.len() == bytes.len() as u64
                && fs::read(path).is_ok_and(|existing| existing == bytes) =>
        {
            return Ok(Outcome::Unchanged);
        }
        _ => {}
    }
    let _window = opts.defer_signals.then(SignalWindow::open);
    write_new(path, bytes, opts)
}

fn write_new(path: &Path, bytes: &[u8], opts: WriteOptions) -> Result<Outcome, Diagnostic> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".keyfill-")
        .suffix(".tmp")
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| fail(path, "cannot create a temporary file in its folder", &e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| fail(path, "writing the temporary file failed", &e))?;
    fs::set_permissions(tmp.path(), Permissions::from_mode(opts.mode))
        .map_err(|e| fail(path, "cannot set the file mode", &e))?;
    match tmp.persist(path) {
        Ok(_) => {
            // Make the rename itself durable; failure here does not undo it.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(Outcome::Written)
        }
        Err(e) => {
            let busy = matches!(e.error.raw_os_error(), Some(16 | 18)); // EBUSY, EXDEV
            drop(e.file); // removes the temporary file
            if !busy {
                return Err(fail(path, "renaming the temporary file failed", &e.error));
            }
            if !opts.in_place_fallback {
                return Err(fail(
                    path,
                    "it cannot be replaced by rename (a bind-mounted single file?)",
                    &e.error,
                )
                .note("pass --in-place-fallback to rewrite the file in place instead"));
            }
            let mut f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| fail(path, "in-place rewrite failed", &e))?;
            f.set_len(0)
                .and_then(|()| f.write_all(bytes))
                .and_then(|()| f.sync_all())
                .map_err(|e| fail(path, "in-place rewrite failed", &e))?;
            Ok(Outcome::InPlace)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_mode_and_skips_unchanged() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("out.yaml");
        let opts = WriteOptions {
            mode: 0o600,
            in_place_fallback: false,
            defer_signals: true,
        };
        assert_eq!(write(&p, b"a: 1\n", opts).ok(), Some(Outcome::Written));
        assert_eq!(fs::metadata(&p)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(write(&p, b"a: 1\n", opts).ok(), Some(Outcome::Unchanged));
        assert_eq!(
            write(
                &p,
                b"a: 2\n",
                WriteOptions {
                    mode: 0o640,
                    ..opts
                }
            )
            .ok(),
            Some(Outcome::Written)
        );
        assert_eq!(fs::metadata(&p)?.permissions().mode() & 0o777, 0o640);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(dir.path())?.count(), 1);
        Ok(())
    }

    #[test]
    fn missing_folder_is_an_output_error() {
        let opts = WriteOptions {
            mode: 0o600,
            in_place_fallback: false,
            defer_signals: true,
        };
        let e = write(Path::new("/nonexistent-dir-keyfill/out.yaml"), b"x", opts).err();
        assert_eq!(e.map(|d| d.class), Some(Exit::Output));
    }
}
