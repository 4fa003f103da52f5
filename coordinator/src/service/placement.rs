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
    let Some(placement) = ltsweep_proto::convert::slurm_placement_from(placement) else {
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
    Ok(Some(placement))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_placements_are_checked() {
        assert_eq!(slurm_placement(None).unwrap(), None);
        let empty = pb::SlurmPlacement::default();
        assert_eq!(slurm_placement(Some(empty)).unwrap(), None);
        let placed = pb::SlurmPlacement {
            job_id: "4242".into(),
            array_task_id: "0".into(),
        };
        assert_eq!(
            slurm_placement(Some(placed)).unwrap(),
            Some(SlurmPlacement {
                job_id: "4242".into(),
                array_task_id: "0".into()
            })
        );
        let long = pb::SlurmPlacement {
            job_id: "9".repeat(65),
            array_task_id: String::new(),
        };
        let err = slurm_placement(Some(long)).unwrap_err().to_string();
        assert!(err.contains("slurm.job_id"), "{err}");
        assert!(release_reason(0).is_err());
        assert_eq!(release_reason(1).unwrap(), ReleaseReason::Preempted);
    }
}
