//! The vault provider against a real OpenBao dev server (`tests/support/openbao.rs`),
//! through the counting, fault-injecting proxy: KV v2 versions and pinning, KV v1,
//! mount detection, namespaces, AppRole, `~/.vault-token`, one read per distinct
//! (namespace, path, version), bounded concurrency, retries and the deadline,
//! every error class with its exit code, TLS, and `check --resolve`.
//!
//! Tokens, AppRole secret ids and stored values used in failing runs are canaries
//! that must never appear on stdout or stderr.

use crate::support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::json;
use support::openbao::{bao, VaultEnv as Env};
use support::proxy::{Fault, Proxy};
use support::{assert_silent, canary, unique, Run};

/// The lines of stderr that start an error.
fn errors(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .filter(|l| l.starts_with("error"))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// A Vault-style JSON error answer.
fn vault_error(status: u16, message: &str) -> Fault {
    Fault::Respond {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({ "errors": [message] }).to_string(),
    }
}

/// The requests whose target is exactly `GET /v1/{path}`.
fn calls_to(proxy: &Proxy, path: &str) -> Vec<support::proxy::Call> {
    let target = format!("GET /v1/{path}");
    proxy
        .calls()
        .into_iter()
        .filter(|c| c.target == target)
        .collect()
}

// ---------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------

#[test]
fn harness_seeds_what_the_other_tests_read() {
    let b = bao();
    let p = unique("harness");
    let api = b.api();
    assert_eq!(api.kv2_put("secret", &p, json!({ "k": "one" })), 1);
    assert_eq!(api.kv2_put("secret", &p, json!({ "k": "two" })), 2);
    assert_eq!(api.kv2_put("secret", &p, json!({ "k": "three" })), 3);
    api.kv2_delete("secret", &p, &[1]);
    api.kv2_destroy("secret", &p, &[2]);
    let (s, v) = api.kv2_get("secret", &p, Some(1));
    assert_eq!(s, 404);
    assert_ne!(v["data"]["metadata"]["deletion_time"], "");
    let (s, v) = api.kv2_get("secret", &p, Some(2));
    assert_eq!(
        (s, &v["data"]["metadata"]["destroyed"]),
        (404, &json!(true))
    );
    let (s, v) = api.kv2_get("secret", &p, None);
    assert_eq!((s, &v["data"]["data"]["k"]), (200, &json!("three")));

    let kv1 = format!("kv1-{p}");
    api.enable_kv(&kv1, 1);
    api.kv1_put(&kv1, "app", json!({ "a": "v1" }));
    let (s, v) = api.call("GET", &format!("/v1/{kv1}/app"), None);
    assert_eq!((s, &v["data"]["a"]), (200, &json!("v1")));
    let (s, v) = api.call(
        "GET",
        &format!("/v1/sys/internal/ui/mounts/{kv1}/app"),
        None,
    );
    assert_eq!((s, &v["data"]["options"]["version"]), (200, &json!("1")));

    let ns = format!("ns-{p}");
    b.create_namespace(&ns);
    let nsapi = b.ns(&ns);
    nsapi.enable_kv("secret", 2);
    nsapi.kv2_put("secret", &p, json!({ "k": "in-ns" }));
    let (s, v) = nsapi.kv2_get("secret", &p, None);
    assert_eq!((s, &v["data"]["data"]["k"]), (200, &json!("in-ns")));

    api.policy(
        &format!("pol-{p}"),
        &format!("path \"secret/data/{p}\" {{ capabilities = [\"read\"] }}"),
    );
    let limited = api.token(&[&format!("pol-{p}")]);
    let lim = api.with_token(&limited);
    assert_eq!(lim.kv2_get("secret", &p, None).0, 200);
    assert_eq!(lim.kv2_get("secret", &format!("{p}-other"), None).0, 403);
    let (role_id, secret_id) = api.approle(&format!("role-{p}"), &[&format!("pol-{p}")]);
    let (s, v) = api.call(
        "POST",
        "/v1/auth/approle/login",
        Some(json!({ "role_id": role_id, "secret_id": secret_id })),
    );
    assert_eq!(s, 200, "{v}");
    let t = v["auth"]["client_token"].as_str().expect("token");
    assert_eq!(api.with_token(t).kv2_get("secret", &p, None).0, 200);

    // The HTTPS listener presents a certificate the private CA signed.
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import ssl,sys,urllib.request as u; c=ssl.create_default_context(cafile=sys.argv[2]); \
             print(u.urlopen(sys.argv[1] + '/v1/sys/health', context=c).status)",
            &b.tls_url(),
            &b.ca.display().to_string(),
        ])
        .output()
        .expect("python3");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------
// Values, versions, mounts, namespaces
// ---------------------------------------------------------------------------

