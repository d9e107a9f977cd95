//! `keyfill exec`: render, then run the command. Without `--watch` keyfill
//! replaces itself with it (execve: same PID, argv as given, no shell). With
//! `--watch` it stays as a small supervisor: it forwards signals, reaps orphans
//! when it is PID 1 (through a minimal init in front of it, see `init`),
//! re-renders on change and reloads or restarts the command only when the
//! output's bytes changed, and exits with the command's status.

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rustix::process::{Pid, WaitOptions};

use crate::config::ExecConfig;
use crate::error::{Diagnostic, Exit};
use crate::report::Reporter;
use crate::secret::SecretText;
use crate::signals;
use crate::watch::{self, Event, Loop, Rendered};

/// Set in the environment of the keyfill that a PID 1 keyfill starts (see
/// [`init`]); removed from the command's.
const UNDER_INIT: &str = "KEYFILL_UNDER_INIT";

/// Runs `keyfill exec`; the process status to exit with.
pub fn exec(args: &ExecConfig, reporter: &Reporter) -> Exit {
    if args.watch && is_pid1() && std::env::var_os(UNDER_INIT).is_none() {
        if let Some(code) = init(reporter) {
            return code;
        }
    }
    let mut lp = Loop::new(&args.render, &args.looping, args.env);
    let (first, exported) = lp.render(reporter, "start");
    if let Rendered::Failed(status) = first {
        // The command never starts on a render that failed.
        return status;
    }
    if !args.watch {
        // Ends the providers first (an AppRole token is revoked).
        drop(lp);
        let err = command(args, &exported).exec();
        return spawn_failed(args, reporter, &err);
    }
    supervise(args, reporter, lp, exported)
}

/// The command, with its environment: secrets by name with `--env`, our
/// credentials removed unless `--pass-credentials`. Secrets never go into argv.
fn command(args: &ExecConfig, exported: &[(String, SecretText)]) -> Command {
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    environment(cmd, args, exported)
}

/// The command's environment on `cmd` (see [`command`]).
fn environment(mut cmd: Command, args: &ExecConfig, exported: &[(String, SecretText)]) -> Command {
    cmd.env_remove(UNDER_INIT);
    if !args.pass_credentials {
        for v in crate::provider::credential_vars() {
            cmd.env_remove(v);
        }
    }
    for (name, value) in exported {
        cmd.env(name, value.expose());
    }
    cmd
}

/// 127 when the command does not exist, 126 when it cannot be run, as shells do.
fn spawn_failed(args: &ExecConfig, reporter: &Reporter, err: &std::io::Error) -> Exit {
    cannot_run(&args.command[0], reporter, err)
}

fn cannot_run(program: &std::ffi::OsStr, reporter: &Reporter, err: &std::io::Error) -> Exit {
    let shown = program.to_string_lossy();
    let (class, what) = match err.kind() {
        std::io::ErrorKind::NotFound => (Exit::NoCommand, "not found"),
        std::io::ErrorKind::PermissionDenied => (Exit::CannotRun, "permission denied"),
        _ => (Exit::CannotRun, "cannot be run"),
    };
    // Classed with the status it exits with, so a JSON log line's `exit_code`
    // is the process's.
    reporter.emit(
        &[Diagnostic::error(
            class,
            format!("cannot run `{shown}`: {what} ({err})"),
        )],
        &[],
    );
    class
}

/// The exit status for a wait status: the code, or 128+n for signal n.
fn status_code(status: rustix::process::WaitStatus) -> Option<Exit> {
    if let Some(c) = status.exit_status() {
        return Some(Exit::Child(u8::try_from(c & 0xff).unwrap_or(255)));
    }
    status
        .terminating_signal()
        .map(|s| Exit::Signal(signals::status_byte(s)))
}

fn is_pid1() -> bool {
    rustix::process::getpid().as_raw_nonzero().get() == 1
}

/// As PID 1 with `--watch`, keyfill runs itself again as its only child and
/// stays a minimal init: it forwards signals to that child and reaps every
/// process that ends. Reaping as PID 1 in the supervisor itself would take the
/// exit status of the processes a render starts (the `op` CLI, an AWS
/// `credential_process`) from under their waiting parent. Returns the child's
/// status, or `None` (supervise in-process) when it cannot be started.
fn init(reporter: &Reporter) -> Option<Exit> {
    let started = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(UNDER_INIT, "1")
            .spawn()
    });
    let inner = match started {
        Ok(c) => c.id(),
        Err(e) => {
            let w = format!("cannot start the supervisor under PID 1 ({e}); supervising as PID 1");
            reporter.emit(&[Diagnostic::warning(w)], &[]);
            return None;
        }
    };
    let raw = i32::try_from(inner).ok()?;
    let pid = Pid::from_raw(raw)?;
    let _ = signals::on_each(&signals::FORWARDED, move |s| {
        signals::send(raw, s, false);
        true
    });
    loop {
        match rustix::process::waitpid(None, WaitOptions::empty()) {
            Ok(Some((p, status))) if p == pid => {
                return Some(status_code(status).unwrap_or(Exit::Child(255)));
            }
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            // No child left: the supervisor is gone without a status.
            Err(_) => return Some(Exit::Child(255)),
        }
    }
}

