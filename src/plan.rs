//! Planning: the declarations each input sees, and every check that needs no
//! value, in one pass: undeclared names (with a "did you mean"), invalid
//! locators, composition cycles (naming the cycle), scope violations, unused
//! declarations and references embedded in a URL, a JSON string or a shell
//! command without an encoder. Its result is the set of distinct fetches the run needs, and
//! every direct reference bound to its parsed locator ([`Bindings`]): later
//! phases look locators up, never parse them again.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use crate::error::{quoted, Diagnostic, Diagnostics, SourceId};
use crate::provider::kind::ProviderKind;
use crate::provider::{Locator, LocatorError};
use crate::reference::{DirectRef, Part, SecretRef, Template};
use crate::secrets::{in_scope, Declaration, Origin};
use crate::source::Source;
use crate::suggest::closest;
use crate::yaml::node::{locate, Site};

/// The declarations visible to one input: its own block plus the catalogues.
pub(crate) struct Namespace<'d> {
    by_name: HashMap<&'d str, &'d Declaration>,
    own: Vec<&'d Declaration>,
    broken: HashSet<&'d str>,
}

impl<'d> Namespace<'d> {
    /// Builds a namespace, reporting names declared twice.
    pub(crate) fn new(
        own: &'d [Declaration],
        catalogue: &'d [Declaration],
        broken: impl IntoIterator<Item = &'d str>,
        sources: &[Source],
        diags: &mut Diagnostics,
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
    pub(crate) fn get(&self, name: &str) -> Option<&'d Declaration> {
        self.by_name.get(name).copied()
    }

    /// Every visible declaration, sorted by name.
    pub(crate) fn all(&self) -> Vec<&'d Declaration> {
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
pub(crate) struct Unit<'d> {
    /// Source id of the input.
    pub(crate) source: SourceId,
    /// Its sites.
    pub(crate) sites: &'d [Site],
    /// Visible declarations.
    pub(crate) ns: Namespace<'d>,
    /// The config's declarations key (`--secrets-key`); `None` with `--no-secrets-block`.
    pub(crate) block_key: Option<&'d str>,
}

/// One bound direct reference: a `<<provider|locator>>` text in one source
/// (one id however often that source writes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct DirectId(usize);

/// Every direct reference of a run, its locator parsed once, during planning.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    /// By source and provider, then locator text: the id, or why the text is
    /// no locator (reported where it is written).
    ids: HashMap<(SourceId, ProviderKind), HashMap<String, Result<DirectId, LocatorError>>>,
    locators: Vec<Locator>,
    /// Declarations whose templates were bound: a catalogue's are visible to
    /// every input, and their errors are reported once.
    declarations: HashSet<(SourceId, usize)>,
}

impl Bindings {
    /// Binds `r`, written in `source`; relative file paths resolve against `base_dir`.
    fn bind(
        &mut self,
        source: SourceId,
        r: &DirectRef,
        base_dir: &Path,
    ) -> Result<DirectId, LocatorError> {
        let by_text = self.ids.entry((source, r.provider)).or_default();
        if let Some(bound) = by_text.get(&r.locator) {
            return bound.clone();
        }
        let bound = match Locator::parse(r.provider, &r.locator, base_dir) {
            Ok(loc) => {
                self.locators.push(loc);
                Ok(DirectId(self.locators.len() - 1))
            }
            Err(e) => Err(e),
        };
        by_text.insert(r.locator.clone(), bound.clone());
        bound
    }

    /// The id of `r` as written in `source`; `None` when planning found its
    /// locator invalid (and reported it) or never saw it.
    pub(crate) fn id(&self, source: SourceId, r: &DirectRef) -> Option<DirectId> {
        match self.ids.get(&(source, r.provider))?.get(&r.locator)? {
            Ok(id) => Some(*id),
            Err(_) => None,
        }
    }

    /// The locator of a bound reference.
    pub(crate) fn locator(&self, id: DirectId) -> &Locator {
        // Ids come only from `bind`, which pushed their locator.
        &self.locators[id.0]
    }

    /// The locator of `r` as written in `source`, when it is bound.
    pub(crate) fn get(&self, source: SourceId, r: &DirectRef) -> Option<&Locator> {
        self.id(source, r).map(|id| self.locator(id))
    }
}

/// Every input planned: what the rest of the run needs.
pub(crate) struct Planned<'d> {
    /// The inputs, in order.
    pub(crate) units: Vec<Unit<'d>>,
    /// What each unit uses, in the same order.
    pub(crate) plans: Vec<Plan>,
    /// The distinct fetches of every unit.
    pub(crate) fetches: HashSet<Locator>,
    /// Every direct reference, bound.
    pub(crate) bindings: Bindings,
}

