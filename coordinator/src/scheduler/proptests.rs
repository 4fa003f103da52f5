//! The scheduler's promises, checked over random sequences of operations, clock advances and
//! workers (stale leases included, since every lease ever issued may be presented again).
//!
//! The [`Harness`] is shared with the store's tests, which also commit every change and check
//! that a state rebuilt from the database equals the one in memory.

use std::collections::{HashMap, HashSet};

use ltsweep_proto::PROTOCOL_VERSION;
use proptest::prelude::*;

use super::tests::{TIMING, metrics, result_for};
use super::*;
use crate::store::Store;

/// Three small sweeps with different attempt budgets.
const SPECS: [&str; 3] = [
    "name = \"a\"\nseeds = [0, 1]\nmax_attempts = 2\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]",
    "name = \"b\"\nseeds = [0, 1, 2]\nmax_attempts = 1\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"tail\", pc = \"none\" }]",
    "name = \"c\"\nseeds = [7]\nmax_attempts = 3\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"head\" }]",
];

#[derive(Clone, Debug)]
pub(crate) enum Op {
    Submit(usize),
    Register,
    Poll(usize),
    /// A lease ever issued (by index), presented by its own worker or another one.
    Progress {
        lease: usize,
        worker: Option<usize>,
        epoch: Option<u32>,
    },
    Complete {
        lease: usize,
        worker: Option<usize>,
    },
    Fail {
        lease: usize,
        worker: Option<usize>,
        retryable: bool,
    },
    Checkpoint {
        lease: usize,
        epoch: u32,
    },
    Advance(u64),
    Expire,
    Cancel(usize),
    Retry(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let worker = proptest::option::weighted(0.2, 0..4usize);
    prop_oneof![
        2 => (0..3usize).prop_map(Op::Submit),
        1 => Just(Op::Register),
        5 => (0..4usize).prop_map(Op::Poll),
        4 => (0..64usize, worker.clone(), proptest::option::of(1..6u32))
            .prop_map(|(lease, worker, epoch)| Op::Progress { lease, worker, epoch }),
        3 => (0..64usize, worker.clone()).prop_map(|(lease, worker)| Op::Complete { lease, worker }),
        2 => (0..64usize, worker, any::<bool>())
            .prop_map(|(lease, worker, retryable)| Op::Fail { lease, worker, retryable }),
        1 => (0..64usize, 1..6u32).prop_map(|(lease, epoch)| Op::Checkpoint { lease, epoch }),
        3 => (0..1_500u64).prop_map(Op::Advance),
        2 => Just(Op::Expire),
        1 => (0..3usize).prop_map(Op::Cancel),
        1 => (0..3usize).prop_map(Op::Retry),
    ]
}

pub(crate) fn ops(max: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..max)
}

fn unit<T>(planned: Result<Planned<T>>) -> Result<Planned<()>> {
    planned.map(|p| Planned {
        answer: (),
        changes: p.changes,
    })
}

/// Runs operations against a scheduler (and a store, when given) and checks the promises
/// after each.
pub(crate) struct Harness {
    pub(crate) scheduler: Scheduler,
    pub(crate) now: u64,
    pub(crate) store: Option<Store>,
    workers: Vec<WorkerId>,
    /// Every lease ever issued, with its worker.
    leases: Vec<(LeaseId, WorkerId)>,
    sweeps: Vec<SweepId>,
    /// The first result seen for each job: it must never change.
    results: HashMap<JobId, Arc<JobResult>>,
    cancelled: HashSet<SweepId>,
    jobs: u32,
}

impl Harness {
    pub(crate) fn new(store: Option<Store>) -> Self {
        Self {
            scheduler: Scheduler::new(TIMING),
            now: 1_000,
            store,
            workers: Vec::new(),
            leases: Vec::new(),
            sweeps: Vec::new(),
            results: HashMap::new(),
            cancelled: HashSet::new(),
            jobs: 0,
        }
    }

