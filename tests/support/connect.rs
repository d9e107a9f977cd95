//! An in-process 1Password Connect server on loopback, and a fake `op` CLI, for
//! the onepassword provider's tests.
//!
//! Written from the public documentation, not from keyfill's code:
//!
//! - Connect API reference, <https://developer.1password.com/docs/connect/api-reference>
//!   (also at <https://www.1password.dev/connect/api-reference.md>): routes
//!   `GET /v1/vaults`, `/v1/vaults/{vaultUUID}`, `/v1/vaults/{vaultUUID}/items`,
//!   `/v1/vaults/{vaultUUID}/items/{itemUUID}`, `/heartbeat`, `/health`; every
//!   `/v1` request carries `Authorization: Bearer <access_token>`; the `filter`
//!   query is a SCIM-style filter, `name eq "Demo Vault"` on vaults and
//!   `title eq "Example Item"` or `tag eq "banking"` on items; responses 401
//!   "Invalid or missing token", 403 "Unauthorized access", 404 "Vault not found"
//!   / "Item not found"; the Vault, Item, Field and Section objects.
//! - The Connect API specification 1.8.1 linked from that page: the error object
//!   `{"status": <code>, "message": "..."}`, a Field's `section` as a reference
//!   `{"id": ...}` to one of the item's `sections`, `/heartbeat` (text `.`) and
//!   `/health` need no token.
//! - github.com/1Password/connect-sdk-go, `connect/client.go` (vaults by title
//!   with `title eq "…"`, items by title with a filtered list then a GET of each
//!   item, the `Authorization: Bearer` header, errors decoded from
//!   `{status, message}`) and `onepassword/items.go` (field types `STRING`,
//!   `CONCEALED`, `OTP`, …; purposes `USERNAME`, `PASSWORD`, `NOTES`; the `totp`
//!   attribute of an OTP field holds its current code).
//! - github.com/1Password/connect-sdk-python, `src/onepasswordconnectsdk/client.py`
//!   and its tests (vaults by title with `name eq "…"`). Both spellings are
//!   accepted here, as the two official SDKs use both.
//! - Messages seen from real servers in 1Password's public issue trackers:
//!   "Invalid bearer token" (connect #54, terraform-provider-onepassword #24),
//!   "Authorization: token does not have access to vault" (connect #82),
//!   "Invalid Item UUID" / "Invalid Vault UUID" for a malformed id
//!   (onepassword-operator #132, connect-sdk-js #29).
//! - RFC 7644 §3.4.2.2: `eq` on a string attribute that is not `caseExact`
//!   compares case-insensitively, so a filter may return titles that differ in
//!   case and the client must compare exactly itself.
//! - RFC 6238 / RFC 4226 for the TOTP codes (SHA-1 and HMAC are implemented
//!   below, independently of the crates keyfill uses).
//!
//! The fake `op` follows the 1Password CLI's documented `op item get ITEM --vault
//! VAULT --format json` output (`id`, `title`, `version`, `vault {id, name}`,
//! `category`, `sections [{id, label}]`, `fields [{id, type, purpose?, label,
//! value, reference, section? {id, label}, totp?}]`, see
//! <https://developer.1password.com/docs/cli/item-fields> and
//! <https://developer.1password.com/docs/cli/secrets-reference-syntax>) and its
//! error lines as users report them: `[ERROR] <date> <time> "X" isn't an item in
//! the "Y" vault. Specify the item with its UUID, name, or domain.`, `"Y" isn't a
//! vault in this account. Specify the vault with its ID or name.`, and for a bad
//! service account token `failed to session.DecodeSACredentials: failed to
//! DecodeSACredentials: …` (exit 1).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::proxy::Fault;

// ---------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------

/// A 26-character lower-case id, the shape of 1Password's UUIDs.
pub(crate) fn new_id() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..26)
        .map(|_| char::from(ALPHABET[fastrand::usize(..ALPHABET.len())]))
        .collect()
}

