//! The calls a worker makes, in domain types: every request built here and every answer
//! checked here, every failure a [`RemoteError`].

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;

use crate::chunks::{self, CheckpointHeader};
use crate::pb;
use crate::remote::RemoteError;
use crate::{ConvertError, ErrorKind, PROTOCOL_VERSION, WORKER_SECRET_METADATA};
use ltsweep_domain::{EpochMetrics, JobResult, JobSpec, SlurmPlacement};

use super::WorkerClient;
use ltsweep_domain::{LeaseId, WorkerId};

/// How long a progress report may take before it counts as lost (it is a heartbeat too).
const PROGRESS_DEADLINE: Duration = Duration::from_secs(10);
/// How long past the coordinator's poll timeout a long poll may stay unanswered.
const POLL_SLACK: Duration = Duration::from_secs(10);

/// What a worker announces.
#[derive(Clone, Debug)]
pub struct Registration {
    pub host: String,
    /// Each device's name ("cpu", "cuda:N") and its slots.
    pub devices: Vec<(String, u32)>,
    /// The ltsweep version, for `ltsweep workers`.
    pub version: String,
    pub slurm: Option<SlurmPlacement>,
}

/// The coordinator's answer to a registration: the worker's id and the timing it must keep.
#[derive(Clone, Debug)]
pub struct Registered {
    pub worker: WorkerId,
    pub lease_ttl: Duration,
    pub heartbeat: Duration,
    pub poll_timeout: Duration,
}

/// A job leased to this worker.
#[derive(Clone, Debug)]
pub struct Lease {
    pub id: LeaseId,
    pub attempt: u32,
    /// The job, or why this build cannot read it: such a lease is failed, not left to expire.
    pub job: Result<JobSpec, ConvertError>,
    /// The epoch of the job's latest checkpoint the coordinator holds; 0 for none.
    pub checkpoint_epoch: u32,
    /// Upload the final weights ([`WorkerApi::upload_model`]) before completing the job.
    pub keep_model: bool,
    /// Stop after this epoch with a checkpoint of it and give the lease back: a search's rung.
    /// `None`: train to the last epoch.
    pub stop_after: Option<u32>,
}

/// The coordinator's answer to a long poll.
#[derive(Debug)]
pub enum Polled {
    /// A job for the slot.
    Leased(Box<Lease>),
    /// None came up within the poll timeout.
    NoWork,
    /// The coordinator does not know this worker id (it forgot it, or never issued it):
    /// register again.
    UnknownWorker,
}

/// The coordinator's answer to a stage-2 job's request for its stage-1 model.
#[derive(Debug)]
pub enum StageOneModel {
    /// The safetensors bytes, checked against their header's size and SHA-256.
    Model(Vec<u8>),
    /// The model is lost: the coordinator has queued the stage-1 job to train again and ended
    /// this lease, so the stage-2 job waits for it.
    Lost(RemoteError),
}

/// The coordinator's answer to a progress report.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// The sweep was cancelled: stop the job.
    pub cancel: bool,
}

/// Why a job failed, as the worker reports it.
#[derive(Clone, Debug)]
pub struct Failure {
    pub reason: String,
    pub retry: Retry,
    /// The last epoch finished, for a diverged run.
    pub epoch: u32,
}

/// Whether a failed job is worth another attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Another attempt may succeed, here later or on another worker: out of memory, a lost
    /// device, data missing on this worker, a model that could not be fetched. The job goes
    /// back to the queue while its sweep's `max_attempts` allows.
    Transient,
    /// Every attempt would end the same way (a malformed job, a diverged run, a refused
    /// model): the job fails for good.
    Never,
}

/// A worker's typed client; cheap to clone (one channel underneath). Its clones share the
/// latest registration's secret, which every call after [`WorkerApi::register`] carries.
#[derive(Clone, Debug)]
pub struct WorkerApi {
    client: WorkerClient,
    secret: Arc<RwLock<Option<AsciiMetadataValue>>>,
}

impl WorkerApi {
    pub(super) fn new(client: WorkerClient) -> Self {
        Self {
            client,
            secret: Arc::default(),
        }
    }

