//! Property tests for the one place where a secret meets YAML syntax: the
//! emitter that writes a substituted value back into the document.
//!
//! Why `yaml_serde` is the oracle: keyfill parses with `granit-parser` and
//! checks its own output with that same parser, so a bug shared by the parser
//! and keyfill's verification (or a quoting rule that only granit reads "right")
//! would be invisible to keyfill itself. `yaml_serde` is built on an
//! independent libyaml port (a YAML 1.1 reader with its own scanner, escape
//! handling and schema resolution), i.e. exactly the kind of consumer that will
//! read a rendered config in production. If keyfill's output loads there as
//! precisely the intended string, with the rest of the tree unchanged, the
//! emitter did its job for a reader that shares none of keyfill's code.
//!
//! a. `emitter_round_trips_in_every_context`: a hostile value substituted into
//!    every scalar context (plain, quoted, embedded, block, flow, sequence item,
//!    second document, each with and without a following sibling key).
//! b. `hostile_replacement_over_yaml_test_suite`: value scalars of the YAML test
//!    suite's valid cases replaced by a reference; the hostile render must load
//!    as the benign-marker render with only the marker changed.

// Test helpers fail loudly on broken fixtures; unwrap is the clearest way to say so.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use granit_parser::{Event, Parser, ScalarStyle};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use serde::Deserialize as _;
use yaml_serde::Value;

const MARKER: &str = "MARKERqz7";

// ---------------------------------------------------------------------------
// Hostile strings
// ---------------------------------------------------------------------------

/// Pieces that are meaningful to some YAML reader somewhere.
#[rustfmt::skip]
pub(crate) const FRAGMENTS: &[&str] = &[
    "\n", "\r", "\r\n", "\u{85}", "\u{2028}", "\u{2029}", "\t", " ", "  ", "'", "\"", "''",
    "\\", "\\n", "\\\"", ": ", ":", " #", "#", "# c", "-", "- ", "?", "? ", ",", "[", "]", "{",
    "}", "&a", "*a", "!", "!!str", "|", "|-", ">", ">+", "%", "%YAML 1.1", "@", "`", "---",
    "...", "--- ", "yes", "no", "on", "off", "true", "false", "null", "~", "0123", "1e3",
    ".inf", "-.inf", ".nan", "0x1F", "0o17", "2001-12-14", "1:20", "y", "N", "<<", "$<X>",
    "$<S>", "$$<X>", "<<env|X>>", "<<<env|X>>", "<<file|/etc/passwd>>", "$<", "\u{0}", "\u{1}",
    "\u{7}", "\u{8}", "\u{b}", "\u{c}", "\u{1b}", "\u{7f}", "\u{80}", "\u{9f}", "\u{a0}",
    "\u{feff}", "\u{fffe}", "\u{ffff}", "\u{200b}", "é", "ß", "日本", "😀", "\u{10ffff}", "a",
    "b c", "key", "=", "0", "-1", "+1", "1_000",
];

/// Whole values every YAML 1.1 or 1.2 reader resolves to something other than
/// a string (or that are structure on their own).
#[rustfmt::skip]
pub(crate) const LOOKALIKES: &[&str] = &[
    "yes", "Yes", "YES", "no", "No", "on", "On", "off", "OFF", "y", "Y", "n", "N", "true",
    "True", "TRUE", "false", "False", "null", "Null", "NULL", "~", "", "0", "0123", "012",
    "0o17", "0x1F", "0b101", "1e3", "1E3", "1.5", ".5", "+.5", "-1", "+1", "1_000", "1:20",
    "190:20:30", ".inf", "-.inf", "+.inf", ".Inf", ".nan", ".NaN", "2001-12-14",
    "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "<<", "=", "-", "?", ":",
    "---", "...", "- ", "? ", ": ", "#", "|", ">", "&a", "*a", "!a", "%", "@", "`", "'", "\"",
    "[]", "{}", "[a, b]", "{a: b}", " ", "\t", "\n", "\r\n", "$<X>", "<<env|X>>",
];

/// Arbitrary strings biased toward content that is hard to write in YAML.
pub(crate) fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => select(FRAGMENTS).prop_map(str::to_owned),
        2 => "[a-zA-Z0-9_./@:-]{1,8}",
        2 => any::<char>().prop_map(String::from),
        1 => "[\\x00-\\x1f\\x7f-\\u{9f}]{1,3}",
    ];
    let long = (
        prop_oneof![Just('a'), Just(' '), Just('x'), Just('\u{e9}')],
        2000..6000usize,
        proptest::collection::vec(select(FRAGMENTS), 0..4),
    )
        .prop_map(|(c, n, frags)| {
            // One very long line (unless a fragment breaks it) with a few
            // hostile pieces spread over it.
            let chunk: String = std::iter::repeat_n(c, n / (frags.len() + 1)).collect();
            let mut s = chunk.clone();
            for f in &frags {
                s.push_str(f);
                s.push_str(&chunk);
            }
            s
        });
    prop_oneof![
        8 => proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat()),
        3 => select(LOOKALIKES).prop_map(str::to_owned),
        // A look-alike with leading/trailing space or a line break around it.
        2 => (select(LOOKALIKES), select(&[" ", "\n", "\t", "\r\n", "  "][..]), any::<bool>())
            .prop_map(|(l, w, front)| if front { format!("{w}{l}") } else { format!("{l}{w}") }),
        2 => any::<String>(),
        1 => long,
        1 => Just(String::new()),
    ]
}

// ---------------------------------------------------------------------------
// Running keyfill
// ---------------------------------------------------------------------------

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A scratch directory with a `--secrets` catalogue declaring `S` as a file.
struct Env {
    dir: tempfile::TempDir,
    value: PathBuf,
    catalogue: PathBuf,
    config: PathBuf,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let value = dir.path().join("value.txt");
        let catalogue = dir.path().join("catalogue.yaml");
        let config = dir.path().join("config.yaml");
        // A JSON string is a valid YAML double-quoted scalar.
        let path_json = serde_json::to_string(value.to_str().expect("utf-8 temp path")).unwrap();
        std::fs::write(
            &catalogue,
            format!("secrets:\n  S: {{ file: {path_json} }}\n"),
        )
        .unwrap();
        Env {
            dir,
            value,
            catalogue,
            config,
        }
    }

    fn render(&self, config: &str, value: &str, extra: &[&str]) -> Run {
        std::fs::write(&self.value, value).unwrap();
        std::fs::write(&self.config, config).unwrap();
        let out = crate::support::command()
            .current_dir(self.dir.path())
            .arg("render")
            .arg(&self.config)
            .arg("--secrets")
            .arg(&self.catalogue)
            .args(extra)
            .output()
            .expect("spawn keyfill");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).expect("keyfill printed invalid UTF-8"),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Loads every document with the independent libyaml-based reader.
fn load_all(text: &str) -> Result<Vec<Value>, String> {
    yaml_serde::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).map_err(|e| e.to_string()))
        .collect()
}

/// Replaces `from` by `to` inside every string of the tree (keys included).
fn replace_strings(v: &Value, from: &str, to: &str) -> Value {
    map_strings(v, &|s| s.replace(from, to))
}

/// Replaces every string that is exactly `from` by `to` (keys included).
fn replace_exact(v: &Value, from: &str, to: &str) -> Value {
    map_strings(v, &|s| {
        if s == from {
            to.to_owned()
        } else {
            s.to_owned()
        }
    })
}

/// Whether some string in the tree is exactly `s`.
fn has_exact(v: &Value, s: &str) -> bool {
    match v {
        Value::String(x) => x == s,
        Value::Sequence(items) => items.iter().any(|i| has_exact(i, s)),
        Value::Mapping(m) => m.iter().any(|(k, x)| has_exact(k, s) || has_exact(x, s)),
        Value::Tagged(t) => has_exact(&t.value, s),
        _ => false,
    }
}

