//! References embedded in a second language without an encoder: a URL's
//! userinfo, path, query or fragment (`pg://u:$<PW>@h`), a JSON string inside a
//! scalar (`'{"pw": "$<PW>"}'`), a shell command (a `run:` step, a container's
//! `command:`/`args:` line, `sh -c …`). A value holding that language's
//! metacharacters would change the text around it, so `render` and `check`
//! warn (an error with `--strict`) and suggest the encoder.
//!
//! The rules look only at the text the author wrote and where it sits, never at
//! a value. They were kept for what they find on the real-world corpus: see the
//! README's "Encoders" section for the measurement.

use std::ops::Range;

use crate::encode::kind::EncoderKind;
use crate::reference::{Part, Template};

/// Stands for a reference in the flattened value: not a space, quote or any
/// character the rules look for.
const HOLE: char = '\u{E000}';

/// The language a reference sits in, and the part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Context {
    /// A URL component: `userinfo`, `path`, `query` or `fragment`.
    Url(&'static str),
    /// Inside a JSON string in a scalar.
    JsonString,
    /// A shell command line.
    Shell,
}

impl Context {
    /// The encoder that makes a value safe here.
    pub(crate) fn encoder(self) -> EncoderKind {
        match self {
            Context::Url(_) => EncoderKind::Url,
            Context::JsonString => EncoderKind::Json,
            Context::Shell => EncoderKind::Shell,
        }
    }

    /// Where the reference is, for the message.
    pub(crate) fn place(self) -> String {
        match self {
            Context::Url(part) => format!("a URL's {part}"),
            Context::JsonString => "a JSON string".to_owned(),
            Context::Shell => "a shell command".to_owned(),
        }
    }

    /// What an unencoded value could do there.
    pub(crate) fn risk(self) -> &'static str {
        match self {
            Context::Url(_) => "a value holding `@ : / ? # % &` or a space would change the URL",
            Context::JsonString => "a value holding a quote, a backslash or a line break would end the string",
            Context::Shell => {
                "a value holding a quote, `$`, `;`, a space or a line break would change the command"
            }
        }
    }
}

/// One reference embedded without an encoder.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Which part of the template.
    pub(crate) part: usize,
    /// Where it sits.
    pub(crate) context: Context,
}

/// Keys whose string value is a shell script (GitHub Actions and GitLab CI
/// steps).
const SCRIPT_KEYS: &[&str] = &["run", "script", "before_script", "after_script"];
/// Keys whose value is a command line: a string with spaces (Compose splits a
/// string `command:` as a shell does), or a list item with shell syntax (a
/// script given to `sh -c`).
const COMMAND_KEYS: &[&str] = &["command", "args", "entrypoint", "cmd"];
/// What marks a list item as a script rather than one argument.
const SCRIPT_SYNTAX: &[&str] = &[";", "&&", "||", "|", "$(", "`", ">", "<", "\n", "'", "\""];
/// How a value that hands its text to a shell begins.
const SHELL_PREFIXES: &[&str] = &[
    "sh -c ",
    "bash -c ",
    "/bin/sh -c ",
    "/bin/bash -c ",
    "sh -ec ",
    "bash -ec ",
    "sh -euc ",
    "bash -euc ",
];

/// The references of `template` (a scalar at `path`: keys and indices from
/// the root; empty for a `secrets:` entry) that sit in a URL, a JSON string or
/// a shell command without an encoder.
pub(crate) fn findings(template: &Template, path: &[String]) -> Vec<Finding> {
    let candidates: Vec<usize> = template
        .parts
        .iter()
        .enumerate()
        .filter(|(_, p)| match p {
            Part::Secret(r) => r.encoders.is_empty(),
            Part::Direct(_) => true,
            Part::Literal(_) => false,
        })
        .map(|(i, _)| i)
        .collect();
    // A whole value is a scalar of its own: nothing around it to break.
    if candidates.is_empty() || template.whole().is_some() {
        return Vec::new();
    }
    let mut flat = String::new();
    let mut holes = Vec::new();
    for (i, p) in template.parts.iter().enumerate() {
        match p {
            Part::Literal(l) => flat.push_str(l),
            _ => {
                holes.push((i, flat.len()));
                flat.push(HOLE);
            }
        }
    }
    let json = json_strings(&flat);
    let shell = is_shell(&flat, path);
    holes
        .into_iter()
        .filter(|(i, _)| candidates.contains(i))
        .filter_map(|(part, at)| {
            let context = url_component(&flat, at)
                .map(Context::Url)
                .or_else(|| {
                    json.as_ref()
                        .filter(|s| inside(s, at))
                        .map(|_| Context::JsonString)
                })
                .or_else(|| shell.then_some(Context::Shell))?;
            Some(Finding { part, context })
        })
        .collect()
}

