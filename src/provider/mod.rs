//! Secret sources behind one trait, one module per provider.
//!
//! A provider is a module (a folder when large) implementing `Provider` for its
//! client type, plus one line in the registration table,
//! `providers!`. The table generates `ProviderKind` and its
//! words, the `Locator` enum, every dispatch on it and the `Registry`; each
//! provider sees only its own typed locators.
//!
//! A `Locator` says where one secret lives; `Locator::fetch_key` says which
//! fetch it needs, so that many references (and many JSON keys) share one request.
//! Each provider parses and validates its own locator grammar, short and long form,
//! so a typo in an `aws:` block is an error with a position before anything is
//! fetched.
//!
//! Providers start lazily: the registry builds one only when a request for it
//! exists, so a config of env, file and inline secrets never starts an SDK.

pub(crate) mod http;
pub(crate) mod kind;
pub(crate) mod retry;

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use crate::error::Diagnostics;
use crate::secret::SecretBytes;

pub(crate) use kind::ProviderKind;

/// One provider: its locator grammar (short and long form) and its client.
///
/// Everything a provider declares is here, in one place: the registration line
/// in [`kind::providers`] adds only its words.
pub(crate) trait Provider: Send + Sync + Sized + 'static {
    /// Where one secret of this provider lives, validated. Locators are
    /// addresses, not values: they may be shown (`Display`) in messages.
    type Locator: Clone + fmt::Debug + fmt::Display + Eq + Hash + Send + Sync;

    /// Whether fetching talks to a remote service: such providers fetch on their
    /// own thread when several are in use.
    const REMOTE: bool;

    /// Variables holding keyfill's own credentials for this provider, which
    /// `exec` removes from the command's environment unless `--pass-credentials`.
    const CREDENTIAL_VARS: &'static [&'static str] = &[];

    /// The fields of the long form's mapping (`aws: { secret_id: …, key: … }`);
    /// empty when the long form takes only a locator text (`env: VAR`).
    const LONG_FIELDS: &'static [&'static str] = &[];

    /// Whether a declaration may give a `default:` used when the secret is not
    /// found.
    const TAKES_DEFAULT: bool = false;

    /// Parses the short form (`<<word|TEXT>>`, or `word: TEXT` in the long form);
    /// a relative path is resolved against `base_dir`.
    fn parse(text: &str, base_dir: &Path) -> Result<Self::Locator, LocatorError>;

    /// Builds a locator from the long form's fields, each one of
    /// [`Provider::LONG_FIELDS`] and given once. Called only when that list is
    /// not empty.
    fn from_fields(fields: &Fields<'_>, base_dir: &Path) -> Result<Self::Locator, LocatorError> {
        let _ = (fields, base_dir);
        Err(LocatorError::new("takes a locator text, not a mapping"))
    }

    /// The request `locator` needs: locators differing only in what is taken from
    /// one answer (a JSON key, a default spelled out) share it.
    fn fetch_key(locator: &Self::Locator) -> Self::Locator {
        locator.clone()
    }

    /// A JSON key to extract from the fetched value, if the locator names one.
    fn json_key(locator: &Self::Locator) -> Option<&str> {
        let _ = locator;
        None
    }

    /// Builds the client's settings. Nothing is connected (no SDK, no runtime)
    /// until the first fetch.
    fn start(settings: Settings) -> Self;

    /// Fetches every request: all of this provider's distinct fetch keys of a
    /// run come in one call, so implementations batch and run requests
    /// concurrently. One result per request, in order.
    fn fetch(&self, requests: &[&Self::Locator]) -> Vec<Result<SecretBytes, FetchError>>;

    /// Moves the warnings of the last fetch (an insecure setting in use, say)
    /// into the run's diagnostics, once.
    fn warnings(&self, diags: &mut Diagnostics) {
        let _ = diags;
    }

    /// A local file the value is read from and decrypted, such as a sops file:
    /// `watch` watches it like an input, and its value is read again on every
    /// render instead of being kept for the cache's TTL. `None` by default.
    fn watched(locator: &Self::Locator) -> Option<&Path> {
        let _ = locator;
        None
    }

    /// The version each request's value has now, asked without reading values
    /// (AWS `DescribeSecret`, Vault KV v2 metadata), so that a refresh fetches
    /// only what changed. One entry per request, in order. By default the
    /// provider has no such check.
    fn versions(&self, requests: &[&Self::Locator]) -> Vec<VersionCheck> {
        requests.iter().map(|_| VersionCheck::NotOffered).collect()
    }

    /// For `doctor`: where the credentials come from, whether the provider
    /// answers and who it acts as; and whether each request is readable, asked
    /// without reading its value wherever the provider's API allows. One entry
    /// per request, in order. By default nothing is checked.
    fn diagnose(&self, requests: &[&Self::Locator]) -> (Health, Vec<Readability>) {
        let health = Health::local("none needed");
        let each = requests
            .iter()
            .map(|_| Readability::Unchecked("this provider has no check without reading".into()))
            .collect();
        (health, each)
    }

    /// What in the environment configures this provider (a variable, a
    /// credentials file), so that `doctor` without a config checks it; `None`
    /// when nothing does. Reads the environment and file metadata only.
    fn configured() -> Option<String> {
        None
    }
}