fn map_strings(v: &Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(s)),
        Value::Sequence(items) => {
            Value::Sequence(items.iter().map(|i| map_strings(i, f)).collect())
        }
        Value::Mapping(m) => Value::Mapping(
            m.iter()
                .map(|(k, x)| (map_strings(k, f), map_strings(x, f)))
                .collect(),
        ),
        Value::Tagged(t) => Value::Tagged(Box::new(yaml_serde::value::TaggedValue {
            tag: t.tag.clone(),
            value: map_strings(&t.value, f),
        })),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------
// a. Every scalar context
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Step {
    Key(&'static str),
    Index(usize),
}

struct Context {
    name: &'static str,
    /// Bytes before the scalar; must be copied unchanged.
    pre: &'static str,
    /// The scalar as written, with `$<S>` inside.
    scalar: &'static str,
    /// Bytes after the scalar (the sibling key is appended to these).
    post: &'static str,
    /// Document index and path to the value.
    doc: usize,
    path: &'static [Step],
    /// Expected value from the secret value.
    expect: fn(&str) -> String,
    /// Whether `post` must be preserved byte for byte (block scalars may
    /// be rewritten up to the next line, so only the sibling is checked).
    post_exact: bool,
}

fn same(v: &str) -> String {
    v.to_owned()
}
fn with_newline(v: &str) -> String {
    format!("{v}\n")
}
fn embedded(v: &str) -> String {
    format!("pre-{v}-post")
}

const KEY: &[Step] = &[Step::Key("key")];

#[rustfmt::skip]
const CONTEXTS: &[Context] = &[
    Context { name: "plain", pre: "key: ", scalar: "$<S>", post: "\n", doc: 0, path: KEY, expect: same, post_exact: true },
    Context { name: "single-quoted", pre: "key: ", scalar: "'$<S>'", post: "\n", doc: 0, path: KEY, expect: same, post_exact: true },
    Context { name: "double-quoted", pre: "key: ", scalar: "\"$<S>\"", post: "\n", doc: 0, path: KEY, expect: same, post_exact: true },
    Context { name: "embedded", pre: "key: ", scalar: "\"pre-$<S>-post\"", post: "\n", doc: 0, path: KEY, expect: embedded, post_exact: true },
    Context { name: "literal", pre: "key: ", scalar: "|\n  $<S>\n", post: "", doc: 0, path: KEY, expect: with_newline, post_exact: false },
    Context { name: "literal-strip", pre: "key: ", scalar: "|-\n  $<S>\n", post: "", doc: 0, path: KEY, expect: same, post_exact: false },
    Context { name: "folded-strip", pre: "key: ", scalar: ">-\n  $<S>\n", post: "", doc: 0, path: KEY, expect: same, post_exact: false },
    Context { name: "literal-comment", pre: "key: ", scalar: "|  # note\n  $<S>\n", post: "", doc: 0, path: KEY, expect: with_newline, post_exact: false },
    Context { name: "literal-indicator", pre: "key: ", scalar: "|2-\n  $<S>\n", post: "", doc: 0, path: KEY, expect: same, post_exact: false },
    Context { name: "plain-crlf", pre: "a: 1\r\nkey: ", scalar: "$<S>", post: "\r\n", doc: 0, path: KEY, expect: same, post_exact: true },
    Context { name: "literal-crlf", pre: "a: 1\r\nkey: ", scalar: "|\r\n  $<S>\r\n", post: "", doc: 0, path: KEY, expect: with_newline, post_exact: false },
    Context { name: "nested-literal", pre: "outer:\n  key: ", scalar: "|\n    $<S>\n", post: "", doc: 0, path: &[Step::Key("outer"), Step::Key("key")], expect: with_newline, post_exact: false },
    Context { name: "flow-sequence", pre: "key: [a, ", scalar: "$<S>", post: ", b]\n", doc: 0, path: &[Step::Key("key"), Step::Index(1)], expect: same, post_exact: true },
    Context { name: "flow-mapping", pre: "key: {x: ", scalar: "$<S>", post: ", y: 1}\n", doc: 0, path: &[Step::Key("key"), Step::Key("x")], expect: same, post_exact: true },
    Context { name: "flow-seq-quoted", pre: "key: [a, ", scalar: "'$<S>'", post: "]\n", doc: 0, path: &[Step::Key("key"), Step::Index(1)], expect: same, post_exact: true },
    Context { name: "block-sequence-item", pre: "key:\n  - a\n  - ", scalar: "$<S>", post: "\n  - b\n", doc: 0, path: &[Step::Key("key"), Step::Index(1)], expect: same, post_exact: true },
    Context { name: "second-document", pre: "---\nfirst: 1\n---\nsecond: ", scalar: "$<S>", post: "\n", doc: 1, path: &[Step::Key("second")], expect: same, post_exact: true },
];

const SIBLING: &str = "next: 1\n";

fn at<'v>(docs: &'v [Value], doc: usize, path: &[Step]) -> Option<&'v Value> {
    let mut v = docs.get(doc)?;
    for step in path {
        v = match step {
            Step::Key(k) => v.get(*k)?,
            Step::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

fn json_at<'v>(
    docs: &'v [serde_json::Value],
    doc: usize,
    path: &[Step],
) -> Option<&'v serde_json::Value> {
    let mut v = docs.get(doc)?;
    for step in path {
        v = match step {
            Step::Key(k) => v.get(*k)?,
            Step::Index(i) => v.get(*i)?,
        };
    }
    Some(v)
}

/// Checks one context; returns a description of what went wrong.
fn check_context(
    env: &Env,
    ctx: &Context,
    sibling: bool,
    value: &str,
    json: bool,
) -> Result<(), String> {
    let post = if sibling {
        format!("{}{SIBLING}", ctx.post)
    } else {
        ctx.post.to_owned()
    };
    let config = format!("{}{}{post}", ctx.pre, ctx.scalar);
    let label = format!(
        "context {}{}",
        ctx.name,
        if sibling { " + sibling" } else { "" }
    );
    let fail = |what: String, run: &Run| {
        Err(format!(
            "{label}: {what}\nvalue: {value:?}\nconfig:\n{config}\n{run}"
        ))
    };

    let run = env.render(&config, value, &[]);
    if run.code != Some(0) || run.stdout.is_empty() {
        return fail("keyfill did not render".into(), &run);
    }
    // Bytes around the scalar are untouched.
    if !run.stdout.starts_with(ctx.pre) {
        return fail("text before the scalar changed".into(), &run);
    }
    let tail = if ctx.post_exact {
        post.as_str()
    } else if sibling {
        SIBLING
    } else {
        ""
    };
    if !run.stdout.ends_with(tail) || run.stdout.len() < ctx.pre.len() + tail.len() {
        return fail("text after the scalar changed".into(), &run);
    }
    // The independent reader sees exactly the intended string ...
    let docs = match load_all(&run.stdout) {
        Ok(d) => d,
        Err(e) => return fail(format!("yaml_serde cannot load the output: {e}"), &run),
    };
    let want = (ctx.expect)(value);
    match at(&docs, ctx.doc, ctx.path) {
        Some(Value::String(got)) if *got == want => {}
        got => return fail(format!("yaml_serde reads {got:?}, want {want:?}"), &run),
    }
    // ... and the rest of the tree is what the same config with a benign
    // marker loads as.
    let marker_docs = load_all(&config.replace("$<S>", MARKER)).expect("marker config loads");
    let expected: Vec<Value> = marker_docs
        .iter()
        .map(|d| replace_strings(d, MARKER, value))
        .collect();
    if docs != expected {
        return fail(
            format!("document differs: got {docs:?}\nwant {expected:?}"),
            &run,
        );
    }
    if !json {
        return Ok(());
    }
    // keyfill's own reading of the same render agrees.
    let json = env.render(&config, value, &["--format", "json"]);
    if json.code != Some(0) {
        return fail("`--format json` failed".into(), &json);
    }
    let jdocs: Result<Vec<serde_json::Value>, _> = serde_json::Deserializer::from_str(&json.stdout)
        .into_iter()
        .collect();
    match jdocs
        .as_deref()
        .ok()
        .and_then(|d| json_at(d, ctx.doc, ctx.path))
    {
        Some(serde_json::Value::String(got)) if *got == want => Ok(()),
        got => fail(
            format!("keyfill's JSON reads {got:?}, want {want:?}"),
            &json,
        ),
    }
}

