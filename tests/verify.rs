//! Local verification (`keyfill::yaml::proof`) against its oracle, the full
//! re-parse: every shape the proof argues for is proven locally and renders the
//! same bytes as `--verify full`; every shape outside it falls back, for the
//! reason given, and still renders (or fails) as the full re-parse does.

// Test helpers fail loudly on broken fixtures.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use granit_parser::ScalarStyle;
use keyfill::render::{Options, Session, Verify};
use keyfill::yaml::scan::Limits;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

use crate::properties::{corpus_files, hostile, seeded_hostile, valid_cases, value_scalars};

/// Renders `yaml` under both verifications; returns the output (the same
/// under both, or `None` from both) and the reason the local one fell back to
/// the full re-parse, if it did.
fn both(yaml: &str) -> (Option<String>, Option<Option<&'static str>>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).expect("write");
    let run = |verify| {
        let opts = Options {
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
            verify,
        };
        let mut s = Session::default();
        let out = s
            .render(&[path.display().to_string()], &[], &opts)
            .map(|o| String::from_utf8(o.to_vec()).expect("utf-8"));
        (out, s)
    };
    let (local, s) = run(Verify::Local);
    let (full, _) = run(Verify::Full);
    assert_eq!(
        local, full,
        "local and full verification disagree on\n{yaml}"
    );
    let fell_back = s.verified.full.first().map(|(_, why)| *why);
    (local, fell_back)
}

/// Renders `yaml` and asserts that every site and the cut were proven
/// locally, and the output is `want`.
#[track_caller]
fn proven(yaml: &str, want: &str) {
    let (out, fell_back) = both(yaml);
    assert_eq!(out.as_deref(), Some(want), "{yaml}");
    assert_eq!(fell_back, None, "fell back on\n{yaml}");
}

/// Renders `yaml` and asserts that local verification fell back (for
/// `why`), and the full re-parse gave `want`.
#[track_caller]
fn falls_back(yaml: &str, want: Option<&str>, why: &str) {
    let (out, fell_back) = both(yaml);
    assert_eq!(out.as_deref(), want, "{yaml}");
    assert_eq!(fell_back, Some(Some(why)), "{yaml}");
}

const DECL: &str = "secrets:\n  A: { value: \"a: b # c\" }\n  N: { value: \"x\\ny\" }\n  P: { value: \"5432\", type: int }\n";

#[test]
fn values_in_block_context_are_proven_locally() {
    proven(
        &format!("{DECL}k: $<A>\nl:\n  - $<N>\n  - x $<A> y\nm: 'q $<A>'\nn: \"$<P>\"\n"),
        "k: 'a: b # c'\nl:\n  - \"x\\ny\"\n  - 'x a: b # c y'\nm: 'q a: b # c'\nn: 5432\n",
    );
}

#[test]
fn values_in_flow_context_are_proven_locally() {
    proven(
        &format!("{DECL}k: [$<A>, {{x: $<N>}},$<P>]\nl: [a,\n$<A>\n]\n"),
        "k: ['a: b # c', {x: \"x\\ny\"},5432]\nl: [a,\n'a: b # c'\n]\n",
    );
}

#[test]
fn a_document_that_is_one_value_is_proven_at_column_0() {
    proven(&format!("{DECL}---\n$<A>\n"), "{}\n---\n'a: b # c'\n");
    proven(&format!("{DECL}--- $<N>\n"), "{}\n--- \"x\\ny\"\n");
}

#[test]
fn a_value_that_reads_as_a_document_marker_at_column_0_is_quoted() {
    for (value, want) in [("... x", "'... x'"), ("--- x", "'--- x'"), ("...", "'...'")] {
        let yaml = format!("secrets:\n  A: {{ value: \"{value}\" }}\n---\n$<A>\n");
        proven(&yaml, &format!("{{}}\n---\n{want}\n"));
    }
}

#[test]
fn properties_and_directives_stay_outside_the_replacement() {
    proven(
        &format!("{DECL}k: !!str $<P>\nl: &x $<A>\nm: *x\n"),
        "k: !!str 5432\nl: &x 'a: b # c'\nm: *x\n",
    );
    proven(
        "%TAG !e! tag:example.com,2000:\n---\nsecrets:\n  A: { value: v }\nk: !e!t $<A>\n",
        "%TAG !e! tag:example.com,2000:\n---\nk: !e!t v\n",
    );
}

#[test]
fn block_scalars_are_proven_with_their_header_and_trailing_lines() {
    proven(
        &format!("{DECL}k: |\n  $<N>\nl: x\n"),
        "k: |\n  x\n  y\nl: x\n",
    );
    proven(
        &format!("{DECL}k: |2 # note\n   $<N>\nl: x\n"),
        "k: |2 # note\n   x\n  y\nl: x\n",
    );
    proven(
        &format!("{DECL}k:\n  - >-\n    $<A>\n\n\nl: x\n"),
        "k:\n  - >-\n    a: b # c\n\n\nl: x\n",
    );
    proven(&format!("{DECL}k: |-\n  $<N>"), "k: |-\n  x\n  y");
}

#[test]
fn keep_chomping_keeps_the_blank_lines_that_follow() {
    let (out, fell_back) = both(&format!("{DECL}k: |+\n  $<N>\n\n\nl: x\n"));
    assert_eq!(fell_back, None);
    assert_eq!(out.as_deref(), Some("k: |+\n  x\n  y\n\n\nl: x\n"));
}

#[test]
fn json_values_are_proven_as_flow_nodes() {
    let yaml = "secrets:\n  J: { value: '{\"a\": [1, \"x: y\"], \"b\": null}', type: json }\nk: $<J>\nl: [$<J>]\n";
    proven(
        yaml,
        "k: {\"a\": [1, \"x: y\"], \"b\": null}\nl: [{\"a\": [1, \"x: y\"], \"b\": null}]\n",
    );
}

#[test]
fn the_cut_of_the_declarations_block_is_proven_where_it_stands() {
    // First entry, with blank lines and comments after it.
    proven(
        "secrets:\n  A: { value: v }\n\n# c\nk: $<A>\n",
        "\n# c\nk: v\n",
    );
    // The only entry.
    proven(
        "# c\n--- !t\nsecrets:\n  A: { value: v }\n# d\n...\n$<A>\n",
        "# c\n--- !t\n{}\n# d\n...\nv\n",
    );
    // After a plain value, before the next key.
    proven(
        "k: $<A>\nsecrets:\n  A: { value: v }\nl: 2\n",
        "k: v\nl: 2\n",
    );
    // Last, after a plain value, then blank lines.
    proven("k: $<A>\nsecrets:\n  A: { value: v }\n\n\n", "k: v\n\n\n");
    // After a block scalar, directly before the next key.
    proven(
        "k: |+\n  t\n\nsecrets:\n  A: { value: v }\nl: $<A>\n",
        "k: |+\n  t\n\nl: v\n",
    );
}

