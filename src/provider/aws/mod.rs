//! AWS Secrets Manager: locators (`locator`) and the provider.
//!
//! ```yaml
//! password: <<aws|prod/db:password?region=eu-west-1>>
//! secrets:
//!   API_KEY:
//!     aws: { secret_id: prod/keys, key: api_key, version_stage: AWSPREVIOUS }
//! ```
//!
//! `SECRET_ID[:JSON_KEY][?region=R&version_stage=S&version_id=V&profile=P&role_arn=A]`.
//! In an ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`) the JSON key is
//! what follows the seventh colon; in a name it is what follows the last colon.
//! `role_arn` names an IAM role whose session (assumed through STS with the
//! profile's credentials) reads the secret, so one config reads several accounts.
//!
//! The client is configured as the AWS CLI is: the default credential chain (env,
//! shared profiles, SSO, web identity, container and instance metadata),
//! `AWS_REGION`/`AWS_PROFILE` and `AWS_ENDPOINT_URL`. Distinct current secrets are
//! fetched with `BatchGetSecretValue`, at most 20 per call; pinned versions with
//! `GetSecretValue`; every call runs under one concurrency bound and one deadline,
//! with our own jittered retries (the SDK's are off, so that every provider retries
//! alike). Errors are reported in our words from the error code alone: no SDK
//! message, body or header is ever shown.
//!
//! What is not Secrets Manager's own (the SDK configuration, the HTTP/TLS stack,
//! the error codes every AWS service shares) is in `sdk`, for any AWS service's
//! provider to reuse.

pub(crate) mod locator;
pub(crate) mod sdk;

use std::collections::HashMap;
use std::path::Path;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::Client;
use futures_util::stream::{self, StreamExt as _};

use super::retry::{self, Failure, Policy, Verdict};
use super::{
    FetchClass, FetchError, Fields, Health, LocatorError, Provider, Reach, Readability, Settings,
    VersionCheck,
};
use crate::secret::SecretBytes;
use locator::CURRENT;
use sdk::{Code, HttpResponse, Service};

pub(crate) use locator::AwsLocator;

/// AWS Secrets Manager, as its messages and error codes need it.
const SECRETS_MANAGER: Service = Service {
    name: "AWS Secrets Manager",
    action: "secretsmanager:GetSecretValue",
    item: "secret",
    codes: secrets_manager_codes,
};

/// Secrets Manager as `doctor` asks it: `DescribeSecret`, which reads no value.
const DESCRIBE: Service = Service {
    action: "secretsmanager:DescribeSecret",
    ..SECRETS_MANAGER
};

/// Secrets Manager's own error codes.
fn secrets_manager_codes(c: &Code<'_>) -> Option<(FetchClass, &'static str)> {
    Some(match c.code {
        "ResourceNotFoundException" if c.pinned => (
            FetchClass::NotFound,
            "this version of the secret does not exist in AWS Secrets Manager",
        ),
        "ResourceNotFoundException" => (
            FetchClass::NotFound,
            "the secret does not exist in AWS Secrets Manager (or has no current value)",
        ),
        // The message is read only to tell a secret scheduled for deletion from
        // other invalid requests; it is never shown.
        "InvalidRequestException"
            if c
                .message
                .is_some_and(|m| m.contains("deletion") || m.contains("deleted")) =>
        {
            (FetchClass::NotFound, "the secret is scheduled for deletion")
        }
        "InvalidRequestException" | "InvalidParameterException" => (
            FetchClass::Invalid,
            "AWS Secrets Manager refused the request as invalid: check the secret id, \
             version_stage and version_id",
        ),
        "DecryptionFailure" => (
            FetchClass::Denied,
            "AWS could not decrypt the secret with its KMS key: the credentials need \
             kms:Decrypt on that key",
        ),
        _ => return None,
    })
}

/// Fetches from AWS Secrets Manager. Nothing of the SDK is built until `fetch`.
pub(crate) struct AwsProvider {
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
        "role_arn",
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
            let err = sdk::not_started(e);
            requests.iter().map(|_| Err(err.clone())).collect()
        })
    }

    fn versions(&self, requests: &[&AwsLocator]) -> Vec<VersionCheck> {
        super::http::block_on(versions(requests, self.settings), |_| {
            requests.iter().map(|_| VersionCheck::Unknown).collect()
        })
    }

    fn diagnose(&self, requests: &[&AwsLocator]) -> (Health, Vec<Readability>) {
        super::http::block_on(diagnose(requests, self.settings), |e| {
            broken(requests.len(), sdk::not_started(e))
        })
    }

    fn configured() -> Option<String> {
        sdk::configured()
    }
}

