//! The gRPC edge: `WorkerService` and `SweepService` over one shared [`Coordinator`].
//!
//! Every handler decodes and checks its request (a missing field is `INVALID_ARGUMENT` naming
//! it), then runs one scheduler operation: plan → apply → commit, answered once committed.
//! Operations take turns (see [`Coordinator::turn`]); commits run on the store's own thread
//! ([`Committer`]), grouped, and the scheduler's lock is only ever held for a plan, an apply or
//! a read, never across an `.await` or a commit. Reads, health and reflection therefore answer
//! while a commit is slow. Reads may see an operation's changes a moment before its caller is
//! answered; a failed commit reloads memory from the store (see the committer).
//!
//! Heartbeats renew their lease in memory without waiting for the store (lease deadlines are
//! not persisted), so a stalled store costs no lease; see [`Coordinator::expiry_round`].
//!
//! The handlers by group: `workers` (`WorkerService`), `checkpoints` (its streaming calls),
//! `models` (kept models: the workers' upload and download, the user's `GetModel`), `sweeps`
//! (`SweepService`) and `watchers` (its `WatchSweep` streams); `memory` holds the state in
//! memory and `leases` the renewal and expiry of leases beside the store.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::Stream;
use ltsweep_domain::SweepId;
use ltsweep_proto::pb;
use tokio::sync::{Notify, broadcast, watch};
use tonic::{Request, Response, Status};
use tracing::info;

use crate::clock::Clock;
use crate::committer::{After, Batch, Before, Committer, MemoryHooks, Turn, Turns};
use crate::config::CoordinatorConfig;
use crate::disk::DiskFloor;
use crate::error::CoordinatorError;
use crate::limits::{self, Limits};
use crate::scheduler::{Change, Planned, Scheduler, Timing, WorkerId};
use crate::store::{ResultReader, Store};
use crate::stored_files::{self, CheckpointFiles, FileKind};
use crate::streams::{StreamPermit, StreamSlots};
use ltsweep_proto::server::Caller;

type Result<T> = std::result::Result<T, CoordinatorError>;
type RpcResult<T> = std::result::Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send>>;

/// Job events kept for slow watchers before they must catch up from a fresh snapshot.
const EVENT_BUFFER: usize = 16_384;