impl Planned<'_> {
    /// Adds the fetches of every visible declaration, used or not (`exec --env`
    /// and `check --resolve` compute them all).
    pub(crate) fn fetch_every_declaration(&mut self) {
        for unit in &self.units {
            for d in unit.ns.all() {
                collect_fetches(d, &self.bindings, &mut self.fetches);
            }
        }
    }
}

/// What validation learned about one unit.
#[derive(Default)]
pub(crate) struct Plan {
    /// Names used (directly or through composition).
    pub(crate) used: HashSet<String>,
    /// Fetches needed.
    pub(crate) fetches: HashSet<Locator>,
}

/// Validates one unit, binds its direct references and collects what it needs.
pub(crate) fn plan(
    unit: &Unit<'_>,
    sources: &[Source],
    bindings: &mut Bindings,
    strict: bool,
    diags: &mut Diagnostics,
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
            let first_visit = bindings.declarations.insert((d.source, d.name_span.start));
            if first_visit {
                let at = |range| locate(&dsrc.text, span, text, range);
                embedded(template, &[], strict, d.source, at, diags);
            }
            for part in &template.parts {
                match part {
                    Part::Secret(r) if unit.ns.get(&r.name).is_none() => {
                        diags.extend(undeclared(
                            unit,
                            r,
                            d.source,
                            locate(&dsrc.text, span, text, r.range.clone()),
                        ));
                    }
                    Part::Direct(r) => {
                        let bound = bindings.bind(d.source, r, &dsrc.base_dir);
                        if let (Err(e), true) = (bound, first_visit) {
                            let what = format!("in secret `{}`", d.name);
                            let at = |range| locate(&dsrc.text, span, text, range);
                            diags.push(invalid_locator(r, &e, &what, d.source, at));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    cycles(&unit.ns, diags);
    for site in unit.sites {
        let at = |range| locate(&src.text, &site.span, &site.value, range);
        embedded(&site.template, &site.path, strict, unit.source, at, diags);
        for part in &site.template.parts {
            let at = || locate(&src.text, &site.span, &site.value, part_range(part));
            match part {
                Part::Secret(r) => match unit.ns.get(&r.name) {
                    None => diags.extend(undeclared(unit, r, unit.source, at())),
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
                Part::Direct(r) => match bindings.bind(unit.source, r, &src.base_dir) {
                    Ok(id) => {
                        plan.fetches.insert(bindings.locator(id).fetch_key());
                    }
                    Err(e) => {
                        let at = |range| locate(&src.text, &site.span, &site.value, range);
                        diags.push(invalid_locator(r, &e, "", unit.source, at));
                    }
                },
                Part::Literal(_) => {}
            }
        }
    }
    for name in &plan.used {
        if let Some(d) = unit.ns.get(name) {
            collect_fetches(d, bindings, &mut plan.fetches);
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

/// An invalid locator's diagnostic, pointing at the part at fault when the
/// error names one (`regoin` in `<<aws|x?regoin=eu-west-1>>`), else at the whole
/// reference; `at` maps a range of the value to the source. `context` says
/// where the reference is written (`in secret `X``), or is empty for a site.
fn invalid_locator(
    r: &DirectRef,
    e: &LocatorError,
    context: &str,
    source: SourceId,
    at: impl Fn(Range<usize>) -> Range<usize>,
) -> Diagnostic {
    // The locator text starts after `<<word|`.
    let start = r.range.start + 2 + r.word.len() + 1;
    let range = e
        .range_in(&r.locator)
        .map_or(r.range.clone(), |p| start + p.start..start + p.end);
    let sep = if context.is_empty() { "" } else { " " };
    let mut d = Diagnostic::invalid(format!(
        "invalid {} locator{sep}{context}: {}",
        r.word, e.message
    ))
    .at(source, at(range));
    if let Some(h) = &e.hint {
        d = d.note(h.clone());
    }
    d
}

/// Warns (an error with `--strict`) of each reference embedded in a URL, a
/// JSON string or a shell command without an encoder, suggesting one.
fn embedded(
    template: &Template,
    path: &[String],
    strict: bool,
    source: SourceId,
    at: impl Fn(Range<usize>) -> Range<usize>,
    diags: &mut Diagnostics,
) {
    for f in crate::embed::findings(template, path) {
        let part = &template.parts[f.part];
        let encoder = f.context.encoder();
        let (shown, fix) = match part {
            Part::Secret(r) => {
                let written = format!(
                    "$<{}{}>",
                    r.name,
                    r.path.iter().map(|p| format!(".{p}")).collect::<String>()
                );
                let fix = format!("write `{}|{encoder}>`", written.trim_end_matches('>'));
                (written, fix)
            }
            Part::Direct(r) => (
                r.to_string(),
                format!("declare it in `secrets:` and write `$<NAME|{encoder}>`"),
            ),
            Part::Literal(_) => continue,
        };
        let message = format!(
            "`{shown}` is embedded in {} without an encoder",
            f.context.place()
        );
        let mut note = format!("{}; {fix}", f.context.risk());
        if f.context == crate::embed::Context::Shell {
            note.push_str(" as a whole word (it adds the quotes it needs)");
        }
        let d = if strict {
            Diagnostic::invalid(message)
                .note(note)
                .note("--strict makes this an error")
        } else {
            Diagnostic::warning(message).note(note)
        };
        diags.push(d.at(source, at(part_range(part))));
    }
}

fn part_range(p: &Part) -> Range<usize> {
    match p {
        Part::Secret(r) => r.range.clone(),
        Part::Direct(r) => r.range.clone(),
        Part::Literal(_) => 0..0,
    }
}

fn undeclared(
    unit: &Unit<'_>,
    r: &SecretRef,
    source: SourceId,
    at: Range<usize>,
) -> Option<Diagnostic> {
    let ns = &unit.ns;
    // An invalid declaration was reported already; its uses are not "undeclared".
    if ns.broken.contains(r.name.as_str()) {
        return None;
    }
    // Where a declaration would be, as configured.
    let label = match unit.block_key {
        Some(key) => format!("not declared in `{key}:` or a --secrets file"),
        None => "not declared in a --secrets file (--no-secrets-block)".to_owned(),
    };
    let mut d = Diagnostic::invalid(format!("secret `{}` is not declared", r.name))
        .at(source, at)
        .label(label);
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

/// Adds the fetches a declaration needs; its template was bound when its
/// namespace was planned (an invalid locator was reported then).
fn collect_fetches(d: &Declaration, bindings: &Bindings, out: &mut HashSet<Locator>) {
    match &d.origin {
        Origin::Provider { locator, .. } => {
            out.insert(locator.fetch_key());
        }
        Origin::Template { template, .. } => {
            for p in &template.parts {
                if let Part::Direct(r) = p {
                    if let Some(loc) = bindings.get(d.source, r) {
                        out.insert(loc.fetch_key());
                    }
                }
            }
        }
    }
}

/// Reports each composition cycle once, naming it.
fn cycles(ns: &Namespace<'_>, diags: &mut Diagnostics) {
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

/// Configs and catalogues read from memory and planned as a render plans them,
/// for the tests of planning and evaluation.
#[cfg(test)]
pub(crate) mod fixture {
    use std::path::Path;

    use super::{plan, Bindings, Namespace, Planned, Unit};
    use crate::error::{Diagnostic, Diagnostics, SourceId};
    use crate::secrets::{parse_block, Declaration};
    use crate::source::Source;
    use crate::yaml::digest::DigestKey;
    use crate::yaml::node::Scan;
    use crate::yaml::scan::{scan, Limits};

    /// Read and declared, ready to plan.
    pub(crate) struct Inputs {
        pub(crate) sources: Vec<Source>,
        configs: Vec<(SourceId, Scan, Vec<Declaration>)>,
        catalogue: Vec<Declaration>,
        /// What reading and declaring reported.
        pub(crate) diags: Diagnostics,
    }

    impl Inputs {
        /// `(path, text)` of each catalogue and each config.
        pub(crate) fn new(catalogues: &[(&str, &str)], configs: &[(&str, &str)]) -> Self {
            let mut inputs = Inputs {
                sources: Vec::new(),
                configs: Vec::new(),
                catalogue: Vec::new(),
                diags: Diagnostics::default(),
            };
            for (i, (path, text)) in catalogues.iter().chain(configs).enumerate() {
                let source = inputs.sources.len();
                inputs.sources.push(Source::new(
                    (*path).to_owned(),
                    Some(Path::new(path)),
                    (*text).to_owned(),
                ));
                let limits = Limits {
                    max_depth: 64,
                    max_aliases: 100,
                    strict_yaml: false,
                };
                let is_config = i >= catalogues.len();
                let key = DigestKey::default();
                let scanned = scan(
                    text,
                    source,
                    limits,
                    &key,
                    is_config,
                    Some("secrets"),
                    &mut inputs.diags,
                );
                let Some(s) = scanned else {
                    panic!("{path} does not scan");
                };
                let src = &inputs.sources[source];
                let decls = match &s.secrets {
                    Some(block) => {
                        let parsed = parse_block(
                            &block.value,
                            &src.text,
                            source,
                            &src.base_dir,
                            &mut inputs.diags,
                        );
                        parsed.decls
                    }
                    None => Vec::new(),
                };
                if is_config {
                    inputs.configs.push((source, s, decls));
                } else {
                    inputs.catalogue.extend(decls);
                }
            }
            inputs
        }

        /// Plans every config; returns the plan and what planning reported.
        pub(crate) fn plan(&self) -> (Planned<'_>, Vec<Diagnostic>) {
            let mut diags = Diagnostics::default();
            let mut planned = Planned {
                units: Vec::new(),
                plans: Vec::new(),
                fetches: Default::default(),
                bindings: Bindings::default(),
            };
            for (source, s, decls) in &self.configs {
                let ns = Namespace::new(
                    decls,
                    &self.catalogue,
                    std::iter::empty(),
                    &self.sources,
                    &mut diags,
                );
                let unit = Unit {
                    source: *source,
                    sites: &s.sites,
                    ns,
                    block_key: Some("secrets"),
                };
                let p = plan(
                    &unit,
                    &self.sources,
                    &mut planned.bindings,
                    false,
                    &mut diags,
                );
                planned.fetches.extend(p.fetches.iter().cloned());
                planned.plans.push(p);
                planned.units.push(unit);
            }
            (planned, diags.take())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::Inputs;
    use super::DirectId;
    use crate::error::Diagnostic;
    use crate::reference::Part;

    fn errors(diags: &[Diagnostic]) -> Vec<String> {
        diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect()
    }

    const NOT_A_LOCATOR: &str =
        "secret name `a:b` contains `:`; names use letters, digits and /_+=.@-";

    #[test]
    fn invalid_locator_in_a_catalogue_template_is_reported_once_for_every_config() {
        let inputs = Inputs::new(
            &[("/w/cat.yaml", "secrets:\n  A: \"x-<<aws|a:b:c>>\"\n")],
            &[("/w/a.yaml", "x: $<A>\n"), ("/w/b.yaml", "y: $<A>\n")],
        );
        let (planned, diags) = inputs.plan();
        assert_eq!(
            errors(&diags),
            [format!(
                "invalid aws locator in secret `A`: {NOT_A_LOCATOR}"
            )]
        );
        assert!(planned.fetches.is_empty());
    }

    #[test]
    fn invalid_locator_in_an_own_template_and_in_sites_is_reported_once_where_written() {
        let inputs = Inputs::new(
            &[],
            &[(
                "/w/c.yaml",
                "secrets:\n  A: \"x-<<aws|a:b:c>>\"\nx: $<A>\nz: <<aws|a:b:c>>\nw: <<aws|a:b:c>>\n",
            )],
        );
        let (planned, diags) = inputs.plan();
        let site = format!("invalid aws locator: {NOT_A_LOCATOR}");
        assert_eq!(
            errors(&diags),
            [
                format!("invalid aws locator in secret `A`: {NOT_A_LOCATOR}"),
                site.clone(),
                site
            ]
        );
        let starts: Vec<usize> = diags
            .iter()
            .filter_map(|d| d.location.as_ref().map(|l| l.span.start))
            .collect();
        assert_eq!(starts.len(), 3);
        assert!(starts[1] != starts[2], "each site is located: {starts:?}");
        // Nothing is bound for the invalid text, in the declaration or the sites.
        let unit = &planned.units[0];
        for p in unit.sites.iter().flat_map(|s| &s.template.parts) {
            if let Part::Direct(r) = p {
                assert_eq!(planned.bindings.id(unit.source, r), None);
            }
        }
    }

    #[test]
    fn same_text_in_two_sources_with_different_base_dirs_binds_two_file_locators() {
        let inputs = Inputs::new(
            &[("/w/sub/cat.yaml", "secrets:\n  A: <<file|./x.txt>>\n")],
            &[(
                "/w/c.yaml",
                "a: <<file|./x.txt>>\nb: $<A>\nc: <<file|./x.txt>>\n",
            )],
        );
        let (planned, diags) = inputs.plan();
        assert!(errors(&diags).is_empty(), "{:?}", errors(&diags));
        let unit = &planned.units[0];
        let site_ref = match unit.sites[0].template.whole() {
            Some(Part::Direct(r)) => r.clone(),
            other => panic!("not a direct reference: {other:?}"),
        };
        let Some(d) = unit.ns.get("A") else {
            panic!("A is declared");
        };
        let site = planned.bindings.id(unit.source, &site_ref);
        let declared = planned.bindings.id(d.source, &site_ref);
        assert!(site.is_some() && declared.is_some() && site != declared);
        // Compared as shown: a locator's fields are its provider's.
        let shown = |id: Option<DirectId>| id.map(|id| planned.bindings.locator(id).to_string());
        assert_eq!(shown(site).as_deref(), Some("file|/w/x.txt"));
        assert_eq!(shown(declared).as_deref(), Some("file|/w/sub/x.txt"));
        // The text written twice in one source is one reference.
        let again = match unit.sites[2].template.whole() {
            Some(Part::Direct(r)) => planned.bindings.id(unit.source, r),
            _ => None,
        };
        assert_eq!(again, site);
        assert_eq!(planned.fetches.len(), 2);
    }
}