/// Why a locator is not valid: what, where in it, and what would fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatorError {
    /// What is wrong. It names locator text, never a secret value.
    pub(crate) message: String,
    /// The part of the locator at fault, when one part is.
    pub(crate) at: Option<Spot>,
    /// How to fix it.
    pub(crate) hint: Option<String>,
}

/// A part of a locator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Spot {
    /// A byte range of the short form's text.
    Text(Range<usize>),
    /// A field of the long form (or the query parameter of the same name).
    Field(&'static str),
}

impl LocatorError {
    /// An error about the whole locator.
    pub(crate) fn new(message: impl Into<String>) -> Self {
        LocatorError {
            message: message.into(),
            at: None,
            hint: None,
        }
    }

    /// Points at a byte range of the locator text.
    pub(crate) fn at(mut self, range: Range<usize>) -> Self {
        self.at = Some(Spot::Text(range));
        self
    }

    /// Points at a long-form field.
    pub(crate) fn field(mut self, name: &'static str) -> Self {
        self.at = Some(Spot::Field(name));
        self
    }

    /// Adds a hint.
    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The byte range of `text` at fault, when the error names one: a text
    /// range, or a query parameter named like the field at fault.
    pub(crate) fn range_in(&self, text: &str) -> Option<Range<usize>> {
        match &self.at {
            Some(Spot::Text(r)) if r.end <= text.len() => Some(r.clone()),
            Some(Spot::Field(name)) => query_value(text, name),
            _ => None,
        }
    }

    /// Shifts a text range by `offset` (a part of a larger locator was parsed).
    pub(crate) fn shifted(mut self, offset: usize) -> Self {
        if let Some(Spot::Text(r)) = &mut self.at {
            *r = r.start + offset..r.end + offset;
        }
        self
    }
}

impl fmt::Display for LocatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The value range of query parameter `name` in `text` (`…?name=VALUE&…`).
fn query_value(text: &str, name: &str) -> Option<Range<usize>> {
    let q = text.find('?')? + 1;
    let mut at = q;
    for pair in text[q..].split('&') {
        if let Some(v) = pair.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            let start = at + pair.len() - v.len();
            return Some(start..start + v.len());
        }
        at += pair.len() + 1;
    }
    None
}

/// A long-form locator's fields (`aws: { secret_id: prod/db, key: password }`):
/// each one of the provider's [`Provider::LONG_FIELDS`], given once, as text.
#[derive(Debug, Default)]
pub(crate) struct Fields<'a> {
    entries: Vec<(&'static str, &'a str)>,
}

impl<'a> Fields<'a> {
    /// Adds a field (the declaration parser has checked name and uniqueness).
    pub(crate) fn push(&mut self, name: &'static str, value: &'a str) {
        self.entries.push((name, value));
    }

