//! From planned fetches to values: fetch each distinct locator once (each
//! provider its whole batch, remote providers at the same time), keep values
//! between renders for `watch` and `exec --watch` ([`cache`]), then compute each
//! name's value and emit each site ([`evaluate`]): fetch → JSON key → base64 →
//! TOTP → type check.

pub mod cache;
pub mod evaluate;

use std::collections::{HashMap, HashSet};

use crate::provider::{FetchError, Locator, ProviderKind, Registry};
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
    per_provider(
        requests,
        registry,
        |p, reqs| p.fetch(reqs),
        |kind| {
            Err(FetchError::new(
                crate::provider::FetchClass::Unreachable,
                format!("the {kind} provider gave no answer"),
            ))
        },
    )
}

/// Runs `call` once per provider with all of that provider's `requests`
/// (remote providers at the same time, each on its own thread); `missing`
/// stands in for an answer a provider did not give.
pub(crate) fn per_provider<'r, R: Send>(
    requests: impl IntoIterator<Item = &'r Locator>,
    registry: &mut Registry,
    call: impl Fn(&dyn crate::provider::Provider, &[&Locator]) -> Vec<R> + Sync,
    missing: impl Fn(ProviderKind) -> R,
) -> HashMap<Locator, R> {
    let mut by_kind: HashMap<ProviderKind, Vec<&Locator>> = HashMap::new();
    for r in requests {
        by_kind.entry(r.kind()).or_default().push(r);
    }
    let mut kinds: Vec<_> = by_kind.keys().copied().collect();
    kinds.sort();
    for kind in &kinds {
        registry.start(*kind);
    }
    let registry = &*registry;
    let one = |kind: ProviderKind| {
        let reqs = &by_kind[&kind];
        let results = match registry.started_provider(kind) {
            Some(p) => call(p, reqs),
            None => Vec::new(),
        };
        (kind, results)
    };
    let remote = kinds.iter().filter(|k| k.is_remote()).count();
    let results: Vec<_> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut done = Vec::new();
        for kind in &kinds {
            if kind.is_remote() && remote > 1 {
                handles.push(scope.spawn(|| one(*kind)));
            } else {
                done.push(one(*kind));
            }
        }
        done.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        done
    });
    let mut out = HashMap::new();
    for (kind, res) in results {
        let mut res = res.into_iter();
        for r in &by_kind[&kind] {
            let one = res.next().unwrap_or_else(|| missing(kind));
            out.insert((*r).clone(), one);
        }
    }
    out
}
