//! The aws provider against a real moto server, through a counting proxy: value
//! kinds, versions, batching and deduplication, errors and `check --resolve`.

use crate::support;

use std::collections::HashSet;
use std::fmt::Write as _;

use support::moto::moto;
use support::proxy::{Fault, Proxy};
use support::{aws_env, keyfill, unique, AwsEnv as Env};

const REGION: &str = "us-east-1";

/// The `SecretIdList` of each BatchGetSecretValue call.
fn batches(proxy: &Proxy) -> Vec<Vec<String>> {
    proxy
        .calls()
        .iter()
        .filter(|c| c.target == "BatchGetSecretValue")
        .map(|c| {
            let v: serde_json::Value = serde_json::from_str(&c.body).expect("JSON body");
            v["SecretIdList"]
                .as_array()
                .expect("SecretIdList")
                .iter()
                .map(|s| s.as_str().expect("id").to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn text_json_nested_binary_arn_and_region_values_render() {
    let m = moto();
    let p = unique("values");
    m.create(
        REGION,
        &format!("{p}/plain"),
        "hello: world # not a comment",
    );
    let db_arn = m.create(
        REGION,
        &format!("{p}/db"),
        r#"{"user":"app","password":"pw 1","port":5432,"tls":{"ca":"line1\nline2"},"hosts":["a","b"]}"#,
    );
    m.create_binary(REGION, &format!("{p}/bin"), &[0, 0xff, 0x10, b'k']);
    m.create("eu-west-1", &format!("{p}/eu"), "from-eu");
    let partial_arn = &db_arn[..db_arn.len() - 7];
    let env = Env::new();
    let config = format!(
        r#"secrets:
  BIN: {{ aws: {{ secret_id: {p}/bin }}, encoding: base64 }}
  DB: {{ aws: {{ secret_id: {p}/db }}, type: json }}
  CA: {{ aws: {{ secret_id: {p}/db, key: tls.ca }} }}
plain: <<aws|{p}/plain>>
user: <<aws|{p}/db:user>>
port: <<aws|{p}/db:port>>
host: <<aws|{p}/db:hosts.1>>
arn: <<aws|{db_arn}:password>>
partial: <<aws|{partial_arn}:user>>
url: "pg://<<aws|{p}/db:user>>:<<aws|{p}/db:password>>@db"
whole: $<DB>
field: $<DB.tls>
ca: $<CA>
bin: $<BIN>
eu: <<aws|{p}/eu?region=eu-west-1>>
"#
    );
    let r = env.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = r#"plain: 'hello: world # not a comment'
user: app
port: '5432'
host: b
arn: pw 1
partial: app
url: "pg://app:pw 1@db"
whole: {"user": "app", "password": "pw 1", "port": 5432, "tls": {"ca": "line1\nline2"}, "hosts": ["a", "b"]}
field: {"ca": "line1\nline2"}
ca: "line1\nline2"
bin: AP8Qaw==
eu: from-eu
"#;
    assert_eq!(r.stdout, want);
    // us-east-1: plain, db (by name, full ARN and partial ARN, which keyfill cannot
    // know to be one secret before asking) and bin, in one batch; eu-west-1: one
    // secret, fetched on its own.
    let b = batches(&env.proxy);
    assert_eq!(b.len(), 1, "{b:?}");
    let mut ids = b[0].clone();
    ids.sort();
    let mut want_ids = vec![
        format!("{p}/plain"),
        format!("{p}/db"),
        format!("{p}/bin"),
        db_arn.clone(),
        partial_arn.to_owned(),
    ];
    want_ids.sort();
    assert_eq!(ids, want_ids);
    assert_eq!(
        env.proxy.count("GetSecretValue"),
        2,
        "one batch and the eu secret"
    );
}

#[test]
fn versions_after_rotation() {
    let m = moto();
    let p = unique("versions");
    let name = format!("{p}/rotating");
    m.create(REGION, &name, "v1");
    let v1 = m.call(
        REGION,
        "GetSecretValue",
        serde_json::json!({ "SecretId": name }),
    )["VersionId"]
        .as_str()
        .expect("version id")
        .to_owned();
    m.rotate(REGION, &name, "v2");
    let env = Env::new();
    let config = format!(
        "current: <<aws|{name}>>\n\
         explicit: <<aws|{name}?version_stage=AWSCURRENT>>\n\
         previous: <<aws|{name}?version_stage=AWSPREVIOUS>>\n\
         pinned: <<aws|{name}?version_id={v1}>>\n"
    );
    let r = env.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "current: v2\nexplicit: v2\nprevious: v1\npinned: v1\n"
    );
    // The default stage spelled out shares the current fetch; each pinned version
    // is its own GetSecretValue.
    assert_eq!(env.proxy.calls().len(), 3, "{:?}", env.proxy.calls());
}

#[test]
fn one_secret_referenced_a_thousand_times_is_fetched_once() {
    let m = moto();
    let p = unique("once");
    m.create(REGION, &format!("{p}/s"), r#"{"a":"1","b":"2"}"#);
    let env = Env::new();
    let mut config = String::from("secrets:\n  WHOLE: <<aws|");
    let _ = writeln!(config, "{p}/s>>");
    for i in 0..1000 {
        let r = match i % 3 {
            0 => format!("<<aws|{p}/s:a>>"),
            1 => format!("<<aws|{p}/s:b>>"),
            _ => "$<WHOLE>".to_owned(),
        };
        let _ = writeln!(config, "k{i}: \"{r}\"");
    }
    let r = env.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 1000);
    assert_eq!(env.proxy.calls().len(), 1, "{:?}", env.proxy.calls());
}

#[test]
fn distinct_current_secrets_go_in_batches_of_at_most_twenty() {
    let m = moto();
    let p = unique("batch");
    let n: usize = 45;
    let mut config = String::new();
    for i in 0..n {
        m.create(REGION, &format!("{p}/s{i}"), &format!("value-{i}"));
        let _ = writeln!(config, "k{i}: <<aws|{p}/s{i}>>");
    }
    let env = Env::new();
    let r = env.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for i in 0..n {
        assert!(r.stdout.contains(&format!("k{i}: value-{i}\n")));
    }
    let b = batches(&env.proxy);
    assert_eq!(b.len(), n.div_ceil(20), "{b:?}");
    assert!(b.iter().all(|ids| ids.len() <= 20));
    let ids: HashSet<&String> = b.iter().flatten().collect();
    assert_eq!(ids.len(), n);
    assert_eq!(env.proxy.calls().len(), b.len(), "no single calls");
}

#[test]
fn ten_thousand_references_to_a_thousand_secrets() {
    let m = moto();
    let p = unique("load");
    let n: usize = 1000;
    let mut config = String::new();
    for i in 0..n {
        m.create(REGION, &format!("{p}/s{i}"), &format!("v{i}"));
    }
    for j in 0..10 * n {
        let _ = writeln!(config, "k{j}: <<aws|{p}/s{}>>", j % n);
    }
    for concurrency in ["8", "3"] {
        let env = Env::new();
        let r = env.run(&["render", "--concurrency", concurrency], &config);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(r.stdout.contains(&format!("k{}: v{}\n", 10 * n - 1, n - 1)));
        let b = batches(&env.proxy);
        assert_eq!(b.len(), n.div_ceil(20));
        let ids: HashSet<&String> = b.iter().flatten().collect();
        assert_eq!(ids.len(), n, "each secret is fetched exactly once");
        assert_eq!(b.iter().map(Vec::len).sum::<usize>(), n);
        let max: usize = concurrency.parse().expect("number");
        assert!(
            env.proxy.max_in_flight() <= max,
            "{} requests in flight with --concurrency {max}",
            env.proxy.max_in_flight()
        );
    }
}

#[test]
fn every_failing_secret_is_reported_in_one_pass_and_nothing_is_written() {
    let m = moto();
    let p = unique("errors");
    m.create(REGION, &format!("{p}/ok"), "fine");
    m.create(
        REGION,
        &format!("{p}/json"),
        r#"{"user":"canary-user-value","pw":"canary-pw-value"}"#,
    );
    m.create(REGION, &format!("{p}/doomed"), "canary-doomed-value");
    m.call(
        REGION,
        "DeleteSecret",
        serde_json::json!({ "SecretId": format!("{p}/doomed"), "RecoveryWindowInDays": 7 }),
    );
    let env = Env::new();
    let out = env.dir.path().join("out.yaml");
    std::fs::write(&out, "old: content\n").expect("old output");
    let config = format!(
        "ok: <<aws|{p}/ok>>\n\
         missing: <<aws|{p}/missing>>\n\
         key: <<aws|{p}/json:password>>\n\
         doomed: <<aws|{p}/doomed>>\n\
         version: <<aws|{p}/ok?version_stage=NOPE>>\n"
    );
    let r = env.run(&["render", "-o", "out.yaml"], &config);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        "old: content\n"
    );
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error"))
        .collect();
    assert_eq!(errors.len(), 4, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{p}/missing")));
    assert!(r.stderr.contains("does not exist"));
    assert!(r.stderr.contains("no JSON key `password`"));
    assert!(r.stderr.contains("keys there: pw, user"), "{}", r.stderr);
    assert!(r.stderr.contains("scheduled for deletion"), "{}", r.stderr);
    assert!(r
        .stderr
        .contains("this version of the secret does not exist"));
    assert!(r.stderr.contains(":2:10"), "file:line:col, {}", r.stderr);
    assert!(!r.stderr.contains("canary"), "{}", r.stderr);
}

#[test]
fn binary_secrets_need_an_encoding() {
    let m = moto();
    let p = unique("binary");
    // Bytes that happen to be UTF-8 are still binary: SecretBinary says so.
    m.create_binary(REGION, &format!("{p}/b"), b"canary-binary");
    let env = Env::new();
    let r = env.render(&format!("x: <<aws|{p}/b>>\n"));
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("is a binary secret"), "{}", r.stderr);
    assert!(r.stderr.contains("encoding: base64"));
    assert!(!r.stderr.contains("canary") && r.stdout.is_empty());
    let r = env.render(&format!(
        "secrets:\n  B: {{ aws: {{ secret_id: {p}/b }}, encoding: base64 }}\nx: $<B>\n"
    ));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: Y2FuYXJ5LWJpbmFyeQ==\n")
    );
}

#[test]
fn check_resolve_reports_each_status_without_values() {
    let m = moto();
    let p = unique("check");
    m.create(REGION, &format!("{p}/found"), "canary-found-value");
    m.create(REGION, &format!("{p}/denied"), "canary-denied-value");
    let env = Env::new();
    // The caller may use GetSecretValue but not BatchGetSecretValue, and not on
    // the one secret.
    env.proxy.inject(
        "BatchGetSecretValue",
        1,
        Fault::aws(400, "AccessDeniedException", "no batch"),
    );
    env.proxy.inject_matching(
        "GetSecretValue",
        &format!("{p}/denied"),
        1,
        Fault::aws(
            400,
            "AccessDeniedException",
            "User: arn:aws:iam::1:user/x is not authorized",
        ),
    );
    let config = format!(
        "secrets:\n  FOUND: <<aws|{p}/found>>\n  GONE: <<aws|{p}/gone>>\n  DENIED: <<aws|{p}/denied>>\n\
         a: $<FOUND>\nb: $<GONE>\nc: $<DENIED>\nd: <<aws|{p}/found>>\ne: <<aws|{p}/gone>>\n"
    );
    let r = env.run(&["check", "--resolve"], &config);
    assert!(r.stdout.contains("FOUND   used    aws|"), "{}", r.stdout);
    let status = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.rsplit_once('['))
            .map(|(_, s)| s.trim_end_matches(']').to_owned())
    };
    assert_eq!(status("FOUND").as_deref(), Some("found"));
    assert_eq!(status("GONE").as_deref(), Some("not found"));
    assert_eq!(status("DENIED").as_deref(), Some("access denied"));
    assert!(
        r.stdout.contains(&format!("<<aws|{p}/found>>  [found]")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&format!("<<aws|{p}/gone>>  [not found]")));
    // Denied outranks nothing: the worst class present is "not found" (exit 4).
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr.contains("secretsmanager:GetSecretValue"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("is not authorized"),
        "AWS's message is never shown"
    );
    assert!(!(r.stdout + &r.stderr).contains("canary"));
    // The denied batch fell back to one GetSecretValue per secret.
    assert_eq!(env.proxy.count("BatchGetSecretValue"), 1);
    assert_eq!(env.proxy.count("GetSecretValue") - 1, 3);
}

