//! The TTL cache of fetched values that `watch` and `exec --watch` keep between
//! renders: cheap version checks first where a provider has them, a fetch only
//! for what moved, and the last good value served (with a warning) when a
//! refresh fails for a transient reason.

use std::collections::{HashMap, HashSet};

use super::{fetch_all, Access, Accesses, Fetched};
use crate::error::Diagnostics;
use crate::provider::{Locator, Registry, VersionCheck};
use crate::secret::SecretBytes;

/// One cached value.
#[derive(Debug)]
struct Entry {
    /// When it was fetched or last confirmed current.
    at: std::time::Instant,
    value: SecretBytes,
    /// Whether the provider's version check works for it (see [`VersionCheck`]).
    checkable: bool,
}

/// Fetched values kept between the renders of `watch` and `exec --watch`.
#[derive(Debug, Default)]
pub(crate) struct Cache {
    entries: HashMap<Locator, Entry>,
    ttl: std::time::Duration,
    /// Set by a `--refresh` tick: every value is checked or fetched again once.
    stale: bool,
    /// Locators whose value differs from the one cached before, since the last
    /// [`Cache::take_changed`]: what a render line names (never values).
    changed: Vec<String>,
}

impl Cache {
    /// A cache whose values are reused for `ttl`.
    pub(crate) fn new(ttl: std::time::Duration) -> Self {
        Cache {
            entries: HashMap::new(),
            ttl,
            stale: false,
            changed: Vec::new(),
        }
    }

    /// The locators whose values changed since the last call, sorted.
    pub(crate) fn take_changed(&mut self) -> Vec<String> {
        let mut v = std::mem::take(&mut self.changed);
        v.sort();
        v.dedup();
        v
    }

    /// Makes the next render check or fetch everything again (rotation
    /// pick-up), keeping the old values to serve if a transient failure stops
    /// the new fetch.
    pub(crate) fn refresh(&mut self) {
        self.stale = true;
    }
}

/// Like [`fetch_all`], reusing cached values younger than the TTL. Older ones
/// (all of them after [`Cache::refresh`]) are first checked with the
/// provider's version check where it has one, and fetched only when their
/// version moved. When a fetch fails for a transient reason (unreachable,
/// throttled) and an older value is cached, that value is served and a warning
/// says so; a value that is now not found or denied is not.
pub(crate) fn fetch_cached(
    requests: &HashSet<Locator>,
    registry: &mut Registry,
    cache: &mut Cache,
    diags: &mut Diagnostics,
) -> (Fetched, Accesses) {
    let now = std::time::Instant::now();
    let mut out: Fetched = HashMap::new();
    let hit = Access {
        cache_hit: true,
        duration: std::time::Duration::ZERO,
    };
    let mut accesses = Accesses::new();
    let mut due = Vec::new();
    for r in requests {
        match cache.entries.get(r) {
            // A value read from a watched local file (a sops file) is read
            // again on every render: its edits are what the render is for.
            Some(e)
                if !cache.stale
                    && r.watched().is_none()
                    && now.duration_since(e.at) < cache.ttl =>
            {
                out.insert(r.clone(), Ok(e.value.clone()));
                accesses.insert(r.clone(), hit);
            }
            _ => due.push(r),
        }
    }
    cache.stale = false;

    let checkable = due.iter().copied().filter(|r| {
        cache
            .entries
            .get(*r)
            .is_some_and(|e| e.checkable && e.value.version().is_some())
    });
    let checks = registry.versions(checkable);
    let mut wanted = HashSet::new();
    for r in due {
        let entry = cache.entries.get_mut(r);
        match (entry, checks.get(r)) {
            (Some(e), Some(VersionCheck::Current(v))) if e.value.version() == Some(v) => {
                e.at = now;
                out.insert(r.clone(), Ok(e.value.clone()));
                accesses.insert(r.clone(), hit);
            }
            (Some(e), Some(VersionCheck::NotOffered)) => {
                e.checkable = false;
                wanted.insert(r.clone());
            }
            _ => {
                wanted.insert(r.clone());
            }
        }
    }

    let (fetched, fetch_accesses) = fetch_all(&wanted, registry);
    accesses.extend(fetch_accesses);
    for (loc, result) in fetched {
        let result = match result {
            Ok(v) => {
                let checkable = cache.entries.get(&loc).is_none_or(|e| e.checkable);
                let entry = Entry {
                    at: now,
                    value: v.clone(),
                    checkable,
                };
                let before = cache.entries.insert(loc.clone(), entry);
                if before.is_some_and(|old| old.value.expose() != v.expose()) {
                    cache.changed.push(loc.to_string());
                }
                Ok(v)
            }
            Err(e) => {
                let transient = matches!(
                    e.class,
                    crate::provider::FetchClass::Unreachable
                        | crate::provider::FetchClass::Throttled
                );
                match cache.entries.get(&loc) {
                    Some(old) if transient => {
                        // Served from the cache after all.
                        if let Some(a) = accesses.get_mut(&loc) {
                            a.cache_hit = true;
                        }
                        diags.warn(format!(
                            "{loc}: fetching failed ({}); serving the last good value",
                            e.class.word()
                        ));
                        Ok(old.value.clone())
                    }
                    _ => {
                        cache.entries.remove(&loc);
                        Err(e)
                    }
                }
            }
        };
        out.insert(loc, result);
    }
    (out, accesses)
}
