//! What every AWS service's provider shares: the SDK configuration as the AWS CLI
//! loads it (the default credential chain, `AWS_PROFILE` or a named profile,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`), one HTTP/TLS stack (rustls with ring,
//! `AWS_CA_BUNDLE`, `HTTPS_PROXY`), and errors in our words.
//!
//! A service describes itself once, as a [`Service`]: its name in messages, the
//! IAM action an "access denied" names, and a classifier for its own error codes.
//! Credentials, signatures, throttling, server faults, connection and TLS failures
//! are classified here alike for every service, from the error code alone: no SDK
//! message, body or header is ever shown.
//!
//! A service's provider then, per fetch: builds the HTTP client once ([`http`]),
//! gets one client of its SDK per (profile, role, region) of its requests
//! ([`clients`], which loads each profile's configuration once and assumes each
//! role once), and reports what its calls return through [`Service::sdk_error`]
//! and [`Service::failure`].
//!
//! A request that names a role (`role_arn=`) is signed with that role's session:
//! STS `AssumeRole` with the profile's credentials as the base ones. Sessions are
//! kept per (profile, role) for the life of the process, shared by every AWS
//! service, and used until [`SESSION_MARGIN`] before they expire: a `watch` loop
//! builds new clients on every fetch but assumes a role again only when its
//! session runs out. A role ARN in a locator is checked by [`check_role_arn`].

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls::{TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::provider::retry::{self, Failure, Policy, Verdict};
use crate::provider::FetchClass;
use crate::provider::FetchError;
use crate::provider::LocatorError;

/// The raw response an SDK error carries.
pub(crate) type HttpResponse = aws_smithy_runtime_api::http::Response;

/// A classified failure: its class, what happened in our words, and whether
/// the call is worth retrying.
pub(crate) type Classified = (FetchClass, String, Verdict);

/// One AWS service, as its messages and error codes need it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Service {
    /// Its name in messages: `AWS Secrets Manager`.
    pub(crate) name: &'static str,
    /// The IAM action an "access denied" names: `secretsmanager:GetSecretValue`.
    pub(crate) action: &'static str,
    /// What a request reads, for that message: `secret`, `parameter`.
    pub(crate) item: &'static str,
    /// The service's own codes, asked before the ones every service shares:
    /// a class and a text (reported with the code, never retried), or `None`
    /// to leave the code to the shared ones.
    pub(crate) codes: fn(&Code<'_>) -> Option<(FetchClass, &'static str)>,
}

/// An error code a service answered with, as its classifier sees it. No
/// `Debug`: the service's message is never to be printed.
#[derive(Clone, Copy)]
pub(crate) struct Code<'a> {
    /// The code, a plain token (`ResourceNotFoundException`).
    pub(crate) code: &'a str,
    /// The service's message: read only to tell cases of one code apart, never
    /// shown.
    pub(crate) message: Option<&'a str>,
    /// Whether the request named a version other than the current one.
    pub(crate) pinned: bool,
}

impl Service {
    /// Classifies an error code (or, without one, an HTTP status).
    pub(crate) fn classify(
        &self,
        code: Option<&str>,
        message: Option<&str>,
        status: Option<u16>,
        pinned: bool,
    ) -> Classified {
        // Only a plain token is shown: a proxy's HTML page is not an error code.
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
        let own = code.and_then(|code| {
            (self.codes)(&Code {
                code,
                message,
                pinned,
            })
        });
        if let Some((class, text)) = own {
            return fail(class, text);
        }
        let name = self.name;
        match code {
            Some("AccessDeniedException" | "AccessDenied") => (
                FetchClass::Denied,
                format!(
                    "access denied: the credentials need {} on this {} ({shown})",
                    self.action, self.item
                ),
                Verdict::Fail,
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
                format!("{name} kept throttling the requests ({shown})"),
                Verdict::Retry(None),
            ),
            _ if status == Some(429) => (
                FetchClass::Throttled,
                format!("{name} kept throttling the requests ({shown})"),
                Verdict::Retry(None),
            ),
            Some(
                "InternalServiceError"
                | "InternalServerError"
                | "InternalFailure"
                | "ServiceUnavailable",
            ) => (
                FetchClass::Unreachable,
                format!("{name} kept failing ({shown})"),
                Verdict::Retry(None),
            ),
            _ if status.is_some_and(|s| s >= 500) => (
                FetchClass::Unreachable,
                format!("{name} kept failing ({shown})"),
                Verdict::Retry(None),
            ),
            _ => (
                FetchClass::Unreachable,
                format!("{name} returned an unexpected error ({shown})"),
                Verdict::Fail,
            ),
        }
    }

