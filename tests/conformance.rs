//! One conformance suite that every provider passes, each against its real or
//! documented server: aws (moto), vault (OpenBao), onepassword (a Connect server
//! written from the API documentation), env and file.
//!
//! For each: a secret with several keys is read (get); a secret that does not
//! exist exits 4 naming it (missing); refused credentials exit 5 (denied, for the
//! providers that have credentials); many keys of one secret, each referenced
//! many times, cost one fetch (dedupe). Values are canaries that must appear in
//! the rendered output and nowhere on stderr.

use crate::support;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use support::connect::{Connect, Field, Item};
use support::moto::moto;
use support::openbao::bao;
use support::proxy::Proxy;
use support::{aws_env, keyfill, unique, Run};

/// A secret manager as the suite drives it.
trait Backend {
    /// Stores a secret `id` whose keys have these values.
    fn put(&self, id: &str, fields: &[(&str, &str)]);
    /// The reference to key `key` of secret `id`.
    fn reference(&self, id: &str, key: &str) -> String;
    /// keyfill's environment.
    fn vars(&self) -> Vec<(String, String)>;
    /// The environment with refused credentials, where the provider has any.
    fn denied_vars(&self) -> Option<Vec<(String, String)>>;
    /// Fetches of secret data since the last reset, where they can be counted.
    fn fetches(&self) -> Option<usize>;
    /// Forgets the counted fetches.
    fn reset(&self);
}

struct Aws {
    proxy: Proxy,
}

impl Backend for Aws {
    fn put(&self, id: &str, fields: &[(&str, &str)]) {
        let obj: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        moto().create("us-east-1", id, &serde_json::Value::Object(obj).to_string());
    }
    fn reference(&self, id: &str, key: &str) -> String {
        format!("<<aws|{id}:{key}>>")
    }
    fn vars(&self) -> Vec<(String, String)> {
        aws_env(&self.proxy.url())
    }
    fn denied_vars(&self) -> Option<Vec<(String, String)>> {
        // moto accepts any key; the proxy refuses the signature as AWS would.
        self.proxy.inject(
            "SecretValue",
            usize::MAX,
            support::proxy::Fault::aws(400, "UnrecognizedClientException", "bad key"),
        );
        Some(self.vars())
    }
    fn fetches(&self) -> Option<usize> {
        Some(self.proxy.count("GetSecretValue"))
    }
    fn reset(&self) {
        self.proxy.reset();
    }
}

struct Vault {
    proxy: Proxy,
    home: tempfile::TempDir,
}

impl Backend for Vault {
    fn put(&self, id: &str, fields: &[(&str, &str)]) {
        let data: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        bao()
            .api()
            .kv2_put("secret", id, serde_json::Value::Object(data));
    }
    fn reference(&self, id: &str, key: &str) -> String {
        format!("<<vault|secret/data/{id}/{key}>>")
    }
    fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("VAULT_ADDR".into(), self.proxy.url()),
            ("VAULT_TOKEN".into(), bao().root.clone()),
            ("HOME".into(), self.home.path().display().to_string()),
        ]
    }
    fn denied_vars(&self) -> Option<Vec<(String, String)>> {
        let mut v = self.vars();
        v.retain(|(k, _)| k != "VAULT_TOKEN");
        v.push(("VAULT_TOKEN".into(), "s.not-a-real-token".into()));
        Some(v)
    }
    fn fetches(&self) -> Option<usize> {
        Some(
            self.proxy
                .calls()
                .iter()
                .filter(|c| c.target.starts_with("GET /v1/secret/"))
                .count(),
        )
    }
    fn reset(&self) {
        self.proxy.reset();
    }
}

struct OnePassword {
    server: Connect,
    vault: String,
}

const OP_TOKEN: &str = "conformance-connect-token";

impl Backend for OnePassword {
    fn put(&self, id: &str, fields: &[(&str, &str)]) {
        let mut item = Item::new(id, "API_CREDENTIAL");
        for (k, v) in fields {
            item = item.field(Field::concealed(k, v));
        }
        self.server.add_item(&self.vault, item);
    }
    fn reference(&self, id: &str, key: &str) -> String {
        format!("<<op|op://Conformance/{id}/{key}>>")
    }
    fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("OP_CONNECT_HOST".into(), self.server.url()),
            ("OP_CONNECT_TOKEN".into(), OP_TOKEN.into()),
        ]
    }
    fn denied_vars(&self) -> Option<Vec<(String, String)>> {
        let mut v = self.vars();
        v.retain(|(k, _)| k != "OP_CONNECT_TOKEN");
        v.push(("OP_CONNECT_TOKEN".into(), "refused-token".into()));
        Some(v)
    }
    fn fetches(&self) -> Option<usize> {
        Some(self.server.count(|r| r.is_any_item_get()))
    }
    fn reset(&self) {
        self.server.reset();
    }
}

/// Environment variables: a secret `id` is one variable per key.
struct Env;

