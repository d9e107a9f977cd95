//! The ssm provider (AWS Systems Manager Parameter Store) against a real moto
//! server, through the counting proxy: value types, JSON keys, versions and
//! labels, batching by ten and deduplication, errors, regions, `check
//! --resolve`, `--redact`, leaks, the cheap version check of `--refresh`, and
//! that a config without `ssm` references never asks Parameter Store.
//!
//! Where moto differs from AWS (it leaves out an answer's `Selector` and takes
//! no ARN in `GetParameters`), a test answers through the proxy the way AWS
//! documents it.

use crate::support;

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};
use support::moto::moto;
use support::proxy::{Fault, Proxy};
use support::watch::{Signal, Watch};
use support::{canary, unique, AwsEnv as Env};

const REGION: &str = "us-east-1";
const SSM: (&str, &str) = ("ssm", "AmazonSSM");

/// Puts (or overwrites) a parameter in moto; returns its new version.
pub(crate) fn put(region: &str, name: &str, kind: &str, value: &str) -> i64 {
    let out = moto().json(
        region,
        SSM,
        "PutParameter",
        json!({ "Name": name, "Type": kind, "Value": value, "Overwrite": true }),
    );
    out["Version"].as_i64().expect("Version")
}

/// Labels a version of a parameter.
fn label(name: &str, version: i64, labels: &[&str]) {
    moto().json(
        REGION,
        SSM,
        "LabelParameterVersion",
        json!({ "Name": name, "ParameterVersion": version, "Labels": labels }),
    );
}

/// The bodies of the GetParameters calls the proxy saw.
fn get_parameters(env: &Env) -> Vec<Value> {
    env.calls_to("GetParameters")
        .iter()
        .map(|c| serde_json::from_str(&c.body).expect("JSON body"))
        .collect()
}

/// The `Names` of each GetParameters call.
fn names(env: &Env) -> Vec<Vec<String>> {
    get_parameters(env)
        .iter()
        .map(|b| {
            b["Names"]
                .as_array()
                .expect("Names")
                .iter()
                .map(|n| n.as_str().expect("name").to_owned())
                .collect()
        })
        .collect()
}

#[test]
fn string_stringlist_securestring_and_json_keys_render() {
    let p = format!("/{}", unique("kf-values"));
    let secure = canary();
    put(
        REGION,
        &format!("{p}/plain"),
        "String",
        "hello: world # not a comment",
    );
    put(REGION, &format!("{p}/list"), "StringList", "a,b,c");
    put(REGION, &format!("{p}/secure"), "SecureString", &secure);
    put(
        REGION,
        &format!("{p}/db"),
        "SecureString",
        r#"{"user":"app","password":"pw 1","port":5432,"hosts":["a","b"]}"#,
    );
    let env = Env::new();
    let config = format!(
        r#"secrets:
  DB: {{ ssm: {{ name: {p}/db }}, type: json }}
  PORT: {{ ssm: {{ name: {p}/db, key: port }} }}
plain: <<ssm|{p}/plain>>
list: <<ssm|{p}/list>>
secure: <<ssm|{p}/secure>>
user: <<ssm|{p}/db:user>>
host: <<ssm|{p}/db:hosts.1>>
url: "pg://<<ssm|{p}/db:user>>:<<ssm|{p}/db:password>>@db"
whole: $<DB>
port: $<PORT>
"#
    );
    let r = env.render(&config);
    r.code(0).stdout_is(&format!(
        r#"plain: 'hello: world # not a comment'
list: a,b,c
secure: {secure}
user: app
host: b
url: "pg://app:pw 1@db"
whole: {{"user": "app", "password": "pw 1", "port": 5432, "hosts": ["a", "b"]}}
port: '5432'
"#
    ));
    assert!(!r.stderr.contains(&secure), "{}", r.stderr);
    // Four distinct parameters: one call, decrypting.
    let bodies = get_parameters(&env);
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["WithDecryption"], json!(true));
    let mut asked = names(&env).remove(0);
    asked.sort();
    let mut want: Vec<String> = ["db", "list", "plain", "secure"]
        .iter()
        .map(|n| format!("{p}/{n}"))
        .collect();
    want.sort();
    assert_eq!(asked, want);
}

