//! AWS Systems Manager Parameter Store: locators (`locator`) and the provider.
//!
//! ```yaml
//! password: <<ssm|/prod/db/password>>
//! user: <<ssm|/prod/db/creds:user?version=3>>
//! secrets:
//!   API_KEY:
//!     ssm: { name: /prod/api, key: token, label: stable, region: eu-west-1 }
//! ```
//!
//! `NAME[:JSON_KEY][?version=N|label=L&region=R&profile=P&role_arn=A]`. A name
//! holds no colon, so the JSON key is what follows the first one; in a parameter
//! ARN (`arn:aws:ssm:REGION:ACCOUNT:parameter/NAME`, whose region is used) it is
//! what follows the sixth.
//!
//! The client is configured as the `aws` provider's (the shared `sdk` code: the
//! credential chain, profiles, `AWS_ENDPOINT_URL`, `AWS_CA_BUNDLE`, proxies).
//! Distinct (parameter, version) pairs are fetched with `GetParameters`, at most
//! ten per call (the API's limit) and each parameter once per call, so an answer
//! is told apart by its name even where a server leaves out its `Selector`;
//! every call runs under one concurrency bound and one deadline, with the shared
//! jittered retries. SecureString values are decrypted; String and StringList
//! values are returned as stored.

pub(crate) mod locator;

use std::path::Path;

use aws_sdk_ssm::error::ProvideErrorMetadata as _;
use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
use aws_sdk_ssm::Client;
use futures_util::stream::{self, StreamExt as _};

use super::aws::sdk::{self, Code, Service};
use super::retry::{self, Failure, Policy};
use super::{
    FetchClass, FetchError, Fields, Health, LocatorError, Provider, Readability, Settings,
    VersionCheck,
};
use crate::secret::SecretBytes;

pub(crate) use locator::SsmLocator;

/// Parameter Store, as its messages and error codes need it.
const PARAMETER_STORE: Service = Service {
    name: "AWS Systems Manager Parameter Store",
    action: "ssm:GetParameters",
    item: "parameter",
    codes: parameter_store_codes,
};

/// Parameter Store as `doctor` asks it: `DescribeParameters`, which reads no
/// value.
const DESCRIBE: Service = Service {
    action: "ssm:DescribeParameters",
    ..PARAMETER_STORE
};

/// Parameter Store's own error codes.
fn parameter_store_codes(c: &Code<'_>) -> Option<(FetchClass, &'static str)> {
    Some(match c.code {
        "ParameterNotFound" => (
            FetchClass::NotFound,
            "the parameter does not exist in AWS Systems Manager Parameter Store",
        ),
        "ParameterVersionNotFound" => (
            FetchClass::NotFound,
            "this version of the parameter does not exist in AWS Systems Manager Parameter Store",
        ),
        // The message is read only to tell a KMS refusal from the missing
        // `ssm:GetParameters`; it is never shown. The phrases looked for cannot
        // be part of a parameter name (a name holds no `:` or space).
        "AccessDeniedException"
            if c.message.is_some_and(|m| {
                ["kms:", "ciphertext refers", "KMS key"]
                    .iter()
                    .any(|p| m.contains(p))
            }) =>
        {
            (
                FetchClass::Denied,
                "AWS could not decrypt the parameter with its KMS key: the credentials need \
                 kms:Decrypt on that key",
            )
        }
        "InvalidKeyId" => (
            FetchClass::Denied,
            "the KMS key of the SecureString parameter cannot be used (disabled, deleted or \
             not found)",
        ),
        "ValidationException" => (
            FetchClass::Invalid,
            "AWS Systems Manager Parameter Store refused the request as invalid: check the \
             parameter name, version and label",
        ),
        _ => return None,
    })
}

/// Most names per `GetParameters` call (an API limit the SDK does not enforce).
const BATCH_LIMIT: usize = 10;

/// Fetches from Parameter Store. Nothing of the SDK is built until `fetch`.
pub(crate) struct SsmProvider {
    settings: Settings,
}

