//! Command-line definitions only: parsing into plain data, no I/O.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use keyfill::output::Owner;

/// Render configuration files that reference secrets.
#[derive(Debug, Parser)]
#[command(name = "keyfill", version, about, max_term_width = 100)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Global options.
    #[command(flatten)]
    pub global: Global,
}

/// Options for every command.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// More output (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Colour in diagnostics.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Diagnostics as text or JSON lines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Append one JSON line per secret access to FILE (never a value).
    #[arg(long, global = true, value_name = "FILE", env = "KEYFILL_AUDIT")]
    pub audit: Option<PathBuf>,
}

/// When to colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    /// When stderr is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Diagnostic format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable.
    Text,
    /// JSON lines.
    Json,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// The config, format preserved.
    Yaml,
    /// The rendered tree as JSON.
    Json,
}

/// How the output is proven to read as the substituted config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum VerifyMode {
    /// Check each substitution on a small probe; parse the whole output only
    /// where a shape needs it.
    Local,
    /// Parse the whole output again and compare it with the substituted input.
    Full,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Render configs and write the result (stdout or -o).
    Render(RenderArgs),
    /// Validate configs and list their secrets without writing.
    Check(CheckArgs),
    /// Re-render whenever an input changes (and every --refresh).
    Watch(WatchArgs),
    /// Render, then run a command (replacing keyfill, or supervising with --watch).
    Exec(ExecArgs),
    /// Show which paths a render would change in OUT, with fingerprints, not values; writes nothing.
    Diff(DiffArgs),
    /// Check each provider's credentials, reach and identity, and whether each secret is readable.
    Doctor(DoctorArgs),
    /// Print a shell completion script: `keyfill completions bash > /etc/bash_completion.d/keyfill`.
    Completions(CompletionsArgs),
    /// Print a manual page (roff): `keyfill man | man -l -`, `keyfill man render`.
    Man(ManArgs),
}

/// `keyfill man`.
#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// The command whose page to print (keyfill-COMMAND(1)); keyfill(1) without.
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

/// The completion script for `shell`.
pub(crate) fn completion_script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Cli as clap::CommandFactory>::command(),
        "keyfill",
        &mut script,
    );
    script
}

/// keyfill(1), or a command's page titled keyfill-COMMAND (as git's and
/// cargo's are); an unknown command is a usage error, formatted as clap
/// formats every other.
pub(crate) fn manual_page(command: Option<&str>) -> Result<Vec<u8>, String> {
    let mut root = <Cli as clap::CommandFactory>::command();
    let cmd = match command {
        None => root,
        Some(c) => match root.find_subcommand(c) {
            Some(sub) => sub
                .clone()
                .name(format!("keyfill-{c}"))
                .version(env!("CARGO_PKG_VERSION")),
            None => {
                let known: Vec<&str> = root
                    .get_subcommands()
                    .map(clap::Command::get_name)
                    .filter(|n| *n != "man")
                    .collect();
                let message = format!("no command `{c}` (commands: {})", known.join(", "));
                let known_error = root.error(clap::error::ErrorKind::InvalidValue, message);
                return Err(known_error.render().to_string());
            }
        },
    };
    let mut page = Vec::new();
    // Rendering into memory cannot fail but for a bug of the renderer.
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(|e| format!("error: cannot write the manual page: {e}\n"))?;
    Ok(page)
}

/// `keyfill completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: clap_complete::Shell,
}

/// Inputs and validation options shared by render, check, watch and exec.
#[derive(Clone, Debug, Args)]
pub(crate) struct InputArgs {
    /// Config files to render (`-` reads stdin).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<String>,
    /// How they are read and secrets fetched.
    #[command(flatten)]
    pub options: InputOptions,
}

