//! `WorkerService`: the calls workers make. Checkpoint streaming is in `checkpoints`, models in
//! `models`.

use std::sync::Arc;
use std::time::Duration;

use ltsweep_domain::{EpochMetrics, JobResult};
use ltsweep_proto::pb;
use prost::Message;
use tonic::{Request, Response, Streaming};
use tracing::{debug, info, warn};

use super::{
    BoxStream, Coordinator, PollerGuard, RpcResult, checkpoints, identity, millis_u32, models,
    placement, shut_down,
};
use crate::error::CoordinatorError;
use crate::limits;
use crate::scheduler::{Announcement, DeviceSlots, LeaseId, secret_sha256};
use crate::wire;

/// The calls workers make.
#[derive(Clone, Debug)]
pub(crate) struct WorkerHandlers(pub(crate) Arc<Coordinator>);

#[tonic::async_trait]
impl pb::worker_service_server::WorkerService for WorkerHandlers {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> RpcResult<pb::RegisterWorkerResponse> {
        let req = request.into_inner();
        let names: Vec<String> = req.devices.iter().map(|d| d.name.clone()).collect();
        limits::check_registration(&req.host, &req.version, &names)?;
        let announcement = Announcement {
            devices: req
                .devices
                .into_iter()
                .map(|d| DeviceSlots {
                    name: d.name,
                    slots: d.slots,
                })
                .collect(),
            slurm: placement::slurm_placement(req.slurm)?,
            host: req.host,
            protocol_version: req.protocol_version,
            version: req.version,
        };
        let (host, version) = (announcement.host.clone(), announcement.version.clone());
        // Only its hash is kept: the store's file gives no one a worker's identity.
        let secret = identity::draw_secret();
        let secret_sha256 = secret_sha256(&secret);
        let limits = self.0.limits;
        let now = self.0.now_ms();
        let registration = self
            .0
            .transact(|s| {
                let room = limits.check_workers(s, now)?;
                let mut planned = s.register_placed_worker(now, announcement, &secret_sha256)?;
                planned.changes.splice(0..0, room);
                Ok(planned)
            })
            .await?;
        info!(worker = %registration.worker, %host, %version, "worker registered");
        let timing = registration.timing;
        Ok(Response::new(pb::RegisterWorkerResponse {
            worker_id: registration.worker.0,
            lease_ttl_ms: millis_u32(timing.lease_ttl_ms),
            heartbeat_interval_ms: millis_u32(timing.heartbeat_interval_ms),
            poll_timeout_ms: millis_u32(timing.poll_timeout_ms),
            protocol_version: ltsweep_proto::PROTOCOL_VERSION,
            worker_secret: secret,
        }))
    }

    async fn poll_work(
        &self,
        request: Request<pb::PollWorkRequest>,
    ) -> RpcResult<pb::PollWorkResponse> {
        let worker = self
            .0
            .polling_worker(request.metadata(), &request.get_ref().worker_id)?;
        let coordinator = &self.0;
        let give_up =
            tokio::time::Instant::now() + Duration::from_millis(coordinator.timing.poll_timeout_ms);
        let mut closing = coordinator.closing.subscribe();
        let _waiting = PollerGuard::new(&coordinator.memory.pollers);
        let mut woken = false;
        loop {
            // Registered before looking at the queue, so a job queued after the look still
            // wakes this poll.
            let notified = coordinator.memory.work_available.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = coordinator.now_ms();
            let leased = coordinator
                .transact(|s| Ok(s.poll(now, &worker)?))
                .await
                .inspect_err(|_| {
                    // The wake-up this poll took was meant for a job: pass it on.
                    if woken {
                        coordinator.memory.work_available.notify_one();
                    }
                })?;
            if let Some(lease) = leased {
                debug!(job = %lease.job.id, worker = %worker, lease = %lease.id, attempt = lease.attempt, "job leased");
                return Ok(Response::new(pb::PollWorkResponse {
                    lease: Some(wire::lease(lease)),
                }));
            }
            tokio::select! {
                _ = &mut notified => woken = true,
                _ = tokio::time::sleep_until(give_up) => break,
                _ = shut_down(&mut closing) => break,
            }
        }
        Ok(Response::new(pb::PollWorkResponse { lease: None }))
    }