/// Whether `id` has the shape of a 1Password UUID.
fn is_uuid(id: &str) -> bool {
    id.len() == 26
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// One field of an item.
#[derive(Clone, Debug)]
pub(crate) struct Field {
    /// Field id.
    pub(crate) id: String,
    /// `STRING`, `CONCEALED`, `OTP`, `EMAIL`, `URL`, …
    pub(crate) kind: String,
    /// `USERNAME`, `PASSWORD` or `NOTES`.
    pub(crate) purpose: Option<String>,
    /// Label.
    pub(crate) label: String,
    /// Value (for an OTP field, an `otpauth://` URI).
    pub(crate) value: String,
    /// Id of the section the field is in.
    pub(crate) section: Option<String>,
}

impl Field {
    /// A field of type `kind`.
    pub(crate) fn new(kind: &str, label: &str, value: &str) -> Field {
        Field {
            id: new_id(),
            kind: kind.into(),
            purpose: None,
            label: label.into(),
            value: value.into(),
            section: None,
        }
    }

    /// A `STRING` field.
    pub(crate) fn string(label: &str, value: &str) -> Field {
        Field::new("STRING", label, value)
    }

    /// A `CONCEALED` field.
    pub(crate) fn concealed(label: &str, value: &str) -> Field {
        Field::new("CONCEALED", label, value)
    }

    /// An `OTP` field whose value is an `otpauth://` URI for the base32 `seed`.
    pub(crate) fn otp(label: &str, seed: &str) -> Field {
        Field::new("OTP", label, &otp_uri(seed))
    }

    /// With a purpose.
    pub(crate) fn purpose(mut self, purpose: &str) -> Field {
        self.purpose = Some(purpose.into());
        self
    }

    /// With an explicit id.
    pub(crate) fn id(mut self, id: &str) -> Field {
        self.id = id.into();
        self
    }

    /// Inside the section with id `section`.
    pub(crate) fn in_section(mut self, section: &str) -> Field {
        self.section = Some(section.into());
        self
    }

    /// The current TOTP code of an OTP field, at `unix` seconds.
    pub(crate) fn totp_at(&self, unix: u64) -> Option<String> {
        (self.kind == "OTP").then(|| totp_from_uri(&self.value, unix))?
    }
}

/// One item.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    /// Item id.
    pub(crate) id: String,
    /// Title.
    pub(crate) title: String,
    /// `LOGIN`, `API_CREDENTIAL`, `PASSWORD`, …
    pub(crate) category: String,
    /// Tags.
    pub(crate) tags: Vec<String>,
    /// Sections, `(id, label)`.
    pub(crate) sections: Vec<(String, String)>,
    /// Fields.
    pub(crate) fields: Vec<Field>,
}