#[test]
fn totp_codes_from_a_seed_in_secrets_manager() {
    let m = moto();
    let p = unique("totp");
    // RFC 6238's SHA1 seed, "12345678901234567890", in base32 as apps show it.
    let seed = "gezd gnbv gy3t qojq gezd gnbv gy3t qojq";
    m.create(
        REGION,
        &format!("{p}/seed"),
        &format!(r#"{{"seed":"{seed}"}}"#),
    );
    let env = Env::new();
    let config = format!(
        "secrets:\n  OTP:\n    aws: {{ secret_id: {p}/seed, key: seed }}\n    totp: {{ digits: 8 }}\n\
         code: $<OTP>\n"
    );
    let before = oracle_codes();
    let r = env.render(&config);
    let after = oracle_codes();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let code = r
        .stdout
        .strip_prefix("code: ")
        .and_then(|s| s.trim_end().strip_prefix('\''))
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| r.stdout.strip_prefix("code: ").map(str::trim_end))
        .expect("a code");
    assert!(
        code == before || code == after,
        "{code} is neither {before} nor {after}"
    );
}

/// The current 8-digit RFC 6238 SHA1 code for the RFC seed, computed by Python's
/// standard library as an independent implementation.
fn oracle_codes() -> String {
    let script = r#"
import hmac, hashlib, struct, time
c = struct.pack(">Q", int(time.time()) // 30)
h = hmac.new(b"12345678901234567890", c, hashlib.sha1).digest()
o = h[-1] & 15
print("%08d" % ((struct.unpack(">I", h[o:o + 4])[0] & 0x7fffffff) % 10**8))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .output()
        .expect("python3");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[test]
fn profiles_from_the_shared_config_choose_region_and_credentials() {
    let m = moto();
    let p = unique("profile");
    m.create("eu-central-1", &format!("{p}/s"), "from-profile");
    let env = Env::new();
    let dir = env.dir.path();
    std::fs::write(
        dir.join("aws-config"),
        "[profile team]\nregion = eu-central-1\n",
    )
    .expect("config");
    std::fs::write(
        dir.join("aws-credentials"),
        "[team]\naws_access_key_id = team\naws_secret_access_key = team\n",
    )
    .expect("credentials");
    std::fs::write(
        dir.join("config.yaml"),
        format!("x: <<aws|{p}/s?profile=team>>\n"),
    )
    .expect("yaml");
    let mut vars = env.vars();
    vars.retain(|(k, _)| {
        !k.starts_with("AWS_ACCESS")
            && !k.starts_with("AWS_SECRET")
            && k != "AWS_REGION"
            && !k.ends_with("_FILE")
    });
    vars.push((
        "AWS_CONFIG_FILE".into(),
        dir.join("aws-config").display().to_string(),
    ));
    vars.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        dir.join("aws-credentials").display().to_string(),
    ));
    let r = keyfill(dir, &["render", "config.yaml"], &vars);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: from-profile\n"),
        "{}",
        r.stderr
    );
    let call = &env.proxy.calls()[0];
    let auth = &call.headers["authorization"];
    assert!(
        auth.contains("Credential=team/") && auth.contains("/eu-central-1/"),
        "{auth}"
    );

    // A profile that does not exist is an error naming the fix, not a hang.
    std::fs::write(
        dir.join("config.yaml"),
        format!("x: <<aws|{p}/s?profile=nope>>\n"),
    )
    .expect("yaml");
    let r = keyfill(dir, &["render", "config.yaml"], &vars);
    assert_eq!(r.code, 5, "{}", r.stderr);
}

