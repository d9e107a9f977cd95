//! Writing the rendered config: atomically, privately, and only when it changed.
//!
//! `-o` is a path users treat like the shell's `>`, so it is first resolved to
//! what it names (`locate`):
//!
//! - A regular file (or nothing yet) is replaced atomically: the bytes go to a
//!   temporary file in the file's own folder (same filesystem), which is flushed,
//!   given its mode and owner, and renamed over the target, so a reader sees the
//!   old file or the new one and never a half-written one. A symlink is followed
//!   (chains too, a dangling one to the file it would create) and its final
//!   target is replaced; the link stays a link.
//! - A FIFO, character device or socket is written through, never replaced;
//!   `/dev/stdout` and the other `/proc/…/fd` links are opened as the kernel
//!   resolves them, and our own stdout or stderr is written to directly.
//! - A directory or block device is refused.
//!
//! On any error the temporary file is removed and the old output is untouched;
//! a file-size limit (`ulimit -f`) is an error, not a death by SIGXFSZ (which
//! `signals` catches); termination signals wait until the temporary file is
//! gone (`signals::Window`). A writer holds an exclusive `flock` on its
//! temporary file until the rename, so a run that was SIGKILLed leaves an
//! unlocked one behind, which the next write to that folder removes
//! (`sweep`); a live writer's is never touched. A single bind-mounted file
//! cannot be renamed over (EBUSY, EXDEV); that is reported, and with
//! `--in-place-fallback` the file is rewritten in place instead.

use std::fs::{self, File, OpenOptions, Permissions};

use std::os::unix::fs::{
    FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::OFlags;

use crate::error::{Diagnostic, Exit};
use crate::signals;
pub use crate::splice::Output;

/// A numeric owner for the output (`--owner UID[:GID]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id; `None` leaves the group as it is.
    pub gid: Option<u32>,
}

/// How to write.
#[derive(Clone, Copy, Debug)]
pub struct WriteOptions {
    /// File mode of the output (default 0600), enforced on every write.
    pub mode: u32,
    /// Owner of the output, enforced on every write.
    pub owner: Option<Owner>,
    /// Rewrite in place where rename cannot work.
    pub in_place_fallback: bool,
    /// Hold SIGTERM/SIGINT/SIGHUP while the temporary file exists, then die of
    /// them. Off under `exec --watch`, whose signals are the command's to get.
    pub defer_signals: bool,
    /// How long a FIFO may go without a reader before the write gives up.
    pub reader_wait: Duration,
}

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The file already held these bytes; nothing was written.
    Unchanged,
    /// Replaced atomically, or written through (a FIFO, a device, stdout).
    Written,
    /// Rewritten in place (bind-mount fallback).
    InPlace,
}

fn fail(path: &Path, what: &str, e: &std::io::Error) -> Diagnostic {
    let d = Diagnostic::error(
        Exit::Output,
        format!("cannot write `{}`: {what}: {e}", path.display()),
    );
    if e.raw_os_error() == Some(rustix::io::Errno::FBIG.raw_os_error()) {
        return d.note("a file-size limit (`ulimit -f`) is in force; the old output is kept");
    }
    d
}

fn refuse(path: &Path, why: &str) -> Diagnostic {
    Diagnostic::error(
        Exit::Output,
        format!("cannot write `{}`: {why}", path.display()),
    )
}

/// Our own standard streams, as `-o /dev/stdout` and `-o /dev/stderr` name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Std {
    Out,
    Err,
}

/// What kind of thing is written through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Fifo,
    Device,
    Socket,
    /// A regular file reached through a `/proc/…/fd` link: truncated and
    /// written, as `>` would, since the link cannot be followed by name.
    Reopened,
}

/// What `-o` names, once resolved.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// Replaced atomically: a regular file, or the path a new one gets.
    File(PathBuf),
    /// Written through at this path, never replaced.
    Through(PathBuf, Kind),
    /// Our own stdout or stderr.
    Std(Std),
}

