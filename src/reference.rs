//! The reference grammar: `$<NAME>`, `$<NAME.a.b>`, `$<NAME|enc|enc>`,
//! `<<provider|locator>>` and the two escapes `$$<NAME>` and
//! `<<<provider|locator>>`.
//!
//! This module is pure text processing over one scalar's *parsed* value. It never
//! guesses: text that does not start a reference passes through untouched (`$$` in
//! shell, make's `$<`, `cat <<EOF`, merge keys `<<: *base`), while text that plainly
//! tries to be one and fails (`$<1X>`, `<<aws|>>`, `<<awz|x>>`) is an error, because a
//! typo must never render silently. All problems in a value are returned together.

use std::ops::Range;

use crate::encode::kind::EncoderKind;
use crate::provider::kind::ProviderKind;

/// One piece of a scalar's value.
#[derive(Clone, PartialEq, Eq)]
pub enum Part {
    /// Text copied as is (escapes already applied).
    Literal(String),
    /// `$<NAME>` or `$<NAME.a.b>`.
    Secret(SecretRef),
    /// `<<provider|locator>>`.
    Direct(DirectRef),
}

impl std::fmt::Debug for Part {
    // A declaration's literal text is an inline secret: Debug shows its length only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Literal(l) => write!(f, "Literal(<{} bytes>)", l.len()),
            Part::Secret(r) => f.debug_tuple("Secret").field(r).finish(),
            Part::Direct(r) => f.debug_tuple("Direct").field(r).finish(),
        }
    }
}

/// A use of a declared secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretRef {
    /// The secret's name.
    pub name: String,
    /// JSON field path after the name (`$<X.a.0>` → `["a", "0"]`).
    pub path: Vec<String>,
    /// Encoders applied in order (`$<X|json|base64>`).
    pub(crate) encoders: Vec<EncoderKind>,
    /// Byte range of the whole reference in the value.
    pub range: Range<usize>,
}

/// A direct reference to a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectRef {
    /// Which provider.
    pub(crate) provider: ProviderKind,
    /// The provider's word as written (`op` or `onepassword`), for messages.
    pub(crate) word: &'static str,
    /// The locator text, unparsed.
    pub locator: String,
    /// Byte range of the whole reference in the value.
    pub range: Range<usize>,
}

impl std::fmt::Display for DirectRef {
    /// The reference as written: `<<op|op://V/I/F>>`. Locators are addresses,
    /// not values; they are shown (sanitised at print time).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<<{}|{}>>", self.word, self.locator)
    }
}

/// What a message is about, in the words the config's author wrote (`op`, not
/// `onepassword`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Subject<'a> {
    /// A declared secret: secret `NAME`.
    Secret(&'a str),
    /// A direct reference, as written: reference <<op|op://V/I/F>>.
    Reference(&'a DirectRef),
    /// A value made of references and text.
    Value,
}

impl std::fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subject::Secret(name) => write!(f, "secret `{name}`"),
            Subject::Reference(r) => write!(f, "reference {r}"),
            Subject::Value => f.write_str("reference"),
        }
    }
}

/// A grammar error inside one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefError {
    /// What is wrong (names the offending text, which is never a secret value:
    /// it is reference syntax written by the config's author).
    pub(crate) message: String,
    /// Extra hint.
    pub(crate) note: Option<String>,
    /// Byte range in the value.
    pub range: Range<usize>,
}

/// A parsed value: literal text and references in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Template {
    /// The pieces, adjacent literals merged.
    pub parts: Vec<Part>,
}

impl Template {
    /// Whether any reference occurs.
    pub fn has_refs(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Literal(_)))
    }

    /// The single reference when it is the entire value.
    pub(crate) fn whole(&self) -> Option<&Part> {
        match self.parts.as_slice() {
            [p @ (Part::Secret(_) | Part::Direct(_))] => Some(p),
            _ => None,
        }
    }

    fn push_literal(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Part::Literal(prev)) = self.parts.last_mut() {
            prev.push_str(text);
        } else {
            self.parts.push(Part::Literal(text.to_owned()));
        }
    }
}

