//! Computing values and emitting sites for one unit: each name's value once
//! (fetch → JSON key → base64 → TOTP → type check), compositions and JSON paths,
//! the size bound of composed values, `--redact`, then each site's new text with
//! the digest of what it must parse to.

use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;

use base64::Engine as _;
use serde_json::Value;

use super::Fetched;
use crate::error::{Diagnostic, Exit, SourceId};
use crate::json_path::{json_key_text, walk};
use crate::plan::Unit;
use crate::provider::Locator;
use crate::reference::{Part, SecretRef, Template};
use crate::secret::SecretText;
use crate::secret::MASK;
use crate::secrets::{Origin, SecretType};
use crate::source::Source;
use crate::yaml::digest::DigestKey;
use crate::yaml::emit::{self};
use crate::yaml::node::{locate, Site};
use crate::yaml::site::{emit_site, Emitted, Rendered, MAX_JSON_DEPTH};

/// A fetched value before decoding.
enum Raw {
    /// Text as fetched (or a JSON field of it).
    Text(String),
    /// A binary value, already shown as base64.
    Base64(String),
}

/// A computed secret.
struct Computed {
    text: SecretText,
    ty: SecretType,
    /// Built from a template that uses other secrets: its text (JSON keys
    /// included) may hold their values, so no part of it is ever listed.
    composed: bool,
}

impl std::fmt::Debug for Computed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Computed([REDACTED])")
    }
}

/// Computes values and emits sites for one unit.
pub struct Evaluator<'a, 'd> {
    unit: &'a Unit<'d>,
    sources: &'a [Source],
    fetched: &'a Fetched,
    redact: bool,
    max_secret: usize,
    memo: HashMap<String, Option<Rc<Computed>>>,
    failures: HashMap<String, Exit>,
    /// Problems found while computing.
    pub diags: Vec<Diagnostic>,
}

impl<'a, 'd> Evaluator<'a, 'd> {
    /// Prepares an evaluator.
    pub fn new(
        unit: &'a Unit<'d>,
        sources: &'a [Source],
        fetched: &'a Fetched,
        redact: bool,
    ) -> Self {
        Evaluator {
            unit,
            sources,
            fetched,
            redact,
            max_secret: usize::MAX,
            memo: HashMap::new(),
            failures: HashMap::new(),
            diags: Vec::new(),
        }
    }

    /// Bounds every composed value (a template's result) to `bytes`.
    pub fn max_secret(mut self, bytes: usize) -> Self {
        self.max_secret = bytes;
        self
    }

    fn fail(&mut self, d: Diagnostic) -> Option<Rc<Computed>> {
        self.diags.push(d);
        None
    }

    /// The value of a fetch (with its JSON key applied), or a reported error.
    /// Binary values (not UTF-8, or marked binary by the provider) come back as
    /// base64 text when `binary_as_base64`, and are an error otherwise: YAML text
    /// cannot carry them.
    fn fetch_value(
        &mut self,
        loc: &Locator,
        who: &str,
        at: Option<(SourceId, Range<usize>)>,
        binary_as_base64: bool,
    ) -> Option<Raw> {
        let res = self.fetched.get(&loc.fetch_key());
        let bytes = match res {
            Some(Ok(b)) => b,
            Some(Err(e)) => {
                let d = Diagnostic::error(e.class.exit(), format!("{who}: {}", e.message))
                    .note(format!("locator: {loc}"));
                self.diags.push(attach(d, at));
                return None;
            }
            None => {
                self.diags.push(attach(
                    Diagnostic::error(Exit::Provider, format!("{who}: {loc} was not fetched")),
                    at,
                ));
                return None;
            }
        };
        let text = std::str::from_utf8(bytes.expose())
            .ok()
            .filter(|_| !bytes.is_binary());
        let what = if bytes.is_binary() {
            "is a binary secret"
        } else {
            "is binary (not UTF-8 text)"
        };
        match (loc.json_key(), text) {
            (Some(key), Some(text)) => match json_key_text(text, key) {
                Ok(v) => Some(Raw::Text(v)),
                Err(e) => {
                    self.diags
                        .push(attach(e.diagnostic(who, &loc.to_string()), at));
                    None
                }
            },
            (Some(key), None) => {
                let d = Diagnostic::invalid(format!(
                    "{who}: {loc} {what}, so it has no JSON key `{key}`"
                ));
                self.diags.push(attach(d, at));
                None
            }
            (None, Some(text)) => Some(Raw::Text(text.to_owned())),
            (None, None) if binary_as_base64 => Some(Raw::Base64(
                base64::engine::general_purpose::STANDARD.encode(bytes.expose()),
            )),
            (None, None) => {
                let d = Diagnostic::invalid(format!("{who}: {loc} {what}")).note(
                    "declare it in long form with `encoding: base64` to render it as base64 text",
                );
                self.diags.push(attach(d, at));
                None
            }
        }
    }

