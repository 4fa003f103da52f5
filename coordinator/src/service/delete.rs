//! `DeleteSweep`: the sweep's rows go in one commit, then its checkpoint files.

use ltsweep_proto::SweepId;

use super::{Coordinator, Result};

/// Deletes a sweep whose jobs all ended; answers how many jobs went with it.
pub(super) fn delete_sweep(coordinator: &Coordinator, sweep: &SweepId) -> Result<u32> {
    let mut files = Vec::new();
    let jobs = coordinator.transact(|s| {
        let planned = s.delete(sweep)?;
        // Ended jobs drop their checkpoints; a state dir of an earlier version may still
        // name some.
        if let Some(record) = s.sweep(sweep) {
            files = s
                .jobs_of(record)
                .filter_map(|job| Some((job.spec.id.clone(), job.runtime.checkpoint.clone()?)))
                .collect();
        }
        Ok(planned)
    })?;
    for (job, checkpoint) in files {
        coordinator.checkpoints.remove(&job, &checkpoint);
    }
    Ok(jobs)
}
