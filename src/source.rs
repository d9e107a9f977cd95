//! Input text with its name, line index and the byte ranges that must never be shown.
//!
//! Diagnostics quote source lines. A config can hold inline secret values (in its
//! `secrets:` block), so every source carries a list of sensitive ranges that the
//! reporter masks before a line is printed.

use std::ops::Range;
use std::path::{Path, PathBuf};

/// One input document stream: a config file, a `--secrets` catalogue or stdin.
pub struct Source {
    /// Name shown in diagnostics (`-` is shown as `<stdin>`).
    pub(crate) name: String,
    /// Folder that relative `file` locators are resolved against.
    pub(crate) base_dir: PathBuf,
    /// The whole text, validated UTF-8; shared with the rendered [`crate::render::Output`],
    /// which writes its unchanged stretches straight from here.
    pub text: std::sync::Arc<String>,
    // Built on the first diagnostic: a large input that renders cleanly never pays for it.
    line_starts: std::sync::OnceLock<Vec<usize>>,
    sensitive: Vec<Range<usize>>,
}

impl std::fmt::Debug for Source {
    // The text may contain inline secret values: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("len", &self.text.len())
            .finish_non_exhaustive()
    }
}

/// A 1-based line and column (columns count characters, as editors do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LineCol {
    /// 1-based line number.
    pub(crate) line: usize,
    /// 1-based column, in characters.
    pub(crate) col: usize,
}

impl Source {
    /// Wraps already-validated text.
    pub(crate) fn new(name: String, path: Option<&Path>, text: String) -> Self {
        let base_dir = path
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Source {
            name,
            base_dir,
            text: std::sync::Arc::new(text),
            line_starts: std::sync::OnceLock::new(),
            sensitive: Vec::new(),
        }
    }

    fn starts(&self) -> &[usize] {
        self.line_starts.get_or_init(|| {
            let mut starts = vec![0];
            let bytes = self.text.as_bytes();
            for (i, &b) in bytes.iter().enumerate() {
                // A lone CR is a line break in YAML as well.
                if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
                    starts.push(i + 1);
                }
            }
            starts
        })
    }

    /// The clamped offset, its 0-based line and that line's start.
    fn locate(&self, offset: usize) -> (usize, usize, usize) {
        let offset = offset.min(self.text.len());
        let starts = self.starts();
        let line = match starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        (offset, line, starts[line])
    }

    /// Line and column of a byte offset (clamped to the text).
    pub(crate) fn line_col(&self, offset: usize) -> LineCol {
        let (offset, line, start) = self.locate(offset);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        LineCol {
            line: line + 1,
            col: col + 1,
        }
    }

    /// Byte range of the line holding `offset`, without its line break.
    pub(crate) fn line_range(&self, offset: usize) -> Range<usize> {
        let (_, line, start) = self.locate(offset);
        let mut end = self
            .starts()
            .get(line + 1)
            .copied()
            .unwrap_or(self.text.len());
        let bytes = self.text.as_bytes();
        while end > start && matches!(bytes[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        start..end
    }

    /// Marks a byte range as secret: it is masked wherever the source is quoted.
    pub(crate) fn mark_sensitive(&mut self, range: Range<usize>) {
        if !range.is_empty() {
            self.sensitive.push(range);
        }
    }

    /// The sensitive ranges, for the reporter.
    pub(crate) fn sensitive(&self) -> &[Range<usize>] {
        &self.sensitive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_and_crlf() {
        let s = Source::new("t".into(), None, "ab\r\ncé: x\ny".into());
        assert_eq!(s.line_col(0), LineCol { line: 1, col: 1 });
        assert_eq!(s.line_col(4), LineCol { line: 2, col: 1 });
        // 'é' is two bytes but one column.
        assert_eq!(s.line_col(7), LineCol { line: 2, col: 3 });
        assert_eq!(s.line_col(11), LineCol { line: 3, col: 1 });
        assert_eq!(s.line_range(5), 4..10);
    }
}
