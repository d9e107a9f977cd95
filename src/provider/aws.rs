//! AWS Secrets Manager locators.
//!
//! ```yaml
//! password: <<aws|prod/db:password?region=eu-west-1>>
//! secrets:
//!   API_KEY:
//!     aws: { secret_id: prod/keys, key: api_key, version_stage: AWSPREVIOUS }
//! ```
//!
//! `SECRET_ID[:JSON_KEY][?region=R&version_stage=S&version_id=V&profile=P]`. In an
//! ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`) the JSON key is what
//! follows the seventh colon; in a name it is what follows the last colon.
//!
//! The client is configured as the AWS CLI is: the default credential chain (env,
//! shared profiles, SSO, web identity, container and instance metadata),
//! `AWS_REGION`/`AWS_PROFILE` and `AWS_ENDPOINT_URL`. Distinct current secrets are
//! fetched with `BatchGetSecretValue`, at most 20 per call; pinned versions with
//! `GetSecretValue`; every call runs under one concurrency bound and one deadline,
//! with our own jittered retries (the SDK's are off, so that every provider retries
//! alike). Errors are reported in our words from the error code alone: no SDK
//! message, body or header is ever shown.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_secretsmanager::config::Region;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::Client;
use aws_smithy_http_client::tls::{TlsContext, TrustStore};
use futures_util::stream::{self, StreamExt as _};

use super::retry::{self, Failure, Policy, Verdict};
use std::path::Path;

use super::{
    parse_query, split_query, FetchClass, FetchError, Fields, LocatorError, Provider, Settings,
    VersionCheck,
};
use crate::secret::SecretBytes;

/// One AWS secret (and optionally a JSON key inside it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AwsLocator {
    /// Secret name or ARN.
    pub secret_id: String,
    /// Dot path into the secret's JSON.
    pub key: Option<String>,
    /// Region override.
    pub region: Option<String>,
    /// Staging label (AWSCURRENT when neither stage nor id is given).
    pub version_stage: Option<String>,
    /// Version id.
    pub version_id: Option<String>,
    /// Shared-config profile.
    pub profile: Option<String>,
}

const QUERY_KEYS: [&str; 4] = ["region", "version_stage", "version_id", "profile"];

/// The stage a fetch without a stage or version id gets.
const CURRENT: &str = "AWSCURRENT";

impl AwsLocator {
    /// The request this locator needs: no JSON key, and the default stage not
    /// spelled out, so that `x` and `x?version_stage=AWSCURRENT` share one fetch.
    pub fn fetch_key(&self) -> AwsLocator {
        let mut k = AwsLocator {
            key: None,
            ..self.clone()
        };
        if k.version_id.is_none() && k.version_stage.as_deref() == Some(CURRENT) {
            k.version_stage = None;
        }
        k
    }

    /// Whether this fetch names a version other than the current one.
    fn is_pinned(&self) -> bool {
        self.version_id.is_some() || self.version_stage.as_deref().is_some_and(|s| s != CURRENT)
    }

    /// Parses the direct-reference form.
    pub fn parse(text: &str) -> Result<Self, LocatorError> {
        let (main, query) = split_query(text);
        let (secret_id, key) = split_key(main)?;
        let mut loc = AwsLocator {
            secret_id: secret_id.to_owned(),
            key: key.map(str::to_owned),
            ..Default::default()
        };
        if let Some((q, offset)) = query {
            for (k, v) in parse_query(q, &QUERY_KEYS).map_err(|e| e.shifted(offset))? {
                let v = Some(v.to_owned());
                match k {
                    "region" => loc.region = v,
                    "version_stage" => loc.version_stage = v,
                    "version_id" => loc.version_id = v,
                    _ => loc.profile = v,
                }
            }
        }
        loc.validate()?;
        Ok(loc)
    }

    /// Builds the long form, `aws: { secret_id: …, key: …, … }`.
    fn from_fields(fields: &Fields<'_>) -> Result<Self, LocatorError> {
        let text = |name: &str| fields.get(name).map(str::to_owned);
        let loc = AwsLocator {
            secret_id: text("secret_id").unwrap_or_default(),
            key: text("key"),
            region: text("region"),
            version_stage: text("version_stage"),
            version_id: text("version_id"),
            profile: text("profile"),
        };
        if loc.secret_id.is_empty() {
            return Err(LocatorError::new("`aws` needs `secret_id`").field("secret_id"));
        }
        loc.validate()?;
        Ok(loc)
    }

