//! Leases beside the store: heartbeats renew in memory, last-seen times are committed in the
//! background, and the expiry sweep renews instead of expiring while the store fails or after
//! it stalled.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, warn};

use super::{Coordinator, Result, shut_down};
use crate::expiry::ExpiryPacing;
use crate::scheduler::{Change, LeaseId, Planned, ProgressAnswer, WorkerId};

/// What one lease-expiry sweep did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Round {
    /// The store commits: this many leases had passed their deadline and were taken back.
    Expired(usize),
    /// The store had failed or stalled: every live lease got a fresh deadline instead.
    Renewed,
}

impl Coordinator {
    /// A heartbeat's lease renewal, in memory only: it waits for no commit, so heartbeats keep
    /// leases alive while the store is stalled. A last-seen time that is due is committed in
    /// the background.
    pub(super) fn renew(
        self: &Arc<Self>,
        worker: &WorkerId,
        lease: &LeaseId,
    ) -> Result<ProgressAnswer> {
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

    /// One lease-expiry sweep, which also forgets workers unseen for the worker expiry. While
    /// the store fails, or after it stalled, nothing expires:
    /// leases could not be renewed by calls that waited for the store, so every live lease
    /// gets a fresh deadline instead, and the store is probed (an error means it still fails).
    /// Otherwise leases past their deadline are taken back.
    pub(crate) async fn expiry_round(&self) -> Result<Round> {
        let turn = self.turn().await?;
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
        // Workers unseen for the worker expiry go in the same commit (they hold no lease).
        let (planned, forgotten) = self.read(|s| {
            let mut planned = s.expire(now);
            let workers = s.expire_workers(now);
            planned.changes.extend(workers.changes);
            Ok((planned, workers.answer))
        })?;
        let expired = self.commit(turn, planned, None, None).await?;
        if forgotten > 0 {
            info!(
                forgotten,
                "workers unseen for the worker expiry (--worker-expiry) were forgotten"
            );
        }
        Ok(Round::Expired(expired))
    }
}
