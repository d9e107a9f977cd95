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

/// Every way out, one row each: the process exits with the documented code, and
/// a JSON log's error lines never claim another (the lowest logged code is the
/// exit code, as the README's exit-code rule says). Rows without a log line are
/// clap's usage errors, printed before logging is set up.
#[test]
fn every_exit_path_has_its_documented_code_in_the_log_too() {
    struct Row {
        what: &'static str,
        args: &'static [&'static str],
        config: &'static str,
        env: &'static [(&'static str, &'static str)],
        code: i32,
        logged: bool,
    }
    const ENV_SECRET: &str = "secrets:\n  A: { env: KF_EXIT_TABLE }\na: $<A>\n";
    let rows = [
        Row {
            what: "rendered",
            args: &["render", "config.yaml"],
            config: ENV_SECRET,
            env: &[("KF_EXIT_TABLE", "v")],
            code: 0,
            logged: false,
        },
        Row {
            what: "unknown flag",
            args: &["render", "--no-such-flag", "config.yaml"],
            config: ENV_SECRET,
            env: &[],
            code: 2,
            logged: false,
        },
        Row {
            what: "output is the input",
            args: &["render", "config.yaml", "-o", "config.yaml"],
            config: ENV_SECRET,
            env: &[("KF_EXIT_TABLE", "v")],
            code: 2,
            logged: true,
        },
        Row {
            what: "undeclared secret",
            args: &["render", "config.yaml"],
            config: "a: $<NOPE>\n",
            env: &[],
            code: 3,
            logged: true,
        },
        Row {
            what: "unset variable",
            args: &["render", "config.yaml"],
            config: ENV_SECRET,
            env: &[],
            code: 4,
            logged: true,
        },
        Row {
            what: "unset variable under check --resolve",
            args: &["check", "--resolve", "config.yaml"],
            config: ENV_SECRET,
            env: &[],
            code: 4,
            logged: true,
        },
        Row {
            what: "an invalid and a missing secret: the lower code wins",
            args: &["render", "config.yaml"],
            config: "secrets:\n  A: { env: KF_EXIT_TABLE }\na: $<A>\nb: $<NOPE>\n",
            env: &[],
            code: 3,
            logged: true,
        },
        Row {
            what: "vault without a token",
            args: &["render", "config.yaml"],
            config: "a: <<vault|secret/data/app/k>>\n",
            env: &[
                ("VAULT_ADDR", "http://127.0.0.1:9"),
                ("HOME", "/nonexistent"),
            ],
            code: 5,
            logged: true,
        },
        Row {
            what: "output is a folder",
            args: &["render", "config.yaml", "-o", "tmp"],
            config: ENV_SECRET,
            env: &[("KF_EXIT_TABLE", "v")],
            code: 6,
            logged: true,
        },
        Row {
            what: "exec: command cannot be run",
            args: &[
                "exec",
                "config.yaml",
                "-o",
                "out.yaml",
                "--",
                "./config.yaml",
            ],
            config: ENV_SECRET,
            env: &[("KF_EXIT_TABLE", "v")],
            code: 126,
            logged: true,
        },
        Row {
            what: "exec: command not found",
            args: &[
                "exec",
                "config.yaml",
                "-o",
                "out.yaml",
                "--",
                "./no-such-command",
            ],
            config: ENV_SECRET,
            env: &[("KF_EXIT_TABLE", "v")],
            code: 127,
            logged: true,
        },
        Row {
            what: "exec: the command's own status",
            args: &[
                "exec",
                "config.yaml",
                "-o",
                "out.yaml",
                "--",
                "sh",
                "-c",
                "exit 7",
            ],
            config: ENV_SECRET,
            env: &[("KF_EXIT_TABLE", "v")],
            code: 7,
            logged: false,
        },
        Row {
            what: "exec --watch: the command killed by a signal",
            args: &[
                "exec",
                "--watch",
                "config.yaml",
                "-o",
                "out.yaml",
                "--",
                "sh",
                "-c",
                "kill -9 $$",
            ],
            config: ENV_SECRET,
            env: &[("KF_EXIT_TABLE", "v")],
            code: 137,
            logged: false,
        },
        Row {
            what: "exec: a failed render never runs the command",
            args: &[
                "exec",
                "config.yaml",
                "-o",
                "out.yaml",
                "--",
                "sh",
                "-c",
                "exit 0",
            ],
            config: ENV_SECRET,
            env: &[],
            code: 4,
            logged: true,
        },
    ];
    let mut wrong = Vec::new();
    for row in &rows {
        let mut t = Test::new();
        t.config(row.config).env_remove("KF_EXIT_TABLE");
        for (k, v) in row.env {
            t.env(k, v);
        }
        let mut args = vec!["--log-format", "json"];
        args.extend(row.args);
        let r = t.args(&args).run();
        let logged: Vec<i64> = r
            .stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["level"] == "error")
            .filter_map(|v| v["exit_code"].as_i64())
            .collect();
        let lowest = logged.iter().copied().min();
        let want_log = row.logged.then_some(i64::from(row.code));
        if r.code != row.code || lowest != want_log {
            wrong.push(format!(
                "{}: exit {} (want {}), logged {logged:?}\n{}",
                row.what, r.code, row.code, r.stderr
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Every shell's completion script names every command and a long option;
/// bash's, loaded in bash, completes `keyfill re` to `render` and
/// `keyfill render --secrets-k` to `--secrets-key`.
#[test]
fn completion_scripts_complete_commands_and_options() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let mut t = Test::new();
        let r = t.args(["completions", shell]).run();
        r.code(0).stderr_is("");
        for word in [
            "render",
            "check",
            "watch",
            "exec",
            "completions",
            "secrets-key",
        ] {
            assert!(
                r.stdout.contains(word),
                "{shell}: no `{word}` in\n{}",
                r.stdout
            );
        }
    }
    let mut t = Test::new();
    let script = t.args(["completions", "bash"]).run().stdout;
    t.file("keyfill.bash", &script);
    let ask = |words: &str| {
        let all: Vec<&str> = words.split(' ').collect();
        let n = all.len() - 1;
        // Bash calls a completion function with the command, the word being
        // completed and the word before it.
        let (cur, prev) = (all[n], all[n - 1]);
        let out = std::process::Command::new("bash")
            .current_dir(t.path())
            .arg("-c")
            .arg(format!(
                "source ./keyfill.bash; COMP_WORDS=({words}); COMP_CWORD={n}; \
                 COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; _keyfill keyfill '{cur}' '{prev}'; \
                 printf '%s\\n' \"${{COMPREPLY[@]}}\""
            ))
            .output()
            .expect("run bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(ask("keyfill re").trim(), "render");
    assert_eq!(ask("keyfill render --secrets-k").trim(), "--secrets-key");
}

/// `keyfill ARGS` prints a manual page titled `title` that groff formats as
/// plain ASCII (no overstriking, no typographic hyphens) without a warning; the
/// formatted text.
fn formatted_page(t: &mut Test, args: &[&str], title: &str) -> String {
    let r = t.args(args).run();
    r.code(0).stderr_is("");
    assert!(r.stdout.contains(&format!(".TH {title} 1")), "{}", r.stdout);
    t.file("page.1", &r.stdout);
    let out = std::process::Command::new("groff")
        .current_dir(t.path())
        .args(["-man", "-Tascii", "-P-cbou", "-ww", "page.1"])
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("run groff (installed by .ci/deps)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "groff: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The manual page is roff that groff formats without a warning, and documents
/// every command and the global options; each command has its own page.
#[test]
fn the_manual_page_formats_and_names_every_command() {
    let mut t = Test::new();
    let text = formatted_page(&mut t, &["man"], "keyfill");
    for word in [
        "render",
        "check",
        "watch",
        "exec",
        "doctor",
        "completions",
        "--log-format",
    ] {
        assert!(text.contains(word), "no `{word}` in the manual:\n{text}");
    }
    for (command, option) in [
        ("render", "--redact"),
        ("check", "--resolve"),
        ("watch", "--refresh"),
        ("exec", "--kill-timeout"),
        ("doctor", "--format"),
    ] {
        let title = format!("keyfill-{command}");
        let text = formatted_page(&mut t, &["man", command], &title);
        assert!(
            text.contains(option),
            "no `{option}` in {title}(1):\n{text}"
        );
    }
}
