//! Kept models over real gRPC: a stage-1 job's model uploaded under its lease, downloaded by its
//! stage-2 jobs and by a user, checked by SHA-256; lost, it trains the stage-1 job again;
//! deleted with the sweep.

use ltsweep_proto::pb;
use ltsweep_proto::pb::checkpoint_chunk::Part;
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::checkpoints::{hex, upload_chunks};
use crate::helpers::*;

/// One stage-1 job and its two stage-2 jobs.
const STAGE2_SPEC: &str = r#"
name = "kept"
seeds = [0]
[dataset]
kind = "synthetic"
[losses]
plans = [{}]
[stage2]
method = ["none", "ncm", "posthoc_la"]
"#;

/// The bytes of a stream of chunks, checked against its header.
async fn received(
    stream: Result<tonic::Response<tonic::Streaming<pb::CheckpointChunk>>, tonic::Status>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = stream?.into_inner();
    let Some(pb::CheckpointChunk {
        part: Some(Part::Header(header)),
    }) = stream.message().await?
    else {
        panic!("the first chunk is the header");
    };
    let mut data = Vec::new();
    while let Some(chunk) = stream.message().await? {
        let Some(Part::Data(bytes)) = chunk.part else {
            panic!("data chunks follow the header");
        };
        data.extend_from_slice(&bytes);
    }
    assert_eq!(header.size, data.len() as u64);
    assert_eq!(header.sha256, hex(&Sha256::digest(&data)));
    Ok(data)
}

fn model_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("models"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_model_serves_its_stage2_jobs_and_a_user_and_goes_with_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, STAGE2_SPEC).await.sweep_id;
    let worker = register(&mut workers).await;
    let parent = lease(&mut workers, &worker).await;
    assert!(
        parent.keep_model,
        "a stage-1 job with stage-2 jobs keeps its model"
    );
    let parent_id = parent.job.as_ref().unwrap().job_id.clone();

    // 1.5 MiB of model, in chunks.
    let data: Vec<u8> = (0..1_572_864u32).map(|i| (i * 7 % 253) as u8).collect();
    let sha = hex(&Sha256::digest(&data));
    // A damaged upload is refused and keeps nothing.
    let err = workers
        .upload_model(tokio_stream::iter(upload_chunks(
            &parent,
            6,
            &data,
            &"0".repeat(64),
        )))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    let stored = workers
        .upload_model(tokio_stream::iter(upload_chunks(&parent, 6, &data, &sha)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(
        model_files(dir.path()),
        [format!("{parent_id}-{sha}.safetensors")]
    );
    complete(&mut workers, &worker, &parent, 0.5).await.unwrap();

    // Each stage-2 job downloads it under its own lease.
    let first = lease(&mut workers, &worker).await;
    let second = lease(&mut workers, &worker).await;
    for child in [&first, &second] {
        let spec = child.job.as_ref().unwrap();
        assert_eq!(spec.stage2.as_ref().unwrap().parent_job_id, parent_id);
        assert!(!child.keep_model);
        let bytes = received(
            workers
                .download_model(pb::DownloadModelRequest {
                    lease_id: child.lease_id.clone(),
                })
                .await,
        )
        .await
        .unwrap();
        assert!(bytes == data);
    }
    // A stage-1 lease has no model to download.
    let err = received(
        workers
            .download_model(pb::DownloadModelRequest {
                lease_id: parent.lease_id.clone(),
            })
            .await,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");

    // The user's copy, while it is kept.
    let get = |job: &str| pb::GetModelRequest {
        sweep_id: sweep.clone(),
        job_id: job.into(),
    };
    let bytes = received(sweeps.get_model(get(&parent_id)).await)
        .await
        .unwrap();
    assert!(bytes == data);
    let err = received(sweeps.get_model(get("nosuchjob")).await)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Once every stage-2 job succeeded, a sweep without keep_models lets it go.
    complete(&mut workers, &worker, &first, 0.6).await.unwrap();
    assert_eq!(model_files(dir.path()).len(), 1);
    complete(&mut workers, &worker, &second, 0.7).await.unwrap();
    wait_until("the model file is removed", || async {
        model_files(dir.path()).is_empty()
    })
    .await;
    let err = received(sweeps.get_model(get(&parent_id)).await)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("keep_models = true"),
        "{}",
        err.message()
    );
    coordinator.stop().await;
}

#[tokio::test]
async fn a_lost_model_trains_its_stage1_job_again_and_a_kept_one_goes_with_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let spec = format!("keep_models = true\n{STAGE2_SPEC}");
    let sweep = submit(&mut sweeps, &spec).await.sweep_id;
    let worker = register(&mut workers).await;
    let parent = lease(&mut workers, &worker).await;
    let parent_id = parent.job.as_ref().unwrap().job_id.clone();
    let data = b"model weights".to_vec();
    let sha = hex(&Sha256::digest(&data));
    workers
        .upload_model(tokio_stream::iter(upload_chunks(&parent, 6, &data, &sha)))
        .await
        .unwrap();
    complete(&mut workers, &worker, &parent, 0.5).await.unwrap();

    // The file is lost behind the coordinator's back.
    for name in model_files(dir.path()) {
        std::fs::remove_file(dir.path().join("models").join(name)).unwrap();
    }
    let child = lease(&mut workers, &worker).await;
    let err = received(
        workers
            .download_model(pb::DownloadModelRequest {
                lease_id: child.lease_id.clone(),
            })
            .await,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains(&parent_id), "{}", err.message());
    // The child's lease is over, and the stage-1 job is leased again (its result stays).
    let err = heartbeat(&mut workers, &worker, &child, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let again = lease(&mut workers, &worker).await;
    assert_eq!(again.job.as_ref().unwrap().job_id, parent_id);
    assert!(again.keep_model);
    assert_eq!(
        results(&mut sweeps, &sweep).await.len(),
        0,
        "reported once it succeeds again"
    );
    workers
        .upload_model(tokio_stream::iter(upload_chunks(&again, 6, &data, &sha)))
        .await
        .unwrap();
    complete(&mut workers, &worker, &again, 0.9).await.unwrap();
    let stored = results(&mut sweeps, &sweep).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].accuracy.as_ref().unwrap().all,
        Some(0.5),
        "the first result stays"
    );

    // Its stage-2 jobs run; the model is kept for good, until the sweep is deleted.
    for _ in 0..2 {
        let child = lease(&mut workers, &worker).await;
        complete(&mut workers, &worker, &child, 0.6).await.unwrap();
    }
    assert_eq!(model_files(dir.path()).len(), 1);
    sweeps
        .delete_sweep(pb::DeleteSweepRequest {
            sweep_id: sweep.clone(),
        })
        .await
        .unwrap();
    wait_until("the kept model is removed with its sweep", || async {
        model_files(dir.path()).is_empty()
    })
    .await;
    coordinator.stop().await;
}

