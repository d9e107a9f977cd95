//! The `keyfill` binary: parse arguments, run, exit with the documented status.

use std::process::ExitCode;

use clap::Parser as _;

mod app;
mod cli;

fn main() -> ExitCode {
    // A panic message could quote data; print only where it happened.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        #[allow(clippy::print_stderr)]
        {
            eprintln!("keyfill: internal error{at}; this is a bug, please report it");
        }
    }));
    // A supervised command starts as a keyfill that becomes it (see exec.rs).
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == keyfill::exec::CHILD_MARK) {
        return ExitCode::from(keyfill::exec::become_command(&argv[2..]).code());
    }
    let cli = cli::Cli::parse();
    ExitCode::from(app::run(cli).code())
}
