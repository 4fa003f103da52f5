//! `ltsweep delete SWEEP`.

use ltsweep_domain::SweepId;

use super::client::{block_on, connect, remote_error};
use crate::cli::SweepArgs;

pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let jobs = block_on(async {
        let connection = connect(&args.remote)?;
        connection
            .sweep_api()
            .delete(&SweepId::from(args.sweep.as_str()))
            .await
            .map_err(|e| remote_error(e, &args.remote))
    })?;
    println!(
        "deleted {} with its {jobs} jobs, their results, checkpoints and models",
        args.sweep
    );
    Ok(())
}