/// Waits for the command (and, as PID 1, for every orphan) on a thread, and
/// reports each end as [`Event::Exited`].
fn reaper(child: Arc<AtomicI32>, tx: mpsc::Sender<Event>) {
    let pid1 = is_pid1();
    std::thread::spawn(move || loop {
        let current = child.load(Ordering::SeqCst);
        // As PID 1 every orphan becomes ours to reap; otherwise only the command
        // is waited for, so that other children (`op`) are left to their owners.
        let target = if pid1 { None } else { Pid::from_raw(current) };
        if !pid1 && target.is_none() {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        match rustix::process::waitpid(target, WaitOptions::empty()) {
            Ok(Some((pid, status))) => {
                if let Some(code) = status_code(status) {
                    if tx
                        .send(Event::Exited(pid.as_raw_nonzero().get(), code))
                        .is_err()
                    {
                        return;
                    }
                }
            }
            // No child right now (between a stop and a restart).
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    });
}

/// Sends `signal` to the command (or its process group).
fn send(args: &ExecConfig, pid: i32, signal: i32) {
    signals::send(pid, signal, args.signal_group);
}

/// First argument of a keyfill that the supervisor starts only to become the
/// command (see [`become_command`]); `main` looks for it before parsing.
pub const CHILD_MARK: &str = "__keyfill-supervised-command";

/// Where the running keyfill's own binary is, even after it was replaced on disk.
const SELF_EXE: &str = "/proc/self/exe";

/// Starts the command under the supervisor. It is started through a fresh
/// keyfill ([`become_command`]) that asks to be killed when the supervisor
/// dies and then execs the command (same PID, argv as given): a SIGKILLed
/// supervisor must not leave its command running orphaned, and setting the
/// parent-death signal between fork and exec would need unsafe code. Without
/// `/proc` the command is started directly.
fn spawn(
    args: &ExecConfig,
    reporter: &Reporter,
    exported: &[(String, SecretText)],
) -> Result<i32, Exit> {
    let mut via = Command::new(SELF_EXE);
    let format = match reporter.format {
        crate::report::Format::Json => "json",
        crate::report::Format::Text => "text",
    };
    via.arg(CHILD_MARK)
        .arg(rustix::process::getpid().as_raw_nonzero().to_string())
        .arg(format)
        .args(&args.command);
    let mut via = environment(via, args, exported);
    if args.signal_group {
        // A group of its own, so that a signal reaches the command's children.
        via.process_group(0);
    }
    let started = match via.spawn() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut cmd = command(args, exported);
            if args.signal_group {
                cmd.process_group(0);
            }
            cmd.spawn()
        }
        other => other,
    };
    match started {
        Ok(child) => Ok(i32::try_from(child.id()).unwrap_or(0)),
        Err(e) => Err(spawn_failed(args, reporter, &e)),
    }
}

/// In the keyfill that `spawn` starts (`argv`: after [`CHILD_MARK`], the
/// supervisor's PID, the log format, the command): asks for SIGKILL when the
/// supervisor dies, then becomes the command. The exit status when it cannot.
pub fn become_command(argv: &[std::ffi::OsString]) -> Exit {
    let parent = argv
        .first()
        .and_then(|p| p.to_str())
        .and_then(|p| p.parse::<i32>().ok());
    let reporter = Reporter {
        format: if argv.get(1).is_some_and(|f| f == "json") {
            crate::report::Format::Json
        } else {
            crate::report::Format::Text
        },
        color: false,
        quiet: false,
    };
    let (Some(parent), Some(program)) = (parent, argv.get(2)) else {
        return Exit::Usage;
    };
    signals::die_with_parent();
    // A supervisor that died before the line above sent nothing: we were
    // reparented already, and nobody would stop the command.
    let ppid = rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get());
    if ppid != parent {
        return Exit::Signal(signals::status_byte(signals::KILL));
    }
    let err = Command::new(program).args(&argv[3..]).exec();
    cannot_run(program, &reporter, &err)
}