    fn commit<T>(&mut self, planned: Result<Planned<T>>) -> Result<T> {
        let planned = planned?;
        if let Some(store) = &mut self.store {
            store
                .commit(&planned.changes)
                .expect("commit to a healthy store");
        }
        self.scheduler.apply(&planned.changes);
        Ok(planned.answer)
    }

    pub(crate) fn step(&mut self, op: &Op) -> std::result::Result<(), TestCaseError> {
        let now = self.now;
        match op {
            Op::Submit(i) => {
                let answer = self.commit(self.scheduler.submit(now, SPECS[*i])).unwrap();
                if answer.created {
                    self.sweeps.push(answer.sweep);
                    self.jobs += answer.jobs;
                }
            }
            Op::Register => {
                let planned =
                    self.scheduler
                        .register_worker(now, "h", Vec::new(), PROTOCOL_VERSION, "t");
                let registration = self.commit(planned).unwrap();
                prop_assert!(!self.workers.contains(&registration.worker));
                self.workers.push(registration.worker);
            }
            Op::Poll(i) => {
                let Some(worker) = self.pick_worker(*i) else {
                    return Ok(());
                };
                if let Some(lease) = self.commit(self.scheduler.poll(now, &worker)).unwrap() {
                    prop_assert!(
                        !self.cancelled.contains(&lease.job.sweep),
                        "a job of a cancelled sweep was leased"
                    );
                    prop_assert!(
                        self.leases.iter().all(|(id, _)| *id != lease.id),
                        "a lease id was reused"
                    );
                    self.leases.push((lease.id, worker));
                }
            }
            Op::Progress {
                lease,
                worker,
                epoch,
            } => {
                let m = epoch.map(|e| metrics(e, Some(f64::from(e) / 8.0)));
                self.lease_call(*lease, *worker, |s, w, l, now| {
                    unit(s.progress(now, w, l, m.as_ref()))
                })?;
            }
            Op::Complete { lease, worker } => {
                self.lease_call(*lease, *worker, |s, w, l, now| {
                    let job = l.job().and_then(|id| s.job(&id)).expect("issued lease");
                    s.complete(now, w, l, result_for(&job.spec, 0.5))
                })?;
            }
            Op::Fail {
                lease,
                worker,
                retryable,
            } => {
                self.lease_call(*lease, *worker, |s, w, l, now| {
                    s.fail(now, w, l, "boom", *retryable)
                })?;
            }
            Op::Checkpoint { lease, epoch } => {
                let checkpoint = Checkpoint {
                    epoch: *epoch,
                    sha256: "0".repeat(64),
                };
                self.lease_call(*lease, None, |s, _, l, now| {
                    unit(s.record_checkpoint(now, l, checkpoint))
                })?;
            }
            Op::Advance(ms) => self.now += ms,
            Op::Expire => {
                let due: Vec<JobId> = self
                    .scheduler
                    .deadlines
                    .iter()
                    .take_while(|(deadline, _)| *deadline <= now)
                    .map(|(_, job)| job.clone())
                    .collect();
                self.commit(Ok(self.scheduler.expire(now))).unwrap();
                for job in &due {
                    let state = self.scheduler.job(job).expect("known job").runtime.state;
                    prop_assert!(
                        matches!(state, JobState::Pending | JobState::Failed),
                        "job {} of an expired lease is {}",
                        job,
                        state
                    );
                }
                prop_assert!(
                    self.scheduler.next_deadline().is_none_or(|d| d > now),
                    "a lease past its deadline survived expiry"
                );
            }
            Op::Cancel(i) => {
                if let Some(sweep) = self.pick_sweep(*i) {
                    self.commit(self.scheduler.cancel(&sweep)).unwrap();
                    self.cancelled.insert(sweep);
                }
            }
            Op::Retry(i) => {
                if let Some(sweep) = self.pick_sweep(*i) {
                    self.commit(self.scheduler.retry_failed(&sweep)).unwrap();
                    self.cancelled.remove(&sweep);
                }
            }
        }
        self.check()
    }

