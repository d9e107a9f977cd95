//! The three file formats keyfill decrypts itself, read into one tree as sops's
//! stores read them: YAML (every document; the `sops` key of the first holds the
//! metadata), JSON (one object; numbers are doubles, as Go's decoder makes them)
//! and dotenv (`KEY=VALUE` lines, `\n` for a line break, the metadata flattened
//! into `sops_…` keys). Messages name positions and keys, never values.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};


/// A value of a sops tree, typed as sops types it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// `null`: never encrypted, not in the MAC.
    Null,
    /// A string (every encrypted value is one before decryption).
    Str(String),
    /// An integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Bytes (`type:bytes`).
    Bytes(Vec<u8>),
    /// A YAML timestamp, spelled as Go's RFC 3339 layout (with nanoseconds)
    /// writes it (`type:time`).
    Time(String),
    /// A decrypted comment (`type:comment`): sops writes a comment inside a
    /// list as an encrypted item; it is no value and not in the MAC.
    Comment,
    /// A list: its items share their parent's key path.
    Seq(Vec<Value>),
    /// A mapping, in file order.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// The entry `key` of a mapping.
    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Which store reads a file, by its extension as sops decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// `.yaml`, `.yml`.
    Yaml,
    /// `.json`.
    Json,
    /// `.env`.
    Dotenv,
}

impl Format {
    /// The format sops reads a file of this name as; `None` for the formats
    /// only the `sops` binary reads (INI, binary).
    pub(crate) fn of(path: &std::path::Path) -> Option<Format> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Some(Format::Yaml),
            Some("json") => Some(Format::Json),
            Some("env") => Some(Format::Dotenv),
            _ => None,
        }
    }

    /// Its name in messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
            Format::Dotenv => "dotenv",
        }
    }
}

/// A sops file read: its documents without the metadata, and the metadata.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The documents (a YAML file may hold several), each a mapping's entries.
    pub(crate) docs: Vec<Vec<(String, Value)>>,
    /// The `sops` metadata mapping.
    pub(crate) meta: Value,
}

/// Reads `text` in `format`. `Err` says why it is no sops file, naming no value.
pub(crate) fn parse(format: Format, text: &str) -> Result<Parsed, String> {
    let docs = match format {
        Format::Yaml => yaml(text)?,
        Format::Json => vec![json(text)?],
        Format::Dotenv => return dotenv(text),
    };
    let mut meta = None;
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        let Value::Map(entries) = doc else {
            return Err(format!(
                "its {} document is not a mapping, so it is no sops file",
                format.name()
            ));
        };
        let mut kept = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            if k == "sops" {
                meta.get_or_insert(v);
            } else {
                kept.push((k, v));
            }
        }
        out.push(kept);
    }
    match meta {
        Some(meta) => Ok(Parsed { docs: out, meta }),
        None => Err("it has no `sops` metadata, so it is no sops-encrypted file".to_owned()),
    }
}

enum Build {
    Map(Vec<(String, Value)>, Option<String>, usize),
    Seq(Vec<Value>, usize),
}

/// Every document of a YAML stream, aliases expanded (as sops's YAML store does).
fn yaml(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    let mut stack: Vec<Build> = Vec::new();
    let mut root: Option<Value> = None;
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    // Alias expansion is bounded by the file's own size times a small factor.
    let mut budget = text.len().saturating_mul(4).max(1 << 16);
    let bad = || "it is not valid YAML".to_owned();
    for item in Parser::new_from_str(text) {
        let (ev, _) = item.map_err(|_| bad())?;
        let done = match ev {
            Event::DocumentEnd => {
                docs.push(root.take().unwrap_or(Value::Null));
                anchors.clear();
                None
            }
            Event::MappingStart(_, anchor, _) => {
                stack.push(Build::Map(Vec::new(), None, anchor));
                None
            }
            Event::SequenceStart(_, anchor, _) => {
                stack.push(Build::Seq(Vec::new(), anchor));
                None
            }
            Event::MappingEnd => match stack.pop() {
                Some(Build::Map(m, _, anchor)) => Some((Value::Map(m), anchor)),
                _ => return Err(bad()),
            },
            Event::SequenceEnd => match stack.pop() {
                Some(Build::Seq(s, anchor)) => Some((Value::Seq(s), anchor)),
                _ => return Err(bad()),
            },
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.map(|t| t.to_string());
                Some((scalar(&value, style, tag.as_deref())?, anchor))
            }
            Event::Alias(id) => {
                let v = anchors.get(&id).cloned().ok_or_else(bad)?;
                budget = budget.checked_sub(size(&v)).ok_or_else(|| {
                    "its aliases expand to more than keyfill reads".to_owned()
                })?;
                Some((v, 0))
            }
            _ => None,
        };
        if let Some((v, anchor)) = done {
            if anchor != 0 {
                anchors.insert(anchor, v.clone());
            }
            add(&mut stack, &mut root, v)?;
        }
    }
    Ok(docs)
}

