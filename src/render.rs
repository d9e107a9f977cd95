//! One render, end to end: read inputs, scan, declare, plan, fetch, emit, splice,
//! verify. Nothing here writes files or prints; the caller decides what to do
//! with the bytes and the diagnostics.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::Path;

use crate::error::{Diagnostic, Diagnostics, Exit, SourceId};
use crate::plan::{Bindings, Namespace, Planned, Unit};
use crate::provider::Registry;
use crate::resolve::{self, Evaluator, Fetched};
use crate::secrets::{self, Declaration};
use crate::source::Source;
pub use crate::splice::Output;
use crate::yaml::digest::{Acc, DigestKey};
use crate::yaml::node::{self, Scan, SecretsBlock};
use crate::yaml::proof::{self, Unproven};
use crate::yaml::scan::{self, Limits};
use crate::yaml::verify::{self, VerifyError};

/// Render settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Unused secrets are errors.
    pub strict: bool,
    /// Replace secret-derived text with the mask.
    pub redact: bool,
    /// Emit JSON instead of YAML.
    pub json: bool,
    /// Nesting and alias bounds.
    pub limits: Limits,
    /// Largest input, in bytes.
    pub max_input: usize,
    /// Largest composed secret, in bytes.
    pub max_secret: usize,
    /// Largest rendered output (all inputs), in bytes.
    pub max_output: usize,
    /// Also compute every declared secret into `Session::exported`.
    pub export: bool,
    /// Top-level key of the declarations block (`secrets` unless --secrets-key).
    pub secrets_key: String,
    /// Whether configs have a declarations block (off: --no-secrets-block).
    pub secrets_block: bool,
    /// How the rendered text is proven to read as the substituted tree.
    pub verify: Verify,
}

impl Options {
    /// The configs' declarations key; `None` with `--no-secrets-block`.
    fn block_key(&self) -> Option<&str> {
        self.secrets_block.then_some(self.secrets_key.as_str())
    }
}

/// How the rendered text is proven to read as the substituted tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// Each substitution and the cut of the declarations block on a small probe
    /// (`yaml::proof`); the whole output is parsed again only where a
    /// shape is outside the proven ones.
    #[default]
    Local,
    /// The whole output is parsed again and its tree compared with the
    /// substituted input's, whatever the shapes.
    Full,
}

/// What verification did in one render.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Substitutions (and cuts of a declarations block) proven locally.
    pub local: usize,
    /// Inputs whose output was parsed again in full, with the first reason
    /// (`None` under [`Verify::Full`]).
    pub full: Vec<(String, Option<&'static str>)>,
    /// Inputs whose first pass ran in two halves on two threads.
    pub halves: usize,
}

impl Verified {
    /// One line for `-vv`: how the output was proven.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "verified: {} edit{} proven locally",
            self.local,
            if self.local == 1 { "" } else { "s" }
        );
        if self.halves > 0 {
            line.push_str(&format!("; {} input(s) scanned in two halves", self.halves));
        }
        for (name, why) in &self.full {
            line.push_str(&format!("; `{name}` parsed again in full"));
            if let Some(why) = why {
                line.push_str(&format!(" ({why})"));
            }
        }
        line
    }
}

/// All state of one run: sources, diagnostics, providers.
#[derive(Debug, Default)]
pub struct Session {
    /// Every source read, indexed by `SourceId`.
    pub sources: Vec<Source>,
    /// Everything reported: the run's one diagnostics sink.
    pub diags: Diagnostics,
    /// Providers started so far.
    pub(crate) registry: Registry,
    /// Values kept between renders (watch and exec --watch).
    pub(crate) cache: Option<resolve::Cache>,
    /// Declared secrets' values, by name, when [`Options::export`] asked for them.
    pub(crate) exported: Vec<(String, crate::secret::SecretText)>,
    /// What verification did in the last render.
    pub verified: Verified,
    /// Local files the last render's providers read values from (sops files),
    /// which `watch` watches like inputs.
    pub(crate) provided: Vec<std::path::PathBuf>,
    /// The audit log every secret access is appended to (`--audit`).
    pub(crate) audit: Option<std::path::PathBuf>,
}

/// A scanned input with its own declarations.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// Its source.
    pub(crate) source: SourceId,
    /// First-pass results.
    pub(crate) scan: Scan,
    /// Declarations of its `secrets:` block.
    pub(crate) decls: Vec<Declaration>,
    /// Names whose declaration is invalid.
    pub(crate) broken: Vec<String>,
}

