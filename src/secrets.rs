//! The `secrets:` block: names, sources, types and scopes.
//!
//! ```yaml
//! secrets:
//!   PLAIN: "literal value"                 # inline value
//!   FROM_REF: <<aws|prod/keys:api_key>>    # any direct reference
//!   COMPOSED: "$<PLAIN>-$<FROM_REF>"       # composition
//!   LONG: { env: API_KEY, default: dev, type: string, scope: [database] }
//! ```
//!
//! The short form `NAME: text` means exactly `NAME: { value: text }`: a template of
//! literal text and references. A long form has exactly one source key. Every
//! unknown field is an error with a "did you mean", because a misspelled option
//! must never be silently ignored.

use std::ops::Range;
use std::path::Path;

use granit_parser::ScalarStyle;

use crate::error::{quoted, Diagnostic, SourceId};
use crate::provider::{aws::AwsLocator, onepassword::OpLocator, vault::VaultLocator, Locator};
use crate::reference::{self, Part, Template};
use crate::suggest::closest;
use crate::totp::{HashAlgorithm, TotpParams};
use crate::yaml::node::{locate, Node, NodeKind};

/// What a secret's value must look like, and how a whole-value use renders it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecretType {
    /// A string (default).
    #[default]
    String,
    /// An integer, rendered bare.
    Int,
    /// A float, rendered bare.
    Float,
    /// A boolean, rendered bare.
    Bool,
    /// JSON, inserted as YAML structure.
    Json,
}

/// Where a declared secret's value comes from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// Literal text and references (inline values, compositions, `value:`).
    Template {
        /// The parsed template.
        template: Template,
        /// The scalar's source span.
        span: Range<usize>,
        /// The scalar's parsed text (for locating references).
        text: String,
    },
    /// A provider long form (`aws:`, `vault:`, `onepassword:`, `env:`, `file:`).
    Provider {
        /// Where.
        locator: Locator,
        /// `default:` for `env`, with its span (the text is an inline secret).
        default: Option<(String, Range<usize>)>,
    },
}

/// One declared secret.
#[derive(Clone)]
pub struct Declaration {
    /// The name.
    pub name: String,
    /// Declaring source.
    pub source: SourceId,
    /// Span of the name.
    pub name_span: Range<usize>,
    /// The value source.
    pub origin: Origin,
    /// Type.
    pub ty: SecretType,
    /// TOTP conversion.
    pub totp: Option<TotpParams>,
    /// `encoding: base64`.
    pub base64: bool,
    /// Allowed paths (each a list of segments); `None` means everywhere.
    pub scope: Option<Vec<Vec<String>>>,
    /// Free text.
    pub description: Option<String>,
    /// Whether it comes from a `--secrets` catalogue.
    pub catalogue: bool,
}

impl std::fmt::Debug for Declaration {
    // Inline values and defaults are secrets: show only the name and the source kind.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let origin = match &self.origin {
            Origin::Template { .. } => "template".to_owned(),
            Origin::Provider { locator, .. } => locator.to_string(),
        };
        f.debug_struct("Declaration")
            .field("name", &self.name)
            .field("origin", &origin)
            .field("ty", &self.ty)
            .finish_non_exhaustive()
    }
}

impl Declaration {
    /// A one-line description of the source, for `check` (never a value).
    pub fn source_text(&self) -> String {
        match &self.origin {
            Origin::Provider { locator, default } => {
                let mut s = locator.to_string();
                if default.is_some() {
                    s.push_str(" (with default)");
                }
                s
            }
            Origin::Template { template, .. } => match template.whole() {
                Some(Part::Direct(d)) => format!("{}|{}", d.provider, d.locator),
                Some(Part::Secret(s)) => format!("alias of {}", s.name),
                Some(Part::Literal(_)) => "inline".into(),
                None if template.has_refs() => {
                    let names: Vec<String> = template
                        .parts
                        .iter()
                        .filter_map(|p| match p {
                            Part::Secret(s) => Some(format!("$<{}>", s.name)),
                            Part::Direct(d) => Some(format!("<<{}|{}>>", d.provider, d.locator)),
                            Part::Literal(_) => None,
                        })
                        .collect();
                    format!("composed of {}", names.join(", "))
                }
                None => "inline".into(),
            },
        }
    }
}