    async fn report_progress(
        &self,
        request: Request<pb::ReportProgressRequest>,
    ) -> RpcResult<pb::ReportProgressResponse> {
        let holder = self.0.secret_holder(request.metadata())?;
        let req = request.into_inner();
        limits::check_length(&req.worker_id, "worker_id")?;
        let lease = LeaseId(limits::short_field(req.lease_id, "lease_id")?);
        let worker = identity::lease_caller(holder, &req.worker_id, &lease)?;
        let metrics = req
            .epoch
            .map(EpochMetrics::try_from)
            .transpose()
            .map_err(CoordinatorError::from)?;
        if metrics.as_ref().is_some_and(|m| m.epoch == 0) {
            return Err(
                CoordinatorError::invalid("epoch.epoch", "count finished epochs from 1").into(),
            );
        }
        // Renewed in memory first, whether or not the store commits the metrics soon.
        let mut answer = self.0.renew(&worker, &lease)?;
        if let Some(metrics) = metrics.filter(|_| !answer.cancel) {
            let now = self.0.now_ms();
            answer = self
                .0
                .transact(|s| Ok(s.progress(now, &worker, &lease, Some(&metrics))?))
                .await?;
        }
        if answer.cancel {
            info!(lease = %lease, worker = %worker, "told the worker to stop a cancelled job");
        }
        Ok(Response::new(pb::ReportProgressResponse {
            cancel: answer.cancel,
            deadline_unix_ms: answer.deadline_ms,
        }))
    }

    async fn upload_checkpoint(
        &self,
        request: Request<Streaming<pb::CheckpointChunk>>,
    ) -> RpcResult<pb::UploadCheckpointResponse> {
        checkpoints::upload(&self.0, request).await
    }

    type DownloadCheckpointStream = BoxStream<pb::CheckpointChunk>;

    async fn download_checkpoint(
        &self,
        request: Request<pb::DownloadCheckpointRequest>,
    ) -> RpcResult<Self::DownloadCheckpointStream> {
        checkpoints::download(&self.0, request).await
    }

    async fn upload_model(
        &self,
        request: Request<Streaming<pb::CheckpointChunk>>,
    ) -> RpcResult<pb::UploadModelResponse> {
        models::upload(&self.0, request).await
    }

    type DownloadModelStream = BoxStream<pb::CheckpointChunk>;

    async fn download_model(
        &self,
        request: Request<pb::DownloadModelRequest>,
    ) -> RpcResult<Self::DownloadModelStream> {
        models::download(&self.0, request).await
    }

    async fn complete_job(
        &self,
        request: Request<pb::CompleteJobRequest>,
    ) -> RpcResult<pb::CompleteJobResponse> {
        let holder = self.0.secret_holder(request.metadata())?;
        let req = request.into_inner();
        limits::check_length(&req.worker_id, "worker_id")?;
        let bytes = req.encoded_len();
        self.0.limits.check_result_bytes(bytes)?;
        // The store keeps the result as encoded: held against the disk floor until committed.
        let _reserved = self.0.disk.reserve(bytes as u64, "result")?;
        let lease = LeaseId(limits::short_field(req.lease_id, "lease_id")?);
        let worker = identity::lease_caller(holder, &req.worker_id, &lease)?;
        let result = req
            .result
            .ok_or_else(|| CoordinatorError::invalid("result", "missing: send the job's result"))?;
        let result = JobResult::try_from(result).map_err(CoordinatorError::from)?;
        let job = result.job_id.clone();
        let now = self.0.now_ms();
        self.0
            .transact(|s| Ok(s.complete(now, &worker, &lease, result)?))
            .await?;
        debug!(job = %job, worker = %worker, lease = %lease, "job succeeded");
        Ok(Response::new(pb::CompleteJobResponse {}))
    }

    async fn fail_job(
        &self,
        request: Request<pb::FailJobRequest>,
    ) -> RpcResult<pb::FailJobResponse> {
        let holder = self.0.secret_holder(request.metadata())?;
        let req = request.into_inner();
        limits::check_length(&req.worker_id, "worker_id")?;
        let lease = LeaseId(limits::short_field(req.lease_id, "lease_id")?);
        let worker = identity::lease_caller(holder, &req.worker_id, &lease)?;
        let mut reason = if req.reason.is_empty() {
            "the worker gave no reason".to_owned()
        } else {
            limits::cut_reason(req.reason)
        };
        if req.epoch > 0 {
            reason.push_str(&format!(" (after epoch {})", req.epoch));
        }
        let now = self.0.now_ms();
        self.0
            .transact(|s| Ok(s.fail(now, &worker, &lease, &reason, req.retryable)?))
            .await?;
        warn!(lease = %lease, worker = %worker, retryable = req.retryable, reason = %reason, "job attempt failed");
        Ok(Response::new(pb::FailJobResponse {}))
    }

    async fn release_job(
        &self,
        request: Request<pb::ReleaseJobRequest>,
    ) -> RpcResult<pb::ReleaseJobResponse> {
        let holder = self.0.secret_holder(request.metadata())?;
        let req = request.into_inner();
        limits::check_length(&req.worker_id, "worker_id")?;
        let lease = LeaseId(limits::short_field(req.lease_id, "lease_id")?);
        let worker = identity::lease_caller(holder, &req.worker_id, &lease)?;
        let reason = placement::release_reason(req.reason)?;
        let now = self.0.now_ms();
        self.0
            .transact(|s| Ok(s.release(now, &worker, &lease, reason)?))
            .await?;
        info!(lease = %lease, worker = %worker, epoch = req.epoch, ?reason, "lease given back; the job is queued again");
        Ok(Response::new(pb::ReleaseJobResponse {}))
    }
}
