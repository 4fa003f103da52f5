//! The scheduler: every sweep, job, lease and worker the coordinator knows, as a pure state
//! machine. No clock, no I/O, no randomness: time comes in as unix milliseconds.
//!
//! Every operation reads `&self` and *plans*: it returns its answer and the [`Change`]s it
//! implies, wrapped in [`Planned`], or a typed error. The caller commits the changes to the
//! [`crate::store::Store`] in one transaction and only then calls [`Scheduler::apply`]. A
//! failed commit therefore leaves memory as it was, and the store and memory change by the same
//! list of changes, so a state rebuilt from the store equals the one in memory.
//!
//! The promises (checked by the property tests):
//! - a job has at most one live lease, and at most one result, which is never replaced;
//! - a call with a stale lease changes nothing (fencing);
//! - an expired lease returns its job to the queue (or fails it after `max_attempts`): every job
//!   is always in exactly one of the pending queue, the running set, or a final state;
//! - a cancelled sweep's jobs are never leased until `retry_failed`;
//! - a lease given back as preempted returns its job to the queue at once and never brings it
//!   closer to failing for good.
//!
//! Per-call work is O(log n) in the number of jobs: the pending queue, the lease deadlines and
//! the per-sweep counts are kept incrementally, never recomputed by a scan.
//!
//! ```
//! use ltsweep_coordinator::scheduler::{Scheduler, Timing};
//! use ltsweep_proto::PROTOCOL_VERSION;
//!
//! let mut scheduler = Scheduler::new(Timing::default());
//! let spec = "name = \"demo\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"";
//! let planned = scheduler.submit(1_000, spec)?;
//! assert_eq!(planned.answer.jobs, 9);
//! scheduler.apply(&planned.changes); // after the store committed them
//!
//! let planned = scheduler.register_worker(1_000, "gpu-1", vec![], PROTOCOL_VERSION, "0.1.0")?;
//! let worker = planned.answer.worker.clone();
//! scheduler.apply(&planned.changes);
//! let planned = scheduler.poll(1_001, &worker)?;
//! let lease = planned.answer.clone().expect("a pending job");
//! scheduler.apply(&planned.changes);
//! assert_eq!(lease.attempt, 1);
//! # Ok::<(), ltsweep_coordinator::CoordinatorError>(())
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ltsweep_proto::{
    EpochMetrics, JobId, JobResult, JobSpec, JobState, SweepId, SweepSpec, string_id,
};
use serde::{Deserialize, Serialize};

mod delete;
mod error;
#[cfg(test)]
pub(crate) mod proptests;
#[cfg(test)]
pub(crate) mod tests;

pub use error::SchedulerError;

type Result<T> = std::result::Result<T, SchedulerError>;

/// A worker's last-seen time is recorded (and committed) at most this often, so that bare
/// heartbeats do not each cost a write.
const SEEN_RESOLUTION_MS: u64 = 1_000;

/// A worker is alive while it was seen within this many heartbeat intervals.
const ALIVE_HEARTBEATS: u64 = 3;

string_id!(
    /// `w-17`: from a persisted counter, so ids stay unique across coordinator restarts.
    WorkerId
);
string_id!(
    /// `l-1234-<job id>`: a persisted counter, then the job it leases, so that any lease id
    /// leads straight to its job.
    LeaseId
);

impl LeaseId {
    fn new(counter: u64, job: &JobId) -> Self {
        Self(format!("l-{counter}-{job}"))
    }

    /// The job this lease id was issued for, if it is one of ours at all.
    pub fn job(&self) -> Option<JobId> {
        let rest = self.0.strip_prefix("l-")?;
        let (counter, job) = rest.split_once('-')?;
        (!counter.is_empty() && counter.bytes().all(|b| b.is_ascii_digit()) && !job.is_empty())
            .then(|| JobId(job.to_owned()))
    }
}

/// The coordinator's clock settings, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub lease_ttl_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub poll_timeout_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 60_000,
            heartbeat_interval_ms: 10_000,
            poll_timeout_ms: 20_000,
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

/// A sweep as submitted: what the store keeps of it.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRecord {
    pub id: SweepId,
    pub name: String,
    pub spec_toml: String,
    pub submitted_ms: u64,
    pub max_attempts: u32,
    /// Cancelled: its jobs are not leased until `retry_failed`.
    pub cancelled: bool,
}

/// How many of a sweep's jobs are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepCounts {
    pub total: u32,
    pub pending: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl SweepCounts {
    fn slot(&mut self, state: JobState) -> &mut u32 {
        match state {
            JobState::Pending => &mut self.pending,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
        }
    }

    /// Every job succeeded, failed or was cancelled.
    pub fn all_final(&self) -> bool {
        self.pending == 0 && self.running == 0
    }
}

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
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
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
    /// Its place in the pending queue; set exactly when pending.
    pub queue_seq: Option<u64>,
    /// Set exactly when running.
    pub lease: Option<LiveLease>,
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
    pub checkpoint: Option<Checkpoint>,
    pub error: Option<String>,
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
            error: None,
        }
    }

    /// Back into the queue (its end), as after a retryable failure or an expired lease.
    fn requeue(&mut self, queue_seq: u64) {
        self.state = JobState::Pending;
        self.queue_seq = Some(queue_seq);
        self.lease = None;
        self.worker = None;
    }
}