    /// A field's text, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&'a str> {
        self.entries
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

/// One call made of every started provider with its own requests: a fetch or
/// a version check.
pub(crate) trait Call: Sync {
    /// One answer.
    type Out: Send;
    /// What the call learns of a provider as a whole (`()` but for a diagnosis).
    type Whole: Send;
    /// Asks `provider` about `requests`: what it says of itself, and one
    /// answer per request, in order.
    fn call<P: Provider>(
        &self,
        provider: &P,
        requests: &[&P::Locator],
    ) -> (Self::Whole, Vec<Self::Out>);
    /// Stands in for an answer a provider did not give.
    fn missing(&self, kind: ProviderKind) -> Self::Out;
}

/// Fetching values, each answer with the time its provider's whole batch took
/// (requests of one batch run together, so that is each one's wait).
pub(crate) struct Fetch;

impl Call for Fetch {
    type Out = (Result<SecretBytes, FetchError>, Duration);
    type Whole = ();
    fn call<P: Provider>(&self, p: &P, requests: &[&P::Locator]) -> ((), Vec<Self::Out>) {
        let start = std::time::Instant::now();
        let answers = p.fetch(requests);
        let took = start.elapsed();
        ((), answers.into_iter().map(|a| (a, took)).collect())
    }
    fn missing(&self, kind: ProviderKind) -> Self::Out {
        (Err(FetchError::unanswered(kind)), Duration::ZERO)
    }
}

/// Asking versions without values.
pub(crate) struct Versions;

impl Call for Versions {
    type Out = VersionCheck;
    type Whole = ();
    fn call<P: Provider>(&self, p: &P, requests: &[&P::Locator]) -> ((), Vec<Self::Out>) {
        ((), p.versions(requests))
    }
    fn missing(&self, _: ProviderKind) -> Self::Out {
        VersionCheck::Unknown
    }
}

/// Asking `doctor`'s questions, without values.
pub(crate) struct Diagnose;

impl Call for Diagnose {
    type Out = Readability;
    type Whole = Health;
    fn call<P: Provider>(&self, p: &P, requests: &[&P::Locator]) -> (Health, Vec<Readability>) {
        p.diagnose(requests)
    }
    fn missing(&self, kind: ProviderKind) -> Self::Out {
        Readability::Failed(FetchError::unanswered(kind))
    }
}

/// Pairs each request with its answer, standing in for missing ones.
fn answers<L, R>(
    requests: &[&L],
    results: Option<Vec<R>>,
    missing: impl Fn() -> R,
    wrap: impl Fn(L) -> Locator,
    out: &mut HashMap<Locator, R>,
) where
    L: Clone,
{
    let mut results = results.unwrap_or_default().into_iter();
    for r in requests {
        let answer = results.next().unwrap_or_else(&missing);
        out.insert(wrap((*r).clone()), answer);
    }
}

macro_rules! dispatch {
    ($($variant:ident => $module:ident :: $client:ident [$($word:literal),+],)+) => {
        $(pub mod $module;)+

        /// Where one secret lives, validated: one provider's own locator.
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum Locator {
            $(
                #[doc = concat!("A `", stringify!($module), "` locator.")]
                $variant(<$module::$client as Provider>::Locator),
            )+
        }

        impl Locator {
            /// Parses a locator's short form for `kind`; relative file paths are
            /// resolved against `base_dir`.
            pub(crate) fn parse(
                kind: ProviderKind,
                text: &str,
                base_dir: &Path,
            ) -> Result<Locator, LocatorError> {
                match kind {
                    $(ProviderKind::$variant => {
                        <$module::$client as Provider>::parse(text, base_dir).map(Locator::$variant)
                    })+
                }
            }

            /// Builds a locator for `kind` from the long form's fields.
            pub(crate) fn from_fields(
                kind: ProviderKind,
                fields: &Fields<'_>,
                base_dir: &Path,
            ) -> Result<Locator, LocatorError> {
                match kind {
                    $(ProviderKind::$variant => {
                        <$module::$client as Provider>::from_fields(fields, base_dir)
                            .map(Locator::$variant)
                    })+
                }
            }

            /// The provider this locator belongs to.
            pub(crate) fn kind(&self) -> ProviderKind {
                match self {
                    $(Locator::$variant(_) => ProviderKind::$variant,)+
                }
            }

            /// The locator without its provider's name (`prod/db:password`).
            pub(crate) fn text(&self) -> String {
                match self {
                    $(Locator::$variant(l) => l.to_string(),)+
                }
            }

            /// The request this locator needs; locators differing only in a JSON
            /// key (or in spelling out a default) share it.
            pub(crate) fn fetch_key(&self) -> Locator {
                match self {
                    $(Locator::$variant(l) => {
                        Locator::$variant(<$module::$client as Provider>::fetch_key(l))
                    })+
                }
            }

            /// A JSON key to extract from the fetched value, if the locator names one.
            pub(crate) fn json_key(&self) -> Option<&str> {
                match self {
                    $(Locator::$variant(l) => <$module::$client as Provider>::json_key(l),)+
                }
            }

            /// The local file this locator's value is read from, which `watch`
            /// watches like an input (see [`Provider::watched`]).
            pub(crate) fn watched(&self) -> Option<&Path> {
                match self {
                    $(Locator::$variant(l) => <$module::$client as Provider>::watched(l),)+
                }
            }
        }

        impl fmt::Display for Locator {
            // Locators are addresses, not values: they may be shown.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Locator::$variant(l) => write!(f, "{}|{l}", stringify!($module)),)+
                }
            }
        }

