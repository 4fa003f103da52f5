//! Every limit of the coordinator hit over gRPC: refused with a message naming the limit and
//! its flag, and nothing already stored lost.

use ltsweep_coordinator::Limits;
use ltsweep_proto::pb;
use ltsweep_proto::pb::checkpoint_chunk::Part;
use tonic::Code;

use crate::checkpoints::{hex, upload_chunks};
use crate::helpers::*;

/// `jobs` jobs: one plan, seeds 0..jobs.
fn spec_of(name: &str, jobs: usize) -> String {
    let seeds: Vec<String> = (0..jobs).map(|s| s.to_string()).collect();
    format!(
        "name = \"{name}\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{{ comp = \"none\", pc = \"none\" }}]\n",
        seeds.join(", ")
    )
}

fn refused(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, names: &str) {
    let status = result.expect_err("the call is refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(names),
        "`{}` does not name {names}",
        status.message()
    );
}

#[tokio::test]
async fn specs_and_sweeps_past_their_limits_are_refused_and_nothing_stored_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.limits = Limits {
        max_spec_bytes: 4_096,
        max_jobs_per_sweep: 5,
        max_jobs: 8,
        ..Limits::default()
    };
    let coordinator = TestCoordinator::start(config).await;
    let mut sweeps = coordinator.sweeps().await;
    let kept = submit(&mut sweeps, &spec_of("kept", 5)).await;

    let padded = format!("{}# {}\n", spec_of("big", 1), "x".repeat(5_000));
    let submitted = sweeps
        .submit_sweep(pb::SubmitSweepRequest { spec_toml: padded })
        .await;
    refused(submitted, Code::InvalidArgument, "--max-spec-bytes");
    // Far past the limit: refused by the transport, before the coordinator reads it.
    let huge = format!("{}# {}\n", spec_of("huge", 1), "x".repeat(4 << 20));
    let far = sweeps
        .submit_sweep(pb::SubmitSweepRequest { spec_toml: huge })
        .await
        .unwrap_err();
    assert_ne!(far.code(), Code::Ok);

    let submitted = sweeps
        .submit_sweep(pb::SubmitSweepRequest {
            spec_toml: spec_of("wide", 6),
        })
        .await;
    refused(submitted, Code::InvalidArgument, "--max-jobs-per-sweep");
    let submitted = sweeps
        .submit_sweep(pb::SubmitSweepRequest {
            spec_toml: spec_of("more", 4),
        })
        .await;
    refused(submitted, Code::ResourceExhausted, "--max-jobs");
    // The same sweep again adds nothing, so it is no refusal.
    assert!(!submit(&mut sweeps, &spec_of("kept", 5)).await.created);
    submit(&mut sweeps, &spec_of("fits", 3)).await;

    let listed = sweeps
        .list_sweeps(pb::ListSweepsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .sweeps;
    assert_eq!(listed.len(), 2);
    assert_eq!(
        status(&mut sweeps, &kept.sweep_id)
            .await
            .counts
            .unwrap()
            .pending,
        5
    );
    coordinator.stop().await;
}

#[tokio::test]
async fn workers_past_the_limit_and_oversized_fields_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.limits = Limits {
        max_workers: 2,
        ..Limits::default()
    };
    let coordinator = TestCoordinator::start(config).await;
    let (mut workers, mut second) = (coordinator.workers().await, coordinator.workers().await);
    let first = register(&mut workers).await;
    register(&mut second).await;
    let registered = workers
        .register_worker(pb::RegisterWorkerRequest {
            host: "third".into(),
            devices: vec![],
            protocol_version: ltsweep_proto::PROTOCOL_VERSION,
            version: "test".into(),
            slurm: None,
        })
        .await;
    refused(registered, Code::ResourceExhausted, "--max-workers");

    let registered = workers
        .register_worker(pb::RegisterWorkerRequest {
            host: "h".repeat(100_000),
            devices: vec![],
            protocol_version: ltsweep_proto::PROTOCOL_VERSION,
            version: "test".into(),
            slurm: None,
        })
        .await;
    refused(registered, Code::InvalidArgument, "host: 100000 bytes");
    let polled = workers
        .poll_work(pb::PollWorkRequest {
            worker_id: "w".repeat(10_000),
            device: "cpu".into(),
        })
        .await;
    refused(polled, Code::InvalidArgument, "worker_id");
    // The registered workers still work.
    workers
        .poll_work(pb::PollWorkRequest {
            worker_id: first,
            device: "cpu".into(),
        })
        .await
        .unwrap();
    coordinator.stop().await;
}

#[tokio::test]
async fn an_oversize_checkpoint_is_refused_before_a_byte_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.limits = Limits {
        max_checkpoint_bytes: 1 << 20,
        ..Limits::default()
    };
    let coordinator = TestCoordinator::start(config).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    submit(&mut sweeps, SPEC).await;
    let worker = register(&mut workers).await;
    let leased = lease(&mut workers, &worker).await;

    // Announces 2^60 bytes, then sends 4 MiB of them.
    let data = vec![7u8; 4 << 20];
    let mut chunks = upload_chunks(&leased, 1, &data, &hex(&[0; 32]));
    if let Some(Part::Header(header)) = &mut chunks[0].part {
        header.size = 1 << 60;
    }
    let uploaded = workers.upload_checkpoint(tokio_stream::iter(chunks)).await;
    refused(uploaded, Code::ResourceExhausted, "--max-checkpoint-bytes");
    let files = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .count();
    assert_eq!(files, 0, "nothing of the refused upload is on disk");

    // One that fits is stored.
    let data = vec![7u8; 1 << 20];
    let sha = {
        use sha2::Digest;
        hex(&sha2::Sha256::digest(&data))
    };
    workers
        .upload_checkpoint(tokio_stream::iter(upload_chunks(&leased, 1, &data, &sha)))
        .await
        .unwrap();
    coordinator.stop().await;
}

#[tokio::test]
async fn stale_registrations_make_room_for_new_workers_and_live_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.limits = Limits {
        max_workers: 2,
        ..Limits::default()
    };
    let coordinator = TestCoordinator::start(config).await;
    let (mut first, mut second) = (coordinator.workers().await, coordinator.workers().await);
    let first_id = register(&mut first).await;
    register(&mut second).await;
    let third = pb::RegisterWorkerRequest {
        host: "third".into(),
        devices: vec![],
        protocol_version: ltsweep_proto::PROTOCOL_VERSION,
        version: "test".into(),
        slurm: None,
    };
    // Both are alive: the registry is full.
    let mut newcomer = coordinator.workers().await;
    let refused_now = newcomer.register_worker(third.clone()).await;
    refused(refused_now, Code::ResourceExhausted, "--max-workers");
    // Once they stop being seen, the longest-unseen one makes room.
    wait_until("a stale registration makes room", || {
        let newcomer = coordinator.workers();
        let third = third.clone();
        async move {
            let mut newcomer = newcomer.await;
            newcomer.register_worker(third).await.is_ok()
        }
    })
    .await;
    let err = first
        .poll_work(pb::PollWorkRequest {
            worker_id: first_id,
            device: "cpu".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "the forgotten worker registers again"
    );
    let mut sweeps = coordinator.sweeps().await;
    let listed = sweeps
        .list_workers(pb::ListWorkersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.workers.len(), 2);
    coordinator.stop().await;
}
