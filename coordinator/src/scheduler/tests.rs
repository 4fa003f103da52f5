//! Unit tests of each scheduler operation; the promises across random sequences are in
//! `proptests`.

use std::sync::Arc;

use ltsweep_domain::{EpochMetrics, GroupAccuracy, JobResult, JobSpec, JobState};
use ltsweep_proto::PROTOCOL_VERSION;
use tonic::Code;

use super::*;
use crate::error::CoordinatorError;

/// The status code a client would see for a scheduler error (the one mapping is the
/// coordinator's).
pub(crate) trait Coded {
    fn code(&self) -> Code;
}

impl Coded for SchedulerError {
    fn code(&self) -> Code {
        CoordinatorError::from(self.clone()).code()
    }
}

pub(crate) const TIMING: Timing = Timing {
    lease_ttl_ms: 1_000,
    heartbeat_interval_ms: 100,
    poll_timeout_ms: 500,
    worker_expiry_ms: 10_000,
};

/// The fixed key tests derive lease ids with.
pub(crate) fn test_key() -> LeaseKey {
    LeaseKey::new([7; 32])
}

/// A secret's hash no other worker of `s` has: the coordinator draws secrets at random.
pub(crate) fn test_secret(s: &Scheduler) -> String {
    secret_sha256(&format!("secret-{}", s.counters().next_worker))
}

/// Two jobs (one plan, two seeds), two attempts each.
pub(crate) const SPEC: &str = r#"
name = "unit"
seeds = [0, 1]
max_attempts = 2
[dataset]
kind = "synthetic"
[losses]
plans = [{ comp = "none", pc = "none" }]
"#;

/// Plans, commits to nothing, applies, and checks the indices.
pub(crate) fn run<T>(
    scheduler: &mut Scheduler,
    plan: impl FnOnce(&Scheduler) -> Result<Planned<T>>,
) -> Result<T> {
    let planned = plan(scheduler)?;
    scheduler.apply(&planned.changes);
    scheduler.check_invariants().expect("invariants hold");
    Ok(planned.answer)
}

/// A result the worker would send for a leased job.
pub(crate) fn result_for(job: &JobSpec, accuracy: f64) -> JobResult {
    JobResult {
        accuracy: GroupAccuracy {
            acc_all: Some(accuracy),
            ..GroupAccuracy::default()
        },
        train_seconds: 1.5,
        device: "cpu".into(),
        ..JobResult::blank(job)
    }
}

pub(crate) fn metrics(epoch: u32, accuracy: Option<f64>) -> EpochMetrics {
    EpochMetrics {
        epoch,
        lr: 0.1,
        loss_base: 1.0,
        loss_comp: 0.0,
        loss_pc: 0.0,
        images_per_second: 100.0,
        seconds: 1.0,
        accuracy: accuracy.map(|a| GroupAccuracy {
            acc_all: Some(a),
            ..GroupAccuracy::default()
        }),
        per_class: Vec::new(),
        val_accuracy: None,
    }
}

/// A scheduler with `SPEC` submitted and one worker registered.
fn setup() -> (Scheduler, SweepId, WorkerId) {
    let mut s = Scheduler::new(TIMING, test_key());
    let sweep = run(&mut s, |s| s.submit(0, SPEC)).unwrap().sweep;
    let worker = run(&mut s, |s| {
        s.register_worker(0, "host", vec![], PROTOCOL_VERSION, "t", &test_secret(s))
    })
    .unwrap()
    .worker;
    (s, sweep, worker)
}

fn register(s: &mut Scheduler, now: u64) -> WorkerId {
    run(s, |s| {
        s.register_worker(now, "host", vec![], PROTOCOL_VERSION, "t", &test_secret(s))
    })
    .unwrap()
    .worker
}

fn lease(s: &mut Scheduler, now: u64, worker: &WorkerId) -> Lease {
    run(s, |s| s.poll(now, worker))
        .unwrap()
        .expect("a pending job")
}

fn state(s: &Scheduler, lease: &Lease) -> JobState {
    s.job(&lease.job.id).unwrap().runtime.state
}

