//! `role_arn=` on the aws provider against a real moto server, through the
//! counting proxy. moto's STS lets any credentials assume any role, and keeps
//! resources per account, taking the account from the access key: a secret
//! seeded with an assumed role's key lives in the role's account, out of the
//! base credentials' reach. So a reference that reads it proves the role's
//! session signed the request.
//!
//! [`AwsRole`] runs the conformance suite through a role: its secrets live in
//! the role's account, and its faults are STS's.

use crate::support;

use std::time::Duration;

use serde_json::json;
use support::moto::moto;
use support::proxy::{Fault, Proxy};
use support::watch::{Signal, Watch};
use support::{aws_env, canary, unique, AwsEnv};

const REGION: &str = "us-east-1";
const ROLE_A: &str = "arn:aws:iam::111111111111:role/keyfill-reader";
const ROLE_B: &str = "arn:aws:iam::222222222222:role/team/keyfill-reader";
const SECRETS_MANAGER: (&str, &str) = ("secretsmanager", "secretsmanager");

/// Creates a text secret in `role`'s account.
fn create_as(role: &str, region: &str, name: &str, value: &str) {
    let key = moto().assume_role(role);
    moto().json_as(
        &key,
        region,
        SECRETS_MANAGER,
        "CreateSecret",
        json!({ "Name": name, "SecretString": value }),
    );
}

/// The AssumeRole calls that reached the proxy, as their `RoleArn`s.
fn assumed(proxy: &Proxy) -> Vec<String> {
    proxy
        .calls()
        .into_iter()
        .filter(|c| c.body.contains("Action=AssumeRole"))
        .map(|c| {
            let arn = c
                .body
                .split('&')
                .find_map(|p| p.strip_prefix("RoleArn="))
                .unwrap_or_default();
            arn.replace("%3A", ":").replace("%2F", "/")
        })
        .collect()
}

/// An STS error answer, as the query protocol gives it.
fn sts_error(status: u16, code: &str, message: &str) -> Fault {
    Fault::Respond {
        status,
        headers: vec![("content-type".into(), "text/xml".into())],
        body: format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>r</RequestId></ErrorResponse>"
        ),
    }
}

/// The aws provider through [`ROLE_A`], for the conformance suite.
pub(crate) struct AwsRole {
    proxy: Proxy,
}

impl AwsRole {
    pub(crate) fn new() -> AwsRole {
        AwsRole {
            proxy: Proxy::start(moto().addr, Duration::ZERO),
        }
    }

    fn assume_role_fails(&self, times: usize, fault: Fault) {
        self.proxy
            .inject_matching("POST /", "Action=AssumeRole", times, fault);
    }
}

impl crate::conformance::Backend for AwsRole {
    fn put(&self, id: &str, fields: &[(&str, &str)]) -> Vec<(String, String)> {
        let obj: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
            .collect();
        create_as(
            ROLE_A,
            REGION,
            id,
            &serde_json::Value::Object(obj).to_string(),
        );
        Vec::new()
    }
    fn reference(&self, id: &str, key: &str) -> String {
        format!("<<aws|{id}:{key}?role_arn={ROLE_A}>>")
    }
    fn vars(&self) -> Vec<(String, String)> {
        aws_env(&self.proxy.url())
    }
    fn denied_vars(&self) -> Option<Vec<(String, String)>> {
        self.assume_role_fails(
            usize::MAX,
            sts_error(403, "AccessDenied", "not-a-real-token"),
        );
        Some(self.vars())
    }
    fn unreachable_vars(&self) -> Option<Vec<(String, String)>> {
        Some(aws_env("http://127.0.0.1:1"))
    }
    fn throttle_once(&self) -> bool {
        // The suite counts the secret's fetches; STS's own throttling is
        // `an_sts_that_throttles_is_retried_…` below.
        self.proxy.inject(
            "SecretValue",
            1,
            Fault::aws(400, "ThrottlingException", "Rate exceeded"),
        );
        true
    }
    fn stall(&self) -> bool {
        self.assume_role_fails(usize::MAX, Fault::Stall(Duration::from_secs(30)));
        true
    }
    fn fetches(&self) -> Option<usize> {
        Some(self.proxy.count("GetSecretValue"))
    }
    fn reset(&self) {
        self.proxy.reset();
    }
}