impl Item {
    /// An item with no fields.
    pub(crate) fn new(title: &str, category: &str) -> Item {
        Item {
            id: new_id(),
            title: title.into(),
            category: category.into(),
            tags: Vec::new(),
            sections: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// With a section.
    pub(crate) fn section(mut self, id: &str, label: &str) -> Item {
        self.sections.push((id.into(), label.into()));
        self
    }

    /// With a field.
    pub(crate) fn field(mut self, field: Field) -> Item {
        self.fields.push(field);
        self
    }

    /// With a tag.
    pub(crate) fn tag(mut self, tag: &str) -> Item {
        self.tags.push(tag.into());
        self
    }
}

#[derive(Clone, Debug)]
struct Vault {
    id: String,
    name: String,
    items: Vec<Item>,
}

const STAMP: &str = "2025-01-01T00:00:00Z";

fn vault_json(v: &Vault) -> Value {
    json!({
        "id": v.id,
        "name": v.name,
        "description": "",
        "attributeVersion": 1,
        "contentVersion": v.items.len() + 1,
        "items": v.items.len(),
        "type": "USER_CREATED",
        "createdAt": STAMP,
        "updatedAt": STAMP,
    })
}

fn item_summary(vault: &Vault, item: &Item) -> Value {
    json!({
        "id": item.id,
        "title": item.title,
        "version": 1,
        "vault": { "id": vault.id },
        "category": item.category,
        "tags": item.tags,
        "favorite": false,
        "lastEditedBy": "yxz2nfxjtvd3hl5wdglrnpr3bi",
        "createdAt": STAMP,
        "updatedAt": STAMP,
    })
}

/// The Connect form of a full item; returns the TOTP codes it carries.
fn item_full(vault: &Vault, item: &Item, unix: u64) -> (Value, Vec<String>) {
    let mut v = item_summary(vault, item);
    let mut codes = Vec::new();
    let fields: Vec<Value> = item
        .fields
        .iter()
        .map(|f| {
            let mut o = json!({ "id": f.id, "type": f.kind, "label": f.label });
            if !f.value.is_empty() {
                o["value"] = json!(f.value);
            }
            if let Some(p) = &f.purpose {
                o["purpose"] = json!(p);
            }
            if let Some(s) = &f.section {
                o["section"] = json!({ "id": s });
            }
            if let Some(code) = f.totp_at(unix) {
                o["totp"] = json!(code);
                codes.push(code);
            }
            o
        })
        .collect();
    v["sections"] = item
        .sections
        .iter()
        .map(|(id, label)| json!({ "id": id, "label": label }))
        .collect();
    v["fields"] = Value::Array(fields);
    (v, codes)
}

// ---------------------------------------------------------------------------
// The Connect server
// ---------------------------------------------------------------------------

/// One request that reached the server.
#[derive(Clone, Debug)]
pub(crate) struct Request {
    /// `GET`, …
    pub(crate) method: String,
    /// Path without the query.
    pub(crate) path: String,
    /// The raw query string, if any.
    pub(crate) query: Option<String>,
    /// The decoded `filter` parameter, if any.
    pub(crate) filter: Option<String>,
    /// The `Authorization` header, if any.
    pub(crate) authorization: Option<String>,
    /// When it arrived.
    pub(crate) at: Instant,
    /// The status answered (0 when the connection was dropped).
    pub(crate) status: u16,
}

impl Request {
    /// `GET /v1/vaults` (with or without a filter).
    pub(crate) fn is_vault_list(&self) -> bool {
        self.method == "GET" && self.path == "/v1/vaults"
    }

    /// `GET /v1/vaults/{vault}/items` (with or without a filter).
    pub(crate) fn is_item_list(&self, vault: &str) -> bool {
        self.method == "GET" && self.path == format!("/v1/vaults/{vault}/items")
    }

    /// `GET /v1/vaults/{vault}/items/{item}`.
    pub(crate) fn is_item_get(&self, vault: &str, item: &str) -> bool {
        self.method == "GET" && self.path == format!("/v1/vaults/{vault}/items/{item}")
    }

    /// `GET /v1/vaults/{any}/items/{any}`.
    pub(crate) fn is_any_item_get(&self) -> bool {
        let parts: Vec<&str> = self.path.split('/').collect();
        self.method == "GET"
            && parts.len() == 6
            && parts[1] == "v1"
            && parts[2] == "vaults"
            && parts[4] == "items"
    }

    /// `METHOD path?query`, what fault patterns are matched against.
    pub(crate) fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{} {}?{}", self.method, self.path, q),
            None => format!("{} {}", self.method, self.path),
        }
    }
}

struct Rule {
    pattern: String,
    remaining: usize,
    fault: Fault,
}

struct State {
    token: Mutex<String>,
    vaults: Mutex<Vec<Vault>>,
    requests: Mutex<Vec<Request>>,
    rules: Mutex<Vec<Rule>>,
    codes: Mutex<Vec<String>>,
}

/// A running Connect server; stops accepting when dropped.
pub(crate) struct Connect {
    /// Where clients connect.
    pub(crate) addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
}

/// A Connect error response: `{"status": status, "message": message}`.
pub(crate) fn connect_error(status: u16, message: &str) -> Fault {
    Fault::Respond {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: json!({ "status": status, "message": message }).to_string(),
    }
}

impl Connect {
    /// Starts a server that accepts only `Authorization: Bearer {token}`.
    pub(crate) fn start(token: &str) -> Connect {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the Connect server");
        let addr = listener.local_addr().expect("Connect server address");
        let state = Arc::new(State {
            token: Mutex::new(token.into()),
            vaults: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            rules: Mutex::new(Vec::new()),
            codes: Mutex::new(Vec::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let st = st.clone();
                    thread::spawn(move || serve(conn, &st));
                }
            }
        });
        Connect { addr, state, stop }
    }

    /// The value for `OP_CONNECT_HOST`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the accepted token.
    pub(crate) fn set_token(&self, token: &str) {
        *self.state.token.lock().expect("token") = token.into();
    }

    /// Adds a vault named `name`; returns its id.
    pub(crate) fn add_vault(&self, name: &str) -> String {
        let id = new_id();
        self.state.vaults.lock().expect("vaults").push(Vault {
            id: id.clone(),
            name: name.into(),
            items: Vec::new(),
        });
        id
    }

    /// Adds `item` to the vault with id `vault`; returns the item's id.
    pub(crate) fn add_item(&self, vault: &str, item: Item) -> String {
        let id = item.id.clone();
        let mut vaults = self.state.vaults.lock().expect("vaults");
        vaults
            .iter_mut()
            .find(|v| v.id == vault)
            .expect("a seeded vault")
            .items
            .push(item);
        id
    }

    /// Makes the next `times` requests whose `METHOD path?query` contains
    /// `pattern` (raw, as sent) answer with `fault` instead.
    pub(crate) fn inject(&self, pattern: &str, times: usize, fault: Fault) {
        self.state.rules.lock().expect("rules").push(Rule {
            pattern: pattern.into(),
            remaining: times,
            fault,
        });
    }

    /// Every request so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().expect("requests").clone()
    }

    /// How many requests satisfy `f`.
    pub(crate) fn count(&self, f: impl Fn(&Request) -> bool) -> usize {
        self.requests().iter().filter(|r| f(r)).count()
    }

    /// Every TOTP code the server has put in an answer.
    pub(crate) fn codes(&self) -> Vec<String> {
        self.state.codes.lock().expect("codes").clone()
    }

    /// Forgets the recorded requests.
    pub(crate) fn reset(&self) {
        self.state.requests.lock().expect("requests").clear();
    }
}

