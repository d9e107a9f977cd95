//! The layout of an original block scalar (`|`, `>`): where its header's
//! indicators and comment are, its content column and line break, so that a
//! replacement keeps the header and reads back exactly. Pure byte arithmetic.

use std::ops::Range;

use granit_parser::ScalarStyle;

use super::BlockSite;

/// Finds the `|`/`>` indicator of a block scalar between the previous event and
/// its content, skipping tags, anchors and comments that may stand in between.
fn find_indicator(src: &str, from: usize, to: usize) -> Option<usize> {
    let b = src.as_bytes();
    let mut i = from;
    while i < to {
        match b[i] {
            b'|' | b'>' => return Some(i),
            b'#' => {
                while i < to && !matches!(b[i], b'\n' | b'\r') {
                    i += 1;
                }
            }
            b'!' | b'&' => {
                while i < to && !matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The region to replace for a block scalar and what the emitter needs to know.
pub(super) fn block_layout(
    src: &str,
    from: usize,
    r: &Range<usize>,
    style: ScalarStyle,
    indent: Option<usize>,
) -> (Range<usize>, BlockSite) {
    let b = src.as_bytes();
    let p = find_indicator(src, from, r.start).unwrap_or(r.start);
    // Header: indicator, up to two of [1-9] and [+-], then spaces/comment, then a break.
    let mut i = p + 1;
    let mut keep = false;
    while i < b.len() && i < p + 3 && matches!(b[i], b'1'..=b'9' | b'+' | b'-') {
        keep |= b[i] == b'+';
        i += 1;
    }
    let tail_start = i;
    while i < b.len() && !matches!(b[i], b'\n' | b'\r') {
        i += 1;
    }
    let tail = tail_start..i;
    let line_break = if b.get(i) == Some(&b'\r') && b.get(i + 1) == Some(&b'\n') {
        "\r\n"
    } else if b.get(i) == Some(&b'\r') {
        "\r"
    } else {
        "\n"
    };
    let header_end = (i + line_break.len()).min(b.len());
    let end = if keep {
        // Keep chomping takes in the trailing blank lines, and the token ends
        // after the next line's indentation: that indentation is not the block's.
        let mut j = r.end;
        while j > r.start && matches!(b[j - 1], b' ' | b'\t') {
            j -= 1;
        }
        j
    } else {
        let mut j = r.end;
        while j > r.start && matches!(b[j - 1], b' ' | b'\t' | b'\n' | b'\r') {
            j -= 1;
        }
        if j == r.start {
            header_end.max(r.start.min(header_end))
        } else {
            let mut k = j;
            while k < r.end && !matches!(b[k], b'\n' | b'\r') {
                k += 1;
            }
            if b.get(k) == Some(&b'\r') && b.get(k + 1) == Some(&b'\n') {
                k + 2
            } else if k < b.len() {
                k + 1
            } else {
                k
            }
        }
    };
    let end = end.max(header_end).min(b.len().max(end));
    let blank_follows = {
        let mut k = end;
        while k < b.len() && matches!(b[k], b' ' | b'\t') {
            k += 1;
        }
        k < b.len() && matches!(b[k], b'\n' | b'\r')
    };
    let line_start = src[..r.start].rfind(['\n', '\r']).map_or(0, |x| x + 1);
    let indent = indent.unwrap_or(r.start - line_start);
    (
        p..end,
        BlockSite {
            folded: style == ScalarStyle::Folded,
            indent,
            header: p + 1..tail_start,
            tail,
            line_break,
            blank_follows,
            at_eof: end >= b.len() && !src.ends_with(['\n', '\r']),
        },
    )
}
