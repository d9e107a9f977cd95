//! Snapshot tests of the `keyfill` command line: every `tests/cmd/*.toml` is one
//! invocation (arguments, environment, expected exit code, stdout and stderr).
//! Most cases run in the shared `tests/cmd/inputs/` folder (`fs.base`) and never
//! write; `render-to-file` runs in a sandbox copied from `render-to-file.in/` and
//! compares the written files with `render-to-file.out/`.
//!
//! Refresh the expectations after an intended change with
//! `TRYCMD=overwrite cargo test --test integration cli::`.

#[test]
fn cli() {
    trycmd::TestCases::new()
        .register_bin(
            "keyfill",
            std::path::Path::new(env!("CARGO_BIN_EXE_keyfill")),
        )
        .default_bin_name("keyfill")
        .env("NO_COLOR", "1")
        .timeout(std::time::Duration::from_secs(60))
        .case("tests/cmd/*.toml");
}

/// A 1 MB reference name is cut in the middle, with a count, in the message and
/// the JSON log: the diagnostic stays a few lines, whatever the input holds.
#[test]
fn one_megabyte_reference_name_is_cut_in_diagnostics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let name = format!("A{}Z", "N".repeat(1 << 20));
    std::fs::write(dir.path().join("long.yaml"), format!("x: \"$<{name}>\"\n")).expect("write");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_keyfill"))
            .args(args)
            .arg("long.yaml")
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run keyfill");
        assert_eq!(out.status.code(), Some(3));
        String::from_utf8(out.stderr).expect("utf-8")
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
