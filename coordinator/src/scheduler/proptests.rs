//! The scheduler's promises, checked over random sequences of operations, clock advances and
//! workers (stale leases included, since every lease ever issued may be presented again).
//!
//! The [`Harness`] is shared with the store's tests, which also commit every change and check
//! that a state rebuilt from the database equals the one in memory.

use std::collections::{HashMap, HashSet};

use ltsweep_domain::{EpochMetrics, GroupAccuracy, JobId, JobState};
use ltsweep_proto::PROTOCOL_VERSION;
use proptest::prelude::*;

use super::tests::{TIMING, metrics, result_for, test_key, test_secret};
use super::*;
use crate::store::Store;

/// Small sweeps with different attempt budgets; the fourth has stage-2 jobs, the fifth is a
/// search (three configurations of two seeds, rungs at epochs 2 and 4 of 8).
const SPECS: [&str; 5] = [
    "name = \"a\"\nseeds = [0, 1]\nmax_attempts = 2\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]",
    "name = \"b\"\nseeds = [0, 1, 2]\nmax_attempts = 1\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"tail\", pc = \"none\" }]",
    "name = \"c\"\nseeds = [7]\nmax_attempts = 3\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"head\" }]",
    "name = \"d\"\nseeds = [0, 1]\nmax_attempts = 2\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{}]\n[stage2]\nmethod = [\"ncm\", \"posthoc_la\"]",
    "name = \"e\"\nseeds = [0, 1]\nmax_attempts = 2\n[dataset]\nkind = \"synthetic\"\nval_per_class = 10\n[train]\nepochs = 8\nlr_schedule = \"cosine\"\nwarmup_epochs = 1\n[losses]\nplans = [{}, { comp = \"tail\" }, { pc = \"head\" }]\n[search]\nmethod = \"asha\"\nmin_epochs = 2\nreduction_factor = 2",
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
        worker: Option<usize>,
        epoch: u32,
    },
    /// A lease given back as preempted.
    Release {
        lease: usize,
        worker: Option<usize>,
    },
    /// A stage-1 job's model uploaded under its lease.
    RecordModel {
        lease: usize,
        worker: Option<usize>,
    },
    /// A stage-2 job found its stage-1 job's model lost.
    ModelLost {
        lease: usize,
        worker: Option<usize>,
    },
    /// A lease id never issued, naming a job that exists (by index into the issued leases),
    /// presented by a worker: it must read exactly as another worker's lease does.
    Forged {
        lease: usize,
        worker: usize,
        tag: u128,
    },
    Advance(u64),
    Expire,
    /// Workers unseen for the worker expiry are forgotten.
    ExpireWorkers,
    Cancel(usize),
    Retry(usize),
}

fn worker_again() -> impl Strategy<Value = Option<usize>> {
    proptest::option::weighted(0.2, 0..4usize)
}

