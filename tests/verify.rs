//! Local verification (`keyfill::yaml::proof`) against its oracle, the full
//! re-parse: every shape the proof argues for is proven locally and renders the
//! same bytes as `--verify full`; every shape outside it falls back, for the
//! reason given, and still renders (or fails) as the full re-parse does.

// Test helpers fail loudly on broken fixtures.
#![allow(clippy::unwrap_used)]

use keyfill::render::{Options, Session, Verify};
use keyfill::yaml::scan::Limits;

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
fn a_cut_after_a_block_scalar_with_blank_lines_after_it_falls_back() {
    // Keep chomping would take in the blank lines after the cut: the full
    // re-parse sees the changed value and refuses.
    falls_back(
        "k: |+\n  t\nsecrets:\n  A: { value: v }\n\nl: $<A>\n",
        None,
        "a block scalar right before the declarations block",
    );
    // A comment indented after the cut would become the block's content.
    falls_back(
        "k: |\n  t\nsecrets:\n  A: { value: v }\n  # n\nl: $<A>\n",
        None,
        "a block scalar right before the declarations block",
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

#[test]
fn crlf_and_byte_order_mark_inputs_are_proven() {
    proven(
        "secrets:\r\n  A: { value: v }\r\nk: $<A>\r\nl: |\r\n  $<A>\r\n",
        "k: v\r\nl: |\r\n  v\r\n",
    );
    let (out, _) = both("\u{feff}secrets:\n  A: { value: \"... x\" }\n---\n$<A>\n");
    assert_eq!(out.as_deref(), Some("\u{feff}{}\n---\n'... x'\n"));
}
