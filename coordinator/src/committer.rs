//! The store's own thread: every SQLite commit and every checkpoint file operation runs there,
//! never on a tokio worker, so health, reflection and in-memory reads answer while a commit is
//! slow (an fsync on a loaded disk, a database locked by another process).
//!
//! Most operations are applied to memory as soon as they are planned, in their turn, and then
//! queued here ([`Committer::commit_applied`]); their callers are answered once the changes are
//! committed. The thread commits everything queued in one transaction (group commit): under
//! load, one commit and one wake-up serve many calls instead of one each. Should a commit fail,
//! memory is ahead of the store: every queued operation fails too, and memory is reloaded from
//! the store before anyone plans again ([`Health::diverged`] refuses turns meanwhile). Callers
//! of failed operations are told `UNAVAILABLE`, so no one acts on a change that was lost.
//!
//! Operations with file work that must succeed before their commit (installing an uploaded
//! checkpoint) are instead applied only once committed, holding their turn until then
//! ([`Committer::commit_ordered`]): such a failure changes nothing and needs no reload.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ltsweep_proto::Backoff;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::{info, warn};

use crate::error::CoordinatorError;
use crate::scheduler::Change;
use crate::store::Store;

type Result<T> = std::result::Result<T, CoordinatorError>;

/// The right to plan, apply and queue one operation; see `Coordinator::turn`.
pub(crate) type Turn = tokio::sync::OwnedMutexGuard<()>;

/// Who hands out turns: the recovery from a failed commit takes one, so no one plans while
/// memory is reloaded.
pub(crate) type Turns = Arc<tokio::sync::Mutex<()>>;

/// File work run on the store thread before a commit; its error fails the batch uncommitted.
pub(crate) type Before = Box<dyn FnOnce() -> Result<()> + Send>;
/// File work run on the store thread after a commit attempt, told whether it committed.
pub(crate) type After = Box<dyn FnOnce(bool) + Send>;

/// Operations queued but not yet committed, at most: a stalled store holds up new operations
/// (they wait for a slot, in their turn) instead of letting memory run ever further ahead.
const MAX_QUEUED: usize = 4096;
/// Operations written in one transaction, at most, so that one commit's latency stays short.
const MAX_GROUP: usize = 512;

/// One operation's changes and the file work around them, applied once committed.
pub(crate) struct Batch {
    pub(crate) changes: Vec<Change>,
    pub(crate) before: Option<Before>,
    pub(crate) after: Option<After>,
}

/// One operation's changes, already applied to memory.
struct Applied {
    changes: Vec<Change>,
    after: Option<After>,
    reply: oneshot::Sender<Result<()>>,
    /// Its slot among the [`MAX_QUEUED`], given back once it is answered.
    _slot: OwnedSemaphorePermit,
}

enum Request {
    Applied(Applied),
    Ordered {
        batch: Batch,
        turn: Turn,
        reply: oneshot::Sender<Result<()>>,
    },
    /// A write that changes nothing: whether the store commits again.
    Probe {
        reply: oneshot::Sender<Result<()>>,
    },
    /// Answered once everything queued before it is committed.
    Sync {
        reply: oneshot::Sender<Result<()>>,
    },
    #[cfg(test)]
    WithStore(Box<dyn FnOnce(&mut Store) + Send>),
}

/// What the lease-expiry sweep and the turns need to know of the store's recent past.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// The last commit (or probe) failed.
    failing: AtomicBool,
    /// A commit failed or took longer than the stall limit since the flag was last taken.
    stalled: AtomicBool,
    /// A commit failed after its changes were applied: memory is being reloaded from the
    /// store, and no operation may plan against it until then.
    diverged: AtomicBool,
}

impl Health {
    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// Whether the store stalled since the last call, clearing the flag.
    pub(crate) fn take_stalled(&self) -> bool {
        self.stalled.swap(false, Ordering::SeqCst)
    }

    pub(crate) fn diverged(&self) -> bool {
        self.diverged.load(Ordering::SeqCst)
    }

    fn record(&self, outcome: &Result<()>, took: Duration, stall_after: Duration) {
        self.failing.store(outcome.is_err(), Ordering::SeqCst);
        if outcome.is_err() || took > stall_after {
            self.stalled.store(true, Ordering::SeqCst);
        }
    }
}

/// What the store thread does to memory: apply committed changes of ordered batches, and
/// replace memory with the store's state after a failed group commit.
pub(crate) struct MemoryHooks {
    pub(crate) apply: ApplyFn,
    pub(crate) reload: ReloadFn,
}

/// Applies committed changes to memory.
pub(crate) type ApplyFn = Box<dyn Fn(&[Change]) -> Result<()> + Send>;
/// Replaces memory with the state the store holds.
pub(crate) type ReloadFn = Box<dyn Fn(&Store) -> Result<()> + Send>;