/// A job: its immutable spec, its runtime state and, once succeeded, its result.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub spec: Arc<JobSpec>,
    pub runtime: JobRuntime,
    pub result: Option<Arc<JobResult>>,
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
}

/// A worker's Slurm job and array task, as it reported them at registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmPlacement {
    pub job_id: String,
    /// Empty when the job is not an array.
    pub array_task_id: String,
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

/// One state change. The store persists each (all but [`Change::LeaseRenewed`]) and
/// [`Scheduler::apply`] performs it in memory.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A new sweep; its jobs enter the queue in grid order at `first_queue_seq`, `+1`, ...
    SweepSubmitted {
        sweep: SweepRecord,
        jobs: Vec<Arc<JobSpec>>,
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
            Change::SweepSubmitted { jobs, .. } => jobs.len(),
            Change::JobUpdated { runtime, .. } if runtime.state == JobState::Pending => 1,
            _ => 0,
        })
        .sum()
}

/// An operation's answer and the changes that must be committed before it is given.
#[derive(Debug)]
#[must_use = "commit the changes, then apply them"]
pub struct Planned<T> {
    pub answer: T,
    pub changes: Vec<Change>,
}

impl<T> Planned<T> {
    fn unchanged(answer: T) -> Self {
        Self {
            answer,
            changes: Vec::new(),
        }
    }
}

/// A sweep spec parsed and expanded into its jobs, ready for [`Scheduler::submit_prepared`].
///
/// Made without the scheduler, so that a large grid is expanded before the coordinator's lock
/// is taken.
#[derive(Clone, Debug)]
pub struct Submission {
    spec_toml: String,
    name: String,
    max_attempts: u32,
    sweep: SweepId,
    jobs: Vec<Arc<JobSpec>>,
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
        Ok(Self {
            sweep: first.sweep.clone(),
            spec_toml: spec_toml.to_owned(),
            name: spec.name,
            max_attempts: spec.max_attempts,
            jobs: jobs.into_iter().map(Arc::new).collect(),
        })
    }

    pub fn sweep(&self) -> &SweepId {
        &self.sweep
    }

    pub fn jobs(&self) -> &[Arc<JobSpec>] {
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
    pub job: Arc<JobSpec>,
    /// The epoch of the job's latest checkpoint; 0 for none.
    pub checkpoint_epoch: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressAnswer {
    /// The job's sweep was cancelled: stop it.
    pub cancel: bool,
    /// The lease's new deadline; 0 when cancelled.
    pub deadline_ms: u64,
}

/// What a lease id presented by a worker is to its job.
enum LeaseStatus {
    Live,
    Ended(LeaseEnd),
}

/// The whole coordinator state. See the module docs for how it changes.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduler {
    timing: Timing,
    counters: Counters,
    sweeps: HashMap<SweepId, Sweep>,
    /// Submission order.
    sweep_order: Vec<SweepId>,
    jobs: HashMap<JobId, Job>,
    workers: HashMap<WorkerId, Worker>,
    /// Pending jobs by queue position: first come, first leased.
    queue: BTreeMap<u64, JobId>,
    /// Live leases by deadline, for expiry.
    deadlines: BTreeSet<(u64, JobId)>,
}

impl Scheduler {
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            counters: Counters::default(),
            sweeps: HashMap::new(),
            sweep_order: Vec::new(),
            jobs: HashMap::new(),
            workers: HashMap::new(),
            queue: BTreeMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    // -----------------------------------------------------------------------------------------
    // Operations: each plans from `&self`.

    /// Parses and expands a sweep spec, then plans its submission: [`Submission::parse`]
    /// followed by [`Scheduler::submit_prepared`].
    pub fn submit(&self, now_ms: u64, spec_toml: &str) -> Result<Planned<SubmitAnswer>> {
        self.submit_prepared(now_ms, Submission::parse(spec_toml)?)
    }

    /// Submits a parsed spec. Submitting the same spec again is answered with the same sweep
    /// id, `created: false`, and changes nothing.
    pub fn submit_prepared(
        &self,
        now_ms: u64,
        submission: Submission,
    ) -> Result<Planned<SubmitAnswer>> {
        let Submission {
            spec_toml,
            name,
            max_attempts,
            sweep: sweep_id,
            jobs,
        } = submission;
        let count = u32::try_from(jobs.len()).map_err(|_| {
            SchedulerError::invalid("spec_toml", "the grid has too many jobs: split the sweep")
        })?;
        if self.sweeps.contains_key(&sweep_id) {
            return Ok(Planned::unchanged(SubmitAnswer {
                sweep: sweep_id,
                jobs: count,
                created: false,
            }));
        }
        let mut seen = HashSet::with_capacity(jobs.len());
        for job in &jobs {
            if !seen.insert(&job.id) || self.jobs.contains_key(&job.id) {
                return Err(SchedulerError::invalid(
                    "spec_toml",
                    format!(
                        "the grid holds job {} twice: list each loss plan and axis value once",
                        job.label()
                    ),
                ));
            }
        }
        let first_queue_seq = self.counters.next_queue_seq;
        let counters = Counters {
            next_queue_seq: first_queue_seq + u64::from(count),
            ..self.counters
        };
        Ok(Planned {
            answer: SubmitAnswer {
                sweep: sweep_id.clone(),
                jobs: count,
                created: true,
            },
            changes: vec![
                Change::SweepSubmitted {
                    sweep: SweepRecord {
                        id: sweep_id,
                        name,
                        spec_toml,
                        submitted_ms: now_ms,
                        max_attempts,
                        cancelled: false,
                    },
                    jobs,
                    first_queue_seq,
                },
                Change::Counters(counters),
            ],
        })
    }