#[test]
fn kv2_latest_and_pinned_versions() {
    let b = bao();
    let p = unique("versions");
    b.api()
        .kv2_put("secret", &p, json!({ "password": "pw-one", "user": "app" }));
    b.api()
        .kv2_put("secret", &p, json!({ "password": "pw-two", "user": "app" }));
    let env = Env::new();
    let config = format!(
        "secrets:
  V1: {{ vault: {{ path: secret/data/{p}, key: password, version: 1 }} }}
  V2: {{ vault: {{ path: secret/data/{p}, key: password, version: 2, mount: secret, kv: 2 }} }}
latest: <<vault|secret/data/{p}/password>>
user: <<vault|secret/data/{p}/user>>
first: <<vault|secret/data/{p}/password?version=1>>
pinned1: $<V1>
pinned2: $<V2>
"
    );
    let r = env.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "latest: pw-two\nuser: app\nfirst: pw-one\npinned1: pw-one\npinned2: pw-two\n"
    );
    // One read per (path, version): latest, 1 and 2; `data/` says KV v2, so no
    // mount look-up is needed.
    assert_eq!(
        sorted(env.reads()),
        vec![
            format!("secret/data/{p}"),
            format!("secret/data/{p}?version=1"),
            format!("secret/data/{p}?version=2"),
        ]
    );
    assert_eq!(env.mount_lookups(), Vec::<String>::new());
}

#[test]
fn many_keys_and_references_to_one_secret_are_one_read() {
    let b = bao();
    let p = unique("onekeys");
    let mut data = json!({
        "user": "app",
        "tls.crt": "exact-field",
        "tls": { "crt": "nested-crt", "key": "nested-key" },
        "db": { "hosts": ["h0", "h1"] },
        "port": 5432,
    });
    for i in 0..20 {
        data[format!("k{i}")] = json!(format!("value-{i}"));
    }
    b.api().kv2_put("secret", &p, data);
    let env = Env::new();
    let mut config = format!(
        "secrets:
  CRT: {{ vault: {{ path: secret/data/{p}, key: tls.crt }} }}
  USER: {{ vault: {{ path: secret/data/{p}, key: user }} }}
crt: <<vault|secret/data/{p}/tls.crt>>
crt_long: $<CRT>
tls_key: <<vault|secret/data/{p}/tls.key>>
host: <<vault|secret/data/{p}/db.hosts.1>>
port: <<vault|secret/data/{p}/port>>
url: \"pg://$<USER>:<<vault|secret/data/{p}/k3>>@db\"
"
    );
    for j in 0..200 {
        let _ = writeln!(config, "r{j}: <<vault|secret/data/{p}/k{}>>", j % 20);
    }
    let r = env.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want_head = "crt: exact-field\ncrt_long: exact-field\ntls_key: nested-key\nhost: h1\n\
                     port: '5432'\nurl: \"pg://app:value-3@db\"\n";
    assert!(r.stdout.starts_with(want_head), "{}", r.stdout);
    for j in 0..200 {
        assert!(
            r.stdout.contains(&format!("\nr{j}: value-{}\n", j % 20)),
            "r{j}"
        );
    }
    assert_eq!(env.reads(), vec![format!("secret/data/{p}")]);
    assert_eq!(env.mount_lookups(), Vec::<String>::new());
}

#[test]
fn a_kv2_path_without_data_is_detected_once_per_mount() {
    let b = bao();
    let p = unique("detect2");
    b.api()
        .kv2_put("secret", &p, json!({ "a": "a-1", "b": "b-1" }));
    b.api()
        .kv2_put("secret", &p, json!({ "a": "a-2", "b": "b-2" }));
    let env = Env::new();
    let config = format!(
        "a: <<vault|secret/{p}/a>>\nb: <<vault|secret/{p}/b>>\nold: <<vault|secret/{p}/a?version=1>>\n"
    );
    let r = env.render(&config);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "a: a-2\nb: b-2\nold: a-1\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        sorted(env.reads()),
        vec![
            format!("secret/data/{p}"),
            format!("secret/data/{p}?version=1")
        ]
    );
    let lookups = env.mount_lookups();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert!(lookups[0].starts_with("secret/"), "{lookups:?}");
}

