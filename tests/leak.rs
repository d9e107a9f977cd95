//! Canary test: a random secret value, generated per run, is fed to keyfill through
//! every source (inline value, long-form `value:`, env var, env default, file, direct
//! `<<env|…>>` / `<<file|…>>` references, base64, JSON fields, compositions, a
//! `--secrets` catalogue, stdin) while keyfill is driven down every error path we can
//! reach. The canary must never appear on stderr, and on stdout only when stdout is
//! the successful rendered output (which then must contain it, so the test can fail).
//!
//! Error paths covered (each with the canary secret declared and/or used):
//! - exit 3: YAML syntax error (elsewhere in the file, unclosed quote on the secret's
//!   own line, tab after the secret's line); undeclared name with did-you-mean; unknown
//!   provider; malformed references (`$<1X>`, `<<aws|>>`) in values and inside a
//!   composition; reference in a mapping key; composition cycle through a canary
//!   literal and through the canary secret; `type: int|float|bool|json` on the canary;
//!   `encoding: base64` invalid and decoding to non-UTF-8; unknown long-form option
//!   (`defualt:` / `valeu:` holding the canary); invalid `type:` value; more than one
//!   source (either order); non-text value (`[canary]`, `{a: canary}`); duplicate
//!   declaration (config + `--secrets` catalogue); scope violation; unused secret with
//!   `--strict`; `$<C.field>` on a non-JSON canary; the five-errors-in-one-pass file;
//!   limits: `--max-depth` (in the body and on the secrets block), `--max-aliases`,
//!   `--max-input-size`, `--max-secret-size` (a composition), `--max-output-size`;
//!   `--format json` conversion failure (`!!int $<C>`); invalid
//!   UTF-8 elsewhere in the file; errors read from stdin; a `secrets:` block nothing
//!   uses (mapping, flow with a Compose-style entry, sequence, under `--secrets-key`).
//! - exit 4: missing JSON key (top level, nested, array index) in a JSON secret whose
//!   values contain the canary, and in one whose key is composed from the canary; another secret's unset env / missing file while the
//!   canary secret is used.
//! - exit 5: aws / vault / onepassword references next to the canary.
//! - exit 6: `-o` into a missing folder, `-o` onto a directory.
//! - each of the above also with `--log-format json`, and with `-v`.
//! - `check` and `check --resolve` (ok, with errors, unused, exit 4) never print it.
//! - `diff` shows fingerprints of old and new values, never either value.
//! - success paths: render contains it (stdout, and `-o` file with no `.keyfill-*`
//!   leftovers and a canary-free `-v` info line); `--redact` (yaml and json) has none;
//!   unused-secret warning on success.
//!
//! Not reachable from the CLI: the render verification failure ("rendered text does
//! not parse to the substituted document") needs a keyfill emitter bug to trigger.

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::support::{canary, command, keyfill, Run, Test};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Exit 0 and stdout is the rendered output: it must contain the canary.
    Rendered,
    /// Exit 0 but the canary must not be on stdout (`--redact`, `check`, `-o`).
    OkClean,
    /// This exit code; the canary must not be on stdout or stderr.
    Fail(i32),
}

struct Case {
    name: String,
    files: Vec<(String, Vec<u8>)>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    expect: Expect,
}

struct Ctx {
    canary: String,
    cases: Vec<Case>,
}

impl Ctx {
    /// A case whose config is `config.yaml`; `{C}` in texts is replaced by the canary,
    /// `{B64}` by its base64 form.
    fn add(&mut self, name: &str, config: &str, args: &[&str], expect: Expect) -> &mut Case {
        let config = self.fill(config);
        let mut a: Vec<String> = args.iter().map(|s| self.fill(s)).collect();
        if !a.iter().any(|s| s == "config.yaml" || s == "-") {
            a.push("config.yaml".into());
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.canary);
        self.cases.push(Case {
            name: name.to_owned(),
            files: vec![
                ("config.yaml".into(), config.into_bytes()),
                ("canary.txt".into(), self.canary.clone().into_bytes()),
                ("canary.b64".into(), b64.into_bytes()),
                (
                    "canary.json".into(),
                    format!(r#"{{"user":"u","password":"{c}","nested":{{"deep":"{c}"}},"list":["{c}"]}}"#, c = self.canary)
                        .into_bytes(),
                ),
                (
                    "catalogue.yaml".into(),
                    format!("secrets:\n  CAT: {}\n", self.canary).into_bytes(),
                ),
            ],
            args: a,
            env: vec![
                ("KF_LEAK_CANARY".into(), self.canary.clone()),
                ("NO_COLOR".into(), "1".into()),
            ],
            stdin: None,
            expect,
        });
        self.cases.last_mut().expect("just pushed")
    }

    fn fill(&self, s: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.canary);
        s.replace("{C}", &self.canary).replace("{B64}", &b64)
    }
}

