//! The onepassword provider against an in-process 1Password Connect server and a
//! fake `op` CLI (`tests/support/connect.rs`, written from 1Password's public API
//! reference and CLI documentation).
//!
//! Connect (`OP_CONNECT_HOST` + `OP_CONNECT_TOKEN`): fields by vault/item/field
//! and vault/item/section/field, attributes (`otp` against the code the server
//! reports), one vault lookup per vault and one item fetch per item however many
//! references, names compared exactly (the server's filter ignores case, as SCIM
//! allows), every missing vault/item/field reported in one pass (exit 4, names
//! and existing labels, never values), a bad token (exit 5, never printed), 5xx
//! and 429 retried (`Retry-After` honoured), a stall ended by `--timeout`, error
//! bodies never echoed, and `check --resolve` statuses.
//!
//! CLI (`OP_SERVICE_ACCOUNT_TOKEN`): `op item get ITEM --vault VAULT --format
//! json`, one invocation per item, missing item/vault (exit 4), a bad token
//! (exit 5), no `op` on `PATH` (exit 5, said clearly), not configured at all.

use crate::support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::connect::{connect_error, otp_uri, totp, totp_window, Connect, FakeOp, Field, Item};
use support::proxy::Fault;
use support::{assert_silent, canary, keyfill, Run};

/// RFC 6238's SHA-1 seed, "12345678901234567890", in base32.
const SEED: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// A folder for configs (its `tmp/` is keyfill's `TMPDIR`) and the variables
/// for one way of reaching 1Password.
struct Fixture {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("tmp")).expect("TMPDIR inside the temp dir");
        let vars = vec![
            (
                "TMPDIR".to_owned(),
                dir.path().join("tmp").display().to_string(),
            ),
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        Fixture { dir, vars }
    }

    /// Pointed at a Connect server with `token`.
    fn connect(server: &Connect, token: &str) -> Fixture {
        let mut f = Fixture::new();
        f.set("OP_CONNECT_HOST", &server.url());
        f.set("OP_CONNECT_TOKEN", token);
        f
    }

    /// With the fake `op` (installed in `bin/`) first on `PATH` and a service
    /// account `token`; returns the fake to seed.
    fn cli(accepted: &str, token: &str) -> (Fixture, FakeOp) {
        let mut f = Fixture::new();
        let op = FakeOp::install(&f.path().join("bin"), accepted);
        let path = std::env::var("PATH").unwrap_or_default();
        f.set("PATH", &format!("{}:{path}", op.dir.display()));
        f.set("OP_SERVICE_ACCOUNT_TOKEN", token);
        (f, op)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn set(&mut self, k: &str, v: &str) {
        self.vars.retain(|(n, _)| n != k);
        self.vars.push((k.to_owned(), v.to_owned()));
    }

    /// Writes `config.yaml` and runs keyfill with `args` and the config's path.
    fn run(&self, args: &[&str], config: &str) -> Run {
        std::fs::write(self.path().join("config.yaml"), config).expect("write config");
        let mut all = args.to_vec();
        all.push("config.yaml");
        keyfill(self.path(), &all, &self.vars)
    }

    fn render(&self, config: &str) -> Run {
        self.run(&["render"], config)
    }
}

/// The lines of stderr that start a diagnostic.
fn errors(r: &Run) -> Vec<&str> {
    r.stderr
        .lines()
        .filter(|l| l.starts_with("error"))
        .collect()
}

/// A rendered scalar without the quotes a code that starts with a digit gets.
fn unquote(s: &str) -> &str {
    s.trim()
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .or_else(|| s.trim().strip_prefix('"').and_then(|s| s.strip_suffix('"')))
        .unwrap_or(s.trim())
}

/// The value after `key: ` on stdout.
fn value_of<'a>(stdout: &'a str, key: &str) -> Option<&'a str> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .map(unquote)
}

// ---------------------------------------------------------------------------
// The test server itself
// ---------------------------------------------------------------------------

/// One request on a kept-alive connection; returns status, headers and body.
fn raw(
    conn: &mut BufReader<TcpStream>,
    target: &str,
    token: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: test\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    conn.get_mut()
        .write_all(req.as_bytes())
        .expect("send request");
    let mut line = String::new();
    conn.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        conn.read_line(&mut h).expect("header");
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':').expect("header line");
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .expect("content-length");
    let mut body = vec![0; len];
    conn.read_exact(&mut body).expect("body");
    (
        status,
        headers,
        String::from_utf8(body).expect("UTF-8 body"),
    )
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).expect("JSON body")
}