/// `doctor`'s answer when no request can be made at all.
pub(crate) fn broken(n: usize, e: FetchError) -> (Health, Vec<Readability>) {
    let health = Health {
        credentials: sdk::credential_source(None),
        reach: Reach::Failed(e.clone()),
        identity: Ok(None),
    };
    (health, (0..n).map(|_| Readability::Failed(e.clone())).collect())
}

/// Where a locator's calls go.
fn target(l: &AwsLocator) -> sdk::Target<'_> {
    sdk::Target {
        profile: l.profile.as_deref(),
        // An ARN names its region; a `?region=` still wins.
        region: l.region.clone().or_else(|| arn_region(&l.secret_id)),
        role_arn: l.role_arn.as_deref(),
    }
}

/// The credentials' source and identity, and whether each secret (and its
/// pinned version or stage) exists, from `DescribeSecret`: no value is read.
async fn diagnose(locators: &[&AwsLocator], settings: Settings) -> (Health, Vec<Readability>) {
    let policy = Policy::within(settings.timeout);
    let http = match sdk::http() {
        Ok(http) => http,
        Err(e) => return broken(locators.len(), e),
    };
    let targets: Vec<sdk::Target<'_>> = locators.iter().map(|l| target(l)).collect();
    let health = sdk::health(&targets, &http, &policy).await;
    let mut results: Vec<Option<Readability>> = locators.iter().map(|_| None).collect();
    let Plan { groups, failed } = plan(locators, &http, &policy).await;
    for (i, e) in failed {
        results[i] = Some(Readability::Failed(e));
    }
    let calls = groups
        .into_iter()
        .flat_map(|(client, wanted)| wanted.into_iter().map(move |w| (client.clone(), w)));
    let found: Vec<(Vec<usize>, Readability)> = stream::iter(calls)
        .map(|(client, w)| {
            let policy = &policy;
            async move {
                let r = readable(&client, &w.locator, policy).await;
                (w.requests, r)
            }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    for (requests, r) in found {
        for i in requests {
            results[i] = Some(r.clone());
        }
    }
    let each = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Readability::Failed(FetchError::unanswered("AWS"))
            })
        })
        .collect();
    (health, each)
}

/// Whether `l` names a secret and version that exist, from `DescribeSecret`
/// (metadata only: no value, no KMS decryption).
async fn readable(client: &Client, l: &AwsLocator, policy: &Policy) -> Readability {
    let result = retry::run(
        policy,
        || client.describe_secret().secret_id(&l.secret_id).send(),
        |e| DESCRIBE.sdk_error(e, false).2,
    )
    .await;
    let out = match result {
        Ok(out) => out,
        Err(f) => return Readability::Failed(DESCRIBE.failure(f, false)),
    };
    let gone = |what: String| Readability::Failed(FetchError::new(FetchClass::NotFound, what));
    if out.deleted_date.is_some() {
        return gone("the secret is scheduled for deletion".to_owned());
    }
    let stages = out.version_ids_to_stages.unwrap_or_default();
    // A render asks for both a pinned id and a stage: both must hold.
    if let (Some(id), Some(stage)) = (&l.version_id, &l.version_stage) {
        if stages.get(id).is_some_and(|s| !s.iter().any(|x| x == stage)) {
            return gone(format!("version `{id}` of the secret is not labelled `{stage}`"));
        }
    }
    match named_version(l, &stages) {
        Ok(id) => Readability::Readable(Some(format!("version {id}"))),
        Err(why) => gone(why),
    }
}

