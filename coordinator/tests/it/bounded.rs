//! Bounded state over real gRPC: concurrent uploads held against the free-disk floor together,
//! results checked against their job and bounded in bytes, and the sweep list in pages.

use std::time::Duration;

use ltsweep_coordinator::{Limits, free_disk_bytes};
use ltsweep_proto::pb;
use ltsweep_proto::pb::checkpoint_chunk::Part;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::helpers::*;

/// Opens an upload of a checkpoint announcing `size` bytes and sends its header only; the
/// upload ends, a few bytes short of its size, once `finish` fires. Answers the call's outcome.
fn held_upload(
    workers: &Workers,
    lease: &pb::Lease,
    size: u64,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<pb::UploadCheckpointResponse, tonic::Status>>,
) {
    let (finish, finished) = oneshot::channel::<()>();
    let (chunks, sent) = mpsc::channel(4);
    let header = pb::CheckpointChunk {
        part: Some(Part::Header(pb::CheckpointHeader {
            lease_id: lease.lease_id.clone(),
            epoch: 1,
            size,
            sha256: "0".repeat(64),
        })),
    };
    let mut workers = (**workers).clone();
    let call = tokio::spawn(async move {
        chunks.send(header).await.unwrap();
        tokio::spawn(async move {
            let _ = finished.await;
            let _ = chunks
                .send(pb::CheckpointChunk {
                    part: Some(Part::Data(vec![1, 2, 3])),
                })
                .await;
        });
        workers
            .upload_checkpoint(ReceiverStream::new(sent))
            .await
            .map(tonic::Response::into_inner)
    });
    (finish, call)
}

/// An upload past the reservations was refused naming the floor's flag.
fn refused_at_the_floor(outcome: &Result<pb::UploadCheckpointResponse, tonic::Status>) -> bool {
    matches!(outcome, Err(status) if status.code() == Code::ResourceExhausted
        && status.message().contains("--min-free-disk-bytes"))
}

/// An upload that got past the floor and was then refused for its short data.
fn accepted_then_short(outcome: &Result<pb::UploadCheckpointResponse, tonic::Status>) -> bool {
    matches!(outcome, Err(status) if status.code() == Code::InvalidArgument
        && status.message().contains("header.size"))
}

#[tokio::test]
async fn concurrent_uploads_are_refused_once_their_sizes_together_cross_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    // Four uploads each announcing a fifth of the room above the floor... of 2.5 of them:
    // two fit, the third would pass the floor. The margins (half an upload, gigabytes on most
    // disks) take whatever else the machine writes meanwhile; no byte of them is written.
    let free = free_disk_bytes(dir.path()).unwrap();
    let size = (free / 8).min(8 << 30);
    let room = size * 5 / 2;
    let mut config = config(dir.path());
    config.limits = Limits {
        min_free_disk_bytes: free - room,
        max_checkpoint_bytes: size,
        ..Limits::default()
    };
    config.lease_ttl = Duration::from_secs(120);
    let coordinator = TestCoordinator::start(config).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let many = SPEC.replace("seeds = [0, 1]", "seeds = [0, 1, 2, 3, 4]");
    submit(&mut sweeps, &many).await;
    let worker = register(&mut workers).await;
    let mut leases = Vec::new();
    for _ in 0..5 {
        leases.push(lease(&mut workers, &worker).await);
    }

    let mut held: Vec<_> = leases[..4]
        .iter()
        .map(|lease| held_upload(&workers, lease, size))
        .collect();
    // Whichever two reach the floor first hold it; the other two are refused at once. A
    // refusal means two reservations are held, so the two left have theirs.
    let mut refused = 0;
    let mut waiting = Vec::new();
    let give_up = tokio::time::Instant::now() + Duration::from_secs(60);
    while refused < 2 {
        assert!(
            tokio::time::Instant::now() < give_up,
            "four uploads of {size} bytes each, room for two and a half above the floor: {refused} refused"
        );
        let mut still = Vec::new();
        for (finish, call) in held.drain(..) {
            if call.is_finished() {
                let outcome = call.await.unwrap();
                assert!(refused_at_the_floor(&outcome), "{outcome:?}");
                refused += 1;
            } else {
                still.push((finish, call));
            }
        }
        held = still;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    waiting.append(&mut held);
    assert_eq!(waiting.len(), 2);

    // The two holding the floor were accepted (they end short of their size, refused for
    // that), and their reservations go with them: an upload of the same size fits again.
    for (finish, call) in waiting {
        finish.send(()).unwrap();
        let outcome = call.await.unwrap();
        assert!(accepted_then_short(&outcome), "{outcome:?}");
    }
    let (finish, call) = held_upload(&workers, &leases[4], size);
    finish.send(()).unwrap();
    let outcome = call.await.unwrap();
    assert!(accepted_then_short(&outcome), "{outcome:?}");
    coordinator.stop().await;
}

