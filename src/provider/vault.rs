//! HashiCorp Vault (and OpenBao) KV locators.
//!
//! ```yaml
//! token: <<vault|secret/data/prod/api-keys/slack_token?version=3>>
//! secrets:
//!   SLACK: { vault: { path: secret/data/prod/api-keys, key: slack_token } }
//! ```
//!
//! `MOUNT/data/PATH/KEY` is KV v2, `MOUNT/PATH/KEY` KV v1; the last segment is the
//! key. `?version=N&namespace=NS`. The long form can name the mount and KV version
//! outright where the path alone would be ambiguous; otherwise the mount and its
//! KV version are asked of Vault (`sys/internal/ui/mounts`), as `vault kv get` does.
//!
//! Configured as the vault CLI is: `VAULT_ADDR`, `VAULT_TOKEN` (else AppRole with
//! `VAULT_ROLE_ID`/`VAULT_SECRET_ID`, else `~/.vault-token`), `VAULT_NAMESPACE`,
//! `VAULT_CACERT`/`VAULT_CAPATH`, `VAULT_SKIP_VERIFY`. One read per distinct
//! (namespace, path, version); every key is taken from that one answer.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use futures_util::stream::{self, StreamExt as _};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use super::http::{self, env, Answer, Problem, Trust};
use super::retry::{Failure, Policy};
use std::path::Path;

use super::{
    parse_query, split_query, FetchClass, FetchError, Fields, Health, LocatorError, Provider,
    Reach, Readability, Settings, VersionCheck,
};
use crate::error::Diagnostics;
use crate::secret::SecretBytes;

/// One key of one Vault KV secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct VaultLocator {
    /// API path as written (`secret/data/prod/api-keys`), without the key.
    pub path: String,
    /// Key inside the secret's data.
    pub key: String,
    /// Pinned version (KV v2 only).
    pub version: Option<u64>,
    /// Enterprise / OpenBao namespace.
    pub namespace: Option<String>,
    /// Mount, when given explicitly.
    pub mount: Option<String>,
    /// KV version, when known (1 or 2).
    pub kv: Option<u8>,
}

impl VaultLocator {
    /// Parses the direct-reference form.
    pub(crate) fn parse(text: &str) -> Result<Self, LocatorError> {
        let (main, query) = split_query(text);
        let main = main.trim_matches('/');
        let segs: Vec<&str> = main.split('/').collect();
        if segs.len() < 3 || segs.iter().any(|s| s.is_empty()) {
            return Err(LocatorError::new(format!("`{main}` is not a Vault KV locator"))
                .hint("MOUNT/data/PATH/KEY (KV v2) or MOUNT/PATH/KEY (KV v1)"));
        }
        let (path, key) = main.rsplit_once('/').unwrap_or((main, ""));
        let kv = if segs.len() >= 4 && segs[1] == "data" {
            Some(2)
        } else {
            None
        };
        let mut loc = VaultLocator {
            path: path.to_owned(),
            key: key.to_owned(),
            kv,
            ..Default::default()
        };
        if let Some((q, offset)) = query {
            for (k, v) in parse_query(q, &["version", "namespace"]).map_err(|e| e.shifted(offset))? {
                match k {
                    "version" => loc.version = Some(parse_version(v)?),
                    _ => loc.namespace = Some(v.to_owned()),
                }
            }
        }
        loc.validate()?;
        Ok(loc)
    }

    /// Builds the long form, `vault: { path: …, key: …, … }`.
    fn from_fields(fields: &Fields<'_>) -> Result<Self, LocatorError> {
        let mut loc = VaultLocator {
            path: fields.get("path").unwrap_or("").trim_matches('/').to_owned(),
            key: fields.get("key").unwrap_or("").to_owned(),
            namespace: fields.get("namespace").map(str::to_owned),
            mount: fields.get("mount").map(|m| m.trim_matches('/').to_owned()),
            ..Default::default()
        };
        if let Some(v) = fields.get("version") {
            loc.version = Some(parse_version(v)?);
        }
        if let Some(kv) = fields.get("kv") {
            loc.kv = Some(match kv {
                "1" => 1,
                "2" => 2,
                _ => return Err(LocatorError::new("`kv` must be 1 or 2").field("kv")),
            });
        }
        if loc.path.is_empty() || loc.key.is_empty() {
            let missing = if loc.path.is_empty() { "path" } else { "key" };
            return Err(LocatorError::new("`vault` needs `path` and `key`").field(missing));
        }
        if loc.kv.is_none() {
            let segs: Vec<&str> = loc.path.split('/').collect();
            if segs.len() >= 3 && segs[1] == "data" {
                loc.kv = Some(2);
            }
        }
        loc.validate()?;
        Ok(loc)
    }

    /// Checks every field (of the short and the long form).
    pub fn validate(&self) -> Result<(), LocatorError> {
        if self.path.trim_matches('/').is_empty() {
            return Err(LocatorError::new("vault path is empty").field("path"));
        }
        if self.key.is_empty() {
            return Err(LocatorError::new("vault key is empty").field("key"));
        }
        if let Some(kv) = self.kv {
            if kv != 1 && kv != 2 {
                return Err(LocatorError::new(format!("kv must be 1 or 2, not {kv}")).field("kv"));
            }
            if kv == 1 && self.version.is_some() {
                return Err(LocatorError::new("version pinning needs a KV v2 mount")
                    .field("version"));
            }
        }
        // The path goes into a URL: characters that would end or change it are refused.
        if let Some(c) = self
            .path
            .chars()
            .find(|c| matches!(c, '#' | '?' | '%' | '\\') || c.is_whitespace() || c.is_control())
        {
            return Err(
                LocatorError::new(format!("vault path `{}` contains `{}`", self.path, c))
                    .field("path"),
            );
        }
        if let Some(ns) = &self.namespace {
            if ns.chars().any(|c| c.is_control()) {
                return Err(
                    LocatorError::new("namespace contains a control character").field("namespace")
                );
            }
        }
        if let Some(m) = &self.mount {
            if !under(&self.path, m.trim_matches('/')) {
                return Err(
                    LocatorError::new(format!("path `{}` is not under mount `{m}`", self.path))
                        .field("mount"),
                );
            }
        }
        Ok(())
    }
}

