//! 1Password locators: `op://VAULT/ITEM/FIELD` or `op://VAULT/ITEM/SECTION/FIELD`,
//! with `?attribute=otp` for a TOTP code.
//!
//! ```yaml
//! token: <<op|op://Production/Slack/token>>
//! ```
//!
//! Names are case-sensitive, as keyfill's specification says (1Password's own
//! tools match names case-insensitively; a name that differs only in case is
//! reported with the right spelling).
//!
//! Fetched through a 1Password Connect server (`OP_CONNECT_HOST`,
//! `OP_CONNECT_TOKEN`), or, with `OP_SERVICE_ACCOUNT_TOKEN`, through the `op` CLI.
//! Either way each item is fetched once per render, however many of its fields
//! are used (service accounts are rate limited).


use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use futures_util::stream::{self, StreamExt as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use super::http::{self, env, Problem, Trust};
use super::retry::{self, Failure, Policy, Verdict};
use std::path::Path;

use super::{
    parse_query, split_query, FetchClass, FetchError, Health, LocatorError, Provider, Reach,
    Readability, Settings,
};
use crate::secret::SecretBytes;

/// One field of one 1Password item.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct OpLocator {
    /// Vault name or id.
    pub(crate) vault: String,
    /// Item title or id.
    pub(crate) item: String,
    /// Section label, when given.
    pub(crate) section: Option<String>,
    /// Field label or id.
    pub(crate) field: String,
    /// `otp` (the current TOTP code) or another attribute.
    pub(crate) attribute: Option<String>,
}

const ATTRIBUTES: [&str; 6] = ["value", "otp", "type", "id", "label", "purpose"];

impl OpLocator {
    /// Parses `op://…`.
    pub(crate) fn parse(text: &str) -> Result<Self, LocatorError> {
        let Some(rest) = text.strip_prefix("op://") else {
            return Err(
                LocatorError::new(format!("`{}` does not start with `op://`", text))
                    .hint("op://VAULT/ITEM/FIELD, as `op read` takes it"),
            );
        };
        let (main, query) = split_query(rest);
        let segs: Vec<&str> = main.split('/').collect();
        if !(3..=4).contains(&segs.len()) || segs.iter().any(|s| s.is_empty()) {
            return Err(
                LocatorError::new(format!("`{}` is not a 1Password secret reference", text))
                    .hint("op://VAULT/ITEM/FIELD or op://VAULT/ITEM/SECTION/FIELD"),
            );
        }
        let mut loc = OpLocator {
            vault: segs[0].to_owned(),
            item: segs[1].to_owned(),
            section: (segs.len() == 4).then(|| segs[2].to_owned()),
            field: segs[segs.len() - 1].to_owned(),
            attribute: None,
        };
        if let Some((q, offset)) = query {
            let offset = offset + "op://".len();
            for (_, v) in parse_query(q, &["attribute"]).map_err(|e| e.shifted(offset))? {
                if !ATTRIBUTES.contains(&v) {
                    let mut e = LocatorError::new(format!(
                        "unknown attribute `{v}` (known: {})",
                        ATTRIBUTES.join(", ")
                    ))
                    .field("attribute");
                    if let Some(best) = crate::suggest::closest(v, &ATTRIBUTES) {
                        e = e.hint(format!("did you mean `{best}`?"));
                    }
                    return Err(e);
                }
                loc.attribute = Some(v.to_owned());
            }
        }
        Ok(loc)
    }
}

impl fmt::Display for OpLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op://{}/{}/", self.vault, self.item)?;
        if let Some(s) = &self.section {
            write!(f, "{s}/")?;
        }
        f.write_str(&self.field)?;
        if let Some(a) = &self.attribute {
            write!(f, "?attribute={a}")?;
        }
        Ok(())
    }
}

/// Fetches from 1Password. Nothing is set up until `fetch`.
pub(crate) struct OnePasswordProvider {
    settings: Settings,
}

