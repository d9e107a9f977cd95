//! Refreshes of a running `keyfill watch` against real servers (moto for AWS,
//! an OpenBao dev server for Vault), through the counting proxy: a SIGHUP asks
//! the provider's cheap version check first (AWS `DescribeSecret`, Vault KV v2
//! metadata) and fetches only values whose version moved; a check the caller
//! may not use is not asked again; KV v1 has no check; an AppRole login is kept
//! across refreshes and renewed once when its token is revoked.
//!
//! Every value stored is a random canary that must never reach stderr. Every
//! wait polls against a deadline; the proxy's record is cleared before each
//! SIGHUP, so each refresh's calls are counted exactly.

use crate::support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::moto::moto;
use support::openbao::{bao, VaultEnv};
use support::proxy::{Fault, Proxy};
use support::watch::{save_by_rename, Signal, Watch};
use support::{canary, unique, AwsEnv};

/// Deadline for one render (generous: the suite shares two cores).
const T: Duration = Duration::from_secs(30);
const REGION: &str = "us-east-1";
/// The line of a refresh that wrote nothing.
const UNCHANGED: &str = "keyfill: refresh: rendered/out.yaml unchanged";

/// The line of a refresh that wrote new values of `locators`.
fn written(locators: &str) -> String {
    format!("keyfill: refresh (new values: {locators}): rendered/out.yaml written")
}

/// A test folder with a counting proxy in front of its server.
trait Served {
    fn proxy(&self) -> &Proxy;
    fn dir(&self) -> &Path;
}

impl Served for AwsEnv {
    fn proxy(&self) -> &Proxy {
        &self.proxy
    }
    fn dir(&self) -> &Path {
        self.path()
    }
}

impl Served for VaultEnv {
    fn proxy(&self) -> &Proxy {
        &self.proxy
    }
    fn dir(&self) -> &Path {
        self.path()
    }
}

/// A running `keyfill watch conf/app.yaml -o rendered/out.yaml` whose provider
/// requests go through `env`'s proxy.
struct Loop<E: Served> {
    env: E,
    w: Watch,
    /// Every value the servers hold for it (and credentials): never on stderr.
    secrets: Vec<String>,
}

impl<E: Served> Loop<E> {
    /// Starts the loop on `config` with exactly `vars` and `extra` options,
    /// and waits for its first render to write `expected`.
    fn start(
        env: E,
        vars: &[(String, String)],
        extra: &[&str],
        config: &str,
        expected: &str,
    ) -> Self {
        let dir = env.dir();
        fs::create_dir_all(dir.join("conf")).expect("mkdir conf");
        fs::create_dir_all(dir.join("rendered")).expect("mkdir rendered");
        fs::write(dir.join("conf/app.yaml"), config).expect("write config");
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (&**k, &**v)).collect();
        let mut args = vec!["watch", "conf/app.yaml", "-o", "rendered/out.yaml"];
        args.extend_from_slice(extra);
        let w = Watch::start(dir, &args, &vars);
        let mut l = Loop {
            env,
            w,
            secrets: Vec::new(),
        };
        l.w.wait_renders(1, T);
        let first = &l.w.render_lines()[0];
        assert!(first.ends_with(" written"), "{}", l.w.stderr());
        l.expect_output(expected);
        l
    }

    /// Sends SIGHUP with the proxy's record cleared and waits for the render
    /// it causes; that render's line.
    fn refresh(&mut self) -> String {
        self.render_after(|l| l.w.signal(Signal::HUP))
    }

    /// Clears the proxy's record, does `act`, and waits for the render it
    /// causes; that render's line.
    fn render_after(&mut self, act: impl FnOnce(&Self)) -> String {
        self.env.proxy().reset();
        let n = self.w.renders();
        act(self);
        self.w.wait_renders(n + 1, T);
        self.assert_quiet();
        self.w.render_lines()[n].clone()
    }

    /// The output holds exactly `expected` (the render line comes after the write).
    fn expect_output(&self, expected: &str) {
        let out = fs::read_to_string(self.env.dir().join("rendered/out.yaml")).unwrap_or_default();
        assert_eq!(out, expected, "stderr:\n{}", self.w.stderr());
    }

    /// No value or credential in [`Loop::secrets`] is on stderr.
    fn assert_quiet(&self) {
        let stderr = self.w.stderr();
        for s in &self.secrets {
            assert!(!stderr.contains(s.as_str()), "`{s}` on stderr:\n{stderr}");
        }
    }

    /// The requests since the last refresh began, sorted: `OPERATION IDS` for
    /// Secrets Manager, `METHOD PATH` for Vault (mount look-ups included: the
    /// provider keeps the mounts it found, so a refresh asks none).
    fn calls(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .env
            .proxy()
            .calls()
            .into_iter()
            .map(|c| {
                let body: Value = serde_json::from_str(&c.body).unwrap_or(Value::Null);
                let mut ids: Vec<&str> = match &body["SecretIdList"] {
                    Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                    _ => body["SecretId"].as_str().into_iter().collect(),
                };
                ids.sort_unstable();
                if ids.is_empty() {
                    c.target
                } else {
                    format!("{} {}", c.target, ids.join(","))
                }
            })
            .collect();
        v.sort();
        v
    }

    /// Asserts the calls since the last refresh began (`expected` sorted).
    fn expect_calls<S: AsRef<str>>(&self, expected: &[S]) {
        let expected: Vec<&str> = expected.iter().map(AsRef::as_ref).collect();
        assert_eq!(self.calls(), expected, "stderr:\n{}", self.w.stderr());
    }
}

