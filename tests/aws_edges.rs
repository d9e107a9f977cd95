//! Edge cases of the aws provider, against moto through the proxy: one fetch
//! whatever the spelling of region and profile, cross-account ARNs, per-secret
//! transient errors in a batch, dropped connections, a stalled DNS lookup, huge
//! timeouts, and a reference's profile choosing its own credentials.

use crate::support;

use std::time::{Duration, Instant};

use support::moto::moto;
use support::proxy::Fault;
use support::{unique, AwsEnv as Env};

const REGION: &str = "us-east-1";

fn batch_ids(env: &Env) -> Vec<String> {
    env.calls_to("BatchGetSecretValue")
        .iter()
        .flat_map(|c| {
            let v: serde_json::Value = serde_json::from_str(&c.body).expect("JSON body");
            v["SecretIdList"]
                .as_array()
                .expect("SecretIdList")
                .iter()
                .map(|s| s.as_str().expect("id").to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// SPEC §7: one fetch per distinct (secret, version). `x` and
/// `x?region=us-east-1` (the configured region) are one secret and version of
/// one client, so one id in one batch.
#[test]
fn region_spelled_out_as_the_default_is_fetched_once() {
    let p = unique("dupregion");
    let name = format!("{p}/a");
    moto().create(REGION, &name, "va");
    moto().create(REGION, &format!("{p}/b"), "vb");
    let env = Env::new();
    let config = format!("a: <<aws|{p}/a>>\na2: <<aws|{p}/a?region={REGION}>>\nb: <<aws|{p}/b>>\n");
    let r = env.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ids = batch_ids(&env);
    let singles = env.count("GetSecretValue");
    let fetched_a = ids.iter().filter(|i| **i == name).count() + singles;
    assert_eq!(
        fetched_a, 1,
        "secret {name} requested {fetched_a} times (batch ids {ids:?}, {singles} single calls)"
    );
}

/// A per-secret transient error inside a BatchGetSecretValue answer
/// (`Errors[].ErrorCode` = InternalServiceError / ThrottlingException) is
/// retried with a single call, as a transient fault of a whole call is.
#[test]
fn a_transient_error_for_one_secret_of_a_batch_is_retried() {
    let p = unique("batchtransient");
    let a = format!("{p}/a");
    let b = format!("{p}/b");
    moto().create(REGION, &a, "va");
    let b_arn = moto().create(REGION, &b, "vb");
    let env = Env::new();
    let body = serde_json::json!({
        "SecretValues": [{
            "ARN": b_arn, "Name": b, "SecretString": "vb",
            "VersionId": "v1", "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.0
        }],
        "Errors": [{
            "SecretId": a, "ErrorCode": "InternalServiceError",
            "Message": "An internal error occurred"
        }]
    });
    env.proxy.inject(
        "BatchGetSecretValue",
        1,
        Fault::Respond {
            status: 200,
            headers: vec![],
            body: body.to_string(),
        },
    );
    let r = env.render(&format!("a: <<aws|{a}>>\nb: <<aws|{b}>>\n"));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "a: va\nb: vb\n"),
        "{}\ncalls: {:?}",
        r.stderr,
        env.proxy
            .calls()
            .iter()
            .map(|c| &c.target)
            .collect::<Vec<_>>()
    );
}

/// A name and a cross-account ARN of a secret with the same name are in one
/// batch (same region and profile). Whatever order the answer lists them in, the
/// ARN request gets the other account's value and the name request its own:
/// ARNs are matched first, names only then.
#[test]
fn a_name_never_takes_the_value_of_a_cross_account_arn_with_the_same_name() {
    let p = unique("xacct");
    let name = format!("{p}/db");
    let own_arn = moto().create(REGION, &name, "own-account-value");
    let other_arn = format!("arn:aws:secretsmanager:{REGION}:222222222222:secret:{name}-AbCdEf");
    // The answer lists the other account's secret first.
    let body = serde_json::json!({
        "SecretValues": [
            { "ARN": other_arn, "Name": name, "SecretString": "OTHER-ACCOUNT-VALUE",
              "VersionId": "v2", "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.0 },
            { "ARN": own_arn, "Name": name, "SecretString": "own-account-value",
              "VersionId": "v1", "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.0 }
        ],
        "Errors": []
    });
    let config = format!("own: <<aws|{name}>>\nshared: <<aws|{other_arn}>>\n");
    // Which request comes first in the batch depends on hash order: try a few runs.
    for run in 0..12 {
        let env = Env::new();
        env.proxy.inject(
            "BatchGetSecretValue",
            1,
            Fault::Respond {
                status: 200,
                headers: vec![],
                body: body.to_string(),
            },
        );
        // The other account's secret, when asked for on its own (moto has one
        // account, so the proxy answers as AWS would).
        let single = serde_json::json!({
            "ARN": other_arn, "Name": name, "SecretString": "OTHER-ACCOUNT-VALUE",
            "VersionId": "v2", "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.0
        });
        env.proxy.inject_matching(
            "GetSecretValue",
            "222222222222",
            1,
            Fault::Respond {
                status: 200,
                headers: vec![],
                body: single.to_string(),
            },
        );
        let r = env.render(&config);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "own: own-account-value\nshared: OTHER-ACCOUNT-VALUE\n"),
            "run {run}: {}",
            r.stderr
        );
    }
}

/// `--timeout` bounds every fetch (README: "one deadline bounds everything").
/// A DNS lookup that never answers runs on a blocking thread; the deadline
/// must not wait for it. Uses `unshare -rm` (user + mount namespace) to point
/// the resolver at a black-hole name server.
#[test]
fn a_stalled_dns_lookup_ends_at_the_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rc = dir.path().join("resolv.conf");
    std::fs::write(&rc, "nameserver 192.0.2.1\noptions timeout:20 attempts:1\n").expect("write");
    std::fs::write(dir.path().join("c.yaml"), "x: <<aws|prod/db>>\n").expect("write");
    let probe = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c"])
        .arg(format!("mount --bind {} /etc/resolv.conf", rc.display()))
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "this test needs `unshare -rm` (util-linux, unprivileged user namespaces)"
    );
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec {} render --timeout 2s c.yaml",
        rc.display(),
        support::BIN
    );
    let start = Instant::now();
    let out = support::scrub(&mut std::process::Command::new("unshare"))
        .args(["-rm", "sh", "-c", &script])
        .current_dir(dir.path())
        .env(
            "AWS_ENDPOINT_URL",
            "http://secrets.keyfill-review.invalid:8080",
        )
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run");
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(5));
    assert!(
        took < Duration::from_secs(6),
        "--timeout 2s took {took:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A huge `--timeout` is a usage error, not an overflow panic.
#[test]
fn a_huge_timeout_is_not_a_panic() {
    let env = Env::new();
    let r = env.run(
        &["render", "--timeout", "9223372036854775807s"],
        "x: <<aws|nosuch/secret>>\n",
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("longer than a week"), "{}", r.stderr);
}

/// A connection dropped without an answer (a load balancer resetting an idle
/// connection, say) is a transient fault and is retried.
#[test]
fn a_dropped_connection_is_retried() {
    let p = unique("dropped");
    let name = format!("{p}/a");
    moto().create(REGION, &name, "after-drop");
    let env = Env::new();
    env.proxy.inject("GetSecretValue", 1, Fault::Close);
    let r = env.render(&format!("x: <<aws|{name}>>\n"));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: after-drop\n"),
        "{}",
        r.stderr
    );
}