#[test]
fn submit_queues_the_grid_in_order_and_is_idempotent() {
    let mut s = Scheduler::new(TIMING, test_key());
    let answer = run(&mut s, |s| s.submit(5, SPEC)).unwrap();
    assert!(answer.created);
    assert_eq!(answer.jobs, 2);
    let sweep = s.sweep(&answer.sweep).unwrap();
    assert_eq!(sweep.counts.pending, 2);
    assert_eq!(sweep.record.submitted_ms, 5);
    assert_eq!(sweep.record.max_attempts, 2);
    let seeds: Vec<u64> = s.jobs_of(sweep).map(|j| j.seed).collect();
    assert_eq!(seeds, [0, 1]);

    let again = s.submit(9, SPEC).unwrap();
    assert!(!again.answer.created);
    assert_eq!(again.answer.sweep, answer.sweep);
    assert!(again.changes.is_empty());
}

#[test]
fn a_bad_spec_names_its_key() {
    let s = Scheduler::new(TIMING, test_key());
    let err = s
        .submit(
            0,
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[train]\nbatch_sise = 3\n",
        )
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let message = err.to_string();
    assert!(message.contains("batch_sise"), "{message}");
    assert!(message.contains("line 6"), "{message}");
}

#[test]
fn another_protocol_version_is_refused_naming_both() {
    let s = Scheduler::new(TIMING, test_key());
    let err = s
        .register_worker(0, "h", vec![], PROTOCOL_VERSION - 1, "t", &test_secret(&s))
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.to_string().contains(&format!(
        "worker speaks protocol {}, this coordinator speaks {PROTOCOL_VERSION}",
        PROTOCOL_VERSION - 1
    )));
}

#[test]
fn worker_ids_come_from_the_counter() {
    let mut s = Scheduler::new(TIMING, test_key());
    assert_eq!(register(&mut s, 0).as_str(), "w-1");
    assert_eq!(register(&mut s, 0).as_str(), "w-2");
    assert_eq!(s.counters().next_worker, 3);
}

#[test]
fn poll_leases_first_come_first_served() {
    let (mut s, sweep, worker) = setup();
    let first = lease(&mut s, 10, &worker);
    assert_eq!(first.job.seed, 0);
    assert_eq!(first.attempt, 1);
    assert_eq!(first.deadline_ms, 10 + TIMING.lease_ttl_ms);
    assert_eq!(first.checkpoint_epoch, 0);
    assert_eq!(first.id.job().as_ref(), Some(&first.job.id));
    let second = lease(&mut s, 10, &worker);
    assert_eq!(second.job.seed, 1);
    assert_ne!(first.id, second.id);
    assert!(run(&mut s, |s| s.poll(10, &worker)).unwrap().is_none());
    let counts = s.sweep(&sweep).unwrap().counts;
    assert_eq!((counts.pending, counts.running), (0, 2));
    assert_eq!(s.worker(&worker).unwrap().running.len(), 2);
}

#[test]
fn an_unknown_worker_must_register_again() {
    let (s, _, _) = setup();
    let err = s.poll(0, &WorkerId("w-99".into())).unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.to_string().contains("register again"));
}

#[test]
fn progress_renews_the_lease_and_counts_retrained_epochs() {
    let (mut s, _, worker) = setup();
    let l = lease(&mut s, 0, &worker);
    let answer = run(&mut s, |s| s.progress(500, &worker, &l.id, None)).unwrap();
    assert!(!answer.cancel);
    assert_eq!(answer.deadline_ms, 500 + TIMING.lease_ttl_ms);
    for (epoch, accuracy) in [(1, None), (2, Some(0.25)), (3, None)] {
        run(&mut s, |s| {
            s.progress(600, &worker, &l.id, Some(&metrics(epoch, accuracy)))
        })
        .unwrap();
    }
    let rt = &s.job(&l.job.id).unwrap().runtime;
    assert_eq!((rt.epoch, rt.max_epoch, rt.epochs_retrained), (3, 3, 0));
    assert_eq!(rt.last_accuracy, Some(0.25));

    // The lease expires; the next attempt redoes epochs 2 and 3 from a checkpoint at 1.
    run(&mut s, |s| Ok(s.expire(10_000))).unwrap();
    lease(&mut s, 10_000, &worker); // the other job, ahead in the queue
    let again = lease(&mut s, 10_000, &worker);
    assert_eq!((&again.job.id, again.attempt), (&l.job.id, 2));
    for epoch in [2, 3, 4] {
        run(&mut s, |s| {
            s.progress(10_001, &worker, &again.id, Some(&metrics(epoch, None)))
        })
        .unwrap();
    }
    let rt = &s.job(&l.job.id).unwrap().runtime;
    assert_eq!((rt.epoch, rt.max_epoch, rt.epochs_retrained), (4, 4, 2));
}

