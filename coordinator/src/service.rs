//! The gRPC edge: `WorkerService` and `SweepService` over one shared [`Coordinator`].
//!
//! Every handler decodes and checks its request (a missing field is `INVALID_ARGUMENT` naming
//! it), then runs one scheduler operation under one mutex: plan → commit → apply. The mutex is
//! never held across an `.await`: long polls wait on a [`Notify`] outside it, and streams are
//! fed by tasks that take it only for short snapshots.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use ltsweep_proto::{EpochMetrics, JobResult, SweepId, pb};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::checkpoint::{self, CheckpointFiles};
use crate::config::CoordinatorConfig;
use crate::error::CoordinatorError;
use crate::limits::{self, Limits};
use crate::scheduler::{
    Change, Checkpoint, DeviceSlots, LeaseId, Planned, Scheduler, Submission, Timing, WorkerId,
    jobs_made_pending,
};
use crate::store::Store;
use crate::wire;
use ltsweep_proto::checkpoint::CheckpointHeader;

type Result<T> = std::result::Result<T, CoordinatorError>;
type RpcResult<T> = std::result::Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

/// Job events kept for slow watchers before they must catch up from a fresh snapshot.
const EVENT_BUFFER: usize = 16_384;

/// The scheduler and its store: changed together, under one lock.
struct Core {
    scheduler: Scheduler,
    store: Store,
}

/// One job's new status, for `WatchSweep`.
#[derive(Debug)]
struct JobEvent {
    sweep: SweepId,
    event: pb::SweepEvent,
}

/// The state both services share.
pub(crate) struct Coordinator {
    core: Mutex<Core>,
    timing: Timing,
    checkpoints: CheckpointFiles,
    /// One `notify_one` per job that became pending wakes one long poll, not all of them.
    work_available: Notify,
    /// Long polls waiting or about to; an upper bound, so no wake-up is skipped.
    pollers: AtomicUsize,
    events: broadcast::Sender<Arc<JobEvent>>,
    /// Set at shutdown: long polls and watch streams end so the server can stop.
    closing: watch::Sender<bool>,
    limits: Limits,
    state_dir: PathBuf,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Coordinator {
    /// Opens the state dir and rebuilds the state in it.
    pub(crate) fn open(config: &CoordinatorConfig) -> Result<Arc<Self>> {
        let store = Store::open(&config.state_dir, config.durability)?;
        let checkpoints = CheckpointFiles::open(&config.state_dir)?;
        let scheduler = store.load(config.timing(), now_ms())?;
        let reclaimed = checkpoints.reclaim(&scheduler)?;
        let sweeps = scheduler.sweeps().count();
        info!(
            db = %store.db_path().display(),
            sweeps,
            pending = scheduler.pending(),
            reclaimed,
            "state loaded"
        );
        Ok(Arc::new(Self::new(scheduler, store, checkpoints, config)))
    }

    fn new(
        scheduler: Scheduler,
        store: Store,
        checkpoints: CheckpointFiles,
        config: &CoordinatorConfig,
    ) -> Self {
        Self {
            limits: config.limits,
            state_dir: config.state_dir.clone(),
            timing: scheduler.timing(),
            core: Mutex::new(Core { scheduler, store }),
            checkpoints,
            work_available: Notify::new(),
            pollers: AtomicUsize::new(0),
            events: broadcast::channel(EVENT_BUFFER).0,
            closing: watch::channel(false).0,
        }
    }

    /// Ends long polls and watch streams.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    fn lock(&self) -> Result<MutexGuard<'_, Core>> {
        self.core.lock().map_err(|_| {
            CoordinatorError::Internal(
                "the coordinator state was poisoned by an earlier panic; restart the coordinator"
                    .into(),
            )
        })
    }

    /// Reads the state under the lock.
    fn read<T>(&self, f: impl FnOnce(&Scheduler) -> Result<T>) -> Result<T> {
        f(&self.lock()?.scheduler)
    }