impl Drop for Connect {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// One parsed HTTP/1.1 request.
struct Message {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request (its body, by Content-Length or chunked, is read and
/// dropped); `None` at the end of the stream or on garbage.
fn read_request(r: &mut impl BufRead) -> Option<Message> {
    let mut start = String::new();
    if r.read_line(&mut start).ok()? == 0 {
        return None;
    }
    let mut words = start.split_whitespace();
    let (method, target) = (words.next()?.to_owned(), words.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':')?;
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    let m = Message {
        method,
        target,
        headers,
    };
    if let Some(len) = m.header("content-length") {
        let len: u64 = len.parse().ok()?;
        std::io::copy(&mut r.take(len), &mut std::io::sink()).ok()?;
    } else if m
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let size = u64::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            std::io::copy(&mut r.take(size + 2), &mut std::io::sink()).ok()?;
            if size == 0 {
                break;
            }
        }
    }
    Some(m)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_response(w: &mut impl Write, status: u16, headers: &[(String, String)], body: &[u8]) {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    // One write, so that Nagle does not hold the body back.
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    let _ = w.write_all(&bytes);
    let _ = w.flush();
}

fn serve(conn: TcpStream, st: &State) {
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Some(req) = read_request(&mut reader) {
        let close = req
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        if !handle(&req, &mut writer, st) || close {
            return;
        }
    }
}

/// Decodes `%XX` escapes and `+` (form encoding, as Go's `url.QueryEscape` writes).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded value of query parameter `name`.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// Parses a SCIM `ATTR eq "VALUE"` filter into `(attr, value)`.
pub(crate) fn parse_filter(filter: &str) -> Option<(String, String)> {
    let f = filter.trim();
    let (attr, rest) = f.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    let (op, rest) = rest.split_once(char::is_whitespace)?;
    if !op.eq_ignore_ascii_case("eq") {
        return None;
    }
    let rest = rest.trim().strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = rest.chars();
    loop {
        match chars.next()? {
            '\\' => value.push(chars.next()?),
            '"' => break,
            c => value.push(c),
        }
    }
    chars
        .as_str()
        .trim()
        .is_empty()
        .then(|| (attr.to_ascii_lowercase(), value))
}

/// A JSON answer.
fn answer(status: u16, body: &Value) -> (u16, Vec<(String, String)>, Vec<u8>) {
    (
        status,
        vec![("content-type".into(), "application/json".into())],
        body.to_string().into_bytes(),
    )
}

fn error(status: u16, message: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    answer(status, &json!({ "status": status, "message": message }))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Answers one request; `false` when the connection must be dropped.
fn handle(req: &Message, writer: &mut TcpStream, st: &State) -> bool {
    let (path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (req.target.clone(), None),
    };
    let record = Request {
        method: req.method.clone(),
        path: percent_decode(&path),
        filter: query.as_deref().and_then(|q| query_param(q, "filter")),
        query,
        authorization: req.header("authorization").map(str::to_owned),
        at: Instant::now(),
        status: 0,
    };
    let target = format!("{} {}", req.method, req.target);
    let index = {
        let mut all = st.requests.lock().expect("requests");
        all.push(record.clone());
        all.len() - 1
    };
    let set_status = |status: u16| {
        if let Some(r) = st.requests.lock().expect("requests").get_mut(index) {
            r.status = status;
        }
    };
    let fault = {
        let mut rules = st.rules.lock().expect("rules");
        rules
            .iter_mut()
            .find(|r| r.remaining > 0 && target.contains(&r.pattern))
            .map(|r| {
                r.remaining -= 1;
                r.fault.clone()
            })
    };
    match fault {
        Some(Fault::Respond {
            status,
            headers,
            body,
        }) => {
            set_status(status);
            write_response(writer, status, &headers, body.as_bytes());
            return true;
        }
        Some(Fault::Stall(d)) => {
            thread::sleep(d);
            return false;
        }
        Some(Fault::Close) => return false,
        None => {}
    }
    let (status, headers, body) = route(&record, st);
    set_status(status);
    write_response(writer, status, &headers, &body);
    true
}

fn route(req: &Request, st: &State) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let segs: Vec<&str> = req.path.trim_end_matches('/').split('/').collect();
    // Liveness and health need no token.
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["", "heartbeat"]) => {
            return (
                200,
                vec![("content-type".into(), "text/plain".into())],
                b".".to_vec(),
            );
        }
        ("GET", ["", "health"]) => {
            return answer(
                200,
                &json!({
                    "name": "1Password Connect API",
                    "version": "1.8.1",
                    "dependencies": [
                        { "service": "sync", "status": "ACTIVE" },
                        { "service": "sqlite", "status": "ACTIVE", "message": "Connected" }
                    ]
                }),
            );
        }
        _ => {}
    }
    if segs.get(1) != Some(&"v1") {
        return error(404, "Not found");
    }
    let token = st.token.lock().expect("token").clone();
    let authorized = req
        .authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .is_some_and(|t| t == token);
    if !authorized {
        return error(401, "Invalid bearer token");
    }
    if req.method != "GET" {
        return error(405, "Method not allowed");
    }
    let vaults = st.vaults.lock().expect("vaults");
    let filter = match req.filter.as_deref().map(parse_filter) {
        None => None,
        Some(Some(f)) => Some(f),
        Some(None) => return error(400, "Invalid filter"),
    };
    // RFC 7644: `eq` on a string that is not caseExact ignores case.
    let matches = |attr: &str, value: &str| -> bool {
        filter
            .as_ref()
            .is_none_or(|(a, v)| a == attr && v.to_lowercase() == value.to_lowercase())
    };
    let find_vault = |id: &str| vaults.iter().find(|v| v.id == id);
    match segs.as_slice() {
        ["", "v1", "vaults"] => {
            if let Some((a, _)) = &filter {
                if a != "name" && a != "title" {
                    return error(400, "Invalid filter");
                }
            }
            let list: Vec<Value> = vaults
                .iter()
                .filter(|v| matches("name", &v.name) || matches("title", &v.name))
                .map(vault_json)
                .collect();
            answer(200, &Value::Array(list))
        }
        ["", "v1", "vaults", vid] => {
            if !is_uuid(vid) {
                return error(400, "Invalid Vault UUID");
            }
            match find_vault(vid) {
                Some(v) => answer(200, &vault_json(v)),
                None => error(404, "Vault not found"),
            }
        }
        ["", "v1", "vaults", vid, "items"] => {
            if !is_uuid(vid) {
                return error(400, "Invalid Vault UUID");
            }
            let Some(v) = find_vault(vid) else {
                return error(404, "Vault not found");
            };
            if let Some((a, _)) = &filter {
                if a != "title" && a != "tag" {
                    return error(400, "Invalid filter");
                }
            }
            let list: Vec<Value> = v
                .items
                .iter()
                .filter(|i| matches("title", &i.title) || i.tags.iter().any(|t| matches("tag", t)))
                .map(|i| item_summary(v, i))
                .collect();
            answer(200, &Value::Array(list))
        }
        ["", "v1", "vaults", vid, "items", iid] => {
            if !is_uuid(vid) {
                return error(400, "Invalid Vault UUID");
            }
            if !is_uuid(iid) {
                return error(400, "Invalid Item UUID");
            }
            let Some(v) = find_vault(vid) else {
                return error(404, "Vault not found");
            };
            match v.items.iter().find(|i| i.id == *iid) {
                Some(i) => {
                    let (body, codes) = item_full(v, i, unix_now());
                    st.codes.lock().expect("codes").extend(codes);
                    answer(200, &body)
                }
                None => error(404, "Item not found"),
            }
        }
        _ => error(404, "Not found"),
    }
}

