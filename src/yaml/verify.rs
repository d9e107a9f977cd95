//! The second pass: parse the rendered text and digest it the way the first pass
//! digested the input, so the two can be compared; optionally build the JSON
//! form of each document for `--format json`.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};

use super::digest::{Acc, DigestKey, Ev};
use super::scan::{plain_kind, Limits};
use super::schema::{resolve_core, Kind};

/// Why the rendered text could not be checked or converted.
#[derive(Debug)]
pub enum VerifyError {
    /// The rendered text does not parse.
    Parse(String),
    /// The document has no JSON form (message says why).
    Json(String),
}

enum Build {
    Map(Map<String, Value>, Option<String>, Vec<Value>, usize),
    Seq(Vec<Value>, usize),
}

/// Digests `text`; with `json`, also returns each document as JSON.
pub fn verify(
    text: &str,
    key: &DigestKey,
    limits: Limits,
    json: bool,
) -> Result<(Acc, Vec<Value>), VerifyError> {
    let options = granit_parser::options! {
        strict_indentation: true,
        // As the first pass reads it (see `scan`).
        block_scalar_eof_without_line_feed: true,
        flow_nesting_limit: limits.max_depth + 64,
        block_nesting_limit: limits.max_depth + 64,
    };
    let mut acc = Acc::default();
    let mut docs = Vec::new();
    let mut stack: Vec<Build> = Vec::new();
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    let mut root: Option<Value> = None;
    // Alias expansion in JSON is bounded by the input's own size times a small factor.
    let mut budget: usize = text.len().saturating_mul(4).max(1 << 20);
    for item in Parser::new_from_str_with_options(text, options) {
        let (ev, _) = item.map_err(|e| VerifyError::Parse(e.kind().to_string()))?;
        match ev {
            Event::DocumentStart(..) => acc.push(key, Ev::DocStart),
            Event::DocumentEnd => {
                acc.push(key, Ev::DocEnd);
                if json {
                    docs.push(root.take().unwrap_or(Value::Null));
                    anchors.clear();
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.map(|t| t.to_string());
                let kind: &str = match (&tag, style) {
                    (Some(t), _) => t,
                    (None, ScalarStyle::Plain) => plain_kind(&value),
                    (None, _) => "str",
                };
                acc.push(key, Ev::Scalar(anchor, kind, &value));
                if json {
                    let v = scalar_json(&value, style, tag.as_deref())?;
                    if anchor != 0 {
                        anchors.insert(anchor, v.clone());
                    }
                    add(&mut stack, &mut root, v)?;
                }
            }
            Event::MappingStart(_, anchor, tag) => {
                acc.push(
                    key,
                    Ev::MapStart(anchor, tag.map(|t| t.to_string()).as_deref()),
                );
                if json {
                    stack.push(Build::Map(Map::new(), None, Vec::new(), anchor));
                }
            }
            Event::SequenceStart(_, anchor, tag) => {
                acc.push(
                    key,
                    Ev::SeqStart(anchor, tag.map(|t| t.to_string()).as_deref()),
                );
                if json {
                    stack.push(Build::Seq(Vec::new(), anchor));
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                acc.push(
                    key,
                    if matches!(ev, Event::MappingEnd) {
                        Ev::MapEnd
                    } else {
                        Ev::SeqEnd
                    },
                );
                if json {
                    let (v, anchor) = match stack.pop() {
                        Some(Build::Map(mut m, _, merges, a)) => {
                            // Merge keys: explicit entries win over merged ones.
                            for src in merges {
                                merge_into(&mut m, src)?;
                            }
                            (Value::Object(m), a)
                        }
                        Some(Build::Seq(items, a)) => (Value::Array(items), a),
                        None => (Value::Null, 0),
                    };
                    if anchor != 0 {
                        anchors.insert(anchor, v.clone());
                    }
                    add(&mut stack, &mut root, v)?;
                }
            }
            Event::Alias(id) => {
                acc.push(key, Ev::Alias(id));
                if json {
                    let v = anchors.get(&id).cloned().unwrap_or(Value::Null);
                    let size = weight(&v);
                    budget = budget.checked_sub(size).ok_or_else(|| {
                        VerifyError::Json("aliases expand to more than the JSON size limit".into())
                    })?;
                    add(&mut stack, &mut root, v)?;
                }
            }
            _ => {}
        }
    }
    Ok((acc, docs))
}

fn weight(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(weight).sum::<usize>(),
        Value::Object(m) => 1 + m.iter().map(|(k, v)| k.len() + weight(v)).sum::<usize>(),
        Value::String(s) => 1 + s.len(),
        _ => 1,
    }
}

fn merge_into(m: &mut Map<String, Value>, src: Value) -> Result<(), VerifyError> {
    match src {
        Value::Object(o) => {
            for (k, v) in o {
                m.entry(k).or_insert(v);
            }
            Ok(())
        }
        Value::Array(items) => {
            for item in items {
                merge_into(m, item)?;
            }
            Ok(())
        }
        _ => Err(VerifyError::Json(
            "a merge key `<<` must refer to a mapping".into(),
        )),
    }
}

fn add(stack: &mut [Build], root: &mut Option<Value>, v: Value) -> Result<(), VerifyError> {
    match stack.last_mut() {
        None => *root = Some(v),
        Some(Build::Seq(items, _)) => items.push(v),
        Some(Build::Map(m, pending, merges, _)) => match pending.take() {
            None => {
                *pending = Some(match v {
                    Value::String(s) => s,
                    Value::Null => "null".into(),
                    Value::Bool(b) => b.to_string(),
                    Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(VerifyError::Json(
                            "a mapping key that is a collection has no JSON form".into(),
                        ))
                    }
                });
            }
            Some(k) if k == "<<" => merges.push(v),
            Some(k) => {
                m.insert(k, v);
            }
        },
    }
    Ok(())
}