impl Provider for SsmProvider {
    type Locator = SsmLocator;
    const REMOTE: bool = true;
    const LONG_FIELDS: &'static [&'static str] = &[
        "name", "key", "version", "label", "region", "profile", "role_arn",
    ];

    fn parse(text: &str, _: &Path) -> Result<SsmLocator, LocatorError> {
        SsmLocator::parse(text)
    }

    fn from_fields(fields: &Fields<'_>, _: &Path) -> Result<SsmLocator, LocatorError> {
        SsmLocator::from_fields(fields)
    }

    fn fetch_key(locator: &SsmLocator) -> SsmLocator {
        locator.fetch_key()
    }

    fn json_key(locator: &SsmLocator) -> Option<&str> {
        locator.key.as_deref()
    }

    fn start(settings: Settings) -> Self {
        SsmProvider { settings }
    }

    fn fetch(&self, requests: &[&SsmLocator]) -> Vec<Result<SecretBytes, FetchError>> {
        super::http::block_on(get(requests, self.settings, true), |e| {
            let err = sdk::not_started(e);
            requests.iter().map(|_| Err(err.clone())).collect()
        })
        .into_iter()
        .map(|r| {
            r.and_then(|found| match found.value {
                Some(v) => Ok(v.with_version(Some(found.version.to_string()))),
                None => Err(FetchError::new(
                    FetchClass::NotFound,
                    "the parameter has no value",
                )),
            })
        })
        .collect()
    }

    /// A pinned version is its own answer; the others' versions come from
    /// `GetParameters` without decryption (no KMS call), ten per call.
    fn versions(&self, requests: &[&SsmLocator]) -> Vec<VersionCheck> {
        let asked: Vec<&SsmLocator> = requests
            .iter()
            .copied()
            .filter(|l| l.version.is_none())
            .collect();
        let mut found = if asked.is_empty() {
            Vec::new()
        } else {
            super::http::block_on(get(&asked, self.settings, false), |_| Vec::new())
        }
        .into_iter();
        requests
            .iter()
            .map(|l| match l.version {
                Some(v) => VersionCheck::Current(v.to_string()),
                None => match found.next() {
                    Some(Ok(f)) => VersionCheck::Current(f.version.to_string()),
                    _ => VersionCheck::Unknown,
                },
            })
            .collect()
    }

    fn diagnose(&self, requests: &[&SsmLocator]) -> (Health, Vec<Readability>) {
        super::http::block_on(diagnose(requests, self.settings), |e| {
            super::aws::broken(requests.len(), sdk::not_started(e))
        })
    }

    fn configured() -> Option<String> {
        sdk::configured()
    }
}

/// The credentials' source and identity, and whether each parameter exists.
async fn diagnose(locators: &[&SsmLocator], settings: Settings) -> (Health, Vec<Readability>) {
    let policy = Policy::within(settings.timeout);
    let http = match sdk::http() {
        Ok(http) => http,
        Err(e) => return super::aws::broken(locators.len(), e),
    };
    let targets: Vec<sdk::Target<'_>> = locators.iter().map(|l| target(l)).collect();
    let health = sdk::health(&targets, &http, &policy).await;
    let mut results: Vec<Option<Readability>> = locators.iter().map(|_| None).collect();
    // DescribeParameters knows a parameter's latest version only, no labels,
    // and only this account's parameters by name. For a pinned version, a
    // label or another account's ARN, GetParameters without decryption is the
    // one call that says whether it exists: the text it returns (a String's
    // value, a SecureString's ciphertext) is dropped unread by `get`.
    let (asked, described): (Vec<usize>, Vec<usize>) = (0..locators.len())
        .partition(|&i| !locators[i].selector().is_empty() || locators[i].name.starts_with("arn:"));
    if !asked.is_empty() {
        let those: Vec<&SsmLocator> = asked.iter().map(|&i| locators[i]).collect();
        for (&i, r) in asked.iter().zip(get(&those, settings, false).await) {
            results[i] = Some(match r {
                Ok(found) => Readability::Readable(Some(format!("version {}", found.version))),
                Err(e) => Readability::Failed(e),
            });
        }
    }
    let plain: Vec<sdk::Target<'_>> = described.iter().map(|&i| target(locators[i])).collect();
    let (clients, routes) = sdk::clients(&plain, &http, &policy, |shared, region| {
        let conf = aws_sdk_ssm::config::Builder::from(shared)
            .region(region)
            .build();
        Client::from_conf(conf)
    })
    .await;
    let mut calls = Vec::new();
    for (&i, route) in described.iter().zip(routes) {
        match route.and_then(|c| {
            clients.get(c).cloned().ok_or_else(|| {
                FetchError::unanswered("ssm")
            })
        }) {
            Ok(client) => calls.push((i, client)),
            Err(e) => results[i] = Some(Readability::Failed(e)),
        }
    }
    let found: Vec<(usize, Readability)> = stream::iter(calls)
        .map(|(i, client)| {
            let policy = &policy;
            async move { (i, describe(&client, &locators[i].name, policy).await) }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    for (i, r) in found {
        results[i] = Some(r);
    }
    let each = results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Readability::Failed(FetchError::unanswered("ssm"))
            })
        })
        .collect();
    (health, each)
}

