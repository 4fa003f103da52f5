//! A store blocked for longer than the lease TTL: another process holds SQLite's write lock.
//! Heartbeats, health, reflection and reads (results included) answer meanwhile, no lease
//! expires, and once the lock is gone the job completes on its first attempt.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ltsweep_coordinator::store::DB_FILE;
use ltsweep_proto::pb;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;

use crate::helpers::*;

const ONE_JOB: &str = "name = \"one\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]";
const OTHER: &str = "name = \"other\"\nseeds = [7]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]";

/// Holds `BEGIN EXCLUSIVE` on the state database from a connection of its own until told to
/// let go; answers once the lock is held.
fn hold_write_lock(db: std::path::PathBuf) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (held, is_held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        // The coordinator may be mid-commit: wait for it rather than fail.
        conn.busy_timeout(Duration::from_secs(30)).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        held.send(()).unwrap();
        let _ = released.recv();
        conn.execute_batch("COMMIT").unwrap();
    });
    is_held
        .recv_timeout(Duration::from_secs(60))
        .expect("the write lock is taken");
    (release, holder)
}

async fn serving(health: &mut HealthClient<tonic::transport::Channel>) -> bool {
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "ltsweep.v1.WorkerService".into(),
        })
        .await
        .expect("health answers while the store is blocked")
        .into_inner()
        .status;
    status == ServingStatus::Serving as i32
}

async fn lists_services(
    reflection: &mut ServerReflectionClient<tonic::transport::Channel>,
) -> bool {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection answers while the store is blocked")
        .into_inner();
    responses.message().await.unwrap().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_blocked_longer_than_the_lease_ttl_loses_no_lease() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.lease_ttl = Duration::from_secs(4);
    config.heartbeat_interval = Duration::from_millis(250);
    config.poll_timeout = Duration::from_millis(200);
    let ttl = config.lease_ttl;
    let coordinator = TestCoordinator::start(config).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let mut health = HealthClient::new(coordinator.channel().await);
    let mut reflection = ServerReflectionClient::new(coordinator.channel().await);
    let sweep = submit(&mut sweeps, ONE_JOB).await.sweep_id;
    let worker = register(&mut workers).await;
    let leased = lease(&mut workers, &worker).await;
    assert_eq!(leased.attempt, 1);

    let (release, holder) = hold_write_lock(dir.path().join(DB_FILE));
    // A call that must commit waits for the lock (or fails UNAVAILABLE): the store is
    // really blocked.
    let blocked = tokio::spawn({
        let mut sweeps = sweeps.clone();
        async move {
            sweeps
                .submit_sweep(pb::SubmitSweepRequest {
                    spec_toml: OTHER.into(),
                })
                .await
        }
    });
    // Two lease TTLs under the lock, heartbeating at the worker's pace (sixteen beats a
    // TTL, so a loaded machine that delays a few loses nothing). The loop counts its own
    // heartbeats rather than trusting a sleep, so a loaded machine only makes it slower.
    let held_since = Instant::now();
    let mut beats = 0;
    while held_since.elapsed() < 2 * ttl || beats < 8 {
        let answer = heartbeat(&mut workers, &worker, &leased, None)
            .await
            .expect("heartbeats are answered while the store is blocked");
        assert!(!answer.cancel);
        beats += 1;
        assert!(serving(&mut health).await);
        assert!(lists_services(&mut reflection).await);
        let listed = workers_of(&mut sweeps).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].running_jobs.len(), 1, "{listed:?}");
        let counts = status(&mut sweeps, &sweep).await.counts.unwrap();
        assert_eq!((counts.running, counts.pending), (1, 0), "{counts:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if blocked.is_finished() {
        let err = blocked
            .await
            .unwrap()
            .expect_err("no commit while the lock is held");
        assert_eq!(err.code(), Code::Unavailable);
    }
    release.send(()).unwrap();
    holder.join().unwrap();

    // The store is back: the job completes with its first lease. A call may still meet the
    // tail of the stall (UNAVAILABLE): a worker retries it.
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        heartbeat(&mut workers, &worker, &leased, None)
            .await
            .expect("the lease is still live");
        match complete(&mut workers, &worker, &leased, 0.75).await {
            Ok(()) => break,
            Err(err) if err.code() == Code::Unavailable && Instant::now() < give_up => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => panic!("the job did not complete after the store came back: {err}"),
        }
    }
    let results = results(&mut sweeps, &sweep).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].attempts, 1);
    let counts = status(&mut sweeps, &sweep).await.counts.unwrap();
    assert_eq!(counts.succeeded, 1, "{counts:?}");
    coordinator.stop().await;

    // And it was committed: a coordinator started afresh on the state dir has it.
    let coordinator = TestCoordinator::start(crate::helpers::config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let results = crate::helpers::results(&mut sweeps, &sweep).await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].attempts, 1);
    coordinator.stop().await;
}

async fn workers_of(sweeps: &mut Sweeps) -> Vec<pb::WorkerInfo> {
    sweeps
        .list_workers(pb::ListWorkersRequest::default())
        .await
        .expect("the worker list answers while the store is blocked")
        .into_inner()
        .workers
}

/// Reports read results on a connection of their own, so they stream while a commit waits; and
/// they come in grid order whatever order the jobs finished in.
#[tokio::test]
async fn results_stream_in_grid_order_while_the_store_is_blocked() {
    const THREE: &str = "name = \"three\"\nseeds = [0, 1, 2]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]";
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let submitted = submit(&mut sweeps, THREE).await;
    let worker = register(&mut workers).await;
    let mut leases = Vec::new();
    for _ in 0..3 {
        leases.push(lease(&mut workers, &worker).await);
    }
    // The last job of the grid finishes first; the middle one not at all.
    complete(&mut workers, &worker, &leases[2], 0.25)
        .await
        .unwrap();
    complete(&mut workers, &worker, &leases[0], 0.5)
        .await
        .unwrap();
    let job_of = |l: &pb::Lease| l.job.as_ref().unwrap().job_id.clone();

    let (release, holder) = hold_write_lock(dir.path().join(DB_FILE));
    let read = results(&mut sweeps, &submitted.sweep_id).await;
    release.send(()).unwrap();
    holder.join().unwrap();
    let ids: Vec<String> = read.iter().map(|r| r.job_id.clone()).collect();
    // Leases are handed out in grid order.
    assert_eq!(ids, vec![job_of(&leases[0]), job_of(&leases[2])]);
    coordinator.stop().await;
}
