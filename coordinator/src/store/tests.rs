use ltsweep_proto::PROTOCOL_VERSION;
use proptest::prelude::*;
use tonic::Code;

use super::*;
use crate::scheduler::proptests::{Harness, ops, prelude};
use crate::scheduler::tests::{SPEC, TIMING, result_for, test_key, test_secret};
use crate::scheduler::{Announcement, Lease, Planned, Scheduler, SchedulerError, SlurmPlacement};

fn open(dir: &Path) -> Store {
    Store::open(dir, Durability::Normal).expect("a writable temp dir")
}

/// Plans, commits, applies: what the service does under its lock.
fn run<T>(
    store: &mut Store,
    scheduler: &mut Scheduler,
    plan: impl FnOnce(&Scheduler) -> std::result::Result<Planned<T>, SchedulerError>,
) -> Result<T> {
    let planned = plan(scheduler)?;
    store.commit(&planned.changes)?;
    scheduler.apply(&planned.changes);
    Ok(planned.answer)
}

/// The state a restart at `now` must rebuild: the same, with every lease renewed.
fn restarted(scheduler: &Scheduler, now: u64) -> Scheduler {
    let mut expected = scheduler.clone();
    expected.renew_leases(now);
    expected
}

#[test]
fn a_fresh_store_loads_an_empty_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(
        store.load(TIMING, test_key(), 0).unwrap(),
        Scheduler::new(TIMING, test_key())
    );
    assert!(dir.path().join(DB_FILE).exists());
}

#[test]
fn the_state_survives_a_reopen_and_leases_get_fresh_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut s = Scheduler::new(TIMING, test_key());
    run(&mut store, &mut s, |s| s.submit(10, SPEC)).unwrap();
    let worker = run(&mut store, &mut s, |s| {
        s.register_worker(10, "gpu-1", vec![], PROTOCOL_VERSION, "t", &test_secret(s))
    })
    .unwrap()
    .worker;
    let done: Lease = run(&mut store, &mut s, |s| s.poll(20, &worker))
        .unwrap()
        .unwrap();
    run(&mut store, &mut s, |s| {
        s.complete(30, &worker, &done.id, result_for(&done.job, 0.75))
    })
    .unwrap();
    let running: Lease = run(&mut store, &mut s, |s| s.poll(40, &worker))
        .unwrap()
        .unwrap();
    drop(store);

    // The coordinator restarts much later than the lease's deadline.
    let later = 1_000_000;
    let store = open(dir.path());
    let mut loaded = store.load(TIMING, test_key(), later).unwrap();
    assert_eq!(loaded, restarted(&s, later));
    let live = loaded
        .job(&running.job.id)
        .unwrap()
        .runtime
        .lease
        .clone()
        .unwrap();
    assert_eq!(live.id, running.id);
    assert_eq!(live.deadline_ms, later + TIMING.lease_ttl_ms);
    assert_eq!(loaded.counters(), s.counters());
    let mut results = Vec::new();
    store
        .result_reader()
        .read(&loaded.succeeded(&done.job.sweep).unwrap(), |r| {
            results.push(r);
            true
        })
        .unwrap();
    let [result] = results.as_slice() else {
        panic!("one stored result: {results:?}");
    };
    let result = ltsweep_domain::JobResult::try_from(result.clone()).unwrap();
    assert_eq!(result.job_id, done.job.id);
    assert_eq!(result.accuracy.acc_all, Some(0.75));

    // The worker that kept training reports and completes with its old lease.
    let mut store = store;
    run(&mut store, &mut loaded, |s| {
        s.progress(later + 1, &worker, &running.id, None)
    })
    .unwrap();
    run(&mut store, &mut loaded, |s| {
        s.complete(
            later + 2,
            &worker,
            &running.id,
            result_for(&running.job, 0.5),
        )
    })
    .unwrap();
    assert_eq!(
        store.load(TIMING, test_key(), later).unwrap(),
        restarted(&loaded, later)
    );
}

