//! The gRPC edge: `WorkerService` and `SweepService` over one shared [`Coordinator`].
//!
//! Every handler decodes and checks its request (a missing field is `INVALID_ARGUMENT` naming
//! it), then runs one scheduler operation: plan → commit → apply. Operations take turns (see
//! [`Coordinator::turn`]); the commit runs on the store's own thread ([`Committer`]), and the
//! scheduler's lock is only ever held for a plan, an apply or a read, never across an `.await`
//! or a commit. Reads, health and reflection therefore answer while a commit is slow.
//!
//! Heartbeats renew their lease in memory without waiting for the store (lease deadlines are
//! not persisted), so a stalled store costs no lease; see [`Coordinator::expiry_round`].

use std::collections::HashSet;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use futures::{Stream, StreamExt};
use ltsweep_proto::{EpochMetrics, JobResult, SweepId, pb};
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::checkpoint::{self, CHUNK_BYTES, CheckpointFiles};
use crate::clock::Clock;
use crate::committer::{After, Batch, Before, Committer, Turn};
use crate::config::CoordinatorConfig;
use crate::error::CoordinatorError;
use crate::expiry::ExpiryPacing;
use crate::limits::{self, Limits};
use crate::scheduler::{
    Change, Checkpoint, DeviceSlots, LeaseId, Planned, ProgressAnswer, Scheduler, Submission,
    Timing, WorkerId, jobs_made_pending,
};
use crate::store::Store;
use crate::wire;

type Result<T> = std::result::Result<T, CoordinatorError>;
type RpcResult<T> = std::result::Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

/// Job events kept for slow watchers before they must catch up from a fresh snapshot.
const EVENT_BUFFER: usize = 16_384;

/// One job's new status, for `WatchSweep`.
#[derive(Debug)]
struct JobEvent {
    sweep: SweepId,
    event: pb::SweepEvent,
}

/// The state in memory, shared with the store thread, which applies committed changes to it.
struct Memory {
    scheduler: RwLock<Scheduler>,
    events: broadcast::Sender<Arc<JobEvent>>,
    /// One `notify_one` per job that became pending wakes one long poll, not all of them.
    work_available: Notify,
    /// Long polls waiting or about to; an upper bound, so no wake-up is skipped.
    pollers: AtomicUsize,
}

impl Memory {
    fn read(&self) -> Result<RwLockReadGuard<'_, Scheduler>> {
        self.scheduler.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Scheduler>> {
        self.scheduler.write().map_err(|_| poisoned())
    }

    /// Applies changes (committed, or not durable), tells the watchers and wakes as many long
    /// polls as jobs became pending.
    fn apply(&self, changes: &[Change]) -> Result<()> {
        {
            let mut scheduler = self.write()?;
            scheduler.apply(changes);
            self.publish(&scheduler, changes);
        }
        self.wake_pollers(jobs_made_pending(changes));
        Ok(())
    }

    /// Sends each changed job's status to the watchers, if any. Under the write lock, which
    /// `Coordinator::watch` subscribes under, so no watcher misses a change or sees it twice.
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
}

fn poisoned() -> CoordinatorError {
    CoordinatorError::Internal(
        "the coordinator state was poisoned by an earlier panic; restart the coordinator".into(),
    )
}

/// What one lease-expiry sweep did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Round {
    /// The store commits: this many leases had passed their deadline and were taken back.
    Expired(usize),
    /// The store had failed or stalled: every live lease got a fresh deadline instead.
    Renewed,
}

/// The state both services share.
pub(crate) struct Coordinator {
    memory: Arc<Memory>,
    /// Held from plan to apply, so that two operations never plan against the same state and
    /// both commit. A tokio mutex, held across the awaited commit: waiting for a turn parks
    /// the task, not a tokio worker thread. Owned guards, because the store thread gives the
    /// turn back once it has applied the commit, even when the caller is gone by then.
    turns: Arc<tokio::sync::Mutex<()>>,
    store: Committer,
    clock: Clock,
    timing: Timing,
    checkpoints: Arc<CheckpointFiles>,
    /// Workers whose last-seen time is being committed in the background.
    seen_pending: Mutex<HashSet<WorkerId>>,
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

impl Coordinator {
    /// Opens the state dir and rebuilds the state in it.
    pub(crate) fn open(config: &CoordinatorConfig) -> Result<Arc<Self>> {
        Self::open_with_clock(config, Clock::monotonic())
    }

