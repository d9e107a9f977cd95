//! Writing one scalar so that every YAML reader gets back exactly the intended value.
//!
//! This is where a secret meets YAML syntax, so the rules are conservative: plain
//! style only for text no YAML 1.1 or 1.2 reader could read as anything but that
//! string; single quotes only for one printable line; otherwise double quotes with
//! every line break, control and special character escaped. Block scalars keep
//! their style when the value can be written exactly at the block's indentation,
//! and fall back to double quotes when it cannot. The output is single-line except
//! inside block scalars, so no value can open or close a structure.

use super::schema::looks_typed;

/// Where a scalar stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctx {
    /// Block context: a mapping value, a sequence item, a document root.
    Block,
    /// Inside `[…]` or `{…}`.
    Flow,
}

/// The style the author wrote; the emitter keeps it when it is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefer {
    /// Plain.
    Plain,
    /// `'…'`.
    Single,
    /// `"…"`.
    Double,
}

/// Characters that are safe verbatim in plain and single-quoted scalars for
/// every reader: printable, not a line break of YAML 1.1 or 1.2, no BOM.
fn safe_char(c: char) -> bool {
    !(c.is_control() // C0 (tab included), DEL, C1 (NEL included)
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'))
}

/// Whether `s` can be written plain in `ctx` and read back as this string by
/// any YAML 1.1 or 1.2 reader.
pub(crate) fn plain_ok(s: &str, ctx: Ctx) -> bool {
    if looks_typed(s) {
        return false;
    }
    let b = s.as_bytes();
    let first = b[0];
    let last = b[b.len() - 1];
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&first) || first == b' ' || last == b' ' || last == b':' {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || !s.chars().all(safe_char) {
        return false;
    }
    // In flow context PyYAML ends a plain scalar at `?` as well as at `,[]{}`, and
    // libyaml refuses `:` before a flow indicator: none of them goes out plain.
    if ctx == Ctx::Flow
        && s.bytes()
            .any(|c| matches!(c, b',' | b'[' | b']' | b'{' | b'}' | b':' | b'#' | b'?'))
    {
        return false;
    }
    true
}

/// `'…'` when every character is safe on one line.
pub(crate) fn single_quoted(s: &str, out: &mut String) -> bool {
    if !s.chars().all(safe_char) {
        return false;
    }
    out.reserve(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    true
}

/// `"…"` with everything that is not plainly printable escaped. Always exact.
pub(crate) fn double_quoted(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `\uXXXX` rather than YAML's `\0`/`\x..`: a JSON config stays JSON.
            c if !safe_char(c) => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a string scalar in the preferred style when exact, else a safer one.
///
/// ```
/// use keyfill::yaml::emit::{string_scalar, Ctx, Prefer};
///
/// let emit = |s: &str| {
///     let mut out = String::new();
///     string_scalar(s, Prefer::Plain, Ctx::Block, &mut out);
///     out
/// };
/// assert_eq!(emit("s3cr3t"), "s3cr3t");
/// assert_eq!(emit("yes"), "'yes'"); // a YAML 1.1 boolean
/// assert_eq!(emit("a\nkey: b"), "\"a\\nkey: b\""); // cannot open a new key
/// ```
pub fn string_scalar(s: &str, prefer: Prefer, ctx: Ctx, out: &mut String) {
    if prefer == Prefer::Plain && plain_ok(s, ctx) {
        out.push_str(s);
        return;
    }
    if prefer != Prefer::Double && single_quoted(s, out) {
        return;
    }
    double_quoted(s, out);
}

/// What the emitter needs to know about an original block scalar.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BlockShape<'a> {
    /// `>` rather than `|`.
    pub(crate) folded: bool,
    /// Column of the content lines.
    pub(crate) indent: usize,
    /// The indicators after `|`/`>` as written (indentation digit, chomping).
    pub(crate) header: &'a str,
    /// The rest of the header line after the indicators (spaces and a comment).
    pub(crate) tail: &'a str,
    /// The file's line break (`\n` or `\r\n`).
    pub(crate) line_break: &'a str,
    /// Whether the source text right after the replaced region starts with a blank
    /// line, which keep chomping (`|+`) would swallow.
    pub(crate) blank_follows: bool,
    /// Whether the scalar's last line ends the file without a line break.
    pub(crate) at_eof: bool,
}

/// Writes `s` as a block scalar shaped like the original, or returns `false`
/// when no block scalar at that indentation reads back as exactly `s`.
///
/// The header is kept as written (indentation indicator, comment) and so is its
/// chomping indicator whenever that one reads back exactly. A last line that
/// ends the file without a line break is read as `text\n` by YAML 1.2 readers
/// and as `text` by libyaml-family ones; it is only written that way under
/// strip chomping (`|-`), where both read `text`.
pub(crate) fn block_scalar(s: &str, shape: &BlockShape<'_>, out: &mut String) -> bool {
    let body = s.trim_end_matches('\n');
    let trailing = s.len() - body.len();
    if body.is_empty() || shape.indent == 0 || (trailing > 1 && shape.blank_follows) {
        return false;
    }
    // Tabs are content inside a block scalar; everything else must be safe, and
    // `\r` would be a line break of its own.
    if !body.chars().all(|c| c == '\n' || c == '\t' || safe_char(c)) {
        return false;
    }
    let digit = shape.header.chars().find(char::is_ascii_digit);
    let first_content = body.split('\n').find(|l| !l.is_empty());
    // Without an indentation indicator, indentation is detected from the first
    // non-empty line; one that starts with white space would be read as more
    // indented. Whitespace-only lines are read differently by different parsers.
    if first_content.is_none_or(|l| digit.is_none() && l.starts_with([' ', '\t']))
        || body
            .split('\n')
            .any(|l| !l.is_empty() && l.trim_matches([' ', '\t']).is_empty())
    {
        return false;
    }
    let written = if shape.header.contains('-') {
        '-'
    } else if shape.header.contains('+') {
        '+'
    } else {
        ' '
    };
    let chomp = match trailing {
        0 => '-',
        1 if written == '+' && !shape.blank_follows => '+',
        1 => ' ',
        _ => '+',
    };
    let multi_line = body.contains('\n');
    let folded = shape.folded && !multi_line;
    out.push(if folded { '>' } else { '|' });
    if chomp == written {
        out.push_str(shape.header);
    } else {
        out.extend(digit);
        if chomp != ' ' {
            out.push(chomp);
        }
    }
    out.push_str(shape.tail);
    out.push_str(shape.line_break);
    let pad = " ".repeat(shape.indent);
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        if !line.is_empty() {
            out.push_str(&pad);
            out.push_str(line);
        }
        // Under strip chomping the last break is no content, so the file may
        // keep ending without one.
        if lines.peek().is_some() || !(shape.at_eof && trailing == 0) {
            out.push_str(shape.line_break);
        }
    }
    for _ in 1..trailing {
        out.push_str(shape.line_break);
    }
    true
}

/// YAML text for a float that YAML 1.1 and 1.2 readers both read as a float.
pub(crate) fn float_text(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            ".inf".into()
        } else {
            "-.inf".into()
        };
    }
    let s = format!("{f:?}");
    match s.split_once('e') {
        Some((m, e)) => {
            let m = if m.contains('.') {
                m.to_owned()
            } else {
                format!("{m}.0")
            };
            let e = if e.starts_with('-') {
                e.to_owned()
            } else {
                format!("+{e}")
            };
            format!("{m}e{e}")
        }
        None if s.contains('.') => s,
        None => format!("{s}.0"),
    }
}