    /// Plans under the lock, commits the changes, and only then applies them: a failed commit
    /// leaves the state as it was and fails the call with `UNAVAILABLE`.
    fn transact<T>(&self, plan: impl FnOnce(&Scheduler) -> Result<Planned<T>>) -> Result<T> {
        let (answer, made_pending, ended) = {
            let mut core = self.lock()?;
            let Planned {
                answer,
                mut changes,
            } = plan(&core.scheduler)?;
            let ended = checkpoint::take_ended(&mut changes);
            if !changes.is_empty() {
                if let Err(err) = core.store.commit(&changes) {
                    warn!(error = %err, "commit failed; the call changed nothing");
                    return Err(err);
                }
                core.scheduler.apply(&changes);
                self.publish(&core.scheduler, &changes);
            }
            (answer, jobs_made_pending(&changes), ended)
        };
        for (job, checkpoint) in ended {
            self.checkpoints.remove(&job, &checkpoint);
        }
        self.wake_pollers(made_pending);
        Ok(answer)
    }

    /// Sends each changed job's status to the watchers, if any.
    fn publish(&self, scheduler: &Scheduler, changes: &[Change]) {
        if self.events.receiver_count() == 0 {
            return;
        }
        for change in changes {
            let Change::JobUpdated { job, .. } = change else {
                continue;
            };
            let Some(job) = scheduler.job(job) else {
                continue;
            };
            let Some(sweep) = scheduler.sweep(&job.spec.sweep) else {
                continue;
            };
            let _ = self.events.send(Arc::new(JobEvent {
                sweep: sweep.record.id.clone(),
                event: pb::SweepEvent {
                    job: Some(wire::job_status(job, false)),
                    counts: Some(wire::counts(&sweep.counts)),
                },
            }));
        }
    }

    fn wake_pollers(&self, jobs: usize) {
        for _ in 0..jobs.min(self.pollers.load(Ordering::SeqCst)) {
            self.work_available.notify_one();
        }
    }

    /// Takes back expired leases about once a second (sooner when a deadline is nearer) until
    /// the task is aborted.
    pub(crate) async fn expire_leases(self: Arc<Self>) {
        let mut closing = self.closing.subscribe();
        loop {
            let next = self.read(|s| Ok(s.next_deadline())).ok().flatten();
            let wait = next.map_or(1_000, |deadline| deadline.saturating_sub(now_ms()) + 1);
            let wait = Duration::from_millis(wait.clamp(10, 1_000));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shut_down(&mut closing) => return,
            }
            match self.transact(|s| Ok(s.expire(now_ms()))) {
                Ok(0) => {}
                Ok(expired) => warn!(expired, "leases expired; their jobs went back to the queue"),
                Err(err) => warn!(error = %err, "could not expire leases; trying again"),
            }
        }
    }

    fn sweep_status(&self, request: &pb::GetSweepRequest) -> Result<pb::SweepStatus> {
        let page = paging::Page::of(request)?;
        let sweep_id = request.sweep_id.as_str();
        self.read(|s| {
            let sweep = if sweep_id.is_empty() {
                s.latest_sweep().ok_or(CoordinatorError::NotFound {
                    kind: "sweep",
                    id: String::new(),
                    hint: "no sweep was submitted yet: `ltsweep submit` one",
                })?
            } else {
                s.sweep(&SweepId(sweep_id.to_owned()))
                    .ok_or_else(|| unknown_sweep(sweep_id))?
            };
            paging::sweep_page(s, sweep, request.with_specs, page)
        })
    }

    /// Starts watching a sweep: every job's status, whether the sweep is over, and the
    /// events after that. Subscribed under the lock, which `publish` also holds, so that no
    /// change is missed or sent twice.
    fn watch(
        &self,
        sweep: &SweepId,
    ) -> Result<(
        Vec<pb::SweepEvent>,
        bool,
        broadcast::Receiver<Arc<JobEvent>>,
    )> {
        self.read(|s| {
            let record = s
                .sweep(sweep)
                .ok_or_else(|| unknown_sweep(sweep.as_str()))?;
            let counts = wire::counts(&record.counts);
            let events = s
                .jobs_of(record)
                .map(|job| pb::SweepEvent {
                    job: Some(wire::job_status(job, false)),
                    counts: Some(counts),
                })
                .collect();
            Ok((events, record.counts.all_final(), self.events.subscribe()))
        })
    }
}

