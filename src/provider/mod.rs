//! Secret sources behind one trait.
//!
//! A [`Locator`] says where one secret lives; [`Locator::fetch_key`] says which
//! fetch it needs, so that many references (and many JSON keys) share one request.
//! Each provider file parses and validates its own locator grammar, so a typo in an
//! `aws:` block is an error with a position before anything is fetched.
//!
//! Providers start lazily: the registry builds one only when a request for it
//! exists, so a config of env, file and inline secrets never starts an SDK.

pub mod aws;
pub mod env;
pub mod file;
pub(crate) mod http;
pub mod kind;
pub mod onepassword;
pub(crate) mod retry;
pub mod vault;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::secret::SecretBytes;

pub use kind::ProviderKind;

/// Every provider's own credential variables, which `exec` removes from the
/// command's environment unless `--pass-credentials`. AWS credentials stay: an
/// application commonly runs with the same role, and the SDK's chain has no
/// single variable that is keyfill's alone.
pub fn credential_vars() -> impl Iterator<Item = &'static str> {
    [vault::CREDENTIAL_VARS, onepassword::CREDENTIAL_VARS]
        .into_iter()
        .flatten()
        .copied()
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one secret lives, validated.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Locator {
    /// AWS Secrets Manager.
    Aws(aws::AwsLocator),
    /// Vault KV.
    Vault(vault::VaultLocator),
    /// 1Password.
    OnePassword(onepassword::OpLocator),
    /// Environment variable.
    Env(env::EnvLocator),
    /// File.
    File(file::FileLocator),
}

impl Locator {
    /// Parses a direct reference's locator text for `kind`; relative file paths are
    /// resolved against `base_dir`.
    pub fn parse(kind: ProviderKind, text: &str, base_dir: &Path) -> Result<Locator, String> {
        Ok(match kind {
            ProviderKind::Aws => Locator::Aws(aws::AwsLocator::parse(text)?),
            ProviderKind::Vault => Locator::Vault(vault::VaultLocator::parse(text)?),
            ProviderKind::OnePassword => Locator::OnePassword(onepassword::OpLocator::parse(text)?),
            ProviderKind::Env => Locator::Env(env::EnvLocator::parse(text)?),
            ProviderKind::File => Locator::File(file::FileLocator::parse(text, base_dir)?),
        })
    }

    /// The provider.
    pub fn kind(&self) -> ProviderKind {
        match self {
            Locator::Aws(_) => ProviderKind::Aws,
            Locator::Vault(_) => ProviderKind::Vault,
            Locator::OnePassword(_) => ProviderKind::OnePassword,
            Locator::Env(_) => ProviderKind::Env,
            Locator::File(_) => ProviderKind::File,
        }
    }

    /// The request this locator needs; locators differing only in a JSON key (or
    /// in spelling out the default version stage) share it.
    pub fn fetch_key(&self) -> Locator {
        match self {
            Locator::Aws(a) => Locator::Aws(a.fetch_key()),
            // Every key of a Vault secret comes from one read.
            Locator::Vault(v) => Locator::Vault(vault::VaultLocator {
                key: String::new(),
                ..v.clone()
            }),
            other => other.clone(),
        }
    }

    /// A JSON key to extract from the fetched value, if the locator names one.
    pub fn json_key(&self) -> Option<&str> {
        match self {
            Locator::Aws(a) => a.key.as_deref(),
            Locator::Vault(v) => Some(&v.key),
            _ => None,
        }
    }
}

impl fmt::Display for Locator {
    // Locators are addresses, not values: they may be shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Locator::Aws(a) => write!(f, "aws|{a}"),
            Locator::Vault(v) => write!(f, "vault|{v}"),
            Locator::OnePassword(o) => write!(f, "onepassword|{o}"),
            Locator::Env(e) => write!(f, "env|{}", e.var),
            Locator::File(p) => write!(f, "file|{}", p.path.display()),
        }
    }
}