#[test]
fn kv1_mounts_detected_and_explicit() {
    let b = bao();
    let p = unique("kv1");
    let api = b.api();
    let m = format!("kv1-{p}");
    let nested = format!("team-{p}/kv1");
    api.enable_kv(&m, 1);
    api.enable_kv(&nested, 1);
    api.kv1_put(
        &m,
        "app/db",
        json!({ "user": "v1-user", "password": "v1-pw" }),
    );
    api.kv1_put(&m, "app/cache", json!({ "url": "redis://cache" }));
    api.kv1_put(&nested, "svc", json!({ "token": "nested-v1" }));

    let env = Env::new();
    let config = format!(
        "user: <<vault|{m}/app/db/user>>\npw: <<vault|{m}/app/db/password>>\n\
         cache: <<vault|{m}/app/cache/url>>\nnested: <<vault|{nested}/svc/token>>\n"
    );
    let r = env.render(&config);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (
            0,
            "user: v1-user\npw: v1-pw\ncache: redis://cache\nnested: nested-v1\n"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(
        sorted(env.reads()),
        sorted(vec![
            format!("{m}/app/db"),
            format!("{m}/app/cache"),
            format!("{nested}/svc")
        ])
    );
    let lookups = env.mount_lookups();
    assert_eq!(lookups.len(), 2, "one look-up per mount: {lookups:?}");
    assert!(lookups.iter().any(|l| l.starts_with(&format!("{m}/"))));
    assert!(lookups.iter().any(|l| l.starts_with(&format!("{nested}/"))));

    // Named outright: no look-up.
    let env = Env::new();
    let config = format!(
        "secrets:\n  U: {{ vault: {{ path: {m}/app/db, key: user, mount: {m}, kv: 1 }} }}\nuser: $<U>\n"
    );
    let r = env.render(&config);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "user: v1-user\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.reads(), vec![format!("{m}/app/db")]);
    assert_eq!(env.mount_lookups(), Vec::<String>::new());
}

#[test]
fn namespaces_from_vault_namespace_and_from_the_locator() {
    let b = bao();
    let p = unique("ns");
    let ns = format!("ns-{p}");
    b.create_namespace(&ns);
    b.ns(&ns).enable_kv("secret", 2);
    b.ns(&ns).kv2_put("secret", &p, json!({ "k": "in-ns" }));
    b.api().kv2_put("secret", &p, json!({ "k": "in-root" }));
    let read = format!("secret/data/{p}");
    let ns_header = |c: &support::proxy::Call| c.headers.get("x-vault-namespace").cloned();

    // VAULT_NAMESPACE is sent as X-Vault-Namespace.
    let env = Env::new();
    let r = env.run_with(
        &["render"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
        &[("VAULT_NAMESPACE", &ns)],
        &[],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: in-ns\n"),
        "{}",
        r.stderr
    );
    let calls = calls_to(&env.proxy, &read);
    assert_eq!(calls.len(), 1);
    assert_eq!(ns_header(&calls[0]).as_deref(), Some(ns.as_str()));

    // ?namespace= and the long form's namespace: choose it per secret.
    let env = Env::new();
    let config = format!(
        "secrets:\n  L: {{ vault: {{ path: secret/data/{p}, key: k, namespace: {ns} }} }}\n\
         root: <<vault|secret/data/{p}/k>>\nin_ns: <<vault|secret/data/{p}/k?namespace={ns}>>\nlong: $<L>\n"
    );
    let r = env.render(&config);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "root: in-root\nin_ns: in-ns\nlong: in-ns\n"),
        "{}",
        r.stderr
    );
    let mut headers: Vec<Option<String>> =
        calls_to(&env.proxy, &read).iter().map(ns_header).collect();
    headers.sort();
    assert_eq!(
        headers,
        vec![None, Some(ns.clone())],
        "one read per namespace"
    );

    // A locator's namespace overrides VAULT_NAMESPACE; a mount look-up happens
    // in the secret's namespace.
    let env = Env::new();
    let other = format!("nope-{p}");
    let r = env.run_with(
        &["render"],
        &format!(
            "x: <<vault|secret/data/{p}/k?namespace={ns}>>\ny: <<vault|secret/{p}/k?namespace={ns}>>\n"
        ),
        &[("VAULT_NAMESPACE", &other)],
        &[],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: in-ns\ny: in-ns\n"),
        "{}",
        r.stderr
    );
    for c in env.proxy.calls() {
        assert_eq!(ns_header(&c).as_deref(), Some(ns.as_str()), "{}", c.target);
    }
    assert_eq!(env.mount_lookups().len(), 1);
}

// ---------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------

/// A policy `pol-{p}` that may read `secret/data/{p}` and nothing else.
fn read_only_policy(p: &str) -> String {
    let name = format!("pol-{p}");
    bao().api().policy(
        &name,
        &format!("path \"secret/data/{p}\" {{ capabilities = [\"read\"] }}"),
    );
    name
}