fn unknown_sweep(id: &str) -> CoordinatorError {
    CoordinatorError::NotFound {
        kind: "sweep",
        id: id.to_owned(),
        hint: "`ltsweep sweeps` lists them",
    }
}

/// Resolves once the coordinator is closing (at once if it already is).
async fn shut_down(closing: &mut watch::Receiver<bool>) {
    // The guard `wait_for` answers with must not live on: it is not `Send`.
    let _ = closing.wait_for(|&closed| closed).await;
}

/// A required string field.
fn required(value: String, field: &'static str) -> Result<String> {
    if value.is_empty() {
        Err(CoordinatorError::invalid(field, "missing: it is required"))
    } else {
        Ok(value)
    }
}

fn millis_u32(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

/// Counts a long poll as waiting for as long as it lives, even when its call is dropped.
struct PollerGuard<'a>(&'a AtomicUsize);

impl<'a> PollerGuard<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for PollerGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---------------------------------------------------------------------------------------------
// WorkerService

/// The calls workers make.
#[derive(Clone, Debug)]
pub(crate) struct WorkerApi(pub(crate) Arc<Coordinator>);

#[tonic::async_trait]
impl pb::worker_service_server::WorkerService for WorkerApi {
    async fn register_worker(
        &self,
        request: Request<pb::RegisterWorkerRequest>,
    ) -> RpcResult<pb::RegisterWorkerResponse> {
        let req = request.into_inner();
        let names: Vec<String> = req.devices.iter().map(|d| d.name.clone()).collect();
        limits::check_registration(&req.host, &req.version, &names)?;
        let devices = req
            .devices
            .into_iter()
            .map(|d| DeviceSlots {
                name: d.name,
                slots: d.slots,
            })
            .collect();
        let slurm = placement::slurm_placement(req.slurm)?;
        let limits = self.0.limits;
        let registration = self.0.transact(|s| {
            limits.check_workers(s, now_ms())?;
            s.register_placed_worker(
                now_ms(),
                &req.host,
                devices,
                req.protocol_version,
                &req.version,
                slurm,
            )
        })?;
        info!(worker = %registration.worker, host = %req.host, version = %req.version, "worker registered");
        let timing = registration.timing;
        Ok(Response::new(pb::RegisterWorkerResponse {
            worker_id: registration.worker.0,
            lease_ttl_ms: millis_u32(timing.lease_ttl_ms),
            heartbeat_interval_ms: millis_u32(timing.heartbeat_interval_ms),
            poll_timeout_ms: millis_u32(timing.poll_timeout_ms),
            protocol_version: ltsweep_proto::PROTOCOL_VERSION,
        }))
    }