#[test]
fn a_retried_progress_report_is_not_a_retrained_epoch() {
    // A worker held stopped (SIGSTOP ahead of Slurm's time limit) sends epoch 4, and its
    // deadline passes before the answer comes: it sends epoch 4 again under the same lease.
    let (mut s, _, worker) = setup();
    let l = lease(&mut s, 0, &worker);
    for epoch in [1, 2, 3, 4, 4, 3, 5] {
        run(&mut s, |s| {
            s.progress(600, &worker, &l.id, Some(&metrics(epoch, None)))
        })
        .unwrap();
    }
    let rt = &s.job(&l.job.id).unwrap().runtime;
    assert_eq!((rt.epoch, rt.max_epoch, rt.epochs_retrained), (5, 5, 0));
    let planned = s
        .progress(700, &worker, &l.id, Some(&metrics(5, None)))
        .unwrap();
    assert!(
        matches!(planned.changes.as_slice(), [Change::LeaseRenewed { .. }]),
        "a repeat only renews the lease: {:?}",
        planned.changes
    );
}

#[test]
fn a_bare_heartbeat_is_not_durable() {
    let (mut s, _, worker) = setup();
    let l = lease(&mut s, 0, &worker);
    let planned = s.progress(10, &worker, &l.id, None).unwrap();
    assert!(planned.changes.iter().all(|c| !c.is_durable()));
    s.apply(&planned.changes);
    let live = s.job(&l.job.id).unwrap().runtime.lease.clone().unwrap();
    assert_eq!(live.deadline_ms, 10 + TIMING.lease_ttl_ms);
    assert_eq!(s.next_deadline(), Some(10 + TIMING.lease_ttl_ms));
}

#[test]
fn complete_records_one_result_and_is_idempotent_for_its_lease() {
    let (mut s, sweep, worker) = setup();
    let l = lease(&mut s, 0, &worker);
    let planned = s
        .complete(50, &worker, &l.id, result_for(&l.job, 0.5))
        .unwrap();
    let recorded: Vec<_> = planned
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::ResultRecorded { job, result } => Some((job.clone(), Arc::clone(result))),
            _ => None,
        })
        .collect();
    s.apply(&planned.changes);
    assert_eq!(state(&s, &l), JobState::Succeeded);
    let [(job, stored)] = recorded.as_slice() else {
        panic!("one result recorded: {recorded:?}");
    };
    assert_eq!(job, &l.job.id);
    // The coordinator's own record of the run, whatever the worker sent.
    assert_eq!(stored.attempts, 1);
    assert_eq!(
        stored.worker_id.as_ref().map(WorkerId::as_str),
        Some(worker.as_str())
    );
    assert_eq!(stored.spec, l.job);
    assert_eq!(s.succeeded(&sweep).unwrap(), vec![l.job.id.clone()]);

    // The answer was lost and the worker retries: OK, nothing changes.
    let before = s.clone();
    let retried = s
        .complete(60, &worker, &l.id, result_for(&l.job, 0.9))
        .unwrap();
    assert!(retried.changes.is_empty());
    assert_eq!(s, before);
    // Its progress after the end is stale.
    let err = s.progress(60, &worker, &l.id, None).unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
}