        impl ProviderKind {
            /// Whether fetching talks to a remote service.
            #[cfg(test)]
            pub(crate) fn is_remote(self) -> bool {
                match self {
                    $(ProviderKind::$variant => <$module::$client as Provider>::REMOTE,)+
                }
            }

            /// The long form's fields (empty: the long form takes a locator text).
            pub(crate) fn long_fields(self) -> &'static [&'static str] {
                match self {
                    $(ProviderKind::$variant => <$module::$client as Provider>::LONG_FIELDS,)+
                }
            }

            /// Whether a declaration of this provider may give a `default:`.
            pub(crate) fn takes_default(self) -> bool {
                match self {
                    $(ProviderKind::$variant => <$module::$client as Provider>::TAKES_DEFAULT,)+
                }
            }
        }

        /// Every provider's own credential variables, which `exec` removes from
        /// the command's environment unless `--pass-credentials`.
        pub(crate) fn credential_vars() -> impl Iterator<Item = &'static str> {
            [$(<$module::$client as Provider>::CREDENTIAL_VARS,)+]
                .into_iter()
                .flatten()
                .copied()
        }

        /// Builds providers on first use and keeps them for the run.
        #[derive(Default)]
        pub(crate) struct Registry {
            settings: Settings,
            $($module: Option<$module::$client>,)+
        }

        impl fmt::Debug for Registry {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Registry")
                    .field("started", &self.started())
                    .finish()
            }
        }

        impl Registry {
            /// Which providers were started (for tests of lazy start-up).
            pub(crate) fn started(&self) -> Vec<ProviderKind> {
                let mut v = Vec::new();
                $(if self.$module.is_some() {
                    v.push(ProviderKind::$variant);
                })+
                v
            }

            /// Moves every started provider's warnings into `diags`, once.
            pub(crate) fn take_warnings(&self, diags: &mut Diagnostics) {
                $(if let Some(p) = &self.$module {
                    p.warnings(diags);
                })+
            }

            /// Makes `call` of each provider with all of its requests, starting
            /// the providers needed; remote providers answer at the same time,
            /// each on its own thread.
            pub(crate) fn each<'r, C: Call>(
                &mut self,
                requests: impl IntoIterator<Item = &'r Locator>,
                call: &C,
            ) -> HashMap<Locator, C::Out> {
                self.each_whole(&[], requests, call).0
            }

            /// Like [`Registry::each`], also asking the providers of `also`
            /// (started if need be) when they have no request, and returning
            /// what each provider asked said of itself.
            pub(crate) fn each_whole<'r, C: Call>(
                &mut self,
                also: &[ProviderKind],
                requests: impl IntoIterator<Item = &'r Locator>,
                call: &C,
            ) -> (HashMap<Locator, C::Out>, Vec<(ProviderKind, C::Whole)>) {
                struct Batch<'r> {
                    $($module: Vec<&'r <$module::$client as Provider>::Locator>,)+
                }
                let mut batch = Batch { $($module: Vec::new(),)+ };
                for r in requests {
                    match r {
                        $(Locator::$variant(l) => batch.$module.push(l),)+
                    }
                }
                // Which providers are asked: those with requests, and `also`.
                struct Asked {
                    $($module: bool,)+
                }
                let asked = Asked {
                    $($module: !batch.$module.is_empty()
                        || also.contains(&ProviderKind::$variant),)+
                };
                let settings = self.settings;
                $(if asked.$module && self.$module.is_none() {
                    self.$module = Some(<$module::$client as Provider>::start(settings));
                })+
                let remote = 0 $(+ usize::from(
                    asked.$module && <$module::$client as Provider>::REMOTE
                ))+;
                let mut out = HashMap::new();
                let mut wholes = Vec::new();
                std::thread::scope(|scope| {
                    $(
                        let $module = match &self.$module {
                            Some(p) if asked.$module => {
                                let reqs = &batch.$module;
                                if <$module::$client as Provider>::REMOTE && remote > 1 {
                                    Pending::Thread(scope.spawn(move || call.call(p, reqs)))
                                } else {
                                    Pending::Done(call.call(p, reqs))
                                }
                            }
                            _ => Pending::Skipped,
                        };
                    )+
                    $(
                        let (whole, results) = match $module.join() {
                            Some((w, r)) => (Some(w), Some(r)),
                            None => (None, None),
                        };
                        if let Some(w) = whole {
                            wholes.push((ProviderKind::$variant, w));
                        }
                        answers(
                            &batch.$module,
                            results,
                            || call.missing(ProviderKind::$variant),
                            Locator::$variant,
                            &mut out,
                        );
                    )+
                });
                (out, wholes)
            }
        }

        impl ProviderKind {
            /// What in the environment configures this provider (see
            /// [`Provider::configured`]).
            pub(crate) fn configured(self) -> Option<String> {
                match self {
                    $(ProviderKind::$variant => <$module::$client as Provider>::configured(),)+
                }
            }
        }
    };
}
kind::providers!(dispatch);