/// Why a fetch failed; decides the exit status and whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchClass {
    /// The secret, version, key, variable or file does not exist (exit 4).
    NotFound,
    /// Credentials were refused (exit 5).
    Denied,
    /// The fetched content is unusable (exit 3).
    Invalid,
    /// The provider could not be reached or is not available (exit 5).
    Unreachable,
    /// The provider throttled us past the deadline (exit 5).
    Throttled,
    /// The provider's client is not configured, e.g. no AWS region (exit 5).
    Unconfigured,
}

impl FetchClass {
    /// The exit status for this class.
    pub fn exit(self) -> crate::error::Exit {
        use crate::error::Exit;
        match self {
            FetchClass::NotFound => Exit::NotFound,
            FetchClass::Invalid => Exit::Invalid,
            FetchClass::Denied
            | FetchClass::Unreachable
            | FetchClass::Throttled
            | FetchClass::Unconfigured => Exit::Provider,
        }
    }

    /// Short word for reports.
    pub fn word(self) -> &'static str {
        match self {
            FetchClass::NotFound => "not found",
            FetchClass::Denied => "access denied",
            FetchClass::Invalid => "invalid",
            FetchClass::Unreachable => "unreachable",
            FetchClass::Throttled => "throttled",
            FetchClass::Unconfigured => "not configured",
        }
    }
}

/// A failed fetch. The message never holds a value or a provider's response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchError {
    /// Class of failure.
    pub class: FetchClass,
    /// What happened, in our words.
    pub message: String,
}

impl FetchError {
    /// Builds an error.
    pub fn new(class: FetchClass, message: impl Into<String>) -> Self {
        FetchError {
            class,
            message: message.into(),
        }
    }
}

/// Default of `--max-secret-size`: 16 MiB, far beyond any real secret.
pub const DEFAULT_MAX_SECRET_SIZE: u64 = 16 * 1024 * 1024;

/// How remote providers fetch: shared by every provider of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Most requests in flight at once, per provider.
    pub concurrency: usize,
    /// Deadline for all of a provider's fetches, retries included.
    pub timeout: Duration,
    /// Largest `file:` secret read, in bytes.
    pub max_secret_size: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 8,
            timeout: Duration::from_secs(30),
            max_secret_size: DEFAULT_MAX_SECRET_SIZE,
        }
    }
}

/// A source of secrets. `fetch` receives every distinct request for this provider
/// in one call, so implementations can batch and run requests concurrently.
/// Providers of different kinds fetch at the same time, on separate threads.
pub trait Provider: Send + Sync {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;

    /// Fetches every locator; the result has one entry per request, in order.
    fn fetch(&self, requests: &[&Locator]) -> Vec<Result<SecretBytes, FetchError>>;

    /// Warnings from the last fetch (an insecure setting in use, say), taken once.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// The version each locator's value has now, asked without reading values
    /// (AWS `DescribeSecret`, Vault KV v2 metadata), so that a refresh fetches
    /// only what changed. One entry per request, in order. By default the
    /// provider has no such check.
    fn versions(&self, requests: &[&Locator]) -> Vec<VersionCheck> {
        requests.iter().map(|_| VersionCheck::NotOffered).collect()
    }
}

/// What a version check found for one locator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionCheck {
    /// The value now has this version id (as [`SecretBytes::version`] gives it).
    Current(String),
    /// The check failed or could not tell (not found, a transient fault): fetch.
    Unknown,
    /// No cheap check for this locator (KV v1, a policy without the metadata
    /// permission): fetch, and do not ask again.
    NotOffered,
}