/// The canary's declarations, one per source, each as a `secrets:` entry named `C`.
fn sources() -> Vec<(&'static str, &'static str)> {
    vec![
        ("inline", "  C: {C}\n"),
        ("inline-quoted", "  C: \"{C}\"\n"),
        ("inline-block", "  C: |\n    {C}\n"),
        ("value", "  C:\n    value: {C}\n"),
        ("env", "  C:\n    env: KF_LEAK_CANARY\n"),
        (
            "env-default",
            "  C:\n    env: KF_LEAK_UNSET\n    default: {C}\n",
        ),
        ("file", "  C:\n    file: ./canary.txt\n"),
        ("direct-env", "  C: <<env|KF_LEAK_CANARY>>\n"),
        ("direct-file", "  C: <<file|canary.txt>>\n"),
        (
            "base64",
            "  C:\n    file: ./canary.b64\n    encoding: base64\n",
        ),
        ("composed", "  C0: {C}\n  C: \"$<C0>\"\n"),
    ]
}

/// Config bodies that fail (or succeed) while `C` is declared and used.
/// `{DECL}` is replaced by the declaration of `C`.
fn body_cases() -> Vec<(&'static str, &'static str, Vec<&'static str>, Expect)> {
    use Expect::*;
    vec![
        ("render", "secrets:\n{DECL}v: $<C>\nw: \"x-$<C>-y\"\n", vec!["render"], Rendered),
        ("render-json", "secrets:\n{DECL}v: $<C>\n", vec!["render", "--format", "json"], Rendered),
        ("redact", "secrets:\n{DECL}v: $<C>\nw: \"x-$<C>\"\n", vec!["render", "--redact"], OkClean),
        ("redact-json", "secrets:\n{DECL}v: $<C>\n", vec!["render", "--redact", "--format", "json"], OkClean),
        ("check", "secrets:\n{DECL}v: $<C>\n", vec!["check"], OkClean),
        ("check-resolve", "secrets:\n{DECL}v: $<C>\n", vec!["check", "--resolve"], OkClean),
        ("check-resolve-unset", "secrets:\n{DECL}  U:\n    env: KF_LEAK_UNSET\nv: $<C>\nu: $<U>\n", vec!["check", "--resolve"], Fail(4)),
        ("unused-warning", "secrets:\n{DECL}  X: x\nv: $<X>\n", vec!["render"], OkClean),
        ("unused-strict", "secrets:\n{DECL}v: 1\n", vec!["render", "--strict"], Fail(3)),
        ("check-unused-strict", "secrets:\n{DECL}v: 1\n", vec!["check", "--strict"], Fail(3)),
        ("syntax-elsewhere", "secrets:\n{DECL}v: $<C>\nbad: [1, 2\nnext: x\n", vec!["render"], Fail(3)),
        ("undeclared", "secrets:\n{DECL}v: $<C>\nw: $<CC>\n", vec!["render"], Fail(3)),
        ("unknown-provider", "secrets:\n{DECL}v: $<C>\nw: <<awz|x>>\n", vec!["render"], Fail(3)),
        ("malformed", "secrets:\n{DECL}v: $<C>\nw: $<1X>\nx: <<aws|>>\n", vec!["render"], Fail(3)),
        ("malformed-in-composition", "secrets:\n{DECL}  D: \"$<C>-$<1X>\"\nv: $<D>\n", vec!["render"], Fail(3)),
        ("ref-in-key", "secrets:\n{DECL}$<C>: v\n", vec!["render"], Fail(3)),
        ("ref-in-key-embedded", "secrets:\n{DECL}\"k-$<C>\": v\nw: $<C>\n", vec!["render"], Fail(3)),
        ("cycle-through-canary", "secrets:\n{DECL}  A: \"$<C>-$<B>\"\n  B: \"$<A>\"\nv: $<A>\n", vec!["render"], Fail(3)),
        ("scope", "secrets:\n{DECL}  S:\n    value: x\n    scope: [db]\ndb:\n  v: $<C>\nother: $<S>\n", vec!["render"], Fail(3)),
        ("scope-canary", "secrets:\n{DECL}db:\n  v: $<C>\n", vec!["render"], Rendered),
        ("field-on-non-json", "secrets:\n{DECL}v: $<C.field>\n", vec!["render"], Fail(3)),
        ("field-on-composition", "secrets:\n{DECL}  D: \"$<C>x\"\nv: $<D.field>\n", vec!["render"], Fail(3)),
        ("five-errors", "secrets:\n{DECL}a: $<C>\nb: $<CX>\nc: $<2FA>\nd: <<vualt|x>>\ne: <<env|>>\nf: $<NOPE>\n", vec!["render"], Fail(3)),
        ("json-conversion", "secrets:\n{DECL}v: !!int $<C>\n", vec!["render", "--format", "json"], Fail(3)),
        ("json-conversion-float", "secrets:\n{DECL}v: !!float \"$<C>\"\n", vec!["render", "--format", "json"], Fail(3)),
        ("max-depth-body", "secrets:\n{DECL}v: $<C>\na:\n  b:\n    c:\n      d: $<C>\n", vec!["render", "--max-depth", "3"], Fail(3)),
        ("max-depth-secrets", "secrets:\n{DECL}v: $<C>\n", vec!["render", "--max-depth", "1"], Fail(3)),
        ("max-aliases", "secrets:\n{DECL}base: &b {x: $<C>}\na: *b\nb: *b\nc: *b\n", vec!["render", "--max-aliases", "1"], Fail(3)),
        ("max-input-size", "secrets:\n{DECL}v: $<C>\n", vec!["render", "--max-input-size", "10"], Fail(3)),
        ("max-secret-size-composed", "secrets:\n{DECL}  D: \"$<C>$<C>$<C>$<C>\"\nv: $<D>\n", vec!["render", "--max-secret-size", "100"], Fail(3)),
        ("max-output-size", "secrets:\n{DECL}v: $<C>\nw: $<C>\nx: $<C>\n", vec!["render", "--max-output-size", "50"], Fail(3)),
        ("other-env-unset", "secrets:\n{DECL}  U:\n    env: KF_LEAK_UNSET\nv: $<C>\nu: $<U>\n", vec!["render"], Fail(4)),
        ("other-file-missing", "secrets:\n{DECL}v: $<C>\nu: <<file|missing.txt>>\n", vec!["render"], Fail(4)),
        ("aws", "secrets:\n{DECL}v: $<C>\nu: <<aws|prod/db:password>>\n", vec!["render"], Fail(5)),
        ("vault", "secrets:\n{DECL}v: $<C>\nu: <<vault|secret/data/x/y>>\n", vec!["render"], Fail(5)),
        ("op", "secrets:\n{DECL}v: $<C>\nu: <<op|op://V/I/f>>\n", vec!["render"], Fail(5)),
        ("output-missing-dir", "secrets:\n{DECL}v: $<C>\n", vec!["render", "-o", "no-such-dir/out.yaml"], Fail(6)),
        ("output-is-dir", "secrets:\n{DECL}v: $<C>\n", vec!["render", "-o", "outdir"], Fail(6)),
        ("duplicate-with-catalogue", "secrets:\n{DECL}  CAT: other\nv: $<C>\nw: $<CAT>\n", vec!["render", "--secrets", "catalogue.yaml"], Fail(3)),
    ]
}