#[test]
fn a_cut_after_a_block_scalar_takes_the_blank_and_comment_lines_after_it() {
    // Left in place, blank lines after the cut joined a keep-chomped scalar
    // before it and indented comments became its content: both modes refused a
    // valid config. They now go with the block, up to the next column-0 line.
    proven(
        "k: |+\n  t\nsecrets:\n  A: { value: v }\n\nl: $<A>\n",
        "k: |+\n  t\nl: v\n",
    );
    proven(
        "k: |\n  t\nsecrets:\n  A: { value: v }\n  # n\n\nl: $<A>\n",
        "k: |\n  t\nl: v\n",
    );
    // A comment at column 0 ends the scalar, and stays.
    proven(
        "k: |+\n  t\nsecrets:\n  A: { value: v }\n# top\nl: $<A>\n",
        "k: |+\n  t\n# top\nl: v\n",
    );
    // At the end of the file.
    proven(
        "l: $<A>\nk: |+\n  t\nsecrets:\n  A: { value: v }\n\n\n",
        "l: v\nk: |+\n  t\n",
    );
}

#[test]
fn shapes_outside_the_proof_fall_back_to_the_full_re_parse() {
    falls_back(
        "{secrets: {A: {value: v}}, k: $<A>}\n",
        Some("{k: v}\n"),
        "a declarations block in a flow mapping",
    );
    falls_back(
        "secrets:\n  A: { value: v }\nk: {\"j\":$<A>}\n",
        Some("k: {\"j\":v}\n"),
        "the text before the value touches it",
    );
    falls_back(
        "secrets:\n  P: { value: \"5\", type: int }\nk: |-\n  $<P>\nl: 1\n",
        Some("k: 5\nl: 1\n"),
        "plain text in place of a block scalar",
    );
}

/// Shapes the full re-parse refuses today (the emitted text does not read as
/// the substituted tree): local verification must not accept them, and it
/// proves the same shapes without the condition that breaks them.
#[test]
fn keep_chomping_leaves_the_next_lines_indentation_in_place() {
    // The region of a `|+` scalar ended after the next line's indentation: a
    // sibling key lost its indentation (refused), a comment moved to column 0.
    proven(
        "secrets:\n  S: { value: v }\na:\n  b: |+\n    $<S>\n  c: 1\n",
        "a:\n  b: |+\n    v\n  c: 1\n",
    );
    proven(
        "secrets:\n  S: { value: v }\na:\n  b: |+\n    $<S>\n  # x\n  c: 1\n",
        "a:\n  b: |+\n    v\n  # x\n  c: 1\n",
    );
    proven(
        "secrets:\n  S: { value: v }\na:\n  - >+\n    $<S>\n\n  - 1\n",
        "a:\n  - >+\n    v\n\n  - 1\n",
    );
}

#[test]
fn a_root_block_scalar_without_a_document_marker_keeps_its_header() {
    // An implicit document starts with its first token's span, which hid the
    // `|` from the search for the header: the header was written twice.
    let mut oracle = Oracle::new();
    oracle.deliver(&["v".to_owned()], Delivery::Inline, true);
    let opts = oracle_options(true, false);
    for yaml in [
        "|\n literal\n $<S0>\n",
        ">\n $<S0>\n",
        "---\n|\n literal\n $<S0>\n",
    ] {
        oracle.check(yaml, 1, true, &opts).unwrap();
    }
    assert_eq!(oracle.tally.proven, 3, "{:?}", oracle.tally);
}

#[test]
fn crlf_and_byte_order_mark_inputs_are_proven() {
    proven(
        "secrets:\r\n  A: { value: v }\r\nk: $<A>\r\nl: |\r\n  $<A>\r\n",
        "k: v\r\nl: |\r\n  v\r\n",
    );
    let (out, _) = both("\u{feff}secrets:\n  A: { value: \"... x\" }\n---\n$<A>\n");
    assert_eq!(out.as_deref(), Some("\u{feff}{}\n---\n'... x'\n"));
}

#[test]
fn a_root_block_scalar_whose_header_is_not_in_the_region_falls_back() {
    // An implicit document's start shares its span with a root block
    // scalar's content, so the scan missed the `|`/`>` header; when the first
    // content line was one character, or began with a multi-byte one, the
    // emitted text still read as the value on its probe, and the original
    // header stayed in front of it (`|\n  |\n  {…`).
    let decl = "secrets:\n  A: { value: v }\n...\n";
    for (body, want) in [
        (
            "|\n  {\n    \"token\": \"$<A>\"\n  }\n",
            "|\n  {\n    \"token\": \"v\"\n  }\n",
        ),
        ("|\n  é$<A>\n", "|\n  év\n"),
        ("# c\n|-\n  é$<A>\n", "# c\n|-\n  év\n"),
        (">\n\n\n\u{feff}$<A>\n", "\"\\n\\n\\uFEFFv\\n\"\n"),
    ] {
        let (out, _) = both(&format!("{decl}{body}"));
        if let Some(out) = out {
            assert_eq!(out, format!("{{}}\n...\n{want}"), "{body}");
        }
    }
}

// ---------------------------------------------------------------------------
// The oracle over generated inputs: whatever local verification accepts, the
// full re-parse accepts too, with the same bytes (or both refuse).
// ---------------------------------------------------------------------------

/// Shares of substitutions proven locally below which a test fails (measured
/// at the default sizes: suite 97.6%, corpus 100%, generated configs 82.0%).
const SUITE_FLOOR: f64 = 0.93;
const CORPUS_FLOOR: f64 = 0.97;
const GENERATED_FLOOR: f64 = 0.78;

/// Secret names generated configs use: `S0`..`S3`.
const SECRETS: usize = 4;

/// Most secrets one oracle render declares (`S0`..`S15`).
const MOST_SECRETS: usize = 16;

/// `value` as a YAML double-quoted scalar that reads as exactly `value`:
/// printable text raw, everything else escaped.
fn double_quoted(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        let n = u32::from(c);
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ if n >= 0xa0 && !matches!(n, 0x2028 | 0x2029 | 0xfeff | 0xfffe | 0xffff) => {
                out.push(c)
            }
            _ if n <= 0xffff => out.push_str(&format!("\\u{n:04x}")),
            _ => out.push_str(&format!("\\U{n:08x}")),
        }
    }
    out.push('"');
    out
}

/// How the secrets' values reach keyfill.
#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// `S: { file: PATH }` in a `--secrets` catalogue: the file's exact bytes.
    File,
    /// `S: { value: "..." }` in a `--secrets` catalogue.
    Inline,
}

/// What the oracle saw over many renders.
#[derive(Debug, Default)]
struct Tally {
    /// Renders (each under both verifications).
    renders: usize,
    /// Renders both verifications refused.
    refused: usize,
    /// Substitution sites in renders proven locally.
    proven: usize,
    /// Substitution sites in renders that fell back to the full re-parse.
    fell_back: usize,
    /// Renders that fell back, by reason.
    reasons: BTreeMap<&'static str, usize>,
    /// Renders both refused, by the first error (digits and names dropped).
    refusals: BTreeMap<String, usize>,
    /// Disagreements.
    failures: Vec<String>,
}