#[test]
fn the_test_server_speaks_the_documented_connect_api() {
    let c = Connect::start("tok-1");
    let vid = c.add_vault("Production");
    c.add_vault("Staging");
    let iid = c.add_item(
        &vid,
        Item::new("Slack", "API_CREDENTIAL")
            .section("s1", "Admin")
            .field(Field::concealed("credential", "xoxb-1").purpose("PASSWORD"))
            .field(Field::string("email", "a@example.com").in_section("s1"))
            .field(Field::otp("one-time password", SEED)),
    );
    let mut conn = BufReader::new(TcpStream::connect(c.addr).expect("connect"));
    // Liveness needs no token.
    let (s, _, b) = raw(&mut conn, "/heartbeat", None);
    assert_eq!((s, b.as_str()), (200, "."));
    let (s, _, b) = raw(&mut conn, "/health", None);
    assert_eq!(s, 200);
    assert!(json(&b)["dependencies"].is_array());
    // Everything under /v1 does.
    for token in [None, Some("wrong")] {
        let (s, _, b) = raw(&mut conn, "/v1/vaults", token);
        assert_eq!(s, 401);
        assert_eq!(json(&b)["status"], 401);
        assert!(json(&b)["message"].is_string());
    }
    let t = Some("tok-1");
    let (s, _, b) = raw(&mut conn, "/v1/vaults", t);
    assert_eq!((s, json(&b).as_array().map(Vec::len)), (200, Some(2)));
    // Filters: the documented `name eq`, the Go SDK's `title eq`; SCIM `eq`
    // ignores case.
    for f in [
        "name+eq+%22Production%22",
        "title%20eq%20%22Production%22",
        "name+eq+%22production%22",
    ] {
        let (s, _, b) = raw(&mut conn, &format!("/v1/vaults?filter={f}"), t);
        assert_eq!(s, 200);
        assert_eq!(json(&b)[0]["id"], vid.as_str(), "{f}");
        assert_eq!(json(&b).as_array().map(Vec::len), Some(1), "{f}");
    }
    let (s, _, b) = raw(&mut conn, "/v1/vaults?filter=name+eq+%22Nope%22", t);
    assert_eq!((s, b.as_str()), (200, "[]"));
    let (s, _, _) = raw(&mut conn, "/v1/vaults?filter=nonsense", t);
    assert_eq!(s, 400);
    let (s, _, b) = raw(&mut conn, &format!("/v1/vaults/{vid}"), t);
    assert_eq!((s, json(&b)["name"].as_str()), (200, Some("Production")));
    let (s, _, _) = raw(&mut conn, "/v1/vaults/not-an-id", t);
    assert_eq!(s, 400);
    let (s, _, b) = raw(&mut conn, "/v1/vaults/aaaaaaaaaaaaaaaaaaaaaaaaaa", t);
    assert_eq!((s, json(&b)["status"].as_u64()), (404, Some(404)));
    let (s, _, b) = raw(
        &mut conn,
        &format!("/v1/vaults/{vid}/items?filter=title+eq+%22Slack%22"),
        t,
    );
    assert_eq!(s, 200);
    let list = json(&b);
    assert_eq!(list[0]["id"], iid.as_str());
    assert_eq!(list[0]["vault"]["id"], vid.as_str());
    assert!(list[0].get("fields").is_none(), "a list holds summaries");
    let (s, _, b) = raw(&mut conn, &format!("/v1/vaults/{vid}/items/{iid}"), t);
    assert_eq!(s, 200);
    let item = json(&b);
    assert_eq!(item["title"], "Slack");
    assert_eq!(item["sections"][0]["label"], "Admin");
    assert_eq!(item["fields"][0]["type"], "CONCEALED");
    assert_eq!(item["fields"][0]["purpose"], "PASSWORD");
    assert_eq!(item["fields"][1]["section"]["id"], "s1");
    assert_eq!(item["fields"][2]["type"], "OTP");
    assert_eq!(item["fields"][2]["value"], otp_uri(SEED).as_str());
    let code = item["fields"][2]["totp"].as_str().expect("totp").to_owned();
    assert!(totp_window(SEED).contains(&code));
    assert_eq!(c.codes(), vec![code]);
    let (s, _, _) = raw(
        &mut conn,
        &format!("/v1/vaults/{vid}/items/aaaaaaaaaaaaaaaaaaaaaaaaaa"),
        t,
    );
    assert_eq!(s, 404);
    // Faults, then the real answer.
    c.inject("GET /v1/vaults", 1, connect_error(500, "boom"));
    c.inject(
        "GET /v1/vaults",
        1,
        Fault::Respond {
            status: 429,
            headers: vec![("Retry-After".into(), "3".into())],
            body: String::new(),
        },
    );
    assert_eq!(raw(&mut conn, "/v1/vaults", t).0, 500);
    let (s, h, _) = raw(&mut conn, "/v1/vaults", t);
    assert_eq!(s, 429);
    assert!(h.contains(&("retry-after".into(), "3".into())));
    assert_eq!(raw(&mut conn, "/v1/vaults", t).0, 200);
    // All of it on one kept-alive connection, and all of it recorded.
    let reqs = c.requests();
    assert_eq!(reqs.len(), 19);
    assert_eq!(reqs[8].filter.as_deref(), Some("name eq \"Nope\""));
    assert!(reqs
        .last()
        .is_some_and(|r| r.is_vault_list() && r.status == 200));
    assert_eq!(c.count(|r| r.is_item_get(&vid, &iid)), 1);
}

#[test]
fn the_test_totp_matches_rfc_6238() {
    // RFC 6238 appendix B, SHA-1, 8 digits.
    for (t, code) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_234_567_890, "89005924"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(totp(SEED, t, 30, 8).as_deref(), Some(code));
    }
}