/// The handle of the store thread.
pub(crate) struct Committer {
    requests: mpsc::UnboundedSender<Request>,
    health: Arc<Health>,
    slots: Arc<Semaphore>,
    db_path: PathBuf,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("db_path", &self.db_path)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Starts the thread. A commit slower than `stall_after` counts as a stall: leases may
    /// have gone without renewal meanwhile. The thread ends once the handle is dropped.
    pub(crate) fn spawn(
        store: Store,
        stall_after: Duration,
        turns: Turns,
        memory: MemoryHooks,
    ) -> Result<Self> {
        let db_path = store.db_path().to_owned();
        let health = Arc::new(Health::default());
        let (requests, received) = mpsc::unbounded_channel();
        let thread = StoreThread {
            store,
            requests: received,
            health: Arc::clone(&health),
            stall_after,
            turns,
            memory,
        };
        std::thread::Builder::new()
            .name("ltsweep-store".into())
            .spawn(move || thread.serve())
            .map_err(|e| CoordinatorError::storage(&db_path, e))?;
        Ok(Self {
            requests,
            health,
            slots: Arc::new(Semaphore::new(MAX_QUEUED)),
            db_path,
        })
    }

    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    pub(crate) fn db_path(&self) -> &std::path::Path {
        &self.db_path
    }

    /// Applies `changes` to memory with `apply`, queues them for the next group commit, gives
    /// the turn back, and answers once they are committed. Waits (in its turn) for a free slot
    /// while [`MAX_QUEUED`] operations are queued. A failed commit is answered with its error
    /// after memory was reloaded from the store; `after` is told whether the changes committed.
    pub(crate) async fn commit_applied(
        &self,
        changes: Vec<Change>,
        after: Option<After>,
        turn: Turn,
        apply: impl FnOnce(&[Change]) -> Result<()>,
    ) -> Result<()> {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .map_err(|_| self.gone())?;
        apply(&changes)?;
        let (reply, answer) = oneshot::channel();
        self.send(Request::Applied(Applied {
            changes,
            after,
            reply,
            _slot: slot,
        }))?;
        drop(turn);
        self.answer(answer).await
    }

    /// Runs the batch on the store thread after everything queued before it: `before`, the
    /// commit, then (committed) the changes applied to memory, the turn given back, and
    /// `after`. A failed commit applies nothing.
    pub(crate) async fn commit_ordered(&self, batch: Batch, turn: Turn) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Ordered { batch, turn, reply })?;
        self.answer(answer).await
    }

    /// Answers once everything queued so far is committed (an error if some of it failed).
    /// Given the turn so that nothing is applied between the caller's read and the queueing.
    pub(crate) async fn sync(&self, turn: Turn) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Sync { reply })?;
        drop(turn);
        self.answer(answer).await
    }

    /// Whether the store commits again, for a sweep that found it failing.
    pub(crate) async fn probe(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Probe { reply })?;
        self.answer(answer).await
    }

    /// Runs `f` with the store on its thread (tests break the store this way).
    #[cfg(test)]
    pub(crate) fn with_store(&self, f: impl FnOnce(&mut Store) + Send + 'static) {
        self.send(Request::WithStore(Box::new(f)))
            .expect("the store thread runs");
    }

    fn send(&self, request: Request) -> Result<()> {
        self.requests.send(request).map_err(|_| self.gone())
    }

    async fn answer(&self, answer: oneshot::Receiver<Result<()>>) -> Result<()> {
        answer.await.map_err(|_| self.gone())?
    }

    fn gone(&self) -> CoordinatorError {
        CoordinatorError::Internal(format!(
            "the thread of the store {} stopped; restart the coordinator",
            self.db_path.display()
        ))
    }
}

/// An operation failed with a group commit, answered once memory is reloaded.
struct Refused {
    reply: oneshot::Sender<Result<()>>,
    after: Option<After>,
}

impl From<Applied> for Refused {
    fn from(applied: Applied) -> Self {
        Self {
            reply: applied.reply,
            after: applied.after,
        }
    }
}

/// Tells `after` whether the changes committed, then answers the caller.
fn finish(reply: oneshot::Sender<Result<()>>, after: Option<After>, outcome: Result<()>) {
    if let Some(after) = after {
        after(outcome.is_ok());
    }
    let _ = reply.send(outcome);
}

/// The store thread's state: it serves requests in order until every handle is gone.
struct StoreThread {
    store: Store,
    /// A tokio channel, read blocking by this thread, so that the recovery can wait for a
    /// request and for the turn at once.
    requests: mpsc::UnboundedReceiver<Request>,
    health: Arc<Health>,
    stall_after: Duration,
    turns: Turns,
    memory: MemoryHooks,
}