impl Provider for OnePasswordProvider {
    type Locator = OpLocator;
    const REMOTE: bool = true;
    const CREDENTIAL_VARS: &'static [&'static str] =
        &["OP_CONNECT_TOKEN", "OP_SERVICE_ACCOUNT_TOKEN"];

    fn parse(text: &str, _: &Path) -> Result<OpLocator, LocatorError> {
        OpLocator::parse(text)
    }

    fn start(settings: Settings) -> Self {
        OnePasswordProvider { settings }
    }

    fn fetch(&self, requests: &[&OpLocator]) -> Vec<Result<SecretBytes, FetchError>> {
        http::block_on(fetch(requests, self.settings), |e| {
            let err = FetchError::new(
                FetchClass::Unreachable,
                format!("cannot start the 1Password client: {e}"),
            );
            requests.iter().map(|_| Err(err.clone())).collect()
        })
    }

    fn diagnose(&self, requests: &[&OpLocator]) -> (Health, Vec<Readability>) {
        http::block_on(diagnose(requests, self.settings), |e| {
            let err = FetchError::new(
                FetchClass::Unreachable,
                format!("cannot start the 1Password client: {e}"),
            );
            failed(credentials(), requests.len(), err)
        })
    }

    fn configured() -> Option<String> {
        ["OP_CONNECT_HOST", "OP_CONNECT_TOKEN", "OP_SERVICE_ACCOUNT_TOKEN"]
            .into_iter()
            .find(|v| env(v).is_some())
            .map(|v| format!("{v} is set"))
    }
}

/// Where the credentials come from, by the variables set (never their values).
fn credentials() -> String {
    match (env("OP_CONNECT_HOST"), env("OP_CONNECT_TOKEN")) {
        (Some(host), Some(_)) => format!("OP_CONNECT_TOKEN (Connect server {host})"),
        (Some(_), None) | (None, Some(_)) => "incomplete Connect settings".to_owned(),
        (None, None) if env("OP_SERVICE_ACCOUNT_TOKEN").is_some() => {
            "OP_SERVICE_ACCOUNT_TOKEN (op CLI)".to_owned()
        }
        (None, None) => "none found".to_owned(),
    }
}

/// `doctor`'s answer when nothing could be asked.
fn failed(credentials: String, n: usize, e: FetchError) -> (Health, Vec<Readability>) {
    let health = Health {
        credentials,
        reach: Reach::Failed(e.clone()),
        identity: Ok(None),
    };
    (health, (0..n).map(|_| Readability::Failed(e.clone())).collect())
}

/// What the Connect server or `op` says of itself, and whether each item is
/// listed in its vault: item listings carry titles and ids, no field values,
/// so a field itself is not checked.
async fn diagnose(locators: &[&OpLocator], settings: Settings) -> (Health, Vec<Readability>) {
    let credentials = credentials();
    let source = match source() {
        Ok(s) => s,
        Err(e) => return failed(credentials, locators.len(), e),
    };
    let policy = Policy::within(settings.timeout);
    let mut items: Vec<ItemKey> = locators
        .iter()
        .map(|l| (l.vault.clone(), l.item.clone()))
        .collect();
    items.sort();
    items.dedup();
    let (health, listed): (Health, HashMap<ItemKey, Result<(), FetchError>>) = match &source {
        Source::Connect { host, token } => {
            let client = match http::client(Trust::System) {
                Ok(c) => c,
                Err(e) => return failed(credentials, locators.len(), e),
            };
            let connect = Connect {
                client,
                host,
                token,
                policy: &policy,
            };
            let health = connect.health(credentials).await;
            if let Reach::Failed(e) = &health.reach {
                let e = e.clone();
                return (health, locators.iter().map(|_| Readability::Failed(e.clone())).collect());
            }
            let connect = &connect;
            let listed = stream::iter(items)
                .map(|key| async move {
                    let r = match connect.vault_id(&key.0).await {
                        Ok(vid) => connect.listed(&vid, &key.0, &key.1).await,
                        Err(e) => Err(e),
                    };
                    (key, r)
                })
                .buffer_unordered(settings.concurrency.max(1))
                .collect()
                .await;
            (health, listed)
        }
        Source::Cli => {
            let health = match op_json(&["whoami", "--format=json"], "the account", &policy).await {
                Ok(who) => Health {
                    credentials,
                    reach: Reach::Reachable,
                    identity: Ok(Some(whoami(&who))),
                },
                Err(e) if e.class == FetchClass::Denied => Health {
                    credentials,
                    reach: Reach::Reachable,
                    identity: Err(e),
                },
                Err(e) => Health {
                    credentials,
                    reach: Reach::Failed(e),
                    identity: Ok(None),
                },
            };
            let policy = &policy;
            let listed = stream::iter(items)
                .map(|key| async move {
                    let r = cli_listed(&key, policy).await;
                    (key, r)
                })
                .buffer_unordered(settings.concurrency.max(1))
                .collect()
                .await;
            (health, listed)
        }
    };
    let each = locators
        .iter()
        .map(|l| match listed.get(&(l.vault.clone(), l.item.clone())) {
            Some(Ok(())) => Readability::Readable(Some(
                "the item is listed; its fields are not read".to_owned(),
            )),
            Some(Err(e)) => Readability::Failed(e.clone()),
            None => Readability::Failed(FetchError::unanswered("1Password")),
        })
        .collect();
    (health, each)
}

