//! Checkpoint upload and download, checked end to end by SHA-256.

use ltsweep_proto::pb;
use ltsweep_proto::pb::checkpoint_chunk::Part;
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::helpers::*;

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn upload_chunks(
    lease: &pb::Lease,
    epoch: u32,
    data: &[u8],
    sha256: &str,
) -> Vec<pb::CheckpointChunk> {
    let header = pb::CheckpointChunk {
        part: Some(Part::Header(pb::CheckpointHeader {
            lease_id: lease.lease_id.clone(),
            epoch,
            size: data.len() as u64,
            sha256: sha256.into(),
        })),
    };
    std::iter::once(header)
        .chain(data.chunks(300_000).map(|chunk| pb::CheckpointChunk {
            part: Some(Part::Data(chunk.to_vec())),
        }))
        .collect()
}

async fn download(
    workers: &mut Workers,
    lease: &pb::Lease,
) -> Result<(pb::CheckpointHeader, Vec<u8>, usize), tonic::Status> {
    let mut stream = workers
        .download_checkpoint(pb::DownloadCheckpointRequest {
            lease_id: lease.lease_id.clone(),
        })
        .await?
        .into_inner();
    let Some(pb::CheckpointChunk {
        part: Some(Part::Header(header)),
    }) = stream.message().await?
    else {
        panic!("the first chunk is the header");
    };
    let mut data = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.message().await? {
        let Some(Part::Data(bytes)) = chunk.part else {
            panic!("data chunks follow the header");
        };
        data.extend_from_slice(&bytes);
        chunks += 1;
    }
    Ok((header, data, chunks))
}

#[tokio::test]
async fn a_checkpoint_round_trips_and_resumes_the_next_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    submit(&mut sweeps, SPEC).await;
    let worker = register(&mut workers).await;
    let first = lease(&mut workers, &worker).await;

    let err = download(&mut workers, &first).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // 2.5 MiB: three download chunks of at most 1 MiB.
    let data: Vec<u8> = (0..2_621_440u32).map(|i| (i * 31 % 251) as u8).collect();
    let sha = hex(&Sha256::digest(&data));
    let stored = workers
        .upload_checkpoint(tokio_stream::iter(upload_chunks(&first, 10, &data, &sha)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.epoch, 10);

    let (header, bytes, chunks) = download(&mut workers, &first).await.unwrap();
    assert_eq!(
        (header.epoch, header.size, header.sha256.as_str()),
        (10, data.len() as u64, sha.as_str())
    );
    assert_eq!(chunks, 3);
    assert_eq!(hex(&Sha256::digest(&bytes)), sha);
    assert!(bytes == data);

    // The worker loses its GPU; the next attempt starts from the checkpoint.
    workers
        .fail_job(pb::FailJobRequest {
            worker_id: worker.clone(),
            lease_id: first.lease_id.clone(),
            reason: "lost the gpu".into(),
            retryable: true,
            epoch: 10,
        })
        .await
        .unwrap();
    let _other = lease(&mut workers, &worker).await;
    let resumed = lease(&mut workers, &worker).await;
    assert_eq!(resumed.job, first.job);
    assert_eq!(resumed.checkpoint_epoch, 10);
    let (header, bytes, _) = download(&mut workers, &resumed).await.unwrap();
    assert_eq!(header.lease_id, resumed.lease_id);
    assert!(bytes == data);

    // The old lease may neither upload nor download.
    let err = workers
        .upload_checkpoint(tokio_stream::iter(upload_chunks(&first, 11, &data, &sha)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = download(&mut workers, &first).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    coordinator.stop().await;
}

#[tokio::test]
async fn a_corrupt_or_short_upload_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    submit(&mut sweeps, SPEC).await;
    let worker = register(&mut workers).await;
    let lease = lease(&mut workers, &worker).await;
    let data = vec![7u8; 1000];
    let sha = hex(&Sha256::digest(&data));

    let wrong = hex(&Sha256::digest(b"something else"));
    let err = workers
        .upload_checkpoint(tokio_stream::iter(upload_chunks(&lease, 5, &data, &wrong)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);

    let mut short = upload_chunks(&lease, 5, &data, &sha);
    short.pop();
    let err = workers
        .upload_checkpoint(tokio_stream::iter(short))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("size"), "{}", err.message());

    let no_header = vec![pb::CheckpointChunk {
        part: Some(Part::Data(data.clone())),
    }];
    let err = workers
        .upload_checkpoint(tokio_stream::iter(no_header))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("header"), "{}", err.message());

    let err = download(&mut workers, &lease).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    coordinator.stop().await;
}