// ---------------------------------------------------------------------------
// TOTP (RFC 6238), on an independent SHA-1 and HMAC
// ---------------------------------------------------------------------------

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&sha1(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(msg);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha1(&inner));
    sha1(&outer)
}

/// Decodes RFC 4648 base32 (any case; spaces, dashes and `=` ignored).
pub(crate) fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u64, 0u32);
    for c in s.chars().filter(|c| !matches!(c, ' ' | '-' | '=')) {
        let v = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u64 - 'A' as u64,
            d @ '2'..='7' => d as u64 - '2' as u64 + 26,
            _ => return None,
        };
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The HOTP code (RFC 4226) of `key` for `counter`, `digits` long.
pub(crate) fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    let mac = hmac_sha1(key, &counter.to_be_bytes());
    let off = usize::from(mac[19] & 0x0f);
    let bin =
        u32::from_be_bytes([mac[off], mac[off + 1], mac[off + 2], mac[off + 3]]) & 0x7fff_ffff;
    let code = bin % 10u32.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// The TOTP code (RFC 6238, SHA-1) of base32 `seed` at `unix` seconds.
pub(crate) fn totp(seed: &str, unix: u64, period: u64, digits: u32) -> Option<String> {
    let key = base32_decode(seed)?;
    Some(hotp(&key, unix / period, digits))
}