/// Cases where the declaration of the canary secret itself is the problem.
fn declaration_cases() -> Vec<(&'static str, &'static str, Vec<&'static str>, Expect)> {
    use Expect::*;
    let r = || vec!["render"];
    vec![
        ("type-int", "secrets:\n  C:\n    value: {C}\n    type: int\nv: $<C>\n", r(), Fail(3)),
        ("type-float", "secrets:\n  C:\n    value: {C}\n    type: float\nv: $<C>\n", r(), Fail(3)),
        ("type-bool", "secrets:\n  C:\n    value: {C}\n    type: bool\nv: $<C>\n", r(), Fail(3)),
        ("type-json", "secrets:\n  C:\n    value: {C}\n    type: json\nv: $<C>\n", r(), Fail(3)),
        ("type-int-env", "secrets:\n  C:\n    env: KF_LEAK_CANARY\n    type: int\nv: $<C>\n", r(), Fail(3)),
        ("type-json-file", "secrets:\n  C:\n    file: ./canary.txt\n    type: json\nv: $<C>\n", r(), Fail(3)),
        ("type-int-default", "secrets:\n  C:\n    env: KF_LEAK_UNSET\n    default: {C}\n    type: int\nv: $<C>\n", r(), Fail(3)),
        ("type-json-broken", "secrets:\n  C:\n    value: '{\"a\": \"{C}\"'\n    type: json\nv: $<C>\n", r(), Fail(3)),
        ("base64-invalid", "secrets:\n  C:\n    value: \"{C}!\"\n    encoding: base64\nv: $<C>\n", r(), Fail(3)),
        ("base64-not-utf8", "secrets:\n  C:\n    value: {C}\n    encoding: base64\nv: $<C>\n", r(), Fail(3)),
        ("base64-ok", "secrets:\n  C:\n    value: {B64}\n    encoding: base64\nv: $<C>\n", r(), Rendered),
        ("totp", "secrets:\n  C:\n    value: {C}\n    totp: {digits: 6}\nv: $<C>\n", r(), Fail(3)),
        ("type-invalid", "secrets:\n  C:\n    value: {C}\n    type: innt\nv: $<C>\n", r(), Fail(3)),
        ("two-sources-value-first", "secrets:\n  C:\n    value: {C}\n    env: X\nv: $<C>\n", r(), Fail(3)),
        ("two-sources-value-second", "secrets:\n  C:\n    env: X\n    value: {C}\nv: $<C>\n", r(), Fail(3)),
        ("option-typo-default", "secrets:\n  C:\n    env: KF_LEAK_UNSET\n    defualt: {C}\nv: $<C>\n", r(), Fail(3)),
        ("option-typo-value", "secrets:\n  C:\n    valeu: {C}\nv: $<C>\n", r(), Fail(3)),
        ("option-typo-flow", "secrets:\n  C: {valeu: {C}}\nv: $<C>\n", r(), Fail(3)),
        ("non-text-seq", "secrets:\n  C: [{C}]\nv: $<C>\n", r(), Fail(3)),
        ("non-text-value-seq", "secrets:\n  C:\n    value: [{C}]\nv: $<C>\n", r(), Fail(3)),
        ("scope-violation", "secrets:\n  C:\n    value: {C}\n    scope: [db]\ndb:\n  v: $<C>\nother: $<C>\n", r(), Fail(3)),
        ("cycle-literal", "secrets:\n  A: \"{C}-$<B>\"\n  B: \"{C}-$<A>\"\nv: $<A>\n", r(), Fail(3)),
        ("duplicate", "secrets:\n  C: {C}\n  C: {C}x\nv: $<C>\n", r(), Fail(3)),
        ("flow-block-error", "secrets: {C: {C}, D: \"x$<NOPE>\"}\nv: $<C>\n", r(), Fail(3)),
        ("block-scalar-error", "secrets:\n  C: |\n    {C}\n    {C}$<Q>\nv: $<C>\n", r(), Fail(3)),
        ("composition-error", "secrets:\n  C: \"{C} $<NOPE>\"\nv: $<C>\n", r(), Fail(3)),
        ("json-missing-key", "secrets:\n  C:\n    file: ./canary.json\n    type: json\nv: $<C.user>\nw: $<C.passwd>\n", r(), Fail(4)),
        ("json-missing-nested", "secrets:\n  C:\n    file: ./canary.json\n    type: json\nv: $<C.nested.nope>\n", r(), Fail(4)),
        ("json-missing-index", "secrets:\n  C:\n    file: ./canary.json\n    type: json\nv: $<C.list.5>\n", r(), Fail(4)),
        ("json-inline-missing-key", "secrets:\n  C:\n    value: '{\"a\":\"{C}\",\"b\":{\"c\":\"{C}\"}}'\n    type: json\nv: $<C.b.zz>\n", r(), Fail(4)),
        ("json-key-holds-another-secret", "secrets:\n  C: {C}\n  J:\n    value: '{\"k$<C>\": 1}'\n    type: json\nv: $<J.nope>\n", r(), Fail(4)),
        ("json-field-ok", "secrets:\n  C:\n    file: ./canary.json\n    type: json\nv: $<C.password>\nw: $<C.list.0>\n", r(), Rendered),
        ("catalogue-undeclared", "v: $<CAT>\nw: $<CATT>\n", vec!["render", "--secrets", "catalogue.yaml"], Fail(3)),
        ("catalogue-ok", "v: $<CAT>\n", vec!["render", "--secrets", "catalogue.yaml"], Rendered),
        ("syntax-unclosed-quote", "secrets:\n  C: \"{C}\n  D: x\nv: $<C>\n", r(), Fail(3)),
        ("syntax-tab", "secrets:\n  C: {C}\n\tv: $<C>\n", r(), Fail(3)),
        ("syntax-after-secret", "secrets:\n  C: {C}\n  D: [1, 2\nv: $<C>\n", r(), Fail(3)),
        ("unused-block", "secrets:\n  C: {C}\nv: 1\n", r(), Fail(3)),
        ("unused-block-flow", "secrets: {C: {C}, my-secret: {external: true}}\nv: 1\n", r(), Fail(3)),
        ("unused-block-seq", "secrets: [{C}]\nv: 1\n", r(), Fail(3)),
        ("unused-block-secrets-key", "x-keyfill:\n  C: {C}\nv: 1\n", vec!["render", "--secrets-key", "x-keyfill"], Fail(3)),
        ("no-secrets-block", "secrets:\n  C: {C}\nv: $<CAT>\n", vec!["render", "--no-secrets-block", "--secrets", "catalogue.yaml"], Rendered),
    ]
}