#[test]
fn the_fake_op_prints_items_and_op_errors() {
    let (fx, mut op) = Fixture::cli("ops_right", "ops_right");
    let vid = op.add_vault("Production");
    op.add_item(
        &vid,
        Item::new("Slack", "LOGIN")
            .section("s1", "Admin")
            .field(Field::string("username", "bot").purpose("USERNAME"))
            .field(Field::string("email", "a@example.com").in_section("s1"))
            .field(Field::otp("one-time password", SEED)),
    );
    let run = |args: &[&str], token: &str| {
        let out = std::process::Command::new(op.dir.join("op"))
            .args(args)
            .env("OP_SERVICE_ACCOUNT_TOKEN", token)
            .output()
            .expect("run the fake op");
        let _ = &fx;
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let get = [
        "item",
        "get",
        "Slack",
        "--vault",
        "Production",
        "--format",
        "json",
    ];
    let (code, out, err) = run(&get, "ops_right");
    assert_eq!(code, 0, "{err}");
    let item = json(&out);
    assert_eq!(item["vault"]["name"], "Production");
    assert_eq!(item["fields"][1]["section"]["label"], "Admin");
    assert_eq!(
        item["fields"][1]["reference"],
        "op://Production/Slack/Admin/email"
    );
    assert!(
        totp_window(SEED).contains(&item["fields"][2]["totp"].as_str().expect("totp").to_owned())
    );
    let (code, _, err) = run(
        &["item", "get", "Nope", "--vault=Production", "--format=json"],
        "ops_right",
    );
    assert_eq!(code, 1);
    assert!(err.starts_with("[ERROR] "), "{err}");
    assert!(err.ends_with(
        "\"Nope\" isn't an item in the \"Production\" vault. Specify the item with its UUID, name, or domain.\n"
    ));
    let (code, _, err) = run(
        &["item", "get", "Slack", "--vault", "Dev", "--format", "json"],
        "ops_right",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("\"Dev\" isn't a vault in this account."),
        "{err}"
    );
    let (code, out, err) = run(&get, "ops_wrong");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("DecodeSACredentials"), "{err}");
    assert_eq!(op.calls().len(), 4);
    assert_eq!(op.calls()[0].argv, get);
}

// ---------------------------------------------------------------------------
// Connect
// ---------------------------------------------------------------------------

/// A Connect server with vault "Production" holding item "Slack"; returns the
/// server, the token, the vault id, the item id and the credential's value.
fn slack() -> (Connect, String, String, String, String) {
    let token = canary();
    let c = Connect::start(&token);
    let vid = c.add_vault("Production");
    c.add_vault("Staging");
    let secret = canary();
    let iid = c.add_item(
        &vid,
        Item::new("Slack", "API_CREDENTIAL")
            .section("adminsection", "Admin")
            .section("devsection", "Dev")
            .field(Field::string("username", "bot").purpose("USERNAME"))
            .field(
                Field::concealed("credential", &secret)
                    .purpose("PASSWORD")
                    .id("password"),
            )
            .field(Field::string("email", "admin@example.com").in_section("adminsection"))
            .field(Field::string("email", "dev@example.com").in_section("devsection"))
            .field(Field::otp("one-time password", SEED)),
    );
    (c, token, vid, iid, secret)
}

#[test]
fn connect_fields_by_vault_item_and_field() {
    let (c, token, _, _, secret) = slack();
    let fx = Fixture::connect(&c, &token);
    let r = fx.render(
        "secrets:\n  LONG:\n    onepassword: \"op://Production/Slack/username\"\n\
         a: <<op|op://Production/Slack/credential>>\n\
         b: <<onepassword|op://Production/Slack/username>>\n\
         c: $<LONG>\n\
         d: \"user=<<op|op://Production/Slack/username>>;pw=<<op|op://Production/Slack/credential>>\"\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!("a: {secret}\nb: bot\nc: bot\nd: \"user=bot;pw={secret}\"\n")
    );
    assert_silent(&r, &token, "token");
    let reqs = c.requests();
    assert!(!reqs.is_empty());
    for req in &reqs {
        assert_eq!(
            req.authorization.as_deref(),
            Some(format!("Bearer {token}").as_str()),
            "{req:?}"
        );
        assert_eq!(req.method, "GET");
    }
}