impl Tally {
    fn share(&self) -> f64 {
        self.proven as f64 / (self.proven + self.fell_back).max(1) as f64
    }

    fn print(&self, what: &str) {
        eprintln!(
            "{what}: {} renders ({} refused by both), {} sites proven locally, {} in renders \
             parsed again in full: {:.1}% proven",
            self.renders,
            self.refused,
            self.proven,
            self.fell_back,
            100.0 * self.share()
        );
        let mut reasons: Vec<_> = self.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1));
        for (why, n) in reasons {
            eprintln!("  {n:6} fell back: {why}");
        }
        let mut refusals: Vec<_> = self.refusals.iter().collect();
        refusals.sort_by(|a, b| b.1.cmp(a.1));
        for (why, n) in refusals.iter().take(10) {
            eprintln!("  {n:6} refused: {why}");
        }
    }

    /// Fails when fewer than `floor` of the substitutions were proven
    /// locally, or fewer than `rendered` of the renders succeeded: a change
    /// that sends everything to the full re-parse, or a generator that only
    /// makes broken configs, must not pass unnoticed.
    fn assert_floor(&self, floor: f64, rendered: f64) {
        assert!(
            self.share() >= floor,
            "only {:.1}% of substitutions proven locally (floor {:.0}%)",
            100.0 * self.share(),
            100.0 * floor
        );
        let ok = (self.renders - self.refused) as f64 / self.renders.max(1) as f64;
        assert!(
            ok >= rendered,
            "only {:.1}% of renders succeeded (floor {:.0}%)",
            100.0 * ok,
            100.0 * rendered
        );
    }

    fn assert_agreed(&self) {
        assert!(
            self.failures.is_empty(),
            "{} disagreements between local and full verification:\n\n{}",
            self.failures.len(),
            self.failures[..self.failures.len().min(20)].join("\n\n")
        );
    }
}

/// A scratch directory with a config, value files for `S0`.. and catalogues
/// declaring them; renders in process under both verifications.
struct Oracle {
    _dir: tempfile::TempDir,
    config: PathBuf,
    values: Vec<PathBuf>,
    catalogue: PathBuf,
    tally: Tally,
}

impl Oracle {
    fn new() -> Oracle {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yaml");
        let catalogue = dir.path().join("catalogue.yaml");
        let values = (0..MOST_SECRETS)
            .map(|i| dir.path().join(format!("s{i}.txt")))
            .collect();
        Oracle {
            _dir: dir,
            config,
            values,
            catalogue,
            tally: Tally::default(),
        }
    }

    /// `S{i}: { file: PATH }`, the path as a double-quoted scalar.
    fn file_entry(&self, i: usize) -> String {
        let path = self.values[i].to_str().unwrap();
        format!("{{ file: {} }}", double_quoted(path))
    }

    /// Writes the value files and the catalogue (empty with `catalogue` off:
    /// the config declares its own).
    fn deliver(&self, values: &[String], how: Delivery, catalogue: bool) {
        let mut cat = String::from("secrets:\n");
        for (i, v) in values.iter().enumerate() {
            std::fs::write(&self.values[i], v).unwrap();
            // An inline value is read for references: one that holds
            // reference syntax comes from its file instead.
            let entry = match how {
                Delivery::Inline if !v.contains("$<") && !v.contains("<<") => {
                    format!("{{ value: {} }}", double_quoted(v))
                }
                _ => self.file_entry(i),
            };
            cat.push_str(&format!("  S{i}: {entry}\n"));
        }
        if catalogue {
            std::fs::write(&self.catalogue, cat).unwrap();
        }
    }

    /// Renders `config` (with `sites` substitution sites) under both
    /// verifications; a disagreement is returned.
    fn check(
        &mut self,
        config: &str,
        sites: usize,
        catalogue: bool,
        opts: &Options,
    ) -> Result<(), String> {
        std::fs::write(&self.config, config).unwrap();
        let inputs = [self.config.display().to_string()];
        let catalogues = if catalogue {
            vec![self.catalogue.display().to_string()]
        } else {
            Vec::new()
        };
        let run = |verify| {
            let opts = Options {
                verify,
                ..opts.clone()
            };
            let mut s = Session::default();
            let out = s.render(&inputs, &catalogues, &opts).map(|o| o.to_vec());
            (out, s)
        };
        let (local, s) = run(Verify::Local);
        let (full, f) = run(Verify::Full);
        let t = &mut self.tally;
        t.renders += 1;
        if local != full {
            let show = |o: &Option<Vec<u8>>| match o {
                None => "refused".to_owned(),
                Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
            };
            let msg = format!(
                "local: {}\nfull:  {}\nverified locally: {:?}\nfull's diagnostics: {:?}\nconfig: {config:?}",
                show(&local),
                show(&full),
                s.verified,
                f.diags.items(),
            );
            return Err(msg);
        }
        if local.is_none() {
            t.refused += 1;
            let first = f
                .diags
                .iter()
                .find(|d| format!("{d:?}").contains("severity: Error"))
                .map(|d| {
                    let m = d.to_string();
                    // Group by the message's shape: names and numbers out.
                    let mut quoted = false;
                    m.chars()
                        .filter(|c| {
                            quoted ^= *c == '`';
                            !quoted && !c.is_ascii_digit() && *c != '`'
                        })
                        .collect()
                })
                .unwrap_or_default();
            if std::env::var_os("KEYFILL_ORACLE_SHOW").is_some() {
                eprintln!("refused ({first}): {config:?}");
            }
            *t.refusals.entry(first).or_default() += 1;
        } else if let Some((_, why)) = s.verified.full.first() {
            t.fell_back += sites;
            *t.reasons.entry(why.unwrap_or("(full)")).or_default() += 1;
        } else {
            t.proven += sites;
        }
        Ok(())
    }
}

