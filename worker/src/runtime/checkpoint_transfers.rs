//! A job's checkpoints to and from the coordinator: uploads kept for a retry while the
//! failure is transient, downloads retried before a job starts from scratch.

use super::lease::JobRunner;
use crate::backoff;

/// Tries of a checkpoint download that fails on the way before the job starts from scratch.
const DOWNLOAD_TRIES: u32 = 5;

impl JobRunner {
    pub(super) async fn upload_checkpoint(&mut self) {
        let Some(unstored) = self.checkpoint.take() else {
            return;
        };
        let epoch = unstored.epoch;
        match self
            .shared
            .client
            .upload_checkpoint(&self.lease_id, epoch, &unstored.bytes)
            .await
        {
            Ok(_) => tracing::debug!(lease = %self.lease_id, epoch, "checkpoint uploaded"),
            Err(err) if err.is_lost_lease() => self.lost = true,
            Err(err) if err.is_transient() => {
                tracing::warn!(lease = %self.lease_id, epoch, %err, "checkpoint not uploaded; will retry");
                // Kept for the next heartbeat unless a newer one arrives first.
                self.checkpoint = Some(unstored);
            }
            Err(err) => {
                // Refused for good (over the size limit, say): the same bytes would be refused
                // again. The job goes on; a later checkpoint may be accepted.
                tracing::warn!(lease = %self.lease_id, epoch, %err, "checkpoint refused; the job goes on without it");
            }
        }
    }

    /// Uploads the pending checkpoint, retrying through outages until it is stored, the lease
    /// is lost, or the worker is told to stop at once.
    pub(super) async fn upload_checkpoint_until_stored(&mut self) {
        let mut shutdown = self.shared.shutdown.clone();
        let mut backoff = backoff::for_calls();
        loop {
            self.upload_checkpoint().await;
            if self.checkpoint.is_none() || self.lost || self.shared.stopping_now() {
                return;
            }
            tokio::select! {
                _ = backoff::wait(&mut backoff, "upload the checkpoint", &"not stored yet") => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// The job's latest checkpoint from the coordinator, retried through transient failures
    /// (an outage, bytes damaged on the way); `None` to start from scratch when there is none
    /// to be had. Sets `lost` when the lease is no longer this worker's.
    pub(super) async fn download_checkpoint(&mut self) -> Option<Vec<u8>> {
        let mut backoff = backoff::for_calls();
        // Tries so far: transient failures are retried up to DOWNLOAD_TRIES tries in all.
        let mut tries = 1;
        loop {
            match self.shared.client.download_checkpoint(&self.lease_id).await {
                Ok(Some((_, bytes))) => return Some(bytes),
                Ok(None) => {
                    tracing::warn!(lease = %self.lease_id, "the coordinator holds no checkpoint; starting from scratch");
                    return None;
                }
                Err(err) if err.is_lost_lease() => {
                    self.lost = true;
                    return None;
                }
                // Past the coordinator's stream limits (downloads hold a stream each, and
                // every worker shares one token): busy, not a refusal of this download. Waited
                // out without counting as a try, so a crowd of workers resuming at once loses
                // no checkpoint; a lease that ends meanwhile ends the wait with its refusal.
                Err(err) if err.is_exhausted() => {
                    backoff::wait(&mut backoff, "download the checkpoint", &err).await;
                }
                Err(err) if err.is_transient() && tries < DOWNLOAD_TRIES => {
                    tries += 1;
                    backoff::wait(&mut backoff, "download the checkpoint", &err).await;
                }
                Err(err) => {
                    tracing::warn!(lease = %self.lease_id, %err, "checkpoint unavailable; starting from scratch");
                    return None;
                }
            }
        }
    }
}