#[test]
fn connect_fields_by_id_and_in_sections() {
    let (c, token, _, _, secret) = slack();
    let fx = Fixture::connect(&c, &token);
    let r = fx.render(
        "admin: <<op|op://Production/Slack/Admin/email>>\n\
         dev: <<op|op://Production/Slack/Dev/email>>\n\
         by_id: <<op|op://Production/Slack/password>>\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        format!("admin: admin@example.com\ndev: dev@example.com\nby_id: {secret}\n")
    );
    // A field that exists, but not in the named section, is not found.
    let r = fx.render("x: <<op|op://Production/Slack/Admin/username>>\n");
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("username"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn connect_otp_attribute_is_the_code_the_server_reports() {
    let (c, token, _, _, _) = slack();
    let fx = Fixture::connect(&c, &token);
    let r = fx.render("code: <<op|op://Production/Slack/one-time password?attribute=otp>>\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let code = value_of(&r.stdout, "code").expect("a code").to_owned();
    assert_eq!(code.len(), 6, "{}", r.stdout);
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{}", r.stdout);
    let served = c.codes();
    assert!(
        served.contains(&code),
        "{code} is not a code the server reported ({served:?})"
    );
}

#[test]
fn connect_field_attributes() {
    let (c, token, _, _, secret) = slack();
    let fx = Fixture::connect(&c, &token);
    let r = fx.render(
        "type: <<op|op://Production/Slack/credential?attribute=type>>\n\
         id: <<op|op://Production/Slack/credential?attribute=id>>\n\
         label: <<op|op://Production/Slack/credential?attribute=label>>\n\
         purpose: <<op|op://Production/Slack/credential?attribute=purpose>>\n\
         value: <<op|op://Production/Slack/credential?attribute=value>>\n\
         otptype: <<op|op://Production/Slack/one-time password?attribute=type>>\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // op prints types and purposes as Connect stores them.
    let lower = |s: Option<&str>| s.map(str::to_ascii_uppercase);
    assert_eq!(
        lower(value_of(&r.stdout, "type")).as_deref(),
        Some("CONCEALED"),
        "{}",
        r.stdout
    );
    assert_eq!(value_of(&r.stdout, "id"), Some("password"), "{}", r.stdout);
    assert_eq!(value_of(&r.stdout, "label"), Some("credential"));
    assert_eq!(
        lower(value_of(&r.stdout, "purpose")).as_deref(),
        Some("PASSWORD")
    );
    assert_eq!(value_of(&r.stdout, "value"), Some(secret.as_str()));
    assert_eq!(
        lower(value_of(&r.stdout, "otptype")).as_deref(),
        Some("OTP")
    );
}

#[test]
fn connect_many_fields_of_one_item_are_one_fetch() {
    let token = canary();
    let c = Connect::start(&token);
    let vid = c.add_vault("Production");
    let mut big = Item::new("Big", "LOGIN").section("sec", "More");
    let mut other = Item::new("Other", "PASSWORD");
    for i in 0..25 {
        big = big.field(Field::concealed(&format!("f{i}"), &format!("value-{i}")));
        other = other.field(Field::concealed(&format!("g{i}"), &format!("other-{i}")));
    }
    big = big.field(Field::string("inside", "sectioned").in_section("sec"));
    let big_id = c.add_item(&vid, big);
    let other_id = c.add_item(&vid, other);
    let fx = Fixture::connect(&c, &token);
    let mut config =
        String::from("secrets:\n  LONG: { onepassword: \"op://Production/Big/f0\" }\n");
    for round in 0..3 {
        for i in 0..25 {
            config.push_str(&format!("b{round}_{i}: <<op|op://Production/Big/f{i}>>\n"));
            config.push_str(&format!(
                "o{round}_{i}: <<op|op://Production/Other/g{i}>>\n"
            ));
        }
    }
    config.push_str("s: <<op|op://Production/Big/More/inside>>\nl: $<LONG>\n");
    let r = fx.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("b2_24: value-24\n"));
    assert!(r.stdout.contains("o1_7: other-7\n"));
    assert!(r.stdout.contains("s: sectioned\nl: value-0\n"));
    let reqs = c.requests();
    let shown: Vec<String> = reqs.iter().map(|r| r.target()).collect();
    assert_eq!(c.count(|r| r.is_vault_list()), 1, "{shown:#?}");
    assert_eq!(c.count(|r| r.is_item_list(&vid)), 2, "{shown:#?}");
    assert_eq!(c.count(|r| r.is_item_get(&vid, &big_id)), 1, "{shown:#?}");
    assert_eq!(c.count(|r| r.is_item_get(&vid, &other_id)), 1, "{shown:#?}");
    assert_eq!(reqs.len(), 5, "{shown:#?}");
    // Lookups go through the documented filter, by exact title.
    let vault_filter = reqs
        .iter()
        .find(|r| r.is_vault_list())
        .and_then(|r| r.filter.clone());
    let parsed = vault_filter
        .as_deref()
        .and_then(support::connect::parse_filter);
    assert!(
        matches!(parsed.as_ref(), Some((a, v)) if (a == "name" || a == "title") && v == "Production"),
        "{vault_filter:?}"
    );
    let mut item_filters: Vec<_> = reqs
        .iter()
        .filter(|r| r.is_item_list(&vid))
        .filter_map(|r| r.filter.as_deref().and_then(support::connect::parse_filter))
        .collect();
    item_filters.sort();
    assert_eq!(
        item_filters,
        vec![
            ("title".to_owned(), "Big".to_owned()),
            ("title".to_owned(), "Other".to_owned())
        ]
    );
}

#[test]
fn connect_vault_lookups_are_shared_across_items_and_vaults_apart() {
    let token = canary();
    let c = Connect::start(&token);
    let a = c.add_vault("A");
    let b = c.add_vault("B");
    for v in [&a, &b] {
        for t in ["one", "two", "three"] {
            c.add_item(
                v,
                Item::new(t, "PASSWORD").field(Field::concealed("password", t)),
            );
        }
    }
    let fx = Fixture::connect(&c, &token);
    let (mut config, mut want) = (String::new(), String::new());
    for v in ["A", "B"] {
        for t in ["one", "two", "three"] {
            config.push_str(&format!("{v}_{t}: <<op|op://{v}/{t}/password>>\n"));
            want.push_str(&format!("{v}_{t}: {t}\n"));
        }
    }
    let r = fx.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, want);
    let shown: Vec<String> = c.requests().iter().map(|r| r.target()).collect();
    assert_eq!(c.count(|r| r.is_vault_list()), 2, "{shown:#?}");
    assert_eq!(c.count(|r| r.is_any_item_get()), 6, "{shown:#?}");
    assert_eq!(
        c.count(|r| r.is_item_list(&a)) + c.count(|r| r.is_item_list(&b)),
        6
    );
}

#[test]
fn connect_names_are_case_sensitive() {
    let (c, token, _, _, secret) = slack();
    let fx = Fixture::connect(&c, &token);
    // The server's `eq` ignores case (SCIM); keyfill must not.
    for locator in [
        "op://production/Slack/credential",
        "op://Production/slack/credential",
        "op://Production/Slack/Credential",
        "op://Production/Slack/admin/email",
    ] {
        let r = fx.render(&format!("x: <<op|{locator}>>\n"));
        assert_eq!(r.code, 4, "{locator}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.is_empty());
        assert_silent(&r, &secret, locator);
    }
}

#[test]
fn connect_missing_vault_item_and_field_are_all_reported() {
    let (c, token, _, _, secret) = slack();
    let fx = Fixture::connect(&c, &token);
    let out = fx.path().join("out.yaml");
    std::fs::write(&out, "old: content\n").expect("old output");
    let r = fx.run(
        &["render", "-o", "out.yaml"],
        "ok: <<op|op://Production/Slack/username>>\n\
         v: <<op|op://Nowhere/Slack/credential>>\n\
         i: <<op|op://Production/Missing/credential>>\n\
         f: <<op|op://Production/Slack/nosuchfield>>\n",
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(&out).expect("out"),
        "old: content\n"
    );
    assert_eq!(errors(&r).len(), 3, "{}", r.stderr);
    for name in ["Nowhere", "Missing", "nosuchfield"] {
        assert!(r.stderr.contains(name), "{name} not named:\n{}", r.stderr);
    }
    // The missing field's item lists the labels that exist, not their values.
    for label in ["username", "credential", "email", "one-time password"] {
        assert!(
            r.stderr.contains(label),
            "{label} not listed:\n{}",
            r.stderr
        );
    }
    assert_silent(&r, &secret, "value");
    assert_silent(&r, "admin@example.com", "value");
    assert_silent(&r, SEED, "OTP seed");
    assert_silent(&r, &token, "token");
    assert!(r.stderr.contains(":2:"), "file:line:col, {}", r.stderr);
}

#[test]
fn connect_bad_token_is_exit_5_and_never_printed() {
    let (c, right, _, _, secret) = slack();
    let wrong = canary();
    let fx = Fixture::connect(&c, &wrong);
    let config =
        "a: <<op|op://Production/Slack/credential>>\nb: <<op|op://Production/Slack/username>>\n";
    let r = fx.render(config);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(!errors(&r).is_empty(), "{}", r.stderr);
    assert_silent(&r, &wrong, "the token keyfill sent");
    assert_silent(&r, &right, "the server's token");
    assert_silent(&r, &secret, "value");
    assert_silent(&r, "Invalid bearer token", "the server's message");
    // A 401 is not retried: one lookup of the one vault.
    assert_eq!(c.requests().len(), 1, "{:#?}", c.requests());
    assert!(c.requests().iter().all(|r| r.status == 401));
    // With -v and JSON logs too.
    for args in [
        &["render", "-v", "-v"][..],
        &["render", "--log-format", "json"],
    ] {
        let r = fx.run(args, config);
        assert_eq!(r.code, 5, "{}", r.stderr);
        assert_silent(&r, &wrong, "the token keyfill sent");
    }
}

#[test]
fn connect_403_is_access_denied_exit_5() {
    let (c, token, vid, _, secret) = slack();
    c.inject(
        &format!("/v1/vaults/{vid}/items"),
        usize::MAX,
        connect_error(403, "Authorization: token does not have access to vault"),
    );
    let fx = Fixture::connect(&c, &token);
    let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_silent(&r, "does not have access", "the server's message");
    assert_silent(&r, &secret, "value");
    // Denied is final: no retry.
    assert_eq!(c.count(|r| r.status == 403), 1, "{:#?}", c.requests());
}

#[test]
fn connect_500_then_success_is_retried() {
    let (c, token, vid, iid, secret) = slack();
    c.inject("GET /v1/vaults?", 1, connect_error(500, "canary-body-500"));
    c.inject(
        &format!("GET /v1/vaults/{vid}/items/{iid}"),
        2,
        connect_error(503, "canary-body-503"),
    );
    let fx = Fixture::connect(&c, &token);
    let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, format!("a: {secret}\n")),
        "{}",
        r.stderr
    );
    assert_eq!(c.count(|r| r.is_vault_list()), 2, "{:#?}", c.requests());
    assert_eq!(
        c.count(|r| r.is_item_get(&vid, &iid)),
        3,
        "{:#?}",
        c.requests()
    );
    assert_silent(&r, "canary-body", "an error body");
}

#[test]
fn connect_429_retry_after_is_honoured() {
    let (c, token, vid, iid, secret) = slack();
    c.inject(
        &format!("GET /v1/vaults/{vid}/items/{iid}"),
        1,
        Fault::Respond {
            status: 429,
            headers: vec![
                ("Retry-After".into(), "2".into()),
                ("content-type".into(), "application/json".into()),
            ],
            body: r#"{"status":429,"message":"Too many requests"}"#.into(),
        },
    );
    let fx = Fixture::connect(&c, &token);
    let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, format!("a: {secret}\n")),
        "{}",
        r.stderr
    );
    let gets: Vec<_> = c
        .requests()
        .into_iter()
        .filter(|r| r.is_item_get(&vid, &iid))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    let waited = gets[1].at - gets[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}, before Retry-After's 2 s"
    );
}

