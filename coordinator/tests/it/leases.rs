//! The worker side: fencing of stale leases, long polls, failures, restarts.

use std::time::Duration;

use ltsweep_proto::pb;
use tonic::Code;

use crate::helpers::*;

const ONE_JOB: &str = "name = \"one\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]";

#[tokio::test]
async fn an_expired_lease_leased_again_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut short = config(dir.path());
    short.lease_ttl = Duration::from_millis(400);
    short.heartbeat_interval = Duration::from_millis(100);
    short.poll_timeout = Duration::from_millis(200);
    let coordinator = TestCoordinator::start(short).await;
    let mut sweeps = coordinator.sweeps().await;
    let (mut workers, mut fast_workers) =
        (coordinator.workers().await, coordinator.workers().await);
    let sweep = submit(&mut sweeps, ONE_JOB).await.sweep_id;
    let slow = register(&mut workers).await;
    let fast = register(&mut fast_workers).await;
    let (slow_secret, fast_secret) = (workers.secret(), fast_workers.secret());

    let old = lease(&mut workers, &slow).await;
    // No heartbeat: the lease expires and the job returns to the queue.
    wait_until("the lease expires", || {
        let mut sweeps = sweeps.clone();
        let sweep = sweep.clone();
        async move { status(&mut sweeps, &sweep).await.counts.unwrap().pending == 1 }
    })
    .await;
    // The rest of the test takes as long as it takes: the same state under a 60 s lease, so
    // that the next lease does not also expire while the test looks around.
    coordinator.stop().await;
    let mut long = config(dir.path());
    long.lease_ttl = Duration::from_secs(60);
    let coordinator = TestCoordinator::start(long).await;
    let mut sweeps = coordinator.sweeps().await;
    // Each worker is still known by its secret after the restart.
    let (mut workers, mut fast_workers) =
        (coordinator.workers().await, coordinator.workers().await);
    workers.use_secret(slow_secret);
    fast_workers.use_secret(fast_secret);
    let new = lease(&mut fast_workers, &fast).await;
    assert_eq!(new.job, old.job);
    assert_eq!(new.attempt, 2);
    assert_ne!(new.lease_id, old.lease_id);

    let before = status(&mut sweeps, &sweep).await;
    let err = heartbeat(&mut workers, &slow, &old, Some(4))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("stale lease"), "{}", err.message());
    let err = complete(&mut workers, &slow, &old, 0.9).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = workers
        .fail_job(pb::FailJobRequest {
            worker_id: slow.clone(),
            lease_id: old.lease_id.clone(),
            reason: "late".into(),
            retryable: true,
            epoch: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(status(&mut sweeps, &sweep).await, before);

    // The lease's real holder is unaffected.
    heartbeat(&mut fast_workers, &fast, &new, Some(1))
        .await
        .unwrap();
    complete(&mut fast_workers, &fast, &new, 0.5).await.unwrap();
    let results = results(&mut sweeps, &sweep).await;
    assert_eq!(results.len(), 1);
    assert_eq!(
        (results[0].worker_id.as_str(), results[0].attempts),
        (fast.as_str(), 2)
    );
    coordinator.stop().await;
}

#[tokio::test]
async fn a_long_poll_returns_when_a_job_is_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.poll_timeout = Duration::from_secs(30);
    config.lease_ttl = Duration::from_secs(60);
    let coordinator = TestCoordinator::start(config).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let worker = register(&mut workers).await;

    let poll = tokio::spawn({
        let mut workers = workers.clone();
        async move {
            workers
                .poll_work(pb::PollWorkRequest {
                    worker_id: worker,
                    device: "cpu".into(),
                })
                .await
        }
    });
    submit(&mut sweeps, ONE_JOB).await;
    // Well inside the 30 s poll timeout, whether the poll was already waiting or not.
    let response = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the poll answered before its timeout")
        .unwrap()
        .unwrap()
        .into_inner();
    assert!(response.lease.is_some());
    coordinator.stop().await;
}

#[tokio::test]
async fn retryable_failures_requeue_and_final_ones_fail() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, ONE_JOB).await.sweep_id;
    let worker = register(&mut workers).await;
    let fail = |lease: &pb::Lease, retryable| pb::FailJobRequest {
        worker_id: worker.clone(),
        lease_id: lease.lease_id.clone(),
        reason: "loss is NaN".into(),
        retryable,
        epoch: 12,
    };

    let first = lease(&mut workers, &worker).await;
    workers.fail_job(fail(&first, true)).await.unwrap();
    let second = lease(&mut workers, &worker).await;
    assert_eq!(second.attempt, 2);
    workers.fail_job(fail(&second, false)).await.unwrap();
    // A retried report of the same failure is answered OK.
    workers.fail_job(fail(&second, false)).await.unwrap();

    let status = status(&mut sweeps, &sweep).await;
    let job = &status.jobs[0];
    assert_eq!(job.state, pb::JobState::Failed as i32);
    assert_eq!(job.error, "loss is NaN (after epoch 12)");
    assert_eq!(job.attempts, 2);
    coordinator.stop().await;
}

#[tokio::test]
async fn workers_of_another_protocol_or_unknown_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut workers = coordinator.workers().await;
    let err = workers
        .register_worker(pb::RegisterWorkerRequest {
            host: "old".into(),
            devices: vec![],
            protocol_version: 1,
            version: "9.9".into(),
            slurm: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message()
            .contains("worker speaks protocol 1, this coordinator speaks 3"),
        "{}",
        err.message()
    );

    // Without a secret a call is refused outright; with one no registration answered, the
    // worker is unknown (and registers again).
    let err = workers
        .poll_work(pb::PollWorkRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains(ltsweep_proto::WORKER_SECRET_METADATA),
        "{}",
        err.message()
    );
    workers.use_secret(Some("0".repeat(64)));
    let err = workers
        .poll_work(pb::PollWorkRequest {
            worker_id: "w-404".into(),
            device: "cpu".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let registered = workers
        .register_worker(pb::RegisterWorkerRequest {
            host: "new".into(),
            devices: vec![],
            protocol_version: ltsweep_proto::PROTOCOL_VERSION,
            version: "0.1.0".into(),
            slurm: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(registered.lease_ttl_ms, 5_000);
    assert_eq!(registered.heartbeat_interval_ms, 500);
    assert_eq!(registered.poll_timeout_ms, 300);
    assert_eq!(registered.protocol_version, ltsweep_proto::PROTOCOL_VERSION);
    coordinator.stop().await;
}

#[tokio::test]
async fn a_worker_that_trained_through_a_restart_completes_with_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = first.sweeps().await;
    let mut workers = first.workers().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    let worker = register(&mut workers).await;
    let running = lease(&mut workers, &worker).await;
    heartbeat(&mut workers, &worker, &running, Some(1))
        .await
        .unwrap();
    first.stop().await;

    let secret = workers.secret();
    let second = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = second.sweeps().await;
    // The worker's secret still names it: its identity is in the store.
    let mut workers = second.workers().await;
    workers.use_secret(secret);
    let answer = heartbeat(&mut workers, &worker, &running, Some(2))
        .await
        .unwrap();
    assert!(!answer.cancel);
    complete(&mut workers, &worker, &running, 0.5)
        .await
        .unwrap();
    let status = status(&mut sweeps, &sweep).await;
    assert_eq!(status.counts.unwrap().succeeded, 1);
    assert_eq!(results(&mut sweeps, &sweep).await.len(), 1);
    // The next lease id does not repeat one from before the restart.
    let next = lease(&mut workers, &worker).await;
    assert_ne!(next.lease_id, running.lease_id);
    second.stop().await;
}