/// Whether `path` is `mount` or below it, segment by segment.
fn under(path: &str, mount: &str) -> bool {
    let path = path.trim_matches('/');
    path == mount || path.starts_with(&format!("{mount}/"))
}

/// A positive version number.
fn parse_version(v: &str) -> Result<u64, LocatorError> {
    match v.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(
            LocatorError::new(format!("version `{}` is not a positive whole number", v))
                .field("version"),
        ),
    }
}

impl fmt::Display for VaultLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A fetch key (every key of one read) has none.
        if self.key.is_empty() {
            write!(f, "{}", self.path)?;
        } else {
            write!(f, "{}/{}", self.path, self.key)?;
        }
        let version = self.version.map(|v| v.to_string());
        super::write_query(
            f,
            &[
                ("version", version.as_deref()),
                ("namespace", self.namespace.as_deref()),
            ],
        )
    }
}

/// Fetches from Vault or OpenBao KV. Nothing is set up until `fetch`.
pub(crate) struct VaultProvider {
    settings: Settings,
    warnings: Mutex<Vec<String>>,
    /// The token of the last AppRole login, kept while it is valid so that a
    /// watch loop does not log in (and leave a token behind) on every refresh.
    approle: Mutex<Option<Kept>>,
    /// Mounts found so far, by namespace: asked once per loop, not per render.
    mounts: Mutex<Vec<(Option<String>, Mount)>>,
}

/// An AppRole token and when to stop using it.
struct Kept {
    token: SecretString,
    /// Nine tenths into its lease, so that it is never used as it expires.
    until: Option<std::time::Instant>,
}

impl VaultProvider {
    /// Runs `job` over the locators' reads in a session; a failure to set one
    /// up is every request's answer.
    fn run<R: Clone>(
        &self,
        locators: &[&VaultLocator],
        job: impl AsyncFn(&Session, Read) -> R,
        failed: impl Fn(FetchError) -> R,
    ) -> Vec<R> {
        let work = async {
            let session = match self.session().await {
                Ok(s) => s,
                Err(e) => return locators.iter().map(|_| failed(e.clone())).collect(),
            };
            let mut mounts = self.mounts.lock().map(|m| m.clone()).unwrap_or_default();
            let (reads, mut results) = plan(&session, locators, &mut mounts).await;
            if let Ok(mut m) = self.mounts.lock() {
                *m = mounts;
            }
            let session = &session;
            let job = &job;
            let answers: Vec<(Vec<usize>, R)> = stream::iter(reads)
                .map(|(read, wanted)| async move { (wanted, job(session, read).await) })
                .buffer_unordered(self.settings.concurrency.max(1))
                .collect()
                .await;
            let mut out: Vec<Option<R>> =
                results.iter_mut().map(|r| r.take().map(&failed)).collect();
            for (wanted, answer) in answers {
                for i in wanted {
                    out[i] = Some(answer.clone());
                }
            }
            out.into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| failed(FetchError::new(FetchClass::Invalid, "not fetched")))
                })
                .collect()
        };
        http::block_on(work, |e| {
            let err = FetchError::new(
                FetchClass::Unreachable,
                format!("cannot start the Vault client: {e}"),
            );
            locators.iter().map(|_| failed(err.clone())).collect()
        })
    }

    /// A session with the configured token, logging in with AppRole unless a
    /// kept token is still good.
    async fn session(&self) -> Result<Session, FetchError> {
        let (mut config, client) = self.connect()?;
        let policy = Policy::within(self.settings.timeout);
        let token = match std::mem::replace(&mut config.token, TokenSource::Missing) {
            TokenSource::Token(t) | TokenSource::File(t) => t,
            TokenSource::AppRole { role_id, secret_id } => match self.kept() {
                Some(t) => t,
                None => {
                    let k = login(&client, &config, &role_id, &secret_id, &policy).await?;
                    let token = k.token.clone();
                    if let Ok(mut slot) = self.approle.lock() {
                        *slot = Some(k);
                    }
                    token
                }
            },
            TokenSource::Missing => {
                return Err(FetchError::new(
                    FetchClass::Unconfigured,
                    "no Vault token: set VAULT_TOKEN, log in (`vault login` writes \
                     ~/.vault-token), or set VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole",
                ))
            }
        };
        if http::credential(token.expose_secret()).is_none() {
            return Err(FetchError::new(
                FetchClass::Unconfigured,
                "the Vault token holds characters an HTTP header cannot carry",
            ));
        }
        Ok(Session {
            client,
            addr: config.addr,
            namespace: config.namespace,
            token,
            policy,
        })
    }

    /// The configuration from the environment, and a client that trusts what
    /// it says.
    fn connect(&self) -> Result<(Config, reqwest::Client), FetchError> {
        let mut config = Config::from_env(&self.warnings)?;
        let trust = std::mem::replace(&mut config.trust, Trust::System);
        let client = http::client(trust)?;
        Ok((config, client))
    }

    /// The kept AppRole token, if it is still in its lease.
    fn kept(&self) -> Option<SecretString> {
        let now = std::time::Instant::now();
        self.approle.lock().ok().and_then(|k| {
            k.as_ref()
                .filter(|k| k.until.is_none_or(|u| now < u))
                .map(|k| k.token.clone())
        })
    }

    /// After a 403: whether the kept AppRole token is no longer valid (revoked
    /// before its lease ended), asked of `auth/token/lookup-self`, which every
    /// valid token may read. Such a token is forgotten, so that the next call
    /// logs in again; a valid one stays, the 403 being the policy's.
    fn kept_was_revoked(&self) -> bool {
        if self.kept().is_none() {
            return false;
        }
        let lookup = async {
            let s = self.session().await.ok()?;
            Some(refused(&s.lookup_self().await))
        };
        let revoked = http::block_on(lookup, |_| None).unwrap_or(false);
        if revoked {
            if let Ok(mut k) = self.approle.lock() {
                *k = None;
            }
        }
        revoked
    }
}

