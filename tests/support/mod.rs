//! Shared by every test module: the one way to start keyfill (a scrubbed
//! environment: [`command`], [`keyfill`], the [`Test`] builder), the canary
//! helpers, real servers on loopback, a counting and fault-injecting proxy,
//! and a harness for a running `keyfill watch` (`watch.rs`).
#![allow(dead_code)] // The benches include this module too (`#[path]`), each using a subset.

pub(crate) mod connect;
pub(crate) mod moto;
pub(crate) mod openbao;
pub(crate) mod proxy;
pub(crate) mod tls;
pub(crate) mod watch;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use proxy::Proxy;

/// What one run of keyfill did.
#[derive(Debug)]
pub(crate) struct Run {
    /// Exit status (-1 when killed by a signal).
    pub(crate) code: i32,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The variables that point the AWS SDK at `endpoint` with static test
/// credentials, and keep it away from the machine's own AWS configuration.
pub(crate) fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_CONFIG_FILE", "/nonexistent/keyfill-test/config"),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/keyfill-test/credentials",
        ),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Prefixes of the variables removed before every run, so the host's settings
/// cannot leak in: each provider's own (a provider whose variables have a new
/// prefix adds it here) and the proxies'.
pub(crate) const CLEARED_PREFIXES: &[&str] = &[
    "AWS_",
    "VAULT_",
    "BAO_",
    "OP_",
    "SOPS_",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

/// The variables of this process's environment that [`scrub`] removes.
pub(crate) fn cleared() -> Vec<String> {
    std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| CLEARED_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect()
}

/// The path of the keyfill binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_keyfill");

/// Removes the host's credential and proxy variables ([`CLEARED_PREFIXES`])
/// from `cmd`'s environment, so that no test reaches a real account or a real
/// proxy.
pub(crate) fn scrub(cmd: &mut Command) -> &mut Command {
    for v in cleared() {
        cmd.env_remove(v);
    }
    cmd
}

/// A command for the keyfill binary with a scrubbed environment: every test
/// that starts keyfill starts it from here (or from [`keyfill`] or [`Test`]).
pub(crate) fn command() -> Command {
    let mut cmd = Command::new(BIN);
    scrub(&mut cmd);
    cmd
}

/// Runs keyfill in `dir` with `args` and `env` added to a cleaned environment.
pub(crate) fn keyfill(dir: &Path, args: &[&str], env: &[(String, String)]) -> Run {
    let mut cmd = command();
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.output().expect("run keyfill").into()
}

/// Where nothing listens: port 1, below the ephemeral range. A port taken from
/// a listener bound to port 0 and then closed is not: another test's server can
/// be given it before keyfill connects, and the "refused" run reads a secret.
pub(crate) const NOWHERE: &str = "http://127.0.0.1:1";

#[test]
fn nowhere_is_below_the_ephemeral_port_range() {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("read the ephemeral port range");
    let low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the range's low end");
    let port: u16 = NOWHERE
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("NOWHERE's port");
    assert!(
        port < low,
        "port {port} may be handed to a test server ({range})"
    );
    let refused = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(refused.is_err(), "something listens on port {port}");
}

/// A value that cannot occur by chance in keyfill's output, new on every call.
pub(crate) fn canary() -> String {
    format!(
        "kfcanary{:016x}{:08x}",
        fastrand::u64(..),
        fastrand::u32(..)
    )
}

/// Asserts that `needle` (a canary) is on neither stream of `r`; `what` names
/// the case in the failure message.
pub(crate) fn assert_silent(r: &Run, needle: &str, what: &str) {
    assert!(
        !r.stderr.contains(needle),
        "{what}: `{needle}` on stderr:\n{}",
        r.stderr
    );
    assert!(
        !r.stdout.contains(needle),
        "{what}: `{needle}` on stdout:\n{}",
        r.stdout
    );
}

impl Run {
    /// Asserts the exit code, showing stderr when it differs.
    #[track_caller]
    pub(crate) fn code(&self, want: i32) -> &Run {
        assert_eq!(
            self.code, want,
            "exit code; stderr:\n{}\nstdout:\n{}",
            self.stderr, self.stdout
        );
        self
    }

    /// Asserts that stdout is exactly `want`.
    #[track_caller]
    pub(crate) fn stdout_is(&self, want: &str) -> &Run {
        assert_eq!(self.stdout, want, "stdout; stderr:\n{}", self.stderr);
        self
    }

    /// Asserts that stderr is exactly `want`.
    #[track_caller]
    pub(crate) fn stderr_is(&self, want: &str) -> &Run {
        assert_eq!(self.stderr, want, "stderr");
        self
    }

    /// Asserts that stderr holds `part`.
    #[track_caller]
    pub(crate) fn stderr_has(&self, part: &str) -> &Run {
        assert!(
            self.stderr.contains(part),
            "stderr lacks `{part}`:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts that `needle` is on neither stream (see [`assert_silent`]).
    #[track_caller]
    pub(crate) fn silent(&self, needle: &str) -> &Run {
        assert_silent(self, needle, "run");
        self
    }
}

/// One run of keyfill, built up: a temporary folder (its `tmp/` is keyfill's
/// `TMPDIR`, so every file keyfill might leave is inside it), files in it,
/// arguments, variables added to a scrubbed environment (`NO_COLOR=1` is
/// set), and stdin. [`Test::run`] can be called more than once.
pub(crate) struct Test {
    dir: tempfile::TempDir,
    args: Vec<std::ffi::OsString>,
    env: Vec<(String, String)>,
    removed: Vec<String>,
    stdin: Option<Vec<u8>>,
}

impl Test {
    /// A fresh folder, no arguments.
    pub(crate) fn new() -> Test {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("tmp")).expect("TMPDIR inside the temp dir");
        let tmp = dir.path().join("tmp").display().to_string();
        Test {
            dir,
            args: Vec::new(),
            env: vec![("TMPDIR".into(), tmp), ("NO_COLOR".into(), "1".into())],
            removed: Vec::new(),
            stdin: None,
        }
    }

    /// The folder keyfill runs in.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `config.yaml`.
    pub(crate) fn config(&mut self, text: &str) -> &mut Test {
        self.file("config.yaml", text)
    }

    /// Creates the folder `name` (and its parents).
    pub(crate) fn folder(&mut self, name: &str) -> &mut Test {
        std::fs::create_dir_all(self.path().join(name)).expect("create folder");
        self
    }

    /// Writes `name` (relative to the folder; parents are created).
    pub(crate) fn file(&mut self, name: &str, bytes: impl AsRef<[u8]>) -> &mut Test {
        let path = self.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent folder");
        }
        std::fs::write(path, bytes).expect("write test file");
        self
    }

    /// Replaces the arguments.
    pub(crate) fn args<S: AsRef<std::ffi::OsStr>>(
        &mut self,
        args: impl IntoIterator<Item = S>,
    ) -> &mut Test {
        self.args = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// Sets a variable (replacing an earlier value).
    pub(crate) fn env(&mut self, k: &str, v: &str) -> &mut Test {
        self.env.retain(|(n, _)| n != k);
        self.removed.retain(|n| n != k);
        self.env.push((k.to_owned(), v.to_owned()));
        self
    }

    /// Removes a variable the host might have set.
    pub(crate) fn env_remove(&mut self, k: &str) -> &mut Test {
        self.env.retain(|(n, _)| n != k);
        self.removed.push(k.to_owned());
        self
    }

    /// Feeds `bytes` on stdin (otherwise stdin is empty).
    pub(crate) fn stdin(&mut self, bytes: impl Into<Vec<u8>>) -> &mut Test {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs keyfill and waits for it.
    pub(crate) fn run(&self) -> Run {
        use std::io::Write as _;
        let mut cmd = command();
        cmd.current_dir(self.path())
            .args(&self.args)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in &self.removed {
            cmd.env_remove(k);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("spawn keyfill");
        if let Some(input) = &self.stdin {
            let mut sin = child.stdin.take().expect("stdin");
            // keyfill may stop reading early (an error): a broken pipe is fine.
            let _ = sin.write_all(input);
        }
        child.wait_with_output().expect("wait for keyfill").into()
    }

    /// The text of `name` in the folder; panics when it is missing.
    pub(crate) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path().join(name)).expect("read test file")
    }

    /// The permission bits of `name` in the folder.
    pub(crate) fn mode(&self, name: &str) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(self.path().join(name))
            .expect("metadata")
            .permissions()
            .mode()
            & 0o7777
    }

    /// The names in `folder` (relative to the test folder), sorted.
    pub(crate) fn names_in(&self, folder: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path().join(folder))
            .expect("read folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// A unique prefix for secret names, so tests can share one server.
pub(crate) fn unique(test: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{test}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A proxy in front of the shared moto server, and a folder for configs whose
/// `tmp/` subfolder is keyfill's `TMPDIR`, so that every file it might leave
/// behind is inside the folder.
pub(crate) struct AwsEnv {
    pub(crate) proxy: Proxy,
    pub(crate) dir: tempfile::TempDir,
}

impl AwsEnv {
    pub(crate) fn new() -> AwsEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("tmp")).expect("TMPDIR inside the temp dir");
        AwsEnv {
            proxy: Proxy::start(moto::moto().addr, Duration::ZERO),
            dir,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn vars(&self) -> Vec<(String, String)> {
        let mut v = aws_env(&self.proxy.url());
        v.push((
            "TMPDIR".into(),
            self.path().join("tmp").display().to_string(),
        ));
        v.push(("NO_COLOR".into(), "1".into()));
        v
    }

    /// Writes `config.yaml` and runs keyfill with `args` (the config path is
    /// appended) and `extra` variables.
    pub(crate) fn run_with(&self, args: &[&str], config: &str, extra: &[(&str, &str)]) -> Run {
        std::fs::write(self.path().join("config.yaml"), config).expect("write config");
        let mut all = args.to_vec();
        all.push("config.yaml");
        let mut vars = self.vars();
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        keyfill(self.path(), &all, &vars)
    }

    pub(crate) fn run(&self, args: &[&str], config: &str) -> Run {
        self.run_with(args, config, &[])
    }

    /// `keyfill render config.yaml` with `config`.
    pub(crate) fn render(&self, config: &str) -> Run {
        self.run(&["render"], config)
    }

    /// Like [`AwsEnv::run`], and how long keyfill took.
    pub(crate) fn timed(&self, args: &[&str], config: &str) -> (Run, Duration) {
        let start = Instant::now();
        let r = self.run(args, config);
        (r, start.elapsed())
    }

    /// The requests whose API target is exactly `target`.
    pub(crate) fn calls_to(&self, target: &str) -> Vec<proxy::Call> {
        self.proxy
            .calls()
            .into_iter()
            .filter(|c| c.target == target)
            .collect()
    }

    pub(crate) fn count(&self, target: &str) -> usize {
        self.calls_to(target).len()
    }
}

/// One HTTP/1.0 request (so the answer is never chunked and ends with the
/// connection); the status and body.
pub(crate) fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nhost: {addr}\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).ok()?;
    let end = all.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(&all[..end]).ok()?;
    let code = status.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, all[end + 4..].to_vec()))
}

/// The verification the suite runs under: local, or the full re-parse when CI
/// runs it again with `KEYFILL_VERIFY=full` (the binary reads the same variable).
pub(crate) fn verify_mode() -> keyfill::render::Verify {
    match std::env::var("KEYFILL_VERIFY").as_deref() {
        Ok("full") => keyfill::render::Verify::Full,
        _ => keyfill::render::Verify::Local,
    }
}
