//! Shared by the provider tests: real servers on loopback, a counting and
//! fault-injecting proxy, and a runner for the keyfill binary.
#![allow(dead_code)] // Each test binary uses its own subset.

pub(crate) mod moto;
pub(crate) mod proxy;

use std::path::Path;
use std::process::{Command, Output, Stdio};

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
const CLEARED: [&str; 8] = [
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// Runs keyfill in `dir` with `args` and `env` added to a cleaned environment.
pub(crate) fn keyfill(dir: &Path, args: &[&str], env: &[(String, String)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyfill"));
    cmd.current_dir(dir).args(args).stdin(Stdio::null());
    for v in CLEARED {
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
