//! `keyfill doctor`: for each provider in use (the configs' references) or,
//! without a config, configured in the environment, where its credentials come
//! from, whether it answers and who it acts as; with configs, whether each
//! referenced secret is readable. Values are never read where the provider's
//! API can tell without them, and never shown.
//!
//! The configs are prepared and planned as every command does; the questions
//! go to the providers through the registry's one dispatch
//! (`Provider::diagnose`).

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::config::RenderConfig;
use crate::error::Exit;
use crate::plan::Planned;
use crate::provider::kind::ProviderKind;
use crate::provider::{Diagnose, FetchClass, FetchError, Health, Locator, Reach, Readability};
use crate::reference::Part;
use crate::render::Session;
use crate::report::sanitize;
use crate::secrets::Origin;
use crate::yaml::digest::DigestKey;

/// What `doctor` found: one entry per provider asked, one per secret checked.
#[derive(Debug)]
pub struct Report {
    providers: Vec<ProviderEntry>,
    secrets: Vec<SecretEntry>,
    /// Whether configs were given (without, the environment chose the providers).
    with_files: bool,
}

/// One provider's line.
#[derive(Debug)]
struct ProviderEntry {
    kind: ProviderKind,
    /// Why it was asked: the configs use it, or what configures it.
    why: String,
    /// What it said of itself; `None` when it gave no answer.
    health: Option<Health>,
}

/// One secret's line.
#[derive(Debug)]
struct SecretEntry {
    /// The file that declares it, or writes it as a direct reference.
    file: String,
    /// The declared name; `None` for a direct reference in the config's body.
    name: Option<String>,
    /// Where it lives.
    locator: Locator,
    /// Whether it is readable (an unset env variable with a default is fine).
    status: Status,
}

/// A secret's status as shown.
#[derive(Debug)]
enum Status {
    /// What the provider found.
    Found(Readability),
    /// An unset env variable whose declaration has a default.
    Default,
}

impl Status {
    /// The word shown.
    fn word(&self) -> &'static str {
        match self {
            Status::Found(Readability::Readable(_)) => "readable",
            Status::Found(Readability::Failed(e)) => e.class.word(),
            Status::Found(Readability::Unchecked(_)) => "not checked",
            Status::Default => "default",
        }
    }

    /// What it says beyond the word.
    fn detail(&self) -> Option<&str> {
        match self {
            Status::Found(Readability::Readable(note)) => note.as_deref(),
            Status::Found(Readability::Failed(e)) => Some(&e.message),
            Status::Found(Readability::Unchecked(why)) => Some(why),
            Status::Default => Some("the variable is not set; its declaration has a default"),
        }
    }

    /// The exit class it asks for.
    fn exit(&self) -> Exit {
        match self {
            Status::Found(Readability::Failed(e)) => e.class.exit(),
            _ => Exit::Ok,
        }
    }
}

/// A secret to check: where it is declared (or written, for a direct
/// reference in a config's body), its name, its locator, and whether its
/// declaration has a default.
struct Wanted {
    file: String,
    name: Option<String>,
    locator: Locator,
    has_default: bool,
}

/// Every secret the planned configs reference, one per (file, name, locator):
/// each declaration with a provider source or direct references, used or not
/// (as `check --resolve` reports them), and each direct reference in a body.
fn referenced(planned: &Planned<'_>, session: &Session) -> Vec<Wanted> {
    let file = |source: usize| sanitize(&session.sources[source].name);
    let mut out = Vec::new();
    for unit in &planned.units {
        for d in unit.ns.all() {
            let entry = |locator: &Locator, has_default| Wanted {
                file: file(d.source),
                name: Some(d.name.clone()),
                locator: locator.clone(),
                has_default,
            };
            match &d.origin {
                Origin::Provider { locator, default } => {
                    out.push(entry(locator, default.is_some()));
                }
                Origin::Template { template, .. } => {
                    for p in &template.parts {
                        if let Part::Direct(r) = p {
                            if let Some(l) = planned.bindings.get(d.source, r) {
                                out.push(entry(l, false));
                            }
                        }
                    }
                }
            }
        }
        for site in unit.sites {
            for p in &site.template.parts {
                if let Part::Direct(r) = p {
                    if let Some(l) = planned.bindings.get(unit.source, r) {
                        out.push(Wanted {
                            file: file(unit.source),
                            name: None,
                            locator: l.clone(),
                            has_default: false,
                        });
                    }
                }
            }
        }
    }
    // A catalogue's declarations are seen by every config; one line each.
    let mut seen = HashSet::new();
    out.retain(|w| seen.insert((w.file.clone(), w.name.clone(), w.locator.clone())));
    out
}

