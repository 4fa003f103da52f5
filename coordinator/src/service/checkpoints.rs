//! Checkpoint streaming: `UploadCheckpoint` and `DownloadCheckpoint` of `WorkerService`.

use std::sync::Arc;

use ltsweep_proto::pb;
use tonic::{Request, Response, Streaming};
use tracing::info;

use super::{BoxStream, Coordinator, RpcResult, identity, uploads};
use crate::committer::{After, Before};
use crate::error::CoordinatorError;
use crate::limits;
use crate::scheduler::{Checkpoint, LeaseId};
use ltsweep_proto::chunks::CheckpointHeader;

/// `UploadCheckpoint`: the file is received and checked, then installed and recorded in one
/// turn, both file steps on the store thread.
pub(super) async fn upload(
    coordinator: &Coordinator,
    request: Request<Streaming<pb::CheckpointChunk>>,
) -> RpcResult<pb::UploadCheckpointResponse> {
    let holder = coordinator.secret_holder(request.metadata())?;
    let mut stream = request.into_inner();
    let uploads::Header {
        header,
        lease,
        sha256,
    } = uploads::header(&mut stream, "checkpoint").await?;
    let worker = identity::lease_caller(holder, "", &lease)?;
    if header.epoch == 0 {
        return Err(
            CoordinatorError::invalid("header.epoch", "count finished epochs from 1").into(),
        );
    }
    let job = coordinator.read(|s| Ok(s.check_upload(&worker, &lease)?))?;
    coordinator.limits.check_upload(header.size)?;
    // Held until this upload is stored or refused: the floor counts it as written meanwhile.
    let _reserved = coordinator.disk.reserve(header.size, "checkpoint")?;
    let data = uploads::data(stream, "checkpoint");
    let received = coordinator
        .checkpoints
        .receive(&lease, header.size, sha256, Box::pin(data))
        .await?;
    let checkpoint = Checkpoint {
        epoch: header.epoch,
        sha256,
    };
    let turn = coordinator.turn().await?;
    let now = coordinator.now_ms();
    let (previous, planned) = coordinator.read(|s| {
        let previous = s.checkpoint_of(&worker, &lease)?.1;
        Ok((
            previous,
            s.record_checkpoint(now, &worker, &lease, checkpoint.clone())?,
        ))
    })?;
    let same_file = previous
        .as_ref()
        .is_some_and(|p| p.sha256 == checkpoint.sha256);
    // In this turn, after the lease check: a superseded upload is never installed. Both
    // file steps run on the store thread.
    let files = Arc::clone(&coordinator.checkpoints);
    let (installed, new) = ((job.clone(), checkpoint.clone()), (job.clone(), checkpoint));
    let before: Before =
        Box::new(move || files.install(received, &installed.0, &installed.1.sha256));
    let files = Arc::clone(&coordinator.checkpoints);
    let after: After = Box::new(move |committed| {
        if same_file {
            return;
        }
        if committed {
            // The previous file is no one's now.
            if let Some(previous) = previous {
                files.remove(&new.0, &previous.sha256);
            }
        } else {
            // The new file is no one's, the previous one still the job's.
            files.remove(&new.0, &new.1.sha256);
        }
    });
    let epoch = coordinator
        .commit(turn, planned, Some(before), Some(after))
        .await?;
    info!(job = %job, epoch, size = header.size, "checkpoint stored");
    Ok(Response::new(pb::UploadCheckpointResponse { epoch }))
}

/// `DownloadCheckpoint`: the job's latest checkpoint, checked against its record, sent from
/// disk in chunks under a stream permit. Only the lease's holder learns whether there is one.
pub(super) async fn download(
    coordinator: &Coordinator,
    request: Request<pb::DownloadCheckpointRequest>,
) -> RpcResult<BoxStream<pb::CheckpointChunk>> {
    let holder = coordinator.secret_holder(request.metadata())?;
    let permit = coordinator.stream_permit(&request)?;
    let lease = LeaseId(limits::short_field(
        request.into_inner().lease_id,
        "lease_id",
    )?);
    let worker = identity::lease_caller(holder, "", &lease)?;
    let (job, checkpoint) = coordinator.read(|s| Ok(s.checkpoint_of(&worker, &lease)?))?;
    let Some(checkpoint) = checkpoint else {
        return Err(CoordinatorError::not_found(
            "checkpoint of job",
            job.to_string(),
            "none was uploaded yet: start from epoch 0",
        )
        .into());
    };
    let stored = coordinator
        .checkpoints
        .open_stored(&job, &checkpoint.sha256)
        .await?;
    let header = CheckpointHeader {
        lease_id: lease.0,
        epoch: checkpoint.epoch,
        size: stored.size(),
        sha256: checkpoint.sha256,
    };
    Ok(Response::new(Box::pin(stored.chunks(&header, permit))))
}