impl VaultProvider {
    /// Where the token comes from, whether Vault answers `sys/health`, and who
    /// the token is (`auth/token/lookup-self`: its name, policies and time to
    /// live; never the token).
    async fn health(&self) -> Health {
        let (config, client) = match self.connect() {
            Ok(c) => c,
            Err(e) => {
                return Health {
                    credentials: "?".to_owned(),
                    reach: Reach::Failed(e),
                    identity: Ok(None),
                }
            }
        };
        let credentials = match &config.token {
            TokenSource::Token(_) => "VAULT_TOKEN".to_owned(),
            TokenSource::AppRole { .. } => "AppRole (VAULT_ROLE_ID, VAULT_SECRET_ID)".to_owned(),
            TokenSource::File(_) => "token file `~/.vault-token`".to_owned(),
            TokenSource::Missing => "none found".to_owned(),
        };
        let policy = Policy::within(self.settings.timeout);
        // Every answer of sys/health is final: its status is the state.
        let answer = http::send(
            &policy,
            || {
                client
                    .get(format!("{}/v1/sys/health", config.addr))
                    .header("X-Vault-Request", "true")
            },
            |_| true,
        )
        .await;
        let reach = match answer {
            Ok(_) => Reach::Reachable,
            // Standby, performance standby, DR secondary: answering.
            Err(Failure::Error(Problem::Status(a))) if matches!(a.status, 429 | 472 | 473) => {
                Reach::Reachable
            }
            Err(Failure::Error(Problem::Status(a))) if a.status == 503 => Reach::Failed(
                FetchError::new(FetchClass::Unreachable, "Vault is sealed"),
            ),
            Err(Failure::Error(Problem::Status(a))) if a.status == 501 => Reach::Failed(
                FetchError::new(FetchClass::Unconfigured, "Vault is not initialized"),
            ),
            Err(f) => Reach::Failed(http::transport_error(&f, "Vault", FIX)),
        };
        if matches!(reach, Reach::Failed(_)) {
            return Health {
                credentials,
                reach,
                identity: Ok(None),
            };
        }
        Health {
            credentials,
            reach,
            identity: self.whoami().await.map(Some),
        }
    }

