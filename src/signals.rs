//! Signals: the ones keyfill knows by name, and every handler it installs.
//!
//! Three commands care about signals, each in its own way: a write holds
//! termination signals while its temporary file exists and dies of them after
//! (`Window`); `watch` turns them into events of its loop; `exec --watch`
//! forwards them to its command (`FORWARDED`, `send`). What they do with a
//! signal stays in their modules; how a signal is named, caught, deferred,
//! listened for or sent lives here, so that no other module touches a handler
//! or a signal number.
//!
//! Handlers only set flags or wake a listening thread (signal-hook's safe API):
//! nothing else runs in a signal handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use rustix::process::{Pid, Signal};
use signal_hook::consts::signal as sig;

/// Hang up: a reload for `watch` and, by default, for `exec --watch`'s command.
pub(crate) const HUP: i32 = sig::SIGHUP;
/// Interrupt (Ctrl-C): stop.
pub(crate) const INT: i32 = sig::SIGINT;
/// Terminate: stop.
pub(crate) const TERM: i32 = sig::SIGTERM;
/// Kill: sent when a command outlives `--kill-timeout`.
pub(crate) const KILL: i32 = sig::SIGKILL;

/// The names `--reload-signal` accepts (also with `SIG`, in any case), in the
/// order an error lists them.
const NAMES: [(&str, i32); 8] = [
    ("HUP", sig::SIGHUP),
    ("INT", sig::SIGINT),
    ("QUIT", sig::SIGQUIT),
    ("TERM", sig::SIGTERM),
    ("USR1", sig::SIGUSR1),
    ("USR2", sig::SIGUSR2),
    ("WINCH", sig::SIGWINCH),
    ("ALRM", sig::SIGALRM),
];

/// Parses a signal as an option gives it: `HUP`, `SIGHUP`, `hup` or a number
/// (1 to 64).
pub fn parse(s: &str) -> Result<i32, String> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(known, _)| *known == name) {
        return Ok(n);
    }
    let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "`{s}` is not a signal: give a number or one of {}",
        known.join(", ")
    ))
}

/// Signals that ask keyfill (and `exec --watch`'s command) to stop.
pub(crate) const STOP: [i32; 2] = [TERM, INT];

/// Whether `s` is one of [`STOP`].
pub(crate) fn is_stop(s: i32) -> bool {
    STOP.contains(&s)
}

/// Signals `exec --watch` passes on to its command (SIGCHLD is its own; KILL
/// and STOP cannot be caught).
pub(crate) const FORWARDED: [i32; 10] = [
    sig::SIGHUP,
    sig::SIGINT,
    sig::SIGQUIT,
    sig::SIGTERM,
    sig::SIGUSR1,
    sig::SIGUSR2,
    sig::SIGWINCH,
    sig::SIGALRM,
    sig::SIGCONT,
    sig::SIGTSTP,
];

/// Signals `watch` handles as events of its loop.
pub(crate) const WATCHED: [i32; 3] = [TERM, INT, HUP];

/// Termination signals a [`Window`] defers.
const DEFERRED: [i32; 3] = [TERM, INT, HUP];

/// While alive, records termination signals instead of dying of them, so that
/// a temporary file is always removed (or renamed) first. On drop, a recorded
/// signal is re-delivered with its default action: the process still dies of
/// it, as its parent expects (exit status 128+n).
pub(crate) struct Window {
    ids: Vec<signal_hook::SigId>,
    flags: Vec<(i32, Arc<AtomicBool>)>,
}

impl Window {
    /// Starts deferring SIGTERM, SIGINT and SIGHUP.
    pub(crate) fn open() -> Self {
        let mut w = Window {
            ids: Vec::new(),
            flags: Vec::new(),
        };
        for s in DEFERRED {
            let flag = Arc::new(AtomicBool::new(false));
            if let Ok(id) = signal_hook::flag::register(s, Arc::clone(&flag)) {
                w.ids.push(id);
                w.flags.push((s, flag));
            }
        }
        w
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        for (s, flag) in &self.flags {
            if flag.load(Ordering::SeqCst) {
                let _ = signal_hook::low_level::emulate_default_handler(*s);
            }
        }
    }
}

/// Makes a file-size limit (`ulimit -f`) an error instead of a death: with
/// SIGXFSZ caught, a write past the limit fails with EFBIG, and the temporary
/// file is removed as on any other error. Caught rather than ignored, so that
/// a command `exec` starts gets the default action back.
pub fn survive_file_size_limit() {
    let flag = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(sig::SIGXFSZ, flag);
}

/// Set once one of the signals given to [`stop_waiting_on`] arrived.
static STOPPING: LazyLock<Arc<AtomicBool>> = LazyLock::new(Default::default);

