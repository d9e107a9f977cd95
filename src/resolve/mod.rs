//! From planned fetches to values: fetch each distinct locator once (each
//! provider its whole batch, remote providers at the same time), keep values
//! between renders for `watch` and `exec --watch` ([`cache`]), then compute each
//! name's value and emit each site ([`evaluate`]): fetch → JSON key → base64 →
//! TOTP → type check.

pub(crate) mod cache;
pub(crate) mod evaluate;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::provider::{FetchError, Locator, Registry};
use crate::secret::SecretBytes;

pub(crate) use cache::{fetch_cached, Cache};
pub(crate) use evaluate::{Evaluator, Outcome};

/// Results of every fetch of a run, by fetch key.
pub(crate) type Fetched = HashMap<Locator, Result<SecretBytes, FetchError>>;

/// How each fetch key's value was obtained, by fetch key: what the audit log
/// records of every access.
pub(crate) type Accesses = HashMap<Locator, Access>;

/// How one value was obtained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Access {
    /// Served from the cache of `watch` and `exec --watch`, without a fetch.
    pub(crate) cache_hit: bool,
    /// How long its provider's batch took (zero for a cache hit).
    pub(crate) duration: Duration,
}

/// Fetches each distinct locator once; each provider gets its whole batch, and
/// remote providers fetch at the same time, each on its own thread.
pub(crate) fn fetch_all(
    requests: &HashSet<Locator>,
    registry: &mut Registry,
) -> (Fetched, Accesses) {
    let mut fetched = Fetched::with_capacity(requests.len());
    let mut accesses = Accesses::with_capacity(requests.len());
    for (locator, (result, duration)) in registry.fetch(requests) {
        let access = Access {
            cache_hit: false,
            duration,
        };
        accesses.insert(locator.clone(), access);
        fetched.insert(locator, result);
    }
    (fetched, accesses)
}