    pub(crate) fn open_with_clock(config: &CoordinatorConfig, clock: Clock) -> Result<Arc<Self>> {
        let store = Store::open(&config.state_dir, config.durability)?;
        let checkpoints = CheckpointFiles::open(&config.state_dir)?;
        // Every recovered lease gets a full TTL from this start.
        let scheduler = store.load(config.timing(), clock.now_ms())?;
        let reclaimed = checkpoints.reclaim(&scheduler)?;
        info!(
            db = %store.db_path().display(),
            sweeps = scheduler.sweeps().count(),
            pending = scheduler.pending(),
            reclaimed,
            "state loaded"
        );
        let timing = scheduler.timing();
        let memory = Arc::new(Memory {
            scheduler: RwLock::new(scheduler),
            events: broadcast::channel(EVENT_BUFFER).0,
            work_available: Notify::new(),
            pollers: AtomicUsize::new(0),
        });
        let applied = Arc::clone(&memory);
        // A commit slower than half a lease may have kept heartbeat-less calls from renewing.
        let stall_after = Duration::from_millis(timing.lease_ttl_ms / 2);
        let store = Committer::spawn(store, stall_after, move |changes| applied.apply(changes))?;
        Ok(Arc::new(Self {
            memory,
            turns: Arc::new(tokio::sync::Mutex::new(())),
            store,
            clock,
            timing,
            checkpoints: Arc::new(checkpoints),
            seen_pending: Mutex::new(HashSet::new()),
            closing: watch::channel(false).0,
            limits: config.limits,
            state_dir: config.state_dir.clone(),
        }))
    }

    /// Ends long polls and watch streams.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Waits for this operation's turn to plan, commit and apply.
    async fn turn(&self) -> Turn {
        Arc::clone(&self.turns).lock_owned().await
    }

    /// Reads the state under the lock (never held across a commit).
    fn read<T>(&self, f: impl FnOnce(&Scheduler) -> Result<T>) -> Result<T> {
        f(&*self.memory.read()?)
    }

    /// Plans in its turn, commits the changes, and only then applies them: a failed commit
    /// leaves the state as it was and fails the call with `UNAVAILABLE`.
    async fn transact<T>(&self, plan: impl FnOnce(&Scheduler) -> Result<Planned<T>>) -> Result<T> {
        let turn = self.turn().await;
        let planned = self.read(plan)?;
        self.commit(turn, planned, None, None).await
    }

    /// Commits a plan made in `turn` on the store thread, with file work before and after;
    /// the checkpoints of jobs the changes end are removed once committed. Changes that need
    /// no write are applied here, at once.
    async fn commit<T>(
        &self,
        turn: Turn,
        planned: Planned<T>,
        before: Option<Before>,
        after: Option<After>,
    ) -> Result<T> {
        let Planned {
            answer,
            mut changes,
        } = planned;
        let ended = checkpoint::take_ended(&mut changes);
        let after = if ended.is_empty() {
            after
        } else {
            let files = Arc::clone(&self.checkpoints);
            Some(Box::new(move |committed: bool| {
                if committed {
                    for (job, checkpoint) in &ended {
                        files.remove(job, checkpoint);
                    }
                }
                if let Some(after) = after {
                    after(committed);
                }
            }) as After)
        };
        if before.is_none() && after.is_none() && !changes.iter().any(Change::is_durable) {
            if !changes.is_empty() {
                self.memory.apply(&changes)?;
            }
            drop(turn);
            return Ok(answer);
        }
        let batch = Batch {
            changes,
            before,
            after,
        };
        self.store.commit(batch, turn).await?;
        Ok(answer)
    }

    /// A heartbeat's lease renewal, in memory only: it waits for no commit, so heartbeats keep
    /// leases alive while the store is stalled. A last-seen time that is due is committed in
    /// the background.
    fn renew(self: &Arc<Self>, worker: &WorkerId, lease: &LeaseId) -> Result<ProgressAnswer> {
        let now = self.now_ms();
        let (answer, seen_due) = {
            let mut scheduler = self.memory.write()?;
            let Planned { answer, changes } = scheduler.progress(now, worker, lease, None)?;
            let (seen, renewals): (Vec<Change>, Vec<Change>) =
                changes.into_iter().partition(Change::is_durable);
            scheduler.apply(&renewals);
            (answer, !seen.is_empty())
        };
        if seen_due {
            self.record_seen(worker);
        }
        Ok(answer)
    }