/// Render settings as the command line's defaults.
fn oracle_options(secrets_block: bool, strict_yaml: bool) -> Options {
    Options {
        strict: false,
        redact: false,
        json: false,
        limits: Limits {
            max_depth: 128,
            max_aliases: 10_000,
            strict_yaml,
        },
        max_input: 256 << 20,
        max_secret: 16 << 20,
        max_output: 1 << 30,
        export: false,
        secrets_key: "secrets".to_owned(),
        secrets_block,
        verify: Verify::Local,
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A stable 64-bit hash (FNV-1a) for per-item seeds.
fn fnv(seed: u64, s: &str) -> u64 {
    s.bytes().fold(seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The ways a reference takes the place of a value scalar (`form`), or of
/// a line of a block scalar: (region to replace, text).
fn reference_at(
    src: &str,
    r: &std::ops::Range<usize>,
    style: ScalarStyle,
    n: usize,
    form: u8,
    line: usize,
) -> Option<(std::ops::Range<usize>, String)> {
    let reference = format!("$<S{n}>");
    match style {
        ScalarStyle::Literal | ScalarStyle::Folded => {
            // Content lines (not the header, if the span starts there):
            // (start of its text, end of the line).
            let text = &src[r.clone()];
            let mut lines = Vec::new();
            let mut at = r.start;
            for (i, l) in text.split_inclusive(['\n']).enumerate() {
                let header = i == 0 && text.starts_with(['|', '>']);
                let body = l.trim_end_matches(['\n', '\r']);
                let trimmed = body.trim_start_matches(' ');
                if !header && !trimmed.trim().is_empty() {
                    lines.push((at + body.len() - trimmed.len(), at + body.len()));
                }
                at += l.len();
            }
            let &(s, e) = lines.get(line % lines.len().max(1))?;
            Some(match form % 3 {
                0 => (s..e, reference),
                1 => (s..s, format!("{reference} ")),
                _ => (e..e, format!(" {reference}")),
            })
        }
        _ => Some((
            r.clone(),
            match form % 4 {
                0 => reference,
                1 => format!("x {reference} y"),
                2 => format!("'{reference}'"),
                _ => format!("\"{reference}\""),
            },
        )),
    }
}

/// Applies `(region, text)` edits (disjoint) to `src`.
fn apply(src: &str, mut edits: Vec<(std::ops::Range<usize>, String)>) -> String {
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    let mut out = src.to_owned();
    for (r, t) in edits {
        out.replace_range(r, &t);
    }
    out
}

/// 1–3 distinct value scalars of a case, each with a form and a line.
fn choices() -> impl Strategy<Value = Vec<(usize, u8, usize)>> {
    proptest::collection::vec((any::<usize>(), any::<u8>(), 0..8usize), 1..=3)
}

/// Edits of `src` for `choices`: each scalar at most once.
fn place(
    src: &str,
    scalars: &[(std::ops::Range<usize>, ScalarStyle)],
    choices: &[(usize, u8, usize)],
) -> Vec<(std::ops::Range<usize>, String)> {
    let mut used = Vec::new();
    let mut edits = Vec::new();
    for (index, form, line) in choices {
        let i = index % scalars.len();
        if used.contains(&i) {
            continue;
        }
        used.push(i);
        let (r, style) = &scalars[i];
        if let Some(e) = reference_at(src, r, *style, edits.len(), *form, *line) {
            edits.push(e);
        }
    }
    edits
}

/// The official YAML test suite's valid cases, with 1–3 value scalars (any
/// style) replaced by references to hostile values (whole, embedded, quoted,
/// a block scalar's line), by file or inline: local and full agree.
/// `KEYFILL_ORACLE_SUITE` values per case (default 6).
#[test]
fn oracle_over_the_yaml_test_suite() {
    let per_case = env_num("KEYFILL_ORACLE_SUITE", 6) as u32;
    let mut oracle = Oracle::new();
    let opts = oracle_options(false, false);
    let cases = valid_cases();
    assert!(cases.len() > 250, "only {} valid cases", cases.len());
    let mut with_scalars = 0;
    for (id, text) in &cases {
        let scalars = value_scalars(text);
        if scalars.is_empty() {
            continue;
        }
        with_scalars += 1;
        let oracle = RefCell::new(&mut oracle);
        let mut runner = TestRunner::new(Config {
            cases: per_case,
            max_shrink_iters: 500,
            failure_persistence: None,
            rng_seed: RngSeed::Fixed(fnv(0x6f72_6163_6c65, id)),
            ..Config::default()
        });
        let strategy = (
            choices(),
            proptest::collection::vec(hostile(), SECRETS),
            any::<bool>(),
        );
        let result = runner.run(&strategy, |(choices, values, inline)| {
            let edits = place(text, &scalars, &choices);
            let config = apply(text, edits.clone());
            let mut o = oracle.borrow_mut();
            let how = if inline {
                Delivery::Inline
            } else {
                Delivery::File
            };
            o.deliver(&values[..edits.len()], how, true);
            o.check(&config, edits.len(), true, &opts)
                .map_err(|e| TestCaseError::fail(format!("{id} ({how:?}), values {values:?}\n{e}")))
        });
        match result {
            Ok(()) => {}
            Err(TestError::Fail(why, _)) => oracle
                .borrow_mut()
                .tally
                .failures
                .push(format!("minimal: {why}")),
            Err(e) => panic!("{id}: {e}"),
        }
    }
    eprintln!(
        "suite oracle: {} valid cases, {with_scalars} with value scalars",
        cases.len()
    );
    oracle.tally.print("suite oracle");
    oracle.tally.assert_agreed();
    oracle.tally.assert_floor(SUITE_FLOOR, 0.85);
}

/// Every file of the real-world corpus (`KEYFILL_ORACLE_CORPUS=N`: every Nth,
/// default 1), with 1 to `KEYFILL_ORACLE_SITES` (3) random value scalars
/// turned into references to seeded hostile values (`KEYFILL_ORACLE_SEED`),
/// by file or inline: local and full agree, and most substitutions are
/// proven locally.
#[test]
fn oracle_over_the_realworld_corpus() {
    let stride = env_num("KEYFILL_ORACLE_CORPUS", 1).max(1) as usize;
    let seed = env_num("KEYFILL_ORACLE_SEED", 0x6b65_7966_696c_6c0b);
    let most = (env_num("KEYFILL_ORACLE_SITES", 3) as usize).clamp(1, MOST_SECRETS);
    let files = corpus_files();
    assert!(files.len() > 1500, "only {} corpus files", files.len());
    let mut oracle = Oracle::new();
    let opts = oracle_options(false, false);
    let mut unreadable = 0;
    let mut no_scalars = 0;
    for file in files.iter().step_by(stride) {
        let name = file.display().to_string();
        let Ok(text) = std::fs::read_to_string(file) else {
            unreadable += 1;
            continue;
        };
        let scalars = value_scalars(&text);
        if scalars.is_empty() {
            no_scalars += 1;
            continue;
        }
        let mut rng = fastrand::Rng::with_seed(fnv(seed, &name));
        let choices: Vec<(usize, u8, usize)> = (0..rng.usize(1..=most))
            .map(|_| (rng.usize(..), rng.u8(..), rng.usize(..8)))
            .collect();
        let edits = place(&text, &scalars, &choices);
        let values: Vec<String> = (0..edits.len()).map(|_| seeded_hostile(&mut rng)).collect();
        let how = if rng.bool() {
            Delivery::Inline
        } else {
            Delivery::File
        };
        let config = apply(&text, edits.clone());
        oracle.deliver(&values, how, true);
        if let Err(e) = oracle.check(&config, edits.len(), true, &opts) {
            let places: Vec<_> = edits.iter().map(|(r, t)| format!("{t} @{r:?}")).collect();
            oracle.tally.failures.push(format!(
                "{name} ({how:?}) {places:?}, values {values:?}\n{e}"
            ));
        }
    }
    let t = &oracle.tally;
    eprintln!(
        "corpus oracle: {} files (every {stride}th), {unreadable} not UTF-8, {no_scalars} \
         without value scalars",
        files.len()
    );
    t.print("corpus oracle");
    t.assert_agreed();
    t.assert_floor(CORPUS_FLOOR, 0.95);
}

// ---------------------------------------------------------------------------
// Generated configs
// ---------------------------------------------------------------------------

/// A node of a generated document.
#[derive(Clone, Debug)]
enum Gen {
    /// A scalar without a reference (index into [`SCALARS`]).
    Scalar(usize),
    /// A scalar with references to `S{secret}` in one of [`ref_text`]'s forms.
    Ref(usize, u8),
    /// A block scalar: header (index into [`HEADERS`]) and lines, each
    /// a reference to `S{n}` with a form, or text.
    Block(usize, Vec<Option<(usize, u8)>>),
    /// An alias of the last anchor (a plain scalar if there is none yet).
    Alias,
    /// A block mapping (a flow one in flow context).
    Map(Vec<Item>),
    /// A block sequence (a flow one in flow context).
    Seq(Vec<Item>),
    /// A flow mapping, on one line or several (then how its lines are indented).
    FlowMap(Vec<Item>, Option<u8>),
    /// A flow sequence, on one line or several.
    FlowSeq(Vec<Item>, Option<u8>),
}

/// A node with its decorations.
#[derive(Clone, Debug)]
struct Item {
    node: Gen,
    /// Anchor `&a` and tag (index into [`TAGS`], 0 for none).
    anchor: bool,
    tag: usize,
    /// A comment after it, blank lines before it (in a block collection).
    comment: bool,
    blank: u8,
    /// A key style (in a mapping).
    key: u8,
}

/// Scalars without references, each valid in block and flow context.
#[rustfmt::skip]
const SCALARS: &[&str] = &[
    "plain", "1", "true", "~", "null", "-1.5", "2001-12-14", "x y", "http://h:1/p?q=1",
    "'single'", "'it''s'", "\"dbl \\\" q\"", "\"a\\nb\"", "''", "\"\"", "a:b", "$$<S0>", "-x",
    "'# not'", "\"#\"", "yes", "0x1F",
];

/// Block scalar headers; a digit is the content's indentation over the parent's.
#[rustfmt::skip]
const HEADERS: &[&str] = &[
    "|", ">", "|-", "|+", ">-", ">+", "|2", ">2-", "|+2", "| # c", "|- # c", ">+ # c", "|2 # c",
];

/// Tags put on nodes (0: none).
const TAGS: &[&str] = &["", "!!str ", "!t ", "!e!x ", "!!map ", "!<tag:x,1:y> "];

/// Text lines of a block scalar.
const LINES: &[&str] = &[
    "text",
    "a: b # c",
    "- item",
    "  more indented",
    "\"q\"",
    "$$<S1>",
    "",
];

/// The forms of a reference in a value: whole, embedded, quoted, two
/// references, a multi-line plain or double-quoted scalar (continued at
/// `cont` spaces).
fn ref_text(n: usize, form: u8, flow: bool, cont: usize) -> String {
    let r = format!("$<S{n}>");
    let next = (n + 1) % SECRETS;
    let pad = " ".repeat(cont);
    match form % 9 {
        0 | 1 => r,
        2 => format!("x {r} y"),
        3 => format!("'{r}'"),
        4 => format!("\"{r}\""),
        5 => format!("{r}-$<S{next}>"),
        6 => format!("'a {r}''s'"),
        7 if !flow => format!("{r} x\n{pad}y"),
        7 => format!("\"{r}\n{pad}y\""),
        _ => format!("\"a\\\n{pad}{r}\""),
    }
}

fn item(node: impl Strategy<Value = Gen> + Clone) -> impl Strategy<Value = Item> + Clone {
    (
        node,
        prop::bool::weighted(0.1),
        prop_oneof![8 => Just(0usize), 1 => 1..TAGS.len()],
        prop::bool::weighted(0.2),
        prop_oneof![8 => Just(0u8), 1 => 1..3u8],
        any::<u8>(),
    )
        .prop_map(|(node, anchor, tag, comment, blank, key)| Item {
            node,
            anchor,
            tag,
            comment,
            blank,
            key,
        })
}

fn gen_node() -> impl Strategy<Value = Gen> + Clone {
    let leaf = prop_oneof![
        3 => (0..SCALARS.len()).prop_map(Gen::Scalar),
        4 => (0..SECRETS, any::<u8>()).prop_map(|(n, f)| Gen::Ref(n, f)),
        2 => (
            0..HEADERS.len(),
            proptest::collection::vec(
                prop_oneof![2 => Just(None), 1 => (0..SECRETS, any::<u8>()).prop_map(Some)],
                1..4
            )
        )
            .prop_map(|(h, lines)| Gen::Block(h, lines)),
        1 => Just(Gen::Alias),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        let items = proptest::collection::vec(item(inner), 0..4);
        let layout = prop_oneof![2 => Just(None), 1 => (0..4u8).prop_map(Some)];
        prop_oneof![
            3 => items.clone().prop_map(Gen::Map),
            2 => items.clone().prop_map(Gen::Seq),
            1 => (items.clone(), layout.clone()).prop_map(|(i, l)| Gen::FlowMap(i, l)),
            1 => (items, layout).prop_map(|(i, l)| Gen::FlowSeq(i, l)),
        ]
    })
}

/// Writes generated documents as YAML text.
#[derive(Default)]
struct Writer {
    out: String,
    /// Whether an anchor was written (aliases refer to it).
    anchored: bool,
    /// References written, by secret.
    refs: [usize; SECRETS],
    /// Scalars written with references in them: the substitution sites.
    sites: usize,
    /// A counter making every key of a mapping distinct.
    keys: usize,
    /// Whether the `!e!` handle is declared for the document being written.
    handle: bool,
}

impl Writer {
    fn props(&mut self, it: &Item) -> String {
        let mut p = String::new();
        if it.anchor {
            p.push_str("&a ");
            self.anchored = true;
        }
        p.push_str(match TAGS[it.tag] {
            "!e!x " if !self.handle => "!t ",
            t => t,
        });
        p
    }

    fn key(&mut self, style: u8, flow: bool, ind: usize) -> String {
        self.keys += 1;
        let k = self.keys;
        match style % 6 {
            0 | 2 => format!("k{k}: "),
            1 => format!("k{k}:\t"),
            3 => format!("\"k{k}\": "),
            4 if flow => format!("\"k{k}\":"),
            4 => format!("'k{k}': "),
            _ => format!("? k{k}\n{}: ", " ".repeat(ind)),
        }
    }

    fn reference(&mut self, n: usize, form: u8, flow: bool, cont: usize) -> String {
        self.refs[n] += 1;
        self.sites += 1;
        if form % 9 == 5 {
            self.refs[(n + 1) % SECRETS] += 1;
        }
        ref_text(n, form, flow, cont)
    }

    /// A node in flow context (nested flow collections at `ind`).
    fn flow(&mut self, it: &Item, ind: usize) -> String {
        if matches!(it.node, Gen::Alias) && self.anchored {
            // An alias has no properties; its name ends at a blank or a flow
            // indicator.
            return "*a ".to_owned();
        }
        let props = self.props(it);
        let body = match &it.node {
            Gen::Scalar(i) => SCALARS[*i].to_owned(),
            Gen::Ref(n, f) => self.reference(*n, *f, true, ind + 1),
            Gen::Block(_, lines) => match lines.iter().flatten().next() {
                Some(&(n, f)) => self.reference(n, f, true, ind + 1),
                None => "\"block\"".to_owned(),
            },
            Gen::Alias => "alias".to_owned(),
            Gen::Map(items) | Gen::FlowMap(items, None) => self.flow_map(items, None, ind),
            Gen::FlowMap(items, l) => self.flow_map(items, *l, ind),
            Gen::Seq(items) | Gen::FlowSeq(items, None) => self.flow_seq(items, None, ind),
            Gen::FlowSeq(items, l) => self.flow_seq(items, *l, ind),
        };
        format!("{props}{body}")
    }

    /// Continuation lines of a multi-line flow collection: indented more than
    /// its parent, or (lenient readers) less.
    fn flow_layout(layout: Option<u8>, ind: usize) -> Option<(String, String)> {
        let l = layout?;
        let (items, close) = match l % 4 {
            0 => (ind + 2, ind + 1),
            1 => (ind + 2, ind + 2),
            2 => (ind + 1, 0),
            _ => (0, 0),
        };
        Some((
            format!("\n{}", " ".repeat(items)),
            format!("\n{}", " ".repeat(close)),
        ))
    }

    /// Between flow entries: the line break and indentation of a multi-line
    /// collection, else a space or (JSON-like) nothing.
    fn comma(sep: &str, items: &[Item]) -> String {
        match (sep, items.first()) {
            ("", Some(it)) if it.key % 3 == 0 => ",".to_owned(),
            ("", _) => ", ".to_owned(),
            (sep, _) => format!(",{sep}"),
        }
    }

    fn flow_map(&mut self, items: &[Item], layout: Option<u8>, ind: usize) -> String {
        let (sep, close) = Self::flow_layout(layout, ind).unwrap_or_default();
        let mut parts = Vec::new();
        for it in items {
            let k = self.key(it.key % 5, true, 0);
            let v = self.flow(it, ind + 2);
            parts.push(format!("{k}{v}"));
        }
        let joined = parts.join(&Self::comma(&sep, items));
        if items.is_empty() {
            "{}".to_owned()
        } else if sep.is_empty() {
            format!("{{{joined}}}")
        } else {
            format!("{{{sep}{joined}{close}}}")
        }
    }

    fn flow_seq(&mut self, items: &[Item], layout: Option<u8>, ind: usize) -> String {
        let (sep, close) = Self::flow_layout(layout, ind).unwrap_or_default();
        let parts: Vec<String> = items.iter().map(|it| self.flow(it, ind + 2)).collect();
        let joined = parts.join(&Self::comma(&sep, items));
        if items.is_empty() {
            "[]".to_owned()
        } else if sep.is_empty() {
            format!("[{joined}]")
        } else {
            format!("[{sep}{joined}{close}]")
        }
    }

    /// A node in block context after `key: ` or `- ` (or at the root), its
    /// parent at column `ind`; ends with a line break.
    fn block(&mut self, it: &Item, ind: usize, in_map: bool) {
        let comment = if it.comment { " # c" } else { "" };
        match &it.node {
            Gen::Map(items) if !items.is_empty() => {
                let props = self.props(it);
                self.out
                    .push_str(&format!("{}{comment}\n", props.trim_end()));
                self.block_map(items, ind + 2);
            }
            Gen::Seq(items) if !items.is_empty() => {
                let props = self.props(it);
                self.out
                    .push_str(&format!("{}{comment}\n", props.trim_end()));
                // A sequence in a mapping may stand at the mapping's column.
                let at = if in_map && it.key % 2 == 1 {
                    ind
                } else {
                    ind + 2
                };
                self.block_seq(items, at);
            }
            Gen::Block(h, lines) => {
                let props = self.props(it);
                let header = HEADERS[*h];
                self.out.push_str(&format!("{props}{header}\n"));
                // Content at the parent's column plus the header's digit, or
                // (detected) two or four columns in.
                let deeper = !header.contains(char::is_numeric) && it.key % 4 == 3;
                let pad = " ".repeat(ind + if deeper { 4 } else { 2 });
                let sites = self.sites;
                for (i, l) in lines.iter().enumerate() {
                    let text = match l {
                        Some((n, f)) => {
                            let r = self.reference(*n, *f % 5, false, 0);
                            match f % 3 {
                                0 => r,
                                1 => format!("{r} tail"),
                                _ => format!("head {r}"),
                            }
                        }
                        None => LINES[(i + usize::from(it.key)) % LINES.len()].to_owned(),
                    };
                    // The first line sets the indentation unless the header does.
                    let text = if i == 0 && !header.contains(char::is_numeric) {
                        text.trim_start().to_owned()
                    } else {
                        text
                    };
                    if text.is_empty() {
                        self.out.push('\n');
                    } else {
                        self.out.push_str(&format!("{pad}{text}\n"));
                    }
                }
                // One block scalar is one site, whatever its references.
                self.sites = self.sites.min(sites + 1);
            }
            _ => {
                // A mapping's value may start on the next line, indented.
                let own_line = in_map && it.key % 7 == 6;
                if own_line {
                    self.out.push_str(&format!("\n{}", " ".repeat(ind + 2)));
                }
                let text = match &it.node {
                    Gen::Ref(n, f) => {
                        let props = self.props(it);
                        format!("{props}{}", self.reference(*n, *f, false, ind + 2))
                    }
                    _ => self.flow(it, ind),
                };
                self.out.push_str(&format!("{text}{comment}\n"));
            }
        }
    }

    fn gap(&mut self, it: &Item, ind: usize) {
        for b in 0..it.blank {
            match (usize::from(b) + usize::from(it.key)) % 3 {
                0 => self.out.push('\n'),
                1 => self.out.push_str(&format!("{}# note\n", " ".repeat(ind))),
                _ => self.out.push_str("# at column 0\n"),
            }
        }
    }

    fn block_map(&mut self, items: &[Item], ind: usize) {
        for it in items {
            self.gap(it, ind);
            let key = self.key(it.key, false, ind);
            self.out.push_str(&format!("{}{key}", " ".repeat(ind)));
            self.block(it, ind, true);
        }
    }

    fn block_seq(&mut self, items: &[Item], ind: usize) {
        for it in items {
            self.gap(it, ind);
            self.out.push_str(&format!("{}- ", " ".repeat(ind)));
            self.block(it, ind, false);
        }
    }
}

/// Where the `secrets:` block stands in the first document's root mapping.
#[derive(Clone, Copy, Debug)]
enum Place {
    First,
    Middle,
    Last,
    Only,
}

/// A generated config: documents, where the declarations go, line endings.
#[derive(Clone, Debug)]
struct Generated {
    docs: Vec<Item>,
    root: Vec<Item>,
    place: Place,
    /// Long-form declarations (`value:` on a line of its own).
    long: bool,
    /// `S3` is `type: json`.
    json: bool,
    /// The line break: `\n`, `\r\n` or a lone `\r`.
    line_break: &'static str,
    /// A byte order mark.
    bom: bool,
    /// A `%TAG` directive before the first document.
    directive: bool,
    /// `...` before every `---`.
    end_markers: bool,
    /// The last line ends with a line break.
    final_newline: bool,
    /// How the declarations block ends (index into [`DECL_TAILS`]).
    decl_tail: usize,
    /// The block's key is `x-keyfill` (`--secrets-key`), not `secrets`.
    other_key: bool,
}

/// Last lines of a declarations block: an unused entry whose value ends in
/// a block scalar, a multi-line flow mapping or quoted scalar, a comment or
/// blank lines.
const DECL_TAILS: &[&str] = &[
    "",
    "",
    "  # a comment in the block\n",
    "  Z:\n    value: |+\n      z\n\n",
    "  Z: { value: z,\n    type: string }\n",
    "  Z:\n    value: >\n      folded\n    # c\n",
    "  Z: {value: \"a,\n    b\"}\n",
    "  Z: z\n\n\n",
];

fn generated() -> impl Strategy<Value = Generated> {
    (
        proptest::collection::vec(item(gen_node()), 0..3),
        proptest::collection::vec(item(gen_node()), 0..5),
        select(&[Place::First, Place::Middle, Place::Last, Place::Only][..]),
        any::<[bool; 4]>(),
        prop_oneof![8 => Just("\n"), 2 => Just("\r\n"), 1 => Just("\r")],
        prop::bool::weighted(0.05),
        prop::bool::weighted(0.9),
        (0..DECL_TAILS.len(), prop::bool::weighted(0.2)),
    )
        .prop_map(
            |(
                docs,
                root,
                place,
                [long, json, directive, end_markers],
                line_break,
                bom,
                final_newline,
                (decl_tail, other_key),
            )| {
                Generated {
                    docs,
                    root,
                    place,
                    long,
                    json,
                    line_break,
                    bom,
                    directive,
                    end_markers,
                    final_newline,
                    decl_tail,
                    other_key,
                }
            },
        )
}

/// `$<S0>`, undecorated.
fn root_ref() -> Item {
    Item {
        node: Gen::Ref(0, 0),
        anchor: false,
        tag: 0,
        comment: false,
        blank: 0,
        key: 0,
    }
}

impl Generated {
    /// The declarations block's key.
    fn key_name(&self) -> &'static str {
        if self.other_key {
            "x-keyfill"
        } else {
            "secrets"
        }
    }

    /// The config text (declarations inline or from `files`), and the number
    /// of reference sites it holds (scalars with at least one reference).
    fn text(&self, values: &[String], files: &Oracle, inline: bool) -> (String, usize) {
        let mut w = Writer::default();
        let mut root = self.root.clone();
        if !matches!(self.place, Place::Only) && root.is_empty() {
            root.push(root_ref());
        }
        let root = match self.place {
            Place::Only => &[][..],
            _ => &root[..],
        };
        let split = match self.place {
            Place::First | Place::Only => 0,
            Place::Middle => root.len() / 2,
            Place::Last => root.len(),
        };
        if self.directive {
            w.out.push_str("%TAG !e! tag:example.com,2000:\n---\n");
            w.handle = true;
        }
        w.block_map(&root[..split], 0);
        let decl_at = w.out.len();
        w.block_map(&root[split..], 0);
        let mut rest = String::new();
        // Directives and anchors end with their document.
        w.handle = false;
        let mut docs = self.docs.clone();
        if matches!(self.place, Place::Only) && docs.is_empty() {
            docs.push(root_ref());
        }
        for (i, d) in docs.iter().enumerate() {
            w.anchored = false;
            let before = std::mem::take(&mut w.out);
            w.out.push_str(if i % 2 == 0 { "---\n" } else { "--- " });
            if self.end_markers {
                rest.push_str("...\n");
            }
            match (&d.node, i % 2) {
                (Gen::Map(items), _) if !items.is_empty() => {
                    if i % 2 == 1 {
                        w.out.push('\n');
                    }
                    w.block_map(items, 0);
                }
                (Gen::Seq(items), _) if !items.is_empty() => {
                    if i % 2 == 1 {
                        w.out.push('\n');
                    }
                    w.block_seq(items, 0);
                }
                // A root scalar after `--- ` or on the next line at column
                // 0; a root block scalar's lines at column 2.
                _ => w.block(d, 0, false),
            }
            rest.push_str(&w.out);
            w.out = before;
        }
        let used: Vec<usize> = (0..SECRETS).filter(|&n| w.refs[n] > 0).collect();
        let mut decl = format!("{}:\n", self.key_name());
        for &n in &used {
            let v = &values[n];
            let json = self.json && n == 3;
            let value = if json {
                format!("{{ value: {}, type: json }}", double_quoted(v))
            } else if inline && !v.contains("$<") && !v.contains("<<") {
                if self.long {
                    format!("\n    value: {}", double_quoted(v))
                } else {
                    format!("{{ value: {} }}", double_quoted(v))
                }
            } else {
                files.file_entry(n)
            };
            decl.push_str(&format!("  S{n}: {value}\n"));
        }
        decl.push_str(DECL_TAILS[self.decl_tail]);
        let mut text = w.out;
        if !used.is_empty() {
            text.insert_str(decl_at, &decl);
        }
        text.push_str(&rest);
        if !self.final_newline {
            text.pop();
        }
        if self.line_break != "\n" {
            text = text.replace('\n', self.line_break);
        }
        if self.bom {
            text.insert(0, '\u{feff}');
        }
        (text, w.sites)
    }
}

/// JSON values for `S3` under `type: json`.
const JSON_VALUES: &[&str] = &[
    "{\"a\": [1, \"x: y\"], \"b\": null}",
    "[]",
    "{}",
    "\"s\"",
    "[1, [2, {\"c\": \"# d\"}]]",
    "12",
    DEEP,
];

/// Stands for a JSON value nested as deep as keyfill allows (64).
const DEEP: &str = "deep";

/// Generated configs: block and flow collections (one line and several,
/// under-indented continuation lines), block scalars with every header,
/// tags, anchors and aliases, comments, blank lines, CRLF, a byte order mark,
/// several documents, and a `secrets:` block first, in the middle, last or
/// alone, with references in values to hostile values: local and full agree,
/// and most substitutions are proven locally. `KEYFILL_ORACLE_CONFIGS` cases
/// (default 1500).
#[test]
fn oracle_over_generated_configs() {
    let cases = env_num("KEYFILL_ORACLE_CONFIGS", 1500) as u32;
    let oracle = RefCell::new(Oracle::new());
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 2000,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(env_num("KEYFILL_ORACLE_SEED", 0x6765_6e65_7261_7465)),
        ..Config::default()
    });
    let strategy = (
        generated(),
        proptest::collection::vec(hostile(), SECRETS),
        select(JSON_VALUES),
        any::<bool>(),
        prop::bool::weighted(0.2),
        select(&[128usize, 128, 6, 8][..]),
        prop::bool::weighted(0.1),
    );
    let result = runner.run(&strategy, |(g, mut values, json, inline, strict_yaml, depth, redact)| {
        if g.json {
            values[3] = match json {
                DEEP => "[".repeat(64) + &"]".repeat(64),
                json => json.to_owned(),
            };
        }
        let mut o = oracle.borrow_mut();
        let (config, sites) = g.text(&values, &o, inline);
        o.deliver(&values, Delivery::File, false);
        let mut opts = oracle_options(true, strict_yaml);
        opts.limits.max_depth = depth;
        opts.redact = redact;
        g.key_name().clone_into(&mut opts.secrets_key);
        o.check(&config, sites, false, &opts).map_err(|e| {
            TestCaseError::fail(format!(
                "strict_yaml {strict_yaml}, max_depth {depth}, redact {redact}, values {values:?}\n{e}\nconfig:\n{config}"
            ))
        })
    });
    let mut o = oracle.into_inner();
    if let Err(e) = result {
        o.tally.failures.push(format!("minimal: {e}"));
    }
    o.tally.print("generated oracle");
    o.tally.assert_agreed();
    o.tally.assert_floor(GENERATED_FLOOR, 0.85);
}