/// The URL component the hole at `at` is in, if a `scheme://` URL holds it:
/// the userinfo, path, query or fragment (never the host or port).
fn url_component(flat: &str, at: usize) -> Option<&'static str> {
    let ends_word =
        |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | '(' | ')');
    let start = flat[..at].rfind(ends_word).map_or(0, |i| {
        i + flat[i..].chars().next().map_or(1, char::len_utf8)
    });
    let word = &flat[start..at];
    let sep = word.rfind("://")?;
    let scheme = word[..sep]
        .rsplit(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        .next()
        .unwrap_or_default();
    if !scheme.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let before = &word[sep + 3..];
    if before.contains('#') {
        return Some("fragment");
    }
    if before.contains('?') {
        return Some("query");
    }
    if before.contains('/') {
        return Some("path");
    }
    if before.contains('@') {
        // After the `@`: the host or port.
        return None;
    }
    let after = &flat[at..];
    let authority_end = after
        .find(|c: char| matches!(c, '/' | '?' | '#') || ends_word(c))
        .unwrap_or(after.len());
    after[..authority_end].contains('@').then_some("userinfo")
}

/// The byte ranges of the strings of `flat` when it reads as one JSON object or
/// array (holes read as plain text inside strings and as numbers outside).
fn json_strings(flat: &str) -> Option<Vec<Range<usize>>> {
    let trimmed = flat.trim_start();
    if !trimmed.starts_with(['{', '[']) {
        return None;
    }
    let mut strings = Vec::new();
    let mut open: Option<usize> = None;
    let mut escaped = false;
    let mut probe = String::with_capacity(flat.len());
    for (i, c) in flat.char_indices() {
        match open {
            Some(start) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    strings.push(start..i);
                    open = None;
                }
                probe.push(if c == HOLE { 'x' } else { c });
            }
            None => {
                if c == '"' {
                    open = Some(i);
                }
                probe.push(if c == HOLE { '0' } else { c });
            }
        }
    }
    serde_json::from_str::<serde_json::Value>(&probe)
        .ok()
        .map(|_| strings)
}

fn inside(strings: &[Range<usize>], at: usize) -> bool {
    strings.iter().any(|s| s.start < at && at < s.end)
}