/// The version id `l` names among a secret's versions (`DescribeSecret`'s id →
/// stage labels): its pinned id, or the one its stage (`AWSCURRENT` unless
/// given) labels; or why there is none.
fn named_version(
    l: &AwsLocator,
    stages: &std::collections::HashMap<String, Vec<String>>,
) -> Result<String, String> {
    match &l.version_id {
        Some(id) if stages.contains_key(id) => Ok(id.clone()),
        Some(id) => Err(format!("the secret has no version `{id}`")),
        None => {
            let stage = l.version_stage.as_deref().unwrap_or(CURRENT);
            stages
                .iter()
                .find(|(_, s)| s.iter().any(|x| x == stage))
                .map(|(id, _)| id.clone())
                .ok_or_else(|| format!("no version of the secret is labelled `{stage}`"))
        }
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
    let targets: Vec<sdk::Target<'_>> = locators.iter().map(|l| target(l)).collect();
    let (clients, routes) = sdk::clients(&targets, http, policy, |shared, region| {
        let conf = aws_sdk_secretsmanager::config::Builder::from(shared)
            .region(region)
            .build();
        Client::from_conf(conf)
    })
    .await;
    let mut groups: Vec<(Client, Vec<Wanted>, HashMap<WantedId, usize>)> = clients
        .into_iter()
        .map(|c| (c, Vec::new(), HashMap::new()))
        .collect();
    let mut failed = Vec::new();
    for (i, (l, route)) in locators.iter().zip(routes).enumerate() {
        let g = match route {
            Ok(g) => g,
            Err(e) => {
                failed.push((i, e));
                continue;
            }
        };
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
    let http = match sdk::http() {
        Ok(http) => http,
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
                Err(FetchError::unanswered("AWS"))
            })
        })
        .collect()
}

/// Each locator's current version id, from one `DescribeSecret` per distinct
/// secret (it reads no value and needs no KMS decryption).
async fn versions(locators: &[&AwsLocator], settings: Settings) -> Vec<VersionCheck> {
    let policy = Policy::within(settings.timeout);
    let mut results = vec![VersionCheck::Unknown; locators.len()];
    let Ok(http) = sdk::http() else {
        return results;
    };
    let Plan { groups, .. } = plan(locators, &http, &policy).await;
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
        |e| SECRETS_MANAGER.sdk_error(e, false).2,
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
    named_version(l, &stages).map_or(VersionCheck::Unknown, VersionCheck::Current)
}

/// The region field of a Secrets Manager ARN.
fn arn_region(id: &str) -> Option<String> {
    let region = id.strip_prefix("arn:")?.split(':').nth(2)?;
    (!region.is_empty()).then(|| region.to_owned())
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
        |e| SECRETS_MANAGER.sdk_error(e, l.is_pinned()).2,
    )
    .await;
    let result = match result {
        Ok(out) => value(out.secret_string, out.secret_binary, out.version_id),
        Err(f) => Err(SECRETS_MANAGER.failure(f, l.is_pinned())),
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
        |e| SECRETS_MANAGER.sdk_error(e, false).2,
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
            let err = SECRETS_MANAGER.failure(f, false);
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
            let (class, message, verdict) = SECRETS_MANAGER.classify(
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn secrets_manager_messages_read_as_before() {
        let text = |code, msg, pinned| SECRETS_MANAGER.classify(Some(code), msg, None, pinned).1;
        assert_eq!(
            text("ResourceNotFoundException", None, false),
            "the secret does not exist in AWS Secrets Manager (or has no current value) \
             (ResourceNotFoundException)"
        );
        assert_eq!(
            text("ResourceNotFoundException", None, true),
            "this version of the secret does not exist in AWS Secrets Manager \
             (ResourceNotFoundException)"
        );
        assert_eq!(
            text("InvalidRequestException", Some("marked for deletion"), false),
            "the secret is scheduled for deletion (InvalidRequestException)"
        );
        assert_eq!(
            text("AccessDeniedException", None, false),
            "access denied: the credentials need secretsmanager:GetSecretValue on this \
             secret (AccessDeniedException)"
        );
        assert_eq!(
            text("Throttling", None, false),
            "AWS Secrets Manager kept throttling the requests (Throttling)"
        );
        assert_eq!(
            SECRETS_MANAGER.failure::<aws_sdk_secretsmanager::Error>(Failure::TimedOut, false),
            FetchError::new(
                FetchClass::Unreachable,
                "AWS Secrets Manager did not answer in time"
            )
        );
    }

    #[test]
    fn error_codes_decide_class_and_retry() {
        let c = |code, msg, status| {
            let (class, text, verdict) = SECRETS_MANAGER.classify(code, msg, status, false);
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