#[test]
fn connect_5xx_forever_ends_within_the_timeout_with_exit_5() {
    let (c, token, _, _, _) = slack();
    let body = "<html><body>canary-html-page proxy error</body></html>";
    c.inject(
        "GET /v1/vaults",
        usize::MAX,
        Fault::Respond {
            status: 502,
            headers: vec![("content-type".into(), "text/html".into())],
            body: body.into(),
        },
    );
    let fx = Fixture::connect(&c, &token);
    let start = Instant::now();
    let r = fx.run(
        &["render", "--timeout", "3s"],
        "a: <<op|op://Production/Slack/credential>>\n",
    );
    let took = start.elapsed();
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(c.requests().len() >= 2, "a 502 is retried");
    assert_silent(&r, "canary-html-page", "an HTML error page");
}

#[test]
fn connect_stall_ends_at_the_timeout() {
    let (c, token, _, _, _) = slack();
    c.inject(
        "GET /v1/vaults",
        usize::MAX,
        Fault::Stall(Duration::from_secs(60)),
    );
    let fx = Fixture::connect(&c, &token);
    let start = Instant::now();
    let r = fx.run(
        &["render", "--timeout", "2s"],
        "a: <<op|op://Production/Slack/credential>>\n",
    );
    let took = start.elapsed();
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(r.stdout.is_empty());
}

