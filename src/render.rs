//! One render, end to end: read inputs, scan, declare, plan, fetch, emit, splice,
//! verify. Nothing here writes files or prints; the caller decides what to do
//! with the bytes and the diagnostics.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::Path;

use crate::error::{Diagnostic, Exit, SourceId};
use crate::provider::{Locator, Registry};
use crate::resolve::{self, Evaluator, Fetched, Namespace, Unit};
use crate::secrets::{self, Declaration};
use crate::source::Source;
use crate::yaml::digest::{Acc, DigestKey};
use crate::yaml::scan::{self, Limits, Scan};
use crate::yaml::verify::{self, VerifyError};

/// Render settings.
#[derive(Clone, Copy, Debug)]
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
    /// Also compute every declared secret into [`Session::exported`].
    pub export: bool,
}

/// All state of one run: sources, diagnostics, providers.
#[derive(Debug, Default)]
pub struct Session {
    /// Every source read, indexed by [`SourceId`].
    pub sources: Vec<Source>,
    /// Everything reported.
    pub diags: Vec<Diagnostic>,
    /// Providers started so far.
    pub registry: Registry,
    /// Values kept between renders (watch and exec --watch).
    pub cache: Option<resolve::Cache>,
    /// Declared secrets' values, by name, when [`Options::export`] asked for them.
    pub exported: Vec<(String, crate::secret::SecretText)>,
}

/// A scanned input with its own declarations.
#[derive(Debug)]
pub struct Loaded {
    /// Its source.
    pub source: SourceId,
    /// First-pass results.
    pub scan: Scan,
    /// Declarations of its `secrets:` block.
    pub decls: Vec<Declaration>,
    /// Names whose declaration is invalid.
    pub broken: Vec<String>,
}

/// Inputs ready for planning.
#[derive(Debug, Default)]
pub struct Prepared {
    /// The configs.
    pub inputs: Vec<Loaded>,
    /// Declarations from `--secrets` files.
    pub catalogue: Vec<Declaration>,
    /// Invalid catalogue names.
    pub catalogue_broken: Vec<String>,
}