    /// The token's display name, policies and time to live.
    async fn whoami(&self) -> Result<String, FetchError> {
        let s = self.session().await?;
        let answer = s.lookup_self().await;
        let json = match answer {
            Ok(a) => a.json().ok_or_else(unreadable)?,
            Err(_) if refused(&answer) => {
                return Err(FetchError::new(
                    FetchClass::Denied,
                    "Vault refused the token (invalid or expired): check VAULT_TOKEN or log in again",
                ))
            }
            Err(f) => return Err(status_error(&f, "auth/token/lookup-self")),
        };
        // Only these fields are read: the answer also holds the token itself.
        let data = &json["data"];
        let name = data["display_name"].as_str().unwrap_or("?");
        let policies: Vec<&str> = data["policies"]
            .as_array()
            .map(|p| p.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let ttl = match data["ttl"].as_u64() {
            Some(0) | None => "no expiry".to_owned(),
            Some(secs) => format!("ttl {}", human(secs)),
        };
        Ok(format!(
            "{name} (policies: {}; {ttl})",
            if policies.is_empty() {
                "none".to_owned()
            } else {
                policies.join(", ")
            }
        ))
    }
}

/// `3725` as `1h2m5s`.
fn human(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Whether a read of `path` (an API path below `/v1/`) would work, without
/// reading it: KV v2 metadata says whether the secret and version exist, and
/// `sys/capabilities-self` whether the token's policies allow the read (KV v1
/// has no metadata, so there only the policies are asked).
async fn readable(
    s: &Session,
    ns: Option<&str>,
    path: &str,
    version: Option<u64>,
    mount: &Mount,
) -> Readability {
    let rest = path
        .strip_prefix(mount.path.as_str())
        .and_then(|r| r.strip_prefix("/data/"))
        .filter(|_| mount.kv == 2);
    let note;
    if let Some(rest) = rest {
        let url = format!("{}/metadata/{rest}", mount.path);
        match http::send(&s.policy, || s.get(ns, &url), sealed).await {
            Ok(a) => {
                let json = a.json().unwrap_or(Value::Null);
                let meta = &json["data"];
                let Some(v) = version.or_else(|| meta["current_version"].as_u64()) else {
                    return Readability::Failed(FetchError::new(
                        FetchClass::NotFound,
                        format!("`{path}` has no version"),
                    ));
                };
                let this = &meta["versions"][v.to_string()];
                let gone = |what: &str| {
                    Readability::Failed(FetchError::new(
                        FetchClass::NotFound,
                        format!("`{path}`: version {v} {what}"),
                    ))
                };
                if this.is_null() {
                    return gone("does not exist");
                }
                if this["destroyed"].as_bool() == Some(true) {
                    return gone("was destroyed");
                }
                if this["deletion_time"].as_str().is_some_and(|t| !t.is_empty()) {
                    return gone("was deleted");
                }
                note = Some(format!("version {v}"));
            }
            Err(Failure::Error(Problem::Status(a))) if a.status == 404 => {
                return Readability::Failed(FetchError::new(
                    FetchClass::NotFound,
                    format!("`{path}` does not exist in Vault"),
                ))
            }
            // A policy may grant `data/` reads and not `metadata/` ones: the
            // policies are asked below.
            Err(Failure::Error(Problem::Status(a))) if a.status == 403 => {
                note = Some("its metadata may not be read, so its existence is not checked".into());
            }
            Err(f) => return Readability::Failed(status_error(&f, path)),
        }
    } else {
        note = Some("KV v1 has no metadata, so its existence is not checked".to_owned());
    }
    match capabilities(s, ns, path).await {
        Ok(caps) if caps.iter().any(|c| c == "read" || c == "root") => {
            Readability::Readable(note)
        }
        Ok(_) => Readability::Failed(FetchError::new(
            FetchClass::Denied,
            format!("the token's policies do not allow reading `{path}`"),
        )),
        Err(e) => Readability::Failed(e),
    }
}

/// The token's capabilities on `path`, from `sys/capabilities-self`.
async fn capabilities(s: &Session, ns: Option<&str>, path: &str) -> Result<Vec<String>, FetchError> {
    let body = serde_json::json!({ "paths": [path] }).to_string();
    let answer = http::send(
        &s.policy,
        || {
            s.request(reqwest::Method::POST, ns, "sys/capabilities-self")
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        },
        sealed,
    )
    .await;
    let json = match answer {
        Ok(a) => a.json().ok_or_else(unreadable)?,
        Err(f) => return Err(status_error(&f, "sys/capabilities-self")),
    };
    // Older servers answer `capabilities`, newer ones also one list per path,
    // at the top and under `data`.
    let list = [&json[path], &json["capabilities"], &json["data"][path], &json["data"]["capabilities"]]
        .into_iter()
        .find_map(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    Ok(list)
}

/// An AppRole token is revoked when the provider ends (a render's end, a
/// watch loop's stop), so that no token outlives the run that logged in.
impl Drop for VaultProvider {
    fn drop(&mut self) {
        let Some(token) = self.approle.get_mut().ok().and_then(Option::take) else {
            return;
        };
        let revoke = async {
            let (config, client) = self.connect().ok()?;
            let s = Session {
                client,
                addr: config.addr,
                namespace: config.namespace,
                token: token.token,
                policy: Policy::within(std::time::Duration::from_secs(2)),
            };
            let ns = s.namespace.as_deref();
            // At most one short try: exit is not held up by a slow Vault.
            s.request(reqwest::Method::POST, ns, "auth/token/revoke-self")
                .timeout(s.policy.attempt_timeout)
                .send()
                .await
                .ok()
        };
        let _ = http::block_on(revoke, |_| None);
    }
}

impl Provider for VaultProvider {
    type Locator = VaultLocator;
    const REMOTE: bool = true;
    const CREDENTIAL_VARS: &'static [&'static str] = &["VAULT_TOKEN", "VAULT_SECRET_ID"];
    const LONG_FIELDS: &'static [&'static str] =
        &["path", "key", "version", "namespace", "mount", "kv"];

    fn parse(text: &str, _: &Path) -> Result<VaultLocator, LocatorError> {
        VaultLocator::parse(text)
    }

    fn from_fields(fields: &Fields<'_>, _: &Path) -> Result<VaultLocator, LocatorError> {
        VaultLocator::from_fields(fields)
    }

    fn fetch_key(locator: &VaultLocator) -> VaultLocator {
        // Every key of a Vault secret comes from one read.
        VaultLocator {
            key: String::new(),
            ..locator.clone()
        }
    }

    fn json_key(locator: &VaultLocator) -> Option<&str> {
        Some(&locator.key)
    }

    fn start(settings: Settings) -> Self {
        VaultProvider {
            settings,
            warnings: Mutex::new(Vec::new()),
            approle: Mutex::new(None),
            mounts: Mutex::new(Vec::new()),
        }
    }

    fn fetch(&self, requests: &[&VaultLocator]) -> Vec<Result<SecretBytes, FetchError>> {
        let fetch = || {
            self.run(
                requests,
                async |s, (ns, path, version, mount)| {
                    read(s, ns.as_deref(), &path, version, mount.kv).await
                },
                Err,
            )
        };
        let results = fetch();
        let refused = results
            .iter()
            .any(|r| r.as_ref().is_err_and(|e| e.class == FetchClass::Denied));
        if refused && self.kept_was_revoked() {
            return fetch();
        }
        results
    }

    fn versions(&self, requests: &[&VaultLocator]) -> Vec<VersionCheck> {
        let check = || {
            self.run(
                requests,
                async |s, (ns, path, version, mount)| {
                    current(s, ns.as_deref(), &path, version, &mount).await
                },
                |_| VersionCheck::Unknown,
            )
        };
        let checks = check();
        // A 403 means "no metadata permission" only for a token that is valid.
        if checks.contains(&VersionCheck::NotOffered) && self.kept_was_revoked() {
            return check();
        }
        checks
    }

    fn diagnose(&self, requests: &[&VaultLocator]) -> (Health, Vec<Readability>) {
        let health = http::block_on(self.health(), |e| Health {
            credentials: "?".to_owned(),
            reach: Reach::Failed(FetchError::new(
                FetchClass::Unreachable,
                format!("cannot start the Vault client: {e}"),
            )),
            identity: Ok(None),
        });
        if requests.is_empty() {
            return (health, Vec::new());
        }
        let each = self.run(
            requests,
            async |s, (ns, path, version, mount)| {
                readable(s, ns.as_deref(), &path, version, &mount).await
            },
            Readability::Failed,
        );
        (health, each)
    }

    fn configured() -> Option<String> {
        env("VAULT_ADDR").map(|_| "VAULT_ADDR is set".to_owned())
    }

    fn warnings(&self, diags: &mut Diagnostics) {
        let taken = self.warnings.lock().map(|mut w| std::mem::take(&mut *w));
        for w in taken.unwrap_or_default() {
            diags.warn(w);
        }
    }
}

/// Where a token comes from, in the vault CLI's order.
enum TokenSource {
    Token(SecretString),
    AppRole {
        role_id: SecretString,
        secret_id: SecretString,
    },
    File(SecretString),
    Missing,
}

struct Config {
    addr: String,
    namespace: Option<String>,
    trust: Trust,
    token: TokenSource,
}

impl Config {
    fn from_env(warnings: &Mutex<Vec<String>>) -> Result<Config, FetchError> {
        let addr = env("VAULT_ADDR")
            .unwrap_or_else(|| "https://127.0.0.1:8200".into())
            .trim_end_matches('/')
            .to_owned();
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(FetchError::new(
                FetchClass::Unconfigured,
                format!("VAULT_ADDR `{addr}` is not an http:// or https:// address"),
            ));
        }
        let skip = env("VAULT_SKIP_VERIFY")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "t" | "true" | "yes"));
        let trust = if skip {
            if let Ok(mut w) = warnings.lock() {
                w.push("VAULT_SKIP_VERIFY is set: Vault's TLS certificate is not verified".into());
            }
            Trust::Anything
        } else if let Some(f) = env("VAULT_CACERT") {
            Trust::Only(http::load_pem(std::path::Path::new(&f), "VAULT_CACERT")?)
        } else if let Some(d) = env("VAULT_CAPATH") {
            Trust::Only(http::load_pem(std::path::Path::new(&d), "VAULT_CAPATH")?)
        } else {
            Trust::System
        };
        let token = if let Some(t) = env("VAULT_TOKEN") {
            TokenSource::Token(SecretString::from(t.trim().to_owned()))
        } else if let (Some(r), Some(s)) = (env("VAULT_ROLE_ID"), env("VAULT_SECRET_ID")) {
            TokenSource::AppRole {
                role_id: SecretString::from(r),
                secret_id: SecretString::from(s),
            }
        } else if env("VAULT_ROLE_ID").is_some() || env("VAULT_SECRET_ID").is_some() {
            // Half an AppRole must not quietly become whoever last ran `vault login`.
            return Err(FetchError::new(
                FetchClass::Unconfigured,
                "AppRole needs both VAULT_ROLE_ID and VAULT_SECRET_ID; only one is set",
            ));
        } else {
            let file = std::env::var_os("HOME")
                .map(|h| std::path::Path::new(&h).join(".vault-token"))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty());
            match file {
                Some(t) => TokenSource::File(SecretString::from(t)),
                None => TokenSource::Missing,
            }
        };
        Ok(Config {
            addr,
            namespace: env("VAULT_NAMESPACE"),
            trust,
            token,
        })
    }
}

