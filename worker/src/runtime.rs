//! The worker runtime: registers with a coordinator, long-polls for one job per free slot,
//! trains each job on a blocking thread (never on the async runtime), and meanwhile sends
//! heartbeats on a timer of their own, epoch progress and checkpoints; then completes or fails
//! the job with its lease id.
//!
//! A coordinator that cannot be reached is retried with backoff while training goes on; a
//! refused lease (it expired and the job went elsewhere) drops the job; a completion is retried
//! until the coordinator accepts or refuses it. A preempted worker checkpoints its jobs at the
//! next step and gives their leases back (see [`crate::preempt`]).

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ltsweep_proto::client::{Connection, WorkerClient};
use ltsweep_proto::{DatasetConfig, EpochMetrics, JobSpec, PROTOCOL_VERSION, pb};
use sha2::{Digest, Sha256};
use tch::Device;
use tokio::sync::{mpsc, watch};
use tonic::Code;

mod fuse;
pub use fuse::{AUTO_CUDA, Fuse};

use crate::data::{DataError, LongTailData, longtail};
use crate::pause::DataPause;
use crate::train::{Observer, Outcome, Trainer, device_name};

/// Bytes of checkpoint per streamed message.
const CHUNK: usize = 1 << 20;

/// What the process was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    Run,
    /// No new work; running jobs finish.
    Drain,
    /// No new work; running jobs stop at their next step boundary, upload a checkpoint and
    /// give their leases back as preempted (the attempt does not count).
    Preempt,
    /// Stop now: running jobs are abandoned and their leases given back as preempted, from
    /// the last checkpoint uploaded.
    Now,
}

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub host: String,
    pub devices: Vec<Device>,
    pub slots_per_device: u32,
    /// The folder the spec's data paths are relative to.
    pub data_root: PathBuf,
    /// libtorch threads per job; `None` shares the cores among the slots.
    pub threads_per_job: Option<i32>,
    /// Jobs of one shape a slot leases and trains as one fused array (see [`Fuse`]).
    pub fuse: Fuse,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the coordinator refused this worker: {0}")]
    Refused(String),
}

/// The worker id and the timing the coordinator asked for.
#[derive(Clone, Debug)]
struct Registration {
    worker_id: String,
    heartbeat: Duration,
    poll_timeout: Duration,
}

struct Shared {
    client: WorkerClient,
    config: WorkerConfig,
    threads_per_job: i32,
    registration: tokio::sync::Mutex<Option<Registration>>,
    data: Mutex<HashMap<String, Arc<LongTailData>>>,
    data_pause: DataPause,
    shutdown: watch::Receiver<Shutdown>,
}

/// Runs until drained (or stopped), one task per slot.
pub async fn run(
    connection: &Connection,
    config: WorkerConfig,
    shutdown: watch::Receiver<Shutdown>,
) -> Result<(), RuntimeError> {
    let slots = config.devices.len() as u32 * config.slots_per_device;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let shared = Arc::new(Shared {
        client: connection.worker(),
        threads_per_job: config
            .threads_per_job
            .unwrap_or_else(|| (cores / slots.max(1)).max(1) as i32),
        config,
        registration: tokio::sync::Mutex::new(None),
        data: Mutex::new(HashMap::new()),
        data_pause: DataPause::default(),
        shutdown,
    });
    // Register before the slots start, so a refused worker says so at once.
    shared.registration().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for &device in &shared.config.devices {
        for slot in 0..shared.config.slots_per_device {
            // A fused slot: N lease tasks feeding one fuser.
            let size = shared.config.fuse.size(device);
            let fuser = (size > 1).then(|| fuse::Fuser::start(Arc::clone(&shared), device, size));
            for _ in 0..size {
                tasks.spawn(run_slot(Arc::clone(&shared), device, slot, fuser.clone()));
            }
        }
    }
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Err(err)) => outcome = Err(err),
            Err(err) => tracing::error!(%err, "a slot task failed"),
            Ok(Ok(())) => {}
        }
    }
    outcome
}

