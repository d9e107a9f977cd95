//! `keyfill diff`: what a render would change in an existing output, without
//! writing anything. Both texts are read as YAML (a JSON output is YAML too)
//! and compared as trees; each changed path is shown with fingerprints of its
//! old and new values, never the values.
//!
//! A fingerprint is an HMAC-SHA256 under a key drawn for this run alone and
//! then forgotten: equal values within one report share a fingerprint, but
//! nobody can compute one for a guessed value, nor match fingerprints across
//! runs. Every value is fingerprinted, secret-derived or not: a path's old
//! value may have been a secret even where its new one is not.

use std::io::Read as _;
use std::path::Path;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::config::RenderConfig;
use crate::error::{Diagnostic, Exit};
use crate::render::Session;
use crate::report::sanitize;
use crate::yaml::digest::DigestKey;
use crate::yaml::verify::{self, Json};

/// What a render would do to the output.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// The output's bytes would stay as they are.
    Unchanged,
    /// The output does not exist: the render would create it.
    Created,
    /// The bytes would change; the paths whose values would (none when only
    /// the layout would).
    Changed(Vec<Change>),
    /// The existing output does not read as YAML: it would be replaced whole.
    Replaced,
}

/// One path whose value would change.
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    /// The path, as `a.b[2]["x.y"]` (prefixed by `[doc N]` in a stream of
    /// several documents); keys are the config's own, never values.
    pub path: String,
    /// The old value's fingerprint; `None` when the path is new.
    pub old: Option<String>,
    /// The new value's fingerprint; `None` when the path goes away.
    pub new: Option<String>,
}

impl Report {
    /// The exit status: 0 unchanged, 1 otherwise.
    pub fn exit(&self) -> Exit {
        match self {
            Report::Unchanged => Exit::Ok,
            _ => Exit::Changed,
        }
    }

    /// What `keyfill diff` prints for the output at `out`.
    pub fn text(&self, out: &Path) -> String {
        let name = sanitize(&out.display().to_string());
        match self {
            Report::Unchanged => format!("{name}: unchanged\n"),
            Report::Created => format!("{name}: does not exist; the render would create it\n"),
            Report::Replaced => {
                format!("{name}: does not read as YAML; the render would replace it whole\n")
            }
            Report::Changed(changes) if changes.is_empty() => {
                format!("{name}: layout changes only; no value differs\n")
            }
            Report::Changed(changes) => {
                let n = changes.len();
                let mut text = format!(
                    "{name}: {n} path{} would change\n",
                    if n == 1 { "" } else { "s" }
                );
                let width = changes.iter().map(|c| c.path.chars().count()).max();
                let width = width.unwrap_or(0);
                for c in changes {
                    let (mark, old, new) = match (&c.old, &c.new) {
                        (Some(o), Some(n)) => ('~', o.as_str(), n.as_str()),
                        (None, Some(n)) => ('+', "(absent)", n.as_str()),
                        (Some(o), None) => ('-', o.as_str(), "(absent)"),
                        (None, None) => continue,
                    };
                    let path = &c.path;
                    text.push_str(&format!("  {mark} {path:<width$}  {old} -> {new}\n"));
                }
                text
            }
        }
    }
}

/// Renders `config` in `session` and compares the result with the output at
/// `out`, writing nothing; `None` when the render failed (the session's
/// diagnostics say why) or the output cannot be read.
pub fn diff(config: &RenderConfig, out: &Path, session: &mut Session) -> Option<Report> {
    let rendered = config.render(session)?.to_vec();
    let max = config.options.max_output;
    let old = match read_limited(out, max) {
        Ok(Some(old)) => old,
        Ok(None) => return Some(Report::Created),
        Err(d) => {
            session.diags.push(d);
            return None;
        }
    };
    if old == rendered {
        return Some(Report::Unchanged);
    }
    let limits = config.options.limits;
    let key = DigestKey::default();
    let parse = |bytes: &[u8]| {
        let text = std::str::from_utf8(bytes).ok()?;
        verify::verify(text, &key, limits, true)
            .ok()
            .map(|(_, docs)| docs)
    };
    let Some(old_docs) = parse(&old) else {
        return Some(Report::Replaced);
    };
    let Some(new_docs) = parse(&rendered) else {
        // The render verified its output; a parse failing here is a bug.
        session.diags.push(Diagnostic::invalid(
            "the rendered output does not read back as a tree; this is a bug in keyfill",
        ));
        return None;
    };
    let fingerprint = match Fingerprint::new() {
        Ok(f) => f,
        Err(d) => {
            session.diags.push(d);
            return None;
        }
    };
    let mut walk = Walk {
        fingerprint,
        changes: Vec::new(),
    };
    let several = old_docs.len().max(new_docs.len()) > 1;
    for i in 0..old_docs.len().max(new_docs.len()) {
        let path = if several {
            format!("[doc {}]", i + 1)
        } else {
            String::new()
        };
        walk.compare(path, old_docs.get(i), new_docs.get(i));
    }
    Some(Report::Changed(walk.changes))
}

/// The file at `path`, at most `max` bytes of it (one more is an error);
/// `None` when it does not exist.
fn read_limited(path: &Path, max: usize) -> Result<Option<Vec<u8>>, Diagnostic> {
    let fail = |e: std::io::Error| {
        Diagnostic::error(
            Exit::Output,
            format!(
                "cannot read the output `{}` to compare: {e}",
                path.display()
            ),
        )
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e)),
    };
    let meta = file.metadata().map_err(fail)?;
    if !meta.is_file() {
        return Err(Diagnostic::error(
            Exit::Usage,
            format!(
                "`-o {}` is not a regular file: there is nothing to compare",
                path.display()
            ),
        ));
    }
    let mut bytes = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() > max {
        return Err(Diagnostic::invalid(format!(
            "the output `{}` is larger than {max} bytes (raise with --max-output-size)",
            path.display()
        )));
    }
    Ok(Some(bytes))
}