#[test]
fn connect_unreachable_is_exit_5() {
    let mut fx = Fixture::new();
    fx.set("OP_CONNECT_HOST", support::NOWHERE);
    fx.set("OP_CONNECT_TOKEN", "whatever");
    let r = fx.run(
        &["render", "--timeout", "3s"],
        "a: <<op|op://Production/Slack/credential>>\n",
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[test]
fn check_resolve_reports_found_not_found_and_access_denied() {
    let (c, token, _, _, secret) = slack();
    let locked = c.add_vault("Locked");
    let hidden = canary();
    c.add_item(
        &locked,
        Item::new("Vaulted", "PASSWORD").field(Field::concealed("password", &hidden)),
    );
    c.inject(
        &format!("/v1/vaults/{locked}/"),
        usize::MAX,
        connect_error(403, "Authorization: token does not have access to vault"),
    );
    let fx = Fixture::connect(&c, &token);
    let r = fx.run(
        &["check", "--resolve"],
        "secrets:\n  FOUND: <<op|op://Production/Slack/credential>>\n  \
         GONE: <<op|op://Production/Slack/nope>>\n  \
         DENIED: <<op|op://Locked/Vaulted/password>>\n  \
         LONG: { onepassword: \"op://Production/Gone/x\" }\n\
         a: $<FOUND>\nb: $<GONE>\nc: $<DENIED>\nd: $<LONG>\n\
         e: <<op|op://Production/Slack/username>>\nf: <<op|op://Nowhere/Slack/username>>\n",
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
        status("DENIED").as_deref(),
        Some("access denied"),
        "{}",
        r.stdout
    );
    assert_eq!(status("LONG").as_deref(), Some("not found"), "{}", r.stdout);
    let direct = |locator: &str| {
        r.stdout
            .lines()
            .find(|l| l.contains(&format!("{locator}>>")))
            .and_then(|l| l.rsplit_once('['))
            .map(|(_, s)| s.trim_end_matches(']').to_owned())
    };
    assert_eq!(
        direct("op://Production/Slack/username").as_deref(),
        Some("found"),
        "{}",
        r.stdout
    );
    assert_eq!(
        direct("op://Nowhere/Slack/username").as_deref(),
        Some("not found"),
        "{}",
        r.stdout
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    for s in [&secret, &hidden, &token] {
        assert_silent(&r, s, "check --resolve");
    }
    assert_silent(&r, "bot", "a value");
}

#[test]
fn not_configured_is_exit_5() {
    let fx = Fixture::new();
    let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("OP_CONNECT_HOST") || r.stderr.contains("OP_SERVICE_ACCOUNT_TOKEN"),
        "says how to configure it:\n{}",
        r.stderr
    );
    // check --resolve says so too.
    let r = fx.run(
        &["check", "--resolve"],
        "secrets:\n  X: <<op|op://Production/Slack/credential>>\na: $<X>\n",
    );
    assert!(r.stdout.contains("[not configured]"), "{}", r.stdout);
    assert_eq!(r.code, 5, "{}", r.stderr);
    // Half a Connect configuration is not a configuration.
    let mut fx = Fixture::new();
    fx.set("OP_CONNECT_HOST", "http://127.0.0.1:9");
    let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("OP_CONNECT_TOKEN"), "{}", r.stderr);
}

#[test]
fn connect_is_preferred_when_both_are_configured() {
    let (c, token, _, _, secret) = slack();
    let (mut fx, op) = Fixture::cli("ops_token", "ops_token");
    fx.set("OP_CONNECT_HOST", &c.url());
    fx.set("OP_CONNECT_TOKEN", &token);
    let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, format!("a: {secret}\n")),
        "{}",
        r.stderr
    );
    assert!(op.calls().is_empty(), "{:?}", op.calls());
}