// ---------------------------------------------------------------------------
// Large inputs: the first pass in two halves on two threads (yaml::scan::split)
// against the one-pass scan the full re-parse runs.
// ---------------------------------------------------------------------------

/// Renders a large `yaml` under both verifications (local splits the first
/// pass; full scans in one pass) and asserts the same output and the same
/// diagnostics, each with its place. Returns the output and the diagnostics.
fn both_large(yaml: &str) -> (Option<String>, Vec<String>, usize) {
    assert!(
        yaml.len() > 4 << 20,
        "{} bytes is too small to split",
        yaml.len()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, yaml).expect("write");
    let run = |verify| {
        let opts = Options {
            strict: false,
            redact: false,
            json: false,
            limits: Limits {
                max_depth: 64,
                max_aliases: 1000,
                strict_yaml: false,
            },
            max_input: 64 << 20,
            max_secret: 1 << 20,
            max_output: 64 << 20,
            export: false,
            secrets_key: "secrets".to_owned(),
            secrets_block: true,
            verify,
        };
        let mut s = Session::default();
        let out = s
            .render(&[path.display().to_string()], &[], &opts)
            .map(|o| String::from_utf8(o.to_vec()).expect("utf-8"));
        let mut diags: Vec<String> = s.diags.iter().map(|d| format!("{d:?}")).collect();
        diags.sort();
        (out, diags, s.verified.halves)
    };
    let local = run(Verify::Local);
    let full = run(Verify::Full);
    assert!(local.0 == full.0, "outputs differ");
    assert_eq!(local.1, full.1, "diagnostics differ");
    assert_eq!(full.2, 0, "the full check scans in one pass");
    local
}