    /// Registers a worker under a new id; a worker of another protocol version is refused.
    pub fn register_worker(
        &self,
        now_ms: u64,
        host: &str,
        devices: Vec<DeviceSlots>,
        protocol_version: u32,
        version: &str,
    ) -> Result<Planned<Registration>> {
        self.register_placed_worker(now_ms, host, devices, protocol_version, version, None)
    }

    /// [`Scheduler::register_worker`] for a worker that says which Slurm job it runs in.
    pub fn register_placed_worker(
        &self,
        now_ms: u64,
        host: &str,
        devices: Vec<DeviceSlots>,
        protocol_version: u32,
        version: &str,
        slurm: Option<SlurmPlacement>,
    ) -> Result<Planned<Registration>> {
        if protocol_version != ltsweep_proto::PROTOCOL_VERSION {
            return Err(SchedulerError::VersionMismatch {
                worker: protocol_version,
                coordinator: ltsweep_proto::PROTOCOL_VERSION,
            });
        }
        let ordinal = self.counters.next_worker;
        let id = WorkerId(format!("w-{ordinal}"));
        Ok(Planned {
            answer: Registration {
                worker: id.clone(),
                timing: self.timing,
            },
            changes: vec![
                Change::WorkerRegistered(WorkerRecord {
                    id,
                    ordinal,
                    host: host.to_owned(),
                    devices,
                    version: version.to_owned(),
                    registered_ms: now_ms,
                    last_seen_ms: now_ms,
                    slurm,
                }),
                Change::Counters(Counters {
                    next_worker: ordinal + 1,
                    ..self.counters
                }),
            ],
        })
    }

    /// Leases the first pending job to `worker`, or answers `None` when the queue is empty.
    pub fn poll(&self, now_ms: u64, worker: &WorkerId) -> Result<Planned<Option<Lease>>> {
        if !self.workers.contains_key(worker) {
            return Err(SchedulerError::NotFound {
                kind: "worker",
                id: worker.to_string(),
                hint: "register again (the coordinator does not know this worker id)",
            });
        }
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        let Some((_, job_id)) = self.queue.first_key_value() else {
            return Ok(Planned {
                answer: None,
                changes,
            });
        };
        let job = self.job_ref(job_id);
        let id = LeaseId::new(self.counters.next_lease, job_id);
        let deadline_ms = now_ms + self.timing.lease_ttl_ms;
        let mut runtime = job.runtime.clone();
        runtime.state = JobState::Running;
        runtime.attempts += 1;
        runtime.queue_seq = None;
        runtime.lease = Some(LiveLease {
            id: id.clone(),
            worker: worker.clone(),
            deadline_ms,
        });
        runtime.ended_lease = None;
        runtime.worker = Some(worker.clone());
        runtime.error = None;
        let lease = Lease {
            id,
            deadline_ms,
            attempt: runtime.attempts,
            job: Arc::clone(&job.spec),
            checkpoint_epoch: runtime.checkpoint.as_ref().map_or(0, |c| c.epoch),
        };
        changes.push(Change::JobUpdated {
            job: job_id.clone(),
            runtime,
        });
        changes.push(Change::Counters(Counters {
            next_lease: self.counters.next_lease + 1,
            ..self.counters
        }));
        Ok(Planned {
            answer: Some(lease),
            changes,
        })
    }

    /// A heartbeat, with the metrics of a finished epoch or without. Renews the lease; answers
    /// `cancel` when the job's sweep was cancelled.
    pub fn progress(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        metrics: Option<&EpochMetrics>,
    ) -> Result<Planned<ProgressAnswer>> {
        let (job_id, job, status) = self.lease_status(Some(worker), lease)?;
        match status {
            LeaseStatus::Live => {}
            LeaseStatus::Ended(LeaseEnd::Cancelled) => {
                return Ok(Planned::unchanged(ProgressAnswer {
                    cancel: true,
                    deadline_ms: 0,
                }));
            }
            LeaseStatus::Ended(_) => {
                return Err(stale(lease, "the job already ended with this lease"));
            }
        }
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        let deadline_ms = now_ms + self.timing.lease_ttl_ms;
        match metrics {
            None => changes.push(Change::LeaseRenewed {
                job: job_id,
                deadline_ms,
            }),
            Some(metrics) => {
                let mut runtime = job.runtime.clone();
                if let Some(live) = &mut runtime.lease {
                    live.deadline_ms = deadline_ms;
                }
                if metrics.epoch <= runtime.max_epoch {
                    runtime.epochs_retrained += 1;
                }
                runtime.max_epoch = runtime.max_epoch.max(metrics.epoch);
                runtime.epoch = metrics.epoch;
                // Non-finite accuracies are not worth keeping (and do not survive JSON).
                if let Some(all) = metrics
                    .accuracy
                    .as_ref()
                    .and_then(|a| a.acc_all)
                    .filter(|a| a.is_finite())
                {
                    runtime.last_accuracy = Some(all);
                }
                changes.push(Change::JobUpdated {
                    job: job_id,
                    runtime,
                });
            }
        }
        Ok(Planned {
            answer: ProgressAnswer {
                cancel: false,
                deadline_ms,
            },
            changes,
        })
    }