#[test]
fn emitter_round_trips_in_every_context() {
    let env = Env::new();
    // PROPTEST_CASES=N widens the run (default 48 values, 2 renders per context).
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48);
    let config = Config {
        cases,
        max_shrink_iters: 300,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&hostile(), |value| {
        let mut errors = Vec::new();
        for ctx in CONTEXTS {
            for sibling in [false, true] {
                if let Err(e) = check_context(&env, ctx, sibling, &value, true) {
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TestCaseError::fail(format!(
                "{} of {} contexts fail:\n\n{}",
                errors.len(),
                CONTEXTS.len() * 2,
                errors.join("\n\n")
            )))
        }
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, value)) => panic!("minimal failing value {value:?}\n{why}"),
        Err(e) => panic!("{e}"),
    }
}

/// Fixed values that must always work, whatever the random sample is.
#[test]
fn emitter_round_trips_known_hard_values() {
    let env = Env::new();
    let mut values: Vec<String> = LOOKALIKES.iter().map(|s| s.to_string()).collect();
    values.extend(
        [
            "a\nb",
            "a\r\nb",
            "a\rb",
            "a\u{85}b",
            "a\u{2028}b\u{2029}c",
            "tab\there",
            " lead",
            "trail ",
            "it's",
            "say \"hi\"",
            "back\\slash",
            "a: b",
            "a #b",
            "a#b",
            "\u{feff}bom",
            "x\0y",
            "line\n",
            "line\n\n",
            "\nlead",
            "  \n  ",
            "a\n  b",
            "- item",
            "#c",
            "ключ",
            "$<X> and <<env|HOME>>",
            "$$<X>",
            "<<<env|X>>",
        ]
        .map(str::to_owned),
    );
    let mut errors = Vec::new();
    for value in &values {
        for ctx in CONTEXTS {
            for sibling in [false, true] {
                if let Err(e) = check_context(&env, ctx, sibling, value, false) {
                    errors.push(e);
                }
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} failures:\n\n{}",
        errors.len(),
        errors.join("\n\n")
    );
}

// ---------------------------------------------------------------------------
// b. Hostile replacement over the YAML test suite
// ---------------------------------------------------------------------------

pub(crate) fn suite_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/yaml-test-suite");
    assert!(
        dir.is_dir(),
        "YAML test suite not found at {}",
        dir.display()
    );
    dir
}

/// `(id, in.yaml text)` of every valid case, sorted by id.
pub(crate) fn valid_cases() -> Vec<(String, String)> {
    let mut dirs = Vec::new();
    for e in std::fs::read_dir(suite_dir()).unwrap() {
        let p = e.unwrap().path();
        if !p.is_dir() {
            continue;
        }
        if p.join("in.yaml").is_file() {
            dirs.push(p);
        } else {
            for s in std::fs::read_dir(&p).unwrap() {
                let s = s.unwrap().path();
                if s.join("in.yaml").is_file() {
                    dirs.push(s);
                }
            }
        }
    }
    let root = suite_dir();
    let mut out: Vec<(String, String)> = dirs
        .into_iter()
        .filter(|d| !d.join("error").exists())
        .filter_map(|d| {
            let id = d
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // A handful of cases are not UTF-8-clean text keyfill could read; none
            // in practice, but never panic on them.
            std::fs::read_to_string(d.join("in.yaml"))
                .ok()
                .map(|t| (id, t))
        })
        .collect();
    out.sort();
    out
}

