//! `ltsweep delete SWEEP`.

use ltsweep_proto::pb;

use super::client::{block_on, connect, rpc_error};
use crate::cli::SweepArgs;

pub fn run(args: &SweepArgs) -> anyhow::Result<()> {
    let response = block_on(async {
        let connection = connect(&args.remote)?;
        let request = pb::DeleteSweepRequest {
            sweep_id: args.sweep.clone(),
        };
        connection
            .sweeps()
            .delete_sweep(request)
            .await
            .map_err(|s| rpc_error(s, &args.remote))
    })?
    .into_inner();
    println!(
        "deleted {} with its {} jobs, their results and checkpoints",
        args.sweep, response.jobs
    );
    Ok(())
}
