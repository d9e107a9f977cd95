//! scan → emit → verify on arbitrary YAML with arbitrary secret values.
//!
//! Input layout: one flags byte, then for each of 1–4 secrets a length byte and
//! that many bytes of value, then the config. Flags: 0x01 `--format json`, 0x02
//! `--redact`, 0x04 strict YAML, 0x08 `--strict`, 0x30 the number of values less
//! one, 0x40 a canary in every value, 0x80 the config's own `secrets:` block is
//! read (otherwise it is content). Every `$<NAME>` the config uses and does not
//! declare is declared in a `--secrets` catalogue with one of the values (inline,
//! escaped), so fixtures and test-suite files work as seeds unchanged. Configs
//! with a direct reference or a provider declaration are skipped: no provider is
//! ever contacted.
//!
//! Checks: no panic; an output exactly when no error was reported; a config with
//! no reference renders byte-identical; a rendered config re-reads (with the same
//! parser, independently of keyfill's own verification) as the input's event
//! stream with each reference replaced by its value as a string; every
//! diagnostic's place lies in its source on char boundaries and the reporter
//! prints it (stderr: run with `-close_fd_mask=2`); under `--redact`
//! a canary in every value never reaches the output; no value in any diagnostic.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use granit_parser::{Event, Parser, ScalarStyle};
use keyfill::error::Diagnostics;
use keyfill::reference::{self, Part};
use keyfill::render::{Options, Session, Verify};
use keyfill::report::{Format, Reporter};
use keyfill::secrets::{self, Origin};
use keyfill::yaml::digest::DigestKey;
use keyfill::yaml::scan::{self, Limits};
use keyfill::yaml::schema::plain_kind;
use libfuzzer_sys::fuzz_target;

#[path = "common/escape.rs"]
mod escape;

/// Larger inputs are legitimately slower, not more interesting.
const MAX_CONFIG: usize = 16 * 1024;
const MAX_VALUE: usize = 64;
const MAX_DEPTH: usize = 32;
/// Appended to every value when flag 0x40 is set: findable in any text it leaks to.
const CANARY: &str = "Kf9zCanaryQ";

fn dir() -> &'static tempfile::TempDir {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
}