/// Keyed fingerprints under a key of this run alone.
struct Fingerprint(Hmac<Sha256>);

impl Fingerprint {
    /// A fresh key from the system's randomness; without it a fingerprint
    /// could be recomputed for a guessed value, so there is no report.
    fn new() -> Result<Self, Diagnostic> {
        let mut key = [0u8; 32];
        let fail = || {
            Diagnostic::error(
                Exit::Output,
                "cannot draw a random key for the fingerprints from the system",
            )
        };
        getrandom::getrandom(&mut key).map_err(|_| fail())?;
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| fail())?;
        Ok(Fingerprint(mac))
    }

    /// Twelve hex digits of the value's keyed hash (its type included, so
    /// `1` and `"1"` differ).
    fn of(&self, value: &Json) -> String {
        let mut mac = self.0.clone();
        let text = match value {
            Json::String(s) => format!("s{s}"),
            other => format!("j{}", other.pretty()),
        };
        mac.update(text.as_bytes());
        let tag = mac.finalize().into_bytes();
        tag.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }
}

struct Walk {
    fingerprint: Fingerprint,
    changes: Vec<Change>,
}

impl Walk {
    fn compare(&mut self, path: String, old: Option<&Json>, new: Option<&Json>) {
        match (old, new) {
            (Some(Json::Object(o)), Some(Json::Object(n))) => {
                for (k, v) in n {
                    self.compare(join_key(&path, k), o.get(k), Some(v));
                }
                for (k, v) in o.iter().filter(|(k, _)| !n.contains_key(*k)) {
                    self.compare(join_key(&path, k), Some(v), None);
                }
            }
            (Some(Json::Array(o)), Some(Json::Array(n))) => {
                for i in 0..o.len().max(n.len()) {
                    self.compare(format!("{path}[{i}]"), o.get(i), n.get(i));
                }
            }
            (Some(o), Some(n)) if o == n => {}
            (None, None) => {}
            (o, n) => self.changes.push(Change {
                path: if path.is_empty() {
                    "(document)".to_owned()
                } else {
                    path
                },
                old: o.map(|v| self.fingerprint.of(v)),
                new: n.map(|v| self.fingerprint.of(v)),
            }),
        }
    }
}

/// `path.key`, or `path["key"]` for a key that is not a plain word (JSON
/// escaped, then sanitised as every text shown is).
fn join_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (plain, path.is_empty()) {
        (true, true) => key.to_owned(),
        (true, false) => format!("{path}.{key}"),
        (false, _) => format!(
            "{path}[{}]",
            sanitize(&serde_json::Value::from(key).to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Vec<Json> {
        let key = DigestKey::default();
        let limits = crate::yaml::scan::Limits {
            max_depth: 64,
            max_aliases: 100,
            strict_yaml: false,
        };
        verify::verify(yaml, &key, limits, true)
            .map(|(_, d)| d)
            .unwrap_or_default()
    }

    fn changes(old: &str, new: &str) -> Vec<(String, bool, bool)> {
        let (o, n) = (tree(old), tree(new));
        let mut w = Walk {
            fingerprint: fingerprint(),
            changes: Vec::new(),
        };
        w.compare(String::new(), o.first(), n.first());
        w.changes
            .into_iter()
            .map(|c| (c.path, c.old.is_some(), c.new.is_some()))
            .collect()
    }

    fn fingerprint() -> Fingerprint {
        Fingerprint::new().unwrap_or_else(|d| panic!("{}", d.message))
    }

    #[test]
    fn paths_of_changed_added_and_removed_values() {
        let got = changes(
            "a: 1\nb: {c: x, d: [1, 2]}\ngone: y\n\"a.b\": 1\n",
            "a: 1\nb: {c: z, d: [1, 3, 4]}\nnew: {k: v}\n\"a.b\": 2\n",
        );
        let want = [
            ("b.c", true, true),
            ("b.d[1]", true, true),
            ("b.d[2]", false, true),
            ("new", false, true),
            ("[\"a.b\"]", true, true),
            ("gone", true, false),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(p, o, n)| ((*p).to_owned(), *o, *n))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_type_change_is_a_change_and_equal_trees_have_none() {
        assert_eq!(
            changes("a: 1\n", "a: '1'\n"),
            vec![("a".to_owned(), true, true)]
        );
        assert!(changes("a: 1 # x\n", "a:    1\n").is_empty());
    }

    #[test]
    fn fingerprints_are_fixed_length_keyed_per_run_and_equal_for_equal_values() {
        let f = fingerprint();
        let a = f.of(&Json::String("hunter2".into()));
        assert_eq!(a, f.of(&Json::String("hunter2".into())));
        assert_eq!(a.len(), 12);
        assert_eq!(f.of(&Json::String("x".repeat(1000))).len(), 12);
        assert_ne!(a, f.of(&Json::Number("1".into())));
        // Another run's key: the same value, another fingerprint.
        assert_ne!(a, fingerprint().of(&Json::String("hunter2".into())));
    }

    #[test]
    fn keys_are_escaped_as_every_shown_text() {
        let p = join_key("a", "x\u{202e}y\nz");
        assert!(!p.contains('\u{202e}') && !p.contains('\n'), "{p}");
    }
}
