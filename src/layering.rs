//! The layering of the crate, checked: every module has a layer, and a module may
//! import (`crate::…`) only modules of lower layers, its own ancestors, or its own
//! descendants (a parent registering its children). So the reference grammar
//! cannot come to depend on a provider, a provider on the `secrets:` parser, or
//! the pipeline on the command line, without this test saying so. A new
//! top-level module must be given its layer here; a nested one without an entry
//! has its parent's (so a new provider module needs no line).

use std::collections::BTreeMap;
use std::path::Path;

/// Module → layer. Lower layers are plain data and pure code; higher ones build
/// on them: grammar and YAML events, providers, declarations, evaluation, the
/// render pipeline, its configurations, the loops, the command line.
const LAYERS: &[(&str, u8)] = &[
    // Plain values and pure helpers.
    ("source", 0),
    ("secret", 0),
    ("totp", 0),
    ("suggest", 0),
    // Signal names, handlers, deferral and forwarding.
    ("signals", 0),
    ("provider::kind", 1),
    // Encoders: their words (for the grammar) and pure text functions.
    ("encode::kind", 1),
    ("encode", 1),
    ("provider::http", 0),
    ("provider::retry", 0),
    ("yaml", 0),
    ("yaml::digest", 0),
    ("yaml::emit", 0),
    ("yaml::schema", 0),
    ("error", 1),
    // The rendered output as pieces of the inputs and emitted text.
    ("splice", 1),
    // The grammar, YAML events, output writing and the printer.
    ("reference", 2),
    ("json_path", 2),
    ("yaml::node", 3),
    ("yaml::scan", 4),
    ("yaml::scan::capture", 4),
    ("yaml::scan::layout", 4),
    ("yaml::verify", 5),
    ("yaml::proof", 5),
    ("output", 2),
    // The audit log's lines and their appending.
    ("audit", 2),
    ("report", 2),
    // Providers: never the `secrets:` parser, the plan or YAML. Each provider's
    // module has this layer.
    ("provider", 4),
    // A site's emitted text.
    ("yaml::site", 4),
    // Declarations, the plan, then fetching and evaluation.
    ("secrets", 5),
    ("secrets::long_form", 5),
    ("secrets::mask", 5),
    // References embedded in a URL, a JSON string or a shell line.
    ("embed", 5),
    ("plan", 6),
    ("resolve", 7),
    ("resolve::cache", 7),
    ("resolve::evaluate", 7),
    // The render pipeline and the plain configurations that drive it.
    ("render", 8),
    ("config", 9),
    // What builds on the pipeline: never the command line.
    ("check", 10),
    ("diff", 10),
    ("doctor", 10),
    ("watch", 10),
    ("exec", 11),
    // The command line and the commands.
    ("cli", 12),
    ("app", 13),
    ("layering", 14),
    ("lib", 15),
    ("main", 15),
];

fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    parts.join("::")
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The binary's modules: they reach the library as `keyfill::…`, which counts
/// here as `crate::…` does.
const BINARY: &[&str] = &["main", "cli", "app"];

/// The `crate::a::b` paths a source names outside comments (and, in the
/// binary's files, its `keyfill::a::b` paths), as known modules.
fn imports(text: &str, known: &BTreeMap<&str, u8>, binary: bool) -> Vec<String> {
    let prefixes: &[&str] = if binary {
        &["crate::", "keyfill::"]
    } else {
        &["crate::"]
    };
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some((at, prefix)) = prefixes
            .iter()
            .filter_map(|p| rest.find(p).map(|at| (at, *p)))
            .min()
        {
            rest = &rest[at + prefix.len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            // The longest prefix that names a module.
            if let Some(m) = (1..=segments.len())
                .rev()
                .map(|n| segments[..n].join("::"))
                .find(|m| known.contains_key(m.as_str()))
            {
                out.push(m);
            }
        }
    }
    out
}

/// A module's layer: its own entry, else its nearest listed ancestor's.
fn layer_of(module: &str, known: &BTreeMap<&str, u8>) -> Option<u8> {
    let segments: Vec<&str> = module.split("::").collect();
    (1..=segments.len())
        .rev()
        .find_map(|n| known.get(segments[..n].join("::").as_str()).copied())
}

fn related(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| inner.starts_with(&format!("{outer}::"));
    inside(a, b) || inside(b, a)
}

#[test]
fn every_module_imports_only_lower_layers() {
    let known: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    assert!(all.len() > 20, "src/ not found at {}", src.display());
    let mut wrong = Vec::new();
    for file in &all {
        let module = module_of(&src, file);
        let Some(layer) = layer_of(&module, &known) else {
            wrong.push(format!("{module}: has no layer in LAYERS"));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let binary = BINARY.contains(&module.as_str());
        for dep in imports(&text, &known, binary) {
            let dep_layer = known[dep.as_str()];
            if dep != module && !related(&module, &dep) && dep_layer >= layer {
                wrong.push(format!(
                    "{module} (layer {layer}) imports {dep} (layer {dep_layer})"
                ));
            }
        }
        // A grouped `crate::{…}` import would hide its modules from this check.
        let grouped = text.contains(concat!("crate", "::{"))
            || (binary && text.contains(concat!("keyfill", "::{")));
        if module != "layering" && grouped {
            wrong.push(format!(
                "{module}: groups `crate::` imports; name each path"
            ));
        }
        if !matches!(module.as_str(), "cli" | "main" | "layering") && text.contains("clap::") {
            wrong.push(format!("{module}: uses clap; only the command line may"));
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn a_nested_module_without_an_entry_has_its_parents_layer() {
    let known: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    assert_eq!(layer_of("provider::ssm", &known), Some(known["provider"]));
    assert_eq!(
        layer_of("provider::kind", &known),
        Some(known["provider::kind"])
    );
    assert_eq!(layer_of("newtop", &known), None);
}

#[test]
fn a_grammar_importing_a_provider_is_caught() {
    let known: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let found = imports(
        "use crate::provider::aws::AwsLocator; // crate::secrets in a comment\n",
        &known,
        false,
    );
    assert_eq!(found, ["provider"]);
    assert!(known["provider"] >= known["reference"]);
}

#[test]
fn the_binarys_library_imports_count_in_its_files_only() {
    let known: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let text = "use keyfill::watch::Loop;\nuse crate::cli::Cli;\n";
    assert_eq!(imports(text, &known, true), ["watch", "cli"]);
    assert_eq!(imports(text, &known, false), ["cli"]);
}
