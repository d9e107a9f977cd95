//! From planned fetches to values: fetch each distinct locator once (each
//! provider its whole batch, remote providers at the same time), keep values
//! between renders for `watch` and `exec --watch` ([`cache`]), then compute each
//! name's value and emit each site ([`evaluate`]): fetch → JSON key → base64 →
//! TOTP → type check.

pub mod cache;
pub mod evaluate;

use std::collections::{HashMap, HashSet};

use crate::json_path::json_key_text;
use crate::provider::{FetchError, Locator, Registry};
use crate::secret::SecretBytes;

pub use crate::yaml::site::Emitted;
pub use cache::{fetch_cached, Cache};
pub use evaluate::Evaluator;

/// The fixed mask of `--redact` (one mask for every use: see [`crate::secret::MASK`]).
pub use crate::secret::MASK;

/// Results of every fetch of a run, by fetch key.
pub type Fetched = HashMap<Locator, Result<SecretBytes, FetchError>>;

/// Fetches each distinct locator once; each provider gets its whole batch, and
/// remote providers fetch at the same time, each on its own thread.
pub fn fetch_all(requests: &HashSet<Locator>, registry: &mut Registry) -> Fetched {
    registry.fetch(requests)
}

/// A direct reference's outcome for `check --resolve`, in one word; its
/// diagnostics come from rendering the site.
pub fn direct_status(fetched: &Fetched, loc: &Locator) -> &'static str {
    match fetched.get(&loc.fetch_key()) {
        None => "not fetched",
        Some(Err(e)) => e.class.word(),
        Some(Ok(bytes)) => {
            let text = std::str::from_utf8(bytes.expose())
                .ok()
                .filter(|_| !bytes.is_binary());
            match (text, loc.json_key()) {
                (None, _) => "invalid",
                (Some(_), None) => "found",
                (Some(t), Some(key)) => match json_key_text(t, key) {
                    Ok(_) => "found",
                    Err(m) if m.not_json => "invalid",
                    Err(_) => "not found",
                },
            }
        }
    }
}