const LONG_KEYS: [&str; 13] = [
    "aws",
    "vault",
    "onepassword",
    "op",
    "env",
    "file",
    "value",
    "default",
    "type",
    "totp",
    "encoding",
    "scope",
    "description",
];
/// Long-form fields that hold addresses or options, never secret text; every
/// other field's value (`value`, `default`, misspellings) is masked in diagnostics.
fn is_public_key(key: &str) -> bool {
    LONG_KEYS.contains(&key) && !matches!(key, "value" | "default")
}
const SOURCE_KEYS: [&str; 7] = ["aws", "vault", "onepassword", "op", "env", "file", "value"];

/// Declarations and problems from one `secrets:` block.
#[derive(Debug, Default)]
pub struct Parsed {
    /// Declarations in order.
    pub decls: Vec<Declaration>,
    /// Problems found.
    pub errors: Vec<Diagnostic>,
    /// Byte ranges of inline secret text, to be masked in diagnostics.
    pub sensitive: Vec<Range<usize>>,
    /// Names whose definition is invalid (already reported), so their uses are
    /// not reported again as undeclared.
    pub broken: Vec<String>,
}

/// Marks the literal text of a template scalar sensitive, leaving its references
/// visible (they are names and locators, and diagnostics point at them).
fn mask_literals(
    src: &str,
    node: &Node,
    value: &str,
    template: &Template,
    out: &mut Vec<Range<usize>>,
) {
    let quoted_style = matches!(
        &node.kind,
        NodeKind::Scalar {
            style: ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted,
            ..
        }
    );
    let inner = if quoted_style && node.span.len() >= 2 {
        node.span.start + 1..node.span.end - 1
    } else {
        node.span.clone()
    };
    // A lone reference written as is (`DB: <<aws|prod/db>>`) has no literal text.
    if template.whole().is_some() && src.get(inner.clone()) == Some(value) {
        return;
    }
    let mut cursor = inner.start;
    for part in &template.parts {
        if let Part::Secret(reference::SecretRef { range, .. })
        | Part::Direct(reference::DirectRef { range, .. }) = part
        {
            let at = locate(src, &node.span, value, range.clone());
            if at.start >= cursor && at.end <= inner.end && at != node.span {
                out.push(cursor..at.start);
                cursor = at.end;
            }
        }
    }
    out.push(cursor..inner.end);
}

/// Marks every scalar under `node` sensitive (inside the quotes).
/// Marks every scalar value under `node` sensitive.
pub(crate) fn mask_all(node: &Node, out: &mut Vec<Range<usize>>) {
    match &node.kind {
        NodeKind::Scalar { style, .. } => {
            let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
            if quoted && node.span.len() >= 2 {
                out.push(node.span.start + 1..node.span.end - 1);
            } else {
                out.push(node.span.clone());
            }
        }
        NodeKind::Map(entries) => entries.iter().for_each(|(_, v)| mask_all(v, out)),
        NodeKind::Seq(items) => items.iter().for_each(|v| mask_all(v, out)),
        NodeKind::Alias => {}
    }
}