#[test]
fn a_role_reads_its_accounts_secret_that_the_base_credentials_cannot() {
    let name = unique("role-account");
    let value = canary();
    create_as(ROLE_A, REGION, &name, &value);
    let env = AwsEnv::new();
    env.render(&format!("v: <<aws|{name}?role_arn={ROLE_A}>>\n"))
        .code(0)
        .stdout_is(&format!("v: {value}\n"));
    assert_eq!(assumed(&env.proxy), [ROLE_A]);
    // The session name says who assumed the role.
    let call = env
        .proxy
        .calls()
        .into_iter()
        .find(|c| c.body.contains("AssumeRole"));
    assert!(call.is_some_and(|c| c.body.contains("RoleSessionName=keyfill-")));
    // Without the role, the default account has no such secret.
    env.render(&format!("v: <<aws|{name}>>\n"))
        .code(4)
        .stderr_has("the secret does not exist")
        .silent(&value);
    // The long form takes the role as a field, and `check --resolve` uses it.
    let long = format!(
        "secrets:\n  V:\n    aws: {{ secret_id: {name}, role_arn: '{ROLE_A}' }}\nv: $<V>\n"
    );
    env.render(&long)
        .code(0)
        .stdout_is(&format!("v: {value}\n"));
    env.run(&["check", "--resolve"], &long)
        .code(0)
        .silent(&value);
}

#[test]
fn two_roles_and_the_base_credentials_read_three_accounts_in_one_config() {
    let name = unique("role-two");
    let [base, a, b] = [canary(), canary(), canary()];
    moto().create(REGION, &name, &base);
    create_as(ROLE_A, REGION, &name, &a);
    create_as(ROLE_B, REGION, &name, &b);
    let env = AwsEnv::new();
    let config = format!(
        "base: <<aws|{name}>>\na: <<aws|{name}?role_arn={ROLE_A}>>\nb: <<aws|{name}?role_arn={ROLE_B}>>\n"
    );
    env.render(&config)
        .code(0)
        .stdout_is(&format!("base: {base}\na: {a}\nb: {b}\n"));
    let mut roles = assumed(&env.proxy);
    roles.sort();
    assert_eq!(roles, [ROLE_A, ROLE_B]);
}