    /// Checks every field (of the short and the long form).
    pub fn validate(&self) -> Result<(), LocatorError> {
        let id = &self.secret_id;
        if id.is_empty() {
            return Err(LocatorError::new("secret id is empty").field("secret_id"));
        }
        if id.starts_with("arn:") {
            let parts: Vec<&str> = id.splitn(7, ':').collect();
            if parts.len() != 7
                || parts[2] != "secretsmanager"
                || parts[5] != "secret"
                || parts[6].is_empty()
            {
                return Err(LocatorError::new(format!("`{id}` is not a Secrets Manager ARN"))
                    .field("secret_id")
                    .hint("arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME"));
            }
        } else {
            if id.len() > 512 {
                return Err(LocatorError::new("secret name is longer than 512 characters")
                    .field("secret_id"));
            }
            if let Some(c) = id
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
            {
                return Err(LocatorError::new(format!(
                    "secret name `{}` contains `{}`; names use letters, digits and /_+=.@-",
                    id, c
                ))
                .field("secret_id"));
            }
        }
        if let Some(k) = &self.key {
            if k.is_empty() || k.split('.').any(str::is_empty) {
                return Err(
                    LocatorError::new(format!("JSON key `{k}` is empty or has an empty segment"))
                        .field("key"),
                );
            }
        }
        for (name, v) in [
            ("region", &self.region),
            ("version_stage", &self.version_stage),
            ("version_id", &self.version_id),
            ("profile", &self.profile),
        ] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(LocatorError::new(format!("`{name}` is empty")).field(name));
            }
        }
        if let Some(r) = &self.region {
            if !r
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                return Err(LocatorError::new(format!("`{}` is not an AWS region name", r))
                    .field("region")
                    .hint("a region name such as `eu-west-1`"));
            }
        }
        Ok(())
    }
}

/// Splits off the JSON key by the ARN and name rules.
fn split_key(main: &str) -> Result<(&str, Option<&str>), LocatorError> {
    let key_at = if main.starts_with("arn:") {
        main.match_indices(':').nth(6).map(|(i, _)| i)
    } else {
        main.rfind(':')
    };
    match key_at {
        None => Ok((main, None)),
        Some(i) => {
            let key = &main[i + 1..];
            if key.is_empty() {
                return Err(LocatorError::new(format!(
                    "`{main}` ends with `:` but names no JSON key"
                ))
                .at(i..i + 1));
            }
            Ok((&main[..i], Some(key)))
        }
    }
}

impl fmt::Display for AwsLocator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.secret_id)?;
        if let Some(k) = &self.key {
            write!(f, ":{k}")?;
        }
        let mut sep = '?';
        for (name, v) in [
            ("region", &self.region),
            ("version_stage", &self.version_stage),
            ("version_id", &self.version_id),
            ("profile", &self.profile),
        ] {
            if let Some(v) = v {
                write!(f, "{sep}{name}={v}")?;
                sep = '&';
            }
        }
        Ok(())
    }
}

/// Fetches from AWS Secrets Manager. Nothing of the SDK is built until `fetch`.
pub struct AwsProvider {
    settings: Settings,
}

impl Provider for AwsProvider {
    type Locator = AwsLocator;
    const REMOTE: bool = true;
    const LONG_FIELDS: &'static [&'static str] = &[
        "secret_id",
        "key",
        "region",
        "version_stage",
        "version_id",
        "profile",
    ];

    fn parse(text: &str, _: &Path) -> Result<AwsLocator, LocatorError> {
        AwsLocator::parse(text)
    }

    fn from_fields(fields: &Fields<'_>, _: &Path) -> Result<AwsLocator, LocatorError> {
        AwsLocator::from_fields(fields)
    }

    fn fetch_key(locator: &AwsLocator) -> AwsLocator {
        locator.fetch_key()
    }

    fn json_key(locator: &AwsLocator) -> Option<&str> {
        locator.key.as_deref()
    }

    fn start(settings: Settings) -> Self {
        AwsProvider { settings }
    }

    fn fetch(&self, requests: &[&AwsLocator]) -> Vec<Result<SecretBytes, FetchError>> {
        super::http::block_on(fetch(requests, self.settings), |e| {
            let err = FetchError::new(
                FetchClass::Unreachable,
                format!("cannot start the AWS client: {e}"),
            );
            requests.iter().map(|_| Err(err.clone())).collect()
        })
    }

    fn versions(&self, requests: &[&AwsLocator]) -> Vec<VersionCheck> {
        super::http::block_on(versions(requests, self.settings), |_| {
            requests.iter().map(|_| VersionCheck::Unknown).collect()
        })
    }
}

/// One distinct secret version to fetch, and the requests that want it.
#[derive(Clone)]
struct Wanted {
    locator: AwsLocator,
    requests: Vec<usize>,
}

/// A secret and version: (id, stage, version id).
type WantedId = (String, Option<String>, Option<String>);