/// How inputs are read and validated, and secrets fetched: every command that
/// reads configs takes these.
#[derive(Clone, Debug, Args)]
pub(crate) struct InputOptions {
    /// Secrets catalogue with a top-level `secrets:` (or --secrets-key) block (repeatable).
    #[arg(long = "secrets", value_name = "FILE")]
    pub secrets: Vec<String>,
    /// Treat unused secrets as errors.
    #[arg(long)]
    pub strict: bool,
    /// Refuse YAML the 1.2 spec refuses, even where libyaml-family readers accept it.
    #[arg(long)]
    pub strict_yaml: bool,
    /// Top-level key of the declarations block, in configs and --secrets files.
    #[arg(long, value_name = "KEY", env = "KEYFILL_SECRETS_KEY", default_value = "secrets", value_parser = parse_secrets_key)]
    pub secrets_key: String,
    /// No declarations block in configs: a top-level `secrets:` is left as it is.
    #[arg(long)]
    pub no_secrets_block: bool,
    /// Largest input file, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_input_size: usize,
    /// Deepest nesting of collections.
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub max_depth: u16,
    /// Most alias nodes in one input.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_aliases: usize,
    /// Largest secret: a `file:` read, a composed value.
    #[arg(long, value_name = "BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_secret_size: u64,
    /// Largest rendered output, all inputs together.
    #[arg(long, value_name = "BYTES", default_value_t = 1024 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_output_size: u64,
    /// Most requests in flight at once, per secret manager.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Deadline for fetching secrets, retries included (e.g. 30s, 2m, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// How the output is proven to read as the substituted config.
    #[arg(long, value_enum, value_name = "HOW", env = "KEYFILL_VERIFY", hide_env_values = true, default_value_t = VerifyMode::Local)]
    pub verify: VerifyMode,
}

/// `keyfill render`.
#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Write here (atomically) instead of stdout.
    #[arg(short, long, value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// Replace every secret-derived value with a fixed mask.
    #[arg(long)]
    pub redact: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub format: OutputFormat,
    /// Mode, owner and fallback of the output file.
    #[command(flatten)]
    pub write: OutputArgs,
}

/// How the output file is written (render, watch and exec).
#[derive(Clone, Debug, Args)]
pub(crate) struct OutputArgs {
    /// File mode of the output, in octal (permission bits only, at most 0777).
    #[arg(long, value_name = "OCTAL", default_value = "0600", value_parser = parse_mode)]
    pub mode: u32,
    /// Numeric owner of the output, `UID` or `UID:GID`, set before it appears.
    #[arg(long, value_name = "UID[:GID]", value_parser = parse_owner)]
    pub owner: Option<Owner>,
    /// Rewrite the output in place where it cannot be replaced by rename (bind mounts).
    #[arg(long)]
    pub in_place_fallback: bool,
}

/// `keyfill diff`.
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// The output to compare with (read, never written).
    #[arg(short, long, value_name = "OUT", required = true)]
    pub output: PathBuf,
    /// Output format the render would write.
    #[arg(long, value_enum, default_value_t = OutputFormat::Yaml)]
    pub format: OutputFormat,
}

/// `keyfill check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Also fetch every secret and report its status (never its value).
    #[arg(long)]
    pub resolve: bool,
}

/// `keyfill doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Config files whose providers and secrets to check (`-` reads stdin);
    /// without, the providers configured in the environment.
    #[arg(value_name = "FILE")]
    pub files: Vec<String>,
    /// How the configs are read and providers asked.
    #[command(flatten)]
    pub options: InputOptions,
    /// Report format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
}

/// Format of a report on stdout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ReportFormat {
    /// A table for people.
    Text,
    /// One JSON document.
    Json,
}

/// Parses `500ms`, `30s`, `5m`, `1h` or a bare number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration such as 500ms, 30s, 5m or 1h");
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(format!("`{s}` is zero; give a positive duration"));
    }
    // Far beyond any sensible deadline or refresh period, and far from overflow.
    if d > Duration::from_secs(7 * 24 * 3600) {
        return Err(format!("`{s}` is longer than a week"));
    }
    Ok(d)
}

/// Where and how `watch` and `exec` write, and when they re-render.
#[derive(Clone, Debug, Args)]
pub(crate) struct LoopArgs {
    /// Write here (atomically).
    #[arg(short, long, value_name = "OUT", required = true)]
    pub output: PathBuf,
    /// Mode, owner and fallback of the output file.
    #[command(flatten)]
    pub write: OutputArgs,
    /// Re-fetch remote secrets this often, to pick up rotation (e.g. 5m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub refresh: Option<Duration>,
    /// How long fetched values are reused between renders.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub cache_ttl: Duration,
    /// Quiet time that coalesces a burst of file events into one render.
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = parse_duration)]
    pub debounce: Duration,
}

/// `keyfill watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output and re-render options.
    #[command(flatten)]
    pub out: LoopArgs,
}

