//! `DeleteSweep`: the sweep's rows go in one commit, then its checkpoint and model files (the
//! models go by the commit's own rule, see `Coordinator::commit`).

use std::sync::Arc;

use ltsweep_domain::SweepId;

use super::{After, Coordinator, Result};

/// Deletes a sweep whose jobs all ended; answers how many jobs went with it.
pub(super) async fn delete_sweep(coordinator: &Coordinator, sweep: &SweepId) -> Result<u32> {
    let turn = coordinator.turn().await?;
    let (planned, files) = coordinator.read(|s| {
        let planned = s.delete(sweep)?;
        // Ended jobs drop their checkpoints; a state dir of an earlier version may still
        // name some.
        let files: Vec<_> = s
            .sweep(sweep)
            .map(|record| {
                s.jobs_of(record)
                    .filter_map(|job| Some((job.id.clone(), job.runtime.checkpoint.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
        Ok((planned, files))
    })?;
    let checkpoints = Arc::clone(&coordinator.checkpoints);
    // On the store thread, once the rows are gone.
    let after: After = Box::new(move |committed| {
        if committed {
            for (job, checkpoint) in files {
                checkpoints.remove(&job, &checkpoint.sha256);
            }
        }
    });
    coordinator.commit(turn, planned, None, Some(after)).await
}
