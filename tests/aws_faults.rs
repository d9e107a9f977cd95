//! The aws provider under faults, and secret values that must never leak.
//!
//! Every test runs the real keyfill binary against a shared moto server through the
//! fault-injecting proxy in `support/proxy.rs`.
//!
//! Faults: a 5xx and throttling are retried (a `Retry-After` header is honoured) up
//! to six attempts; final errors (denied, not found, expired or unknown credentials,
//! bad signature, KMS decryption) are made exactly once and reported with their
//! own hint; an HTML error page is never echoed; a stalled or refused connection
//! ends in time with exit 5; one failing secret of several leaves an existing `-o`
//! output byte for byte as it was, with no temporary file.
//!
//! Leakage: canary values, random per run and stored in moto, never reach stderr
//! at any verbosity, in JSON logs, with the SDK's logging variables set, in
//! `check --resolve`, in missing-JSON-key errors, or in any file left behind;
//! stdout holds them exactly where a successful render references them, which
//! proves that they were fetched.

use crate::support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::moto::moto;
use support::proxy::Fault;
use support::{assert_silent, aws_env, canary, keyfill, unique, AwsEnv as Env};

const REGION: &str = "us-east-1";

/// Every regular file under `dir`, with its bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                todo.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap_or_default();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Asserts that no file under `dir` except `allowed` holds `canary`, and that no
/// keyfill temporary file (`.keyfill-*.tmp`) is left.
fn assert_no_stray_files(dir: &Path, canary: &str, allowed: &[&str]) {
    for (path, bytes) in files_under(dir) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            !(name.starts_with(".keyfill-") || name.ends_with(".tmp")),
            "temporary file left behind: {}",
            path.display()
        );
        let rel = path.strip_prefix(dir).unwrap_or(&path);
        if !allowed.iter().any(|a| Path::new(a) == rel) {
            assert!(
                !contains(&bytes, canary),
                "{} holds the canary",
                path.display()
            );
        }
    }
}

/// A secret named `{prefix}/s` holding `value`; returns its name.
fn secret(prefix: &str, value: &str) -> String {
    let name = format!("{prefix}/s");
    moto().create(REGION, &name, value);
    name
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------

#[test]
fn a_500_is_retried_and_the_value_arrives() {
    let name = secret(&unique("f500"), "after-500");
    let env = Env::new();
    env.proxy.inject(
        "GetSecretValue",
        1,
        Fault::aws(500, "InternalServiceError", "try again"),
    );
    let r = env.run(&["render"], &format!("x: <<aws|{name}>>\n"));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: after-500\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.count("GetSecretValue"), 2, "{:?}", env.proxy.calls());
}

#[test]
fn throttling_twice_then_success() {
    let name = secret(&unique("throttle2"), "after-throttling");
    let env = Env::new();
    env.proxy.inject(
        "GetSecretValue",
        2,
        Fault::aws(400, "ThrottlingException", "Rate exceeded"),
    );
    let r = env.run(&["render"], &format!("x: <<aws|{name}>>\n"));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: after-throttling\n"),
        "{}",
        r.stderr
    );
    assert_eq!(env.count("GetSecretValue"), 3, "{:?}", env.proxy.calls());
}

#[test]
fn retry_after_is_honoured() {
    let name = secret(&unique("retryafter"), "after-waiting");
    let env = Env::new();
    env.proxy.inject(
        "GetSecretValue",
        1,
        Fault::Respond {
            status: 400,
            headers: vec![
                ("x-amzn-errortype".into(), "ThrottlingException".into()),
                ("retry-after".into(), "1".into()),
            ],
            body: r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.into(),
        },
    );
    let r = env.run(
        &["render", "--timeout", "10s"],
        &format!("x: <<aws|{name}>>\n"),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: after-waiting\n"),
        "{}",
        r.stderr
    );
    let calls = env.calls_to("GetSecretValue");
    assert_eq!(calls.len(), 2, "{calls:?}");
    let gap = calls[1].at.duration_since(calls[0].at);
    // Our own first backoff is at most 100 ms: only the header explains a second.
    assert!(
        gap >= Duration::from_secs(1),
        "retried {gap:?} after a Retry-After: 1"
    );
    assert!(gap < Duration::from_secs(5), "waited {gap:?}");
}