    fn compute(&mut self, name: &str) -> Option<Rc<Computed>> {
        if let Some(m) = self.memo.get(name) {
            return m.clone();
        }
        // Marks the name while computing; cycles were reported during planning.
        self.memo.insert(name.to_owned(), None);
        let before = self.diags.len();
        let result = self.compute_uncached(name);
        if result.is_none() {
            let failed = self.diags[before..].iter().filter(|d| d.is_error());
            let exit = Exit::worst(failed.map(|d| d.class));
            self.failures.insert(name.to_owned(), exit);
        }
        self.memo.insert(name.to_owned(), result.clone());
        result
    }

    fn compute_uncached(&mut self, name: &str) -> Option<Rc<Computed>> {
        let d = self.unit.ns.get(name)?;
        let who = format!("secret `{name}`");
        let at = Some((d.source, d.name_span.clone()));
        let raw = match &d.origin {
            Origin::Provider { locator, default } => {
                let missing = matches!(self.fetched.get(&locator.fetch_key()), Some(Err(e)) if e.class == crate::provider::FetchClass::NotFound);
                match default {
                    Some((text, _)) if missing => Raw::Text(text.clone()),
                    _ => self.fetch_value(locator, &who, at.clone(), d.base64)?,
                }
            }
            Origin::Template { template, .. } => {
                let at = at.clone();
                Raw::Text(self.interpolate(template, d.source, &who, at.clone(), at)?)
            }
        };
        // A whole `<<provider|…>>` is a fetched document, as in the long form.
        let composed = match &d.origin {
            Origin::Template { template, .. } => {
                template.has_refs() && !matches!(template.whole(), Some(Part::Direct(_)))
            }
            Origin::Provider { .. } => false,
        };
        let raw = match raw {
            // A binary value shown as base64 is already what `encoding: base64` asks.
            Raw::Base64(text) => text,
            Raw::Text(text) if d.base64 => {
                let cleaned: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
                match base64::engine::general_purpose::STANDARD.decode(cleaned) {
                    Ok(bytes) => match String::from_utf8(bytes) {
                        Ok(s) => s,
                        Err(_) => {
                            return self.fail(attach(
                                Diagnostic::invalid(format!(
                                    "{who}: the base64-decoded value is not UTF-8 text"
                                )),
                                at,
                            ))
                        }
                    },
                    Err(_) => {
                        return self.fail(attach(
                            Diagnostic::invalid(format!("{who}: the value is not valid base64")),
                            at,
                        ))
                    }
                }
            }
            Raw::Text(text) => text,
        };
        let raw = match &d.totp {
            None => raw,
            Some(params) => match crate::totp::code_now(&raw, params) {
                Ok(code) => code,
                Err(e) => {
                    return self.fail(attach(
                        Diagnostic::invalid(format!("{who}: {}", e.describe())),
                        at,
                    ))
                }
            },
        };
        let text = match canonical(d.ty, &raw) {
            Ok(t) => t,
            Err(what) => {
                return self.fail(attach(
                    Diagnostic::invalid(format!("{who}: the value is not {what}")),
                    at,
                ))
            }
        };
        Some(Rc::new(Computed {
            text: SecretText::new(text),
            ty: d.ty,
            composed,
        }))
    }