/// Builds providers on first use and keeps them for the run.
#[derive(Default)]
pub struct Registry {
    built: HashMap<ProviderKind, Box<dyn Provider>>,
    settings: Settings,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("built", &self.built.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// A registry whose remote providers fetch with `settings`.
    pub fn new(settings: Settings) -> Self {
        Registry {
            built: HashMap::new(),
            settings,
        }
    }

    /// The provider for `kind`, started now if it was not yet.
    pub fn get(&mut self, kind: ProviderKind) -> &dyn Provider {
        self.start(kind);
        &*self.built[&kind]
    }

    /// Starts the provider for `kind` if it was not yet.
    pub fn start(&mut self, kind: ProviderKind) {
        let settings = self.settings;
        self.built
            .entry(kind)
            .or_insert_with(|| -> Box<dyn Provider> {
                match kind {
                    ProviderKind::Env => Box::new(env::EnvProvider),
                    ProviderKind::File => Box::new(file::FileProvider {
                        limit: settings.max_secret_size,
                        timeout: settings.timeout,
                    }),
                    ProviderKind::Aws => Box::new(aws::AwsProvider::new(settings)),
                    ProviderKind::Vault => Box::new(vault::VaultProvider::new(settings)),
                    ProviderKind::OnePassword => {
                        Box::new(onepassword::OnePasswordProvider::new(settings))
                    }
                }
            });
    }

    /// A provider that was started.
    pub fn started_provider(&self, kind: ProviderKind) -> Option<&dyn Provider> {
        self.built.get(&kind).map(|p| &**p)
    }

    /// Every started provider's warnings, taken once.
    pub fn take_warnings(&self) -> Vec<String> {
        let mut kinds: Vec<_> = self.built.keys().copied().collect();
        kinds.sort();
        kinds
            .into_iter()
            .flat_map(|k| self.built[&k].warnings())
            .collect()
    }

    /// Which providers were started (for tests of lazy start-up).
    pub fn started(&self) -> Vec<ProviderKind> {
        let mut v: Vec<_> = self.built.keys().copied().collect();
        v.sort();
        v
    }
}

/// The first error of type `T` among `e`'s causes. `io::Error` hides the error it
/// wraps from `source()`, so that one is looked into as well.
pub(crate) fn cause<'e, T: std::error::Error + 'static>(
    e: &'e (dyn std::error::Error + 'static),
) -> Option<&'e T> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = next {
        if let Some(t) = c.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(t) = cause::<T>(inner) {
                return Some(t);
            }
        }
        next = c.source();
    }
    None
}

/// Splits `a=1&b=2` into pairs, refusing unknown and repeated keys.
pub(crate) fn parse_query<'a>(
    query: &'a str,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("query parameter `{pair}` needs a value (`{pair}=…`)"))?;
        if !allowed.contains(&k) {
            return Err(format!(
                "unknown query parameter `{k}` (known: {})",
                allowed.join(", ")
            ));
        }
        if v.is_empty() {
            return Err(format!("query parameter `{k}` has an empty value"));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(format!("query parameter `{k}` is given twice"));
        }
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_strips_each_providers_own_credentials() {
        let vars: Vec<&str> = credential_vars().collect();
        assert_eq!(
            vars,
            [
                "VAULT_TOKEN",
                "VAULT_SECRET_ID",
                "OP_CONNECT_TOKEN",
                "OP_SERVICE_ACCOUNT_TOKEN"
            ]
        );
    }

    #[test]
    fn provider_words_and_suggestions() {
        assert_eq!(
            ProviderKind::from_word("op"),
            Some(ProviderKind::OnePassword)
        );
        assert_eq!(ProviderKind::from_word("AWS"), None);
        assert_eq!(ProviderKind::closest("AWS"), Some("aws"));
        assert_eq!(ProviderKind::closest("valt"), Some("vault"));
        assert_eq!(ProviderKind::closest("zzzzzz"), None);
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            parse_query("a=1&b=2", &["a", "b"]),
            Ok(vec![("a", "1"), ("b", "2")])
        );
        assert!(parse_query("a=1&a=2", &["a"]).is_err());
        assert!(parse_query("c=1", &["a"]).is_err());
        assert!(parse_query("a", &["a"]).is_err());
        assert!(parse_query("a=", &["a"]).is_err());
    }
}