/// A config of about `mb` MB: a declarations block, then root entries of
/// every shape, with references spread through it; `middle` goes in the
/// middle and `tail` at the end.
fn large_config(mb: usize, middle: &str, tail: &str) -> String {
    let mut s =
        String::from("secrets:\n  A: { value: \"x: y # z\" }\n  N: { value: \"l1\\nl2\" }\n");
    let entry = |i: usize| {
        format!(
            "key{i}:\n  plain: v{i} $<A>\n  quoted: \"q{i}\"\n  flow: [a, {{b: $<N>}}, c]\n  block: |\n    line {i}\n    $<N>\n  folded: >-\n    f{i}\n  list:\n    - 1\n    - '$<A>'\n# comment {i}\n\n"
        )
    };
    let mut i = 0;
    while s.len() < mb << 19 {
        s.push_str(&entry(i));
        i += 1;
    }
    s.push_str(middle);
    while s.len() < mb << 20 {
        s.push_str(&entry(i));
        i += 1;
    }
    s.push_str(tail);
    s
}

#[test]
fn a_large_input_scanned_in_two_halves_renders_and_reports_as_in_one_pass() {
    let yaml = large_config(5, "", "");
    let (out, diags, halves) = both_large(&yaml);
    assert_eq!(halves, 1, "scanned in two halves");
    let out = out.expect("renders");
    assert!(diags.is_empty(), "{diags:?}");
    assert!(!out.contains("$<"), "a reference was left unsubstituted");
    assert_eq!(
        out.matches("x: y # z").count(),
        yaml.matches("$<A>").count()
    );
}

