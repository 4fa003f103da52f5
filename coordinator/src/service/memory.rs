//! The state in memory: the scheduler behind its lock, and who hears of its changes (watch
//! streams, waiting long polls).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use ltsweep_domain::{JobId, SweepId};
use tokio::sync::{Notify, broadcast};

use super::Result;
use crate::error::CoordinatorError;
use crate::scheduler::{Change, Scheduler, jobs_made_pending};

/// Which job changed: a watcher reads its state from memory when it sends it, so an event
/// holds no copy of the job.
#[derive(Debug)]
pub(super) struct JobChanged {
    pub(super) sweep: SweepId,
    pub(super) job: JobId,
}

/// What `WatchSweep` streams hear of.
#[derive(Clone, Debug)]
pub(super) enum StateEvent {
    Job(Arc<JobChanged>),
    /// Memory was reloaded from the store: events sent before may name changes that were
    /// never committed, so watchers start again from a fresh snapshot.
    Reloaded,
}

/// The state in memory, shared with the store thread, which applies committed changes to it.
pub(super) struct Memory {
    pub(super) scheduler: RwLock<Scheduler>,
    pub(super) events: broadcast::Sender<StateEvent>,
    /// One `notify_one` per job that became pending wakes one long poll, not all of them.
    pub(super) work_available: Notify,
    /// Long polls waiting or about to; an upper bound, so no wake-up is skipped.
    pub(super) pollers: AtomicUsize,
}

impl Memory {
    pub(super) fn read(&self) -> Result<RwLockReadGuard<'_, Scheduler>> {
        self.scheduler.read().map_err(|_| poisoned())
    }

    pub(super) fn write(&self) -> Result<RwLockWriteGuard<'_, Scheduler>> {
        self.scheduler.write().map_err(|_| poisoned())
    }

    /// Applies changes (committed, or not durable), tells the watchers and wakes as many long
    /// polls as jobs became pending.
    pub(super) fn apply(&self, changes: &[Change]) -> Result<()> {
        {
            let mut scheduler = self.write()?;
            scheduler.apply(changes);
            self.publish(&scheduler, changes);
        }
        self.wake_pollers(jobs_made_pending(changes));
        Ok(())
    }

    /// Tells the watchers, if any, which jobs changed. Under the write lock, which watchers
    /// drain their events under (holding the read lock), so no change slips between a
    /// watcher's events and its reads.
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
            let _ = self.events.send(StateEvent::Job(Arc::new(JobChanged {
                sweep: job.sweep().clone(),
                job: job.id.clone(),
            })));
        }
    }

    /// Replaces the state with `scheduler` (the store's, after a failed commit), restarts the
    /// watchers and wakes every long poll: jobs may be pending again.
    pub(super) fn replace(&self, scheduler: Scheduler) -> Result<()> {
        *self.write()? = scheduler;
        let _ = self.events.send(StateEvent::Reloaded);
        self.work_available.notify_waiters();
        Ok(())
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