/// Reads a captured `secrets:` value.
pub fn parse_block(
    value: &Node,
    src: &str,
    source: SourceId,
    base_dir: &Path,
    catalogue: bool,
) -> Parsed {
    let mut p = Parsed::default();
    let entries = match &value.kind {
        NodeKind::Map(entries) => entries.as_slice(),
        _ if value.is_null() => &[],
        _ => {
            mask_all(value, &mut p.sensitive);
            p.errors.push(
                Diagnostic::invalid("`secrets:` must be a mapping of NAME: definition")
                    .at(source, value.span.clone()),
            );
            return p;
        }
    };
    for (k, v) in entries {
        let Some(name) = k.as_str() else {
            mask_all(v, &mut p.sensitive);
            p.errors.push(
                Diagnostic::invalid("a secret name must be a plain word")
                    .at(source, k.span.clone()),
            );
            continue;
        };
        if !reference::is_valid_name(name) {
            mask_all(v, &mut p.sensitive);
            p.errors.push(
                Diagnostic::invalid(format!("invalid secret name {}", quoted(name)))
                    .at(source, k.span.clone())
                    .note("names match [A-Za-z_][A-Za-z0-9_]*"),
            );
            continue;
        }
        let mut ctx = Ctx {
            src,
            source,
            base_dir,
            p: &mut p,
            name,
        };
        match ctx.definition(v) {
            Some(decl) => p.decls.push(Declaration {
                name: name.to_owned(),
                source,
                name_span: k.span.clone(),
                catalogue,
                ..decl
            }),
            None => p.broken.push(name.to_owned()),
        }
    }
    p
}

struct Ctx<'a> {
    src: &'a str,
    source: SourceId,
    base_dir: &'a Path,
    p: &'a mut Parsed,
    name: &'a str,
}

