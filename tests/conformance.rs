//! The conformance suite: what every provider must do, one test per behaviour
//! and provider (`conformance::aws::not_found_is_exit_4`, …), each against its
//! real or documented server: aws and ssm (moto), vault (OpenBao), onepassword (a
//! Connect server written from the API documentation), env, file and sops
//! (files made by the real `sops`).
//!
//! A new provider starts here: implement [`Backend`] for it and add one line to
//! the `conformance!` table at the end. Behaviours a provider cannot show (no
//! credentials to deny, nothing remote to stall) return `None` from the
//! matching method and their tests pass trivially for it.
//!
//! Behaviours: a key of a secret is read (found); a secret that does not exist
//! exits 4 naming it, so does a missing key; refused credentials exit 5 without
//! printing a token (denied); a server that is not there exits 5; a throttled
//! request is retried and the value arrives; a stalled request ends at
//! `--timeout` with exit 5; many keys of one secret, each referenced many
//! times, cost one fetch; `check --resolve` says `found` and `not found`; the
//! values (canaries) never reach stderr or a file in `TMPDIR`, at every log
//! level and format.

use crate::support;

use std::fmt::Write as _;
use std::time::Duration;

use support::connect::{connect_error, Connect, Field, Item};
use support::moto::moto;
use support::openbao::bao;
use support::proxy::{Fault, Proxy};
use support::{aws_env, canary, keyfill, unique, Run, NOWHERE};

/// A secret manager as the suite drives it.
pub(crate) trait Backend {
    /// Stores a secret `id` whose keys have these values; returns the variables
    /// keyfill needs to see them (the env provider's values).
    fn put(&self, id: &str, fields: &[(&str, &str)]) -> Vec<(String, String)>;
    /// The reference to key `key` of secret `id`.
    fn reference(&self, id: &str, key: &str) -> String;
    /// What a not-found message names for key `key` of secret `id`.
    fn shown(&self, id: &str, _key: &str) -> String {
        id.to_owned()
    }
    /// Whether a secret has keys of its own (a missing key is then "not found").
    fn has_keys(&self) -> bool {
        true
    }
    /// keyfill's environment.
    fn vars(&self) -> Vec<(String, String)>;
    /// The environment with refused credentials, where the provider has any.
    fn denied_vars(&self) -> Option<Vec<(String, String)>> {
        None
    }
    /// The environment pointing at a server that is not there, where the
    /// provider has one.
    fn unreachable_vars(&self) -> Option<Vec<(String, String)>> {
        None
    }
    /// Makes the next fetch fail as throttled; false where nothing throttles.
    fn throttle_once(&self) -> bool {
        false
    }
    /// Makes the next fetches stall; false where nothing is remote.
    fn stall(&self) -> bool {
        false
    }
    /// Fetches of secret data since the last reset, where they can be counted.
    fn fetches(&self) -> Option<usize> {
        None
    }
    /// Forgets the counted fetches.
    fn reset(&self) {}
}

/// A stall longer than any `--timeout` the suite gives.
const STALL: Duration = Duration::from_secs(30);

struct Aws {
    proxy: Proxy,
}

impl Aws {
    fn new() -> Aws {
        Aws {
            proxy: Proxy::start(moto().addr, Duration::ZERO),
        }
    }
}

impl Backend for Aws {
    fn put(&self, id: &str, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let obj: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        moto().create("us-east-1", id, &serde_json::Value::Object(obj).to_string());
        Vec::new()
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
            Fault::aws(400, "UnrecognizedClientException", "bad key"),
        );
        Some(self.vars())
    }
    fn unreachable_vars(&self) -> Option<Vec<(String, String)>> {
        Some(aws_env(NOWHERE))
    }
    fn throttle_once(&self) -> bool {
        self.proxy.inject(
            "SecretValue",
            1,
            Fault::aws(400, "ThrottlingException", "Rate exceeded"),
        );
        true
    }
    fn stall(&self) -> bool {
        self.proxy
            .inject("SecretValue", usize::MAX, Fault::Stall(STALL));
        true
    }
    fn fetches(&self) -> Option<usize> {
        Some(self.proxy.count("GetSecretValue"))
    }
    fn reset(&self) {
        self.proxy.reset();
    }
}

