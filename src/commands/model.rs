//! `ltsweep model SWEEP JOB --out FILE`: a job's kept model, as the safetensors file PyTorch's
//! `safetensors` package opens (`safetensors.torch.load_file`).

use anyhow::Context;
use ltsweep_domain::{JobId, SweepId};

use super::client::{block_on, connect, remote_error};
use crate::cli::ModelArgs;

/// Writes a job's kept model (checked by SHA-256 on the way) through a temporary file and a
/// rename, so a failed write leaves no half file.
pub fn run(args: &ModelArgs) -> anyhow::Result<()> {
    let bytes = block_on(async {
        let connection = connect(&args.remote)?;
        connection
            .sweep_api()
            .model(
                &SweepId::from(args.sweep.as_str()),
                &JobId::from(args.job.as_str()),
            )
            .await
            .map_err(|e| remote_error(e, &args.remote))
    })?;
    let tmp = args.out.with_extension("safetensors.tmp");
    std::fs::write(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!(
        "wrote the model of job {} ({} bytes) to {}",
        args.job,
        bytes.len(),
        args.out.display()
    );
    Ok(())
}
