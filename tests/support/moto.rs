//! A real `moto_server` (AWS emulator) on a free loopback port, shared by the
//! tests of one binary, plus seeding helpers that speak the AWS JSON protocol
//! directly (Secrets Manager, and any service through [`Moto::json`]), in the
//! default account or, through [`Moto::assume_role`], in a role's.
//!
//! The server runs under a small Python guard that stops it when this process's
//! end of a pipe closes, so it never outlives the tests, even though it is shared
//! through a static.

use super::request;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A running moto server.
pub(crate) struct Moto {
    /// Its address.
    pub(crate) addr: SocketAddr,
    _guard: Mutex<(Child, ChildStdin)>,
}

const GUARD: &str = r#"
import subprocess, sys
server = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    sys.stdin.read()
finally:
    server.terminate()
    try:
        server.wait(5)
    except subprocess.TimeoutExpired:
        server.kill()
"#;

/// The shared server, started on first use. Panics (failing the test loudly) when
/// `moto_server` cannot be started: these tests never skip.
pub(crate) fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(start)
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("address").port()
}

fn start() -> Moto {
    start_with(&[], false)
}

/// A server of its own that speaks HTTPS with the given certificate and key; it
/// stops when dropped.
pub(crate) fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Moto {
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    start_with(&["--ssl-cert", &cert, "--ssl-key", &key], true)
}

fn start_with(extra: &[&str], tls: bool) -> Moto {
    let port = free_port();
    let mut child = Command::new("python3")
        .args([
            "-c",
            GUARD,
            "python3",
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
        ])
        .arg(port.to_string())
        .args(extra)
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3 is needed to run moto_server");
    let stdin = child.stdin.take().expect("guard stdin");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("moto_server exited at start ({status}); install it with: pip install 'moto[server]'");
        }
        let up = if tls {
            // Listening is enough: the TLS server is checked by the test itself.
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        } else {
            request(addr, "GET", "/moto-api/data.json", &[], b"").is_some_and(|(s, _)| s == 200)
        };
        if up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer on {addr} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto {
        addr,
        _guard: Mutex::new((child, stdin)),
    }
}

impl Moto {
    /// The endpoint URL for clients that talk to moto directly.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls a Secrets Manager action in `region`; panics on an error status.
    pub(crate) fn call(&self, region: &str, action: &str, body: Value) -> Value {
        let (status, out) = self.try_call(region, action, body);
        assert_eq!(status, 200, "{action} failed: {out}");
        out
    }

    /// Calls a Secrets Manager action and returns the status and JSON body,
    /// errors included.
    pub(crate) fn try_call(&self, region: &str, action: &str, body: Value) -> (u16, Value) {
        self.try_json(region, "secretsmanager", "secretsmanager", action, body)
    }

    /// Calls an action of any service that speaks the AWS JSON protocol:
    /// `service` is its signing name (`ssm`, `kms`), `prefix` its target
    /// prefix (`AmazonSSM`, `TrentService`). Panics on an error status.
    pub(crate) fn json(
        &self,
        region: &str,
        (service, prefix): (&str, &str),
        action: &str,
        body: Value,
    ) -> Value {
        self.json_as("testing", region, (service, prefix), action, body)
    }

    /// Like [`Moto::json`], returning the status and body, errors included.
    pub(crate) fn try_json(
        &self,
        region: &str,
        service: &str,
        prefix: &str,
        action: &str,
        body: Value,
    ) -> (u16, Value) {
        self.try_json_as("testing", region, service, prefix, action, body)
    }

    /// Like [`Moto::json`], signed with `access_key`: moto keeps resources per
    /// account, and an access key from [`Moto::assume_role`] is the role's
    /// account.
    pub(crate) fn json_as(
        &self,
        access_key: &str,
        region: &str,
        (service, prefix): (&str, &str),
        action: &str,
        body: Value,
    ) -> Value {
        let (status, out) = self.try_json_as(access_key, region, service, prefix, action, body);
        assert_eq!(status, 200, "{service} {action} failed: {out}");
        out
    }

    /// Assumes `role_arn` through STS (moto lets any credentials assume any
    /// role); the session's access key id.
    pub(crate) fn assume_role(&self, role_arn: &str) -> String {
        let auth = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/sts/aws4_request, \
                    SignedHeaders=host, Signature=0";
        let body =
            format!("Action=AssumeRole&Version=2011-06-15&RoleArn={role_arn}&RoleSessionName=seed");
        let (status, out) = request(
            self.addr,
            "POST",
            "/",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", auth),
            ],
            body.as_bytes(),
        )
        .expect("moto answers");
        let out = String::from_utf8_lossy(&out);
        assert_eq!(status, 200, "AssumeRole failed: {out}");
        let key = out
            .split_once("<AccessKeyId>")
            .and_then(|(_, rest)| rest.split_once("</AccessKeyId>"))
            .map(|(key, _)| key.to_owned());
        key.expect("an AccessKeyId in the AssumeRole answer")
    }

    fn try_json_as(
        &self,
        access_key: &str,
        region: &str,
        service: &str,
        prefix: &str,
        action: &str,
        body: Value,
    ) -> (u16, Value) {
        // moto reads the region and the access key (the account) from the
        // credential scope; it does not check signatures.
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={access_key}/20260101/{region}/{service}/aws4_request, SignedHeaders=host, Signature=0"
        );
        let target = format!("{prefix}.{action}");
        let (status, out) = request(
            self.addr,
            "POST",
            "/",
            &[
                ("x-amz-target", &target),
                ("content-type", "application/x-amz-json-1.1"),
                ("authorization", &auth),
            ],
            body.to_string().as_bytes(),
        )
        .expect("moto answers");
        let v = serde_json::from_slice(&out).unwrap_or(Value::Null);
        (status, v)
    }

    /// Creates a text secret; returns its ARN.
    pub(crate) fn create(&self, region: &str, name: &str, value: &str) -> String {
        let out = self.call(
            region,
            "CreateSecret",
            json!({ "Name": name, "SecretString": value }),
        );
        out["ARN"].as_str().expect("ARN").to_owned()
    }

    /// Creates a binary secret; returns its ARN.
    pub(crate) fn create_binary(&self, region: &str, name: &str, value: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        let out = self.call(
            region,
            "CreateSecret",
            json!({ "Name": name, "SecretBinary": b64 }),
        );
        out["ARN"].as_str().expect("ARN").to_owned()
    }

    /// Puts a new current version (the old one becomes AWSPREVIOUS); returns its id.
    pub(crate) fn rotate(&self, region: &str, name: &str, value: &str) -> String {
        let out = self.call(
            region,
            "PutSecretValue",
            json!({ "SecretId": name, "SecretString": value }),
        );
        out["VersionId"].as_str().expect("VersionId").to_owned()
    }
}