/// Parameter Store: a secret is a SecureString parameter `/ID` holding JSON.
struct Ssm {
    proxy: Proxy,
}

impl Backend for Ssm {
    fn put(&self, id: &str, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let obj: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        let value = serde_json::Value::Object(obj).to_string();
        crate::ssm::put("us-east-1", &format!("/{id}"), "SecureString", &value);
        Vec::new()
    }
    fn reference(&self, id: &str, key: &str) -> String {
        format!("<<ssm|/{id}:{key}>>")
    }
    fn vars(&self) -> Vec<(String, String)> {
        aws_env(&self.proxy.url())
    }
    fn denied_vars(&self) -> Option<Vec<(String, String)>> {
        self.proxy.inject(
            "GetParameters",
            usize::MAX,
            Fault::aws(400, "UnrecognizedClientException", "bad key"),
        );
        Some(self.vars())
    }
    fn unreachable_vars(&self) -> Option<Vec<(String, String)>> {
        Some(aws_env(NOWHERE))
    }
    fn throttle_once(&self) -> bool {
        self.proxy.inject(
            "GetParameters",
            1,
            Fault::aws(400, "ThrottlingException", "Rate exceeded"),
        );
        true
    }
    fn stall(&self) -> bool {
        self.proxy
            .inject("GetParameters", usize::MAX, Fault::Stall(STALL));
        true
    }
    fn fetches(&self) -> Option<usize> {
        Some(self.proxy.count("GetParameters"))
    }
    fn reset(&self) {
        self.proxy.reset();
    }
}

struct Vault {
    proxy: Proxy,
    home: tempfile::TempDir,
}

impl Vault {
    fn new() -> Vault {
        Vault {
            proxy: Proxy::start(bao().addr, Duration::ZERO),
            home: tempfile::tempdir().expect("home"),
        }
    }
}

/// A Vault-style JSON error answer.
fn vault_error(status: u16, message: &str) -> Fault {
    Fault::Respond {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::json!({ "errors": [message] }).to_string(),
    }
}