#[test]
fn versions_and_labels_select_the_value_and_the_current_one_stays_current() {
    let name = format!("/{}", unique("kf-versions"));
    assert_eq!(put(REGION, &name, "SecureString", "one"), 1);
    assert_eq!(put(REGION, &name, "SecureString", "two"), 2);
    label(&name, 1, &["stable"]);
    let env = Env::new();
    let config = format!(
        "now: <<ssm|{name}>>\nv1: <<ssm|{name}?version=1>>\nv2: <<ssm|{name}?version=2>>\n\
         stable: <<ssm|{name}?label=stable>>\nagain: <<ssm|{name}?region={REGION}>>\n"
    );
    env.render(&config)
        .code(0)
        .stdout_is("now: two\nv1: one\nv2: two\nstable: one\nagain: two\n");
    // A parameter is named once per call: four selectors, four calls.
    let mut asked: Vec<Vec<String>> = names(&env);
    asked.sort();
    assert_eq!(
        asked,
        [
            vec![name.clone()],
            vec![format!("{name}:1")],
            vec![format!("{name}:2")],
            vec![format!("{name}:stable")],
        ]
    );
}

#[test]
fn a_missing_parameter_version_or_label_is_exit_4_naming_it() {
    let name = format!("/{}", unique("kf-missing"));
    put(REGION, &name, "String", "here");
    let env = Env::new();
    for (reference, message) in [
        (
            format!("{name}-gone"),
            "the parameter does not exist in AWS Systems Manager Parameter Store",
        ),
        (
            format!("{name}?version=9"),
            "this version of the parameter does not exist in AWS Systems Manager Parameter Store",
        ),
        (
            format!("{name}?label=nope"),
            "no version of the parameter has this label in AWS Systems Manager Parameter Store \
             (or the parameter does not exist)",
        ),
    ] {
        env.render(&format!("ok: <<ssm|{name}>>\nx: <<ssm|{reference}>>\n"))
            .code(4)
            .stdout_is("")
            .stderr_has(&reference)
            .stderr_has(message);
    }
}

#[test]
fn more_than_ten_distinct_names_cost_one_call_per_ten() {
    let p = format!("/{}", unique("kf-batch"));
    let env = Env::new();
    for n in [1usize, 10, 11, 23] {
        env.proxy.reset();
        let mut config = String::new();
        let mut want = String::new();
        for i in 0..n {
            let value = format!("v{i}");
            put(REGION, &format!("{p}/{n}/{i}"), "SecureString", &value);
            // Each parameter three times: still one name in one call.
            for k in 0..3 {
                let _ = writeln!(config, "k{i}_{k}: <<ssm|{p}/{n}/{i}>>");
                let _ = writeln!(want, "k{i}_{k}: {value}");
            }
        }
        env.render(&config).code(0).stdout_is(&want);
        let calls = names(&env);
        assert_eq!(calls.len(), n.div_ceil(10), "{n} names: {calls:?}");
        assert!(calls.iter().all(|c| c.len() <= 10), "{calls:?}");
        let mut all: Vec<String> = calls.into_iter().flatten().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "each name asked once");
    }
}