/// More links than this in a chain is a loop (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// The folder a path's last component lives in.
fn folder(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `(dev, ino)` of an open standard stream.
fn std_identity(which: Std) -> Option<(u64, u64)> {
    use std::os::fd::AsFd as _;
    let st = match which {
        Std::Out => rustix::fs::fstat(std::io::stdout().as_fd()),
        Std::Err => rustix::fs::fstat(std::io::stderr().as_fd()),
    }
    .ok()?;
    #[allow(clippy::useless_conversion)]
    Some((u64::from(st.st_dev), u64::from(st.st_ino)))
}

/// Resolves `path` as the kernel would, one link at a time, to what a write
/// should do with it.
fn locate(path: &Path) -> Result<Target, Diagnostic> {
    let mut cur = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        let meta = match fs::symlink_metadata(&cur) {
            Ok(m) => m,
            // Nothing there yet (also the end of a dangling link): create it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Target::File(cur)),
            Err(e) => return Err(fail(path, "cannot look at it", &e)),
        };
        let ft = meta.file_type();
        if ft.is_symlink() {
            let dir = folder(&cur);
            // `/proc/…/fd/N` links name open files (a pipe, a socket, a deleted
            // file) that no path reaches; only the kernel can follow them.
            if fs::canonicalize(dir).is_ok_and(|d| d.starts_with("/proc")) {
                return through_proc(path);
            }
            let to = fs::read_link(&cur).map_err(|e| fail(path, "cannot read the link", &e))?;
            // Relative targets are relative to the link's own folder.
            cur = dir.join(to);
            continue;
        }
        return if ft.is_file() {
            Ok(Target::File(cur))
        } else if ft.is_dir() {
            Err(refuse(path, "it is a directory"))
        } else if ft.is_fifo() {
            Ok(Target::Through(cur, Kind::Fifo))
        } else if ft.is_char_device() {
            Ok(Target::Through(cur, Kind::Device))
        } else if ft.is_socket() {
            Ok(Target::Through(cur, Kind::Socket))
        } else {
            Err(refuse(
                path,
                "it is a block device (keyfill writes files, FIFOs, character devices and sockets)",
            ))
        };
    }
    Err(refuse(path, "too many levels of symbolic links"))
}

/// A path through `/proc/…/fd`: our own stdout or stderr is written to
/// directly (appending where the stream is, as `>/dev/stdout` in a shell does);
/// anything else is opened through the link and written through.
fn through_proc(path: &Path) -> Result<Target, Diagnostic> {
    let meta = fs::metadata(path).map_err(|e| fail(path, "cannot follow it", &e))?;
    let id = (meta.dev(), meta.ino());
    for which in [Std::Out, Std::Err] {
        if std_identity(which) == Some(id) {
            return Ok(Target::Std(which));
        }
    }
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        return Err(refuse(path, "it is a directory"));
    } else if ft.is_fifo() {
        Kind::Fifo
    } else if ft.is_socket() {
        Kind::Socket
    } else if ft.is_file() {
        Kind::Reopened
    } else {
        Kind::Device
    };
    Ok(Target::Through(path.to_path_buf(), kind))
}

/// Whether a write to `path` goes through (a FIFO, a device, a socket, our
/// stdout) instead of replacing a file: then no file shows whether the bytes
/// changed, and the writer has to remember.
pub(crate) fn writes_through(path: &Path) -> bool {
    matches!(locate(path), Ok(Target::Through(..) | Target::Std(_)))
}

/// The regular file a write to `path` replaces, if that is what it names.
pub(crate) fn final_file(path: &Path) -> Option<PathBuf> {
    match locate(path) {
        Ok(Target::File(p)) => Some(p),
        _ => None,
    }
}

