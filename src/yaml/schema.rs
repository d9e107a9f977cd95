//! How readers resolve plain scalars, in YAML 1.2 (core schema) and YAML 1.1.
//!
//! `resolve_core` is what keyfill itself reads a plain scalar as (for the
//! verification digest and `--format json`). `looks_typed` is deliberately wider:
//! it is true for anything a YAML 1.1 *or* 1.2 reader might read as other than a
//! string, so the emitter quotes it.

/// What a plain scalar means under the YAML 1.2 core schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `null`, `~`, empty.
    Null,
    /// `true` / `false`.
    Bool,
    /// Decimal, `0o` octal or `0x` hex integer.
    Int,
    /// Decimal float, `.inf`, `.nan`.
    Float,
    /// Anything else.
    Str,
}

impl Kind {
    /// Its name in the verification digest.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Str => "str",
        }
    }
}

/// The digest kind of a plain scalar's text (the scan, the verification and
/// emitted sites all name kinds this way).
pub fn plain_kind(value: &str) -> &'static str {
    resolve_core(value).name()
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
pub(crate) fn resolve_core(s: &str) -> Kind {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => return Kind::Bool,
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Kind::Float,
        _ => {}
    }
    let b = s.as_bytes();
    // Fast exit: every number starts with a digit, a sign or a dot.
    if !matches!(b[0], b'0'..=b'9' | b'+' | b'-' | b'.') {
        return Kind::Str;
    }
    if let Some(h) = s.strip_prefix("0x") {
        if !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Kind::Int;
        }
    }
    if let Some(o) = s.strip_prefix("0o") {
        if !o.is_empty() && o.bytes().all(|c| (b'0'..=b'7').contains(&c)) {
            return Kind::Int;
        }
    }
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        return Kind::Int;
    }
    if is_core_float(digits) {
        return Kind::Float;
    }
    Kind::Str
}

/// `( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`, sign already removed.
fn is_core_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let int_digits = count_digits(&b[i..]);
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = count_digits(&b[i..]);
        i += frac_digits;
    } else if int_digits == 0 {
        return false;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let e = count_digits(&b[i..]);
        if e == 0 {
            return false;
        }
        i += e;
    }
    i == b.len()
}

fn count_digits(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Whether some YAML 1.1 or 1.2 reader could read this plain text as a non-string
/// (null, bool, number, timestamp, merge or value key). Errs on the side of `true`.
pub(crate) fn looks_typed(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    if matches!(
        lower.as_str(),
        "~" | "null" | "true" | "false" | "yes" | "no" | "y" | "n" | "on" | "off" | "=" | "<<"
    ) {
        return true;
    }
    // Numbers, sexagesimals, timestamps, `.inf` and friends all start with one of
    // these; quoting every such value costs nothing and is safe for every reader.
    matches!(s.as_bytes()[0], b'0'..=b'9' | b'+' | b'-' | b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema() {
        for (s, k) in [
            ("", Kind::Null),
            ("~", Kind::Null),
            ("True", Kind::Bool),
            ("yes", Kind::Str),
            ("0123", Kind::Int),
            ("-5", Kind::Int),
            ("0x1F", Kind::Int),
            ("0o17", Kind::Int),
            ("0b1", Kind::Str),
            ("1e3", Kind::Float),
            ("1.", Kind::Float),
            (".5", Kind::Float),
            ("-.inf", Kind::Float),
            (".", Kind::Str),
            ("1_000", Kind::Str),
            ("12:30", Kind::Str),
            ("abc", Kind::Str),
            ("1e", Kind::Str),
        ] {
            assert_eq!(resolve_core(s), k, "{s:?}");
        }
    }

    #[test]
    fn yaml11_look_alikes_are_typed() {
        for s in [
            "yes",
            "No",
            "ON",
            "off",
            "y",
            "~",
            "0123",
            "1_000",
            "12:30",
            "2001-12-14",
            ".inf",
            "+1",
            "<<",
            "=",
        ] {
            assert!(looks_typed(s), "{s:?}");
        }
        for s in ["abc", "hello world", "x1", "postgres://a"] {
            assert!(!looks_typed(s), "{s:?}");
        }
    }
}
