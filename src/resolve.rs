//! From references to values: validate, plan, fetch once, compute, emit.
//!
//! Validation runs first and reports everything in one pass: undeclared names
//! (with a "did you mean"), invalid locators, composition cycles (naming the
//! cycle), scope violations and unused declarations. Then every distinct fetch is
//! collected across all inputs, each provider receives its whole batch in one
//! call, and values are computed once per name: fetch → JSON key → base64 →
//! type check. Finally each site's new text is emitted together with the digest
//! of the events it must parse to.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::rc::Rc;

use base64::Engine as _;
use serde_json::Value;

use crate::error::{quoted, Diagnostic, Exit, SourceId};
use crate::provider::{FetchError, Locator, ProviderKind, Registry, VersionCheck};
use crate::reference::{Part, SecretRef, Template};
use crate::secret::{SecretBytes, SecretText};
use crate::secrets::{closest, in_scope, Declaration, Origin, SecretType};
use crate::source::Source;
use crate::yaml::digest::{Acc, DigestKey, Ev};
use crate::yaml::emit::{self, BlockShape, Prefer};
use crate::yaml::scan::{locate, plain_kind, Site};

/// The fixed mask of `--redact`; it does not reveal a value's length.
pub const MASK: &str = "********";

/// Deepest JSON structure inserted into the output.
const MAX_JSON_DEPTH: usize = 64;

/// The declarations visible to one input: its own block plus the catalogues.
pub struct Namespace<'d> {
    by_name: HashMap<&'d str, &'d Declaration>,
    own: Vec<&'d Declaration>,
    broken: HashSet<&'d str>,
}

impl<'d> Namespace<'d> {
    /// Builds a namespace, reporting names declared twice.
    pub fn new(
        own: &'d [Declaration],
        catalogue: &'d [Declaration],
        broken: impl IntoIterator<Item = &'d str>,
        sources: &[Source],
        diags: &mut Vec<Diagnostic>,
    ) -> Self {
        let mut by_name: HashMap<&str, &Declaration> = HashMap::new();
        for d in catalogue.iter().chain(own) {
            if let Some(prev) = by_name.get(d.name.as_str()) {
                diags.push(
                    Diagnostic::invalid(format!("secret `{}` is declared twice", d.name))
                        .at(d.source, d.name_span.clone())
                        .note(format!(
                            "first declared in `{}`",
                            sources.get(prev.source).map_or("?", |s| s.name.as_str())
                        ))
                        .label("declared again here"),
                );
                diags.push(
                    Diagnostic::invalid(format!("secret `{}` is first declared here", d.name))
                        .at(prev.source, prev.name_span.clone()),
                );
                continue;
            }
            by_name.insert(&d.name, d);
        }
        Namespace {
            by_name,
            own: own.iter().collect(),
            broken: broken.into_iter().collect(),
        }
    }

    /// Looks a name up.
    pub fn get(&self, name: &str) -> Option<&'d Declaration> {
        self.by_name.get(name).copied()
    }

    /// Every visible declaration, sorted by name.
    pub fn all(&self) -> Vec<&'d Declaration> {
        let mut v: Vec<_> = self.by_name.values().copied().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn suggest(&self, name: &str) -> Option<String> {
        let names: Vec<&str> = self.by_name.keys().copied().collect();
        closest(name, &names).map(str::to_owned)
    }
}

/// One input prepared for resolution.
pub struct Unit<'d> {
    /// Source id of the input.
    pub source: SourceId,
    /// Its sites.
    pub sites: &'d [Site],
    /// Visible declarations.
    pub ns: Namespace<'d>,
}

/// What validation learned about one unit.
#[derive(Default)]
pub struct Plan {
    /// Names used (directly or through composition).
    pub used: HashSet<String>,
    /// Fetches needed.
    pub fetches: HashSet<Locator>,
}