/// Whether `a` and `b` name one existing file, however named (through links,
/// hard links or `..`).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Refuses an output that is one of this run's inputs, `--secrets` files or
/// its `--audit` log (the same file, however named: through links, hard links
/// or `..`), before anything is read from a provider. An output that does not
/// exist yet cannot be one; stdin (`-`) is no file.
pub fn refuse_input_as_output(
    out: &Path,
    files: &[String],
    secrets: &[String],
    audit: Option<&Path>,
) -> Result<(), Diagnostic> {
    let Ok(o) = fs::metadata(out) else {
        return Ok(());
    };
    // Devices (`/dev/stdout` with stdin on the same tty) are streams, not files
    // a write destroys.
    if o.file_type().is_char_device() {
        return Ok(());
    }
    let named = files
        .iter()
        .map(|f| ("the input", Path::new(f)))
        .chain(secrets.iter().map(|f| ("the --secrets file", Path::new(f))))
        .chain(audit.map(|f| ("the --audit log", f)));
    for (what, f) in named {
        if f == Path::new("-") {
            continue;
        }
        if fs::metadata(f).is_ok_and(|m| m.dev() == o.dev() && m.ino() == o.ino()) {
            return Err(Diagnostic::error(
                Exit::Usage,
                format!(
                    "`-o {}` is {what} `{}` (the same file): writing it would destroy it",
                    out.display(),
                    f.display()
                ),
            )
            .note("write the output to another file"));
        }
    }
    Ok(())
}

/// Writes `bytes` to what `path` names (see the module's notes).
pub fn write(path: &Path, bytes: &Output, opts: WriteOptions) -> Result<Outcome, Diagnostic> {
    match locate(path)? {
        Target::File(file) => write_file(path, &file, bytes, opts),
        Target::Through(at, kind) => write_through(path, &at, kind, bytes, opts),
        Target::Std(which) => write_std(path, which, bytes),
    }
}

fn write_std(path: &Path, which: Std, bytes: &Output) -> Result<Outcome, Diagnostic> {
    let r = match which {
        Std::Out => bytes.write_to(&mut std::io::stdout().lock()),
        Std::Err => bytes.write_to(&mut std::io::stderr().lock()),
    };
    match r {
        // A closed pipe (`| head`) is the reader's choice, as for plain stdout.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(fail(path, "write failed", &e)),
        _ => Ok(Outcome::Written),
    }
}

