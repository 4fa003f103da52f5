//! One module per subcommand.

mod bench;
mod client;
mod coordinator;
#[cfg(feature = "train")]
mod data;
#[cfg(feature = "train")]
mod data_files;
mod delete;
#[cfg(feature = "train")]
mod doctor;
pub(crate) mod launch;
mod mlflow;
mod model;
mod report;
#[cfg(feature = "train")]
mod run;
#[cfg(feature = "train")]
mod train;
#[cfg(not(feature = "train"))]
pub(crate) mod untrained;
mod validate;
#[cfg(feature = "train")]
mod worker;

use std::path::Path;

use anyhow::Context;
use ltsweep_domain::SweepSpec;

use crate::cli::{Cli, Command};
use crate::exit::BadInput;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate(args) => validate::run(&args),
        #[cfg(feature = "train")]
        Command::Doctor => doctor::run(),
        #[cfg(feature = "train")]
        Command::Train(args) => train::run(&args),
        #[cfg(feature = "train")]
        Command::Data(command) => match command {
            crate::cli::DataCommand::Summary(args) => data::summary(&args),
            crate::cli::DataCommand::Synth(args) => data::synth(&args),
            crate::cli::DataCommand::Check(args) => data_files::check(&args),
            crate::cli::DataCommand::Pack(args) => data_files::pack(&args),
        },
        Command::Bench(command) => bench::run(&command),
        Command::Submit(args) => client::submit(&args),
        Command::Status(args) => client::status(&args),
        Command::Watch(args) => client::watch(&args),
        Command::Cancel(args) => client::cancel(&args),
        Command::RetryFailed(args) => client::retry_failed(&args),
        Command::Workers(args) => client::workers(&args),
        Command::Sweeps(args) => client::sweeps(&args),
        Command::Report(args) => report::report(&args),
        Command::Export(args) => report::export(&args),
        #[cfg(feature = "train")]
        Command::Run(args) => run::run(&args),
        Command::Coordinator(args) => coordinator::run(&args),
        #[cfg(feature = "train")]
        Command::Worker(args) => worker::run(&args),
        Command::Delete(args) => delete::run(&args),
        Command::Model(args) => model::run(&args),
        Command::Launch(command) => launch::run(&command),
        #[cfg(not(feature = "train"))]
        Command::Untrained(words) => Err(untrained::refuse("", &words)),
    }
}

/// Reads and validates a spec file; errors name the file, then the key and its line.
pub fn load_spec(path: &Path) -> anyhow::Result<(String, SweepSpec)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BadInput(format!("cannot read spec {}: {e}", path.display())))?;
    let spec = SweepSpec::parse(&text).with_context(|| path.display().to_string())?;
    Ok((text, spec))
}