/// Validates one unit and collects what it needs.
pub fn plan(
    unit: &Unit<'_>,
    sources: &[Source],
    strict: bool,
    diags: &mut Vec<Diagnostic>,
) -> Plan {
    let mut plan = Plan::default();
    let src = &sources[unit.source];
    // References in declarations.
    for d in unit.ns.all() {
        if let Origin::Template {
            template,
            span,
            text,
        } = &d.origin
        {
            let dsrc = &sources[d.source];
            for part in &template.parts {
                match part {
                    Part::Secret(r) if unit.ns.get(&r.name).is_none() => {
                        diags.extend(undeclared(
                            &unit.ns,
                            r,
                            d.source,
                            locate(&dsrc.text, span, text, r.range.clone()),
                        ));
                    }
                    Part::Direct(r) => {
                        if let Err(e) = Locator::parse(r.provider, &r.locator, &dsrc.base_dir) {
                            diags.push(
                                Diagnostic::invalid(format!(
                                    "invalid {} locator in secret `{}`: {e}",
                                    r.provider, d.name
                                ))
                                .at(d.source, locate(&dsrc.text, span, text, r.range.clone())),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    cycles(&unit.ns, diags);
    for site in unit.sites {
        for part in &site.template.parts {
            let at = || locate(&src.text, &site.span, &site.value, part_range(part));
            match part {
                Part::Secret(r) => match unit.ns.get(&r.name) {
                    None => diags.extend(undeclared(&unit.ns, r, unit.source, at())),
                    Some(_) => {
                        let mut seen = HashSet::new();
                        closure(&unit.ns, &r.name, &mut seen);
                        for name in &seen {
                            if let Some(d) = unit.ns.get(name) {
                                if let Some(scope) = &d.scope {
                                    if !in_scope(scope, &site.path) {
                                        let allowed: Vec<String> =
                                            scope.iter().map(|s| s.join(".")).collect();
                                        diags.push(
                                            Diagnostic::invalid(format!(
                                                "secret `{name}` is used outside its scope, at {}",
                                                quoted(&site.path.join("."))
                                            ))
                                            .at(unit.source, at())
                                            .note(format!("scope: {}", allowed.join(", "))),
                                        );
                                    }
                                }
                            }
                        }
                        plan.used.extend(seen);
                    }
                },
                Part::Direct(r) => match Locator::parse(r.provider, &r.locator, &src.base_dir) {
                    Ok(loc) => {
                        plan.fetches.insert(loc.fetch_key());
                    }
                    Err(e) => diags.push(
                        Diagnostic::invalid(format!("invalid {} locator: {e}", r.provider))
                            .at(unit.source, at()),
                    ),
                },
                Part::Literal(_) => {}
            }
        }
    }
    for name in &plan.used {
        if let Some(d) = unit.ns.get(name) {
            collect_fetches(d, &sources[d.source], &mut plan.fetches);
        }
    }
    for d in &unit.ns.own {
        if !plan.used.contains(&d.name) {
            let msg = format!("secret `{}` is declared but never used", d.name);
            let diag = if strict {
                Diagnostic::invalid(msg).note("--strict makes unused secrets an error")
            } else {
                Diagnostic::warning(msg)
            };
            diags.push(diag.at(d.source, d.name_span.clone()));
        }
    }
    plan
}

fn part_range(p: &Part) -> Range<usize> {
    match p {
        Part::Secret(r) => r.range.clone(),
        Part::Direct(r) => r.range.clone(),
        Part::Literal(_) => 0..0,
    }
}

fn undeclared(
    ns: &Namespace<'_>,
    r: &SecretRef,
    source: SourceId,
    at: Range<usize>,
) -> Option<Diagnostic> {
    // An invalid declaration was reported already; its uses are not "undeclared".
    if ns.broken.contains(r.name.as_str()) {
        return None;
    }
    let mut d = Diagnostic::invalid(format!("secret `{}` is not declared", r.name))
        .at(source, at)
        .label("not declared in `secrets:` or a --secrets file");
    if let Some(s) = ns.suggest(&r.name) {
        d = d.note(format!("did you mean `{s}`?"));
    }
    Some(d)
}

fn template_refs(d: &Declaration) -> Vec<&str> {
    match &d.origin {
        Origin::Template { template, .. } => template
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::Secret(r) => Some(r.name.as_str()),
                _ => None,
            })
            .collect(),
        Origin::Provider { .. } => Vec::new(),
    }
}

/// Every name `name` depends on, itself included.
fn closure(ns: &Namespace<'_>, name: &str, seen: &mut HashSet<String>) {
    let mut stack = vec![name.to_owned()];
    while let Some(n) = stack.pop() {
        if !seen.insert(n.clone()) {
            continue;
        }
        if let Some(d) = ns.get(&n) {
            stack.extend(template_refs(d).into_iter().map(str::to_owned));
        }
    }
}

/// Adds the fetch a declaration needs.
pub fn collect_fetches(d: &Declaration, src: &Source, out: &mut HashSet<Locator>) {
    match &d.origin {
        Origin::Provider { locator, .. } => {
            out.insert(locator.fetch_key());
        }
        Origin::Template { template, .. } => {
            for p in &template.parts {
                if let Part::Direct(r) = p {
                    if let Ok(loc) = Locator::parse(r.provider, &r.locator, &src.base_dir) {
                        out.insert(loc.fetch_key());
                    }
                }
            }
        }
    }
}

/// Reports each composition cycle once, naming it.
fn cycles(ns: &Namespace<'_>, diags: &mut Vec<Diagnostic>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Active,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    for start in ns.all() {
        if marks.contains_key(start.name.as_str()) {
            continue;
        }
        // Iterative DFS with an explicit path, so deep compositions cannot overflow.
        let mut path: Vec<(&str, Vec<&str>)> = vec![(
            start.name.as_str(),
            ns.get(&start.name).map(template_refs).unwrap_or_default(),
        )];
        marks.insert(start.name.as_str(), Mark::Active);
        while let Some((name, children)) = path.last_mut() {
            let name = *name;
            match children.pop() {
                None => {
                    marks.insert(name, Mark::Done);
                    path.pop();
                }
                Some(child) => {
                    let Some(cd) = ns.get(child) else { continue };
                    match marks.get(child) {
                        Some(Mark::Done) => {}
                        Some(Mark::Active) => {
                            let pos = path.iter().position(|(n, _)| *n == child).unwrap_or(0);
                            let mut names: Vec<&str> =
                                path[pos..].iter().map(|(n, _)| *n).collect();
                            names.push(child);
                            diags.push(
                                Diagnostic::invalid(format!(
                                    "composition cycle: {}",
                                    names.join(" → ")
                                ))
                                .at(cd.source, cd.name_span.clone()),
                            );
                        }
                        None => {
                            marks.insert(cd.name.as_str(), Mark::Active);
                            path.push((cd.name.as_str(), template_refs(cd)));
                        }
                    }
                }
            }
        }
    }
}

/// Results of every fetch of a run, by fetch key.
pub type Fetched = HashMap<Locator, Result<SecretBytes, FetchError>>;

/// Fetches each distinct locator once; each provider gets its whole batch, and
/// remote providers fetch at the same time, each on its own thread.
pub fn fetch_all(requests: &HashSet<Locator>, registry: &mut Registry) -> Fetched {
    per_provider(
        requests,
        registry,
        |p, reqs| p.fetch(reqs),
        |kind| {
            Err(FetchError::new(
                crate::provider::FetchClass::Unreachable,
                format!("the {kind} provider gave no answer"),
            ))
        },
    )
}

/// Runs `call` once per provider with all of that provider's `requests`
/// (remote providers at the same time, each on its own thread); `missing`
/// stands in for an answer a provider did not give.
fn per_provider<'r, R: Send>(
    requests: impl IntoIterator<Item = &'r Locator>,
    registry: &mut Registry,
    call: impl Fn(&dyn crate::provider::Provider, &[&Locator]) -> Vec<R> + Sync,
    missing: impl Fn(ProviderKind) -> R,
) -> HashMap<Locator, R> {
    let mut by_kind: HashMap<ProviderKind, Vec<&Locator>> = HashMap::new();
    for r in requests {
        by_kind.entry(r.kind()).or_default().push(r);
    }
    let mut kinds: Vec<_> = by_kind.keys().copied().collect();
    kinds.sort();
    for kind in &kinds {
        registry.start(*kind);
    }
    let registry = &*registry;
    let one = |kind: ProviderKind| {
        let reqs = &by_kind[&kind];
        let results = match registry.started_provider(kind) {
            Some(p) => call(p, reqs),
            None => Vec::new(),
        };
        (kind, results)
    };
    let remote = kinds.iter().filter(|k| k.is_remote()).count();
    let results: Vec<_> = std::thread::scope(|scope| {
        let mut handles = Vec::new();
        let mut done = Vec::new();
        for kind in &kinds {
            if kind.is_remote() && remote > 1 {
                handles.push(scope.spawn(|| one(*kind)));
            } else {
                done.push(one(*kind));
            }
        }
        done.extend(handles.into_iter().filter_map(|h| h.join().ok()));
        done
    });
    let mut out = HashMap::new();
    for (kind, res) in results {
        let mut res = res.into_iter();
        for r in &by_kind[&kind] {
            let one = res.next().unwrap_or_else(|| missing(kind));
            out.insert((*r).clone(), one);
        }
    }
    out
}

/// One cached value.
#[derive(Debug)]
struct Entry {
    /// When it was fetched or last confirmed current.
    at: std::time::Instant,
    value: SecretBytes,
    /// Whether the provider's version check works for it (see [`VersionCheck`]).
    checkable: bool,
}

/// Fetched values kept between the renders of `watch` and `exec --watch`.
#[derive(Debug, Default)]
pub struct Cache {
    entries: HashMap<Locator, Entry>,
    ttl: std::time::Duration,
    /// Set by a `--refresh` tick: every value is checked or fetched again once.
    stale: bool,
    /// Locators whose value differs from the one cached before, since the last
    /// [`Cache::take_changed`]: what a render line names (never values).
    changed: Vec<String>,
}

impl Cache {
    /// A cache whose values are reused for `ttl`.
    pub fn new(ttl: std::time::Duration) -> Self {
        Cache {
            entries: HashMap::new(),
            ttl,
            stale: false,
            changed: Vec::new(),
        }
    }

    /// The locators whose values changed since the last call, sorted.
    pub fn take_changed(&mut self) -> Vec<String> {
        let mut v = std::mem::take(&mut self.changed);
        v.sort();
        v.dedup();
        v
    }

    /// Makes the next render check or fetch everything again (rotation
    /// pick-up), keeping the old values to serve if a transient failure stops
    /// the new fetch.
    pub fn refresh(&mut self) {
        self.stale = true;
    }
}

/// Like [`fetch_all`], reusing cached values younger than the TTL. Older ones
/// (all of them after [`Cache::refresh`]) are first checked with the
/// provider's version check where it has one, and fetched only when their
/// version moved. When a fetch fails for a transient reason (unreachable,
/// throttled) and an older value is cached, that value is served and a warning
/// says so; a value that is now not found or denied is not.
pub fn fetch_cached(
    requests: &HashSet<Locator>,
    registry: &mut Registry,
    cache: &mut Cache,
) -> (Fetched, Vec<String>) {
    let now = std::time::Instant::now();
    let mut out: Fetched = HashMap::new();
    let mut due = Vec::new();
    for r in requests {
        match cache.entries.get(r) {
            Some(e) if !cache.stale && now.duration_since(e.at) < cache.ttl => {
                out.insert(r.clone(), Ok(e.value.clone()));
            }
            _ => due.push(r),
        }
    }
    cache.stale = false;

    let checkable = due.iter().copied().filter(|r| {
        cache
            .entries
            .get(*r)
            .is_some_and(|e| e.checkable && e.value.version().is_some())
    });
    let checks = per_provider(
        checkable,
        registry,
        |p, reqs| p.versions(reqs),
        |_| VersionCheck::Unknown,
    );
    let mut wanted = HashSet::new();
    for r in due {
        let entry = cache.entries.get_mut(r);
        match (entry, checks.get(r)) {
            (Some(e), Some(VersionCheck::Current(v))) if e.value.version() == Some(v) => {
                e.at = now;
                out.insert(r.clone(), Ok(e.value.clone()));
            }
            (Some(e), Some(VersionCheck::NotOffered)) => {
                e.checkable = false;
                wanted.insert(r.clone());
            }
            _ => {
                wanted.insert(r.clone());
            }
        }
    }

    let mut warnings = Vec::new();
    for (loc, result) in fetch_all(&wanted, registry) {
        let result = match result {
            Ok(v) => {
                let checkable = cache.entries.get(&loc).is_none_or(|e| e.checkable);
                let entry = Entry {
                    at: now,
                    value: v.clone(),
                    checkable,
                };
                let before = cache.entries.insert(loc.clone(), entry);
                if before.is_some_and(|old| old.value.expose() != v.expose()) {
                    cache.changed.push(loc.to_string());
                }
                Ok(v)
            }
            Err(e) => {
                let transient = matches!(
                    e.class,
                    crate::provider::FetchClass::Unreachable
                        | crate::provider::FetchClass::Throttled
                );
                match cache.entries.get(&loc) {
                    Some(old) if transient => {
                        warnings.push(format!(
                            "{loc}: fetching failed ({}); serving the last good value",
                            e.class.word()
                        ));
                        Ok(old.value.clone())
                    }
                    _ => {
                        cache.entries.remove(&loc);
                        Err(e)
                    }
                }
            }
        };
        out.insert(loc, result);
    }
    (out, warnings)
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
}

impl std::fmt::Debug for Computed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Computed([REDACTED])")
    }
}

/// What a site's new value is.
enum Rendered {
    Str(String),
    Typed(String),
    Json(Value),
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

/// One emitted site: new bytes and the digest of what they must parse to.
pub struct Emitted {
    /// Replacement text.
    pub text: String,
    /// Expected events.
    pub digest: Acc,
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

fn emit_site(site: &Site, value: &Rendered, src: &str, key: &DigestKey) -> Emitted {
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

/// A JSON field that is not there.
struct Missing {
    path: String,
    available: Vec<String>,
    not_json: bool,
}

impl Missing {
    fn diagnostic(&self, who: &str, what: &str) -> Diagnostic {
        if self.not_json {
            return Diagnostic::invalid(format!(
                "{who}: {what} is not a JSON object, so it has no key {}",
                quoted(&self.path)
            ));
        }
        let mut d = Diagnostic::error(
            Exit::NotFound,
            format!("{who}: {what} has no JSON key {}", quoted(&self.path)),
        );
        if !self.available.is_empty() {
            let mut keys = self.available.clone();
            keys.sort();
            keys.truncate(30);
            d = d.note(format!("keys there: {}", keys.join(", ")));
        }
        d
    }
}

fn walk<'v>(v: &'v Value, path: &[String]) -> Result<&'v Value, Missing> {
    let mut cur = v;
    for (i, seg) in path.iter().enumerate() {
        let next = match cur {
            Value::Object(m) => m.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|n| a.get(n)),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => {
                let available = match cur {
                    Value::Object(m) => m.keys().cloned().collect(),
                    Value::Array(a) => (0..a.len().min(30)).map(|n| n.to_string()).collect(),
                    _ => Vec::new(),
                };
                return Err(Missing {
                    path: path[..=i].join("."),
                    available,
                    not_json: false,
                });
            }
        }
    }
    Ok(cur)
}

/// A direct reference's outcome for `check --resolve`, in one word; its
/// diagnostics come from rendering the site.
pub fn direct_status(fetched: &Fetched, loc: &Locator) -> &'static str {
    match fetched.get(&loc.fetch_key()) {
        None => "not fetched",
        Some(Err(e)) => e.class.word(),
        Some(Ok(bytes)) => {
            let text = std::str::from_utf8(bytes.expose())
                .ok()
                .filter(|_| !bytes.is_binary());
            match (text, loc.json_key()) {
                (None, _) => "invalid",
                (Some(_), None) => "found",
                (Some(t), Some(key)) => match json_key_text(t, key) {
                    Ok(_) => "found",
                    Err(m) if m.not_json => "invalid",
                    Err(_) => "not found",
                },
            }
        }
    }
}