/// A rough size of a value, for the alias budget.
fn size(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len() + 1,
        Value::Bytes(b) => b.len() + 1,
        Value::Time(t) => t.len() + 1,
        Value::Seq(s) => s.iter().map(size).sum::<usize>() + 1,
        Value::Map(m) => m.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>() + 1,
        _ => 1,
    }
}

fn add(stack: &mut [Build], root: &mut Option<Value>, v: Value) -> Result<(), String> {
    match stack.last_mut() {
        None => *root = Some(v),
        Some(Build::Seq(s, _)) => s.push(v),
        Some(Build::Map(m, key, _)) => match key.take() {
            Some(k) => m.push((k, v)),
            None => match v {
                Value::Str(k) => *key = Some(k),
                Value::Int(n) => *key = Some(n.to_string()),
                Value::Bool(b) => *key = Some(b.to_string()),
                // sops refuses keys that are not strings (after YAML typing).
                _ => return Err("it has a mapping key that is not a string".to_owned()),
            },
        },
    }
    Ok(())
}

/// A YAML scalar typed as Go's yaml.v3 types it for an `interface{}`
/// (resolve.go): plain scalars by its rules, explicit core tags, everything
/// else a string. Timestamps stay strings, as yaml.v3 leaves them there.
fn scalar(value: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    let tag = tag.map(|t| t.strip_prefix("tag:yaml.org,2002:").unwrap_or(t));
    let resolved = match (tag, style) {
        (None, ScalarStyle::Plain) => plain(value),
        (None, _) | (Some("str" | "!!str" | "binary" | "!!binary"), _) => {
            return Ok(Value::Str(value.to_owned()))
        }
        (Some(_), _) => plain(value),
    };
    Ok(match (tag, resolved) {
        (None, v) => v,
        (Some("float" | "!!float"), Value::Int(n)) => {
            #[allow(clippy::cast_precision_loss)]
            Value::Float(n as f64)
        }
        (Some("null" | "!!null"), v @ Value::Null)
        | (Some("bool" | "!!bool"), v @ Value::Bool(_))
        | (Some("int" | "!!int"), v @ Value::Int(_))
        | (Some("float" | "!!float"), v @ Value::Float(_)) => v,
        (Some("null" | "!!null" | "bool" | "!!bool" | "int" | "!!int" | "float" | "!!float"), _) => {
            return Err("it has a tagged value that does not read as its tag".to_owned())
        }
        // Another tag: yaml.v3 keeps the text.
        (Some(_), _) => Value::Str(value.to_owned()),
    })
}

