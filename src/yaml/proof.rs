//! Local verification: a proof, site by site, that the rendered text reads as
//! the substituted tree, without parsing the whole output again.
//!
//! The output is the input with a few regions replaced. The first pass parsed
//! every input byte, so the scanner's state at the start `s` of a region is
//! known to be the same in the output as in the input. If the replacement R is
//! read from that state as exactly the intended node, ending exactly at the end
//! of R, and leaves the scanner in the state the original node left it in, then
//! every later token is read as before: the output's events are the input's
//! with the site's node substituted. Each check here establishes that claim for
//! one site on a small probe document that puts the scanner in the same state
//! at R's start — the same block or flow context, the same column class
//! (column 0 is where document markers and directives are read) and, for block
//! scalars, the same parent indentation — plus byte conditions on the unchanged
//! text either side of R:
//!
//! - before R: a blank, a line start, or a flow `[`, `{`, `,`, so no earlier
//!   token was decided by looking into R;
//! - after a one-line R: a blank, a line break, the end, or a flow `,`, `]`,
//!   `}`, which end every scalar whatever its content, so R ends where the
//!   original ended; the state after a scalar token does not depend on its
//!   text (no simple key can start inside a value, flow level and indentation
//!   are unchanged);
//! - after a block scalar: blank lines, then a line indented less than its
//!   content (or the end), so R's extent is the original's; the blank lines
//!   are part of the probe, so keep chomping is modelled exactly; the region
//!   must start at the `|`/`>` indicator with the header's line break before
//!   the content, or part of the original header would stay in front of R.
//!
//! Keys, multi-line replacements outside block scalars, plain text in place of
//! a block scalar and every shape not listed here are [`Unproven`]: the caller
//! then parses the whole output and compares digests (`--verify full`), which
//! also stays the test oracle for this module.

use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle};

use super::digest::{Acc, DigestKey, Ev};
use super::emit::Ctx;
use super::node::{BlockSite, SecretsBlock, Site};
use super::scan::Limits;
use super::schema::plain_kind;

/// Why a site or the cut is outside the proven shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unproven(pub(crate) &'static str);

type Proof = Result<(), Unproven>;

/// Proves that `text` in place of `site.region` reads as the events digested in
/// `expected`, and changes nothing else.
pub(crate) fn site(
    src: &str,
    site: &Site,
    text: &str,
    expected: Acc,
    key: &DigestKey,
    limits: Limits,
) -> Proof {
    if site.is_key {
        return Err(Unproven("a mapping key"));
    }
    let probe = match &site.block {
        None => inline(src, site, text)?,
        Some(block) => block_probe(src, site, block, text)?,
    };
    // Nesting counts as in the output: the site's own depth plus R's.
    let room = (limits.max_depth + 64).saturating_sub(site.path.len()) + 1;
    let options = limits.parser_options(room.max(2));
    let (acc, span) = read_probe(&probe, site, key, options)?;
    if acc != expected {
        return Err(Unproven("the replacement does not read as the value"));
    }
    // A block scalar's span covers its content only; its extent was argued from
    // the lines around it, and the probe ends where it does.
    if site.block.is_none() && span != (probe.at..probe.at + text.len()) {
        return Err(Unproven("the replacement does not end where it should"));
    }
    if site.block.is_some() && span.start != probe.at && !text.starts_with(['|', '>']) {
        return Err(Unproven("the replacement does not start where it should"));
    }
    Ok(())
}

/// A probe document and the offset of R in it.
struct Probe {
    text: String,
    at: usize,
    wrap: Wrap,
}

/// What surrounds R in a probe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wrap {
    /// R is the document.
    Root,
    /// R is the value of `k:` in a block mapping.
    Map,
    /// R is the one entry of a flow sequence.
    Seq,
}

fn line_start(src: &str, at: usize) -> usize {
    src[..at].rfind(['\n', '\r']).map_or(0, |i| i + 1)
}

