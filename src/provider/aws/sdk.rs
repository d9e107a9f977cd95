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
//! gets one client of its SDK per (profile, region) of its requests
//! ([`clients`], which loads each profile's configuration once), and reports
//! what its calls return through [`Service::sdk_error`] and [`Service::failure`].

use std::fmt;
use std::time::Duration;

use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_http_client::tls::{TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::provider::retry::{self, Failure, Policy, Verdict};
use crate::provider::FetchClass;
use crate::provider::FetchError;

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

/// A service's clients for a run's requests: one per (profile, region), in the
/// order the targets first name them, built by `build` from the profile's
/// loaded configuration and the region. For each target, the index of its
/// client, or why it has none (no region, the configuration not loaded in
/// time).
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
        let mut by_region: Vec<(String, usize)> = Vec::new();
        for (i, t) in mine() {
            if t.role_arn.is_some() {
                routes[i] = Some(Err(FetchError::new(
                    FetchClass::Unconfigured,
                    "assuming a role (`role_arn=`) is not built yet",
                )));
                continue;
            }
            let region = match region(t.region.clone(), &shared, profile) {
                Ok(region) => region,
                Err(e) => {
                    routes[i] = Some(Err(e));
                    continue;
                }
            };
            let c = match by_region.iter().find(|(r, _)| *r == region) {
                Some(&(_, c)) => c,
                None => {
                    clients.push(build(&shared, Region::new(region.clone())));
                    by_region.push((region, clients.len() - 1));
                    clients.len() - 1
                }
            };
            routes[i] = Some(Ok(c));
        }
    }
    // Every target's profile was visited, so each target is routed.
    let routes = routes
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(no_region(None))))
        .collect();
    (clients, routes)
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