/// Byte spans of plain and quoted scalars in value position (not in any key,
/// no explicit tag, non-empty source text).
pub(crate) fn value_scalar_spans(src: &str) -> Vec<std::ops::Range<usize>> {
    struct Frame {
        map: bool,
        expect_key: bool,
        in_key: bool,
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut spans = Vec::new();
    // Whether the node now starting is (inside) a mapping key; flips the
    // parent mapping's key/value expectation.
    fn enter(stack: &mut [Frame]) -> bool {
        match stack.last_mut() {
            None => false,
            Some(f) => {
                let key = f.in_key || (f.map && f.expect_key);
                if f.map {
                    f.expect_key = !f.expect_key;
                }
                key
            }
        }
    }
    for ev in Parser::new_from_str(src) {
        let Ok((ev, span)) = ev else {
            return Vec::new();
        };
        match ev {
            Event::Scalar(_, style, _, tag) => {
                let in_key = enter(&mut stack);
                let Some(r) = span.byte_range() else { continue };
                let quoted_or_plain = matches!(
                    style,
                    ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
                );
                if !in_key && tag.is_none() && quoted_or_plain && !r.is_empty() {
                    spans.push(r);
                }
            }
            Event::Alias(_) => {
                enter(&mut stack);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let in_key = enter(&mut stack);
                stack.push(Frame {
                    map: matches!(ev, Event::MappingStart(..)),
                    expect_key: true,
                    in_key,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    spans
}

/// Up to `n` spans spread over the list (first, middle, last, ...).
fn spread<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n {
        return items.to_vec();
    }
    (0..n)
        .map(|i| items[i * (items.len() - 1) / (n - 1)].clone())
        .collect()
}

#[test]
fn hostile_replacement_over_yaml_test_suite() {
    // Modest defaults keep the run short; KEYFILL_SUITE_FILES=1000 and
    // KEYFILL_SUITE_VALUES=N widen it for a deeper (slower) run.
    let env_num = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let files = env_num("KEYFILL_SUITE_FILES", 60);
    const SCALARS_PER_FILE: usize = 3;
    let values_per_scalar = env_num("KEYFILL_SUITE_VALUES", 6) as u32;

    let env = Env::new();
    let all = valid_cases();
    assert!(all.len() > 250, "only {} valid cases", all.len());

    // Candidates: cases the independent reader loads and that have value scalars.
    let mut not_loadable = Vec::new();
    let mut no_scalars = Vec::new();
    let mut candidates = Vec::new();
    for (id, text) in &all {
        if load_all(text).is_err() {
            not_loadable.push(id.clone());
            continue;
        }
        let spans = value_scalar_spans(text);
        if spans.is_empty() {
            no_scalars.push(id.clone());
            continue;
        }
        candidates.push((id.clone(), text.clone(), spans));
    }
    let sample = spread(&candidates, files);

    let mut skipped = Vec::new();
    let mut oracle_skipped = Vec::new();
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for (id, text, spans) in &sample {
        for span in spread(spans, SCALARS_PER_FILE) {
            let config = format!("{}$<S>{}", &text[..span.start], &text[span.end..]);
            let site = format!(
                "{id} @{}..{} (was {:?})",
                span.start,
                span.end,
                &text[span.clone()]
            );
            // T1: benign marker.
            let marker = env.render(&config, MARKER, &[]);
            if marker.code != Some(0) {
                skipped.push(format!(
                    "{site}: marker render refused: {}",
                    marker.stderr.trim_end()
                ));
                continue;
            }
            let t1 = match load_all(&marker.stdout) {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!(
                        "{site}: marker output does not load ({e})\n{marker}"
                    ));
                    continue;
                }
            };
            // Oracle preconditions (libyaml is a YAML 1.1 reader and does not read
            // every valid 1.2 input as the suite means it): the site must load as
            // exactly the marker string, and a hand-quoted marker at the same place
            // must load to the same tree. Where libyaml cannot do that, it cannot
            // judge any quoted emission there; such sites are listed, not hidden.
            if !t1.iter().any(|d| has_exact(d, MARKER)) {
                oracle_skipped.push(format!(
                    "{site}: yaml_serde does not read the site as one scalar (T1 = {t1:?})"
                ));
                continue;
            }
            let quoted = format!("{}\"{MARKER}\"{}", &text[..span.start], &text[span.end..]);
            match load_all(&quoted) {
                Ok(q) if q == t1 => {}
                Ok(q) => {
                    oracle_skipped.push(format!(
                        "{site}: yaml_serde reads a quoted scalar here differently ({q:?})"
                    ));
                    continue;
                }
                Err(e) => {
                    oracle_skipped.push(format!(
                        "{site}: yaml_serde rejects a quoted scalar here ({e})"
                    ));
                    continue;
                }
            }
            checked += 1;
            let mut runner = TestRunner::new(Config {
                cases: values_per_scalar,
                max_shrink_iters: 200,
                failure_persistence: None,
                ..Config::default()
            });
            let result = runner.run(&hostile(), |value| {
                let t2: Vec<Value> = t1
                    .iter()
                    .map(|d| replace_exact(d, MARKER, &value))
                    .collect();
                let run = env.render(&config, &value, &[]);
                let fail = |what: String| {
                    Err(TestCaseError::fail(format!(
                        "{what}\nconfig:\n{config}\n{run}"
                    )))
                };
                if run.code != Some(0) {
                    return fail("hostile render failed".into());
                }
                match load_all(&run.stdout) {
                    Ok(t3) if t3 == t2 => Ok(()),
                    Ok(t3) => fail(format!("tree differs\n got: {t3:?}\nwant: {t2:?}")),
                    Err(e) => fail(format!("yaml_serde cannot load the output: {e}")),
                }
            });
            match result {
                Ok(()) => {}
                Err(TestError::Fail(why, value)) => {
                    failures.push(format!("{site}: minimal hostile value {value:?}\n{why}"))
                }
                Err(e) => failures.push(format!("{site}: {e}")),
            }
        }
    }
    eprintln!(
        "suite replacement: {} valid cases, {} not loadable by yaml_serde, {} without value \
         scalars, {} sampled files, {checked} scalars checked, {} skipped (marker render \
         refused), {} skipped (oracle limitation)",
        all.len(),
        not_loadable.len(),
        no_scalars.len(),
        sample.len(),
        skipped.len(),
        oracle_skipped.len()
    );
    for s in skipped.iter().chain(&oracle_skipped) {
        eprintln!("  skipped {s}");
    }
    assert!(
        skipped.len() <= sample.len() / 10,
        "too many marker renders refused ({}):\n{}",
        skipped.len(),
        skipped.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------
// c. Readers of both families: PyYAML (YAML 1.1, pure-Python scanner)
// ---------------------------------------------------------------------------

/// Loads files with PyYAML's pure-Python `SafeLoader` (unknown `!tags` kept as
/// `{"tag", "v"}`, unhashable keys by their `repr`) in ONE python3 process; one JSON line per path, the tree
/// encoded so that nothing is lost: ints and floats as text, mappings as pair
/// lists (keys need not be strings), anything else by its `repr`.
const PYYAML_SCRIPT: &str = r#"
import json, sys
import yaml

class L(yaml.SafeLoader):
    pass

def unknown(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        v = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        v = loader.construct_sequence(node, deep=True)
    else:
        v = loader.construct_mapping(node, deep=True)
    return ("!tag", node.tag, v)

L.add_multi_constructor("!", unknown)
L.add_multi_constructor("tag:", unknown)

# Templated configs (`{{ .Values.x }}`) have mappings as keys: keep them, by repr.
def construct_mapping(self, node, deep=False):
    self.flatten_mapping(node)
    m = {}
    for kn, vn in node.value:
        k = self.construct_object(kn, deep=True)
        try:
            hash(k)
        except TypeError:
            k = ("!unhashable", repr(k))
        m[k] = self.construct_object(vn, deep=deep)
    return m

L.construct_mapping = construct_mapping

def enc(v):
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return {"int": str(v)}
    if isinstance(v, float):
        return {"float": repr(v)}
    if isinstance(v, list):
        return [enc(x) for x in v]
    if isinstance(v, dict):
        return {"map": [[enc(k), enc(x)] for k, x in v.items()]}
    if isinstance(v, tuple) and len(v) == 3 and v[0] == "!tag":
        return {"tag": v[1], "v": enc(v[2])}
    return {"other": type(v).__name__ + ":" + repr(v)}

sys.setrecursionlimit(20000)
for path in sys.stdin.read().split("\n"):
    if not path:
        continue
    try:
        with open(path, "rb") as f:
            docs = [enc(d) for d in yaml.load_all(f, Loader=L)]
        out = {"ok": docs}
    except BaseException as e:
        out = {"err": type(e).__name__ + ": " + str(e)[:300]}
    sys.stdout.write(json.dumps(out) + "\n")
"#;

/// PyYAML's reading of each file (see [`PYYAML_SCRIPT`]). Panics when python3
/// or PyYAML is missing: the property must not pass by skipping.
fn pyyaml_load(paths: &[PathBuf]) -> Vec<Result<serde_json::Value, String>> {
    use std::io::Write as _;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PYYAML_SCRIPT)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is required for the PyYAML oracle (it is installed with moto)");
    let list: String = paths
        .iter()
        .map(|p| format!("{}\n", p.to_str().expect("utf-8 temp path")))
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(list.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the PyYAML oracle failed (is PyYAML installed? `python3 -c 'import yaml'`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), paths.len(), "PyYAML oracle output is short");
    lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            match v.get("ok") {
                Some(docs) => Ok(docs.clone()),
                None => Err(v["err"].as_str().unwrap_or("?").to_owned()),
            }
        })
        .collect()
}

/// Replaces every `$<Sn>` inside every string of a PyYAML tree by `values[n]`.
fn substitute_json(v: &serde_json::Value, values: &[String]) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::String(s) => J::String(substitute_text(s, values)),
        J::Array(items) => J::Array(items.iter().map(|i| substitute_json(i, values)).collect()),
        J::Object(m) => J::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute_json(x, values)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Replaces every `$<Sn>` in `s` by `values[n]` (in one pass, so a value that
/// itself looks like a reference stays as it is).
fn substitute_text(s: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("$<S") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let n = after[..digits].parse::<usize>().ok();
        match n {
            Some(n) if after[digits..].starts_with('>') && n < values.len() => {
                out.push_str(&values[n]);
                rest = &after[digits + 1..];
            }
            _ => {
                out.push_str("$<S");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Same substitution over an independent Rust reader's tree.
fn substitute_value(v: &Value, values: &[String]) -> Value {
    map_strings(v, &|s| substitute_text(s, values))
}

/// A scratch directory whose catalogue declares `S0..Sn` as files holding `values`.
fn write_case(dir: &Path, config: &str, values: &[String]) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let mut catalogue = String::from("secrets:\n");
    for (i, v) in values.iter().enumerate() {
        let p = dir.join(format!("v{i}"));
        std::fs::write(&p, v).unwrap();
        let pj = serde_json::to_string(p.to_str().unwrap()).unwrap();
        catalogue.push_str(&format!("  S{i}: {{ file: {pj} }}\n"));
    }
    let cat = dir.join("catalogue.yaml");
    std::fs::write(&cat, catalogue).unwrap();
    let cfg = dir.join("config.yaml");
    std::fs::write(&cfg, config).unwrap();
    (cfg, cat)
}

fn keyfill(args: &[&std::ffi::OsStr]) -> Run {
    let out = crate::support::command()
        .args(args)
        .output()
        .expect("spawn keyfill");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Value of key `k` in the single document under the YAML 1.2 reading
/// (granit with its default, test-suite conforming options).
fn yaml12_value_of_k(text: &str) -> Option<String> {
    let mut next_is_value = false;
    let mut depth = 0usize;
    for ev in Parser::new_from_str(text) {
        let (ev, _) = ev.ok()?;
        match ev {
            Event::MappingStart(..) | Event::SequenceStart(..) => depth += 1,
            Event::MappingEnd | Event::SequenceEnd => depth -= 1,
            Event::Scalar(v, ..) if depth == 1 => {
                if next_is_value {
                    return Some(v.into_owned());
                }
                next_is_value = v == "k";
            }
            _ => {}
        }
    }
    None
}

/// Every block-scalar header × with and without a final line break × with and
/// without a reference: the value is exactly the substituted one under PyYAML,
/// a libyaml port, the YAML 1.2 reading and `--format json`; the header is kept
/// whenever it can express the value; a file without references is unchanged.
#[test]
fn block_scalar_at_eof_without_newline_keeps_its_value() {
    const HEADERS: &[(&str, usize)] = &[
        ("|", 2),
        (">", 2),
        ("|+", 2),
        ("|-", 2),
        (">+", 2),
        (">-", 2),
        ("|2", 2),
        ("|2+", 2),
        ("|-2", 2),
        (">1", 1),
        ("|4-", 4),
        ("|  # note", 2),
        (">+ # note", 2),
        ("|1+ #n", 1),
    ];
    const VALUES: &[&str] = &["val", "two\nlines", "val\n", "val\n\n", " lead"];
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for (h, ind) in HEADERS {
        for final_break in [false, true] {
            let nl = if final_break { "\n" } else { "" };
            let pad = " ".repeat(*ind);
            // Without a reference: unchanged bytes.
            let plain = format!("a: 1\nk: {h}\n{pad}text{nl}");
            let dir = tmp.path().join(format!("u{}", cases.len()));
            let (cfg, _) = write_case(&dir, &plain, &[]);
            let run = keyfill(&["render".as_ref(), cfg.as_os_str()]);
            assert_eq!(run.code, Some(0), "{plain:?}\n{run}");
            assert_eq!(run.stdout, plain, "unreferenced block changed");
            for v in VALUES {
                if v.starts_with(' ') && !h.contains(|c: char| c.is_ascii_digit()) {
                    continue; // no block scalar without indicator can start with a space
                }
                let config = format!("a: 1\nk: {h}\n{pad}$<S0>{nl}");
                let marker = format!("a: 1\nk: {h}\n{pad}{MARKER}{nl}");
                let dir = tmp.path().join(format!("c{}", cases.len()));
                let (cfg, cat) = write_case(&dir, &config, &[v.to_string()]);
                let m = dir.join("marker.yaml");
                std::fs::write(&m, &marker).unwrap();
                let run = keyfill(&[
                    "render".as_ref(),
                    cfg.as_os_str(),
                    "--secrets".as_ref(),
                    cat.as_os_str(),
                ]);
                assert_eq!(run.code, Some(0), "{config:?} with {v:?}\n{run}");
                let out = dir.join("out.yaml");
                std::fs::write(&out, &run.stdout).unwrap();
                let json = keyfill(&[
                    "render".as_ref(),
                    cfg.as_os_str(),
                    "--secrets".as_ref(),
                    cat.as_os_str(),
                    "--format".as_ref(),
                    "json".as_ref(),
                ]);
                assert_eq!(json.code, Some(0), "{config:?}\n{json}");
                cases.push((config, v.to_string(), m, out, run.stdout, json.stdout));
            }
        }
    }
    let mut paths = Vec::new();
    for c in &cases {
        paths.push(c.2.clone());
        paths.push(c.3.clone());
    }
    let py = pyyaml_load(&paths);
    let mut errors = Vec::new();
    for (i, (config, v, _, _, out, json)) in cases.iter().enumerate() {
        // The substituted value: the reference replaced in the value as
        // libyaml-family readers read the source.
        let want = match &py[2 * i] {
            Ok(t) => t[0]["map"][1][1].as_str().unwrap().replace(MARKER, v),
            Err(e) => panic!("PyYAML cannot read {config:?}: {e}"),
        };
        let got_py = py[2 * i + 1]
            .as_ref()
            .ok()
            .and_then(|t| t[0]["map"][1][1].as_str().map(str::to_owned));
        let got_serde = load_all(out)
            .ok()
            .and_then(|d| d[0].get("k").and_then(|x| x.as_str().map(str::to_owned)));
        let got_12 = yaml12_value_of_k(out);
        let got_json = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|j| j["k"].as_str().map(str::to_owned));
        for (who, got) in [
            ("PyYAML", &got_py),
            ("yaml_serde", &got_serde),
            ("YAML 1.2 reading", &got_12),
            ("--format json", &got_json),
        ] {
            if got.as_deref() != Some(want.as_str()) {
                errors.push(format!(
                    "{config:?} with {v:?}: {who} reads {got:?}, want {want:?}\noutput: {out:?}"
                ));
            }
        }
        // The header survives when its chomping can say the value.
        let header = config.lines().nth(1).unwrap();
        let out_header = out.lines().nth(1).unwrap_or("");
        let chomp_fits = match (header.contains('-'), header.contains('+')) {
            (true, _) => !want.ends_with('\n'),
            (_, true) => want.ends_with('\n'),
            _ => want.ends_with('\n') && !want.ends_with("\n\n"),
        };
        let folded_multi_line = header.contains('>') && want.trim_end_matches('\n').contains('\n');
        if chomp_fits && !folded_multi_line && out_header != header {
            errors.push(format!(
                "{config:?} with {v:?}: header became {out_header:?}"
            ));
        }
    }
    assert!(
        errors.is_empty(),
        "{} failures:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// Look-alikes and indicator-laden values in block and flow context read back
/// as exactly the string under PyYAML's own scanner, a libyaml port and
/// keyfill's YAML 1.2 reading (`{password: pa?ss}` once broke PyYAML).
#[test]
fn lookalike_values_read_as_the_same_string_under_pyyaml() {
    let mut values: Vec<String> = LOOKALIKES.iter().map(|s| s.to_string()).collect();
    values.extend(
        [
            "pa?ss",
            "a?",
            "?a",
            "a ?b",
            "a:",
            "a:b",
            "a:,b",
            "a:]",
            "a:}",
            "a,b",
            "a[b",
            "a]b",
            "a{b",
            "a}b",
            "a#b",
            "a #b",
            "a: b",
            "1:20",
            "1:20:30.5",
            "0b101",
            "0x1F",
            "0o17",
            "-0x1F",
            "+12",
            "12e3",
            "1_000.5",
            "y",
            "Y",
            "yes",
            "NO",
            "oN",
            "Off",
            "~",
            "=",
            "<<",
            "2001-12-14",
            "2001-12-14 21:59:43.10 -5",
            ".inf",
            "-.Inf",
            ".NaN",
            "-",
            "-a",
            "?",
            ":",
            ":a",
            "-- a",
            "!a",
            "&a",
            "*a",
            "%a",
            "@a",
            "`a",
            "|a",
            ">a",
            "'a",
            "\"a",
            "a'",
            "a\"",
            "a\\b",
            "key: value # c",
            "é?ß",
            "日本:語",
            "\u{1F600}?",
        ]
        .map(str::to_owned),
    );
    const CONTEXTS: &[(&str, &str)] = &[
        ("k: ", "\n"),
        ("k: '", "'\n"),
        ("{k: ", "}\n"),
        ("{k: ", ", z: 1}\n"),
        ("[", ", z]\n"),
        ("k: [", "]\n"),
        ("- ", "\n- z\n"),
        ("{\"k\": \"", "\"}\n"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new();
    for v in &values {
        for (pre, post) in CONTEXTS {
            let config = format!("{pre}$<S0>{post}");
            let dir = tmp.path().join(format!("c{}", cases.len()));
            let (cfg, cat) = write_case(&dir, &config, std::slice::from_ref(v));
            let m = dir.join("marker.yaml");
            std::fs::write(&m, format!("{pre}{MARKER}{post}")).unwrap();
            let run = keyfill(&[
                "render".as_ref(),
                cfg.as_os_str(),
                "--secrets".as_ref(),
                cat.as_os_str(),
            ]);
            assert_eq!(run.code, Some(0), "{config:?} with {v:?}\n{run}");
            let out = dir.join("out.yaml");
            std::fs::write(&out, &run.stdout).unwrap();
            cases.push((config, v.clone(), m, out, run.stdout));
        }
    }
    let mut paths = Vec::new();
    for c in &cases {
        paths.push(c.2.clone());
        paths.push(c.3.clone());
    }
    let py = pyyaml_load(&paths);
    let mut errors = Vec::new();
    for (i, (config, v, m, _, out)) in cases.iter().enumerate() {
        let values = [v.clone()];
        let marker = std::fs::read_to_string(m).unwrap();
        let marker_py = py[2 * i].as_ref().expect("PyYAML reads the marker config");
        let want_py = substitute_json(marker_py, &values)
            .to_string()
            .replace(MARKER, "$<S0>");
        let want_py = substitute_json(&serde_json::from_str(&want_py).unwrap(), &values);
        match &py[2 * i + 1] {
            Ok(got) if *got == want_py => {}
            got => errors.push(format!(
                "{config:?} with {v:?}: PyYAML reads {got:?}, want {want_py:?}\noutput: {out:?}"
            )),
        }
        let want_serde: Vec<Value> = load_all(&marker)
            .unwrap()
            .iter()
            .map(|d| replace_exact(d, MARKER, v))
            .collect();
        match load_all(out) {
            Ok(got) if got == want_serde => {}
            got => errors.push(format!(
                "{config:?} with {v:?}: yaml_serde reads {got:?}\noutput: {out:?}"
            )),
        }
    }
    assert!(
        errors.is_empty(),
        "{} failures:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// A JSON config stays JSON whatever the value: every code point class (C0,
/// DEL, C1, line and paragraph separators, BOM, non-characters, non-BMP) comes
/// out as JSON escapes a strict parser takes (serde_json and Python's `json`),
/// reading back as exactly the value; `--format json` likewise.
#[test]
fn json_config_stays_json_for_every_code_point_class() {
    let mut values: Vec<String> = (0u32..0x20)
        .chain([0x7f])
        .chain(0x80..0xa0)
        .filter_map(char::from_u32)
        .map(|c| format!("a{c}b"))
        .collect();
    values.extend(
        [
            "\u{2028}",
            "\u{2029}",
            "\u{feff}x",
            "\u{fffe}",
            "\u{ffff}",
            "\u{fdd0}",
            "\u{a0}",
            "\u{1F600}",
            "\u{10FFFF}",
            "\u{10000}",
            "\"",
            "\\",
            "/",
            "\\u0041",
            "\\x1B",
            "\u{1b}[31mred\u{1b}[0m",
            "tab\there",
            "cr\rlf\n",
            "",
            "$<S0>",
            "é",
        ]
        .map(str::to_owned),
    );
    let tmp = tempfile::tempdir().unwrap();
    let config = "{\n  \"a\": \"$<S0>\",\n  \"b\": [1, \"pre $<S0> post\"]\n}\n";
    let mut outs = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let dir = tmp.path().join(format!("c{i}"));
        let (cfg, cat) = write_case(&dir, config, std::slice::from_ref(v));
        let args = [
            "render".as_ref(),
            cfg.as_os_str(),
            "--secrets".as_ref(),
            cat.as_os_str(),
        ];
        let run = keyfill(&args);
        assert_eq!(run.code, Some(0), "{v:?}\n{run}");
        let want = serde_json::json!({"a": v, "b": [1, format!("pre {v} post")]});
        let got: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{v:?}: output is not JSON ({e}): {:?}", run.stdout));
        assert_eq!(got, want, "{v:?}");
        let mut jargs = args.to_vec();
        jargs.extend([
            std::ffi::OsStr::new("--format"),
            std::ffi::OsStr::new("json"),
        ]);
        let json = keyfill(&jargs);
        assert_eq!(json.code, Some(0), "{v:?}\n{json}");
        let got: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        assert_eq!(got, want, "{v:?} (--format json)");
        let out = dir.join("out.json");
        std::fs::write(&out, &run.stdout).unwrap();
        outs.push((out, want));
    }
    // Python's strict parser: no raw control characters, no `\x`, no `\0`.
    let script = "import json,sys\nfor p in sys.stdin.read().split('\\n'):\n    \
                  if p: print(json.dumps(json.loads(open(p,encoding='utf-8').read(), strict=True)))";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is required");
    let list: String = outs
        .iter()
        .map(|(p, _)| format!("{}\n", p.display()))
        .collect();
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(list.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python's json refused an output");
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), outs.len());
    for (line, (_, want)) in lines.iter().zip(&outs) {
        let got: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(&got, want);
    }
}

/// `secrets:` with nothing after it, `{}`, `~`, `null`, as the only key and
/// among others at start, middle and end, block and flow: it declares nothing,
/// is removed, and the rest renders.
#[test]
fn empty_secrets_block_declares_nothing() {
    const SPELLINGS: &[&str] = &[
        "secrets:",
        "secrets: {}",
        "secrets: ~",
        "secrets: null",
        "secrets:   # none",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let mut cases: Vec<(String, String)> = Vec::new();
    for s in SPELLINGS {
        cases.push((format!("{s}\n"), "{}\n".into()));
        cases.push((s.to_string(), "{}\n".into()));
        cases.push((format!("{s}\na: 1\nb: x\n"), "a: 1\nb: x\n".into()));
        cases.push((format!("a: 1\n{s}\nb: x\n"), "a: 1\nb: x\n".into()));
        cases.push((format!("a: 1\nb: x\n{s}\n"), "a: 1\nb: x\n".into()));
        cases.push((format!("a: 1\nb: x\n{s}"), "a: 1\nb: x\n".into()));
        cases.push((
            format!("a: 1\r\n{s}\r\nb: x\r\n"),
            "a: 1\r\nb: x\r\n".into(),
        ));
    }
    for s in ["secrets:", "secrets: ", "secrets: {}", "secrets: ~"] {
        cases.push((format!("{{{s}}}\n"), "{}\n".into()));
        cases.push((format!("{{{s}, a: 1}}\n"), "{a: 1}\n".into()));
        cases.push((format!("{{a: 1, {s}}}\n"), "{a: 1}\n".into()));
        cases.push((format!("{{a: 1, {s}, b: 2}}\n"), "{a: 1, b: 2}\n".into()));
    }
    let mut errors = Vec::new();
    for (i, (config, want)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("c{i}"));
        let (cfg, _) = write_case(&dir, config, &[]);
        let run = keyfill(&["render".as_ref(), cfg.as_os_str()]);
        if run.code != Some(0) {
            errors.push(format!("{config:?}: {run}"));
            continue;
        }
        // Flow mappings keep the spaces around the removed entry; the tree is
        // what matters there, the exact bytes in block style.
        let same = if config.starts_with('{') {
            load_all(&run.stdout).ok() == load_all(want).ok()
        } else {
            run.stdout == *want
        };
        if !same {
            errors.push(format!("{config:?}: got {:?}, want {want:?}", run.stdout));
        }
    }
    // With a reference elsewhere, resolved from a catalogue.
    let dir = tmp.path().join("ref");
    let (cfg, cat) = write_case(&dir, "secrets:\nk: $<S0>\n", &["v".into()]);
    let run = keyfill(&[
        "render".as_ref(),
        cfg.as_os_str(),
        "--secrets".as_ref(),
        cat.as_os_str(),
    ]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "k: v\n"),
        "{run}"
    );
    assert!(
        errors.is_empty(),
        "{} failures:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

// ---------------------------------------------------------------------------
// d. Substitution property over the real-world corpus
// ---------------------------------------------------------------------------

pub(crate) fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/realworld-corpus");
    assert!(dir.is_dir(), "corpus not found at {}", dir.display());
    dir
}

/// Corpus files named by MANIFEST.tsv, in its order.
pub(crate) fn corpus_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut lines = manifest.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = header.iter().position(|h| *h == "corpus_path").unwrap();
    lines
        .filter_map(|l| l.split('\t').nth(col))
        .map(|p| dir.join(p))
        .collect()
}

/// Value scalars (not in a key, no tag, non-empty) of the first parse, any style.
pub(crate) fn value_scalars(src: &str) -> Vec<(std::ops::Range<usize>, ScalarStyle)> {
    let mut stack: Vec<(bool, bool, bool)> = Vec::new(); // (map, expect_key, in_key)
    let mut out = Vec::new();
    let enter = |stack: &mut Vec<(bool, bool, bool)>| match stack.last_mut() {
        None => false,
        Some(f) => {
            let key = f.2 || (f.0 && f.1);
            if f.0 {
                f.1 = !f.1;
            }
            key
        }
    };
    for ev in Parser::new_from_str(src) {
        let Ok((ev, span)) = ev else {
            return Vec::new();
        };
        match ev {
            Event::Scalar(_, style, _, tag) => {
                let in_key = enter(&mut stack);
                let Some(r) = span.byte_range() else { continue };
                if !in_key && tag.is_none() && !r.is_empty() {
                    out.push((r, style));
                }
            }
            Event::Alias(_) => {
                enter(&mut stack);
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let in_key = enter(&mut stack);
                stack.push((matches!(ev, Event::MappingStart(..)), true, in_key));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
            }
            _ => {}
        }
    }
    out
}

/// A hostile value from a seeded generator: indicators, line breaks of every
/// kind, look-alike scalars, quotes, backslashes, unicode, controls.
pub(crate) fn seeded_hostile(rng: &mut fastrand::Rng) -> String {
    const WS: &[&str] = &[" ", "\n", "\t", "\r\n", "  ", "\r", "\u{85}", "\u{2028}"];
    match rng.u32(0..12) {
        0..=5 => (0..rng.usize(1..6))
            .map(|_| FRAGMENTS[rng.usize(..FRAGMENTS.len())])
            .collect(),
        6..=7 => LOOKALIKES[rng.usize(..LOOKALIKES.len())].to_owned(),
        8 => {
            let l = LOOKALIKES[rng.usize(..LOOKALIKES.len())];
            let w = WS[rng.usize(..WS.len())];
            if rng.bool() {
                format!("{w}{l}")
            } else {
                format!("{l}{w}")
            }
        }
        9 => (0..rng.usize(1..8))
            .map(|_| match rng.u32(0..4) {
                0 => rng.char('\0'..='\u{a0}'),
                1 => rng.char('\u{a0}'..='\u{fffd}'),
                2 => rng.char('\u{10000}'..='\u{10ffff}'),
                _ => rng.char(' '..='~'),
            })
            .collect(),
        10 => format!(
            "line one\n  indented: {}\n\n- item # not a comment\n",
            FRAGMENTS[rng.usize(..FRAGMENTS.len())]
        ),
        _ => "x".repeat(rng.usize(1..3000)) + FRAGMENTS[rng.usize(..FRAGMENTS.len())],
    }
}

/// Puts `$<Sn>` at a random scalar: in place of it, or before or after its
/// text (inside the quotes), or at the start of a block scalar's line.
fn place_reference(
    src: &str,
    r: &std::ops::Range<usize>,
    style: ScalarStyle,
    n: usize,
    rng: &mut fastrand::Rng,
) -> Option<(std::ops::Range<usize>, String, String)> {
    let reference = format!("$<S{n}>");
    let text = &src[r.clone()];
    match style {
        ScalarStyle::Literal | ScalarStyle::Folded => {
            // Content lines: skip a header line if the span starts at the indicator.
            let mut offsets = Vec::new();
            let mut at = 0;
            for (i, line) in text.split_inclusive('\n').enumerate() {
                let header = i == 0 && text.starts_with(['|', '>']);
                let trimmed = line.trim_start_matches(' ');
                if !header && !trimmed.trim().is_empty() {
                    offsets.push(at + line.len() - trimmed.len());
                }
                at += line.len();
            }
            if offsets.is_empty() {
                return None;
            }
            let o = r.start + offsets[rng.usize(..offsets.len())];
            Some((o..o, reference, "block line".into()))
        }
        _ => {
            let quoted = matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted);
            let (inner_start, inner_end) = if quoted {
                (r.start + 1, r.end - 1)
            } else {
                (r.start, r.end)
            };
            match rng.u32(0..4) {
                0 => Some((inner_start..inner_start, reference, "prefix".into())),
                1 if !src[..inner_end].ends_with(['$', '\\']) => {
                    Some((inner_end..inner_end, reference, "suffix".into()))
                }
                _ => Some((r.clone(), reference, "whole".into())),
            }
        }
    }
}

/// The first place two encoded trees differ, for a readable failure.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> String {
    use serde_json::Value as J;
    match (a, b) {
        (J::Array(x), J::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find(|(_, (p, q))| p != q)
            .map(|(i, (p, q))| first_difference(p, q, &format!("{path}/{i}")))
            .unwrap_or_default(),
        (J::Object(x), J::Object(y)) if x.keys().eq(y.keys()) => x
            .iter()
            .zip(y.values())
            .find(|((_, p), q)| p != q)
            .map(|((k, p), q)| first_difference(p, q, &format!("{path}.{k}")))
            .unwrap_or_default(),
        _ => format!("at {path}: got {a}, want {b}"),
    }
}

struct CorpusCase {
    label: String,
    values: Vec<String>,
    edited: PathBuf,
    output: PathBuf,
}

#[derive(Default)]
struct CorpusTally {
    files: usize,
    not_utf8: usize,
    too_large: usize,
    refused: Vec<String>,
    changed: Vec<String>,
    no_scalars: usize,
    renders: usize,
    sites: usize,
    serde_checked: usize,
    serde_unreadable: usize,
    failures: Vec<String>,
    cases: Vec<CorpusCase>,
}

/// Random scalars of every corpus file keyfill renders become references to
/// hostile values; the output, read by PyYAML (pure-Python scanner, YAML 1.1)
/// and by `yaml_serde` (a libyaml port), must equal the edited file read by the
/// same reader with the values substituted into its tree. Fixed seed
/// (`KEYFILL_CORPUS_SEED` to vary it), `KEYFILL_CORPUS_SITES` sites per file.
#[test]
fn substitution_property_over_realworld_corpus() {
    let env_num = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seed = env_num("KEYFILL_CORPUS_SEED", 0x6b65_7966_696c_6c09);
    let sites_per_render = env_num("KEYFILL_CORPUS_SITES", 6) as usize;
    // PyYAML's pure-Python scanner reads about 200 KB/s: bound each file it reads.
    const MAX_FILE: usize = 48 * 1024;

    let files = corpus_files();
    assert!(files.len() > 1500, "only {} corpus files", files.len());
    let tmp = tempfile::tempdir().unwrap();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let tally = std::sync::Mutex::new(CorpusTally::default());
    let worker = || loop {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(file) = files.get(i) else { break };
        let name = file
            .strip_prefix(corpus_dir())
            .unwrap()
            .display()
            .to_string();
        let mut local = CorpusTally {
            files: 1,
            ..CorpusTally::default()
        };
        corpus_file(
            file,
            &name,
            &tmp.path().join(format!("f{i}")),
            seed,
            sites_per_render,
            MAX_FILE,
            &mut local,
        );
        let mut t = tally.lock().unwrap();
        t.files += local.files;
        t.not_utf8 += local.not_utf8;
        t.too_large += local.too_large;
        t.refused.extend(local.refused);
        t.changed.extend(local.changed);
        t.no_scalars += local.no_scalars;
        t.renders += local.renders;
        t.sites += local.sites;
        t.serde_checked += local.serde_checked;
        t.serde_unreadable += local.serde_unreadable;
        t.failures.extend(local.failures);
        t.cases.extend(local.cases);
    };
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(worker);
        }
    });
    let mut t = tally.into_inner().unwrap();
    t.cases.sort_by(|a, b| a.label.cmp(&b.label));

    // One python3 process reads every edited file and every output.
    let mut paths = Vec::new();
    for c in &t.cases {
        paths.push(c.edited.clone());
        paths.push(c.output.clone());
    }
    let py = pyyaml_load(&paths);
    let mut py_checked = 0;
    let mut py_sites = 0;
    let mut py_unreadable = 0;
    for (i, c) in t.cases.iter().enumerate() {
        let Ok(edited) = &py[2 * i] else {
            py_unreadable += 1;
            continue;
        };
        py_checked += 1;
        py_sites += c.values.len();
        let want = substitute_json(edited, &c.values);
        match &py[2 * i + 1] {
            Ok(got) if *got == want => {}
            Ok(got) => t.failures.push(format!(
                "{}: PyYAML reads the output differently: {}\nvalues: {:?}",
                c.label,
                first_difference(got, &want, ""),
                c.values
            )),
            Err(e) => t.failures.push(format!(
                "{}: PyYAML cannot read the output: {e}\nvalues: {:?}",
                c.label, c.values
            )),
        }
    }
    eprintln!(
        "corpus substitution: {} files ({} not UTF-8, {} over {} KiB, {} refused by keyfill, \
         {} changed without references, {} without value scalars); {} renders with {} \
         substituted scalars; PyYAML checked {} renders ({} scalars; {} files it cannot read); \
         yaml_serde checked {} renders ({} files it cannot read); {} mismatches",
        t.files,
        t.not_utf8,
        t.too_large,
        MAX_FILE / 1024,
        t.refused.len(),
        t.changed.len(),
        t.no_scalars,
        t.renders,
        t.sites,
        py_checked,
        py_sites,
        py_unreadable,
        t.serde_checked,
        t.serde_unreadable,
        t.failures.len()
    );
    for r in t.refused.iter().chain(&t.changed) {
        eprintln!("  skipped {r}");
    }
    assert!(
        py_sites > 2000,
        "too few scalars checked by PyYAML: {py_sites}"
    );
    assert!(
        t.failures.is_empty(),
        "{} mismatches:\n\n{}",
        t.failures.len(),
        t.failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}

/// One corpus file: the unchanged render, then one render with references.
fn corpus_file(
    file: &Path,
    name: &str,
    dir: &Path,
    seed: u64,
    sites_per_render: usize,
    max_file: usize,
    t: &mut CorpusTally,
) {
    let Ok(text) = std::fs::read_to_string(file) else {
        t.not_utf8 += 1;
        return;
    };
    if text.len() > max_file {
        t.too_large += 1;
        return;
    }
    let run = keyfill(&["render".as_ref(), file.as_os_str()]);
    if run.code != Some(0) {
        let why = run.stderr.lines().next().unwrap_or("").to_owned();
        t.refused
            .push(format!("{name}: exit {:?}: {why}", run.code));
        return;
    }
    if run.stdout != text {
        t.changed.push(format!(
            "{name}: rendered changed without references (a `secrets:` block?)"
        ));
        return;
    }
    let sites = value_scalars(&text);
    if sites.is_empty() {
        t.no_scalars += 1;
        return;
    }
    // Per-file seed: the sample does not depend on thread scheduling.
    let h = name.bytes().fold(seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = fastrand::Rng::with_seed(h);
    let mut chosen: Vec<usize> = (0..sites.len()).collect();
    rng.shuffle(&mut chosen);
    chosen.truncate(sites_per_render);
    chosen.sort_unstable();
    let mut edits = Vec::new();
    let mut values = Vec::new();
    let mut how = Vec::new();
    for &s in &chosen {
        let (r, style) = &sites[s];
        if let Some((at, reference, mode)) =
            place_reference(&text, r, *style, values.len(), &mut rng)
        {
            edits.push((at, reference));
            how.push(format!("S{} {mode} {style:?} @{}", values.len(), r.start));
            values.push(seeded_hostile(&mut rng));
        }
    }
    let mut edited = text.clone();
    for (at, reference) in edits.iter().rev() {
        edited.replace_range(at.clone(), reference);
    }
    let (cfg, cat) = write_case(dir, &edited, &values);
    let run = keyfill(&[
        "render".as_ref(),
        cfg.as_os_str(),
        "--secrets".as_ref(),
        cat.as_os_str(),
    ]);
    t.renders += 1;
    t.sites += values.len();
    let label = format!("{name} [{}]", how.join(", "));
    if run.code != Some(0) {
        t.failures.push(format!(
            "{label}: render failed\nvalues: {values:?}\n{}",
            run.stderr
        ));
        return;
    }
    let output = dir.join("output.yaml");
    std::fs::write(&output, &run.stdout).unwrap();
    // The libyaml port, in process.
    match load_all(&edited) {
        Ok(docs) => {
            t.serde_checked += 1;
            let want: Vec<Value> = docs.iter().map(|d| substitute_value(d, &values)).collect();
            match load_all(&run.stdout) {
                Ok(got) if got == want => {}
                Ok(_) => t.failures.push(format!(
                    "{label}: yaml_serde reads the output differently\nvalues: {values:?}"
                )),
                Err(e) => t.failures.push(format!(
                    "{label}: yaml_serde cannot read the output: {e}\nvalues: {values:?}"
                )),
            }
        }
        Err(_) => t.serde_unreadable += 1,
    }
    t.cases.push(CorpusCase {
        label,
        values,
        edited: cfg,
        output,
    });
}

/// Renders `config` with `S0..` = `values` and checks that PyYAML and
/// `yaml_serde` read the output as the config's own reading with the values
/// substituted.
fn assert_reads_back(configs: &[(&str, &[&str])]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    let mut runs = Vec::new();
    for (i, (config, values)) in configs.iter().enumerate() {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        let dir = tmp.path().join(format!("c{i}"));
        let (cfg, cat) = write_case(&dir, config, &values);
        let run = keyfill(&[
            "render".as_ref(),
            cfg.as_os_str(),
            "--secrets".as_ref(),
            cat.as_os_str(),
        ]);
        assert_eq!(run.code, Some(0), "{config:?}\n{run}");
        let out = dir.join("out.yaml");
        std::fs::write(&out, &run.stdout).unwrap();
        let want: Vec<Value> = load_all(config)
            .unwrap()
            .iter()
            .map(|d| substitute_value(d, &values))
            .collect();
        assert_eq!(
            load_all(&run.stdout).unwrap(),
            want,
            "yaml_serde: {config:?}\n{run}"
        );
        paths.extend([cfg, out]);
        runs.push((config.to_string(), values, run.stdout));
    }
    let py = pyyaml_load(&paths);
    for (i, (config, values, out)) in runs.iter().enumerate() {
        let want = substitute_json(py[2 * i].as_ref().unwrap(), values);
        assert_eq!(
            py[2 * i + 1].as_ref().ok(),
            Some(&want),
            "PyYAML: {config:?}\noutput: {out:?}"
        );
    }
}

/// Corpus mismatch (Argo workflow, Ansible playbook): a value with `?` spliced
/// plain into a flow collection ended the scalar for PyYAML.
#[test]
fn question_mark_value_in_flow_collection_reads_back_under_pyyaml() {
    assert_reads_back(&[
        ("dependencies: [A, $<S0>]\n", &["\u{1F600}?"]),
        ("- {name: $<S0>, state: present}\n", &["pa?ss"]),
        ("k: {a: [x, {b: $<S0>}]}\n", &["a?b"]),
        ("k: [$<S0>]\n", &["a ?b"]),
    ]);
}

/// Corpus mismatch (GitHub workflow, Helm template, Home Assistant card): a block
/// scalar that ends the file without a line break gained a `\n` for libyaml
/// readers, and `|+` lost its header.
#[test]
fn block_scalar_ending_the_file_reads_back_under_libyaml() {
    assert_reads_back(&[
        ("run: |\n  set -e\n  echo \"$<S0> done\"", &["1:20\n"]),
        ("run: |\n  set -e\n  echo $<S0>", &["plain"]),
        ("run: |+\n  $<S0>", &["keep"]),
        ("run: >\n  folded\n  $<S0>", &["x"]),
        ("a:\n  b: |-\n    $<S0>", &["line\n\nnext"]),
        ("- |2\n    $<S0>", &[" lead"]),
        ("a: 1\r\nrun: |\r\n  $<S0>", &["x\ny"]),
        ("a: 1\r\nrun: |+ # keep\r\n  $<S0>\r\n", &["x\n"]),
    ]);
}