/// A KV mount: its path (no slashes at the ends) and version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Mount {
    path: String,
    kv: u8,
}

/// One read: namespace, API path (below `/v1/`), version, and the mount.
type Read = (Option<String>, String, Option<u64>, Mount);

/// Everything one run needs to talk to Vault.
struct Session {
    client: reqwest::Client,
    addr: String,
    /// `VAULT_NAMESPACE`, for locators that name none.
    namespace: Option<String>,
    token: SecretString,
    policy: Policy,
}

/// Whether Vault refused the token itself (401 or 403).
fn refused(answer: &Result<Answer, Failure<Problem>>) -> bool {
    matches!(answer, Err(Failure::Error(Problem::Status(a))) if a.status == 401 || a.status == 403)
}

impl Session {
    /// `auth/token/lookup-self`, which every valid token may read: the
    /// token's own name, policies and time to live (and the token itself).
    async fn lookup_self(&self) -> Result<Answer, Failure<Problem>> {
        let ns = self.namespace.as_deref();
        http::send(
            &self.policy,
            || self.get(ns, "auth/token/lookup-self"),
            sealed,
        )
        .await
    }

    fn get(&self, namespace: Option<&str>, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, namespace, path)
    }

    fn request(
        &self,
        method: reqwest::Method,
        namespace: Option<&str>,
        path: &str,
    ) -> reqwest::RequestBuilder {
        // Checked before the session was made; empty only if that changed.
        let token = http::credential(self.token.expose_secret())
            .unwrap_or_else(|| reqwest::header::HeaderValue::from_static(""));
        let mut r = self
            .client
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", token)
            .header("X-Vault-Request", "true");
        if let Some(ns) = namespace {
            r = r.header("X-Vault-Namespace", ns);
        }
        r
    }
}

const FIX: &str = "check VAULT_ADDR and VAULT_CACERT";