impl Ctx<'_> {
    fn err(&mut self, span: &Range<usize>, msg: String) {
        self.p
            .errors
            .push(Diagnostic::invalid(msg).at(self.source, span.clone()));
    }

    fn blank(&self, origin: Origin) -> Declaration {
        Declaration {
            name: String::new(),
            source: self.source,
            name_span: 0..0,
            origin,
            ty: SecretType::String,
            totp: None,
            base64: false,
            scope: None,
            description: None,
            catalogue: false,
        }
    }

    /// A template from a scalar; marks its literal text sensitive.
    fn template(&mut self, node: &Node) -> Option<Origin> {
        let NodeKind::Scalar { value, .. } = &node.kind else {
            self.err(
                &node.span,
                format!("secret `{}`: expected a text value", self.name),
            );
            return None;
        };
        let (template, errors) = reference::parse(value);
        let mut ok = true;
        for e in errors {
            ok = false;
            let at = locate(self.src, &node.span, value, e.range.clone());
            let mut d = Diagnostic::invalid(e.message).at(self.source, at);
            if let Some(n) = e.note {
                d = d.note(n);
            }
            self.p.errors.push(d);
        }
        mask_literals(self.src, node, value, &template, &mut self.p.sensitive);
        ok.then(|| Origin::Template {
            template,
            span: node.span.clone(),
            text: value.clone(),
        })
    }

    fn definition(&mut self, v: &Node) -> Option<Declaration> {
        match &v.kind {
            NodeKind::Scalar { .. } if v.is_null() => {
                self.err(&v.span, format!("secret `{}` has no value", self.name));
                None
            }
            NodeKind::Scalar { .. } => self.template(v).map(|o| self.blank(o)),
            NodeKind::Map(fields) => self.long_form(v, fields),
            NodeKind::Seq(_) | NodeKind::Alias => {
                mask_all(v, &mut self.p.sensitive);
                self.err(
                    &v.span,
                    format!(
                        "secret `{}`: expected a value or a mapping of options",
                        self.name
                    ),
                );
                None
            }
        }
    }

    fn field_str<'n>(&mut self, key: &str, v: &'n Node) -> Option<&'n str> {
        match v.as_str() {
            Some(s) if !v.is_null() => Some(s),
            _ => {
                self.err(
                    &v.span,
                    format!("secret `{}`: `{key}` must be a text value", self.name),
                );
                None
            }
        }
    }

    fn long_form(&mut self, whole: &Node, fields: &[(Node, Node)]) -> Option<Declaration> {
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
        let mut ok = true;
        let mut sources: Vec<(&str, &Node, &Node)> = Vec::new();
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
            if !LONG_KEYS.contains(&key) {
                let mut d = Diagnostic::invalid(format!(
                    "secret `{}`: unknown option {}",
                    self.name,
                    quoted(key)
                ))
                .at(self.source, k.span.clone());
                if let Some(best) = closest(key, &LONG_KEYS) {
                    d = d.note(format!("did you mean `{best}`?"));
                }
                self.p
                    .errors
                    .push(d.note(format!("options: {}", LONG_KEYS.join(", "))));
                ok = false;
                continue;
            }
            if SOURCE_KEYS.contains(&key) {
                sources.push((key, k, v));
            }
        }
        let (skey, _, snode) = match sources.as_slice() {
            [one] => *one,
            [] => {
                self.err(&whole.span, format!(
                    "secret `{}` has no source: give exactly one of aws, vault, onepassword, env, file, value",
                    self.name
                ));
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
        if default.is_some() && skey != "env" {
            if let Some(d) = default {
                self.err(
                    &d.span,
                    format!("secret `{}`: `default` goes with `env` only", self.name),
                );
            }
            ok = false;
        }
        let origin = match skey {
            "value" => self.template(snode),
            "env" => {
                let var = self.field_str("env", snode);
                let loc = var.and_then(|t| {
                    self.locator(
                        snode,
                        Locator::parse(crate::provider::ProviderKind::Env, t, self.base_dir),
                    )
                });
                let default = match default {
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
                loc.map(|locator| Origin::Provider { locator, default })
            }
            "file" => {
                let t = self.field_str("file", snode);
                t.and_then(|t| {
                    self.locator(
                        snode,
                        Locator::parse(crate::provider::ProviderKind::File, t, self.base_dir),
                    )
                })
                .map(|locator| Origin::Provider {
                    locator,
                    default: None,
                })
            }
            "onepassword" | "op" => {
                let t = self.field_str(skey, snode);
                t.and_then(|t| self.locator(snode, OpLocator::parse(t).map(Locator::OnePassword)))
                    .map(|locator| Origin::Provider {
                        locator,
                        default: None,
                    })
            }
            "aws" => self.aws(snode).map(|locator| Origin::Provider {
                locator,
                default: None,
            }),
            _ => self.vault(snode).map(|locator| Origin::Provider {
                locator,
                default: None,
            }),
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

    fn locator(&mut self, node: &Node, r: Result<Locator, String>) -> Option<Locator> {
        r.map_err(|e| self.err(&node.span, format!("secret `{}`: {e}", self.name)))
            .ok()
    }

    fn map_fields<'n>(
        &mut self,
        node: &'n Node,
        allowed: &[&str],
        what: &str,
    ) -> Option<Vec<(&'n str, &'n Node)>> {
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
        let mut out = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            match k.as_str() {
                Some(key) if allowed.contains(&key) => {
                    if out.iter().any(|(seen, _)| *seen == key) {
                        self.err(
                            &k.span,
                            format!("secret `{}`: `{key}` is given twice", self.name),
                        );
                        ok = false;
                    }
                    out.push((key, v));
                }
                other => {
                    let key = other.unwrap_or("?");
                    let mut d = Diagnostic::invalid(format!(
                        "secret `{}`: unknown `{what}` field {}",
                        self.name,
                        quoted(key)
                    ))
                    .at(self.source, k.span.clone());
                    if let Some(best) = closest(key, allowed) {
                        d = d.note(format!("did you mean `{best}`?"));
                    }
                    self.p
                        .errors
                        .push(d.note(format!("fields: {}", allowed.join(", "))));
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn aws(&mut self, node: &Node) -> Option<Locator> {
        if let Some(t) = node.as_str() {
            return self.locator(node, AwsLocator::parse(t).map(Locator::Aws));
        }
        let fields = self.map_fields(
            node,
            &[
                "secret_id",
                "key",
                "region",
                "version_stage",
                "version_id",
                "profile",
            ],
            "aws",
        )?;
        let mut loc = AwsLocator::default();
        for (k, v) in fields {
            let t = self.field_str(k, v)?.to_owned();
            match k {
                "secret_id" => loc.secret_id = t,
                "key" => loc.key = Some(t),
                "region" => loc.region = Some(t),
                "version_stage" => loc.version_stage = Some(t),
                "version_id" => loc.version_id = Some(t),
                _ => loc.profile = Some(t),
            }
        }
        if loc.secret_id.is_empty() {
            self.err(
                &node.span,
                format!("secret `{}`: `aws` needs `secret_id`", self.name),
            );
            return None;
        }
        self.locator(node, loc.validate().map(|()| Locator::Aws(loc.clone())))
    }

    fn vault(&mut self, node: &Node) -> Option<Locator> {
        if let Some(t) = node.as_str() {
            return self.locator(node, VaultLocator::parse(t).map(Locator::Vault));
        }
        let fields = self.map_fields(
            node,
            &["path", "key", "version", "namespace", "mount", "kv"],
            "vault",
        )?;
        let mut loc = VaultLocator::default();
        for (k, v) in fields {
            let t = self.field_str(k, v)?.to_owned();
            match k {
                "path" => loc.path = t.trim_matches('/').to_owned(),
                "key" => loc.key = t,
                "version" => {
                    loc.version =
                        Some(self.locator_num(v, crate::provider::vault::parse_version(&t))?)
                }
                "namespace" => loc.namespace = Some(t),
                "mount" => loc.mount = Some(t.trim_matches('/').to_owned()),
                _ => {
                    loc.kv = Some(match t.as_str() {
                        "1" => 1,
                        "2" => 2,
                        _ => {
                            self.err(
                                &v.span,
                                format!("secret `{}`: `kv` must be 1 or 2", self.name),
                            );
                            return None;
                        }
                    });
                }
            }
        }
        if loc.path.is_empty() || loc.key.is_empty() {
            self.err(
                &node.span,
                format!("secret `{}`: `vault` needs `path` and `key`", self.name),
            );
            return None;
        }
        if loc.kv.is_none() {
            let segs: Vec<&str> = loc.path.split('/').collect();
            if segs.len() >= 3 && segs[1] == "data" {
                loc.kv = Some(2);
            }
        }
        self.locator(node, loc.validate().map(|()| Locator::Vault(loc.clone())))
    }

    fn locator_num<T>(&mut self, node: &Node, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.err(&node.span, format!("secret `{}`: {e}", self.name)))
            .ok()
    }

    fn totp(&mut self, node: &Node) -> Option<TotpParams> {
        let mut t = TotpParams::default();
        if node.is_null() {
            return Some(t);
        }
        for (k, v) in self.map_fields(node, &["digits", "period", "algorithm"], "totp")? {
            let s = self.field_str(k, v)?;
            match k {
                "digits" => match TotpParams::digits(s) {
                    Some(d) => t.digits = d,
                    None => {
                        self.err(
                            &v.span,
                            format!("secret `{}`: totp digits must be 6, 7 or 8", self.name),
                        );
                        return None;
                    }
                },
                "period" => match TotpParams::period(s) {
                    Some(p) => t.period = p,
                    None => {
                        self.err(
                            &v.span,
                            format!(
                                "secret `{}`: totp period must be 1 to 86400 seconds",
                                self.name
                            ),
                        );
                        return None;
                    }
                },
                _ => match HashAlgorithm::parse(s) {
                    Some(a) => t.algorithm = a,
                    None => {
                        self.err(
                            &v.span,
                            format!(
                                "secret `{}`: totp algorithm must be SHA1, SHA256 or SHA512",
                                self.name
                            ),
                        );
                        return None;
                    }
                },
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

/// Whether a site at `path` may use a secret scoped to `scope`.
pub fn in_scope(scope: &[Vec<String>], path: &[String]) -> bool {
    scope
        .iter()
        .any(|s| s.len() <= path.len() && s.iter().zip(path).all(|(a, b)| a == b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_and_scope() {
        assert_eq!(closest("defualt", &LONG_KEYS), Some("default"));
        assert_eq!(closest("xyz", &LONG_KEYS), None);
        let scope = vec![
            vec!["database".to_owned()],
            vec!["a".to_owned(), "b".to_owned()],
        ];
        assert!(in_scope(&scope, &["database".into(), "url".into()]));
        assert!(in_scope(&scope, &["a".into(), "b".into(), "0".into()]));
        assert!(!in_scope(&scope, &["a".into(), "c".into()]));
        assert!(!in_scope(&scope, &["integrations".into()]));
    }
}
