//! Tests of the service edge that need its insides: the commit-failure path and the long-poll
//! wake-ups (counted waiters). Everything a client sees is tested over gRPC in `tests/it`.

use std::future::Future;

use pb::sweep_service_server::SweepService;
use pb::worker_service_server::WorkerService;
use tonic::Code;

use super::*;
use crate::scheduler::tests::SPEC;

/// One job.
const ONE_JOB: &str = "name = \"one\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]";

fn coordinator(dir: &std::path::Path) -> Arc<Coordinator> {
    let mut config = CoordinatorConfig::new(dir);
    config.poll_timeout = Duration::from_secs(30);
    Coordinator::open(&config).unwrap()
}

async fn wait_until<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < give_up,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn register(workers: &WorkerApi) -> String {
    workers
        .register_worker(Request::new(pb::RegisterWorkerRequest {
            host: "test".into(),
            devices: vec![],
            protocol_version: ltsweep_proto::PROTOCOL_VERSION,
            version: "t".into(),
            slurm: None,
        }))
        .await
        .unwrap()
        .into_inner()
        .worker_id
}

async fn submit(sweeps: &SweepApi, spec: &str) -> pb::SubmitSweepResponse {
    sweeps
        .submit_sweep(Request::new(pb::SubmitSweepRequest {
            spec_toml: spec.into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

fn spawn_poll(
    workers: &WorkerApi,
    worker_id: &str,
) -> tokio::task::JoinHandle<std::result::Result<Option<pb::Lease>, Status>> {
    let workers = workers.clone();
    let request = pb::PollWorkRequest {
        worker_id: worker_id.into(),
        device: "cpu".into(),
    };
    tokio::spawn(async move {
        let response = workers.poll_work(Request::new(request)).await?;
        Ok(response.into_inner().lease)
    })
}

#[tokio::test]
async fn a_failed_commit_fails_the_call_with_unavailable_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = coordinator(dir.path());
    let sweeps = SweepApi(Arc::clone(&coordinator));
    let before = coordinator.lock().unwrap().scheduler.clone();
    coordinator.lock().unwrap().store.fail_commits();

    let err = sweeps
        .submit_sweep(Request::new(pb::SubmitSweepRequest {
            spec_toml: SPEC.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("ltsweep.db"), "{}", err.message());
    assert_eq!(coordinator.lock().unwrap().scheduler, before);
}

#[tokio::test]
async fn a_waiting_poll_wakes_when_a_job_is_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = coordinator(dir.path());
    let workers = WorkerApi(Arc::clone(&coordinator));
    let worker = register(&workers).await;
    let poll = spawn_poll(&workers, &worker);
    wait_until("the poll waits", || async {
        coordinator.pollers.load(Ordering::SeqCst) == 1
    })
    .await;

    submit(&SweepApi(Arc::clone(&coordinator)), ONE_JOB).await;
    // Far sooner than the 30 s poll timeout, or the test's own timeout fails it.
    let lease = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the poll answered before its timeout")
        .unwrap()
        .unwrap();
    assert!(lease.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_wakes_one_waiting_poll_and_shutdown_ends_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = coordinator(dir.path());
    let workers = WorkerApi(Arc::clone(&coordinator));
    let worker = register(&workers).await;
    let polls: Vec<_> = (0..5).map(|_| spawn_poll(&workers, &worker)).collect();
    wait_until("five polls wait", || async {
        coordinator.pollers.load(Ordering::SeqCst) == 5
    })
    .await;

    submit(&SweepApi(Arc::clone(&coordinator)), ONE_JOB).await;
    wait_until("one poll got the job", || async {
        polls.iter().filter(|p| p.is_finished()).count() == 1
    })
    .await;
    assert_eq!(coordinator.pollers.load(Ordering::SeqCst), 4);

    coordinator.close();
    let mut leased = 0;
    for poll in polls {
        let lease = tokio::time::timeout(Duration::from_secs(10), poll)
            .await
            .expect("polls end at shutdown")
            .unwrap()
            .unwrap();
        leased += usize::from(lease.is_some());
    }
    assert_eq!(leased, 1);
}

#[tokio::test]
async fn a_missing_field_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let workers = WorkerApi(coordinator(dir.path()));
    let err = workers
        .report_progress(Request::new(pb::ReportProgressRequest {
            worker_id: "w-1".into(),
            lease_id: String::new(),
            epoch: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("lease_id"), "{}", err.message());

    let err = workers
        .complete_job(Request::new(pb::CompleteJobRequest {
            worker_id: "w-1".into(),
            lease_id: "l-1-x".into(),
            result: Some(pb::JobResult::default()),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("result.spec"), "{}", err.message());
}