    /// Records a job's result. The lease that completed it may complete it again (the worker
    /// retries when an answer was lost): that is answered OK and changes nothing.
    pub fn complete(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        mut result: JobResult,
    ) -> Result<Planned<()>> {
        let (job_id, job, status) = self.lease_status(Some(worker), lease)?;
        match status {
            LeaseStatus::Live if job.result.is_none() => {}
            LeaseStatus::Live => return Err(stale(lease, "the job already has a result")),
            LeaseStatus::Ended(LeaseEnd::Completed) => return Ok(Planned::unchanged(())),
            LeaseStatus::Ended(LeaseEnd::Cancelled) => {
                return Err(stale(
                    lease,
                    "the sweep was cancelled, so the result is not kept",
                ));
            }
            LeaseStatus::Ended(LeaseEnd::Failed) => {
                return Err(stale(lease, "the job already failed with this lease"));
            }
            LeaseStatus::Ended(LeaseEnd::Released) => {
                return Err(stale(lease, "the worker gave this lease back"));
            }
        }
        if result.job_id != job_id.0 {
            return Err(SchedulerError::invalid(
                "result.job_id",
                format!(
                    "names job `{}` but the lease is for job `{job_id}`: send the result of the leased job",
                    result.job_id
                ),
            ));
        }
        let mut runtime = job.runtime.clone();
        runtime.state = JobState::Succeeded;
        runtime.lease = None;
        runtime.ended_lease = Some(EndedLease {
            id: lease.clone(),
            worker: worker.clone(),
            how: LeaseEnd::Completed,
        });
        runtime.worker = Some(worker.clone());
        runtime.error = None;
        // The result is the last word on how far the run went, whatever progress got through.
        if let Some(last) = result.epochs.last() {
            runtime.epoch = last.epoch;
        }
        if let Some(all) = result.accuracy.acc_all.filter(|a| a.is_finite()) {
            runtime.last_accuracy = Some(all);
        }
        // The coordinator's own record of the run wins over whatever the worker filled in.
        result.sweep_id = job.spec.sweep.0.clone();
        result.spec = (*job.spec).clone();
        result.attempts = runtime.attempts;
        result.epochs_retrained = runtime.epochs_retrained;
        result.worker_id = Some(worker.0.clone());
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        changes.push(Change::JobUpdated {
            job: job_id.clone(),
            runtime,
        });
        changes.push(Change::ResultRecorded {
            job: job_id,
            result: Arc::new(result),
        });
        Ok(Planned {
            answer: (),
            changes,
        })
    }

    /// A failed attempt: back to the end of the queue while `retryable` and attempts remain,
    /// else failed for good with `reason`. The same report again is answered OK.
    pub fn fail(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        reason: &str,
        retryable: bool,
    ) -> Result<Planned<()>> {
        let (job_id, job, status) = self.lease_status(Some(worker), lease)?;
        match status {
            LeaseStatus::Live => {}
            // A worker that stops a cancelled job may well report it as failed.
            LeaseStatus::Ended(LeaseEnd::Failed | LeaseEnd::Cancelled) => {
                return Ok(Planned::unchanged(()));
            }
            LeaseStatus::Ended(LeaseEnd::Completed) => {
                return Err(stale(lease, "the job already succeeded with this lease"));
            }
            LeaseStatus::Ended(LeaseEnd::Released) => {
                return Err(stale(lease, "the worker gave this lease back"));
            }
        }
        let max_attempts = self.sweep_ref(&job.spec.sweep).record.max_attempts;
        let mut runtime = job.runtime.clone();
        runtime.ended_lease = Some(EndedLease {
            id: lease.clone(),
            worker: worker.clone(),
            how: LeaseEnd::Failed,
        });
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        if retryable && runtime.attempts - runtime.retry_base < max_attempts {
            runtime.requeue(self.counters.next_queue_seq);
            runtime.error = Some(format!("attempt {} failed: {reason}", runtime.attempts));
            changes.push(Change::Counters(Counters {
                next_queue_seq: self.counters.next_queue_seq + 1,
                ..self.counters
            }));
        } else {
            runtime.state = JobState::Failed;
            runtime.lease = None;
            runtime.worker = Some(worker.clone());
            runtime.error = Some(reason.to_owned());
        }
        changes.push(Change::JobUpdated {
            job: job_id,
            runtime,
        });
        Ok(Planned {
            answer: (),
            changes,
        })
    }

