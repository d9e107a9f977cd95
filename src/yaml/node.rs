//! What the first pass finds, as plain data: the captured `secrets:` block as a
//! small tree of [`Node`]s, each [`Site`] whose value changes, and the [`Scan`]
//! that holds them. The declarations parser and the evaluator read these types
//! without depending on the scanner that makes them.

use std::ops::Range;

use granit_parser::ScalarStyle;

use super::digest::Acc;
use super::emit::Ctx;
use super::schema::{resolve_core, Kind};
use crate::reference::Template;

/// A node of the captured `secrets:` block.
#[derive(Clone, Debug)]
pub struct Node {
    /// What it is.
    pub(crate) kind: NodeKind,
    /// Its bytes in the source.
    pub(crate) span: Range<usize>,
}

/// The shape of a captured node.
#[derive(Clone, Debug)]
pub(crate) enum NodeKind {
    /// A scalar with its parsed value.
    Scalar {
        /// Parsed value.
        value: String,
        /// Source style.
        style: ScalarStyle,
    },
    /// A mapping, in order.
    Map(Vec<(Node, Node)>),
    /// A sequence.
    Seq(Vec<Node>),
    /// An alias keyfill does not follow here (to a collection).
    Alias,
}

impl Node {
    /// The scalar value, if this is a scalar.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    /// Whether this is a plain empty scalar or `null`/`~`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, NodeKind::Scalar { value, style: ScalarStyle::Plain } if resolve_core(value) == Kind::Null)
    }
}

/// The top-level `secrets:` entry of the first document.
#[derive(Clone, Debug)]
pub struct SecretsBlock {
    /// The `secrets` key.
    pub(crate) key_span: Range<usize>,
    /// Its value.
    pub value: Node,
    /// Bytes removed from the output.
    pub(crate) removal: Range<usize>,
    /// Text put in their place (`{}` when the block was the only entry).
    pub(crate) replacement: String,
    /// What the proof of the cut needs to know about its surroundings.
    pub(crate) facts: CutFacts,
}

/// Where the declarations block stands among the root entries.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CutFacts {
    /// The root mapping is a flow mapping.
    pub(crate) flow_root: bool,
    /// The block is the document's first entry.
    pub(crate) first: bool,
    /// The scalar read just before the `secrets` key was a block scalar.
    pub(crate) after_block_scalar: bool,
}

/// Layout of an original block scalar.
#[derive(Clone, Debug)]
pub(crate) struct BlockSite {
    /// `>` rather than `|`.
    pub(crate) folded: bool,
    /// Content column.
    pub(crate) indent: usize,
    /// Indicators after `|`/`>` (indentation digit, chomping) as written.
    pub(crate) header: Range<usize>,
    /// Header tail (spaces and comment) after the indicators.
    pub(crate) tail: Range<usize>,
    /// The line break used after the header.
    pub(crate) line_break: &'static str,
    /// Whether a blank line follows the replaced region.
    pub(crate) blank_follows: bool,
    /// Whether the region ends the file without a line break.
    pub(crate) at_eof: bool,
}

/// A scalar whose value changes in the output.
#[derive(Clone, Debug)]
pub struct Site {
    /// Bytes to replace (for block scalars: from the indicator on).
    pub(crate) region: Range<usize>,
    /// The scalar's own span (for locating references in the source).
    pub(crate) span: Range<usize>,
    /// Parsed value.
    pub(crate) value: String,
    /// References and literal text.
    pub template: Template,
    /// Source style.
    pub(crate) style: ScalarStyle,
    /// Block or flow context.
    pub(crate) ctx: Ctx,
    /// Set for `|` and `>` scalars.
    pub(crate) block: Option<BlockSite>,
    /// Explicit tag, as the digest spells it.
    pub(crate) tag: Option<String>,
    /// Anchor id as the output will number it.
    pub(crate) anchor: usize,
    /// Mapping key rather than value.
    pub(crate) is_key: bool,
    /// Keys and indices from the document root.
    pub(crate) path: Vec<String>,
}

/// Everything the first pass learned.
#[derive(Debug, Default)]
pub struct Scan {
    /// The declarations block, if any.
    pub secrets: Option<SecretsBlock>,
    /// Scalars to rewrite, in source order.
    pub sites: Vec<Site>,
    /// Digest segments around the sites (`sites.len() + 1` of them).
    pub(crate) segments: Vec<Acc>,
    /// Whether `segments` were digested (off for local verification).
    pub(crate) digested: bool,
    /// Whether the input was scanned in two halves on two threads.
    pub(crate) halves: bool,
    /// Number of documents.
    pub(crate) docs: usize,
}

/// Maps a byte range of a scalar's parsed value back to the source. Exact when the
/// source spells the value verbatim; otherwise finds the same reference text in
/// the scalar's source; otherwise the whole scalar.
pub(crate) fn locate(
    src: &str,
    span: &Range<usize>,
    value: &str,
    range: Range<usize>,
) -> Range<usize> {
    let raw = src.get(span.clone()).unwrap_or("");
    let inner_start = if raw.starts_with(['"', '\'']) {
        span.start + 1
    } else {
        span.start
    };
    if let Some(inner) = src.get(inner_start..inner_start + value.len()) {
        if inner == value {
            return inner_start + range.start..inner_start + range.end;
        }
    }
    let Some(needle) = value.get(range.clone()) else {
        return span.clone();
    };
    if needle.is_empty() {
        return span.clone();
    }
    let nth = value[..range.start].matches(needle).count();
    raw.match_indices(needle)
        .nth(nth)
        .map_or(span.clone(), |(i, _)| {
            span.start + i..span.start + i + needle.len()
        })
}