/// Starts the thread that renders on request (`true`: a refresh); it reports
/// each render as [`Event::Rendered`].
fn render_worker(mut lp: Loop, reporter: Reporter, tx: mpsc::Sender<Event>) -> mpsc::Sender<bool> {
    let (req_tx, req_rx) = mpsc::channel::<bool>();
    std::thread::spawn(move || loop {
        let Some(first) = watch::next(&req_rx, lp.held(), false) else {
            return;
        };
        let mut refresh = first;
        let mut files = !first;
        while let Ok(r) = req_rx.try_recv() {
            refresh |= r;
            files |= !r;
        }
        let Some(why) = lp.due(refresh, files) else {
            continue;
        };
        let (outcome, values) = lp.render(&reporter, why);
        if tx
            .send(Event::Rendered(outcome == Rendered::Written, values))
            .is_err()
        {
            return;
        }
    });
    req_tx
}

fn supervise(
    args: &ExecConfig,
    reporter: &Reporter,
    mut lp: Loop,
    exported: Vec<(String, SecretText)>,
) -> Exit {
    let (tx, rx) = mpsc::channel();
    let setup = watch::signal_events(&signals::FORWARDED, tx.clone())
        .and_then(|()| watch::watch_inputs(&args.render, &args.looping, tx.clone()));
    let mut watcher = match setup {
        Ok(w) => w,
        Err(d) => {
            return reporter.fail(d);
        }
    };
    watcher.follow(&lp);
    if let Some(period) = args.looping.refresh {
        watch::refresh_ticks(period, tx.clone());
    }
    let child = Arc::new(AtomicI32::new(0));
    match spawn(args, reporter, &exported) {
        Ok(pid) => child.store(pid, Ordering::SeqCst),
        Err(code) => return code,
    }
    reaper(child.clone(), tx.clone());
    // Renders run on their own thread, so that signals are forwarded and the
    // command's exit is seen while a fetch is slow; queued requests coalesce.
    lp.defer_signals = false;
    let renders = render_worker(lp, reporter.clone(), tx);

    let mut exported = exported;
    let mut last_reload: Option<Instant> = None;
    let mut reload_due = false;
    let mut restarting = false;
    // Set when we were told to stop; a restart's SIGTERM is not a stop.
    let mut stopping = false;
    let mut kill_at: Option<Instant> = None;
    loop {
        let now = Instant::now();
        let next_reload = match (reload_due, last_reload) {
            (true, Some(at)) => Some(at + args.min_reload_interval),
            (true, None) => Some(now),
            _ => None,
        };
        let wake = [kill_at, next_reload].into_iter().flatten().min();
        let event = match wake {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(now)) {
                Ok(e) => Some(e),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return Exit::Provider,
            },
            None => match rx.recv() {
                Ok(e) => Some(e),
                Err(_) => return Exit::Provider,
            },
        };
        let pid = child.load(Ordering::SeqCst);
        match event {
            Some(Event::Signal(s)) => {
                send(args, pid, s);
                if signals::is_stop(s) && !stopping {
                    stopping = true;
                    kill_at = Some(Instant::now() + args.kill_timeout);
                }
            }
            Some(Event::Exited(p, code)) if p == pid => {
                if !restarting || stopping {
                    return code;
                }
                restarting = false;
                kill_at = None;
                match spawn(args, reporter, &exported) {
                    Ok(new) => child.store(new, Ordering::SeqCst),
                    Err(code) => return code,
                }
            }
            // An orphan reaped as PID 1.
            Some(Event::Exited(..)) => {}
            Some(Event::Files) => {
                watcher.rearm();
                let _ = renders.send(false);
            }
            Some(Event::Refresh) => {
                let _ = renders.send(true);
            }
            Some(Event::Rendered(true, values)) => {
                watcher.rearm();
                reload_due = true;
                if args.env {
                    exported = values;
                }
            }
            Some(Event::Rendered(false, _)) => watcher.rearm(),
            None => {}
        }
        let now = Instant::now();
        if kill_at.is_some_and(|at| now >= at) {
            send(args, pid, signals::KILL);
            kill_at = Some(now + Duration::from_secs(3600));
        }
        let allowed = last_reload.is_none_or(|at| now >= at + args.min_reload_interval);
        if reload_due && !stopping && !restarting && allowed {
            reload_due = false;
            last_reload = Some(now);
            if args.restart {
                restarting = true;
                kill_at = Some(now + args.kill_timeout);
                send(args, pid, signals::TERM);
            } else {
                send(args, pid, args.reload_signal);
            }
        }
    }
}