#[test]
fn missing_credentials_are_a_clear_error() {
    let env = Env::new();
    std::fs::write(env.dir.path().join("config.yaml"), "x: <<aws|any>>\n").expect("yaml");
    let mut vars = env.vars();
    vars.retain(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"));
    let r = keyfill(env.dir.path(), &["render", "config.yaml"], &vars);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("no AWS credentials were found"),
        "{}",
        r.stderr
    );
    assert!(env.proxy.calls().is_empty());
}

#[test]
fn https_endpoints_are_verified_and_aws_ca_bundle_trusts_a_private_ca() {
    let dir = tempfile::tempdir().expect("temp dir");
    let [cert, server_cert, server_key] = support::tls::private_ca(dir.path());
    let server = support::moto::start_tls(&server_cert, &server_key);
    let url = format!("https://{}", server.addr);
    // Seeded with boto3 (moto's own dependency), which trusts the same CA.
    let seed = format!(
        "import boto3; boto3.client('secretsmanager', endpoint_url='{url}', region_name='{REGION}', \
         aws_access_key_id='t', aws_secret_access_key='t', verify='{}')\
         .create_secret(Name='tls/s', SecretString='over-tls')",
        cert.display()
    );
    let ok = std::process::Command::new("python3")
        .args(["-c", &seed])
        .status()
        .expect("python3");
    assert!(ok.success(), "seeding over TLS failed");
    std::fs::write(dir.path().join("config.yaml"), "x: <<aws|tls/s>>\n").expect("yaml");
    let mut vars = aws_env(&url);
    let run = |vars: &[(String, String)]| keyfill(dir.path(), &["render", "config.yaml"], vars);

    // The system roots do not include the test CA: refused, not retried, explained.
    let r = run(&vars);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("TLS connection"), "{}", r.stderr);
    assert!(r.stderr.contains("AWS_CA_BUNDLE"));

    vars.push(("AWS_CA_BUNDLE".into(), cert.display().to_string()));
    let r = run(&vars);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: over-tls\n"),
        "{}",
        r.stderr
    );

    // A bundle that is not PEM is a configuration error, not a crash.
    std::fs::write(dir.path().join("bad.pem"), "not a certificate\n").expect("bad pem");
    vars.pop();
    vars.push((
        "AWS_CA_BUNDLE".into(),
        dir.path().join("bad.pem").display().to_string(),
    ));
    let r = run(&vars);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stderr.contains("holds no certificate") || r.stderr.contains("not a PEM"),
        "{}",
        r.stderr
    );
}

#[test]
fn http_proxy_variables_are_honoured() {
    let m = moto();
    let p = unique("proxyvars");
    m.create(REGION, &format!("{p}/s"), "via-proxy");
    // The endpoint is moto itself; the proxy sees requests only if keyfill uses it.
    let env = Env::new();
    std::fs::write(
        env.path().join("config.yaml"),
        format!("x: <<aws|{p}/s>>\n"),
    )
    .expect("yaml");
    let mut vars = aws_env(&m.url());
    vars.push(("HTTP_PROXY".into(), env.proxy.url()));
    let r = keyfill(env.path(), &["render", "config.yaml"], &vars);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: via-proxy\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.proxy.calls().len(), 1);

    vars.push(("NO_PROXY".into(), "127.0.0.1".into()));
    let r = keyfill(env.path(), &["render", "config.yaml"], &vars);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: via-proxy\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.proxy.calls().len(), 1, "NO_PROXY bypasses the proxy");
}