/// What a call found for one secret.
enum Outcome {
    /// Final result for these requests.
    Done(Vec<usize>, Result<SecretBytes, FetchError>),
    /// The batch call did not answer for it: fetch it on its own.
    Single(Client, Wanted),
}

/// One API call to make.
enum Call {
    Batch(Client, Vec<Wanted>),
    Single(Client, Wanted),
}

/// Most secret ids per `BatchGetSecretValue` call (an API limit the SDK does not
/// enforce).
const BATCH_LIMIT: usize = 20;

/// Requests grouped for the API: one client per (profile, region), and in a
/// client one entry per distinct (secret, version).
struct Plan {
    groups: Vec<(Client, Vec<Wanted>)>,
    /// Requests that failed before any call (no region, configuration stalled).
    failed: Vec<(usize, FetchError)>,
}

async fn plan(
    locators: &[&AwsLocator],
    http: &aws_smithy_runtime_api::client::http::SharedHttpClient,
    policy: &Policy,
) -> Plan {
    let mut failed = Vec::new();
    // One SDK configuration (credentials, default region, endpoint) per profile.
    let mut profiles: Vec<Option<&str>> = Vec::new();
    for l in locators {
        if !profiles.contains(&l.profile.as_deref()) {
            profiles.push(l.profile.as_deref());
        }
    }
    let mut groups: Vec<(Client, Vec<Wanted>, HashMap<WantedId, usize>)> = Vec::new();
    for profile in profiles {
        // Region discovery may ask instance metadata; the deadline bounds it.
        let loading = load_config(profile, http.clone(), policy);
        let Ok(sdk) = tokio::time::timeout_at(policy.deadline, loading).await else {
            for (i, l) in locators.iter().enumerate() {
                if l.profile.as_deref() == profile {
                    failed.push((
                        i,
                        FetchError::new(
                            FetchClass::Unreachable,
                            "loading the AWS configuration (region, profile) did not finish in time",
                        ),
                    ));
                }
            }
            continue;
        };
        let mut clients: HashMap<String, usize> = HashMap::new();
        for (i, l) in locators.iter().enumerate() {
            if l.profile.as_deref() != profile {
                continue;
            }
            // An ARN names its region; a `?region=` still wins.
            let region = l
                .region
                .clone()
                .or_else(|| arn_region(&l.secret_id))
                .or_else(|| sdk.region().map(|r| r.as_ref().to_owned()));
            let Some(region) = region else {
                failed.push((i, no_region(profile)));
                continue;
            };
            let g = *clients.entry(region.clone()).or_insert_with(|| {
                let conf = aws_sdk_secretsmanager::config::Builder::from(&sdk)
                    .region(Region::new(region))
                    .build();
                groups.push((Client::from_conf(conf), Vec::new(), HashMap::new()));
                groups.len() - 1
            });
            // Within a client, region and profile no longer tell requests apart:
            // `x` and `x?region=<the default>` are one fetch.
            let want = l.fetch_key();
            let id = (
                want.secret_id.clone(),
                want.version_stage.clone(),
                want.version_id.clone(),
            );
            let (_, entries, index) = &mut groups[g];
            match index.get(&id) {
                Some(&k) => entries[k].requests.push(i),
                None => {
                    index.insert(id, entries.len());
                    entries.push(Wanted {
                        locator: want,
                        requests: vec![i],
                    });
                }
            }
        }
    }
    Plan {
        groups: groups.into_iter().map(|(c, w, _)| (c, w)).collect(),
        failed,
    }
}

async fn fetch(
    locators: &[&AwsLocator],
    settings: Settings,
) -> Vec<Result<SecretBytes, FetchError>> {
    let policy = Policy::within(settings.timeout);
    let mut results: Vec<Option<Result<SecretBytes, FetchError>>> =
        locators.iter().map(|_| None).collect();
    let http = match tls_context() {
        Ok(ctx) => http_client(ctx),
        Err(e) => return locators.iter().map(|_| Err(e.clone())).collect(),
    };
    let Plan { groups, failed } = plan(locators, &http, &policy).await;
    for (i, e) in failed {
        results[i] = Some(Err(e));
    }

    let mut calls = Vec::new();
    for (client, wanted) in groups {
        let (pinned, current): (Vec<Wanted>, Vec<Wanted>) =
            wanted.into_iter().partition(|w| w.locator.is_pinned());
        for chunk in current.chunks(BATCH_LIMIT) {
            calls.push(if chunk.len() == 1 {
                Call::Single(client.clone(), chunk[0].clone())
            } else {
                Call::Batch(client.clone(), chunk.to_vec())
            });
        }
        calls.extend(pinned.into_iter().map(|w| Call::Single(client.clone(), w)));
    }

    // Batch calls that could not answer for a secret leave a single call behind,
    // run in a second round under the same bound and deadline.
    let mut round = calls;
    while !round.is_empty() {
        let outcomes: Vec<Vec<Outcome>> = stream::iter(round)
            .map(|call| run(call, &policy))
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
        round = Vec::new();
        for outcome in outcomes.into_iter().flatten() {
            match outcome {
                Outcome::Done(requests, result) => {
                    for i in requests {
                        results[i] = Some(result.clone());
                    }
                }
                Outcome::Single(client, w) => round.push(Call::Single(client, w)),
            }
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(FetchError::new(
                    FetchClass::Unreachable,
                    "the AWS provider gave no answer",
                ))
            })
        })
        .collect()
}

