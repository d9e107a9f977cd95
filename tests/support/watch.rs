//! A `keyfill watch` process under test: started in a folder with a cleaned
//! environment, its stderr collected line by line on a thread, signalled with
//! kill(2), and measured through `/proc` (open descriptors, threads, CPU time).
//! Every wait polls against a deadline; the process is killed when dropped.
//! Also the file changes a watcher must follow: editor saves and a Kubernetes
//! ConfigMap volume ([`ConfigMap`]), updated as the kubelet updates it.

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) use rustix::process::Signal;

/// How often the waits look again.
const POLL: Duration = Duration::from_millis(2);

/// Whether `line` is the one line a render prints: `keyfill: WHY: OUT written`,
/// `… unchanged`, `… render failed; OUT keeps its last good content`, or
/// (no output yet) `… render failed; nothing written`.
pub(crate) fn is_render_line(line: &str) -> bool {
    line.starts_with("keyfill: ")
        && (line.ends_with(" written")
            || line.ends_with(" unchanged")
            || line.ends_with(" keeps its last good content"))
}

/// A running `keyfill watch`.
pub(crate) struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Watch {
    /// Starts `keyfill ARGS` (ARGS begins with `watch`) in `dir`, with `env`
    /// added to an environment cleaned as [`super::keyfill`] cleans it.
    pub(crate) fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Watch {
        let mut cmd = super::command();
        cmd.current_dir(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd.env("NO_COLOR", "1");
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawn keyfill watch");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                sink.lock().expect("lines lock").push(line);
            }
        });
        Watch {
            child,
            lines,
            reader: Some(reader),
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines lock").clone()
    }

    /// Stderr so far, for failure messages.
    pub(crate) fn stderr(&self) -> String {
        self.lines().join("\n")
    }

    /// The render lines so far.
    pub(crate) fn render_lines(&self) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| is_render_line(l))
            .collect()
    }

    /// How many renders have reported so far.
    pub(crate) fn renders(&self) -> usize {
        self.render_lines().len()
    }

    /// Waits until `done` holds for the stderr lines; panics with `what` and the
    /// stderr when `timeout` passes or the process ends first.
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[String]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.lines()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // The reader may still hold the last lines.
                std::thread::sleep(Duration::from_millis(50));
                if done(&self.lines()) {
                    return;
                }
                panic!(
                    "keyfill watch ended ({status}) before: {what}\nstderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for: {what}\nstderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until at least `n` renders have reported.
    pub(crate) fn wait_renders(&mut self, n: usize, timeout: Duration) {
        self.wait_until(&format!("{n} render line(s)"), timeout, |lines| {
            lines.iter().filter(|l| is_render_line(l)).count() >= n
        });
    }

    /// Waits for a render line ending with `suffix` after the first `after` render
    /// lines, and returns it.
    pub(crate) fn wait_render_ending(
        &mut self,
        after: usize,
        suffix: &str,
        timeout: Duration,
    ) -> String {
        let find = |lines: &[String]| {
            lines
                .iter()
                .filter(|l| is_render_line(l))
                .skip(after)
                .find(|l| l.ends_with(suffix))
                .cloned()
        };
        self.wait_until(
            &format!("a render line ending with `{suffix}` after render {after}"),
            timeout,
            |lines| find(lines).is_some(),
        );
        find(&self.lines()).expect("just seen")
    }

    /// Sends `sig` to the process.
    pub(crate) fn signal(&self, sig: Signal) {
        let pid =
            rustix::process::Pid::from_raw(i32::try_from(self.pid()).expect("pid fits an i32"))
                .expect("non-zero pid");
        rustix::process::kill_process(pid, sig).expect("kill(2)");
    }

    /// Whether the process is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its exit status, once it ends within `timeout`; `None` if it does not.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.drain_stderr();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits (briefly) for the reader to take the last stderr lines of a process
    /// that ended: the exit is seen before the reader reaches the pipe's end.
    fn drain_stderr(&self) {
        let until = Instant::now() + Duration::from_secs(2);
        while self.reader.as_ref().is_some_and(|r| !r.is_finished()) && Instant::now() < until {
            std::thread::sleep(POLL);
        }
    }

    /// Open file descriptors (`/proc/PID/fd`).
    pub(crate) fn fds(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("read /proc/PID/fd")
            .count()
    }

    /// Threads (`/proc/PID/task`).
    pub(crate) fn threads(&self) -> usize {
        fs::read_dir(format!("/proc/{}/task", self.pid()))
            .expect("read /proc/PID/task")
            .count()
    }

    /// CPU time used so far, user + system, in clock ticks (`/proc/PID/stat`
    /// fields 14 and 15).
    pub(crate) fn cpu_ticks(&self) -> u64 {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("read stat");
        // The command name (field 2) is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3, so field n is fields[n - 3].
        let utime: u64 = fields[11].parse().expect("utime");
        let stime: u64 = fields[12].parse().expect("stime");
        utime + stime
    }

    /// Voluntary + involuntary context switches of all its threads: how often
    /// it woke up.
    pub(crate) fn context_switches(&self) -> u64 {
        let mut total = 0;
        let tasks = fs::read_dir(format!("/proc/{}/task", self.pid())).expect("read task");
        for t in tasks.flatten() {
            let Ok(status) = fs::read_to_string(t.path().join("status")) else {
                continue;
            };
            for line in status.lines() {
                if let Some(v) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    total += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
        total
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Polls `path` until it holds exactly `expected`; returns how long that took,
/// or what the file held at the deadline.
pub(crate) fn wait_for_file(
    path: &Path,
    expected: &[u8],
    timeout: Duration,
    poll: Duration,
) -> Result<Duration, Option<Vec<u8>>> {
    let start = Instant::now();
    loop {
        let now = fs::read(path).ok();
        if now.as_deref() == Some(expected) {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= timeout {
            return Err(now);
        }
        std::thread::sleep(poll);
    }
}

/// Saves `path` as many editors do: the new content goes to a temporary file in
/// the same folder, which is renamed over the old one (a new inode each time).
pub(crate) fn save_by_rename(path: &Path, content: &str) {
    let tmp = path.with_file_name(format!(
        "{}.kf-save-tmp",
        path.file_name().expect("file name").to_string_lossy()
    ));
    fs::write(&tmp, content).expect("write the temporary file");
    fs::rename(&tmp, path).expect("rename over the input");
}

/// What identifies a file's version without reading it: inode, mtime and
/// ctime, in nanoseconds.
pub(crate) fn identity(path: &Path) -> (u64, i64, i64, i64, i64) {
    let m = fs::metadata(path).expect("stat");
    (
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

/// Names of `keyfill`'s temporary files (`.keyfill-*`) left in `dir`.
pub(crate) fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".keyfill-"))
        .collect()
}

/// A ConfigMap volume as the kubelet writes it: the data in a timestamped
/// folder, `..data` pointing at it, and each top-level name a symlink through
/// `..data`.
///
/// An update writes a new timestamped folder, points a new `..data_tmp` link at
/// it, renames that over `..data` (atomic), and removes the old folder.
pub(crate) struct ConfigMap {
    root: PathBuf,
    generation: usize,
}

impl ConfigMap {
    pub(crate) fn new(root: &Path, files: &[(&str, &str)]) -> ConfigMap {
        fs::create_dir(root).expect("mkdir configmap");
        let mut cm = ConfigMap {
            root: root.to_owned(),
            generation: 0,
        };
        let first = cm.write_generation(files);
        std::os::unix::fs::symlink(&first, root.join("..data")).expect("..data");
        // One link per top-level name, as the kubelet makes them: a key
        // mounted at `conf/app.yaml` is reached through `conf -> ..data/conf`.
        let mut top: Vec<&str> = files
            .iter()
            .map(|(name, _)| name.split('/').next().expect("a name"))
            .collect();
        top.dedup();
        for name in top {
            std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name))
                .expect("key symlink");
        }
        cm
    }

    fn write_generation(&mut self, files: &[(&str, &str)]) -> String {
        self.generation += 1;
        let name = format!(
            "..2026_01_02_03_04_05.{:09}",
            self.generation * 111_111_111 % 1_000_000_000
        );
        fs::create_dir(self.root.join(&name)).expect("mkdir generation");
        for (file, content) in files {
            let path = self.root.join(&name).join(file);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir key folder");
            fs::write(path, content).expect("write key");
        }
        name
    }

    pub(crate) fn update(&mut self, files: &[(&str, &str)]) {
        let old = fs::read_link(self.root.join("..data")).expect("read ..data");
        let new = self.write_generation(files);
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(&new, &tmp).expect("..data_tmp");
        fs::rename(&tmp, self.root.join("..data")).expect("swap ..data");
        fs::remove_dir_all(self.root.join(old)).expect("remove old generation");
    }
}