fn build_cases(canary: &str) -> Vec<Case> {
    let mut ctx = Ctx {
        canary: canary.to_owned(),
        cases: Vec::new(),
    };
    let globals: [(&str, &[&str]); 3] = [
        ("", &[]),
        ("json-log", &["--log-format", "json"]),
        ("v", &["-v"]),
    ];
    for (gname, gargs) in globals {
        for (sname, decl) in sources() {
            for (bname, body, args, expect) in body_cases() {
                let config = body.replace("{DECL}", decl);
                let mut a: Vec<&str> = gargs.to_vec();
                a.extend(args);
                let name = format!("{bname}/{sname}/{gname}");
                ctx.add(&name, &config, &a, expect);
            }
        }
        for (cname, config, args, expect) in declaration_cases() {
            let mut a: Vec<&str> = gargs.to_vec();
            a.extend(args);
            ctx.add(&format!("{cname}//{gname}"), config, &a, expect);
        }
        // Configs read from stdin.
        for (name, config, expect) in [
            (
                "stdin-ok",
                "secrets:\n  C: {C}\nv: $<C>\n",
                Expect::Rendered,
            ),
            (
                "stdin-undeclared",
                "secrets:\n  C: {C}\nv: $<C>\nw: $<CC>\n",
                Expect::Fail(3),
            ),
            (
                "stdin-type",
                "secrets:\n  C:\n    value: {C}\n    type: int\nv: $<C>\n",
                Expect::Fail(3),
            ),
        ] {
            let mut a: Vec<&str> = gargs.to_vec();
            a.extend(["render", "-"]);
            let stdin = ctx.fill(config);
            ctx.add(&format!("{name}//{gname}"), "", &a, expect).stdin = Some(stdin);
        }
    }
    // Invalid UTF-8 in a file that also declares the canary (raw bytes).
    let mut bytes = format!("secrets:\n  C: {canary}\nv: $<C>\nw: caf").into_bytes();
    bytes.extend([0xE9, b'\n']);
    ctx.add("not-utf8-raw//", "", &["render"], Expect::Fail(3))
        .files[0]
        .1 = bytes;
    ctx.cases
}

