//! The long form of a declaration: a mapping with exactly one source (a
//! provider's word, or `value`) and the options `default`, `type`, `totp`,
//! `encoding`, `scope` and `description`. Each provider parses its own source
//! field ([`Locator::parse`] for a text, [`Locator::from_fields`] for a mapping);
//! this module knows no provider by name.

use std::ops::Range;

use super::mask::{mask_all, mask_literals};
use super::{Ctx, Declaration, Origin, SecretType};
use crate::error::{quoted, Diagnostic};
use crate::provider::{Fields, Locator, LocatorError, ProviderKind, Spot};
use crate::reference;
use crate::suggest::closest;
use crate::totp::{HashAlgorithm, TotpParams};
use crate::yaml::node::{locate, Node, NodeKind};

/// The options besides the source.
const OPTIONS: [&str; 6] = [
    "default",
    "type",
    "totp",
    "encoding",
    "scope",
    "description",
];

/// Every long-form key: the providers' words, `value`, then the options.
fn long_keys() -> Vec<&'static str> {
    ProviderKind::words()
        .chain(["value"])
        .chain(OPTIONS)
        .collect()
}

/// Long-form fields that hold addresses or options, never secret text; every
/// other field's value (`value`, `default`, misspellings) is masked in diagnostics.
fn is_public_key(key: &str) -> bool {
    ProviderKind::from_word(key).is_some() || (OPTIONS.contains(&key) && key != "default")
}

/// A declaration's source field.
#[derive(Clone, Copy)]
enum Source<'n> {
    /// `value:`.
    Value(&'n Node),
    /// A provider's word, as written.
    Provider(ProviderKind, &'static str, &'n Node),
}