/// A locator's JSON key of a fetched text: a field with exactly that name (Vault
/// keys such as `tls.crt`), else a dot path into nested objects and arrays.
fn json_key_text(text: &str, key: &str) -> Result<String, Missing> {
    if key.contains('.') {
        if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) {
            if let Some(v) = map.get(key) {
                return Ok(match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
            }
        }
    }
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    json_field_text(text, &path)
}

/// A JSON key of a fetched text, as text (strings as is, others as compact JSON).
fn json_field_text(text: &str, path: &[String]) -> Result<String, Missing> {
    let Ok(json) = serde_json::from_str::<Value>(text) else {
        return Err(Missing {
            path: path.join("."),
            available: Vec::new(),
            not_json: true,
        });
    };
    walk(&json, path).map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
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

    #[test]
    fn json_keys() {
        let text = r#"{"a": {"b": [10, "x"]}, "c": "s"}"#;
        assert_eq!(json_field_text(text, &["c".into()]).ok(), Some("s".into()));
        assert_eq!(
            json_field_text(text, &["a".into(), "b".into(), "0".into()]).ok(),
            Some("10".into())
        );
        assert_eq!(
            json_key_text(r#"{"tls.crt":"pem","tls":{"crt":"other"}}"#, "tls.crt").ok(),
            Some("pem".into())
        );
        assert_eq!(
            json_key_text(r#"{"tls":{"crt":"nested"}}"#, "tls.crt").ok(),
            Some("nested".into())
        );
        let e = json_field_text(text, &["nope".into()])
            .err()
            .map(|m| m.available);
        assert_eq!(e, Some(vec!["a".to_owned(), "c".to_owned()]));
    }
}
