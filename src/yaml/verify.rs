//! The second pass: parse the rendered text and digest it the way the first pass
//! digested the input, so the two can be compared; optionally build the JSON
//! form of each document for `--format json`.

use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle};
use indexmap::IndexMap;

use super::digest::{Acc, DigestKey, Ev};
use super::scan::Limits;
use super::schema::plain_kind;
use super::schema::{resolve_core, Kind};

/// Why the rendered text could not be checked or converted.
#[derive(Debug)]
pub(crate) enum VerifyError {
    /// The rendered text does not parse.
    Parse,
    /// The document has no JSON form (message says why).
    Json(String),
}

/// A document's JSON form for `--format json`. Numbers keep the digits the
/// YAML wrote (an integer beyond 2^53, an exact decimal), which a
/// `serde_json::Value` would round to a double.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Json {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number's JSON text, exactly the value the YAML wrote.
    Number(String),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, in document order.
    Object(Map),
}

type Map = IndexMap<String, Json>;

impl Json {
    /// The JSON text, laid out as `serde_json::to_string_pretty` lays it out.
    pub(crate) fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(0, &mut out);
        out
    }

    fn write(&self, indent: usize, out: &mut String) {
        let pad = |n: usize, out: &mut String| out.extend(std::iter::repeat_n("  ", n));
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(n) => out.push_str(n),
            Json::String(s) => out.push_str(&json_string(s)),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Object(m) if m.is_empty() => out.push_str("{}"),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i > 0 { ",\n" } else { "\n" });
                    pad(indent + 1, out);
                    item.write(indent + 1, out);
                }
                out.push('\n');
                pad(indent, out);
                out.push(']');
            }
            Json::Object(m) => {
                out.push('{');
                for (i, (k, v)) in m.iter().enumerate() {
                    out.push_str(if i > 0 { ",\n" } else { "\n" });
                    pad(indent + 1, out);
                    out.push_str(&json_string(k));
                    out.push_str(": ");
                    v.write(indent + 1, out);
                }
                out.push('\n');
                pad(indent, out);
                out.push('}');
            }
        }
    }
}

/// A JSON string literal, escaped as serde_json escapes it.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

enum Build {
    Map(Map, Option<String>, Vec<Json>, usize),
    Seq(Vec<Json>, usize),
}