/// Whether the scalar is a shell command: a script key's value, a command
/// line under a command key, or text handed to `sh -c`.
fn is_shell(flat: &str, path: &[String]) -> bool {
    let key = path
        .iter()
        .rev()
        .find(|k| !k.bytes().all(|b| b.is_ascii_digit()))
        .map(String::as_str);
    let text = flat.trim_start();
    match key {
        Some(k) if SCRIPT_KEYS.contains(&k) => true,
        // A string command line is split as a shell splits it (Compose); a
        // list item is one argument unless it is a script (for `sh -c`).
        Some(k) if COMMAND_KEYS.contains(&k) => {
            let item = path
                .last()
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
            if item {
                SCRIPT_SYNTAX.iter().any(|s| text.contains(s))
            } else {
                text.trim_end().contains(char::is_whitespace)
            }
        }
        _ => SHELL_PREFIXES.iter().any(|p| text.starts_with(p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::parse;

    fn contexts(value: &str, path: &[&str]) -> Vec<Context> {
        let (t, errors) = parse(value);
        assert!(errors.is_empty(), "{value}: {errors:?}");
        let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        findings(&t, &path).into_iter().map(|f| f.context).collect()
    }

    #[test]
    fn urls_warn_for_userinfo_path_query_and_fragment_not_the_host() {
        use Context::Url;
        assert_eq!(
            contexts("postgres://$<U>:$<PW>@db:5432/app", &["url"]),
            [Url("userinfo"), Url("userinfo")]
        );
        assert_eq!(
            contexts("redis://:$<PW>@redis:6379/0", &[]),
            [Url("userinfo")]
        );
        assert_eq!(contexts("https://$<HOST>/api", &[]), []);
        assert_eq!(contexts("https://u:p@$<HOST>:8443/x", &[]), []);
        assert_eq!(contexts("https://$<HOST>:$<PORT>", &[]), []);
        assert_eq!(
            contexts("https://h/hooks/$<T>?key=$<K>#$<F>", &[]),
            [Url("path"), Url("query"), Url("fragment")]
        );
        assert_eq!(
            contexts("DATABASE_URL=mysql://root:$<PW>@db/app", &[]),
            [Url("userinfo")]
        );
        assert_eq!(
            contexts("jdbc:postgresql://db/app?password=$<PW>", &[]),
            [Url("query")]
        );
        // Not a URL: no `://`, or the reference begins the word.
        assert_eq!(contexts("user:$<PW>@host", &[]), []);
        assert_eq!(contexts("$<BASE>/v1/items", &[]), []);
        assert_eq!(contexts("see https://example.com then $<X>", &[]), []);
        // Encoded references are what the warning asks for.
        assert_eq!(contexts("postgres://$<U|url>:$<PW|url>@db/app", &[]), []);
    }

    #[test]
    fn json_strings_warn_only_inside_a_json_document() {
        assert_eq!(
            contexts(r#"{"user": "$<U>", "port": $<PORT>}"#, &[]),
            [Context::JsonString]
        );
        assert_eq!(
            contexts(r#"[{"k": "a-$<X>-b"}]"#, &[]),
            [Context::JsonString]
        );
        assert_eq!(contexts(r#"{"k": "$<X|json>"}"#, &[]), []);
        // Not JSON: a YAML flow look-alike, a template, plain text with quotes.
        assert_eq!(contexts(r#"[a, "$<X>"]"#, &[]), []);
        assert_eq!(contexts(r#"{{ "$<X>" }}"#, &[]), []);
        assert_eq!(contexts(r#"say "$<X>""#, &[]), []);
    }

    #[test]
    fn shell_commands_by_key_by_command_line_and_by_sh_c() {
        use Context::Shell;
        assert_eq!(
            contexts(
                "echo $<T> | docker login",
                &["jobs", "b", "steps", "0", "run"]
            ),
            [Shell]
        );
        assert_eq!(contexts("--token=$<T>", &["steps", "0", "run"]), [Shell]);
        assert_eq!(
            contexts("deploy --key $<K>", &["job", "script", "2"]),
            [Shell]
        );
        assert_eq!(
            contexts("app --password $<PW>", &["services", "app", "command"]),
            [Shell]
        );
        assert_eq!(
            contexts(
                "psql -W $<PW> -c 'select 1'",
                &["spec", "containers", "0", "args", "2"]
            ),
            [Shell]
        );
        assert_eq!(contexts("sh -c 'echo $<X>'", &["anything"]), [Shell]);
        // Exec form: one word, no shell.
        assert_eq!(
            contexts("--password=$<PW>", &["containers", "0", "args", "1"]),
            []
        );
        assert_eq!(contexts("hello $<X>", &["message"]), []);
        assert_eq!(contexts("echo $<X|shell>", &["run"]), []);
        // A URL in a shell line is the URL's: `|url` output is shell-safe too.
        assert_eq!(
            contexts("curl https://u:$<PW>@h/x", &["run"]),
            [Context::Url("userinfo")]
        );
    }

    #[test]
    fn a_whole_value_is_never_embedded() {
        assert_eq!(contexts("$<PW>", &["run"]), []);
        assert_eq!(contexts("<<env|X>>", &["command"]), []);
    }
}

#[cfg(test)]
mod measure;
