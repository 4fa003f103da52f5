//! Conversions of a sweep's, its jobs' and the workers' status between the wire and the domain.

use ltsweep_domain::{
    JobId, JobSearchStatus, JobSpec, JobStatus, LossPlan, SlurmPlacement, SweepCounts, SweepEvent,
    SweepId, SweepStatus, SweepSummary, WorkerId, WorkerInfo,
};

use super::ConvertError;
use crate::pb;

/// The placement a message carries; none for a missing one or an empty job id (a worker
/// outside Slurm).
pub fn slurm_placement_from(placement: Option<pb::SlurmPlacement>) -> Option<SlurmPlacement> {
    placement
        .filter(|p| !p.job_id.is_empty())
        .map(|p| SlurmPlacement {
            job_id: p.job_id,
            array_task_id: p.array_task_id,
        })
}

impl From<SweepCounts> for pb::SweepCounts {
    fn from(c: SweepCounts) -> Self {
        Self {
            total: c.total,
            pending: c.pending,
            running: c.running,
            succeeded: c.succeeded,
            failed: c.failed,
            cancelled: c.cancelled,
        }
    }
}

impl From<pb::SweepCounts> for SweepCounts {
    fn from(c: pb::SweepCounts) -> Self {
        Self {
            total: c.total,
            pending: c.pending,
            running: c.running,
            succeeded: c.succeeded,
            failed: c.failed,
            cancelled: c.cancelled,
        }
    }
}

impl TryFrom<pb::JobStatus> for JobStatus {
    type Error = ConvertError;

    fn try_from(job: pb::JobStatus) -> Result<Self, ConvertError> {
        Ok(Self {
            plan: LossPlan::try_from(job.plan.ok_or(ConvertError {
                field: "job.plan",
                problem: "missing",
            })?)?,
            state: super::job_state_from(job.state)?,
            spec: job.spec.map(JobSpec::try_from).transpose()?,
            id: JobId(job.job_id),
            seed: job.seed,
            axes: job.axes.into_iter().map(Into::into).collect(),
            attempts: job.attempts,
            worker: Some(job.worker_id).filter(|w| !w.is_empty()).map(WorkerId),
            epoch: job.epoch,
            epochs_total: job.epochs_total,
            error: Some(job.error).filter(|e| !e.is_empty()),
            epochs_retrained: job.epochs_retrained,
            last_accuracy: job.last_accuracy,
            preemptions: job.preemptions,
            parent: Some(job.parent_job_id).filter(|p| !p.is_empty()).map(JobId),
            stage2: Some(job.stage2).filter(|s| !s.is_empty()),
            base: match job.base.as_str() {
                "" => None,
                name => Some(name.parse().map_err(|_| ConvertError {
                    field: "job.base",
                    problem: "not a base loss",
                })?),
            },
            sampler: match job.sampler.as_str() {
                "" => None,
                name => Some(name.parse().map_err(|_| ConvertError {
                    field: "job.sampler",
                    problem: "not a sampler",
                })?),
            },
            search: job
                .search
                .map(|s| -> Result<JobSearchStatus, ConvertError> {
                    Ok(JobSearchStatus {
                        readings: s.readings.into_iter().map(|r| (r.epoch, r.value)).collect(),
                        paused_at: s.paused_at,
                        stopped_at: s.stopped_at,
                        metric: match s.metric.as_str() {
                            "" => None,
                            name => Some(name.parse().map_err(|_| ConvertError {
                                field: "job.search.metric",
                                problem: "not a search metric",
                            })?),
                        },
                    })
                })
                .transpose()?,
        })
    }
}

impl TryFrom<pb::SweepStatus> for SweepStatus {
    type Error = ConvertError;

    fn try_from(sweep: pb::SweepStatus) -> Result<Self, ConvertError> {
        Ok(Self {
            id: SweepId(sweep.sweep_id),
            name: sweep.name,
            counts: sweep.counts.unwrap_or_default().into(),
            jobs: sweep
                .jobs
                .into_iter()
                .map(JobStatus::try_from)
                .collect::<Result<_, _>>()?,
            cancelled: sweep.cancelled,
            submitted_unix_ms: sweep.submitted_unix_ms,
        })
    }
}

impl From<pb::SweepSummary> for SweepSummary {
    fn from(s: pb::SweepSummary) -> Self {
        Self {
            id: SweepId(s.sweep_id),
            name: s.name,
            counts: s.counts.unwrap_or_default().into(),
            submitted_unix_ms: s.submitted_unix_ms,
        }
    }
}

impl TryFrom<pb::SweepEvent> for SweepEvent {
    type Error = ConvertError;

    fn try_from(event: pb::SweepEvent) -> Result<Self, ConvertError> {
        Ok(Self {
            job: event.job.map(JobStatus::try_from).transpose()?,
            counts: event.counts.map(Into::into),
        })
    }
}

impl From<SlurmPlacement> for pb::SlurmPlacement {
    fn from(placement: SlurmPlacement) -> Self {
        pb::SlurmPlacement {
            job_id: placement.job_id,
            array_task_id: placement.array_task_id,
        }
    }
}

impl From<pb::WorkerInfo> for WorkerInfo {
    fn from(worker: pb::WorkerInfo) -> Self {
        WorkerInfo {
            id: WorkerId(worker.worker_id),
            host: worker.host,
            devices: worker
                .devices
                .into_iter()
                .map(|d| (d.name, d.slots))
                .collect(),
            version: worker.version,
            last_seen_unix_ms: worker.last_seen_unix_ms,
            running_jobs: worker.running_jobs.into_iter().map(JobId).collect(),
            alive: worker.alive,
            slurm: slurm_placement_from(worker.slurm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_slurm_job_is_no_placement() {
        let wire = |job: &str| pb::SlurmPlacement {
            job_id: job.into(),
            array_task_id: "3".into(),
        };
        assert_eq!(slurm_placement_from(Some(wire(""))), None);
        assert_eq!(slurm_placement_from(None), None);
        assert_eq!(
            slurm_placement_from(Some(wire("77"))).map(|p| p.to_string()),
            Some("77_3".to_owned())
        );
    }
}