#[test]
fn throttled_forever_gives_up_after_six_attempts() {
    let name = secret(&unique("throttleforever"), "never-seen");
    let env = Env::new();
    env.proxy.inject(
        "GetSecretValue",
        1000,
        Fault::aws(400, "ThrottlingException", "Rate exceeded"),
    );
    let config = format!("secrets:\n  T: <<aws|{name}>>\nx: $<T>\n");
    let (r, took) = env.timed(&["render", "--timeout", "10s"], &config);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert!(
        r.stderr
            .contains("kept throttling the requests (ThrottlingException)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&name), "names the secret: {}", r.stderr);
    assert!(
        !r.stderr.contains("Rate exceeded"),
        "AWS's message is never shown"
    );
    // Backoffs of at most 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s fit in the deadline, so
    // the attempt limit, not the deadline, is what stops it.
    assert_eq!(env.count("GetSecretValue"), 6, "{:?}", env.proxy.calls());
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // `check --resolve` names the class.
    env.proxy.reset();
    let r = env.run(&["check", "--resolve", "--timeout", "10s"], &config);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let status = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("T "))
        .and_then(|l| l.rsplit_once('['))
        .map(|(_, s)| s.trim_end_matches(']').to_owned());
    assert_eq!(status.as_deref(), Some("throttled"), "{}", r.stdout);
    assert_eq!(env.count("GetSecretValue"), 6, "{:?}", env.proxy.calls());
}

#[test]
fn access_denied_is_not_retried() {
    let c = canary();
    let name = secret(&unique("denied"), "denied-value");
    let env = Env::new();
    // Injected once: a retry would succeed and change the exit code.
    env.proxy.inject(
        "GetSecretValue",
        1,
        Fault::aws(
            400,
            "AccessDeniedException",
            &format!("User: arn:aws:iam::1:user/{c} is not authorized"),
        ),
    );
    let r = env.run(&["render"], &format!("x: <<aws|{name}>>\n"));
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(env.count("GetSecretValue"), 1, "{:?}", env.proxy.calls());
    assert!(
        r.stderr.contains("secretsmanager:GetSecretValue"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("access denied"), "{}", r.stderr);
    assert!(
        !r.stderr.contains(&c),
        "AWS's message is never shown: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("is not authorized"), "{}", r.stderr);
}

#[test]
fn resource_not_found_is_not_retried() {
    let p = unique("notfound");
    let env = Env::new();
    let r = env.run(&["render"], &format!("x: <<aws|{p}/absent>>\n"));
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("{p}/absent")), "{}", r.stderr);
    assert_eq!(env.count("GetSecretValue"), 1, "{:?}", env.proxy.calls());
}

#[test]
fn an_html_error_page_is_retried_and_never_echoed() {
    let c = canary();
    let name = secret(&unique("html"), "behind-the-gateway");
    let env = Env::new();
    env.proxy.inject(
        "GetSecretValue",
        1000,
        Fault::Respond {
            status: 502,
            headers: vec![
                ("content-type".into(), "text/html; charset=utf-8".into()),
                ("x-amzn-errormessage".into(), c.clone()),
                ("x-debug-token".into(), c.clone()),
            ],
            body: format!(
                "<html><head><title>502 Bad Gateway</title></head>\
                 <body><h1>Bad Gateway</h1><p>upstream {c} failed</p></body></html>"
            ),
        },
    );
    let (r, took) = env.timed(
        &["render", "--timeout", "10s"],
        &format!("x: <<aws|{name}>>\n"),
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    assert_silent(&r, &c, "HTML 502");
    assert!(!r.stderr.contains("Bad Gateway"), "{}", r.stderr);
    assert!(!r.stderr.contains("<html"), "{}", r.stderr);
    assert!(r.stderr.contains("502"), "says what happened: {}", r.stderr);
    assert_eq!(env.count("GetSecretValue"), 6, "{:?}", env.proxy.calls());
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_stall_ends_at_the_deadline() {
    let name = secret(&unique("stall"), "never-seen");
    let env = Env::new();
    env.proxy.inject(
        "GetSecretValue",
        1000,
        Fault::Stall(Duration::from_secs(60)),
    );
    let (r, took) = env.timed(
        &["render", "--timeout", "2s"],
        &format!("x: <<aws|{name}>>\n"),
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("did not answer in time"), "{}", r.stderr);
    assert!(
        took < Duration::from_secs(20),
        "a 2 s deadline took {took:?}"
    );
    // A stall that uses the whole deadline is not retried.
    assert_eq!(env.count("GetSecretValue"), 1, "{:?}", env.proxy.calls());
}

#[test]
fn a_stalled_attempt_times_out_and_the_retry_succeeds() {
    // One stall, then answers: the attempt timeout (10 s, below the 20 s deadline)
    // ends the first attempt, and the retry gets the value.
    let name = secret(&unique("stallonce"), "after-the-stall");
    let env = Env::new();
    env.proxy
        .inject("GetSecretValue", 1, Fault::Stall(Duration::from_secs(60)));
    let (r, took) = env.timed(
        &["render", "--timeout", "20s"],
        &format!("x: <<aws|{name}>>\n"),
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: after-the-stall\n"),
        "{}",
        r.stderr
    );
    let calls = env.calls_to("GetSecretValue");
    assert_eq!(calls.len(), 2, "{calls:?}");
    let gap = calls[1].at.duration_since(calls[0].at);
    assert!(
        gap >= Duration::from_secs(9) && gap < Duration::from_secs(15),
        "the retry came {gap:?} after the stalled attempt"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn connection_refused_is_unreachable() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.yaml"), "x: <<aws|refused/s>>\n").expect("config");
    let start = Instant::now();
    let r = keyfill(
        dir.path(),
        &["render", "--timeout", "5s", "config.yaml"],
        &aws_env(support::NOWHERE),
    );
    let took = start.elapsed();
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("cannot connect"), "{}", r.stderr);
    assert!(r.stderr.contains("refused/s"), "{}", r.stderr);
    assert!(took < Duration::from_secs(15), "took {took:?}");
}

/// A final error `code` on GetSecretValue is made once (a retry would succeed),
/// exits 5 and gives `hint`, never AWS's message.
fn final_error(code: &str, hint: &str) {
    let c = canary();
    let name = secret(&unique(&code.to_ascii_lowercase()), "unreached-value");
    let env = Env::new();
    env.proxy.inject(
        "GetSecretValue",
        1,
        Fault::aws(400, code, &format!("aws says {c}")),
    );
    let r = env.run(&["render"], &format!("x: <<aws|{name}>>\n"));
    assert_eq!(r.code, 5, "{code}: {}", r.stderr);
    assert!(r.stdout.is_empty(), "{code}: {}", r.stdout);
    assert_eq!(
        env.count("GetSecretValue"),
        1,
        "{code} was retried: {:?}",
        env.proxy.calls()
    );
    assert!(r.stderr.contains(hint), "{code}: {}", r.stderr);
    assert!(
        r.stderr.contains(&format!("({code})")),
        "{code}: {}",
        r.stderr
    );
    assert!(r.stderr.contains(&name), "{code}: {}", r.stderr);
    assert!(
        !r.stderr.contains(&c),
        "{code}: AWS's message shown: {}",
        r.stderr
    );
}

#[test]
fn expired_token_is_final_with_its_hint() {
    final_error(
        "ExpiredTokenException",
        "the AWS credentials have expired: refresh them",
    );
}

#[test]
fn unrecognized_client_is_final_with_its_hint() {
    final_error(
        "UnrecognizedClientException",
        "AWS does not recognise the access key",
    );
}

#[test]
fn invalid_signature_is_final_with_its_hint() {
    final_error(
        "InvalidSignatureException",
        "AWS rejected the request signature",
    );
}

#[test]
fn decryption_failure_is_final_with_its_hint() {
    final_error("DecryptionFailure", "kms:Decrypt");
}

#[test]
fn one_failing_secret_of_several_writes_nothing() {
    let c = canary();
    let p = unique("oneofn");
    let m = moto();
    for s in ["alpha", "beta", "gamma"] {
        m.create(REGION, &format!("{p}/{s}"), &format!("{s}-{c}"));
    }
    let env = Env::new();
    // No batch permission, and none on beta: alpha and gamma arrive, beta fails.
    env.proxy.inject(
        "BatchGetSecretValue",
        1,
        Fault::aws(400, "AccessDeniedException", "no batch"),
    );
    env.proxy.inject_matching(
        "GetSecretValue",
        &format!(r#""SecretId":"{p}/beta""#),
        1000,
        Fault::aws(400, "AccessDeniedException", "not this one"),
    );
    let old = b"# previous render\nold: content\n";
    let out = env.path().join("out.yaml");
    std::fs::write(&out, old).expect("old output");
    let config = format!("a: <<aws|{p}/alpha>>\nb: <<aws|{p}/beta>>\ng: <<aws|{p}/gamma>>\n");
    let r = env.run(&["render", "-o", "out.yaml"], &config);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_silent(&r, &c, "one of N");
    assert!(r.stderr.contains(&format!("{p}/beta")), "{}", r.stderr);
    assert!(!r.stderr.contains(&format!("{p}/alpha")), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).expect("out.yaml"), old);
    // The others were fetched (so the failure came after real values were held).
    let singles = env.calls_to("GetSecretValue");
    assert_eq!(singles.len(), 3, "{singles:?}");
    assert_no_stray_files(env.path(), &c, &[]);
    let mut names: Vec<String> = std::fs::read_dir(env.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["config.yaml", "out.yaml", "tmp"]);
}

// ---------------------------------------------------------------------------
// Leakage
// ---------------------------------------------------------------------------

/// Canary secrets in moto: a plain one and a JSON one whose every value holds the
/// canary. Returns (canary, plain name, JSON name).
fn canary_secrets(test: &str) -> (String, String, String) {
    let c = canary();
    let p = unique(test);
    let m = moto();
    let plain = format!("{p}/plain");
    let json = format!("{p}/json");
    m.create(REGION, &plain, &c);
    m.create(
        REGION,
        &json,
        &format!(r#"{{"user":"u-{c}","password":"{c}","nested":{{"deep":"{c}"}},"list":["{c}"]}}"#),
    );
    (c, plain, json)
}

/// A config that uses both canary secrets, directly and declared.
fn canary_config(plain: &str, json: &str) -> String {
    format!(
        "secrets:\n  PW: {{ aws: {{ secret_id: {json}, key: password }} }}\n\
         plain: <<aws|{plain}>>\n\
         password: $<PW>\n\
         deep: <<aws|{json}:nested.deep>>\n\
         url: \"pg://<<aws|{json}:user>>@db\"\n"
    )
}

/// The render `canary_config` must give.
fn rendered(c: &str) -> String {
    format!("plain: {c}\npassword: {c}\ndeep: {c}\nurl: \"pg://u-{c}@db\"\n")
}

#[test]
fn canary_is_only_in_the_rendered_output_at_every_verbosity() {
    let (c, plain, json) = canary_secrets("leakverbose");
    let config = canary_config(&plain, &json);
    let env = Env::new();
    for args in [
        &["render"][..],
        &["render", "-v"],
        &["render", "-vv"],
        &["render", "-vvv"],
        &["render", "--log-format", "json"],
        &["render", "--log-format", "json", "-vv"],
    ] {
        env.proxy.reset();
        let r = env.run(args, &config);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, rendered(&c), "{args:?}");
        assert!(
            !r.stderr.contains(&c),
            "{args:?}: canary on stderr:\n{}",
            r.stderr
        );
        assert_eq!(env.proxy.calls().len(), 1, "{args:?}: one batch");
    }
    assert_no_stray_files(env.path(), &c, &[]);
}

#[test]
fn canary_stays_off_stderr_through_retries_and_partial_failures() {
    let (c, plain, json) = canary_secrets("leakretry");
    let env = Env::new();
    let config = canary_config(&plain, &json);
    for args in [
        &["render", "-vv"][..],
        &["render", "--log-format", "json", "-vv"],
    ] {
        // A 500 and a throttle before the values arrive: the retry path logs too.
        env.proxy.reset();
        env.proxy.inject(
            "BatchGetSecretValue",
            1,
            Fault::aws(500, "InternalServiceError", "oops"),
        );
        env.proxy.inject(
            "BatchGetSecretValue",
            1,
            Fault::aws(400, "ThrottlingException", "slow down"),
        );
        let r = env.run(args, &config);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, rendered(&c), "{args:?}");
        assert!(!r.stderr.contains(&c), "{args:?}: {}", r.stderr);
        assert_eq!(env.count("BatchGetSecretValue"), 3, "{args:?}");

        // The canary secrets arrive, another one is missing: exit 4, nothing shown.
        env.proxy.reset();
        let failing = format!("{config}gone: <<aws|{plain}-absent>>\n");
        let r = env.run(args, &failing);
        assert_eq!(r.code, 4, "{args:?}: {}", r.stderr);
        assert_silent(&r, &c, "partial failure");
    }
    assert_no_stray_files(env.path(), &c, &[]);
}

#[test]
fn canary_stays_off_stderr_with_sdk_logging_variables() {
    let (c, plain, json) = canary_secrets("leakenv");
    let env = Env::new();
    let config = canary_config(&plain, &json);
    let loud = [
        ("RUST_LOG", "trace"),
        ("AWS_LOG_LEVEL", "trace"),
        ("AWS_SDK_LOG_LEVEL", "trace"),
        ("SMITHY_LOG", "trace"),
        ("RUST_LOG_STYLE", "never"),
        ("RUST_BACKTRACE", "full"),
    ];
    for args in [&["render", "-vv"][..], &["render", "--log-format", "json"]] {
        env.proxy.reset();
        env.proxy.inject(
            "BatchGetSecretValue",
            1,
            Fault::aws(500, "InternalServiceError", "oops"),
        );
        let r = env.run_with(args, &config, &loud);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, rendered(&c), "{args:?}");
        assert!(!r.stderr.contains(&c), "{args:?}: {}", r.stderr);
        // The SDK's request signing must not be logged either.
        assert!(!r.stderr.contains("AWS4-HMAC-SHA256"), "{}", r.stderr);
        assert!(!r.stderr.contains("Credential=testing"), "{}", r.stderr);
    }
    // check --resolve under the same variables.
    let r = env.run_with(&["check", "--resolve", "-vv"], &config, &loud);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_silent(&r, &c, "check --resolve with RUST_LOG=trace");
    assert_no_stray_files(env.path(), &c, &[]);
}

#[test]
fn check_resolve_never_prints_the_canary() {
    let (c, plain, json) = canary_secrets("leakcheck");
    let env = Env::new();
    let config = format!(
        "secrets:\n  PLAIN: <<aws|{plain}>>\n  PW: {{ aws: {{ secret_id: {json}, key: password }} }}\n\
         \x20 DEEP: <<aws|{json}:nested.deep>>\n  UNUSED: <<aws|{json}:list.0>>\n\
         a: $<PLAIN>\nb: $<PW>\nc: $<DEEP>\n"
    );
    for args in [
        &["check", "--resolve"][..],
        &["check", "--resolve", "-vv"],
        &["check", "--resolve", "--log-format", "json"],
    ] {
        env.proxy.reset();
        let r = env.run(args, &config);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert_silent(&r, &c, &format!("{args:?}"));
        assert!(r.stdout.contains("PLAIN"), "{args:?}: {}", r.stdout);
        assert!(r.stdout.contains("found"), "{args:?}: {}", r.stdout);
        assert!(
            env.proxy.count("GetSecretValue") >= 1,
            "{args:?}: --resolve fetched nothing"
        );
    }
    // With a missing secret next to them: exit 4, still no value.
    let r = env.run(
        &["check", "--resolve"],
        &format!("{config}d: <<aws|{plain}-absent>>\n"),
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_silent(&r, &c, "check --resolve with a missing secret");
    assert_no_stray_files(env.path(), &c, &[]);
}

#[test]
fn a_missing_json_key_lists_key_names_only() {
    let (c, plain, json) = canary_secrets("leakkey");
    let env = Env::new();
    for (reference, code, must) in [
        (
            format!("{json}:nope"),
            4,
            "keys there: list, nested, password, user",
        ),
        (format!("{json}:nested.nope"), 4, "keys there: deep"),
        (format!("{json}:list.3"), 4, "no JSON key `list.3`"),
        (format!("{json}:password.x"), 4, "no JSON key `password.x`"),
        (format!("{plain}:field"), 3, "is not a JSON object"),
    ] {
        for args in [&["render"][..], &["render", "-vv", "--log-format", "json"]] {
            let r = env.run(args, &format!("x: <<aws|{reference}>>\n"));
            assert_eq!(r.code, code, "{reference} {args:?}: {}", r.stderr);
            assert_silent(&r, &c, &reference);
            if args.len() == 1 {
                assert!(r.stderr.contains(must), "{reference}: {}", r.stderr);
            }
        }
    }
    assert_no_stray_files(env.path(), &c, &[]);
}

#[test]
fn no_file_but_the_output_holds_the_canary() {
    let (c, plain, json) = canary_secrets("leakfiles");
    let env = Env::new();
    let config = canary_config(&plain, &json);
    let r = env.run(&["render", "-v", "-o", "out.yaml"], &config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_silent(&r, &c, "render -o");
    let out = std::fs::read_to_string(env.path().join("out.yaml")).expect("out.yaml");
    assert_eq!(out, rendered(&c));
    assert_no_stray_files(env.path(), &c, &["out.yaml"]);

    // A failed re-render (a missing key) keeps the output and adds no file.
    let r = env.run(
        &["render", "-vv", "-o", "out.yaml"],
        &format!("{config}k: <<aws|{json}:nope>>\n"),
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_silent(&r, &c, "failed render -o");
    assert_eq!(
        std::fs::read_to_string(env.path().join("out.yaml")).expect("out.yaml"),
        out
    );
    assert_no_stray_files(env.path(), &c, &["out.yaml"]);
    assert!(
        files_under(&env.path().join("tmp")).is_empty(),
        "keyfill wrote into TMPDIR"
    );
}