/// Who `op whoami` says the account is: its type and sign-in address.
fn whoami(who: &Value) -> String {
    let kind = who["user_type"].as_str().unwrap_or("account");
    match who["url"].as_str() {
        Some(url) => format!("{kind} at {url}"),
        None => kind.to_owned(),
    }
}

/// Whether `op item list` shows the item in its vault (titles and ids only).
async fn cli_listed(key: &ItemKey, policy: &Policy) -> Result<(), FetchError> {
    let (vault, item) = key;
    let what = format!("item `{item}` in vault `{vault}`");
    let list = op_json(
        &["item", "list", &format!("--vault={vault}"), "--format=json"],
        &what,
        policy,
    )
    .await?;
    let hit = list.as_array().is_some_and(|l| {
        l.iter().any(|i| {
            i["title"].as_str() == Some(item.as_str()) || i["id"].as_str() == Some(item.as_str())
        })
    });
    if hit {
        Ok(())
    } else {
        Err(not_found(&what, &list, "title", item))
    }
}

/// How items are read.
enum Source {
    Connect { host: String, token: SecretString },
    Cli,
}

fn source() -> Result<Source, FetchError> {
    let unconfigured = |m: &str| FetchError::new(FetchClass::Unconfigured, m);
    match (env("OP_CONNECT_HOST"), env("OP_CONNECT_TOKEN")) {
        (Some(host), Some(token)) => {
            let host = host.trim_end_matches('/').to_owned();
            if !(host.starts_with("http://") || host.starts_with("https://")) {
                return Err(unconfigured(
                    "OP_CONNECT_HOST is not an http:// or https:// address",
                ));
            }
            if http::credential(&format!("Bearer {token}")).is_none() {
                return Err(unconfigured(
                    "OP_CONNECT_TOKEN holds characters an HTTP header cannot carry",
                ));
            }
            Ok(Source::Connect {
                host,
                token: SecretString::from(token),
            })
        }
        (Some(_), None) => Err(unconfigured(
            "OP_CONNECT_HOST is set but OP_CONNECT_TOKEN is not",
        )),
        (None, Some(_)) => Err(unconfigured(
            "OP_CONNECT_TOKEN is set but OP_CONNECT_HOST is not",
        )),
        (None, None) if env("OP_SERVICE_ACCOUNT_TOKEN").is_some() => Ok(Source::Cli),
        (None, None) => Err(unconfigured(
            "1Password is not configured: set OP_CONNECT_HOST and OP_CONNECT_TOKEN for a \
             Connect server, or OP_SERVICE_ACCOUNT_TOKEN for the op CLI",
        )),
    }
}

/// An item: (vault, item) as written.
type ItemKey = (String, String);

async fn fetch(
    locators: &[&OpLocator],
    settings: Settings,
) -> Vec<Result<SecretBytes, FetchError>> {
    let source = match source() {
        Ok(s) => s,
        Err(e) => return locators.iter().map(|_| Err(e.clone())).collect(),
    };
    let policy = Policy::within(settings.timeout);
    let mut items: HashMap<ItemKey, Vec<usize>> = HashMap::new();
    for (i, l) in locators.iter().enumerate() {
        items
            .entry((l.vault.clone(), l.item.clone()))
            .or_default()
            .push(i);
    }
    let fetched: HashMap<ItemKey, Result<Value, FetchError>> = match &source {
        Source::Connect { host, token } => {
            let client = match http::client(Trust::System) {
                Ok(c) => c,
                Err(e) => return locators.iter().map(|_| Err(e.clone())).collect(),
            };
            let connect = Connect {
                client,
                host,
                token,
                policy: &policy,
            };
            connect
                .items(items.keys().cloned().collect(), settings)
                .await
        }
        Source::Cli => {
            stream::iter(items.keys().cloned())
                .map(|key| async {
                    let item = cli_item(&key, &policy).await;
                    (key, item)
                })
                .buffer_unordered(settings.concurrency.max(1))
                .collect()
                .await
        }
    };
    locators
        .iter()
        .map(|l| match fetched.get(&(l.vault.clone(), l.item.clone())) {
            Some(Ok(item)) => field_value(item, l),
            Some(Err(e)) => Err(e.clone()),
            None => Err(FetchError::unanswered("1Password")),
        })
        .collect()
}