/// Cheap pre-check: can this text hold a reference or an escape at all?
/// Most scalars of a large file are rejected here without further work.
pub fn may_contain_reference(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 1;
    while i < b.len() {
        if b[i] == b'<' && (b[i - 1] == b'$' || b[i - 1] == b'<') {
            return true;
        }
        i += 1;
    }
    false
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether `s` is a valid secret name (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_valid_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && is_name_start(b[0]) && b.iter().all(|&c| is_name_char(c))
}

/// Result of looking at a `$<` that starts at some offset.
enum DollarRef {
    /// Not a reference attempt (`$<` followed by space, `(`, end…).
    NotARef,
    /// A well-formed reference ending at the given offset (exclusive).
    Ok {
        end: usize,
        name: String,
        path: Vec<String>,
        encoders: Vec<EncoderKind>,
    },
    /// An attempt that is malformed; resume scanning at `resume`.
    Bad {
        resume: usize,
        message: String,
        /// What to write instead; the escape hint when `None`.
        note: Option<String>,
        end: usize,
    },
}

/// Parses a `$<…>` whose `$` is at `at`.
fn parse_dollar(s: &str, at: usize) -> DollarRef {
    let b = s.as_bytes();
    let open = at + 2;
    let Some(&first) = b.get(open) else {
        return DollarRef::NotARef;
    };
    if first == b'>' {
        return DollarRef::Bad {
            resume: open + 1,
            end: open + 1,
            message: "empty reference `$<>`".into(),
            note: None,
        };
    }
    if !(is_name_char(first)) {
        return DollarRef::NotARef;
    }
    let mut i = open;
    while i < b.len() && is_name_char(b[i]) {
        i += 1;
    }
    let name = &s[open..i];
    if !is_name_start(first) {
        return DollarRef::Bad {
            resume: i,
            end: close_or(b, i),
            message: format!("invalid secret name `{name}`: names start with a letter or `_`"),
            note: None,
        };
    }
    let mut path = Vec::new();
    while b.get(i) == Some(&b'.') {
        let seg_start = i + 1;
        let mut j = seg_start;
        while j < b.len()
            && !matches!(b[j], b'.' | b'>' | b'<' | b'$' | b'|')
            && !b[j].is_ascii_whitespace()
        {
            j += 1;
        }
        // Segments are ASCII-delimited, so slicing at these offsets is on char boundaries.
        if j == seg_start {
            return DollarRef::Bad {
                resume: j,
                end: close_or(b, j),
                message: format!("empty field name in reference to `{name}`"),
                note: None,
            };
        }
        path.push(s[seg_start..j].to_owned());
        i = j;
    }
    let mut encoders = Vec::new();
    while b.get(i) == Some(&b'|') {
        let word_start = i + 1;
        let mut j = word_start;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-') {
            j += 1;
        }
        let word = &s[word_start..j];
        let Some(kind) = EncoderKind::from_word(word) else {
            let known = format!("known encoders: {}", EncoderKind::known_list());
            let (message, note) = if word.is_empty() {
                (
                    format!("empty encoder name in reference to `{name}`"),
                    known,
                )
            } else {
                let note = match EncoderKind::closest(word) {
                    Some(best) => format!("did you mean `{best}`? {known}"),
                    None => known,
                };
                (format!("unknown encoder `{word}`"), note)
            };
            return DollarRef::Bad {
                resume: j,
                end: close_or(b, j),
                message,
                note: Some(note),
            };
        };
        encoders.push(kind);
        i = j;
    }
    if b.get(i) != Some(&b'>') {
        return DollarRef::Bad {
            resume: i,
            end: i,
            message: format!("unclosed reference `$<{}`: expected `>`", &s[open..i]),
            note: None,
        };
    }
    DollarRef::Ok {
        end: i + 1,
        name: name.to_owned(),
        path,
        encoders,
    }
}

/// End of a malformed reference for the caret: through the next `>` on this line.
fn close_or(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < b.len() && b[i] != b'\n' {
        if b[i] == b'>' {
            return i + 1;
        }
        i += 1;
    }
    from
}

/// Result of looking at a `<<` that starts at some offset.
enum DirectAttempt {
    NotARef,
    Ok {
        end: usize,
        provider: ProviderKind,
        word: &'static str,
        locator: String,
    },
    Bad {
        end: usize,
        message: String,
        note: Option<String>,
    },
}

/// Parses `<<word|locator>>` at `at`.
fn parse_direct(s: &str, at: usize) -> DirectAttempt {
    let b = s.as_bytes();
    let word_start = at + 2;
    let mut i = word_start;
    if !b.get(i).is_some_and(u8::is_ascii_alphabetic) {
        return DirectAttempt::NotARef;
    }
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
        i += 1;
    }
    if b.get(i) != Some(&b'|') {
        return DirectAttempt::NotARef;
    }
    let word = &s[word_start..i];
    let loc_start = i + 1;
    let close = s[loc_start..]
        .find(">>")
        .map(|k| loc_start + k)
        .filter(|&k| !s[loc_start..k].contains(['\n', '\r']));
    match (ProviderKind::word(word), close) {
        (None, None) => DirectAttempt::NotARef,
        (None, Some(close)) => {
            let mut note = format!("known providers: {}", ProviderKind::known_list());
            if let Some(best) = ProviderKind::closest(word) {
                note = format!("did you mean `{best}`? {note}");
            }
            DirectAttempt::Bad {
                end: close + 2,
                message: format!("unknown provider `{word}`"),
                note: Some(note),
            }
        }
        (Some(_), None) => DirectAttempt::Bad {
            end: loc_start,
            message: format!("unclosed reference `<<{word}|`: expected `>>` on the same line"),
            note: None,
        },
        (Some((word, provider)), Some(close)) => {
            let locator = &s[loc_start..close];
            if locator.trim().is_empty() {
                return DirectAttempt::Bad {
                    end: close + 2,
                    message: format!("empty locator in `<<{word}|>>`"),
                    note: None,
                };
            }
            DirectAttempt::Ok {
                end: close + 2,
                provider,
                word,
                locator: locator.to_owned(),
            }
        }
    }
}