impl Shared {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() != Shutdown::Run
    }

    fn stopping_now(&self) -> bool {
        *self.shutdown.borrow() == Shutdown::Now
    }

    fn preempting(&self) -> bool {
        *self.shutdown.borrow() == Shutdown::Preempt
    }

    /// The current registration, registering (again) when there is none.
    async fn registration(&self) -> Result<Registration, RuntimeError> {
        let mut guard = self.registration.lock().await;
        if let Some(registration) = guard.as_ref() {
            return Ok(registration.clone());
        }
        let request = pb::RegisterWorkerRequest {
            host: self.config.host.clone(),
            devices: self
                .config
                .devices
                .iter()
                .map(|&d| pb::Device {
                    name: device_name(d),
                    slots: self.config.slots_per_device,
                })
                .collect(),
            protocol_version: PROTOCOL_VERSION,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            slurm: crate::preempt::slurm_placement(),
        };
        let mut backoff = Backoff::default();
        loop {
            match self.client.clone().register_worker(request.clone()).await {
                Ok(response) => {
                    let r = response.into_inner();
                    let ms = |v: u32| Duration::from_millis(u64::from(v));
                    let registration = Registration {
                        worker_id: r.worker_id,
                        heartbeat: ms(r.heartbeat_interval_ms).max(Duration::from_millis(50)),
                        poll_timeout: ms(r.poll_timeout_ms),
                    };
                    tracing::info!(worker = %registration.worker_id, "registered");
                    crate::preempt::mark_ready();
                    *guard = Some(registration.clone());
                    return Ok(registration);
                }
                Err(status) if is_refusal(&status) => {
                    return Err(RuntimeError::Refused(status.message().to_owned()));
                }
                Err(status) => {
                    if self.stopping() {
                        return Err(RuntimeError::Refused(
                            "stopped before registering".to_owned(),
                        ));
                    }
                    backoff.wait("register", &status).await;
                }
            }
        }
    }

    /// Forgets a registration the coordinator no longer knows (its state was reset).
    async fn forget(&self, worker_id: &str) {
        let mut guard = self.registration.lock().await;
        if guard.as_ref().is_some_and(|r| r.worker_id == worker_id) {
            *guard = None;
        }
    }

    /// The long-tailed data of a job, loaded once per worker and data set.
    fn data(&self, config: &DatasetConfig) -> Result<Arc<LongTailData>, DataError> {
        let key = serde_json::to_string(config).expect("a data set config serialises");
        if let Some(data) = self.data.lock().expect("data cache").get(&key) {
            return Ok(Arc::clone(data));
        }
        let data = Arc::new(longtail::prepare(config, &self.config.data_root)?);
        let mut cache = self.data.lock().expect("data cache");
        // A few data sets at most: enough for a sweep's axes without holding every one.
        if cache.len() >= 4 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&data));
        Ok(data)
    }
}

/// Unauthenticated or another protocol: retrying cannot help.
fn is_refusal(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unauthenticated
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::InvalidArgument
    )
}