/// `keyfill exec`.
#[derive(Debug, Args)]
pub(crate) struct ExecArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output and re-render options.
    #[command(flatten)]
    pub out: LoopArgs,
    /// Stay as a supervisor: forward signals, re-render on change, reload CMD.
    #[arg(long)]
    pub watch: bool,
    /// Signal sent to CMD when the output changes (with --watch).
    #[arg(long, value_name = "SIGNAL", default_value = "HUP", value_parser = keyfill::signals::parse, conflicts_with = "restart")]
    pub reload_signal: i32,
    /// Restart CMD when the output changes, instead of signalling it.
    #[arg(long)]
    pub restart: bool,
    /// Least time between two reloads or restarts.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub min_reload_interval: Duration,
    /// How long CMD has to exit after a forwarded SIGTERM/SIGINT before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub kill_timeout: Duration,
    /// Forward signals to CMD's whole process group.
    #[arg(long)]
    pub signal_group: bool,
    /// Export every declared secret to CMD's environment, by name.
    #[arg(long)]
    pub env: bool,
    /// Keep keyfill's own secret-manager credentials in CMD's environment.
    #[arg(long)]
    pub pass_credentials: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// A declarations key: not empty, one line.
fn parse_secrets_key(s: &str) -> Result<String, String> {
    if s.is_empty() || s.contains(['\n', '\r']) {
        return Err("the secrets key must be a non-empty, single-line mapping key".to_owned());
    }
    Ok(s.to_owned())
}

fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s.trim_start_matches("0o"), 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        // Set-id and sticky bits make no sense on a config file of secrets.
        Ok(m) if m <= 0o7777 => Err(format!(
            "`{s}` has set-user-id, set-group-id or sticky bits; give permission bits only (at most 0777)"
        )),
        _ => Err(format!("`{s}` is not an octal file mode such as 0600")),
    }
}

/// Parses a numeric `UID` or `UID:GID` (names would need this system's user
/// database, which an init container writing for another image lacks).
fn parse_owner(s: &str) -> Result<Owner, String> {
    let bad = || format!("`{s}` is not a numeric owner such as 1000 or 1000:1000");
    // u32::MAX means "leave unchanged" to chown, so it is no id.
    let id = |t: &str| match t.parse::<u32>() {
        Ok(n) if n != u32::MAX && t.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(bad()),
    };
    match s.split_once(':') {
        None => Ok(Owner {
            uid: id(s)?,
            gid: None,
        }),
        Some((u, g)) => Ok(Owner {
            uid: id(u)?,
            gid: Some(id(g)?),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn yaml_and_block_options_reach_every_command() {
        for cmd in [
            &["render", "c.yaml"][..],
            &["check", "c.yaml"],
            &["watch", "c.yaml", "-o", "o"],
            &["exec", "c.yaml", "-o", "o", "--", "true"],
            &["diff", "c.yaml", "-o", "o"],
            &["doctor", "c.yaml"],
        ] {
            let mut argv = vec!["keyfill", cmd[0]];
            argv.extend([
                "--strict-yaml",
                "--secrets-key",
                "x-keyfill",
                "--no-secrets-block",
            ]);
            argv.extend_from_slice(&cmd[1..]);
            let cli = Cli::try_parse_from(&argv).expect("parses");
            let input = match &cli.command {
                Command::Render(a) => &a.input.options,
                Command::Check(a) => &a.input.options,
                Command::Watch(a) => &a.input.options,
                Command::Exec(a) => &a.input.options,
                Command::Diff(a) => &a.input.options,
                Command::Doctor(a) => &a.options,
                Command::Completions(_) | Command::Man(_) => unreachable!("no input options"),
            };
            assert!(input.strict_yaml && input.no_secrets_block, "{cmd:?}");
            assert_eq!(input.secrets_key, "x-keyfill", "{cmd:?}");
        }
        let err = Cli::try_parse_from(["keyfill", "render", "--secrets-key", "", "c.yaml"])
            .expect_err("an empty key is refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 m").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("9223372036854775807s").is_err());
        assert!(parse_duration("169h").is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0640"), Ok(0o640));
        assert_eq!(parse_mode("0o777"), Ok(0o777));
        assert!(parse_mode("999").is_err());
    }

    #[test]
    fn mode_takes_permission_bits_only() {
        for bad in ["7777", "4755", "2640", "1777", "01000"] {
            let e = parse_mode(bad).err().unwrap_or_default();
            assert!(e.contains("permission bits only"), "{bad}: {e}");
        }
        assert!(parse_mode("17777").is_err());
    }

    #[test]
    fn owners_are_numeric() {
        assert_eq!(
            parse_owner("1000"),
            Ok(Owner {
                uid: 1000,
                gid: None
            })
        );
        assert_eq!(
            parse_owner("0:65534"),
            Ok(Owner {
                uid: 0,
                gid: Some(65534)
            })
        );
        for bad in [
            "",
            ":",
            "app",
            "1000:",
            ":1000",
            "+1",
            "-1",
            "1:2:3",
            "4294967295",
            "1 ",
        ] {
            assert!(parse_owner(bad).is_err(), "{bad}");
        }
    }
}