#[test]
fn a_result_for_another_job_is_refused() {
    let (mut s, _, worker) = setup();
    let a = lease(&mut s, 0, &worker);
    let b = lease(&mut s, 0, &worker);
    let err = s
        .complete(1, &worker, &a.id, result_for(&b.job, 0.5))
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.to_string().contains("result.job_id"));
}

#[test]
fn a_lease_of_another_worker_is_stale() {
    let (mut s, _, worker) = setup();
    let other = register(&mut s, 0);
    let l = lease(&mut s, 0, &worker);
    let err = s.progress(1, &other, &l.id, None).unwrap_err();
    assert!(matches!(err, SchedulerError::StaleLease { .. }));
    let err = s
        .complete(1, &other, &l.id, result_for(&l.job, 0.5))
        .unwrap_err();
    assert!(matches!(err, SchedulerError::StaleLease { .. }));
}

#[test]
fn retryable_failures_requeue_at_the_end_until_attempts_run_out() {
    let (mut s, _, worker) = setup();
    let first = lease(&mut s, 0, &worker);
    run(&mut s, |s| {
        s.fail(1, &worker, &first.id, "out of memory", true)
    })
    .unwrap();
    assert_eq!(state(&s, &first), JobState::Pending);
    // Failing again with the same lease (a lost answer) changes nothing.
    let before = s.clone();
    assert!(
        s.fail(2, &worker, &first.id, "out of memory", true)
            .unwrap()
            .changes
            .is_empty()
    );
    assert_eq!(s, before);
    // The other job was ahead in the queue.
    let next = lease(&mut s, 2, &worker);
    assert_ne!(next.job.id, first.job.id);
    let retry = lease(&mut s, 2, &worker);
    assert_eq!(
        (retry.job.id.clone(), retry.attempt),
        (first.job.id.clone(), 2)
    );
    run(&mut s, |s| {
        s.fail(3, &worker, &retry.id, "out of memory", true)
    })
    .unwrap();
    let job = s.job(&first.job.id).unwrap();
    assert_eq!(job.runtime.state, JobState::Failed);
    assert_eq!(job.runtime.error.as_deref(), Some("out of memory"));
}

#[test]
fn a_diverged_run_fails_at_once() {
    let (mut s, _, worker) = setup();
    let l = lease(&mut s, 0, &worker);
    run(&mut s, |s| s.fail(1, &worker, &l.id, "loss is NaN", false)).unwrap();
    assert_eq!(state(&s, &l), JobState::Failed);
    assert_eq!(s.job(&l.job.id).unwrap().runtime.attempts, 1);
}

#[test]
fn expiry_requeues_then_fails_and_fences_the_old_lease() {
    let (mut s, sweep, worker) = setup();
    let l = lease(&mut s, 0, &worker);
    assert_eq!(s.expire(TIMING.lease_ttl_ms - 1).answer, 0);
    assert_eq!(
        run(&mut s, |s| Ok(s.expire(TIMING.lease_ttl_ms))).unwrap(),
        1
    );
    assert_eq!(state(&s, &l), JobState::Pending);

    // The old lease now changes nothing.
    let before = s.clone();
    for err in [
        s.progress(1_001, &worker, &l.id, Some(&metrics(1, None)))
            .map(drop),
        s.complete(1_001, &worker, &l.id, result_for(&l.job, 0.5))
            .map(drop),
        s.fail(1_001, &worker, &l.id, "x", true).map(drop),
        s.check_upload(&worker, &l.id).map(drop),
    ] {
        assert!(
            matches!(err, Err(SchedulerError::StaleLease { .. })),
            "{err:?}"
        );
    }
    assert_eq!(s, before);

    // Second (last) attempt expires too: failed, saying why.
    lease(&mut s, 2_000, &worker); // the other job
    let again = lease(&mut s, 2_000, &worker);
    assert_eq!(again.job.id, l.job.id);
    run(&mut s, |s| Ok(s.expire(5_000))).unwrap();
    let job = s.job(&l.job.id).unwrap();
    assert_eq!(job.runtime.state, JobState::Failed);
    assert!(
        job.runtime
            .error
            .as_deref()
            .unwrap()
            .contains("lease expired on attempt 2 of 2")
    );
    let counts = s.sweep(&sweep).unwrap().counts;
    // The other job was on its first attempt: back in the queue.
    assert_eq!((counts.failed, counts.pending), (1, 1));
}