    /// Commits a worker's last-seen time in a task of its own, at most one per worker at a
    /// time, so that a stalled store piles up no more than one task per worker.
    fn record_seen(self: &Arc<Self>, worker: &WorkerId) {
        let first = self
            .seen_pending
            .lock()
            .is_ok_and(|mut pending| pending.insert(worker.clone()));
        if !first {
            return;
        }
        let coordinator = Arc::clone(self);
        let worker = worker.clone();
        tokio::spawn(async move {
            let now = coordinator.now_ms();
            if let Err(err) = coordinator.transact(|s| Ok(s.see(now, &worker))).await {
                debug!(worker = %worker, error = %err, "last-seen time not recorded; the next heartbeat tries again");
            }
            if let Ok(mut pending) = coordinator.seen_pending.lock() {
                pending.remove(&worker);
            }
        });
    }

    /// Takes back expired leases, paced by [`ExpiryPacing`], until the coordinator closes.
    pub(crate) async fn expire_leases(self: Arc<Self>) {
        let mut closing = self.closing.subscribe();
        let mut pacing = ExpiryPacing::default();
        loop {
            let now = self.now_ms();
            let next = self.read(|s| Ok(s.next_deadline())).ok().flatten();
            let wait = pacing.wait(next.map(|d| Duration::from_millis(d.saturating_sub(now))));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shut_down(&mut closing) => return,
            }
            match self.expiry_round().await {
                Ok(Round::Expired(0)) => pacing.succeeded(),
                Ok(Round::Expired(expired)) => {
                    pacing.succeeded();
                    warn!(expired, "leases expired; their jobs went back to the queue");
                }
                Ok(Round::Renewed) => {
                    pacing.succeeded();
                    info!("the store stalled or failed; every live lease got a fresh deadline");
                }
                Err(err) => {
                    pacing.failed();
                    warn!(error = %err, retry_in = ?pacing.wait(None), "lease expiry could not commit; no lease expired, trying again after a pause");
                }
            }
        }
    }

    /// One lease-expiry sweep. While the store fails, or after it stalled, nothing expires:
    /// leases could not be renewed by calls that waited for the store, so every live lease
    /// gets a fresh deadline instead, and the store is probed (an error means it still fails).
    /// Otherwise leases past their deadline are taken back.
    pub(crate) async fn expiry_round(&self) -> Result<Round> {
        let turn = self.turn().await;
        let health = self.store.health();
        let failing = health.failing();
        // Taken in every round: a renewal answers for every stall before it.
        let stalled = health.take_stalled();
        if failing || stalled {
            self.memory.write()?.renew_leases(self.now_ms());
            if failing {
                self.store.probe().await?;
            }
            drop(turn);
            return Ok(Round::Renewed);
        }
        let now = self.now_ms();
        let planned = self.read(|s| Ok(s.expire(now)))?;
        self.commit(turn, planned, None, None)
            .await
            .map(Round::Expired)
    }