/// Each locator's current version id, from one `DescribeSecret` per distinct
/// secret (it reads no value and needs no KMS decryption).
async fn versions(locators: &[&AwsLocator], settings: Settings) -> Vec<VersionCheck> {
    let policy = Policy::within(settings.timeout);
    let mut results = vec![VersionCheck::Unknown; locators.len()];
    let Ok(ctx) = tls_context() else {
        return results;
    };
    let Plan { groups, .. } = plan(locators, &http_client(ctx), &policy).await;
    let calls = groups
        .into_iter()
        .flat_map(|(client, wanted)| wanted.into_iter().map(move |w| (client.clone(), w)));
    let found: Vec<(Vec<usize>, VersionCheck)> = stream::iter(calls)
        .map(|(client, w)| {
            let policy = &policy;
            async move {
                let check = describe(&client, &w.locator, policy).await;
                (w.requests, check)
            }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    for (requests, check) in found {
        for i in requests {
            results[i] = check.clone();
        }
    }
    results
}

/// The version id `l` names now: the one holding its stage (AWSCURRENT by
/// default), or its pinned id while that still exists.
async fn describe(client: &Client, l: &AwsLocator, policy: &Policy) -> VersionCheck {
    let result = retry::run(
        policy,
        || client.describe_secret().secret_id(&l.secret_id).send(),
        |e| sdk_error(e, false).2,
    )
    .await;
    let out = match result {
        Ok(out) => out,
        // A policy that grants GetSecretValue but not DescribeSecret.
        Err(Failure::Error(e)) if e.code() == Some("AccessDeniedException") => {
            return VersionCheck::NotOffered
        }
        Err(_) => return VersionCheck::Unknown,
    };
    if out.deleted_date.is_some() {
        return VersionCheck::Unknown;
    }
    let stages = out.version_ids_to_stages.unwrap_or_default();
    let id = match &l.version_id {
        Some(id) => stages.contains_key(id).then(|| id.clone()),
        None => {
            let stage = l.version_stage.as_deref().unwrap_or(CURRENT);
            stages
                .into_iter()
                .find(|(_, s)| s.iter().any(|s| s == stage))
                .map(|(id, _)| id)
        }
    };
    id.map_or(VersionCheck::Unknown, VersionCheck::Current)
}

/// The region field of a Secrets Manager ARN.
fn arn_region(id: &str) -> Option<String> {
    let region = id.strip_prefix("arn:")?.split(':').nth(2)?;
    (!region.is_empty()).then(|| region.to_owned())
}

fn no_region(profile: Option<&str>) -> FetchError {
    let from = profile.map_or_else(String::new, |p| format!(" or profile `{p}`"));
    FetchError::new(
        FetchClass::Unconfigured,
        format!(
            "no AWS region is configured: set AWS_REGION, a region in the AWS config{from}, \
             or `region=` on the reference"
        ),
    )
}

/// Loads credentials, region and endpoint settings as the AWS CLI does.
async fn load_config(
    profile: Option<&str>,
    http: aws_smithy_runtime_api::client::http::SharedHttpClient,
    policy: &Policy,
) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http.clone())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(policy.attempt_timeout.min(Duration::from_secs(5)))
                .build(),
        );
    let Some(p) = profile else {
        return loader.load().await;
    };
    let sdk = loader.profile_name(p).load().await;
    // As with the AWS CLI's `--profile`, a named profile's own credentials are used
    // even when AWS_ACCESS_KEY_ID is set: the default chain would try the
    // environment first and sign with another account's keys.
    let pc = ProviderConfig::without_region()
        .with_http_client(http)
        .with_behavior_version(Some(BehaviorVersion::latest()))
        .with_region(sdk.region().cloned());
    let creds = ProfileFileCredentialsProvider::builder()
        .configure(&pc)
        .profile_name(p)
        .build();
    sdk.into_builder()
        .credentials_provider(SharedCredentialsProvider::new(creds))
        .build()
}