/// Digests `text`; with `json`, also returns each document as JSON.
pub(crate) fn verify(
    text: &str,
    key: &DigestKey,
    limits: Limits,
    json: bool,
) -> Result<(Acc, Vec<Json>), VerifyError> {
    let options = limits.parser_options(limits.max_depth + 64);
    let mut acc = Acc::default();
    let mut docs = Vec::new();
    let mut stack: Vec<Build> = Vec::new();
    let mut anchors: HashMap<usize, Json> = HashMap::new();
    let mut root: Option<Json> = None;
    // Alias expansion in JSON is bounded by the input's own size times a small factor.
    let mut budget: usize = text.len().saturating_mul(4).max(1 << 20);
    for item in Parser::new_from_str_with_options(text, options) {
        let (ev, _) = item.map_err(|_| VerifyError::Parse)?;
        match ev {
            Event::DocumentStart(..) => acc.push(key, Ev::DocStart),
            Event::DocumentEnd => {
                acc.push(key, Ev::DocEnd);
                if json {
                    docs.push(root.take().unwrap_or(Json::Null));
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
                            (Json::Object(m), a)
                        }
                        Some(Build::Seq(items, a)) => (Json::Array(items), a),
                        None => (Json::Null, 0),
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
                    let v = anchors.get(&id).cloned().unwrap_or(Json::Null);
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

fn weight(v: &Json) -> usize {
    match v {
        Json::Array(a) => 1 + a.iter().map(weight).sum::<usize>(),
        Json::Object(m) => 1 + m.iter().map(|(k, v)| k.len() + weight(v)).sum::<usize>(),
        Json::String(s) | Json::Number(s) => 1 + s.len(),
        _ => 1,
    }
}

fn merge_into(m: &mut Map, src: Json) -> Result<(), VerifyError> {
    match src {
        Json::Object(o) => {
            for (k, v) in o {
                m.entry(k).or_insert(v);
            }
            Ok(())
        }
        Json::Array(items) => {
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

fn add(stack: &mut [Build], root: &mut Option<Json>, v: Json) -> Result<(), VerifyError> {
    match stack.last_mut() {
        None => *root = Some(v),
        Some(Build::Seq(items, _)) => items.push(v),
        Some(Build::Map(m, pending, merges, _)) => match pending.take() {
            None => {
                *pending = Some(match v {
                    Json::String(s) | Json::Number(s) => s,
                    Json::Null => "null".into(),
                    Json::Bool(b) => b.to_string(),
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

fn scalar_json(value: &str, style: ScalarStyle, tag: Option<&str>) -> Result<Json, VerifyError> {
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
        Kind::Null => Json::Null,
        Kind::Bool => Json::Bool(value.eq_ignore_ascii_case("true")),
        Kind::Int => int_json(value)
            .ok_or_else(|| VerifyError::Json("a scalar tagged `!!int` is not an integer".into()))?,
        Kind::Float => {
            let f = float_value(value).ok_or_else(|| {
                VerifyError::Json("a scalar tagged `!!float` is not a number".into())
            })?;
            if !f.is_finite() {
                return Err(VerifyError::Json(
                    "an infinite or NaN float has no JSON form".into(),
                ));
            }
            Json::Number(float_json(value).unwrap_or_else(|| {
                serde_json::Number::from_f64(f).map_or_else(|| "0.0".into(), |n| n.to_string())
            }))
        }
        Kind::Str => Json::String(value.to_owned()),
    })
}

/// An integer (decimal, `0x`, `0o`, any size) as a JSON number, every digit kept:
/// `0x1F` is 31, `007` is 7, `+5` is 5, `-0` is 0.
fn int_json(s: &str) -> Option<Json> {
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
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let dec = if radix == 10 {
        digits.trim_start_matches('0').to_owned()
    } else {
        to_decimal(digits, radix)
    };
    Some(Json::Number(match (neg, dec.is_empty()) {
        (_, true) => "0".to_owned(),
        (true, false) => format!("-{dec}"),
        (false, false) => dec,
    }))
}

/// The decimal digits of a number written in `radix` (8 or 16), without leading zeros.
fn to_decimal(digits: &str, radix: u32) -> String {
    // Little-endian base-10 digits, multiplied by the radix and added to digit by digit.
    let mut dec: Vec<u32> = Vec::new();
    for c in digits.chars() {
        let mut carry = c.to_digit(radix).unwrap_or(0);
        for d in &mut dec {
            let v = *d * radix + carry;
            *d = v % 10;
            carry = v / 10;
        }
        while carry > 0 {
            dec.push(carry % 10);
            carry /= 10;
        }
    }
    dec.iter()
        .rev()
        .filter_map(|d| char::from_digit(*d, 10))
        .collect()
}

/// A core-schema float (`1.5`, `.5`, `1.`, `+1e3`, `010.50`) as JSON number text,
/// every written digit kept; `None` when it is not written that way.
fn float_json(s: &str) -> Option<String> {
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let int = match int.trim_start_matches('0') {
        "" => "0",
        i => i,
    };
    // A float stays a float in JSON: `1.` and a `!!float 1` get `.0`.
    let frac = if frac.is_empty() { "0" } else { frac };
    let mut out = format!("{}{int}.{frac}", if neg { "-" } else { "" });
    if let Some(e) = exp {
        let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
        if digits.is_empty() || !all_digits(digits) {
            return None;
        }
        out.push('e');
        out.push_str(e);
    }
    Some(out)
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

    fn limits() -> Limits {
        Limits {
            max_depth: 64,
            max_aliases: 100,
            strict_yaml: false,
        }
    }

    fn json(text: &str) -> Vec<serde_json::Value> {
        match verify(text, &DigestKey::default(), limits(), true) {
            Ok((_, docs)) => docs
                .iter()
                .map(|d| serde_json::from_str(&d.pretty()).expect("strict JSON"))
                .collect(),
            Err(e) => panic!("{e:?}"),
        }
    }

    /// The JSON text of the first document's `v`, checked by a strict parser.
    fn number(yaml_value: &str) -> String {
        let docs = match verify(
            &format!("v: {yaml_value}\n"),
            &DigestKey::default(),
            limits(),
            true,
        ) {
            Ok((_, docs)) => docs,
            Err(e) => panic!("{yaml_value}: {e:?}"),
        };
        let text = docs[0].pretty();
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_ok(),
            "{yaml_value}: {text}"
        );
        match &docs[0] {
            Json::Object(m) => match m.get("v") {
                Some(Json::Number(n)) => n.clone(),
                v => panic!("{yaml_value}: {v:?}"),
            },
            d => panic!("{d:?}"),
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
    fn json_integers_beyond_2_pow_53_keep_every_digit() {
        for (yaml, want) in [
            ("9007199254740993", "9007199254740993"),         // 2^53 + 1
            ("18446744073709551616", "18446744073709551616"), // 2^64
            ("-9223372036854775809", "-9223372036854775809"), // -2^63 - 1
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("+42", "42"),
            ("007", "7"),
            ("-0", "0"),
            ("0x1F", "31"),
            ("0o17", "15"),
            (
                "0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
                "87112285931760246646623899502532662132735",
            ),
        ] {
            assert_eq!(number(yaml), want, "{yaml}");
        }
    }

    #[test]
    fn json_floats_keep_the_written_digits() {
        for (yaml, want) in [
            (
                "0.1000000000000000055511151231257827",
                "0.1000000000000000055511151231257827",
            ),
            ("1.5", "1.5"),
            (".5", "0.5"),
            ("-.5", "-0.5"),
            ("1.", "1.0"),
            ("+1e3", "1.0e3"),
            ("1E-7", "1.0e-7"),
            ("010.50", "10.50"),
            ("-0.0", "-0.0"),
            ("!!float 1", "1.0"),
        ] {
            assert_eq!(number(yaml), want, "{yaml}");
        }
    }

    #[test]
    fn json_pretty_matches_serde_json_layout() {
        let text = "a: [1, {b: x, c: []}, {}]\nd: \"q\\\"\\e\"\n";
        let (_, docs) = verify(text, &DigestKey::default(), limits(), true).expect("verifies");
        let v: serde_json::Value = serde_json::from_str(&docs[0].pretty()).expect("strict JSON");
        assert_eq!(
            docs[0].pretty(),
            serde_json::to_string_pretty(&v).expect("serialises")
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
        assert!(verify("a: .inf\n", &DigestKey::default(), limits(), true).is_err());
        assert!(verify("a: 1e400\n", &DigestKey::default(), limits(), true).is_err());
    }
}