/// The file names in the checkpoint folder, sorted.
fn checkpoint_files(state_dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(state_dir.join("checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

async fn upload(workers: &mut Workers, lease: &pb::Lease, epoch: u32, data: &[u8]) {
    let sha = hex(&Sha256::digest(data));
    workers
        .upload_checkpoint(tokio_stream::iter(upload_chunks(lease, epoch, data, &sha)))
        .await
        .unwrap();
}

#[tokio::test]
async fn checkpoints_are_kept_only_while_their_job_can_resume() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    let worker = register(&mut workers).await;
    let first = lease(&mut workers, &worker).await;
    let job = first.job.clone().unwrap().job_id;

    // A newer checkpoint takes the place of the older one.
    upload(&mut workers, &first, 1, b"epoch one").await;
    upload(&mut workers, &first, 2, b"epoch two").await;
    let sha = hex(&Sha256::digest(b"epoch two"));
    assert_eq!(checkpoint_files(dir.path()), [format!("{job}-{sha}.ckpt")]);

    // Succeeded: the checkpoint is gone.
    complete(&mut workers, &worker, &first, 0.5).await.unwrap();
    assert!(checkpoint_files(dir.path()).is_empty());

    // Failed for good: gone too.
    let second = lease(&mut workers, &worker).await;
    upload(&mut workers, &second, 1, b"second job").await;
    assert_eq!(checkpoint_files(dir.path()).len(), 1);
    workers
        .fail_job(pb::FailJobRequest {
            worker_id: worker.clone(),
            lease_id: second.lease_id.clone(),
            reason: "diverged".into(),
            retryable: false,
            epoch: 1,
        })
        .await
        .unwrap();
    assert!(checkpoint_files(dir.path()).is_empty());
    assert_eq!(status(&mut sweeps, &sweep).await.counts.unwrap().failed, 1);
    coordinator.stop().await;
}

#[tokio::test]
async fn a_cancelled_sweep_leaves_no_checkpoint_and_a_restart_removes_strays() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, SPEC).await.sweep_id;
    let worker = register(&mut workers).await;
    let running = lease(&mut workers, &worker).await;
    upload(&mut workers, &running, 3, b"running").await;
    assert_eq!(checkpoint_files(dir.path()).len(), 1);
    sweeps
        .cancel_sweep(pb::CancelSweepRequest {
            sweep_id: sweep.clone(),
        })
        .await
        .unwrap();
    assert!(checkpoint_files(dir.path()).is_empty());

    // Retried, leased again, checkpointed: a restart keeps that file and removes a stray.
    sweeps
        .retry_failed(pb::RetryFailedRequest { sweep_id: sweep })
        .await
        .unwrap();
    let again = lease(&mut workers, &worker).await;
    upload(&mut workers, &again, 1, b"resumable").await;
    let kept = checkpoint_files(dir.path());
    assert_eq!(kept.len(), 1);
    coordinator.stop().await;
    std::fs::write(dir.path().join("checkpoints/stray.ckpt"), b"left over").unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    // The server opens its state before it serves: once it answers, the strays are gone.
    let mut sweeps = coordinator.sweeps().await;
    sweeps
        .list_sweeps(pb::ListSweepsRequest::default())
        .await
        .unwrap();
    assert_eq!(checkpoint_files(dir.path()), kept);
    coordinator.stop().await;
}