/// A plain scalar as yaml.v3's `resolve` reads it.
fn plain(s: &str) -> Value {
    match s {
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match s.as_bytes()[0] {
        b'.' => {
            if let Ok(f) = s.parse::<f64>() {
                return Value::Float(f);
            }
        }
        b'0'..=b'9' | b'+' | b'-' => {
            if let Some(t) = timestamp(s) {
                return Value::Time(t);
            }
            let digits = s.replace('_', "");
            if let Some(n) = go_int(&digits) {
                return Value::Int(n);
            }
            if yaml_style_float(&digits) {
                if let Ok(f) = digits.parse::<f64>() {
                    return Value::Float(f);
                }
            }
        }
        _ => {}
    }
    Value::Str(s.to_owned())
}

/// A YAML timestamp in one of the layouts yaml.v3 reads (`2006-1-2`,
/// `2006-1-2T15:4:5.999999999Z07:00` with `T` or `t`, `2006-1-2 15:4:5.999999999`
/// in UTC), spelled as Go's `time.RFC3339Nano` writes it: two-digit fields,
/// a fraction without trailing zeros, `Z` for UTC.
fn timestamp(s: &str) -> Option<String> {
    fn num(s: &str, min: usize, max: usize) -> Option<(u32, &str)> {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        if n < min || n > max {
            return None;
        }
        Some((s[..n].parse().ok()?, &s[n..]))
    }
    let (year, rest) = num(s, 4, 4)?;
    let (month, rest) = num(rest.strip_prefix('-')?, 1, 2)?;
    let (day, rest) = num(rest.strip_prefix('-')?, 1, 2)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days {
        return None;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    if rest.is_empty() {
        return Some(format!("{date}T00:00:00Z"));
    }
    let (zoned, rest) = match rest.as_bytes()[0] {
        b'T' | b't' => (true, &rest[1..]),
        b' ' => (false, &rest[1..]),
        _ => return None,
    };
    let (h, rest) = num(rest, 1, 2)?;
    let (m, rest) = num(rest.strip_prefix(':')?, 1, 2)?;
    let (sec, mut rest) = num(rest.strip_prefix(':')?, 1, 2)?;
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let mut fraction = "";
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 || n > 9 {
            return None;
        }
        fraction = frac[..n].trim_end_matches('0');
        rest = &frac[n..];
    }
    let dot = if fraction.is_empty() { "" } else { "." };
    let time = format!("{date}T{h:02}:{m:02}:{sec:02}{dot}{fraction}");
    let zone = match (zoned, rest) {
        (false, "") | (true, "Z") => "Z".to_owned(),
        (true, z) => {
            let sign = z.get(..1).filter(|c| *c == "+" || *c == "-")?;
            let (zh, r) = num(&z[1..], 2, 2)?;
            let (zm, r) = num(r.strip_prefix(':')?, 2, 2)?;
            if !r.is_empty() || zh > 23 || zm > 59 {
                return None;
            }
            if zh == 0 && zm == 0 {
                "Z".to_owned()
            } else {
                format!("{sign}{zh:02}:{zm:02}")
            }
        }
        _ => return None,
    };
    Some(format!("{time}{zone}"))
}

/// Go's `strconv.ParseInt(s, 0, 64)`: a sign, then `0x`, `0o`, `0b` or a
/// leading `0` (octal) choose the base.
fn go_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        _ if body.len() > 1 && body.starts_with('0') => (8, &body[1..]),
        _ => (10, body),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if neg { -magnitude } else { magnitude }).ok()
}

/// yaml.v3's `yamlStyleFloat`:
/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.strip_prefix(['-', '+']).unwrap_or(s).as_bytes();
    let digits = |from: usize| b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = digits(0);
    if i == 0 {
        if b.first() != Some(&b'.') || digits(1) == 0 {
            return false;
        }
        i = 1 + digits(1);
    } else if b.get(i) == Some(&b'.') {
        i += 1 + digits(i + 1);
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let n = digits(i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == b.len()
}

/// A JSON document; every number a double, as Go's `encoding/json` decodes it
/// into an `interface{}`.
fn json(text: &str) -> Result<Value, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("it is not valid JSON (line {})", e.line()))?;
    fn conv(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => Value::Seq(a.into_iter().map(conv).collect()),
            serde_json::Value::Object(m) => {
                Value::Map(m.into_iter().map(|(k, v)| (k, conv(v))).collect())
            }
        }
    }
    Ok(conv(v))
}

/// A dotenv file as sops's dotenv store reads it: one `KEY=VALUE` per line
/// (split at the first `=`), `#` lines are comments, `\n` in a value is a line
/// break; `sops_…` keys are the flattened metadata.
fn dotenv(text: &str) -> Result<Parsed, String> {
    let mut data = Vec::new();
    let mut flat: Vec<(String, String)> = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("its line {} is not `KEY=VALUE`", n + 1));
        };
        let value = value.replace("\\n", "\n");
        match key.strip_prefix("sops_") {
            Some(k) => flat.push((k.to_owned(), value)),
            None => data.push((key.to_owned(), Value::Str(value))),
        }
    }
    if flat.is_empty() {
        return Err("it has no `sops_` metadata, so it is no sops-encrypted file".to_owned());
    }
    let mut meta = Value::Map(Vec::new());
    for (key, value) in flat {
        let value = match key.as_str() {
            "mac_only_encrypted" => Value::Bool(value == "true"),
            "shamir_threshold" => value
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| "its `sops_shamir_threshold` is not an integer".to_owned())?,
            _ => Value::Str(value),
        };
        unflatten(&mut meta, &key, value);
    }
    Ok(Parsed {
        docs: vec![data],
        meta,
    })
}