    /// A template's text. `at` locates a fetch's failure, `size_at` the
    /// composed value growing past `--max-secret-size`: checked before each
    /// part is appended, so that doubling compositions stop at the bound
    /// instead of exhausting memory.
    fn interpolate(
        &mut self,
        t: &Template,
        source: SourceId,
        who: &str,
        at: Option<(SourceId, Range<usize>)>,
        size_at: Option<(SourceId, Range<usize>)>,
    ) -> Option<String> {
        let mut out = String::new();
        let mut ok = true;
        for p in &t.parts {
            let part = match p {
                Part::Literal(l) => Some(l.clone()),
                Part::Secret(r) => match self.compute(&r.name) {
                    Some(c) => match self.field(&c, r, who) {
                        Some(Rendered::Str(s) | Rendered::Typed(s)) => Some(s),
                        Some(Rendered::Json(v)) => Some(v.to_string()),
                        None => None,
                    },
                    None => None,
                },
                Part::Direct(r) => {
                    let base = &self.sources[source].base_dir;
                    match Locator::parse(r.provider, &r.locator, base) {
                        Ok(loc) => match self.fetch_value(&loc, who, at.clone(), false) {
                            Some(Raw::Text(v) | Raw::Base64(v)) => Some(v),
                            None => None,
                        },
                        Err(_) => None,
                    }
                }
            };
            let Some(part) = part else {
                ok = false;
                continue;
            };
            if out.len().saturating_add(part.len()) > self.max_secret {
                let d = Diagnostic::invalid(format!(
                    "{who}: the composed value is larger than {} bytes (raise with --max-secret-size)",
                    self.max_secret
                ));
                self.diags.push(attach(d, size_at));
                return None;
            }
            out.push_str(&part);
        }
        ok.then_some(out)
    }

    /// A secret (or a field of it) as a renderable value.
    fn field(&mut self, c: &Computed, r: &SecretRef, who: &str) -> Option<Rendered> {
        if r.path.is_empty() {
            return Some(match c.ty {
                SecretType::String => Rendered::Str(c.text.expose().to_owned()),
                SecretType::Json => match serde_json::from_str(c.text.expose()) {
                    Ok(v) => Rendered::Json(v),
                    Err(_) => Rendered::Str(c.text.expose().to_owned()),
                },
                _ => Rendered::Typed(c.text.expose().to_owned()),
            });
        }
        let Ok(json) = serde_json::from_str::<Value>(c.text.expose()) else {
            self.diags.push(Diagnostic::invalid(format!(
                "{who}: `$<{}.{}>` needs secret `{}` to hold a JSON object",
                r.name,
                r.path.join("."),
                r.name
            )));
            return None;
        };
        match walk(&json, &r.path) {
            Ok(v) => Some(match v {
                Value::String(s) => Rendered::Str(s.clone()),
                other if c.ty == SecretType::Json => Rendered::Json(other.clone()),
                other => Rendered::Str(other.to_string()),
            }),
            Err(mut e) => {
                if c.composed {
                    // A key there may be another secret's value (`{"$<B>": 1}`).
                    e.available.clear();
                }
                self.diags
                    .push(e.diagnostic(who, &format!("secret `{}`", r.name)));
                None
            }
        }
    }

    /// Computes a declared secret (for `check --resolve`); after reporting why
    /// not, the exit status of its first failure (`Ok` when only a dependency failed).
    pub fn resolves(&mut self, name: &str) -> Result<(), Exit> {
        match self.compute(name) {
            Some(_) => Ok(()),
            None => Err(self.failures.get(name).copied().unwrap_or(Exit::Ok)),
        }
    }

    /// A declared secret's final text (for `exec --env`), or `None` after
    /// reporting why not.
    pub fn value(&mut self, name: &str) -> Option<SecretText> {
        self.compute(name).map(|c| c.text.clone())
    }

