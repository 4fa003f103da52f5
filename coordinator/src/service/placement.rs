//! Checks of the fields that preemption and Slurm placement add to the worker calls.

use ltsweep_proto::pb;

use crate::error::CoordinatorError;
use crate::scheduler::{ReleaseReason, SlurmPlacement};

/// Slurm's job and array task ids are numbers; anything this long is not one.
const MAX_SLURM_ID: usize = 64;

/// The Slurm placement a worker reported, or none when it runs outside Slurm.
pub(crate) fn slurm_placement(
    placement: Option<pb::SlurmPlacement>,
) -> Result<Option<SlurmPlacement>, CoordinatorError> {
    let Some(placement) = placement.filter(|p| !p.job_id.is_empty()) else {
        return Ok(None);
    };
    for (field, value) in [
        ("slurm.job_id", &placement.job_id),
        ("slurm.array_task_id", &placement.array_task_id),
    ] {
        if value.len() > MAX_SLURM_ID || value.chars().any(|c| c.is_control()) {
            return Err(CoordinatorError::invalid(
                field,
                format!(
                    "`{value:.64}` is not a Slurm id (at most {MAX_SLURM_ID} printable characters)"
                ),
            ));
        }
    }
    Ok(Some(SlurmPlacement {
        job_id: placement.job_id,
        array_task_id: placement.array_task_id,
    }))
}

pub(crate) fn release_reason(reason: i32) -> Result<ReleaseReason, CoordinatorError> {
    match pb::ReleaseReason::try_from(reason) {
        Ok(pb::ReleaseReason::Preempted) => Ok(ReleaseReason::Preempted),
        _ => Err(CoordinatorError::invalid(
            "reason",
            format!("{reason} is not a release reason: send RELEASE_REASON_PREEMPTED"),
        )),
    }
}