/// Runs `case` in a fresh folder (see [`Test`]); the folder is returned too,
/// so that what keyfill left in it can be read.
fn run(case: &Case) -> (Run, Test) {
    let mut t = Test::new();
    for (name, bytes) in &case.files {
        t.file(name, bytes);
    }
    t.folder("outdir")
        .args(&case.args)
        .env_remove("KF_LEAK_UNSET")
        .env_remove("X");
    for (k, v) in &case.env {
        t.env(k, v);
    }
    if let Some(input) = &case.stdin {
        t.stdin(input.as_bytes());
    }
    (t.run(), t)
}

#[test]
fn canary_never_leaks() {
    let canary = canary();
    let cases = build_cases(&canary);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&canary);
    let needles = [canary.as_str(), b64.as_str()];
    let leaks = |s: &str| needles.iter().any(|n| s.contains(n));
    let mut problems: Vec<String> = Vec::new();
    let mut leaked: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for case in &cases {
        let (o, t) = run(case);
        let in_tmp = t.names_in("tmp");
        if !in_tmp.is_empty() {
            problems.push(format!("{}: left in TMPDIR: {in_tmp:?}", case.name));
        }
        let cmdline = case.args.join(" ");
        let mut what = Vec::new();
        if leaks(&o.stderr) {
            what.push(format!(
                "stderr:\n{}",
                o.stderr.replace(&canary, "<<CANARY>>")
            ));
        }
        match case.expect {
            Expect::Rendered => {
                if o.code != 0 {
                    problems.push(format!(
                        "{}: `{cmdline}` exit {:?}, expected 0\n{}",
                        case.name, o.code, o.stderr
                    ));
                } else if !o.stdout.contains(&canary) {
                    problems.push(format!(
                        "{}: rendered output lacks the canary (test is blind)\n{}",
                        case.name, o.stdout
                    ));
                }
            }
            Expect::OkClean | Expect::Fail(_) => {
                let want = if let Expect::Fail(c) = case.expect {
                    c
                } else {
                    0
                };
                if o.code != want {
                    problems.push(format!(
                        "{}: `{cmdline}` exit {:?}, expected {want}\nstderr: {}",
                        case.name,
                        o.code,
                        o.stderr.replace(&canary, "<<CANARY>>")
                    ));
                }
                if leaks(&o.stdout) {
                    what.push(format!(
                        "stdout:\n{}",
                        o.stdout.replace(&canary, "<<CANARY>>")
                    ));
                }
            }
        }
        if !what.is_empty() {
            leaked
                .entry(case.name.split('/').next().unwrap_or("").to_owned())
                .or_default()
                .push(format!(
                    "[{}] `keyfill {cmdline}`\n{}",
                    case.name,
                    what.join("\n")
                ));
        }
    }
    let total = cases.len();
    let mut report = String::new();
    for (kind, hits) in &leaked {
        let names: Vec<&str> = hits
            .iter()
            .filter_map(|h| h.strip_prefix('[').and_then(|h| h.split(']').next()))
            .collect();
        report.push_str(&format!(
            "\n=== LEAK in `{kind}` ({} variants: {}), first:\n{}\n",
            hits.len(),
            names.join(" "),
            hits[0]
        ));
    }
    for p in &problems {
        report.push_str(&format!("\n=== UNEXPECTED: {p}\n"));
    }
    assert!(
        leaked.is_empty() && problems.is_empty(),
        "{} of {total} cases leaked the canary, {} behaved unexpectedly:{report}",
        leaked.values().map(Vec::len).sum::<usize>(),
        problems.len()
    );
}