/// The distinct reads the locators need, each with the requests it answers;
/// and the requests that failed before any read (mount discovery, bad paths).
async fn plan(
    session: &Session,
    locators: &[&VaultLocator],
    mounts: &mut Vec<(Option<String>, Mount)>,
) -> (HashMap<Read, Vec<usize>>, Vec<Option<FetchError>>) {
    let mut failed: Vec<Option<FetchError>> = locators.iter().map(|_| None).collect();
    // Mount discovery, cached per namespace: at most one question per mount.
    let mut reads: HashMap<Read, Vec<usize>> = HashMap::new();
    for (i, l) in locators.iter().enumerate() {
        let ns = l.namespace.clone().or_else(|| session.namespace.clone());
        let mount = match known_mount(l) {
            Some(m) => m,
            None => {
                let cached = mounts
                    .iter()
                    .find(|(n, m)| *n == ns && under(&l.path, &m.path));
                match cached {
                    Some((_, m)) => m.clone(),
                    None => match discover(session, ns.as_deref(), &l.path).await {
                        Ok(m) => {
                            mounts.push((ns.clone(), m.clone()));
                            m
                        }
                        Err(e) => {
                            failed[i] = Some(e);
                            continue;
                        }
                    },
                }
            }
        };
        match api_path(l, &mount) {
            Ok(path) => reads
                .entry((ns, path, l.version, mount))
                .or_default()
                .push(i),
            Err(e) => failed[i] = Some(e),
        }
    }
    (reads, failed)
}

/// The mount when the locator leaves no doubt: given outright, or the KV v2
/// API form `MOUNT/data/…`.
fn known_mount(l: &VaultLocator) -> Option<Mount> {
    match (&l.mount, l.kv) {
        (Some(m), Some(kv)) => Some(Mount {
            path: m.trim_matches('/').to_owned(),
            kv,
        }),
        // `MOUNT/data/…` names its mount; any other shape may be a nested mount.
        (None, Some(2)) => {
            let mut segs = l.path.split('/');
            let first = segs.next()?;
            (segs.next() == Some("data")).then(|| Mount {
                path: first.to_owned(),
                kv: 2,
            })
        }
        _ => None,
    }
}

/// The API path of a read below `/v1/`.
fn api_path(l: &VaultLocator, m: &Mount) -> Result<String, FetchError> {
    let rest = if under(&l.path, &m.path) {
        l.path.trim_matches('/')[m.path.len()..].trim_start_matches('/')
    } else {
        ""
    };
    let rest = if m.kv == 2 {
        rest.strip_prefix("data/").unwrap_or(rest)
    } else {
        rest
    };
    if rest.is_empty() {
        return Err(FetchError::new(
            FetchClass::Invalid,
            format!(
                "`{}` names the mount `{}` itself, not a secret in it",
                l.path, m.path
            ),
        ));
    }
    if m.kv == 1 && l.version.is_some() {
        return Err(FetchError::new(
            FetchClass::Invalid,
            format!("`{}` is a KV v1 mount, which has no versions", m.path),
        ));
    }
    Ok(if m.kv == 2 {
        format!("{}/data/{rest}", m.path)
    } else {
        format!("{}/{rest}", m.path)
    })
}

/// Asks Vault which mount holds `path` and its KV version, as `vault kv` does.
async fn discover(s: &Session, ns: Option<&str>, path: &str) -> Result<Mount, FetchError> {
    let url = format!("sys/internal/ui/mounts/{path}");
    let answer = http::send(&s.policy, || s.get(ns, &url), sealed).await;
    match answer {
        Ok(a) => {
            let json = a.json().ok_or_else(unreadable)?;
            let data = &json["data"];
            let mount = data["path"]
                .as_str()
                .unwrap_or("")
                .trim_matches('/')
                .to_owned();
            let kind = data["type"].as_str().unwrap_or("");
            if mount.is_empty() {
                return Err(FetchError::new(
                    FetchClass::NotFound,
                    format!("no secrets engine is mounted at `{path}`"),
                ));
            }
            if kind != "kv" && kind != "generic" {
                return Err(FetchError::new(
                    FetchClass::Invalid,
                    format!("`{mount}` is not a KV secrets engine"),
                ));
            }
            let kv = if data["options"]["version"].as_str() == Some("2") {
                2
            } else {
                1
            };
            Ok(Mount { path: mount, kv })
        }
        // Old servers without the endpoint: a KV v1 mount at the first segment,
        // as the vault CLI assumes.
        Err(Failure::Error(Problem::Status(a))) if a.status == 404 && !has_errors(&a) => {
            Ok(Mount {
                path: path.split('/').next().unwrap_or(path).to_owned(),
                kv: 1,
            })
        }
        Err(Failure::Error(Problem::Status(a))) if a.status == 400 || a.status == 404 => {
            Err(FetchError::new(
                FetchClass::NotFound,
                format!("no secrets engine is mounted at `{path}`"),
            ))
        }
        // OpenBao answers 403 for a path under no mount, even to a root token.
        Err(Failure::Error(Problem::Status(a))) if a.status == 403 => Err(FetchError::new(
            FetchClass::Denied,
            format!(
                "Vault refused to say which mount holds `{path}`: no secrets engine is \
                 mounted there, or the token is invalid or may not read it"
            ),
        )),
        Err(f) => Err(status_error(&f, path)),
    }
}