/// Checks the providers `config` uses (or, without files, those the
/// environment configures) and the secrets its files reference. Problems of
/// the configs go to the session's diagnostics; configs that fail to plan ask
/// no provider and give no report.
pub fn report(config: &RenderConfig, session: &mut Session) -> Option<Report> {
    let with_files = !config.files.is_empty();
    let mut wanted = Vec::new();
    // Why each provider is asked; those without requests are asked as `also`.
    let mut why: HashMap<ProviderKind, String> = HashMap::new();
    let mut also = Vec::new();
    if with_files {
        let opts = &config.options;
        let key = DigestKey::default();
        let prepared = session.prepare(&config.files, &config.catalogues, opts, &key);
        let planned = session.plan(&prepared, opts.strict);
        if session.failed() {
            return None;
        }
        wanted = referenced(&planned, session);
        for w in &wanted {
            why.entry(w.locator.kind())
                .or_insert_with(|| "referenced by the config".to_owned());
        }
    } else {
        for kind in ProviderKind::ALL {
            if let Some(by) = kind.configured() {
                why.insert(*kind, by);
                also.push(*kind);
            }
        }
    }
    // A request asks about what a fetch would read (every JSON key of one
    // secret shares it).
    let keys: Vec<Locator> = wanted.iter().map(|w| w.locator.fetch_key()).collect();
    let (answers, wholes) = session.registry.each_whole(&also, &keys, &Diagnose);
    // An insecure setting in use (VAULT_SKIP_VERIFY) is said here as on a render.
    session.take_provider_warnings();
    let mut providers: Vec<ProviderEntry> = Vec::new();
    for kind in ProviderKind::ALL {
        let Some(why) = why.remove(kind) else {
            continue;
        };
        let health = wholes
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, h)| h.clone());
        providers.push(ProviderEntry {
            kind: *kind,
            why,
            health,
        });
    }
    let secrets = wanted
        .into_iter()
        .zip(keys)
        .map(|(w, key)| {
            let found = answers
                .get(&key)
                .cloned()
                .unwrap_or_else(|| Readability::Failed(FetchError::unanswered(key.kind())));
            let status = match found {
                Readability::Failed(e) if w.has_default && e.class == FetchClass::NotFound => {
                    Status::Default
                }
                r => Status::Found(r),
            };
            SecretEntry {
                file: w.file,
                name: w.name,
                locator: w.locator,
                status,
            }
        })
        .collect();
    Some(Report {
        providers,
        secrets,
        with_files,
    })
}

/// The word for a provider's reach.
fn reach_word(h: &Option<Health>) -> &'static str {
    match h.as_ref().map(|h| &h.reach) {
        Some(Reach::Local) => "local",
        Some(Reach::Reachable) => "yes",
        Some(Reach::Failed(e)) => e.class.word(),
        None => "no answer",
    }
}

/// The identity as shown: who, `-` when the API does not say, or the failure word.
fn identity_text(h: &Option<Health>) -> String {
    match h.as_ref().map(|h| &h.identity) {
        Some(Ok(Some(who))) => sanitize(who),
        Some(Ok(None)) | None => "-".to_owned(),
        Some(Err(e)) => e.class.word().to_owned(),
    }
}

/// The provider's problems, in our words: its reach, then its identity.
fn problems(entry: &ProviderEntry) -> Vec<&FetchError> {
    let Some(h) = &entry.health else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Reach::Failed(e) = &h.reach {
        out.push(e);
    }
    if let Err(e) = &h.identity {
        out.push(e);
    }
    out
}

/// The exit class of a provider's line.
fn provider_exit(entry: &ProviderEntry) -> Exit {
    match &entry.health {
        None => Exit::Provider,
        Some(_) => Exit::worst(problems(entry).into_iter().map(|e| e.class.exit())),
    }
}