impl Backend for Vault {
    fn put(&self, id: &str, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let data: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        bao()
            .api()
            .kv2_put("secret", id, serde_json::Value::Object(data));
        Vec::new()
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
    fn unreachable_vars(&self) -> Option<Vec<(String, String)>> {
        let mut v = self.vars();
        v.retain(|(k, _)| k != "VAULT_ADDR");
        v.push(("VAULT_ADDR".into(), NOWHERE.into()));
        Some(v)
    }
    fn throttle_once(&self) -> bool {
        self.proxy.inject(
            "GET /v1/secret/",
            1,
            vault_error(429, "rate limit quota exceeded"),
        );
        true
    }
    fn stall(&self) -> bool {
        self.proxy
            .inject("GET /v1/", usize::MAX, Fault::Stall(STALL));
        true
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

impl OnePassword {
    fn new() -> OnePassword {
        let server = Connect::start(OP_TOKEN);
        let vault = server.add_vault("Conformance");
        OnePassword { server, vault }
    }
}

impl Backend for OnePassword {
    fn put(&self, id: &str, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut item = Item::new(id, "API_CREDENTIAL");
        for (k, v) in fields {
            item = item.field(Field::concealed(k, v));
        }
        self.server.add_item(&self.vault, item);
        Vec::new()
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
    fn unreachable_vars(&self) -> Option<Vec<(String, String)>> {
        let mut v = self.vars();
        v.retain(|(k, _)| k != "OP_CONNECT_HOST");
        v.push(("OP_CONNECT_HOST".into(), NOWHERE.into()));
        Some(v)
    }
    fn throttle_once(&self) -> bool {
        // An item read (`…/items/ID`), not the list (`…/items?filter=…`).
        self.server
            .inject("/items/", 1, connect_error(429, "Too many requests"));
        true
    }
    fn stall(&self) -> bool {
        self.server
            .inject("GET /v1/vaults", usize::MAX, Fault::Stall(STALL));
        true
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
    fn put(&self, id: &str, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(k, v)| (env_name(id, k), (*v).to_owned()))
            .collect()
    }
    fn reference(&self, id: &str, key: &str) -> String {
        format!("<<env|{}>>", env_name(id, key))
    }
    fn shown(&self, id: &str, key: &str) -> String {
        env_name(id, key)
    }
    fn has_keys(&self) -> bool {
        false
    }
    fn vars(&self) -> Vec<(String, String)> {
        Vec::new()
    }
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

impl Files {
    fn new() -> Files {
        Files {
            dir: tempfile::tempdir().expect("dir"),
        }
    }
}

impl Backend for Files {
    fn put(&self, id: &str, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let d = self.dir.path().join(id.replace('/', "_"));
        std::fs::create_dir_all(&d).expect("secret folder");
        for (k, v) in fields {
            std::fs::write(d.join(k), v).expect("secret file");
        }
        Vec::new()
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
}

/// sops files: a secret `id` is one age-encrypted YAML file made by the real
/// `sops`, its keys the file's keys; a wrong age key is "denied".
struct Sops {
    dir: tempfile::TempDir,
    key: std::path::PathBuf,
    other: std::path::PathBuf,
    recipient: String,
}

impl Sops {
    fn new() -> Sops {
        let dir = tempfile::tempdir().expect("dir");
        let key = crate::sops::age_key(dir.path(), "keys.txt");
        let other = crate::sops::age_key(dir.path(), "other.txt");
        Sops {
            dir,
            key: key.file,
            other: other.file,
            recipient: key.recipient,
        }
    }

    fn file(&self, id: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join(format!("{}.enc.yaml", id.replace('/', "_")))
    }
}

impl Backend for Sops {
    fn put(&self, id: &str, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let plain = self
            .dir
            .path()
            .join(format!("{}.plain.yaml", id.replace('/', "_")));
        let text: String = fields.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
        std::fs::write(&plain, text).expect("plain file");
        let mut cmd = std::process::Command::new("sops");
        support::scrub(&mut cmd);
        let out = cmd
            .current_dir(self.dir.path())
            .args(["encrypt", "--age", &self.recipient])
            .arg(&plain)
            .output()
            .expect("run sops (installed by .ci/deps)");
        assert!(out.status.success(), "sops encrypt failed");
        std::fs::remove_file(&plain).expect("remove the plain file");
        std::fs::write(self.file(id), out.stdout).expect("sops file");
        Vec::new()
    }
    fn reference(&self, id: &str, key: &str) -> String {
        format!("<<sops|{}:{key}>>", self.file(id).display())
    }
    fn vars(&self) -> Vec<(String, String)> {
        vec![
            ("SOPS_AGE_KEY_FILE".into(), self.key.display().to_string()),
            ("HOME".into(), self.dir.path().display().to_string()),
        ]
    }
    fn denied_vars(&self) -> Option<Vec<(String, String)>> {
        let mut v = self.vars();
        v.retain(|(k, _)| k != "SOPS_AGE_KEY_FILE");
        v.push(("SOPS_AGE_KEY_FILE".into(), self.other.display().to_string()));
        Some(v)
    }
}

/// One stored secret with three keys whose values are canaries, a folder to
/// run in (its `tmp/` is keyfill's `TMPDIR`) and the environment to run with.
struct Case<B> {
    name: &'static str,
    b: B,
    dir: tempfile::TempDir,
    id: String,
    fields: Vec<(String, String)>,
    vars: Vec<(String, String)>,
}

impl<B: Backend> Case<B> {
    fn new(name: &'static str, b: B) -> Case<B> {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("tmp")).expect("TMPDIR inside the temp dir");
        let id = unique(&format!("conf-{name}"));
        let fields: Vec<(String, String)> = ["user", "password", "token"]
            .iter()
            .map(|k| ((*k).to_owned(), canary()))
            .collect();
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut vars = b.put(&id, &pairs);
        vars.extend(b.vars());
        Case {
            name,
            b,
            dir,
            id,
            fields,
            vars,
        }
    }

    /// The value of `key`.
    fn value(&self, key: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .expect("a stored key")
    }

    /// Runs `keyfill ARGS config.yaml` with `config` and `vars` (the values'
    /// variables are added); asserts that no value reached stderr or `TMPDIR`.
    fn run(&self, args: &[&str], config: &str, vars: &[(String, String)]) -> Run {
        std::fs::write(self.dir.path().join("config.yaml"), config).expect("config");
        let mut all = self.vars.clone();
        all.retain(|(k, _)| !vars.iter().any(|(n, _)| n == k));
        all.extend(vars.iter().cloned());
        all.push(("NO_COLOR".into(), "1".into()));
        let tmp = self.dir.path().join("tmp");
        all.push(("TMPDIR".into(), tmp.display().to_string()));
        let mut args = args.to_vec();
        args.push("config.yaml");
        let r = keyfill(self.dir.path(), &args, &all);
        for (_, v) in &self.fields {
            assert!(
                !r.stderr.contains(v.as_str()),
                "{}: a value reached stderr:\n{}",
                self.name,
                r.stderr
            );
        }
        let left: Vec<_> = std::fs::read_dir(&tmp)
            .expect("read TMPDIR")
            .map(|e| e.expect("entry").path())
            .collect();
        assert!(left.is_empty(), "{}: left in TMPDIR: {left:?}", self.name);
        r
    }

    fn render(&self, config: &str) -> Run {
        self.run(&["render", "--timeout", "10s"], config, &[])
    }

    /// The reference to `key` of the stored secret.
    fn reference(&self, key: &str) -> String {
        self.b.reference(&self.id, key)
    }
}

fn found<B: Backend>(c: &Case<B>) {
    let r = c.render(&format!("x: {}\n", c.reference("password")));
    r.code(0)
        .stdout_is(&format!("x: {}\n", c.value("password")));
}

/// Many keys of one secret, each referenced 20 times: one fetch.
fn one_fetch_per_secret<B: Backend>(c: &Case<B>) {
    c.b.reset();
    let mut config = String::new();
    let mut want = String::new();
    for i in 0..60 {
        let (k, v) = &c.fields[i % 3];
        let _ = writeln!(config, "k{i}: {}", c.reference(k));
        let _ = writeln!(want, "k{i}: {v}");
    }
    c.render(&config).code(0).stdout_is(&want);
    if let Some(n) = c.b.fetches() {
        assert_eq!(
            n, 1,
            "{}: 60 references to 3 keys of one secret cost {n} fetches",
            c.name
        );
    }
}

fn not_found<B: Backend>(c: &Case<B>) {
    let gone = format!("{}-gone", c.id);
    let r = c.render(&format!("x: {}\n", c.b.reference(&gone, "password")));
    r.code(4)
        .stdout_is("")
        .stderr_has(&c.b.shown(&gone, "password"));
}

fn missing_key<B: Backend>(c: &Case<B>) {
    if c.b.has_keys() {
        c.render(&format!("x: {}\n", c.reference("nokey")))
            .code(4)
            .stdout_is("");
    }
}

fn denied<B: Backend>(c: &Case<B>) {
    if let Some(denied) = c.b.denied_vars() {
        let r = c.run(
            &["render", "--timeout", "10s"],
            &format!("x: {}\n", c.reference("password")),
            &denied,
        );
        r.code(5).stdout_is("");
        assert!(
            !r.stderr.contains("refused-token") && !r.stderr.contains("not-a-real-token"),
            "{}: a token reached stderr",
            c.name
        );
    }
}

fn unreachable<B: Backend>(c: &Case<B>) {
    if let Some(nowhere) = c.b.unreachable_vars() {
        c.run(
            &["render", "--timeout", "10s"],
            &format!("x: {}\n", c.reference("password")),
            &nowhere,
        )
        .code(5)
        .stdout_is("");
    }
}

fn throttled_then_found<B: Backend>(c: &Case<B>) {
    c.b.reset();
    if c.b.throttle_once() {
        c.render(&format!("x: {}\n", c.reference("password")))
            .code(0)
            .stdout_is(&format!("x: {}\n", c.value("password")));
        if let Some(n) = c.b.fetches() {
            assert_eq!(n, 2, "{}: the throttled fetch and its retry", c.name);
        }
    }
}

fn stall_ends_at_the_timeout<B: Backend>(c: &Case<B>) {
    if c.b.stall() {
        c.run(
            &["render", "--timeout", "2s"],
            &format!("x: {}\n", c.reference("password")),
            &[],
        )
        .code(5)
        .stdout_is("");
    }
}

/// `check --resolve` words the found and the not-found reference.
fn check_resolve_words<B: Backend>(c: &Case<B>) {
    let gone = format!("{}-gone", c.id);
    let r = c.run(
        &["check", "--resolve"],
        &format!(
            "a: {}\nb: {}\n",
            c.reference("password"),
            c.b.reference(&gone, "password")
        ),
        &[],
    );
    r.code(4);
    let status = |needle: &str| {
        r.stdout
            .lines()
            .filter(|l| l.contains(needle))
            .filter_map(|l| l.rsplit_once('['))
            .map(|(_, s)| s.trim_end_matches(']').to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        status(&c.b.shown(&gone, "password")),
        ["not found"],
        "{}",
        r.stdout
    );
    let found: Vec<String> = r
        .stdout
        .lines()
        .filter(|l| l.trim_end().ends_with("[found]"))
        .map(str::to_owned)
        .collect();
    assert_eq!(found.len(), 1, "{}", r.stdout);
    assert!(!found[0].contains(&gone), "{}", r.stdout);
}

/// At every log level and format, a render that succeeds and one that fails
/// keep the values off stderr and out of `TMPDIR` ([`Case::run`] checks).
fn values_never_logged<B: Backend>(c: &Case<B>) {
    let ok = format!("x: {}\n", c.reference("password"));
    let failing = format!(
        "{ok}y: {}\n",
        c.b.reference(&format!("{}-gone", c.id), "token")
    );
    for log in [
        &["render"][..],
        &["-v", "render"],
        &["-vv", "render"],
        &["-vvv", "render"],
        &["--log-format", "json", "render"],
        &["--log-format", "json", "-vvv", "render"],
    ] {
        c.run(log, &ok, &[])
            .code(0)
            .stdout_is(&format!("x: {}\n", c.value("password")));
        c.run(log, &failing, &[]).code(4).stdout_is("");
    }
}

/// One test per behaviour for each provider: `provider: its Backend;`.
macro_rules! conformance {
    ($($provider:ident: $backend:expr;)*) => {$(
        mod $provider {
            use super::*;

            fn case() -> Case<impl Backend> {
                Case::new(stringify!($provider), $backend)
            }

            #[test]
            fn found_a_key() {
                found(&case());
            }

            #[test]
            fn one_fetch_per_secret_however_often_used() {
                one_fetch_per_secret(&case());
            }

            #[test]
            fn not_found_is_exit_4_naming_it() {
                not_found(&case());
            }

            #[test]
            fn missing_key_is_exit_4() {
                missing_key(&case());
            }

            #[test]
            fn denied_is_exit_5_without_the_token() {
                denied(&case());
            }

            #[test]
            fn unreachable_is_exit_5() {
                unreachable(&case());
            }

            #[test]
            fn throttled_then_found() {
                super::throttled_then_found(&case());
            }

            #[test]
            fn stall_ends_at_the_timeout_with_exit_5() {
                stall_ends_at_the_timeout(&case());
            }

            #[test]
            fn check_resolve_says_found_and_not_found() {
                check_resolve_words(&case());
            }

            #[test]
            fn values_never_logged_at_any_level() {
                values_never_logged(&case());
            }
        }
    )*};
}

conformance! {
    aws: Aws::new();
    aws_role: crate::roles::AwsRole::new();
    ssm: Ssm { proxy: Proxy::start(moto().addr, Duration::ZERO) };
    vault: Vault::new();
    onepassword: OnePassword::new();
    env: Env;
    file: Files::new();
    sops: Sops::new();
}