/// Reads one secret; its data object, as JSON bytes.
async fn read(
    s: &Session,
    ns: Option<&str>,
    path: &str,
    version: Option<u64>,
    kv: u8,
) -> Result<SecretBytes, FetchError> {
    let url = match version {
        Some(v) => format!("{path}?version={v}"),
        None => path.to_owned(),
    };
    let kv2 = kv == 2;
    let answer = http::send(&s.policy, || s.get(ns, &url), sealed).await;
    let json = match answer {
        Ok(a) => a.json().ok_or_else(unreadable)?,
        Err(Failure::Error(Problem::Status(a))) if a.status == 404 => {
            return Err(missing(&a.json().unwrap_or(Value::Null), path, version))
        }
        Err(f) => return Err(status_error(&f, path)),
    };
    let data = if kv2 {
        &json["data"]["data"]
    } else {
        &json["data"]
    };
    if kv2 && data.is_null() {
        return Err(missing(&json, path, version));
    }
    if !data.is_object() {
        return Err(FetchError::new(
            FetchClass::Invalid,
            format!("Vault's answer for `{path}` holds no key/value data"),
        ));
    }
    let version = kv2
        .then(|| json["data"]["metadata"]["version"].as_u64())
        .flatten()
        .map(|v| v.to_string());
    serde_json::to_vec(data)
        .map(|d| SecretBytes::new(d).with_version(version))
        .map_err(|_| FetchError::new(FetchClass::Invalid, "unreadable answer from Vault"))
}

/// The version a KV v2 read of `path` would return now, from the secret's
/// metadata (no value is read). A version deleted or destroyed is `Unknown`,
/// so that the fetch reports it.
async fn current(
    s: &Session,
    ns: Option<&str>,
    path: &str,
    version: Option<u64>,
    mount: &Mount,
) -> VersionCheck {
    let rest = path
        .strip_prefix(mount.path.as_str())
        .and_then(|r| r.strip_prefix("/data/"));
    let Some(rest) = rest.filter(|_| mount.kv == 2) else {
        return VersionCheck::NotOffered;
    };
    let url = format!("{}/metadata/{rest}", mount.path);
    let json = match http::send(&s.policy, || s.get(ns, &url), sealed).await {
        Ok(a) => a.json(),
        // A policy may grant `data/` reads and not `metadata/` ones.
        Err(Failure::Error(Problem::Status(a))) if a.status == 403 => {
            return VersionCheck::NotOffered
        }
        Err(_) => None,
    };
    let Some(meta) = json.as_ref().map(|j| &j["data"]) else {
        return VersionCheck::Unknown;
    };
    let Some(v) = version.or_else(|| meta["current_version"].as_u64()) else {
        return VersionCheck::Unknown;
    };
    let this = &meta["versions"][v.to_string()];
    let gone = this.is_null()
        || this["destroyed"].as_bool() == Some(true)
        || this["deletion_time"]
            .as_str()
            .is_some_and(|t| !t.is_empty());
    if gone {
        VersionCheck::Unknown
    } else {
        VersionCheck::Current(v.to_string())
    }
}

/// An answer that is not JSON: not Vault, or a proxy's page.
fn unreadable() -> FetchError {
    FetchError::new(
        FetchClass::Unreachable,
        "Vault's answer is not JSON (is VAULT_ADDR a Vault server?)",
    )
}

/// A 404 (or an empty KV v2 answer): a path that does not exist, or a version
/// deleted or destroyed.
fn missing(json: &Value, path: &str, version: Option<u64>) -> FetchError {
    let meta = &json["data"]["metadata"];
    let which = version.map_or_else(
        || "its current version".to_owned(),
        |v| format!("version {v}"),
    );
    let what = if meta["destroyed"].as_bool() == Some(true) {
        format!("`{path}`: {which} was destroyed")
    } else if meta["deletion_time"]
        .as_str()
        .is_some_and(|t| !t.is_empty())
    {
        format!("`{path}`: {which} was deleted")
    } else if version.is_some() {
        format!("`{path}` has no {which} (or does not exist)")
    } else {
        format!("`{path}` does not exist in Vault")
    };
    FetchError::new(FetchClass::NotFound, what)
}

/// Whether the answer is "Vault is sealed", which waiting will not mend.
fn sealed(a: &Answer) -> bool {
    a.status == 503 && error_text(a).contains("sealed")
}

fn has_errors(a: &Answer) -> bool {
    a.json()
        .is_some_and(|j| j["errors"].as_array().is_some_and(|e| !e.is_empty()))
}

/// Vault's `errors` strings, lower-cased, for classification only.
fn error_text(a: &Answer) -> String {
    a.json()
        .and_then(|j| {
            j["errors"].as_array().map(|e| {
                e.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_ascii_lowercase()
            })
        })
        .unwrap_or_default()
}

/// Our words for a failed request about `path`.
fn status_error(f: &Failure<Problem>, path: &str) -> FetchError {
    let Failure::Error(Problem::Status(a)) = f else {
        return http::transport_error(f, "Vault", FIX);
    };
    match a.status {
        403 if error_text(a).contains("invalid token") => FetchError::new(
            FetchClass::Denied,
            "Vault refused the token (invalid or expired): check VAULT_TOKEN or log in again",
        ),
        // Vault answers a bad token and a missing grant alike.
        401 | 403 => FetchError::new(
            FetchClass::Denied,
            format!(
                "permission denied reading `{path}`: the token is invalid or expired, or its \
                 policies do not allow it"
            ),
        ),
        503 if sealed(a) => FetchError::new(FetchClass::Unreachable, "Vault is sealed"),
        400 => FetchError::new(
            FetchClass::Invalid,
            format!("Vault refused the request for `{path}` as invalid (HTTP 400)"),
        ),
        _ => http::transport_error(f, "Vault", FIX),
    }
}