/// A provider's answers, computed here or on a thread of their own.
enum Pending<'s, R> {
    Done(R),
    Thread(std::thread::ScopedJoinHandle<'s, R>),
    /// The provider was not asked.
    Skipped,
}

impl<R> Pending<'_, R> {
    /// The answers; `None` when the provider was not asked or its thread
    /// panicked.
    fn join(self) -> Option<R> {
        match self {
            Pending::Done(v) => Some(v),
            Pending::Thread(h) => h.join().ok(),
            Pending::Skipped => None,
        }
    }
}

impl Registry {
    /// A registry whose providers fetch with `settings`.
    pub(crate) fn new(settings: Settings) -> Self {
        Registry {
            settings,
            ..Registry::default()
        }
    }

    /// Fetches each request, each provider its whole batch; each answer comes
    /// with how long its batch took.
    pub(crate) fn fetch<'r>(
        &mut self,
        requests: impl IntoIterator<Item = &'r Locator>,
    ) -> HashMap<Locator, <Fetch as Call>::Out> {
        self.each(requests, &Fetch)
    }

    /// Asks each request's current version, without values.
    pub(crate) fn versions<'r>(
        &mut self,
        requests: impl IntoIterator<Item = &'r Locator>,
    ) -> HashMap<Locator, VersionCheck> {
        self.each(requests, &Versions)
    }
}

/// Why a fetch failed; decides the exit status and whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FetchClass {
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
    pub(crate) fn exit(self) -> crate::error::Exit {
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
    pub(crate) fn word(self) -> &'static str {
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
pub(crate) struct FetchError {
    /// Class of failure.
    pub(crate) class: FetchClass,
    /// What happened, in our words.
    pub(crate) message: String,
}

impl FetchError {
    /// Builds an error.
    pub(crate) fn new(class: FetchClass, message: impl Into<String>) -> Self {
        FetchError {
            class,
            message: message.into(),
        }
    }

    /// A request the `who` provider's answers did not cover (a task that died).
    pub(crate) fn unanswered(who: impl fmt::Display) -> Self {
        FetchError::new(
            FetchClass::Unreachable,
            format!("the {who} provider gave no answer"),
        )
    }
}

/// Default of `--max-secret-size`: 16 MiB, far beyond any real secret.
pub(crate) const DEFAULT_MAX_SECRET_SIZE: u64 = 16 * 1024 * 1024;

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

/// What a version check found for one locator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VersionCheck {
    /// The value now has this version id (as [`SecretBytes::version`] gives it).
    Current(String),
    /// The check failed or could not tell (not found, a transient fault): fetch.
    Unknown,
    /// No cheap check for this locator (KV v1, a policy without the metadata
    /// permission): fetch, and do not ask again.
    NotOffered,
}

