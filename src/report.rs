//! The one place that writes diagnostics: text with a caret snippet, or JSON lines.
//!
//! Every piece of text printed here (message, label, note, file name, quoted
//! source line, JSON field) passes through `sanitize` once, at print time:
//! untrusted text (keys, names, locators, paths) cannot rewrite the terminal,
//! whatever path built the message. Source lines are quoted with every sensitive
//! range (inline secret values and defaults) replaced by the fixed `MASK`, which
//! does not reveal a value's length; carets are moved to the masked line.

use std::io::Write as _;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use crate::error::{Diagnostic, Exit, Severity};
use crate::secret::MASK;
use crate::source::Source;

/// Diagnostic output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// Writes diagnostics to stderr.
#[derive(Clone, Debug)]
pub struct Reporter {
    /// Text or JSON.
    pub format: Format,
    /// ANSI colours in text.
    pub color: bool,
    /// Hide warnings.
    pub quiet: bool,
}

impl Reporter {
    /// Prints one error and returns its class, so the status a caller exits with
    /// is the one the printed (or JSON) line names.
    pub fn fail(&self, d: Diagnostic) -> Exit {
        let class = d.class;
        self.emit(&[d], &[]);
        class
    }

    /// Prints every diagnostic.
    pub fn emit(&self, diags: &[Diagnostic], sources: &[Source]) {
        let mut err = std::io::stderr().lock();
        for d in diags {
            if self.quiet && d.severity == Severity::Warning {
                continue;
            }
            let text = match self.format {
                Format::Json => json_line(d, sources),
                Format::Text => self.text(d, sources),
            };
            let _ = writeln!(err, "{text}");
        }
    }