/// Makes the arrival of `signals` visible to [`told_to_stop`]: a wait that a
/// loop's own signal event cannot interrupt (a FIFO without a reader, while
/// `watch` waits for the render) gives up on it.
pub(crate) fn stop_waiting_on(signals: &[i32]) {
    for s in signals {
        let _ = signal_hook::flag::register(*s, Arc::clone(&STOPPING));
    }
}

/// Whether a signal given to [`stop_waiting_on`] arrived.
pub(crate) fn told_to_stop() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Calls `handle` with every arrival of `signals`, in order, on a thread of its
/// own, until it returns `false`. From then on these signals no longer take
/// their default action (they are this listener's).
pub(crate) fn on_each(
    signals: &[i32],
    mut handle: impl FnMut(i32) -> bool + Send + 'static,
) -> std::io::Result<()> {
    let mut it = signal_hook::iterator::Signals::new(signals)?;
    std::thread::spawn(move || {
        for s in it.forever() {
            if !handle(s) {
                return;
            }
        }
    });
    Ok(())
}

/// Sends signal `s` to process `pid`, or to its process group with `group`.
/// A pid or signal that is not one is ignored, as is a process already gone.
pub(crate) fn send(pid: i32, s: i32, group: bool) {
    let (Some(pid), Some(s)) = (Pid::from_raw(pid), Signal::from_named_raw(s)) else {
        return;
    };
    let _ = if group {
        rustix::process::kill_process_group(pid, s)
    } else {
        rustix::process::kill_process(pid, s)
    };
}

/// Asks the kernel to SIGKILL this process when its parent dies.
pub(crate) fn die_with_parent() {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
}

/// Signal `s` as a death status carries it (its low 7 bits).
pub(crate) fn status_byte(s: i32) -> u8 {
    u8::try_from(s & 0x7f).unwrap_or(127)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for (name, n) in NAMES {
            for given in [
                name.to_owned(),
                format!("SIG{name}"),
                name.to_ascii_lowercase(),
                format!("sig{}", name.to_ascii_lowercase()),
                n.to_string(),
            ] {
                assert_eq!(parse(&given), Ok(n), "{given}");
            }
        }
        let mut numbers: Vec<i32> = NAMES.iter().map(|(_, n)| *n).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), NAMES.len(), "two names for one number");
    }

    #[test]
    fn numbers_in_range_are_taken_as_given() {
        assert_eq!(parse("1"), Ok(1));
        assert_eq!(parse("64"), Ok(64));
        assert!(parse("0").is_err());
        assert!(parse("65").is_err());
        assert!(parse("-1").is_err());
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        for bad in ["HUPP", "SIGSIGHUP", "KILL", ""] {
            let err = parse(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("`{bad}` is not a signal")),
                "{err}"
            );
            for (name, _) in NAMES {
                assert!(err.contains(name), "{err} lacks {name}");
            }
        }
    }

    #[test]
    fn the_sets_hold_what_their_users_handle() {
        assert!(is_stop(TERM) && is_stop(INT) && !is_stop(HUP));
        for s in WATCHED.iter().chain(&DEFERRED) {
            assert!(FORWARDED.contains(s));
        }
        assert!(!FORWARDED.contains(&KILL));
        assert_eq!(status_byte(KILL), 9);
    }

    /// Where the child run of [`window_child`] leaves its mark.
    const MARK: &str = "KEYFILL_TEST_WINDOW_MARK";

    /// Run only by [`a_deferred_signal_is_redelivered_after_the_window`], in a
    /// process of its own: the re-delivered SIGTERM ends that process.
    #[test]
    #[ignore = "run in a child process by a_deferred_signal_is_redelivered_after_the_window"]
    fn window_child() {
        let Some(mark) = std::env::var_os(MARK) else {
            return;
        };
        let window = Window::open();
        signal_hook::low_level::raise(TERM).unwrap();
        // Still alive: the signal was recorded, not acted on.
        std::fs::write(mark, "deferred").unwrap();
        drop(window);
        // Not reached: the drop re-delivers SIGTERM with its default action.
        std::process::exit(3);
    }

    /// A real SIGTERM would end the test runner, so the window is opened in a
    /// child run of this test binary.
    #[test]
    fn a_deferred_signal_is_redelivered_after_the_window() {
        use std::os::unix::process::ExitStatusExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("mark");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "signals::tests::window_child",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(MARK, &mark)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&mark).ok().as_deref(),
            Some("deferred"),
            "SIGTERM was not deferred inside the window"
        );
        assert_eq!(status.signal(), Some(TERM), "{status:?}");
    }
}
