//! A site's new text: the emitted scalar (or JSON structure) for a value, with
//! the digest of the events it must parse to, in the vocabulary of
//! [`crate::yaml::emit`].

use serde_json::Value;

use crate::yaml::digest::{Acc, DigestKey, Ev};
use crate::yaml::emit::{self, BlockShape, Prefer};
use crate::yaml::node::Site;
use crate::yaml::schema::plain_kind;

/// Deepest JSON structure inserted into the output.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// What a site's new value is.
pub(crate) enum Rendered {
    /// A string, emitted as a safe scalar.
    Str(String),
    /// A typed value (int, float, bool), rendered bare.
    Typed(String),
    /// JSON inserted as YAML structure.
    Json(Value),
}

/// One emitted site: new bytes and the digest of what they must parse to.
pub(crate) struct Emitted {
    /// Replacement text.
    pub(crate) text: String,
    /// Expected events.
    pub(crate) digest: Acc,
}

pub(crate) fn emit_site(site: &Site, value: &Rendered, src: &str, key: &DigestKey) -> Emitted {
    let mut text = String::new();
    let mut digest = Acc::default();
    let tail = site
        .block
        .as_ref()
        .map_or("", |b| src.get(b.tail.clone()).unwrap_or(""));
    let line_break = site.block.as_ref().map_or("", |b| b.line_break);
    let tag = site.tag.as_deref();
    match value {
        Rendered::Str(s) => {
            let done = match &site.block {
                Some(b) if !site.is_key => emit::block_scalar(
                    s,
                    &BlockShape {
                        folded: b.folded,
                        indent: b.indent,
                        header: src.get(b.header.clone()).unwrap_or(""),
                        tail,
                        line_break,
                        blank_follows: b.blank_follows,
                        at_eof: b.at_eof,
                    },
                    &mut text,
                ),
                _ => false,
            };
            if !done {
                let prefer = match site.style {
                    _ if site.is_key => Prefer::Double,
                    granit_parser::ScalarStyle::Plain => Prefer::Plain,
                    granit_parser::ScalarStyle::SingleQuoted => Prefer::Single,
                    _ => Prefer::Double,
                };
                emit::string_scalar(s, prefer, site.ctx, &mut text);
                text.push_str(tail);
                text.push_str(line_break);
            }
            digest.push(key, Ev::Scalar(site.anchor, tag.unwrap_or("str"), s));
        }
        Rendered::Typed(s) => {
            text.push_str(s);
            text.push_str(tail);
            text.push_str(line_break);
            digest.push(
                key,
                Ev::Scalar(site.anchor, tag.unwrap_or_else(|| plain_kind(s)), s),
            );
        }
        Rendered::Json(v) => {
            // Depth was checked by the caller, so this cannot fail; if it did,
            // verification would refuse the output.
            let _ = emit::json_flow(v, MAX_JSON_DEPTH + 1, &mut text);
            json_digest(v, site.anchor, key, &mut digest);
            text.push_str(tail);
            text.push_str(line_break);
        }
    }
    Emitted { text, digest }
}

fn json_digest(v: &Value, anchor: usize, key: &DigestKey, acc: &mut Acc) {
    match v {
        Value::Null => acc.push(key, Ev::Scalar(anchor, "null", "null")),
        Value::Bool(b) => acc.push(
            key,
            Ev::Scalar(anchor, "bool", if *b { "true" } else { "false" }),
        ),
        Value::Number(n) => {
            let t = if n.is_f64() {
                emit::float_text(n.as_f64().unwrap_or(f64::NAN))
            } else {
                n.to_string()
            };
            acc.push(key, Ev::Scalar(anchor, plain_kind(&t), &t));
        }
        Value::String(s) => acc.push(key, Ev::Scalar(anchor, "str", s)),
        Value::Array(items) => {
            acc.push(key, Ev::SeqStart(anchor, None));
            for i in items {
                json_digest(i, 0, key, acc);
            }
            acc.push(key, Ev::SeqEnd);
        }
        Value::Object(m) => {
            acc.push(key, Ev::MapStart(anchor, None));
            for (k, i) in m {
                acc.push(key, Ev::Scalar(0, "str", k));
                json_digest(i, 0, key, acc);
            }
            acc.push(key, Ev::MapEnd);
        }
    }
}