/// Opens a FIFO for writing once a reader has it open, polling for one until
/// `wait` passes: a plain open would block forever without a reader.
fn open_fifo(shown: &Path, at: &Path, wait: Duration) -> Result<File, Diagnostic> {
    let deadline = Instant::now() + wait;
    loop {
        match OpenOptions::new()
            .write(true)
            .custom_flags(OFlags::NONBLOCK.bits() as i32)
            .open(at)
        {
            Ok(f) => {
                // Writes block as usual from here on: the reader reads at its pace.
                let flags = rustix::fs::fcntl_getfl(&f)
                    .and_then(|fl| rustix::fs::fcntl_setfl(&f, fl - OFlags::NONBLOCK))
                    .map_err(std::io::Error::from);
                return flags
                    .map(|()| f)
                    .map_err(|e| fail(shown, "cannot open the FIFO", &e));
            }
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                if signals::told_to_stop() {
                    return Err(refuse(
                        shown,
                        "it is a FIFO and keyfill was told to stop while waiting for a reader",
                    ));
                }
                if Instant::now() >= deadline {
                    return Err(refuse(
                        shown,
                        &format!(
                            "it is a FIFO and no reader opened it within {:?} (--timeout)",
                            wait
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(fail(shown, "cannot open the FIFO", &e)),
        }
    }
}

fn write_through(
    shown: &Path,
    at: &Path,
    kind: Kind,
    bytes: &Output,
    opts: WriteOptions,
) -> Result<Outcome, Diagnostic> {
    let mut sink: Box<dyn std::io::Write> = match kind {
        Kind::Fifo => Box::new(open_fifo(shown, at, opts.reader_wait)?),
        Kind::Socket => Box::new(
            std::os::unix::net::UnixStream::connect(at)
                .map_err(|e| fail(shown, "cannot connect to the socket", &e))?,
        ),
        Kind::Device | Kind::Reopened => Box::new(
            OpenOptions::new()
                .write(true)
                .truncate(kind == Kind::Reopened)
                .open(at)
                .map_err(|e| fail(shown, "cannot open it", &e))?,
        ),
    };
    bytes
        .write_to(&mut sink)
        .map_err(|e| fail(shown, "write failed", &e))?;
    Ok(Outcome::Written)
}

/// Gives an existing file the mode and owner asked for, where it has others.
fn enforce(
    shown: &Path,
    file: &Path,
    meta: &fs::Metadata,
    opts: WriteOptions,
) -> Result<(), Diagnostic> {
    if let Some(o) = opts.owner {
        if meta.uid() != o.uid || o.gid.is_some_and(|g| g != meta.gid()) {
            std::os::unix::fs::chown(file, Some(o.uid), o.gid)
                .map_err(|e| fail(shown, "cannot set the owner", &e))?;
        }
    }
    // Re-read: a chown may clear bits.
    let mode = fs::metadata(file).map_or(meta.mode(), |m| m.mode()) & 0o7777;
    if mode != opts.mode {
        fs::set_permissions(file, Permissions::from_mode(opts.mode))
            .map_err(|e| fail(shown, "cannot set the file mode", &e))?;
    }
    Ok(())
}

fn write_file(
    shown: &Path,
    file: &Path,
    bytes: &Output,
    opts: WriteOptions,
) -> Result<Outcome, Diagnostic> {
    sweep(folder(file));
    match fs::metadata(file) {
        // Only a file of the same length can hold the same bytes; it is
        // compared a block at a time, never read whole.
        Ok(m)
            if m.len() == bytes.len() as u64
                && File::open(file).is_ok_and(|mut f| bytes.same_as(&mut f).unwrap_or(false)) =>
        {
            enforce(shown, file, &m, opts)?;
            return Ok(Outcome::Unchanged);
        }
        _ => {}
    }
    let _window = opts.defer_signals.then(signals::Window::open);
    write_new(shown, file, bytes, opts)
}

/// Whether a file name is one of our temporary files.
pub(crate) fn is_temp_name(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| n.starts_with(".keyfill-") && n.ends_with(".tmp"))
}

/// Removes the temporary files that dead runs left in `dir`: those nobody holds
/// a lock on. A live writer holds its lock from right after creating the file
/// until after the rename, so its file is never taken. The lock lives with the
/// open file, not a PID, so this holds across PID namespaces sharing a volume.
fn sweep(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !is_temp_name(&entry.file_name()) {
            continue;
        }
        let p = entry.path();
        let Ok(f) = OpenOptions::new()
            .read(true)
            .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
            .open(&p)
        else {
            continue;
        };
        let Ok(m) = f.metadata() else { continue };
        if !m.is_file() || f.try_lock().is_err() {
            continue;
        }
        // Still the file we locked (not a new one under a reused name).
        if fs::symlink_metadata(&p).is_ok_and(|n| n.dev() == m.dev() && n.ino() == m.ino()) {
            let _ = fs::remove_file(&p);
        }
    }
}

/// A new temporary file in `dir`, locked by us (see [`sweep`]).
fn locked_temp(shown: &Path, dir: &Path) -> Result<tempfile::NamedTempFile, Diagnostic> {
    let mut last = None;
    for _ in 0..8 {
        let tmp = tempfile::Builder::new()
            .prefix(".keyfill-")
            .suffix(".tmp")
            .permissions(Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(|e| fail(shown, "cannot create a temporary file in its folder", &e))?;
        // A sweep may take a file between its creation and our lock: then the
        // name is gone or not ours, and we start again.
        let locked = tmp.as_file().try_lock().is_ok();
        let ours = tmp
            .as_file()
            .metadata()
            .ok()
            .zip(fs::symlink_metadata(tmp.path()).ok());
        match ours {
            Some((a, b)) if locked && a.dev() == b.dev() && a.ino() == b.ino() => return Ok(tmp),
            _ => last = Some(tmp),
        }
    }
    drop(last);
    Err(refuse(
        shown,
        "cannot hold a temporary file in its folder (removed by another run)",
    ))
}

fn write_new(
    shown: &Path,
    file: &Path,
    bytes: &Output,
    opts: WriteOptions,
) -> Result<Outcome, Diagnostic> {
    let dir = folder(file);
    let mut tmp = locked_temp(shown, dir)?;
    // Through the File: NamedTempFile's own writes wrap errors with the path.
    bytes
        .write_to(tmp.as_file_mut())
        .map_err(|e| fail(shown, "writing the temporary file failed", &e))?;
    // Owner before mode (a chown may clear bits), both before the rename, so
    // the file never exists under its name with the wrong ones.
    if let Some(o) = opts.owner {
        std::os::unix::fs::fchown(tmp.as_file(), Some(o.uid), o.gid)
            .map_err(|e| fail(shown, "cannot set the owner", &e))?;
    }
    tmp.as_file()
        .set_permissions(Permissions::from_mode(opts.mode))
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| fail(shown, "cannot set the file mode", &e))?;
    match tmp.persist(file) {
        Ok(_) => {
            // Make the rename itself durable; failure here does not undo it.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(Outcome::Written)
        }
        Err(e) => {
            let busy = matches!(e.error.raw_os_error(), Some(16 | 18)); // EBUSY, EXDEV
            drop(e.file); // removes the temporary file
            if !busy {
                return Err(fail(shown, "renaming the temporary file failed", &e.error));
            }
            if !opts.in_place_fallback {
                return Err(fail(
                    shown,
                    "it cannot be replaced by rename (a bind-mounted single file?)",
                    &e.error,
                )
                .note("pass --in-place-fallback to rewrite the file in place instead"));
            }
            let mut f = OpenOptions::new()
                .write(true)
                .open(file)
                .map_err(|e| fail(shown, "in-place rewrite failed", &e))?;
            let meta = f
                .metadata()
                .map_err(|e| fail(shown, "in-place rewrite failed", &e))?;
            enforce(shown, file, &meta, opts)?;
            f.set_len(0)
                .and_then(|()| bytes.write_to(&mut f))
                .and_then(|()| f.sync_all())
                .map_err(|e| fail(shown, "in-place rewrite failed", &e))?;
            Ok(Outcome::InPlace)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(bytes: &[u8]) -> Output {
        Output::from(bytes.to_vec())
    }

    const OPTS: WriteOptions = WriteOptions {
        mode: 0o600,
        owner: None,
        in_place_fallback: false,
        defer_signals: true,
        reader_wait: Duration::from_millis(200),
    };

    fn names(dir: &Path) -> std::io::Result<Vec<String>> {
        let mut v: Vec<String> = fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        v.sort();
        Ok(v)
    }

    #[test]
    fn writes_with_mode_and_skips_unchanged() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("out.yaml");
        let opts = OPTS;
        assert_eq!(
            write(&p, &out(b"a: 1\n"), opts).ok(),
            Some(Outcome::Written)
        );
        assert_eq!(fs::metadata(&p)?.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            write(&p, &out(b"a: 1\n"), opts).ok(),
            Some(Outcome::Unchanged)
        );
        assert_eq!(
            write(
                &p,
                &out(b"a: 2\n"),
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
        let e = write(
            Path::new("/nonexistent-dir-keyfill/out.yaml"),
            &out(b"x"),
            OPTS,
        )
        .err();
        assert_eq!(e.map(|d| d.class), Some(Exit::Output));
    }

    #[test]
    fn unchanged_output_still_gets_its_mode() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("out.yaml");
        fs::write(&p, "a: 1\n")?;
        fs::set_permissions(&p, Permissions::from_mode(0o666))?;
        let ino = fs::metadata(&p)?.ino();
        assert_eq!(
            write(&p, &out(b"a: 1\n"), OPTS).ok(),
            Some(Outcome::Unchanged)
        );
        let m = fs::metadata(&p)?;
        assert_eq!(m.mode() & 0o7777, 0o600);
        assert_eq!(m.ino(), ino, "unchanged bytes are not rewritten");
        Ok(())
    }

    #[test]
    fn link_chains_resolve_relative_to_each_links_folder() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        fs::create_dir(d.join("a"))?;
        fs::create_dir(d.join("b"))?;
        // out -> a/l1 -> ../b/l2 -> real.yaml (relative to b/)
        std::os::unix::fs::symlink("real.yaml", d.join("b/l2"))?;
        std::os::unix::fs::symlink("../b/l2", d.join("a/l1"))?;
        std::os::unix::fs::symlink("a/l1", d.join("out"))?;
        assert_eq!(
            write(&d.join("out"), &out(b"x: 1\n"), OPTS).ok(),
            Some(Outcome::Written)
        );
        // Dangling at first: the final target was created, every link stays.
        assert_eq!(fs::read(d.join("b/real.yaml"))?, b"x: 1\n");
        for l in ["out", "a/l1", "b/l2"] {
            assert!(
                fs::symlink_metadata(d.join(l))?.file_type().is_symlink(),
                "{l}"
            );
        }
        assert_eq!(
            write(&d.join("out"), &out(b"x: 2\n"), OPTS).ok(),
            Some(Outcome::Written)
        );
        assert_eq!(fs::read(d.join("b/real.yaml"))?, b"x: 2\n");
        assert_eq!(names(&d.join("b"))?, ["l2", "real.yaml"]);
        Ok(())
    }

    #[test]
    fn link_loops_and_directories_are_output_errors() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::os::unix::fs::symlink("l2", d.join("l1"))?;
        std::os::unix::fs::symlink("l1", d.join("l2"))?;
        let e = write(&d.join("l1"), &out(b"x"), OPTS).err();
        assert_eq!(
            e.map(|d| (d.class, d.message.contains("too many levels"))),
            Some((Exit::Output, true))
        );
        std::os::unix::fs::symlink(".", d.join("here"))?;
        let e = write(&d.join("here"), &out(b"x"), OPTS).err();
        assert_eq!(
            e.map(|d| (d.class, d.message.contains("is a directory"))),
            Some((Exit::Output, true))
        );
        Ok(())
    }

    #[test]
    fn sweep_takes_dead_runs_temps_and_leaves_live_ones() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        fs::write(d.join(".keyfill-dead.tmp"), "partial")?;
        let live = File::create(d.join(".keyfill-live.tmp"))?;
        live.lock()?;
        fs::write(d.join("keep.tmp"), "not ours")?;
        assert_eq!(
            write(&d.join("out"), &out(b"x"), OPTS).ok(),
            Some(Outcome::Written)
        );
        assert_eq!(names(d)?, [".keyfill-live.tmp", "keep.tmp", "out"]);
        drop(live);
        assert_eq!(
            write(&d.join("out"), &out(b"x"), OPTS).ok(),
            Some(Outcome::Unchanged)
        );
        assert_eq!(names(d)?, ["keep.tmp", "out"]);
        Ok(())
    }

    #[test]
    fn fifo_without_a_reader_gives_up_after_the_wait() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("fifo");
        let st = std::process::Command::new("mkfifo").arg(&p).status()?;
        assert!(st.success());
        let e = write(&p, &out(b"x"), OPTS).err();
        assert_eq!(
            e.map(|d| (d.class, d.message.contains("no reader"))),
            Some((Exit::Output, true))
        );
        assert!(
            fs::symlink_metadata(&p)?.file_type().is_fifo(),
            "the FIFO stays"
        );
        Ok(())
    }

    #[test]
    fn output_that_is_an_input_is_found_through_links() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        let input = d.join("in.yaml");
        fs::write(&input, "a: 1\n")?;
        fs::hard_link(&input, d.join("hard"))?;
        std::os::unix::fs::symlink("in.yaml", d.join("soft"))?;
        let files = vec![input.display().to_string()];
        for out in ["hard", "soft"] {
            let e = refuse_input_as_output(&d.join(out), &files, &[], None).err();
            assert_eq!(e.map(|d| d.class), Some(Exit::Usage), "{out}");
        }
        let e = refuse_input_as_output(&d.join("hard"), &["-".into()], &files, None).err();
        assert_eq!(e.map(|d| d.message.contains("--secrets file")), Some(true));
        let e = refuse_input_as_output(&d.join("soft"), &[], &[], Some(&input)).err();
        assert_eq!(e.map(|d| d.message.contains("--audit log")), Some(true));
        assert!(refuse_input_as_output(&d.join("new"), &files, &[], None).is_ok());
        assert!(refuse_input_as_output(&input, &["-".into()], &[], None).is_ok());
        assert!(same_file(&d.join("soft"), &input) && !same_file(&d.join("new"), &input));
        Ok(())
    }
}
