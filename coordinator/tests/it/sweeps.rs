//! The user side: submit, status, watch, cancel, retry, results.

use ltsweep_proto::pb;
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn submitting_twice_is_one_sweep_without_duplicate_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let first = submit(&mut sweeps, SPEC).await;
    assert!(first.created);
    assert_eq!(first.jobs, 2);
    let second = submit(&mut sweeps, SPEC).await;
    assert!(!second.created);
    assert_eq!(second.sweep_id, first.sweep_id);

    let status = status(&mut sweeps, &first.sweep_id).await;
    assert_eq!(status.jobs.len(), 2);
    assert_eq!(status.counts.unwrap().total, 2);
    assert_eq!(status.name, "it");
    let listed = sweeps
        .list_sweeps(pb::ListSweepsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sweeps;
    assert_eq!(listed.len(), 1);
    // An empty id is the latest sweep.
    assert_eq!(
        crate::helpers::status(&mut sweeps, "").await.sweep_id,
        first.sweep_id
    );
    coordinator.stop().await;
}

#[tokio::test]
async fn a_bad_spec_is_invalid_argument_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let err = sweeps
        .submit_sweep(pb::SubmitSweepRequest {
            spec_toml: SPEC.replace("max_attempts = 2", "max_attempts = 2\nmax_atempts = 3"),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("max_atempts"), "{}", err.message());

    let err = sweeps
        .submit_sweep(pb::SubmitSweepRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("spec_toml"), "{}", err.message());
    coordinator.stop().await;
}

#[tokio::test]
async fn an_unknown_sweep_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let sweep_id = "nope-12345678".to_owned();
    let codes = [
        sweeps
            .get_sweep(pb::GetSweepRequest {
                with_specs: false,
                sweep_id: sweep_id.clone(),
                ..Default::default()
            })
            .await
            .map(drop),
        sweeps
            .cancel_sweep(pb::CancelSweepRequest {
                sweep_id: sweep_id.clone(),
            })
            .await
            .map(drop),
        sweeps
            .retry_failed(pb::RetryFailedRequest {
                sweep_id: sweep_id.clone(),
            })
            .await
            .map(drop),
        sweeps
            .get_results(pb::GetResultsRequest {
                sweep_id: sweep_id.clone(),
            })
            .await
            .map(drop),
        sweeps
            .watch_sweep(pb::WatchSweepRequest {
                sweep_id: sweep_id.clone(),
            })
            .await
            .map(drop),
        // No sweep at all yet: the latest one is not found either.
        sweeps
            .get_sweep(pb::GetSweepRequest::default())
            .await
            .map(drop),
    ];
    for result in codes {
        let err = result.unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    }
    coordinator.stop().await;
}

#[tokio::test]
async fn a_whole_job_cycle_ends_in_one_result() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    let worker = register(&mut workers).await;

    let lease = lease(&mut workers, &worker).await;
    assert_eq!(lease.attempt, 1);
    assert_eq!(lease.checkpoint_epoch, 0);
    let job = lease.job.clone().unwrap();
    assert_eq!(job.sweep_id, sweep);
    for epoch in 1..=3 {
        let answer = heartbeat(&mut workers, &worker, &lease, Some(epoch))
            .await
            .unwrap();
        assert!(!answer.cancel);
        assert!(answer.deadline_unix_ms >= lease.deadline_unix_ms);
    }
    let running = status(&mut sweeps, &sweep).await;
    let row = running
        .jobs
        .iter()
        .find(|j| j.job_id == job.job_id)
        .unwrap();
    assert_eq!(row.state, pb::JobState::Running as i32);
    assert_eq!((row.epoch, row.worker_id.as_str()), (3, worker.as_str()));

    let listed = workers_of(&mut sweeps).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].alive);
    assert_eq!(listed[0].running_jobs, vec![job.job_id.clone()]);

    complete(&mut workers, &worker, &lease, 0.625)
        .await
        .unwrap();
    // The answer was lost; the worker retries with the same lease: OK, still one result.
    complete(&mut workers, &worker, &lease, 0.625)
        .await
        .unwrap();

    let results = results(&mut sweeps, &sweep).await;
    assert_eq!(results.len(), 1);
    let result = &results[0];
    assert_eq!(result.job_id, job.job_id);
    assert_eq!(result.worker_id, worker);
    assert_eq!(result.attempts, 1);
    assert_eq!(result.accuracy.unwrap().all, Some(0.625));
    let counts = status(&mut sweeps, &sweep).await.counts.unwrap();
    assert_eq!((counts.succeeded, counts.pending), (1, 1));
    coordinator.stop().await;
}