/// The state both services share.
pub(crate) struct Coordinator {
    memory: Arc<Memory>,
    /// Held from plan to apply and queueing, so that operations plan one after another, each
    /// against the changes of those before it. A tokio mutex: waiting for a turn parks the
    /// task, not a tokio worker thread. Owned guards, because the store thread gives the turn
    /// of an ordered batch back once it has applied it, even when the caller is gone by then.
    turns: Turns,
    store: Committer,
    clock: Clock,
    timing: Timing,
    checkpoints: Arc<CheckpointFiles>,
    /// Kept models: a job's final weights while a stage-2 job may need them.
    models: Arc<CheckpointFiles>,
    /// Workers whose last-seen time is being committed in the background.
    seen_pending: Mutex<HashSet<WorkerId>>,
    /// Set at shutdown: long polls and watch streams end so the server can stop.
    closing: watch::Sender<bool>,
    limits: Limits,
    /// The free-disk floor, with the bytes that uploads and results under way reserve.
    disk: Arc<DiskFloor>,
    /// Reads results for reports, on its own connection.
    results: ResultReader,
    /// The open `WatchSweep` and `GetResults` streams and file downloads, by credential.
    streams: Arc<StreamSlots>,
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
        let checkpoints = CheckpointFiles::open(&config.state_dir, FileKind::Checkpoints)?;
        let models = CheckpointFiles::open(&config.state_dir, FileKind::Models)?;
        // Every recovered lease gets a full TTL from this start.
        // Drawn at each start: ids issued before stay valid (they are compared, not derived
        // again), and the persisted lease counter keeps new ones unique.
        let lease_key = identity::draw_lease_key();
        let scheduler = store.load(config.timing(), lease_key.clone(), clock.now_ms())?;
        let reclaimed = checkpoints.reclaim(&scheduler)? + models.reclaim(&scheduler)?;
        info!(
            db = %store.db_path().display(),
            sweeps = scheduler.sweeps().count(),
            pending = scheduler.pending(),
            reclaimed,
            "state loaded"
        );
        let timing = scheduler.timing();
        let results = store.result_reader();
        let memory = Arc::new(Memory {
            scheduler: RwLock::new(scheduler),
            events: broadcast::channel(EVENT_BUFFER).0,
            work_available: Notify::new(),
            pollers: AtomicUsize::new(0),
        });
        let (applied, reloaded) = (Arc::clone(&memory), Arc::clone(&memory));
        let reload_clock = clock.clone();
        let hooks = MemoryHooks {
            apply: Box::new(move |changes| applied.apply(changes)),
            // Every lease gets a full TTL from the reload, as from a restart.
            reload: Box::new(move |store| {
                reloaded.replace(store.load(timing, lease_key.clone(), reload_clock.now_ms())?)
            }),
        };
        // A commit slower than half a lease may have kept heartbeat-less calls from renewing.
        let stall_after = Duration::from_millis(timing.lease_ttl_ms / 2);
        let turns = Turns::default();
        let store = Committer::spawn(store, stall_after, Arc::clone(&turns), hooks)?;
        Ok(Arc::new(Self {
            memory,
            turns,
            store,
            clock,
            timing,
            checkpoints: Arc::new(checkpoints),
            models: Arc::new(models),
            seen_pending: Mutex::new(HashSet::new()),
            closing: watch::channel(false).0,
            limits: config.limits,
            disk: DiskFloor::new(&config.state_dir, config.limits.min_free_disk_bytes),
            results,
            streams: StreamSlots::new(
                config.limits.max_streams,
                config.limits.max_streams_per_credential,
            ),
        }))
    }

    /// Ends long polls and watch streams.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Waits for this operation's turn to plan, apply and queue its commit. Refused while
    /// memory is reloaded after a failed commit.
    async fn turn(&self) -> Result<Turn> {
        let turn = Arc::clone(&self.turns).lock_owned().await;
        if self.store.health().diverged() {
            return Err(CoordinatorError::storage(
                self.store.db_path(),
                "a commit failed and the state is being reloaded from the store: try again",
            ));
        }
        Ok(turn)
    }

    /// Reads the state under the lock (never held across a commit).
    fn read<T>(&self, f: impl FnOnce(&Scheduler) -> Result<T>) -> Result<T> {
        f(&*self.memory.read()?)
    }

    /// Plans and applies in its turn, and answers once the changes are committed: a failed
    /// commit leaves the state as the store has it and fails the call with `UNAVAILABLE`.
    async fn transact<T>(&self, plan: impl FnOnce(&Scheduler) -> Result<Planned<T>>) -> Result<T> {
        let turn = self.turn().await?;
        let planned = self.read(plan)?;
        self.commit(turn, planned, None, None).await
    }

    /// Commits a plan made in `turn` on the store thread, with file work before and after;
    /// the checkpoints of jobs the changes end, and the models they stop keeping, are removed
    /// once committed. Changes that need no write are applied here, at once; so are those
    /// without `before`, committed with the next group. With `before`, they are applied once
    /// committed.
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
        let ended = stored_files::take_ended(&mut changes);
        // Read in this turn, before the changes apply: the state the plan was made against.
        let dropped = self.read(|s| Ok(stored_files::dropped_models(s, &changes)))?;
        let after = if ended.is_empty() && dropped.is_empty() {
            after
        } else {
            let files = Arc::clone(&self.checkpoints);
            let models = Arc::clone(&self.models);
            Some(Box::new(move |committed: bool| {
                if committed {
                    for (job, checkpoint) in &ended {
                        files.remove(job, &checkpoint.sha256);
                    }
                    for (job, model) in &dropped {
                        models.remove(job, &model.sha256);
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
        if before.is_none() {
            self.store
                .commit_applied(changes, after, turn, |changes| self.memory.apply(changes))
                .await?;
            return Ok(answer);
        }
        let batch = Batch {
            changes,
            before,
            after,
        };
        self.store.commit_ordered(batch, turn).await?;
        Ok(answer)
    }

    fn sweep_status(&self, request: &pb::GetSweepRequest) -> Result<pb::SweepStatus> {
        let page = paging::Page::of(request)?;
        let sweep_id = request.sweep_id.as_str();
        limits::check_length(sweep_id, "sweep_id")?;
        self.read(|s| {
            let sweep = if sweep_id.is_empty() {
                s.latest_sweep().ok_or_else(|| {
                    CoordinatorError::not_found(
                        "sweep",
                        "",
                        "no sweep was submitted yet: `ltsweep submit` one",
                    )
                })?
            } else {
                s.sweep(&SweepId(sweep_id.to_owned()))
                    .ok_or_else(|| unknown_sweep(sweep_id))?
            };
            paging::sweep_page(s, sweep, request.with_specs, page)
        })
    }

    /// A slot for one more stream of the request's caller (a request from inside the process
    /// without one counts as in-process).
    fn stream_permit<T>(&self, request: &Request<T>) -> Result<StreamPermit> {
        let caller = request
            .extensions()
            .get::<Caller>()
            .copied()
            .unwrap_or(Caller::IN_PROCESS);
        self.streams.acquire(&caller)
    }
}

fn unknown_sweep(id: &str) -> CoordinatorError {
    CoordinatorError::not_found("sweep", id, "`ltsweep sweeps` lists them")
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

mod checkpoints;
mod delete;
mod identity;
mod leases;
mod memory;
mod models;
mod paging;
mod placement;
mod sweeps;
#[cfg(test)]
mod tests;
mod uploads;
mod watchers;
mod workers;

use memory::Memory;
pub(crate) use sweeps::SweepHandlers;
pub(crate) use workers::WorkerHandlers;
