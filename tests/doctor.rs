//! `keyfill doctor` against the local servers (moto, OpenBao, the 1Password
//! Connect fake) and local files: each provider's credentials source, reach and
//! identity; each secret's status without its value being read (the servers'
//! request logs show which calls were made); exit codes; `--format json`; the
//! providers chosen from the environment without a config; and canaries (as
//! values and as tokens) on neither stream.

use crate::support;

use serde_json::{json, Value};
use support::connect::{Connect, Field, Item};
use support::moto::moto;
use support::openbao::{bao, VaultEnv};
use support::{canary, unique, AwsEnv, Run, Test};

/// The parsed `--format json` report; panics when stdout is not one JSON document.
fn report(r: &Run) -> Value {
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\n{}", r.stdout, r.stderr))
}

/// The report's entry for `provider`.
fn provider<'v>(doc: &'v Value, provider: &str) -> &'v Value {
    doc["providers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["provider"] == provider))
        .unwrap_or_else(|| panic!("no `{provider}` in {doc}"))
}

/// The report's entry for the secret named `name`.
fn secret<'v>(doc: &'v Value, name: &str) -> &'v Value {
    doc["secrets"]
        .as_array()
        .and_then(|ss| ss.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no secret `{name}` in {doc}"))
}

/// The table line naming `name` (a secret's row).
fn row<'r>(r: &'r Run, name: &str) -> &'r str {
    r.stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no row for `{name}`:\n{}", r.stdout))
}

// ---------------------------------------------------------------------------
// env and file
// ---------------------------------------------------------------------------

#[test]
fn env_and_file_statuses_in_the_table_and_exit_4() {
    let value = canary();
    let mut t = Test::new();
    t.file("present.txt", &value)
        .config(
            "secrets:\n  SET: { env: KF_DOCTOR_SET }\n  UNSET: { env: KF_DOCTOR_UNSET }\n  \
             DEFAULTED: { env: KF_DOCTOR_UNSET, default: dev }\n  PRESENT: { file: ./present.txt }\n  \
             MISSING: { file: ./missing.txt }\n\
             a: $<SET>\nb: $<UNSET>\nc: $<DEFAULTED>\nd: $<PRESENT>\ne: $<MISSING>\n",
        )
        .env("KF_DOCTOR_SET", &value)
        .env_remove("KF_DOCTOR_UNSET")
        .args(["doctor", "config.yaml"]);
    let r = t.run();
    r.code(4).silent(&value);
    assert!(
        r.stdout
            .starts_with("PROVIDER  CREDENTIALS  REACHABLE  IDENTITY\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\nenv       none needed  local      -\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\nfile      none needed  local      -\n"),
        "{}",
        r.stdout
    );
    for (name, status) in [
        ("SET", "readable"),
        ("UNSET", "not found"),
        ("DEFAULTED", "default"),
        ("PRESENT", "readable"),
        ("MISSING", "not found"),
    ] {
        assert!(row(&r, name).ends_with(status), "{name}: {}", row(&r, name));
    }
    assert!(
        r.stdout
            .contains("  UNSET: environment variable `KF_DOCTOR_UNSET` is not set\n"),
        "{}",
        r.stdout
    );
    assert_eq!(r.stderr, "");
}

