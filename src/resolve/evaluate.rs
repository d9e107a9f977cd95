//! Computing values and emitting sites for one unit: each name's value once
//! (fetch → JSON key → base64 → TOTP → type check), compositions and JSON paths,
//! the size bound of composed values, `--redact`, then each site's new text with
//! the digest of what it must parse to.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::rc::Rc;

use base64::Engine as _;
use serde_json::Value;

use super::{Accesses, Fetched};
use crate::audit::Record;
use crate::error::{Diagnostic, Diagnostics, Exit, SourceId};
use crate::json_path::{json_key_in, walk, Missing};
use crate::plan::{Bindings, DirectId, Unit};
use crate::provider::{FetchClass, FetchError, Locator};
use crate::reference::{DirectRef, Part, SecretRef, Subject, Template};
use crate::secret::SecretText;
use crate::secret::MASK;
use crate::secrets::{Declaration, Origin, SecretType};
use crate::source::Source;
use crate::yaml::digest::DigestKey;
use crate::yaml::emit::{self};
use crate::yaml::node::{locate, Site};
use crate::yaml::site::{emit_site, Emitted, Rendered, MAX_JSON_DEPTH};

/// What became of one declared secret or one direct reference, recorded as it
/// was computed; `check --resolve` prints its [`word`](Outcome::word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Fetched, and usable as declared.
    Found,
    /// Not found; the declared default stood in.
    Default,
    /// The fetch failed.
    Fetch(FetchClass),
    /// The fetched document has no such JSON key.
    MissingKey,
    /// Fetched, but not usable as declared: binary, not JSON, not base64, not
    /// of its type, not a TOTP secret, or composed past the size bound.
    Invalid,
    /// Composed of other secrets (or inline), and computed.
    Composed,
    /// Composed, and a part failed (whose own line says how).
    Failed,
    /// Never fetched.
    NotFetched,
}

impl Outcome {
    /// The word `check --resolve` prints.
    pub(crate) fn word(self) -> &'static str {
        match self {
            Outcome::Found => "found",
            Outcome::Default => "default",
            Outcome::Fetch(class) => class.word(),
            Outcome::MissingKey => "not found",
            Outcome::Invalid => "invalid",
            Outcome::Composed => "ok",
            Outcome::Failed => "failed",
            Outcome::NotFetched => "not fetched",
        }
    }
}

/// Why a fetched value cannot be used (names and keys only, never values).
enum Problem<'f> {
    Fetch(&'f FetchError),
    NotFetched,
    Key(Missing),
    /// Binary (as `what` says), so it has no JSON key `key`.
    BinaryKey {
        what: &'static str,
        key: String,
    },
    /// Binary (as it says), and YAML text cannot carry it.
    Binary(&'static str),
}

impl Problem<'_> {
    fn outcome(&self) -> Outcome {
        match self {
            Problem::Fetch(e) => Outcome::Fetch(e.class),
            Problem::NotFetched => Outcome::NotFetched,
            Problem::Key(m) if m.not_json => Outcome::Invalid,
            Problem::Key(_) => Outcome::MissingKey,
            Problem::BinaryKey { .. } | Problem::Binary(_) => Outcome::Invalid,
        }
    }

    fn diagnostic(&self, who: Subject<'_>, loc: &Locator) -> Diagnostic {
        match self {
            Problem::Fetch(e) => Diagnostic::error(e.class.exit(), format!("{who}: {}", e.message))
                .note(format!("locator: {loc}")),
            Problem::NotFetched => {
                Diagnostic::error(Exit::Provider, format!("{who}: {loc} was not fetched"))
            }
            Problem::Key(m) => m.diagnostic(who, &loc.to_string()),
            Problem::BinaryKey { what, key } => Diagnostic::invalid(format!(
                "{who}: {loc} {what}, so it has no JSON key `{key}`"
            )),
            Problem::Binary(what) => Diagnostic::invalid(format!("{who}: {loc} {what}")).note(
                "declare it in long form with `encoding: base64` to render it as base64 text",
            ),
        }
    }
}

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
    /// Its text as JSON (`None`: not JSON), parsed at its first field read.
    json: OnceCell<Option<Value>>,
}

