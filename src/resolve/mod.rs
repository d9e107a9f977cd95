//! From planned fetches to values: fetch each distinct locator once (each
//! provider its whole batch, remote providers at the same time), keep values
//! between renders for `watch` and `exec --watch` ([`cache`]), then compute each
//! name's value and emit each site ([`evaluate`]): fetch → JSON key → base64 →
//! TOTP → type check.

pub mod cache;
pub mod evaluate;

use std::collections::{HashMap, HashSet};

use crate::provider::{FetchError, Locator, Registry};
use crate::secret::SecretBytes;

pub use crate::yaml::site::Emitted;
pub use cache::{fetch_cached, Cache};
pub use evaluate::{Evaluator, Outcome};

/// The fixed mask of `--redact` (one mask for every use: see [`crate::secret::MASK`]).
pub use crate::secret::MASK;

/// Results of every fetch of a run, by fetch key.
pub type Fetched = HashMap<Locator, Result<SecretBytes, FetchError>>;

/// Fetches each distinct locator once; each provider gets its whole batch, and
/// remote providers fetch at the same time, each on its own thread.
pub fn fetch_all(requests: &HashSet<Locator>, registry: &mut Registry) -> Fetched {
    registry.fetch(requests)
}
