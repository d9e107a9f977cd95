//! The three file formats keyfill decrypts itself, read into one tree as sops's
//! stores read them: YAML (every document; the `sops` key of the first holds the
//! metadata), JSON (one object; numbers are doubles, as Go's decoder makes them)
//! and dotenv (`KEY=VALUE` lines, `\n` for a line break, the metadata flattened
//! into `sops_…` keys). Messages name positions and keys, never values.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};

use crate::yaml::schema::{resolve_core, Kind};

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

/// A YAML scalar typed as Go's yaml.v3 types it for an `interface{}`: core
/// schema plain scalars, explicit core tags, everything else a string.
fn scalar(value: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, String> {
    let kind = match tag {
        Some(t) => match t.strip_prefix("tag:yaml.org,2002:").unwrap_or(t) {
            "null" | "!!null" => Kind::Null,
            "bool" | "!!bool" => Kind::Bool,
            "int" | "!!int" => Kind::Int,
            "float" | "!!float" => Kind::Float,
            _ => Kind::Str,
        },
        None if style == ScalarStyle::Plain => resolve_core(value),
        None => Kind::Str,
    };
    Ok(match kind {
        Kind::Null => Value::Null,
        Kind::Bool => Value::Bool(value.eq_ignore_ascii_case("true")),
        Kind::Int => parse_int(value)
            .map(Value::Int)
            .or_else(|| value.parse::<f64>().ok().map(Value::Float))
            .ok_or_else(|| "it has an integer keyfill cannot read".to_owned())?,
        Kind::Float => Value::Float(parse_yaml_float(value).ok_or_else(|| {
            "it has a number keyfill cannot read".to_owned()
        })?),
        Kind::Str => Value::Str(value.to_owned()),
    })
}

/// A core-schema integer: decimal with an optional sign, `0x` hex, `0o` octal.
fn parse_int(s: &str) -> Option<i64> {
    if let Some(h) = s.strip_prefix("0x") {
        return i64::from_str_radix(h, 16).ok();
    }
    if let Some(o) = s.strip_prefix("0o") {
        return i64::from_str_radix(o, 8).ok();
    }
    s.parse::<i64>().ok()
}

fn parse_yaml_float(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        ".inf" | "+.inf" => Some(f64::INFINITY),
        "-.inf" => Some(f64::NEG_INFINITY),
        ".nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
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
            "a: 0x1F\nb: '5'\nc: 1.50\nd: true\ne: ~\nf: !!str 7\nsops: {}\n",
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
            ]
        );
    }

    #[test]
    fn a_file_without_metadata_is_no_sops_file() {
        assert!(parse(Format::Json, r#"{"a": 1}"#).is_err());
        assert!(parse(Format::Yaml, "a: 1\n").is_err());
        assert!(parse(Format::Dotenv, "A=1\n").is_err());
    }
}
