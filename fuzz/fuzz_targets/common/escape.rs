//! A mirror of the reference grammar's steps, to escape literal text.

/// What the parser does at a `$<` or `<<`: nothing (copy these bytes), or a
/// reference attempt (good or bad) that spans up to the given offset.
enum Attempt {
    Not(usize),
    Ref(usize),
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `$<` at `at`: `Ref(next)` where the parser resumes after an attempt.
fn dollar(b: &[u8], at: usize) -> Attempt {
    let open = at + 2;
    match b.get(open) {
        Some(b'>') => return Attempt::Ref(open + 1),
        Some(&c) if is_name_char(c) => {}
        _ => return Attempt::Not(open),
    }
    let mut i = open;
    while i < b.len() && is_name_char(b[i]) {
        i += 1;
    }
    if !(b[open].is_ascii_alphabetic() || b[open] == b'_') {
        return Attempt::Ref(i);
    }
    while b.get(i) == Some(&b'.') {
        let seg = i + 1;
        let mut j = seg;
        while j < b.len()
            && !matches!(b[j], b'.' | b'>' | b'<' | b'$' | b'|')
            && !b[j].is_ascii_whitespace()
        {
            j += 1;
        }
        if j == seg {
            return Attempt::Ref(j);
        }
        i = j;
    }
    while b.get(i) == Some(&b'|') {
        let word = i + 1;
        let mut j = word;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'-') {
            j += 1;
        }
        if !ENCODERS.iter().any(|e| e.as_bytes() == &b[word..j]) {
            return Attempt::Ref(j);
        }
        i = j;
    }
    if b.get(i) == Some(&b'>') {
        Attempt::Ref(i + 1)
    } else {
        Attempt::Ref(i)
    }
}

pub(crate) const WORDS: [&str; 8] = [
    "aws", "ssm", "vault", "sops", "op", "onepassword", "env", "file",
];

/// The encoder words (`$<X|url>`).
const ENCODERS: [&str; 6] = ["url", "json", "shell", "yaml", "base64", "base64url"];

/// `<<` at `at`.
fn direct(s: &str, at: usize) -> Attempt {
    let b = s.as_bytes();
    let start = at + 2;
    let mut i = start;
    if !b.get(i).is_some_and(u8::is_ascii_alphabetic) {
        return Attempt::Not(at + 1);
    }
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
        i += 1;
    }
    if b.get(i) != Some(&b'|') {
        return Attempt::Not(at + 1);
    }
    let known = WORDS.contains(&&s[start..i]);
    let loc = i + 1;
    let close = s[loc..]
        .find(">>")
        .map(|k| loc + k)
        .filter(|&k| !s[loc..k].contains(['\n', '\r']));
    match (known, close) {
        (false, None) => Attempt::Not(at + 1),
        (_, Some(c)) => Attempt::Ref(c + 2),
        (true, None) => Attempt::Ref(loc),
    }
}

/// The text that parses to `s` as a single literal: one `$` before each `$<` and
/// one `<` before each `<<` that the parser would read as a reference attempt.
/// Walks `s` with the parser's own steps, so text the parser skips is copied as is.
pub(crate) fn escape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut copied = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        let (escape, next) = if b[i] == b'$' && b[i + 1] == b'<' {
            match dollar(b, i) {
                Attempt::Not(n) => (None, n),
                Attempt::Ref(n) => (Some('$'), n.max(i + 2)),
            }
        } else if b[i] == b'<' && b[i + 1] == b'<' {
            match direct(s, i) {
                Attempt::Not(n) => (None, n),
                Attempt::Ref(n) => (Some('<'), n.max(i + 2)),
            }
        } else {
            (None, i + 1)
        };
        if let Some(c) = escape {
            out.push_str(&s[copied..i]);
            out.push(c);
            copied = i;
        }
        i = next;
    }
    out.push_str(&s[copied..]);
    out
}