#[test]
fn cancel_stops_leasing_and_tells_running_workers() {
    let (mut s, sweep, worker) = setup();
    let running = lease(&mut s, 0, &worker);
    assert_eq!(run(&mut s, |s| s.cancel(&sweep)).unwrap(), 2);
    assert!(s.sweep(&sweep).unwrap().record.cancelled);
    assert!(run(&mut s, |s| s.poll(1, &worker)).unwrap().is_none());
    let answer = s.progress(2, &worker, &running.id, None).unwrap();
    assert!(answer.answer.cancel);
    assert!(answer.changes.is_empty());
    let err = s
        .complete(2, &worker, &running.id, result_for(&running.job, 0.5))
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // A worker reporting the stopped job as failed is answered OK.
    assert!(
        s.fail(2, &worker, &running.id, "cancelled", false)
            .unwrap()
            .changes
            .is_empty()
    );
    // Cancelling again cancels nothing more.
    assert_eq!(s.cancel(&sweep).unwrap().answer, 0);

    assert_eq!(run(&mut s, |s| s.retry_failed(&sweep)).unwrap(), 2);
    assert!(!s.sweep(&sweep).unwrap().record.cancelled);
    // The cancelled lease is now simply stale.
    let err = s.progress(3, &worker, &running.id, None).unwrap_err();
    assert!(matches!(err, SchedulerError::StaleLease { .. }));
    let again = lease(&mut s, 3, &worker);
    assert_eq!(again.attempt, 2);
}

#[test]
fn retry_gives_a_fresh_attempt_budget() {
    let (mut s, sweep, worker) = setup();
    for _ in 0..2 {
        let l = lease(&mut s, 0, &worker);
        run(&mut s, |s| s.fail(0, &worker, &l.id, "diverged", false)).unwrap();
    }
    assert_eq!(s.sweep(&sweep).unwrap().counts.failed, 2);
    assert_eq!(run(&mut s, |s| s.retry_failed(&sweep)).unwrap(), 2);
    let l = lease(&mut s, 0, &worker);
    assert_eq!(l.attempt, 2);
    // attempt 2 overall, but the first of the new budget: a retryable failure requeues.
    run(&mut s, |s| s.fail(0, &worker, &l.id, "oom", true)).unwrap();
    assert_eq!(state(&s, &l), JobState::Pending);
}

#[test]
fn unknown_sweeps_are_not_found() {
    let s = Scheduler::new(TIMING, test_key());
    let id = SweepId("nope".into());
    assert_eq!(s.cancel(&id).unwrap_err().code(), Code::NotFound);
    assert_eq!(s.retry_failed(&id).unwrap_err().code(), Code::NotFound);
    assert_eq!(s.succeeded(&id).unwrap_err().code(), Code::NotFound);
}

#[test]
fn a_checkpoint_is_offered_to_the_next_attempt() {
    let (mut s, _, worker) = setup();
    let l = lease(&mut s, 0, &worker);
    let checkpoint = Checkpoint {
        epoch: 7,
        sha256: "ab".repeat(32).parse().unwrap(),
    };
    let epoch = run(&mut s, |s| {
        s.record_checkpoint(10, &worker, &l.id, checkpoint.clone())
    })
    .unwrap();
    assert_eq!(epoch, 7);
    assert_eq!(
        s.checkpoint_of(&worker, &l.id).unwrap(),
        (l.job.id.clone(), Some(checkpoint))
    );
    run(&mut s, |s| s.fail(20, &worker, &l.id, "lost gpu", true)).unwrap();
    lease(&mut s, 30, &worker);
    let again = lease(&mut s, 30, &worker);
    assert_eq!(
        (again.job.id.clone(), again.checkpoint_epoch),
        (l.job.id.clone(), 7)
    );
}

