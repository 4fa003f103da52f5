//! The store's own thread: every SQLite commit and every checkpoint file operation runs there,
//! never on a tokio worker, so health, reflection and in-memory reads answer while a commit is
//! slow (an fsync on a loaded disk, a database locked by another process).
//!
//! The thread owns the [`Store`]; calls send it a [`Batch`] over a channel and await the
//! answer on a oneshot. After a batch commits, the thread itself applies the changes to memory
//! and only then lets the next operation plan (it holds the caller's [`Turn`] until then), so
//! a call whose client hung up mid-commit still leaves memory equal to the store.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::warn;

use crate::error::CoordinatorError;
use crate::scheduler::Change;
use crate::store::Store;

type Result<T> = std::result::Result<T, CoordinatorError>;

/// The right to plan, commit and apply one operation; see `Coordinator::turn`.
pub(crate) type Turn = tokio::sync::OwnedMutexGuard<()>;

/// File work run on the store thread before a commit; its error fails the batch uncommitted.
pub(crate) type Before = Box<dyn FnOnce() -> Result<()> + Send>;
/// File work run on the store thread after a commit attempt, told whether it committed.
pub(crate) type After = Box<dyn FnOnce(bool) + Send>;

/// One operation's changes and the file work around them.
pub(crate) struct Batch {
    pub(crate) changes: Vec<Change>,
    pub(crate) before: Option<Before>,
    pub(crate) after: Option<After>,
}

enum Request {
    Commit {
        batch: Batch,
        turn: Turn,
        reply: oneshot::Sender<Result<()>>,
    },
    /// A write that changes nothing: whether the store commits again.
    Probe { reply: oneshot::Sender<Result<()>> },
    #[cfg(test)]
    WithStore(Box<dyn FnOnce(&mut Store) + Send>),
}

/// What the lease-expiry sweep needs to know of the store's recent past.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// The last commit (or probe) failed.
    failing: AtomicBool,
    /// A commit failed or took longer than the stall limit since the flag was last taken.
    stalled: AtomicBool,
}

impl Health {
    pub(crate) fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// Whether the store stalled since the last call, clearing the flag.
    pub(crate) fn take_stalled(&self) -> bool {
        self.stalled.swap(false, Ordering::SeqCst)
    }

    fn record(&self, outcome: &Result<()>, took: Duration, stall_after: Duration) {
        self.failing.store(outcome.is_err(), Ordering::SeqCst);
        if outcome.is_err() || took > stall_after {
            self.stalled.store(true, Ordering::SeqCst);
        }
    }
}

/// The handle of the store thread.
pub(crate) struct Committer {
    requests: mpsc::Sender<Request>,
    health: Arc<Health>,
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
        apply: impl Fn(&[Change]) -> Result<()> + Send + 'static,
    ) -> Result<Self> {
        let db_path = store.db_path().to_owned();
        let health = Arc::new(Health::default());
        let (requests, received) = mpsc::channel();
        let thread_health = Arc::clone(&health);
        std::thread::Builder::new()
            .name("ltsweep-store".into())
            .spawn(move || serve_requests(store, &received, &thread_health, stall_after, &apply))
            .map_err(|e| CoordinatorError::storage(&db_path, e))?;
        Ok(Self {
            requests,
            health,
            db_path,
        })
    }

    pub(crate) fn health(&self) -> &Health {
        &self.health
    }

    /// Runs the batch on the store thread: `before`, the commit, then (committed) the changes
    /// applied to memory, the turn given back, and `after`. A failed commit applies nothing.
    pub(crate) async fn commit(&self, batch: Batch, turn: Turn) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Request::Commit { batch, turn, reply })?;
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

/// The store thread: one request at a time, in order, until every handle is gone.
fn serve_requests(
    mut store: Store,
    requests: &mpsc::Receiver<Request>,
    health: &Health,
    stall_after: Duration,
    apply: &impl Fn(&[Change]) -> Result<()>,
) {
    while let Ok(request) = requests.recv() {
        match request {
            Request::Commit { batch, turn, reply } => {
                let Batch {
                    changes,
                    before,
                    after,
                } = batch;
                let started = Instant::now();
                let committed = before
                    .map_or(Ok(()), |before| before())
                    .and_then(|()| store.commit(&changes));
                health.record(&committed, started.elapsed(), stall_after);
                let was_committed = committed.is_ok();
                let outcome = match committed {
                    Ok(()) => apply(&changes),
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
                let _ = reply.send(outcome);
            }
            Request::Probe { reply } => {
                let started = Instant::now();
                let outcome = store.probe();
                health.record(&outcome, started.elapsed(), stall_after);
                let _ = reply.send(outcome);
            }
            #[cfg(test)]
            Request::WithStore(f) => f(&mut store),
        }
    }
}