    /// A lease given back by its worker: the job returns to the end of the queue at once (no
    /// wait for the lease to expire) and, preempted, the attempt does not count toward
    /// `max_attempts`. The same release again is answered OK; any other stale lease changes
    /// nothing.
    pub fn release(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        reason: ReleaseReason,
    ) -> Result<Planned<()>> {
        let (job_id, job, status) = self.lease_status(Some(worker), lease)?;
        match status {
            LeaseStatus::Live => {}
            LeaseStatus::Ended(LeaseEnd::Released) => return Ok(Planned::unchanged(())),
            LeaseStatus::Ended(_) => {
                return Err(stale(lease, "the job already ended with this lease"));
            }
        }
        let mut runtime = job.runtime.clone();
        match reason {
            ReleaseReason::Preempted => {
                runtime.retry_base += 1;
                runtime.preemptions += 1;
            }
        }
        runtime.requeue(self.counters.next_queue_seq);
        runtime.ended_lease = Some(EndedLease {
            id: lease.clone(),
            worker: worker.clone(),
            how: LeaseEnd::Released,
        });
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        changes.push(Change::JobUpdated {
            job: job_id,
            runtime,
        });
        changes.push(Change::Counters(Counters {
            next_queue_seq: self.counters.next_queue_seq + 1,
            ..self.counters
        }));
        Ok(Planned {
            answer: (),
            changes,
        })
    }

    /// Takes back every lease whose deadline has passed: its job returns to the end of the
    /// queue, or fails when it used up its attempts. Answers how many leases expired.
    pub fn expire(&self, now_ms: u64) -> Planned<usize> {
        let mut changes = Vec::new();
        let mut next_queue_seq = self.counters.next_queue_seq;
        for (deadline_ms, job_id) in &self.deadlines {
            if *deadline_ms > now_ms {
                break;
            }
            let job = self.job_ref(job_id);
            let max_attempts = self.sweep_ref(&job.spec.sweep).record.max_attempts;
            let mut runtime = job.runtime.clone();
            let worker = runtime
                .lease
                .take()
                .map(|lease| lease.worker.0)
                .unwrap_or_default();
            runtime.ended_lease = None;
            if runtime.attempts - runtime.retry_base >= max_attempts {
                runtime.state = JobState::Failed;
                runtime.error = Some(format!(
                    "lease expired on attempt {} of {max_attempts}: worker {worker} stopped reporting; retry the sweep's failed jobs to run it again",
                    runtime.attempts - runtime.retry_base
                ));
            } else {
                runtime.requeue(next_queue_seq);
                next_queue_seq += 1;
                runtime.error = Some(format!(
                    "lease expired on attempt {}: worker {worker} stopped reporting",
                    runtime.attempts
                ));
            }
            changes.push(Change::JobUpdated {
                job: job_id.clone(),
                runtime,
            });
        }
        let expired = changes.len();
        if next_queue_seq != self.counters.next_queue_seq {
            changes.push(Change::Counters(Counters {
                next_queue_seq,
                ..self.counters
            }));
        }
        Planned {
            answer: expired,
            changes,
        }
    }

    /// Cancels a sweep's pending and running jobs; a running job's worker learns it from the
    /// answer to its next progress report. Answers how many jobs were cancelled.
    pub fn cancel(&self, sweep: &SweepId) -> Result<Planned<u32>> {
        let record = self.sweep_or_not_found(sweep)?;
        let mut changes = Vec::new();
        for job_id in &record.jobs {
            let job = self.job_ref(job_id);
            let mut runtime = job.runtime.clone();
            match runtime.state {
                JobState::Pending => runtime.queue_seq = None,
                JobState::Running => {
                    if let Some(live) = runtime.lease.take() {
                        runtime.ended_lease = Some(EndedLease {
                            id: live.id,
                            worker: live.worker,
                            how: LeaseEnd::Cancelled,
                        });
                    }
                }
                _ => continue,
            }
            runtime.state = JobState::Cancelled;
            changes.push(Change::JobUpdated {
                job: job_id.clone(),
                runtime,
            });
        }
        let cancelled = changes.len() as u32;
        if !record.record.cancelled {
            changes.push(Change::SweepCancelled {
                sweep: sweep.clone(),
                cancelled: true,
            });
        }
        Ok(Planned {
            answer: cancelled,
            changes,
        })
    }