#[test]
fn workers_are_alive_while_seen_or_leasing() {
    let (mut s, _, worker) = setup();
    let w = s.worker(&worker).unwrap().clone();
    assert!(s.is_alive(&w, 3 * TIMING.heartbeat_interval_ms));
    assert!(!s.is_alive(&w, 3 * TIMING.heartbeat_interval_ms + 1));
    lease(&mut s, 0, &worker);
    let w = s.worker(&worker).unwrap().clone();
    assert!(s.is_alive(&w, 1_000_000));
}

#[test]
fn last_seen_is_recorded_at_most_once_a_second() {
    let mut s = Scheduler::new(TIMING, test_key());
    let worker = register(&mut s, 0);
    assert!(s.poll(500, &worker).unwrap().changes.is_empty());
    run(&mut s, |s| s.poll(1_500, &worker)).unwrap();
    assert_eq!(s.worker(&worker).unwrap().record.last_seen_ms, 1_500);
}

#[test]
fn lease_ids_lead_to_their_job() {
    assert_eq!(LeaseId("l-12-abc".into()).job(), Some(JobId("abc".into())));
    assert_eq!(LeaseId("l-12-a-b".into()).job(), Some(JobId("a-b".into())));
    for bad in ["", "l-", "l-12", "l-x-abc", "x-12-abc", "l--abc", "l-12-"] {
        assert_eq!(LeaseId(bad.into()).job(), None, "{bad}");
    }
    let s = Scheduler::new(TIMING, test_key());
    let err = s
        .check_upload(&WorkerId::from("w-1"), &LeaseId("garbage".into()))
        .unwrap_err();
    assert!(matches!(err, SchedulerError::StaleLease { .. }));
}

#[test]
fn jobs_made_pending_counts_queue_entries() {
    let s = Scheduler::new(TIMING, test_key());
    assert_eq!(jobs_made_pending(&s.submit(0, SPEC).unwrap().changes), 2);
}

/// Every lease call a worker can make, on `lease` by `worker`: each one's refusal (`None` where
/// it was not refused), with the lease id written as `LEASE` so that refusals compare.
fn lease_refusals(s: &Scheduler, worker: &WorkerId, lease: &LeaseId, job: &JobSpec) -> Vec<String> {
    let checkpoint = Checkpoint {
        epoch: 1,
        sha256: "0".repeat(64).parse().unwrap(),
    };
    let model = KeptModel {
        sha256: "0".repeat(64).parse().unwrap(),
        size: 1,
        epochs: 1,
    };
    [
        s.progress(5, worker, lease, None).map(drop),
        s.complete(5, worker, lease, result_for(job, 0.999))
            .map(drop),
        s.fail(5, worker, lease, "forged", false).map(drop),
        s.release(5, worker, lease, ReleaseReason::Preempted)
            .map(drop),
        s.record_checkpoint(5, worker, lease, checkpoint).map(drop),
        s.checkpoint_of(worker, lease).map(drop),
        s.record_model(5, worker, lease, model).map(drop),
        s.model_source(worker, lease).map(drop),
        s.model_lost(worker, lease).map(drop),
    ]
    .into_iter()
    .map(|answer| match answer {
        Ok(()) => "accepted".to_owned(),
        Err(err) => format!("{:?}: {}", err.code(), err).replace(lease.as_str(), "LEASE"),
    })
    .collect()
}