/// Most pages of `DescribeParameters` followed: a filtered answer may come
/// as empty pages with a token, but not for ever.
const MAX_PAGES: usize = 20;

/// Whether parameter `name` exists, from `DescribeParameters` filtered on
/// its exact name: metadata only.
async fn describe(client: &Client, name: &str, policy: &Policy) -> Readability {
    use aws_sdk_ssm::types::ParameterStringFilter;
    let filter = ParameterStringFilter::builder()
        .key("Name")
        .option("Equals")
        .values(name)
        .build();
    let Ok(filter) = filter else {
        return Readability::Failed(FetchError::new(
            FetchClass::Invalid,
            "the DescribeParameters request could not be built",
        ));
    };
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let result = retry::run(
            policy,
            || {
                client
                    .describe_parameters()
                    .parameter_filters(filter.clone())
                    .set_next_token(token.clone())
                    .send()
            },
            |e| DESCRIBE.sdk_error(e, false).2,
        )
        .await;
        let out = match result {
            Ok(out) => out,
            Err(f) => return Readability::Failed(DESCRIBE.failure(f, false)),
        };
        if let Some(p) = out.parameters().first() {
            return Readability::Readable(Some(format!("version {}", p.version())));
        }
        token = out.next_token;
        if token.is_none() {
            break;
        }
    }
    Readability::Failed(FetchError::new(
        FetchClass::NotFound,
        "the parameter does not exist in AWS Systems Manager Parameter Store",
    ))
}

/// Where a locator's calls go.
fn target(l: &SsmLocator) -> sdk::Target<'_> {
    sdk::Target {
        profile: l.profile.as_deref(),
        // An ARN names its region; a `?region=` still wins.
        region: l.region.clone().or_else(|| l.arn_region()),
        role_arn: l.role_arn.as_deref(),
    }
}

/// What a call found for one parameter: its value (only when decrypting: a
/// version check drops it unread) and version.
struct Found {
    value: Option<SecretBytes>,
    version: i64,
}

/// One distinct (parameter, version) to fetch, and the requests that want it.
struct Wanted {
    /// The name or ARN.
    name: String,
    /// `:N`, `:label` or empty.
    selector: String,
    requests: Vec<usize>,
}

impl Wanted {
    /// The text GetParameters takes: the name and its selector.
    fn asked(&self) -> String {
        format!("{}{}", self.name, self.selector)
    }
}

/// One `GetParameters` call: a client and up to ten parameters, each named once.
struct Call {
    client: Client,
    wanted: Vec<Wanted>,
}

/// What a call found for one parameter.
enum Outcome {
    /// Final, for these requests.
    Done(Vec<usize>, Result<Found, FetchError>),
    /// Ask for it alone: the call was refused as a whole (one parameter a
    /// policy denies must not fail the nine others) or said nothing of it.
    Alone(Call),
}

