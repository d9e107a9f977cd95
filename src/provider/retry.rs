//! Retries with jittered exponential backoff inside one deadline, shared by the
//! remote providers.
//!
//! Only throttling and transient faults are retried; the caller's classifier
//! decides. A server's `Retry-After` is honoured when it fits in the deadline, and
//! every attempt gets its own timeout so a stalled connection cannot use the whole
//! deadline on its own.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// When and how often to try.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Policy {
    /// No attempt starts, and no wait ends, after this instant.
    pub(crate) deadline: Instant,
    /// Longest single attempt.
    pub(crate) attempt_timeout: Duration,
    /// Most attempts, the first included.
    pub(crate) max_attempts: u32,
    /// First backoff; doubles each retry up to `max_backoff`.
    pub(crate) base: Duration,
    /// Largest backoff.
    pub(crate) max_backoff: Duration,
}

impl Policy {
    /// The default policy for a run whose fetches must end within `timeout`.
    pub(crate) fn within(timeout: Duration) -> Self {
        Policy {
            deadline: Instant::now()
                .checked_add(timeout)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365)),
            attempt_timeout: timeout.min(Duration::from_secs(10)),
            max_attempts: 6,
            base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// Backoff before retry number `retry` (1-based): half fixed, half random
    /// ("equal jitter"), so that concurrent clients spread out but still wait.
    fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(self.max_backoff);
        let half = exp / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// What the classifier says of a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Final: report the error.
    Fail,
    /// Transient: try again, after at least this long if the server said so.
    Retry(Option<Duration>),
}

/// Why the calls ended without a result.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// The last attempt's error (final, or retries ran out).
    Error(E),
    /// The last attempt timed out.
    TimedOut,
}

/// Runs `call` until it succeeds, fails for good, or the policy runs out.
pub(crate) async fn run<T, E, F, Fut>(
    policy: &Policy,
    mut call: F,
    classify: impl Fn(&E) -> Verdict,
) -> Result<T, Failure<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let now = Instant::now();
        let per_attempt = policy
            .attempt_timeout
            .min(policy.deadline.saturating_duration_since(now));
        let (failure, hint) = match tokio::time::timeout(per_attempt, call()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => match classify(&e) {
                Verdict::Fail => return Err(Failure::Error(e)),
                Verdict::Retry(hint) => (Failure::Error(e), hint),
            },
            Err(_) => (Failure::TimedOut, None),
        };
        if attempt >= policy.max_attempts {
            return Err(failure);
        }
        let wait = policy.backoff(attempt).max(hint.unwrap_or_default());
        if Instant::now() + wait >= policy.deadline {
            return Err(failure);
        }
        tokio::time::sleep(wait).await;
    }
}

/// Reads a `Retry-After` header value given in seconds (the HTTP-date form is
/// not used by the services keyfill talks to).
pub(crate) fn retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
    }

    fn policy() -> Policy {
        Policy::within(Duration::from_secs(30))
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let p = policy();
        for retry in 1..20 {
            let exp = (p.base * (1 << (retry - 1).min(16))).min(p.max_backoff);
            let b = p.backoff(retry);
            assert!(b >= exp / 2 && b <= exp, "retry {retry}: {b:?} vs {exp:?}");
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| p.backoff(4)).collect();
        assert!(samples.len() > 1, "backoff is not jittered");
    }

    #[test]
    fn transient_errors_are_retried_until_success() {
        let calls = Cell::new(0);
        let out = rt().block_on(run(
            &policy(),
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 3 {
                        Err("busy")
                    } else {
                        Ok(n)
                    }
                }
            },
            |_| Verdict::Retry(None),
        ));
        assert_eq!(out.ok(), Some(3));
    }

    #[test]
    fn final_errors_are_not_retried() {
        let calls = Cell::new(0);
        let out: Result<(), _> = rt().block_on(run(
            &policy(),
            || {
                calls.set(calls.get() + 1);
                async { Err("denied") }
            },
            |_| Verdict::Fail,
        ));
        assert!(matches!(out, Err(Failure::Error("denied"))));
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn attempts_are_bounded_and_retry_after_is_honoured() {
        let rt = rt();
        let calls = Cell::new(0);
        let start = rt.block_on(async { Instant::now() });
        let out: Result<(), _> = rt.block_on(run(
            &policy(),
            || {
                calls.set(calls.get() + 1);
                async { Err("throttled") }
            },
            |_| Verdict::Retry(Some(Duration::from_secs(2))),
        ));
        assert!(matches!(out, Err(Failure::Error("throttled"))));
        assert_eq!(calls.get(), policy().max_attempts);
        let waited = rt.block_on(async { Instant::now() }) - start;
        // Five waits of at least the server's two seconds each.
        assert!(waited >= Duration::from_secs(10), "{waited:?}");
    }

    #[test]
    fn the_deadline_stops_retries_and_stalls() {
        let rt = rt();
        let p = Policy::within(Duration::from_secs(3));
        let calls = Cell::new(0);
        let out: Result<(), Failure<&str>> = rt.block_on(run(
            &p,
            || {
                calls.set(calls.get() + 1);
                // Never answers: each attempt ends at the attempt timeout.
                std::future::pending()
            },
            |_| Verdict::Retry(None),
        ));
        assert!(matches!(out, Err(Failure::TimedOut)));
        assert_eq!(
            calls.get(),
            1,
            "a stall that uses the deadline is not retried"
        );
        assert!(rt.block_on(async { Instant::now() }) <= p.deadline + Duration::from_millis(1));
    }

    #[test]
    fn retry_after_values() {
        assert_eq!(retry_after(Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some(" 0.5 ")), Some(Duration::from_millis(500)));
        assert_eq!(retry_after(Some("soon")), None);
        assert_eq!(retry_after(Some("-1")), None);
        assert_eq!(retry_after(None), None);
    }
}