#[test]
fn another_workers_lease_is_refused_as_one_never_issued() {
    let (mut s, _, honest) = setup();
    let intruder = register(&mut s, 0);
    let l = lease(&mut s, 1, &honest);
    let tag =
        l.id.as_str()
            .strip_prefix("l-")
            .unwrap()
            .split_once('-')
            .unwrap()
            .0;
    assert_eq!(tag.len(), 32, "128 bits: {}", l.id);
    let made_up = LeaseId::issued(1, &l.job.id);
    let before = s.clone();
    let on_live = lease_refusals(&s, &intruder, &l.id, &l.job);
    let on_made_up = lease_refusals(&s, &intruder, &made_up, &l.job);
    let by_honest_on_made_up = lease_refusals(&s, &honest, &made_up, &l.job);
    assert_eq!(on_live, on_made_up, "no oracle");
    assert_eq!(on_made_up, by_honest_on_made_up);
    assert!(
        on_live.iter().all(|r| r
            == "FailedPrecondition: stale lease `LEASE`: it is not a live lease of this worker; drop the job, it is no longer yours"),
        "{on_live:#?}"
    );
    assert_eq!(s, before, "the intruder changed nothing");

    // The honest worker's result is the one kept, credited to it.
    let planned = s
        .complete(2, &honest, &l.id, result_for(&l.job, 0.5))
        .unwrap();
    let recorded = planned.changes.iter().find_map(|c| match c {
        Change::ResultRecorded { result, .. } => Some(result.clone()),
        _ => None,
    });
    let recorded = recorded.expect("a result");
    assert_eq!(
        recorded.worker_id.as_ref().map(WorkerId::as_str),
        Some(honest.as_str())
    );
    assert_eq!(recorded.accuracy.acc_all, Some(0.5));
    s.apply(&planned.changes);
    // Once ended, the lease is refused to the intruder as before, the same way.
    assert_eq!(
        lease_refusals(&s, &intruder, &l.id, &l.job),
        lease_refusals(&s, &intruder, &made_up, &l.job)
    );
}

#[test]
fn a_worker_is_known_by_its_secret_and_forgotten_when_unseen_and_idle() {
    let (mut s, _, busy) = setup();
    let idle = register(&mut s, 0);
    let secret_of = |s: &Scheduler, w: &WorkerId| s.worker(w).unwrap().record.secret_sha256.clone();
    let (busy_secret, idle_secret) = (secret_of(&s, &busy), secret_of(&s, &idle));
    assert_ne!(busy_secret, idle_secret);
    assert_eq!(s.worker_by_secret(&busy_secret), Some(&busy));
    assert_eq!(s.worker_by_secret(&idle_secret), Some(&idle));
    assert_eq!(s.worker_by_secret(&secret_sha256("a guess")), None);
    // A secret already someone's is refused.
    let err = s
        .register_worker(0, "h", vec![], PROTOCOL_VERSION, "t", &idle_secret)
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let l = lease(&mut s, 1, &busy);
    let expiry = TIMING.worker_expiry_ms;
    assert_eq!(s.expire_workers(expiry - 1).answer, 0);
    // Both unseen for the expiry, but the busy one holds a lease (whose heartbeats lapsed
    // only because the clock jumped here): it stays.
    assert_eq!(
        run(&mut s, |s| Ok(s.expire_workers(expiry + 1))).unwrap(),
        1
    );
    assert!(s.worker(&idle).is_none());
    assert_eq!(s.worker_by_secret(&idle_secret), None);
    assert_eq!(s.worker_by_secret(&busy_secret), Some(&busy));
    // A forgotten worker's poll is told to register again.
    assert_eq!(
        s.poll(expiry + 1, &idle).unwrap_err().code(),
        Code::NotFound
    );

    run(&mut s, |s| {
        s.complete(expiry + 2, &busy, &l.id, result_for(&l.job, 0.5))
    })
    .unwrap();
    assert_eq!(
        run(&mut s, |s| Ok(s.expire_workers(2 * expiry + 2))).unwrap(),
        1
    );
    assert!(s.workers().is_empty());
    assert!(s.secrets.is_empty());
}

#[test]
fn a_full_registry_forgets_stale_workers_but_never_live_ones() {
    let mut s = Scheduler::new(TIMING, test_key());
    let oldest = register(&mut s, 0);
    let holder = register(&mut s, 0);
    run(&mut s, |s| s.submit(0, SPEC)).unwrap();
    lease(&mut s, 0, &holder);
    assert_eq!(s.make_room(0, 3), Some(Vec::new()), "room left");
    // Both alive: no room.
    assert_eq!(s.make_room(1, 2), None);
    // Past the alive window the one without a lease makes room; the holder never does.
    let later = 3 * TIMING.heartbeat_interval_ms + 1;
    assert_eq!(
        s.make_room(later, 2),
        Some(vec![Change::WorkerExpired { worker: oldest }])
    );
    assert_eq!(s.make_room(later, 1), None);
}
