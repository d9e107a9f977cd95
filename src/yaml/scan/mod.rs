//! The first pass: one walk over the parser's events with byte spans.
//!
//! It finds the first document's top-level `secrets:` block (captured as a small
//! tree, then cut from the output), every scalar that holds a reference or an
//! escape (a `Site`, with the exact byte region to replace), references in
//! mapping keys (errors), and the path of every site for `scope` checks. It also
//! folds every event that will reach the output into the verification digest, in
//! segments split at the sites, and enforces the nesting and alias limits.
//! A scalar key given twice in one mapping is a warning naming both places.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle, StructureStyle};

use super::digest::{Acc, DigestKey, Ev};
use super::emit::Ctx;
use super::schema::plain_kind;
use crate::error::{Diagnostic, Diagnostics, SourceId};
use crate::reference::{self, Template};

mod capture;
mod layout;
mod split;

use super::node::{locate, BlockSite, CutFacts, Node, NodeKind, Scan, SecretsBlock, Site};
use capture::{Capture, Partial, RootEntry};
use layout::block_layout;

/// Bounds against hostile input.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deepest nesting of collections.
    pub max_depth: usize,
    /// Most alias nodes in one input.
    pub max_aliases: usize,
    /// Refuse what the YAML 1.2 spec refuses, rather than read what libyaml reads.
    pub strict_yaml: bool,
}

impl Limits {
    /// The parser settings, shared by the scan and the verification so that both
    /// read the same tree. Leniency is granit's PyYAML/libyaml-compatible
    /// indentation (under-indented flow continuation lines); nothing else.
    pub(crate) fn parser_options(&self, nesting: usize) -> granit_parser::Options {
        granit_parser::options! {
            strict_indentation: self.strict_yaml,
            // A block scalar's last line at the end of the file, without a line
            // break, reads as libyaml-family consumers read it (no `\n`), in both
            // modes: the emitter writes such values so every reader agrees.
            block_scalar_eof_without_line_feed: true,
            flow_nesting_limit: nesting,
            block_nesting_limit: nesting,
        }
    }
}

struct Frame<'a> {
    map: bool,
    flow: bool,
    expect_key: bool,
    in_key: bool,
    key: Option<Cow<'a, str>>,
    index: usize,
    /// Scalar keys seen so far, with their span; made on the first key.
    keys: Option<KeySet>,
}

/// A mapping's scalar keys, by a keyed hash of (tag or resolved kind, text), to
/// the first key's span. A hash, not the text: a key costs about 32 bytes,
/// not a copy of it. The hash is seeded at random per run, so a collision
/// cannot be planned; a chance one (about 1 in 10^10 for the 65,536 keys a
/// mapping remembers) only adds a warning.
type KeySet = HashMap<u64, Range<usize>, std::hash::BuildHasherDefault<Prehashed>>;

/// The table's hasher for keys that are already keyed hashes: hashing them
/// again would double the check's cost.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else still hashes, just not well.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Keys remembered per mapping. Beyond them a key is still compared with the
/// ones remembered, but not added: a generated mapping of a million keys keeps
/// the check within about 3 MB (and in cache), not 30 MB.
const MAX_KEYS_REMEMBERED: usize = 1 << 16;

/// At most this many duplicate-key warnings per source: a generated file full of
/// them still gets a short report.
const MAX_DUPLICATE_WARNINGS: usize = 20;

/// Runs the first pass over `src`. `block_key` names the top-level key of the
/// declarations block (`None`: no block, every key is content).
pub fn scan(
    src: &str,
    source: SourceId,
    limits: Limits,
    key: &DigestKey,
    want_sites: bool,
    block_key: Option<&str>,
    diags: &mut Diagnostics,
) -> Option<Scan> {
    scan_for(src, source, limits, key, want_sites, block_key, true, diags)
}