    /// Prints one informational line (text) or JSON object.
    pub fn info(&self, message: &str) {
        if self.quiet {
            return;
        }
        let line = match self.format {
            Format::Json => {
                serde_json::json!({"level": "info", "message": sanitize(message)}).to_string()
            }
            Format::Text => format!("keyfill: {}", sanitize(message)),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// Prints the one line a render of `watch` or `exec --watch` reports: why
    /// it ran, which secrets got new values (locators, never values), and what
    /// happened to `output` (`written`, `unchanged`, `failed`, `nothing written`).
    /// JSON gets these as fields.
    pub(crate) fn render(&self, why: &str, changed: &[String], output: &str, outcome: &str) {
        if self.quiet {
            return;
        }
        let changed: Vec<String> = changed.iter().map(|c| sanitize(c)).collect();
        let output = sanitize(output);
        let output = output.as_str();
        let line = match self.format {
            Format::Json => serde_json::json!({
                "level": "info",
                "event": "render",
                "why": why,
                "new_values": changed,
                "output": output,
                "outcome": outcome,
            })
            .to_string(),
            Format::Text => {
                let why = if changed.is_empty() {
                    why.to_owned()
                } else {
                    format!("{why} (new values: {})", changed.join(", "))
                };
                let what = match outcome {
                    "failed" => format!("render failed; {output} keeps its last good content"),
                    "nothing written" => "render failed; nothing written".to_owned(),
                    _ => format!("{output} {outcome}"),
                };
                format!("keyfill: {why}: {what}")
            }
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn text(&self, d: &Diagnostic, sources: &[Source]) -> String {
        let level = match d.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let message = sanitize(&d.message);
        let label = d.label.as_deref().map(sanitize);
        let notes: Vec<String> = d.notes.iter().map(|n| sanitize(n)).collect();
        let title = level.primary_title(message.as_str());
        let mut group: Group<'_> = Group::with_title(title);
        let masked;
        let name;
        if let Some(loc) = d.location.as_ref().filter(|_| !d.snippet) {
            if let Some(src) = sources.get(loc.source) {
                let (line, col) = position(src, loc.span.start);
                group = group.element(
                    Level::NOTE.message(format!("at {}:{line}:{col}", sanitize(&src.name))),
                );
            }
        }
        if let Some(loc) = d.location.as_ref().filter(|_| d.snippet) {
            if let Some(src) = sources.get(loc.source) {
                let (text, line, span) = quote(src, &loc.span);
                masked = text;
                name = sanitize(&src.name);
                let mut ann = AnnotationKind::Primary.span(span);
                if let Some(l) = &label {
                    ann = ann.label(l.as_str());
                }
                group = group.element(
                    Snippet::source(masked.as_str())
                        .line_start(line)
                        .path(name.as_str())
                        .annotation(ann),
                );
            }
        }
        let related_label = d.related.as_ref().map(|r| sanitize(&r.1));
        let related_text;
        let related_name;
        if let (Some(related), Some(label)) = (&d.related, &related_label) {
            let loc = &related.0;
            if let Some(src) = sources.get(loc.source) {
                if d.snippet {
                    let (text, line, span) = quote(src, &loc.span);
                    related_text = text;
                    related_name = sanitize(&src.name);
                    group = group.element(
                        Snippet::source(related_text.as_str())
                            .line_start(line)
                            .path(related_name.as_str())
                            .annotation(AnnotationKind::Context.span(span).label(label.as_str())),
                    );
                } else {
                    let (line, col) = position(src, loc.span.start);
                    group = group.element(
                        Level::NOTE
                            .message(format!("{label} at {}:{line}:{col}", sanitize(&src.name))),
                    );
                }
            }
        }
        for n in &notes {
            group = group.element(Level::NOTE.message(n.as_str()));
        }
        let renderer = if self.color {
            Renderer::styled()
        } else {
            Renderer::plain()
        };
        renderer.render(&[group])
    }
}

/// A space-free run longer than this many characters (a 1 MB reference name, a
/// long path) is cut in the middle.
const RUN_MAX: usize = 200;
/// Characters of a cut run kept before and after the cut.
const RUN_KEPT: (usize, usize) = (120, 40);
/// A whole text longer than this many characters is cut in the middle.
const TEXT_MAX: usize = 2000;
/// Characters of a cut text kept before and after the cut.
const TEXT_KEPT: (usize, usize) = (1500, 300);

/// Whether a character would act on a terminal or reorder what it shows: C0 and
/// C1 controls, DEL, bidirectional marks, embeddings, overrides and isolates,
/// line and paragraph separators, the byte order mark.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{feff}'
        )
}

/// Text safe to print: long space-free runs and then long text cut in the middle
/// with `…(N characters cut)…`, and unsafe characters (see [`is_unsafe`]) written
/// as `\u{..}`.
pub(crate) fn sanitize(text: &str) -> String {
    let mut runs = String::with_capacity(text.len().min(2 * TEXT_MAX));
    for (i, run) in text.split(' ').enumerate() {
        if i > 0 {
            runs.push(' ');
        }
        cut(run, RUN_MAX, RUN_KEPT, &mut runs);
    }
    let mut kept = String::with_capacity(runs.len().min(8 * TEXT_MAX));
    cut(&runs, TEXT_MAX, TEXT_KEPT, &mut kept);
    let mut out = String::with_capacity(kept.len());
    for c in kept.chars() {
        if is_unsafe(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Appends `text`, or, when it has more than `max` characters, its first and
/// last characters as `kept` says around a count of those left out.
fn cut(text: &str, max: usize, kept: (usize, usize), out: &mut String) {
    // A short text is never counted in full.
    if text.len() <= max || text.chars().nth(max).is_none() {
        out.push_str(text);
        return;
    }
    let count = text.chars().count();
    let head = text
        .char_indices()
        .nth(kept.0)
        .map_or(text.len(), |(i, _)| i);
    let tail = text
        .char_indices()
        .nth(count - kept.1)
        .map_or(text.len(), |(i, _)| i);
    out.push_str(&text[..head]);
    out.push_str(&format!("…({} characters cut)…", count - kept.0 - kept.1));
    out.push_str(&text[tail..]);
}

/// The 1-based line and column of `offset` as the line is shown: a masked value
/// before it counts as the mask's width, so no column reveals a value's length.
fn position(src: &Source, offset: usize) -> (usize, usize) {
    let lc = src.line_col(offset);
    let line = src.line_range(offset);
    if !src
        .sensitive()
        .iter()
        .any(|r| r.start < line.end && r.end > line.start)
    {
        return (lc.line, lc.col);
    }
    let shown = shown_line(src, line.clone());
    let at = shown.start[offset.clamp(line.start, line.end) - line.start];
    (lc.line, shown.text[..at].chars().count() + 1)
}

/// The line holding `span.start` as shown, its 1-based number, and `span` moved
/// onto the shown line (clamped to it).
fn quote(src: &Source, span: &std::ops::Range<usize>) -> (String, usize, std::ops::Range<usize>) {
    let line = src.line_range(span.start);
    let number = src.line_col(span.start).line;
    let shown = shown_line(src, line.clone());
    let start = shown.start[span.start.clamp(line.start, line.end) - line.start];
    let end = shown.end[span.end.clamp(line.start, line.end) - line.start].max(start);
    (shown.text, number, start..end)
}

/// A source line as the reporter shows it, and where each byte offset of the
/// line lands in it when it starts a span (`start`) and when it ends one (`end`):
/// an offset inside a masked range starts at the mask and ends after it.
struct Shown {
    text: String,
    start: Vec<usize>,
    end: Vec<usize>,
}

/// The line's text with each sensitive range replaced by [`MASK`] and unsafe
/// characters replaced by U+FFFD (the message names them escaped). Tabs stay:
/// the snippet renderer expands them itself.
fn shown_line(src: &Source, line: std::ops::Range<usize>) -> Shown {
    let text = &src.text[line.clone()];
    let mut out = String::with_capacity(text.len());
    let mut start = vec![0; text.len() + 1];
    let mut end = vec![0; text.len() + 1];
    // The sensitive range being masked: its end in the source, where its mask starts.
    let mut inside: Option<(usize, usize)> = None;
    for (i, c) in text.char_indices() {
        let at = line.start + i;
        if inside.is_some_and(|(until, _)| at >= until) {
            inside = None;
        }
        if inside.is_none() {
            if let Some(r) = src.sensitive().iter().find(|r| r.contains(&at)) {
                inside = Some((r.end, out.len()));
                // The range's first byte ends a span before the mask.
                start[i] = out.len();
                end[i] = out.len();
                out.push_str(MASK);
                for b in 1..c.len_utf8() {
                    start[i + b] = out.len() - MASK.len();
                    end[i + b] = out.len();
                }
                continue;
            }
        }
        match inside {
            Some((_, mask_at)) => {
                for b in 0..c.len_utf8() {
                    start[i + b] = mask_at;
                    end[i + b] = mask_at + MASK.len();
                }
            }
            None => {
                for b in 0..c.len_utf8() {
                    start[i + b] = out.len();
                    end[i + b] = out.len();
                }
                if is_unsafe(c) && c != '\t' {
                    // One column, as the snippet renderer shows the bidi controls it
                    // knows: carets and columns stay those of the source.
                    out.push(char::REPLACEMENT_CHARACTER);
                } else {
                    out.push(c);
                }
            }
        }
    }
    start[text.len()] = out.len();
    end[text.len()] = out.len();
    Shown {
        text: out,
        start,
        end,
    }
}

fn json_line(d: &Diagnostic, sources: &[Source]) -> String {
    let mut v = serde_json::json!({
        "level": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "message": sanitize(&d.message),
    });
    if d.severity == Severity::Error {
        v["exit_code"] = d.class.code().into();
    }
    if let Some(loc) = &d.location {
        if let Some(src) = sources.get(loc.source) {
            let (line, col) = position(src, loc.span.start);
            v["file"] = sanitize(&src.name).into();
            v["line"] = line.into();
            v["column"] = col.into();
        }
    }
    if let Some(related) = &d.related {
        let (loc, label) = &**related;
        if let Some(src) = sources.get(loc.source) {
            let (line, col) = position(src, loc.span.start);
            v["related"] = serde_json::json!({
                "label": sanitize(label),
                "file": sanitize(&src.name),
                "line": line,
                "column": col,
            });
        }
    }
    if !d.notes.is_empty() {
        let notes: Vec<String> = d.notes.iter().map(|n| sanitize(n)).collect();
        v["notes"] = notes.into();
    }
    v.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str, sensitive: Option<std::ops::Range<usize>>) -> Source {
        let mut s = Source::new("t.yaml".into(), None, text.into());
        if let Some(r) = sensitive {
            s.mark_sensitive(r);
        }
        s
    }

    /// The shown line and the shown text under the span `span` of its source.
    fn under(src: &Source, span: std::ops::Range<usize>) -> (String, String) {
        let line = src.line_range(span.start);
        let shown = shown_line(src, line.clone());
        let a = shown.start[span.start - line.start];
        let b = shown.end[span.end - line.start];
        let text = shown.text[a..b].to_owned();
        (shown.text, text)
    }

    #[test]
    fn sanitize_escapes_controls_bidi_and_separators() {
        assert_eq!(sanitize("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(sanitize("V\u{202e}X"), "V\\u{202e}X");
        assert_eq!(
            sanitize("\u{7f}\u{85}\u{9b}\u{200e}\u{200f}\u{61c}\u{2066}\u{2069}\u{2028}\u{feff}\t\n"),
            "\\u{7f}\\u{85}\\u{9b}\\u{200e}\\u{200f}\\u{61c}\\u{2066}\\u{2069}\\u{2028}\\u{feff}\\u{9}\\u{a}"
        );
    }

    #[test]
    fn sanitize_leaves_ordinary_text_and_backslashes_alone() {
        let t = "secret `Ünïcode_名前` at C:\\x\\u{1b} is not declared";
        assert_eq!(sanitize(t), t);
    }

    #[test]
    fn sanitize_cuts_a_long_name_in_the_middle_with_a_count() {
        let name = format!("A{}Z", "N".repeat(1_000_000));
        let s = sanitize(&format!("secret `{name}` is not declared"));
        let want = format!(
            "secret `A{}…(999844 characters cut)…{}Z` is not declared",
            "N".repeat(118),
            "N".repeat(38)
        );
        assert_eq!(s, want);
    }

    #[test]
    fn sanitize_cuts_long_text_of_short_words() {
        let s = sanitize(&"ab ".repeat(10_000));
        assert_eq!(
            s.chars().count(),
            1500 + 300 + "…(28200 characters cut)…".chars().count()
        );
        assert!(s.contains("…(28200 characters cut)…"));
    }

    #[test]
    fn sanitize_never_splits_an_escape_when_cutting() {
        let s = sanitize(&"\u{1b}".repeat(500));
        assert!(s.starts_with(&"\\u{1b}".repeat(120)));
        assert!(s.ends_with(&format!("…(340 characters cut)…{}", "\\u{1b}".repeat(40))));
    }

    #[test]
    fn mask_in_quoted_line_does_not_reveal_the_value_length() {
        let short = source("  A: \"x\"\n", Some(6..7));
        let long = source(&format!("  A: \"{}\"\n", "y".repeat(300)), Some(6..306));
        let (a, _) = under(&short, 2..3);
        let (b, _) = under(&long, 2..3);
        assert_eq!(a, "  A: \"********\"");
        assert_eq!(a, b);
    }

    #[test]
    fn caret_after_a_mask_points_at_the_same_text() {
        let text = "  A: \"some-secret-value\" # $<B>\n";
        let at = text.find("$<B>").unwrap();
        let src = source(text, Some(6..23));
        let (line, under_caret) = under(&src, at..at + 4);
        assert_eq!(line, "  A: \"********\" # $<B>");
        assert_eq!(under_caret, "$<B>");
        // A span over the masked value covers exactly the mask, from any byte inside it.
        assert_eq!(under(&src, 6..23).1, MASK);
        assert_eq!(under(&src, 10..12).1, MASK);
        assert_eq!(under(&src, 5..24).1, "\"********\"");
        // The column after the value is counted on the masked line.
        assert_eq!(position(&src, at), (1, 19));
    }

    #[test]
    fn caret_after_an_escaped_character_points_at_the_same_text() {
        let text = "x: \"a\u{202e}b\u{85}\" # $<B>";
        let at = text.find("$<B>").unwrap();
        let src = source(text, None);
        let (line, under_caret) = under(&src, at..at + 4);
        assert_eq!(line, "x: \"a\u{fffd}b\u{fffd}\" # $<B>");
        assert_eq!(under_caret, "$<B>");
        let rlo = text.find('\u{202e}').unwrap();
        assert_eq!(under(&src, rlo..rlo + 3).1, "\u{fffd}");
        // Columns stay those of the source.
        assert_eq!(position(&src, at), (1, 13));
    }
}