impl Computed {
    fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| serde_json::from_str(self.text.expose()).ok())
            .as_ref()
    }
}

impl std::fmt::Debug for Computed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Computed([REDACTED])")
    }
}

/// Fetched documents parsed as JSON (`None`: not JSON), by fetch key: each
/// parsed once however many JSON keys read it.
#[derive(Default)]
struct Documents(HashMap<Locator, Option<Value>>);

impl std::fmt::Debug for Documents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Documents({} [REDACTED])", self.0.len())
    }
}

/// Computes values and emits sites for one unit, recording each declared
/// secret's and each direct reference's [`Outcome`] as it goes.
pub(crate) struct Evaluator<'a, 'd, 's> {
    unit: &'a Unit<'d>,
    bindings: &'a Bindings,
    sources: &'a [Source],
    fetched: &'a Fetched,
    redact: bool,
    max_secret: usize,
    memo: HashMap<String, Option<Rc<Computed>>>,
    documents: Documents,
    outcomes: HashMap<String, Outcome>,
    directs: HashMap<DirectId, Outcome>,
    /// Where problems found while computing go: the run's sink.
    diags: &'s mut Diagnostics,
}

impl<'a, 'd, 's> Evaluator<'a, 'd, 's> {
    /// Prepares an evaluator; `bindings` holds the locators planning bound, and
    /// problems go to `diags`.
    pub(crate) fn new(
        unit: &'a Unit<'d>,
        bindings: &'a Bindings,
        sources: &'a [Source],
        fetched: &'a Fetched,
        redact: bool,
        diags: &'s mut Diagnostics,
    ) -> Self {
        Evaluator {
            unit,
            bindings,
            sources,
            fetched,
            redact,
            max_secret: usize::MAX,
            memo: HashMap::new(),
            documents: Documents::default(),
            outcomes: HashMap::new(),
            directs: HashMap::new(),
            diags,
        }
    }

    /// Reports a problem the caller found while using this evaluator.
    pub(crate) fn report(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// Bounds every composed value (a template's result) to `bytes`.
    pub(crate) fn max_secret(mut self, bytes: usize) -> Self {
        self.max_secret = bytes;
        self
    }

    /// The value of a fetch with its JSON key applied. Binary values (not
    /// UTF-8, or marked binary by the provider) come back as base64 text when
    /// `binary_as_base64`, and are a problem otherwise: YAML text cannot carry them.
    fn read(&mut self, loc: &Locator, binary_as_base64: bool) -> Result<Raw, Problem<'a>> {
        let fetched: &'a Fetched = self.fetched;
        let fetch_key = loc.fetch_key();
        let bytes = match fetched.get(&fetch_key) {
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(Problem::Fetch(e)),
            None => return Err(Problem::NotFetched),
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
            (Some(key), Some(text)) => {
                let doc = self
                    .documents
                    .0
                    .entry(fetch_key)
                    .or_insert_with(|| serde_json::from_str(text).ok());
                json_key_in(doc.as_ref(), key)
                    .map(Raw::Text)
                    .map_err(Problem::Key)
            }
            (Some(key), None) => Err(Problem::BinaryKey {
                what,
                key: key.to_owned(),
            }),
            (None, Some(text)) => Ok(Raw::Text(text.to_owned())),
            (None, None) if binary_as_base64 => Ok(Raw::Base64(
                base64::engine::general_purpose::STANDARD.encode(bytes.expose()),
            )),
            (None, None) => Err(Problem::Binary(what)),
        }
    }

    /// [`read`](Self::read), reporting a problem as `who`'s at `at`.
    fn fetch_value(
        &mut self,
        loc: &Locator,
        who: Subject<'_>,
        at: Option<(SourceId, Range<usize>)>,
        binary_as_base64: bool,
    ) -> Result<Raw, Outcome> {
        self.read(loc, binary_as_base64).map_err(|p| {
            self.diags.push(attach(p.diagnostic(who, loc), at));
            p.outcome()
        })
    }