    async fn poll_work(
        &self,
        request: Request<pb::PollWorkRequest>,
    ) -> RpcResult<pb::PollWorkResponse> {
        let req = request.into_inner();
        let worker = WorkerId(limits::short_field(req.worker_id, "worker_id")?);
        let coordinator = &self.0;
        let give_up =
            tokio::time::Instant::now() + Duration::from_millis(coordinator.timing.poll_timeout_ms);
        let mut closing = coordinator.closing.subscribe();
        let _waiting = PollerGuard::new(&coordinator.pollers);
        let mut woken = false;
        loop {
            // Registered before looking at the queue, so a job queued after the look still
            // wakes this poll.
            let notified = coordinator.work_available.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let leased = coordinator
                .transact(|s| s.poll(now_ms(), &worker))
                .inspect_err(|_| {
                    // The wake-up this poll took was meant for a job: pass it on.
                    if woken {
                        coordinator.work_available.notify_one();
                    }
                })?;
            if let Some(lease) = leased {
                debug!(job = %lease.job.id, worker = %worker, lease = %lease.id, attempt = lease.attempt, "job leased");
                return Ok(Response::new(pb::PollWorkResponse {
                    lease: Some(wire::lease(&lease)),
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
        let req = request.into_inner();
        let worker = WorkerId(limits::short_field(req.worker_id, "worker_id")?);
        let lease = LeaseId(limits::short_field(req.lease_id, "lease_id")?);
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
        let answer = self
            .0
            .transact(|s| s.progress(now_ms(), &worker, &lease, metrics.as_ref()))?;
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
        use pb::checkpoint_chunk::Part;
        let mut stream = request.into_inner();
        let header = match stream.message().await?.and_then(|chunk| chunk.part) {
            Some(Part::Header(header)) => header,
            _ => {
                return Err(CoordinatorError::invalid(
                    "header",
                    "missing: the first chunk must be the checkpoint header",
                )
                .into());
            }
        };
        let lease = LeaseId(limits::short_field(header.lease_id, "header.lease_id")?);
        let sha256 = checkpoint::parse_sha256(&header.sha256)?;
        if header.epoch == 0 {
            return Err(
                CoordinatorError::invalid("header.epoch", "count finished epochs from 1").into(),
            );
        }
        let job = self.0.read(|s| s.check_upload(&lease))?;
        self.0.limits.check_upload(header.size, &self.0.state_dir)?;
        let data = stream.map(|chunk| match chunk.map(|c| c.part) {
            Ok(Some(Part::Data(bytes))) => Ok(bytes),
            Ok(Some(Part::Header(_))) => Err(CoordinatorError::invalid(
                "header",
                "sent twice: send one header, then data chunks",
            )),
            Ok(None) => Ok(Vec::new()),
            Err(status) => Err(CoordinatorError::Transport(format!(
                "the upload broke off ({}): upload the checkpoint again",
                status.message()
            ))),
        });
        let received = self
            .0
            .checkpoints
            .receive(&lease, header.size, &sha256, Box::pin(data))
            .await?;
        let checkpoint = Checkpoint {
            epoch: header.epoch,
            sha256,
        };
        let mut previous = None;
        let mut installed = false;
        let recorded = self.0.transact(|s| {
            previous = s.checkpoint_of(&lease)?.1;
            let planned = s.record_checkpoint(now_ms(), &lease, checkpoint.clone())?;
            // Under the lock, after the lease check: a superseded upload is never installed.
            self.0.checkpoints.install(received, &job, &checkpoint)?;
            installed = true;
            Ok(planned)
        });
        let same_file = previous
            .as_ref()
            .is_some_and(|p| p.sha256 == checkpoint.sha256);
        let epoch = match recorded {
            Ok(epoch) => epoch,
            Err(err) => {
                // Not committed: the new file is no one's, the previous one still the job's.
                if installed && !same_file {
                    self.0.checkpoints.remove(&job, &checkpoint);
                }
                return Err(err.into());
            }
        };
        // Committed: the previous file is no one's now.
        if let Some(previous) = previous.filter(|_| !same_file) {
            self.0.checkpoints.remove(&job, &previous);
        }
        info!(job = %job, epoch, size = header.size, "checkpoint stored");
        Ok(Response::new(pb::UploadCheckpointResponse { epoch }))
    }

    type DownloadCheckpointStream = BoxStream<pb::CheckpointChunk>;

    async fn download_checkpoint(
        &self,
        request: Request<pb::DownloadCheckpointRequest>,
    ) -> RpcResult<Self::DownloadCheckpointStream> {
        let lease = LeaseId(limits::short_field(
            request.into_inner().lease_id,
            "lease_id",
        )?);
        let (job, checkpoint) = self.0.read(|s| s.checkpoint_of(&lease))?;
        let Some(checkpoint) = checkpoint else {
            return Err(CoordinatorError::NotFound {
                kind: "checkpoint of job",
                id: job.to_string(),
                hint: "none was uploaded yet: start from epoch 0",
            }
            .into());
        };
        let bytes = self.0.checkpoints.read(&job, &checkpoint).await?;
        let header = CheckpointHeader {
            lease_id: lease.0,
            epoch: checkpoint.epoch,
            size: bytes.len() as u64,
            sha256: checkpoint.sha256,
        };
        let stream =
            futures::stream::iter(ltsweep_proto::checkpoint::chunks(&header, bytes).map(Ok));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn complete_job(
        &self,
        request: Request<pb::CompleteJobRequest>,
    ) -> RpcResult<pb::CompleteJobResponse> {
        let req = request.into_inner();
        let worker = WorkerId(limits::short_field(req.worker_id, "worker_id")?);
        let lease = LeaseId(limits::short_field(req.lease_id, "lease_id")?);
        let result = req
            .result
            .ok_or_else(|| CoordinatorError::invalid("result", "missing: send the job's result"))?;
        let result = JobResult::try_from(result).map_err(CoordinatorError::from)?;
        let job = result.job_id.clone();
        self.0
            .transact(|s| s.complete(now_ms(), &worker, &lease, result))?;
        debug!(job = %job, worker = %worker, lease = %lease, "job succeeded");
        Ok(Response::new(pb::CompleteJobResponse {}))
    }

    async fn fail_job(
        &self,
        request: Request<pb::FailJobRequest>,
    ) -> RpcResult<pb::FailJobResponse> {
        let req = request.into_inner();
        let worker = WorkerId(limits::short_field(req.worker_id, "worker_id")?);
        let lease = LeaseId(limits::short_field(req.lease_id, "lease_id")?);
        let mut reason = if req.reason.is_empty() {
            "the worker gave no reason".to_owned()
        } else {
            limits::cut_reason(req.reason)
        };
        if req.epoch > 0 {
            reason.push_str(&format!(" (after epoch {})", req.epoch));
        }
        self.0
            .transact(|s| s.fail(now_ms(), &worker, &lease, &reason, req.retryable))?;
        warn!(lease = %lease, worker = %worker, retryable = req.retryable, reason = %reason, "job attempt failed");
        Ok(Response::new(pb::FailJobResponse {}))
    }

    async fn release_job(
        &self,
        request: Request<pb::ReleaseJobRequest>,
    ) -> RpcResult<pb::ReleaseJobResponse> {
        let req = request.into_inner();
        let worker = WorkerId(required(req.worker_id, "worker_id")?);
        let lease = LeaseId(required(req.lease_id, "lease_id")?);
        let reason = placement::release_reason(req.reason)?;
        self.0
            .transact(|s| s.release(now_ms(), &worker, &lease, reason))?;
        info!(lease = %lease, worker = %worker, epoch = req.epoch, ?reason, "lease given back; the job is queued again");
        Ok(Response::new(pb::ReleaseJobResponse {}))
    }
}

// ---------------------------------------------------------------------------------------------
// SweepService

/// The calls users make. Besides serving gRPC, it is the in-process way to read the
/// coordinator (the web page calls it directly), so every reader sees the same answers.
#[derive(Clone, Debug)]
pub struct SweepApi(pub(crate) Arc<Coordinator>);

#[tonic::async_trait]
impl pb::sweep_service_server::SweepService for SweepApi {
    async fn submit_sweep(
        &self,
        request: Request<pb::SubmitSweepRequest>,
    ) -> RpcResult<pb::SubmitSweepResponse> {
        let spec_toml = required(request.into_inner().spec_toml, "spec_toml")?;
        let limits = self.0.limits;
        limits.check_spec_text(&spec_toml)?;
        // The grid's size from the spec alone, before it is expanded into memory.
        let spec = ltsweep_proto::SweepSpec::parse(&spec_toml).map_err(CoordinatorError::from)?;
        limits.check_jobs_per_sweep(spec.job_count())?;
        // Parsing and expanding the grid is the slow part: done before taking the lock.
        let submission = Submission::parse(&spec_toml)?;
        let answer = self.0.transact(|s| {
            if s.sweep(submission.sweep()).is_none() {
                limits.check_total_jobs(s, submission.jobs().len())?;
            }
            s.submit_prepared(now_ms(), submission)
        })?;
        if answer.created {
            info!(sweep = %answer.sweep, jobs = answer.jobs, "sweep submitted");
        }
        Ok(Response::new(pb::SubmitSweepResponse {
            sweep_id: answer.sweep.0,
            jobs: answer.jobs,
            created: answer.created,
        }))
    }

    async fn get_sweep(&self, request: Request<pb::GetSweepRequest>) -> RpcResult<pb::SweepStatus> {
        Ok(Response::new(self.0.sweep_status(request.get_ref())?))
    }

    async fn list_sweeps(
        &self,
        _request: Request<pb::ListSweepsRequest>,
    ) -> RpcResult<pb::ListSweepsResponse> {
        let sweeps = self
            .0
            .read(|s| Ok(s.sweeps().map(wire::sweep_summary).collect()))?;
        Ok(Response::new(pb::ListSweepsResponse { sweeps }))
    }

    type WatchSweepStream = BoxStream<pb::SweepEvent>;

    async fn watch_sweep(
        &self,
        request: Request<pb::WatchSweepRequest>,
    ) -> RpcResult<Self::WatchSweepStream> {
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        let (initial, done, mut events) = self.0.watch(&sweep)?;
        let (tx, rx) = mpsc::channel(256);
        let coordinator = Arc::clone(&self.0);
        tokio::spawn(async move {
            let mut closing = coordinator.closing.subscribe();
            let mut pending = initial;
            let mut done = done;
            loop {
                for event in pending.drain(..) {
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                }
                if done {
                    return;
                }
                let received = tokio::select! {
                    _ = tx.closed() => return,
                    _ = shut_down(&mut closing) => {
                        // Not a clean end: the sweep is not over, the watcher should come back.
                        let _ = tx.send(Err(CoordinatorError::ShuttingDown.into())).await;
                        return;
                    }
                    received = events.recv() => received,
                };
                match received {
                    Ok(event) if event.sweep == sweep => {
                        done = event
                            .event
                            .counts
                            .is_some_and(|c| c.pending == 0 && c.running == 0);
                        pending.push(event.event.clone());
                    }
                    Ok(_) => {}
                    // A watcher too slow for the event rate catches up from a fresh snapshot.
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        debug!(sweep = %sweep, missed, "watcher lagged; sending a fresh snapshot");
                        match coordinator.watch(&sweep) {
                            Ok((snapshot, over, receiver)) => {
                                pending = snapshot;
                                done = over;
                                events = receiver;
                            }
                            Err(err) => {
                                let _ = tx.send(Err(err.into())).await;
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn cancel_sweep(
        &self,
        request: Request<pb::CancelSweepRequest>,
    ) -> RpcResult<pb::CancelSweepResponse> {
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        let cancelled = self.0.transact(|s| s.cancel(&sweep))?;
        info!(sweep = %sweep, cancelled, "sweep cancelled");
        Ok(Response::new(pb::CancelSweepResponse { cancelled }))
    }

    async fn retry_failed(
        &self,
        request: Request<pb::RetryFailedRequest>,
    ) -> RpcResult<pb::RetryFailedResponse> {
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        let requeued = self.0.transact(|s| s.retry_failed(&sweep))?;
        info!(sweep = %sweep, requeued, "failed jobs requeued");
        Ok(Response::new(pb::RetryFailedResponse { requeued }))
    }

    async fn list_workers(
        &self,
        _request: Request<pb::ListWorkersRequest>,
    ) -> RpcResult<pb::ListWorkersResponse> {
        let now = now_ms();
        let workers = self.0.read(|s| {
            Ok(s.workers()
                .into_iter()
                .map(|w| wire::worker_info(s, w, now))
                .collect())
        })?;
        Ok(Response::new(pb::ListWorkersResponse { workers }))
    }

    async fn delete_sweep(
        &self,
        request: Request<pb::DeleteSweepRequest>,
    ) -> RpcResult<pb::DeleteSweepResponse> {
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        let jobs = delete::delete_sweep(&self.0, &sweep)?;
        info!(sweep = %sweep, jobs, "sweep deleted");
        Ok(Response::new(pb::DeleteSweepResponse { jobs }))
    }

    type GetResultsStream = BoxStream<pb::JobResult>;

    async fn get_results(
        &self,
        request: Request<pb::GetResultsRequest>,
    ) -> RpcResult<Self::GetResultsStream> {
        let sweep = SweepId(limits::short_field(
            request.into_inner().sweep_id,
            "sweep_id",
        )?);
        // Shared results, converted one by one as the client reads them.
        let results = self.0.read(|s| s.results(&sweep))?;
        let stream = futures::stream::iter(results)
            .map(|result| Ok(pb::JobResult::from(JobResult::clone(&result))));
        Ok(Response::new(Box::pin(stream)))
    }
}

mod delete;
mod paging;
mod placement;
#[cfg(test)]
mod tests;