fn scalar_json(value: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Value, VerifyError> {
    let kind = match tag {
        Some("tag:yaml.org,2002:str") => Kind::Str,
        Some("tag:yaml.org,2002:int") => Kind::Int,
        Some("tag:yaml.org,2002:float") => Kind::Float,
        Some("tag:yaml.org,2002:bool") => Kind::Bool,
        Some("tag:yaml.org,2002:null") => Kind::Null,
        Some(_) => Kind::Str,
        None if style == ScalarStyle::Plain => resolve_core(value),
        None => Kind::Str,
    };
    Ok(match kind {
        Kind::Null => Value::Null,
        Kind::Bool => Value::Bool(value.eq_ignore_ascii_case("true")),
        Kind::Int => int_json(value)
            .ok_or_else(|| VerifyError::Json("a scalar tagged `!!int` is not an integer".into()))?,
        Kind::Float => {
            let f = float_value(value).ok_or_else(|| {
                VerifyError::Json("a scalar tagged `!!float` is not a number".into())
            })?;
            Number::from_f64(f).map(Value::Number).ok_or_else(|| {
                VerifyError::Json("an infinite or NaN float has no JSON form".into())
            })?
        }
        Kind::Str => Value::String(value.to_owned()),
    })
}

fn int_json(s: &str) -> Option<Value> {
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if let Some(h) = digits.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = digits.strip_prefix("0o") {
        (8, o)
    } else {
        (10, digits)
    };
    let n = i128::from_str_radix(digits, radix).ok()?;
    let n = if neg { -n } else { n };
    if let Ok(i) = i64::try_from(n) {
        Some(Value::Number(i.into()))
    } else if let Ok(u) = u64::try_from(n) {
        Some(Value::Number(u.into()))
    } else {
        #[allow(clippy::cast_precision_loss)]
        Number::from_f64(n as f64).map(Value::Number)
    }
}

fn float_value(s: &str) -> Option<f64> {
    let lower = s.to_ascii_lowercase();
    match lower.trim_start_matches('+') {
        ".inf" => Some(f64::INFINITY),
        "-.inf" => Some(f64::NEG_INFINITY),
        ".nan" => Some(f64::NAN),
        t => t.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Vec<Value> {
        let limits = Limits {
            max_depth: 64,
            max_aliases: 100,
        };
        match verify(text, &DigestKey::default(), limits, true) {
            Ok((_, docs)) => docs,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn converts_scalars_by_core_schema() {
        let v = json("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: yes\ng: 0x1F\n");
        assert_eq!(
            v[0],
            serde_json::json!({"a": 1, "b": "1", "c": true, "d": null, "e": 1.5, "f": "yes", "g": 31})
        );
    }

    #[test]
    fn expands_aliases_and_merges() {
        let v = json("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n---\n- 1\n");
        assert_eq!(
            v[0],
            serde_json::json!({"base": {"x": 1, "y": 2}, "c": {"x": 1, "y": 3}})
        );
        assert_eq!(v[1], serde_json::json!([1]));
    }

    #[test]
    fn infinity_has_no_json_form() {
        let limits = Limits {
            max_depth: 64,
            max_aliases: 100,
        };
        assert!(verify("a: .inf\n", &DigestKey::default(), limits, true).is_err());
    }
}