#[test]
fn many_references_to_one_role_assume_it_once_and_batch_per_region() {
    let p = unique("role-many");
    let names: Vec<String> = (0..4).map(|i| format!("{p}-{i}")).collect();
    let values: Vec<String> = names.iter().map(|_| canary()).collect();
    for (n, v) in names.iter().zip(&values) {
        create_as(ROLE_A, REGION, n, &format!(r#"{{"k":"{v}"}}"#));
    }
    let eu = canary();
    create_as(ROLE_A, "eu-west-1", &format!("{p}-eu"), &eu);
    let env = AwsEnv::new();
    let mut config = String::new();
    let mut want = String::new();
    for (i, (n, v)) in names.iter().zip(&values).enumerate() {
        // Each secret twice: once whole-key, once with the default stage spelled out.
        config.push_str(&format!("a{i}: <<aws|{n}:k?role_arn={ROLE_A}>>\n"));
        config.push_str(&format!(
            "b{i}: <<aws|{n}:k?role_arn={ROLE_A}&version_stage=AWSCURRENT>>\n"
        ));
        want.push_str(&format!("a{i}: {v}\nb{i}: {v}\n"));
    }
    config.push_str(&format!(
        "eu: <<aws|{p}-eu?region=eu-west-1&role_arn={ROLE_A}>>\n"
    ));
    want.push_str(&format!("eu: {eu}\n"));
    env.render(&config).code(0).stdout_is(&want);
    assert_eq!(assumed(&env.proxy), [ROLE_A]);
    // One batch for the four us-east-1 secrets; the eu one alone.
    assert_eq!(env.count("BatchGetSecretValue"), 1);
    assert_eq!(env.count("GetSecretValue"), 1);
}

#[test]
fn a_denied_assume_role_exits_5_naming_the_role_and_no_credential() {
    let name = unique("role-denied");
    let plain = canary();
    moto().create(REGION, &name, &plain);
    let (key_id, secret_key) = (canary(), canary());
    let env = AwsEnv::new();
    let said = canary();
    env.proxy.inject_matching(
        "POST /",
        "Action=AssumeRole",
        5,
        sts_error(
            403,
            "AccessDenied",
            &format!("User: arn:aws:iam::123456789012:user/{said} is not authorized"),
        ),
    );
    let config = format!("plain: <<aws|{name}>>\nv: <<aws|{name}?role_arn={ROLE_B}>>\n");
    let r = env.run_with(
        &["render"],
        &config,
        &[
            ("AWS_ACCESS_KEY_ID", &key_id),
            ("AWS_SECRET_ACCESS_KEY", &secret_key),
        ],
    );
    r.code(5)
        .stderr_has(&format!("cannot assume role `{ROLE_B}`: access denied"))
        .stderr_has("sts:AssumeRole")
        .silent(&key_id)
        .silent(&secret_key)
        .silent(&said)
        .silent(&plain);
    // Only the reference that names the role failed, and denied is not retried.
    assert_eq!(r.stderr.matches("error:").count(), 1, "{}", r.stderr);
    assert_eq!(assumed(&env.proxy), [ROLE_B]);
}

#[test]
fn an_sts_that_throttles_is_retried_and_one_that_keeps_throttling_is_named() {
    let name = unique("role-throttled");
    let value = canary();
    create_as(ROLE_A, REGION, &name, &value);
    let config = format!("v: <<aws|{name}?role_arn={ROLE_A}>>\n");
    let env = AwsEnv::new();
    env.proxy.inject_matching(
        "POST /",
        "Action=AssumeRole",
        1,
        sts_error(400, "Throttling", "Rate exceeded"),
    );
    env.render(&config)
        .code(0)
        .stdout_is(&format!("v: {value}\n"));
    assert_eq!(assumed(&env.proxy), [ROLE_A, ROLE_A]);

    let env = AwsEnv::new();
    env.proxy.inject_matching(
        "POST /",
        "Action=AssumeRole",
        1000,
        sts_error(400, "Throttling", "Rate exceeded"),
    );
    let r = env.run(&["render", "--timeout", "2s"], &config);
    r.code(5).stderr_has(&format!(
        "cannot assume role `{ROLE_A}`: AWS STS kept throttling the requests (Throttling)"
    ));
    assert!(assumed(&env.proxy).len() > 2);
}

#[test]
fn an_invalid_role_arn_is_a_locator_error_pointing_at_it() {
    let env = AwsEnv::new();
    let r = env.render("v: <<aws|x?role_arn=arn:aws:iam::1234:role/r>>\n");
    r.code(3)
        .stderr_has(
            "`arn:aws:iam::1234:role/r` is not an IAM role ARN: the account is not 12 digits",
        )
        .stderr_has("config.yaml:1:21")
        .stderr_has("arn:PARTITION:iam::ACCOUNT:role/NAME");
    let r = env.render("secrets:\n  V:\n    aws: { secret_id: x, role_arn: reader }\nv: $<V>\n");
    r.code(3)
        .stderr_has("`reader` is not an IAM role ARN")
        .stderr_has("config.yaml:3:36");
    // Nothing was asked of AWS.
    assert_eq!(env.proxy.calls().len(), 0);
}

#[test]
fn a_watch_refresh_reuses_the_role_session() {
    let name = unique("role-watch");
    let (v1, v2) = (canary(), canary());
    create_as(ROLE_A, REGION, &name, &v1);
    let env = AwsEnv::new();
    let dir = env.path();
    std::fs::write(
        dir.join("app.yaml"),
        format!("v: <<aws|{name}?role_arn={ROLE_A}>>\n"),
    )
    .expect("write config");
    let vars = env.vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (&**k, &**v)).collect();
    let t = Duration::from_secs(30);
    let mut w = Watch::start(dir, &["watch", "app.yaml", "-o", "out.yaml"], &vars);
    w.wait_renders(1, t);
    let read = || std::fs::read_to_string(dir.join("out.yaml")).unwrap_or_default();
    assert_eq!(read(), format!("v: {v1}\n"), "{}", w.stderr());
    assert_eq!(assumed(&env.proxy), [ROLE_A]);

    env.proxy.reset();
    let key = moto().assume_role(ROLE_A);
    moto().json_as(
        &key,
        REGION,
        SECRETS_MANAGER,
        "PutSecretValue",
        json!({ "SecretId": name, "SecretString": v2 }),
    );
    w.signal(Signal::HUP);
    w.wait_renders(2, t);
    assert_eq!(read(), format!("v: {v2}\n"), "{}", w.stderr());
    // The refresh checked the version and read the new value with the kept
    // session: no second AssumeRole.
    assert_eq!(assumed(&env.proxy), Vec::<String>::new());
    assert_eq!(env.count("DescribeSecret"), 1);
    let stderr = w.stderr();
    for v in [&v1, &v2] {
        assert!(!stderr.contains(v.as_str()), "a value on stderr:\n{stderr}");
    }
}

#[test]
fn aws_and_ssm_naming_one_role_assume_it_once_and_both_read_its_account() {
    let name = unique("role-both");
    let secret = canary();
    create_as(ROLE_A, REGION, &name, &secret);
    let parameter = canary();
    let key = moto().assume_role(ROLE_A);
    moto().json_as(
        &key,
        REGION,
        ("ssm", "AmazonSSM"),
        "PutParameter",
        json!({ "Name": format!("/{name}"), "Value": parameter, "Type": "SecureString" }),
    );
    let env = AwsEnv::new();
    // The two providers fetch at once, each on its own thread.
    let config =
        format!("s: <<aws|{name}?role_arn={ROLE_A}>>\np: <<ssm|/{name}?role_arn={ROLE_A}>>\n");
    env.render(&config)
        .code(0)
        .stdout_is(&format!("s: {secret}\np: {parameter}\n"));
    assert_eq!(assumed(&env.proxy), [ROLE_A]);
    // Without the role, neither is in the base account.
    env.render(&format!("p: <<ssm|/{name}>>\n")).code(4);
}
