//! The one place that writes diagnostics: text with a caret snippet, or JSON lines.
//!
//! Source lines are quoted with every sensitive range (inline secret values and
//! defaults) masked character for character, so columns stay true and no value
//! is shown.

use std::io::Write as _;

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

use crate::error::{Diagnostic, Severity};
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
            Format::Json => serde_json::json!({"level": "info", "message": message}).to_string(),
            Format::Text => format!("keyfill: {message}"),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// Prints the one line a render of `watch` or `exec --watch` reports: why
    /// it ran, which secrets got new values (locators, never values), and what
    /// happened to `output` (`written`, `unchanged`, `failed`, `nothing written`).
    /// JSON gets these as fields.
    pub fn render(&self, why: &str, changed: &[String], output: &str, outcome: &str) {
        if self.quiet {
            return;
        }
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
        let title = level.primary_title(d.message.as_str());
        let mut group: Group<'_> = Group::with_title(title);
        let masked;
        if let Some(loc) = d.location.as_ref().filter(|_| !d.snippet) {
            if let Some(src) = sources.get(loc.source) {
                let lc = src.line_col(loc.span.start);
                group = group.element(
                    Level::NOTE.message(format!("at {}:{}:{}", src.name, lc.line, lc.col)),
                );
            }
        }
        if let Some(loc) = d.location.as_ref().filter(|_| d.snippet) {
            if let Some(src) = sources.get(loc.source) {
                let line = src.line_range(loc.span.start);
                let lc = src.line_col(loc.span.start);
                let (text, map) = mask(src, line.clone());
                masked = text;
                let start = map[loc.span.start.clamp(line.start, line.end) - line.start];
                let end = map[loc.span.end.clamp(line.start, line.end) - line.start].max(start);
                let mut ann = AnnotationKind::Primary.span(start..end);
                if let Some(l) = &d.label {
                    ann = ann.label(l.as_str());
                }
                group = group.element(
                    Snippet::source(masked.as_str())
                        .line_start(lc.line)
                        .path(src.name.as_str())
                        .annotation(ann),
                );
            }
        }
        for n in &d.notes {
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

/// The line's text with sensitive ranges replaced by one `*` per character, and
/// a map from each byte offset of the line to its offset in the masked text.
fn mask(src: &Source, line: std::ops::Range<usize>) -> (String, Vec<usize>) {
    let text = &src.text[line.clone()];
    let mut out = String::with_capacity(text.len());
    let mut map = vec![0; text.len() + 1];
    for (i, c) in text.char_indices() {
        let at = line.start + i;
        for m in &mut map[i..i + c.len_utf8()] {
            *m = out.len();
        }
        if src.sensitive().iter().any(|r| r.contains(&at)) {
            out.push('*');
        } else {
            out.push(c);
        }
    }
    map[text.len()] = out.len();
    (out, map)
}

fn json_line(d: &Diagnostic, sources: &[Source]) -> String {
    let mut v = serde_json::json!({
        "level": match d.severity { Severity::Error => "error", Severity::Warning => "warning" },
        "message": d.message,
    });
    if d.severity == Severity::Error {
        v["exit_code"] = d.class.code().into();
    }
    if let Some(loc) = &d.location {
        if let Some(src) = sources.get(loc.source) {
            let lc = src.line_col(loc.span.start);
            v["file"] = src.name.clone().into();
            v["line"] = lc.line.into();
            v["column"] = lc.col.into();
        }
    }
    if !d.notes.is_empty() {
        v["notes"] = d.notes.clone().into();
    }
    v.to_string()
}