#[test]
fn a_failed_commit_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut s = Scheduler::new(TIMING, test_key());
    run(&mut store, &mut s, |s| s.submit(0, SPEC)).unwrap();
    let before = s.clone();

    store.fail_commits();
    let err = run(&mut store, &mut s, |s| {
        s.register_worker(1, "h", vec![], PROTOCOL_VERSION, "t", &test_secret(s))
    })
    .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.to_string().contains(DB_FILE), "{err}");
    assert_eq!(s, before);
    drop(store);
    // Nothing of it reached the file either.
    assert_eq!(
        open(dir.path()).load(TIMING, test_key(), 0).unwrap(),
        before
    );
}

#[test]
fn at_most_one_result_per_job_even_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut s = Scheduler::new(TIMING, test_key());
    run(&mut store, &mut s, |s| s.submit(0, SPEC)).unwrap();
    let worker = run(&mut store, &mut s, |s| {
        s.register_worker(0, "h", vec![], PROTOCOL_VERSION, "t", &test_secret(s))
    })
    .unwrap()
    .worker;
    let lease = run(&mut store, &mut s, |s| s.poll(0, &worker))
        .unwrap()
        .unwrap();
    let planned = s
        .complete(1, &worker, &lease.id, result_for(&lease.job, 0.5))
        .unwrap();
    store.commit(&planned.changes).unwrap();
    let result = planned
        .changes
        .iter()
        .find(|c| matches!(c, Change::ResultRecorded { .. }))
        .cloned()
        .unwrap();
    let err = store.commit(&[result]).unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
}

#[test]
fn an_unusable_state_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let state_dir = file.join("state");
    let err = Store::open(&state_dir, Durability::Normal).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&state_dir.display().to_string()),
        "{message}"
    );
    assert!(message.contains("cannot create the state dir"), "{message}");
}

#[test]
fn full_durability_opens_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), Durability::Full).unwrap();
    let mut s = Scheduler::new(TIMING, test_key());
    run(&mut store, &mut s, |s| s.submit(0, SPEC)).unwrap();
    assert_eq!(store.load(TIMING, test_key(), 0).unwrap(), s);
}

#[test]
fn a_large_sweep_is_one_transaction_and_loads_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut s = Scheduler::new(TIMING, test_key());
    let seeds: Vec<String> = (0..250).map(|i| i.to_string()).collect();
    let spec = format!(
        "name = \"big\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"",
        seeds.join(", ")
    );
    let answer = run(&mut store, &mut s, |s| s.submit(0, &spec)).unwrap();
    assert_eq!(answer.jobs, 9 * 250);
    let loaded = store.load(TIMING, test_key(), 0).unwrap();
    assert_eq!(loaded, s);
    assert_eq!(loaded.pending(), 9 * 250);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever happened, the state rebuilt from the file equals the one in memory (with
    /// leases renewed, as on a restart).
    #[test]
    fn a_state_rebuilt_from_the_store_equals_memory(ops in ops(40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut harness = Harness::new(Some(open(dir.path())));
        for op in prelude().iter().chain(&ops) {
            harness.step(op)?;
            let store = harness.store.as_ref().unwrap();
            let loaded = store.load(TIMING, test_key(), harness.now).unwrap();
            prop_assert_eq!(loaded, restarted(&harness.scheduler, harness.now));
        }
    }
}

#[test]
fn a_workers_slurm_placement_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut s = Scheduler::new(TIMING, test_key());
    let placement = SlurmPlacement {
        job_id: "4242".into(),
        array_task_id: "3".into(),
    };
    let placed = run(&mut store, &mut s, |s| {
        let announcement = Announcement {
            host: "node-7".into(),
            devices: vec![],
            protocol_version: PROTOCOL_VERSION,
            version: "t".into(),
            slurm: Some(placement.clone()),
        };
        s.register_placed_worker(10, announcement, &test_secret(s))
    })
    .unwrap()
    .worker;
    let plain = run(&mut store, &mut s, |s| {
        s.register_worker(11, "laptop", vec![], PROTOCOL_VERSION, "t", &test_secret(s))
    })
    .unwrap()
    .worker;
    drop(store);
    let loaded = open(dir.path()).load(TIMING, test_key(), 20).unwrap();
    assert_eq!(loaded, restarted(&s, 20));
    assert_eq!(
        loaded.worker(&placed).unwrap().record.slurm,
        Some(placement)
    );
    assert_eq!(loaded.worker(&plain).unwrap().record.slurm, None);
}