/// Gets every locator's parameter: one client per (profile, role, region), in a
/// client one entry per distinct (name, selector), ten per call, all calls under
/// the concurrency bound and one deadline.
async fn get(
    locators: &[&SsmLocator],
    settings: Settings,
    decrypt: bool,
) -> Vec<Result<Found, FetchError>> {
    let policy = Policy::within(settings.timeout);
    let mut results: Vec<Option<Result<Found, FetchError>>> =
        locators.iter().map(|_| None).collect();
    let http = match sdk::http() {
        Ok(http) => http,
        Err(e) => return locators.iter().map(|_| Err(e.clone())).collect(),
    };
    let targets: Vec<sdk::Target<'_>> = locators.iter().map(|l| target(l)).collect();
    let (clients, routes) = sdk::clients(&targets, &http, &policy, |shared, region| {
        let conf = aws_sdk_ssm::config::Builder::from(shared)
            .region(region)
            .build();
        Client::from_conf(conf)
    })
    .await;
    let mut groups: Vec<Vec<Wanted>> = clients.iter().map(|_| Vec::new()).collect();
    for (i, (l, route)) in locators.iter().zip(routes).enumerate() {
        let g = match route {
            Ok(g) => g,
            Err(e) => {
                results[i] = Some(Err(e));
                continue;
            }
        };
        // Within a client, region, profile and role no longer tell requests
        // apart: `x` and `x?region=<the default>` are one fetch.
        let selector = l.selector();
        let entries = &mut groups[g];
        match entries
            .iter_mut()
            .find(|w| w.name == l.name && w.selector == selector)
        {
            Some(w) => w.requests.push(i),
            None => entries.push(Wanted {
                name: l.name.clone(),
                selector,
                requests: vec![i],
            }),
        }
    }
    let mut round: Vec<Call> = Vec::new();
    for (client, wanted) in clients.into_iter().zip(groups) {
        for batch in batches(wanted) {
            round.push(Call {
                client: client.clone(),
                wanted: batch,
            });
        }
    }
    // A call refused as a whole, or silent about a parameter, leaves calls for
    // single parameters behind, run in a second round under the same bound and
    // deadline.
    while !round.is_empty() {
        let outcomes: Vec<Vec<Outcome>> = stream::iter(round)
            .map(|call| run(call, decrypt, &policy))
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;
        round = Vec::new();
        for outcome in outcomes.into_iter().flatten() {
            match outcome {
                Outcome::Done(requests, result) => {
                    for i in requests {
                        results[i] = Some(clone_result(&result));
                    }
                }
                Outcome::Alone(call) => round.push(call),
            }
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(FetchError::unanswered("ssm"))
            })
        })
        .collect()
}

fn clone_result(r: &Result<Found, FetchError>) -> Result<Found, FetchError> {
    match r {
        Ok(f) => Ok(Found {
            value: f.value.clone(),
            version: f.version,
        }),
        Err(e) => Err(e.clone()),
    }
}

/// Splits one client's parameters into calls of at most ten, naming each
/// parameter at most once per call (two versions of one parameter go to two
/// calls, and so do a name and an ARN ending in it, which may be another
/// account's), so that an answer's name alone says which request it answers.
fn batches(wanted: Vec<Wanted>) -> Vec<Vec<Wanted>> {
    let mut out: Vec<Vec<Wanted>> = Vec::new();
    for w in wanted {
        let slot = out.iter().position(|b| {
            b.len() < BATCH_LIMIT && !b.iter().any(|o| bare(&o.name) == bare(&w.name))
        });
        match slot {
            Some(b) => out[b].push(w),
            None => out.push(vec![w]),
        }
    }
    out
}

/// A name or ARN as the name it ends in, without a leading `/`.
fn bare(name: &str) -> &str {
    let tail = name
        .strip_prefix("arn:")
        .and_then(|a| a.splitn(5, ':').nth(4))
        .and_then(|r| r.strip_prefix("parameter/"));
    tail.unwrap_or(name).trim_start_matches('/')
}

async fn run(call: Call, decrypt: bool, policy: &Policy) -> Vec<Outcome> {
    let names: Vec<String> = call.wanted.iter().map(Wanted::asked).collect();
    let pinned = call.wanted.iter().all(|w| !w.selector.is_empty());
    let client = &call.client;
    let result = retry::run(
        policy,
        || {
            client
                .get_parameters()
                .set_names(Some(names.clone()))
                .with_decryption(decrypt)
                .send()
        },
        |e| PARAMETER_STORE.sdk_error(e, pinned).2,
    )
    .await;
    match result {
        Ok(out) => answers(call, out, decrypt),
        Err(f) => {
            // IAM refuses the whole call when one of its parameters is denied.
            let refused =
                matches!(&f, Failure::Error(e) if e.code() == Some("AccessDeniedException"));
            if refused && call.wanted.len() > 1 {
                return alone(call);
            }
            let err = PARAMETER_STORE.failure(f, pinned);
            call.wanted
                .into_iter()
                .map(|w| Outcome::Done(w.requests, Err(err.clone())))
                .collect()
        }
    }
}

