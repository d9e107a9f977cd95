//! Runs a parsed command line: the glue between the CLI, a render session, the
//! output writer and the reporter. Returns the exit status; never exits itself.

use std::io::{IsTerminal as _, Write as _};

use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{
    CheckArgs, Cli, Color, Command, DiffArgs, DoctorArgs, ExecArgs, InputOptions, LogFormat,
    LoopArgs, OutputArgs, OutputFormat, RenderArgs, ReportFormat, VerifyMode, WatchArgs,
};
use keyfill::config::{ExecConfig, LoopConfig, RenderConfig};
use keyfill::error::{Diagnostic, Exit};
use keyfill::output::{self, Outcome, WriteOptions};
use keyfill::provider::Settings;
use keyfill::render::{Options, Verify};
use keyfill::report::{Format, Reporter};
use keyfill::yaml::scan::Limits;

/// Runs the command and returns the process exit status (for `exec`, the
/// command's own).
pub(crate) fn run(cli: Cli) -> Exit {
    let color = match cli.global.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal(),
    };
    let reporter = Reporter {
        format: match cli.global.log_format {
            LogFormat::Text => Format::Text,
            LogFormat::Json => Format::Json,
        },
        color,
        quiet: cli.global.quiet,
    };
    keyfill::signals::survive_file_size_limit();
    let audit = cli.global.audit;
    match cli.command {
        Command::Render(args) => render(&args, audit, &reporter, cli.global.verbose),
        Command::Check(args) => check(&args, audit, &reporter),
        Command::Watch(args) => {
            let (input, out) = watch_configs(&args, audit);
            keyfill::watch::watch(&input, &out, &reporter)
        }
        Command::Exec(args) => keyfill::exec::exec(&exec_config(args, audit), &reporter),
        Command::Diff(args) => diff(&args, audit, &reporter),
        // Doctor reads no value: there is no access to record.
        Command::Doctor(args) => doctor(&args, &reporter),
        Command::Completions(args) => to_stdout(&reporter, |out| {
            out.write_all(&crate::cli::completion_script(args.shell))
        }),
        Command::Man(args) => match crate::cli::manual_page(args.command.as_deref()) {
            Ok(page) => to_stdout(&reporter, |out| out.write_all(&page)),
            Err(usage) => {
                // Worded and formatted as every other usage error.
                let _ = std::io::stderr().lock().write_all(usage.as_bytes());
                Exit::Usage
            }
        },
    }
}

/// Writes to stdout with `write`; a closed pipe (`| head`) is the reader's
/// choice, not an error.
fn to_stdout(
    reporter: &Reporter,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Exit {
    match write(&mut std::io::stdout().lock()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            reporter.emit(
                &[Diagnostic::error(
                    Exit::Output,
                    format!("cannot write to stdout: {e}"),
                )],
                &[],
            );
            Exit::Output
        }
        _ => Exit::Ok,
    }
}

/// The render configuration of `files` and the input options; `audit` is `--audit`.
fn render_config(
    files: &[String],
    input: &InputOptions,
    redact: bool,
    json: bool,
    audit: Option<PathBuf>,
) -> RenderConfig {
    RenderConfig {
        audit,
        files: files.to_vec(),
        catalogues: input.secrets.clone(),
        options: Options {
            strict: input.strict,
            redact,
            json,
            limits: Limits {
                max_depth: usize::from(input.max_depth),
                max_aliases: input.max_aliases,
                strict_yaml: input.strict_yaml,
            },
            max_input: input.max_input_size,
            max_secret: usize::try_from(input.max_secret_size).unwrap_or(usize::MAX),
            max_output: usize::try_from(input.max_output_size).unwrap_or(usize::MAX),
            export: false,
            secrets_key: input.secrets_key.clone(),
            secrets_block: !input.no_secrets_block,
            verify: match input.verify {
                VerifyMode::Local => Verify::Local,
                VerifyMode::Full => Verify::Full,
            },
        },
        settings: Settings {
            concurrency: usize::from(input.concurrency),
            timeout: input.timeout,
            max_secret_size: input.max_secret_size,
        },
    }
}

/// How `--mode`, `--owner` and `--in-place-fallback` ask the output to be
/// written; a FIFO waits for a reader as long as a fetch may take (`--timeout`).
fn write_options(args: &OutputArgs, timeout: Duration) -> WriteOptions {
    WriteOptions {
        mode: args.mode,
        owner: args.owner,
        in_place_fallback: args.in_place_fallback,
        defer_signals: true,
        reader_wait: timeout,
    }
}