/// [`scan`], folding the events into [`Scan::segments`] only when `digest` is
/// set: local verification compares no digest, and skips the hashing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn scan_for(
    src: &str,
    source: SourceId,
    limits: Limits,
    key: &DigestKey,
    want_sites: bool,
    block_key: Option<&str>,
    digest: bool,
    diags: &mut Diagnostics,
) -> Option<Scan> {
    if !digest && src.len() >= split::MIN_LEN {
        let pass = split::Pass {
            source,
            limits,
            key,
            want_sites,
            block_key,
        };
        let hasher = foldhash::quality::RandomState::default();
        let (mut own, mut joined) = (Diagnostics::default(), Diagnostics::default());
        let walk = |cut: Option<split::Cut>| {
            let mut walker = pass.walker(src, &hasher, &mut own);
            walker.cut = cut;
            walker.walk()?;
            let half = walker.joined.take();
            let keys = walker.root_keys_so_far();
            Ok((std::mem::take(&mut walker.out), half, keys))
        };
        // A fatal error drops the scan's other diagnostics, as below.
        return match split::scan(src, &pass, &hasher, walk, &mut joined) {
            Ok(scan) => {
                diags.extend(own.take());
                diags.extend(joined.take());
                Some(scan)
            }
            Err(d) => {
                diags.push(d);
                None
            }
        };
    }
    let mark = diags.mark();
    let mut walker = Walker::new(src, source, limits, key, want_sites, block_key, diags);
    walker.digesting = digest;
    walker.out.digested = digest;
    match walker.run() {
        Ok(scan) => Some(scan),
        Err(d) => {
            // A fatal error is the scan's only one: the declarations are never
            // read, so nothing is masked, and an earlier diagnostic's quoted
            // line could show an inline value.
            diags.truncate(mark);
            diags.push(d);
            None
        }
    }
}

struct Walker<'a, 'k> {
    src: &'a str,
    source: SourceId,
    limits: Limits,
    key: &'k DigestKey,
    want_sites: bool,
    block_key: Option<&'k str>,
    /// Problems that do not stop the walk (a fatal one is `run`'s error).
    diags: &'k mut Diagnostics,
    out: Scan,
    frames: Vec<Frame<'a>>,
    acc: Acc,
    doc: usize,
    started: bool,
    last_end: usize,
    max_end: usize,
    aliases: usize,
    pending_secrets: Option<Range<usize>>,
    capture: Option<Capture>,
    removed_ids: Vec<usize>,
    anchored: HashMap<usize, String>,
    root_flow: bool,
    root_entries: Vec<RootEntry>,
    secrets_entry: Option<usize>,
    duplicates: usize,
    /// Keys the per-mapping key sets' hashes (see [`KeySet`]): seeded at
    /// random per run, and several times faster than SipHash on short keys.
    key_hasher: foldhash::quality::RandomState,
    /// Fold events into the digest (off when nothing will compare it).
    digesting: bool,
    /// The last scalar read was a block scalar.
    last_block: bool,
    /// The scalar read before the `secrets` key was a block scalar.
    block_before_secrets: bool,
    /// The part of `src` this walker parses (all of it but in [`split`]).
    base: usize,
    end: usize,
    /// Root entries follow in text the [`split`] helper walked.
    continues: bool,
    /// For [`split`]'s join: the first document's root was a block mapping
    /// starting here, and its keys as the duplicate check kept them.
    root_map: Option<usize>,
    root_keys: Option<KeySet>,
    /// The one-pass walk's cut, where a helper's second half may join.
    cut: Option<split::Cut>,
    /// The helper's second half, once joined at the cut.
    joined: Option<split::Half>,
    /// The helper stops when this is set; `stopped` says it did.
    stop: Option<&'k std::sync::atomic::AtomicBool>,
    stopped: bool,
}