    /// `message` as a request carrying the registration's secret (none before registering:
    /// the coordinator then refuses the call, as it should).
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let secret = self.secret.read().map_or(None, |secret| secret.clone());
        if let Some(secret) = secret {
            request
                .metadata_mut()
                .insert(WORKER_SECRET_METADATA, secret);
        }
        request
    }

    pub async fn register(&self, registration: &Registration) -> Result<Registered, RemoteError> {
        let request = pb::RegisterWorkerRequest {
            host: registration.host.clone(),
            devices: registration
                .devices
                .iter()
                .map(|(name, slots)| pb::Device {
                    name: name.clone(),
                    slots: *slots,
                })
                .collect(),
            protocol_version: PROTOCOL_VERSION,
            version: registration.version.clone(),
            slurm: registration.slurm.clone().map(Into::into),
        };
        let r = self
            .client
            .clone()
            .register_worker(request)
            .await?
            .into_inner();
        let mut secret = AsciiMetadataValue::try_from(r.worker_secret.as_str()).map_err(|_| {
            RemoteError::Malformed(
                "the registration's worker_secret is not a metadata value: run the same ltsweep version on both".to_owned(),
            )
        })?;
        // Debug prints (of the client, of a request) leave it out.
        secret.set_sensitive(true);
        if let Ok(mut held) = self.secret.write() {
            *held = Some(secret);
        }
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        Ok(Registered {
            worker: WorkerId(r.worker_id),
            lease_ttl: ms(r.lease_ttl_ms),
            heartbeat: ms(r.heartbeat_interval_ms),
            poll_timeout: ms(r.poll_timeout_ms),
        })
    }

    /// Long-polls for a job for a free slot of `device`.
    pub async fn poll(
        &self,
        worker: &WorkerId,
        device: &str,
        poll_timeout: Duration,
    ) -> Result<Polled, RemoteError> {
        let mut request = self.request(pb::PollWorkRequest {
            worker_id: worker.0.clone(),
            device: device.to_owned(),
        });
        request.set_timeout(poll_timeout + POLL_SLACK);
        let lease = match self.client.clone().poll_work(request).await {
            Ok(response) => response.into_inner().lease,
            // The one thing a poll can be refused as NOT_FOUND for: its worker id.
            Err(status) if status.code() == ErrorKind::NotFound.code() => {
                return Ok(Polled::UnknownWorker);
            }
            Err(status) => return Err(status.into()),
        };
        let Some(lease) = lease else {
            return Ok(Polled::NoWork);
        };
        Ok(Polled::Leased(Box::new(Lease {
            id: LeaseId(lease.lease_id),
            attempt: lease.attempt,
            job: lease
                .job
                .ok_or(ConvertError {
                    field: "lease.job",
                    problem: "missing",
                })
                .and_then(JobSpec::try_from),
            checkpoint_epoch: lease.checkpoint_epoch,
            keep_model: lease.keep_model,
            stop_after: (lease.stop_after_epoch > 0).then_some(lease.stop_after_epoch),
        })))
    }

    /// An epoch's metrics, or with `None` a bare heartbeat; extends the lease.
    pub async fn progress(
        &self,
        worker: &WorkerId,
        lease: &LeaseId,
        epoch: Option<&EpochMetrics>,
    ) -> Result<Progress, RemoteError> {
        let mut request = self.request(pb::ReportProgressRequest {
            worker_id: worker.0.clone(),
            lease_id: lease.0.clone(),
            epoch: epoch.cloned().map(Into::into),
        });
        request.set_timeout(PROGRESS_DEADLINE);
        let response = self.client.clone().report_progress(request).await?;
        Ok(Progress {
            cancel: response.into_inner().cancel,
        })
    }

    /// Uploads a checkpoint in the chunk format; answers the epoch the coordinator stored.
    pub async fn upload_checkpoint(
        &self,
        lease: &LeaseId,
        epoch: u32,
        bytes: &[u8],
    ) -> Result<u32, RemoteError> {
        let header = CheckpointHeader::of(lease.as_str(), epoch, bytes);
        // The chunks are copied lazily, one at a time, as the transport takes them.
        let chunks = chunks::chunks(&header, bytes.to_vec());
        let response = self
            .client
            .clone()
            .upload_checkpoint(self.request(tokio_stream::iter(chunks)))
            .await?;
        Ok(response.into_inner().epoch)
    }

    /// Downloads the job's latest checkpoint, checked against its header's size and SHA-256;
    /// answers its epoch and bytes, or `None` when the coordinator holds none. A lease no
    /// longer this worker's is an error that [`RemoteError::is_lost_lease`].
    pub async fn download_checkpoint(
        &self,
        lease: &LeaseId,
    ) -> Result<Option<(u32, Vec<u8>)>, RemoteError> {
        let request = self.request(pb::DownloadCheckpointRequest {
            lease_id: lease.0.clone(),
        });
        let stream = match self.client.clone().download_checkpoint(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == ErrorKind::NotFound.code() => return Ok(None),
            Err(status) => return Err(status.into()),
        };
        let (header, bytes) = chunks::receive(stream).await?;
        Ok(Some((header.epoch, bytes)))
    }

    /// Uploads a finished job's final weights (safetensors) in the checkpoint chunk format,
    /// `epochs` the epochs it trained; answers the size stored.
    pub async fn upload_model(
        &self,
        lease: &LeaseId,
        epochs: u32,
        bytes: &[u8],
    ) -> Result<u64, RemoteError> {
        let header = CheckpointHeader::of(lease.as_str(), epochs, bytes);
        let chunks = chunks::chunks(&header, bytes.to_vec());
        let response = self
            .client
            .clone()
            .upload_model(self.request(tokio_stream::iter(chunks)))
            .await?;
        Ok(response.into_inner().size)
    }

    /// The model of a leased stage-2 job's stage-1 job. A lease no longer this worker's is an
    /// error that [`RemoteError::is_lost_lease`].
    pub async fn download_model(&self, lease: &LeaseId) -> Result<StageOneModel, RemoteError> {
        let request = self.request(pb::DownloadModelRequest {
            lease_id: lease.0.clone(),
        });
        let stream = match self.client.clone().download_model(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == ErrorKind::NotFound.code() => {
                return Ok(StageOneModel::Lost(status.into()));
            }
            Err(status) => return Err(status.into()),
        };
        Ok(StageOneModel::Model(chunks::receive(stream).await?.1))
    }

    /// Delivers the result; idempotent for the same lease.
    pub async fn complete(
        &self,
        worker: &WorkerId,
        lease: &LeaseId,
        result: JobResult,
    ) -> Result<(), RemoteError> {
        let request = self.request(pb::CompleteJobRequest {
            worker_id: worker.0.clone(),
            lease_id: lease.0.clone(),
            result: Some(result.into()),
        });
        self.client.clone().complete_job(request).await?;
        Ok(())
    }

    pub async fn fail(
        &self,
        worker: &WorkerId,
        lease: &LeaseId,
        failure: &Failure,
    ) -> Result<(), RemoteError> {
        let request = self.request(pb::FailJobRequest {
            worker_id: worker.0.clone(),
            lease_id: lease.0.clone(),
            reason: failure.reason.clone(),
            retryable: failure.retry == Retry::Transient,
            epoch: failure.epoch,
        });
        self.client.clone().fail_job(request).await?;
        Ok(())
    }

    /// Gives the lease back as preempted: the job is queued again at once and the attempt
    /// does not count toward `max_attempts`.
    pub async fn release_preempted(
        &self,
        worker: &WorkerId,
        lease: &LeaseId,
        epoch: u32,
    ) -> Result<(), RemoteError> {
        let request = self.request(pb::ReleaseJobRequest {
            worker_id: worker.0.clone(),
            lease_id: lease.0.clone(),
            reason: pb::ReleaseReason::Preempted.into(),
            epoch,
        });
        self.client.clone().release_job(request).await?;
        Ok(())
    }
}
