//! Snapshot tests of the `keyfill` command line: every `tests/cmd/*.toml` is one
//! invocation (arguments, environment, expected exit code, stdout and stderr).
//! Most cases run in the shared `tests/cmd/inputs/` folder (`fs.base`) and never
//! write; `render-to-file` runs in a sandbox copied from `render-to-file.in/` and
//! compares the written files with `render-to-file.out/`.
//!
//! Refresh the expectations after an intended change with
//! `TRYCMD=overwrite cargo test --test cli`.

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