/// What `doctor` found of one provider as a whole. Never a credential: only
/// where credentials come from, and who the provider says they belong to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Health {
    /// Where the credentials come from (`AWS_ACCESS_KEY_ID`, `profile `dev`
    /// (SSO)`, `VAULT_TOKEN`), or that none are needed or found.
    pub(crate) credentials: String,
    /// Whether it answered.
    pub(crate) reach: Reach,
    /// Who it acts as, where the API says (`None`: it does not say); an error
    /// when it refused to say.
    pub(crate) identity: Result<Option<String>, FetchError>,
}

impl Health {
    /// A local provider's health: nothing to reach, no identity.
    pub(crate) fn local(credentials: impl Into<String>) -> Self {
        Health {
            credentials: credentials.into(),
            reach: Reach::Local,
            identity: Ok(None),
        }
    }
}

/// Whether a provider answered `doctor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Local files or variables: nothing to reach.
    Local,
    /// It answered.
    Reachable,
    /// It did not answer, or could not be asked (not configured).
    Failed(FetchError),
}

/// Whether one request is readable, as `doctor` found without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Readability {
    /// Readable as far as the provider tells without the value; with what
    /// was (or was not) checked, when that needs saying.
    Readable(Option<String>),
    /// Not readable: why.
    Failed(FetchError),
    /// Not checked: why (no check without reading the value).
    Unchecked(String),
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