fn op() -> impl Strategy<Value = Op> {
    let worker = proptest::option::weighted(0.2, 0..4usize);
    prop_oneof![
        2 => (0..SPECS.len()).prop_map(Op::Submit),
        1 => Just(Op::Register),
        5 => (0..4usize).prop_map(Op::Poll),
        4 => (0..64usize, worker.clone(), proptest::option::of(1..6u32))
            .prop_map(|(lease, worker, epoch)| Op::Progress { lease, worker, epoch }),
        3 => (0..64usize, worker.clone()).prop_map(|(lease, worker)| Op::Complete { lease, worker }),
        2 => (0..64usize, worker, any::<bool>())
            .prop_map(|(lease, worker, retryable)| Op::Fail { lease, worker, retryable }),
        1 => (0..64usize, worker_again(), 1..6u32)
            .prop_map(|(lease, worker, epoch)| Op::Checkpoint { lease, worker, epoch }),
        2 => (0..64usize, worker_again()).prop_map(|(lease, worker)| Op::Release { lease, worker }),
        2 => (0..64usize, worker_again()).prop_map(|(lease, worker)| Op::RecordModel { lease, worker }),
        1 => (0..64usize, worker_again()).prop_map(|(lease, worker)| Op::ModelLost { lease, worker }),
        1 => (0..64usize, 0..4usize, any::<u128>())
            .prop_map(|(lease, worker, tag)| Op::Forged { lease, worker, tag }),
        3 => (0..1_500u64).prop_map(Op::Advance),
        2 => Just(Op::Expire),
        1 => Just(Op::ExpireWorkers),
        1 => (0..SPECS.len()).prop_map(Op::Cancel),
        1 => (0..SPECS.len()).prop_map(Op::Retry),
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
    /// How many results were recorded for each job: one once it succeeded, never a second.
    results: HashMap<JobId, u32>,
    cancelled: HashSet<SweepId>,
    jobs: u32,
    /// The model of the attempt budget: leases of each job since its last retry that did not
    /// end in a preempted release.
    counted: HashMap<JobId, u32>,
}

impl Harness {
    pub(crate) fn new(store: Option<Store>) -> Self {
        Self {
            scheduler: Scheduler::new(TIMING, test_key()),
            now: 1_000,
            store,
            workers: Vec::new(),
            leases: Vec::new(),
            sweeps: Vec::new(),
            results: HashMap::new(),
            cancelled: HashSet::new(),
            jobs: 0,
            counted: HashMap::new(),
        }
    }

    fn commit<T>(&mut self, planned: Result<Planned<T>>) -> Result<T> {
        let planned = planned?;
        for change in &planned.changes {
            if let Change::ResultRecorded { job, .. } = change {
                *self.results.entry(job.clone()).or_default() += 1;
            }
        }
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
                let secret = test_secret(&self.scheduler);
                let planned = self.scheduler.register_worker(
                    now,
                    "h",
                    Vec::new(),
                    PROTOCOL_VERSION,
                    "t",
                    &secret,
                );
                let registration = self.commit(planned).unwrap();
                prop_assert!(!self.workers.contains(&registration.worker));
                self.workers.push(registration.worker);
            }
            Op::Poll(i) => {
                let Some(worker) = self.pick_worker(*i) else {
                    return Ok(());
                };
                let before = self.scheduler.clone();
                let polled = self.scheduler.poll(now, &worker);
                if before.worker(&worker).is_none() {
                    prop_assert!(
                        matches!(polled, Err(SchedulerError::NotFound { .. })),
                        "a forgotten worker polled: {:?}",
                        polled.map(|p| p.answer)
                    );
                    return self.check();
                }
                if let Some(lease) = self.commit(polled).unwrap() {
                    if let Some(stage2) = &lease.job.stage2 {
                        let parent = before.job(&stage2.parent).map(|j| j.runtime.state);
                        prop_assert_eq!(
                            parent,
                            Some(JobState::Succeeded),
                            "a stage-2 job was leased before its stage-1 job succeeded"
                        );
                    }
                    prop_assert!(
                        !self.cancelled.contains(&lease.job.sweep),
                        "a job of a cancelled sweep was leased"
                    );
                    prop_assert!(
                        self.leases.iter().all(|(id, _)| *id != lease.id),
                        "a lease id was reused"
                    );
                    *self.counted.entry(lease.job.id.clone()).or_default() += 1;
                    self.leases.push((lease.id, worker));
                }
            }
            Op::Progress {
                lease,
                worker,
                epoch,
            } => {
                // Validation readings that differ between leases, for a search to rank.
                let m = epoch.map(|e| EpochMetrics {
                    val_accuracy: Some(GroupAccuracy {
                        acc_all: Some(((*lease * 7 + e as usize) % 5) as f64 / 5.0),
                        ..GroupAccuracy::default()
                    }),
                    ..metrics(e, Some(f64::from(e) / 8.0))
                });
                self.lease_call(*lease, *worker, |s, w, l, now| {
                    unit(s.progress(now, w, l, m.as_ref()))
                })?;
            }
            Op::Complete { lease, worker } => {
                self.lease_call(*lease, *worker, |s, w, l, now| {
                    let job = l.job().and_then(|id| s.job(&id)).expect("issued lease");
                    s.complete(now, w, l, result_for(&job.spec(), 0.5))
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
            Op::Checkpoint {
                lease,
                worker,
                epoch,
            } => {
                let checkpoint = Checkpoint {
                    epoch: *epoch,
                    sha256: "0".repeat(64).parse().unwrap(),
                };
                self.lease_call(*lease, *worker, |s, w, l, now| {
                    unit(s.record_checkpoint(now, w, l, checkpoint))
                })?;
            }
            Op::Release { lease, worker } => {
                let Some((id, holder)) = self.issued(*lease) else {
                    return Ok(());
                };
                let job = id.job().expect("our lease ids name their job");
                let before = self
                    .scheduler
                    .job(&job)
                    .expect("leased job")
                    .runtime
                    .clone();
                let presenter = worker.and_then(|i| self.pick_worker(i)).unwrap_or(holder);
                let was_live = before
                    .lease
                    .as_ref()
                    .is_some_and(|l| l.id == id && l.worker == presenter);
                // A searched job given back at its rung pauses there: no preemption.
                let pauses = self
                    .scheduler
                    .pauses_at_rung(self.scheduler.job(&job).expect("leased job"), &before)
                    .is_some();
                self.lease_call(*lease, *worker, |s, w, l, now| {
                    s.release(now, w, l, ReleaseReason::Preempted)
                })?;
                if was_live {
                    let after = &self.scheduler.job(&job).expect("leased job").runtime;
                    // Paused, it may also be promoted at once, or stopped when nothing else
                    // of its sweep can run.
                    prop_assert!(
                        after.state == JobState::Pending
                            || (pauses && after.state == JobState::Cancelled),
                        "a released job is {}",
                        after.state
                    );
                    prop_assert_eq!(after.attempts, before.attempts);
                    prop_assert_eq!(
                        after.attempts - after.retry_base,
                        before.attempts - before.retry_base - 1,
                        "a preempted attempt counted toward max_attempts"
                    );
                    prop_assert_eq!(after.preemptions, before.preemptions + u32::from(!pauses));
                    *self.counted.entry(job).or_default() -= 1;
                }
            }
            Op::RecordModel { lease, worker } => {
                let model = KeptModel {
                    sha256: "0".repeat(64).parse().unwrap(),
                    size: 1,
                    epochs: 1,
                };
                self.lease_call(*lease, *worker, |s, w, l, now| {
                    unit(s.record_model(now, w, l, model))
                })?;
            }
            Op::ModelLost { lease, worker } => {
                let Some((id, holder)) = self.issued(*lease) else {
                    return Ok(());
                };
                let presenter = worker.and_then(|i| self.pick_worker(i)).unwrap_or(holder);
                let job = id.job().expect("our lease ids name their job");
                let before = self.scheduler.clone();
                let live = before
                    .job(&job)
                    .and_then(|j| j.runtime.lease.as_ref())
                    .is_some_and(|l| l.id == id && l.worker == presenter);
                let parent = before.job(&job).and_then(|j| j.parent().cloned());
                self.lease_call(*lease, *worker, |s, w, l, _| unit(s.model_lost(w, l)))?;
                if let (true, Some(parent)) = (live, parent) {
                    let child = &self.scheduler.job(&job).expect("known job").runtime;
                    prop_assert!(
                        child.is_waiting(),
                        "a stage-2 job that lost its model does not wait"
                    );
                    *self.counted.entry(job).or_default() -= 1;
                    let was = before.job(&parent).expect("known job").runtime.state;
                    let now_rt = &self.scheduler.job(&parent).expect("known job").runtime;
                    if was == JobState::Succeeded {
                        prop_assert_eq!(
                            now_rt.state,
                            JobState::Pending,
                            "a lost model did not re-run its stage-1 job"
                        );
                        prop_assert!(now_rt.rerun_for_model && now_rt.model.is_none());
                        self.counted.insert(parent, 0);
                    }
                }
            }
            Op::Forged { lease, worker, tag } => {
                let (Some((issued, _)), Some(worker)) =
                    (self.issued(*lease), self.pick_worker(*worker))
                else {
                    return Ok(());
                };
                let job = issued.job().expect("our lease ids name their job");
                let forged = LeaseId::issued(*tag, &job);
                if self.leases.iter().all(|(id, _)| *id != forged) {
                    let s = &self.scheduler;
                    let refusal = SchedulerError::lease_not_yours(&forged);
                    let result = result_for(&s.job(&job).expect("leased job").spec(), 0.999);
                    let checkpoint = Checkpoint {
                        epoch: 1,
                        sha256: "0".repeat(64).parse().unwrap(),
                    };
                    let answers = [
                        unit(s.progress(now, &worker, &forged, None)).err(),
                        s.complete(now, &worker, &forged, result).err(),
                        s.fail(now, &worker, &forged, "forged", false).err(),
                        s.release(now, &worker, &forged, ReleaseReason::Preempted)
                            .err(),
                        unit(s.record_checkpoint(now, &worker, &forged, checkpoint)).err(),
                        s.checkpoint_of(&worker, &forged).err(),
                        s.model_source(&worker, &forged).err(),
                        unit(s.model_lost(&worker, &forged)).err(),
                    ];
                    for answer in answers {
                        prop_assert_eq!(answer.as_ref(), Some(&refusal), "a forged lease");
                    }
                }
            }
            Op::Advance(ms) => self.now += ms,
            Op::ExpireWorkers => {
                let before = self.scheduler.clone();
                let forgotten = self.commit(Ok(before.expire_workers(now))).unwrap();
                let s = &self.scheduler;
                prop_assert_eq!(s.workers.len() + forgotten, before.workers.len());
                for worker in before.workers.values() {
                    let id = &worker.record.id;
                    let unseen =
                        now.saturating_sub(worker.record.last_seen_ms) >= TIMING.worker_expiry_ms;
                    let kept = s.worker(id).is_some();
                    prop_assert_eq!(
                        kept,
                        !unseen || !worker.running.is_empty(),
                        "worker {} unseen {} holding {:?}",
                        id,
                        unseen,
                        worker.running
                    );
                    if !kept {
                        prop_assert_eq!(s.worker_by_secret(&worker.record.secret_sha256), None);
                    }
                }
            }
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
                    let requeued: Vec<JobId> = {
                        let s = &self.scheduler;
                        let record = s.sweep(&sweep).expect("known sweep");
                        s.jobs_of(record)
                            .filter(|j| {
                                matches!(j.runtime.state, JobState::Failed | JobState::Cancelled)
                            })
                            .map(|j| j.id.clone())
                            .collect()
                    };
                    self.commit(self.scheduler.retry_failed(&sweep)).unwrap();
                    self.cancelled.remove(&sweep);
                    for job in requeued {
                        self.counted.insert(job, 0);
                    }
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
        let Some((lease, holder)) = self.issued(index) else {
            return Ok(());
        };
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
                // Only the holder of an ended lease hears why it ended; anyone else gets the
                // one refusal, as for a lease never issued.
                Err(e) if ended => prop_assert!(
                    matches!(e, SchedulerError::StaleLease { .. }),
                    "a stale lease gave {e}"
                ),
                Err(e) => prop_assert_eq!(e, &SchedulerError::lease_not_yours(&lease)),
            }
        }
        let _ = self.commit(planned);
        if !live {
            prop_assert_eq!(&self.scheduler, &before);
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
        // A result is recorded exactly when a job succeeds (it stays while the job trains again
        // only to make its lost model), and never a second one.
        for (job, recorded) in &self.results {
            prop_assert_eq!(*recorded, 1, "job {} has {} results", job, recorded);
            let has = s.job(job).map(|j| j.runtime.has_result());
            prop_assert_eq!(has, Some(true), "job {} has a result", job);
        }
        // A stage-1 job that failed for good has failed its stage-2 jobs with it: none waits.
        for sweep in s.sweeps() {
            for job in s.jobs_of(sweep) {
                if job.runtime.state != JobState::Failed {
                    continue;
                }
                for child in job.children() {
                    let state = s.job(child).expect("known job").runtime.state;
                    prop_assert!(
                        state != JobState::Pending,
                        "stage-2 job {} is pending under failed stage-1 job {}",
                        child,
                        job.id
                    );
                }
            }
        }
        for sweep in s.sweeps() {
            prop_assert_eq!(
                sweep.counts.succeeded as usize,
                s.succeeded(&sweep.record.id).unwrap().len()
            );
            for job in s.succeeded(&sweep.record.id).unwrap() {
                prop_assert!(
                    self.results.contains_key(&job),
                    "job {} succeeded without a result",
                    job
                );
            }
        }
        // At most one live lease per job, among every lease ever issued.
        let mut live: HashMap<JobId, usize> = HashMap::new();
        for (lease, holder) in &self.leases {
            if let Ok(job) = s.check_upload(holder, lease) {
                *live.entry(job).or_default() += 1;
            }
        }
        // Every registered worker is known by its own secret, and no secret by another.
        prop_assert_eq!(s.secrets.len(), s.workers.len());
        for worker in s.workers.values() {
            prop_assert_eq!(
                s.worker_by_secret(&worker.record.secret_sha256),
                Some(&worker.record.id)
            );
        }
        prop_assert!(live.values().all(|&n| n <= 1), "two live leases for a job");
        // The attempt budget spent is exactly the leases not given back as preempted.
        for sweep in s.sweeps() {
            for job in s.jobs_of(sweep) {
                let counted = self.counted.get(&job.id).copied().unwrap_or(0);
                prop_assert_eq!(
                    job.runtime.attempts - job.runtime.retry_base,
                    counted,
                    "job {} spent a budget its leases do not explain",
                    job.id
                );
            }
        }
        // A searched configuration's seeds move together: each of its jobs was promoted past
        // the same rungs, each of them after reaching it.
        for sweep in s.sweeps() {
            let Some(plan) = &sweep.record.search else {
                continue;
            };
            for jobs in super::search::configurations(s, sweep) {
                let runtimes: Vec<&JobRuntime> = jobs
                    .iter()
                    .map(|id| &s.job(id).expect("known job").runtime)
                    .collect();
                let promoted = |r: &JobRuntime| r.search.as_ref().map_or(0, |x| x.promoted);
                let level = promoted(runtimes[0]);
                prop_assert!(
                    runtimes.iter().all(|r| promoted(r) == level),
                    "a configuration's seeds were promoted apart: {:?}",
                    jobs
                );
                for rung in &plan.rungs[..level as usize] {
                    prop_assert!(
                        runtimes.iter().all(|r| r
                            .search
                            .as_ref()
                            .is_some_and(|x| x.readings.iter().any(|g| g.epoch == *rung))),
                        "a configuration was promoted past rung {} it did not reach",
                        rung
                    );
                }
            }
        }
        // A cancelled sweep has nothing pending or running.
        for sweep in &self.cancelled {
            let counts = s.sweep(sweep).expect("known sweep").counts;
            prop_assert_eq!(counts.pending + counts.running, 0);
        }
        Ok(())
    }

    /// An issued lease (by index, wrapping) and the worker it was issued to.
    fn issued(&self, index: usize) -> Option<(LeaseId, WorkerId)> {
        (!self.leases.is_empty()).then(|| self.leases[index % self.leases.len()].clone())
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
    vec![
        Op::Submit(0),
        Op::Submit(1),
        Op::Submit(3),
        Op::Submit(4),
        Op::Register,
        Op::Register,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// However often a job is preempted, it is never failed for it: on a budget of a single
    /// attempt it is leased again each time, at once, and still completes.
    #[test]
    fn preemptions_never_fail_a_job(preemptions in 1..20u32, checkpoint_every in 1..4u32) {
        let mut harness = Harness::new(None);
        let spec = "name = \"p\"\nseeds = [0]\nmax_attempts = 1\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]";
        let submitted = harness.commit(harness.scheduler.submit(harness.now, spec)).unwrap();
        harness.jobs += submitted.jobs;
        harness.step(&Op::Register)?;
        let worker = harness.workers[0].clone();
        for round in 0..=preemptions {
            let now = harness.now;
            let lease = harness
                .commit(harness.scheduler.poll(now, &worker))
                .unwrap()
                .expect("a preempted job is back in the queue at once");
            *harness.counted.entry(lease.job.id.clone()).or_default() += 1;
            prop_assert_eq!(lease.attempt, round + 1);
            let job = lease.job.id.clone();
            if round == preemptions {
                let result = result_for(&lease.job, 0.5);
                harness.commit(harness.scheduler.complete(now, &worker, &lease.id, result)).unwrap();
                let runtime = &harness.scheduler.job(&job).expect("known job").runtime;
                prop_assert_eq!(runtime.state, JobState::Succeeded);
                prop_assert_eq!(runtime.preemptions, preemptions);
                prop_assert_eq!(runtime.attempts - runtime.retry_base, 1);
            } else {
                if round % checkpoint_every == 0 {
                    let checkpoint = Checkpoint { epoch: round + 1, sha256: "0".repeat(64).parse().unwrap() };
                    harness.commit(harness.scheduler.record_checkpoint(now, &worker, &lease.id, checkpoint)).unwrap();
                }
                let release = harness.scheduler.release(now, &worker, &lease.id, ReleaseReason::Preempted);
                harness.commit(release).unwrap();
                *harness.counted.entry(job.clone()).or_default() -= 1;
                prop_assert_eq!(harness.scheduler.job(&job).expect("known job").runtime.state, JobState::Pending);
                // The same release again (a retried call) is answered OK and changes nothing.
                let again = harness.scheduler.release(now, &worker, &lease.id, ReleaseReason::Preempted).unwrap();
                prop_assert!(again.changes.is_empty());
            }
            harness.now += 10;
            harness.check()?;
        }
    }

    #[test]
    fn promises_hold_over_random_operations(ops in ops(80)) {
        let mut harness = Harness::new(None);
        for op in prelude().iter().chain(&ops) {
            harness.step(op)?;
        }
    }
}
