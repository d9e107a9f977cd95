//! Which bytes of a `secrets:` block are secret text, so that diagnostics that
//! quote the source (a snippet under an error) mask them.

use std::ops::Range;

use granit_parser::ScalarStyle;

use crate::reference::{DirectRef, Part, SecretRef, Template};
use crate::yaml::node::{locate, Node, NodeKind};

/// Marks the literal text of a template scalar sensitive, leaving its references
/// visible (they are names and locators, and diagnostics point at them).
pub(super) fn mask_literals(
    src: &str,
    node: &Node,
    value: &str,
    template: &Template,
    out: &mut Vec<Range<usize>>,
) {
    let quoted_style = matches!(
        &node.kind,
        NodeKind::Scalar {
            style: ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted,
            ..
        }
    );
    let inner = if quoted_style && node.span.len() >= 2 {
        node.span.start + 1..node.span.end - 1
    } else {
        node.span.clone()
    };
    // A lone reference written as is (`DB: <<aws|prod/db>>`) has no literal text.
    if template.whole().is_some() && src.get(inner.clone()) == Some(value) {
        return;
    }
    let mut cursor = inner.start;
    for part in &template.parts {
        if let Part::Secret(SecretRef { range, .. }) | Part::Direct(DirectRef { range, .. }) = part
        {
            let at = locate(src, &node.span, value, range.clone());
            if at.start >= cursor && at.end <= inner.end && at != node.span {
                out.push(cursor..at.start);
                cursor = at.end;
            }
        }
    }
    out.push(cursor..inner.end);
}

/// Marks every scalar value under `node` sensitive.
pub(crate) fn mask_all(node: &Node, out: &mut Vec<Range<usize>>) {
    match &node.kind {
        NodeKind::Scalar { style, .. } => {
            let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
            if quoted && node.span.len() >= 2 {
                out.push(node.span.start + 1..node.span.end - 1);
            } else {
                out.push(node.span.clone());
            }
        }
        NodeKind::Map(entries) => entries.iter().for_each(|(_, v)| mask_all(v, out)),
        NodeKind::Seq(items) => items.iter().for_each(|v| mask_all(v, out)),
        NodeKind::Alias => {}
    }
}
