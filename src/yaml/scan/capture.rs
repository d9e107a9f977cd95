//! Capturing the top-level declarations block while the walk passes it: the
//! block becomes a small [`Node`] tree for the `secrets:` parser, and its bytes
//! (with the line it stands on) are cut from the output.

use granit_parser::ScalarStyle;

use super::{CutFacts, Node, NodeKind, SecretsBlock, Walker};

pub(super) enum Partial {
    Map(Vec<(Node, Node)>, Option<Node>, usize),
    Seq(Vec<Node>, usize),
}

#[derive(Default)]
pub(super) struct Capture {
    pub(super) stack: Vec<Partial>,
    pub(super) done: Option<Node>,
    pub(super) depth: usize,
}

impl Capture {
    pub(super) fn add(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.done = Some(node),
            Some(Partial::Seq(items, _)) => items.push(node),
            Some(Partial::Map(entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

pub(super) struct RootEntry {
    pub(super) key_start: usize,
    pub(super) value_end: usize,
}

impl Walker<'_, '_> {
    pub(super) fn at_root_key(&self, is_key: bool) -> bool {
        self.doc == 0 && is_key && self.frames.len() == 1 && self.frames[0].map
    }

    pub(super) fn note_root_key(&mut self, is_key: bool, start: usize) {
        if self.at_root_key(is_key) {
            if let Some(prev) = self.root_entries.last_mut() {
                prev.value_end = self.max_end;
            }
            // Only the entries around the declarations block are kept: before it
            // is found, the last one (its predecessor); after it, the one that
            // follows. A root mapping of a million keys keeps three, not a million.
            match self.secrets_entry {
                None if self.pending_secrets.is_none() => {
                    let n = self.root_entries.len();
                    if n > 1 {
                        self.root_entries.drain(..n - 1);
                    }
                }
                Some(i) if self.root_entries.len() > i + 1 => return,
                _ => {}
            }
            self.root_entries.push(RootEntry {
                key_start: start,
                value_end: start,
            });
        }
    }

    /// Starts capturing if this node is the value of the root `secrets` key.
    pub(super) fn maybe_begin_capture(&mut self) {
        if self.capture.is_none() && self.pending_secrets.is_some() && self.frames.len() == 1 {
            self.capture = Some(Capture {
                depth: 1,
                ..Capture::default()
            });
        }
    }

    pub(super) fn end_capture(&mut self) {
        let Some(mut c) = self.capture.take() else {
            return;
        };
        debug_assert!(c.stack.is_empty());
        let Some(key_span) = self.pending_secrets.take() else {
            return;
        };
        let value = c.done.take().unwrap_or(Node {
            kind: NodeKind::Scalar {
                value: String::new(),
                style: ScalarStyle::Plain,
            },
            span: key_span.end..key_span.end,
        });
        self.secrets_entry = Some(self.root_entries.len().saturating_sub(1));
        self.out.secrets = Some(SecretsBlock {
            key_span,
            value,
            removal: 0..0,
            replacement: String::new(),
            facts: CutFacts {
                after_block_scalar: self.block_before_secrets,
                ..CutFacts::default()
            },
        });
    }

    /// Works out the bytes to cut for the secrets block, now that the document is known.
    pub(super) fn finish_secrets(&mut self) {
        let Some(idx) = self.secrets_entry else {
            return;
        };
        let Some(block) = self.out.secrets.as_mut() else {
            return;
        };
        let src = self.src;
        let entries = &self.root_entries;
        let Some(entry) = entries.get(idx) else {
            return;
        };
        let b = src.as_bytes();
        // An empty value (`secrets:` and nothing after it) ends at the key's `:`.
        let mut value_end = entry.value_end.max(block.key_span.end);
        if value_end == block.key_span.end {
            let mut i = value_end;
            while i < b.len() && matches!(b[i], b' ' | b'\t') {
                i += 1;
            }
            if b.get(i) == Some(&b':') {
                value_end = i + 1;
            }
        }
        block.facts.flow_root = self.root_flow;
        block.facts.first = idx == 0;
        if self.root_flow {
            block.removal = if idx + 1 < entries.len() {
                entry.key_start..entries[idx + 1].key_start
            } else if idx > 0 {
                entries[idx - 1].value_end..value_end
            } else {
                entry.key_start..value_end
            };
            return;
        }
        let mut start = entry.key_start;
        let line_start = src[..start].rfind(['\n', '\r']).map_or(0, |i| i + 1);
        if src[line_start..start]
            .bytes()
            .all(|c| c == b' ' || c == b'?')
        {
            start = line_start;
        }
        let mut end = value_end;
        while end > entry.key_start && matches!(b[end - 1], b' ' | b'\t' | b'\n' | b'\r') {
            end -= 1;
        }
        end = end_of_line(src, end);
        if idx > 0 && self.block_before_secrets && end > 0 && matches!(b[end - 1], b'\n' | b'\r') {
            // The entry before ends in a block scalar: blank lines after the cut
            // would join it under keep chomping, indented comments would become
            // its content. They go with the block, up to the next column-0 line.
            end = past_blank_and_comment_lines(src, end);
        }
        block.removal = start..end;
        if entries.len() == 1 && !self.continues {
            let lb = if src.contains("\r\n") { "\r\n" } else { "\n" };
            block.replacement = format!("{{}}{lb}");
        }
    }
}

/// From `at` (just after some content), past spaces and a trailing comment, to
/// just after the line break — when nothing else stands on the line.
fn end_of_line(src: &str, at: usize) -> usize {
    let b = src.as_bytes();
    let mut i = at;
    while i < b.len() && matches!(b[i], b' ' | b'\t') {
        i += 1;
    }
    if i < b.len() && b[i] == b'#' {
        while i < b.len() && !matches!(b[i], b'\n' | b'\r') {
            i += 1;
        }
    }
    match b.get(i) {
        Some(b'\r') if b.get(i + 1) == Some(&b'\n') => i + 2,
        Some(b'\n' | b'\r') => i + 1,
        None => i,
        Some(_) => at,
    }
}

/// From a line start, past lines that are blank or hold only a comment, to the
/// first line that starts with anything else at column 0 (or the end).
fn past_blank_and_comment_lines(src: &str, mut at: usize) -> usize {
    while at < src.len() {
        let line_end = src[at..].find(['\n', '\r']).map_or(src.len(), |k| at + k);
        let line = &src[at..line_end];
        let content = line.trim_start_matches([' ', '\t']);
        let indented_or_blank = content.len() < line.len() || content.is_empty();
        if !(indented_or_blank && (content.is_empty() || content.starts_with('#'))) {
            break;
        }
        at = line_end
            + if src[line_end..].starts_with("\r\n") {
                2
            } else {
                1
            };
        at = at.min(src.len());
    }
    at
}