impl<'a, 'k> Walker<'a, 'k> {
    fn new(
        src: &'a str,
        source: SourceId,
        limits: Limits,
        key: &'k DigestKey,
        want_sites: bool,
        block_key: Option<&'k str>,
        diags: &'k mut Diagnostics,
    ) -> Self {
        Walker {
            src,
            source,
            limits,
            key,
            want_sites,
            block_key,
            diags,
            out: Scan::default(),
            frames: Vec::new(),
            acc: Acc::default(),
            doc: 0,
            started: false,
            last_end: 0,
            max_end: 0,
            aliases: 0,
            pending_secrets: None,
            capture: None,
            removed_ids: Vec::new(),
            anchored: HashMap::new(),
            root_flow: false,
            root_entries: Vec::new(),
            secrets_entry: None,
            duplicates: 0,
            key_hasher: foldhash::quality::RandomState::default(),
            digesting: true,
            last_block: false,
            block_before_secrets: false,
            base: 0,
            end: src.len(),
            continues: false,
            root_map: None,
            root_keys: None,
            cut: None,
            joined: None,
            stop: None,
            stopped: false,
        }
    }

    fn run(mut self) -> Result<Scan, Diagnostic> {
        self.walk()?;
        Ok(self.out)
    }

    /// Walks `src[base..end]`.
    fn walk(&mut self) -> Result<(), Diagnostic> {
        let options = self.limits.parser_options(self.limits.max_depth);
        let text = self.src.get(self.base..self.end).unwrap_or_default();
        for item in Parser::new_from_str_with_options(text, options) {
            let (ev, span) = item.map_err(|e| self.parse_error(&e))?;
            let r = span.byte_range().unwrap_or(0..0);
            let r = r.start + self.base..r.end + self.base;
            if self.at_cut(&ev, r.start) {
                // The rest is the helper's: root entries follow.
                self.continues = true;
                if let Some(last) = self.root_entries.last_mut() {
                    last.value_end = self.max_end;
                }
                break;
            }
            if self
                .stop
                .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
            {
                self.stopped = true;
                break;
            }
            // An implicit document starts with the span of its first token: what
            // was read before that token is what precedes the document.
            let read = !matches!(ev, Event::DocumentStart(false, _));
            self.event(ev, r.clone(), span.indent)?;
            if read {
                if r.end > r.start {
                    self.max_end = self.max_end.max(r.end);
                }
                self.last_end = r.end;
            }
        }
        if self.duplicates > MAX_DUPLICATE_WARNINGS {
            self.diags.push(Diagnostic::warning(format!(
                "{} more keys given twice in one mapping are not shown",
                self.duplicates - MAX_DUPLICATE_WARNINGS
            )));
        }
        self.finish_secrets();
        self.out.segments.push(self.acc);
        Ok(())
    }

    fn parse_error(&self, e: &granit_parser::ScanError) -> Diagnostic {
        let at = (e.marker().byte_offset().unwrap_or(0) + self.base).min(self.src.len());
        let mut msg = e.kind().to_string();
        if matches!(e.kind(), granit_parser::ErrorKind::RecursionLimitExceeded)
            || msg.contains("nest")
        {
            msg = format!(
                "nesting deeper than {} levels (raise with --max-depth)",
                self.limits.max_depth
            );
        }
        Diagnostic::invalid(format!("invalid YAML: {msg}"))
            .at(self.source, at..at)
            .without_snippet()
    }

    /// Folds an event outside the declarations block into the digest.
    fn digest(&mut self, ev: Ev<'_>) {
        if self.capture.is_none() {
            self.fold(ev);
        }
    }

    fn fold(&mut self, ev: Ev<'_>) {
        if self.digesting {
            self.acc.push(self.key, ev);
        }
    }

    /// Anchor id as numbered in the output, where the secrets block's anchors are gone.
    fn out_id(&self, id: usize) -> usize {
        if id == 0 {
            0
        } else {
            id - self.removed_ids.partition_point(|&r| r < id)
        }
    }

    /// Role of the node that starts now: (is a key, is inside a key).
    fn role(&self) -> (bool, bool) {
        match self.frames.last() {
            None => (false, false),
            Some(f) => {
                let is_key = f.map && f.expect_key;
                (is_key, f.in_key || is_key)
            }
        }
    }

