//! Tests of the service edge that need its insides: the commit-failure path and the long-poll
//! wake-ups (counted waiters). Everything a client sees is tested over gRPC in `tests/it`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::AtomicU64;

use pb::sweep_service_server::SweepService;
use pb::worker_service_server::WorkerService;
use tonic::{Code, Request};

use super::leases::Round;
use super::*;
use crate::scheduler::LeaseId;
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

/// A registered worker: its id, and the secret its calls carry.
#[derive(Clone, Debug)]
struct Registered {
    id: String,
    secret: String,
}

impl Registered {
    /// `message` as this worker sends it.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let secret = self.secret.parse().expect("a hex secret");
        request
            .metadata_mut()
            .insert(ltsweep_proto::WORKER_SECRET_METADATA, secret);
        request
    }
}

async fn register(workers: &WorkerHandlers) -> Registered {
    let answer = workers
        .register_worker(Request::new(pb::RegisterWorkerRequest {
            host: "test".into(),
            devices: vec![],
            protocol_version: ltsweep_proto::PROTOCOL_VERSION,
            version: "t".into(),
            slurm: None,
        }))
        .await
        .unwrap()
        .into_inner();
    Registered {
        id: answer.worker_id,
        secret: answer.worker_secret,
    }
}

async fn submit(sweeps: &SweepHandlers, spec: &str) -> pb::SubmitSweepResponse {
    sweeps
        .submit_sweep(Request::new(pb::SubmitSweepRequest {
            spec_toml: spec.into(),
        }))
        .await
        .unwrap()
        .into_inner()
}

fn spawn_poll(
    workers: &WorkerHandlers,
    worker: &Registered,
) -> tokio::task::JoinHandle<std::result::Result<Option<pb::Lease>, Status>> {
    let workers = workers.clone();
    let request = worker.request(pb::PollWorkRequest {
        worker_id: worker.id.clone(),
        device: "cpu".into(),
    });
    tokio::spawn(async move {
        let response = workers.poll_work(request).await?;
        Ok(response.into_inner().lease)
    })
}

