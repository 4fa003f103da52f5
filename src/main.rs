//! `ltsweep`: the one command-line tool. Parses arguments, sets up logging and hands each
//! subcommand to its module under `commands`.

mod cli;
mod commands;
mod exit;
mod table;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    #[cfg(feature = "train")]
    {
        ltsweep_worker::onednn::cap_isa_below_amx();
        ltsweep_worker::alloc::keep_freed_memory();
    }
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(exit::code_of(&err))
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (or `-v`); users see progress bars and tables.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info,ltsweep=info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