/// A one-line replacement of a flow scalar (plain or quoted).
fn inline(src: &str, site: &Site, text: &str) -> Result<Probe, Unproven> {
    let b = src.as_bytes();
    let Range { start, end } = site.region;
    let flow = site.ctx == Ctx::Flow;
    if text.is_empty() || text.contains(['\n', '\r']) {
        return Err(Unproven("a replacement on more than one line"));
    }
    let ls = line_start(src, start);
    // Column 0 (after at most a byte order mark) is where `---`, `...` and `%`
    // are read as markers.
    let col0 = src[ls..start].chars().all(|c| c == '\u{feff}');
    let before = col0
        || matches!(b.get(start.wrapping_sub(1)), Some(b' ' | b'\t'))
        || (flow && matches!(b[start - 1], b'[' | b'{' | b','));
    if !before {
        return Err(Unproven("the text before the value touches it"));
    }
    let after = match b.get(end) {
        None | Some(b' ' | b'\t' | b'\n' | b'\r') => true,
        Some(b',' | b']' | b'}') => flow,
        Some(_) => false,
    };
    if !after {
        return Err(Unproven("the text after the value touches it"));
    }
    let (open, close, wrap) = match (flow, col0) {
        (false, false) => ("k: ", "\n", Wrap::Map),
        (false, true) => ("", "\n", Wrap::Root),
        (true, false) => ("[", "]\n", Wrap::Seq),
        (true, true) => ("[\n", "\n]\n", Wrap::Seq),
    };
    Ok(Probe {
        text: format!("{open}{text}{close}"),
        at: open.len(),
        wrap,
    })
}