// ---------------------------------------------------------------------------
// The op CLI
// ---------------------------------------------------------------------------

/// A fake `op` accepting a canary service-account token, with "Production/Slack".
fn op_slack() -> (Fixture, FakeOp, String, String) {
    let token = format!("ops_{}", canary());
    let (fx, mut op) = Fixture::cli(&token, &token);
    let vid = op.add_vault("Production");
    op.add_vault("Staging");
    let secret = canary();
    op.add_item(
        &vid,
        Item::new("Slack", "LOGIN")
            .section("adminsection", "Admin")
            .field(
                Field::string("username", "bot")
                    .purpose("USERNAME")
                    .id("username"),
            )
            .field(
                Field::concealed("credential", &secret)
                    .purpose("PASSWORD")
                    .id("password"),
            )
            .field(Field::string("email", "admin@example.com").in_section("adminsection"))
            .field(Field::otp("one-time password", SEED)),
    );
    op.add_item(
        &vid,
        Item::new("Stripe", "API_CREDENTIAL")
            .field(Field::concealed("publishable-key", "pk_test_1")),
    );
    (fx, op, token, secret)
}

/// Whether `argv` is `item get ITEM --vault VAULT --format json` (flags in any
/// order and spelling, `--` allowed before the item).
fn is_item_get(argv: &[String], item: &str, vault: &str) -> bool {
    let (mut positional, mut flags) = (Vec::new(), Vec::new());
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            positional.extend(it.by_ref().cloned());
        } else if let Some(flag) = a.strip_prefix("--") {
            match flag.split_once('=') {
                Some((k, v)) => flags.push((k.to_owned(), v.to_owned())),
                None => flags.push((flag.to_owned(), it.next().cloned().unwrap_or_default())),
            }
        } else {
            positional.push(a.clone());
        }
    }
    positional == ["item", "get", item]
        && flags.contains(&("vault".to_owned(), vault.to_owned()))
        && flags.contains(&("format".to_owned(), "json".to_owned()))
}

#[test]
fn op_cli_fields_sections_and_otp() {
    let (fx, op, token, secret) = op_slack();
    let r = fx.render(
        "secrets:\n  LONG: { onepassword: \"op://Production/Stripe/publishable-key\" }\n\
         a: <<op|op://Production/Slack/credential>>\n\
         b: <<onepassword|op://Production/Slack/Admin/email>>\n\
         c: <<op|op://Production/Slack/one-time password?attribute=otp>>\n\
         d: $<LONG>\n\
         e: <<op|op://Production/Slack/password>>\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with(&format!("a: {secret}\nb: admin@example.com\nc: ")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.ends_with(&format!("d: pk_test_1\ne: {secret}\n")),
        "a field by id: {}",
        r.stdout
    );
    let code = value_of(&r.stdout, "c").expect("a code").to_owned();
    let served: Vec<String> = op.calls().iter().flat_map(|c| c.totp.clone()).collect();
    assert!(served.contains(&code), "{code} not among {served:?}");
    let calls = op.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls
            .iter()
            .any(|c| is_item_get(&c.argv, "Slack", "Production")),
        "{calls:?}"
    );
    assert!(
        calls
            .iter()
            .any(|c| is_item_get(&c.argv, "Stripe", "Production")),
        "{calls:?}"
    );
    // The token reaches op through its environment, never its arguments.
    assert!(calls
        .iter()
        .all(|c| !c.argv.iter().any(|a| a.contains(&token))));
    assert_silent(&r, &token, "token");
}