#[tokio::test]
async fn a_failed_commit_fails_the_call_with_unavailable_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = coordinator(dir.path());
    let sweeps = SweepHandlers(Arc::clone(&coordinator));
    let before = coordinator.memory.read().unwrap().clone();
    coordinator.store.with_store(|store| store.fail_commits());

    let err = sweeps
        .submit_sweep(Request::new(pb::SubmitSweepRequest {
            spec_toml: SPEC.into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("ltsweep.db"), "{}", err.message());
    assert_eq!(*coordinator.memory.read().unwrap(), before);
}

#[tokio::test]
async fn a_waiting_poll_wakes_when_a_job_is_submitted() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = coordinator(dir.path());
    let workers = WorkerHandlers(Arc::clone(&coordinator));
    let worker = register(&workers).await;
    let poll = spawn_poll(&workers, &worker);
    wait_until("the poll waits", || async {
        coordinator.memory.pollers.load(Ordering::SeqCst) == 1
    })
    .await;

    submit(&SweepHandlers(Arc::clone(&coordinator)), ONE_JOB).await;
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
    let workers = WorkerHandlers(Arc::clone(&coordinator));
    let worker = register(&workers).await;
    let polls: Vec<_> = (0..5).map(|_| spawn_poll(&workers, &worker)).collect();
    wait_until("five polls wait", || async {
        coordinator.memory.pollers.load(Ordering::SeqCst) == 5
    })
    .await;

    submit(&SweepHandlers(Arc::clone(&coordinator)), ONE_JOB).await;
    wait_until("one poll got the job", || async {
        polls.iter().filter(|p| p.is_finished()).count() == 1
    })
    .await;
    assert_eq!(coordinator.memory.pollers.load(Ordering::SeqCst), 4);

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
    let workers = WorkerHandlers(coordinator(dir.path()));
    let worker = register(&workers).await;
    let err = workers
        .report_progress(worker.request(pb::ReportProgressRequest {
            worker_id: worker.id.clone(),
            lease_id: String::new(),
            epoch: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().starts_with("lease_id"), "{}", err.message());

    let err = workers
        .complete_job(worker.request(pb::CompleteJobRequest {
            worker_id: worker.id.clone(),
            lease_id: "l-1-x".into(),
            result: Some(pb::JobResult::default()),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("result.spec"), "{}", err.message());
}

/// Two jobs.
const TWO_JOBS: &str = "name = \"two\"\nseeds = [0, 1]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]";

/// A coordinator whose clock only the test moves.
fn with_manual_clock(dir: &std::path::Path) -> (Arc<Coordinator>, Arc<AtomicU64>) {
    let config = CoordinatorConfig::new(dir);
    let ms = Arc::new(AtomicU64::new(1_000_000));
    let coordinator =
        Coordinator::open_with_clock(&config, Clock::Manual(Arc::clone(&ms))).unwrap();
    (coordinator, ms)
}

async fn lease_for(workers: &WorkerHandlers, worker: &Registered) -> pb::Lease {
    workers
        .poll_work(worker.request(pb::PollWorkRequest {
            worker_id: worker.id.clone(),
            device: "cpu".into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .lease
        .expect("a pending job")
}

async fn heartbeat(
    workers: &WorkerHandlers,
    worker: &Registered,
    lease: &pb::Lease,
) -> pb::ReportProgressResponse {
    workers
        .report_progress(worker.request(pb::ReportProgressRequest {
            worker_id: worker.id.clone(),
            lease_id: lease.lease_id.clone(),
            epoch: None,
        }))
        .await
        .expect("a heartbeat is answered from memory")
        .into_inner()
}

fn state_of(coordinator: &Coordinator, lease: &pb::Lease) -> ltsweep_domain::JobState {
    let job = LeaseId(lease.lease_id.clone()).job().unwrap();
    coordinator
        .memory
        .read()
        .unwrap()
        .job(&job)
        .unwrap()
        .runtime
        .state
}

/// Waits until the background last-seen commits are done, so the next step starts from a
/// known store health.
async fn settle(coordinator: &Coordinator) {
    wait_until("last-seen commits end", || async {
        coordinator.seen_pending.lock().unwrap().is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_failing_store_loses_no_lease_and_a_dead_worker_still_loses_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator, clock) = with_manual_clock(dir.path());
    let ttl = coordinator.timing.lease_ttl_ms;
    let advance = |ms: u64| clock.fetch_add(ms, Ordering::SeqCst);
    let workers = WorkerHandlers(Arc::clone(&coordinator));
    let sweeps = SweepHandlers(Arc::clone(&coordinator));
    submit(&sweeps, TWO_JOBS).await;
    let (live, dead) = (register(&workers).await, register(&workers).await);
    let live_lease = lease_for(&workers, &live).await;
    let dead_lease = lease_for(&workers, &dead).await;

    // The store stops committing (a full disk would do the same).
    coordinator.store.with_store(|store| store.fail_commits());
    let err = sweeps
        .cancel_sweep(Request::new(pb::CancelSweepRequest {
            sweep_id: live_lease.job.as_ref().unwrap().sweep_id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(coordinator.store.health().failing());

    // Three lease TTLs pass. The live worker's heartbeats are answered all along; the sweeps
    // that run meanwhile renew every lease and expire none.
    for _ in 0..6 {
        advance(ttl / 2);
        let answer = heartbeat(&workers, &live, &live_lease).await;
        assert!(!answer.cancel);
        settle(&coordinator).await;
        let err = coordinator.expiry_round().await.unwrap_err();
        assert_eq!(err.code(), Code::Unavailable);
    }
    assert_eq!(
        state_of(&coordinator, &live_lease),
        ltsweep_domain::JobState::Running
    );
    assert_eq!(
        state_of(&coordinator, &dead_lease),
        ltsweep_domain::JobState::Running
    );

    // The store recovers: the next sweep finds out, and every live lease starts a full TTL.
    coordinator
        .store
        .with_store(|store| store.recover_commits());
    assert_eq!(coordinator.expiry_round().await.unwrap(), Round::Renewed);
    assert!(!coordinator.store.health().failing());

    // From now on a lease without heartbeats expires after one TTL, and only that one.
    advance(ttl / 2);
    heartbeat(&workers, &live, &live_lease).await;
    settle(&coordinator).await;
    assert_eq!(coordinator.expiry_round().await.unwrap(), Round::Expired(0));
    advance(ttl / 2 + 1);
    settle(&coordinator).await;
    assert_eq!(coordinator.expiry_round().await.unwrap(), Round::Expired(1));
    assert_eq!(
        state_of(&coordinator, &dead_lease),
        ltsweep_domain::JobState::Pending
    );
    assert_eq!(
        state_of(&coordinator, &live_lease),
        ltsweep_domain::JobState::Running
    );
    let err = workers
        .report_progress(dead.request(pb::ReportProgressRequest {
            worker_id: dead.id.clone(),
            lease_id: dead_lease.lease_id.clone(),
            epoch: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);

    // The live job's attempt went on undisturbed: leased once.
    let job = LeaseId(live_lease.lease_id.clone()).job().unwrap();
    assert_eq!(
        coordinator
            .memory
            .read()
            .unwrap()
            .job(&job)
            .unwrap()
            .runtime
            .attempts,
        1
    );
}

#[tokio::test]
async fn a_lease_expires_by_the_coordinators_clock_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (coordinator, clock) = with_manual_clock(dir.path());
    let ttl = coordinator.timing.lease_ttl_ms;
    let workers = WorkerHandlers(Arc::clone(&coordinator));
    submit(&SweepHandlers(Arc::clone(&coordinator)), ONE_JOB).await;
    let worker = register(&workers).await;
    let lease = lease_for(&workers, &worker).await;
    assert_eq!(lease.deadline_unix_ms, 1_000_000 + ttl);
    // Just before the deadline nothing expires; just after, the lease does.
    clock.fetch_add(ttl - 1, Ordering::SeqCst);
    assert_eq!(coordinator.expiry_round().await.unwrap(), Round::Expired(0));
    clock.fetch_add(2, Ordering::SeqCst);
    assert_eq!(coordinator.expiry_round().await.unwrap(), Round::Expired(1));
    assert_eq!(
        state_of(&coordinator, &lease),
        ltsweep_domain::JobState::Pending
    );
}

#[tokio::test]
async fn calls_queued_behind_a_failed_group_commit_all_fail_and_memory_returns_to_the_store() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let coordinator = coordinator(dir.path());
    let workers = WorkerHandlers(Arc::clone(&coordinator));
    let sweeps = SweepHandlers(Arc::clone(&coordinator));
    let sweep = submit(&sweeps, TWO_JOBS).await.sweep_id;
    let (first, second) = (register(&workers).await, register(&workers).await);
    settle(&coordinator).await;
    let stored = coordinator.memory.read().unwrap().clone();
    let mut watcher = sweeps
        .watch_sweep(Request::new(pb::WatchSweepRequest {
            sweep_id: sweep.clone(),
        }))
        .await
        .unwrap()
        .into_inner();

    // The store thread waits on the test with commits failing, so both polls are planned,
    // applied and queued before the one commit that fails for both.
    let (gate, held) = std::sync::mpsc::channel::<()>();
    coordinator.store.with_store(move |store| {
        store.fail_commits();
        held.recv().unwrap();
    });
    let polls = [spawn_poll(&workers, &first), spawn_poll(&workers, &second)];
    wait_until("both polls are applied and queued", || async {
        coordinator.read(|s| Ok(s.pending())).unwrap() == 0
    })
    .await;
    gate.send(()).unwrap();
    for poll in polls {
        let err = poll.await.unwrap().unwrap_err();
        assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    }
    // Answered only once memory is the store's again: both jobs pending, no lease counted.
    assert_eq!(*coordinator.memory.read().unwrap(), stored);

    // The watcher saw the leases that never committed, then starts over from the store.
    let mut last = HashMap::new();
    while last.len() < 2
        || last
            .values()
            .any(|&state| state != pb::JobState::Pending as i32)
    {
        let event = tokio::time::timeout(Duration::from_secs(60), watcher.next())
            .await
            .expect("the watcher hears of the reload")
            .unwrap()
            .unwrap();
        let job = event.job.unwrap();
        last.insert(job.job_id, job.state);
    }

    // Once the store commits again, so do calls.
    coordinator
        .store
        .with_store(|store| store.recover_commits());
    lease_for(&workers, &first).await;
}

#[tokio::test]
async fn a_watcher_that_falls_behind_still_ends_with_every_jobs_last_state() {
    use futures::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let coordinator = coordinator(dir.path());
    let sweeps = SweepHandlers(Arc::clone(&coordinator));
    // More jobs than a watcher remembers changes of by id: cancelling them all makes it go
    // over every job again instead.
    let seeds: Vec<String> = (0..300).map(|s| s.to_string()).collect();
    let spec = format!(
        "name = \"many\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{{ comp = \"none\", pc = \"none\" }}]",
        seeds.join(", ")
    );
    let sweep = submit(&sweeps, &spec).await.sweep_id;
    let mut watcher = sweeps
        .watch_sweep(Request::new(pb::WatchSweepRequest {
            sweep_id: sweep.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    let mut last = HashMap::new();
    let first = watcher.next().await.unwrap().unwrap().job.unwrap();
    last.insert(first.job_id, first.state);
    assert_eq!(coordinator.streams.total(), 1);

    sweeps
        .cancel_sweep(Request::new(pb::CancelSweepRequest {
            sweep_id: sweep.clone(),
        }))
        .await
        .unwrap();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(60), watcher.next())
        .await
        .expect("the watcher ends once the sweep is over")
    {
        let job = event.unwrap().job.unwrap();
        last.insert(job.job_id, job.state);
    }
    assert_eq!(last.len(), 300);
    assert!(
        last.values()
            .all(|&state| state == pb::JobState::Cancelled as i32),
        "{last:?}"
    );
    assert_eq!(
        coordinator.streams.total(),
        0,
        "an ended stream frees its slot"
    );
}