    /// Classifies an SDK error without showing anything the service or SDK wrote.
    pub(crate) fn sdk_error<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        e: &SdkError<E, HttpResponse>,
        pinned: bool,
    ) -> Classified {
        let name = self.name;
        match e {
            SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                let mut c = self.classify(e.code(), e.message(), status, pinned);
                if let (Verdict::Retry(_), Some(r)) = (&c.2, e.raw_response()) {
                    c.2 = Verdict::Retry(retry::retry_after(r.headers().get("retry-after")));
                }
                c
            }
            SdkError::TimeoutError(_) => (
                FetchClass::Unreachable,
                self.no_answer(),
                Verdict::Retry(None),
            ),
            SdkError::DispatchFailure(d) => {
                if let Some(c) = credentials_error(e) {
                    return c;
                }
                if crate::provider::cause::<rustls::Error>(e).is_some() {
                    return (
                        FetchClass::Unreachable,
                        format!(
                            "the TLS connection to {name} failed: the server's certificate \
                             is not trusted or does not match (for a private CA, set \
                             AWS_CA_BUNDLE)"
                        ),
                        Verdict::Fail,
                    );
                }
                let what = if d.is_timeout() {
                    format!("timed out connecting to {name}")
                } else if d.is_io() {
                    format!("cannot connect to {name}")
                } else {
                    format!("the request to {name} could not be sent")
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
                    format!("the request to {name} could not be built"),
                    Verdict::Fail,
                )
            }),
        }
    }

    /// The error a call that failed for good reports.
    pub(crate) fn failure<E: ProvideErrorMetadata + std::error::Error + 'static>(
        &self,
        f: Failure<SdkError<E, HttpResponse>>,
        pinned: bool,
    ) -> FetchError {
        match f {
            Failure::Error(e) => {
                let (class, message, _) = self.sdk_error(&e, pinned);
                FetchError::new(class, message)
            }
            Failure::TimedOut => FetchError::new(FetchClass::Unreachable, self.no_answer()),
        }
    }

    fn no_answer(&self) -> String {
        format!("{} did not answer in time", self.name)
    }
}

