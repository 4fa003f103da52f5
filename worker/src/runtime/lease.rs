//! The calls a job makes on its lease: progress (with heartbeats), and the final complete,
//! fail or release, retried through transient failures until accepted or refused.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ltsweep_domain::{EpochMetrics, LeaseId, WorkerId};
use ltsweep_proto::RemoteError;
use ltsweep_proto::client::{Failure, Retry};

use super::Shared;
use crate::backoff;

/// The async side of one job: its lease, undelivered progress and checkpoint.
pub(super) struct JobRunner {
    pub(super) shared: Arc<Shared>,
    pub(super) worker_id: WorkerId,
    pub(super) lease_id: LeaseId,
    pub(super) cancel: Arc<AtomicBool>,
    /// The coordinator refused the lease: the job went to another worker.
    pub(super) lost: bool,
    pub(super) cancelled_by_coordinator: bool,
    pub(super) pending: VecDeque<EpochMetrics>,
    /// The newest checkpoint the coordinator has not stored yet.
    pub(super) checkpoint: Option<Unstored>,
    /// The finished job's final weights, until they are uploaded.
    pub(super) model: Option<Vec<u8>>,
}

/// A checkpoint waiting for its upload.
pub(super) struct Unstored {
    pub(super) epoch: u32,
    pub(super) bytes: Vec<u8>,
    /// The epoch of the oldest checkpoint taken since the coordinator last stored one: a newer
    /// checkpoint that replaces an unstored one keeps it, so progress stays held back there.
    held_back_after: u32,
}

impl Unstored {
    /// The checkpoint of `epoch`, in place of `older` (not stored either, if any).
    fn replacing(older: Option<Unstored>, epoch: u32, bytes: Vec<u8>) -> Unstored {
        Unstored {
            epoch,
            bytes,
            held_back_after: older.map_or(epoch, |older| older.held_back_after),
        }
    }
}

impl JobRunner {
    /// The trainer took a checkpoint at `epoch`: it replaces any that waits for its upload.
    pub(super) fn checkpoint_taken(&mut self, epoch: u32, bytes: Vec<u8>) {
        self.checkpoint = Some(Unstored::replacing(self.checkpoint.take(), epoch, bytes));
    }

    /// Sends the undelivered epochs (or a bare heartbeat) until one fails to arrive.
    ///
    /// While a checkpoint waits for its upload, epochs after the oldest one not stored are
    /// held back: the coordinator counts the epochs a resumed attempt trains again from the
    /// progress it has seen, so it must never see progress more than one checkpoint interval
    /// past the checkpoint it holds, however many checkpoints an outage keeps from it.
    pub(super) async fn report(&mut self) {
        loop {
            let held_back_after = self.checkpoint.as_ref().map(|c| c.held_back_after);
            let epoch = self
                .pending
                .front()
                .filter(|m| held_back_after.is_none_or(|limit| m.epoch <= limit))
                .cloned();
            let heartbeat_only = epoch.is_none();
            let reported = self
                .shared
                .client
                .progress(&self.worker_id, &self.lease_id, epoch.as_ref())
                .await;
            match reported {
                Ok(progress) => {
                    if !heartbeat_only {
                        self.pending.pop_front();
                    }
                    if progress.cancel {
                        self.cancelled_by_coordinator = true;
                        self.cancel.store(true, Ordering::Relaxed);
                    }
                }
                Err(err) if err.is_lost_lease() => {
                    self.lost = true;
                    return;
                }
                Err(err) => {
                    // Held for the next heartbeat: the progress is not lost, only late.
                    tracing::warn!(lease = %self.lease_id, %err, "progress not delivered; will retry");
                    return;
                }
            }
            if heartbeat_only {
                return;
            }
        }
    }

    /// Delivers the result, retrying until the coordinator accepts or refuses it.
    pub(super) async fn complete(&self, result: ltsweep_domain::JobResult) {
        let job_id = result.job_id.clone();
        let delivered = self
            .deliver("complete", || {
                self.shared
                    .client
                    .complete(&self.worker_id, &self.lease_id, result.clone())
            })
            .await;
        if delivered {
            tracing::info!(job = %job_id, "job completed");
        }
    }

    /// Fails the job; `retry` says whether another attempt may succeed.
    pub(super) async fn fail(&self, reason: String, retry: Retry) {
        self.report_failure(Failure {
            reason,
            retry,
            epoch: 0,
        })
        .await;
    }

    /// Fails a run whose loss became NaN or infinite during `epoch`: for good, since the same
    /// seed diverges the same way again.
    pub(super) async fn diverged(&self, reason: String, epoch: u32) {
        self.report_failure(Failure {
            reason,
            retry: Retry::Never,
            epoch,
        })
        .await;
    }

    async fn report_failure(&self, failure: Failure) {
        tracing::warn!(lease = %self.lease_id, reason = %failure.reason, retry = ?failure.retry, epoch = failure.epoch, "job failed");
        self.deliver("fail", || {
            self.shared
                .client
                .fail(&self.worker_id, &self.lease_id, &failure)
        })
        .await;
    }

    /// Gives the lease back as preempted: the job is queued again at once, and the attempt
    /// does not count toward its sweep's `max_attempts`.
    pub(super) async fn release(&self, epoch: u32) {
        let delivered = self
            .deliver("give the lease back", || {
                self.shared
                    .client
                    .release_preempted(&self.worker_id, &self.lease_id, epoch)
            })
            .await;
        if delivered {
            tracing::info!(lease = %self.lease_id, epoch, "preempted: lease given back");
        }
    }

    /// Retries a final call through transient failures; true once the coordinator has
    /// accepted it, false once it refused it for good.
    async fn deliver<F, Fut>(&self, what: &str, mut call: F) -> bool
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), RemoteError>>,
    {
        let mut backoff = backoff::for_calls();
        loop {
            match call().await {
                Ok(()) => return true,
                Err(err) if !err.is_transient() => {
                    tracing::warn!(lease = %self.lease_id, %err, "the coordinator refused the {what}; dropping the job");
                    return false;
                }
                Err(err) => {
                    if self.shared.stopping_now() {
                        tracing::warn!(lease = %self.lease_id, "stopping: the {what} is not delivered; the lease will expire");
                        return false;
                    }
                    backoff::wait(&mut backoff, what, &err).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Unstored;

    #[test]
    fn progress_stays_held_back_at_the_oldest_checkpoint_not_stored() {
        let first = Unstored::replacing(None, 3, vec![3]);
        assert_eq!(first.held_back_after, 3);
        // The upload of epoch 3 failed; epoch 6 replaces it, and epoch 9 that one: the
        // coordinator still holds no checkpoint after epoch 0, so no progress past 3 goes out.
        let second = Unstored::replacing(Some(first), 6, vec![6]);
        let third = Unstored::replacing(Some(second), 9, vec![9]);
        assert_eq!(
            (third.epoch, third.bytes, third.held_back_after),
            (9, vec![9], 3)
        );
        // Once one is stored (none waits), the next starts a new interval.
        assert_eq!(Unstored::replacing(None, 12, vec![12]).held_back_after, 12);
    }
}
