//! The state's types: sweeps, jobs' runtime state, leases, workers, ids (a job itself is in `shared`).

use std::collections::BTreeSet;

use ltsweep_domain::{JobId, JobState, Sha256, SweepId};
pub use ltsweep_domain::{LeaseId, SlurmPlacement, WorkerId};
use serde::{Deserialize, Serialize};

use super::search::{JobSearch, SearchPlan};

/// The coordinator's clock settings, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub lease_ttl_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub poll_timeout_ms: u64,
    /// A worker unseen this long, holding no lease, is forgotten.
    pub worker_expiry_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 60_000,
            heartbeat_interval_ms: 10_000,
            poll_timeout_ms: 20_000,
            worker_expiry_ms: 3_600_000,
        }
    }
}

/// The persisted counters ids and queue positions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters {
    pub next_worker: u64,
    pub next_lease: u64,
    pub next_queue_seq: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            next_worker: 1,
            next_lease: 1,
            next_queue_seq: 1,
        }
    }
}

/// A sweep as submitted: what memory keeps of it (the store keeps its spec text too).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRecord {
    pub id: SweepId,
    pub name: String,
    pub submitted_ms: u64,
    pub max_attempts: u32,
    /// Cancelled: its jobs are not leased until `retry_failed`.
    pub cancelled: bool,
    /// The spec's `keep_models`: every stage-1 job's model is kept until the sweep is deleted.
    pub keep_models: bool,
    /// The spec's search, when not a grid (read from the spec again at load).
    pub search: Option<SearchPlan>,
}

/// How many of a sweep's jobs are in each state: the contract's type, kept current as jobs move.
pub use ltsweep_domain::SweepCounts;

/// A sweep and its jobs, in grid order.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub record: SweepRecord,
    pub jobs: Vec<JobId>,
    pub counts: SweepCounts,
}

/// A live lease: the job is running on `worker` until `deadline_ms` unless progress renews it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveLease {
    pub id: LeaseId,
    pub worker: WorkerId,
    pub deadline_ms: u64,
    /// The last epoch reported under this lease: a worker never trains an epoch twice in one
    /// attempt, so the same report again is a retried call (its answer was lost, or arrived
    /// after the caller's deadline), not work redone.
    #[serde(default)]
    pub reported_epoch: u32,
}

/// How a lease ended when it did not simply expire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseEnd {
    /// Its result was recorded: the same lease completing again is answered OK.
    Completed,
    /// The worker reported a failure: the same report again is answered OK.
    Failed,
    /// The sweep was cancelled: its progress is answered "cancel".
    Cancelled,
    /// The worker gave it back (preempted): the same release again is answered OK.
    Released,
}

/// The lease a job's last attempt ended with, kept so that retried calls get the same answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedLease {
    pub id: LeaseId,
    pub worker: WorkerId,
    pub how: LeaseEnd,
}

/// The latest checkpoint the coordinator holds for a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub epoch: u32,
    /// The file's SHA-256 (stored as its hex text).
    pub sha256: Sha256,
}

/// A finished job's final weights the coordinator keeps (its file is in the state dir's
/// `models/`, named after the job and this SHA-256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptModel {
    /// The file's SHA-256 (stored as its hex text).
    pub sha256: Sha256,
    pub size: u64,
    /// The epochs the model trained.
    pub epochs: u32,
}