    fn node_done(&mut self) {
        if let Some(f) = self.frames.last_mut() {
            if f.map {
                f.expect_key = !f.expect_key;
            } else {
                f.index += 1;
            }
        }
        // A captured value ends when the frame depth returns to where it began.
        if let Some(c) = &self.capture {
            if self.frames.len() == c.depth && c.stack.is_empty() {
                self.end_capture();
            }
        }
    }

    fn event(
        &mut self,
        ev: Event<'a>,
        r: Range<usize>,
        indent: Option<usize>,
    ) -> Result<(), Diagnostic> {
        match ev {
            Event::DocumentStart(..) => {
                if self.started {
                    self.doc += 1;
                }
                self.started = true;
                self.out.docs += 1;
                self.digest(Ev::DocStart);
            }
            Event::DocumentEnd => self.digest(Ev::DocEnd),
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.map(|t| t.to_string());
                self.scalar(value, style, anchor, tag, r, indent);
            }
            Event::MappingStart(style, anchor, tag) => {
                self.start(true, style, anchor, tag.map(|t| t.to_string()), r)?;
            }
            Event::SequenceStart(style, anchor, tag) => {
                self.start(false, style, anchor, tag.map(|t| t.to_string()), r)?;
            }
            Event::MappingEnd | Event::SequenceEnd => self.end(r),
            Event::Alias(id) => self.alias(id, r)?,
            _ => {}
        }
        Ok(())
    }

    fn start(
        &mut self,
        map: bool,
        style: StructureStyle,
        anchor: usize,
        tag: Option<String>,
        r: Range<usize>,
    ) -> Result<(), Diagnostic> {
        let (is_key, in_key) = self.role();
        self.note_root_key(is_key, r.start);
        if let Some(f) = self.frames.last_mut() {
            if is_key {
                f.key = None;
            }
        }
        self.maybe_begin_capture();
        let flow = style == StructureStyle::Flow;
        if self.frames.len() >= self.limits.max_depth {
            return Err(Diagnostic::invalid(format!(
                "nesting deeper than {} levels (raise with --max-depth)",
                self.limits.max_depth
            ))
            .at(self.source, r.start..r.start)
            .without_snippet());
        }
        if self.frames.is_empty() && self.doc == 0 {
            self.root_flow = flow;
            if map && !flow && anchor == 0 && tag.is_none() {
                self.root_map = Some(r.start);
            }
        }
        if let Some(c) = self.capture.as_mut() {
            if anchor != 0 {
                self.removed_ids.push(anchor);
            }
            c.stack.push(if map {
                Partial::Map(Vec::new(), None, r.start)
            } else {
                Partial::Seq(Vec::new(), r.start)
            });
        } else {
            let id = self.out_id(anchor);
            self.fold(if map {
                Ev::MapStart(id, tag.as_deref())
            } else {
                Ev::SeqStart(id, tag.as_deref())
            });
        }
        self.frames.push(Frame {
            map,
            flow,
            expect_key: true,
            in_key,
            key: None,
            index: 0,
            keys: None,
        });
        Ok(())
    }

    fn end(&mut self, r: Range<usize>) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        if self.frames.is_empty() && self.doc == 0 && frame.map {
            if let Some(last) = self.root_entries.last_mut() {
                last.value_end = self.max_end;
            }
            self.root_keys = frame.keys;
        }
        if let Some(c) = self.capture.as_mut() {
            let end = self.max_end.max(r.end);
            if let Some(p) = c.stack.pop() {
                let node = match p {
                    Partial::Map(entries, _, start) => Node {
                        kind: NodeKind::Map(entries),
                        span: start..end,
                    },
                    Partial::Seq(items, start) => Node {
                        kind: NodeKind::Seq(items),
                        span: start..end,
                    },
                };
                c.add(node);
            }
        } else {
            self.fold(if frame.map { Ev::MapEnd } else { Ev::SeqEnd });
        }
        self.node_done();
    }

    fn alias(&mut self, id: usize, r: Range<usize>) -> Result<(), Diagnostic> {
        self.aliases += 1;
        if self.aliases > self.limits.max_aliases {
            return Err(Diagnostic::invalid(format!(
                "more than {} aliases (raise with --max-aliases)",
                self.limits.max_aliases
            ))
            .at(self.source, r)
            .without_snippet());
        }
        let (is_key, _) = self.role();
        self.note_root_key(is_key, r.start);
        self.maybe_begin_capture();
        if let Some(c) = self.capture.as_mut() {
            let kind = match self.anchored.get(&id) {
                Some(v) => NodeKind::Scalar {
                    value: v.clone(),
                    style: ScalarStyle::DoubleQuoted,
                },
                None => NodeKind::Alias,
            };
            c.add(Node { kind, span: r });
        } else {
            if self.removed_ids.binary_search(&id).is_ok() {
                // Named as configured (--secrets-key), not as the default.
                let key = self.block_key.unwrap_or("secrets");
                self.diags.push(
                    Diagnostic::invalid(format!(
                        "alias to an anchor inside the `{key}:` block, which is removed from the output"
                    ))
                    .at(self.source, r.clone())
                    .note(format!("move the anchored value out of the `{key}:` block")),
                );
            }
            let id = self.out_id(id);
            self.fold(Ev::Alias(id));
        }
        self.node_done();
        Ok(())
    }

    fn scalar(
        &mut self,
        value: Cow<'a, str>,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<String>,
        r: Range<usize>,
        indent: Option<usize>,
    ) {
        let (is_key, in_key) = self.role();
        self.note_root_key(is_key, r.start);
        let block_before = std::mem::replace(
            &mut self.last_block,
            matches!(style, ScalarStyle::Literal | ScalarStyle::Folded),
        );
        // The root `secrets` key (or --secrets-key) of the first document opens the
        // declarations block.
        if self.at_root_key(is_key) && self.block_key == Some(&*value) && self.capture.is_none() {
            if self.out.secrets.is_some() || self.pending_secrets.is_some() {
                self.diags.push(
                    Diagnostic::invalid(format!("duplicate `{value}:` block"))
                        .at(self.source, r.clone()),
                );
            } else {
                self.pending_secrets = Some(r.clone());
                self.block_before_secrets = block_before;
                if let Some(f) = self.frames.last_mut() {
                    f.key = Some(value);
                }
                self.node_done();
                return;
            }
        }
        self.maybe_begin_capture();
        if self.doc == 0 && anchor != 0 && self.out.secrets.is_none() {
            self.anchored.insert(anchor, value.to_string());
        }
        if let Some(c) = self.capture.as_mut() {
            if anchor != 0 {
                self.removed_ids.push(anchor);
            }
            c.add(Node {
                kind: NodeKind::Scalar {
                    value: value.into_owned(),
                    style,
                },
                span: r,
            });
            self.node_done();
            return;
        }
        if is_key {
            self.note_key(&value, style, tag.as_deref(), &r);
        }
        if self.want_sites && reference::may_contain_reference(&value) {
            let (template, errors) = reference::parse(&value);
            for e in &errors {
                let at = locate(self.src, &r, &value, e.range.clone());
                let mut d = Diagnostic::invalid(e.message.clone()).at(self.source, at);
                if let Some(n) = &e.note {
                    d = d.note(n.clone());
                }
                self.diags.push(d);
            }
            let unchanged = match template.parts.as_slice() {
                [reference::Part::Literal(l)] => *l == *value,
                [] => value.is_empty(),
                _ => false,
            };
            if in_key && template.has_refs() {
                for p in &template.parts {
                    if let reference::Part::Secret(reference::SecretRef { range, .. })
                    | reference::Part::Direct(reference::DirectRef { range, .. }) = p
                    {
                        let at = locate(self.src, &r, &value, range.clone());
                        self.diags.push(
                            Diagnostic::invalid("reference in a mapping key")
                                .at(self.source, at)
                                .label("a key must not depend on a secret"),
                        );
                    }
                }
            } else if !unchanged && errors.is_empty() {
                self.site(value, template, style, anchor, tag, r, indent, is_key);
                if let Some(f) = self.frames.last_mut() {
                    if is_key {
                        f.key = None;
                    }
                }
                self.node_done();
                return;
            }
        }
        let id = self.out_id(anchor);
        let kind: &str = match (&tag, style) {
            (Some(t), _) => t,
            (None, ScalarStyle::Plain) => plain_kind(&value),
            (None, _) => "str",
        };
        self.fold(Ev::Scalar(id, kind, &value));
        if is_key {
            if let Some(f) = self.frames.last_mut() {
                f.key = Some(value);
            }
        }
        self.node_done();
    }

    /// Records a scalar key of the current mapping; the second time a key is
    /// given (same tag or resolved kind, same text) warns with both places.
    /// Readers disagree on such a file: Go yaml and js-yaml refuse it, PyYAML and
    /// SnakeYAML keep the last value. Keys that are collections or aliases are not compared,
    /// nor merge keys (`<<`), nor the `secrets:` block (which reports its own
    /// duplicates as errors).
    // `&Cow`, not `&str`: cloning it keeps a key borrowed from the source borrowed.
    #[allow(clippy::ptr_arg)]
    fn note_key(
        &mut self,
        value: &Cow<'a, str>,
        style: ScalarStyle,
        tag: Option<&str>,
        r: &Range<usize>,
    ) {
        let kind: &str = match (tag, style) {
            (Some(t), _) => t,
            (None, ScalarStyle::Plain) if value == "<<" => return,
            (None, ScalarStyle::Plain) => plain_kind(value),
            (None, _) => "str",
        };
        let hash = std::hash::BuildHasher::hash_one(&self.key_hasher, (kind, value.as_ref()));
        let Some(f) = self.frames.last_mut().filter(|f| f.map) else {
            return;
        };
        let keys = f.keys.get_or_insert_with(KeySet::default);
        let first = match keys.get(&hash) {
            Some(first) => first.clone(),
            None => {
                if keys.len() < MAX_KEYS_REMEMBERED {
                    keys.insert(hash, r.clone());
                }
                return;
            }
        };
        self.duplicates += 1;
        if self.duplicates > MAX_DUPLICATE_WARNINGS {
            return;
        }
        self.diags
            .push(duplicate_key(self.source, value, r.clone(), first));
    }

    #[allow(clippy::too_many_arguments)]
    fn site(
        &mut self,
        value: Cow<'a, str>,
        template: Template,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<String>,
        r: Range<usize>,
        indent: Option<usize>,
        is_key: bool,
    ) {
        // Close the digest segment: the site's events are added after resolution.
        self.out.segments.push(std::mem::take(&mut self.acc));
        let mut region = r.clone();
        let mut block = None;
        if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
            let (reg, b) = block_layout(self.src, self.last_end.min(r.start), &r, style, indent);
            region = reg;
            block = Some(b);
        }
        let ctx = if self.frames.iter().any(|f| f.flow) {
            Ctx::Flow
        } else {
            Ctx::Block
        };
        let path = self
            .frames
            .iter()
            .map(|f| {
                if f.map {
                    f.key.as_deref().unwrap_or("?").to_owned()
                } else {
                    f.index.to_string()
                }
            })
            .collect();
        let anchor = self.out_id(anchor);
        self.out.sites.push(Site {
            region,
            span: r,
            value: value.into_owned(),
            template,
            style,
            ctx,
            block,
            tag,
            anchor,
            is_key,
            path,
        });
    }
}