/// A 1Password Connect server.
struct Connect<'a> {
    client: reqwest::Client,
    host: &'a str,
    token: &'a SecretString,
    policy: &'a Policy,
}

impl Connect<'_> {
    fn get(&self, path: &str, filter: Option<String>) -> reqwest::RequestBuilder {
        let mut url = format!("{}/v1/{path}", self.host);
        if let Some(f) = filter {
            let q: String = url_encode(&f);
            url.push_str(&format!("?filter={q}"));
        }
        // Checked when the source was read; empty only if that changed.
        let auth = http::credential(&format!("Bearer {}", self.token.expose_secret()))
            .unwrap_or_else(|| reqwest::header::HeaderValue::from_static(""));
        self.client
            .get(url)
            .header(reqwest::header::AUTHORIZATION, auth)
    }

    async fn json(
        &self,
        path: &str,
        filter: Option<String>,
        what: &str,
    ) -> Result<Value, FetchError> {
        match http::send(self.policy, || self.get(path, filter.clone()), |_| false).await {
            Ok(a) => a.json().ok_or_else(|| {
                FetchError::new(
                    FetchClass::Unreachable,
                    "1Password Connect sent an unreadable answer",
                )
            }),
            Err(f) => Err(connect_error(&f, what)),
        }
    }

    /// Every wanted item, each looked up and fetched once; vaults once each.
    async fn items(
        &self,
        keys: Vec<ItemKey>,
        settings: Settings,
    ) -> HashMap<ItemKey, Result<Value, FetchError>> {
        let mut vault_names: Vec<String> = keys.iter().map(|(v, _)| v.clone()).collect();
        vault_names.sort();
        vault_names.dedup();
        let vaults: HashMap<String, Result<String, FetchError>> = stream::iter(vault_names)
            .map(|name| async {
                let id = self.vault_id(&name).await;
                (name, id)
            })
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
        let vaults = &vaults;
        stream::iter(keys)
            .map(|key| async move {
                let item = match vaults.get(&key.0) {
                    Some(Ok(vid)) => self.item(vid, &key.0, &key.1).await,
                    Some(Err(e)) => Err(e.clone()),
                    None => Err(FetchError::new(FetchClass::Invalid, "vault not looked up")),
                };
                (key, item)
            })
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await
    }

    async fn vault_id(&self, name: &str) -> Result<String, FetchError> {
        let what = format!("vault `{name}`");
        let list = self
            .json(
                "vaults",
                Some(format!("name eq \"{}\"", scim_escape(name))),
                &what,
            )
            .await?;
        if let Some(id) = exact(&list, "name", name, &what)? {
            return Ok(id);
        }
        if looks_like_id(name) {
            if let Ok(v) = self.json(&format!("vaults/{name}"), None, &what).await {
                if let Some(id) = v["id"].as_str() {
                    return Ok(id.to_owned());
                }
            }
        }
        Err(not_found(&what, &list, "name", name))
    }

    async fn item(&self, vault_id: &str, vault: &str, title: &str) -> Result<Value, FetchError> {
        let what = format!("item `{title}` in vault `{vault}`");
        let list = self
            .json(
                &format!("vaults/{vault_id}/items"),
                Some(format!("title eq \"{}\"", scim_escape(title))),
                &what,
            )
            .await?;
        let id = match exact(&list, "title", title, &what)? {
            Some(id) => id,
            None if looks_like_id(title) => title.to_owned(),
            None => return Err(not_found(&what, &list, "title", title)),
        };
        self.json(&format!("vaults/{vault_id}/items/{id}"), None, &what)
            .await
            .map_err(|e| match e.class {
                FetchClass::NotFound => {
                    FetchError::new(FetchClass::NotFound, format!("{what} does not exist"))
                }
                _ => e,
            })
    }
}