/// `?profile=P` uses that profile's credentials even when the environment has
/// static keys (a CI account, say), as `--profile` does for the AWS CLI.
#[test]
fn a_profile_on_the_reference_uses_that_profiles_credentials() {
    let m = moto();
    let p = unique("profcreds");
    m.create(REGION, &format!("{p}/s"), "value");
    let env = Env::new();
    let dir = env.dir.path();
    std::fs::write(
        dir.join("aws-config"),
        "[profile team]\nregion = us-east-1\n",
    )
    .expect("config");
    std::fs::write(
        dir.join("aws-credentials"),
        "[team]\naws_access_key_id = teamkey\naws_secret_access_key = team\n",
    )
    .expect("credentials");
    let config_file = dir.join("aws-config").display().to_string();
    let creds_file = dir.join("aws-credentials").display().to_string();
    let r = env.run_with(
        &["render"],
        &format!("x: <<aws|{p}/s?profile=team>>\n"),
        &[
            ("AWS_CONFIG_FILE", config_file.as_str()),
            ("AWS_SHARED_CREDENTIALS_FILE", creds_file.as_str()),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let auth = env.proxy.calls()[0].headers["authorization"].clone();
    assert!(
        auth.contains("Credential=teamkey/"),
        "the request for ?profile=team was signed with: {auth}"
    );
}

/// An ARN names its region: with AWS_REGION set elsewhere and no `?region=`, the
/// secret is read from the ARN's region.
#[test]
fn an_arn_is_read_from_its_own_region() {
    let p = unique("arnregion");
    let arn = moto().create("eu-west-1", &format!("{p}/s"), "from-eu");
    let env = Env::new();
    let r = env.render(&format!("x: <<aws|{arn}>>\n"));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "x: from-eu\n"),
        "{}",
        r.stderr
    );
    let auth = &env.proxy.calls()[0].headers["authorization"];
    assert!(auth.contains("/eu-west-1/"), "{auth}");
}