/// Each parameter of `call` in a call of its own.
fn alone(call: Call) -> Vec<Outcome> {
    let client = call.client;
    call.wanted
        .into_iter()
        .map(|w| {
            Outcome::Alone(Call {
                client: client.clone(),
                wanted: vec![w],
            })
        })
        .collect()
}

/// Matches an answer's parameters to the call's requests by name (or ARN) and
/// selector: the answer is not in request order.
fn answers(call: Call, out: GetParametersOutput, decrypt: bool) -> Vec<Outcome> {
    let single = call.wanted.len() == 1;
    let client = call.client;
    let mut pending: Vec<Option<Wanted>> = call.wanted.into_iter().map(Some).collect();
    let mut outcomes = Vec::new();
    for p in out.parameters.unwrap_or_default() {
        let hit = pending.iter().position(|w| {
            w.as_ref().is_some_and(|w| {
                same_parameter(&w.name, p.name.as_deref(), p.arn.as_deref())
                    && same_selector(&w.selector, p.selector.as_deref())
            })
        });
        if let Some(w) = hit.and_then(|i| pending[i].take()) {
            let value = p
                .value
                .filter(|_| decrypt)
                .map(|v| SecretBytes::new(v.into_bytes()));
            outcomes.push(Outcome::Done(
                w.requests,
                Ok(Found {
                    value,
                    version: p.version,
                }),
            ));
        }
    }
    for asked in out.invalid_parameters.unwrap_or_default() {
        let hit = pending
            .iter()
            .position(|w| w.as_ref().is_some_and(|w| w.asked() == asked));
        if let Some(w) = hit.and_then(|i| pending[i].take()) {
            outcomes.push(Outcome::Done(w.requests, Err(not_found(&w.selector))));
        }
    }
    // What the answer said nothing of is asked alone; a call of one that still
    // says nothing of it ends there.
    for w in pending.into_iter().flatten() {
        outcomes.push(if single {
            Outcome::Done(
                w.requests,
                Err(FetchError::new(
                    FetchClass::Unreachable,
                    "AWS Systems Manager Parameter Store answered without this parameter",
                )),
            )
        } else {
            Outcome::Alone(Call {
                client: client.clone(),
                wanted: vec![w],
            })
        });
    }
    outcomes
}

/// The error of a parameter (or version) the answer lists as invalid.
fn not_found(selector: &str) -> FetchError {
    let what = match selector.strip_prefix(':') {
        None => "the parameter does not exist in AWS Systems Manager Parameter Store",
        Some(s) if s.bytes().all(|b| b.is_ascii_digit()) => {
            "this version of the parameter does not exist in AWS Systems Manager Parameter Store"
        }
        Some(_) => {
            "no version of the parameter has this label in AWS Systems Manager Parameter Store \
             (or the parameter does not exist)"
        }
    };
    FetchError::new(FetchClass::NotFound, what)
}

/// Whether a requested name or ARN is the parameter an answer describes. An
/// ARN's resource names `/a/b` as `parameter/a/b`, and a one-level name `/a`
/// or `a` as `parameter/a`.
fn same_parameter(asked: &str, name: Option<&str>, arn: Option<&str>) -> bool {
    if Some(asked) == name || Some(asked) == arn {
        return true;
    }
    asked.starts_with("arn:")
        && name.is_some_and(|n| !n.starts_with("arn:") && bare(n) == bare(asked))
}