#[test]
fn output_file_has_canary_and_no_temp_leftovers() {
    let canary = canary();
    let mut t = Test::new();
    t.folder("out").file("canary.txt", &canary).config(
        &"secrets:\n  A: INLINE\n  B:\n    env: KF_LEAK_CANARY\n  C:\n    file: ./canary.txt\n  D:\n    env: KF_LEAK_UNSET\n    default: DEFAULT\nv: [$<A>, $<B>, $<C>, $<D>]\n"
            .replace("INLINE", &canary)
            .replace("DEFAULT", &canary),
    );
    t.env("KF_LEAK_CANARY", &canary)
        .env_remove("KF_LEAK_UNSET")
        .args(["-v", "render", "-o", "out/out.yaml", "config.yaml"]);
    for round in 0..2 {
        // Second round: unchanged bytes, the file is not rewritten.
        let r = t.run();
        assert_eq!(r.code, 0, "round {round}: {}", r.stderr);
        r.silent(&canary).stderr_has("out.yaml");
        let written = t.read("out/out.yaml");
        assert_eq!(written.matches(&canary).count(), 4, "{written}");
        assert_eq!(
            t.names_in("out"),
            vec!["out.yaml".to_owned()],
            "leftover files in the output folder"
        );
        assert_eq!(t.mode("out/out.yaml"), 0o600);
    }
    // A failed write into a missing folder leaves no temporary file behind either.
    t.args(["render", "-o", "out/missing/out.yaml", "config.yaml"])
        .run()
        .code(6)
        .silent(&canary);
    let leftovers: Vec<_> = t
        .names_in("out")
        .into_iter()
        .filter(|n| n.starts_with(".keyfill-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A quoted source line never reveals an inline value's length: the same config
/// with values of 1, 8, 9 and 300 characters gives byte-identical diagnostics,
/// in text and in the JSON log.
#[test]
fn mask_never_reveals_an_inline_value_length() {
    let configs = [
        "secrets:\n  C: {V}\n",
        "secrets:\n  C: \"{V}\"\n",
        "secrets:\n  C: '{V}'\n",
        "secrets:\n  C: |\n    {V}\n    {V}\n",
        "secrets: {C: {V}, D: $<NOPE>}\nv: $<C>\n",
        "secrets:\n  C:\n    value: {V}\n    type: int\nv: $<C>\n",
        "secrets:\n  C:\n    env: KF_LEAK_UNSET\n    defualt: {V}\nv: $<C>\n",
        "secrets:\n  C: \"{V}-$<NOPE>\"\nv: $<C>\n",
        "secrets:\n  C: \"$<D>{V}$<NOPE>-{V}\"\n  D: x\nv: $<C>\n",
        "secrets: {C: \"{V}\", D: \"{V}$<NOPE>\"}\nv: $<C>\n",
    ];
    let dir = tempfile::tempdir().expect("temp dir");
    for config in configs {
        for log in ["text", "json"] {
            let outcomes: Vec<(Option<i32>, String)> = [1, 8, 9, 300]
                .iter()
                .map(|&n| {
                    let text = config.replace("{V}", &"q".repeat(n));
                    std::fs::write(dir.path().join("c.yaml"), text).expect("write");
                    let out = command()
                        .args(["--log-format", log, "render", "c.yaml"])
                        .current_dir(dir.path())
                        .env_remove("KF_LEAK_UNSET")
                        .env("NO_COLOR", "1")
                        .output()
                        .expect("run keyfill");
                    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                    (out.status.code(), stderr)
                })
                .collect();
            assert!(!outcomes[0].1.is_empty(), "{config:?}: no diagnostic");
            assert!(
                !outcomes[3].1.contains("qqqq"),
                "{config:?}: value shown\n{}",
                outcomes[3].1
            );
            for o in &outcomes[1..] {
                assert_eq!(o, &outcomes[0], "{config:?} ({log}): lengths differ");
            }
        }
    }
}

/// A YAML error that stops the scan leaves no earlier diagnostic of that scan
/// behind: the declarations were never read, so nothing in the file is masked,
/// and a quoted line could show an inline value written on it (a flow mapping).
#[test]
fn a_fatal_yaml_error_drops_the_scans_earlier_diagnostics_with_their_unmasked_lines() {
    let c = canary();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = format!("{{secrets: {{A: \"{c}\"}}, x: \"<<awz|y>>\", y: $<A>}}\n---\n[\n");
    std::fs::write(dir.path().join("c.yaml"), config).expect("write");
    for log in ["text", "json"] {
        let r = keyfill(dir.path(), &["--log-format", log, "render", "c.yaml"], &[]);
        r.code(3).silent(&c).stderr_has("unclosed bracket");
        assert!(!r.stderr.contains("awz"), "{log}: {}", r.stderr);
    }
}

#[test]
fn diff_shows_fingerprints_never_values() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (old, new) = (canary(), canary());
    std::fs::write(
        dir.path().join("app.yaml"),
        "secrets:\n  a: { env: KF_LEAK_A }\na: $<a>\nb: $<a>\nc: { x: $<a> }\n",
    )
    .expect("write config");
    // The old output holds another value where the new one goes, and a path
    // the render removes: both old values are secrets too.
    std::fs::write(
        dir.path().join("out.yaml"),
        format!("a: {old}\nb: {old}\nc: {old}\ngone: {old}\n"),
    )
    .expect("write old output");
    let vars = [("KF_LEAK_A".to_owned(), new.clone())];
    let run = || keyfill(dir.path(), &["diff", "app.yaml", "-o", "out.yaml"], &vars);
    let (first, second) = (run(), run());
    for r in [&first, &second] {
        assert_eq!(r.code, 1, "{}", r.stderr);
        for secret in [&old, &new] {
            crate::support::assert_silent(r, secret, "keyfill diff");
        }
    }
    // `~ a  OLD -> NEW`, `~ b  OLD -> NEW`, `~ c  OLD -> NEW`, `- gone  OLD -> (absent)`.
    let rows = |r: &Run| -> Vec<Vec<String>> {
        r.stdout
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let (one, two) = (rows(&first), rows(&second));
    assert_eq!(
        one.iter().map(|r| r[1].as_str()).collect::<Vec<_>>(),
        ["a", "b", "c", "gone"],
        "{}",
        first.stdout
    );
    // Within a run, equal values share a fingerprint (a's and b's, old and new).
    assert_eq!((&one[0][2], &one[0][4]), (&one[1][2], &one[1][4]));
    assert_ne!(one[0][2], one[0][4]);
    // Across runs, the key differs: nothing can be matched or guessed.
    assert_ne!(one[0][2], two[0][2]);
    assert_ne!(one[0][4], two[0][4]);
    // Nothing was written.
    let text = std::fs::read_to_string(dir.path().join("out.yaml")).unwrap_or_default();
    assert!(text.contains(&old) && !text.contains(&new));
}

/// `keyfill doctor` never prints a value or a token: one canary is the value of
/// an env variable, a file, a Vault secret and a 1Password field, another the
/// token Vault and Connect are given (and refuse), in both formats, at every
/// log level.
#[test]
fn doctor_never_prints_a_value_or_a_token() {
    use crate::support::connect::{Connect, Field, Item};
    use crate::support::openbao::{bao, VaultEnv};
    let value = canary();
    let token = canary();
    let p = crate::support::unique("leak-doctor");
    bao()
        .api()
        .kv2_put("secret", &p, serde_json::json!({ "k": value }));
    let server = Connect::start(&token);
    let v = server.add_vault("Production");
    server.add_item(
        &v,
        Item::new("Slack", "API_CREDENTIAL").field(Field::concealed("token", &value)),
    );
    let vault = VaultEnv::new();
    let mut t = Test::new();
    t.file("value.txt", &value)
        .config(&format!(
            "secrets:\n  E: {{ env: KF_LEAK_VALUE }}\n  F: {{ file: ./value.txt }}\n  \
             V: <<vault|secret/data/{p}/k>>\n  O: <<op|op://Production/Slack/token>>\n\
             x: $<E>$<F>$<V>$<O>\n"
        ))
        .env("KF_LEAK_VALUE", &value)
        .env("VAULT_ADDR", &vault.proxy.url())
        .env("HOME", &vault.home().display().to_string())
        .env("OP_CONNECT_HOST", &server.url());
    for (vault_token, connect_token, code) in [
        (bao().root.clone(), token.clone(), 0),
        (token.clone(), canary(), 5),
    ] {
        t.env("VAULT_TOKEN", &vault_token)
            .env("OP_CONNECT_TOKEN", &connect_token);
        for extra in [
            &[][..],
            &["--format", "json"],
            &["-vv", "--log-format", "json"],
        ] {
            let mut args = vec!["doctor"];
            args.extend_from_slice(extra);
            args.push("config.yaml");
            let r = t.args(&args).run();
            r.code(code)
                .silent(&value)
                .silent(&token)
                .silent(&connect_token);
            if code == 0 {
                r.silent(&bao().root);
            }
        }
    }
}