#[test]
fn json_report_field_by_field() {
    let mut t = Test::new();
    t.file("present.txt", "x")
        .config(
            "secrets:\n  SET: { env: KF_DOCTOR_SET }\n  MISSING: { file: ./missing.txt }\n\
             a: $<SET>\nb: $<MISSING>\nc: <<file|present.txt>>\n",
        )
        .env("KF_DOCTOR_SET", "1")
        .args(["doctor", "--format", "json", "config.yaml"]);
    let r = t.run();
    r.code(4);
    let doc = report(&r);
    assert_eq!(doc["exit"], 4);
    let providers: Vec<&str> = doc["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .filter_map(|p| p["provider"].as_str())
        .collect();
    assert_eq!(providers, ["env", "file"]);
    let env = provider(&doc, "env");
    assert_eq!(env["why"], "referenced by the config");
    assert_eq!(env["credentials"], "none needed");
    assert_eq!(env["reachable"], Value::Null);
    assert_eq!(env["reach"], "local");
    assert_eq!(env["identity"], Value::Null);
    assert_eq!(env["problems"], json!([]));
    let set = secret(&doc, "SET");
    assert_eq!(set["file"], "config.yaml");
    assert_eq!(set["provider"], "env");
    assert_eq!(set["locator"], "KF_DOCTOR_SET");
    assert_eq!(set["status"], "readable");
    assert_eq!(set["detail"], Value::Null);
    let missing = secret(&doc, "MISSING");
    assert_eq!(missing["provider"], "file");
    assert_eq!(missing["status"], "not found");
    assert!(
        missing["detail"]
            .as_str()
            .is_some_and(|d| d.contains("missing.txt") && d.contains("No such file")),
        "{missing}"
    );
    // A direct reference in the body has no name.
    let direct = doc["secrets"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"].is_null()))
        .expect("the direct reference");
    assert_eq!(
        (&direct["provider"], &direct["status"]),
        (&json!("file"), &json!("readable"))
    );
    assert_eq!(doc["secrets"].as_array().map(Vec::len), Some(3));
}

#[test]
fn a_catalogue_secret_is_one_line_under_the_catalogue() {
    let mut t = Test::new();
    t.file(
        "catalogue.yaml",
        "secrets:\n  SHARED: { env: KF_DOCTOR_SHARED }\n",
    )
    .file("a.yaml", "x: $<SHARED>\n")
    .file("b.yaml", "y: $<SHARED>\n")
    .env("KF_DOCTOR_SHARED", "1")
    .args([
        "doctor",
        "--format",
        "json",
        "--secrets",
        "catalogue.yaml",
        "a.yaml",
        "b.yaml",
    ]);
    let r = t.run();
    r.code(0);
    let doc = report(&r);
    assert_eq!(
        doc["secrets"],
        json!([{
            "file": "catalogue.yaml",
            "name": "SHARED",
            "provider": "env",
            "locator": "KF_DOCTOR_SHARED",
            "status": "readable",
            "detail": null,
        }])
    );
}

#[test]
fn a_config_error_is_reported_as_usual_and_no_provider_is_asked() {
    let mut t = Test::new();
    t.config("a: $<UNDECLARED>\n")
        .args(["doctor", "config.yaml"]);
    let r = t.run();
    r.code(3).stdout_is("");
    r.stderr_has("UNDECLARED");
}

// ---------------------------------------------------------------------------
// aws and ssm against moto
// ---------------------------------------------------------------------------

#[test]
fn aws_identity_readable_and_not_found_without_reading_values() {
    let env = AwsEnv::new();
    let p = unique("doctor-aws");
    let value = canary();
    moto().create("us-east-1", &p, &format!("{{\"k\":\"{value}\"}}"));
    let r = env.run(
        &["doctor"],
        &format!("secrets:\n  PRESENT: <<aws|{p}:k>>\nx: $<PRESENT>\n"),
    );
    r.code(0).silent(&value);
    assert!(r.stdout.contains("arn:aws:sts::"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("aws       environment (AWS_ACCESS_KEY_ID)  yes        arn:aws:sts::"),
        "{}",
        r.stdout
    );
    assert!(row(&r, "PRESENT").ends_with("readable"), "{}", r.stdout);
    assert_eq!(
        env.count("GetSecretValue") + env.count("BatchGetSecretValue"),
        0
    );
    assert_eq!(env.count("DescribeSecret"), 1);

    let r = env.run(
        &["doctor", "--format", "json"],
        &format!(
            "secrets:\n  PRESENT: <<aws|{p}:k>>\n  MISSING: <<aws|{p}-missing>>\n  \
             OLD: <<aws|{p}?version_stage=AWSPREVIOUS>>\nx: $<PRESENT>$<MISSING>$<OLD>\n"
        ),
    );
    r.code(4).silent(&value);
    let doc = report(&r);
    let aws = provider(&doc, "aws");
    assert_eq!(aws["reachable"], true);
    assert!(
        aws["identity"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:sts::")),
        "{aws}"
    );
    assert_eq!(secret(&doc, "PRESENT")["status"], "readable");
    assert!(secret(&doc, "PRESENT")["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("version ")));
    assert_eq!(secret(&doc, "MISSING")["status"], "not found");
    assert_eq!(secret(&doc, "OLD")["status"], "not found");
    assert_eq!(
        env.count("GetSecretValue") + env.count("BatchGetSecretValue"),
        0
    );
}

#[test]
fn aws_profile_from_the_shared_files_without_a_config() {
    let env = AwsEnv::new();
    let aws = env.path().join("aws");
    std::fs::create_dir(&aws).expect("folder");
    std::fs::write(
        aws.join("config"),
        "[profile dev]\nregion = us-east-1\n\n[profile sso]\nsso_session = corp\n\
         sso_account_id = 123456789012\nsso_role_name = reader\nregion = us-east-1\n\n\
         [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n",
    )
    .expect("config");
    let secret_key = canary();
    std::fs::write(
        aws.join("credentials"),
        format!("[dev]\naws_access_key_id = testing\naws_secret_access_key = {secret_key}\n"),
    )
    .expect("credentials");
    let mut vars: Vec<(String, String)> = env
        .vars()
        .into_iter()
        .filter(|(k, _)| {
            !k.starts_with("AWS_ACCESS")
                && !k.starts_with("AWS_SECRET")
                && !k.starts_with("AWS_REGION")
        })
        .map(|(k, v)| match k.as_str() {
            "AWS_CONFIG_FILE" => (k, aws.join("config").display().to_string()),
            "AWS_SHARED_CREDENTIALS_FILE" => (k, aws.join("credentials").display().to_string()),
            _ => (k, v),
        })
        .collect();
    vars.push(("AWS_PROFILE".into(), "dev".into()));
    vars.push(("HOME".into(), env.path().display().to_string()));
    let r = support::keyfill(env.path(), &["doctor", "--format", "json"], &vars);
    r.code(0).silent(&secret_key);
    let doc = report(&r);
    let providers: Vec<&str> = doc["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .filter_map(|p| p["provider"].as_str())
        .collect();
    assert_eq!(providers, ["aws", "ssm"], "{doc}");
    let aws_entry = provider(&doc, "aws");
    assert_eq!(aws_entry["why"], "AWS_PROFILE is set");
    assert_eq!(aws_entry["credentials"], "profile `dev`: static keys");
    assert!(
        aws_entry["identity"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:sts::")),
        "{doc}"
    );

    // An SSO profile is named as such; without a cached SSO token it cannot
    // say who it is.
    let vars: Vec<(String, String)> = vars
        .into_iter()
        .map(|(k, v)| {
            if k == "AWS_PROFILE" {
                (k, "sso".into())
            } else {
                (k, v)
            }
        })
        .collect();
    let r = support::keyfill(
        env.path(),
        &["doctor", "--format", "json", "--timeout", "5s"],
        &vars,
    );
    r.code(5).silent(&secret_key);
    let doc = report(&r);
    assert_eq!(provider(&doc, "aws")["credentials"], "profile `sso`: SSO");
    assert_eq!(provider(&doc, "aws")["identity"], Value::Null);
}

#[test]
fn aws_unreachable_is_exit_5() {
    let t = tempfile::tempdir().expect("temp dir");
    std::fs::write(t.path().join("config.yaml"), "x: <<aws|prod/db>>\n").expect("config");
    let r = support::keyfill(
        t.path(),
        &["doctor", "--timeout", "3s", "config.yaml"],
        &support::aws_env(support::NOWHERE),
    );
    r.code(5);
    let aws = r.stdout.lines().nth(1).unwrap_or_default();
    assert!(
        aws.starts_with("aws ") && aws.contains("unreachable"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("cannot connect"), "{}", r.stdout);
}

#[test]
fn aws_credential_sources_are_named_from_the_environment() {
    let t = tempfile::tempdir().expect("temp dir");
    std::fs::write(t.path().join("config.yaml"), "x: <<aws|prod/db>>\n").expect("config");
    std::fs::write(t.path().join("token"), "a-web-identity-token").expect("token");
    let token = t.path().join("token").display().to_string();
    // No shared files, no keys: only what each case sets.
    let base = [
        ("HOME", t.path().display().to_string()),
        (
            "AWS_CONFIG_FILE",
            t.path().join("none").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            t.path().join("none").display().to_string(),
        ),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ENDPOINT_URL", moto().url()),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
    ];
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                ("AWS_WEB_IDENTITY_TOKEN_FILE", token.as_str()),
                ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/ci"),
            ],
            "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)",
        ),
        (
            &[(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1:1/creds",
            )],
            "container role (ECS credentials endpoint)",
        ),
        (&[], "none found (instance metadata disabled)"),
    ];
    for (extra, named) in cases {
        let mut vars: Vec<(String, String)> = base
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let r = support::keyfill(
            t.path(),
            &[
                "doctor",
                "--timeout",
                "5s",
                "--format",
                "json",
                "config.yaml",
            ],
            &vars,
        );
        let doc = report(&r);
        assert_eq!(
            provider(&doc, "aws")["credentials"],
            named,
            "{doc}\n{}",
            r.stderr
        );
        assert!(
            !r.stdout.contains("a-web-identity-token")
                && !r.stderr.contains("a-web-identity-token")
        );
        // `prod/db` is stored nowhere, so no case can pass.
        assert_ne!(r.code, 0, "{doc}");
    }
}

#[test]
fn ssm_parameters_are_described_not_read() {
    let env = AwsEnv::new();
    let p = unique("/doctor/ssm");
    let value = canary();
    crate::ssm::put("us-east-1", &p, "SecureString", &value);
    crate::ssm::put("us-east-1", &p, "SecureString", &value);
    let r = env.run(
        &["doctor", "--format", "json"],
        &format!(
            "secrets:\n  PRESENT: <<ssm|{p}>>\n  MISSING: <<ssm|{p}-missing>>\n  \
             PINNED: <<ssm|{p}?version=1>>\n  NO_SUCH_VERSION: <<ssm|{p}?version=9>>\n\
             x: $<PRESENT>$<MISSING>$<PINNED>$<NO_SUCH_VERSION>\n"
        ),
    );
    r.code(4).silent(&value);
    let doc = report(&r);
    let ssm = provider(&doc, "ssm");
    assert_eq!(ssm["reachable"], true);
    assert!(
        ssm["identity"]
            .as_str()
            .is_some_and(|a| a.starts_with("arn:aws:sts::")),
        "{ssm}"
    );
    assert_eq!(secret(&doc, "PRESENT")["status"], "readable");
    assert_eq!(secret(&doc, "PRESENT")["detail"], "version 2");
    assert_eq!(secret(&doc, "MISSING")["status"], "not found");
    assert_eq!(secret(&doc, "PINNED")["status"], "readable");
    assert_eq!(secret(&doc, "NO_SUCH_VERSION")["status"], "not found");
    // The unpinned ones are described; only the pinned ones need GetParameters,
    // and never with decryption.
    assert_eq!(env.count("DescribeParameters"), 2);
    let gets = env.calls_to("GetParameters");
    assert!(!gets.is_empty());
    for g in gets {
        let body: Value = serde_json::from_str(&g.body).expect("JSON body");
        assert_eq!(body["WithDecryption"], false, "{body}");
    }
}

// ---------------------------------------------------------------------------
// vault against OpenBao
// ---------------------------------------------------------------------------

#[test]
fn vault_token_identity_readable_and_not_found() {
    let b = bao();
    let p = unique("doctor-vault");
    let value = canary();
    b.api().kv2_put("secret", &p, json!({ "k": value }));
    let env = VaultEnv::new();
    let r = env.run(
        &["doctor"],
        &format!(
            "secrets:\n  PRESENT: <<vault|secret/data/{p}/k>>\n  \
             MISSING: <<vault|secret/data/{p}-missing/k>>\n  OLD: <<vault|secret/data/{p}/k?version=7>>\n\
             x: $<PRESENT>$<MISSING>$<OLD>\n"
        ),
    );
    r.code(4).silent(&value).silent(&b.root);
    let vault = r.stdout.lines().nth(1).unwrap_or_default();
    assert!(
        vault.starts_with("vault ") && vault.contains("VAULT_TOKEN") && vault.contains(" yes "),
        "{}",
        r.stdout
    );
    assert!(
        vault.ends_with("(policies: root; no expiry)"),
        "{}",
        r.stdout
    );
    assert!(row(&r, "PRESENT").ends_with("readable"), "{}", r.stdout);
    assert!(row(&r, "MISSING").ends_with("not found"), "{}", r.stdout);
    assert!(row(&r, "OLD").ends_with("not found"), "{}", r.stdout);
    assert!(r.stdout.contains("  PRESENT: version 1\n"), "{}", r.stdout);
    // Metadata and capabilities only: no data read.
    assert_eq!(
        env.reads().iter().filter(|r| r.contains("/data/")).count(),
        0,
        "{:?}",
        env.reads()
    );
}

#[test]
fn vault_a_policy_that_denies_the_path_is_access_denied_exit_5() {
    let b = bao();
    let p = unique("doctor-denied");
    let hidden = canary();
    b.api().kv2_put("secret", &p, json!({ "k": "allowed" }));
    b.api()
        .kv2_put("secret", &format!("{p}-private"), json!({ "k": hidden }));
    let policy = format!("pol-{p}");
    b.api().policy(
        &policy,
        &format!("path \"secret/data/{p}\" {{ capabilities = [\"read\"] }}"),
    );
    let token = b.api().token(&[&policy]);
    let env = VaultEnv::new();
    let r = env.run_with(
        &["doctor", "--format", "json"],
        &format!(
            "secrets:\n  OK: <<vault|secret/data/{p}/k>>\n  NO: <<vault|secret/data/{p}-private/k>>\n\
             x: $<OK>$<NO>\n"
        ),
        &[("VAULT_TOKEN", &token)],
        &[],
    );
    r.code(5).silent(&token).silent(&hidden);
    let doc = report(&r);
    let vault = provider(&doc, "vault");
    assert_eq!(vault["credentials"], "VAULT_TOKEN");
    assert!(
        vault["identity"]
            .as_str()
            .is_some_and(|i| i.contains(&policy) && i.contains("ttl ")),
        "{vault}"
    );
    // Without metadata permission the policies decide.
    assert_eq!(secret(&doc, "OK")["status"], "readable");
    assert_eq!(secret(&doc, "NO")["status"], "access denied");
}

#[test]
fn vault_approle_logs_in_and_acts_as_its_role() {
    let b = bao();
    let p = unique("doctor-approle");
    let value = canary();
    b.api().kv2_put("secret", &p, json!({ "k": value }));
    let policy = format!("pol-{p}");
    b.api().policy(
        &policy,
        &format!("path \"secret/data/{p}\" {{ capabilities = [\"read\"] }}"),
    );
    let (role_id, secret_id) = b.api().approle(&format!("role-{p}"), &[&policy]);
    let env = VaultEnv::new();
    let config = format!("secrets:\n  OK: <<vault|secret/data/{p}/k>>\nx: $<OK>\n");
    let r = env.run_with(
        &["doctor", "--format", "json"],
        &config,
        &[("VAULT_ROLE_ID", &role_id), ("VAULT_SECRET_ID", &secret_id)],
        &["VAULT_TOKEN"],
    );
    r.code(0).silent(&secret_id).silent(&value).silent(&b.root);
    let doc = report(&r);
    let vault = provider(&doc, "vault");
    assert!(
        vault["credentials"]
            .as_str()
            .is_some_and(|c| c.contains("AppRole")),
        "{vault}"
    );
    // The identity is the AppRole login's token: its role's policy.
    assert!(
        vault["identity"]
            .as_str()
            .is_some_and(|i| i.contains(&policy)),
        "{vault}"
    );
    assert_eq!(secret(&doc, "OK")["status"], "readable");
    assert_eq!(env.proxy.count("/v1/auth/approle/login"), 1);

    // A refused secret id: access denied, exit 5, neither id shown.
    let wrong = canary();
    let r = env.run_with(
        &["doctor"],
        &config,
        &[("VAULT_ROLE_ID", &role_id), ("VAULT_SECRET_ID", &wrong)],
        &["VAULT_TOKEN"],
    );
    r.code(5).silent(&wrong).silent(&secret_id);
    assert!(r.stdout.contains("access denied"), "{}", r.stdout);
}

#[test]
fn vault_a_bad_token_is_access_denied_and_never_shown() {
    let token = canary();
    let env = VaultEnv::new();
    let r = env.run_with(
        &["doctor"],
        "x: <<vault|secret/data/app/k>>\n",
        &[("VAULT_TOKEN", &token)],
        &[],
    );
    r.code(5).silent(&token);
    let vault = r.stdout.lines().nth(1).unwrap_or_default();
    assert!(
        vault.contains(" yes ") && vault.ends_with("access denied"),
        "{}",
        r.stdout
    );
}

#[test]
fn without_a_config_only_the_configured_providers_are_reported() {
    let env = VaultEnv::new();
    let r = support::keyfill(
        env.path(),
        &["doctor", "--format", "json"],
        &[
            ("VAULT_ADDR".into(), env.proxy.url()),
            ("VAULT_TOKEN".into(), bao().root.clone()),
            ("HOME".into(), env.home().display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                env.home().join(".config").display().to_string(),
            ),
        ],
    );
    r.code(0).silent(&bao().root);
    let doc = report(&r);
    let providers = doc["providers"].as_array().expect("providers");
    assert_eq!(providers.len(), 1, "{doc}");
    assert_eq!(providers[0]["provider"], "vault");
    assert_eq!(providers[0]["why"], "VAULT_ADDR is set");
    assert_eq!(providers[0]["reachable"], true);
    assert_eq!(doc["secrets"], json!([]));

    // Nothing configured: nothing to report, and no failure.
    let r = support::keyfill(
        env.path(),
        &["doctor"],
        &[
            ("HOME".into(), env.home().display().to_string()),
            (
                "XDG_CONFIG_HOME".into(),
                env.home().join(".config").display().to_string(),
            ),
        ],
    );
    r.code(0).stderr_is("");
    assert!(
        r.stdout.starts_with("no provider is configured"),
        "{}",
        r.stdout
    );
}

// ---------------------------------------------------------------------------
// onepassword against the Connect fake
// ---------------------------------------------------------------------------

#[test]
fn onepassword_connect_health_and_item_listing_without_fields() {
    let token = canary();
    let value = canary();
    let server = Connect::start(&token);
    let vault = server.add_vault("Production");
    server.add_item(
        &vault,
        Item::new("Slack", "API_CREDENTIAL").field(Field::concealed("token", &value)),
    );
    let mut t = Test::new();
    t.config(
        "secrets:\n  PRESENT: <<op|op://Production/Slack/token>>\n  \
         MISSING: <<op|op://Production/Nope/token>>\n  NO_VAULT: <<op|op://Staging/Slack/token>>\n\
         x: $<PRESENT>$<MISSING>$<NO_VAULT>\n",
    )
    .env("OP_CONNECT_HOST", &server.url())
    .env("OP_CONNECT_TOKEN", &token)
    .args(["doctor", "--format", "json", "config.yaml"]);
    let r = t.run();
    r.code(4).silent(&token).silent(&value);
    let doc = report(&r);
    let op = provider(&doc, "onepassword");
    assert_eq!(op["reachable"], true);
    assert!(
        op["credentials"]
            .as_str()
            .is_some_and(|c| c.starts_with("OP_CONNECT_TOKEN")),
        "{op}"
    );
    assert_eq!(
        op["identity"],
        "1Password Connect API 1.8.1: the token may list 1 vault(s)"
    );
    assert_eq!(secret(&doc, "PRESENT")["status"], "readable");
    assert_eq!(secret(&doc, "MISSING")["status"], "not found");
    assert_eq!(secret(&doc, "NO_VAULT")["status"], "not found");
    assert_eq!(
        server.count(|r| r.is_any_item_get()),
        0,
        "no item (and so no field) is read"
    );
    assert!(server.count(|r| r.path == "/heartbeat") >= 1);

    // A token the server refuses: reachable, identity denied, exit 5.
    server.set_token(&canary());
    let r = t.run();
    r.code(5).silent(&token);
    let op = report(&r);
    let op = provider(&op, "onepassword");
    assert_eq!(op["reach"], "yes");
    assert_eq!(op["problems"][0]["class"], "access denied");
}

#[test]
fn onepassword_service_account_whoami_and_item_list_without_fields() {
    let token = format!("ops_{}", canary());
    let value = canary();
    let mut t = Test::new();
    let mut op = support::connect::FakeOp::install(&t.path().join("bin"), &token);
    let v = op.add_vault("Production");
    op.add_item(
        &v,
        Item::new("Slack", "API_CREDENTIAL").field(Field::concealed("token", &value)),
    );
    let path = std::env::var("PATH").unwrap_or_default();
    t.config(
        "secrets:\n  PRESENT: <<op|op://Production/Slack/token>>\n  \
         MISSING: <<op|op://Production/Nope/token>>\nx: $<PRESENT>$<MISSING>\n",
    )
    .env("PATH", &format!("{}:{path}", op.dir.display()))
    .env("OP_SERVICE_ACCOUNT_TOKEN", &token)
    .args(["doctor", "--format", "json", "config.yaml"]);
    let r = t.run();
    r.code(4).silent(&token).silent(&value);
    let doc = report(&r);
    let entry = provider(&doc, "onepassword");
    assert_eq!(entry["credentials"], "OP_SERVICE_ACCOUNT_TOKEN (op CLI)");
    assert_eq!(entry["reachable"], true);
    assert_eq!(
        entry["identity"],
        "SERVICE_ACCOUNT at https://example.1password.com"
    );
    assert_eq!(secret(&doc, "PRESENT")["status"], "readable");
    assert_eq!(secret(&doc, "MISSING")["status"], "not found");
    let commands: Vec<String> = op
        .calls()
        .iter()
        .map(|c| c.argv.iter().take(2).cloned().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        commands
            .iter()
            .all(|c| c == "whoami --format=json" || c == "item list"),
        "{commands:?}"
    );

    // A token op refuses: access denied, exit 5.
    t.env("OP_SERVICE_ACCOUNT_TOKEN", "ops_refused");
    let r = t.run();
    r.code(5).silent(&token);
    let doc = report(&r);
    assert_eq!(
        provider(&doc, "onepassword")["problems"][0]["class"],
        "access denied"
    );
}

// ---------------------------------------------------------------------------
// sops with age keys
// ---------------------------------------------------------------------------

#[test]
fn sops_data_key_unwraps_with_the_key_and_not_without() {
    let mut t = Test::new();
    t.folder("keys").folder("home");
    let key = crate::sops::age_key(&t.path().join("keys"), "keys.txt");
    let other = crate::sops::age_key(&t.path().join("keys"), "other.txt");
    let value = canary();
    crate::sops::encrypt(
        t.path(),
        "s.enc.yaml",
        &format!("db:\n  password: {value}\n"),
        &["--age", &key.recipient],
        &[],
    );
    let home = t.path().join("home").display().to_string();
    t.config("x: <<sops|s.enc.yaml:db.password>>\n")
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env("SOPS_AGE_KEY_FILE", &key.file.display().to_string())
        .args(["doctor", "config.yaml"]);
    let r = t.run();
    r.code(0).silent(&value);
    assert!(r.stdout.contains("age: SOPS_AGE_KEY_FILE"), "{}", r.stdout);
    assert!(r.stdout.contains("1 age identity"), "{}", r.stdout);
    assert!(
        r.stdout.contains("sops|s.enc.yaml:db.password  readable"),
        "{}",
        r.stdout
    );

    // Another identity: not a recipient, access denied.
    t.env("SOPS_AGE_KEY_FILE", &other.file.display().to_string());
    let r = t.run();
    r.code(5).silent(&value);
    assert!(r.stdout.contains("access denied"), "{}", r.stdout);

    // No identity at all: not configured.
    t.env_remove("SOPS_AGE_KEY_FILE");
    let r = t.run();
    r.code(5).silent(&value);
    assert!(r.stdout.contains("not configured"), "{}", r.stdout);
    assert!(r.stdout.contains("no age identity"), "{}", r.stdout);
}

/// A file sops encrypts for a new key of moto's KMS: only the `sops` binary
/// can read it, so doctor cannot check it without decrypting.
#[test]
fn a_sops_file_only_the_binary_reads_is_not_checked_and_not_a_failure() {
    let mut t = Test::new();
    let value = canary();
    let arn = crate::sops::kms_key();
    crate::sops::encrypt(
        t.path(),
        "k.enc.yaml",
        &format!("password: {value}\n"),
        &["--kms", &arn],
        &support::aws_env(&moto().url()),
    );
    t.config("x: <<sops|k.enc.yaml:password>>\n").args([
        "doctor",
        "--format",
        "json",
        "config.yaml",
    ]);
    let r = t.run();
    r.code(0).silent(&value);
    let doc = report(&r);
    let s = &doc["secrets"][0];
    assert_eq!(s["status"], "not checked", "{doc}");
    assert!(
        s["detail"].as_str().is_some_and(|d| d.contains("sops")),
        "{doc}"
    );
}