    /// A direct reference written in `source`, its outcome recorded; `None`
    /// after reporting why not.
    fn direct(
        &mut self,
        source: SourceId,
        r: &DirectRef,
        who: Subject<'_>,
        at: Option<(SourceId, Range<usize>)>,
    ) -> Option<Raw> {
        let bindings: &'a Bindings = self.bindings;
        // Unbound: planning reported its invalid locator, and the run stopped there.
        let id = bindings.id(source, r)?;
        let res = self.fetch_value(bindings.locator(id), who, at, false);
        self.directs
            .insert(id, res.as_ref().err().copied().unwrap_or(Outcome::Found));
        res.ok()
    }

    fn compute(&mut self, name: &str) -> Option<Rc<Computed>> {
        if let Some(m) = self.memo.get(name) {
            return m.clone();
        }
        // Marks the name while computing; cycles were reported during planning.
        self.memo.insert(name.to_owned(), None);
        let (result, outcome) = match self.compute_uncached(name) {
            Ok((c, outcome)) => (Some(c), outcome),
            Err(outcome) => (None, outcome),
        };
        self.outcomes.insert(name.to_owned(), outcome);
        self.memo.insert(name.to_owned(), result.clone());
        result
    }

    /// A declared secret's value and outcome, or its outcome after reporting why not.
    fn compute_uncached(&mut self, name: &str) -> Result<(Rc<Computed>, Outcome), Outcome> {
        let Some(d) = self.unit.ns.get(name) else {
            return Err(Outcome::Failed);
        };
        let who = Subject::Secret(name);
        let at = Some((d.source, d.name_span.clone()));
        // A whole `<<provider|…>>` is a fetched document, as in the long form.
        let whole_direct = match &d.origin {
            Origin::Template { template, .. } => match template.whole() {
                Some(Part::Direct(r)) => Some(r),
                _ => None,
            },
            Origin::Provider { .. } => None,
        };
        // `done` on success; `invalid` when a later step (base64, TOTP, type)
        // refuses the value.
        let (raw, done, invalid) = match &d.origin {
            Origin::Provider { locator, default } => {
                let missing = matches!(self.fetched.get(&locator.fetch_key()), Some(Err(e)) if e.class == FetchClass::NotFound);
                match default {
                    // When the default fails too, the line still says the value was missing.
                    Some((text, _)) if missing => (
                        Raw::Text(text.clone()),
                        Outcome::Default,
                        Outcome::Fetch(FetchClass::NotFound),
                    ),
                    _ => {
                        let raw = self
                            .fetch_value(locator, who, at.clone(), d.base64)
                            .map_err(named)?;
                        (raw, Outcome::Found, Outcome::Invalid)
                    }
                }
            }
            Origin::Template { template, .. } => {
                let at = at.clone();
                let name_at = at.clone();
                let text = self.interpolate(template, d.source, who, at.clone(), at, &|_| {
                    name_at.clone()
                });
                match (text, whole_direct) {
                    (Some(text), Some(_)) => (Raw::Text(text), Outcome::Found, Outcome::Invalid),
                    (Some(text), None) => (Raw::Text(text), Outcome::Composed, Outcome::Failed),
                    (None, Some(r)) => {
                        let fetched = self
                            .bindings
                            .id(d.source, r)
                            .and_then(|id| self.directs.get(&id));
                        return Err(match fetched {
                            // Fetched, and then past the size bound.
                            Some(Outcome::Found) => Outcome::Invalid,
                            Some(o) => named(*o),
                            None => Outcome::Failed,
                        });
                    }
                    (None, None) => return Err(Outcome::Failed),
                }
            }
        };
        let composed = whole_direct.is_none()
            && matches!(&d.origin, Origin::Template { template, .. } if template.has_refs());
        let raw = match raw {
            // A binary value shown as base64 is already what `encoding: base64` asks.
            Raw::Base64(text) => text,
            Raw::Text(text) if d.base64 => {
                let cleaned: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(cleaned)
                    .map_err(|_| "the value is not valid base64")
                    .and_then(|bytes| {
                        String::from_utf8(bytes)
                            .map_err(|_| "the base64-decoded value is not UTF-8 text")
                    });
                match decoded {
                    Ok(s) => s,
                    Err(what) => {
                        let d = Diagnostic::invalid(format!("{who}: {what}"));
                        return Err(self.fail(attach(d, at), invalid));
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
                    return Err(self.fail(
                        attach(Diagnostic::invalid(format!("{who}: {}", e.describe())), at),
                        invalid,
                    ))
                }
            },
        };
        let text = match canonical(d.ty, &raw) {
            Ok(t) => t,
            Err(what) => {
                return Err(self.fail(
                    attach(
                        Diagnostic::invalid(format!("{who}: the value is not {what}")),
                        at,
                    ),
                    invalid,
                ))
            }
        };
        let computed = Computed {
            text: SecretText::new(text),
            ty: d.ty,
            composed,
            json: OnceCell::new(),
        };
        Ok((Rc::new(computed), done))
    }

    fn fail(&mut self, d: Diagnostic, outcome: Outcome) -> Outcome {
        self.diags.push(d);
        outcome
    }

    /// A template's text. `at` locates a fetch's failure, `size_at` the
    /// composed value growing past `--max-secret-size`: checked before each
    /// part is appended, so that doubling compositions stop at the bound
    /// instead of exhausting memory.
    /// `ref_at` locates a reference by its range in the value, for the
    /// problems of a field or an encoder, which know no place of their own.
    fn interpolate(
        &mut self,
        t: &Template,
        source: SourceId,
        who: Subject<'_>,
        at: Option<(SourceId, Range<usize>)>,
        size_at: Option<(SourceId, Range<usize>)>,
        ref_at: &dyn Fn(Range<usize>) -> Option<(SourceId, Range<usize>)>,
    ) -> Option<String> {
        let mut out = String::new();
        let mut ok = true;
        for p in &t.parts {
            let part = match p {
                Part::Literal(l) => Some(l.clone()),
                Part::Secret(r) => {
                    let mark = self.diags.mark();
                    let part = match self.compute(&r.name) {
                        Some(c) => match self.field(&c, r, who) {
                            Some(Rendered::Str(s) | Rendered::Typed(s)) => Some(s),
                            Some(Rendered::Json(v)) => Some(v.to_string()),
                            None => None,
                        },
                        None => None,
                    };
                    if let (None, Some((s, span))) = (&part, ref_at(r.range.clone())) {
                        for d in self.diags.since_mut(mark) {
                            if d.location.is_none() {
                                d.location = Some(crate::error::Location {
                                    source: s,
                                    span: span.clone(),
                                });
                            }
                        }
                    }
                    part
                }
                Part::Direct(r) => match self.direct(source, r, who, at.clone()) {
                    Some(Raw::Text(v) | Raw::Base64(v)) => Some(v),
                    None => None,
                },
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

    /// A secret (or a field of it) as a renderable value, through the
    /// reference's encoders: an encoded value is text, whatever the secret's type.
    fn field(&mut self, c: &Computed, r: &SecretRef, who: Subject<'_>) -> Option<Rendered> {
        let value = self.unencoded(c, r, who)?;
        if r.encoders.is_empty() {
            return Some(value);
        }
        let text = match value {
            Rendered::Str(s) | Rendered::Typed(s) => s,
            Rendered::Json(v) => v.to_string(),
        };
        match crate::encode::chain(&r.encoders, text) {
            Ok(encoded) => Some(Rendered::Str(encoded)),
            Err((encoder, why)) => {
                let secret = Subject::Secret(&r.name);
                self.diags.push(Diagnostic::invalid(format!(
                    "{secret}: the `{encoder}` encoder cannot write its value: {why}"
                )));
                None
            }
        }
    }

    /// A secret (or a field of it) as a renderable value.
    fn unencoded(&mut self, c: &Computed, r: &SecretRef, who: Subject<'_>) -> Option<Rendered> {
        if r.path.is_empty() {
            return Some(match c.ty {
                SecretType::String => Rendered::Str(c.text.expose().to_owned()),
                SecretType::Json => match c.json() {
                    Some(v) => Rendered::Json(v.clone()),
                    None => Rendered::Str(c.text.expose().to_owned()),
                },
                _ => Rendered::Typed(c.text.expose().to_owned()),
            });
        }
        let Some(json) = c.json() else {
            self.diags.push(Diagnostic::invalid(format!(
                "{who}: `$<{}.{}>` needs secret `{}` to hold a JSON object",
                r.name,
                r.path.join("."),
                r.name
            )));
            return None;
        };
        match walk(json, &r.path) {
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
                    .push(e.diagnostic(who, &Subject::Secret(&r.name).to_string()));
                None
            }
        }
    }

    /// A declared secret's outcome (for `check --resolve`), computing it
    /// first (and reporting why it fails) when nothing needed it yet.
    pub(crate) fn outcome(&mut self, name: &str) -> Outcome {
        if !self.outcomes.contains_key(name) {
            self.compute(name);
        }
        self.outcomes.get(name).copied().unwrap_or(Outcome::Failed)
    }

    /// A direct reference's outcome (for `check --resolve`). One the render
    /// did not reach (a site stopped before it) is read now, quietly: its
    /// site's diagnostics already say why the render failed.
    pub(crate) fn direct_outcome(&mut self, id: DirectId) -> Outcome {
        if let Some(o) = self.directs.get(&id) {
            return *o;
        }
        let bindings: &'a Bindings = self.bindings;
        let outcome = match self.read(bindings.locator(id), false) {
            Ok(_) => Outcome::Found,
            Err(p) => p.outcome(),
        };
        self.directs.insert(id, outcome);
        outcome
    }

    /// What the audit log records of this unit's accesses: one record per
    /// declaration in `decls` that names a provider, one per direct reference
    /// in those declarations (named by them) and in the config's sites (named
    /// by none), each distinct one once, with its outcome and how its value
    /// was obtained. Only what was fetched or served from the cache is recorded.
    pub(crate) fn accessed<'x>(
        &mut self,
        decls: impl IntoIterator<Item = &'x Declaration>,
        accesses: &Accesses,
        config: &str,
    ) -> Vec<Record> {
        let mut records = Vec::new();
        let mut seen: HashSet<(Option<String>, Locator)> = HashSet::new();
        let mut push =
            |records: &mut Vec<Record>, secret: Option<&str>, loc: &Locator, outcome: Outcome| {
                let Some(access) = accesses.get(&loc.fetch_key()) else {
                    return;
                };
                if !seen.insert((secret.map(str::to_owned), loc.clone())) {
                    return;
                }
                records.push(Record {
                    config: config.to_owned(),
                    secret: secret.map(str::to_owned),
                    provider: loc.kind().name(),
                    locator: loc.text(),
                    outcome: outcome.word(),
                    cache_hit: access.cache_hit,
                    duration: access.duration,
                });
            };
        let bindings: &'a Bindings = self.bindings;
        for d in decls {
            match &d.origin {
                Origin::Provider { locator, .. } => {
                    let outcome = self.outcome(&d.name);
                    push(&mut records, Some(&d.name), locator, outcome);
                }
                Origin::Template { template, .. } => {
                    let whole = template.whole().is_some();
                    for p in &template.parts {
                        let Part::Direct(r) = p else { continue };
                        let Some(id) = bindings.id(d.source, r) else {
                            continue;
                        };
                        // A whole reference is the secret: its outcome says
                        // what became of the value (a type refused, say).
                        let outcome = if whole {
                            self.outcome(&d.name)
                        } else {
                            self.direct_outcome(id)
                        };
                        push(&mut records, Some(&d.name), bindings.locator(id), outcome);
                    }
                }
            }
        }
        let unit: &'a Unit<'d> = self.unit;
        let directs = unit.sites.iter().flat_map(|s| s.template.parts.iter());
        for p in directs {
            let Part::Direct(r) = p else { continue };
            let Some(id) = bindings.id(unit.source, r) else {
                continue;
            };
            let outcome = self.direct_outcome(id);
            push(&mut records, None, bindings.locator(id), outcome);
        }
        records
    }

    /// A declared secret's final text (for `exec --env`), or `None` after
    /// reporting why not.
    pub(crate) fn value(&mut self, name: &str) -> Option<SecretText> {
        self.compute(name).map(|c| c.text.clone())
    }

    /// New text for one site, or `None` after reporting why not.
    pub(crate) fn emit(&mut self, site: &Site, key: &DigestKey) -> Option<Emitted> {
        let src = &self.sources[self.unit.source];
        let at = |r: Range<usize>| {
            (
                self.unit.source,
                locate(&src.text, &site.span, &site.value, r),
            )
        };
        let value = match site.template.whole() {
            Some(Part::Secret(r)) => {
                let who = Subject::Secret(&r.name);
                let c = self.compute(&r.name)?;
                let mark = self.diags.mark();
                let v = self.field(&c, r, who);
                if v.is_none() {
                    if let Some(d) = self.diags.last_since(mark) {
                        if d.location.is_none() {
                            let (s, span) = at(r.range.clone());
                            d.location = Some(crate::error::Location { source: s, span });
                        }
                    }
                }
                v?
            }
            Some(Part::Direct(r)) => {
                let who = Subject::Reference(r);
                match self.direct(self.unit.source, r, who, Some(at(r.range.clone())))? {
                    Raw::Text(t) | Raw::Base64(t) => Rendered::Str(t),
                }
            }
            // Computed even when redacting: a missing secret must fail the render.
            _ => {
                let (unit, text) = (self.unit.source, &self.sources[self.unit.source].text);
                let ref_at =
                    |r: Range<usize>| Some((unit, locate(text, &site.span, &site.value, r)));
                Rendered::Str(self.interpolate(
                    &site.template,
                    unit,
                    Subject::Value,
                    None,
                    Some((unit, site.span.clone())),
                    &ref_at,
                )?)
            }
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

/// A fetch's outcome as a declared secret's: one its run never fetched failed.
fn named(fetch: Outcome) -> Outcome {
    match fetch {
        Outcome::NotFetched => Outcome::Failed,
        o => o,
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
    use crate::plan::fixture::Inputs;
    use crate::provider::FetchClass;
    use crate::secret::SecretBytes;

    /// One config declaring a secret per outcome, and one site per direct reference.
    const CONFIG: &str = "secrets:
  FOUND: <<env|KF_FOUND>>
  DEFAULTED: { env: KF_GONE, default: d }
  DEFAULT_NOT_INT: { env: KF_GONE, default: d, type: int }
  GONE: { env: KF_GONE }
  DENIED: <<env|KF_DENIED>>
  KEY: <<aws|doc:user>>
  NO_KEY: <<aws|doc:nope>>
  NOT_JSON: <<aws|plain:user>>
  BINARY: <<env|KF_BINARY>>
  AS_BASE64: { env: KF_BINARY, encoding: base64 }
  NOT_BASE64: { env: KF_FOUND, encoding: base64 }
  NOT_INT: { env: KF_FOUND, type: int }
  NOT_TOTP: { env: KF_NOT_SEED, totp: { digits: 6 } }
  COMPOSED: \"$<FOUND>-$<KEY>\"
  INLINE: \"text\"
  FAILS: \"$<FOUND>-$<GONE>\"
a: <<aws|doc:pass>>
b: <<aws|doc:gone>>
c: <<env|KF_THROTTLED>>
d: <<env|KF_BINARY>>
e: \"$<FOUND>\"
";

    /// What each fetch key gives, by its locator as shown.
    fn answer(shown: &str) -> Result<SecretBytes, FetchError> {
        let text = |t: &str| Ok(SecretBytes::new(t.as_bytes().to_vec()));
        let class = |c| Err(FetchError::new(c, "no"));
        match shown {
            "env|KF_FOUND" => text("found-value"),
            "env|KF_NOT_SEED" => text("not a seed: 1, 8, 9"),
            "env|KF_GONE" => class(FetchClass::NotFound),
            "env|KF_DENIED" => class(FetchClass::Denied),
            "env|KF_THROTTLED" => class(FetchClass::Throttled),
            "env|KF_BINARY" => Ok(SecretBytes::new(vec![0xff, 0xfe])),
            "aws|doc" => text(r#"{"user":"u","pass":"p"}"#),
            "aws|plain" => text("plain"),
            other => panic!("unexpected fetch {other}"),
        }
    }

    #[test]
    fn each_outcome_is_recorded_as_computed() {
        let inputs = Inputs::new(&[], &[("/w/c.yaml", CONFIG)]);
        let (mut planned, diags) = inputs.plan();
        assert!(!diags.iter().any(Diagnostic::is_error), "{diags:?}");
        planned.fetch_every_declaration();
        let fetched: Fetched = (planned.fetches.iter().cloned())
            .map(|l| {
                let a = answer(&l.to_string());
                (l, a)
            })
            .collect();
        let unit = &planned.units[0];
        let mut sink = Diagnostics::default();
        let mut ev = Evaluator::new(
            unit,
            &planned.bindings,
            &inputs.sources,
            &fetched,
            true,
            &mut sink,
        );
        let words: Vec<(String, &str)> = unit
            .ns
            .all()
            .iter()
            .map(|d| (d.name.clone(), ev.outcome(&d.name).word()))
            .collect();
        let expected = [
            ("AS_BASE64", "found"),
            ("BINARY", "invalid"),
            ("COMPOSED", "ok"),
            // A default that is refused too leaves the value missing.
            ("DEFAULTED", "default"),
            ("DEFAULT_NOT_INT", "not found"),
            ("DENIED", "access denied"),
            ("FAILS", "failed"),
            ("FOUND", "found"),
            ("GONE", "not found"),
            ("INLINE", "ok"),
            ("KEY", "found"),
            ("NOT_BASE64", "invalid"),
            ("NOT_INT", "invalid"),
            ("NOT_JSON", "invalid"),
            ("NOT_TOTP", "invalid"),
            ("NO_KEY", "not found"),
        ];
        let expected: Vec<(String, &str)> = expected
            .iter()
            .map(|(n, w)| ((*n).to_owned(), *w))
            .collect();
        assert_eq!(words, expected);
        let key = DigestKey::default();
        for site in unit.sites {
            let _ = ev.emit(site, &key);
        }
        let direct: Vec<&str> = unit
            .sites
            .iter()
            .filter_map(|s| match s.template.whole() {
                Some(Part::Direct(r)) => planned.bindings.id(unit.source, r),
                _ => None,
            })
            .map(|id| ev.direct_outcome(id).word())
            .collect();
        assert_eq!(direct, ["found", "not found", "throttled", "invalid"]);
        // Every JSON key of `aws|doc` read one parsed document, and none is
        // kept for text that never needed one.
        assert_eq!(ev.documents.0.len(), 2, "{:?}", ev.documents);
        assert!(!format!("{:?}", ev.documents).contains("\"u\""));
    }

    #[test]
    fn an_unbound_reference_is_not_reported_again() {
        // Planning reported the invalid locator; evaluating it says nothing more.
        let inputs = Inputs::new(
            &[],
            &[("/w/c.yaml", "a: <<aws|a:b:c>>\nb: \"x-<<aws|a:b:c>>\"\n")],
        );
        let (planned, diags) = inputs.plan();
        assert_eq!(diags.iter().filter(|d| d.is_error()).count(), 2);
        let fetched = Fetched::new();
        let unit = &planned.units[0];
        let mut sink = Diagnostics::default();
        let mut ev = Evaluator::new(
            unit,
            &planned.bindings,
            &inputs.sources,
            &fetched,
            false,
            &mut sink,
        );
        let key = DigestKey::default();
        for site in unit.sites {
            assert!(ev.emit(site, &key).is_none());
        }
        assert!(sink.items().is_empty(), "{:?}", sink);
    }

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