/// Logs in with AppRole; the token it returns.
async fn login(
    client: &reqwest::Client,
    config: &Config,
    role_id: &SecretString,
    secret_id: &SecretString,
    policy: &Policy,
) -> Result<Kept, FetchError> {
    let body = serde_json::json!({
        "role_id": role_id.expose_secret(),
        "secret_id": secret_id.expose_secret(),
    })
    .to_string();
    let make = || {
        let mut r = client
            .post(format!("{}/v1/auth/approle/login", config.addr))
            .header("X-Vault-Request", "true")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(ns) = &config.namespace {
            r = r.header("X-Vault-Namespace", ns);
        }
        r
    };
    match http::send(policy, make, sealed).await {
        Ok(a) => {
            let json = a.json().unwrap_or(Value::Null);
            let token = json["auth"]["client_token"]
                .as_str()
                .map(|t| SecretString::from(t.to_owned()))
                .ok_or_else(|| {
                    FetchError::new(FetchClass::Denied, "the AppRole login returned no token")
                })?;
            // A lease of 0 does not expire.
            let until = json["auth"]["lease_duration"]
                .as_u64()
                .filter(|s| *s > 0)
                .map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s * 9 / 10));
            Ok(Kept { token, until })
        }
        Err(Failure::Error(Problem::Status(a)))
            if (400..500).contains(&a.status) && a.status != 429 =>
        {
            Err(FetchError::new(
                FetchClass::Denied,
                "the AppRole login was refused: check VAULT_ROLE_ID and VAULT_SECRET_ID",
            ))
        }
        Err(f) => Err(status_error(&f, "auth/approle/login")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv2_and_kv1() {
        let l = VaultLocator::parse("secret/data/prod/api-keys/slack_token").unwrap_or_default();
        assert_eq!(
            (l.path.as_str(), l.key.as_str(), l.kv),
            ("secret/data/prod/api-keys", "slack_token", Some(2))
        );
        let l =
            VaultLocator::parse("kv/app/password?version=3&namespace=team-a").unwrap_or_default();
        assert_eq!(
            (l.path.as_str(), l.key.as_str(), l.kv),
            ("kv/app", "password", None)
        );
        assert_eq!(
            (l.version, l.namespace.as_deref()),
            (Some(3), Some("team-a"))
        );
    }

    #[test]
    fn ttls_read_as_hours_minutes_and_seconds() {
        assert_eq!(human(0), "0s");
        assert_eq!(human(59), "59s");
        assert_eq!(human(600), "10m");
        assert_eq!(human(3725), "1h2m5s");
        assert_eq!(human(7200), "2h");
    }

    #[test]
    fn errors() {
        assert!(VaultLocator::parse("secret/key").is_err());
        assert!(VaultLocator::parse("secret//x/k").is_err());
        assert!(VaultLocator::parse("a/b/c?version=0").is_err());
        assert!(VaultLocator::parse("a/b/c?version=x").is_err());
        assert!(VaultLocator::parse("a/b/c?ver=1").is_err());
    }

    #[test]
    fn mounts_and_api_paths() {
        let l = VaultLocator::parse("secret/data/prod/app/k").unwrap_or_default();
        let m = known_mount(&l).unwrap_or(Mount {
            path: String::new(),
            kv: 0,
        });
        assert_eq!((m.path.as_str(), m.kv), ("secret", 2));
        assert_eq!(
            api_path(&l, &m).ok().as_deref(),
            Some("secret/data/prod/app")
        );
        // Left open: discovered; a KV v2 mount gets `data/`, v1 does not.
        let l = VaultLocator::parse("team/kv/app/k").unwrap_or_default();
        assert!(known_mount(&l).is_none());
        let v2 = Mount {
            path: "team/kv".into(),
            kv: 2,
        };
        let v1 = Mount {
            path: "team/kv".into(),
            kv: 1,
        };
        assert_eq!(api_path(&l, &v2).ok().as_deref(), Some("team/kv/data/app"));
        assert_eq!(api_path(&l, &v1).ok().as_deref(), Some("team/kv/app"));
        let pinned = VaultLocator::parse("team/kv/app/k?version=2").unwrap_or_default();
        assert!(api_path(&pinned, &v1).is_err(), "KV v1 has no versions");
        let l = VaultLocator {
            path: "team/kv".into(),
            key: "k".into(),
            ..Default::default()
        };
        assert!(api_path(&l, &v2).is_err(), "the mount itself");
        // Mounts are whole segments.
        let l = VaultLocator {
            path: "team/kvx/app".into(),
            key: "k".into(),
            ..Default::default()
        };
        assert!(api_path(&l, &v2).is_err());
        assert!(VaultLocator::parse("secret/data/a#b/k").is_err());
        assert!(VaultLocator::parse("secret/data/a%2F/k").is_err());
    }

    #[test]
    fn deleted_and_destroyed_versions_are_named() {
        let answer =
            |meta: serde_json::Value| serde_json::json!({"data": {"data": null, "metadata": meta}});
        let e = missing(
            &answer(
                serde_json::json!({"deletion_time": "2026-01-01T00:00:00Z", "destroyed": false}),
            ),
            "secret/data/app",
            Some(1),
        );
        assert!(e.message.contains("version 1 was deleted") && e.class == FetchClass::NotFound);
        let e = missing(
            &answer(serde_json::json!({"deletion_time": "", "destroyed": true})),
            "secret/data/app",
            None,
        );
        assert!(e.message.contains("current version was destroyed"));
        let plain = serde_json::json!({"errors": []});
        assert!(missing(&plain, "secret/data/x", None)
            .message
            .contains("does not exist"));
        assert!(missing(&plain, "secret/data/x", Some(9))
            .message
            .contains("has no version 9"));
    }
}