async fn run_slot(
    shared: Arc<Shared>,
    device: Device,
    slot: u32,
    fuser: Option<fuse::Fuser>,
) -> Result<(), RuntimeError> {
    let mut shutdown = shared.shutdown.clone();
    let mut backoff = Backoff::default();
    while !shared.stopping() {
        if let Some(until) = shared.data_pause.until() {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let registration = shared.registration().await?;
        let mut request = tonic::Request::new(pb::PollWorkRequest {
            worker_id: registration.worker_id.clone(),
            device: device_name(device),
        });
        request.set_timeout(registration.poll_timeout + Duration::from_secs(10));
        let mut client = shared.client.clone();
        let response = tokio::select! {
            response = client.poll_work(request) => response,
            _ = shutdown.changed() => continue,
        };
        match response {
            Ok(response) => {
                backoff.reset();
                if let Some(lease) = response.into_inner().lease {
                    run_job(&shared, device, &registration, lease, fuser.as_ref()).await;
                }
            }
            Err(status) if status.code() == Code::NotFound => {
                tracing::warn!(worker = %registration.worker_id, "the coordinator does not know this worker; registering again");
                shared.forget(&registration.worker_id).await;
            }
            Err(status) if is_refusal(&status) => {
                return Err(RuntimeError::Refused(status.message().to_owned()));
            }
            Err(status) => backoff.wait("poll for work", &status).await,
        }
    }
    tracing::debug!(device = %device_name(device), slot, "slot stopped");
    Ok(())
}

/// What the training thread tells the async side.
enum Event {
    Epoch(EpochMetrics),
    Checkpoint(u32, Vec<u8>),
}

struct ChannelObserver {
    events: mpsc::UnboundedSender<Event>,
    cancel: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Observer for ChannelObserver {
    fn epoch(&mut self, metrics: &EpochMetrics) {
        let _ = self.events.send(Event::Epoch(metrics.clone()));
    }

    fn checkpoint(&mut self, epoch: u32, bytes: Vec<u8>) -> Result<(), String> {
        self.events
            .send(Event::Checkpoint(epoch, bytes))
            .map_err(|_| "the job's supervisor is gone".to_owned())
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn preempted(&self) -> bool {
        self.shared.preempting()
    }
}

/// A failure of the job itself, and whether another attempt could succeed.
struct JobFailure {
    reason: String,
    retryable: bool,
}

/// One leased job: train it, keep the lease alive, deliver the outcome.
async fn run_job(
    shared: &Arc<Shared>,
    device: Device,
    registration: &Registration,
    lease: pb::Lease,
    fuser: Option<&fuse::Fuser>,
) {
    let mut job = JobRunner {
        shared: Arc::clone(shared),
        worker_id: registration.worker_id.clone(),
        lease_id: lease.lease_id.clone(),
        cancel: Arc::new(AtomicBool::new(false)),
        lost: false,
        cancelled_by_coordinator: false,
        pending: VecDeque::new(),
        checkpoint: None,
    };
    let spec = match lease.job.map(JobSpec::try_from) {
        Some(Ok(spec)) => spec,
        Some(Err(err)) => {
            return job
                .fail(format!("the lease's job is malformed: {err}"), false, 0)
                .await;
        }
        None => {
            return job
                .fail("the lease carries no job".to_owned(), false, 0)
                .await;
        }
    };
    tracing::info!(job = %spec.id, plan = %spec.plan, seed = spec.seed, attempt = lease.attempt, device = %device_name(device), "job started");
    let resume_from = if lease.checkpoint_epoch > 0 {
        match job.download_checkpoint().await {
            Ok(bytes) => Some(bytes),
            Err(err) => {
                tracing::warn!(job = %spec.id, %err, "checkpoint unavailable; starting from scratch");
                None
            }
        }
    } else {
        None
    };

    let (events, mut received) = mpsc::unbounded_channel();
    let observer = ChannelObserver {
        events,
        cancel: Arc::clone(&job.cancel),
        shared: Arc::clone(shared),
    };
    let trainer_shared = Arc::clone(shared);
    let trainer_spec = spec.clone();
    let mut training = match fuser {
        Some(fuser) => fuser.submit(trainer_spec, resume_from, observer),
        None => tokio::task::spawn_blocking(move || {
            train_blocking(
                &trainer_shared,
                &trainer_spec,
                device,
                resume_from,
                observer,
            )
        }),
    };
    let mut heartbeat = tokio::time::interval(registration.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = shared.shutdown.clone();
    let mut events_open = true;
    let outcome = loop {
        tokio::select! {
            joined = &mut training => break joined,
            event = received.recv(), if events_open => match event {
                Some(Event::Epoch(metrics)) => {
                    job.pending.push_back(metrics);
                    job.report().await;
                }
                Some(Event::Checkpoint(epoch, bytes)) => {
                    job.checkpoint = Some((epoch, bytes));
                    job.upload_checkpoint().await;
                }
                None => events_open = false,
            },
            _ = heartbeat.tick() => {
                job.upload_checkpoint().await;
                job.report().await;
            }
            _ = shutdown.changed() => {}
        }
        if job.lost || shared.stopping_now() {
            job.cancel.store(true, Ordering::Relaxed);
        }
    };
    // What the trainer sent last may still wait here, a preemption's checkpoint included.
    while let Ok(event) = received.try_recv() {
        match event {
            Event::Epoch(metrics) => job.pending.push_back(metrics),
            Event::Checkpoint(epoch, bytes) => job.checkpoint = Some((epoch, bytes)),
        }
    }
    if matches!(outcome, Ok(Ok(Outcome::Finished(_)))) {
        // A finished job needs no checkpoint: nothing holds its last epochs back.
        job.checkpoint = None;
    }
    if !job.lost {
        if matches!(outcome, Ok(Ok(Outcome::Preempted { .. }))) {
            job.upload_checkpoint_until_stored().await;
        } else {
            job.upload_checkpoint().await;
        }
        job.report().await;
    }
    if job.lost {
        tracing::warn!(job = %spec.id, lease = %job.lease_id, "the lease was given to another worker; dropping the job");
        return;
    }
    match outcome {
        Ok(Ok(Outcome::Finished(result))) => job.complete(*result).await,
        Ok(Ok(Outcome::Diverged { epoch, reason })) => job.fail(reason, false, epoch).await,
        Ok(Ok(Outcome::Preempted { epoch })) => job.release(epoch).await,
        Ok(Ok(Outcome::Cancelled { epoch } | Outcome::Stopped { epoch })) => {
            if job.cancelled_by_coordinator {
                tracing::info!(job = %spec.id, epoch, "cancelled by the coordinator");
            } else {
                // Stopped at once: not the job's fault either; it goes on from the last
                // checkpoint the coordinator holds.
                job.release(epoch).await;
            }
        }
        Ok(Err(failure)) => job.fail(failure.reason, failure.retryable, 0).await,
        Err(joined) => {
            let reason = match joined.try_into_panic() {
                Ok(payload) => panic_message(payload.as_ref()),
                Err(err) => err.to_string(),
            };
            job.fail(format!("the trainer failed: {reason}"), true, 0)
                .await;
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Runs on a blocking thread: loads the data, builds the trainer, resumes, trains.
fn train_blocking(
    shared: &Shared,
    spec: &JobSpec,
    device: Device,
    resume_from: Option<Vec<u8>>,
    mut observer: ChannelObserver,
) -> Result<Outcome, JobFailure> {
    // OpenMP's thread count is per thread: set it on the thread that trains.
    tch::set_num_threads(shared.threads_per_job);
    let mut trainer = prepare_trainer(shared, spec, device, resume_from)?;
    trainer.run(&mut observer, None).map_err(|err| JobFailure {
        reason: err.to_string(),
        retryable: true,
    })
}

/// Loads the data and builds the job's trainer, resumed from its checkpoint if it has one.
fn prepare_trainer(
    shared: &Shared,
    spec: &JobSpec,
    device: Device,
    resume_from: Option<Vec<u8>>,
) -> Result<Trainer, JobFailure> {
    let data = shared.data(&spec.dataset).map_err(|err| match err {
        // This worker's data is not there: another worker may have it.
        DataError::Missing { .. } | DataError::Io { .. } => {
            let pause = shared.data_pause.missing();
            tracing::error!(%err, ?pause, data_root = %shared.config.data_root.display(), "a job's data is missing; pausing before taking more jobs");
            JobFailure {
                reason: format!(
                    "{err} (on worker host {}, --data-root {}; it takes no job for {}s)",
                    shared.config.host,
                    shared.config.data_root.display(),
                    pause.as_secs()
                ),
                retryable: true,
            }
        }
        err => JobFailure {
            reason: err.to_string(),
            retryable: false,
        },
    })?;
    shared.data_pause.found();
    let mut trainer = Trainer::new(spec, &data, device);
    if let Some(bytes) = resume_from {
        if let Err(err) = trainer.resume(&bytes) {
            tracing::warn!(job = %spec.id, %err, "cannot resume from the checkpoint; starting from scratch");
            trainer = Trainer::new(spec, &data, device);
        } else {
            tracing::info!(job = %spec.id, epoch = trainer.epoch(), "resumed from a checkpoint");
        }
    }
    Ok(trainer)
}

/// The async side of one job: its lease, undelivered progress and checkpoint.
struct JobRunner {
    shared: Arc<Shared>,
    worker_id: String,
    lease_id: String,
    cancel: Arc<AtomicBool>,
    /// The coordinator refused the lease: the job went to another worker.
    lost: bool,
    cancelled_by_coordinator: bool,
    pending: VecDeque<EpochMetrics>,
    checkpoint: Option<(u32, Vec<u8>)>,
}

impl JobRunner {
    /// Sends the undelivered epochs (or a bare heartbeat) until one fails to arrive.
    ///
    /// While a checkpoint waits for its upload, epochs after it are held back: the
    /// coordinator counts the epochs a resumed attempt trains again from the progress it has
    /// seen, so it must never see progress far past the checkpoint it holds.
    async fn report(&mut self) {
        loop {
            let held_back_after = self.checkpoint.as_ref().map(|(epoch, _)| *epoch);
            let epoch = self
                .pending
                .front()
                .filter(|m| held_back_after.is_none_or(|limit| m.epoch <= limit))
                .cloned();
            let heartbeat_only = epoch.is_none();
            let mut request = tonic::Request::new(pb::ReportProgressRequest {
                worker_id: self.worker_id.clone(),
                lease_id: self.lease_id.clone(),
                epoch: epoch.map(Into::into),
            });
            request.set_timeout(Duration::from_secs(10));
            match self.shared.client.clone().report_progress(request).await {
                Ok(response) => {
                    if !heartbeat_only {
                        self.pending.pop_front();
                    }
                    if response.into_inner().cancel {
                        self.cancelled_by_coordinator = true;
                        self.cancel.store(true, Ordering::Relaxed);
                    }
                }
                Err(status)
                    if matches!(status.code(), Code::FailedPrecondition | Code::NotFound) =>
                {
                    self.lost = true;
                    return;
                }
                Err(status) => {
                    tracing::warn!(lease = %self.lease_id, %status, "progress not delivered; will retry");
                    return;
                }
            }
            if heartbeat_only {
                return;
            }
        }
    }

    async fn upload_checkpoint(&mut self) {
        let Some((epoch, bytes)) = self.checkpoint.take() else {
            return;
        };
        let sha256 = hex(&Sha256::digest(&bytes));
        let mut chunks = vec![pb::CheckpointChunk {
            part: Some(pb::checkpoint_chunk::Part::Header(pb::CheckpointHeader {
                lease_id: self.lease_id.clone(),
                epoch,
                size: bytes.len() as u64,
                sha256,
            })),
        }];
        chunks.extend(bytes.chunks(CHUNK).map(|data| pb::CheckpointChunk {
            part: Some(pb::checkpoint_chunk::Part::Data(data.to_vec())),
        }));
        match self
            .shared
            .client
            .clone()
            .upload_checkpoint(tokio_stream::iter(chunks))
            .await
        {
            Ok(_) => tracing::debug!(lease = %self.lease_id, epoch, "checkpoint uploaded"),
            Err(status) if matches!(status.code(), Code::FailedPrecondition | Code::NotFound) => {
                self.lost = true
            }
            Err(status) => {
                tracing::warn!(lease = %self.lease_id, epoch, %status, "checkpoint not uploaded; will retry");
                // Keep it for the next heartbeat unless a newer one arrives first.
                self.checkpoint = Some((epoch, bytes));
            }
        }
    }

    /// Uploads the pending checkpoint, retrying through outages until it is stored, the lease
    /// is lost, or the worker is told to stop at once.
    async fn upload_checkpoint_until_stored(&mut self) {
        let mut shutdown = self.shared.shutdown.clone();
        let mut delay = Duration::from_millis(100);
        loop {
            self.upload_checkpoint().await;
            if self.checkpoint.is_none() || self.lost || self.shared.stopping_now() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn download_checkpoint(&self) -> Result<Vec<u8>, String> {
        let request = pb::DownloadCheckpointRequest {
            lease_id: self.lease_id.clone(),
        };
        let mut stream = self
            .shared
            .client
            .clone()
            .download_checkpoint(request)
            .await
            .map_err(|s| s.message().to_owned())?
            .into_inner();
        let mut header = None;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(|s| s.message().to_owned())? {
            match chunk.part {
                Some(pb::checkpoint_chunk::Part::Header(h)) => {
                    bytes.reserve(h.size as usize);
                    header = Some(h);
                }
                Some(pb::checkpoint_chunk::Part::Data(data)) => bytes.extend_from_slice(&data),
                None => {}
            }
        }
        let header = header.ok_or("the checkpoint stream has no header")?;
        if bytes.len() as u64 != header.size || hex(&Sha256::digest(&bytes)) != header.sha256 {
            return Err("the checkpoint arrived damaged (size or SHA-256 differs)".to_owned());
        }
        Ok(bytes)
    }

    /// Delivers the result, retrying until the coordinator accepts or refuses it.
    async fn complete(&self, result: ltsweep_proto::JobResult) {
        let job_id = result.job_id.clone();
        let request = pb::CompleteJobRequest {
            worker_id: self.worker_id.clone(),
            lease_id: self.lease_id.clone(),
            result: Some(result.into()),
        };
        let delivered = self
            .deliver("complete", || {
                let mut client = self.shared.client.clone();
                let request = request.clone();
                async move { client.complete_job(request).await.map(|_| ()) }
            })
            .await;
        if delivered {
            tracing::info!(job = %job_id, "job completed");
        }
    }

    async fn fail(&self, reason: String, retryable: bool, epoch: u32) {
        tracing::warn!(lease = %self.lease_id, %reason, retryable, "job failed");
        let request = pb::FailJobRequest {
            worker_id: self.worker_id.clone(),
            lease_id: self.lease_id.clone(),
            reason,
            retryable,
            epoch,
        };
        self.deliver("fail", || {
            let mut client = self.shared.client.clone();
            let request = request.clone();
            async move { client.fail_job(request).await.map(|_| ()) }
        })
        .await;
    }

    /// Gives the lease back as preempted: the job is queued again at once, and the attempt
    /// does not count toward its sweep's `max_attempts`.
    async fn release(&self, epoch: u32) {
        let request = pb::ReleaseJobRequest {
            worker_id: self.worker_id.clone(),
            lease_id: self.lease_id.clone(),
            reason: pb::ReleaseReason::Preempted.into(),
            epoch,
        };
        let delivered = self
            .deliver("give the lease back", || {
                let mut client = self.shared.client.clone();
                let request = request.clone();
                async move { client.release_job(request).await.map(|_| ()) }
            })
            .await;
        if delivered {
            tracing::info!(lease = %self.lease_id, epoch, "preempted: lease given back");
        }
    }

    /// Retries a final call through outages; true once the coordinator has accepted it.
    async fn deliver<F, Fut>(&self, what: &str, mut call: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), tonic::Status>>,
    {
        let mut backoff = Backoff::default();
        loop {
            match call().await {
                Ok(()) => return true,
                Err(status) if is_refusal(&status) || status.code() == Code::NotFound => {
                    tracing::warn!(lease = %self.lease_id, %status, "the coordinator refused the {what}; dropping the job");
                    return false;
                }
                Err(status) => {
                    if self.shared.stopping_now() {
                        tracing::warn!(lease = %self.lease_id, "stopping: the {what} is not delivered; the lease will expire");
                        return false;
                    }
                    backoff.wait(what, &status).await;
                }
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exponential backoff from 100 ms to 5 s.
struct Backoff {
    delay: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(100),
            failures: 0,
        }
    }
}

impl Backoff {
    fn reset(&mut self) {
        *self = Self::default();
    }

    async fn wait(&mut self, what: &str, status: &tonic::Status) {
        self.failures += 1;
        // Loud on the first failure and then now and again, not on every retry.
        if self.failures == 1 || self.failures.is_multiple_of(20) {
            tracing::warn!(code = ?status.code(), message = status.message(), failures = self.failures, "cannot {what}; retrying");
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(5));
    }
}