/// A replacement of a block scalar (`|`, `>`): another block scalar, or a
/// quoted or flow node followed by the header's comment and a line break.
fn block_probe(src: &str, site: &Site, block: &BlockSite, text: &str) -> Result<Probe, Unproven> {
    let b = src.as_bytes();
    let Range { start, end: e } = site.region;
    // The probe stands for the whole node, header included: a region that
    // starts anywhere but at the indicator, with the header's line break
    // between it and the content, would leave part of the original in place.
    let header = src.get(start..site.span.start).unwrap_or("");
    if !header.starts_with(['|', '>']) || !header.contains(['\n', '\r']) {
        return Err(Unproven(
            "a block scalar whose header is outside the replaced region",
        ));
    }
    let is_block = text.starts_with(['|', '>']);
    if !is_block && !text.starts_with(['"', '\'', '{', '[']) {
        return Err(Unproven("plain text in place of a block scalar"));
    }
    if e < b.len() && !matches!(b[e - 1], b'\n' | b'\r') {
        return Err(Unproven("a block scalar that does not end a line"));
    }
    // Blank lines, then a line indented less than the content, or the end.
    let mut i = e;
    let trailing_end = loop {
        let line_end = src[i..].find(['\n', '\r']).map_or(b.len(), |k| i + k);
        let line = &b[i..line_end];
        if line.iter().all(|&c| c == b' ' || c == b'\t') {
            if line_end == b.len() {
                break b.len();
            }
            i = line_end
                + if src[line_end..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
            continue;
        }
        let spaces = line.iter().take_while(|&&c| c == b' ').count();
        if spaces >= block.indent || line[spaces] == b'\t' {
            return Err(Unproven(
                "the line after a block scalar is not less indented",
            ));
        }
        break i;
    };
    // The parent's indentation: content column minus the indentation digit, or
    // one less than the content column when it is detected (any parent below
    // the content column detects the same one).
    let parent = if is_block {
        let header: String = text[1..].chars().take(2).collect();
        match header.chars().find(char::is_ascii_digit) {
            Some(d) => block
                .indent
                .checked_sub(d.to_digit(10).unwrap_or(0) as usize),
            None => block.indent.checked_sub(1),
        }
        .ok_or(Unproven("a block scalar at column 0"))?
    } else {
        0
    };
    let pad = " ".repeat(parent);
    Ok(Probe {
        text: format!("{pad}k: {text}{}", &src[e..trailing_end]),
        at: parent + 3,
        wrap: Wrap::Map,
    })
}

/// Parses a probe; returns the digest of R's node as it reads in the output
/// (with the site's anchor and tag, which stand outside R) and R's span.
fn read_probe(
    probe: &Probe,
    site: &Site,
    key: &DigestKey,
    options: granit_parser::Options,
) -> Result<(Acc, Range<usize>), Unproven> {
    let bad = Unproven("the probe does not read as one node");
    let mut events = Vec::new();
    for item in Parser::new_from_str_with_options(&probe.text, options) {
        let (ev, span) = item.map_err(|_| Unproven("the probe does not parse"))?;
        match ev {
            Event::StreamStart | Event::StreamEnd => {}
            ev => events.push((ev, span.byte_range().unwrap_or(0..0))),
        }
    }
    // One document, then the wrapper's events around R's.
    let inner = match events.as_slice() {
        [(Event::DocumentStart(..), _), inner @ .., (Event::DocumentEnd, _)] => inner,
        _ => return Err(bad),
    };
    let inner = match (probe.wrap, inner) {
        (Wrap::Root, inner) => inner,
        (
            Wrap::Map,
            [(Event::MappingStart(_, 0, None), _), (Event::Scalar(k, ScalarStyle::Plain, 0, None), _), inner @ .., (Event::MappingEnd, _)],
        ) if k == "k" => inner,
        (
            Wrap::Seq,
            [(Event::SequenceStart(_, 0, None), _), inner @ .., (Event::SequenceEnd, _)],
        ) => inner,
        _ => return Err(bad),
    };
    let mut acc = Acc::default();
    let mut depth = 0usize;
    let mut span: Option<Range<usize>> = None;
    for (i, (ev, r)) in inner.iter().enumerate() {
        // R's own events carry no properties; the first takes the site's.
        let (anchor, tag) = if i == 0 {
            (site.anchor, site.tag.as_deref())
        } else {
            (0, None)
        };
        if i > 0 && depth == 0 {
            return Err(bad);
        }
        match ev {
            Event::Scalar(value, style, 0, None) => {
                let kind = match (tag, style) {
                    (Some(t), _) => t,
                    (None, ScalarStyle::Plain) => plain_kind(value),
                    (None, _) => "str",
                };
                acc.push(key, Ev::Scalar(anchor, kind, value));
            }
            Event::MappingStart(_, 0, None) => {
                depth += 1;
                acc.push(key, Ev::MapStart(anchor, tag));
            }
            Event::SequenceStart(_, 0, None) => {
                depth += 1;
                acc.push(key, Ev::SeqStart(anchor, tag));
            }
            Event::MappingEnd if depth > 0 => {
                depth -= 1;
                acc.push(key, Ev::MapEnd);
            }
            Event::SequenceEnd if depth > 0 => {
                depth -= 1;
                acc.push(key, Ev::SeqEnd);
            }
            _ => return Err(bad),
        }
        span = Some(match span {
            None => r.clone(),
            Some(s) => s.start.min(r.start)..s.end.max(r.end),
        });
    }
    match span {
        Some(span) if depth == 0 => Ok((acc, span)),
        _ => Err(bad),
    }
}

/// Proves that removing the declarations block (`block.removal`, replaced by
/// `block.replacement`) removes exactly its root entry and changes nothing else.
///
/// The cut is whole lines of a block mapping at column 0: from the `secrets`
/// key's line to the end of its value's last line. What follows it is blank and
/// comment lines, then a line at column 0 (the next key, a document marker) or
/// the end; what precedes it is the document's start or the previous entry. A
/// column-0 line ends every value the previous entry can end with, as the
/// `secrets` line did; blank lines do too, except after a block scalar (keep
/// chomping would take them in) and comment lines, except after a block scalar
/// (they would be its content).
pub(crate) fn cut(src: &str, block: &SecretsBlock) -> Proof {
    let b = src.as_bytes();
    let Range { start, end } = block.removal;
    if block.facts.flow_root {
        return Err(Unproven("a declarations block in a flow mapping"));
    }
    if start != block.key_span.start || line_start(src, start) != start {
        return Err(Unproven("a declarations key that does not start its line"));
    }
    if end < b.len() && !matches!(b[end - 1], b'\n' | b'\r') {
        return Err(Unproven("a declarations block that does not end a line"));
    }
    let only = !block.replacement.is_empty();
    let mut i = end;
    while i < b.len() {
        let line_end = src[i..].find(['\n', '\r']).map_or(b.len(), |k| i + k);
        let line = &src[i..line_end];
        let content = line.trim_start_matches([' ', '\t']);
        let at_col0 = !line.is_empty() && !line.starts_with([' ', '\t']);
        let marker = ["---", "..."].iter().any(|m| {
            line.starts_with(m)
                && line[3..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == ' ' || c == '\t')
        });
        if at_col0 && !content.starts_with('#') && (!only || marker) {
            break;
        }
        let blank = content.is_empty();
        let comment = content.starts_with('#');
        if !(blank || comment) {
            return Err(Unproven("content after the declarations block"));
        }
        let previous_block = !block.facts.first && block.facts.after_block_scalar;
        if previous_block && (blank || !at_col0) {
            return Err(Unproven(
                "a block scalar right before the declarations block",
            ));
        }
        i = line_end
            + if src[line_end..].starts_with("\r\n") {
                2
            } else {
                1
            };
    }
    Ok(())
}