/// A failure to find or load credentials, found in the error's causes.
fn credentials_error(e: &(dyn std::error::Error + 'static)) -> Option<Classified> {
    crate::provider::cause::<CredentialsError>(e).map(|ce| match ce {
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

/// The error every request reports when no runtime could be started for the
/// SDK.
pub(crate) fn not_started(e: impl fmt::Display) -> FetchError {
    FetchError::new(
        FetchClass::Unreachable,
        format!("cannot start the AWS client: {e}"),
    )
}

/// The HTTP client every service's SDK client of a run shares, trusting the
/// system's roots or `AWS_CA_BUNDLE`'s.
pub(crate) fn http() -> Result<SharedHttpClient, FetchError> {
    tls_context().map(http_client)
}

/// Where one request goes: the profile whose configuration (credentials,
/// default region, endpoint) it uses, and its own region if it names one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target<'a> {
    /// A shared-config profile; `None` for the default chain.
    pub(crate) profile: Option<&'a str>,
    /// The request's own region (`?region=`, an ARN's), winning over the
    /// profile's.
    pub(crate) region: Option<String>,
    /// A role to assume through STS for this request (`?role_arn=`), with the
    /// profile's credentials as the base ones.
    pub(crate) role_arn: Option<&'a str>,
}

/// A service's clients for a run's requests: one per (profile, role, region),
/// in the order the targets first name them, built by `build` from the
/// profile's loaded configuration (with the role's session as its credentials
/// when the target names a role) and the region. For each target, the index of
/// its client, or why it has none (no region, the configuration not loaded in
/// time, the role not assumed).
pub(crate) async fn clients<C>(
    targets: &[Target<'_>],
    http: &SharedHttpClient,
    policy: &Policy,
    build: impl Fn(&SdkConfig, Region) -> C,
) -> (Vec<C>, Vec<Result<usize, FetchError>>) {
    let mut clients = Vec::new();
    let mut routes: Vec<Option<Result<usize, FetchError>>> = targets.iter().map(|_| None).collect();
    // One SDK configuration (credentials, default region, endpoint) per profile.
    let mut profiles: Vec<Option<&str>> = Vec::new();
    for t in targets {
        if !profiles.contains(&t.profile) {
            profiles.push(t.profile);
        }
    }
    for profile in profiles {
        let mine = || targets.iter().enumerate().filter(move |(_, t)| t.profile == profile);
        let shared = match load(profile, http.clone(), policy).await {
            Ok(shared) => shared,
            Err(e) => {
                for (i, _) in mine() {
                    routes[i] = Some(Err(e.clone()));
                }
                continue;
            }
        };
        // The configuration of each role the profile's requests name (and of
        // no role): one session per role however many requests and regions use
        // it, the roles assumed concurrently.
        let mut roles: Vec<(Option<&str>, Option<String>)> = Vec::new();
        for (_, t) in mine() {
            if !roles.iter().any(|(r, _)| *r == t.role_arn) {
                roles.push((t.role_arn, t.region.clone()));
            }
        }
        let configs: Vec<Result<SdkConfig, FetchError>> =
            futures_util::future::join_all(roles.iter().map(|(role, first_region)| {
                let shared = &shared;
                async move {
                    let Some(role) = role else {
                        return Ok(shared.clone());
                    };
                    let creds = session(shared, profile, role, first_region.clone(), policy).await?;
                    Ok(shared
                        .to_builder()
                        .credentials_provider(SharedCredentialsProvider::new(creds))
                        .build())
                }
            }))
            .await;
        let mut made: Vec<(Option<&str>, String, usize)> = Vec::new();
        for (i, t) in mine() {
            let config = roles
                .iter()
                .position(|(r, _)| *r == t.role_arn)
                .and_then(|k| configs.get(k));
            let config = match config {
                Some(Ok(config)) => config,
                Some(Err(e)) => {
                    routes[i] = Some(Err(e.clone()));
                    continue;
                }
                // Every target's role was collected above.
                None => continue,
            };
            let region = match region(t.region.clone(), &shared, profile) {
                Ok(region) => region,
                Err(e) => {
                    routes[i] = Some(Err(e));
                    continue;
                }
            };
            let c = match made
                .iter()
                .find(|(r, g, _)| *r == t.role_arn && *g == region)
            {
                Some(&(_, _, c)) => c,
                None => {
                    clients.push(build(config, Region::new(region.clone())));
                    made.push((t.role_arn, region, clients.len() - 1));
                    clients.len() - 1
                }
            };
            routes[i] = Some(Ok(c));
        }
    }
    // Every target's profile and role were visited, so each target is routed.
    let routes = routes
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(no_region(None))))
        .collect();
    (clients, routes)
}

/// How long before it expires a session is no longer used: it must outlast the
/// fetch that takes it, and a fetch's deadline is far shorter.
pub(crate) const SESSION_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A session's key: the profile whose credentials assume the role, and the role.
type SessionKey = (Option<String>, String);

/// Where a (profile, role)'s session is kept. Its lock is held while the role
/// is assumed, so that services fetching at the same time (each on its own
/// thread and runtime) wait for one `AssumeRole` instead of each making one.
type Slot = Arc<tokio::sync::Mutex<Option<Credentials>>>;

/// The sessions of assumed roles, for the life of the process.
static SESSIONS: Mutex<Vec<(SessionKey, Slot)>> = Mutex::new(Vec::new());

/// Whether a session that expires at `expiry` may still be used at `now`. One
/// without an expiry is not kept: it could not tell when to renew it.
fn fresh(expiry: Option<SystemTime>, now: SystemTime) -> bool {
    expiry.is_some_and(|e| e.duration_since(now).is_ok_and(|left| left > SESSION_MARGIN))
}

/// `role`'s session for `profile`'s requests: the kept one while it is fresh,
/// else a new one from STS (which is then kept).
async fn session(
    shared: &SdkConfig,
    profile: Option<&str>,
    role: &str,
    first_region: Option<String>,
    policy: &Policy,
) -> Result<Credentials, FetchError> {
    let slot = slot((profile.map(str::to_owned), role.to_owned()));
    let mut kept = tokio::time::timeout_at(policy.deadline, slot.lock())
        .await
        .map_err(|_| named(role, STS.failure::<aws_sdk_sts::Error>(Failure::TimedOut, false)))?;
    if let Some(c) = kept.as_ref().filter(|c| fresh(c.expiry(), SystemTime::now())) {
        return Ok(c.clone());
    }
    // STS in the profile's region, else the first request's, else the one
    // every account of the role's partition has.
    let sts_region = region(None, shared, profile)
        .ok()
        .or(first_region)
        .unwrap_or_else(|| partition_region(role).to_owned());
    let creds = assume(shared, role, sts_region, policy).await?;
    *kept = Some(creds.clone());
    Ok(creds)
}

/// The slot of (profile, role), made on first use.
fn slot(key: SessionKey) -> Slot {
    // A poisoned lock only means a thread panicked while holding it; the list
    // is changed by single pushes, so it is always whole.
    let mut sessions = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, slot)) = sessions.iter().find(|(k, _)| *k == key) {
        return Arc::clone(slot);
    }
    let slot = Slot::default();
    sessions.push((key, Arc::clone(&slot)));
    slot
}

/// `e`, saying which role could not be assumed.
fn named(role: &str, e: FetchError) -> FetchError {
    FetchError::new(
        e.class,
        format!("cannot assume role `{role}`: {}", e.message),
    )
}

/// AWS STS, as a failed `AssumeRole` names it.
const STS: Service = Service {
    name: "AWS STS",
    action: "sts:AssumeRole",
    item: "role",
    codes: sts_codes,
};

/// STS's own error codes for `AssumeRole`.
fn sts_codes(c: &Code<'_>) -> Option<(FetchClass, &'static str)> {
    Some(match c.code {
        "AccessDenied" | "AccessDeniedException" => (
            FetchClass::Denied,
            "access denied: the base credentials need sts:AssumeRole on the role, and the \
             role's trust policy must allow them",
        ),
        "RegionDisabledException" => (
            FetchClass::Unconfigured,
            "AWS STS is not activated in this region for the account: activate it, or set \
             the profile's region to one where it is",
        ),
        "ValidationError" | "MalformedPolicyDocument" | "PackedPolicyTooLarge" => (
            FetchClass::Invalid,
            "AWS STS refused the request as invalid: check the role ARN",
        ),
        _ => return None,
    })
}

