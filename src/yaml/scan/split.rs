//! The first pass over a large input in two halves on two threads, joined
//! only when the join is provably the one-pass reading.
//!
//! The input is cut at a line near the middle that starts, at column 0, what
//! can only be a key of the root mapping. Each half is parsed on its own; the
//! halves are joined only when the first is one document whose root is a
//! block mapping (with no explicit `...` end) and the second, parsed from the
//! cut, is one implicit document whose root is a block mapping starting at the
//! cut, with no aliases (an anchor of the first half would be unknown there)
//! and no declarations block. In a root block mapping every value's content is
//! indented past column 0 (block scalars, plain and quoted continuations, flow
//! collections in the first document must all be, or the first half would not
//! parse alone as a complete document), so a column-0 key line is a real
//! boundary and the two readings together are the whole one. Anything else —
//! an error in either half included — parses the input in one pass instead,
//! which also reports the errors as usual.

use super::{duplicate_key, Limits, Scan, Walker};
use crate::error::{Diagnostics, SourceId};
use crate::yaml::digest::{Acc, DigestKey};

/// Inputs at least this large are split: below it a second thread costs more
/// than it saves.
pub(super) const MIN_LEN: usize = 4 << 20;

/// How far past the middle a cut line is looked for.
const SEARCH: usize = 1 << 20;

/// The settings of one scan.
pub(super) struct Pass<'k> {
    pub(super) source: SourceId,
    pub(super) limits: Limits,
    pub(super) key: &'k DigestKey,
    pub(super) want_sites: bool,
    pub(super) block_key: Option<&'k str>,
}

/// A line start near the middle of `src` where a root key can stand.
fn cut(src: &str, block_key: Option<&str>) -> Option<usize> {
    let b = src.as_bytes();
    let mut at = src.len() / 2;
    let end = (at + SEARCH).min(b.len());
    while at < end {
        let nl = at + src[at..end].find('\n')?;
        at = nl + 1;
        let &first = b.get(at)?;
        let keyish = first.is_ascii_alphanumeric() || first == b'_';
        let block = block_key.is_some_and(|k| src[at..].starts_with(k));
        if keyish && !block {
            return Some(at);
        }
    }
    None
}

/// Scans `src` in two halves, or returns `None` (nothing reported) when the
/// halves do not join.
pub(super) fn scan(src: &str, pass: &Pass<'_>, diags: &mut Diagnostics) -> Option<Scan> {
    let at = cut(src, pass.block_key)?;
    let hasher = foldhash::quality::RandomState::default();
    let (mut d1, mut d2) = (Diagnostics::default(), Diagnostics::default());
    let (first, second) = std::thread::scope(|s| {
        let second = s.spawn(|| walker(src, pass, &hasher, at, &mut d2).half());
        let mut w = walker(src, pass, &hasher, 0, &mut d1);
        w.continues = true;
        w.end = at;
        let first = w.half();
        (first, second.join().ok())
    });
    let (first, second) = (first?, second??);
    let joins = first.docs == 1
        && !first.explicit_end
        && first.root_map.is_some()
        && second.docs == 1
        && second.root_map == Some(at)
        && second.aliases == 0
        && second.scan.secrets.is_none()
        && first.aliases <= pass.limits.max_aliases;
    if !joins {
        return None;
    }
    // Keys of the root mapping given in both halves.
    let mut dups = Diagnostics::default();
    if let (Some(k1), Some(k2)) = (&first.root_keys, &second.root_keys) {
        for (hash, r2) in k2 {
            if let Some(r1) = k1.get(hash) {
                let text = src.get(r2.clone()).unwrap_or_default();
                dups.push(duplicate_key(pass.source, text, r2.clone(), r1.clone()));
            }
        }
    }
    let mut scan = first.scan;
    scan.sites.extend(second.scan.sites);
    scan.segments = vec![Acc::default(); scan.sites.len() + 1];
    scan.digested = false;
    scan.halves = true;
    diags.extend(d1.take());
    diags.extend(d2.take());
    diags.extend(dups.take());
    Some(scan)
}

/// A walker for the part of `src` from `base`, with the shared key hasher.
fn walker<'a, 'k>(
    src: &'a str,
    pass: &'k Pass<'k>,
    hasher: &foldhash::quality::RandomState,
    base: usize,
    diags: &'k mut Diagnostics,
) -> Walker<'a, 'k> {
    let mut w = Walker::new(
        src,
        pass.source,
        pass.limits,
        pass.key,
        pass.want_sites,
        pass.block_key,
        diags,
    );
    w.digesting = false;
    w.key_hasher = hasher.clone();
    w.base = base;
    w
}

/// What a half's walk found, for the join.
struct Half {
    scan: Scan,
    docs: usize,
    explicit_end: bool,
    root_map: Option<usize>,
    root_keys: Option<super::KeySet>,
    aliases: usize,
}

impl Walker<'_, '_> {
    /// Walks its part of the input; `None` on any error (the one-pass scan
    /// then reports it).
    fn half(mut self) -> Option<Half> {
        self.walk().ok()?;
        Some(Half {
            docs: self.out.docs,
            explicit_end: self.explicit_end,
            root_map: self.root_map,
            root_keys: self.root_keys.take(),
            aliases: self.aliases,
            scan: std::mem::take(&mut self.out),
        })
    }
}
