//! The HTTP side of the Vault and 1Password Connect providers: one reqwest client
//! (hyper + rustls with ring, the stack the AWS SDK uses too), bounded bodies,
//! and requests retried by [`super::retry`].
//!
//! Responses are classified by status; bodies are read (up to a bound) so that a
//! provider can parse them, but never shown: errors carry our words and the
//! status only.

use std::time::Duration;

use super::retry::{self, Failure, Policy, Verdict};
use super::{FetchClass, FetchError};

/// An environment variable that is set and not empty.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A header value for a credential, marked sensitive so that reqwest never
/// shows it. `None` when the text cannot be a header value.
pub(crate) fn credential(text: &str) -> Option<reqwest::header::HeaderValue> {
    let mut v = reqwest::header::HeaderValue::from_str(text).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// Largest response body read; a secret manager's answer is far smaller.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Which server certificates to trust.
pub(crate) enum Trust {
    /// The system's roots.
    System,
    /// Only these PEM certificates (a private CA).
    Only(Vec<reqwest::Certificate>),
    /// Anything (`VAULT_SKIP_VERIFY`).
    Anything,
}

/// Reads PEM certificates from a file, or from every file of a folder.
pub(crate) fn load_pem(
    path: &std::path::Path,
    var: &str,
) -> Result<Vec<reqwest::Certificate>, FetchError> {
    let bad = |why: String| {
        FetchError::new(
            FetchClass::Unconfigured,
            format!("{var} `{}` {why}", path.display()),
        )
    };
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let mut v: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| bad(format!("cannot be read: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_owned()]
    };
    let mut certs = Vec::new();
    for f in files {
        let pem = std::fs::read(&f).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let mut some = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| bad("is not a PEM certificate bundle".into()))?;
        certs.append(&mut some);
    }
    if certs.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    Ok(certs)
}

/// A client for one provider's run.
pub(crate) fn client(trust: Trust) -> Result<reqwest::Client, FetchError> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        // Tokens travel in headers (X-Vault-Token) that reqwest would carry across
        // hosts: a redirect is followed only within the same scheme, host and port.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same = attempt.previous().first().is_some_and(|first| {
                let to = attempt.url();
                to.scheme() == first.scheme()
                    && to.host_str() == first.host_str()
                    && to.port_or_known_default() == first.port_or_known_default()
            });
            if same && attempt.previous().len() <= 3 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .user_agent(concat!("keyfill/", env!("CARGO_PKG_VERSION")));
    match trust {
        Trust::System => {}
        Trust::Only(certs) => {
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        Trust::Anything => b = b.danger_accept_invalid_certs(true),
    }
    b.build().map_err(|_| {
        FetchError::new(
            FetchClass::Unconfigured,
            "cannot set up the HTTPS client (TLS configuration)",
        )
    })
}

/// An answer: status, `Retry-After`, body.
pub(crate) struct Answer {
    /// HTTP status.
    pub(crate) status: u16,
    /// The server's `Retry-After`, in seconds form.
    pub(crate) retry_after: Option<Duration>,
    /// Body, at most [`MAX_BODY`] bytes.
    pub(crate) body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, if it is.
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Why a request did not give a 2xx answer.
pub(crate) enum Problem {
    /// No answer: connection, TLS or protocol failure.
    Transport(reqwest::Error),
    /// A non-2xx answer.
    Status(Answer),
}

async fn once(req: reqwest::RequestBuilder) -> Result<Answer, Problem> {
    let mut resp = req.send().await.map_err(Problem::Transport)?;
    let status = resp.status().as_u16();
    let retry_after = retry::retry_after(
        resp.headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
    );
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(Problem::Transport)? {
        if body.len() + chunk.len() > MAX_BODY {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let answer = Answer {
        status,
        retry_after,
        body,
    };
    if (200..300).contains(&status) {
        Ok(answer)
    } else {
        Err(Problem::Status(answer))
    }
}

/// Sends the request `make` builds, retrying transport failures, 5xx and 429
/// unless `is_final` says an answer must not be retried.
pub(crate) async fn send(
    policy: &Policy,
    make: impl Fn() -> reqwest::RequestBuilder,
    is_final: impl Fn(&Answer) -> bool,
) -> Result<Answer, Failure<Problem>> {
    retry::run(policy, || once(make()), |p| verdict(p, &is_final)).await
}

fn verdict(p: &Problem, is_final: &impl Fn(&Answer) -> bool) -> Verdict {
    match p {
        Problem::Transport(e) if is_tls(e) => Verdict::Fail,
        Problem::Transport(e) if e.is_builder() => Verdict::Fail,
        Problem::Transport(_) => Verdict::Retry(None),
        Problem::Status(a) if is_final(a) => Verdict::Fail,
        Problem::Status(a) if a.status == 429 || a.status >= 500 => Verdict::Retry(a.retry_after),
        Problem::Status(_) => Verdict::Fail,
    }
}

/// Whether a transport error is a TLS failure (an untrusted or mismatched
/// certificate), which retrying cannot mend.
pub(crate) fn is_tls(e: &reqwest::Error) -> bool {
    super::cause::<rustls::Error>(e).is_some()
}

/// Our words for a request that failed without a usable answer; `service` names
/// the server ("Vault", "1Password Connect"), `fix` says where its address and
/// CA are configured.
pub(crate) fn transport_error(f: &Failure<Problem>, service: &str, fix: &str) -> FetchError {
    match f {
        Failure::TimedOut => FetchError::new(
            FetchClass::Unreachable,
            format!("{service} did not answer in time"),
        ),
        Failure::Error(Problem::Transport(e)) if is_tls(e) => FetchError::new(
            FetchClass::Unreachable,
            format!(
                "the TLS connection to {service} failed: the server's certificate is not \
                 trusted or does not match ({fix})"
            ),
        ),
        Failure::Error(Problem::Transport(e)) if e.is_timeout() => FetchError::new(
            FetchClass::Unreachable,
            format!("{service} did not answer in time"),
        ),
        Failure::Error(Problem::Transport(_)) => FetchError::new(
            FetchClass::Unreachable,
            format!("cannot connect to {service} ({fix})"),
        ),
        Failure::Error(Problem::Status(a)) if (300..400).contains(&a.status) => FetchError::new(
            FetchClass::Unreachable,
            format!(
                "{service} redirected elsewhere (HTTP {}); credentials are not sent to another \
                 address: point keyfill at the server that answers ({fix})",
                a.status
            ),
        ),
        Failure::Error(Problem::Status(a)) if a.status == 429 => FetchError::new(
            FetchClass::Throttled,
            format!("{service} kept throttling the requests (HTTP 429)"),
        ),
        Failure::Error(Problem::Status(a)) => FetchError::new(
            FetchClass::Unreachable,
            format!("{service} answered HTTP {}", a.status),
        ),
    }
}

/// Runs `fut` on a current-thread runtime built for it. A blocking task the
/// deadline gave up on (a DNS lookup) is not waited for.
pub(crate) fn block_on<T>(
    fut: impl std::future::Future<Output = T>,
    or: impl FnOnce(String) -> T,
) -> T {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => {
            let out = rt.block_on(fut);
            rt.shutdown_background();
            out
        }
        Err(e) => or(e.to_string()),
    }
}