/// One `AssumeRole` call (retried like any other), with the profile's
/// credentials as the base ones; every error names the role, never a
/// credential.
async fn assume(
    shared: &SdkConfig,
    role: &str,
    region: String,
    policy: &Policy,
) -> Result<Credentials, FetchError> {
    let conf = aws_sdk_sts::config::Builder::from(shared)
        .region(Region::new(region))
        .build();
    let sts = aws_sdk_sts::Client::from_conf(conf);
    // CloudTrail shows which program, and which run, used the role.
    let name = format!("keyfill-{}", std::process::id());
    let out = retry::run(
        policy,
        || sts.assume_role().role_arn(role).role_session_name(&name).send(),
        |e| STS.sdk_error(e, false).2,
    )
    .await
    .map_err(|f| named(role, STS.failure(f, false)))?;
    let c = out.credentials.ok_or_else(|| {
        named(role, FetchError::new(
            FetchClass::Unreachable,
            "AWS STS answered without credentials",
        ))
    })?;
    let expiry = SystemTime::try_from(c.expiration).ok();
    Ok(Credentials::new(
        c.access_key_id,
        c.secret_access_key,
        Some(c.session_token),
        expiry,
        "keyfill-assume-role",
    ))
}

/// A region whose STS every account of the role's partition can use.
fn partition_region(role: &str) -> &'static str {
    match role.split(':').nth(1) {
        Some("aws-cn") => "cn-north-1",
        Some("aws-us-gov") => "us-gov-west-1",
        _ => "us-east-1",
    }
}

/// Checks a `role_arn` as every AWS locator takes it: an IAM role ARN,
/// `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`. The error points at the
/// `role_arn` field (or query parameter).
pub(crate) fn check_role_arn(arn: &str) -> Result<(), LocatorError> {
    if arn.trim().is_empty() {
        return Err(LocatorError::new("`role_arn` is empty").field("role_arn"));
    }
    let bad = |why: &str| {
        LocatorError::new(format!("`{arn}` is not an IAM role ARN: {why}"))
            .field("role_arn")
            .hint("arn:PARTITION:iam::ACCOUNT:role/NAME, e.g. arn:aws:iam::123456789012:role/reader")
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [scheme, partition, service, region, account, resource] = parts[..] else {
        return Err(bad("it has fewer than six `:`-separated parts"));
    };
    if scheme != "arn" {
        return Err(bad("it does not begin with `arn:`"));
    }
    if partition.is_empty()
        || !partition
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad("the partition is not a partition name (`aws`, `aws-cn`, …)"));
    }
    if service != "iam" {
        return Err(bad("the service is not `iam`"));
    }
    if !region.is_empty() {
        return Err(bad("an IAM ARN names no region"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the account is not 12 digits"));
    }
    let Some(path) = resource.strip_prefix("role/") else {
        return Err(bad("the resource does not begin with `role/`"));
    };
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.is_empty() || name.len() > 64 {
        return Err(bad("the role name is empty or longer than 64 characters"));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c);
    if let Some(c) = path.chars().find(|c| !allowed(*c)) {
        return Err(bad(&format!(
            "it contains `{c}`; role paths and names use letters, digits and +=,.@_-"
        )));
    }
    if path.contains("//") {
        return Err(bad("the role path has an empty segment"));
    }
    Ok(())
}

/// AWS STS, as `doctor`'s `GetCallerIdentity` names it (the call needs no
/// permission, so a refusal is about the credentials themselves).
const STS_IDENTITY: Service = Service {
    name: "AWS STS",
    action: "sts:GetCallerIdentity",
    item: "caller",
    codes: no_codes,
};

fn no_codes(_: &Code<'_>) -> Option<(FetchClass, &'static str)> {
    None
}

/// What in the environment configures AWS, for `doctor` without a config:
/// the first of the credential chain's sources that is set (variables, the
/// shared files), or `None`.
pub(crate) fn configured() -> Option<String> {
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ] {
        if set(var) {
            return Some(format!("{var} is set"));
        }
    }
    shared_files()
        .into_iter()
        .find(|(_, path)| path.is_file())
        .map(|(_, path)| format!("`{}` exists", path.display()))
}

/// The shared config and credentials files, where the SDK looks for them:
/// (whether it is the config file, path).
fn shared_files() -> Vec<(bool, std::path::PathBuf)> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(".aws").join(default)))
    };
    let mut out = Vec::new();
    if let Some(c) = file("AWS_CONFIG_FILE", "config") {
        out.push((true, c));
    }
    if let Some(c) = file("AWS_SHARED_CREDENTIALS_FILE", "credentials") {
        out.push((false, c));
    }
    out
}

