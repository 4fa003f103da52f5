//! The command line, as clap sees it. Raw flags are turned into validated settings by each
//! command before use.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ltsweep",
    version,
    about = "Sweeps of long-tailed recognition training runs across GPU machines"
)]
pub struct Cli {
    /// More log output on stderr (-v: info, -vv: debug); RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a sweep spec and print its grid of jobs.
    Validate(ValidateArgs),
    /// Report the libtorch version, CUDA and GPUs, and the thread count.
    Doctor,
}

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// The sweep spec (TOML).
    pub spec: PathBuf,
    /// Print the grid as JSON: {"sweep", "jobs": [{"id", "plan", "seed", ...}]}.
    #[arg(long)]
    pub json: bool,
}