impl<E: Served> Drop for Loop<E> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_quiet();
        }
    }
}

// ---------------------------------------------------------------------------
// AWS Secrets Manager
// ---------------------------------------------------------------------------

/// Two secrets `{p}-a` and `{p}-b` with canary values, and a loop rendering
/// them as `a:` and `b:`; their names and values.
fn aws_two(test: &str, extra: &[&str]) -> (Loop<AwsEnv>, [String; 2], [String; 2]) {
    let p = unique(test);
    let names = [format!("{p}-a"), format!("{p}-b")];
    let values = [canary(), canary()];
    for (n, v) in names.iter().zip(&values) {
        moto().create(REGION, n, v);
    }
    let env = AwsEnv::new();
    let vars = env.vars();
    let config = aws_config(&names, "");
    let mut l = Loop::start(env, &vars, extra, &config, &aws_out(&values[0], &values[1]));
    l.secrets.extend(values.iter().cloned());
    l.expect_calls(&[&format!("BatchGetSecretValue {},{}", names[0], names[1])]);
    (l, names, values)
}

/// `DescribeSecret NAME` for each of `names`.
fn describes(names: &[String]) -> Vec<String> {
    names
        .iter()
        .map(|n| format!("DescribeSecret {n}"))
        .collect()
}

fn aws_config([a, b]: &[String; 2], more: &str) -> String {
    format!("a: <<aws|{a}>>\nb: <<aws|{b}>>\n{more}")
}

fn aws_out(a: &str, b: &str) -> String {
    format!("a: {a}\nb: {b}\n")
}

#[test]
fn aws_unchanged_refresh_asks_describe_secret_only() {
    let (mut l, names, [va, vb]) = aws_two("unchanged", &[]);
    for _ in 0..2 {
        assert_eq!(l.refresh(), UNCHANGED);
        l.expect_calls(&describes(&names));
        l.expect_output(&aws_out(&va, &vb));
    }
}