impl Connect<'_> {
    /// Whether the server answers (`/heartbeat`, no token), its name and
    /// version (`/health`), and whether the token is accepted (the vaults it
    /// may list).
    async fn health(&self, credentials: String) -> Health {
        let beat = http::send(
            self.policy,
            || self.client.get(format!("{}/heartbeat", self.host)),
            |_| false,
        )
        .await;
        if let Err(f) = beat {
            return Health {
                credentials,
                reach: Reach::Failed(connect_error(&f, "the server")),
                identity: Ok(None),
            };
        }
        let server = match http::send(
            self.policy,
            || self.client.get(format!("{}/health", self.host)),
            |_| false,
        )
        .await
        {
            Ok(a) => a.json().map_or_else(
                || "1Password Connect".to_owned(),
                |j| {
                    let name = j["name"].as_str().unwrap_or("1Password Connect");
                    match j["version"].as_str() {
                        Some(v) => format!("{name} {v}"),
                        None => name.to_owned(),
                    }
                },
            ),
            Err(_) => "1Password Connect".to_owned(),
        };
        let identity = self.json("vaults", None, "the vaults").await.map(|v| {
            let n = v.as_array().map_or(0, Vec::len);
            Some(format!("{server}: the token may list {n} vault(s)"))
        });
        Health {
            credentials,
            reach: Reach::Reachable,
            identity,
        }
    }

    /// Whether the item is in the vault's listing, by exact title or by id;
    /// nothing of its fields is read.
    async fn listed(&self, vault_id: &str, vault: &str, title: &str) -> Result<(), FetchError> {
        let what = format!("item `{title}` in vault `{vault}`");
        let items = format!("vaults/{vault_id}/items");
        let filter = format!("title eq \"{}\"", scim_escape(title));
        let list = self.json(&items, Some(filter), &what).await?;
        if exact(&list, "title", title, &what)?.is_some() {
            return Ok(());
        }
        if looks_like_id(title) {
            let all = self.json(&items, None, &what).await?;
            let by_id = all
                .as_array()
                .is_some_and(|l| l.iter().any(|i| i["id"].as_str() == Some(title)));
            if by_id {
                return Ok(());
            }
        }
        Err(not_found(&what, &list, "title", title))
    }
}

/// The id of the one element of `list` whose `attr` is exactly `name`;
/// `Ok(None)` when there is none, an error when there are several.
fn exact(list: &Value, attr: &str, name: &str, what: &str) -> Result<Option<String>, FetchError> {
    let hits: Vec<&str> = list
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
        .iter()
        .filter(|v| v[attr].as_str() == Some(name))
        .filter_map(|v| v["id"].as_str())
        .collect();
    match hits.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some((*one).to_owned())),
        _ => Err(FetchError::new(
            FetchClass::Invalid,
            format!("more than one {what}: use its id instead of its name"),
        )),
    }
}

/// "Not found", naming a spelling that differs only in case when there is one.
fn not_found(what: &str, list: &Value, attr: &str, name: &str) -> FetchError {
    let near = list.as_array().and_then(|l| {
        l.iter()
            .filter_map(|v| v[attr].as_str())
            .find(|n| n.eq_ignore_ascii_case(name))
            .map(str::to_owned)
    });
    FetchError::new(
        FetchClass::NotFound,
        match near {
            Some(n) => format!("{what} does not exist (there is `{n}`: names are case-sensitive)"),
            None => format!("{what} does not exist"),
        },
    )
}