/// One HTTP/TLS stack for the SDK: hyper and rustls with ring (the SDK's default
/// would build aws-lc as a second crypto library). Built the way the SDK builds its
/// default client, so `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` work as they do there.
fn http_client(ctx: TlsContext) -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{proxy::ProxyConfig, Builder, ConnectorBuilder};
    Builder::new().build_with_connector_fn(move |settings, components| {
        let mut conn = ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .tls_context(ctx.clone());
        conn.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            conn.set_sleep_impl(c.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

/// The roots to trust: the system's, or as with the AWS CLI, only those of the
/// PEM bundle `AWS_CA_BUNDLE` names.
fn tls_context() -> Result<TlsContext, FetchError> {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer};
    let Some(path) = std::env::var_os("AWS_CA_BUNDLE").filter(|p| !p.is_empty()) else {
        return Ok(TlsContext::default());
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let bad = |why: &str| {
        FetchError::new(
            FetchClass::Unconfigured,
            format!("AWS_CA_BUNDLE `{shown}` {why}"),
        )
    };
    let pem = std::fs::read(&path).map_err(|e| bad(&format!("cannot be read: {e}")))?;
    // The HTTP client panics on a bundle it cannot use, so it is checked here the
    // way the client will load it.
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| bad("is not a PEM certificate bundle"))?;
    if certs.is_empty() {
        return Err(bad("holds no certificate"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|_| bad("holds a certificate that cannot be a trust anchor"))?;
    }
    TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
        .build()
        .map_err(|_| bad("cannot be used"))
}

async fn run(call: Call, policy: &Policy) -> Vec<Outcome> {
    match call {
        Call::Single(client, w) => vec![single(&client, w, policy).await],
        Call::Batch(client, ws) => batch(client, ws, policy).await,
    }
}

async fn single(client: &Client, w: Wanted, policy: &Policy) -> Outcome {
    let l = &w.locator;
    let result = retry::run(
        policy,
        || {
            client
                .get_secret_value()
                .secret_id(&l.secret_id)
                .set_version_stage(l.version_stage.clone())
                .set_version_id(l.version_id.clone())
                .send()
        },
        |e| sdk_error(e, l.is_pinned()).2,
    )
    .await;
    let result = match result {
        Ok(out) => value(out.secret_string, out.secret_binary, out.version_id),
        Err(f) => Err(failure(f, l.is_pinned())),
    };
    Outcome::Done(w.requests, result)
}

async fn batch(client: Client, wanted: Vec<Wanted>, policy: &Policy) -> Vec<Outcome> {
    let ids: Vec<String> = wanted.iter().map(|w| w.locator.secret_id.clone()).collect();
    let result = retry::run(
        policy,
        || {
            client
                .batch_get_secret_value()
                .set_secret_id_list(Some(ids.clone()))
                .send()
        },
        |e| sdk_error(e, false).2,
    )
    .await;
    let out = match result {
        Ok(out) => out,
        Err(f) => {
            let fall_back = match &f {
                Failure::Error(e) => batch_unsupported(e),
                Failure::TimedOut => false,
            };
            if fall_back {
                // Policies often grant GetSecretValue but not BatchGetSecretValue.
                return wanted
                    .into_iter()
                    .map(|w| Outcome::Single(client.clone(), w))
                    .collect();
            }
            let err = failure(f, false);
            return wanted
                .into_iter()
                .map(|w| Outcome::Done(w.requests, Err(err.clone())))
                .collect();
        }
    };
    let mut pending: Vec<Option<Wanted>> = wanted.into_iter().map(Some).collect();
    let mut outcomes = Vec::new();
    for entry in out.secret_values.unwrap_or_default() {
        // An ARN request first: a name cannot tell one account's secret from another's.
        let by_arn = pending.iter().position(|w| {
            w.as_ref().is_some_and(|w| {
                w.locator.secret_id.starts_with("arn:")
                    && same_secret(&w.locator.secret_id, None, entry.arn.as_deref())
            })
        });
        let hit = by_arn.or_else(|| {
            pending.iter().position(|w| {
                w.as_ref().is_some_and(|w| {
                    same_secret(
                        &w.locator.secret_id,
                        entry.name.as_deref(),
                        entry.arn.as_deref(),
                    )
                })
            })
        });
        if let Some(w) = hit.and_then(|i| pending[i].take()) {
            outcomes.push(Outcome::Done(
                w.requests,
                value(entry.secret_string, entry.secret_binary, entry.version_id),
            ));
        }
    }
    for err in out.errors.unwrap_or_default() {
        let hit = pending.iter_mut().find(|w| {
            w.as_ref()
                .is_some_and(|w| err.secret_id.as_deref() == Some(w.locator.secret_id.as_str()))
        });
        if let Some(w) = hit.and_then(Option::take) {
            let (class, message, verdict) = classify(
                err.error_code.as_deref(),
                err.message.as_deref(),
                None,
                false,
            );
            if matches!(verdict, Verdict::Retry(_)) {
                outcomes.push(Outcome::Single(client.clone(), w));
                continue;
            }
            outcomes.push(Outcome::Done(
                w.requests,
                Err(FetchError::new(class, message)),
            ));
        }
    }
    // Anything the batch did not answer for (ids that name one secret twice, a
    // paginated answer) is fetched on its own rather than guessed.
    outcomes.extend(
        pending
            .into_iter()
            .flatten()
            .map(|w| Outcome::Single(client.clone(), w)),
    );
    outcomes
}

/// Whether a requested id (name, full ARN or ARN without its random suffix) is
/// the secret a batch entry describes.
fn same_secret(id: &str, name: Option<&str>, arn: Option<&str>) -> bool {
    if Some(id) == name || Some(id) == arn {
        return true;
    }
    // A partial ARN lacks the "-" and six random characters AWS appends.
    arn.is_some_and(|arn| {
        id.starts_with("arn:")
            && arn.len() == id.len() + 7
            && arn.starts_with(id)
            && arn.as_bytes()[id.len()] == b'-'
    })
}

/// A secret's value, with its version id; binary secrets stay marked as binary.
fn value(
    string: Option<String>,
    binary: Option<aws_sdk_secretsmanager::primitives::Blob>,
    version: Option<String>,
) -> Result<SecretBytes, FetchError> {
    let v = match (string, binary) {
        (Some(s), _) => SecretBytes::new(s.into_bytes()),
        (None, Some(b)) => SecretBytes::binary(b.into_inner()),
        (None, None) => {
            return Err(FetchError::new(
                FetchClass::NotFound,
                "the secret version has no value",
            ))
        }
    };
    Ok(v.with_version(version))
}

/// Whether a failed batch call means "this caller or endpoint cannot batch", so
/// single calls may still work.
fn batch_unsupported<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    match e.code() {
        Some(
            "AccessDeniedException"
            | "AccessDenied"
            | "UnknownOperationException"
            | "InvalidAction"
            | "NotImplemented",
        ) => true,
        Some(_) => false,
        None => matches!(status, Some(404 | 501)),
    }
}

type HttpResponse = aws_smithy_runtime_api::http::Response;

fn failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
    f: Failure<SdkError<E, HttpResponse>>,
    pinned: bool,
) -> FetchError {
    match f {
        Failure::Error(e) => {
            let (class, message, _) = sdk_error(&e, pinned);
            FetchError::new(class, message)
        }
        Failure::TimedOut => FetchError::new(
            FetchClass::Unreachable,
            "AWS Secrets Manager did not answer in time",
        ),
    }
}

/// Classifies an SDK error without showing anything the service or SDK wrote.
fn sdk_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
    e: &SdkError<E, HttpResponse>,
    pinned: bool,
) -> (FetchClass, String, Verdict) {
    match e {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let status = e.raw_response().map(|r| r.status().as_u16());
            let mut c = classify(e.code(), e.message(), status, pinned);
            if let (Verdict::Retry(_), Some(r)) = (&c.2, e.raw_response()) {
                c.2 = Verdict::Retry(retry::retry_after(r.headers().get("retry-after")));
            }
            c
        }
        SdkError::TimeoutError(_) => (
            FetchClass::Unreachable,
            "AWS Secrets Manager did not answer in time".into(),
            Verdict::Retry(None),
        ),
        SdkError::DispatchFailure(d) => {
            if let Some(c) = credentials_error(e) {
                return c;
            }
            if super::cause::<rustls::Error>(e).is_some() {
                return (
                    FetchClass::Unreachable,
                    "the TLS connection to AWS Secrets Manager failed: the server's certificate \
                     is not trusted or does not match (for a private CA, set AWS_CA_BUNDLE)"
                        .into(),
                    Verdict::Fail,
                );
            }
            let what = if d.is_timeout() {
                "timed out connecting to AWS Secrets Manager"
            } else if d.is_io() {
                "cannot connect to AWS Secrets Manager"
            } else {
                "the request to AWS Secrets Manager could not be sent"
            };
            let transient = d.as_other()
                == Some(aws_smithy_runtime_api::client::retries::ErrorKind::TransientError);
            let retry = if d.is_io() || d.is_timeout() || transient {
                Verdict::Retry(None)
            } else {
                Verdict::Fail
            };
            (
                FetchClass::Unreachable,
                format!("{what} (check AWS_ENDPOINT_URL, the region and the network)"),
                retry,
            )
        }
        _ => credentials_error(e).unwrap_or_else(|| {
            (
                FetchClass::Unreachable,
                "the request to AWS Secrets Manager could not be built".into(),
                Verdict::Fail,
            )
        }),
    }
}

