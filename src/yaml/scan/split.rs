//! The first pass over a large input on two threads: while this thread walks
//! the input from the start, a helper walks its second half, from a cut line
//! near the middle; when this thread reaches the cut and the helper's walk
//! joins there, this thread stops and takes the helper's results for the rest.
//!
//! The cut is a line that starts, at column 0, with what can only begin a
//! plain key. The join is taken only when the one-pass walk itself reads a key
//! of the first document's root block mapping starting exactly at the cut (so
//! the cut is a real boundary of the one-pass reading, not a guess about it),
//! and the helper read its text as one implicit document whose root is a block
//! mapping starting at the cut, with no alias (an anchor of the first half
//! would be unknown there), no declarations block and no error. At that key
//! the one-pass scanner is in the state a fresh one is in after that mapping's
//! start, so the helper's events are the one-pass walk's. Otherwise the walk
//! simply goes on: the worst case is one pass, with the helper's work wasted on
//! the other core (and stopped as soon as this walk ends).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};

use granit_parser::Event;

use super::{duplicate_key, KeySet, Limits, Scan, Walker};
use crate::error::{Diagnostic, Diagnostics, SourceId};
use crate::yaml::digest::{Acc, DigestKey};

/// Inputs at least this large get a helper: below it a second thread costs
/// more than it saves.
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

impl Pass<'_> {
    /// A walker that folds no digest and hashes keys with `hasher`, shared by
    /// both threads so that keys given in both halves compare.
    pub(super) fn walker<'a, 'w>(
        &'w self,
        src: &'a str,
        hasher: &foldhash::quality::RandomState,
        diags: &'w mut Diagnostics,
    ) -> Walker<'a, 'w> {
        let mut w = Walker::new(
            src,
            self.source,
            self.limits,
            self.key,
            self.want_sites,
            self.block_key,
            diags,
        );
        w.digesting = false;
        w.key_hasher = hasher.clone();
        w
    }
}

/// A line start near the middle of `src` where a root key can stand.
fn cut_line(src: &str, block_key: Option<&str>) -> Option<usize> {
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

/// Whether the lines before the first document's content declare a `%TAG`.
fn declares_tags(src: &str) -> bool {
    for line in src.lines() {
        let t = line.trim_start_matches('\u{feff}');
        if t.starts_with("%TAG") {
            return true;
        }
        if !(t.is_empty() || t.starts_with('#') || t.starts_with('%')) {
            return false;
        }
    }
    false
}

/// A key's value as the parser reads it (`'it''s'` is `it's`), for the
/// warning: the tables keep spans, not text.
fn key_text(raw: &str, limits: Limits) -> String {
    let options = limits.parser_options(limits.max_depth);
    granit_parser::Parser::new_from_str_with_options(raw, options)
        .filter_map(Result::ok)
        .find_map(|(ev, _)| match ev {
            Event::Scalar(v, ..) => Some(v.into_owned()),
            _ => None,
        })
        .unwrap_or_else(|| raw.to_owned())
}

/// What the helper found in the second half.
pub(super) struct Half {
    scan: Scan,
    diags: Diagnostics,
    root_keys: Option<KeySet>,
}

/// The cut the walk looks for, and the helper's answer.
pub(super) struct Cut {
    /// Where the second half starts.
    pub(super) at: usize,
    answer: Receiver<Option<Half>>,
}

/// The one-pass walk, given a cut to look for: its scan, the helper's second
/// half when it joined, and the root mapping's keys where it stopped.
type Walked = (Scan, Option<Half>, Option<KeySet>);

/// Runs `walk` with a helper walking the second half, and joins the two when
/// the walk took the join; diagnostics of the second half and keys given in
/// both halves go to `joined`.
pub(super) fn scan(
    src: &str,
    pass: &Pass<'_>,
    hasher: &foldhash::quality::RandomState,
    walk: impl FnOnce(Option<Cut>) -> Result<Walked, Diagnostic>,
    joined: &mut Diagnostics,
) -> Result<Scan, Diagnostic> {
    // A `%TAG` handle the first document declares would be unknown to the
    // helper, and could resolve a tag differently there instead of failing.
    let at = cut_line(src, pass.block_key).filter(|_| !declares_tags(src));
    let Some(at) = at else {
        return walk(None).map(|(scan, _, _)| scan);
    };
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        let (tx, answer) = channel();
        let stop = &stop;
        s.spawn(move || {
            let mut d = Diagnostics::default();
            let mut w = pass.walker(src, hasher, &mut d);
            w.base = at;
            w.stop = Some(stop);
            let half = w.half(at);
            // The walk may have ended without asking: then nobody listens.
            let _ = tx.send(half.map(|(scan, root_keys)| Half {
                scan,
                diags: d,
                root_keys,
            }));
        });
        let result = walk(Some(Cut { at, answer }));
        stop.store(true, Ordering::Relaxed);
        result
    });
    let (mut scan, half, first_keys) = result?;
    let Some(mut half) = half else {
        return Ok(scan);
    };
    // Keys of the root mapping given in both halves.
    if let (Some(k1), Some(k2)) = (&first_keys, &half.root_keys) {
        for (hash, r2) in k2 {
            if let Some(r1) = k1.get(hash) {
                let text = key_text(src.get(r2.clone()).unwrap_or_default(), pass.limits);
                joined.push(duplicate_key(pass.source, &text, r2.clone(), r1.clone()));
            }
        }
    }
    joined.extend(half.diags.take());
    scan.sites.extend(std::mem::take(&mut half.scan.sites));
    scan.segments = vec![Acc::default(); scan.sites.len() + 1];
    scan.digested = false;
    scan.halves = true;
    Ok(scan)
}

impl<'a> Walker<'a, '_> {
    /// The helper's walk of `src[at..]`: its scan and its root mapping's keys,
    /// or `None` unless it is one implicit document whose root is a block
    /// mapping starting at `at`, with no alias, no declarations block and no error.
    fn half(mut self, at: usize) -> Option<(Scan, Option<KeySet>)> {
        self.walk().ok()?;
        let joins = !self.stopped
            && self.out.docs == 1
            && self.root_map == Some(at)
            && self.aliases == 0
            && self.out.secrets.is_none()
            && self.pending_secrets.is_none();
        joins.then(|| (std::mem::take(&mut self.out), self.root_keys.take()))
    }

    /// Whether the walk stops at this event because the helper's second half
    /// joins here: only at a key of the first document's root block mapping
    /// that starts exactly at the cut. The cut is decided once, at the first
    /// scalar at or past it.
    pub(super) fn at_cut(&mut self, ev: &Event<'_>, start: usize) -> bool {
        let Some(at) = self.cut.as_ref().map(|c| c.at) else {
            return false;
        };
        if start < at || !matches!(ev, Event::Scalar(..)) {
            return false;
        }
        let Some(cut) = self.cut.take() else {
            return false;
        };
        let root_key = start == at
            && self.doc == 0
            && self.capture.is_none()
            && self.pending_secrets.is_none()
            && matches!(self.frames.as_slice(), [f] if f.map && !f.flow && f.expect_key);
        if !root_key {
            return false;
        }
        match cut.answer.recv() {
            Ok(Some(half)) => {
                self.joined = Some(half);
                true
            }
            _ => false,
        }
    }

    /// The root mapping's keys so far (the walk stopped inside it).
    pub(super) fn root_keys_so_far(&mut self) -> Option<KeySet> {
        self.frames.first_mut().and_then(|f| f.keys.take())
    }
}
