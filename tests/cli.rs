//! Snapshot tests of the `keyfill` command line: every `tests/cmd/*.toml` is one
//! invocation (arguments, environment, expected exit code, stdout and stderr).
//! Most cases run in the shared `fixtures/cli/` folder (`fs.base`) and never
//! write; `render-to-file` runs in a sandbox copied from `render-to-file.in/` and
//! compares the written files with `render-to-file.out/`.
//!
//! Refresh the expectations after an intended change with
//! `TRYCMD=overwrite cargo test --test integration cli::`.

use crate::support::Test;

#[test]
fn cli() {
    // trycmd can add variables but not remove them: a wrapper scrubs the
    // environment as every other runner does (`support::scrub`), then execs
    // keyfill under its own path, so argv[0] and exit statuses are unchanged.
    let wrap = tempfile::tempdir().expect("temp dir");
    let bin = wrap.path().join("keyfill");
    let unset: String = crate::support::cleared()
        .iter()
        .map(|v| format!("-u {v} "))
        .collect();
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nexec env {unset}{} \"$@\"\n",
            crate::support::BIN
        ),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod the wrapper");
    trycmd::TestCases::new()
        .register_bin("keyfill", bin.as_path())
        .default_bin_name("keyfill")
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(60))
        .case("tests/cmd/*.toml");
}

/// A 1 MB reference name is cut in the middle, with a count, in the message and
/// the JSON log: the diagnostic stays a few lines, whatever the input holds.
#[test]
fn one_megabyte_reference_name_is_cut_in_diagnostics() {
    let name = format!("A{}Z", "N".repeat(1 << 20));
    let mut t = Test::new();
    t.file("long.yaml", format!("x: \"$<{name}>\"\n"));
    let mut run = |args: &[&str]| {
        let r = t.args(args.iter().chain(&["long.yaml"])).run();
        r.code(3);
        r.stderr
    };
    let shown = format!(
        "`A{}…(1048420 characters cut)…{}Z`",
        "N".repeat(118),
        "N".repeat(38)
    );
    let text = run(&["render"]);
    let first = text.lines().next().expect("a line");
    assert_eq!(first, format!("error: secret {shown} is not declared"));
    assert!(text.len() < 2000, "{} bytes of diagnostics", text.len());
    let json = run(&["--log-format", "json", "render"]);
    assert_eq!(
        json,
        format!(
            "{{\"level\":\"error\",\"message\":\"secret {shown} is not declared\",\
             \"exit_code\":3,\"file\":\"long.yaml\",\"line\":1,\"column\":5}}\n"
        )
    );
}