    /// New text for one site, or `None` after reporting why not.
    pub fn emit(&mut self, site: &Site, key: &DigestKey) -> Option<Emitted> {
        let src = &self.sources[self.unit.source];
        let at = |r: Range<usize>| {
            (
                self.unit.source,
                locate(&src.text, &site.span, &site.value, r),
            )
        };
        let value = match site.template.whole() {
            Some(Part::Secret(r)) => {
                let who = format!("secret `{}`", r.name);
                let c = self.compute(&r.name)?;
                let v = self.field(&c, r, &who);
                if v.is_none() {
                    if let Some(d) = self.diags.last_mut() {
                        if d.location.is_none() {
                            let (s, span) = at(r.range.clone());
                            d.location = Some(crate::error::Location { source: s, span });
                        }
                    }
                }
                v?
            }
            Some(Part::Direct(r)) => {
                let loc = Locator::parse(r.provider, &r.locator, &src.base_dir).ok()?;
                let who = format!("reference <<{}|{}>>", r.provider, r.locator);
                match self.fetch_value(&loc, &who, Some(at(r.range.clone())), false)? {
                    Raw::Text(t) | Raw::Base64(t) => Rendered::Str(t),
                }
            }
            // Computed even when redacting: a missing secret must fail the render.
            _ => Rendered::Str(self.interpolate(
                &site.template,
                self.unit.source,
                "reference",
                None,
                Some((self.unit.source, site.span.clone())),
            )?),
        };
        let value = match value {
            _ if self.redact && site.template.has_refs() => {
                Rendered::Str(if site.template.whole().is_some() {
                    MASK.to_owned()
                } else {
                    redacted(&site.template)
                })
            }
            v => v,
        };
        if let Rendered::Json(v) = &value {
            if depth(v) > MAX_JSON_DEPTH {
                self.diags.push(
                    Diagnostic::invalid(format!(
                        "a `type: json` value is nested deeper than {MAX_JSON_DEPTH} levels"
                    ))
                    .at(self.unit.source, site.span.clone()),
                );
                return None;
            }
        }
        if matches!(value, Rendered::Json(_)) && site.tag.is_some() {
            self.diags.push(
                Diagnostic::invalid("a `type: json` secret cannot replace a tagged scalar")
                    .at(self.unit.source, site.span.clone()),
            );
            return None;
        }
        Some(emit_site(site, &value, &src.text, key))
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 1,
    }
}

fn attach(d: Diagnostic, at: Option<(SourceId, Range<usize>)>) -> Diagnostic {
    match at {
        Some((s, r)) => d.at(s, r),
        None => d,
    }
}

/// The template with every reference replaced by the mask.
fn redacted(t: &Template) -> String {
    t.parts
        .iter()
        .map(|p| match p {
            Part::Literal(l) => l.as_str(),
            _ => MASK,
        })
        .collect()
}

/// Checks a value against its type and returns the text to render.
fn canonical(ty: SecretType, raw: &str) -> Result<String, &'static str> {
    let t = raw.trim();
    match ty {
        SecretType::String => Ok(raw.to_owned()),
        SecretType::Int => {
            let digits = t.strip_prefix('+').unwrap_or(t);
            let valid = !digits.is_empty()
                && digits
                    .trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                && !digits.trim_start_matches('-').is_empty();
            if !valid {
                return Err("an integer");
            }
            digits
                .parse::<i128>()
                .map(|n| n.to_string())
                .map_err(|_| "an integer in range")
        }
        SecretType::Float => {
            let lower = t.to_ascii_lowercase();
            let f = match lower.trim_start_matches('+') {
                "inf" | ".inf" | "infinity" => f64::INFINITY,
                "-inf" | "-.inf" | "-infinity" => f64::NEG_INFINITY,
                "nan" | ".nan" => f64::NAN,
                other => other.parse::<f64>().map_err(|_| "a number")?,
            };
            Ok(emit::float_text(f))
        }
        SecretType::Bool => match t.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok("true".into()),
            "false" | "no" | "off" | "0" => Ok("false".into()),
            _ => Err("a boolean (true/false, yes/no, on/off, 1/0)"),
        },
        SecretType::Json => match serde_json::from_str::<Value>(raw) {
            Ok(_) => Ok(raw.to_owned()),
            Err(_) => Err("valid JSON"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_types() {
        assert_eq!(canonical(SecretType::Int, " 0123 "), Ok("123".into()));
        assert_eq!(canonical(SecretType::Int, "-5"), Ok("-5".into()));
        assert!(canonical(SecretType::Int, "1.5").is_err());
        assert!(canonical(SecretType::Int, "-").is_err());
        assert_eq!(canonical(SecretType::Float, "1"), Ok("1.0".into()));
        assert_eq!(canonical(SecretType::Bool, "Yes"), Ok("true".into()));
        assert!(canonical(SecretType::Bool, "maybe").is_err());
        assert!(canonical(SecretType::Json, "{").is_err());
    }
}