/// A failure to find or load credentials, found in the error's causes.
fn credentials_error(
    e: &(dyn std::error::Error + 'static),
) -> Option<(FetchClass, String, Verdict)> {
    super::cause::<CredentialsError>(e).map(|ce| match ce {
        CredentialsError::CredentialsNotLoaded(_) => (
            FetchClass::Denied,
            "no AWS credentials were found: set AWS_PROFILE or AWS_ACCESS_KEY_ID and \
                     AWS_SECRET_ACCESS_KEY, run `aws sso login`, or run with a role"
                .into(),
            Verdict::Fail,
        ),
        CredentialsError::ProviderTimedOut(_) => (
            FetchClass::Unreachable,
            "loading AWS credentials timed out".into(),
            Verdict::Retry(None),
        ),
        CredentialsError::InvalidConfiguration(_) => (
            FetchClass::Unconfigured,
            "the AWS credential configuration is invalid (check the profile and \
                     AWS_* variables)"
                .into(),
            Verdict::Fail,
        ),
        _ => (
            FetchClass::Denied,
            "AWS credentials could not be loaded: a source in the credential chain \
                     (profile, SSO, web identity, container or instance metadata) failed; \
                     check the profile, or run `aws sso login` if it uses SSO"
                .into(),
            Verdict::Fail,
        ),
    })
}

/// Classifies an AWS error code (the message is read only to tell a secret
/// scheduled for deletion from other invalid requests; it is never shown).
fn classify(
    code: Option<&str>,
    message: Option<&str>,
    status: Option<u16>,
    pinned: bool,
) -> (FetchClass, String, Verdict) {
    let code = code.filter(|c| {
        c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
    });
    let shown = match (code, status) {
        (Some(c), _) => c.to_owned(),
        (None, Some(s)) => format!("HTTP {s}"),
        (None, None) => "no error code".to_owned(),
    };
    let fail = |class, text: &str| (class, format!("{text} ({shown})"), Verdict::Fail);
    match code {
        Some("ResourceNotFoundException") if pinned => fail(
            FetchClass::NotFound,
            "this version of the secret does not exist in AWS Secrets Manager",
        ),
        Some("ResourceNotFoundException") => fail(
            FetchClass::NotFound,
            "the secret does not exist in AWS Secrets Manager (or has no current value)",
        ),
        Some("InvalidRequestException")
            if message.is_some_and(|m| m.contains("deletion") || m.contains("deleted")) =>
        {
            fail(FetchClass::NotFound, "the secret is scheduled for deletion")
        }
        Some("InvalidRequestException" | "InvalidParameterException") => fail(
            FetchClass::Invalid,
            "AWS Secrets Manager refused the request as invalid: check the secret id, \
             version_stage and version_id",
        ),
        Some("DecryptionFailure") => fail(
            FetchClass::Denied,
            "AWS could not decrypt the secret with its KMS key: the credentials need \
             kms:Decrypt on that key",
        ),
        Some("AccessDeniedException" | "AccessDenied") => fail(
            FetchClass::Denied,
            "access denied: the credentials need secretsmanager:GetSecretValue on this secret",
        ),
        Some("UnrecognizedClientException" | "InvalidClientTokenId") => fail(
            FetchClass::Denied,
            "AWS does not recognise the access key: check AWS_ACCESS_KEY_ID, AWS_PROFILE \
             or the SSO session",
        ),
        Some("ExpiredTokenException" | "ExpiredToken" | "RequestExpired") => fail(
            FetchClass::Denied,
            "the AWS credentials have expired: refresh them (for SSO, `aws sso login`)",
        ),
        Some("InvalidSignatureException" | "SignatureDoesNotMatch" | "IncompleteSignature") => {
            fail(
                FetchClass::Denied,
                "AWS rejected the request signature: the secret access key does not match \
                 the key id, or the clock is wrong",
            )
        }
        Some(
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded",
        ) => (
            FetchClass::Throttled,
            format!("AWS Secrets Manager kept throttling the requests ({shown})"),
            Verdict::Retry(None),
        ),
        _ if status == Some(429) => (
            FetchClass::Throttled,
            format!("AWS Secrets Manager kept throttling the requests ({shown})"),
            Verdict::Retry(None),
        ),
        Some("InternalServiceError" | "InternalFailure" | "ServiceUnavailable") => (
            FetchClass::Unreachable,
            format!("AWS Secrets Manager kept failing ({shown})"),
            Verdict::Retry(None),
        ),
        _ if status.is_some_and(|s| s >= 500) => (
            FetchClass::Unreachable,
            format!("AWS Secrets Manager kept failing ({shown})"),
            Verdict::Retry(None),
        ),
        _ => fail(
            FetchClass::Unreachable,
            "AWS Secrets Manager returned an unexpected error",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        let l = AwsLocator::parse("prod/db:password").unwrap_or_default();
        assert_eq!(
            (l.secret_id.as_str(), l.key.as_deref()),
            ("prod/db", Some("password"))
        );
        let l = AwsLocator::parse("prod/db").unwrap_or_default();
        assert_eq!(l.key, None);
        // The key follows the last colon, and a name cannot hold a colon.
        assert!(AwsLocator::parse("a:b:c").is_err());
    }

    #[test]
    fn arns() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf";
        let l = AwsLocator::parse(arn).unwrap_or_default();
        assert_eq!((l.secret_id.as_str(), l.key), (arn, None));
        let l = AwsLocator::parse(&format!("{arn}:password")).unwrap_or_default();
        assert_eq!(
            (l.secret_id.as_str(), l.key.as_deref()),
            (arn, Some("password"))
        );
        assert!(AwsLocator::parse("arn:aws:s3:::bucket").is_err());
    }

    #[test]
    fn query() {
        let l =
            AwsLocator::parse("x:k?region=eu-west-1&version_stage=AWSPREVIOUS").unwrap_or_default();
        assert_eq!(l.region.as_deref(), Some("eu-west-1"));
        assert_eq!(l.version_stage.as_deref(), Some("AWSPREVIOUS"));
        assert_eq!(
            l.to_string(),
            "x:k?region=eu-west-1&version_stage=AWSPREVIOUS"
        );
        assert!(AwsLocator::parse("x?regoin=eu").is_err());
        assert!(AwsLocator::parse("x?region=EU WEST").is_err());
        assert!(AwsLocator::parse("x:").is_err());
        assert!(AwsLocator::parse("bad name").is_err());
    }

    #[test]
    fn fetch_keys_share_the_default_stage() {
        let a = AwsLocator::parse("x:k").unwrap_or_default().fetch_key();
        let b = AwsLocator::parse("x?version_stage=AWSCURRENT")
            .unwrap_or_default()
            .fetch_key();
        assert_eq!(a, b);
        assert!(!a.is_pinned());
        let p = AwsLocator::parse("x?version_stage=AWSPREVIOUS").unwrap_or_default();
        assert!(p.fetch_key() != a && p.is_pinned());
        assert!(AwsLocator::parse("x?version_id=v1")
            .unwrap_or_default()
            .is_pinned());
    }

    #[test]
    fn batch_entries_match_names_full_and_partial_arns() {
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf";
        let partial = "arn:aws:secretsmanager:us-east-1:1:secret:prod/db";
        for id in ["prod/db", arn, partial] {
            assert!(same_secret(id, Some("prod/db"), Some(arn)), "{id}");
        }
        assert!(!same_secret("prod/d", Some("prod/db"), Some(arn)));
        assert!(!same_secret(
            "arn:aws:secretsmanager:us-east-1:1:secret:prod/d",
            Some("prod/db"),
            Some(arn)
        ));
    }

    #[test]
    fn error_codes_decide_class_and_retry() {
        let c = |code, msg, status| {
            let (class, text, verdict) = classify(code, msg, status, false);
            (class, verdict, text)
        };
        assert_eq!(
            c(Some("ResourceNotFoundException"), None, Some(400)).0,
            FetchClass::NotFound
        );
        let (class, _, text) = c(
            Some("InvalidRequestException"),
            Some("You can't perform this operation on the secret because it was marked for deletion."),
            Some(400),
        );
        assert_eq!(class, FetchClass::NotFound);
        assert!(text.contains("scheduled for deletion") && !text.contains("You can't"));
        for denied in [
            "AccessDeniedException",
            "UnrecognizedClientException",
            "ExpiredTokenException",
            "InvalidSignatureException",
            "DecryptionFailure",
        ] {
            let (class, verdict, _) = c(Some(denied), None, Some(400));
            assert_eq!(
                (class, verdict),
                (FetchClass::Denied, Verdict::Fail),
                "{denied}"
            );
        }
        assert_eq!(
            c(Some("ThrottlingException"), None, Some(400)).1,
            Verdict::Retry(None)
        );
        assert_eq!(c(None, None, Some(429)).0, FetchClass::Throttled);
        assert_eq!(c(None, None, Some(503)).1, Verdict::Retry(None));
        // A code that is not a plain token (an HTML page, say) is never shown.
        let (_, _, text) = c(Some("<html>secret</html>"), None, Some(400));
        assert!(!text.contains("html") && text.contains("HTTP 400"));
    }
}