/// 1Password ids are 26 lower-case letters and digits.
fn looks_like_id(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn scim_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Percent-encodes a query value.
fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn connect_error(f: &Failure<Problem>, what: &str) -> FetchError {
    let Failure::Error(Problem::Status(a)) = f else {
        return http::transport_error(f, "1Password Connect", "check OP_CONNECT_HOST");
    };
    match a.status {
        401 => FetchError::new(
            FetchClass::Denied,
            "1Password Connect refused OP_CONNECT_TOKEN (HTTP 401): it is invalid or expired",
        ),
        403 => FetchError::new(
            FetchClass::Denied,
            format!("the Connect token may not read {what} (HTTP 403)"),
        ),
        404 => FetchError::new(FetchClass::NotFound, format!("{what} does not exist")),
        _ => http::transport_error(f, "1Password Connect", "check OP_CONNECT_HOST"),
    }
}

/// `op item get ITEM --vault VAULT --format json`, retried while rate limited.
async fn cli_item(key: &ItemKey, policy: &Policy) -> Result<Value, FetchError> {
    let (vault, item) = key;
    let what = format!("item `{item}` in vault `{vault}`");
    // `--vault=` and `--` keep names that start with `-` from reading as flags.
    let args = [
        "item",
        "get",
        &format!("--vault={vault}"),
        "--format=json",
        "--",
        item,
    ];
    let found = op_json(&args, &what, policy).await?;
    exactly_named(found, vault, item)
}

/// Runs `op ARGS` (which print JSON), retried while rate limited; errors
/// about `what` in our words.
async fn op_json(args: &[&str], what: &str, policy: &Policy) -> Result<Value, FetchError> {
    let run = || async {
        let out = tokio::process::Command::new("op")
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    FetchError::new(
                        FetchClass::Unconfigured,
                        "the 1Password CLI `op` is not installed or not on PATH (it is used \
                         when OP_SERVICE_ACCOUNT_TOKEN is set)",
                    )
                } else {
                    FetchError::new(FetchClass::Unreachable, format!("cannot run `op`: {e}"))
                }
            })?;
        if out.status.success() {
            return serde_json::from_slice::<Value>(&out.stdout).map_err(|_| {
                FetchError::new(
                    FetchClass::Unreachable,
                    "`op` printed something that is not JSON",
                )
            });
        }
        Err(op_failure(&out.stderr, out.status.code(), args, what))
    };
    retry::run(policy, run, |e: &FetchError| {
        if e.class == FetchClass::Throttled {
            Verdict::Retry(Some(Duration::from_secs(1)))
        } else {
            Verdict::Fail
        }
    })
    .await
    .map_err(|f| match f {
        Failure::Error(e) => e,
        Failure::TimedOut => {
            FetchError::new(FetchClass::Unreachable, "`op` did not finish in time")
        }
    })
}

/// Our words for a failed `op` run.
fn op_failure(stderr: &[u8], code: Option<i32>, args: &[&str], what: &str) -> FetchError {
    // op's message is read to classify, never shown: it may quote input.
    let err = String::from_utf8_lossy(stderr).to_ascii_lowercase();
    let code = code.unwrap_or(-1);
    let vault = args
        .iter()
        .find_map(|a| a.strip_prefix("--vault="))
        .unwrap_or("?");
    if err.contains("more than one item") {
        FetchError::new(
            FetchClass::Invalid,
            format!("more than one {what}: use its id instead of its name"),
        )
    } else if err.contains("isn't an item") || err.contains("no item found") {
        FetchError::new(FetchClass::NotFound, format!("{what} does not exist"))
    } else if err.contains("isn't a vault") || err.contains("no vault found") {
        FetchError::new(
            FetchClass::NotFound,
            format!("vault `{vault}` does not exist"),
        )
    } else if err.contains("rate limit") || err.contains("too many requests") {
        FetchError::new(FetchClass::Throttled, "1Password kept rate-limiting `op`")
    } else if err.contains("invalid credentials")
        || err.contains("decodesacredentials")
        || err.contains("parsetoken")
        || err.contains("unauthorized")
        || err.contains("authentication")
        || err.contains("invalid token")
        || err.contains("service account")
        || err.contains("signin")
        || err.contains("sign in")
    {
        FetchError::new(
            FetchClass::Denied,
            "`op` was refused: check OP_SERVICE_ACCOUNT_TOKEN and the account's access to the vault",
        )
    } else {
        let words: Vec<&str> = args.iter().take(2).filter(|a| !a.starts_with('-')).copied().collect();
        FetchError::new(
            FetchClass::Unreachable,
            format!("`op {}` failed (exit {code})", words.join(" ")),
        )
    }
}