/// The state dir's bytes (the store with its log, and the file folders).
fn state_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                state_bytes(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

#[tokio::test]
async fn results_that_do_not_fit_their_job_or_the_limit_are_refused_and_keep_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.lease_ttl = Duration::from_secs(120);
    config.limits = Limits {
        max_result_bytes: 1 << 20,
        min_free_disk_bytes: 0,
        ..Limits::default()
    };
    let coordinator = TestCoordinator::start(config).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    let worker = register(&mut workers).await;
    let leased = lease(&mut workers, &worker).await;
    let before = state_bytes(dir.path());

    let complete = |result: pb::JobResult| {
        let mut workers = workers.clone();
        let request = pb::CompleteJobRequest {
            worker_id: worker.clone(),
            lease_id: leased.lease_id.clone(),
            result: Some(result),
        };
        async move { workers.complete_job(request).await }
    };
    let honest = result_for(&leased, 0.5);
    let cases = [
        (
            "a 60 MiB device name (past the worker service's message limit)",
            pb::JobResult {
                device: "x".repeat(60 << 20),
                ..honest.clone()
            },
            None,
        ),
        (
            "a 1.5 MiB device name",
            pb::JobResult {
                device: "x".repeat(3 << 19),
                ..honest.clone()
            },
            Some((Code::InvalidArgument, "--max-result-bytes")),
        ),
        (
            "a 300-byte device name",
            pb::JobResult {
                device: "x".repeat(300),
                ..honest.clone()
            },
            Some((Code::InvalidArgument, "result.device")),
        ),
        (
            "11 classes for a job of 10",
            pb::JobResult {
                num_classes: 11,
                per_class: [honest.per_class.clone(), honest.per_class[..1].to_vec()].concat(),
                confusion: vec![0; 121],
                ..honest.clone()
            },
            Some((Code::InvalidArgument, "result.num_classes")),
        ),
        (
            "an epoch past the job's",
            pb::JobResult {
                epochs: vec![pb::EpochMetrics {
                    epoch: 10_000,
                    ..Default::default()
                }],
                ..honest.clone()
            },
            Some((Code::InvalidArgument, "result.epochs")),
        ),
    ];
    for (what, result, expected) in cases {
        let status = complete(result).await.expect_err(what);
        if let Some((code, names)) = expected {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert!(
                status.message().contains(names),
                "{what}: `{}` does not name {names}",
                status.message()
            );
        }
    }
    assert!(
        results(&mut sweeps, &sweep).await.is_empty(),
        "no refused result is kept"
    );
    let grown = state_bytes(dir.path()).saturating_sub(before);
    assert!(
        grown < 1 << 20,
        "the state dir grew {grown} bytes through refused results"
    );

    // The honest result of the same lease is kept.
    complete(honest).await.unwrap();
    assert_eq!(results(&mut sweeps, &sweep).await.len(), 1);
    coordinator.stop().await;
}

#[tokio::test]
async fn the_sweep_list_comes_in_pages_that_the_typed_client_follows() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut submitted = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        let spec = SPEC.replace("name = \"it\"", &format!("name = \"{name}\""));
        submitted.push(submit(&mut sweeps, &spec).await.sweep_id);
    }

    let mut listed = Vec::new();
    let mut pages = 0;
    let mut page_token = String::new();
    loop {
        let page = sweeps
            .list_sweeps(pb::ListSweepsRequest {
                page_size: 2,
                page_token: page_token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(
            page.sweeps.len() <= 2,
            "{} sweeps on a page",
            page.sweeps.len()
        );
        pages += 1;
        listed.extend(page.sweeps.into_iter().map(|s| s.sweep_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(listed, submitted, "every sweep once, in submission order");

    // A token that names no sweep is refused, naming it.
    let err = sweeps
        .list_sweeps(pb::ListSweepsRequest {
            page_size: 2,
            page_token: "no-such-sweep".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{}", err.message());

    let connection = coordinator.connection();
    let typed: Vec<String> = connection
        .sweep_api()
        .with_page_size(2)
        .sweeps()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id.to_string())
        .collect();
    assert_eq!(typed, submitted);
    coordinator.stop().await;
}