    /// Returns a sweep's failed and cancelled jobs to the queue with a fresh attempt budget;
    /// the sweep is no longer cancelled. Answers how many jobs were requeued.
    pub fn retry_failed(&self, sweep: &SweepId) -> Result<Planned<u32>> {
        let record = self.sweep_or_not_found(sweep)?;
        let mut changes = Vec::new();
        let mut next_queue_seq = self.counters.next_queue_seq;
        for job_id in &record.jobs {
            let job = self.job_ref(job_id);
            if !matches!(job.runtime.state, JobState::Failed | JobState::Cancelled) {
                continue;
            }
            let mut runtime = job.runtime.clone();
            runtime.requeue(next_queue_seq);
            next_queue_seq += 1;
            runtime.retry_base = runtime.attempts;
            // A cancelled job's old lease is now simply stale.
            runtime.ended_lease = None;
            runtime.error = None;
            changes.push(Change::JobUpdated {
                job: job_id.clone(),
                runtime,
            });
        }
        let requeued = changes.len() as u32;
        if next_queue_seq != self.counters.next_queue_seq {
            changes.push(Change::Counters(Counters {
                next_queue_seq,
                ..self.counters
            }));
        }
        if record.record.cancelled {
            changes.push(Change::SweepCancelled {
                sweep: sweep.clone(),
                cancelled: false,
            });
        }
        Ok(Planned {
            answer: requeued,
            changes,
        })
    }

    /// Records that a worker was seen now, when its last-seen time is due for a write.
    pub fn see(&self, now_ms: u64, worker: &WorkerId) -> Planned<()> {
        Planned {
            answer: (),
            changes: self.seen(worker, now_ms).into_iter().collect(),
        }
    }

    /// The job a checkpoint upload with this lease is for; only the job's live lease may
    /// upload.
    pub fn check_upload(&self, lease: &LeaseId) -> Result<JobId> {
        match self.lease_status(None, lease)? {
            (job, _, LeaseStatus::Live) => Ok(job),
            (_, _, LeaseStatus::Ended(LeaseEnd::Cancelled)) => {
                Err(stale(lease, "the sweep was cancelled"))
            }
            (_, _, LeaseStatus::Ended(_)) => Err(stale(lease, "the job already ended")),
        }
    }

    /// Records a checkpoint that is safely on disk; it also renews the lease.
    pub fn record_checkpoint(
        &self,
        now_ms: u64,
        lease: &LeaseId,
        checkpoint: Checkpoint,
    ) -> Result<Planned<u32>> {
        let job_id = self.check_upload(lease)?;
        let mut runtime = self.job_ref(&job_id).runtime.clone();
        if let Some(live) = &mut runtime.lease {
            live.deadline_ms = now_ms + self.timing.lease_ttl_ms;
        }
        let epoch = checkpoint.epoch;
        runtime.checkpoint = Some(checkpoint);
        Ok(Planned {
            answer: epoch,
            changes: vec![Change::JobUpdated {
                job: job_id,
                runtime,
            }],
        })
    }

    /// The latest checkpoint of the job a live lease is for.
    pub fn checkpoint_of(&self, lease: &LeaseId) -> Result<(JobId, Option<Checkpoint>)> {
        let job_id = self.check_upload(lease)?;
        let checkpoint = self.job_ref(&job_id).runtime.checkpoint.clone();
        Ok((job_id, checkpoint))
    }

    // -----------------------------------------------------------------------------------------
    // Applying committed changes.