/// `op` matches names loosely; keyfill's names are case-sensitive, so the item
/// it found must carry exactly the names asked for (or be asked for by id).
fn exactly_named(item: Value, vault: &str, title: &str) -> Result<Value, FetchError> {
    let named = |v: &Value, key: &str, want: &str| {
        v[key].as_str() == Some(want) || v["id"].as_str() == Some(want)
    };
    if !named(&item["vault"], "name", vault) {
        let near = item["vault"]["name"].as_str().unwrap_or("");
        return Err(FetchError::new(
            FetchClass::NotFound,
            format!("vault `{vault}` does not exist (there is `{near}`: names are case-sensitive)"),
        ));
    }
    if !named(&item, "title", title) {
        let near = item["title"].as_str().unwrap_or("");
        return Err(FetchError::new(
            FetchClass::NotFound,
            format!(
                "item `{title}` in vault `{vault}` does not exist (there is `{near}`: names are \
                 case-sensitive)"
            ),
        ));
    }
    Ok(item)
}

/// The value a locator names in a fetched item (Connect and `op` share the shape).
fn field_value(item: &Value, l: &OpLocator) -> Result<SecretBytes, FetchError> {
    let where_ = format!("item `{}` in vault `{}`", l.item, l.vault);
    let sections = item["sections"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let fields = item["fields"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let section_id = match &l.section {
        None => None,
        Some(name) => {
            let found: Vec<&Value> = sections
                .iter()
                .filter(|s| s["label"].as_str() == Some(name) || s["id"].as_str() == Some(name))
                .collect();
            if found.len() > 1 {
                return Err(FetchError::new(
                    FetchClass::Invalid,
                    format!("{where_} has more than one section `{name}`: use the section's id"),
                ));
            }
            match found.first().and_then(|s| s["id"].as_str()) {
                Some(id) => Some(id),
                None => {
                    let labels: Vec<&str> = sections
                        .iter()
                        .filter_map(|s| s["label"].as_str())
                        .collect();
                    return Err(FetchError::new(
                        FetchClass::NotFound,
                        format!(
                            "{where_} has no section `{name}` (sections there: {})",
                            list(&labels)
                        ),
                    ));
                }
            }
        }
    };
    let candidates: Vec<&Value> = fields
        .iter()
        .filter(|f| f["label"].as_str() == Some(&l.field) || f["id"].as_str() == Some(&l.field))
        .filter(|f| section_id.is_none_or(|s| f["section"]["id"].as_str() == Some(s)))
        .collect();
    let field = match candidates.as_slice() {
        [one] => *one,
        [] => {
            let labels: Vec<&str> = fields
                .iter()
                .filter(|f| section_id.is_none_or(|s| f["section"]["id"].as_str() == Some(s)))
                .filter_map(|f| f["label"].as_str())
                .filter(|l| !l.is_empty())
                .collect();
            let near = labels.iter().find(|x| x.eq_ignore_ascii_case(&l.field));
            let hint = match near {
                Some(n) => format!(" (there is `{n}`: names are case-sensitive)"),
                None => format!(" (fields there: {})", list(&labels)),
            };
            return Err(FetchError::new(
                FetchClass::NotFound,
                format!("{where_} has no field `{}`{hint}", l.field),
            ));
        }
        _ => {
            return Err(FetchError::new(
                FetchClass::Invalid,
                format!(
                    "{where_} has more than one field `{}`: name its section \
                     (op://VAULT/ITEM/SECTION/FIELD) or use the field's id",
                    l.field
                ),
            ))
        }
    };
    let text = match l.attribute.as_deref().unwrap_or("value") {
        "otp" => otp(field).ok_or_else(|| {
            FetchError::new(
                FetchClass::Invalid,
                format!("field `{}` of {where_} is not a one-time password", l.field),
            )
        })?,
        "value" => field["value"].as_str().unwrap_or("").to_owned(),
        attr => field[attr]
            .as_str()
            .ok_or_else(|| {
                FetchError::new(
                    FetchClass::NotFound,
                    format!("field `{}` of {where_} has no `{attr}`", l.field),
                )
            })?
            .to_owned(),
    };
    Ok(SecretBytes::new(text.into_bytes()))
}

/// The current code of an OTP field: the one the server computed, else from its
/// `otpauth://` URI or base32 seed.
fn otp(field: &Value) -> Option<String> {
    if let Some(code) = field["totp"].as_str().filter(|c| !c.is_empty()) {
        return Some(code.to_owned());
    }
    let value = field["value"].as_str()?;
    let (seed, params) = match value.strip_prefix("otpauth://") {
        None if field["type"].as_str() == Some("OTP") => {
            (value.to_owned(), crate::totp::TotpParams::default())
        }
        None => return None,
        Some(_) => crate::totp::TotpParams::from_otpauth(value)?,
    };
    crate::totp::code_now(&seed, &params).ok()
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let l = OpLocator::parse("op://Production/Slack/token").unwrap_or_default();
        assert_eq!(
            (
                l.vault.as_str(),
                l.item.as_str(),
                l.field.as_str(),
                l.section
            ),
            ("Production", "Slack", "token", None)
        );
        let l = OpLocator::parse("op://V/I/S/F?attribute=otp").unwrap_or_default();
        assert_eq!(
            (l.section.as_deref(), l.attribute.as_deref()),
            (Some("S"), Some("otp"))
        );
        assert_eq!(l.to_string(), "op://V/I/S/F?attribute=otp");
        assert!(OpLocator::parse("Production/Slack/token").is_err());
        assert!(OpLocator::parse("op://V/I").is_err());
        assert!(OpLocator::parse("op://V//F").is_err());
        assert!(OpLocator::parse("op://V/I/F?attribute=nope").is_err());
    }

    fn item() -> Value {
        serde_json::json!({
            "id": "abc",
            "title": "Slack",
            "sections": [{"id": "s1", "label": "Admin"}],
            "fields": [
                {"id": "username", "label": "username", "type": "STRING", "value": "bot"},
                {"id": "f2", "label": "token", "type": "CONCEALED", "value": "xoxb", "purpose": "PASSWORD"},
                {"id": "f3", "label": "token", "type": "CONCEALED", "value": "admin-token", "section": {"id": "s1"}},
                {"id": "otp", "label": "one-time password", "type": "OTP", "value": "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8", "totp": "12345678"}
            ]
        })
    }

    fn value(loc: &str) -> Result<String, FetchError> {
        let l = OpLocator::parse(loc).unwrap_or_default();
        field_value(&item(), &l).map(|b| String::from_utf8_lossy(b.expose()).into_owned())
    }

    #[test]
    fn fields_by_label_id_section_and_attribute() {
        assert_eq!(value("op://V/Slack/username").ok().as_deref(), Some("bot"));
        assert_eq!(value("op://V/Slack/f2").ok().as_deref(), Some("xoxb"));
        assert_eq!(
            value("op://V/Slack/Admin/token").ok().as_deref(),
            Some("admin-token")
        );
        assert_eq!(
            value("op://V/Slack/f2?attribute=purpose").ok().as_deref(),
            Some("PASSWORD")
        );
        assert_eq!(
            value("op://V/Slack/one-time password?attribute=otp")
                .ok()
                .as_deref(),
            Some("12345678")
        );
        // Two fields labelled `token`: ambiguous without a section.
        assert_eq!(
            value("op://V/Slack/token").map_err(|e| e.class),
            Err(FetchClass::Invalid)
        );
        let e = value("op://V/Slack/Username")
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(e.contains("there is `username`"), "{e}");
        let e = value("op://V/Slack/nope")
            .err()
            .map(|e| e.message)
            .unwrap_or_default();
        assert!(
            e.contains("fields there: username, token, token, one-time password"),
            "{e}"
        );
        assert!(!e.contains("xoxb"), "values are never listed");
        assert!(value("op://V/Slack/Nope/token").is_err());
        assert!(value("op://V/Slack/username?attribute=otp").is_err());
    }

    #[test]
    fn otp_from_an_otpauth_uri_when_the_server_gives_no_code() {
        let f = serde_json::json!({"type": "OTP", "value": "otpauth://totp/x?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8"});
        let code = otp(&f).unwrap_or_default();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(
            otp(&serde_json::json!({"type": "STRING", "value": "x"})),
            None
        );
    }

    #[test]
    fn filters_are_escaped_and_encoded() {
        assert_eq!(scim_escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(url_encode(r#"title eq "A b""#), "title%20eq%20%22A%20b%22");
        assert!(looks_like_id("abcdefghijklmnopqrstuvwxy2"));
        assert!(!looks_like_id("Production"));
    }
}