    /// Presents an issued lease. One that is not its job's live lease (for this worker) must
    /// change nothing at all.
    fn lease_call(
        &mut self,
        index: usize,
        worker: Option<usize>,
        call: impl FnOnce(&Scheduler, &WorkerId, &LeaseId, u64) -> Result<Planned<()>>,
    ) -> std::result::Result<(), TestCaseError> {
        if self.leases.is_empty() {
            return Ok(());
        }
        let (lease, holder) = self.leases[index % self.leases.len()].clone();
        let worker = worker.and_then(|i| self.pick_worker(i)).unwrap_or(holder);
        let job = lease.job().expect("our lease ids name their job");
        let runtime = &self.scheduler.job(&job).expect("leased job").runtime;
        let live = runtime
            .lease
            .as_ref()
            .is_some_and(|l| l.id == lease && l.worker == worker);
        let ended = runtime
            .ended_lease
            .as_ref()
            .is_some_and(|e| e.id == lease && e.worker == worker);
        let before = self.scheduler.clone();
        let planned = call(&self.scheduler, &worker, &lease, self.now);
        if !live {
            match &planned {
                Ok(p) => prop_assert!(
                    ended && p.changes.is_empty(),
                    "a stale lease planned changes: {:?}",
                    p.changes
                ),
                Err(e) => prop_assert!(
                    matches!(e, CoordinatorError::StaleLease { .. }),
                    "a stale lease gave {e}"
                ),
            }
        }
        let _ = self.commit(planned);
        if !live {
            prop_assert_eq!(&self.scheduler, &before);
        }
        if let Some(result) = self.scheduler.job(&job).and_then(|j| j.result.clone()) {
            self.results.entry(job).or_insert(result);
        }
        Ok(())
    }

    fn check(&self) -> std::result::Result<(), TestCaseError> {
        let s = &self.scheduler;
        // Every job is in exactly one of queue, running, final (and the indices agree).
        if let Err(broken) = s.check_invariants() {
            return Err(TestCaseError::fail(broken));
        }
        let total: u32 = s.sweeps().map(|sweep| sweep.counts.total).sum();
        prop_assert_eq!(total, self.jobs, "a job was lost or duplicated");
        // A result, once recorded, is never replaced or lost.
        for (job, result) in &self.results {
            let current = s.job(job).and_then(|j| j.result.as_ref());
            prop_assert!(
                current.is_some_and(|c| Arc::ptr_eq(c, result)),
                "the result of {} changed",
                job
            );
        }
        // At most one live lease per job, among every lease ever issued.
        let mut live: HashMap<JobId, usize> = HashMap::new();
        for (lease, _) in &self.leases {
            if let Ok(job) = s.check_upload(lease) {
                *live.entry(job).or_default() += 1;
            }
        }
        prop_assert!(live.values().all(|&n| n <= 1), "two live leases for a job");
        // A cancelled sweep has nothing pending or running.
        for sweep in &self.cancelled {
            let counts = s.sweep(sweep).expect("known sweep").counts;
            prop_assert_eq!(counts.pending + counts.running, 0);
        }
        Ok(())
    }

    fn pick_worker(&self, i: usize) -> Option<WorkerId> {
        (!self.workers.is_empty()).then(|| self.workers[i % self.workers.len()].clone())
    }

    fn pick_sweep(&self, i: usize) -> Option<SweepId> {
        (!self.sweeps.is_empty()).then(|| self.sweeps[i % self.sweeps.len()].clone())
    }
}

/// Starts every case with work and workers, so that short sequences still lease.
pub(crate) fn prelude() -> Vec<Op> {
    vec![Op::Submit(0), Op::Submit(1), Op::Register, Op::Register]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn promises_hold_over_random_operations(ops in ops(80)) {
        let mut harness = Harness::new(None);
        for op in prelude().iter().chain(&ops) {
            harness.step(op)?;
        }
    }
}