/// One path of sops's flattened metadata (`age__list_0__map_enc`) into `into`.
fn unflatten(into: &mut Value, path: &str, value: Value) {
    enum Tok {
        Key(String),
        Index(usize),
    }
    let mut toks = Vec::new();
    let mut rest = path;
    let mut current = Tok::Key(String::new());
    let mut text = String::new();
    loop {
        let next_map = rest.find("__map_");
        let next_list = rest.find("__list_");
        let (at, sep_len, is_list) = match (next_map, next_list) {
            (Some(m), Some(l)) if l < m => (l, 7, true),
            (Some(m), _) => (m, 6, false),
            (None, Some(l)) => (l, 7, true),
            (None, None) => {
                text.push_str(rest);
                break;
            }
        };
        text.push_str(&rest[..at]);
        toks.push(finish(current, std::mem::take(&mut text)));
        current = if is_list {
            Tok::Index(0)
        } else {
            Tok::Key(String::new())
        };
        rest = &rest[at + sep_len..];
    }
    toks.push(finish(current, text));
    fn finish(t: Tok, text: String) -> Tok {
        match t {
            Tok::Key(_) => Tok::Key(text),
            Tok::Index(_) => Tok::Index(text.parse().unwrap_or(0)),
        }
    }
    let mut node = into;
    let last = toks.len().saturating_sub(1);
    for i in 0..toks.len() {
        let slot: &mut Value = match (&toks[i], &mut *node) {
            (Tok::Key(k), Value::Map(m)) => {
                let at = match m.iter().position(|(mk, _)| mk == k) {
                    Some(at) => at,
                    None => {
                        m.push((k.clone(), Value::Null));
                        m.len() - 1
                    }
                };
                &mut m[at].1
            }
            (Tok::Index(n), Value::Seq(s)) => {
                if s.len() <= *n {
                    s.resize(n + 1, Value::Null);
                }
                &mut s[*n]
            }
            // A path that contradicts an earlier one: sops would fail too.
            _ => return,
        };
        if i == last {
            *slot = value;
            return;
        }
        if matches!(slot, Value::Null) {
            *slot = match toks[i + 1] {
                Tok::Index(_) => Value::Seq(Vec::new()),
                Tok::Key(_) => Value::Map(Vec::new()),
            };
        }
        node = slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_metadata_is_unflattened_as_sops_flattens_it() {
        let text = "A=1\nsops_age__list_0__map_recipient=age1x\nsops_age__list_0__map_enc=line\\nnext\nsops_mac_only_encrypted=true\nsops_lastmodified=t\n";
        let p = parse(Format::Dotenv, text).expect("dotenv");
        assert_eq!(p.docs, vec![vec![("A".to_owned(), Value::Str("1".into()))]]);
        let age = p.meta.get("age").expect("age");
        let Value::Seq(keys) = age else {
            panic!("age is a list: {age:?}")
        };
        assert_eq!(keys[0].get("recipient"), Some(&Value::Str("age1x".into())));
        assert_eq!(keys[0].get("enc"), Some(&Value::Str("line\nnext".into())));
        assert_eq!(p.meta.get("mac_only_encrypted"), Some(&Value::Bool(true)));
    }

    #[test]
    fn yaml_scalars_are_typed_as_yaml_v3_types_them() {
        let p = parse(
            Format::Yaml,
            "a: 0x1F\nb: '5'\nc: 1.50\nd: true\ne: ~\nf: !!str 7\ng: 0644\nh: 1_000\ni: 2024-01-02\nj: on\nk: -0b11\nl: 1e3\nm: !!float 2\nsops: {}\n",
        )
        .expect("yaml");
        assert_eq!(
            p.docs[0].iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            [
                Value::Int(31),
                Value::Str("5".into()),
                Value::Float(1.5),
                Value::Bool(true),
                Value::Null,
                Value::Str("7".into()),
                Value::Int(0o644),
                Value::Int(1000),
                Value::Time("2024-01-02T00:00:00Z".into()),
                Value::Str("on".into()),
                Value::Int(-3),
                Value::Float(1000.0),
                Value::Float(2.0),
            ]
        );
    }

    #[test]
    fn timestamps_are_spelled_as_go_writes_rfc_3339() {
        for (text, want) in [
            ("2024-1-2", Some("2024-01-02T00:00:00Z")),
            ("2024-01-02T03:04:05.250+00:00", Some("2024-01-02T03:04:05.25Z")),
            ("2024-01-02T03:04:05.000Z", Some("2024-01-02T03:04:05Z")),
            ("2024-01-02t3:4:5-05:30", Some("2024-01-02T03:04:05-05:30")),
            ("2024-01-02 03:04:05", Some("2024-01-02T03:04:05Z")),
            ("2023-02-29", None),
            ("2024-01-02T03:04", None),
            ("12024-01-02", None),
        ] {
            assert_eq!(timestamp(text).as_deref(), want, "{text}");
        }
    }

    #[test]
    fn a_file_without_metadata_is_no_sops_file() {
        assert!(parse(Format::Json, r#"{"a": 1}"#).is_err());
        assert!(parse(Format::Yaml, "a: 1\n").is_err());
        assert!(parse(Format::Dotenv, "A=1\n").is_err());
    }
}