impl StoreThread {
    fn serve(mut self) {
        let mut next = None;
        loop {
            let request = match next.take() {
                Some(request) => request,
                None => match self.requests.blocking_recv() {
                    Some(request) => request,
                    None => return,
                },
            };
            match request {
                Request::Applied(first) => {
                    // Everything queued behind it joins the same transaction.
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match self.requests.try_recv() {
                            Ok(Request::Applied(applied)) => group.push(applied),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit_group(group, &mut next);
                }
                Request::Ordered { batch, turn, reply } => {
                    let outcome = self.commit_ordered(batch, turn);
                    let _ = reply.send(outcome);
                }
                Request::Probe { reply } => {
                    let _ = reply.send(self.probe());
                }
                Request::Sync { reply } => {
                    let _ = reply.send(Ok(()));
                }
                #[cfg(test)]
                Request::WithStore(f) => f(&mut self.store),
            }
        }
    }

    /// Commits a group in one transaction and answers each of its operations; a failure is
    /// answered once memory is the store's again, with `next` (taken off the queue behind the
    /// group) and everything queued refused.
    fn commit_group(&mut self, group: Vec<Applied>, next: &mut Option<Request>) {
        let started = Instant::now();
        let committed = self
            .store
            .commit_all(group.iter().map(|applied| applied.changes.as_slice()));
        self.health
            .record(&committed, started.elapsed(), self.stall_after);
        match committed {
            Ok(()) => {
                for applied in group {
                    finish(applied.reply, applied.after, Ok(()));
                }
            }
            Err(err) => {
                let mut refused: Vec<Refused> = group.into_iter().map(Refused::from).collect();
                refused.extend(next.take().and_then(|request| self.refuse(request)));
                self.recover(&err, &mut refused);
                for Refused { reply, after } in refused {
                    finish(reply, after, Err(self.copy(&err)));
                }
            }
        }
    }

    fn commit_ordered(&mut self, batch: Batch, turn: Turn) -> Result<()> {
        let Batch {
            changes,
            before,
            after,
        } = batch;
        let started = Instant::now();
        let committed = before
            .map_or(Ok(()), |before| before())
            .and_then(|()| self.store.commit(&changes));
        self.health
            .record(&committed, started.elapsed(), self.stall_after);
        let was_committed = committed.is_ok();
        let outcome = match committed {
            Ok(()) => (self.memory.apply)(&changes),
            Err(err) => {
                warn!(error = %err, "commit failed; the call changed nothing");
                Err(err)
            }
        };
        // Memory holds the commit (or nothing changed): the next operation may plan.
        drop(turn);
        if let Some(after) = after {
            after(was_committed);
        }
        outcome
    }

    fn probe(&mut self) -> Result<()> {
        let started = Instant::now();
        let outcome = self.store.probe();
        self.health
            .record(&outcome, started.elapsed(), self.stall_after);
        outcome
    }

    /// After a failed group commit: memory holds changes the store does not. Refuses turns,
    /// takes every operation queued meanwhile (each planned against those changes) into
    /// `refused`, takes the turn, and replaces memory with the store's state; then turns are
    /// given out again.
    fn recover(&mut self, err: &CoordinatorError, refused: &mut Vec<Refused>) {
        warn!(error = %err, "group commit failed; its calls changed nothing, reloading the state from the store");
        self.health.diverged.store(true, Ordering::SeqCst);
        // An operation holding a turn may be waiting for its ordered batch, a probe or a slot:
        // answer the queue until the turn is free. The lock keeps its place in the turns'
        // queue while requests are answered.
        let mut lock = std::pin::pin!(Arc::clone(&self.turns).lock_owned());
        let turn = futures::executor::block_on(async {
            loop {
                let request = tokio::select! {
                    biased;
                    turn = &mut lock => break turn,
                    request = self.requests.recv() => request,
                };
                match request {
                    Some(request) => refused.extend(self.refuse(request)),
                    // Every handle is gone: nothing more can be queued.
                    None => break (&mut lock).await,
                }
            }
        });
        // Whatever was queued before the turn came was planned against the lost changes.
        self.refuse_queued(refused);
        let mut pauses = Backoff::new(Duration::from_millis(10), Duration::from_secs(5));
        while let Err(reload) = (self.memory.reload)(&self.store) {
            let pause = pauses.fail();
            warn!(error = %reload, retry_in = ?pause, "the state could not be reloaded from the store; trying again");
            std::thread::sleep(pause);
        }
        self.health.diverged.store(false, Ordering::SeqCst);
        info!("state reloaded from the store");
        drop(turn);
    }

    fn refuse_queued(&mut self, refused: &mut Vec<Refused>) {
        while let Ok(request) = self.requests.try_recv() {
            refused.extend(self.refuse(request));
        }
    }

    /// A request queued behind a failed commit: writes (and syncs) are refused, to be answered
    /// once memory is reloaded; an ordered batch gives its turn back at once; probes run.
    fn refuse(&mut self, request: Request) -> Option<Refused> {
        match request {
            Request::Applied(applied) => Some(applied.into()),
            Request::Ordered { batch, turn, reply } => {
                drop(turn);
                Some(Refused {
                    reply,
                    after: batch.after,
                })
            }
            Request::Sync { reply } => Some(Refused { reply, after: None }),
            Request::Probe { reply } => {
                let _ = reply.send(self.probe());
                None
            }
            #[cfg(test)]
            Request::WithStore(f) => {
                f(&mut self.store);
                None
            }
        }
    }

    /// The group's error, for each of its callers.
    fn copy(&self, err: &CoordinatorError) -> CoordinatorError {
        match err {
            CoordinatorError::Storage { path, message } => CoordinatorError::Storage {
                path: path.clone(),
                message: message.clone(),
            },
            other => CoordinatorError::storage(self.store.db_path(), other),
        }
    }
}