#[test]
fn one_parameter_referenced_many_times_is_fetched_once() {
    let name = format!("/{}", unique("kf-once"));
    put(REGION, &name, "SecureString", r#"{"a":"1","b":"2"}"#);
    let env = Env::new();
    let mut config = format!("secrets:\n  A: {{ ssm: {{ name: {name}, key: a }} }}\n");
    let mut want = String::new();
    for i in 0..30 {
        let k = ["a", "b"][i % 2];
        let _ = writeln!(config, "r{i}: <<ssm|{name}:{k}>>\nd{i}: $<A>");
        let _ = writeln!(want, "r{i}: '{}'\nd{i}: '1'", i % 2 + 1);
    }
    env.render(&config).code(0).stdout_is(&want);
    assert_eq!(names(&env), [vec![name]]);
}

#[test]
fn a_region_override_and_an_arns_region_are_used() {
    let name = format!("/{}", unique("kf-region"));
    put("eu-west-1", &name, "String", "from-eu");
    let env = Env::new();
    env.render(&format!("x: <<ssm|{name}?region=eu-west-1>>\n"))
        .code(0)
        .stdout_is("x: from-eu\n");
    env.render(&format!("x: <<ssm|{name}>>\n"))
        .code(4)
        .stderr_has("does not exist");
    let regions: Vec<String> = env
        .calls_to("GetParameters")
        .iter()
        .map(|c| {
            c.headers["authorization"]
                .split('/')
                .nth(2)
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(regions, ["eu-west-1", REGION]);

    // An ARN's region signs the call; the answer (as AWS gives it: by name,
    // with the ARN) reaches the reference, JSON key after the sixth colon.
    env.proxy.reset();
    let arn = format!("arn:aws:ssm:ap-south-1:123456789012:parameter{name}");
    let answer = json!({
        "Parameters": [{
            "Name": name, "Type": "String", "Value": "{\"k\":\"by-arn\"}", "Version": 4,
            "ARN": arn, "DataType": "text"
        }],
        "InvalidParameters": []
    });
    env.proxy.inject_matching(
        "GetParameters",
        &arn,
        1,
        Fault::Respond {
            status: 200,
            headers: vec![],
            body: answer.to_string(),
        },
    );
    env.render(&format!("x: <<ssm|{arn}:k>>\n"))
        .code(0)
        .stdout_is("x: by-arn\n");
    let auth = &env.calls_to("GetParameters")[0].headers["authorization"];
    assert!(auth.contains("/ap-south-1/ssm/"), "{auth}");
}

#[test]
fn answers_out_of_order_are_matched_by_name_and_selector() {
    // As AWS answers: in its own order, each with the selector it was asked by.
    let p = format!("/{}", unique("kf-order"));
    let env = Env::new();
    let answer = json!({
        "Parameters": [
            { "Name": format!("{p}/c"), "Type": "String", "Value": "C", "Version": 1 },
            { "Name": format!("{p}/b"), "Type": "String", "Value": "B3", "Version": 3,
              "Selector": ":3" },
            { "Name": format!("{p}/a"), "Type": "SecureString", "Value": "A7", "Version": 7,
              "Selector": ":stable" }
        ],
        "InvalidParameters": [format!("{p}/d")]
    });
    env.proxy.inject(
        "GetParameters",
        1,
        Fault::Respond {
            status: 200,
            headers: vec![],
            body: answer.to_string(),
        },
    );
    let r = env.render(&format!(
        "a: <<ssm|{p}/a?label=stable>>\nb: <<ssm|{p}/b?version=3>>\nc: <<ssm|{p}/c>>\n\
         d: <<ssm|{p}/d>>\n"
    ));
    r.code(4).stderr_has(&format!("{p}/d"));
    assert_eq!(names(&env).len(), 1);
    let ok =
        format!("a: <<ssm|{p}/a?label=stable>>\nb: <<ssm|{p}/b?version=3>>\nc: <<ssm|{p}/c>>\n");
    env.proxy.inject(
        "GetParameters",
        1,
        Fault::Respond {
            status: 200,
            headers: vec![],
            body: answer.to_string(),
        },
    );
    env.render(&ok).code(0).stdout_is("a: A7\nb: B3\nc: C\n");
}

#[test]
fn one_denied_parameter_does_not_fail_the_others_of_its_call() {
    let p = format!("/{}", unique("kf-denied"));
    for n in ["a", "b", "no"] {
        put(REGION, &format!("{p}/{n}"), "String", n);
    }
    let env = Env::new();
    // IAM refuses a call naming a parameter the policy does not allow.
    env.proxy.inject_matching(
        "GetParameters",
        &format!("{p}/no\""),
        usize::MAX,
        Fault::aws(
            400,
            "AccessDeniedException",
            "not authorized: ssm:GetParameters",
        ),
    );
    let r = env.render(&format!(
        "a: <<ssm|{p}/a>>\nb: <<ssm|{p}/b>>\nno: <<ssm|{p}/no>>\n"
    ));
    r.code(5)
        .stdout_is("")
        .stderr_has(&format!("<<ssm|{p}/no>>"))
        .stderr_has("access denied: the credentials need ssm:GetParameters on this parameter");
    assert!(
        !r.stderr.contains(&format!("<<ssm|{p}/a>>")),
        "{}",
        r.stderr
    );
    // The call of three, then each alone.
    assert_eq!(names(&env).len(), 4, "{:?}", names(&env));
}

#[test]
fn a_refused_kms_decryption_is_exit_5() {
    let name = format!("/{}", unique("kf-kms"));
    put(REGION, &name, "SecureString", "x");
    let env = Env::new();
    env.proxy.inject(
        "GetParameters",
        usize::MAX,
        Fault::aws(
            400,
            "AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/u is not authorized to perform: kms:Decrypt",
        ),
    );
    let r = env.render(&format!("x: <<ssm|{name}>>\n"));
    r.code(5)
        .stderr_has("AWS could not decrypt the parameter with its KMS key")
        .stderr_has(&name);
    assert!(!r.stderr.contains("User:"), "{}", r.stderr);
}

#[test]
fn internal_server_errors_are_retried() {
    let name = format!("/{}", unique("kf-500"));
    put(REGION, &name, "String", "after");
    let env = Env::new();
    env.proxy.inject(
        "GetParameters",
        2,
        Fault::aws(500, "InternalServerError", "oops"),
    );
    env.render(&format!("x: <<ssm|{name}>>\n"))
        .code(0)
        .stdout_is("x: after\n");
    assert_eq!(names(&env).len(), 3);
}

#[test]
fn check_resolve_and_redact() {
    let name = format!("/{}", unique("kf-check"));
    let value = canary();
    put(REGION, &name, "SecureString", &value);
    let env = Env::new();
    let config = format!("a: <<ssm|{name}>>\nb: <<ssm|{name}-gone>>\n");
    let r = env.run(&["check", "--resolve"], &config);
    r.code(4).silent(&value);
    let line = |needle: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(needle) && !l.contains(&format!("{needle}-")))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert!(line(&name).ends_with("[found]"), "{}", r.stdout);
    assert!(
        line(&format!("{name}-gone")).ends_with("[not found]"),
        "{}",
        r.stdout
    );

    let r = env.run(&["render", "--redact"], &format!("a: <<ssm|{name}>>\n"));
    r.code(0).silent(&value).stdout_is("a: '********'\n");
}

#[test]
fn values_never_reach_stderr_at_vv_or_in_the_json_log() {
    let p = format!("/{}", unique("kf-leak"));
    let (s, l, j) = (canary(), canary(), canary());
    put(REGION, &format!("{p}/s"), "SecureString", &s);
    put(REGION, &format!("{p}/l"), "StringList", &format!("{l},x"));
    put(
        REGION,
        &format!("{p}/j"),
        "String",
        &format!("{{\"k\":\"{j}\"}}"),
    );
    let env = Env::new();
    let config = format!("s: <<ssm|{p}/s>>\nl: <<ssm|{p}/l>>\nj: <<ssm|{p}/j:k>>\n");
    let failing = format!("{config}x: <<ssm|{p}/gone>>\ny: <<ssm|{p}/j:nokey>>\n");
    for args in [
        &["-vv", "render"][..],
        &["--log-format", "json", "-vvv", "render"],
    ] {
        let r = env.run(args, &config);
        r.code(0);
        for v in [&s, &l, &j] {
            assert!(!r.stderr.contains(v.as_str()), "{args:?}: {}", r.stderr);
        }
        let r = env.run(args, &failing);
        r.code(4).stdout_is("");
        for v in [&s, &l, &j] {
            r.silent(v);
        }
    }
}

#[test]
fn a_config_without_ssm_references_never_asks_parameter_store() {
    let secret = unique("kf-lazy");
    moto().create(REGION, &secret, "sm");
    let env = Env::new();
    env.render(&format!("a: <<aws|{secret}>>\nb: <<env|HOME>>\n"))
        .code(0);
    let targets: Vec<String> = env.proxy.calls().iter().map(|c| c.target.clone()).collect();
    assert_eq!(targets, ["GetSecretValue"]);
    assert!(env
        .proxy
        .calls()
        .iter()
        .all(|c| !c.headers["authorization"].contains("/ssm/")));
}

/// A `keyfill watch` of `config` whose SIGHUP refresh is asked of Parameter
/// Store: waits for each render and returns its line.
struct Refresh {
    env: Env,
    w: Watch,
}

impl Refresh {
    fn start(config: &str) -> Refresh {
        let env = Env::new();
        std::fs::write(env.path().join("app.yaml"), config).expect("config");
        let vars = env.vars();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (&**k, &**v)).collect();
        let mut w = Watch::start(env.path(), &["watch", "app.yaml", "-o", "out.yaml"], &vars);
        w.wait_renders(1, Duration::from_secs(30));
        Refresh { env, w }
    }

    fn refresh(&mut self) -> String {
        self.env.proxy.reset();
        let n = self.w.renders();
        self.w.signal(Signal::HUP);
        self.w.wait_renders(n + 1, Duration::from_secs(30));
        self.w.render_lines()[n].clone()
    }

    fn out(&self) -> String {
        std::fs::read_to_string(self.env.path().join("out.yaml")).unwrap_or_default()
    }
}

#[test]
fn refresh_checks_versions_without_decrypting_and_fetches_only_what_moved() {
    let p = format!("/{}", unique("kf-refresh"));
    let (a1, a2, b, pinned) = (canary(), canary(), canary(), canary());
    put(REGION, &format!("{p}/a"), "SecureString", &a1);
    put(REGION, &format!("{p}/b"), "SecureString", &b);
    put(REGION, &format!("{p}/pin"), "SecureString", &pinned);
    put(REGION, &format!("{p}/pin"), "SecureString", "later");
    let mut r = Refresh::start(&format!(
        "a: <<ssm|{p}/a>>\nb: <<ssm|{p}/b>>\npin: <<ssm|{p}/pin?version=1>>\n"
    ));
    assert_eq!(r.out(), format!("a: {a1}\nb: {b}\npin: {pinned}\n"));

    // Unchanged: one version check for the two current ones, without
    // decryption; the pinned version needs no call.
    assert_eq!(r.refresh(), "keyfill: refresh: out.yaml unchanged");
    let bodies = get_parameters(&r.env);
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["WithDecryption"], json!(false));
    let mut asked = names(&r.env).remove(0);
    asked.sort();
    assert_eq!(asked, [format!("{p}/a"), format!("{p}/b")]);

    // `a` moved to version 2: the check, then `a` alone, decrypted.
    put(REGION, &format!("{p}/a"), "SecureString", &a2);
    assert_eq!(
        r.refresh(),
        format!("keyfill: refresh (new values: ssm|{p}/a): out.yaml written")
    );
    let bodies = get_parameters(&r.env);
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert_eq!(bodies[1]["WithDecryption"], json!(true));
    assert_eq!(bodies[1]["Names"], json!([format!("{p}/a")]));
    assert_eq!(r.out(), format!("a: {a2}\nb: {b}\npin: {pinned}\n"));
    let stderr = r.w.stderr();
    for v in [&a1, &a2, &b, &pinned] {
        assert!(!stderr.contains(v.as_str()), "{stderr}");
    }
}

