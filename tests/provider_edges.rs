//! Edge cases of the vault and onepassword providers: the KV version comes from
//! the mount, not the path's text; mounts are whole segments; paths cannot change
//! the URL; credentials never follow a redirect to another address or scheme;
//! ambiguous 1Password names are errors, not guesses; non-JSON answers are not
//! "not found"; half an AppRole is not another identity.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::connect::{Connect, Field, Item};
use support::openbao::{bao, VaultEnv as Env};
use support::proxy::{Fault, Proxy};
use support::{keyfill, unique, Run};

fn redirect_to(location: &str) -> Fault {
    Fault::Respond {
        status: 307,
        headers: vec![("location".into(), location.into())],
        body: String::new(),
    }
}

fn out(r: &Run) -> (i32, &str) {
    (r.code, r.stdout.as_str())
}

// ---------------------------------------------------------------------------
// Vault: a KV v1 secret whose path has a `data` segment
// ---------------------------------------------------------------------------

/// A KV v1 secret under a folder named `data` is read as KV v1 (the mount's
/// version decides, not the path's text), also with the long form's `kv: 1`.
#[test]
fn kv1_secret_under_a_data_folder_is_read_as_kv1() {
    let b = bao();
    let p = unique("kv1data");
    let m = format!("kv1d-{p}");
    b.api().enable_kv(&m, 1);
    // A secret with a `data` key holding an object: the KV v2 reading takes it.
    b.api().kv1_put(
        &m,
        "team/data/app",
        json!({ "password": "right", "data": { "password": "wrong" } }),
    );
    // A plain one: the KV v2 reading finds no `data.data` and says "does not exist".
    b.api()
        .kv1_put(&m, "team/data/plain", json!({ "password": "plain-pw" }));
    b.api()
        .kv1_put(&m, "data/top", json!({ "password": "top-pw" }));

    // Wrong value, exit 0.
    let env = Env::new();
    let r = env.render(&format!("app: <<vault|{m}/team/data/app/password>>\n"));
    assert_eq!(out(&r), (0, "app: right\n"), "{}", r.stderr);
    // Reported missing (exit 4), short form and long form with `kv: 1`.
    let env = Env::new();
    let config = format!(
        "secrets:\n  TOP: {{ vault: {{ path: {m}/data/top, key: password, mount: {m}, kv: 1 }} }}\n\
         plain: <<vault|{m}/team/data/plain/password>>\n\
         top: $<TOP>\n"
    );
    let r = env.render(&config);
    assert_eq!(
        out(&r),
        (0, "plain: plain-pw\ntop: top-pw\n"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------
// Vault: `kv: 2` without `mount:` on a nested mount
// ---------------------------------------------------------------------------

/// Long form `kv: 2` without `mount:` on a nested mount (`team/kv`): the mount is
/// asked of Vault, not guessed from the first segment.
#[test]
fn long_form_kv2_without_mount_on_a_nested_mount() {
    let b = bao();
    let p = unique("nest2");
    let m = format!("team-{p}/kv");
    b.api().enable_kv(&m, 2);
    b.api().kv2_put(&m, "app", json!({ "k": "nested-v2" }));
    let env = Env::new();
    let config =
        format!("secrets:\n  K: {{ vault: {{ path: {m}/app, key: k, kv: 2 }} }}\nk: $<K>\n");
    let r = env.render(&config);
    assert_eq!(out(&r), (0, "k: nested-v2\n"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------
// Vault: path text is put into the URL unescaped
// ---------------------------------------------------------------------------

/// A `#` (or `?`) in a long-form path would change the URL and read another
/// secret: it is refused.
#[test]
fn a_hash_in_a_long_form_path_reads_another_secret() {
    let b = bao();
    let p = unique("hash");
    b.api().kv2_put("secret", &p, json!({ "k": "parent" }));
    b.api()
        .kv2_put("secret", &format!("{p}%23x"), json!({ "k": "child" }));
    let env = Env::new();
    let config =
        format!("secrets:\n  K: {{ vault: {{ path: \"secret/data/{p}#x\", key: k }} }}\nk: $<K>\n");
    let r = env.render(&config);
    r.code(3)
        .stdout_is("")
        .stderr_has(&format!("vault path `secret/data/{p}#x` contains `#`"));
    assert_ne!(
        r.stdout,
        "k: parent\n",
        "the secret `{p}#x` was asked for; `{p}` was read: {:?}",
        env.reads()
    );
}

// ---------------------------------------------------------------------------
// Vault: redirects carry the token anywhere
// ---------------------------------------------------------------------------

/// A redirect to another host is not followed: `X-Vault-Token` (and an AppRole
/// login's body) never reach it.
#[test]
fn a_redirect_to_another_host_receives_the_vault_token() {
    let b = bao();
    let p = unique("redir");
    b.api().kv2_put("secret", &p, json!({ "k": "v" }));
    let env = Env::new();
    // The same server under another host name: a different host to reqwest.
    let elsewhere = Proxy::start(b.addr, Duration::ZERO);
    let other = format!("http://localhost:{}", elsewhere.addr.port());
    env.proxy.inject(
        &format!("GET /v1/secret/data/{p}"),
        1,
        redirect_to(&format!("{other}/v1/secret/data/{p}")),
    );
    let r = env.render(&format!("x: <<vault|secret/data/{p}/k>>\n"));
    let leaked: Vec<_> = elsewhere
        .calls()
        .into_iter()
        .filter(|c| c.headers.get("x-vault-token") == Some(&b.root))
        .map(|c| c.target)
        .collect();
    assert!(
        leaked.is_empty(),
        "the token went to another host after a redirect: {leaked:?} (exit {})",
        r.code
    );
}

#[test]
fn a_redirect_of_the_approle_login_posts_the_secret_id_to_another_host() {
    let b = bao();
    let p = unique("redirlogin");
    b.api().kv2_put("secret", &p, json!({ "k": "v" }));
    let (role_id, secret_id) = b.api().approle(&format!("role-{p}"), &["default"]);
    let env = Env::new();
    let elsewhere = Proxy::start(b.addr, Duration::ZERO);
    let other = format!("http://localhost:{}", elsewhere.addr.port());
    env.proxy.inject(
        "POST /v1/auth/approle/login",
        1,
        redirect_to(&format!("{other}/v1/auth/approle/login")),
    );
    let _ = env.run_with(
        &["render"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
        &[
            ("VAULT_ROLE_ID", role_id.as_str()),
            ("VAULT_SECRET_ID", secret_id.as_str()),
        ],
        &["VAULT_TOKEN"],
    );
    let leaked = elsewhere
        .calls()
        .iter()
        .any(|c| c.body.contains(&secret_id));
    assert!(!leaked, "the AppRole secret id was posted to another host");
}

/// An HTTPS `VAULT_ADDR` answering 307 to `http://…`: not followed, so the token
/// never travels in clear text.
#[test]
fn an_https_to_http_redirect_sends_the_token_in_clear_text() {
    let b = bao();
    let dir = tempfile::tempdir().expect("temp dir");
    let [ca, cert, key] = support::tls::private_ca(dir.path());
    let plain = Proxy::start(b.addr, Duration::ZERO);
    let p = unique("downgrade");
    b.api().kv2_put("secret", &p, json!({ "k": "v" }));
    let target = format!("http://127.0.0.1:{}", plain.addr.port());
    let (mut server, port) = https_redirector(&cert, &key, &target);

    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    std::fs::write(
        dir.path().join("config.yaml"),
        format!("x: <<vault|secret/data/{p}/k>>\n"),
    )
    .expect("config");
    let vars: Vec<(String, String)> = [
        ("VAULT_ADDR", format!("https://127.0.0.1:{port}")),
        ("VAULT_CACERT", ca.display().to_string()),
        ("VAULT_TOKEN", b.root.clone()),
        ("HOME", home.display().to_string()),
        ("NO_COLOR", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let r = keyfill(dir.path(), &["render", "config.yaml"], &vars);
    let _ = server.kill();
    let _ = server.wait();
    let clear: Vec<_> = plain
        .calls()
        .into_iter()
        .filter(|c| c.headers.contains_key("x-vault-token"))
        .map(|c| c.target)
        .collect();
    assert!(
        clear.is_empty(),
        "the token went over plain HTTP after an https redirect: {clear:?} (exit {}, {})",
        r.code,
        r.stderr
    );
}

/// A Python HTTPS server answering every request with 307 to `target` + path.
fn https_redirector(cert: &Path, key: &Path, target: &str) -> (std::process::Child, u16) {
    let script = r#"
import http.server, ssl, sys
cert, key, target = sys.argv[1], sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def go(self):
        self.send_response(307)
        self.send_header("Location", target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_POST = do_PUT = go
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(cert)
        .arg(key)
        .arg(target)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("port");
    let port = line.trim().parse().expect("a port number");
    (child, port)
}

// ---------------------------------------------------------------------------
// 1Password Connect: two items with the same title
// ---------------------------------------------------------------------------

/// Two items with one title in a vault: an error asking for the item's id, as
/// `op` says "More than one item matches", never one of them silently.
#[test]
fn two_items_with_one_title_are_an_error_not_a_guess() {
    let c = Connect::start("tok");
    let vid = c.add_vault("Production");
    c.add_item(
        &vid,
        Item::new("DB", "LOGIN").field(Field::concealed("password", "first")),
    );
    c.add_item(
        &vid,
        Item::new("DB", "LOGIN").field(Field::concealed("password", "second")),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.yaml"),
        "pw: <<op|op://Production/DB/password>>\n",
    )
    .expect("config");
    let vars = vec![
        ("OP_CONNECT_HOST".to_owned(), c.url()),
        ("OP_CONNECT_TOKEN".to_owned(), "tok".to_owned()),
        ("NO_COLOR".to_owned(), "1".to_owned()),
    ];
    let r = keyfill(dir.path(), &["render", "config.yaml"], &vars);
    // Exit 3 (the reference cannot be bound to one item), not 5 (unreachable).
    r.code(3).stdout_is("").stderr_has(
        "more than one item `DB` in vault `Production`: use its id instead of its name",
    );
}

/// The op CLI's "More than one item matches" is an invalid reference (exit 3)
/// that says to use the item's id.
#[test]
fn op_cli_ambiguous_title_is_explained_not_unreachable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut op = support::connect::FakeOp::install(&dir.path().join("bin"), "ops_tok");
    let vid = op.add_vault("Production");
    op.add_item(
        &vid,
        Item::new("DB", "LOGIN").field(Field::concealed("password", "first")),
    );
    op.add_item(
        &vid,
        Item::new("DB", "LOGIN").field(Field::concealed("password", "second")),
    );
    std::fs::write(
        dir.path().join("config.yaml"),
        "pw: <<op|op://Production/DB/password>>\n",
    )
    .expect("config");
    let path = std::env::var("PATH").unwrap_or_default();
    let vars = vec![
        ("PATH".to_owned(), format!("{}:{path}", op.dir.display())),
        ("OP_SERVICE_ACCOUNT_TOKEN".to_owned(), "ops_tok".to_owned()),
        ("NO_COLOR".to_owned(), "1".to_owned()),
    ];
    let r = keyfill(dir.path(), &["render", "config.yaml"], &vars);
    r.code(3).stdout_is("").stderr_has(
        "more than one item `DB` in vault `Production`: use its id instead of its name",
    );
}

/// Two sections with one label: `op://V/I/Admin/token` is ambiguous and refused,
/// as two fields with one label are.
#[test]
fn two_sections_with_one_label_are_an_error_not_a_guess() {
    let c = Connect::start("tok");
    let vid = c.add_vault("Production");
    c.add_item(
        &vid,
        Item::new("Slack", "LOGIN")
            .section("s1", "Admin")
            .section("s2", "Admin")
            .field(Field::concealed("token", "first").in_section("s1"))
            .field(Field::concealed("token", "second").in_section("s2")),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("config.yaml"),
        "t: <<op|op://Production/Slack/Admin/token>>\n",
    )
    .expect("config");
    let vars = vec![
        ("OP_CONNECT_HOST".to_owned(), c.url()),
        ("OP_CONNECT_TOKEN".to_owned(), "tok".to_owned()),
        ("NO_COLOR".to_owned(), "1".to_owned()),
    ];
    let r = keyfill(dir.path(), &["render", "config.yaml"], &vars);
    r.code(3).stdout_is("").stderr_has(
        "item `Slack` in vault `Production` has more than one section `Admin`: use the section's id",
    );
}

// ---------------------------------------------------------------------------
// Vault: smaller things
// ---------------------------------------------------------------------------

/// `mount: secret` does not accept `path: secretive/app`: mounts are whole
/// segments of the path.
#[test]
fn a_mount_must_be_whole_segments_of_the_path() {
    let l = keyfill::provider::vault::VaultLocator {
        path: "secretive/app".into(),
        key: "k".into(),
        mount: Some("secret".into()),
        kv: Some(2),
        ..Default::default()
    };
    assert!(
        l.validate().is_err(),
        "`secretive/app` is not under the mount `secret`"
    );
}

/// A 200 answer that is not JSON (a captive portal, a web server at the wrong
/// VAULT_ADDR) is an unreadable answer (exit 5), not a missing secret.
#[test]
fn a_non_json_200_is_not_reported_as_a_missing_secret() {
    let p = unique("html200");
    let env = Env::new();
    env.proxy.inject(
        &format!("GET /v1/secret/data/{p}"),
        10,
        Fault::Respond {
            status: 200,
            headers: vec![("content-type".into(), "text/html".into())],
            body: "<html>Sign in to the corporate proxy</html>".into(),
        },
    );
    let r = env.render(&format!("x: <<vault|secret/data/{p}/k>>\n"));
    assert_eq!(r.code, 5, "{}", r.stderr);
}

/// `VAULT_ROLE_ID` without `VAULT_SECRET_ID` is a configuration error, never a
/// fall-back to `~/.vault-token` (whoever last ran `vault login`).
#[test]
fn a_half_configured_approle_does_not_fall_back_to_the_token_file() {
    let b = bao();
    let p = unique("halfapprole");
    b.api()
        .kv2_put("secret", &p, json!({ "k": "read-as-token-file" }));
    let env = Env::new();
    std::fs::write(env.home().join(".vault-token"), &b.root).expect("token file");
    let r = env.run_with(
        &["render"],
        &format!("x: <<vault|secret/data/{p}/k>>\n"),
        &[("VAULT_ROLE_ID", "some-role-id")],
        &["VAULT_TOKEN"],
    );
    // Exit 5: the provider is refused its half configuration.
    r.code(5)
        .stdout_is("")
        .stderr_has("AppRole needs both VAULT_ROLE_ID and VAULT_SECRET_ID; only one is set");
}