/// Whether an answer's selector is the one asked for. Without one (a server
/// that leaves it out), the name decides: a call names a parameter once.
fn same_selector(asked: &str, answered: Option<&str>) -> bool {
    match answered.filter(|s| !s.is_empty()) {
        Some(s) => s == asked,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::types::Parameter;

    fn wanted(name: &str, selector: &str) -> Wanted {
        Wanted {
            name: name.into(),
            selector: selector.into(),
            requests: vec![],
        }
    }

    #[test]
    fn a_pinned_version_needs_no_call_and_ssm_starts_only_when_asked() {
        use crate::provider::{Locator, ProviderKind, Registry};
        let mut r = Registry::new(Settings::default());
        let env = Locator::parse(ProviderKind::Env, "HOME", Path::new("."));
        let env = env.unwrap_or_else(|e| panic!("{e}"));
        r.versions([&env]);
        assert_eq!(r.started(), [ProviderKind::Env]);
        let pinned = Locator::parse(ProviderKind::Ssm, "/x:k?version=3", Path::new("."));
        let pinned = pinned.unwrap_or_else(|e| panic!("{e}"));
        let checks = r.versions([&pinned]);
        assert_eq!(checks.get(&pinned), Some(&VersionCheck::Current("3".into())));
        assert_eq!(r.started(), [ProviderKind::Ssm, ProviderKind::Env]);
    }

    #[test]
    fn calls_hold_ten_parameters_each_named_once() {
        let many: Vec<Wanted> = (0..23).map(|i| wanted(&format!("/p/{i}"), "")).collect();
        let sizes: Vec<usize> = batches(many).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 3]);
        let versions = vec![
            wanted("/a", ""),
            wanted("/a", ":1"),
            wanted("/b", ""),
            wanted("/a", ":stable"),
        ];
        let calls: Vec<Vec<String>> = batches(versions)
            .iter()
            .map(|b| b.iter().map(Wanted::asked).collect())
            .collect();
        assert_eq!(calls, [vec!["/a", "/b"], vec!["/a:1"], vec!["/a:stable"]]);
        // Another account's parameter of the same name may answer by name too.
        let arn = "arn:aws:ssm:us-east-1:123456789012:parameter/a";
        let both = vec![wanted("/a", ""), wanted(arn, ""), wanted("a", "")];
        assert_eq!(batches(both).len(), 3);
    }

    #[test]
    fn answers_match_by_name_or_arn_and_selector() {
        let arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/prod/db";
        assert!(same_parameter("/prod/db", Some("/prod/db"), None));
        assert!(same_parameter(arn, Some("/prod/db"), None));
        assert!(same_parameter(arn, Some(arn), None));
        assert!(same_parameter(arn, Some("x"), Some(arn)));
        assert!(!same_parameter("/prod/d", Some("/prod/db"), Some(arn)));
        let other = "arn:aws:ssm:eu-west-1:999999999999:parameter/prod/db";
        assert!(!same_parameter(arn, Some(other), Some(other)));
        let one = "arn:aws:ssm:eu-west-1:123456789012:parameter/token";
        assert!(same_parameter(one, Some("token"), None));
        assert!(same_parameter(one, Some("/token"), None));
        assert!(!same_parameter(one, Some("/prod/token"), None));
        assert!(same_selector(":3", Some(":3")));
        assert!(!same_selector(":3", Some(":4")));
        assert!(!same_selector("", Some(":stable")));
        assert!(same_selector(":stable", None));
    }

    fn parameter(name: &str, selector: Option<&str>, version: i64, value: &str) -> Parameter {
        Parameter::builder()
            .name(name)
            .set_selector(selector.map(str::to_owned))
            .version(version)
            .value(value)
            .build()
    }

    fn client() -> Client {
        let conf = aws_sdk_ssm::config::Builder::new()
            .region(aws_sdk_ssm::config::Region::new("us-east-1"))
            .build();
        Client::from_conf(conf)
    }

    /// An outcome as a test compares it: the requests, and the value and
    /// version or the error class.
    type Read = (Vec<usize>, Result<(String, i64), FetchClass>);

    /// Each outcome; a call left to make reads as unreachable.
    fn read(outcomes: Vec<Outcome>) -> Vec<Read> {
        outcomes
            .into_iter()
            .map(|o| match o {
                Outcome::Done(r, Ok(f)) => {
                    let v = f
                        .value
                        .map(|v| String::from_utf8_lossy(v.expose()).into_owned())
                        .unwrap_or_default();
                    (r, Ok((v, f.version)))
                }
                Outcome::Done(r, Err(e)) => (r, Err(e.class)),
                Outcome::Alone(c) => (
                    c.wanted.iter().flat_map(|w| w.requests.clone()).collect(),
                    Err(FetchClass::Unreachable),
                ),
            })
            .collect()
    }

    #[test]
    fn an_answer_out_of_order_reaches_its_requests() {
        let call = Call {
            client: client(),
            wanted: vec![
                Wanted { requests: vec![0, 3], ..wanted("/a", "") },
                Wanted { requests: vec![1], ..wanted("/b", ":2") },
                Wanted { requests: vec![2], ..wanted("/c", ":stable") },
                Wanted { requests: vec![4], ..wanted("/gone", "") },
            ],
        };
        let out = GetParametersOutput::builder()
            .parameters(parameter("/c", Some(":stable"), 7, "c7"))
            .parameters(parameter("/a", None, 5, "a5"))
            .parameters(parameter("/b", Some(":2"), 2, "b2"))
            .invalid_parameters("/gone")
            .build();
        let got = read(answers(call, out, true));
        assert_eq!(
            got,
            [
                (vec![2], Ok(("c7".into(), 7))),
                (vec![0, 3], Ok(("a5".into(), 5))),
                (vec![1], Ok(("b2".into(), 2))),
                (vec![4], Err(FetchClass::NotFound)),
            ]
        );
    }

    #[test]
    fn a_version_check_keeps_no_value_and_silence_is_asked_again() {
        let call = Call {
            client: client(),
            wanted: vec![
                Wanted { requests: vec![0], ..wanted("/a", "") },
                Wanted { requests: vec![1], ..wanted("/b", "") },
            ],
        };
        let out = GetParametersOutput::builder()
            .parameters(parameter("/a", None, 4, "plain"))
            .build();
        let got = answers(call, out, false);
        assert!(matches!(&got[0], Outcome::Done(_, Ok(Found { value: None, version: 4 }))));
        assert!(matches!(&got[1], Outcome::Alone(c) if c.wanted.len() == 1));
        // Alone, silence is final.
        let call = Call {
            client: client(),
            wanted: vec![wanted("/b", "")],
        };
        let got = read(answers(call, GetParametersOutput::builder().build(), true));
        assert_eq!(got, [(vec![], Err(FetchClass::Unreachable))]);
    }

    #[test]
    fn parameter_store_codes_and_messages() {
        let c = |code, msg| PARAMETER_STORE.classify(Some(code), msg, Some(400), false);
        let (class, text, _) = c("ParameterNotFound", None);
        assert_eq!(class, FetchClass::NotFound);
        assert_eq!(
            text,
            "the parameter does not exist in AWS Systems Manager Parameter Store \
             (ParameterNotFound)"
        );
        assert_eq!(c("ParameterVersionNotFound", None).0, FetchClass::NotFound);
        let (class, text, _) = c("AccessDeniedException", None);
        assert_eq!(class, FetchClass::Denied);
        assert_eq!(
            text,
            "access denied: the credentials need ssm:GetParameters on this parameter \
             (AccessDeniedException)"
        );
        let (class, text, _) = c(
            "AccessDeniedException",
            Some("User: x is not authorized to perform: kms:Decrypt on resource: k"),
        );
        assert_eq!(class, FetchClass::Denied);
        assert!(text.contains("kms:Decrypt on that key") && !text.contains("User:"), "{text}");
        let (_, text, _) = c(
            "AccessDeniedException",
            Some("The ciphertext refers to a customer master key that does not exist"),
        );
        assert!(text.starts_with("AWS could not decrypt"), "{text}");
        // A parameter's name in the message is not a KMS refusal.
        let (_, text, _) = c(
            "AccessDeniedException",
            Some("not authorized to perform: ssm:GetParameters on resource: parameter/KMS-keys"),
        );
        assert!(text.starts_with("access denied"), "{text}");
        assert_eq!(c("InvalidKeyId", None).0, FetchClass::Denied);
        assert_eq!(c("ValidationException", None).0, FetchClass::Invalid);
        let (class, _, verdict) = c("InternalServerError", None);
        assert_eq!(
            (class, verdict),
            (FetchClass::Unreachable, retry::Verdict::Retry(None))
        );
        assert_eq!(
            not_found(":3").message,
            "this version of the parameter does not exist in AWS Systems Manager Parameter Store"
        );
        assert_eq!(not_found(":stable").class, FetchClass::NotFound);
    }
}