/// The settings a profile's sections in the shared files give, by key (only
/// the keys that say where credentials come from are kept; a key's value is
/// kept only where it names something, never for key material).
fn profile_keys(profile: &str) -> Option<Vec<(String, String)>> {
    profile_keys_in(&shared_files(), profile)
}

/// [`profile_keys`] in the files given as (whether it is the config file, path).
fn profile_keys_in(
    files: &[(bool, std::path::PathBuf)],
    profile: &str,
) -> Option<Vec<(String, String)>> {
    const NAMED: &[&str] = &["role_arn", "source_profile", "sso_session", "credential_source"];
    const KNOWN: &[&str] = &[
        "aws_access_key_id",
        "sso_start_url",
        "credential_process",
        "web_identity_token_file",
    ];
    let mut found = None;
    for (is_config, path) in files {
        let is_config = *is_config;
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        let mut inside = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(head) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let head = head.trim();
                let name = if is_config && head != "default" {
                    head.strip_prefix("profile")
                        .filter(|r| r.starts_with(char::is_whitespace))
                        .map(str::trim)
                } else {
                    Some(head)
                };
                inside = name == Some(profile);
                if inside && found.is_none() {
                    found = Some(Vec::new());
                }
                continue;
            }
            let (Some(keys), true) = (found.as_mut(), inside) else {
                continue;
            };
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let k = k.trim().to_ascii_lowercase();
            if NAMED.contains(&k.as_str()) {
                keys.push((k, v.trim().to_owned()));
            } else if KNOWN.contains(&k.as_str()) {
                keys.push((k, String::new()));
            }
        }
    }
    found
}

/// Where the credentials of `profile` (or of the default chain) come from, as
/// far as the environment and the shared files tell; names only, never key
/// material.
pub(crate) fn credential_source(profile: Option<&str>) -> String {
    let set = |v: &str| std::env::var_os(v).is_some_and(|x| !x.is_empty());
    let named = match profile {
        Some(p) => p.to_owned(),
        None if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") => {
            let session = if set("AWS_SESSION_TOKEN") {
                " with AWS_SESSION_TOKEN"
            } else {
                ""
            };
            return format!("environment (AWS_ACCESS_KEY_ID{session})");
        }
        None => std::env::var("AWS_PROFILE")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "default".to_owned()),
    };
    if let Some(keys) = profile_keys(&named) {
        let get = |k: &str| keys.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let how = if let Some(role) = get("role_arn") {
            let from = get("source_profile")
                .map(|p| format!("profile `{p}`"))
                .or_else(|| get("credential_source").map(|c| c.to_owned()))
                .or_else(|| get("web_identity_token_file").map(|_| "web identity".to_owned()))
                .unwrap_or_else(|| "?".to_owned());
            format!("assumes role `{role}` with {from}")
        } else if get("sso_session").is_some() || get("sso_start_url").is_some() {
            "SSO".to_owned()
        } else if get("credential_process").is_some() {
            "credential_process".to_owned()
        } else if get("aws_access_key_id").is_some() {
            "static keys".to_owned()
        } else {
            "no credentials of its own".to_owned()
        };
        return format!("profile `{named}`: {how}");
    }
    if profile.is_some() || set("AWS_PROFILE") {
        return format!("profile `{named}` (not in the shared config or credentials file)");
    }
    if set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN") {
        return "web identity (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN)".to_owned();
    }
    if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") || set("AWS_CONTAINER_CREDENTIALS_FULL_URI") {
        return "container role (ECS credentials endpoint)".to_owned();
    }
    let imds_off = std::env::var("AWS_EC2_METADATA_DISABLED")
        .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if imds_off {
        "none found (instance metadata disabled)".to_owned()
    } else {
        "instance role (EC2 instance metadata), if any".to_owned()
    }
}