/// A YAML double-quoted scalar that reads back as exactly `s` (YAML 1.2 escapes).
fn yaml_dq(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push_str(&format!("\\U{:08X}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// One parsed event, as compared: kind, anchor id, tag or resolved kind, value.
type Ev = (u8, usize, String, String);

fn events(text: &str, limits: Limits) -> Option<Vec<(Ev, Option<String>)>> {
    let options = granit_parser::options! {
        strict_indentation: limits.strict_yaml,
        block_scalar_eof_without_line_feed: true,
        flow_nesting_limit: limits.max_depth + 64,
        block_nesting_limit: limits.max_depth + 64,
    };
    let mut out = Vec::new();
    for item in Parser::new_from_str_with_options(text, options) {
        let (ev, _) = item.ok()?;
        out.push(match ev {
            Event::DocumentStart(..) => ((1, 0, String::new(), String::new()), None),
            Event::DocumentEnd => ((2, 0, String::new(), String::new()), None),
            Event::Scalar(value, style, anchor, tag) => {
                let tag = tag.map(|t| t.to_string());
                let kind = match (&tag, style) {
                    (Some(t), _) => t.clone(),
                    (None, ScalarStyle::Plain) => plain_kind(&value).to_owned(),
                    (None, _) => "str".to_owned(),
                };
                ((3, anchor, kind, value.to_string()), tag)
            }
            Event::MappingStart(_, anchor, tag) => (
                (
                    4,
                    anchor,
                    tag.map(|t| t.to_string()).unwrap_or_default(),
                    String::new(),
                ),
                None,
            ),
            Event::SequenceStart(_, anchor, tag) => (
                (
                    5,
                    anchor,
                    tag.map(|t| t.to_string()).unwrap_or_default(),
                    String::new(),
                ),
                None,
            ),
            Event::MappingEnd => ((6, 0, String::new(), String::new()), None),
            Event::SequenceEnd => ((7, 0, String::new(), String::new()), None),
            Event::Alias(id) => ((8, id, String::new(), String::new()), None),
            _ => continue,
        });
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let count = usize::from((flags >> 4) & 3) + 1;
    let mut values = Vec::new();
    for _ in 0..count {
        let Some((&len, tail)) = rest.split_first() else {
            return;
        };
        let len = usize::from(len).min(MAX_VALUE).min(tail.len());
        let mut v = String::from_utf8_lossy(&tail[..len]).into_owned();
        if flags & 0x40 != 0 {
            v.push_str(CANARY);
        }
        values.push(v);
        rest = &tail[len..];
    }
    if rest.len() > MAX_CONFIG {
        return;
    }
    let Ok(config) = std::str::from_utf8(rest) else {
        return;
    };
    let limits = Limits {
        max_depth: MAX_DEPTH,
        max_aliases: 64,
        strict_yaml: flags & 4 != 0,
    };
    let block_key = (flags & 0x80 != 0).then_some("secrets");
    let opts = Options {
        strict: flags & 8 != 0,
        redact: flags & 2 != 0,
        json: flags & 1 != 0,
        limits,
        max_input: MAX_CONFIG,
        max_secret: 1 << 16,
        max_output: 1 << 20,
        export: false,
        secrets_key: "secrets".to_owned(),
        secrets_block: flags & 0x80 != 0,
        verify: Verify::Local,
    };

    // The names the config uses, in order; a direct reference or a provider
    // declaration ends the run here.
    let key = DigestKey::default();
    let mut names = BTreeSet::new();
    let mut declared = BTreeSet::new();
    // Compared with an independently built tree only without JSON paths and
    // without a declarations block (whose removal and compositions it does not model).
    let mut tree = !opts.redact;
    let mut no_sites = false;
    let mut sink = Diagnostics::default();
    if let Some(s) = scan::scan(config, 0, limits, &key, true, block_key, &mut sink) {
        no_sites = s.sites.is_empty() && s.secrets.is_none();
        let mut templates: Vec<&keyfill::reference::Template> =
            s.sites.iter().map(|site| &site.template).collect();
        let parsed;
        if let Some(block) = &s.secrets {
            tree = false;
            parsed = secrets::parse_block(&block.value, config, 0, Path::new("."), &mut sink);
            for d in &parsed.decls {
                declared.insert(d.name.clone());
                match &d.origin {
                    Origin::Provider { .. } => return,
                    Origin::Template { template, .. } => templates.push(template),
                }
            }
            declared.extend(parsed.broken.iter().cloned());
        }
        for t in templates {
            for p in &t.parts {
                match p {
                    Part::Secret(r) => {
                        tree &= r.path.is_empty();
                        names.insert(r.name.clone());
                    }
                    Part::Direct(_) => return,
                    Part::Literal(_) => {}
                }
            }
        }
    }
    let value_of = |name: &str| -> &str {
        let i = names.iter().position(|n| n == name).unwrap_or(0);
        &values[i % values.len()]
    };

    let dir = dir().path();
    let cfg_path = dir.join("config.yaml");
    std::fs::write(&cfg_path, config).expect("write config");
    let mut catalogues = Vec::new();
    if names.iter().any(|n| !declared.contains(n)) {
        let mut cat = String::from("secrets:\n");
        for n in names.iter().filter(|n| !declared.contains(*n)) {
            cat.push_str(&format!(
                "  {n}: {{ value: {} }}\n",
                yaml_dq(&escape::escape(value_of(n)))
            ));
        }
        let cat_path = dir.join("catalogue.yaml");
        std::fs::write(&cat_path, cat).expect("write catalogue");
        catalogues.push(cat_path.display().to_string());
    }

    let mut session = Session::default();
    let inputs = [cfg_path.display().to_string()];
    let out = session
        .render(&inputs, &catalogues, &opts)
        .map(|o| o.to_vec());
    // Local verification is checked against the full re-parse, its oracle: the
    // same bytes, or no output from either.
    let full_opts = Options {
        verify: Verify::Full,
        ..opts.clone()
    };
    let full = Session::default()
        .render(&inputs, &catalogues, &full_opts)
        .map(|o| o.to_vec());
    assert_eq!(
        out.as_deref().map(String::from_utf8_lossy),
        full.as_deref().map(String::from_utf8_lossy),
        "local and full verification disagree on:\n{config}"
    );
    assert_eq!(
        out.is_some(),
        !session.failed(),
        "an output exactly when nothing failed: {:?}",
        session.diags
    );
    // Every place a diagnostic points at is inside its source and on character
    // boundaries, and the reporter prints each in both formats without panicking.
    for d in session.diags.iter() {
        let related = d.related.as_deref().map(|(l, _)| l);
        for loc in d.location.iter().chain(related) {
            let text = &session.sources[loc.source].text;
            let r = &loc.span;
            assert!(
                r.start <= r.end && r.end <= text.len(),
                "span {r:?} outside a {} byte source: {d:?}",
                text.len()
            );
            assert!(
                text.is_char_boundary(r.start) && text.is_char_boundary(r.end),
                "span {r:?} not on char boundaries: {d:?}"
            );
        }
    }
    for format in [Format::Text, Format::Json] {
        Reporter {
            format,
            color: flags & 0x10 != 0,
            quiet: false,
        }
        .emit(session.diags.items(), &session.sources);
    }
    if flags & 0x40 != 0 && !config.contains(CANARY) {
        let diags = format!("{:?}", session.diags);
        assert!(!diags.contains(CANARY), "a value in a diagnostic: {diags}");
        if opts.redact {
            if let Some(out) = &out {
                assert!(
                    !String::from_utf8_lossy(out).contains(CANARY),
                    "a value in redacted output"
                );
            }
        }
    }
    let Some(out) = out else {
        return;
    };
    let out = String::from_utf8(out).expect("output is UTF-8");
    if opts.json {
        for doc in serde_json::Deserializer::from_str(&out).into_iter::<serde_json::Value>() {
            doc.expect("--format json output is JSON");
        }
        return;
    }
    if no_sites {
        assert_eq!(
            out, config,
            "a config without references is copied byte for byte"
        );
        return;
    }
    let Some(got) = events(&out, limits) else {
        panic!("rendered output does not parse:\n{out}");
    };
    if !tree {
        return;
    }
    // The expected tree: the input's events with every templated scalar replaced
    // by its value, as a string (or under its own tag).
    let Some(input) = events(config, limits) else {
        panic!("rendered, but the input does not parse");
    };
    let expected: Vec<Ev> = input
        .into_iter()
        .map(|((k, anchor, kind, value), tag)| {
            if k != 3 || !reference::may_contain_reference(&value) {
                return (k, anchor, kind, value);
            }
            let (t, _) = reference::parse(&value);
            let new: String = t
                .parts
                .iter()
                .map(|p| match p {
                    Part::Literal(l) => l.as_str(),
                    Part::Secret(r) => value_of(&r.name),
                    Part::Direct(_) => unreachable!("skipped above"),
                })
                .collect();
            if new == value {
                (k, anchor, kind, value)
            } else {
                (k, anchor, tag.unwrap_or_else(|| "str".to_owned()), new)
            }
        })
        .collect();
    let got: Vec<Ev> = got.into_iter().map(|(e, _)| e).collect();
    assert_eq!(
        got, expected,
        "rendered tree differs:\n--- config\n{config}\n--- output\n{out}"
    );
});
