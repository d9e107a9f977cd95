//! keyfill's integration tests: one binary, one module per area, one shared
//! `support` module. One binary links once instead of once per file, which is
//! most of `cargo test`'s build time on a small machine.
//!
//! Run one area with `cargo test --test integration aws::`, one test with
//! `cargo test --test integration aws_faults::stall_ends_at_timeout`.
//!
//! # Where a new test goes
//!
//! | the test is about | module |
//! |---|---|
//! | a command line, its exit code, stdout and stderr (snapshot) | `tests/cmd/NAME.toml` (+ `.stdout`/`.stderr`), run by [`cli`] |
//! | a command line whose input is too large or too odd for a snapshot | [`cli`] |
//! | YAML rendered byte for byte, the official suite | [`yaml_suite`] |
//! | real-world configuration files | [`corpus`] |
//! | a secret value meeting YAML syntax (generated inputs) | [`properties`] |
//! | encoders (`$<X|url>`…) read back in their target languages | [`encoders`] |
//! | local verification against the full re-parse (shapes, oracle) | [`verify`] |
//! | a secret value that must never be printed, on any path | [`leak`] (use `support::canary`) |
//! | `--audit FILE`: the records of secret accesses | [`audit`] |
//! | an interrupted or failed write of the output | [`faults`] |
//! | `keyfill watch` on files | [`watch`] |
//! | `keyfill watch` re-fetching from a provider | [`refresh`] |
//! | `keyfill exec` and its child | [`exec`] |
//! | `keyfill doctor`: credentials, reach, identity, readability without values | [`doctor`] |
//! | what every provider must do (found, not found, denied, unreachable, retries, deadline, one fetch, `check --resolve`, no leak) | [`conformance`]: one line in its `conformance!` table per provider |
//! | the aws provider: values, versions, batching | [`aws`] |
//! | the aws provider: spellings, retries, DNS, cross-region | [`aws_edges`] |
//! | the aws provider under injected faults | [`aws_faults`] |
//! | `role_arn=`: assuming roles through STS (aws, ssm) | [`roles`] |
//! | the ssm provider (Parameter Store): values, versions, batching, refresh | [`ssm`] |
//! | the vault provider | [`vault`] |
//! | the sops provider: formats, encryption rules, the MAC, age keys, the `sops` binary | [`sops`] |
//! | the onepassword provider (Connect and `op`) | [`onepassword`] |
//! | vault and onepassword corner cases | [`provider_edges`] |
//! | a recipe in `examples/` (Docker, Kubernetes, GitHub Actions, Compose, Helm), run from its own files | [`examples`] |
//!
//! Prefer an existing module. A new module is a file `tests/NAME.rs` with
//! `use crate::support;` (never `mod support;`) and a `mod NAME;` line below;
//! a test fails when a file here is not declared.
//!
//! Shared code lives in [`support`]: the loopback servers (moto, OpenBao, a
//! 1Password Connect fake), a counting and fault-injecting proxy, the
//! `keyfill watch` harness, and the runner every test uses to start keyfill
//! with the host's credentials removed from its environment.
//!
//! All modules share one process: a test must not change process-wide state
//! (environment variables, current directory, signal dispositions), and the
//! servers in `support` are started once and shared, so a test names what it
//! stores with `support::unique`.

mod support;

mod audit;
mod aws;
mod aws_edges;
mod aws_faults;
mod cli;
mod conformance;
mod corpus;
mod doctor;
mod encoders;
mod examples;
mod exec;
mod faults;
mod leak;
mod onepassword;
mod properties;
mod provider_edges;
mod refresh;
mod roles;
mod sops;
mod ssm;
mod vault;
mod verify;
mod watch;
mod yaml_suite;

/// With `autotests = false` a new `tests/NAME.rs` would silently never run:
/// every file here must be one of the modules above.
#[test]
fn every_test_file_is_a_module_of_main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let main = std::fs::read_to_string(dir.join("main.rs")).expect("read tests/main.rs");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read tests/") {
        let path = entry.expect("entry").path();
        let (Some(stem), Some("rs")) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        if stem != "main" && !main.contains(&format!("\nmod {stem};\n")) {
            missing.push(stem.to_owned());
        }
    }
    assert!(
        missing.is_empty(),
        "add `mod NAME;` to tests/main.rs for: {missing:?}"
    );
}