    /// Performs committed changes in memory. Changes come from this scheduler's own plans (or
    /// the store's records of them), so they cannot fail.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::SweepSubmitted {
                    sweep,
                    jobs,
                    first_queue_seq,
                } => {
                    let entries = jobs
                        .iter()
                        .zip(*first_queue_seq..)
                        .map(|(spec, seq)| (Arc::clone(spec), JobRuntime::pending(seq), None));
                    self.insert_sweep(sweep.clone(), entries);
                }
                Change::SweepCancelled { sweep, cancelled } => {
                    if let Some(sweep) = self.sweeps.get_mut(sweep) {
                        sweep.record.cancelled = *cancelled;
                    }
                }
                Change::SweepDeleted { sweep } => self.remove_sweep(sweep),
                Change::JobUpdated { job, runtime } => self.update_job(job, runtime.clone()),
                Change::LeaseRenewed { job, deadline_ms } => {
                    let Some(runtime) = self.jobs.get(job).map(|j| &j.runtime) else {
                        continue;
                    };
                    if runtime.lease.is_some() {
                        let mut runtime = runtime.clone();
                        if let Some(live) = &mut runtime.lease {
                            live.deadline_ms = *deadline_ms;
                        }
                        self.update_job(job, runtime);
                    }
                }
                Change::ResultRecorded { job, result } => {
                    if let Some(job) = self.jobs.get_mut(job) {
                        job.result = Some(Arc::clone(result));
                    }
                }
                Change::WorkerRegistered(record) => {
                    let running = self
                        .workers
                        .remove(&record.id)
                        .map(|w| w.running)
                        .unwrap_or_default();
                    self.workers.insert(
                        record.id.clone(),
                        Worker {
                            record: record.clone(),
                            running,
                        },
                    );
                }
                Change::WorkerSeen { worker, at_ms } => {
                    if let Some(worker) = self.workers.get_mut(worker) {
                        worker.record.last_seen_ms = *at_ms;
                    }
                }
                Change::Counters(counters) => self.counters = *counters,
            }
        }
    }

    /// Gives every live lease a fresh deadline. On a restart, so that workers that kept
    /// training while the coordinator was down can still report with their lease.
    pub fn renew_leases(&mut self, now_ms: u64) {
        let running: Vec<JobId> = self.deadlines.iter().map(|(_, job)| job.clone()).collect();
        for job in running {
            let mut runtime = self.job_ref(&job).runtime.clone();
            if let Some(live) = &mut runtime.lease {
                live.deadline_ms = now_ms + self.timing.lease_ttl_ms;
            }
            self.update_job(&job, runtime);
        }
    }

    /// Rebuilds a sweep read back from the store, its jobs in grid order.
    pub(crate) fn restore_sweep(
        &mut self,
        record: SweepRecord,
        jobs: Vec<(Arc<JobSpec>, JobRuntime, Option<Arc<JobResult>>)>,
    ) {
        self.insert_sweep(record, jobs.into_iter());
    }

    pub(crate) fn restore_counters(&mut self, counters: Counters) {
        self.counters = counters;
    }

    fn insert_sweep(
        &mut self,
        record: SweepRecord,
        jobs: impl Iterator<Item = (Arc<JobSpec>, JobRuntime, Option<Arc<JobResult>>)>,
    ) {
        let id = record.id.clone();
        self.sweep_order.push(id.clone());
        self.sweeps.insert(
            id.clone(),
            Sweep {
                record,
                jobs: Vec::new(),
                counts: SweepCounts::default(),
            },
        );
        let mut ids = Vec::new();
        for (spec, runtime, result) in jobs {
            let job_id = spec.id.clone();
            self.index(&job_id, &spec.sweep, &runtime, true);
            ids.push(job_id.clone());
            self.jobs.insert(
                job_id,
                Job {
                    spec,
                    runtime,
                    result,
                },
            );
        }
        if let Some(sweep) = self.sweeps.get_mut(&id) {
            sweep.counts.total = ids.len() as u32;
            sweep.jobs = ids;
        }
    }

    fn update_job(&mut self, id: &JobId, runtime: JobRuntime) {
        let Some(job) = self.jobs.get_mut(id) else {
            debug_assert!(false, "an update of unknown job {id}");
            return;
        };
        let old = std::mem::replace(&mut job.runtime, runtime.clone());
        let sweep = job.spec.sweep.clone();
        self.index(id, &sweep, &old, false);
        self.index(id, &sweep, &runtime, true);
    }

    /// Adds a job's runtime to (or removes it from) the derived indices: queue, deadlines,
    /// worker leases, sweep counts.
    fn index(&mut self, id: &JobId, sweep: &SweepId, runtime: &JobRuntime, add: bool) {
        if let Some(seq) = runtime.queue_seq {
            if add {
                self.queue.insert(seq, id.clone());
            } else {
                self.queue.remove(&seq);
            }
        }
        if let Some(live) = &runtime.lease {
            let key = (live.deadline_ms, id.clone());
            let worker = self.workers.get_mut(&live.worker);
            if add {
                self.deadlines.insert(key);
                if let Some(worker) = worker {
                    worker.running.insert(id.clone());
                }
            } else {
                self.deadlines.remove(&key);
                if let Some(worker) = worker {
                    worker.running.remove(id);
                }
            }
        }
        if let Some(sweep) = self.sweeps.get_mut(sweep) {
            let slot = sweep.counts.slot(runtime.state);
            if add {
                *slot += 1;
            } else {
                *slot -= 1;
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Queries.

    pub fn sweep(&self, id: &SweepId) -> Option<&Sweep> {
        self.sweeps.get(id)
    }

    /// The most recently submitted sweep.
    pub fn latest_sweep(&self) -> Option<&Sweep> {
        self.sweep_order.last().and_then(|id| self.sweeps.get(id))
    }

    /// Every sweep, in submission order.
    pub fn sweeps(&self) -> impl Iterator<Item = &Sweep> {
        self.sweep_order.iter().filter_map(|id| self.sweeps.get(id))
    }

    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// A sweep's jobs in grid order.
    pub fn jobs_of<'a>(&'a self, sweep: &'a Sweep) -> impl Iterator<Item = &'a Job> + 'a {
        sweep.jobs.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Every worker, in registration order.
    pub fn workers(&self) -> Vec<&Worker> {
        let mut workers: Vec<&Worker> = self.workers.values().collect();
        workers.sort_by_key(|w| w.record.ordinal);
        workers
    }

    pub fn worker(&self, id: &WorkerId) -> Option<&Worker> {
        self.workers.get(id)
    }

    /// Seen within three heartbeat intervals, or holding a live lease.
    pub fn is_alive(&self, worker: &Worker, now_ms: u64) -> bool {
        !worker.running.is_empty()
            || now_ms.saturating_sub(worker.record.last_seen_ms)
                <= ALIVE_HEARTBEATS * self.timing.heartbeat_interval_ms
    }

    /// The results of a sweep's succeeded jobs, in grid order.
    pub fn results(&self, sweep: &SweepId) -> Result<Vec<Arc<JobResult>>> {
        let sweep = self.sweep_or_not_found(sweep)?;
        Ok(self
            .jobs_of(sweep)
            .filter_map(|job| job.result.clone())
            .collect())
    }

    /// The earliest deadline of a live lease.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// How many jobs wait in the queue.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Checks that the derived indices agree with the jobs (tests and debugging): every job is
    /// in exactly one of the queue, the running set and the final states.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let mut counts: HashMap<&SweepId, SweepCounts> = HashMap::new();
        let mut queued = 0;
        let mut running = 0;
        for (id, job) in &self.jobs {
            let rt = &job.runtime;
            let sweep = self
                .sweeps
                .get(&job.spec.sweep)
                .ok_or_else(|| format!("job {id} of unknown sweep"))?;
            *counts.entry(&job.spec.sweep).or_default().slot(rt.state) += 1;
            counts.entry(&job.spec.sweep).or_default().total += 1;
            match rt.state {
                JobState::Pending => {
                    queued += 1;
                    let seq = rt.queue_seq.ok_or(format!("pending job {id} not queued"))?;
                    if self.queue.get(&seq) != Some(id) {
                        return Err(format!("pending job {id} not in the queue at {seq}"));
                    }
                    if rt.lease.is_some() {
                        return Err(format!("pending job {id} holds a lease"));
                    }
                    if sweep.record.cancelled {
                        return Err(format!("job {id} of a cancelled sweep is pending"));
                    }
                }
                JobState::Running => {
                    running += 1;
                    let live = rt
                        .lease
                        .as_ref()
                        .ok_or(format!("running job {id} unleased"))?;
                    if rt.queue_seq.is_some() {
                        return Err(format!("running job {id} also queued"));
                    }
                    if !self.deadlines.contains(&(live.deadline_ms, id.clone())) {
                        return Err(format!("running job {id} has no deadline entry"));
                    }
                    if let Some(worker) = self.workers.get(&live.worker)
                        && !worker.running.contains(id)
                    {
                        return Err(format!("running job {id} missing from its worker"));
                    }
                }
                _ => {
                    if rt.queue_seq.is_some() || rt.lease.is_some() {
                        return Err(format!("final job {id} queued or leased"));
                    }
                }
            }
            if (rt.state == JobState::Succeeded) != job.result.is_some() {
                return Err(format!("job {id}: result present iff succeeded"));
            }
            if rt
                .queue_seq
                .is_some_and(|seq| seq >= self.counters.next_queue_seq)
            {
                return Err(format!("job {id} queued past the counter"));
            }
        }
        if queued != self.queue.len() || running != self.deadlines.len() {
            return Err("queue or deadline index holds entries of no job".into());
        }
        let leases: usize = self.workers.values().map(|w| w.running.len()).sum();
        if leases > running {
            return Err("a worker lists a lease no job holds".into());
        }
        for (id, sweep) in &self.sweeps {
            let expected = counts.get(id).copied().unwrap_or_default();
            if sweep.counts != expected {
                return Err(format!(
                    "sweep {id} counts {:?}, jobs say {expected:?}",
                    sweep.counts
                ));
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Helpers.

    /// What a presented lease is to its job. Anything but the job's live lease or the lease its
    /// last attempt ended with is stale.
    fn lease_status(
        &self,
        worker: Option<&WorkerId>,
        lease: &LeaseId,
    ) -> Result<(JobId, &Job, LeaseStatus)> {
        let Some((job_id, job)) = lease
            .job()
            .and_then(|id| self.jobs.get(&id).map(|job| (id, job)))
        else {
            return Err(stale(lease, "no job holds this lease"));
        };
        let holder_matches = |holder: &WorkerId| worker.is_none_or(|w| w == holder);
        if let Some(live) = &job.runtime.lease
            && live.id == *lease
        {
            if !holder_matches(&live.worker) {
                return Err(stale(lease, "another worker holds it"));
            }
            return Ok((job_id, job, LeaseStatus::Live));
        }
        if let Some(ended) = &job.runtime.ended_lease
            && ended.id == *lease
        {
            if !holder_matches(&ended.worker) {
                return Err(stale(lease, "another worker held it"));
            }
            return Ok((job_id, job, LeaseStatus::Ended(ended.how)));
        }
        Err(stale(lease, "it expired or the job was leased again"))
    }

    fn seen(&self, worker: &WorkerId, now_ms: u64) -> Option<Change> {
        let last = self.workers.get(worker)?.record.last_seen_ms;
        (now_ms.saturating_sub(last) >= SEEN_RESOLUTION_MS).then(|| Change::WorkerSeen {
            worker: worker.clone(),
            at_ms: now_ms,
        })
    }

    fn sweep_or_not_found(&self, sweep: &SweepId) -> Result<&Sweep> {
        self.sweeps
            .get(sweep)
            .ok_or_else(|| SchedulerError::NotFound {
                kind: "sweep",
                id: sweep.to_string(),
                hint: "`ltsweep sweeps` lists them",
            })
    }

    /// A job the indices name: they only ever name known jobs.
    fn job_ref(&self, id: &JobId) -> &Job {
        &self.jobs[id]
    }

    fn sweep_ref(&self, id: &SweepId) -> &Sweep {
        &self.sweeps[id]
    }
}

fn stale(lease: &LeaseId, reason: &str) -> SchedulerError {
    SchedulerError::StaleLease {
        lease: lease.clone(),
        reason: reason.to_owned(),
    }
}