/// Splits a value into literal text and references, applying escapes.
///
/// ```
/// use keyfill::reference::{parse, Part};
///
/// let (template, errors) = parse("pg://$<USER>:$<PW>@db costs $$<NOT_A_REF>");
/// assert!(errors.is_empty());
/// let names: Vec<&str> = template
///     .parts
///     .iter()
///     .filter_map(|p| match p {
///         Part::Secret(r) => Some(r.name.as_str()),
///         _ => None,
///     })
///     .collect();
/// assert_eq!(names, ["USER", "PW"]);
/// assert_eq!(template.parts.last(), Some(&Part::Literal("@db costs $<NOT_A_REF>".into())));
///
/// // A typo is an error, not silence.
/// assert_eq!(parse("<<awz|prod/db>>").1.len(), 1);
/// ```
pub fn parse(s: &str) -> (Template, Vec<RefError>) {
    let mut t = Template::default();
    let mut errors = Vec::new();
    if !may_contain_reference(s) {
        t.push_literal(s);
        return (t, errors);
    }
    let b = s.as_bytes();
    let mut lit = 0; // start of pending literal text
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'$' && b[i + 1] == b'<' {
            let escaped = i > 0 && b[i - 1] == b'$' && i > lit;
            match parse_dollar(s, i) {
                DollarRef::NotARef => i += 2,
                DollarRef::Ok {
                    end,
                    name,
                    path,
                    encoders,
                } => {
                    if escaped {
                        // `$$<X>` → `$<X>`: drop one `$`, keep the rest verbatim.
                        t.push_literal(&s[lit..i - 1]);
                        t.push_literal(&s[i..end]);
                    } else {
                        t.push_literal(&s[lit..i]);
                        t.parts.push(Part::Secret(SecretRef {
                            name,
                            path,
                            encoders,
                            range: i..end,
                        }));
                    }
                    lit = end;
                    i = end;
                }
                DollarRef::Bad {
                    resume,
                    message,
                    note,
                    end,
                } => {
                    if escaped {
                        t.push_literal(&s[lit..i - 1]);
                        lit = i;
                    } else {
                        errors.push(RefError {
                            message,
                            note: note.or_else(|| Some("write `$$<` for a literal `$<`".into())),
                            range: i..end.max(i + 2),
                        });
                    }
                    i = resume.max(i + 2);
                }
            }
        } else if b[i] == b'<' && b[i + 1] == b'<' {
            // `<<<p|l>>` is the escape when `<<p|l>>` would be a reference.
            if b.get(i + 2) == Some(&b'<') {
                if let DirectAttempt::Ok { end, .. } | DirectAttempt::Bad { end, .. } =
                    parse_direct(s, i + 1)
                {
                    t.push_literal(&s[lit..i]);
                    t.push_literal(&s[i + 1..end]);
                    lit = end;
                    i = end;
                    continue;
                }
            }
            match parse_direct(s, i) {
                DirectAttempt::NotARef => i += 1,
                DirectAttempt::Ok {
                    end,
                    provider,
                    word,
                    locator,
                } => {
                    t.push_literal(&s[lit..i]);
                    t.parts.push(Part::Direct(DirectRef {
                        provider,
                        word,
                        locator,
                        range: i..end,
                    }));
                    lit = end;
                    i = end;
                }
                DirectAttempt::Bad { end, message, note } => {
                    errors.push(RefError {
                        message,
                        note,
                        range: i..end.max(i + 2),
                    });
                    i = end.max(i + 2);
                }
            }
        } else {
            i += 1;
        }
    }
    t.push_literal(&s[lit..]);
    (t, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Part {
        Part::Literal(s.into())
    }

    fn parts(s: &str) -> Vec<Part> {
        let (t, e) = parse(s);
        assert!(e.is_empty(), "{s:?}: {e:?}");
        t.parts
    }

    fn errors(s: &str) -> Vec<String> {
        parse(s).1.into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn plain_text_passes_through() {
        for s in [
            "",
            "$$",
            "echo $$ $HOME",
            "cat <<EOF",
            "<<",
            "a << b",
            "make $< $@",
            "$<",
            "$< x",
            "$<(cmd)",
            "x <<EOF|grep",
        ] {
            assert_eq!(
                parts(s),
                if s.is_empty() { vec![] } else { vec![lit(s)] },
                "{s:?}"
            );
        }
    }

    #[test]
    fn secret_references() {
        let p = parts("pg://$<USER>:$<PW.a.0>@h");
        assert_eq!(p.len(), 5);
        assert_eq!(
            p[1],
            Part::Secret(SecretRef {
                name: "USER".into(),
                path: vec![],
                encoders: vec![],
                range: 5..12
            })
        );
        assert_eq!(
            p[3],
            Part::Secret(SecretRef {
                name: "PW".into(),
                path: vec!["a".into(), "0".into()],
                encoders: vec![],
                range: 13..22
            })
        );
        assert!(parse("$<X>").0.whole().is_some());
        assert!(parse(" $<X>").0.whole().is_none());
    }

    #[test]
    fn encoders_follow_the_name_and_path_in_order() {
        let p = parts("pg://u:$<PW.a|url>@h/$<X|json|base64>");
        assert_eq!(
            p[1],
            Part::Secret(SecretRef {
                name: "PW".into(),
                path: vec!["a".into()],
                encoders: vec![EncoderKind::Url],
                range: 7..18
            })
        );
        assert_eq!(
            p[3],
            Part::Secret(SecretRef {
                name: "X".into(),
                path: vec![],
                encoders: vec![EncoderKind::Json, EncoderKind::Base64],
                range: 21..37
            })
        );
        // A whole value with an encoder is still one reference.
        assert!(parse("$<X|shell>").0.whole().is_some());
        // The escape keeps the text, encoders included.
        assert_eq!(parts("$$<X|url>"), vec![lit("$<X|url>")]);
    }

    #[test]
    fn an_unknown_or_empty_encoder_is_an_error_listing_the_known_ones() {
        let (_, e) = parse("a $<PW|urll> b");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].message, "unknown encoder `urll`");
        assert_eq!(e[0].range, 2..12);
        let note = e[0].note.as_deref().unwrap_or_default();
        assert!(
            note.starts_with("did you mean `url`? known encoders: url, json"),
            "{note}"
        );
        assert_eq!(
            errors("$<PW|>"),
            ["empty encoder name in reference to `PW`"]
        );
        assert_eq!(
            errors("$<PW|url|>"),
            ["empty encoder name in reference to `PW`"]
        );
        assert_eq!(errors("$<PW|URL>"), ["unknown encoder `URL`"]);
        assert_eq!(
            errors("$<PW|url x>"),
            ["unclosed reference `$<PW|url`: expected `>`"]
        );
    }

    #[test]
    fn escapes_apply_only_before_references() {
        assert_eq!(
            parts("costs $$<NOT_A_REF> nothing"),
            vec![lit("costs $<NOT_A_REF> nothing")]
        );
        assert_eq!(parts("<<<aws|prod/db>>"), vec![lit("<<aws|prod/db>>")]);
        assert_eq!(parts("$$$<X>"), vec![lit("$$<X>")]);
        assert_eq!(parts("pay $$ now"), vec![lit("pay $$ now")]);
    }

    #[test]
    fn direct_references() {
        let p = parts("<<aws|prod/db:password>>");
        assert_eq!(
            p,
            vec![Part::Direct(DirectRef {
                provider: ProviderKind::Aws,
                word: "aws",
                locator: "prod/db:password".into(),
                range: 0..24
            })]
        );
        assert_eq!(parts("a<<env|HOME>>b").len(), 3);
    }

    #[test]
    fn malformed_references_are_errors() {
        assert_eq!(errors("$<1X>").len(), 1);
        assert_eq!(errors("$<>").len(), 1);
        assert_eq!(errors("$<NAME").len(), 1);
        assert_eq!(errors("$<A.>").len(), 1);
        assert_eq!(errors("<<aws|>>").len(), 1);
        assert_eq!(errors("<<aws|x").len(), 1);
        let e = parse("<<awz|x>>").1;
        assert_eq!(e.len(), 1);
        assert!(e[0]
            .note
            .as_deref()
            .unwrap_or("")
            .contains("did you mean `aws`"));
        // Every problem in one pass.
        assert_eq!(errors("$<1A> $<> <<nope|x>> $<B").len(), 4);
    }

    #[test]
    fn never_panics_on_odd_text() {
        for s in [
            "$",
            "<",
            "$<é>",
            "<<é|x>>",
            "$<A.é>",
            "<<<",
            "$$<",
            "<<a|é>>",
            "\u{0}$<\u{0}",
        ] {
            let _ = parse(s);
        }
    }
}
