//! keyfill against the official YAML test suite (data branch), found at
//! `../shared/yaml-test-suite` relative to the crate root.
//!
//! - Every valid case holds no reference, so `keyfill render` must print its
//!   `in.yaml` byte for byte and exit 0.
//! - Every case marked `error` must be refused with exit code 3 (invalid input)
//!   and nothing on stdout — with `--strict-yaml` all of them; by default all but
//!   the few that libyaml-family readers (PyYAML, Go yaml) accept, listed in
//!   [`LIBYAML_ACCEPTS`], which must then render byte-identical.
//!
//! Every check runs in both modes: the default (libyaml-compatible) and `--strict-yaml`.
//!
//! Failures are collected and reported all together (case id, title, and what
//! happened), never just the first one. A missing suite is a failure, not a skip.

// Test helpers fail loudly on broken fixtures; unwrap is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;

const WORKERS: usize = 2;

/// Error cases the default mode accepts, because libyaml-family readers do: each
/// was checked against PyYAML (`yaml.safe_load_all`), which reads the tree keyfill reads.
const LIBYAML_ACCEPTS: &[(&str, &str)] = &[
    // PyYAML: {'flow': ['a', 'b', 'c']}
    ("9C9N", "flow sequence continuation lines at column 0"),
    // PyYAML: {'foo': 'bar baz'}
    ("DK95/01", "a tab before a double-quoted continuation line"),
    // PyYAML: {'quoted': 'a b c'}
    ("QB6E", "double-quoted continuation lines at column 0"),
];

struct Case {
    id: String,
    dir: PathBuf,
    title: String,
    error: bool,
}

fn suite_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/yaml-test-suite");
    assert!(
        dir.is_dir(),
        "YAML test suite not found at {} (expected the data branch checkout there); \
         this test never skips",
        dir.display()
    );
    dir
}

/// All cases: top-level folders with an `in.yaml`, or numbered sub-folders.
fn cases() -> Vec<Case> {
    let root = suite_dir();
    let mut out = Vec::new();
    let mut push = |id: String, dir: PathBuf, title: &str| {
        if dir.join("in.yaml").is_file() {
            let own = std::fs::read_to_string(dir.join("===")).unwrap_or_default();
            let title = if own.trim().is_empty() {
                title
            } else {
                own.trim()
            };
            out.push(Case {
                id,
                error: dir.join("error").exists(),
                title: title.to_owned(),
                dir,
            });
        }
    };
    let mut tops: Vec<_> = std::fs::read_dir(&root)
        .expect("read suite dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .collect();
    tops.sort();
    for top in tops {
        let name = top.file_name().unwrap().to_string_lossy().into_owned();
        let title = std::fs::read_to_string(top.join("===")).unwrap_or_default();
        if top.join("in.yaml").is_file() {
            push(name, top, title.trim());
            continue;
        }
        let mut subs: Vec<_> = std::fs::read_dir(&top)
            .expect("read case dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        for sub in subs {
            let s = sub.file_name().unwrap().to_string_lossy().into_owned();
            push(format!("{name}/{s}"), sub, title.trim());
        }
    }
    assert!(
        out.len() > 300,
        "only {} cases found under {}; is the suite complete?",
        out.len(),
        root.display()
    );
    out
}

struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

fn render(input: &Path, strict_yaml: bool) -> Outcome {
    let out = crate::support::command()
        .arg("render")
        .args(strict_yaml.then_some("--strict-yaml"))
        .arg(input)
        .output()
        .expect("spawn keyfill");
    Outcome {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `check` over `cases` on a small thread pool; returns the failure
/// messages sorted by case id.
fn run_all(
    cases: Vec<Case>,
    strict_yaml: bool,
    check: fn(&Case, &[u8], Outcome) -> Option<String>,
) -> Vec<String> {
    let queue = Mutex::new(cases);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let Some(case) = queue.lock().unwrap().pop() else {
                    break;
                };
                let input = case.dir.join("in.yaml");
                let bytes = std::fs::read(&input).expect("read in.yaml");
                let outcome = render(&input, strict_yaml);
                if let Some(msg) = check(&case, &bytes, outcome) {
                    failures.lock().unwrap().push((case.id.clone(), msg));
                }
            });
        }
    });
    let mut f = failures.into_inner().unwrap();
    f.sort();
    f.into_iter().map(|(_, m)| m).collect()
}