impl Session {
    /// Reads one input (`-` is stdin) and checks size and encoding.
    pub fn read(&mut self, path: &str, max_input: usize) -> Option<SourceId> {
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
    pub fn prepare(
        &mut self,
        inputs: &[String],
        catalogues: &[String],
        opts: &Options,
        key: &DigestKey,
    ) -> Prepared {
        let mut prepared = Prepared::default();
        for path in catalogues {
            if let Some((source, scan)) = self.load(path, opts, key, false) {
                if let Some(block) = &scan.secrets {
                    let (decls, broken) = self.declare(source, &block.value, true);
                    prepared.catalogue.extend(decls);
                    prepared.catalogue_broken.extend(broken);
                } else {
                    self.diags.push(
                        Diagnostic::invalid(format!("`{path}` has no top-level `secrets:` block"))
                            .at(source, 0..0),
                    );
                }
            }
        }
        for path in inputs {
            if let Some((source, scan)) = self.load(path, opts, key, true) {
                let (decls, broken) = match &scan.secrets {
                    Some(block) => self.declare(source, &block.value, false),
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
    ) -> Option<(SourceId, Scan)> {
        let source = self.read(path, opts.max_input)?;
        match scan::scan(&self.sources[source].text, source, opts.limits, key, sites) {
            Ok(mut s) => {
                self.diags.append(&mut s.errors);
                Some((source, s))
            }
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    fn declare(
        &mut self,
        source: SourceId,
        value: &scan::Node,
        catalogue: bool,
    ) -> (Vec<Declaration>, Vec<String>) {
        let src = &self.sources[source];
        let parsed =
            secrets::parse_block(value, &src.text, source, &src.base_dir.clone(), catalogue);
        for r in parsed.sensitive {
            self.sources[source].mark_sensitive(r);
        }
        self.diags.extend(parsed.errors);
        (parsed.decls, parsed.broken)
    }

    /// Whether any error was reported.
    pub fn failed(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// The exit status for what was reported.
    pub fn exit(&self) -> Exit {
        Exit::worst(self.diags.iter().filter(|d| d.is_error()).map(|d| d.class))
    }

    /// Validates every input; returns the distinct fetches needed and the units.
    pub fn plan<'p>(
        &mut self,
        prepared: &'p Prepared,
        strict: bool,
    ) -> (Vec<Unit<'p>>, HashSet<Locator>, Vec<resolve::Plan>) {
        let mut units = Vec::new();
        let mut fetches = HashSet::new();
        let mut plans = Vec::new();
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
            };
            let plan = resolve::plan(&unit, &self.sources, strict, &mut self.diags);
            fetches.extend(plan.fetches.iter().cloned());
            plans.push(plan);
            units.push(unit);
        }
        (units, fetches, plans)
    }

    /// Moves the providers' warnings (an insecure setting in use) into the diagnostics.
    pub fn take_provider_warnings(&mut self) {
        for w in self.registry.take_warnings() {
            self.diags.push(Diagnostic::warning(w));
        }
    }

    /// The whole render: bytes of the output, or `None` when anything failed.
    pub fn render(
        &mut self,
        inputs: &[String],
        catalogues: &[String],
        opts: &Options,
    ) -> Option<Vec<u8>> {
        let key = DigestKey::default();
        let prepared = self.prepare(inputs, catalogues, opts, &key);
        let (units, mut fetches, _) = self.plan(&prepared, opts.strict);
        if opts.export {
            // `exec --env` exports every declared secret, used or not.
            for unit in &units {
                for d in unit.ns.all() {
                    resolve::collect_fetches(d, &self.sources[d.source], &mut fetches);
                }
            }
        }
        // A config with errors fetches nothing: no secret is read for a render that cannot happen.
        if self.failed() {
            return None;
        }
        let fetched = match self.cache.as_mut() {
            Some(cache) => {
                let (f, warnings) = resolve::fetch_cached(&fetches, &mut self.registry, cache);
                self.diags
                    .extend(warnings.into_iter().map(Diagnostic::warning));
                f
            }
            None => resolve::fetch_all(&fetches, &mut self.registry),
        };
        self.take_provider_warnings();
        let mut out = Vec::new();
        let mut json_docs = Vec::new();
        for (input, unit) in prepared.inputs.iter().zip(&units) {
            let Some(text) = self.render_one(input, unit, &fetched, opts, &key, &mut json_docs)
            else {
                continue;
            };
            if opts.json {
                continue;
            }
            if !out.is_empty() {
                if !out.ends_with(b"\n") {
                    out.push(b'\n');
                }
                if !text.starts_with("---") {
                    out.extend_from_slice(if text.starts_with('%') {
                        b"...\n"
                    } else {
                        b"---\n"
                    });
                }
            }
            if out.is_empty() {
                // The common single-input case: hand the buffer over instead of copying it.
                out = text.into_bytes();
            } else {
                out.extend_from_slice(text.as_bytes());
            }
        }
        if self.failed() {
            return None;
        }
        if opts.json {
            for doc in json_docs {
                out.extend_from_slice(doc.pretty().as_bytes());
                out.push(b'\n');
            }
        }
        Some(out)
    }

    fn render_one(
        &mut self,
        input: &Loaded,
        unit: &Unit<'_>,
        fetched: &Fetched,
        opts: &Options,
        key: &DigestKey,
        json_docs: &mut Vec<verify::Json>,
    ) -> Option<String> {
        let mut ev = Evaluator::new(unit, &self.sources, fetched, opts.redact);
        let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        let mut expected = input.scan.segments.first().copied().unwrap_or_default();
        let mut ok = true;
        for (i, site) in input.scan.sites.iter().enumerate() {
            match ev.emit(site, key) {
                Some(e) => {
                    expected = expected.concat(key, e.digest);
                    edits.push((site.region.clone(), e.text));
                }
                None => ok = false,
            }
            let seg: Acc = input.scan.segments.get(i + 1).copied().unwrap_or_default();
            expected = expected.concat(key, seg);
        }
        if opts.export {
            // `exec --env`: every declared secret, computed as a render would.
            for d in unit.ns.all() {
                match ev.value(&d.name) {
                    Some(v) => self.exported.push((d.name.clone(), v)),
                    None => ok = false,
                }
            }
        }
        let diags = std::mem::take(&mut ev.diags);
        self.diags.extend(diags);
        if !ok {
            return None;
        }
        let src = &self.sources[input.source];
        if let Some(block) = &input.scan.secrets {
            edits.push((block.removal.clone(), block.replacement.clone()));
        }
        edits.sort_by_key(|(r, _)| r.start);
        let text = splice(&src.text, &edits);
        match verify::verify(&text, key, opts.limits, opts.json) {
            Ok((acc, docs)) if acc == expected => {
                json_docs.extend(docs);
                Some(text)
            }
            Ok(_) | Err(VerifyError::Parse(_)) => {
                self.diags.push(
                    Diagnostic::invalid(format!(
                        "`{}`: the rendered text does not parse to the substituted document; nothing was written",
                        src.name
                    ))
                    .note("this is a bug in keyfill: please report it with the config's structure (not its secrets)"),
                );
                None
            }
            Err(VerifyError::Json(m)) => {
                self.diags.push(Diagnostic::invalid(format!(
                    "`{}`: cannot convert to JSON: {m}",
                    src.name
                )));
                None
            }
        }
    }
}

fn oversize(name: &str, max: usize) -> Diagnostic {
    Diagnostic::invalid(format!(
        "`{name}` is larger than {max} bytes (raise with --max-input-size)"
    ))
}

/// Applies non-overlapping edits, sorted by start, to `src`.
pub fn splice(src: &str, edits: &[(std::ops::Range<usize>, String)]) -> String {
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
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, yaml).expect("write");
        let opts = Options {
            strict: false,
            redact: false,
            json: false,
            limits: Limits {
                max_depth: 64,
                max_aliases: 100,
            },
            max_input: 1 << 20,
            export: false,
        };
        let mut s = Session::default();
        let out = s.render(&[path.display().to_string()], &[], &opts);
        (s, out)
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