/// Inputs ready for planning.
#[derive(Debug, Default)]
pub(crate) struct Prepared {
    /// The configs.
    pub(crate) inputs: Vec<Loaded>,
    /// Declarations from `--secrets` files.
    pub(crate) catalogue: Vec<Declaration>,
    /// Invalid catalogue names.
    pub(crate) catalogue_broken: Vec<String>,
    /// The configs' declarations key; `None` with `--no-secrets-block`.
    pub(crate) block_key: Option<String>,
}

impl Session {
    /// Reads one input (`-` is stdin) and checks size and encoding.
    pub(crate) fn read(&mut self, path: &str, max_input: usize) -> Option<SourceId> {
        let (name, bytes) = if path == "-" {
            let mut buf = Vec::new();
            let res = std::io::stdin()
                .lock()
                .take(max_input as u64 + 1)
                .read_to_end(&mut buf);
            match res {
                Ok(_) => ("<stdin>".to_owned(), buf),
                Err(e) => {
                    self.diags.push(Diagnostic::invalid(format!(
                        "cannot read standard input: {e}"
                    )));
                    return None;
                }
            }
        } else {
            match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => {
                    self.diags.push(Diagnostic::invalid(format!(
                        "`{path}` is a directory, not a config file"
                    )));
                    return None;
                }
                Ok(m) if m.len() > max_input as u64 => {
                    self.diags.push(oversize(path, max_input));
                    return None;
                }
                _ => {}
            }
            match std::fs::read(path) {
                Ok(b) => (path.to_owned(), b),
                Err(e) => {
                    self.diags
                        .push(Diagnostic::invalid(format!("cannot read `{path}`: {e}")));
                    return None;
                }
            }
        };
        if bytes.len() > max_input {
            self.diags.push(oversize(&name, max_input));
            return None;
        }
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                self.diags.push(Diagnostic::invalid(format!(
                    "`{name}` is not valid UTF-8 (invalid byte at offset {at})"
                )));
                return None;
            }
        };
        let fs_path = (path != "-").then(|| Path::new(path));
        self.sources.push(Source::new(name, fs_path, text));
        Some(self.sources.len() - 1)
    }

    /// Reads, scans and declares every input and catalogue.
    pub(crate) fn prepare(
        &mut self,
        inputs: &[String],
        catalogues: &[String],
        opts: &Options,
        key: &DigestKey,
    ) -> Prepared {
        let mut prepared = Prepared::default();
        if let Some(log) = &self.audit {
            // Appending to a config would corrupt it.
            let read = inputs.iter().chain(catalogues).filter(|f| *f != "-");
            if let Some(f) = read
                .into_iter()
                .find(|f| crate::output::same_file(log, Path::new(f)))
            {
                self.diags.push(
                    Diagnostic::error(
                        Exit::Usage,
                        format!(
                            "`--audit {}` is the input `{f}` (the same file)",
                            log.display()
                        ),
                    )
                    .note("give the audit log a file of its own"),
                );
                return prepared;
            }
        }
        let block_key = opts.secrets_key.as_str();
        for path in catalogues {
            if let Some((source, scan)) = self.load(path, opts, key, false, Some(block_key)) {
                if let Some(block) = &scan.secrets {
                    let (decls, broken) = self.declare(source, &block.value);
                    prepared.catalogue.extend(decls);
                    prepared.catalogue_broken.extend(broken);
                } else {
                    self.diags.push(
                        Diagnostic::invalid(format!(
                            "`{path}` has no top-level `{block_key}:` block"
                        ))
                        .at(source, 0..0),
                    );
                }
            }
        }
        let input_key = opts.block_key();
        prepared.block_key = input_key.map(str::to_owned);
        for path in inputs {
            let mark = self.diags.mark();
            if let Some((source, scan)) = self.load(path, opts, key, true, input_key) {
                // A config that already failed (a reference in a key, a malformed
                // one) removes nothing, and its block is read to say more.
                let failed = self.diags.since(mark).iter().any(Diagnostic::is_error);
                let (decls, broken) = match &scan.secrets {
                    // `exec --env` exports every declaration: none is unused there.
                    Some(block)
                        if !opts.export
                            && !failed
                            && unused_block(&scan, block, &prepared.catalogue) =>
                    {
                        self.refuse_unused_block(source, block, block_key);
                        (Vec::new(), Vec::new())
                    }
                    Some(block) => self.declare(source, &block.value),
                    None => (Vec::new(), Vec::new()),
                };
                prepared.inputs.push(Loaded {
                    source,
                    scan,
                    decls,
                    broken,
                });
            }
        }
        prepared
    }

    fn load(
        &mut self,
        path: &str,
        opts: &Options,
        key: &DigestKey,
        sites: bool,
        block_key: Option<&str>,
    ) -> Option<(SourceId, Scan)> {
        let source = self.read(path, opts.max_input)?;
        let text = &self.sources[source].text;
        // Only the full re-parse compares digests; `--format json` is built from it.
        let digest = opts.verify == Verify::Full || opts.json;
        let s = scan::scan_for(
            text,
            source,
            opts.limits,
            key,
            sites,
            block_key,
            digest,
            &mut self.diags,
        )?;
        Some((source, s))
    }

    /// A block nothing uses is most likely the file format's own `secrets:` (Compose,
    /// Helm, a ServiceAccount): removing it would break the file, so it is an error.
    fn refuse_unused_block(&mut self, source: SourceId, block: &SecretsBlock, key: &str) {
        let mut sensitive = Vec::new();
        secrets::mask_all(&block.value, &mut sensitive);
        for r in sensitive {
            self.sources[source].mark_sensitive(r);
        }
        let what = match &block.value.kind {
            node::NodeKind::Map(_) => "none of its entries is used in this config",
            _ => "it is not a mapping of declarations and nothing uses it",
        };
        self.diags.push(
            Diagnostic::invalid(format!(
                "top-level `{key}:` is read as keyfill's declarations block, but {what}"
            ))
            .at(source, block.key_span.clone())
            .label("keyfill would remove this block from the output")
            .note(format!(
                "if this `{key}:` belongs to the file's own format (Docker Compose, Helm, \
                 Kubernetes), pass --no-secrets-block to leave it untouched, or --secrets-key KEY \
                 (e.g. x-keyfill) to declare keyfill's secrets under another key"
            )),
        );
    }

    fn declare(&mut self, source: SourceId, value: &node::Node) -> (Vec<Declaration>, Vec<String>) {
        let src = &self.sources[source];
        let parsed = secrets::parse_block(value, &src.text, source, &src.base_dir, &mut self.diags);
        for r in parsed.sensitive {
            self.sources[source].mark_sensitive(r);
        }
        (parsed.decls, parsed.broken)
    }

    /// Reports every diagnostic (errors first, then warnings, each in source
    /// order) and returns the run's exit status.
    pub fn report(&mut self, reporter: &crate::report::Reporter) -> Exit {
        self.diags.sort_for_report();
        reporter.emit(self.diags.items(), &self.sources);
        self.exit()
    }

    /// Whether any error was reported.
    pub fn failed(&self) -> bool {
        self.diags.has_errors()
    }

    /// The exit status for what was reported.
    pub(crate) fn exit(&self) -> Exit {
        self.diags.exit()
    }

    /// Validates every input and binds its direct references; returns the
    /// units, what each uses, and the distinct fetches needed.
    pub(crate) fn plan<'p>(&mut self, prepared: &'p Prepared, strict: bool) -> Planned<'p> {
        let mut planned = Planned {
            units: Vec::new(),
            plans: Vec::new(),
            fetches: HashSet::new(),
            bindings: Bindings::default(),
        };
        for input in &prepared.inputs {
            let broken = input
                .broken
                .iter()
                .chain(&prepared.catalogue_broken)
                .map(String::as_str);
            let ns = Namespace::new(
                &input.decls,
                &prepared.catalogue,
                broken,
                &self.sources,
                &mut self.diags,
            );
            let unit = Unit {
                source: input.source,
                sites: &input.scan.sites,
                ns,
                block_key: prepared.block_key.as_deref(),
            };
            let plan = crate::plan::plan(
                &unit,
                &self.sources,
                &mut planned.bindings,
                strict,
                &mut self.diags,
            );
            planned.fetches.extend(plan.fetches.iter().cloned());
            planned.plans.push(plan);
            planned.units.push(unit);
        }
        planned
    }

    /// Moves the providers' warnings (an insecure setting in use) into the diagnostics.
    pub(crate) fn take_provider_warnings(&mut self) {
        self.registry.take_warnings(&mut self.diags);
    }

    /// The whole render: the output, or `None` when anything failed.
    pub fn render(
        &mut self,
        inputs: &[String],
        catalogues: &[String],
        opts: &Options,
    ) -> Option<Output> {
        let key = DigestKey::default();
        self.verified = Verified::default();
        let prepared = self.prepare(inputs, catalogues, opts, &key);
        let mut planned = self.plan(&prepared, opts.strict);
        if opts.export {
            // `exec --env` exports every declared secret, used or not.
            planned.fetch_every_declaration();
        }
        let mut provided: Vec<_> = planned
            .fetches
            .iter()
            .filter_map(|l| l.watched().map(Path::to_owned))
            .collect();
        provided.sort();
        provided.dedup();
        self.provided = provided;
        // A config with errors fetches nothing: no secret is read for a render that cannot happen.
        if self.failed() {
            return None;
        }
        let (fetched, accesses) = match self.cache.as_mut() {
            Some(cache) => {
                resolve::fetch_cached(&planned.fetches, &mut self.registry, cache, &mut self.diags)
            }
            None => resolve::fetch_all(&planned.fetches, &mut self.registry),
        };
        self.take_provider_warnings();
        // Every access is recorded, whether or not the render then succeeds.
        let mut records = self.audit.is_some().then(Vec::new);
        let fetches = Fetches {
            bindings: &planned.bindings,
            fetched: &fetched,
            accesses: &accesses,
        };
        let out = self.assemble(&prepared, &planned, &fetches, opts, &key, records.as_mut());
        if let (Some(path), Some(records)) = (&self.audit, &records) {
            if let Err(d) = crate::audit::append(path, records) {
                self.diags.push(d);
                return None;
            }
        }
        out
    }

    /// Renders every planned input from the fetched values and joins them
    /// (documents in order, or the JSON form); `None` when anything failed.
    fn assemble(
        &mut self,
        prepared: &Prepared,
        planned: &Planned<'_>,
        fetches: &Fetches<'_>,
        opts: &Options,
        key: &DigestKey,
        mut records: Option<&mut Vec<crate::audit::Record>>,
    ) -> Option<Output> {
        let mut out = Output::default();
        let mut json_docs = Vec::new();
        let each = prepared
            .inputs
            .iter()
            .zip(&planned.units)
            .zip(&planned.plans);
        for ((input, unit), plan) in each {
            let Some(text) = self.render_one(
                input,
                unit,
                fetches,
                opts,
                key,
                &mut json_docs,
                out.len(),
                Audit {
                    used: &plan.used,
                    records: records.as_deref_mut(),
                },
            ) else {
                continue;
            };
            if opts.json {
                continue;
            }
            if !out.is_empty() {
                if out.last_byte() != Some(b'\n') {
                    out.push("\n".to_owned());
                }
                if !text.starts_with(b"---") {
                    out.push(
                        if text.starts_with(b"%") {
                            "...\n"
                        } else {
                            "---\n"
                        }
                        .to_owned(),
                    );
                }
            }
            out.append(text);
            if out.len() > opts.max_output {
                // Sites were counted as they were emitted; this adds the
                // document separators, and an input larger than the bound.
                let name = &self.sources[input.source].name;
                self.diags.push(too_large(name, opts.max_output));
                return None;
            }
        }
        if self.failed() {
            return None;
        }
        if opts.json {
            for doc in json_docs {
                let mut text = doc.pretty();
                text.push('\n');
                out.push(text);
                if out.len() > opts.max_output {
                    self.diags.push(Diagnostic::invalid(format!(
                        "the rendered JSON is larger than {} bytes (raise with --max-output-size)",
                        opts.max_output
                    )));
                    return None;
                }
            }
        }
        Some(out)
    }

    /// Renders one input; `before` bytes of output precede it.
    #[allow(clippy::too_many_arguments)]
    fn render_one(
        &mut self,
        input: &Loaded,
        unit: &Unit<'_>,
        fetches: &Fetches<'_>,
        opts: &Options,
        key: &DigestKey,
        json_docs: &mut Vec<verify::Json>,
        before: usize,
        audit: Audit<'_>,
    ) -> Option<Output> {
        let mut ev = Evaluator::new(
            unit,
            fetches.bindings,
            &self.sources,
            fetches.fetched,
            opts.redact,
            &mut self.diags,
        )
        .max_secret(opts.max_secret);
        let src = &self.sources[input.source];
        let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        let mut digests: Vec<Acc> = Vec::new();
        let mut ok = true;
        // Local verification, site by site, as they are emitted; the first
        // shape outside the proven ones sends this input to the full re-parse.
        let mut unproven = match opts.verify {
            Verify::Full => Some(None),
            // The JSON form is built from the parse of the rendered text.
            Verify::Local if opts.json => Some(Some("--format json is built from a full parse")),
            Verify::Local => None,
        };
        let mut proven = 0;
        self.verified.halves += usize::from(input.scan.halves);
        // The output's size, kept as sites are emitted: many uses of a large
        // secret stop at --max-output-size, not when memory runs out.
        let mut size = before.saturating_add(src.text.len());
        if let Some(block) = &input.scan.secrets {
            size = size
                .saturating_add(block.replacement.len())
                .saturating_sub(block.removal.len());
            if unproven.is_none() {
                match proof::cut(&src.text, block) {
                    Ok(()) => proven += 1,
                    Err(Unproven(why)) => unproven = Some(Some(why)),
                }
            }
        }
        for site in &input.scan.sites {
            match ev.emit(site, key) {
                Some(e) => {
                    size = size
                        .saturating_add(e.text.len())
                        .saturating_sub(site.region.len());
                    if size > opts.max_output {
                        let d = too_large(&src.name, opts.max_output)
                            .at(input.source, site.span.clone());
                        ev.report(d);
                        ok = false;
                        break;
                    }
                    if unproven.is_none() {
                        match proof::site(&src.text, site, &e.text, e.digest, key, opts.limits) {
                            Ok(()) => proven += 1,
                            Err(Unproven(why)) => unproven = Some(Some(why)),
                        }
                    }
                    digests.push(e.digest);
                    edits.push((site.region.clone(), e.text));
                }
                None => ok = false,
            }
        }
        if ok && opts.export {
            // `exec --env`: every declared secret, computed as a render would.
            for d in unit.ns.all() {
                match ev.value(&d.name) {
                    // An environment variable cannot hold a NUL: refused here,
                    // before anything is written or run.
                    Some(v) if v.expose().contains('\0') => {
                        ev.report(
                            Diagnostic::invalid(format!(
                                "secret `{}` contains a NUL character, which an environment variable cannot hold",
                                d.name
                            ))
                            .at(d.source, d.name_span.clone())
                            .note("exec --env exports every declared secret; nothing was written or run"),
                        );
                        ok = false;
                    }
                    Some(v) => self.exported.push((d.name.clone(), v)),
                    None => ok = false,
                }
            }
        }
        if let Some(records) = audit.records {
            // `exec --env` reads every declaration; a render, those it uses.
            let decls = unit
                .ns
                .all()
                .into_iter()
                .filter(|d| opts.export || audit.used.contains(&d.name));
            records.extend(ev.accessed(decls, fetches.accesses, &src.name));
        }
        drop(ev);
        if !ok {
            return None;
        }
        let src = &self.sources[input.source];
        if let Some(block) = &input.scan.secrets {
            edits.push((block.removal.clone(), block.replacement.clone()));
        }
        edits.sort_by_key(|(r, _)| r.start);
        let Some(why) = unproven else {
            self.verified.local += proven;
            return Some(Output::spliced(&src.text, edits));
        };
        self.verified.full.push((src.name.clone(), why));
        let expected = match self.expected(input, &digests, opts, key) {
            Some(acc) => acc,
            None => return self.not_verified(input.source),
        };
        // The full re-parse needs the text in one piece.
        let text = splice(&src.text, &edits);
        match verify::verify(&text, key, opts.limits, opts.json) {
            Ok((acc, docs)) if acc == expected => {
                json_docs.extend(docs);
                Some(Output::from(text.into_bytes()))
            }
            Ok(_) | Err(VerifyError::Parse) => self.not_verified(input.source),
            Err(VerifyError::Json(m)) => {
                let name = &self.sources[input.source].name;
                self.diags.push(Diagnostic::invalid(format!(
                    "`{name}`: cannot convert to JSON: {m}"
                )));
                None
            }
        }
    }

    /// The digest the whole output must parse to: the input's segments around
    /// the sites with each site's expected events between them. A scan that did
    /// not digest (local verification) is run again for the segments.
    fn expected(
        &self,
        input: &Loaded,
        digests: &[Acc],
        opts: &Options,
        key: &DigestKey,
    ) -> Option<Acc> {
        let src = &self.sources[input.source];
        let rescanned;
        let segments = if input.scan.digested {
            &input.scan.segments
        } else {
            let mut scratch = Diagnostics::default();
            rescanned = scan::scan_for(
                &src.text,
                input.source,
                opts.limits,
                key,
                true,
                opts.block_key(),
                true,
                &mut scratch,
            )?;
            if rescanned.sites.len() != digests.len() {
                return None;
            }
            &rescanned.segments
        };
        let mut expected = segments.first().copied().unwrap_or_default();
        for (d, seg) in digests.iter().zip(segments.iter().skip(1)) {
            expected = expected.concat(key, *d).concat(key, *seg);
        }
        Some(expected)
    }

    fn not_verified(&mut self, source: SourceId) -> Option<Output> {
        self.diags.push(
            Diagnostic::invalid(format!(
                "`{}`: the rendered text does not parse to the substituted document; nothing was written",
                self.sources[source].name
            ))
            .note("this is a bug in keyfill: please report it with the config's structure (not its secrets)"),
        );
        None
    }
}