/// An `otpauth://` URI for `seed`, as 1Password stores OTP fields.
pub(crate) fn otp_uri(seed: &str) -> String {
    format!("otpauth://totp/Keyfill:test?secret={seed}&issuer=Keyfill")
}

/// The current code of an `otpauth://totp/…` URI at `unix` seconds.
pub(crate) fn totp_from_uri(uri: &str, unix: u64) -> Option<String> {
    let query = uri.split_once('?')?.1;
    let secret = query_param(query, "secret")?;
    let digits = query_param(query, "digits").and_then(|d| d.parse().ok());
    let period = query_param(query, "period").and_then(|d| d.parse().ok());
    totp(&secret, unix, period.unwrap_or(30), digits.unwrap_or(6))
}

/// The current TOTP codes of `seed` one period either side of now, for
/// comparisons that may straddle a period boundary.
pub(crate) fn totp_window(seed: &str) -> Vec<String> {
    let now = unix_now();
    [now.saturating_sub(30), now, now + 30]
        .iter()
        .filter_map(|t| totp(seed, *t, 30, 6))
        .collect()
}

// ---------------------------------------------------------------------------
// The fake `op` CLI
// ---------------------------------------------------------------------------

/// The fake `op`: a Python script that answers `op item get ITEM --vault VAULT
/// --format json` from `op-data.json` beside it, checks
/// `OP_SERVICE_ACCOUNT_TOKEN`, and appends each invocation to `op-calls.jsonl`.
const OP_SCRIPT: &str = r#"
import hashlib, hmac, json, os, struct, sys, time, urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
LOG = {"argv": sys.argv[1:], "totp": []}

def fail(message, code=1):
    sys.stderr.write("[ERROR] %s %s\n" % (time.strftime("%Y/%m/%d %H:%M:%S"), message))
    sys.exit(code)

