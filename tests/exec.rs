//! `keyfill exec` with real processes (RELIABILITY.md, Supervision and Leakage):
//! exit codes and signal deaths passed through, 126/127, execve keeping the PID
//! and argv, a failed first render never starting the command, each forwarded
//! signal arriving once, kill-timeout escalation, reload or restart exactly once
//! per change of the output's bytes (rate-limited), a failed re-render leaving
//! everything alone, reaping orphans as PID 1, credentials stripped, `--env`
//! exporting secrets by name and never through argv or stderr.
//!
//! The commands are small `sh` scripts written into a temporary folder; they
//! record what happened to them (signals trapped, their PID, environment,
//! `/proc` views) in files the tests poll against deadlines. No fixed sleep is a
//! pass criterion: a short settle follows a synchronising event only where the
//! claim is that nothing *more* happens.
//!

use crate::support;
use support::canary;

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

const BIN: &str = env!("CARGO_BIN_EXE_keyfill");

/// Bound for anything that should happen promptly (a debug build on two busy
/// cores renders in milliseconds, but starts slowly under load).
const SOON: Duration = Duration::from_secs(15);

/// How long "nothing more happens" is watched for after a synchronising event:
/// several times the debounce (50 ms) and the scripts' trap latency (20 ms).
const SETTLE: Duration = Duration::from_millis(400);

const POLL: Duration = Duration::from_millis(5);

/// Polls `f` until it holds or `timeout` passes; whether it held.
fn poll_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

fn pid_of(raw: u32) -> Pid {
    Pid::from_raw(i32::try_from(raw).expect("pid fits an i32")).expect("non-zero pid")
}

fn alive(pid: u32) -> bool {
    // A zombie still answers kill(0); look at its state instead.
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(") ")
            .is_some_and(|i| !stat[i + 2..].starts_with('Z')),
        Err(_) => false,
    }
}

/// A config with one inline secret `TOKEN` holding `value`, used once.
fn config(value: &str) -> String {
    format!("# app config\nsecrets:\n  TOKEN: {value}\nk: $<TOKEN>\nother: 1\n")
}

/// A temporary folder for one test: configs, scripts, the logs they write.
/// When dropped, every script process that recorded its PID in `pids` (and is
/// still running one of this folder's scripts) is killed.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// `join(name)` as text, for scripts.
    fn at(&self, name: &str) -> String {
        self.join(name).display().to_string()
    }

    fn write(&self, name: &str, content: &str) {
        fs::write(self.join(name), content).expect("write file");
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.join(name)).unwrap_or_default()
    }

    fn exists(&self, name: &str) -> bool {
        self.join(name).exists()
    }

    /// The PID a script wrote to `name` with `echo $$ > …`, once the line is
    /// complete: the file exists (empty) between the shell's open and write.
    fn pid(&self, name: &str) -> Option<u32> {
        let text = self.read(name);
        text.strip_suffix('\n')?.parse().ok()
    }

    fn lines(&self, name: &str) -> Vec<String> {
        self.read(name).lines().map(str::to_owned).collect()
    }

    /// How many lines of `name` are exactly `line`.
    fn count(&self, name: &str, line: &str) -> usize {
        self.lines(name).iter().filter(|l| *l == line).count()
    }

    /// Writes an executable `sh` script; `$D` in `body` is this folder. The
    /// script records its PID in `pids` first, for cleanup.
    fn script(&self, name: &str, body: &str) -> String {
        let d = self.path().display().to_string();
        let text = format!(
            "#!/bin/sh\nD='{d}'\necho $$ >> \"$D/pids\"\n{}\n",
            body.replace("$D", "\"$D\"")
        );
        let p = self.join(name);
        fs::write(&p, text).expect("write script");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod script");
        p.display().to_string()
    }

    /// Saves `name` as vim does by default on many systems: the new content
    /// is written to another file in the folder, which is renamed over it.
    fn save_by_rename(&self, name: &str, content: &str) {
        let tmp = self.join(&format!(".{name}.swp"));
        fs::write(&tmp, content).expect("write swap file");
        fs::rename(&tmp, self.join(name)).expect("rename over the input");
    }

    /// Sets `name`'s modification time to now without changing its bytes.
    fn touch(&self, name: &str) {
        let f = fs::File::options()
            .write(true)
            .open(self.join(name))
            .expect("open for touch");
        f.set_modified(std::time::SystemTime::now())
            .expect("set mtime");
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let mark = self.path().display().to_string();
        for line in self.lines("pids") {
            let Ok(pid) = line.trim().parse::<u32>() else {
                continue;
            };
            let ours = fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&mark));
            if ours {
                let _ = rustix::process::kill_process(pid_of(pid), Signal::KILL);
            }
        }
    }
}

/// A running keyfill (or `unshare … keyfill`), in its own process group, in
/// `dir`, with a clean environment; stderr and stdout go to files in `dir`.
/// Killed with its whole group when dropped.
struct Keyfill {
    child: Child,
    err: PathBuf,
    status: Option<ExitStatus>,
}