/// The configurations `keyfill watch` runs with, as its options ask.
fn watch_configs(args: &WatchArgs, audit: Option<PathBuf>) -> (RenderConfig, LoopConfig) {
    (
        render_config(&args.input.files, &args.input.options, false, false, audit),
        loop_config(&args.input.options, &args.out),
    )
}

/// The loop configuration of `watch` and `exec`.
fn loop_config(input: &InputOptions, out: &LoopArgs) -> LoopConfig {
    LoopConfig {
        output: out.output.clone(),
        write: write_options(&out.write, input.timeout),
        refresh: out.refresh,
        cache_ttl: out.cache_ttl,
        debounce: out.debounce,
    }
}

fn exec_config(args: ExecArgs, audit: Option<PathBuf>) -> ExecConfig {
    ExecConfig {
        render: render_config(&args.input.files, &args.input.options, false, false, audit),
        looping: loop_config(&args.input.options, &args.out),
        watch: args.watch,
        reload_signal: args.reload_signal,
        restart: args.restart,
        min_reload_interval: args.min_reload_interval,
        kill_timeout: args.kill_timeout,
        signal_group: args.signal_group,
        env: args.env,
        pass_credentials: args.pass_credentials,
        command: args.command,
    }
}

fn render(args: &RenderArgs, audit: Option<PathBuf>, reporter: &Reporter, verbose: u8) -> Exit {
    let json = args.format == OutputFormat::Json;
    let config = render_config(
        &args.input.files,
        &args.input.options,
        args.redact,
        json,
        audit,
    );
    if let Some(out) = &args.output {
        if let Err(d) = output::refuse_input_as_output(
            out,
            &config.files,
            &config.catalogues,
            config.audit.as_deref(),
        ) {
            return reporter.fail(d);
        }
    }
    let mut session = config.session();
    let Some(bytes) = config.render(&mut session) else {
        return session.report(reporter);
    };
    let status = session.report(reporter);
    if verbose > 1 {
        reporter.info(&session.verified.summary());
    }
    match &args.output {
        None => match to_stdout(reporter, |out| bytes.write_to(out)) {
            Exit::Ok => status,
            failed => failed,
        },
        Some(path) => {
            let wopts = write_options(&args.write, args.input.options.timeout);
            match output::write(path, &bytes, wopts) {
                Ok(outcome) => {
                    if verbose > 0 || outcome == Outcome::InPlace {
                        let what = match outcome {
                            Outcome::Unchanged => "unchanged",
                            Outcome::Written => "written",
                            Outcome::InPlace => "rewritten in place (rename was not possible)",
                        };
                        reporter.info(&format!("{}: {what}", path.display()));
                    }
                    status
                }
                Err(d) => reporter.fail(d),
            }
        }
    }
}

fn diff(args: &DiffArgs, audit: Option<PathBuf>, reporter: &Reporter) -> Exit {
    let json = args.format == OutputFormat::Json;
    let config = render_config(&args.input.files, &args.input.options, false, json, audit);
    let out = &args.output;
    let audit = config.audit.as_deref();
    if let Err(d) = output::refuse_input_as_output(out, &config.files, &config.catalogues, audit) {
        return reporter.fail(d);
    }
    let mut session = config.session();
    let report = keyfill::diff::diff(&config, out, &mut session);
    let status = session.report(reporter);
    let Some(report) = report else {
        return status;
    };
    match to_stdout(reporter, |w| w.write_all(report.text(out).as_bytes())) {
        Exit::Ok if status == Exit::Ok => report.exit(),
        Exit::Ok => status,
        failed => failed,
    }
}

fn check(args: &CheckArgs, audit: Option<PathBuf>, reporter: &Reporter) -> Exit {
    let config = render_config(&args.input.files, &args.input.options, false, false, audit);
    let mut session = config.session();
    let listing = keyfill::check::listing(&config, args.resolve, &mut session);
    let _ = std::io::stdout().lock().write_all(listing.as_bytes());
    session.report(reporter)
}

fn doctor(args: &DoctorArgs, reporter: &Reporter) -> Exit {
    let config = render_config(&args.files, &args.options, false, false, None);
    let mut session = config.session();
    let Some(report) = keyfill::doctor::report(&config, &mut session) else {
        return session.report(reporter);
    };
    let text = match args.format {
        ReportFormat::Text => report.text(),
        ReportFormat::Json => report.json(),
    };
    let written = to_stdout(reporter, |out| out.write_all(text.as_bytes()));
    let status = session.report(reporter);
    Exit::worst([status, report.exit(), written])
}