#[test]
fn op_cli_one_invocation_per_item() {
    let token = format!("ops_{}", canary());
    let (fx, mut op) = Fixture::cli(&token, &token);
    let vid = op.add_vault("Production");
    let mut big = Item::new("Big", "LOGIN");
    for i in 0..20 {
        big = big.field(Field::concealed(&format!("f{i}"), &format!("value-{i}")));
    }
    op.add_item(&vid, big);
    op.add_item(
        &vid,
        Item::new("Small", "PASSWORD").field(Field::concealed("password", "tiny")),
    );
    let mut config = String::new();
    for round in 0..3 {
        for i in 0..20 {
            config.push_str(&format!("b{round}_{i}: <<op|op://Production/Big/f{i}>>\n"));
        }
        config.push_str(&format!(
            "s{round}: <<op|op://Production/Small/password>>\n"
        ));
    }
    let r = fx.render(&config);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("b2_19: value-19\ns2: tiny\n"),
        "{}",
        r.stdout
    );
    let calls = op.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
}

#[test]
fn op_cli_missing_item_vault_and_field_are_exit_4() {
    let (fx, _op, _token, secret) = op_slack();
    let r = fx.render(
        "ok: <<op|op://Production/Slack/username>>\n\
         i: <<op|op://Production/Missing/credential>>\n\
         v: <<op|op://Nowhere/Slack/credential>>\n\
         f: <<op|op://Production/Slack/nosuchfield>>\n",
    );
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert_eq!(errors(&r).len(), 3, "{}", r.stderr);
    for name in ["Missing", "Nowhere", "nosuchfield"] {
        assert!(r.stderr.contains(name), "{name} not named:\n{}", r.stderr);
    }
    for label in ["username", "credential", "email"] {
        assert!(
            r.stderr.contains(label),
            "{label} not listed:\n{}",
            r.stderr
        );
    }
    assert_silent(&r, &secret, "value");
    assert_silent(&r, "admin@example.com", "value");
    assert_silent(&r, "[ERROR]", "op's own error line");
}

#[test]
fn op_cli_names_are_case_sensitive() {
    let (fx, op, _token, secret) = op_slack();
    // op itself matches names without regard to case, as 1Password's secret
    // references do; keyfill's contract is exact names.
    let mut wrong = Vec::new();
    for locator in [
        "op://production/Slack/credential",
        "op://Production/slack/credential",
        "op://Production/Slack/CREDENTIAL",
        "op://Production/Slack/admin/email",
    ] {
        let r = fx.render(&format!("x: <<op|{locator}>>\n"));
        if r.code != 4 || r.stdout.contains(&secret) {
            wrong.push(format!("{locator}: exit {}, stdout {:?}", r.code, r.stdout));
        }
    }
    assert!(
        wrong.is_empty(),
        "names matched regardless of case:\n{wrong:#?}"
    );
    assert!(!op.calls().is_empty());
}

#[test]
fn op_cli_rate_limit_is_retried() {
    let (fx, op, _token, secret) = op_slack();
    op.fail_next(
        1,
        "(429) Too Many Requests: You've reached the maximum number of this type of \
         requests this service account is allowed to make. Please retry in 1 second.",
        1,
    );
    let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, format!("a: {secret}\n")),
        "{}",
        r.stderr
    );
    assert_eq!(op.calls().len(), 2, "{:?}", op.calls());
}

#[test]
fn op_cli_unknown_failure_is_exit_5_without_op_s_words() {
    let (fx, op, _token, secret) = op_slack();
    op.fail_next(10, "canary-op-message: something broke", 1);
    let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_silent(&r, "canary-op-message", "op's stderr");
    assert_silent(&r, &secret, "value");
}

#[test]
fn op_cli_bad_token_is_exit_5_and_never_printed() {
    let (mut fx, op, right, secret) = op_slack();
    // A well-formed token op's server refuses, and a malformed one.
    for wrong in [format!("ops_{}", canary()), canary()] {
        fx.set("OP_SERVICE_ACCOUNT_TOKEN", &wrong);
        let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
        assert_eq!(r.code, 5, "{}", r.stderr);
        assert!(r.stdout.is_empty());
        assert_silent(&r, &wrong, "the token keyfill passed");
        assert_silent(&r, &right, "the expected token");
        assert_silent(&r, &secret, "value");
    }
    assert_eq!(op.calls().len(), 2, "not retried: {:?}", op.calls());
    // A refused token is "access denied", as a Connect 401 is, not "unreachable".
    let r = fx.run(
        &["check", "--resolve"],
        "secrets:\n  X: <<op|op://Production/Slack/credential>>\na: $<X>\n",
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(
        r.stdout.contains("[access denied]"),
        "a refused service account token:\n{}{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn op_cli_not_installed_is_exit_5_and_says_so() {
    let mut fx = Fixture::new();
    let empty = fx.path().join("empty-bin");
    std::fs::create_dir(&empty).expect("empty bin");
    fx.set("PATH", &empty.display().to_string());
    fx.set("OP_SERVICE_ACCOUNT_TOKEN", "ops_whatever");
    let r = fx.render("a: <<op|op://Production/Slack/credential>>\n");
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(
        r.stderr.contains("`op`") || r.stderr.contains(" op "),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("PATH") || r.stderr.contains("install") || r.stderr.contains("not found"),
        "a clear message:\n{}",
        r.stderr
    );
    assert_silent(&r, "ops_whatever", "token");
}