impl Backend for Env {
    fn put(&self, _id: &str, _fields: &[(&str, &str)]) {}
    fn reference(&self, id: &str, key: &str) -> String {
        format!("<<env|{}>>", env_name(id, key))
    }
    fn vars(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn denied_vars(&self) -> Option<Vec<(String, String)>> {
        None
    }
    fn fetches(&self) -> Option<usize> {
        None
    }
    fn reset(&self) {}
}

fn env_name(id: &str, key: &str) -> String {
    format!("KF_CONF_{id}_{key}")
        .replace(['-', '/'], "_")
        .to_ascii_uppercase()
}

/// Files: a secret `id` is one file per key, in a folder of its own.
struct Files {
    dir: tempfile::TempDir,
}

impl Backend for Files {
    fn put(&self, id: &str, fields: &[(&str, &str)]) {
        let d = self.dir.path().join(id.replace('/', "_"));
        std::fs::create_dir_all(&d).expect("secret folder");
        for (k, v) in fields {
            std::fs::write(d.join(k), v).expect("secret file");
        }
    }
    fn reference(&self, id: &str, key: &str) -> String {
        format!(
            "<<file|{}>>",
            self.dir
                .path()
                .join(id.replace('/', "_"))
                .join(key)
                .display()
        )
    }
    fn vars(&self) -> Vec<(String, String)> {
        Vec::new()
    }
    fn denied_vars(&self) -> Option<Vec<(String, String)>> {
        None
    }
    fn fetches(&self) -> Option<usize> {
        None
    }
    fn reset(&self) {}
}

fn run(dir: &Path, config: &str, vars: &[(String, String)]) -> Run {
    std::fs::write(dir.join("config.yaml"), config).expect("config");
    let mut vars = vars.to_vec();
    vars.push(("NO_COLOR".into(), "1".into()));
    vars.push(("TMPDIR".into(), dir.display().to_string()));
    keyfill(dir, &["render", "--timeout", "10s", "config.yaml"], &vars)
}

/// The whole suite against one backend. Env values are passed in the
/// environment, so `extra` carries them for the env backend.
fn conformance(name: &str, b: &dyn Backend, env_values: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let id = unique(&format!("conf-{name}"));
    let canary = |k: &str| format!("kfconf-{name}-{k}-{:08x}", fastrand::u32(..));
    let keys = ["user", "password", "token"];
    let values: Vec<(String, String)> = keys.iter().map(|k| ((*k).to_owned(), canary(k))).collect();
    let fields: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.put(&id, &fields);
    let mut vars = b.vars();
    if env_values {
        for (k, v) in &fields {
            vars.push((env_name(&id, k), (*v).to_owned()));
        }
    }

    // get
    let r = run(
        dir.path(),
        &format!("x: {}\n", b.reference(&id, "password")),
        &vars,
    );
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, format!("x: {}\n", fields[1].1)),
        "{name} get: {}",
        r.stderr
    );

    // many keys of one secret, each referenced 20 times: one fetch
    b.reset();
    let mut config = String::new();
    let mut want = String::new();
    for i in 0..60 {
        let (k, v) = fields[i % 3];
        let _ = writeln!(config, "k{i}: {}", b.reference(&id, k));
        let _ = writeln!(want, "k{i}: {v}");
    }
    let r = run(dir.path(), &config, &vars);
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, want),
        "{name} many keys: {}",
        r.stderr
    );
    if let Some(n) = b.fetches() {
        assert_eq!(
            n, 1,
            "{name}: 60 references to 3 keys of one secret cost {n} fetches"
        );
    }
    for (_, v) in &fields {
        assert!(!r.stderr.contains(v), "{name}: a value reached stderr");
    }

    // missing
    let gone = format!("{id}-gone");
    let r = run(
        dir.path(),
        &format!("x: {}\n", b.reference(&gone, "password")),
        &vars,
    );
    assert_eq!(r.code, 4, "{name} missing: {}", r.stderr);
    assert!(r.stdout.is_empty());
    let shown = if env_values {
        env_name(&gone, "password")
    } else {
        gone.clone()
    };
    assert!(
        r.stderr.contains(&shown),
        "{name} missing names the secret: {}",
        r.stderr
    );

    // a missing key of an existing secret is "not found" too
    if !env_values {
        let r = run(
            dir.path(),
            &format!("x: {}\n", b.reference(&id, "nokey")),
            &vars,
        );
        assert_eq!(r.code, 4, "{name} missing key: {}", r.stderr);
        for (_, v) in &fields {
            assert!(!r.stderr.contains(v), "{name}: a value reached stderr");
        }
    }

    // denied
    if let Some(denied) = b.denied_vars() {
        let r = run(
            dir.path(),
            &format!("x: {}\n", b.reference(&id, "password")),
            &denied,
        );
        assert_eq!(r.code, 5, "{name} denied: {}", r.stderr);
        assert!(r.stdout.is_empty());
        assert!(
            !r.stderr.contains("refused-token") && !r.stderr.contains("not-a-real-token"),
            "{name}: a token reached stderr"
        );
    }
}

#[test]
fn aws_conforms() {
    let b = Aws {
        proxy: Proxy::start(moto().addr, Duration::ZERO),
    };
    conformance("aws", &b, false);
}

#[test]
fn vault_conforms() {
    let b = Vault {
        proxy: Proxy::start(bao().addr, Duration::ZERO),
        home: tempfile::tempdir().expect("home"),
    };
    conformance("vault", &b, false);
}

#[test]
fn onepassword_conforms() {
    let server = Connect::start(OP_TOKEN);
    let vault = server.add_vault("Conformance");
    let b = OnePassword { server, vault };
    conformance("onepassword", &b, false);
}

#[test]
fn env_conforms() {
    conformance("env", &Env, true);
}

#[test]
fn file_conforms() {
    let b = Files {
        dir: tempfile::tempdir().expect("dir"),
    };
    conformance("file", &b, false);
}