/// The warning for a key given twice in one mapping.
fn duplicate_key(source: SourceId, key: &str, at: Range<usize>, first: Range<usize>) -> Diagnostic {
    Diagnostic::warning(format!(
        "key `{key}` is given twice in one mapping; readers disagree on which value wins"
    ))
    .at(source, at)
    .label("given again here")
    .also_at(source, first, "first given here")
    .note("Go yaml and js-yaml refuse the file; PyYAML and SnakeYAML keep the last value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(src: &str) -> Vec<(String, Range<usize>, Option<Range<usize>>)> {
        let limits = Limits {
            max_depth: 64,
            max_aliases: 100,
            strict_yaml: false,
        };
        let mut diags = Diagnostics::default();
        let scan = scan(
            src,
            0,
            limits,
            &DigestKey::default(),
            true,
            Some("secrets"),
            &mut diags,
        );
        assert!(scan.is_some(), "scans: {diags:?}");
        diags
            .take()
            .into_iter()
            .filter(|d| !d.is_error())
            .map(|d| {
                let at = d.location.map(|l| l.span).unwrap_or_default();
                (d.message, at, d.related.map(|r| r.0.span.clone()))
            })
            .collect()
    }

    #[test]
    fn duplicate_key_warns_with_both_places() {
        let src = "a: 1\nb: 2\na: 3\n";
        assert_eq!(
            warnings(src),
            [(
                "key `a` is given twice in one mapping; readers disagree on which value wins"
                    .to_owned(),
                10..11,
                Some(0..1)
            )]
        );
    }

    #[test]
    fn duplicate_keys_compare_by_value_and_kind_per_mapping() {
        // Plain and quoted spellings of one string are one key; `1` and `"1"` are two.
        assert_eq!(warnings("x: 1\n\"x\": 2\n").len(), 1);
        assert_eq!(warnings("1: a\n\"1\": b\n").len(), 0);
        // Same key in sibling mappings, in a sequence of mappings, in two documents.
        assert_eq!(warnings("a: {k: 1}\nb: {k: 2}\n").len(), 0);
        assert_eq!(warnings("- {k: 1}\n- {k: 2}\n").len(), 0);
        assert_eq!(warnings("k: 1\n---\nk: 2\n").len(), 0);
        // Nested and flow mappings are checked too.
        assert_eq!(warnings("a:\n  b: {k: 1, k: 2}\n").len(), 1);
        // Merge keys and complex keys are not compared.
        assert_eq!(warnings("<<: {m: 1}\n<<: {n: 1}\n").len(), 0);
        assert_eq!(warnings("? [a]\n: 1\n? [a]\n: 2\n").len(), 0);
    }

    #[test]
    fn duplicate_keys_in_the_secrets_block_are_left_to_its_own_errors() {
        assert_eq!(warnings("secrets:\n  A: x\n  A: y\nv: $<A>\n").len(), 0);
    }

    #[test]
    fn a_mapping_beyond_the_remembered_keys_still_finds_repeats_of_the_first_ones() {
        let mut src: String = (0..MAX_KEYS_REMEMBERED + 10)
            .map(|i| format!("k{i}: 1\n"))
            .collect();
        src.push_str("k3: 2\n");
        let late = format!("k{}: 3\n", MAX_KEYS_REMEMBERED + 5);
        src.push_str(&late);
        let w = warnings(&src);
        // The repeat of a remembered key is found; one of a key past the bound is not.
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].0.starts_with("key `k3`"), "{w:?}");
    }

    #[test]
    fn many_duplicate_keys_give_a_bounded_report() {
        let src: String = (0..100).map(|i| format!("k: {i}\n")).collect();
        let w = warnings(&src);
        assert_eq!(w.len(), MAX_DUPLICATE_WARNINGS + 1);
        assert_eq!(
            w[MAX_DUPLICATE_WARNINGS].0,
            format!(
                "{} more keys given twice in one mapping are not shown",
                99 - MAX_DUPLICATE_WARNINGS
            )
        );
    }
}