/// `doctor`'s view of the AWS configuration of `targets`: where each distinct
/// profile's credentials come from, and the identity STS `GetCallerIdentity`
/// says each distinct (profile, role) acts as (the default chain's when there
/// are no targets).
pub(crate) async fn health(
    targets: &[Target<'_>],
    http: &SharedHttpClient,
    policy: &Policy,
) -> crate::provider::Health {
    use crate::provider::{Health, Reach};
    let mut distinct: Vec<Target<'_>> = Vec::new();
    for t in targets {
        if !distinct
            .iter()
            .any(|d| d.profile == t.profile && d.role_arn == t.role_arn)
        {
            distinct.push(t.clone());
        }
    }
    if distinct.is_empty() {
        distinct.push(Target {
            profile: None,
            region: None,
            role_arn: None,
        });
    }
    let mut profiles: Vec<Option<&str>> = distinct.iter().map(|t| t.profile).collect();
    profiles.dedup();
    let credentials = profiles
        .iter()
        .map(|p| credential_source(*p))
        .collect::<Vec<_>>()
        .join("; ");
    let (clients, routes) = clients(&distinct, http, policy, |shared, region| {
        let conf = aws_sdk_sts::config::Builder::from(shared)
            .region(region)
            .build();
        aws_sdk_sts::Client::from_conf(conf)
    })
    .await;
    // Each target: whether STS answered, and the ARN or why not.
    let mut found: Vec<(bool, Result<String, FetchError>)> = Vec::new();
    for route in routes {
        let Some(client) = route.as_ref().ok().and_then(|&i| clients.get(i)) else {
            let e = route.err().unwrap_or_else(|| no_region(None));
            found.push((false, Err(e)));
            continue;
        };
        let asked = retry::run(
            policy,
            || client.get_caller_identity().send(),
            |e| STS_IDENTITY.sdk_error(e, false).2,
        )
        .await;
        found.push(match asked {
            Ok(out) => (true, Ok(out.arn.unwrap_or_else(|| "?".to_owned()))),
            Err(f) => {
                let answered = matches!(&f, Failure::Error(SdkError::ServiceError(_)));
                (answered, Err(STS_IDENTITY.failure(f, false)))
            }
        });
    }
    let label = |t: &Target<'_>| {
        let mut parts = Vec::new();
        if let Some(p) = t.profile {
            parts.push(format!("profile `{p}`"));
        }
        if let Some(r) = t.role_arn {
            parts.push(format!("role `{r}`"));
        }
        parts.join(", ")
    };
    let several = distinct.len() > 1;
    let who: Vec<String> = distinct
        .iter()
        .zip(&found)
        .filter_map(|(t, (_, r))| {
            let arn = r.as_ref().ok()?;
            Some(if several && !label(t).is_empty() {
                format!("{}: {arn}", label(t))
            } else {
                arn.clone()
            })
        })
        .collect();
    let reach = if found.iter().any(|(answered, _)| *answered) {
        Reach::Reachable
    } else {
        match found.iter().find_map(|(_, r)| r.as_ref().err()) {
            Some(e) => Reach::Failed(e.clone()),
            None => Reach::Reachable,
        }
    };
    let refused = found
        .iter()
        .find_map(|(answered, r)| r.as_ref().err().filter(|_| *answered));
    let identity = match refused {
        Some(e) => Err(e.clone()),
        None if who.is_empty() => Ok(None),
        None => Ok(Some(who.join("; "))),
    };
    Health {
        credentials,
        reach,
        identity,
    }
}

/// Loads `profile`'s configuration within the policy's deadline: region
/// discovery may ask instance metadata.
async fn load(
    profile: Option<&str>,
    http: SharedHttpClient,
    policy: &Policy,
) -> Result<SdkConfig, FetchError> {
    tokio::time::timeout_at(policy.deadline, load_config(profile, http, policy))
        .await
        .map_err(|_| {
            FetchError::new(
                FetchClass::Unreachable,
                "loading the AWS configuration (region, profile) did not finish in time",
            )
        })
}

