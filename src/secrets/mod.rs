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

mod long_form;
mod mask;

use std::ops::Range;
use std::path::Path;

use crate::error::{quoted, Diagnostic, Diagnostics, SourceId};
use crate::provider::Locator;
use crate::reference::{self, Part, Template};
use crate::totp::TotpParams;
use crate::yaml::node::{locate, Node, NodeKind};

pub(crate) use mask::mask_all;
use mask::mask_literals;

/// What a secret's value must look like, and how a whole-value use renders it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum SecretType {
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
#[derive(Clone)]
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

impl std::fmt::Debug for Origin {
    // The scalar's text and a default are inline secrets: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Template { template, span, .. } => f
                .debug_struct("Template")
                .field("template", template)
                .field("span", span)
                .finish_non_exhaustive(),
            Origin::Provider { locator, default } => f
                .debug_struct("Provider")
                .field("locator", &locator.to_string())
                .field("default", &default.as_ref().map(|_| "[REDACTED]"))
                .finish(),
        }
    }
}

/// One declared secret.
#[derive(Clone)]
pub struct Declaration {
    /// The name.
    pub name: String,
    /// Declaring source.
    pub(crate) source: SourceId,
    /// Span of the name.
    pub(crate) name_span: Range<usize>,
    /// The value source.
    pub origin: Origin,
    /// Type.
    pub(crate) ty: SecretType,
    /// TOTP conversion.
    pub(crate) totp: Option<TotpParams>,
    /// `encoding: base64`.
    pub(crate) base64: bool,
    /// Allowed paths (each a list of segments); `None` means everywhere.
    pub(crate) scope: Option<Vec<Vec<String>>>,
    /// Free text.
    pub(crate) description: Option<String>,
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
    pub(crate) fn source_text(&self) -> String {
        match &self.origin {
            Origin::Provider { locator, default } => {
                let mut s = locator.to_string();
                if default.is_some() {
                    s.push_str(" (with default)");
                }
                s
            }
            Origin::Template { template, .. } => match template.whole() {
                Some(Part::Direct(d)) => format!("{}|{}", d.word, d.locator),
                Some(Part::Secret(s)) => format!("alias of {}", s.name),
                Some(Part::Literal(_)) => "inline".into(),
                None if template.has_refs() => {
                    let names: Vec<String> = template
                        .parts
                        .iter()
                        .filter_map(|p| match p {
                            Part::Secret(s) => Some(format!("$<{}>", s.name)),
                            Part::Direct(d) => Some(d.to_string()),
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

/// Declarations from one `secrets:` block (its problems go to the run's sink).
#[derive(Debug, Default)]
pub struct Parsed {
    /// Declarations in order.
    pub decls: Vec<Declaration>,
    /// Byte ranges of inline secret text, to be masked in diagnostics.
    pub(crate) sensitive: Vec<Range<usize>>,
    /// Names whose definition is invalid (already reported), so their uses are
    /// not reported again as undeclared.
    pub broken: Vec<String>,
}

/// Reads a captured `secrets:` value; problems go to `diags`.
pub fn parse_block(
    value: &Node,
    src: &str,
    source: SourceId,
    base_dir: &Path,
    diags: &mut Diagnostics,
) -> Parsed {
    let mut p = Parsed::default();
    let entries = match &value.kind {
        NodeKind::Map(entries) => entries.as_slice(),
        _ if value.is_null() => &[],
        _ => {
            mask_all(value, &mut p.sensitive);
            diags.push(
                Diagnostic::invalid("`secrets:` must be a mapping of NAME: definition")
                    .at(source, value.span.clone()),
            );
            return p;
        }
    };
    for (k, v) in entries {
        let Some(name) = k.as_str() else {
            mask_all(v, &mut p.sensitive);
            diags.push(
                Diagnostic::invalid("a secret name must be a plain word")
                    .at(source, k.span.clone()),
            );
            continue;
        };
        if !reference::is_valid_name(name) {
            mask_all(v, &mut p.sensitive);
            diags.push(
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
            diags: &mut *diags,
            name,
        };
        match ctx.definition(v) {
            Some(decl) => p.decls.push(Declaration {
                name: name.to_owned(),
                source,
                name_span: k.span.clone(),
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
    diags: &'a mut Diagnostics,
    name: &'a str,
}

impl Ctx<'_> {
    fn err(&mut self, span: &Range<usize>, msg: String) {
        self.diags
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
            self.diags.push(d);
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
}

/// Whether a site at `path` may use a secret scoped to `scope`.
pub(crate) fn in_scope(scope: &[Vec<String>], path: &[String]) -> bool {
    scope
        .iter()
        .any(|s| s.len() <= path.len() && s.iter().zip(path).all(|(a, b)| a == b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_paths() {
        let scope = vec![
            vec!["database".to_owned()],
            vec!["a".to_owned(), "b".to_owned()],
        ];
        assert!(in_scope(&scope, &["database".into(), "url".into()]));
        assert!(in_scope(&scope, &["a".into(), "b".into(), "0".into()]));
        assert!(!in_scope(&scope, &["a".into(), "c".into()]));
        assert!(!in_scope(&scope, &["integrations".into()]));
    }

    #[test]
    fn debug_of_an_origin_never_shows_inline_text_or_a_default() {
        let canary = "kfcanaryDebugOrigin";
        let (template, _) = reference::parse(&format!("{canary}-$<B>"));
        let t = Origin::Template {
            template,
            span: 0..1,
            text: canary.to_owned(),
        };
        let locator = Locator::parse(crate::provider::ProviderKind::Env, "HOME", Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"));
        let p = Origin::Provider {
            locator,
            default: Some((canary.to_owned(), 0..1)),
        };
        for shown in [format!("{t:?}"), format!("{p:?}"), format!("{t:#?}")] {
            assert!(!shown.contains(canary), "{shown}");
        }
        assert!(format!("{t:?}").contains("Secret"));
    }
}