async fn workers_of(sweeps: &mut Sweeps) -> Vec<pb::WorkerInfo> {
    sweeps
        .list_workers(pb::ListWorkersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .workers
}

#[tokio::test]
async fn watch_sends_every_status_then_each_change_until_the_sweep_ends() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    let mut events = sweeps
        .watch_sweep(pb::WatchSweepRequest {
            sweep_id: sweep.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let state = |event: &pb::SweepEvent| event.job.as_ref().unwrap().state;
    for _ in 0..2 {
        let event = events.message().await.unwrap().unwrap();
        assert_eq!(state(&event), pb::JobState::Pending as i32);
        assert_eq!(event.counts.unwrap().pending, 2);
    }

    let worker = register(&mut workers).await;
    let lease = lease(&mut workers, &worker).await;
    let job_id = lease.job.as_ref().unwrap().job_id.clone();
    let event = events.message().await.unwrap().unwrap();
    assert_eq!(event.job.as_ref().unwrap().job_id, job_id);
    assert_eq!(state(&event), pb::JobState::Running as i32);

    complete(&mut workers, &worker, &lease, 0.5).await.unwrap();
    let event = events.message().await.unwrap().unwrap();
    assert_eq!(state(&event), pb::JobState::Succeeded as i32);
    assert_eq!(event.counts.unwrap().succeeded, 1);

    let cancelled = sweeps
        .cancel_sweep(pb::CancelSweepRequest {
            sweep_id: sweep.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .cancelled;
    assert_eq!(cancelled, 1);
    let event = events.message().await.unwrap().unwrap();
    assert_eq!(state(&event), pb::JobState::Cancelled as i32);
    // Every job is final: the stream ends.
    assert!(events.message().await.unwrap().is_none());
    coordinator.stop().await;
}

#[tokio::test]
async fn cancel_tells_the_worker_and_retry_requeues() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    let worker = register(&mut workers).await;
    let running = lease(&mut workers, &worker).await;

    let cancelled = sweeps
        .cancel_sweep(pb::CancelSweepRequest {
            sweep_id: sweep.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .cancelled;
    assert_eq!(cancelled, 2);
    assert!(
        heartbeat(&mut workers, &worker, &running, None)
            .await
            .unwrap()
            .cancel
    );
    let empty = workers
        .poll_work(pb::PollWorkRequest {
            worker_id: worker.clone(),
            device: "cpu".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(empty.lease.is_none());

    let requeued = sweeps
        .retry_failed(pb::RetryFailedRequest {
            sweep_id: sweep.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .requeued;
    assert_eq!(requeued, 2);
    let status = status(&mut sweeps, &sweep).await;
    assert!(!status.cancelled);
    assert_eq!(status.counts.unwrap().pending, 2);
    coordinator.stop().await;
}

#[tokio::test]
async fn a_watch_cut_by_shutdown_ends_with_unavailable_not_with_success() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    let mut events = sweeps
        .watch_sweep(pb::WatchSweepRequest { sweep_id: sweep })
        .await
        .unwrap()
        .into_inner();
    for _ in 0..2 {
        events.message().await.unwrap().unwrap();
    }
    let stopping = tokio::spawn(coordinator.stop());
    let err = events.message().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    stopping.await.unwrap();
}

/// A sweep read in pages of 7 jobs (several pages, the last one short) is the same, job for
/// job and spec for spec, as the sweep read in one page; a raw page says where the next starts.
#[tokio::test]
async fn a_sweep_read_in_pages_is_the_whole_sweep() {
    use ltsweep_domain::SweepId;
    use ltsweep_proto::client::Which;

    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let seeds: Vec<String> = (0..40).map(|s| s.to_string()).collect();
    let spec = SPEC.replace("seeds = [0, 1]", &format!("seeds = [{}]", seeds.join(", ")));
    let api = coordinator.connection().sweep_api();
    let submitted = api.submit(&spec).await.unwrap();
    assert_eq!(submitted.jobs, 40);
    let sweep = SweepId(submitted.sweep.0.clone());

    let mut sweeps = coordinator.sweeps().await;
    let first = sweeps
        .get_sweep(pb::GetSweepRequest {
            sweep_id: sweep.0.clone(),
            with_specs: true,
            page_size: 7,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.jobs.len(), 7);
    assert_eq!(first.next_page_token, "7");
    assert_eq!(first.counts.unwrap().total, 40);

    for with_specs in [false, true] {
        let whole = api
            .clone()
            .with_page_size(1_000)
            .status(Which::Sweep(&sweep), with_specs)
            .await
            .unwrap();
        let paged = api
            .clone()
            .with_page_size(7)
            .status(Which::Sweep(&sweep), with_specs)
            .await
            .unwrap();
        assert_eq!(whole.jobs.len(), 40);
        assert_eq!(whole.jobs.iter().all(|j| j.spec.is_some()), with_specs);
        assert_eq!(paged, whole);
        // The latest sweep, asked for without its id, is pinned by the first page.
        let latest = api
            .clone()
            .with_page_size(7)
            .status(Which::Latest, with_specs)
            .await
            .unwrap();
        assert_eq!(latest, whole);
    }

    let bad = sweeps
        .get_sweep(pb::GetSweepRequest {
            sweep_id: sweep.0.clone(),
            with_specs: false,
            page_size: 7,
            page_token: "41".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("page_token"), "{}", bad.message());
    coordinator.stop().await;
}
