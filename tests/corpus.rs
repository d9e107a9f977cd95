//! keyfill against real configuration files: `../shared/realworld-corpus` (relative
//! to the crate root) holds YAML files from public projects, listed in its
//! `MANIFEST.tsv` (repo, commit, path, bytes, kind, corpus_path).
//!
//! None of them references a secret, so `keyfill render FILE` must print each one
//! byte for byte and exit 0 — or refuse it with exit 3 for a reason written in
//! `tests/corpus-refusals.tsv` (corpus_path TAB reason). A file that renders but
//! differs, a refusal not in the table, and a table row whose file no longer is
//! refused all fail, reported together. A refusal whose reason names
//! `--no-secrets-block` must render byte-identical with that option.
//!
//! A missing corpus is a failure, not a skip.

// Test helpers fail loudly on broken fixtures; unwrap is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const WORKERS: usize = 2;

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realworld-corpus");
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "real-world corpus not found at {} (expected MANIFEST.tsv there); this test never skips",
        dir.display()
    );
    dir
}

/// The corpus_path column of the manifest.
fn manifest(root: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = header
        .iter()
        .position(|h| *h == "corpus_path")
        .expect("MANIFEST.tsv has a corpus_path column");
    let files: Vec<String> = lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').nth(col).unwrap().to_owned())
        .collect();
    assert!(
        files.len() > 1000,
        "only {} files in {}; is the corpus complete?",
        files.len(),
        root.display()
    );
    files
}

/// corpus_path → reason, from the checked-in table.
fn refusals() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus-refusals.tsv");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, reason) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("{}: no TAB in {line:?}", path.display()));
        assert!(
            out.insert(file.to_owned(), reason.trim().to_owned())
                .is_none(),
            "{file} is listed twice in {}",
            path.display()
        );
    }
    out
}

struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

fn render(input: &Path, extra: &[&str]) -> Outcome {
    let out = crate::support::command()
        .arg("render")
        .args(extra)
        .arg(input)
        .output()
        .expect("spawn keyfill");
    Outcome {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn first_error(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or(stderr.trim())
}

fn first_diff(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Judges one file; `Ok(None)` renders identical, `Ok(Some(reason))` is a listed refusal.
fn judge(root: &Path, file: &str, listed: Option<&str>) -> Result<Option<String>, String> {
    let path = root.join(file);
    let bytes = std::fs::read(&path).map_err(|e| format!("{file}: cannot read: {e}"))?;
    let out = render(&path, &[]);
    match (out.code, listed) {
        (Some(0), None) if out.stdout == bytes => Ok(None),
        (Some(0), None) => Err(format!(
            "{file}: renders but differs at byte {} of {}",
            first_diff(&bytes, &out.stdout),
            bytes.len()
        )),
        (Some(0), Some(reason)) => Err(format!(
            "{file}: listed as refused ({reason}) but renders (exit 0); remove its row"
        )),
        (Some(3), Some(reason)) if !out.stdout.is_empty() => Err(format!(
            "{file}: refused ({reason}) but printed {} bytes",
            out.stdout.len()
        )),
        (Some(3), Some(reason)) if reason.contains("--no-secrets-block") => {
            let again = render(&path, &["--no-secrets-block"]);
            if again.code == Some(0) && again.stdout == bytes {
                Ok(Some(reason.to_owned()))
            } else {
                Err(format!(
                    "{file}: with --no-secrets-block: exit {:?}, {}",
                    again.code,
                    first_error(&again.stderr)
                ))
            }
        }
        (Some(3), Some(reason)) => Ok(Some(reason.to_owned())),
        (Some(3), None) => Err(format!(
            "{file}: refused (exit 3) without a row in tests/corpus-refusals.tsv: {}",
            first_error(&out.stderr)
        )),
        (code, _) => Err(format!(
            "{file}: exit {code:?}, {}",
            first_error(&out.stderr)
        )),
    }
}

#[test]
fn every_corpus_file_renders_byte_identical_or_is_refused_as_listed() {
    let root = corpus_dir();
    let files = manifest(&root);
    let table = refusals();
    let mut failures: Vec<String> = table
        .keys()
        .filter(|f| !files.contains(f))
        .map(|f| format!("{f}: listed in tests/corpus-refusals.tsv but not in the corpus"))
        .collect();
    let total = files.len();
    let queue = Mutex::new(files);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let Some(file) = queue.lock().unwrap().pop() else {
                    break;
                };
                let r = judge(&root, &file, table.get(&file).map(String::as_str));
                results.lock().unwrap().push(r);
            });
        }
    });
    let mut identical = 0;
    let mut by_reason: HashMap<String, usize> = HashMap::new();
    for r in results.into_inner().unwrap() {
        match r {
            Ok(None) => identical += 1,
            Ok(Some(reason)) => *by_reason.entry(reason).or_default() += 1,
            Err(m) => failures.push(m),
        }
    }
    let mut reasons: Vec<_> = by_reason.into_iter().collect();
    reasons.sort();
    let mut summary = format!("corpus: {total} files, {identical} byte-identical");
    for (reason, n) in &reasons {
        summary.push_str(&format!("\n  refused {n}: {reason}"));
    }
    eprintln!("{summary}");
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} corpus failures:\n{}\n\n{summary}",
        failures.len(),
        failures.join("\n")
    );
}