#[test]
fn aws_rotated_secret_alone_is_fetched_and_named() {
    let (mut l, names, [va, _]) = aws_two("rotated", &[]);
    let b = &names[1];
    let vb2 = canary();
    l.secrets.push(vb2.clone());
    moto().rotate(REGION, b, &vb2);
    assert_eq!(l.refresh(), written(&format!("aws|{b}")));
    let mut calls = describes(&names);
    calls.push(format!("GetSecretValue {b}"));
    l.expect_calls(&calls);
    l.expect_output(&aws_out(&va, &vb2));
    // The new version is now the known one: the next refresh fetches nothing.
    assert_eq!(l.refresh(), UNCHANGED);
    l.expect_calls(&describes(&names));
}

/// An input edit renders with the cached values while they are younger than
/// `--cache-ttl`, and checks their versions (fetching nothing) once older.
#[test]
fn aws_input_edit_within_the_ttl_asks_nothing_and_after_it_checks_versions() {
    for (ttl, checked) in [("5m", false), ("1ms", true)] {
        let (mut l, names, [va, vb]) = aws_two("ttl", &["--cache-ttl", ttl]);
        let input = l.env.path().join("conf/app.yaml");
        let line = l.render_after(|_| save_by_rename(&input, &aws_config(&names, "c: 2\n")));
        assert_eq!(line, "keyfill: input changed: rendered/out.yaml written");
        l.expect_output(&format!("{}c: 2\n", aws_out(&va, &vb)));
        l.expect_calls(&if checked { describes(&names) } else { vec![] });
    }
}

#[test]
fn aws_describe_secret_denied_is_not_asked_again() {
    let p = unique("denied");
    let v1 = canary();
    moto().create(REGION, &p, &v1);
    let env = AwsEnv::new();
    let vars = env.vars();
    let mut l = Loop::start(
        env,
        &vars,
        &[],
        &format!("x: <<aws|{p}>>\n"),
        &format!("x: {v1}\n"),
    );
    l.secrets.push(v1);
    l.env.proxy.inject(
        "DescribeSecret",
        100,
        Fault::aws(
            400,
            "AccessDeniedException",
            "not authorized: DescribeSecret",
        ),
    );
    assert_eq!(l.refresh(), UNCHANGED);
    l.expect_calls(&[
        &format!("DescribeSecret {p}"),
        &format!("GetSecretValue {p}"),
    ]);
    // Rotated: the direct fetch picks it up, without asking DescribeSecret.
    let v2 = canary();
    l.secrets.push(v2.clone());
    moto().rotate(REGION, &p, &v2);
    assert_eq!(l.refresh(), written(&format!("aws|{p}")));
    l.expect_calls(&[&format!("GetSecretValue {p}")]);
    l.expect_output(&format!("x: {v2}\n"));
}

// ---------------------------------------------------------------------------
// Vault / OpenBao
// ---------------------------------------------------------------------------