fn first_diff(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

fn check_valid(case: &Case, input: &[u8], out: Outcome) -> Option<String> {
    if out.code == Some(0) && out.stdout == input {
        return None;
    }
    let detail = if out.code != Some(0) {
        format!("exit {:?}, stderr: {}", out.code, out.stderr.trim_end())
    } else {
        let at = first_diff(input, &out.stdout);
        format!(
            "output differs at byte {at}\n    input : {:?}\n    output: {:?}",
            String::from_utf8_lossy(input),
            String::from_utf8_lossy(&out.stdout)
        )
    };
    Some(format!("{} ({}): {detail}", case.id, case.title))
}

fn check_error(case: &Case, _input: &[u8], out: Outcome) -> Option<String> {
    if out.code == Some(3) && out.stdout.is_empty() {
        return None;
    }
    Some(format!(
        "{} ({}): exit {:?}, stdout {} bytes, stderr: {}",
        case.id,
        case.title,
        out.code,
        out.stdout.len(),
        out.stderr.trim_end()
    ))
}

fn report(kind: &str, total: usize, failures: &[String]) {
    if failures.is_empty() {
        eprintln!("{kind}: all {total} cases pass");
        return;
    }
    let ids: Vec<&str> = failures
        .iter()
        .map(|m| m.split_once(' ').map_or(m.as_str(), |(id, _)| id))
        .collect();
    panic!(
        "{kind}: {} of {total} cases fail: {}\n\n{}",
        failures.len(),
        ids.join(" "),
        failures.join("\n\n")
    );
}

fn accepted_by_libyaml(case: &Case) -> bool {
    LIBYAML_ACCEPTS.iter().any(|(id, _)| *id == case.id)
}

#[test]
fn valid_cases_render_unchanged() {
    let valid: Vec<Case> = cases().into_iter().filter(|c| !c.error).collect();
    let total = valid.len();
    let failures = run_all(valid, false, check_valid);
    report(
        "valid cases (byte-identical output, exit 0)",
        total,
        &failures,
    );
}

#[test]
fn valid_cases_render_unchanged_with_strict_yaml() {
    let valid: Vec<Case> = cases().into_iter().filter(|c| !c.error).collect();
    let total = valid.len();
    let failures = run_all(valid, true, check_valid);
    report(
        "valid cases with --strict-yaml (byte-identical output, exit 0)",
        total,
        &failures,
    );
}

#[test]
fn error_cases_are_rejected_unless_libyaml_accepts_them() {
    let all: Vec<Case> = cases().into_iter().filter(|c| c.error).collect();
    assert!(!all.is_empty(), "no error cases found");
    for (id, _) in LIBYAML_ACCEPTS {
        assert!(
            all.iter().any(|c| c.id == *id),
            "{id} is listed in LIBYAML_ACCEPTS but is not an error case of the suite"
        );
    }
    let (accepted, invalid): (Vec<Case>, Vec<Case>) =
        all.into_iter().partition(accepted_by_libyaml);
    let total = invalid.len();
    let mut failures = run_all(invalid, false, check_error);
    // The listed ones are read as libyaml reads them, so they render unchanged.
    let listed = accepted.len();
    failures.extend(run_all(accepted, false, check_valid));
    report(
        "error cases (exit 3, empty stdout; the libyaml-accepted ones byte-identical)",
        total + listed,
        &failures,
    );
}

#[test]
fn error_cases_are_rejected_with_strict_yaml() {
    let invalid: Vec<Case> = cases().into_iter().filter(|c| c.error).collect();
    let total = invalid.len();
    assert!(total > 0, "no error cases found");
    let failures = run_all(invalid, true, check_error);
    report(
        "error cases with --strict-yaml (exit 3, empty stdout)",
        total,
        &failures,
    );
}
