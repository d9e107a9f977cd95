//! `keyfill check`: what each input declares and references, and with
//! `--resolve` what each secret and direct reference resolves to (its outcome,
//! never its value), as the listing the command prints.

use std::collections::HashMap;

use crate::config::RenderConfig;
use crate::plan::{DirectId, Unit};
use crate::reference::{DirectRef, Part};
use crate::render::Session;
use crate::report::sanitize;
use crate::resolve;
use crate::yaml::digest::DigestKey;

/// What `check --resolve` learned about one unit.
#[derive(Default)]
struct Outcomes {
    names: HashMap<String, resolve::Outcome>,
    directs: HashMap<DirectId, resolve::Outcome>,
}

/// The direct references of a unit's sites, in order.
fn direct_refs<'u>(unit: &'u Unit<'_>) -> impl Iterator<Item = &'u DirectRef> {
    unit.sites
        .iter()
        .flat_map(|s| s.template.parts.iter())
        .filter_map(|p| match p {
            Part::Direct(r) => Some(r),
            _ => None,
        })
}

/// What `keyfill check` prints for `config`: each input's declared secrets,
/// used or not, and its direct references; with `with_outcomes`, each one's outcome
/// too (fetched and computed as a render would, values never shown). Problems go
/// to the session's diagnostics.
pub fn listing(config: &RenderConfig, with_outcomes: bool, session: &mut Session) -> String {
    let opts = &config.options;
    let key = DigestKey::default();
    let prepared = session.prepare(&config.files, &config.catalogues, opts, &key);
    let mut planned = session.plan(&prepared, opts.strict);
    if with_outcomes {
        // --resolve reports every declared secret, used or not.
        planned.fetch_every_declaration();
    }
    let fetched = if with_outcomes && !session.failed() {
        let f = resolve::fetch_all(&planned.fetches, &mut session.registry);
        session.take_provider_warnings();
        Some(f)
    } else {
        None
    };
    let mut records = Vec::new();
    // With --resolve, compute every value as a render would: types, JSON keys,
    // encodings and compositions are checked too, not just the fetches. The
    // evaluator records each outcome as it computes it.
    let mut outcomes: Vec<Outcomes> = Vec::new();
    if let Some((f, accesses)) = &fetched {
        let key = DigestKey::default();
        for unit in &planned.units {
            let mut ev = resolve::Evaluator::new(
                unit,
                &planned.bindings,
                &session.sources,
                f,
                true,
                &mut session.diags,
            )
            .max_secret(opts.max_secret);
            let mut o = Outcomes::default();
            for d in unit.ns.all() {
                o.names.insert(d.name.clone(), ev.outcome(&d.name));
            }
            for site in unit.sites {
                let _ = ev.emit(site, &key);
            }
            for r in direct_refs(unit) {
                if let Some(id) = planned.bindings.id(unit.source, r) {
                    o.directs.insert(id, ev.direct_outcome(id));
                }
            }
            if session.audit.is_some() {
                let config = &session.sources[unit.source].name;
                records.extend(ev.accessed(unit.ns.all(), accesses, config));
            }
            outcomes.push(o);
        }
    }
    if let Some(path) = &session.audit {
        if let Err(d) = crate::audit::append(path, &records) {
            session.diags.push(d);
        }
    }
    let mut listing = String::new();
    for (i, (unit, plan)) in planned.units.iter().zip(&planned.plans).enumerate() {
        let outcomes = outcomes.get(i);
        // Names and locators come from the input: escaped, as in diagnostics.
        let name = sanitize(&session.sources[unit.source].name);
        listing.push_str(&format!("{name}\n"));
        let decls = unit.ns.all();
        if decls.is_empty() {
            listing.push_str("  (no secrets declared)\n");
        }
        let width = decls.iter().map(|d| d.name.len()).max().unwrap_or(0);
        for d in decls {
            let used = if plan.used.contains(&d.name) {
                "used"
            } else {
                "unused"
            };
            let mut line = format!(
                "  {:<width$}  {:<6}  {}",
                d.name,
                used,
                sanitize(&d.source_text())
            );
            if let Some(outcome) = outcomes.and_then(|o| o.names.get(&d.name)) {
                line.push_str(&format!("  [{}]", outcome.word()));
            }
            listing.push_str(&line);
            listing.push('\n');
        }
        let mut direct: Vec<String> = Vec::new();
        for r in direct_refs(unit) {
            let mut line = format!("<<{}|{}>>", r.word, sanitize(&r.locator));
            if direct.contains(&line) {
                continue;
            }
            let outcome = planned
                .bindings
                .id(unit.source, r)
                .and_then(|id| outcomes?.directs.get(&id));
            if let Some(outcome) = outcome {
                line.push_str(&format!("  [{}]", outcome.word()));
            }
            direct.push(line);
        }
        if !direct.is_empty() {
            listing.push_str("  direct references:\n");
            for d in direct {
                listing.push_str(&format!("    {d}\n"));
            }
        }
    }
    listing
}
