//! Running a helper (the `sops` binary, `SOPS_AGE_KEY_CMD`) within bounds: it
//! ends by the deadline (its whole process group is killed), its output is read
//! up to a limit, and its output is held as a secret.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use secrecy::SecretBox;

/// Most bytes of a helper's error output kept (it is classified, never shown).
const STDERR_LIMIT: u64 = 64 * 1024;

/// What a helper gave.
pub(crate) struct Output {
    /// How it ended.
    pub(crate) status: ExitStatus,
    /// Its output, at most the limit.
    pub(crate) stdout: SecretBox<[u8]>,
    /// Its error output, at most 64 KiB; may hold secrets, so never shown.
    pub(crate) stderr: SecretBox<[u8]>,
}

/// Why a helper gave nothing.
#[derive(Debug)]
pub(crate) enum RunError {
    /// It could not be started.
    Spawn(std::io::Error),
    /// It did not end by the deadline.
    TimedOut,
    /// It wrote more than the limit.
    TooLarge(u64),
}

impl RunError {
    /// The end of a sentence naming the helper: "could not be started: …".
    pub(crate) fn describe(&self) -> String {
        match self {
            RunError::Spawn(e) => format!("could not be started: {e}"),
            RunError::TimedOut => "did not finish in time (raise with --timeout)".to_owned(),
            RunError::TooLarge(n) => {
                format!("wrote more than {n} bytes (raise with --max-secret-size)")
            }
        }
    }
}

/// Runs `cmd` with no input, reading at most `limit` bytes of its output, and
/// kills its process group at `deadline`.
pub(crate) fn run(mut cmd: Command, limit: u64, deadline: Instant) -> Result<Output, RunError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let pgid = rustix::process::Pid::from_child(&child);
    let kill = |child: &mut std::process::Child| {
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        let _ = child.kill();
        let _ = child.wait();
    };
    let reader = |pipe: Option<Box<dyn std::io::Read + Send>>, cap: u64| {
        let (tx, rx) = mpsc::channel();
        if let Some(pipe) = pipe {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let r = pipe.take(cap + 1).read_to_end(&mut buf).map(|_| ());
                let _ = tx.send((r, SecretBox::new(buf.into_boxed_slice())));
            });
        }
        rx
    };
    let out_rx = reader(
        child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        limit,
    );
    let err_rx = reader(
        child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        STDERR_LIMIT,
    );
    let mut stdout = None;
    let status = loop {
        if stdout.is_none() {
            if let Ok((_, buf)) = out_rx.try_recv() {
                let buf: SecretBox<[u8]> = buf;
                if secrecy::ExposeSecret::expose_secret(&buf).len() as u64 > limit {
                    kill(&mut child);
                    return Err(RunError::TooLarge(limit));
                }
                stdout = Some(buf);
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                kill(&mut child);
                return Err(RunError::Spawn(e));
            }
        }
        if Instant::now() >= deadline {
            kill(&mut child);
            return Err(RunError::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let left = || deadline.saturating_duration_since(Instant::now());
    let stdout = match stdout {
        Some(s) => s,
        None => match out_rx.recv_timeout(left()) {
            Ok((_, buf)) => buf,
            Err(_) => {
                kill(&mut child);
                return Err(RunError::TimedOut);
            }
        },
    };
    if secrecy::ExposeSecret::expose_secret(&stdout).len() as u64 > limit {
        return Err(RunError::TooLarge(limit));
    }
    let stderr = err_rx
        .recv_timeout(left())
        .map(|(_, b)| b)
        .unwrap_or_else(|_| SecretBox::new(Box::default()));
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}