#[test]
fn approle_login_reads_with_the_roles_policy() {
    let b = bao();
    let p = unique("approle");
    b.api().kv2_put("secret", &p, json!({ "k": "via-approle" }));
    b.api()
        .kv2_put("secret", &format!("{p}-other"), json!({ "k": canary() }));
    let policy = read_only_policy(&p);
    let (role_id, secret_id) = b.api().approle(&format!("role-{p}"), &[&policy]);
    let approle = [
        ("VAULT_ROLE_ID", role_id.as_str()),
        ("VAULT_SECRET_ID", secret_id.as_str()),
    ];

    let env = Env::new();
    let r = env.run_with(
        &["render"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
        &approle,
        &["VAULT_TOKEN"],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: via-approle\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.logins(), 1);
    let login = env
        .proxy
        .calls()
        .into_iter()
        .find(|c| c.target.ends_with("/v1/auth/approle/login"))
        .expect("login");
    let body: serde_json::Value = serde_json::from_str(&login.body).expect("JSON login body");
    assert_eq!(
        (body["role_id"].as_str(), body["secret_id"].as_str()),
        (Some(role_id.as_str()), Some(secret_id.as_str()))
    );
    let read = calls_to(&env.proxy, &format!("secret/data/{p}"));
    assert_eq!(read.len(), 1);
    let token = read[0].headers.get("x-vault-token").expect("a token");
    assert!(token.len() > 8 && *token != b.root, "the login's token");
    // The run's token does not outlive it: revoked at the end (`revoke-self`).
    let revoke: Vec<_> = env
        .proxy
        .calls()
        .into_iter()
        .filter(|c| c.target == "POST /v1/auth/token/revoke-self")
        .collect();
    assert_eq!(revoke.len(), 1, "one revoke-self");
    assert_eq!(revoke[0].headers.get("x-vault-token"), Some(token));
    assert_eq!(b.api().with_token(token).kv2_get("secret", &p, None).0, 403);
    assert_silent(&r, &secret_id, "approle");
    assert_silent(&r, token, "approle");
    let token = token.clone();
    for args in [
        &["render", "-vv"][..],
        &["render", "--log-format", "json", "-vv"],
    ] {
        let r = env.run_with(
            args,
            &format!("x: <<vault|secret/data/{p}/k>>\n"),
            &approle,
            &["VAULT_TOKEN"],
        );
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_silent(&r, &secret_id, "approle, verbose");
        assert_silent(&r, &role_id, "approle, verbose");
        assert_silent(&r, &token, "approle, verbose");
        assert!(!r.stderr.contains("via-approle"), "{}", r.stderr);
    }

    // The role's policy does not reach the other secret: denied, exit 5.
    let env = Env::new();
    let r = env.run_with(
        &["render"],
        &format!("x: <<vault|secret/data/{p}/k>>\ny: <<vault|secret/data/{p}-other/k>>\n"),
        &approle,
        &["VAULT_TOKEN"],
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(errors(&r).len(), 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("secret/data/{p}-other")),
        "{}",
        r.stderr
    );
    assert_silent(&r, &secret_id, "approle denied");
    let token =
        calls_to(&env.proxy, &format!("secret/data/{p}"))[0].headers["x-vault-token"].clone();
    assert_silent(&r, &token, "approle denied");
}

#[test]
fn approle_login_happens_in_vault_namespace() {
    let b = bao();
    let p = unique("nslogin");
    let ns = format!("ns-{p}");
    b.create_namespace(&ns);
    let api = b.ns(&ns);
    api.enable_kv("secret", 2);
    api.kv2_put("secret", &p, json!({ "k": "ns-approle" }));
    api.enable_approle();
    api.policy(
        "reader",
        &format!("path \"secret/data/{p}\" {{ capabilities = [\"read\"] }}"),
    );
    let (role_id, secret_id) = api.approle("app", &["reader"]);
    let env = Env::new();
    let r = env.run_with(
        &["render"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
        &[
            ("VAULT_NAMESPACE", &ns),
            ("VAULT_ROLE_ID", &role_id),
            ("VAULT_SECRET_ID", &secret_id),
        ],
        &["VAULT_TOKEN"],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: ns-approle\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.logins(), 1);
    for c in env.proxy.calls() {
        assert_eq!(
            c.headers.get("x-vault-namespace"),
            Some(&ns),
            "{} is sent in VAULT_NAMESPACE",
            c.target
        );
    }
}

#[test]
fn a_5xx_on_login_is_retried() {
    let b = bao();
    let p = unique("login500");
    b.api()
        .kv2_put("secret", &p, json!({ "k": "after-login-retry" }));
    let policy = read_only_policy(&p);
    let (role_id, secret_id) = b.api().approle(&format!("role-{p}"), &[&policy]);
    let env = Env::new();
    env.proxy.inject(
        "/v1/auth/approle/login",
        1,
        vault_error(500, "internal error"),
    );
    let r = env.run_with(
        &["render", "--timeout", "10s"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
        &[("VAULT_ROLE_ID", &role_id), ("VAULT_SECRET_ID", &secret_id)],
        &["VAULT_TOKEN"],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: after-login-retry\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.logins(), 2);
}

#[test]
fn a_failed_approle_login_is_exit_5_and_never_shows_the_secret_id() {
    let b = bao();
    let p = unique("badlogin");
    b.api().kv2_put("secret", &p, json!({ "k": "unreached" }));
    let policy = read_only_policy(&p);
    let (role_id, _) = b.api().approle(&format!("role-{p}"), &[&policy]);
    let wrong = canary();
    let env = Env::new();
    let r = env.run_with(
        &["render", "-vv"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
        &[("VAULT_ROLE_ID", &role_id), ("VAULT_SECRET_ID", &wrong)],
        &["VAULT_TOKEN"],
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(!r.stderr.is_empty());
    assert_silent(&r, &wrong, "failed login");
    assert!(
        !r.stderr.contains("invalid role or secret ID"),
        "Vault's message is never echoed:\n{}",
        r.stderr
    );
    assert_eq!(env.logins(), 1, "a refused login is not retried");
    assert!(env.reads().is_empty(), "{:?}", env.reads());
}

#[test]
fn token_precedence_vault_token_then_approle_then_token_file() {
    let b = bao();
    let p = unique("precedence");
    b.api().kv2_put("secret", &p, json!({ "k": "fine" }));
    let policy = read_only_policy(&p);
    let (role_id, secret_id) = b.api().approle(&format!("role-{p}"), &[&policy]);
    let config = format!("x: <<vault|secret/data/{p}/k>>\n");
    let read = format!("secret/data/{p}");
    let approle = [
        ("VAULT_ROLE_ID", role_id.as_str()),
        ("VAULT_SECRET_ID", secret_id.as_str()),
    ];

    // VAULT_TOKEN beats AppRole: no login.
    let env = Env::new();
    let r = env.run_with(&["render"], &config, &approle, &[]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: fine\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.logins(), 0);
    assert_eq!(
        calls_to(&env.proxy, &read)[0].headers["x-vault-token"],
        b.root
    );

    // AppRole beats ~/.vault-token.
    let env = Env::new();
    let file_token = canary();
    std::fs::write(env.home().join(".vault-token"), &file_token).expect("token file");
    let r = env.run_with(&["render"], &config, &approle, &["VAULT_TOKEN"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: fine\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.logins(), 1);
    assert_ne!(
        calls_to(&env.proxy, &read)[0].headers["x-vault-token"],
        file_token
    );

    // ~/.vault-token (as `vault login` writes it; a trailing newline is trimmed)
    // when neither is set.
    let env = Env::new();
    std::fs::write(env.home().join(".vault-token"), format!("{}\n", b.root)).expect("token file");
    let r = env.run_with(&["render"], &config, &[], &["VAULT_TOKEN"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: fine\n"),
        "{}",
        r.stderr
    );
    assert_eq!(
        calls_to(&env.proxy, &read)[0].headers["x-vault-token"],
        b.root
    );

    // A wrong VAULT_TOKEN is not rescued by a good token file.
    let bad = canary();
    let r = env.run_with(&["render"], &config, &[("VAULT_TOKEN", &bad)], &[]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_silent(&r, &bad, "bad VAULT_TOKEN");
    assert_silent(&r, &b.root, "token file");

    // No token anywhere: not configured, exit 5.
    let env = Env::new();
    let r = env.run_with(&["render"], &config, &[], &["VAULT_TOKEN"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn a_bad_token_is_exit_5_not_retried_and_never_printed() {
    let b = bao();
    let p = unique("badtoken");
    let value = canary();
    b.api().kv2_put("secret", &p, json!({ "k": value }));
    let bad = canary();
    let config = format!("x: <<vault|secret/data/{p}/k>>\ny: <<vault|secret/{p}/k>>\n");
    for args in [
        &["render"][..],
        &["render", "-vv"],
        &["render", "--log-format", "json", "-vv"],
        &["check", "--resolve", "-vv"],
    ] {
        let env = Env::new();
        let r = env.run_with(args, &config, &[("VAULT_TOKEN", &bad)], &[]);
        assert_eq!(r.code, 5, "{args:?}: {}", r.stderr);
        assert_silent(&r, &bad, "bad token");
        assert_silent(&r, &value, "bad token");
        assert!(
            r.stderr.contains(&format!("secret/data/{p}")),
            "{args:?}: names the path:\n{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("{\"errors\""),
            "Vault's answer is never echoed:\n{}",
            r.stderr
        );
        assert!(
            calls_to(&env.proxy, &format!("secret/data/{p}")).len() <= 1,
            "a 403 is not retried: {:?}",
            env.reads()
        );
    }
}

#[test]
fn denied_by_policy_is_exit_5_for_that_secret_only() {
    let b = bao();
    let p = unique("denied");
    b.api().kv2_put("secret", &p, json!({ "k": "allowed" }));
    let hidden = canary();
    b.api()
        .kv2_put("secret", &format!("{p}-private"), json!({ "k": hidden }));
    let policy = read_only_policy(&p);
    let token = b.api().token(&[&policy]);
    let env = Env::new();
    let out = env.path().join("out.yaml");
    std::fs::write(&out, "old: content\n").expect("old output");
    // Vault's own message for a denial is never shown, whatever it says.
    let message = canary();
    env.proxy.inject(
        &format!("GET /v1/secret/data/{p}-injected"),
        1,
        vault_error(403, &message),
    );
    let r = env.run_with(
        &["render", "-o", "out.yaml"],
        &format!(
            "ok: <<vault|secret/data/{p}/k>>\nno: <<vault|secret/data/{p}-private/k>>\n\
             injected: <<vault|secret/data/{p}-injected/k>>\n"
        ),
        &[("VAULT_TOKEN", &token)],
        &[],
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        "old: content\n"
    );
    let errs = errors(&r);
    assert_eq!(errs.len(), 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("secret/data/{p}-private")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("secret/data/{p}-injected")),
        "{}",
        r.stderr
    );
    assert_silent(&r, &token, "denied");
    assert_silent(&r, &hidden, "denied");
    assert_silent(&r, &message, "denied");
    assert_eq!(
        calls_to(&env.proxy, &format!("secret/data/{p}-private")).len(),
        1,
        "denied is not retried"
    );
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[test]
fn missing_paths_keys_and_versions_are_exit_4_all_in_one_pass() {
    let b = bao();
    let p = unique("missing");
    let api = b.api();
    let (alpha, beta) = (canary(), canary());
    api.kv2_put("secret", &p, json!({ "alpha": alpha, "beta": beta }));
    let v = format!("{p}-v");
    for i in 1..=3 {
        api.kv2_put("secret", &v, json!({ "k": format!("version-{i}") }));
    }
    api.kv2_delete("secret", &v, &[1]);
    api.kv2_destroy("secret", &v, &[2]);
    let gone = format!("{p}-gone");
    api.kv2_put("secret", &gone, json!({ "k": canary() }));
    api.kv2_delete_latest("secret", &gone);

    let env = Env::new();
    let out = env.path().join("out.yaml");
    std::fs::write(&out, "old: content\n").expect("old output");
    let config = format!(
        "ok: <<vault|secret/data/{p}/alpha>>
current: <<vault|secret/data/{v}/k>>
missing_path: <<vault|secret/data/{p}-nope/k>>
missing_key: <<vault|secret/data/{p}/gamma>>
deleted: <<vault|secret/data/{v}/k?version=1>>
destroyed: <<vault|secret/data/{v}/k?version=2>>
never: <<vault|secret/data/{v}/k?version=9>>
deleted_latest: <<vault|secret/data/{gone}/k>>
"
    );
    let r = env.run(&["render", "-o", "out.yaml"], &config);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        "old: content\n"
    );
    assert_eq!(errors(&r).len(), 6, "{}", r.stderr);
    for needle in [
        format!("secret/data/{p}-nope"),
        "gamma".to_owned(),
        format!("secret/data/{v}"),
        format!("secret/data/{gone}"),
    ] {
        assert!(r.stderr.contains(&needle), "names {needle}:\n{}", r.stderr);
    }
    // The missing key's error lists the keys that exist, never their values.
    let key_error = r
        .stderr
        .lines()
        .find(|l| l.contains("gamma"))
        .expect("the missing key's error");
    assert!(
        r.stderr.contains("alpha") && r.stderr.contains("beta"),
        "lists the keys there ({key_error}):\n{}",
        r.stderr
    );
    assert_silent(&r, &alpha, "missing key");
    assert_silent(&r, &beta, "missing key");
    assert!(!r.stderr.contains("version-3") && !r.stderr.contains("{\""));
    // Each distinct (path, version) was read once; a 404 is not retried.
    assert_eq!(
        sorted(env.reads()),
        sorted(vec![
            format!("secret/data/{p}"),
            format!("secret/data/{v}"),
            format!("secret/data/{p}-nope"),
            format!("secret/data/{v}?version=1"),
            format!("secret/data/{v}?version=2"),
            format!("secret/data/{v}?version=9"),
            format!("secret/data/{gone}"),
        ])
    );
}

#[test]
fn a_sealed_vault_is_exit_5_and_says_so() {
    let b = bao();
    let p = unique("sealed");
    b.api().kv2_put("secret", &p, json!({ "k": "unreached" }));
    let env = Env::new();
    env.proxy
        .inject("GET /v1/", 1000, vault_error(503, "Vault is sealed"));
    let start = Instant::now();
    let r = env.run(
        &["render", "--timeout", "10s"],
        &format!("x: <<vault|secret/data/{p}/k>>\ny: <<vault|secret/{p}/k>>\n"),
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(start.elapsed() < Duration::from_secs(15));
    assert!(r.stdout.is_empty());
    assert!(r.stderr.to_lowercase().contains("sealed"), "{}", r.stderr);
    assert!(!r.stderr.contains("{\"errors\""), "{}", r.stderr);
}

#[test]
fn a_500_is_retried_and_the_value_arrives() {
    let b = bao();
    let p = unique("f500");
    b.api().kv2_put("secret", &p, json!({ "k": "after-500" }));
    let env = Env::new();
    let body = canary();
    env.proxy.inject(
        &format!("GET /v1/secret/data/{p}"),
        1,
        vault_error(500, &body),
    );
    let r = env.run(&["render"], &format!("x: <<vault|secret/data/{p}/k>>\n"));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: after-500\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.reads().len(), 2, "{:?}", env.reads());
    assert_silent(&r, &body, "500 body");
}

#[test]
fn a_dropped_connection_is_retried() {
    let b = bao();
    let p = unique("dropped");
    b.api().kv2_put("secret", &p, json!({ "k": "after-drop" }));
    let env = Env::new();
    env.proxy
        .inject(&format!("GET /v1/secret/data/{p}"), 1, Fault::Close);
    let r = env.run(
        &["render", "--timeout", "10s"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: after-drop\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.reads().len(), 2, "{:?}", env.reads());
}

#[test]
fn vault_addr_may_end_with_a_slash() {
    let b = bao();
    let p = unique("slash");
    b.api().kv2_put("secret", &p, json!({ "k": "slashed" }));
    let env = Env::new();
    let addr = format!("{}/", env.proxy.url());
    let r = env.run_with(
        &["render"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
        &[("VAULT_ADDR", &addr)],
        &[],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: slashed\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.reads(), vec![format!("secret/data/{p}")]);
}

#[test]
fn retry_after_is_honoured() {
    let b = bao();
    let p = unique("retryafter");
    b.api().kv2_put("secret", &p, json!({ "k": "after-wait" }));
    let env = Env::new();
    env.proxy.inject(
        &format!("GET /v1/secret/data/{p}"),
        1,
        Fault::Respond {
            status: 503,
            headers: vec![
                ("retry-after".into(), "1".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: json!({ "errors": ["rate limited, come back later"] }).to_string(),
        },
    );
    let r = env.run(
        &["render", "--timeout", "10s"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: after-wait\n"),
        "{}",
        r.stderr
    );
    let calls = calls_to(&env.proxy, &format!("secret/data/{p}"));
    assert_eq!(calls.len(), 2);
    let gap = calls[1].at - calls[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "retried {gap:?} after a Retry-After: 1"
    );
}

#[test]
fn server_errors_until_the_deadline_are_exit_5_and_never_echoed() {
    let b = bao();
    let p = unique("f500forever");
    b.api().kv2_put("secret", &p, json!({ "k": "unreached" }));
    let env = Env::new();
    let body = canary();
    env.proxy.inject(
        "GET /v1/",
        1000,
        Fault::Respond {
            status: 502,
            headers: vec![("content-type".into(), "text/html".into())],
            body: format!("<html><body>{body}</body></html>"),
        },
    );
    let start = Instant::now();
    let r = env.run(
        &["render", "--timeout", "5s"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "{:?}",
        start.elapsed()
    );
    assert!(env.reads().len() >= 2, "retried: {:?}", env.reads());
    assert_silent(&r, &body, "HTML error page");
    assert!(!r.stderr.contains("<html>"));
}

#[test]
fn a_stall_ends_at_the_deadline_and_a_refused_connection_is_exit_5() {
    let b = bao();
    let p = unique("stall");
    b.api().kv2_put("secret", &p, json!({ "k": "unreached" }));
    let env = Env::new();
    env.proxy
        .inject("GET /v1/", 100, Fault::Stall(Duration::from_secs(30)));
    let start = Instant::now();
    let r = env.run(
        &["render", "--timeout", "2s"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
    );
    let took = start.elapsed();
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(took < Duration::from_secs(6), "took {took:?}");
    assert!(
        r.stderr.contains(&format!("secret/data/{p}")),
        "{}",
        r.stderr
    );

    // Nothing listens there.
    let start = Instant::now();
    let r = env.run_with(
        &["render", "--timeout", "3s"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
        &[("VAULT_ADDR", support::NOWHERE)],
        &[],
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(start.elapsed() < Duration::from_secs(7));
}

#[test]
fn distinct_secrets_are_read_once_each_within_the_concurrency_bound() {
    let b = bao();
    let p = unique("conc");
    let n = 12;
    let mut config = String::new();
    for i in 0..n {
        b.api().kv2_put(
            "secret",
            &format!("{p}/s{i}"),
            json!({ "a": format!("a{i}"), "b": format!("b{i}") }),
        );
        let _ = writeln!(config, "a{i}: <<vault|secret/data/{p}/s{i}/a>>");
        let _ = writeln!(config, "b{i}: <<vault|secret/data/{p}/s{i}/b>>");
    }
    for concurrency in ["3", "1"] {
        let env = Env::with_delay(Duration::from_millis(100));
        let r = env.run(&["render", "--concurrency", concurrency], &config);
        assert_eq!(r.code, 0, "{}", r.stderr);
        for i in 0..n {
            assert!(r.stdout.contains(&format!("a{i}: a{i}\nb{i}: b{i}\n")));
        }
        let reads = sorted(env.reads());
        let want = sorted((0..n).map(|i| format!("secret/data/{p}/s{i}")).collect());
        assert_eq!(reads, want, "each secret read exactly once");
        let max: usize = concurrency.parse().expect("number");
        assert!(
            env.proxy.max_in_flight() <= max,
            "{} in flight with --concurrency {max}",
            env.proxy.max_in_flight()
        );
        if max > 1 {
            assert!(env.proxy.max_in_flight() > 1, "reads run concurrently");
        }
    }
}

#[test]
fn vault_addr_defaults_to_https_on_port_8200() {
    let env = Env::new();
    let start = Instant::now();
    // Something may already use port 8200 on this machine; when the test can
    // listen there it checks that keyfill starts a TLS handshake with it.
    let listener = std::net::TcpListener::bind("127.0.0.1:8200").ok();
    let hello = listener.map(|l| {
        std::thread::spawn(move || {
            let (mut conn, _) = l.accept().ok()?;
            conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            let mut first = [0u8; 1];
            std::io::Read::read_exact(&mut conn, &mut first).ok()?;
            Some(first[0])
        })
    });
    let r = env.run_with(
        &["render", "--timeout", "3s"],
        "x: <<vault|secret/data/anything/k>>\n",
        &[],
        &["VAULT_ADDR"],
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(start.elapsed() < Duration::from_secs(8));
    assert!(env.proxy.calls().is_empty());
    if let Some(h) = hello {
        // 0x16: a TLS handshake record (a ClientHello), not plain HTTP.
        assert_eq!(h.join().expect("listener thread"), Some(0x16));
    } else {
        eprintln!("port 8200 is in use: checked only that the render failed with exit 5");
    }
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

#[test]
fn tls_is_verified_with_vault_cacert_or_capath_or_skipped_with_a_warning() {
    let b = bao();
    let p = unique("tls");
    b.api().kv2_put("secret", &p, json!({ "k": "over-tls" }));
    let env = Env::new();
    let config = format!("x: <<vault|secret/data/{p}/k>>\n");
    let tls = b.tls_url();
    let ca = b.ca.display().to_string();
    let capath = b.capath.display().to_string();
    let run = |extra: &[(&str, &str)]| {
        let mut all = vec![("VAULT_ADDR", tls.as_str())];
        all.extend_from_slice(extra);
        env.run_with(&["render", "--timeout", "10s"], &config, &all, &[])
    };

    // The system roots do not hold the test CA: refused.
    let r = run(&[]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());

    let r = run(&[("VAULT_CACERT", &ca)]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: over-tls\n"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("VAULT_SKIP_VERIFY"), "{}", r.stderr);

    let r = run(&[("VAULT_CAPATH", &capath)]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: over-tls\n"),
        "{}",
        r.stderr
    );

    let r = run(&[("VAULT_SKIP_VERIFY", "true")]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: over-tls\n"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.lines().any(|l| l.contains("VAULT_SKIP_VERIFY")),
        "a warning names VAULT_SKIP_VERIFY:\n{}",
        r.stderr
    );

    // A CA file that is not PEM is a configuration error, not a crash.
    let bad = env.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate\n").expect("bad pem");
    let r = run(&[("VAULT_CACERT", &bad.display().to_string())]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------
// check --resolve
// ---------------------------------------------------------------------------

#[test]
fn check_resolve_reports_each_status_without_values() {
    let b = bao();
    let p = unique("check");
    let found = canary();
    b.api()
        .kv2_put("secret", &format!("{p}/found"), json!({ "k": found }));
    let private = canary();
    b.api()
        .kv2_put("secret", &format!("{p}-private"), json!({ "k": private }));
    b.api().policy(
        &format!("pol-{p}"),
        &format!("path \"secret/data/{p}/*\" {{ capabilities = [\"read\"] }}"),
    );
    let token = b.api().token(&[&format!("pol-{p}")]);
    let env = Env::new();
    let config = format!(
        "secrets:
  FOUND: <<vault|secret/data/{p}/found/k>>
  GONE: <<vault|secret/data/{p}/gone/k>>
  NOKEY: <<vault|secret/data/{p}/found/nokey>>
  DENIED: <<vault|secret/data/{p}-private/k>>
a: $<FOUND>
b: $<GONE>
c: $<NOKEY>
d: $<DENIED>
e: <<vault|secret/data/{p}/found/k>>
f: <<vault|secret/data/{p}/gone/k>>
g: <<vault|secret/data/{p}-private/k>>
"
    );
    let r = env.run_with(
        &["check", "--resolve"],
        &config,
        &[("VAULT_TOKEN", &token)],
        &[],
    );
    let status = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.rsplit_once('['))
            .map(|(_, s)| s.trim_end_matches(']').to_owned())
    };
    assert_eq!(status("FOUND").as_deref(), Some("found"), "{}", r.stdout);
    assert_eq!(status("GONE").as_deref(), Some("not found"), "{}", r.stdout);
    assert_eq!(
        status("NOKEY").as_deref(),
        Some("not found"),
        "{}",
        r.stdout
    );
    assert_eq!(
        status("DENIED").as_deref(),
        Some("access denied"),
        "{}",
        r.stdout
    );
    for (reference, want) in [
        (format!("<<vault|secret/data/{p}/found/k>>"), "found"),
        (format!("<<vault|secret/data/{p}/gone/k>>"), "not found"),
        (
            format!("<<vault|secret/data/{p}-private/k>>"),
            "access denied",
        ),
    ] {
        assert!(
            r.stdout.contains(&format!("{reference}  [{want}]")),
            "{reference} [{want}]:\n{}",
            r.stdout
        );
    }
    // The worst class present is "not found".
    assert_eq!(r.code, 4, "{}", r.stderr);
    for needle in [&found, &private, &token] {
        assert_silent(&r, needle, "check --resolve");
    }
    assert_eq!(
        sorted(env.reads()),
        sorted(vec![
            format!("secret/data/{p}/found"),
            format!("secret/data/{p}/gone"),
            format!("secret/data/{p}-private"),
        ])
    );
}