/// Everything about a job that changes after submission.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRuntime {
    pub state: JobState,
    /// Leases handed out, over the job's whole life.
    pub attempts: u32,
    /// Attempts that do not count toward `max_attempts`: all of them when `retry_failed` last
    /// gave the job a fresh budget, and each one since that ended in a preempted release.
    #[serde(default)]
    pub retry_base: u32,
    /// Leases given back as preempted, over the job's whole life.
    #[serde(default)]
    pub preemptions: u32,
    /// Its place in the pending queue; set exactly when pending and not waiting: a stage-2 job
    /// is pending without a place while its stage-1 job has not succeeded.
    pub queue_seq: Option<u64>,
    /// Set exactly when running.
    pub lease: Option<Box<LiveLease>>,
    pub ended_lease: Option<EndedLease>,
    /// The worker running it, or the one that finished it.
    pub worker: Option<WorkerId>,
    /// The last epoch reported.
    pub epoch: u32,
    /// The highest epoch ever reported, over all attempts.
    pub max_epoch: u32,
    /// Reported epochs that had been reported before (work redone after a lost lease).
    pub epochs_retrained: u32,
    /// Test accuracy (All) at the last evaluation reported.
    pub last_accuracy: Option<f64>,
    pub checkpoint: Option<Box<Checkpoint>>,
    /// Its final weights, kept while a stage-2 job may need them (or for good when the sweep
    /// keeps its models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<Box<KeptModel>>,
    /// It runs again only to make its lost model: its result (recorded by its first run) stays,
    /// and the new run's is not recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rerun_for_model: bool,
    pub error: Option<String>,
    /// A searched sweep's job: its rung readings, and where it waits or was stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<Box<JobSearch>>,
}

impl JobRuntime {
    pub(crate) fn pending(queue_seq: u64) -> Self {
        Self {
            state: JobState::Pending,
            attempts: 0,
            retry_base: 0,
            preemptions: 0,
            queue_seq: Some(queue_seq),
            lease: None,
            ended_lease: None,
            worker: None,
            epoch: 0,
            max_epoch: 0,
            epochs_retrained: 0,
            last_accuracy: None,
            checkpoint: None,
            model: None,
            rerun_for_model: false,
            error: None,
            search: None,
        }
    }

    /// A stage-2 job waiting for its stage-1 job: pending, without a place in the queue.
    pub(crate) fn waiting() -> Self {
        Self {
            queue_seq: None,
            ..Self::pending(0)
        }
    }

    /// Pending without a place in the queue: a stage-2 job waiting for its stage-1 job, or a
    /// searched job paused at a rung.
    pub fn is_waiting(&self) -> bool {
        self.state == JobState::Pending && self.queue_seq.is_none()
    }

    /// The rung epoch a searched job waits at for its configuration's promotion.
    pub fn paused_at(&self) -> Option<u32> {
        self.search.as_ref().and_then(|s| s.paused_at)
    }

    /// Whether the store holds a result of this job: it succeeded, or it runs again only to
    /// make its lost model.
    pub fn has_result(&self) -> bool {
        self.state == JobState::Succeeded || self.rerun_for_model
    }

    /// Back to waiting for its stage-1 job (pending, out of the queue).
    pub(super) fn wait(&mut self) {
        self.state = JobState::Pending;
        self.queue_seq = None;
        self.lease = None;
        self.worker = None;
    }

    /// Back into the queue (its end), as after a retryable failure or an expired lease.
    pub(super) fn requeue(&mut self, queue_seq: u64) {
        if let Some(search) = &mut self.search {
            search.paused_at = None;
        }
        self.state = JobState::Pending;
        self.queue_seq = Some(queue_seq);
        self.lease = None;
        self.worker = None;
    }
}

/// A device of a worker and how many jobs it runs at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSlots {
    pub name: String,
    pub slots: u32,
}

/// A registered worker: what the store keeps of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerRecord {
    pub id: WorkerId,
    /// Its registration order.
    pub ordinal: u64,
    pub host: String,
    pub devices: Vec<DeviceSlots>,
    pub version: String,
    pub registered_ms: u64,
    pub last_seen_ms: u64,
    /// The Slurm job it runs in, when Slurm started it.
    pub slurm: Option<SlurmPlacement>,
    /// Lowercase hex SHA-256 of the secret its registration was answered with: its calls are
    /// known by it.
    pub secret_sha256: String,
}

/// Why a worker gave a lease back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseReason {
    /// It was told to stop and checkpointed first: not the job's fault, so not an attempt.
    Preempted,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Worker {
    pub record: WorkerRecord,
    /// The jobs it holds live leases for.
    pub running: BTreeSet<JobId>,
}