#[test]
fn a_key_given_in_both_halves_is_reported_as_in_one_pass() {
    let yaml = large_config(5, "", "key3:\n  again: 1\n");
    let (_, diags, halves) = both_large(&yaml);
    assert_eq!(halves, 1, "scanned in two halves");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0].contains("key `key3` is given twice"), "{diags:?}");
}

#[test]
fn halves_that_do_not_join_are_scanned_in_one_pass() {
    // An alias to an anchor of the first half; a document end in the middle;
    // an error in the second half; a flow mapping spanning the middle.
    for (middle, tail) in [
        ("anchored: &a {x: 1}\n", "aliased: *a\n"),
        ("...\n---\n", ""),
        ("", "bad: [unclosed\n"),
        ("", "bad: \"unclosed\n"),
        ("spanning: {a: 1,\n", "b: 2}\n"),
    ] {
        let yaml = if middle.contains("spanning") {
            // The flow mapping's second line sits where the cut would be.
            let mut y = large_config(5, "", "");
            let mid = y.len() / 2;
            let at = mid + y[mid..].find("\nkey").expect("a key line") + 1;
            y.insert_str(at, "spanning: {a: 1,\n");
            y.insert_str(at + "spanning: {a: 1,\n".len(), "b: 2}\n");
            y
        } else {
            large_config(5, middle, tail)
        };
        let (_, _, halves) = both_large(&yaml);
        // A flow mapping can fall wholly in the second half, where it joins.
        if !middle.contains("spanning") {
            assert_eq!(halves, 0, "{middle:?} {tail:?}: joined");
        }
    }
}

#[test]
fn a_quoted_key_given_in_both_halves_is_named_by_its_value() {
    let yaml = large_config(5, "", "'key3': again\n");
    let (_, diags, halves) = both_large(&yaml);
    assert_eq!(halves, 1, "scanned in two halves");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(diags[0].contains("key `key3` is given twice"), "{diags:?}");
}

#[test]
fn a_document_with_tag_directives_is_scanned_in_one_pass() {
    // The helper would not know the handle, and `!` can be redeclared.
    let yaml = format!(
        "%TAG ! tag:example.com,2000:\n---\n{}",
        large_config(5, "", "tagged: !foo $<A>\n")
    );
    let (out, _, halves) = both_large(&yaml);
    assert_eq!(halves, 0);
    assert!(out.expect("renders").ends_with("tagged: !foo 'x: y # z'\n"));
}