/// Left-aligned columns, two spaces apart; the last column is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|t| t.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[c].saturating_sub(cell.chars().count());
                line.push_str(cell);
                line.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

impl Report {
    /// The exit status the report asks for: 0, or the worst class found.
    pub fn exit(&self) -> Exit {
        Exit::worst(
            self.providers
                .iter()
                .map(provider_exit)
                .chain(self.secrets.iter().map(|s| s.status.exit())),
        )
    }

    /// The table for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.providers.is_empty() {
            out.push_str(if self.with_files {
                "no provider to check: the configs reference no secret manager, file or variable\n"
            } else {
                "no provider is configured in the environment (give config files to check the \
                 providers they use)\n"
            });
        } else {
            let mut rows = vec![vec![
                "PROVIDER".to_owned(),
                "CREDENTIALS".to_owned(),
                "REACHABLE".to_owned(),
                "IDENTITY".to_owned(),
            ]];
            for p in &self.providers {
                rows.push(vec![
                    p.kind.name().to_owned(),
                    p.health
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |h| sanitize(&h.credentials)),
                    reach_word(&p.health).to_owned(),
                    identity_text(&p.health),
                ]);
            }
            out.push_str(&table(&rows));
            for p in &self.providers {
                if p.health.is_none() {
                    out.push_str(&format!("  {}: the provider gave no answer\n", p.kind));
                }
                for e in problems(p) {
                    out.push_str(&format!(
                        "  {}: {}: {}\n",
                        p.kind,
                        e.class.word(),
                        sanitize(&e.message)
                    ));
                }
            }
        }
        if !self.secrets.is_empty() {
            out.push('\n');
            let mut rows = vec![vec![
                "FILE".to_owned(),
                "SECRET".to_owned(),
                "LOCATOR".to_owned(),
                "STATUS".to_owned(),
            ]];
            for s in &self.secrets {
                rows.push(vec![
                    s.file.clone(),
                    s.name.clone().unwrap_or_else(|| "-".to_owned()),
                    sanitize(&s.locator.to_string()),
                    s.status.word().to_owned(),
                ]);
            }
            out.push_str(&table(&rows));
            let notes: Vec<String> = self
                .secrets
                .iter()
                .filter_map(|s| {
                    let detail = s.status.detail()?;
                    let who = s.name.clone().unwrap_or_else(|| s.locator.to_string());
                    Some(format!("  {}: {}", sanitize(&who), sanitize(detail)))
                })
                .collect();
            if !notes.is_empty() {
                out.push('\n');
                for n in notes {
                    out.push_str(&n);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// One JSON document for machines.
    pub fn json(&self) -> String {
        let error =
            |e: &FetchError| json!({ "class": e.class.word(), "message": sanitize(&e.message) });
        let providers: Vec<Value> = self
            .providers
            .iter()
            .map(|p| {
                let h = p.health.as_ref();
                json!({
                    "provider": p.kind.name(),
                    "why": sanitize(&p.why),
                    "credentials": h.map(|h| sanitize(&h.credentials)),
                    "reachable": match h.map(|h| &h.reach) {
                        Some(Reach::Reachable) => json!(true),
                        Some(Reach::Failed(_)) | None => json!(false),
                        Some(Reach::Local) => Value::Null,
                    },
                    "reach": reach_word(&p.health),
                    "identity": match h.map(|h| &h.identity) {
                        Some(Ok(Some(who))) => json!(sanitize(who)),
                        _ => Value::Null,
                    },
                    "problems": problems(p).into_iter().map(error).collect::<Vec<_>>(),
                })
            })
            .collect();
        let secrets: Vec<Value> = self
            .secrets
            .iter()
            .map(|s| {
                json!({
                    "file": s.file,
                    "name": s.name.as_deref().map(sanitize),
                    "provider": s.locator.kind().name(),
                    "locator": sanitize(&s.locator.text()),
                    "status": s.status.word(),
                    "detail": s.status.detail().map(sanitize),
                })
            })
            .collect();
        let doc = json!({
            "providers": providers,
            "secrets": secrets,
            "exit": self.exit().code(),
        });
        let mut text = doc.to_string();
        text.push('\n');
        text
    }
}