/// What one render fetched, and how (for the audit log).
struct Fetches<'f> {
    bindings: &'f Bindings,
    fetched: &'f Fetched,
    accesses: &'f resolve::Accesses,
}

/// Where one input's accesses are recorded, if `--audit` asks: the names it uses.
struct Audit<'r> {
    used: &'r HashSet<String>,
    records: Option<&'r mut Vec<crate::audit::Record>>,
}

fn too_large(name: &str, max: usize) -> Diagnostic {
    Diagnostic::invalid(format!(
        "`{name}`: the rendered output is larger than {max} bytes (raise with --max-output-size)"
    ))
}

/// Whether a declarations block has content none of which the config references.
/// An empty block (`secrets:`, `secrets: {}`) declares nothing and is not "unused".
/// A reference declared nowhere but close to one of the block's names is taken for
/// a typo: then the block is declared as usual, so that the error can suggest the name.
fn unused_block(scan: &Scan, block: &SecretsBlock, catalogue: &[Declaration]) -> bool {
    let entries = match &block.value.kind {
        node::NodeKind::Map(entries) => entries,
        _ => return !block.value.is_null(),
    };
    if entries.is_empty() {
        return false;
    }
    let referenced: HashSet<&str> = scan
        .sites
        .iter()
        .flat_map(|s| s.template.parts.iter())
        .filter_map(|p| match p {
            crate::reference::Part::Secret(r) => Some(r.name.as_str()),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = entries.iter().filter_map(|(k, _)| k.as_str()).collect();
    let in_catalogue = |n: &str| catalogue.iter().any(|d| d.name == n);
    !referenced.iter().any(|n| {
        names.contains(n) || (!in_catalogue(n) && crate::suggest::closest(n, &names).is_some())
    })
}

fn oversize(name: &str, max: usize) -> Diagnostic {
    Diagnostic::invalid(format!(
        "`{name}` is larger than {max} bytes (raise with --max-input-size)"
    ))
}

/// Applies non-overlapping edits, sorted by start, to `src`.
pub(crate) fn splice(src: &str, edits: &[(std::ops::Range<usize>, String)]) -> String {
    let delta: usize = edits.iter().map(|(_, t)| t.len()).sum();
    let mut out = String::with_capacity(src.len() + delta);
    let mut at = 0;
    for (r, t) in edits {
        if r.start < at {
            continue;
        }
        out.push_str(&src[at..r.start]);
        out.push_str(t);
        at = r.end;
    }
    out.push_str(&src[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderKind;

    fn render(yaml: &str) -> (Session, Option<Vec<u8>>) {
        render_with(yaml, None, |_| {})
    }

    /// Renders `yaml`, with a `--secrets` catalogue when given, under adjusted options.
    fn render_with(
        yaml: &str,
        catalogue: Option<&str>,
        adjust: impl FnOnce(&mut Options),
    ) -> (Session, Option<Vec<u8>>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).expect("write");
        let mut catalogues = Vec::new();
        if let Some(text) = catalogue {
            let cpath = dir.path().join("catalogue.yaml");
            std::fs::write(&cpath, text).expect("write");
            catalogues.push(cpath.display().to_string());
        }
        let mut opts = Options {
            strict: false,
            redact: false,
            json: false,
            limits: Limits {
                max_depth: 64,
                max_aliases: 100,
                strict_yaml: false,
            },
            max_input: 1 << 20,
            max_secret: 1 << 20,
            max_output: 1 << 24,
            export: false,
            secrets_key: "secrets".to_owned(),
            secrets_block: true,
            // CI runs the suite again with KEYFILL_VERIFY=full.
            verify: match std::env::var("KEYFILL_VERIFY").as_deref() {
                Ok("full") => Verify::Full,
                _ => Verify::Local,
            },
        };
        adjust(&mut opts);
        let mut s = Session::default();
        let out = s
            .render(&[path.display().to_string()], &catalogues, &opts)
            .map(|o| o.to_vec());
        (s, out)
    }

    fn errors(s: &Session) -> Vec<String> {
        s.diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect()
    }

    fn rendered(out: Option<Vec<u8>>) -> String {
        String::from_utf8(out.expect("renders")).expect("utf-8")
    }

    const COMPOSE: &str = "services:\n  db:\n    image: postgres\n    secrets: [db_password, my-secret]\nsecrets:\n  db_password:\n    file: ./pw.txt\n  my-secret:\n    external: true\n";

    #[test]
    fn unused_secrets_block_is_an_error_naming_both_options_never_a_removal() {
        let (s, out) = render(COMPOSE);
        assert!(out.is_none());
        assert_eq!(s.exit(), Exit::Invalid);
        let errs: Vec<&Diagnostic> = s.diags.iter().filter(|d| d.is_error()).collect();
        // One error for the block, not one per entry (no "invalid secret name `my-secret`").
        assert_eq!(errs.len(), 1, "{:?}", errors(&s));
        assert_eq!(
            errs[0].message,
            "top-level `secrets:` is read as keyfill's declarations block, but none of its entries is used in this config"
        );
        let notes = errs[0].notes.join("\n");
        assert!(notes.contains("--no-secrets-block"), "{notes}");
        assert!(notes.contains("--secrets-key KEY"), "{notes}");
        // A `file:` entry that looks like a keyfill declaration is not read either.
        assert!(s.registry.started().is_empty());
    }

    #[test]
    fn service_account_secrets_sequence_is_an_error_not_a_removal() {
        let (s, out) = render("apiVersion: v1\nkind: ServiceAccount\nsecrets:\n- name: token\n");
        assert!(out.is_none());
        assert_eq!(
            errors(&s),
            vec!["top-level `secrets:` is read as keyfill's declarations block, but it is not a mapping of declarations and nothing uses it"]
        );
    }

    #[test]
    fn no_secrets_block_leaves_top_level_secrets_byte_identical() {
        let (s, out) = render_with(COMPOSE, None, |o| o.secrets_block = false);
        assert_eq!(rendered(out), COMPOSE, "{:?}", errors(&s));
        // References in it are ordinary content then: substituted from the catalogue.
        let yaml = "a: $<A>\nsecrets:\n  x: $<A>\n";
        let (_, out) = render_with(yaml, Some("secrets:\n  A: { value: v }\n"), |o| {
            o.secrets_block = false;
        });
        assert_eq!(rendered(out), "a: v\nsecrets:\n  x: v\n");
    }

    #[test]
    fn secrets_key_names_the_block_in_configs_and_catalogues() {
        let yaml = "x-keyfill:\n  A: { value: v }\nb: $<A>$<C>\nsecrets:\n  db: { file: ./pw }\n";
        let (s, out) = render_with(yaml, Some("x-keyfill:\n  C: { value: w }\n"), |o| {
            o.secrets_key = "x-keyfill".to_owned();
        });
        assert_eq!(
            rendered(out),
            "b: vw\nsecrets:\n  db: { file: ./pw }\n",
            "{:?}",
            errors(&s)
        );
        // A catalogue without the configured key is an error naming it.
        let (s, out) = render_with("b: x\n", Some("secrets:\n  C: { value: w }\n"), |o| {
            o.secrets_key = "x-keyfill".to_owned();
        });
        assert!(out.is_none());
        assert!(
            errors(&s)[0].ends_with("has no top-level `x-keyfill:` block"),
            "{:?}",
            errors(&s)
        );
    }

    #[test]
    fn block_with_one_used_entry_keeps_unused_ones_as_warnings() {
        let (s, out) = render("secrets:\n  A: { value: v }\n  B: { value: w }\nx: $<A>\n");
        assert_eq!(rendered(out), "x: v\n");
        let warnings: Vec<&str> = s
            .diags
            .iter()
            .filter(|d| !d.is_error())
            .map(|d| d.message.as_str())
            .collect();
        assert_eq!(warnings, vec!["secret `B` is declared but never used"]);
    }

    #[test]
    fn typo_in_a_reference_keeps_the_block_declared_for_the_suggestion() {
        let (s, out) = render("secrets:\n  DB_PASSWORD: { value: v }\nx: $<DB_PASSWRD>\n");
        assert!(out.is_none());
        assert_eq!(errors(&s), vec!["secret `DB_PASSWRD` is not declared"]);
    }

    #[test]
    fn undeclared_reference_unlike_any_entry_still_refuses_the_unused_block() {
        let (s, out) = render(&format!("p: $<P>\n{COMPOSE}"));
        assert!(out.is_none());
        assert_eq!(
            errors(&s),
            vec![
                "top-level `secrets:` is read as keyfill's declarations block, but none of its entries is used in this config",
                "secret `P` is not declared",
            ]
        );
    }

    #[test]
    fn exec_env_exports_a_block_no_reference_uses() {
        let (s, out) = render_with("secrets:\n  A: { value: v }\nx: 1\n", None, |o| {
            o.export = true;
        });
        assert_eq!(rendered(out), "x: 1\n", "{:?}", errors(&s));
        assert_eq!(s.exported.len(), 1);
    }

    #[test]
    fn under_indented_flow_continuation_substitutes_in_both_modes_or_is_refused_with_strict_yaml() {
        let yaml = "args: [\"a\",\n  $<A>,\n\"c\"]\nsecrets:\n  A: { value: \"x, y\" }\n";
        let (s, out) = render(yaml);
        assert_eq!(
            rendered(out),
            "args: [\"a\",\n  'x, y',\n\"c\"]\n",
            "{:?}",
            errors(&s)
        );
        let multiline = yaml.replace("x, y", "x\\n  y");
        let (s, out) = render(&multiline);
        assert_eq!(
            rendered(out),
            "args: [\"a\",\n  \"x\\n  y\",\n\"c\"]\n",
            "{:?}",
            errors(&s)
        );
        let (s, out) = render_with(yaml, None, |o| o.limits.strict_yaml = true);
        assert!(out.is_none());
        assert_eq!(errors(&s), vec!["invalid YAML: invalid indentation"]);
    }

    #[test]
    fn missing_json_key_of_a_composed_secret_lists_no_keys() {
        // Found by the `render` fuzz target: a key built from another secret's
        // value was printed in the "keys there" note.
        let yaml = "secrets:\n  B: hunter2\n  J:\n    value: '{\"k$<B>\": 1, \"pw\": 2}'\n    type: json\nv: $<J.nope>\n";
        let (s, out) = render(yaml);
        assert!(out.is_none());
        assert_eq!(s.exit(), Exit::NotFound);
        let errs: Vec<&Diagnostic> = s.diags.iter().filter(|d| d.is_error()).collect();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "secret `J`: secret `J` has no JSON key `nope`"
        );
        assert!(errs[0].notes.is_empty(), "{:?}", errs[0].notes);
        // A document written inline with no reference still lists its keys.
        let (s, _) =
            render("secrets:\n  J:\n    value: '{\"pw\": 2}'\n    type: json\nv: $<J.nope>\n");
        let notes: Vec<&String> = s.diags.iter().flat_map(|d| &d.notes).collect();
        assert_eq!(notes, vec!["keys there: pw"]);
    }

    #[test]
    fn only_the_providers_a_config_uses_are_started() {
        let (s, out) = render("secrets:\n  A: { env: PATH }\nx: $<A>\ny: lit\n");
        assert!(out.is_some());
        assert_eq!(s.registry.started(), vec![ProviderKind::Env]);
        // An invalid config fetches nothing: no SDK starts for a typo elsewhere.
        let (s, out) = render("x: <<aws|prod/db>>\ny: $<UNDECLARED>\n");
        assert!(out.is_none());
        assert!(s.registry.started().is_empty());
    }
}