/// Two jobs (one plan, two seeds), no stage 2.
const KEPT_SPEC: &str = r#"
name = "kept"
seeds = [0, 1]
[dataset]
kind = "synthetic"
[losses]
plans = [{}]
"#;

#[tokio::test]
async fn a_sweep_that_keeps_its_models_stores_reads_back_and_deletes_them() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let spec = format!("keep_models = true\n{KEPT_SPEC}");
    let sweep = submit(&mut sweeps, &spec).await.sweep_id;
    let worker = register(&mut workers).await;
    let job = lease(&mut workers, &worker).await;
    assert!(
        job.keep_model,
        "a sweep that keeps models asks for the model"
    );
    let job_id = job.job.as_ref().unwrap().job_id.clone();
    // 1.5 MiB of model, in chunks.
    let data: Vec<u8> = (0..1_572_864u32).map(|i| (i * 7 % 253) as u8).collect();
    let sha = hex(&Sha256::digest(&data));
    // A damaged upload is refused and keeps nothing.
    let err = workers
        .upload_model(tokio_stream::iter(upload_chunks(
            &job,
            6,
            &data,
            &"0".repeat(64),
        )))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    assert!(model_files(dir.path()).is_empty());
    let stored = workers
        .upload_model(tokio_stream::iter(upload_chunks(&job, 6, &data, &sha)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!(
        model_files(dir.path()),
        [format!("{job_id}-{sha}.safetensors")]
    );
    complete(&mut workers, &worker, &job, 0.5).await.unwrap();

    let get = |job: &str| pb::GetModelRequest {
        sweep_id: sweep.clone(),
        job_id: job.into(),
    };
    let bytes = received(sweeps.get_model(get(&job_id)).await)
        .await
        .unwrap();
    assert!(bytes == data);
    let err = received(sweeps.get_model(get("nosuchjob")).await)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // The sweep's other job is not done: it has no model yet.
    let other = lease(&mut workers, &worker).await;
    let other_id = other.job.as_ref().unwrap().job_id.clone();
    let err = received(sweeps.get_model(get(&other_id)).await)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("has not succeeded"),
        "{}",
        err.message()
    );
    complete(&mut workers, &worker, &other, 0.5).await.unwrap();

    sweeps
        .delete_sweep(pb::DeleteSweepRequest {
            sweep_id: sweep.clone(),
        })
        .await
        .unwrap();
    wait_until("the kept model is removed with its sweep", || async {
        model_files(dir.path()).is_empty()
    })
    .await;
    coordinator.stop().await;
}

#[tokio::test]
async fn a_sweep_that_keeps_no_models_takes_none() {
    let dir = tempfile::tempdir().unwrap();
    let coordinator = TestCoordinator::start(config(dir.path())).await;
    let mut sweeps = coordinator.sweeps().await;
    let mut workers = coordinator.workers().await;
    let sweep = submit(&mut sweeps, KEPT_SPEC).await.sweep_id;
    let worker = register(&mut workers).await;
    let job = lease(&mut workers, &worker).await;
    assert!(!job.keep_model);
    let data = b"weights".to_vec();
    let sha = hex(&Sha256::digest(&data));
    let err = workers
        .upload_model(tokio_stream::iter(upload_chunks(&job, 6, &data, &sha)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("keeps no model"),
        "{}",
        err.message()
    );
    complete(&mut workers, &worker, &job, 0.5).await.unwrap();
    let job_id = job.job.as_ref().unwrap().job_id.clone();
    let err = received(
        sweeps
            .get_model(pb::GetModelRequest {
                sweep_id: sweep,
                job_id,
            })
            .await,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("keep_models = true"),
        "{}",
        err.message()
    );
    coordinator.stop().await;
}
