//! The scheduler: every sweep, job, lease and worker the coordinator knows, as a pure state
//! machine. No clock, no I/O, no randomness: time comes in as milliseconds (the coordinator's
//! clock: unix time at its start, then advanced monotonically).
//!
//! Every operation reads `&self` and *plans*: it returns its answer and the [`Change`]s it
//! implies, wrapped in [`Planned`], or a typed error. The changes are committed to the
//! [`crate::store::Store`] and applied with [`Scheduler::apply`]; the store and memory change by
//! the same list of changes, so a state rebuilt from the store equals the one in memory. (The
//! service applies most changes before their commit and answers after it; a failed commit
//! makes it rebuild memory from the store. See the service's committer.)
//!
//! The promises (checked by the property tests):
//! - a job has at most one live lease, and at most one result, which is never replaced;
//! - a call with a stale lease changes nothing (fencing), and a call on a lease that is not the
//!   caller's live lease gets one refusal whether the lease exists or not (no oracle);
//! - a worker is known by its registration's secret, and is forgotten (with it) only when it
//!   holds no lease;
//! - an expired lease returns its job to the queue (or fails it after `max_attempts`): every job
//!   is always in exactly one of the pending queue, the running set, or a final state;
//! - a cancelled sweep's jobs are never leased until `retry_failed`;
//! - a lease given back as preempted returns its job to the queue at once and never brings it
//!   closer to failing for good;
//! - a searched sweep's configuration (its jobs but for the seed) moves as one: its jobs are
//!   promoted past a rung together, only after each reached it, and a configuration among the
//!   top `1 / reduction_factor` of a rung's arrivals never waits there (see `search`);
//! - a stage-2 job is leased only once its stage-1 job succeeded (until then it waits: pending,
//!   out of the queue); a stage-1 job that fails for good fails its waiting stage-2 jobs with
//!   its reason; a stage-2 job that finds the model lost sends its stage-1 job back to the
//!   queue and waits again, with its siblings.
//!
//! Per-call work is O(log n) in the number of jobs: the pending queue, the lease deadlines and
//! the per-sweep counts are kept incrementally, never recomputed by a scan.
//!
//! ```
//! use ltsweep_coordinator::scheduler::{LeaseKey, Scheduler, Timing, secret_sha256};
//! use ltsweep_proto::PROTOCOL_VERSION;
//!
//! // The coordinator draws the key from the OS's random source at start.
//! let mut scheduler = Scheduler::new(Timing::default(), LeaseKey::new([7; 32]));
//! let spec = "name = \"demo\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"";
//! let planned = scheduler.submit(1_000, spec)?;
//! assert_eq!(planned.answer.jobs, 9);
//! scheduler.apply(&planned.changes); // after the store committed them
//!
//! // The worker's secret (the coordinator draws it) is kept only as its SHA-256.
//! let secret = secret_sha256("a secret drawn at random");
//! let planned =
//!     scheduler.register_worker(1_000, "gpu-1", vec![], PROTOCOL_VERSION, "0.1.0", &secret)?;
//! let worker = planned.answer.worker.clone();
//! scheduler.apply(&planned.changes);
//! assert_eq!(scheduler.worker_by_secret(&secret), Some(&worker));
//! let planned = scheduler.poll(1_001, &worker)?;
//! let lease = planned.answer.clone().expect("a pending job");
//! scheduler.apply(&planned.changes);
//! assert_eq!(lease.attempt, 1);
//! # Ok::<(), ltsweep_coordinator::CoordinatorError>(())
//! ```
//!
//! The code is split by concern: `state` the state's types, `plan` the changes and the
//! answers of operations, `operations` the plans of sweep and job calls, `leases` the lease
//! life cycle (renewal, expiry, fencing), `identity` workers' secrets, lease ids and the
//! registry's bound, `graph` the stage-2 jobs' dependence on their
//! stage-1 jobs and the models between them, `search` a sweep's asynchronous successive
//! halving, `apply` how committed changes (and the store's
//! records, at recovery) become state, and `queries` the reads.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ltsweep_domain::{JobId, SweepId};

mod apply;
mod delete;
mod error;
mod graph;
#[cfg(test)]
mod graph_tests;
mod identity;
mod leases;
mod operations;
mod plan;
#[cfg(test)]
pub(crate) mod proptests;
mod queries;
mod search;
#[cfg(test)]
mod search_tests;
mod shared;
mod state;
#[cfg(test)]
pub(crate) mod tests;

pub use error::SchedulerError;
pub use graph::ModelSource;
pub use identity::{LeaseKey, secret_sha256};
pub use plan::{
    Announcement, Change, Lease, Planned, ProgressAnswer, Registration, Submission, SubmitAnswer,
    initial_runtimes, jobs_made_pending,
};
pub use search::{JobSearch, RungReading, SearchPlan};
pub use shared::Job;
pub use state::{
    Checkpoint, Counters, DeviceSlots, EndedLease, JobRuntime, KeptModel, LeaseEnd, LeaseId,
    LiveLease, ReleaseReason, SlurmPlacement, Sweep, SweepCounts, SweepRecord, Timing, Worker,
    WorkerId, WorkerRecord,
};

type Result<T> = std::result::Result<T, SchedulerError>;

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
    /// Each registered worker by the SHA-256 of its secret.
    secrets: HashMap<String, WorkerId>,
    lease_key: LeaseKey,
    /// Pending jobs by queue position: first come, first leased.
    queue: BTreeMap<u64, JobId>,
    /// Live leases by deadline, for expiry.
    deadlines: BTreeSet<(u64, JobId)>,
}

impl Scheduler {
    /// An empty state; lease ids are derived with `lease_key` (see `identity`).
    pub fn new(timing: Timing, lease_key: LeaseKey) -> Self {
        Self {
            timing,
            counters: Counters::default(),
            sweeps: HashMap::new(),
            sweep_order: Vec::new(),
            jobs: HashMap::new(),
            workers: HashMap::new(),
            secrets: HashMap::new(),
            lease_key,
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
}