def totp(uri):
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    seed = q["secret"][0].upper().replace(" ", "").replace("-", "").rstrip("=")
    import base64
    key = base64.b32decode(seed + "=" * (-len(seed) % 8))
    period = int(q.get("period", ["30"])[0])
    digits = int(q.get("digits", ["6"])[0])
    mac = hmac.new(key, struct.pack(">Q", int(time.time()) // period), hashlib.sha1).digest()
    off = mac[-1] & 15
    code = (struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(code).zfill(digits)

VALUED = {"--vault", "--format", "--account", "--session", "--config", "--encoding",
          "--fields", "--cache"}
SWITCHES = {"--reveal", "--include-archive", "--no-color", "--debug", "--iso-timestamps",
            "--otp", "--cache", "--no-newline"}

def main():
    with open(os.path.join(HERE, "op-data.json")) as f:
        data = json.load(f)
    args, opts = [], {}
    argv = sys.argv[1:]
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            args.extend(argv[i + 1:])
            break
        if a.startswith("--"):
            name, eq, value = a.partition("=")
            if eq:
                opts[name] = value
            elif name in SWITCHES and not (name in VALUED and i + 1 < len(argv) and argv[i + 1] in ("true", "false")):
                opts[name] = "true"
            elif name in VALUED:
                if i + 1 >= len(argv):
                    fail("flag needs an argument: %s" % name)
                opts[name] = argv[i + 1]
                i += 1
            else:
                fail("unknown flag: %s" % name)
        else:
            args.append(a)
        i += 1
    if args == ["whoami"]:
        command = "whoami"
    elif len(args) >= 2 and args[0] in ("item", "items") and args[1] in ("get", "list"):
        command = args[1]
    else:
        fail('unknown command "%s" for "op"' % " ".join(args))
    if command == "get" and len(args) != 3:
        fail('accepts 1 arg(s), received %d' % (len(args) - 2))
    if command == "list" and len(args) != 2:
        fail('accepts 0 arg(s), received %d' % (len(args) - 2))
    token = os.environ.get("OP_SERVICE_ACCOUNT_TOKEN")
    if token is None:
        fail("You are not currently signed in. Please run `op signin --help` for instructions")
    if token != data["token"]:
        if not token.startswith("ops_"):
            fail("failed to session.DecodeSACredentials: failed to DecodeSACredentials: failed to parseToken, format is invalid")
        fail("failed to session.DecodeSACredentials: failed to DecodeSACredentials: invalid credentials provided")
    faults_path = os.path.join(HERE, "op-faults.json")
    if os.path.exists(faults_path):
        with open(faults_path) as f:
            faults = json.load(f)
        if faults:
            fault = faults.pop(0)
            with open(faults_path, "w") as f:
                json.dump(faults, f)
            fail(fault["message"], fault["code"])
    if command == "whoami":
        # A service account's `op whoami --format=json`.
        sys.stdout.write(json.dumps({"url": "https://example.1password.com", "email": "",
                                     "user_uuid": "SAUSERUUID", "account_uuid": "ACCOUNTUUID",
                                     "user_type": "SERVICE_ACCOUNT"}, indent=2) + "\n")
        return
    vaults = data["vaults"]
    if "--vault" in opts:
        v = opts["--vault"]
        vaults = [x for x in vaults if x["id"] == v or x["name"].lower() == v.lower()]
        if not vaults:
            fail("\"%s\" isn't a vault in this account. Specify the vault with its ID or name." % v)
    if command == "list":
        # Item overviews: no fields, no sections, no values.
        keep = ("id", "title", "version", "vault", "category", "created_at", "updated_at")
        overviews = [{k: it[k] for k in keep if k in it} for x in vaults for it in x["items"]]
        sys.stdout.write(json.dumps(overviews, indent=2) + "\n")
        return
    wanted = args[2]
    found = [it for x in vaults for it in x["items"]
             if it["id"] == wanted or it["title"].lower() == wanted.lower()]
    if not found:
        if "--vault" in opts:
            fail("\"%s\" isn't an item in the \"%s\" vault. Specify the item with its UUID, name, or domain." % (wanted, opts["--vault"]))
        fail("\"%s\" isn't an item. Specify the item with its UUID, name, or domain." % wanted)
    if len(found) > 1:
        fail("More than one item matches \"%s\". Try again and specify the item by its ID:\n%s" % (
            wanted, "\n".join("\t* for the item %s in vault %s: %s" % (it["title"], it["vault"]["name"], it["id"]) for it in found)))
    item = json.loads(json.dumps(found[0]))
    for field in item.get("fields", []):
        if field.get("type") == "OTP" and field.get("value"):
            field["totp"] = totp(field["value"])
            LOG["totp"].append(field["totp"])
    if opts.get("--format") != "json":
        fail("this fake op only prints --format json")
    sys.stdout.write(json.dumps(item, indent=2) + "\n")

try:
    main()
finally:
    with open(os.path.join(HERE, "op-calls.jsonl"), "a") as f:
        f.write(json.dumps(LOG) + "\n")
"#;

/// One invocation of the fake `op`.
#[derive(Clone, Debug)]
pub(crate) struct OpCall {
    /// Arguments after the program name.
    pub(crate) argv: Vec<String>,
    /// TOTP codes it printed.
    pub(crate) totp: Vec<String>,
}

/// A folder holding the fake `op` and its data; put [`FakeOp::dir`] first on `PATH`.
pub(crate) struct FakeOp {
    /// The folder with the `op` executable.
    pub(crate) dir: PathBuf,
    token: String,
    vaults: Vec<Vault>,
}

impl FakeOp {
    /// Installs the fake `op` in `dir` (created if needed), accepting `token`.
    pub(crate) fn install(dir: &Path, token: &str) -> FakeOp {
        std::fs::create_dir_all(dir).expect("op folder");
        let python = std::process::Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3 is needed for the fake op");
        let python = String::from_utf8_lossy(&python.stdout).trim().to_owned();
        assert!(!python.is_empty(), "python3 did not say where it is");
        let path = dir.join("op");
        std::fs::write(&path, format!("#!{python}\n{OP_SCRIPT}")).expect("write the fake op");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make the fake op executable");
        let op = FakeOp {
            dir: dir.to_path_buf(),
            token: token.into(),
            vaults: Vec::new(),
        };
        op.save();
        op
    }

    /// Adds a vault named `name`; returns its id.
    pub(crate) fn add_vault(&mut self, name: &str) -> String {
        let id = new_id();
        self.vaults.push(Vault {
            id: id.clone(),
            name: name.into(),
            items: Vec::new(),
        });
        self.save();
        id
    }

    /// Adds `item` to the vault with id `vault`.
    pub(crate) fn add_item(&mut self, vault: &str, item: Item) {
        self.vaults
            .iter_mut()
            .find(|v| v.id == vault)
            .expect("a seeded vault")
            .items
            .push(item);
        self.save();
    }

    /// Makes the next `times` invocations that get past the token check fail
    /// with `[ERROR] <date> <time> {message}` and exit status `code`.
    pub(crate) fn fail_next(&self, times: usize, message: &str, code: i32) {
        let faults: Vec<Value> = (0..times)
            .map(|_| json!({ "message": message, "code": code }))
            .collect();
        std::fs::write(
            self.dir.join("op-faults.json"),
            Value::Array(faults).to_string(),
        )
        .expect("write op faults");
    }

    fn save(&self) {
        let vaults: Vec<Value> = self
            .vaults
            .iter()
            .map(|v| {
                let items: Vec<Value> = v.items.iter().map(|i| op_item(v, i)).collect();
                json!({ "id": v.id, "name": v.name, "items": items })
            })
            .collect();
        let data = json!({ "token": self.token, "vaults": vaults });
        std::fs::write(self.dir.join("op-data.json"), data.to_string()).expect("write op data");
    }

    /// Every invocation so far.
    pub(crate) fn calls(&self) -> Vec<OpCall> {
        let text = std::fs::read_to_string(self.dir.join("op-calls.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("op call log line");
                let strings = |k: &str| -> Vec<String> {
                    v[k].as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|s| s.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                OpCall {
                    argv: strings("argv"),
                    totp: strings("totp"),
                }
            })
            .collect()
    }
}

/// The `op item get --format json` form of an item.
fn op_item(vault: &Vault, item: &Item) -> Value {
    let labels: HashMap<&str, &str> = item
        .sections
        .iter()
        .map(|(id, label)| (id.as_str(), label.as_str()))
        .collect();
    let fields: Vec<Value> = item
        .fields
        .iter()
        .map(|f| {
            let mut o = json!({ "id": f.id, "type": f.kind, "label": f.label });
            if let Some(p) = &f.purpose {
                o["purpose"] = json!(p);
            }
            if !f.value.is_empty() {
                o["value"] = json!(f.value);
            }
            let reference = match &f.section {
                Some(s) => {
                    let label = labels.get(s.as_str()).copied().unwrap_or(s);
                    o["section"] = json!({ "id": s, "label": label });
                    format!("op://{}/{}/{}/{}", vault.name, item.title, label, f.label)
                }
                None => format!("op://{}/{}/{}", vault.name, item.title, f.label),
            };
            o["reference"] = json!(reference);
            o
        })
        .collect();
    json!({
        "id": item.id,
        "title": item.title,
        "version": 1,
        "vault": { "id": vault.id, "name": vault.name },
        "category": item.category,
        "last_edited_by": "yxz2nfxjtvd3hl5wdglrnpr3bi",
        "created_at": STAMP,
        "updated_at": STAMP,
        "additional_information": "",
        "sections": item.sections.iter().map(|(id, label)| json!({ "id": id, "label": label })).collect::<Vec<_>>(),
        "fields": fields,
    })
}