/// JSON nested deeper than the emitter allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TooDeep;

/// Writes a JSON value as a one-line YAML flow node. Fails when nested deeper
/// than `max_depth`.
pub(crate) fn json_flow(
    v: &serde_json::Value,
    max_depth: usize,
    out: &mut String,
) -> Result<(), TooDeep> {
    use serde_json::Value;
    if max_depth == 0 {
        return Err(TooDeep);
    }
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                out.push_str(&float_text(n.as_f64().unwrap_or(f64::NAN)));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => double_quoted(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                json_flow(item, max_depth - 1, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                double_quoted(k, out);
                out.push_str(": ");
                json_flow(item, max_depth - 1, out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emit(s: &str, p: Prefer, ctx: Ctx) -> String {
        let mut out = String::new();
        string_scalar(s, p, ctx, &mut out);
        out
    }

    #[test]
    fn plain_when_safe() {
        assert_eq!(
            emit(
                "postgres://app:s3cr3t@db:5432/app",
                Prefer::Plain,
                Ctx::Block
            ),
            "postgres://app:s3cr3t@db:5432/app"
        );
        assert_eq!(emit("a b", Prefer::Plain, Ctx::Flow), "a b");
    }

    #[test]
    fn quotes_everything_risky() {
        for s in [
            "true", "yes", "0123", "1e3", "~", "", "- x", "a: b", "a #b", "*x", "&x", "!x", "|",
            ">", "%x", "@x", "`x", "x:", " x", "x ", "'", "\"", "---", "...", "#",
        ] {
            let e = emit(s, Prefer::Plain, Ctx::Block);
            assert!(e.starts_with('\'') || e.starts_with('"'), "{s:?} → {e}");
        }
        assert_eq!(emit("a,b", Prefer::Plain, Ctx::Flow), "'a,b'");
        assert_eq!(emit("it's", Prefer::Single, Ctx::Block), "'it''s'");
    }

    #[test]
    fn double_quotes_escape_breaks_and_controls() {
        assert_eq!(emit("a\nb", Prefer::Plain, Ctx::Block), "\"a\\nb\"");
        assert_eq!(
            emit(
                "\u{85}\u{2028}\u{2029}\u{feff}\u{1}\u{7f}\u{9f}",
                Prefer::Plain,
                Ctx::Block
            ),
            "\"\\u0085\\u2028\\u2029\\uFEFF\\u0001\\u007F\\u009F\""
        );
        assert_eq!(emit("q\"\\", Prefer::Double, Ctx::Block), "\"q\\\"\\\\\"");
    }

    #[test]
    fn block_scalars() {
        let shape = BlockShape {
            folded: false,
            indent: 2,
            header: "",
            tail: "",
            line_break: "\n",
            blank_follows: false,
            at_eof: false,
        };
        let mut out = String::new();
        assert!(block_scalar("a\n\nb\n", &shape, &mut out));
        assert_eq!(out, "|\n  a\n\n  b\n");
        out.clear();
        assert!(block_scalar("a", &shape, &mut out));
        assert_eq!(out, "|-\n  a\n");
        out.clear();
        assert!(block_scalar("a\n\n", &shape, &mut out));
        assert_eq!(out, "|+\n  a\n\n");
        out.clear();
        assert!(!block_scalar(" lead", &shape, &mut out));
        assert!(!block_scalar("a\r\nb", &shape, &mut out));
        assert!(!block_scalar("a\n  \nb", &shape, &mut out));
        assert!(!block_scalar(
            "a\n\n",
            &BlockShape {
                blank_follows: true,
                ..shape
            },
            &mut out
        ));
    }

    #[test]
    fn question_mark_is_never_plain_in_flow_context() {
        assert_eq!(emit("pa?ss", Prefer::Plain, Ctx::Flow), "'pa?ss'");
        assert_eq!(emit("a?", Prefer::Plain, Ctx::Flow), "'a?'");
        assert_eq!(emit("pa?ss", Prefer::Plain, Ctx::Block), "pa?ss");
    }

    #[test]
    fn double_quotes_use_only_json_escapes() {
        assert_eq!(
            emit("\0\u{1b}\u{7f}\u{80}\u{1F600}", Prefer::Double, Ctx::Block),
            "\"\\u0000\\u001B\\u007F\\u0080\u{1F600}\""
        );
    }

    #[test]
    fn block_scalar_keeps_its_header_and_is_unambiguous_at_eof() {
        let shape = |header, at_eof| BlockShape {
            folded: false,
            indent: 2,
            header,
            tail: "  # c",
            line_break: "\n",
            blank_follows: false,
            at_eof,
        };
        let emit_block = |s: &str, sh: &BlockShape<'_>| {
            let mut out = String::new();
            block_scalar(s, sh, &mut out).then_some(out)
        };
        // Keep chomping stays when it says the value.
        assert_eq!(
            emit_block("a\n", &shape("+", false)).as_deref(),
            Some("|+  # c\n  a\n")
        );
        // The indentation indicator stays, and lets a value start with a space.
        assert_eq!(
            emit_block(" a\n", &shape("2", false)).as_deref(),
            Some("|2  # c\n   a\n")
        );
        assert_eq!(
            emit_block("a", &shape("2+", false)).as_deref(),
            Some("|2-  # c\n  a\n")
        );
        assert_eq!(emit_block(" a", &shape("", false)), None);
        // At the end of the file without a line break: strip chomping, no break.
        assert_eq!(
            emit_block("a\nb", &shape("", true)).as_deref(),
            Some("|-  # c\n  a\n  b")
        );
        assert_eq!(
            emit_block("a\n", &shape("", true)).as_deref(),
            Some("|  # c\n  a\n")
        );
    }

    #[test]
    fn floats_read_as_floats_everywhere() {
        assert_eq!(float_text(1.0), "1.0");
        assert_eq!(float_text(1e300), "1.0e+300");
        assert_eq!(float_text(-2.5e-7), "-2.5e-7");
        assert_eq!(float_text(f64::INFINITY), ".inf");
    }

    #[test]
    fn json_as_flow() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"a": [1, 2.5, "x: y"], "b": null, "c": {}}"#)
                .unwrap_or_default();
        let mut out = String::new();
        assert!(json_flow(&v, 64, &mut out).is_ok());
        assert_eq!(out, r#"{"a": [1, 2.5, "x: y"], "b": null, "c": {}}"#);
        assert!(json_flow(&v, 1, &mut String::new()).is_err());
    }
}