/// The region a request goes to: its own, else the loaded configuration's.
fn region(own: Option<String>, sdk: &SdkConfig, profile: Option<&str>) -> Result<String, FetchError> {
    own.or_else(|| sdk.region().map(|r| r.as_ref().to_owned()))
        .ok_or_else(|| no_region(profile))
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
    http: SharedHttpClient,
    policy: &Policy,
) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http.clone())
        // Our own retries, alike for every provider.
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
fn http_client(ctx: TlsContext) -> SharedHttpClient {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn parameter_store(c: &Code<'_>) -> Option<(FetchClass, &'static str)> {
        match c.code {
            "ParameterNotFound" => Some((FetchClass::NotFound, "the parameter does not exist")),
            _ => None,
        }
    }

    fn no_codes(_: &Code<'_>) -> Option<(FetchClass, &'static str)> {
        None
    }

    const ONE: Service = Service {
        name: "AWS Systems Manager Parameter Store",
        action: "ssm:GetParameters",
        item: "parameter",
        codes: parameter_store,
    };

    const OTHER: Service = Service {
        name: "AWS Other",
        action: "other:Get",
        item: "thing",
        codes: no_codes,
    };

    #[test]
    fn shared_codes_read_alike_for_every_service_and_name_it() {
        for code in ["ThrottlingException", "ExpiredTokenException", "AccessDenied"] {
            let one = ONE.classify(Some(code), None, Some(400), false);
            let other = OTHER.classify(Some(code), None, Some(400), false);
            assert_eq!((one.0, &one.2), (other.0, &other.2), "{code}");
        }
        let (class, text, verdict) = ONE.classify(Some("ThrottlingException"), None, None, false);
        assert_eq!((class, verdict), (FetchClass::Throttled, Verdict::Retry(None)));
        assert_eq!(
            text,
            "AWS Systems Manager Parameter Store kept throttling the requests \
             (ThrottlingException)"
        );
        let (class, text, _) = OTHER.classify(Some("AccessDeniedException"), None, None, false);
        assert_eq!(class, FetchClass::Denied);
        assert_eq!(
            text,
            "access denied: the credentials need other:Get on this thing (AccessDeniedException)"
        );
        let (_, text, _) = ONE.classify(None, None, Some(503), false);
        assert_eq!(
            text,
            "AWS Systems Manager Parameter Store kept failing (HTTP 503)"
        );
    }

    #[test]
    fn a_services_own_codes_go_through_its_classifier() {
        let (class, text, verdict) = ONE.classify(Some("ParameterNotFound"), None, None, false);
        assert_eq!((class, verdict), (FetchClass::NotFound, Verdict::Fail));
        assert_eq!(text, "the parameter does not exist (ParameterNotFound)");
        // Unknown to another service: an unexpected error, in its name.
        let (class, text, _) = OTHER.classify(Some("ParameterNotFound"), None, None, false);
        assert_eq!(class, FetchClass::Unreachable);
        assert_eq!(
            text,
            "AWS Other returned an unexpected error (ParameterNotFound)"
        );
        // A code that is not a plain token never reaches a classifier.
        let (_, text, _) = ONE.classify(Some("Parameter<b>"), None, Some(400), false);
        assert_eq!(
            text,
            "AWS Systems Manager Parameter Store returned an unexpected error (HTTP 400)"
        );
    }

    #[test]
    fn a_session_is_renewed_five_minutes_before_it_expires() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |secs: u64| Some(now + Duration::from_secs(secs));
        assert!(fresh(at(3600), now));
        assert!(fresh(at(301), now));
        assert!(!fresh(at(300), now));
        assert!(!fresh(at(10), now));
        assert!(!fresh(Some(now - Duration::from_secs(1)), now));
        assert!(!fresh(None, now));
    }

    #[test]
    fn sessions_are_kept_per_profile_and_role() {
        let role = "arn:aws:iam::111111111111:role/kept-per-profile";
        let key = |p: Option<&str>, r: &str| (p.map(str::to_owned), r.to_owned());
        let one = slot(key(None, role));
        assert!(Arc::ptr_eq(&one, &slot(key(None, role))));
        assert!(!Arc::ptr_eq(&one, &slot(key(Some("team"), role))));
        assert!(!Arc::ptr_eq(&one, &slot(key(None, "arn:aws:iam::1:role/other"))));
    }

    /// A fake STS on a loopback port: it answers each `AssumeRole` after
    /// `delay` with a new session (`ASIA1`, `ASIA2`, …) that expires
    /// `lifetime` later. Its URL, and how many `AssumeRole` calls it had.
    fn fake_sts(lifetime: Duration, delay: Duration) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let calls = Arc::clone(&counted);
                std::thread::spawn(move || answer(conn, &calls, lifetime, delay));
            }
        });
        (url, calls)
    }

    fn answer(mut conn: TcpStream, calls: &AtomicUsize, lifetime: Duration, delay: Duration) {
        let Ok(read) = conn.try_clone() else { return };
        let mut reader = BufReader::new(read);
        let mut len = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end().to_ascii_lowercase();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err()
            || !String::from_utf8_lossy(&body).contains("Action=AssumeRole")
        {
            return;
        }
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        std::thread::sleep(delay);
        let expiry = aws_smithy_types::DateTime::from(SystemTime::now() + lifetime)
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap_or_default();
        let xml = format!(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <AssumeRoleResult><Credentials><AccessKeyId>ASIA{n}</AccessKeyId>\
             <SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>\
             <Expiration>{expiry}</Expiration></Credentials></AssumeRoleResult>\
             </AssumeRoleResponse>"
        );
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{xml}",
            xml.len()
        );
    }

    /// The access key id of `role`'s session, taken as one fetch takes it: on
    /// a runtime of its own, with a configuration of its own.
    fn session_of_a_new_fetch(url: &str, role: &str) -> Option<String> {
        crate::provider::http::block_on(
            async {
                let policy = Policy::within(Duration::from_secs(20));
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .endpoint_url(url)
                    .region(Region::new("us-east-1"))
                    .credentials_provider(Credentials::new("base", "base", None, None, "test"))
                    .http_client(aws_smithy_http_client::Builder::new().build_http())
                    .retry_config(RetryConfig::disabled())
                    .load()
                    .await;
                let creds = session(&shared, None, role, None, &policy).await;
                creds.ok().map(|c| c.access_key_id().to_owned())
            },
            |_| None,
        )
    }

    #[test]
    fn services_fetching_at_once_assume_a_role_once_and_later_fetches_keep_it() {
        let (url, calls) = fake_sts(Duration::from_secs(3600), Duration::from_millis(300));
        let role = "arn:aws:iam::111111111111:role/unit-at-once";
        let both: Vec<Option<String>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..2)
                .map(|_| s.spawn(|| session_of_a_new_fetch(&url, role)))
                .collect();
            threads.into_iter().map(|t| t.join().ok().flatten()).collect()
        });
        assert_eq!(both, [Some("ASIA1".to_owned()), Some("ASIA1".to_owned())]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A later fetch (a new runtime, new clients) uses the kept session.
        assert_eq!(session_of_a_new_fetch(&url, role).as_deref(), Some("ASIA1"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_session_near_its_expiry_is_replaced_by_a_new_one() {
        let (url, calls) = fake_sts(Duration::from_secs(120), Duration::ZERO);
        let role = "arn:aws:iam::111111111111:role/unit-near-expiry";
        assert_eq!(session_of_a_new_fetch(&url, role).as_deref(), Some("ASIA1"));
        assert_eq!(session_of_a_new_fetch(&url, role).as_deref(), Some("ASIA2"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn role_arns_are_checked_part_by_part() {
        for good in [
            "arn:aws:iam::111111111111:role/r",
            "arn:aws-cn:iam::123456789012:role/team/app/reader+1=a,b.c@d_e-f",
        ] {
            assert!(check_role_arn(good).is_ok(), "{good}");
        }
        for (bad, why) in [
            ("", "is empty"),
            ("arn:aws:iam::111111111111", "fewer than six"),
            ("urn:aws:iam::111111111111:role/r", "begin with `arn:`"),
            ("arn:AWS:iam::111111111111:role/r", "partition"),
            ("arn:aws:sts::111111111111:role/r", "not `iam`"),
            ("arn:aws:iam:us-east-1:111111111111:role/r", "no region"),
            ("arn:aws:iam::1111:role/r", "12 digits"),
            ("arn:aws:iam::111111111111:user/r", "`role/`"),
            ("arn:aws:iam::111111111111:role/", "empty or longer"),
            ("arn:aws:iam::111111111111:role/a b", "contains ` `"),
            ("arn:aws:iam::111111111111:role/a//b", "empty segment"),
        ] {
            let e = check_role_arn(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = check_role_arn("arn:aws:iam::1:role/r").err();
        assert_eq!(
            e.and_then(|e| e.range_in("x?role_arn=arn:aws:iam::1:role/r")),
            Some(11..32)
        );
    }

    #[test]
    fn a_denied_assume_role_is_classified_without_the_services_words() {
        let (class, text, verdict) =
            STS.classify(Some("AccessDenied"), Some("User: arn:aws:sts::1:x"), Some(403), false);
        assert_eq!((class, verdict), (FetchClass::Denied, Verdict::Fail));
        assert!(text.contains("sts:AssumeRole") && !text.contains("User:"), "{text}");
        assert_eq!(
            STS.classify(Some("RegionDisabledException"), None, None, false).0,
            FetchClass::Unconfigured
        );
        assert_eq!(partition_region("arn:aws-cn:iam::1:role/r"), "cn-north-1");
        assert_eq!(partition_region("arn:aws:iam::1:role/r"), "us-east-1");
    }

    #[test]
    fn profiles_are_read_from_both_files_by_key_names_and_never_keep_key_material() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config");
        let creds = dir.path().join("credentials");
        std::fs::write(
            &config,
            "[default]\nregion = eu-west-1\n[profile   team ]\nrole_arn = arn:aws:iam::111111111111:role/r\n\
             source_profile = base\n[sso-session team]\nsso_start_url = https://x\n[profilex]\nsso_session = s\n",
        )
        .expect("config");
        std::fs::write(
            &creds,
            "; comment\n[team]\naws_secret_access_key = SECRETSECRET\n[base]\n\
             AWS_ACCESS_KEY_ID = AKIAKEY\naws_secret_access_key = SECRETSECRET\n",
        )
        .expect("credentials");
        let files = [(true, config), (false, creds)];
        let team = profile_keys_in(&files, "team").unwrap_or_default();
        assert_eq!(
            team,
            [
                ("role_arn".to_owned(), "arn:aws:iam::111111111111:role/r".to_owned()),
                ("source_profile".to_owned(), "base".to_owned()),
            ]
        );
        // Key names only: the values of key material are never kept.
        let base = profile_keys_in(&files, "base").unwrap_or_default();
        assert_eq!(base, [("aws_access_key_id".to_owned(), String::new())]);
        assert_eq!(profile_keys_in(&files, "default"), Some(Vec::new()));
        // `[profilex]` is no `profile x`, and a session section is no profile.
        assert_eq!(profile_keys_in(&files, "x"), None);
        assert_eq!(profile_keys_in(&files, "nope"), None);
    }

    #[test]
    fn configuration_errors_name_no_service() {
        let e = region(None, &SdkConfig::builder().build(), Some("team"));
        assert_eq!(
            e.map_err(|e| (e.class, e.message)),
            Err((
                FetchClass::Unconfigured,
                "no AWS region is configured: set AWS_REGION, a region in the AWS config or \
                 profile `team`, or `region=` on the reference"
                    .to_owned()
            ))
        );
        let own = region(Some("eu-west-1".into()), &SdkConfig::builder().build(), None);
        assert_eq!(own.ok().as_deref(), Some("eu-west-1"));
    }
}
