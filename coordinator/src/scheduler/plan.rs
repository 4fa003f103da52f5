//! What operations answer, and the changes they plan, to be committed and applied.

use std::sync::Arc;

use ltsweep_domain::{JobId, JobResult, JobSpec, SweepId, SweepSpec};

use super::search::SearchPlan;
use super::state::{
    Counters, DeviceSlots, JobRuntime, LeaseId, SlurmPlacement, SweepRecord, Timing, WorkerId,
    WorkerRecord,
};
use super::{Result, SchedulerError};

/// One state change. The store persists each (all but [`Change::LeaseRenewed`]) and
/// [`Scheduler::apply`](super::Scheduler::apply) performs it in memory.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new sweep; its stage-1 jobs enter the queue in grid order at `first_queue_seq`, `+1`,
    /// ..., its stage-2 jobs wait (see [`initial_runtimes`]).
    SweepSubmitted {
        sweep: SweepRecord,
        /// The spec as submitted: the store keeps it, memory does not (up to
        /// `--max-spec-bytes` a sweep, for as many sweeps as `--max-jobs` allows).
        spec_toml: Arc<str>,
        /// One allocation for the whole grid: a change is cloned cheaply, and a large sweep's
        /// specs are not copied on their way into memory and the store.
        jobs: Arc<Vec<JobSpec>>,
        first_queue_seq: u64,
    },
    SweepCancelled {
        sweep: SweepId,
        cancelled: bool,
    },
    /// A sweep whose jobs all ended is gone, with its jobs and results.
    SweepDeleted {
        sweep: SweepId,
    },
    /// A job's new runtime state, whole.
    JobUpdated {
        job: JobId,
        runtime: JobRuntime,
    },
    /// A lease's deadline moved by a heartbeat. Not persisted: on restart every lease gets a
    /// fresh deadline anyway, and heartbeats then cost no write.
    LeaseRenewed {
        job: JobId,
        deadline_ms: u64,
    },
    ResultRecorded {
        job: JobId,
        result: Arc<JobResult>,
    },
    WorkerRegistered(WorkerRecord),
    /// A worker forgotten: unseen for the worker expiry, or making room in a full registry. It
    /// holds no lease; its secret no longer names anyone.
    WorkerExpired {
        worker: WorkerId,
    },
    WorkerSeen {
        worker: WorkerId,
        at_ms: u64,
    },
    Counters(Counters),
}

impl Change {
    /// Whether the store must write it.
    pub fn is_durable(&self) -> bool {
        !matches!(self, Change::LeaseRenewed { .. })
    }
}

/// How many jobs a list of changes puts into the pending queue (to wake as many pollers).
pub fn jobs_made_pending(changes: &[Change]) -> usize {
    changes
        .iter()
        .map(|change| match change {
            Change::SweepSubmitted { jobs, .. } => {
                jobs.iter().filter(|j| j.stage2.is_none()).count()
            }
            Change::JobUpdated { runtime, .. } if runtime.queue_seq.is_some() => 1,
            _ => 0,
        })
        .sum()
}

/// The runtime state a submitted sweep's jobs start in, in grid order: each stage-1 job
/// queued, at `first_queue_seq`, `+1`, ...; each stage-2 job waiting for its stage-1 job.
pub fn initial_runtimes(
    jobs: &[JobSpec],
    first_queue_seq: u64,
) -> impl Iterator<Item = JobRuntime> + '_ {
    let mut next = first_queue_seq;
    jobs.iter().map(move |job| {
        if job.stage2.is_some() {
            JobRuntime::waiting()
        } else {
            next += 1;
            JobRuntime::pending(next - 1)
        }
    })
}

/// An operation's answer and the changes that must be committed before it is given.
#[derive(Debug)]
#[must_use = "commit the changes, then apply them"]
pub struct Planned<T> {
    pub answer: T,
    pub changes: Vec<Change>,
}

impl<T> Planned<T> {
    pub(super) fn unchanged(answer: T) -> Self {
        Self {
            answer,
            changes: Vec::new(),
        }
    }
}

/// A sweep spec parsed and expanded into its jobs, ready for [`Scheduler::submit_prepared`](super::Scheduler::submit_prepared).
///
/// Made without the scheduler, so that a large grid is expanded before the coordinator's lock
/// is taken.
#[derive(Clone, Debug)]
pub struct Submission {
    pub(super) spec_toml: String,
    pub(super) name: String,
    pub(super) max_attempts: u32,
    pub(super) keep_models: bool,
    pub(super) search: Option<SearchPlan>,
    pub(super) sweep: SweepId,
    pub(super) jobs: Arc<Vec<JobSpec>>,
}

impl Submission {
    /// Parses and validates the spec (an error names the key and its line) and expands its grid.
    pub fn parse(spec_toml: &str) -> Result<Self> {
        let spec = SweepSpec::parse(spec_toml)?;
        let jobs = spec.jobs();
        let Some(first) = jobs.first() else {
            return Err(SchedulerError::invalid(
                "spec_toml",
                "the grid has no jobs: give at least one seed and one loss plan",
            ));
        };
        let search = SearchPlan::of(&spec);
        Ok(Self {
            search,
            sweep: first.sweep.clone(),
            spec_toml: spec_toml.to_owned(),
            name: spec.name,
            max_attempts: spec.max_attempts,
            keep_models: spec.keep_models,
            jobs: Arc::new(jobs),
        })
    }

    pub fn sweep(&self) -> &SweepId {
        &self.sweep
    }

    pub fn jobs(&self) -> &[JobSpec] {
        &self.jobs
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmitAnswer {
    pub sweep: SweepId,
    pub jobs: u32,
    /// False when the same sweep had been submitted before.
    pub created: bool,
}

/// What a registering worker says of itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcement {
    pub host: String,
    pub devices: Vec<DeviceSlots>,
    pub protocol_version: u32,
    /// The ltsweep version, for `ltsweep workers`.
    pub version: String,
    /// The Slurm job it runs in, when Slurm started it.
    pub slurm: Option<SlurmPlacement>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub worker: WorkerId,
    pub timing: Timing,
}

/// A job handed to a worker.
#[derive(Clone, Debug, PartialEq)]
pub struct Lease {
    pub id: LeaseId,
    pub deadline_ms: u64,
    /// 1 for the first lease of the job.
    pub attempt: u32,
    pub job: JobSpec,
    /// The epoch of the job's latest checkpoint; 0 for none.
    pub checkpoint_epoch: u32,
    /// Its final weights are to be kept: a stage-2 job needs them, or the sweep keeps models.
    pub keep_model: bool,
    /// The epoch to stop at, with a checkpoint, and give the lease back: a searched job's next
    /// rung. `None`: train to the last epoch.
    pub stop_after: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressAnswer {
    /// The job's sweep was cancelled: stop it.
    pub cancel: bool,
    /// The lease's new deadline; 0 when cancelled.
    pub deadline_ms: u64,
}
