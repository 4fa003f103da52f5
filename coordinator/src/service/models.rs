//! Kept models: `UploadModel` and `DownloadModel` of `WorkerService` (a finished stage-1 job's
//! weights in, a stage-2 job's starting weights out) and `GetModel` of `SweepService` (a user's
//! copy). They travel in the checkpoint chunks and are stored like checkpoints (see
//! [`crate::stored_files`]), and sent from disk a chunk at a time; which models are kept, and for how long, is the scheduler's (its
//! `graph`).

use std::sync::Arc;

use ltsweep_domain::{JobId, SweepId};
use ltsweep_proto::chunks::CheckpointHeader;
use ltsweep_proto::pb;
use tonic::{Request, Response, Streaming};
use tracing::{info, warn};

use super::{BoxStream, Coordinator, RpcResult, identity, uploads};
use crate::committer::{After, Before};
use crate::error::CoordinatorError;
use crate::limits;
use crate::scheduler::{KeptModel, LeaseId};
use crate::stored_files::CheckpointFiles;

/// `UploadModel`: received and checked like a checkpoint, then installed and recorded in one
/// turn (the replaced model's file goes once that is committed).
pub(super) async fn upload(
    coordinator: &Coordinator,
    request: Request<Streaming<pb::CheckpointChunk>>,
) -> RpcResult<pb::UploadModelResponse> {
    let holder = coordinator.secret_holder(request.metadata())?;
    let mut stream = request.into_inner();
    let uploads::Header {
        header,
        lease,
        sha256,
    } = uploads::header(&mut stream, "model").await?;
    let worker = identity::lease_caller(holder, "", &lease)?;
    let job = coordinator.read(|s| {
        let job = s.check_upload(&worker, &lease)?;
        let keeps = s.job(&job).is_some_and(|j| s.keeps_model(j));
        if !keeps {
            return Err(CoordinatorError::invalid(
                "header.lease_id",
                format!("job {job} keeps no model: complete it without uploading one"),
            ));
        }
        Ok(job)
    })?;
    coordinator.limits.check_upload(header.size)?;
    // Held until this upload is stored or refused: the floor counts it as written meanwhile.
    let _reserved = coordinator.disk.reserve(header.size, "model")?;
    let data = uploads::data(stream, "model");
    let received = coordinator
        .models
        .receive(&lease, header.size, sha256, Box::pin(data))
        .await?;
    let model = KeptModel {
        sha256,
        size: header.size,
        epochs: header.epoch,
    };
    let turn = coordinator.turn().await?;
    let now = coordinator.now_ms();
    let planned =
        coordinator.read(|s| Ok(s.record_model(now, &worker, &lease, model.clone())?))?;
    let same_file = planned
        .answer
        .as_ref()
        .is_some_and(|previous| previous.sha256 == model.sha256);
    let files = Arc::clone(&coordinator.models);
    let installed = (job.clone(), model.sha256);
    let before: Before = Box::new(move || files.install(received, &installed.0, &installed.1));
    let files = Arc::clone(&coordinator.models);
    let new = (job.clone(), model.sha256);
    let after: After = Box::new(move |committed| {
        // The new file is no one's unless the record naming it was committed.
        if !committed && !same_file {
            files.remove(&new.0, &new.1);
        }
    });
    coordinator
        .commit(turn, planned, Some(before), Some(after))
        .await?;
    info!(job = %job, size = model.size, "model stored");
    Ok(Response::new(pb::UploadModelResponse { size: model.size }))
}

/// `DownloadModel`: the model a leased stage-2 job starts from. A model the coordinator cannot
/// give (none recorded, its file gone or damaged) is lost: the stage-1 job is queued to train
/// again and the stage-2 job waits for it, its lease ended. Only the lease's holder gets past
/// the lease check.
pub(super) async fn download(
    coordinator: &Coordinator,
    request: Request<pb::DownloadModelRequest>,
) -> RpcResult<BoxStream<pb::CheckpointChunk>> {
    let holder = coordinator.secret_holder(request.metadata())?;
    let permit = coordinator.stream_permit(&request)?;
    let lease = LeaseId(limits::short_field(
        request.into_inner().lease_id,
        "lease_id",
    )?);
    let worker = identity::lease_caller(holder, "", &lease)?;
    let source = coordinator.read(|s| Ok(s.model_source(&worker, &lease)?))?;
    let read = match &source.model {
        Some(model) => Some(
            coordinator
                .models
                .open_stored(&source.parent, &model.sha256)
                .await
                .map(|stored| (model.clone(), stored)),
        ),
        None => None,
    };
    let (model, stored) = match read {
        Some(Ok(found)) => found,
        Some(Err(error)) if !CheckpointFiles::is_lost(&error) => return Err(error.into()),
        lost => {
            let why = match lost {
                Some(Err(error)) => error.to_string(),
                _ => "none was uploaded".to_owned(),
            };
            let parent = coordinator
                .transact(|s| Ok(s.model_lost(&worker, &lease)?))
                .await?;
            warn!(stage1 = %parent, lease = %lease, %why, "a stage-2 job's model is lost; its stage-1 job trains again");
            return Err(CoordinatorError::not_found(
                "model of stage-1 job",
                parent.to_string(),
                "it is lost and its job is queued to train again; this stage-2 job waits for it and its lease has ended",
            )
            .into());
        }
    };
    let header = CheckpointHeader {
        lease_id: lease.0,
        epoch: model.epochs,
        size: stored.size(),
        sha256: model.sha256,
    };
    Ok(Response::new(Box::pin(stored.chunks(&header, permit))))
}

/// `GetModel`: a job's kept model, for `ltsweep model`. Like every download it holds a stream
/// permit while it is open.
pub(super) async fn get(
    coordinator: &Coordinator,
    request: Request<pb::GetModelRequest>,
) -> RpcResult<BoxStream<pb::CheckpointChunk>> {
    let permit = coordinator.stream_permit(&request)?;
    let request = request.into_inner();
    let sweep = SweepId(limits::short_field(request.sweep_id, "sweep_id")?);
    let job = JobId(limits::short_field(request.job_id, "job_id")?);
    let model = coordinator.read(|s| Ok(s.kept_model(&sweep, &job)?))?;
    let stored = coordinator.models.open_stored(&job, &model.sha256).await?;
    let header = CheckpointHeader {
        lease_id: String::new(),
        epoch: model.epochs,
        size: stored.size(),
        sha256: model.sha256,
    };
    Ok(Response::new(Box::pin(stored.chunks(&header, permit))))
}