#[test]
fn aws_endpoint_url_ssm_wins_over_the_general_endpoint() {
    let name = format!("/{}", unique("kf-endpoint"));
    put(REGION, &name, "String", "via-ssm-endpoint");
    let env = Env::new();
    let url = env.proxy.url();
    env.run_with(
        &["render", "--timeout", "10s"],
        &format!("x: <<ssm|{name}>>\n"),
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_SSM", &url),
        ],
    )
    .code(0)
    .stdout_is("x: via-ssm-endpoint\n");
}

#[test]
fn calls_run_at_once_within_the_concurrency_bound() {
    let p = format!("/{}", unique("kf-concurrency"));
    let mut config = String::new();
    for i in 0..35 {
        put(REGION, &format!("{p}/{i}"), "String", &format!("v{i}"));
        let _ = writeln!(config, "k{i}: <<ssm|{p}/{i}>>");
    }
    for (concurrency, most) in [("8", 4), ("2", 2)] {
        // A slow server, so that calls sent together are in flight together.
        let env = Env {
            proxy: Proxy::start(moto().addr, Duration::from_millis(300)),
            ..Env::new()
        };
        let r = env.run(&["render", "--concurrency", concurrency], &config);
        r.code(0);
        assert!(r.stdout.ends_with("k34: v34\n"), "{}", r.stdout);
        assert_eq!(names(&env).len(), 4);
        assert_eq!(
            env.proxy.max_in_flight(),
            most,
            "--concurrency {concurrency}"
        );
    }
}