/// Splits `a=1&b=2` into pairs, refusing unknown and repeated keys; an
/// error's range is within `query`.
pub(crate) fn parse_query<'a>(
    query: &'a str,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a str)>, LocatorError> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut at = 0;
    for pair in query.split('&') {
        let span = at..at + pair.len();
        at += pair.len() + 1;
        let Some((k, v)) = pair.split_once('=') else {
            return Err(LocatorError::new(format!(
                "query parameter `{pair}` needs a value (`{pair}=…`)"
            ))
            .at(span));
        };
        if !allowed.contains(&k) {
            let mut e = LocatorError::new(format!(
                "unknown query parameter `{k}` (known: {})",
                allowed.join(", ")
            ))
            .at(span.start..span.start + k.len());
            if let Some(best) = crate::suggest::closest(k, allowed) {
                e = e.hint(format!("did you mean `{best}`?"));
            }
            return Err(e);
        }
        if v.is_empty() {
            return Err(
                LocatorError::new(format!("query parameter `{k}` has an empty value")).at(span),
            );
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(
                LocatorError::new(format!("query parameter `{k}` is given twice")).at(span),
            );
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Writes the query `parse_query` reads back: `?a=1&b=2` of the pairs that
/// have a value, nothing when none has.
pub(crate) fn write_query(
    f: &mut fmt::Formatter<'_>,
    pairs: &[(&str, Option<&str>)],
) -> fmt::Result {
    let mut sep = '?';
    for (name, v) in pairs {
        if let Some(v) = v {
            write!(f, "{sep}{name}={v}")?;
            sep = '&';
        }
    }
    Ok(())
}

/// Splits `MAIN:KEY` at the colon at `at` (each provider knows which colon
/// starts its JSON key); an empty key is an error pointing at the colon.
pub(crate) fn split_key_at(
    main: &str,
    at: Option<usize>,
) -> Result<(&str, Option<&str>), LocatorError> {
    let Some(i) = at else {
        return Ok((main, None));
    };
    let key = &main[i + 1..];
    if key.is_empty() {
        return Err(
            LocatorError::new(format!("`{main}` ends with `:` but names no JSON key")).at(i..i + 1),
        );
    }
    Ok((&main[..i], Some(key)))
}

/// Splits `text` at its first `?`: the main part, and the query with its offset.
pub(crate) fn split_query(text: &str) -> (&str, Option<(&str, usize)>) {
    match text.split_once('?') {
        Some((m, q)) => (m, Some((q, m.len() + 1))),
        None => (text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_strips_each_providers_own_credentials() {
        let vars: Vec<&str> = credential_vars().collect();
        for v in [
            "VAULT_TOKEN",
            "VAULT_SECRET_ID",
            "OP_CONNECT_TOKEN",
            "OP_SERVICE_ACCOUNT_TOKEN",
        ] {
            assert!(vars.contains(&v), "{v} is stripped");
        }
        // AWS credentials stay: the command commonly runs with the same role.
        assert!(!vars.iter().any(|v| v.starts_with("AWS_")));
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
    fn locator_errors_point_into_the_text_with_a_hint() {
        let base = Path::new(".");
        let text = "prod/db?regoin=eu-west-1";
        let e = Locator::parse(ProviderKind::Aws, text, base).unwrap_err();
        assert_eq!(e.range_in(text).map(|r| &text[r]), Some("regoin"));
        assert_eq!(e.hint.as_deref(), Some("did you mean `region`?"));

        // A field's error points at the query value of the same name.
        let text = "secret/data/app/k?version=0";
        let e = Locator::parse(ProviderKind::Vault, text, base).unwrap_err();
        assert_eq!(e.at, Some(Spot::Field("version")));
        assert_eq!(e.range_in(text).map(|r| &text[r]), Some("0"));

        let text = "op://V/I/F?attribute=otpp";
        let e = Locator::parse(ProviderKind::OnePassword, text, base).unwrap_err();
        assert_eq!(e.range_in(text).map(|r| &text[r]), Some("otpp"));
        assert_eq!(e.hint.as_deref(), Some("did you mean `otp`?"));

        let text = "MY VAR";
        let e = Locator::parse(ProviderKind::Env, text, base).unwrap_err();
        assert_eq!(e.range_in(text), Some(2..3));

        // A field the short form does not hold has no range there.
        let e = Locator::parse(ProviderKind::Aws, "bad name", base).unwrap_err();
        assert_eq!(e.at, Some(Spot::Field("secret_id")));
        assert_eq!(e.range_in("bad name"), None);
    }

    #[test]
    fn the_table_gives_every_kind_a_word_and_a_name() {
        for (word, kind) in ProviderKind::WORDS {
            assert_eq!(ProviderKind::from_word(word), Some(*kind));
            assert_eq!(ProviderKind::from_word(kind.name()), Some(*kind));
        }
        assert_eq!(
            ProviderKind::word("op"),
            Some(("op", ProviderKind::OnePassword))
        );
        assert!(ProviderKind::Aws.is_remote() && !ProviderKind::Env.is_remote());
        assert!(ProviderKind::Env.takes_default() && !ProviderKind::File.takes_default());
        assert!(ProviderKind::File.long_fields().is_empty());
        assert!(ProviderKind::Vault.long_fields().contains(&"mount"));
    }

    #[test]
    fn a_registry_starts_only_the_providers_it_is_asked_for() {
        let mut r = Registry::new(Settings::default());
        let env = Locator::parse(
            ProviderKind::Env,
            "KEYFILL_TEST_UNSET_VARIABLE",
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let answers = r.fetch([&env]);
        assert_eq!(r.started(), vec![ProviderKind::Env]);
        assert!(matches!(
            answers.get(&env),
            Some((
                Err(FetchError {
                    class: FetchClass::NotFound,
                    ..
                }),
                _
            ))
        ));
    }

    #[test]
    fn a_diagnosis_asks_the_providers_named_and_those_with_requests_only() {
        let mut r = Registry::new(Settings::default());
        let (answers, wholes) = r.each_whole(&[ProviderKind::Env], [], &Diagnose);
        assert!(answers.is_empty());
        assert_eq!(r.started(), vec![ProviderKind::Env]);
        assert_eq!(
            wholes,
            vec![(ProviderKind::Env, Health::local("none needed"))]
        );
        let file = Locator::parse(
            ProviderKind::File,
            "/nonexistent/keyfill-diagnose",
            Path::new("."),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let (answers, wholes) = r.each_whole(&[], [&file], &Diagnose);
        assert_eq!(r.started(), vec![ProviderKind::Env, ProviderKind::File]);
        assert_eq!(wholes.len(), 1, "only the provider with a request answers");
        assert!(matches!(
            answers.get(&file),
            Some(Readability::Failed(FetchError {
                class: FetchClass::NotFound,
                ..
            }))
        ));
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