/// `VaultEnv::vars()` with `unset` removed and `set` added.
fn vault_vars(env: &VaultEnv, set: &[(&str, &str)], unset: &[&str]) -> Vec<(String, String)> {
    let mut v = env.vars();
    v.retain(|(k, _)| !unset.contains(&k.as_str()));
    v.extend(set.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    v
}

/// A KV v2 secret `secret/{p}` holding `{k: VALUE}`, a loop rendering it as
/// `x:` with `vars` (given the new env) and the value.
fn kv2_loop(
    p: &str,
    vars: impl FnOnce(&VaultEnv) -> Vec<(String, String)>,
) -> (Loop<VaultEnv>, String) {
    let v1 = canary();
    bao().api().kv2_put("secret", p, json!({ "k": v1 }));
    let env = VaultEnv::new();
    let vars = vars(&env);
    let config = format!("x: <<vault|secret/data/{p}/k>>\n");
    let mut l = Loop::start(env, &vars, &[], &config, &format!("x: {v1}\n"));
    l.secrets.push(v1.clone());
    (l, v1)
}

/// A policy that may read `secret/data/{p}`, and its metadata when `metadata`.
fn kv2_policy(p: &str, metadata: bool) -> String {
    let name = format!("pol-{p}");
    let mut hcl = format!("path \"secret/data/{p}\" {{ capabilities = [\"read\"] }}\n");
    if metadata {
        hcl += &format!("path \"secret/metadata/{p}\" {{ capabilities = [\"read\"] }}\n");
    }
    bao().api().policy(&name, &hcl);
    name
}

#[test]
fn vault_kv2_refresh_reads_metadata_and_data_only_when_the_version_moved() {
    let p = unique("kv2");
    let (mut l, v1) = kv2_loop(&p, |e| e.vars());
    let (meta, data) = (
        format!("GET /v1/secret/metadata/{p}"),
        format!("GET /v1/secret/data/{p}"),
    );
    assert_eq!(l.refresh(), UNCHANGED);
    l.expect_calls(&[&meta]);
    l.expect_output(&format!("x: {v1}\n"));

    let v2 = canary();
    l.secrets.push(v2.clone());
    assert_eq!(bao().api().kv2_put("secret", &p, json!({ "k": v2 })), 2);
    let line = l.refresh();
    l.expect_calls(&[&data, &meta]);
    l.expect_output(&format!("x: {v2}\n"));
    assert_eq!(line, written(&format!("vault|secret/data/{p}")));
}

#[test]
fn vault_metadata_denied_by_policy_is_not_asked_again() {
    let p = unique("nometa");
    let policy = kv2_policy(&p, false);
    let token = bao().api().token(&[&policy]);
    let (mut l, v1) = kv2_loop(&p, |e| vault_vars(e, &[("VAULT_TOKEN", &token)], &[]));
    l.secrets.push(token.clone());
    let (meta, data) = (
        format!("GET /v1/secret/metadata/{p}"),
        format!("GET /v1/secret/data/{p}"),
    );
    // The policy answers the metadata endpoint with 403.
    let api = bao().api();
    let metadata = format!("/v1/secret/metadata/{p}");
    assert_eq!(api.with_token(&token).call("GET", &metadata, None).0, 403);
    assert_eq!(l.refresh(), UNCHANGED);
    l.expect_calls(&[&data, &meta]);
    for _ in 0..2 {
        assert_eq!(l.refresh(), UNCHANGED);
        l.expect_calls(&[&data]);
    }
    l.expect_output(&format!("x: {v1}\n"));
}

#[test]
fn vault_kv1_refresh_always_reads_the_value() {
    let p = unique("kv1");
    let mount = format!("kv1-{p}");
    let api = bao().api();
    api.enable_kv(&mount, 1);
    let v1 = canary();
    api.kv1_put(&mount, "app", json!({ "k": v1 }));
    let env = VaultEnv::new();
    let vars = env.vars();
    let config = format!("x: <<vault|{mount}/app/k>>\n");
    let mut l = Loop::start(env, &vars, &[], &config, &format!("x: {v1}\n"));
    l.secrets.push(v1.clone());
    let read = format!("GET /v1/{mount}/app");
    assert_eq!(l.refresh(), UNCHANGED);
    l.expect_calls(&[&read]);
    let v2 = canary();
    l.secrets.push(v2.clone());
    api.kv1_put(&mount, "app", json!({ "k": v2 }));
    let line = l.refresh();
    l.expect_calls(&[&read]);
    l.expect_output(&format!("x: {v2}\n"));
    assert_eq!(line, written(&format!("vault|{mount}/app")));
}

/// The token the last request carried.
fn last_token(l: &Loop<VaultEnv>) -> Option<String> {
    let calls = l.env.proxy.calls();
    calls.last()?.headers.get("x-vault-token").cloned()
}

/// An AppRole for `secret/{p}` (data and metadata), a loop logged in with it,
/// and the token of its login (seen on the proxy).
fn approle_loop(p: &str) -> (Loop<VaultEnv>, String, String) {
    let policy = kv2_policy(p, true);
    let (role_id, secret_id) = bao().api().approle(&format!("role-{p}"), &[&policy]);
    let (mut l, v1) = kv2_loop(p, |e| {
        vault_vars(
            e,
            &[("VAULT_ROLE_ID", &role_id), ("VAULT_SECRET_ID", &secret_id)],
            &["VAULT_TOKEN"],
        )
    });
    l.expect_calls(&[
        &format!("GET /v1/secret/data/{p}"),
        "POST /v1/auth/approle/login",
    ]);
    let token = last_token(&l).expect("the read carries the login's token");
    l.secrets.extend([role_id, secret_id, token.clone()]);
    (l, v1, token)
}

/// Revokes `token` as root and checks that it no longer reads.
fn revoke(token: &str, p: &str) {
    let api = bao().api();
    api.ok("POST", "/v1/auth/token/revoke", json!({ "token": token }));
    assert_eq!(api.with_token(token).kv2_get("secret", p, None).0, 403);
}

#[test]
fn vault_approle_logs_in_once_and_again_once_after_a_revocation() {
    let p = unique("approle");
    let (mut l, v1, token) = approle_loop(&p);
    let meta = format!("GET /v1/secret/metadata/{p}");
    for _ in 0..3 {
        assert_eq!(l.refresh(), UNCHANGED);
        l.expect_calls(&[&meta]);
        assert_eq!(last_token(&l), Some(token.clone()), "the kept token");
    }
    revoke(&token, &p);
    assert_eq!(l.refresh(), UNCHANGED);
    assert_eq!(l.env.logins(), 1, "calls: {:?}", l.calls());
    let renewed = last_token(&l).expect("a token");
    assert_ne!(renewed, token, "the last read used the new login's token");
    l.secrets.push(renewed.clone());
    l.expect_output(&format!("x: {v1}\n"));
    // The new token is kept in turn.
    assert_eq!(l.refresh(), UNCHANGED);
    assert_eq!(l.env.logins(), 0, "calls: {:?}", l.calls());
    assert_eq!(last_token(&l), Some(renewed));
}

/// A revoked token's 403 says nothing about the policy: once logged in again,
/// refreshes go back to the metadata check.
#[test]
fn vault_version_checks_resume_after_a_revoked_token_is_replaced() {
    let p = unique("revoked");
    let (mut l, v1, token) = approle_loop(&p);
    revoke(&token, &p);
    assert_eq!(l.refresh(), UNCHANGED);
    assert_eq!(l.env.logins(), 1, "calls: {:?}", l.calls());
    assert_eq!(l.refresh(), UNCHANGED);
    l.expect_calls(&[&format!("GET /v1/secret/metadata/{p}")]);
    l.expect_output(&format!("x: {v1}\n"));
}

/// A 403 for a valid kept token is the policy's: keyfill asks
/// `auth/token/lookup-self` once per refusal and keeps the token, instead of
/// logging in again (and leaving a token behind) on every refresh.
#[test]
fn vault_a_policy_refusal_keeps_the_approle_token() {
    let p = unique("refused");
    let (mut l, v1, token) = approle_loop(&p);
    // The role's policy no longer covers the secret.
    bao().api().policy(
        &format!("pol-{p}"),
        "path \"secret/data/elsewhere\" { capabilities = [\"read\"] }\n",
    );
    let (meta, data, lookup) = (
        format!("GET /v1/secret/metadata/{p}"),
        format!("GET /v1/secret/data/{p}"),
        "GET /v1/auth/token/lookup-self",
    );
    let kept = "keyfill: refresh: render failed; rendered/out.yaml keeps its last good content";
    assert_eq!(l.refresh(), kept);
    l.expect_calls(&[lookup, lookup, &data, &meta]);
    assert_eq!(l.refresh(), kept);
    l.expect_calls(&[lookup, &data]);
    assert_eq!(l.env.logins(), 0);
    assert_eq!(last_token(&l), Some(token));
    l.expect_output(&format!("x: {v1}\n"));
}