    fn sweep_status(&self, sweep_id: &str, with_specs: bool) -> Result<pb::SweepStatus> {
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
            Ok(wire::sweep_status(s, sweep, with_specs))
        })
    }

    /// Starts watching a sweep: every job's status, whether the sweep is over, and the
    /// events after that. Subscribed under the read lock, while `publish` holds the write
    /// lock, so that no change is missed or sent twice.
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
            Ok((
                events,
                record.counts.all_final(),
                self.memory.events.subscribe(),
            ))
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
        let now = self.0.now_ms();
        let registration = self
            .0
            .transact(|s| {
                limits.check_workers(s, now)?;
                Ok(s.register_placed_worker(
                    now,
                    &req.host,
                    devices,
                    req.protocol_version,
                    &req.version,
                    slurm,
                )?)
            })
            .await?;
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
        let job = self.0.read(|s| Ok(s.check_upload(&lease)?))?;
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
        let turn = self.0.turn().await;
        let now = self.0.now_ms();
        let (previous, planned) = self.0.read(|s| {
            let previous = s.checkpoint_of(&lease)?.1;
            Ok((
                previous,
                s.record_checkpoint(now, &lease, checkpoint.clone())?,
            ))
        })?;
        let same_file = previous
            .as_ref()
            .is_some_and(|p| p.sha256 == checkpoint.sha256);
        // In this turn, after the lease check: a superseded upload is never installed. Both
        // file steps run on the store thread.
        let files = Arc::clone(&self.0.checkpoints);
        let (installed, new) = ((job.clone(), checkpoint.clone()), (job.clone(), checkpoint));
        let before: Before = Box::new(move || files.install(received, &installed.0, &installed.1));
        let files = Arc::clone(&self.0.checkpoints);
        let after: After = Box::new(move |committed| {
            if same_file {
                return;
            }
            if committed {
                // The previous file is no one's now.
                if let Some(previous) = previous {
                    files.remove(&new.0, &previous);
                }
            } else {
                // The new file is no one's, the previous one still the job's.
                files.remove(&new.0, &new.1);
            }
        });
        let epoch = self
            .0
            .commit(turn, planned, Some(before), Some(after))
            .await?;
        info!(job = %job, epoch, size = header.size, "checkpoint stored");
        Ok(Response::new(pb::UploadCheckpointResponse { epoch }))
    }

    type DownloadCheckpointStream = BoxStream<pb::CheckpointChunk>;

    async fn download_checkpoint(
        &self,
        request: Request<pb::DownloadCheckpointRequest>,
    ) -> RpcResult<Self::DownloadCheckpointStream> {
        use pb::checkpoint_chunk::Part;
        let lease = LeaseId(limits::short_field(
            request.into_inner().lease_id,
            "lease_id",
        )?);
        let (job, checkpoint) = self.0.read(|s| Ok(s.checkpoint_of(&lease)?))?;
        let Some(checkpoint) = checkpoint else {
            return Err(CoordinatorError::NotFound {
                kind: "checkpoint of job",
                id: job.to_string(),
                hint: "none was uploaded yet: start from epoch 0",
            }
            .into());
        };
        let bytes = Arc::new(self.0.checkpoints.read(&job, &checkpoint).await?);
        let header = pb::CheckpointChunk {
            part: Some(Part::Header(pb::CheckpointHeader {
                lease_id: lease.0,
                epoch: checkpoint.epoch,
                size: bytes.len() as u64,
                sha256: checkpoint.sha256,
            })),
        };
        let chunks = (0..bytes.len().div_ceil(CHUNK_BYTES)).map(move |i| {
            let end = ((i + 1) * CHUNK_BYTES).min(bytes.len());
            Ok(pb::CheckpointChunk {
                part: Some(Part::Data(bytes[i * CHUNK_BYTES..end].to_vec())),
            })
        });
        let stream = futures::stream::iter(std::iter::once(Ok(header)).chain(chunks));
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
        let req = request.into_inner();
        let worker = WorkerId(required(req.worker_id, "worker_id")?);
        let lease = LeaseId(required(req.lease_id, "lease_id")?);
        let reason = placement::release_reason(req.reason)?;
        let now = self.0.now_ms();
        self.0
            .transact(|s| Ok(s.release(now, &worker, &lease, reason)?))
            .await?;
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
        let submission = Submission::parse(&spec_toml).map_err(CoordinatorError::from)?;
        let now = self.0.now_ms();
        let answer = self
            .0
            .transact(|s| {
                if s.sweep(submission.sweep()).is_none() {
                    limits.check_total_jobs(s, submission.jobs().len())?;
                }
                Ok(s.submit_prepared(now, submission)?)
            })
            .await?;
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
        let request = request.into_inner();
        Ok(Response::new(
            self.0.sweep_status(&request.sweep_id, request.with_specs)?,
        ))
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
        let cancelled = self.0.transact(|s| Ok(s.cancel(&sweep)?)).await?;
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
        let requeued = self.0.transact(|s| Ok(s.retry_failed(&sweep)?)).await?;
        info!(sweep = %sweep, requeued, "failed jobs requeued");
        Ok(Response::new(pb::RetryFailedResponse { requeued }))
    }

    async fn list_workers(
        &self,
        _request: Request<pb::ListWorkersRequest>,
    ) -> RpcResult<pb::ListWorkersResponse> {
        let now = self.0.now_ms();
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
        let jobs = delete::delete_sweep(&self.0, &sweep).await?;
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
        let results = self.0.read(|s| Ok(s.results(&sweep)?))?;
        let stream = futures::stream::iter(results)
            .map(|result| Ok(pb::JobResult::from(JobResult::clone(&result))));
        Ok(Response::new(Box::pin(stream)))
    }
}

mod delete;
mod placement;
#[cfg(test)]
mod tests;
