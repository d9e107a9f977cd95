//! Shared by the provider tests: real servers on loopback, a counting and
//! fault-injecting proxy, a runner for the keyfill binary, and a harness for a
//! running `keyfill watch` (`watch.rs`).
#![allow(dead_code)] // Each test binary uses its own subset.

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

/// Variables removed before every run, so the host's settings cannot leak in.
const CLEARED: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "VAULT_CAPATH",
    "VAULT_SKIP_VERIFY",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "BAO_ADDR",
    "BAO_TOKEN",
    "BAO_NAMESPACE",
    "OP_CONNECT_HOST",
    "OP_CONNECT_TOKEN",
    "OP_SERVICE_ACCOUNT_TOKEN",
    "OP_ACCOUNT",
    "OP_SESSION",
];

/// Runs keyfill in `dir` with `args` and `env` added to a cleaned environment.
pub(crate) fn keyfill(dir: &Path, args: &[&str], env: &[(String, String)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyfill"));
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    for v in CLEARED.iter().copied() {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    cmd.output().expect("run keyfill").into()
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