impl Ctx<'_> {
    pub(super) fn long_form(
        &mut self,
        whole: &Node,
        fields: &[(Node, Node)],
    ) -> Option<Declaration> {
        // Mask first, so every diagnostic below (and any later one) sees it.
        for (k, v) in fields {
            let public = k.as_str().is_some_and(is_public_key);
            match (&v.kind, k.as_str()) {
                (NodeKind::Scalar { value, .. }, Some("value")) => {
                    let (template, _) = reference::parse(value);
                    mask_literals(self.src, v, value, &template, &mut self.p.sensitive);
                }
                _ if !public => mask_all(v, &mut self.p.sensitive),
                _ => {}
            }
        }
        let keys = long_keys();
        let mut ok = true;
        let mut sources: Vec<(Source<'_>, &Node)> = Vec::new();
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let mut seen: Vec<&str> = Vec::new();
        for (k, v) in fields {
            let Some(key) = k.as_str() else {
                self.err(
                    &k.span,
                    format!("secret `{}`: option names are plain words", self.name),
                );
                ok = false;
                continue;
            };
            if seen.contains(&key) {
                self.err(
                    &k.span,
                    format!("secret `{}`: `{key}` is given twice", self.name),
                );
                ok = false;
                continue;
            }
            seen.push(key);
            if key == "value" {
                sources.push((Source::Value(v), k));
            } else if let Some((word, kind)) = ProviderKind::word(key) {
                sources.push((Source::Provider(kind, word, v), k));
            } else if !OPTIONS.contains(&key) {
                let mut d = Diagnostic::invalid(format!(
                    "secret `{}`: unknown option {}",
                    self.name,
                    quoted(key)
                ))
                .at(self.source, k.span.clone());
                if let Some(best) = closest(key, &keys) {
                    d = d.note(format!("did you mean `{best}`?"));
                }
                self.diags
                    .push(d.note(format!("options: {}", keys.join(", "))));
                ok = false;
            }
        }
        let source = match sources.as_slice() {
            [one] => one.0,
            [] => {
                let words: Vec<&str> = ProviderKind::words().chain(["value"]).collect();
                self.err(
                    &whole.span,
                    format!(
                        "secret `{}` has no source: give exactly one of {}",
                        self.name,
                        words.join(", ")
                    ),
                );
                return None;
            }
            [_, second, ..] => {
                self.err(
                    &second.1.span,
                    format!("secret `{}` has more than one source", self.name),
                );
                return None;
            }
        };
        let default = get("default");
        let takes_default = matches!(source, Source::Provider(kind, ..) if kind.takes_default());
        if let Some(d) = default.filter(|_| !takes_default) {
            let with: Vec<&str> = ProviderKind::WORDS
                .iter()
                .filter(|(_, k)| k.takes_default())
                .map(|(w, _)| *w)
                .collect();
            self.err(
                &d.span,
                format!(
                    "secret `{}`: `default` goes with `{}` only",
                    self.name,
                    with.join("`, `")
                ),
            );
            ok = false;
        }
        let origin = match source {
            Source::Value(node) => self.template(node),
            Source::Provider(kind, word, node) => {
                let default = match default.filter(|_| takes_default) {
                    Some(d) => match d.as_str() {
                        Some(t) => {
                            self.p.sensitive.push(d.span.clone());
                            Some((t.to_owned(), d.span.clone()))
                        }
                        None => {
                            self.err(
                                &d.span,
                                format!("secret `{}`: `default` must be a text value", self.name),
                            );
                            ok = false;
                            None
                        }
                    },
                    None => None,
                };
                self.provider(kind, word, node)
                    .map(|locator| Origin::Provider { locator, default })
            }
        };
        let mut decl = self.blank(origin?);
        if let Some(t) = get("type") {
            decl.ty = match t.as_str() {
                Some("string") => SecretType::String,
                Some("int") => SecretType::Int,
                Some("float") => SecretType::Float,
                Some("bool") => SecretType::Bool,
                Some("json") => SecretType::Json,
                _ => {
                    self.err(
                        &t.span,
                        format!(
                            "secret `{}`: type must be one of string, int, float, bool, json",
                            self.name
                        ),
                    );
                    ok = false;
                    SecretType::String
                }
            };
        }
        if let Some(e) = get("encoding") {
            match e.as_str() {
                Some("base64") => decl.base64 = true,
                _ => {
                    self.err(
                        &e.span,
                        format!("secret `{}`: the only encoding is `base64`", self.name),
                    );
                    ok = false;
                }
            }
        }
        if let Some(t) = get("totp") {
            decl.totp = self.totp(t);
            ok &= decl.totp.is_some();
        }
        if let Some(s) = get("scope") {
            decl.scope = self.scope(s);
            ok &= decl.scope.is_some();
        }
        if let Some(d) = get("description") {
            decl.description = self.field_str("description", d).map(str::to_owned);
        }
        ok.then_some(decl)
    }

    /// A provider's locator from its field: a locator text, or (for providers
    /// with long-form fields) a mapping of them.
    fn provider(&mut self, kind: ProviderKind, word: &str, node: &Node) -> Option<Locator> {
        let allowed = kind.long_fields();
        if allowed.is_empty() || (node.as_str().is_some() && !node.is_null()) {
            let text = self.field_str(word, node)?;
            let r = Locator::parse(kind, text, self.base_dir);
            return r
                .map_err(|e| {
                    let at = match (e.range_in(text), &node.kind) {
                        (Some(r), NodeKind::Scalar { value, .. }) => {
                            locate(self.src, &node.span, value, r)
                        }
                        _ => node.span.clone(),
                    };
                    self.locator_error(e, at)
                })
                .ok();
        }
        let entries = self.map_fields(node, allowed, word)?;
        let mut fields = Fields::default();
        for (name, v) in &entries {
            fields.push(name, self.field_str(name, v)?);
        }
        Locator::from_fields(kind, &fields, self.base_dir)
            .map_err(|e| {
                let at = match &e.at {
                    Some(Spot::Field(f)) => entries
                        .iter()
                        .find(|(name, _)| name == f)
                        .map(|(_, v)| v.span.clone()),
                    _ => None,
                };
                self.locator_error(e, at.unwrap_or_else(|| node.span.clone()))
            })
            .ok()
    }

    fn locator_error(&mut self, e: LocatorError, at: Range<usize>) {
        let mut d = Diagnostic::invalid(format!("secret `{}`: {}", self.name, e.message))
            .at(self.source, at);
        if let Some(h) = e.hint {
            d = d.note(h);
        }
        self.diags.push(d);
    }

    /// A mapping's fields, each one of `allowed` and given once.
    fn map_fields<'n>(
        &mut self,
        node: &'n Node,
        allowed: &'static [&'static str],
        what: &str,
    ) -> Option<Vec<(&'static str, &'n Node)>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.err(
                &node.span,
                format!(
                    "secret `{}`: `{what}` must be a locator text or a mapping",
                    self.name
                ),
            );
            return None;
        };
        let mut out: Vec<(&'static str, &'n Node)> = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            let known = k
                .as_str()
                .and_then(|key| allowed.iter().find(|a| **a == key));
            match known {
                Some(&key) => {
                    if out.iter().any(|(seen, _)| *seen == key) {
                        self.err(
                            &k.span,
                            format!("secret `{}`: `{key}` is given twice", self.name),
                        );
                        ok = false;
                    }
                    out.push((key, v));
                }
                None => {
                    let key = k.as_str().unwrap_or("?");
                    let mut d = Diagnostic::invalid(format!(
                        "secret `{}`: unknown `{what}` field {}",
                        self.name,
                        quoted(key)
                    ))
                    .at(self.source, k.span.clone());
                    if let Some(best) = closest(key, allowed) {
                        d = d.note(format!("did you mean `{best}`?"));
                    }
                    self.diags
                        .push(d.note(format!("fields: {}", allowed.join(", "))));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn totp(&mut self, node: &Node) -> Option<TotpParams> {
        let mut t = TotpParams::default();
        if node.is_null() {
            return Some(t);
        }
        for (k, v) in self.map_fields(node, &["digits", "period", "algorithm"], "totp")? {
            let s = self.field_str(k, v)?;
            let problem = match k {
                "digits" => TotpParams::digits(s)
                    .map(|d| t.digits = d)
                    .ok_or("totp digits must be 6, 7 or 8"),
                "period" => TotpParams::period(s)
                    .map(|p| t.period = p)
                    .ok_or("totp period must be 1 to 86400 seconds"),
                _ => HashAlgorithm::parse(s)
                    .map(|a| t.algorithm = a)
                    .ok_or("totp algorithm must be SHA1, SHA256 or SHA512"),
            };
            if let Err(what) = problem {
                self.err(&v.span, format!("secret `{}`: {what}", self.name));
                return None;
            }
        }
        Some(t)
    }

    fn scope(&mut self, node: &Node) -> Option<Vec<Vec<String>>> {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            NodeKind::Scalar { .. } => vec![node],
            _ => {
                self.err(
                    &node.span,
                    format!("secret `{}`: `scope` must be a list of paths", self.name),
                );
                return None;
            }
        };
        let mut out = Vec::new();
        for item in items {
            let s = self.field_str("scope", item)?;
            let segs: Vec<String> = s.split('.').map(str::to_owned).collect();
            if segs.iter().any(String::is_empty) {
                self.err(
                    &item.span,
                    format!(
                        "secret `{}`: scope path {} has an empty segment",
                        self.name,
                        quoted(s)
                    ),
                );
                return None;
            }
            out.push(segs);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_keys_follow_the_provider_table() {
        let keys = long_keys();
        let words: Vec<&str> = ProviderKind::words().collect();
        assert_eq!(keys[..words.len()], words[..]);
        assert_eq!(
            keys[words.len()..].join(", "),
            "value, default, type, totp, encoding, scope, description"
        );
        assert_eq!(closest("defualt", &long_keys()), Some("default"));
        assert_eq!(closest("xyz", &long_keys()), None);
    }

    #[test]
    fn only_addresses_and_options_are_public() {
        assert!(is_public_key("aws") && is_public_key("op") && is_public_key("type"));
        assert!(!is_public_key("value") && !is_public_key("default"));
        assert!(!is_public_key("passwrod"));
    }
}
