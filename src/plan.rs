//! Planning: the declarations each input sees, and every check that needs no
//! value, in one pass: undeclared names (with a "did you mean"), invalid
//! locators, composition cycles (naming the cycle), scope violations and unused
//! declarations. Its result is the set of distinct fetches the run needs.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use crate::error::{quoted, Diagnostic, SourceId};
use crate::provider::Locator;
use crate::reference::{Part, SecretRef};
use crate::secrets::{in_scope, Declaration, Origin};
use crate::source::Source;
use crate::suggest::closest;
use crate::yaml::node::{locate, Site};

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
    /// The config's declarations key (`--secrets-key`); `None` with `--no-secrets-block`.
    pub block_key: Option<&'d str>,
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
                            unit,
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
