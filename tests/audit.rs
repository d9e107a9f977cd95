//! `--audit FILE`: one JSON line per secret access, never a value. Records are
//! read back as JSON and checked field by field: against moto (a fetch, a JSON
//! key, a direct reference, not found), in `keyfill watch` (the second render
//! served from the cache), from concurrent runs sharing one log (every line
//! whole), and when the log cannot be written (nothing rendered).

use crate::support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::moto::moto;
use support::watch::{save_by_rename, Watch};
use support::{canary, keyfill, unique, AwsEnv};

const REGION: &str = "us-east-1";

/// Every line of the log at `path`, each parsed (a line that is not one JSON
/// object fails the test).
fn records(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a torn last line:\n{text}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("`{l}` is not JSON: {e}")))
        .collect()
}

/// `(secret, provider, locator, outcome, cache_hit)` of each record, sorted.
fn summary(records: &[Value]) -> Vec<(String, String, String, String, bool)> {
    let mut v: Vec<_> = records
        .iter()
        .map(|r| {
            (
                r["secret"].as_str().unwrap_or("-").to_owned(),
                r["provider"].as_str().unwrap_or_default().to_owned(),
                r["locator"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap_or_default().to_owned(),
                r["cache_hit"].as_bool().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

fn row(
    secret: &str,
    provider: &str,
    locator: &str,
    outcome: &str,
    hit: bool,
) -> (String, String, String, String, bool) {
    (
        secret.to_owned(),
        provider.to_owned(),
        locator.to_owned(),
        outcome.to_owned(),
        hit,
    )
}

#[test]
fn every_access_is_recorded_with_its_outcome_and_never_its_value() {
    let name = unique("audit-aws");
    let value = canary();
    moto().create(REGION, &name, &format!(r#"{{"password":"{value}"}}"#));
    let env_value = canary();
    let env = AwsEnv::new();
    let config = format!(
        "secrets:\n  db: {{ aws: {{ secret_id: {name}, key: password }} }}\n  \
         user: {{ env: APP_USER }}\n\
         db: $<db>\nuser: $<user>\nagain: <<aws|{name}:password>>\n"
    );
    let r = env.run_with(
        &["render", "--audit", "audit.jsonl", "-o", "out.yaml"],
        &config,
        &[("APP_USER", &env_value)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let log = env.path().join("audit.jsonl");
    let text = fs::read_to_string(&log).unwrap_or_default();
    for secret in [&value, &env_value] {
        assert!(
            !text.contains(secret.as_str()),
            "a value in the log:\n{text}"
        );
        assert!(!r.stderr.contains(secret.as_str()), "{}", r.stderr);
    }
    let recs = records(&log);
    let locator = format!("{name}:password");
    assert_eq!(
        summary(&recs),
        vec![
            row("-", "aws", &locator, "found", false),
            row("db", "aws", &locator, "found", false),
            row("user", "env", "APP_USER", "found", false),
        ],
        "{text}"
    );
    for rec in &recs {
        assert_eq!(rec["config"], "config.yaml");
        assert!(rec["pid"].as_u64().is_some_and(|p| p > 0), "{rec}");
        let time = rec["time"].as_str().unwrap_or_default();
        assert!(
            time.len() >= 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
        assert!(
            rec["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{rec}"
        );
    }
    // The aws fetch went to the server: it took time; both records name that one fetch.
    let aws: Vec<f64> = recs
        .iter()
        .filter(|r| r["provider"] == "aws")
        .filter_map(|r| r["duration_ms"].as_f64())
        .collect();
    assert!(
        aws.len() == 2 && aws[0] > 0.0 && aws[0] == aws[1],
        "{aws:?}"
    );
    assert_eq!(
        env.proxy.count("BatchGetSecretValue") + env.proxy.count("GetSecretValue"),
        1
    );
    let mode = fs::metadata(&log)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.ok(), Some(0o600));
}

#[test]
fn a_failed_access_is_recorded_and_nothing_is_written() {
    let env = AwsEnv::new();
    let missing = unique("audit-missing");
    fs::write(env.path().join("out.yaml"), "old: output\n").expect("write old output");
    let config = format!("secrets:\n  db: {{ aws: {missing} }}\ndb: $<db>\n");
    let r = env.run(
        &["render", "--audit", "audit.jsonl", "-o", "out.yaml"],
        &config,
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(
        fs::read_to_string(env.path().join("out.yaml")).unwrap_or_default(),
        "old: output\n"
    );
    assert_eq!(
        summary(&records(&env.path().join("audit.jsonl"))),
        vec![row("db", "aws", &missing, "not found", false)]
    );
}

#[test]
fn check_resolve_records_every_declaration() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(
        dir.path().join("app.yaml"),
        "secrets:\n  a: { env: AUDIT_SET }\n  b: { env: AUDIT_UNSET }\n  c: inline\na: $<a>\n",
    )
    .expect("write config");
    let vars = [("AUDIT_SET".to_owned(), canary())];
    let r = keyfill(
        dir.path(),
        &["check", "--resolve", "--audit", "audit.jsonl", "app.yaml"],
        &vars,
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    // Inline values are no access: only the two environment variables.
    assert_eq!(
        summary(&records(&dir.path().join("audit.jsonl"))),
        vec![
            row("a", "env", "AUDIT_SET", "found", false),
            row("b", "env", "AUDIT_UNSET", "not found", false),
        ]
    );
}

#[test]
fn concurrent_runs_append_whole_lines() {
    const RUNS: usize = 8;
    const SECRETS: usize = 300;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = String::from("secrets:\n");
    let mut body = String::new();
    for i in 0..SECRETS {
        config.push_str(&format!("  s{i}: {{ env: AUDIT_V{i} }}\n"));
        body.push_str(&format!("k{i}: $<s{i}>\n"));
    }
    config.push_str(&body);
    fs::write(dir.path().join("app.yaml"), config).expect("write config");
    let children: Vec<_> = (0..RUNS)
        .map(|_| {
            let mut cmd = support::command();
            cmd.current_dir(dir.path())
                .args(["render", "--audit", "audit.jsonl", "app.yaml"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            for i in 0..SECRETS {
                cmd.env(format!("AUDIT_V{i}"), "v");
            }
            cmd.spawn().expect("spawn keyfill")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let recs = records(&dir.path().join("audit.jsonl"));
    assert_eq!(recs.len(), RUNS * SECRETS);
    // Each run's lines are its own, whole and complete.
    let mut per_run: std::collections::HashMap<u64, usize> = Default::default();
    for r in &recs {
        *per_run
            .entry(r["pid"].as_u64().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(per_run.len(), RUNS);
    assert!(per_run.values().all(|n| *n == SECRETS), "{per_run:?}");
    // One write per render: a run's lines are never split by another's.
    let pids: Vec<u64> = recs.iter().filter_map(|r| r["pid"].as_u64()).collect();
    let blocks = 1 + pids.windows(2).filter(|w| w[0] != w[1]).count();
    assert_eq!(blocks, RUNS);
}

#[test]
fn exec_records_its_render_before_the_command_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(
        dir.path().join("app.yaml"),
        "secrets:\n  a: { env: AUDIT_A }\na: $<a>\n",
    )
    .expect("write config");
    let vars = [("AUDIT_A".to_owned(), canary())];
    // The command sees a complete log: its render's line is there.
    let r = keyfill(
        dir.path(),
        &[
            "exec",
            "--audit",
            "audit.jsonl",
            "app.yaml",
            "-o",
            "out.yaml",
            "--",
            "grep",
            "-c",
            "AUDIT_A",
            "audit.jsonl",
        ],
        &vars,
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "1\n"), "{}", r.stderr);
    assert_eq!(
        summary(&records(&dir.path().join("audit.jsonl"))),
        vec![row("a", "env", "AUDIT_A", "found", false)]
    );
}

#[test]
fn watch_records_cache_hits() {
    let name = unique("audit-watch");
    let value = canary();
    moto().create(REGION, &name, &value);
    let env = AwsEnv::new();
    let dir = env.path();
    fs::write(
        dir.join("app.yaml"),
        format!("secrets:\n  a: {{ aws: {name} }}\na: $<a>\n"),
    )
    .expect("write config");
    let vars = env.vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (&**k, &**v)).collect();
    let mut w = Watch::start(
        dir,
        &[
            "watch",
            "app.yaml",
            "-o",
            "out.yaml",
            "--audit",
            "audit.jsonl",
        ],
        &vars,
    );
    let t = Duration::from_secs(30);
    w.wait_renders(1, t);
    save_by_rename(
        &dir.join("app.yaml"),
        &format!("secrets:\n  a: {{ aws: {name} }}\nb: $<a>\n"),
    );
    w.wait_renders(2, t);
    let recs = records(&dir.join("audit.jsonl"));
    assert_eq!(
        summary(&recs),
        vec![
            row("a", "aws", &name, "found", false),
            row("a", "aws", &name, "found", true),
        ],
        "{}",
        w.stderr()
    );
    let hit = recs.iter().find(|r| r["cache_hit"] == true);
    assert_eq!(hit.map(|r| r["duration_ms"].as_f64()), Some(Some(0.0)));
    assert_eq!(
        env.proxy.count("BatchGetSecretValue") + env.proxy.count("GetSecretValue"),
        1
    );
    let log = fs::read_to_string(dir.join("audit.jsonl")).unwrap_or_default();
    assert!(!log.contains(&value) && !w.stderr().contains(&value));
}

#[test]
fn an_audit_log_that_cannot_be_appended_to_stops_the_render() {
    let dir = tempfile::tempdir().expect("temp dir");
    fs::write(
        dir.path().join("app.yaml"),
        "secrets:\n  a: { env: AUDIT_A }\na: $<a>\n",
    )
    .expect("write config");
    fs::write(dir.path().join("out.yaml"), "old: output\n").expect("write old output");
    let vars = [("AUDIT_A".to_owned(), canary())];
    let r = keyfill(
        dir.path(),
        &[
            "render",
            "--audit",
            "missing/audit.jsonl",
            "-o",
            "out.yaml",
            "app.yaml",
        ],
        &vars,
    );
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("cannot append to the audit log `missing/audit.jsonl`"),
        "{}",
        r.stderr
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("out.yaml")).unwrap_or_default(),
        "old: output\n"
    );
}

#[test]
fn a_log_at_the_file_size_limit_is_left_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = String::from("secrets:\n");
    for i in 0..5 {
        config.push_str(&format!("  s{i}: {{ env: AUDIT_LIMIT }}\n"));
    }
    for i in 0..5 {
        config.push_str(&format!("k{i}: $<s{i}>\n"));
    }
    fs::write(dir.path().join("app.yaml"), config).expect("write config");
    // An earlier line and some padding: 1,900 of the 2,048 bytes `ulimit -f 2` allows.
    let earlier = format!("{{\"earlier\":\"{}\"}}\n", "x".repeat(1900 - 15));
    fs::write(dir.path().join("audit.jsonl"), &earlier).expect("write log");
    // bash counts `ulimit -f` in KiB; keyfill is `$0`.
    let mut cmd = std::process::Command::new("bash");
    let out = support::scrub(&mut cmd)
        .current_dir(dir.path())
        .env("AUDIT_LIMIT", canary())
        .args([
            "-c",
            "ulimit -f 2 && exec \"$0\" render --audit audit.jsonl -o out.yaml app.yaml",
            support::BIN,
        ])
        .output()
        .expect("run bash");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(err.contains("file-size limit"), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("audit.jsonl")).unwrap_or_default(),
        earlier
    );
    assert!(!dir.path().join("out.yaml").exists());
}