impl Keyfill {
    fn start(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> Keyfill {
        Keyfill::start_program(dir, BIN, args, env)
    }

    fn start_program(dir: &Dir, program: &str, args: &[&str], env: &[(&str, &str)]) -> Keyfill {
        let err = dir.join("keyfill.err");
        let mut cmd = Command::new(program);
        cmd.current_dir(dir.path())
            .args(args)
            .env_clear()
            .env(
                "PATH",
                std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env("HOME", dir.path())
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.join("keyfill.out")).expect("stdout file"))
            .stderr(fs::File::create(&err).expect("stderr file"))
            .process_group(0);
        Keyfill {
            child: cmd.spawn().expect("spawn keyfill"),
            err,
            status: None,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// The render lines (`keyfill: WHY: OUT written|unchanged|…`).
    fn renders(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|l| {
                l.starts_with("keyfill: ")
                    && (l.ends_with(" written")
                        || l.ends_with(" unchanged")
                        || l.ends_with(" keeps its last good content"))
            })
            .map(str::to_owned)
            .collect()
    }

    fn signal(&self, sig: Signal) {
        rustix::process::kill_process(pid_of(self.pid()), sig).expect("kill(2) keyfill");
    }

    fn running(&mut self) -> bool {
        self.try_status().is_none()
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Its exit status once it ends within `timeout`.
    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Its exit code; panics when it does not end in time or dies of a signal.
    fn code(&mut self, what: &str) -> i32 {
        let Some(st) = self.wait(SOON) else {
            panic!(
                "{what}: keyfill still running after {SOON:?}\nstderr:\n{}",
                self.stderr()
            );
        };
        st.code().unwrap_or_else(|| {
            panic!(
                "{what}: keyfill died of signal {:?}\nstderr:\n{}",
                st.signal(),
                self.stderr()
            )
        })
    }

    /// Waits until `f(self)` holds; panics with `what` and stderr if it does
    /// not within [`SOON`], or keyfill ends first.
    fn wait_for(&mut self, what: &str, mut f: impl FnMut(&Keyfill) -> bool) {
        let end = Instant::now() + SOON;
        loop {
            if f(self) {
                return;
            }
            if let Some(st) = self.try_status() {
                if f(self) {
                    return;
                }
                panic!(
                    "keyfill ended ({st}) before: {what}\nstderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < end,
                "timed out after {SOON:?} waiting for: {what}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the `n`th render line (1-based) and returns it.
    fn wait_render(&mut self, n: usize) -> String {
        self.wait_for(&format!("render line {n}"), |k| k.renders().len() >= n);
        self.renders()[n - 1].clone()
    }
}

impl Drop for Keyfill {
    fn drop(&mut self) {
        // The group outlives keyfill while a child (or orphan) is in it.
        let _ = rustix::process::kill_process_group(pid_of(self.pid()), Signal::KILL);
        let _ = self.child.wait();
    }
}

/// Runs keyfill to completion (bounded) and returns its status and stderr.
fn run(dir: &Dir, args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut k = Keyfill::start(dir, args, env);
    let Some(st) = k.wait(SOON) else {
        panic!(
            "keyfill {args:?} still running after {SOON:?}\nstderr:\n{}",
            k.stderr()
        );
    };
    (st, k.stderr())
}

/// `exec [--watch] c.yaml -o out.yaml [extra…] -- cmd…`.
fn exec_args<'a>(watch: bool, extra: &[&'a str], cmd: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["exec"];
    if watch {
        a.push("--watch");
    }
    a.extend(["c.yaml", "-o", "out.yaml"]);
    a.extend_from_slice(extra);
    a.push("--");
    a.extend_from_slice(cmd);
    a
}

/// A script that traps `signals` (each logged to `log` by name), exits 42 on
/// TERM after logging it, writes `ready` once its traps are set, and idles.
fn trapper(dir: &Dir, signals: &[&str]) -> String {
    let mut body = String::new();
    for s in signals {
        body.push_str(&format!("trap 'echo {s} >> $D/log' {s}\n"));
    }
    body.push_str("trap 'echo TERM >> $D/log; exit 42' TERM\n");
    body.push_str(": > $D/ready\nwhile :; do sleep 0.02; done\n");
    dir.script("trapper.sh", &body)
}

/// Starts `exec --watch` on `config("v1")` with `trapper(signals)` and waits
/// until the script is ready and the first render reported.
fn supervised(dir: &Dir, signals: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Keyfill {
    dir.write("c.yaml", &config("v1"));
    let script = trapper(dir, signals);
    let mut k = Keyfill::start(dir, &exec_args(true, extra, &[&script]), env);
    k.wait_for("the command to be ready", |_| dir.exists("ready"));
    assert_eq!(k.wait_render(1), "keyfill: start: out.yaml written");
    k
}

/// Ends a [`supervised`] keyfill with SIGTERM: the script logs it and exits 42,
/// which keyfill passes on.
fn stop(k: &mut Keyfill) {
    k.signal(Signal::TERM);
    assert_eq!(k.code("stop with SIGTERM"), 42, "{}", k.stderr());
}

// ---------------------------------------------------------------------------
// Exit statuses
// ---------------------------------------------------------------------------

#[test]
fn exit_codes_pass_through_without_watch() {
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    let script = dir.script("exit.sh", "exit \"$1\"");
    for code in ["0", "1", "7", "255"] {
        let (st, err) = run(&dir, &exec_args(false, &[], &[&script, code]), &[]);
        assert_eq!(st.code(), Some(code.parse().expect("code")), "{err}");
    }
}

#[test]
fn exec_takes_secrets_key_no_secrets_block_and_strict_yaml_like_render() {
    let dir = Dir::new();
    let compose = "services:\n  db:\n    secrets: [db-password]\n    environment: [P=$<P>]\nsecrets:\n  db-password:\n    file: ./pw.txt\n";
    let script = dir.script("ok.sh", "exit 0");
    // keyfill's block under --secrets-key; Compose's own `secrets:` stays.
    dir.write("c.yaml", &format!("x-keyfill:\n  P: v\n{compose}"));
    let extra = ["--secrets-key", "x-keyfill"];
    let (st, err) = run(&dir, &exec_args(false, &extra, &[&script]), &[]);
    assert_eq!(st.code(), Some(0), "{err}");
    assert_eq!(dir.read("out.yaml"), compose.replace("$<P>", "v"));
    // Declarations only from --secrets with --no-secrets-block.
    dir.write("c.yaml", compose);
    dir.write("cat.yaml", "secrets:\n  P: w\n");
    let extra = ["--no-secrets-block", "--secrets", "cat.yaml"];
    let (st, err) = run(&dir, &exec_args(true, &extra, &[&script]), &[]);
    assert_eq!(st.code(), Some(0), "{err}");
    assert_eq!(dir.read("out.yaml"), compose.replace("$<P>", "w"));
    // Without either, the unused Compose block is refused and nothing runs.
    let marker = dir.script("marker.sh", ": > $D/ran");
    let (st, err) = run(&dir, &exec_args(false, &[], &[&marker]), &[]);
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains("--no-secrets-block"), "{err}");
    assert!(!dir.exists("ran"));
    // --strict-yaml refuses an under-indented flow continuation the default reads.
    dir.write("c.yaml", "a: [1,\n2]\n");
    let (st, err) = run(&dir, &exec_args(false, &["--strict-yaml"], &[&marker]), &[]);
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(!dir.exists("ran"));
    let (st, err) = run(&dir, &exec_args(false, &[], &[&script]), &[]);
    assert_eq!(st.code(), Some(0), "{err}");
    assert_eq!(dir.read("out.yaml"), "a: [1,\n2]\n");
}

#[test]
fn exit_codes_pass_through_with_watch() {
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    let script = dir.script("exit.sh", "exit \"$1\"");
    for code in ["0", "1", "7", "255"] {
        let (st, err) = run(&dir, &exec_args(true, &[], &[&script, code]), &[]);
        assert_eq!(st.code(), Some(code.parse().expect("code")), "{err}");
    }
}

#[test]
fn signal_deaths_become_128_plus_n() {
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    let script = dir.script("die.sh", "kill -s \"$1\" $$\nsleep 5\nexit 99");
    for (name, n) in [("KILL", 9), ("TERM", 15), ("USR1", 10)] {
        let (st, err) = run(&dir, &exec_args(true, &[], &[&script, name]), &[]);
        assert_eq!(st.code(), Some(128 + n), "SIG{name} with --watch: {err}");
        // Without --watch keyfill *is* the command: the signal death is ours.
        let (st, err) = run(&dir, &exec_args(false, &[], &[&script, name]), &[]);
        assert_eq!(st.signal(), Some(n), "SIG{name} after execve: {st} {err}");
    }
}

#[test]
fn unrunnable_commands_exit_126_and_127() {
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    dir.write("not-executable.sh", "#!/bin/sh\nexit 0\n");
    fs::create_dir(dir.join("a-directory")).expect("mkdir");
    let cases = [
        (dir.at("missing-command"), 127),
        ("keyfill-no-such-command-on-path".to_owned(), 127),
        (dir.at("not-executable.sh"), 126),
        (dir.at("a-directory"), 126),
    ];
    for watch in [false, true] {
        for (cmd, want) in &cases {
            let (st, err) = run(&dir, &exec_args(watch, &[], &[cmd]), &[]);
            assert_eq!(st.code(), Some(*want), "{cmd} (watch: {watch}): {err}");
            assert!(err.contains("cannot run"), "{cmd}: says why: {err}");
        }
    }
}

#[test]
fn json_log_exit_code_is_the_process_exit_code() {
    // The spawn failure was classed as a usage error: the log said 2 while the
    // process exited 127.
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    dir.write("not-executable.sh", "#!/bin/sh\nexit 0\n");
    for watch in [false, true] {
        for (cmd, want) in [
            (dir.at("missing-command"), 127),
            (dir.at("not-executable.sh"), 126),
        ] {
            let mut args = vec!["--log-format", "json"];
            args.extend(exec_args(watch, &[], &[&cmd]));
            let (st, err) = run(&dir, &args, &[]);
            assert_eq!(st.code(), Some(want), "{cmd} (watch: {watch}): {err}");
            let logged: Vec<i64> = err
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["level"] == "error")
                .filter_map(|v| v["exit_code"].as_i64())
                .collect();
            assert_eq!(logged, [i64::from(want)], "{cmd} (watch: {watch}): {err}");
        }
    }
}

// ---------------------------------------------------------------------------
// execve: same PID, argv verbatim, clean signal state
// ---------------------------------------------------------------------------

/// Arguments a shell would have changed: spaces, globs, variables, command
/// substitution, separators, an empty one, and ones that look like options.
const TRICKY_ARGS: [&str; 10] = [
    "a b", "*", "$HOME", "$(id)", "x;y|z", "", "--", "-o", "--watch", "'q'\"",
];

#[test]
fn execve_keeps_the_pid_and_argv_verbatim() {
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    // Files a `*` would expand to if a shell were involved.
    dir.write("glob-bait-1", "");
    let script = dir.script(
        "argv.sh",
        "echo $$ > $D/pid\necho $PPID > $D/ppid\ncat /proc/$$/cmdline > $D/cmdline\nexit 3",
    );
    let mut cmd = vec![script.as_str()];
    cmd.extend(TRICKY_ARGS);
    let mut expected: Vec<String> = vec!["/bin/sh".into(), script.clone()];
    expected.extend(TRICKY_ARGS.iter().map(|s| (*s).to_owned()));

    let mut k = Keyfill::start(&dir, &exec_args(false, &[], &cmd), &[]);
    assert_eq!(k.code("execve"), 3, "{}", k.stderr());
    assert_eq!(
        dir.read("pid").trim(),
        k.pid().to_string(),
        "the command must run as keyfill's own process (execve)"
    );
    let argv = |raw: String| -> Vec<String> {
        raw.strip_suffix('\0')
            .unwrap_or(&raw)
            .split('\0')
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(argv(dir.read("cmdline")), expected, "argv after execve");
    assert!(dir.exists("out.yaml"), "rendered before the command ran");

    // Supervised: a child of keyfill, with the same argv.
    let mut k = Keyfill::start(&dir, &exec_args(true, &[], &cmd), &[]);
    assert_eq!(k.code("supervised"), 3, "{}", k.stderr());
    assert_eq!(
        dir.read("ppid").trim(),
        k.pid().to_string(),
        "child of keyfill"
    );
    assert_ne!(dir.read("pid").trim(), k.pid().to_string());
    assert_eq!(argv(dir.read("cmdline")), expected, "argv when supervised");
}

/// Parses a hexadecimal signal mask line (`SigBlk:\t0000…`) of `/proc/PID/status`.
fn mask(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(line.trim(), 16).expect("hex mask")
}

#[test]
fn command_starts_with_default_signal_dispositions() {
    // A signal ignored or blocked at exec stays so in the command: an app
    // started with SIGTERM or SIGPIPE ignored (a classic entrypoint bug)
    // cannot be stopped or misbehaves on closed pipes.
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    let script = dir.script(
        "sigs.sh",
        // Builtins only: a forking `cat` could read the shell's mask while
        // glibc's fork() briefly blocks every signal.
        "while IFS= read -r l; do echo \"$l\"; done < /proc/self/status > $D/status\n\
         : > $D/ready\nwhile :; do sleep 0.02; done",
    );
    for watch in [false, true] {
        let _ = fs::remove_file(dir.join("ready"));
        let mut k = Keyfill::start(&dir, &exec_args(watch, &[], &[&script]), &[]);
        k.wait_for("the command to start", |_| dir.exists("ready"));
        let status = dir.read("status");
        assert_eq!(mask(&status, "SigBlk:"), 0, "blocked (watch: {watch})");
        // Signals 32 and 33 are glibc's own, set aside by posix_spawn; the
        // standard signals 1–31 must all be at their defaults.
        assert_eq!(
            mask(&status, "SigIgn:") & 0x7fff_ffff,
            0,
            "ignored standard signals (watch: {watch}): {status}"
        );
        if watch {
            stop_plain(&mut k);
        } else {
            // keyfill's own handlers are gone with execve: TERM kills the command.
            k.signal(Signal::TERM);
            let st = k.wait(SOON).expect("ends on SIGTERM");
            assert_eq!(st.signal(), Some(15), "{st}");
        }
    }
}

/// Stops a supervised command that does not trap TERM: keyfill exits 143.
fn stop_plain(k: &mut Keyfill) {
    k.signal(Signal::TERM);
    assert_eq!(k.code("stop"), 143, "{}", k.stderr());
}

// ---------------------------------------------------------------------------
// A failed first render never starts the command
// ---------------------------------------------------------------------------

#[test]
fn failed_initial_render_never_starts_the_command() {
    let dir = Dir::new();
    let marker = dir.script("marker.sh", ": > $D/ran\nexit 0");
    let cases = [
        ("secrets:\n  A: x\nk: $<NOPE>\n", 3, "undeclared reference"),
        (
            "secrets:\n  A: { env: KF_TEST_SURELY_UNSET }\nk: $<A>\n",
            4,
            "unset env secret",
        ),
        (
            "secrets:\n  A: { file: missing.txt }\nk: $<A>\n",
            4,
            "missing file secret",
        ),
        ("k: [unclosed\n", 3, "YAML syntax"),
    ];
    for watch in [false, true] {
        for (cfg, want, what) in cases {
            dir.write("c.yaml", cfg);
            let (st, err) = run(&dir, &exec_args(watch, &[], &[&marker]), &[]);
            assert_eq!(st.code(), Some(want), "{what} (watch: {watch}): {err}");
            assert!(!dir.exists("ran"), "{what}: the command ran");
            assert!(!dir.exists("out.yaml"), "{what}: output written");
        }
    }
}

// ---------------------------------------------------------------------------
// Signal forwarding
// ---------------------------------------------------------------------------

#[test]
fn forwarded_signals_arrive_exactly_once() {
    let dir = Dir::new();
    let caught = [
        "HUP", "USR1", "USR2", "WINCH", "QUIT", "ALRM", "CONT", "TSTP", "INT",
    ];
    let mut k = supervised(&dir, &caught, &[], &[]);
    let sigs = [
        Signal::HUP,
        Signal::USR1,
        Signal::USR2,
        Signal::WINCH,
        Signal::QUIT,
        Signal::ALARM,
        Signal::CONT,
        Signal::TSTP,
        Signal::INT,
    ];
    for (i, (sig, name)) in sigs.iter().zip(caught).enumerate() {
        k.signal(*sig);
        k.wait_for(&format!("SIG{name} to reach the command"), |_| {
            dir.lines("log").len() > i
        });
        assert_eq!(dir.lines("log")[i], name, "log: {:?}", dir.lines("log"));
        assert!(k.running(), "keyfill must survive SIG{name}");
    }
    // TERM last: the command exits 42 and keyfill with it.
    stop(&mut k);
    let mut expected: Vec<&str> = caught.to_vec();
    expected.push("TERM");
    assert_eq!(dir.lines("log"), expected, "each signal exactly once");
}

#[test]
fn signal_group_reaches_the_whole_group_once() {
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    let grand = dir.script(
        "grand.sh",
        "trap 'echo grand USR1 >> $D/log' USR1\n\
         trap 'echo grand TERM >> $D/log; exit 0' TERM\n\
         echo $$ > $D/grand.pid\n\
         while :; do sleep 0.02; done",
    );
    let child = dir.script(
        "child.sh",
        &format!(
            "trap 'echo child USR1 >> $D/log' USR1\n\
             trap 'echo child TERM >> $D/log; wait; exit 0' TERM\n\
             echo $$ > $D/child.pid\n\
             '{grand}' &\n\
             while :; do sleep 0.02; done"
        ),
    );
    let mut k = Keyfill::start(&dir, &exec_args(true, &["--signal-group"], &[&child]), &[]);
    k.wait_for("child and grandchild to start", |_| {
        dir.pid("grand.pid").is_some() && dir.pid("child.pid").is_some()
    });
    let child_pid = dir.pid("child.pid").expect("pid");
    let grand_pid = dir.pid("grand.pid").expect("pid");
    let pgid = |pid: u32| {
        rustix::process::getpgid(Some(pid_of(pid)))
            .expect("getpgid")
            .as_raw_nonzero()
            .get()
    };
    assert_eq!(pgid(child_pid), i32::try_from(child_pid).expect("i32"));
    assert_eq!(pgid(grand_pid), pgid(child_pid));
    assert_ne!(pgid(child_pid), pgid(k.pid()));

    // To keyfill's whole group, as a terminal's ^C or a container runtime
    // might: only keyfill gets it, and forwards it to the command's group.
    rustix::process::kill_process_group(pid_of(k.pid()), Signal::USR1).expect("kill group");
    k.wait_for("USR1 in child and grandchild", |_| {
        dir.count("log", "child USR1") >= 1 && dir.count("log", "grand USR1") >= 1
    });
    k.signal(Signal::TERM);
    assert_eq!(k.code("stop"), 0, "{}", k.stderr());
    let mut log = dir.lines("log");
    log.sort();
    assert_eq!(
        log,
        ["child TERM", "child USR1", "grand TERM", "grand USR1"],
        "each process in the group gets each signal once"
    );
    assert!(!alive(grand_pid), "grandchild still running");

    // Without --signal-group the command stays in keyfill's group.
    let _ = fs::remove_file(dir.join("child.pid"));
    let plain = dir.script(
        "plain.sh",
        "echo $$ > $D/child.pid\nwhile :; do sleep 0.02; done",
    );
    let mut k = Keyfill::start(&dir, &exec_args(true, &[], &[&plain]), &[]);
    k.wait_for("command to start", |_| dir.pid("child.pid").is_some());
    let child_pid = dir.pid("child.pid").expect("pid");
    assert_eq!(pgid(child_pid), pgid(k.pid()));
    stop_plain(&mut k);
}

#[test]
fn kill_timeout_escalates_to_sigkill() {
    for (sig, name) in [(Signal::TERM, "TERM"), (Signal::INT, "INT")] {
        let dir = Dir::new();
        dir.write("c.yaml", &config("v1"));
        // Logs the signal and carries on.
        let script = dir.script(
            "stubborn.sh",
            "trap 'echo TERM >> $D/log' TERM\ntrap 'echo INT >> $D/log' INT\n\
             : > $D/ready\nwhile :; do sleep 0.02; done",
        );
        let mut k = Keyfill::start(
            &dir,
            &exec_args(true, &["--kill-timeout", "700ms"], &[&script]),
            &[],
        );
        k.wait_for("ready", |_| dir.exists("ready"));
        let child: u32 = dir.lines("pids")[0].parse().expect("pid");
        let t0 = Instant::now();
        k.signal(sig);
        let code = k.code(&format!("SIG{name} then SIGKILL"));
        let took = t0.elapsed();
        assert_eq!(code, 137, "killed by SIGKILL: {}", k.stderr());
        assert!(
            took >= Duration::from_millis(600),
            "SIGKILL came after {took:?}, before the 700ms kill timeout"
        );
        assert!(took < Duration::from_secs(8), "escalation took {took:?}");
        assert_eq!(dir.lines("log"), [name], "forwarded once, then killed");
        assert!(!alive(child), "the command must be dead");
    }
}

// ---------------------------------------------------------------------------
// Reload and restart
// ---------------------------------------------------------------------------

#[test]
fn reload_signal_once_per_real_change() {
    let dir = Dir::new();
    let mut k = supervised(&dir, &["HUP"], &["--min-reload-interval", "100ms"], &[]);

    // A real change, saved by rename: one render, one HUP.
    dir.save_by_rename("c.yaml", &config("v2"));
    assert_eq!(k.wait_render(2), "keyfill: input changed: out.yaml written");
    assert!(dir.read("out.yaml").contains("k: v2"));
    k.wait_for("one HUP", |_| dir.count("log", "HUP") == 1);

    // A touch and a rewrite with the same bytes render the same output:
    // reported as unchanged, and no signal.
    dir.touch("c.yaml");
    assert_eq!(
        k.wait_render(3),
        "keyfill: input changed: out.yaml unchanged"
    );
    dir.save_by_rename("c.yaml", &config("v2"));
    assert_eq!(
        k.wait_render(4),
        "keyfill: input changed: out.yaml unchanged"
    );
    std::thread::sleep(SETTLE);
    assert_eq!(dir.lines("log"), ["HUP"], "no reload for identical bytes");

    // A second real change: exactly one more.
    dir.save_by_rename("c.yaml", &config("v3"));
    assert_eq!(k.wait_render(5), "keyfill: input changed: out.yaml written");
    k.wait_for("second HUP", |_| dir.count("log", "HUP") == 2);
    std::thread::sleep(SETTLE);
    assert_eq!(k.renders().len(), 5, "no render of our own output");
    stop(&mut k);
    assert_eq!(dir.lines("log"), ["HUP", "HUP", "TERM"]);
}

#[test]
fn reload_signal_can_be_chosen() {
    let dir = Dir::new();
    let mut k = supervised(
        &dir,
        &["HUP", "USR2"],
        &["--reload-signal", "USR2", "--min-reload-interval", "100ms"],
        &[],
    );
    dir.save_by_rename("c.yaml", &config("v2"));
    k.wait_for("USR2", |_| dir.count("log", "USR2") == 1);
    std::thread::sleep(SETTLE);
    stop(&mut k);
    assert_eq!(dir.lines("log"), ["USR2", "TERM"]);
}

#[test]
fn reloads_are_rate_limited() {
    let dir = Dir::new();
    let interval = Duration::from_millis(1500);
    let mut k = supervised(&dir, &["HUP"], &["--min-reload-interval", "1500ms"], &[]);
    let mut changes = 1;
    dir.save_by_rename("c.yaml", &config("v2"));
    k.wait_for("first HUP", |_| dir.count("log", "HUP") == 1);
    let first = Instant::now();
    // Three more real changes in quick succession, each really written.
    for v in ["v3", "v4", "v5"] {
        changes += 1;
        dir.save_by_rename("c.yaml", &config(v));
        let line = k.wait_render(changes + 1);
        assert!(line.ends_with("out.yaml written"), "{line}");
    }
    assert_eq!(
        dir.count("log", "HUP"),
        1,
        "later changes wait for the interval (they took {:?})",
        first.elapsed()
    );
    let renders_done = first.elapsed();
    k.wait_for("the coalesced second HUP", |_| dir.count("log", "HUP") == 2);
    let second = first.elapsed();
    // Observed times lag the sends by up to the scripts' trap latency.
    assert!(
        second + Duration::from_millis(200) >= interval,
        "second reload {second:?} after the first, within the {interval:?} limit"
    );
    assert!(
        renders_done < second,
        "setup too slow to test coalescing: renders took {renders_done:?}"
    );
    // Every change was rendered before the second reload: nothing is due.
    std::thread::sleep(SETTLE);
    stop(&mut k);
    assert_eq!(
        dir.lines("log"),
        ["HUP", "HUP", "TERM"],
        "4 changes: one reload at once, one for the other 3 after the interval"
    );
}

/// The `start PID TOKEN` / `stop PID` lines a restarting script logged.
fn starts(dir: &Dir) -> Vec<String> {
    dir.lines("log")
        .into_iter()
        .filter(|l| l.starts_with("start "))
        .collect()
}

#[test]
fn restart_replaces_the_command_once_per_change() {
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    let script = dir.script(
        "restartable.sh",
        "echo \"start $$ $TOKEN\" >> $D/log\n\
         trap 'echo \"stop $$\" >> $D/log; exit 0' TERM\n\
         while :; do sleep 0.02; done",
    );
    let mut k = Keyfill::start(
        &dir,
        &exec_args(
            true,
            &["--restart", "--env", "--min-reload-interval", "100ms"],
            &[&script],
        ),
        &[],
    );
    k.wait_for("first start", |_| starts(&dir).len() == 1);
    let pid_in = |line: &str| line.split(' ').nth(1).expect("pid").to_owned();
    let p1 = pid_in(&starts(&dir)[0]);

    dir.save_by_rename("c.yaml", &config("v2"));
    k.wait_for("restart", |_| starts(&dir).len() == 2);
    let p2 = pid_in(&starts(&dir)[1]);
    assert_ne!(p1, p2, "a new process");

    // Same bytes: no restart.
    dir.touch("c.yaml");
    k.wait_for("unchanged render", |k| {
        k.renders().last().is_some_and(|l| l.ends_with("unchanged"))
    });
    std::thread::sleep(SETTLE);
    assert_eq!(starts(&dir).len(), 2, "no restart for identical bytes");

    dir.save_by_rename("c.yaml", &config("v3"));
    k.wait_for("second restart", |_| starts(&dir).len() == 3);
    let p3 = pid_in(&starts(&dir)[2]);
    std::thread::sleep(SETTLE);
    assert!(k.running(), "keyfill itself keeps running");
    k.signal(Signal::TERM);
    assert_eq!(k.code("stop"), 0, "{}", k.stderr());
    assert_eq!(
        dir.lines("log"),
        [
            format!("start {p1} v1"),
            format!("stop {p1}"),
            format!("start {p2} v2"),
            format!("stop {p2}"),
            format!("start {p3} v3"),
            format!("stop {p3}"),
        ],
        "one stop and one start per change; each start sees the new secret"
    );
}

#[test]
fn restart_kills_a_command_that_ignores_term() {
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    let script = dir.script(
        "stubborn.sh",
        "echo \"start $$\" >> $D/log\n\
         trap 'echo \"term $$\" >> $D/log' TERM\n\
         while :; do sleep 0.02; done",
    );
    let mut k = Keyfill::start(
        &dir,
        &exec_args(
            true,
            &[
                "--restart",
                "--kill-timeout",
                "300ms",
                "--min-reload-interval",
                "100ms",
            ],
            &[&script],
        ),
        &[],
    );
    k.wait_for("first start", |_| starts(&dir).len() == 1);
    let p1 = starts(&dir)[0].clone();
    dir.save_by_rename("c.yaml", &config("v2"));
    k.wait_for("restart after SIGKILL", |_| starts(&dir).len() == 2);
    let p1 = p1.trim_start_matches("start ").to_owned();
    assert!(!alive(p1.parse().expect("pid")), "old command killed");
    assert_eq!(
        dir.lines("log")[..2],
        [format!("start {p1}"), format!("term {p1}")]
    );
    // Stopping escalates too: 137.
    k.signal(Signal::TERM);
    assert_eq!(k.code("stop"), 137, "{}", k.stderr());
    assert_eq!(starts(&dir).len(), 2);
}

#[test]
fn failed_rerender_sends_nothing_and_keeps_the_output() {
    let dir = Dir::new();
    let mut k = supervised(&dir, &["HUP"], &["--min-reload-interval", "100ms"], &[]);
    let good = fs::read(dir.join("out.yaml")).expect("output");
    let mut n = 1;
    for (bad, what) in [
        ("secrets:\n  TOKEN: [v2\nk: $<TOKEN>\n", "bad YAML"),
        (
            "secrets:\n  TOKEN: { file: missing.txt }\nk: $<TOKEN>\n",
            "missing secret",
        ),
        (
            "secrets:\n  TOKEN: v2\nk: $<NOPE>\n",
            "undeclared reference",
        ),
    ] {
        dir.save_by_rename("c.yaml", bad);
        n += 1;
        assert_eq!(
            k.wait_render(n),
            "keyfill: input changed: render failed; out.yaml keeps its last good content",
            "{what}"
        );
        assert_eq!(
            fs::read(dir.join("out.yaml")).expect("output"),
            good,
            "{what}"
        );
    }
    std::thread::sleep(SETTLE);
    assert!(
        dir.read("log").is_empty(),
        "no signal: {:?}",
        dir.lines("log")
    );
    assert!(k.running());
    assert!(k.stderr().contains("error:"), "the errors are reported");

    // Fixed: one render, one reload.
    dir.save_by_rename("c.yaml", &config("v2"));
    assert_eq!(
        k.wait_render(n + 1),
        "keyfill: input changed: out.yaml written"
    );
    k.wait_for("HUP", |_| dir.count("log", "HUP") == 1);
    stop(&mut k);
    assert_eq!(dir.lines("log"), ["HUP", "TERM"]);
}

#[test]
fn refresh_with_unchanged_secrets_sends_nothing() {
    let dir = Dir::new();
    dir.write("secret.txt", "s1");
    dir.write("c.yaml", "secrets:\n  S: { file: secret.txt }\nk: $<S>\n");
    let script = trapper(&dir, &["HUP"]);
    let mut k = Keyfill::start(
        &dir,
        &exec_args(
            true,
            &["--refresh", "100ms", "--min-reload-interval", "100ms"],
            &[&script],
        ),
        &[],
    );
    k.wait_for("ready", |_| dir.exists("ready"));
    let refreshes = |k: &Keyfill, what: &str| {
        k.renders()
            .iter()
            // A refresh that found a new value names its locator, never the value.
            .filter(|l| {
                l.starts_with("keyfill: refresh") && l.ends_with(&format!(": out.yaml {what}"))
            })
            .count()
    };
    k.wait_for("five unchanged refreshes", |k| {
        refreshes(k, "unchanged") >= 5
    });
    assert!(dir.read("log").is_empty(), "reload on an unchanged refresh");

    // The secret rotates: exactly one reload, then quiet again.
    dir.write("secret.txt", "s2");
    k.wait_for("a refresh that writes", |k| refreshes(k, "written") == 1);
    k.wait_for("HUP", |_| dir.count("log", "HUP") == 1);
    assert!(
        k.renders()
            .iter()
            .any(|l| l.starts_with("keyfill: refresh (new values: file|")),
        "the render line names the secret whose value changed"
    );
    let now = refreshes(&k, "unchanged");
    k.wait_for("five more refreshes", |k| {
        refreshes(k, "unchanged") >= now + 5
    });
    assert_eq!(refreshes(&k, "written"), 1);
    stop(&mut k);
    assert_eq!(dir.lines("log"), ["HUP", "TERM"]);
}

#[test]
fn a_flapping_secret_causes_no_restart_storm() {
    let dir = Dir::new();
    dir.write("secret.txt", "a");
    dir.write("c.yaml", "secrets:\n  S: { file: secret.txt }\nk: $<S>\n");
    let script = dir.script(
        "restartable.sh",
        "echo \"start $$\" >> $D/log\n\
         trap 'echo \"stop $$\" >> $D/log; exit 0' TERM\n\
         while :; do sleep 0.02; done",
    );
    let mut k = Keyfill::start(
        &dir,
        &exec_args(
            true,
            &[
                "--restart",
                "--refresh",
                "50ms",
                "--min-reload-interval",
                "1s",
            ],
            &[&script],
        ),
        &[],
    );
    k.wait_for("first start", |_| starts(&dir).len() == 1);
    let t0 = Instant::now();
    let mut flips = 0;
    while t0.elapsed() < Duration::from_millis(2500) {
        flips += 1;
        dir.write("secret.txt", if flips % 2 == 0 { "a" } else { "b" });
        std::thread::sleep(Duration::from_millis(30));
    }
    let span = t0.elapsed();
    let written = k
        .renders()
        .iter()
        .filter(|l| l.ends_with("written"))
        .count();
    assert!(
        written >= 3,
        "the secret must really flap: {written} writes"
    );
    // One restart right away, then at most one per second.
    let allowed = 2 + usize::try_from(span.as_secs()).expect("secs");
    std::thread::sleep(SETTLE);
    let restarts = starts(&dir).len() - 1;
    assert!(
        (1..=allowed).contains(&restarts),
        "{restarts} restarts for {written} changed renders in {span:?} (at most {allowed})"
    );
    k.signal(Signal::TERM);
    assert_eq!(k.code("stop"), 0, "{}", k.stderr());
}

// ---------------------------------------------------------------------------
// PID 1
// ---------------------------------------------------------------------------

#[test]
fn orphans_are_reaped_as_pid_1() {
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("`unshare` (util-linux) is required for the PID 1 test and was not found");
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    // Five grandchildren outlive their parent (an `sh -c` that backgrounds
    // them and exits), so they are re-parented to PID 1: keyfill. Each
    // must be reaped when it ends, leaving no zombie.
    let script = dir.script(
        "pid1.sh",
        "R=$D/report\n\
         echo \"pid1 $(tr '\\0' ' ' < /proc/1/cmdline)\" >> $R\n\
         echo \"parent $(tr '\\0' ' ' < /proc/$PPID/cmdline)\" >> $R\n\
         for i in 1 2 3 4 5; do sh -c \"sleep 0.3 & echo \\$! >> $D/orphans\"; done\n\
         for p in $(cat $D/orphans); do\n\
           echo \"orphan ppid=$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$p/status)\" >> $R\n\
         done\n\
         n=0; left=x\n\
         while [ -n \"$left\" ] && [ $n -lt 200 ]; do\n\
           left=''\n\
           for p in $(cat $D/orphans); do [ -e /proc/$p ] && left=\"$left $p\"; done\n\
           n=$((n+1)); sleep 0.05\n\
         done\n\
         echo \"left=$left\" >> $R\n\
         for f in /proc/[0-9]*/stat; do\n\
           s=$(sed 's/^.*) //' $f 2>/dev/null | cut -d' ' -f1)\n\
           [ \"$s\" = Z ] && echo \"zombie $(cat $f)\" >> $R\n\
         done\n\
         echo done >> $R\n\
         exit 7",
    );
    let args = [
        "--fork",
        "--pid",
        "--mount-proc",
        BIN,
        "exec",
        "--watch",
        "c.yaml",
        "-o",
        "out.yaml",
        "--",
        &script,
    ];
    let mut k = Keyfill::start_program(&dir, unshare, &args, &[]);
    let code = k.code("unshare … keyfill exec --watch");
    let report = dir.lines("report");
    assert!(
        report.last().is_some_and(|l| l == "done"),
        "the script did not finish (exit {code}); report {report:?}\nstderr:\n{}",
        k.stderr()
    );
    assert!(
        report[0].starts_with(&format!("pid1 {BIN} exec")),
        "keyfill must be PID 1: {report:?}"
    );
    // As PID 1, keyfill starts itself again to supervise, and reaps.
    assert!(
        report[1].starts_with(&format!("parent {BIN} exec")),
        "the command's parent must be keyfill: {report:?}"
    );
    let orphans: Vec<&String> = report.iter().filter(|l| l.starts_with("orphan")).collect();
    assert_eq!(orphans.len(), 5, "{report:?}");
    assert!(
        orphans.iter().all(|l| *l == "orphan ppid=1"),
        "re-parented to keyfill: {report:?}"
    );
    assert!(
        report.contains(&"left=".to_owned()),
        "not reaped: {report:?}"
    );
    assert!(
        !report.iter().any(|l| l.starts_with("zombie")),
        "zombies: {report:?}"
    );
    assert_eq!(code, 7, "the command's code, as PID 1: {}", k.stderr());
}

/// As PID 1, the processes a render starts (here the `op` CLI, on every
/// `--refresh`) are waited for by the render, not taken by the reaper: no
/// render fails for a lost exit status.
#[test]
fn renders_that_run_programs_work_as_pid_1() {
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("`unshare` (util-linux) is required for the PID 1 test and was not found");
    let dir = Dir::new();
    let mut op = support::connect::FakeOp::install(&dir.join("bin"), "op-token");
    let vault = op.add_vault("Prod");
    op.add_item(
        &vault,
        support::connect::Item::new("Db", "LOGIN")
            .field(support::connect::Field::concealed("password", "pw-1")),
    );
    dir.write("c.yaml", "k: <<op|op://Prod/Db/password>>\n");
    let path = format!(
        "{}:{}",
        op.dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let sleeper = dir.script(
        "sleeper.sh",
        "n=0; while [ ! -e $D/stop ] && [ $n -lt 600 ]; do n=$((n+1)); sleep 0.05; done",
    );
    let args = [
        "--fork",
        "--pid",
        "--mount-proc",
        BIN,
        "exec",
        "--watch",
        "--refresh",
        "50ms",
        "c.yaml",
        "-o",
        "out.yaml",
        "--",
        &sleeper,
    ];
    let env = [
        ("PATH", path.as_str()),
        ("OP_SERVICE_ACCOUNT_TOKEN", "op-token"),
    ];
    let mut k = Keyfill::start_program(&dir, unshare, &args, &env);
    k.wait_for("thirty refreshes", |k| k.renders().len() >= 31);
    let renders = k.renders();
    // A lost status shows as a failed fetch, covered by the last good value.
    assert!(
        !k.stderr().contains("fetching failed"),
        "a render lost its `op`: {}",
        k.stderr()
    );
    assert!(
        renders[1..].iter().all(|l| l.ends_with(" unchanged")),
        "every refresh renders: {renders:#?}\nstderr:\n{}",
        k.stderr()
    );
    assert_eq!(dir.read("out.yaml"), "k: pw-1\n");
    assert!(op.calls().len() >= 31, "op ran on every render");
    dir.write("stop", "");
    assert_eq!(k.code("unshare … keyfill exec --watch"), 0);
}

// ---------------------------------------------------------------------------
// Environment: credentials, --env, leakage
// ---------------------------------------------------------------------------

const CREDENTIALS: [&str; 4] = [
    "VAULT_TOKEN",
    "VAULT_SECRET_ID",
    "OP_CONNECT_TOKEN",
    "OP_SERVICE_ACCOUNT_TOKEN",
];

fn env_dump(dir: &Dir) -> Vec<(String, String)> {
    let raw = fs::read(dir.join("environ")).expect("environ dump");
    raw.split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let e = String::from_utf8_lossy(e);
            let (k, v) = e.split_once('=').unwrap_or((&e, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn credentials_are_removed_unless_passed() {
    let dir = Dir::new();
    dir.write("c.yaml", &config("v1"));
    let script = dir.script("env.sh", "cat /proc/$$/environ > $D/environ\nexit 0");
    let env: Vec<(&str, &str)> = CREDENTIALS
        .iter()
        .map(|c| (*c, "cred-value-1"))
        .chain([("KF_KEEP_ME", "kept")])
        .collect();
    for watch in [false, true] {
        for pass in [false, true] {
            let extra: &[&str] = if pass { &["--pass-credentials"] } else { &[] };
            let _ = fs::remove_file(dir.join("environ"));
            let (st, err) = run(&dir, &exec_args(watch, extra, &[&script]), &env);
            assert_eq!(st.code(), Some(0), "{err}");
            let got = env_dump(&dir);
            let has = |k: &str| got.iter().any(|(n, v)| n == k && v == "cred-value-1");
            for c in CREDENTIALS {
                assert_eq!(has(c), pass, "{c} (watch: {watch}, pass: {pass})");
            }
            assert!(got.contains(&("KF_KEEP_ME".into(), "kept".into())));
        }
    }
}

#[test]
fn env_exports_secrets_by_name_and_never_into_argv_or_stderr() {
    let dir = Dir::new();
    let (c_env, c_file, c_inline) = (canary(), canary(), canary());
    dir.write("pw.txt", &c_file);
    dir.write(
        "c.yaml",
        &format!(
            "secrets:\n  API_TOKEN: {{ env: KF_SRC }}\n  DB_PASSWORD: {{ file: pw.txt }}\n  \
             INLINE: {c_inline}\n  UNUSED: {c_inline}-unused\n\
             k: $<API_TOKEN>\np: $<DB_PASSWORD>\ni: $<INLINE>\n"
        ),
    );
    let script = dir.script(
        "show.sh",
        "cat /proc/$$/environ > $D/environ\n\
         cat /proc/$$/cmdline > $D/cmdline\n\
         cat /proc/$PPID/cmdline > $D/parent-cmdline\n\
         exit 0",
    );
    let canaries = [&c_env, &c_file, &c_inline];
    for watch in [false, true] {
        for log in [&["-v"][..], &["--log-format", "json"][..]] {
            let mut args = log.to_vec();
            args.extend(exec_args(watch, &["--env"], &[&script, "plain-arg"]));
            let (st, err) = run(&dir, &args, &[("KF_SRC", &c_env)]);
            assert_eq!(st.code(), Some(0), "{err}");
            let got = env_dump(&dir);
            let value = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            assert_eq!(value("API_TOKEN").as_ref(), Some(&c_env));
            assert_eq!(value("DB_PASSWORD").as_ref(), Some(&c_file));
            assert_eq!(value("INLINE").as_ref(), Some(&c_inline));
            assert_eq!(value("UNUSED"), Some(format!("{c_inline}-unused")));
            let out = dir.read("out.yaml");
            assert!(canaries.iter().all(|c| out.contains(c.as_str())), "{out}");
            let cmdline = dir.read("cmdline");
            assert!(cmdline.contains("plain-arg"), "{cmdline:?}");
            // After execve the parent is the test; supervised it is keyfill.
            let parent = dir.read("parent-cmdline");
            if watch {
                assert!(parent.contains("exec"), "keyfill's argv: {parent:?}");
            }
            for c in canaries {
                assert!(
                    !cmdline.contains(c.as_str()),
                    "canary in the command's argv"
                );
                assert!(!parent.contains(c.as_str()), "canary in keyfill's argv");
                assert!(!err.contains(c.as_str()), "canary on stderr: {err}");
            }
        }
    }
}

#[test]
fn canaries_stay_off_stderr_and_argv_across_rerenders() {
    let dir = Dir::new();
    let c = canary();
    let cfg = |v: &str| {
        format!("secrets:\n  TOKEN: {v}\n  ENVD: {{ env: KF_SRC }}\nk: $<TOKEN>\ne: $<ENVD>\n")
    };
    dir.write("c.yaml", &cfg(&format!("{c}-1")));
    let script = trapper(&dir, &["HUP"]);
    let mut k = Keyfill::start(
        &dir,
        &[
            "-v",
            "exec",
            "--watch",
            "c.yaml",
            "-o",
            "out.yaml",
            "--env",
            "--min-reload-interval",
            "100ms",
            "--",
            &script,
        ],
        &[("KF_SRC", &c)],
    );
    k.wait_for("ready", |_| dir.exists("ready"));
    // A change, a broken file quoting the canary, a type error, a fix.
    dir.save_by_rename("c.yaml", &cfg(&format!("{c}-2")));
    k.wait_render(2);
    dir.save_by_rename(
        "c.yaml",
        &format!("secrets:\n  TOKEN: \"{c}-3\nk: $<TOKEN>\n"),
    );
    k.wait_render(3);
    dir.save_by_rename(
        "c.yaml",
        &format!("secrets:\n  TOKEN: {{ value: [{c}] }}\nk: $<TOKEN>\n"),
    );
    k.wait_render(4);
    dir.save_by_rename("c.yaml", &cfg(&format!("{c}-5")));
    k.wait_render(5);
    let keyfill_argv = fs::read(format!("/proc/{}/cmdline", k.pid())).expect("cmdline");
    assert!(!String::from_utf8_lossy(&keyfill_argv).contains(&c));
    let child: u32 = dir.lines("pids")[0].parse().expect("pid");
    let child_argv = fs::read(format!("/proc/{child}/cmdline")).expect("cmdline");
    assert!(!String::from_utf8_lossy(&child_argv).contains(&c));
    stop(&mut k);
    let err = k.stderr();
    assert!(
        err.contains("error:"),
        "the broken renders are reported: {err}"
    );
    assert!(!err.contains(&c), "canary on stderr:\n{err}");
    assert!(dir.read("out.yaml").contains(&format!("{c}-5")));
}

// ---------------------------------------------------------------------------
// Found in review (each failed before its fix)
// ---------------------------------------------------------------------------

/// A SIGHUP (or SIGTERM/SIGINT) that arrives while a re-render writes the
/// output is forwarded; it must not kill the supervisor (which would orphan
/// the command), as it ends a plain `render`.
#[test]
fn hup_during_a_rerender_is_forwarded_not_fatal() {
    let dir = Dir::new();
    // A larger output makes the write window a few milliseconds long.
    let big = |v: &str| {
        let mut s = config(v);
        for i in 0..2000 {
            s.push_str(&format!("item_{i}: \"padding text for a larger output\"\n"));
        }
        s
    };
    dir.write("c.yaml", &big("v0"));
    let script = trapper(&dir, &["HUP"]);
    let mut k = Keyfill::start(
        &dir,
        &exec_args(true, &["--min-reload-interval", "10ms"], &[&script]),
        &[],
    );
    k.wait_for("ready", |_| dir.exists("ready"));
    k.wait_render(1);
    let child: u32 = dir.lines("pids")[0].parse().expect("pid");
    let pid = pid_of(k.pid());
    // HUPs back to back (as `kubectl`-driven reloads or a log rotator might
    // send them) while the input changes ten times.
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop_flag.clone();
    let sender = std::thread::spawn(move || {
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            if rustix::process::kill_process(pid, Signal::HUP).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let mut alive_after = 0;
    for i in 1..=10 {
        dir.save_by_rename("c.yaml", &big(&format!("v{i}")));
        let done = poll_until(SOON, || k.renders().len() > i || k.try_status().is_some());
        if !done || k.try_status().is_some() {
            break;
        }
        alive_after = i;
    }
    stop_flag.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = sender.join();
    let died = k.try_status();
    let orphan = alive(child);
    assert!(
        died.is_none(),
        "keyfill died ({:?}, signal {:?}) after {alive_after} of 10 re-renders under \
         SIGHUPs; the command was left running: {orphan}\nstderr:\n{}",
        died,
        died.and_then(|d| d.signal()),
        k.stderr()
    );
    stop(&mut k);
}

/// `--env` exports every declared secret, used or not, from any provider.
#[test]
fn env_exports_unused_provider_secrets() {
    let dir = Dir::new();
    dir.write("f.txt", "from-file");
    dir.write(
        "c.yaml",
        "secrets:\n  USED: used\n  UNUSED_INLINE: inline\n  \
         UNUSED_ENV: { env: KF_UNUSED }\n  UNUSED_FILE: { file: f.txt }\nk: $<USED>\n",
    );
    let script = dir.script("env.sh", "cat /proc/$$/environ > $D/environ\nexit 0");
    for watch in [false, true] {
        let _ = fs::remove_file(dir.join("environ"));
        let (st, err) = run(
            &dir,
            &exec_args(watch, &["--env"], &[&script]),
            &[("KF_UNUSED", "from-env")],
        );
        assert_eq!(
            st.code(),
            Some(0),
            "unused env/file secrets under --env (watch: {watch}):\n{err}"
        );
        let got = env_dump(&dir);
        for (k, v) in [
            ("USED", "used"),
            ("UNUSED_INLINE", "inline"),
            ("UNUSED_ENV", "from-env"),
            ("UNUSED_FILE", "from-file"),
        ] {
            assert!(got.contains(&(k.into(), v.into())), "{k} not exported");
        }
    }
}

/// Refresh ticks that arrive during a slow render coalesce, and the command's
/// exit is acted on at once, however slow the secret manager.
#[test]
fn command_exit_is_noticed_while_refreshes_are_slow() {
    let env = support::openbao::VaultEnv::with_delay(Duration::from_millis(500));
    let p = support::unique("exec-slow");
    support::openbao::bao()
        .api()
        .kv2_put("secret", &p, serde_json::json!({ "k": "slow-value" }));
    let dir = Dir::new();
    dir.write(
        "c.yaml",
        &format!("secrets:\n  S: <<vault|secret/data/{p}/k>>\nk: $<S>\n"),
    );
    let script = dir.script(
        "quits.sh",
        ": > $D/ready\nwhile [ ! -e $D/quit ]; do sleep 0.02; done\nexit 5",
    );
    let vars = env.vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut k = Keyfill::start(
        &dir,
        &exec_args(true, &["--refresh", "50ms"], &[&script]),
        &vars,
    );
    k.wait_for("ready", |_| dir.exists("ready"));
    // Let a few slow refreshes happen (each ≥ 500 ms, ticks every 50 ms: ten
    // more ticks queue up during each).
    k.wait_for("five refreshes", |k| k.renders().len() >= 6);
    dir.write("quit", "");
    let exited = k.wait(Duration::from_secs(8));
    assert!(
        exited.is_some(),
        "the command exited (5) but keyfill was still running 8 s later, \
         rendering queued refresh ticks ({} renders so far)",
        k.renders().len()
    );
    assert_eq!(exited.and_then(|s| s.code()), Some(5));
}

/// While a re-render waits on a secret manager, signals are still forwarded
/// and the kill timeout still runs (renders have their own thread).
#[test]
fn signals_are_forwarded_while_a_refresh_stalls() {
    let env = support::openbao::VaultEnv::new();
    let p = support::unique("exec-stall");
    support::openbao::bao()
        .api()
        .kv2_put("secret", &p, serde_json::json!({ "k": "v" }));
    let dir = Dir::new();
    dir.write(
        "c.yaml",
        &format!("secrets:\n  S: <<vault|secret/data/{p}/k>>\nk: $<S>\n"),
    );
    let script = trapper(&dir, &["USR1"]);
    let vars = env.vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut k = Keyfill::start(
        &dir,
        &exec_args(true, &["--refresh", "1s", "--timeout", "20s"], &[&script]),
        &vars,
    );
    k.wait_for("ready", |_| dir.exists("ready"));
    k.wait_render(1);
    let before = env.proxy.calls().len();
    env.proxy.inject(
        "/v1/",
        1000,
        support::proxy::Fault::Stall(Duration::from_secs(30)),
    );
    // The next refresh is now stuck on the secret manager.
    k.wait_for("a refresh request to stall", |_| {
        env.proxy.calls().len() > before
    });
    let t0 = Instant::now();
    k.signal(Signal::USR1);
    let arrived = poll_until(Duration::from_secs(3), || dir.count("log", "USR1") == 1);
    assert!(
        arrived,
        "SIGUSR1 not forwarded within 3 s while a refresh waits on the secret manager"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
}

// ---------------------------------------------------------------------------
// Bounds: values an environment cannot hold, a supervisor killed outright
// ---------------------------------------------------------------------------

#[test]
fn exec_env_nul_is_refused_before_writing_or_running() {
    let dir = Dir::new();
    let c = canary();
    // `\0` in a double-quoted YAML scalar is a NUL; the secret is unused, and
    // --env exports it all the same.
    dir.write(
        "c.yaml",
        &format!("secrets:\n  OK: fine\n  BAD: \"{c}\\0tail\"\nk: $<OK>\n"),
    );
    let script = dir.script("ran.sh", ": > $D/ran\nexit 0");
    for watch in [false, true] {
        let (st, err) = run(&dir, &exec_args(watch, &["--env"], &[&script]), &[]);
        assert_eq!(st.code(), Some(3), "watch: {watch}: {err}");
        assert!(
            err.contains(
                "error: secret `BAD` contains a NUL character, which an environment variable cannot hold"
            ),
            "{err}"
        );
        assert!(!err.contains(&c), "the value stays off stderr: {err}");
        assert!(!dir.exists("out.yaml"), "nothing written (watch: {watch})");
        assert!(!dir.exists("ran"), "nothing run (watch: {watch})");
    }
    // Without --env the value is only spliced into the output: no refusal.
    let (st, err) = run(&dir, &exec_args(false, &[], &[&script]), &[]);
    assert_eq!(st.code(), Some(0), "{err}");
    assert!(dir.exists("ran"));
}

#[test]
fn supervised_command_dies_with_a_sigkilled_supervisor() {
    for extra in [&[][..], &["--signal-group"][..]] {
        let dir = Dir::new();
        let mut k = supervised(&dir, &[], extra, &[]);
        let lines = dir.lines("pids");
        let cmd: u32 = lines[0].trim().parse().expect("command pid");
        // The command is keyfill's own child (it became it by exec).
        let stat = fs::read_to_string(format!("/proc/{cmd}/stat")).expect("command stat");
        let ppid: u32 = stat[stat.rfind(") ").expect("stat") + 2..]
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("ppid");
        assert_eq!(ppid, k.pid(), "{extra:?}");
        // SIGKILL only keyfill, not its group: nothing can be forwarded.
        k.signal(Signal::KILL);
        let st = k.wait(SOON).expect("keyfill ends on SIGKILL");
        assert_eq!(st.signal(), Some(9));
        assert!(
            poll_until(SOON, || !alive(cmd)),
            "the command outlived its supervisor ({extra:?})"
        );
    }
}

#[test]
fn supervised_command_is_not_run_when_its_supervisor_is_already_gone() {
    // The keyfill that becomes the command checks, after asking for the
    // parent-death signal, that its parent is still the supervisor that
    // started it; a supervisor that died first could not have sent it.
    let dir = Dir::new();
    let script = dir.script("ran.sh", ": > $D/ran\nexit 0");
    let not_our_parent = (std::process::id() + 1).to_string();
    let st = Command::new(BIN)
        .args([
            "__keyfill-supervised-command",
            &not_our_parent,
            "text",
            &script,
        ])
        .status()
        .expect("run keyfill");
    assert_eq!(st.code(), Some(137));
    assert!(!dir.exists("ran"));
    // With its real parent it becomes the command.
    let me = std::process::id().to_string();
    let st = Command::new(BIN)
        .args(["__keyfill-supervised-command", &me, "text", &script])
        .status()
        .expect("run keyfill");
    assert_eq!(st.code(), Some(0));
    assert!(dir.exists("ran"));
}
