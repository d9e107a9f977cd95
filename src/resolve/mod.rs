//! From planned fetches to values: fetch each distinct locator once (each
//! provider its whole batch, remote providers at the same time), keep values
//! between renders for `watch` and `exec --watch` ([`cache`]), then compute each
//! name's value and emit each site ([`evaluate`]): fetch → JSON key → base64 →
//! TOTP → type check.

pub(crate) mod cache;
pub(crate) mod evaluate;

use std::collections::{HashMap, HashSet};

use crate::provider::{FetchError, Locator, Registry};
use crate::secret::SecretBytes;

pub(crate) use cache::{fetch_cached, Cache};
pub(crate) use evaluate::{Evaluator, Outcome};

/// Results of every fetch of a run, by fetch key.
pub(crate) type Fetched = HashMap<Locator, Result<SecretBytes, FetchError>>;

/// Fetches each distinct locator once; each provider gets its whole batch, and
/// remote providers fetch at the same time, each on its own thread.
pub(crate) fn fetch_all(requests: &HashSet<Locator>, registry: &mut Registry) -> Fetched {
    registry.fetch(requests)
}
