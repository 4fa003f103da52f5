//! A job's kept model to and from the coordinator: a finished stage-1 job's weights uploaded
//! before it completes, a stage-2 job's starting weights downloaded before it starts.

use ltsweep_proto::client::StageOneModel;

use super::lease::JobRunner;
use crate::backoff;

/// Tries of a model download that fails on the way before the job is failed (retryable).
const DOWNLOAD_TRIES: u32 = 5;

/// How the upload of a finished job's model ended.
pub(super) enum ModelUpload {
    Stored,
    /// The lease was lost or the worker stops at once: the job is no longer this worker's.
    Dropped,
    /// Refused for good (over the size limit, say): the job fails with this reason rather
    /// than succeed without the model its stage-2 jobs need.
    Refused(String),
}

impl JobRunner {
    /// Uploads the finished job's model (`epochs` trained), retrying through outages.
    pub(super) async fn upload_model_until_stored(&mut self, epochs: u32) -> ModelUpload {
        let Some(bytes) = self.model.take() else {
            return ModelUpload::Refused(
                "the trainer gave no model although the lease asks to keep it".to_owned(),
            );
        };
        let mut backoff = backoff::for_calls();
        loop {
            match self
                .shared
                .client
                .upload_model(&self.lease_id, epochs, &bytes)
                .await
            {
                Ok(size) => {
                    tracing::debug!(lease = %self.lease_id, size, "model uploaded");
                    return ModelUpload::Stored;
                }
                Err(err) if err.is_lost_lease() => {
                    self.lost = true;
                    return ModelUpload::Dropped;
                }
                Err(err) if err.is_transient() => {
                    if self.shared.stopping_now() {
                        return ModelUpload::Dropped;
                    }
                    backoff::wait(&mut backoff, "upload the model", &err).await;
                }
                Err(err) => {
                    return ModelUpload::Refused(format!("its model was not kept: {err}"));
                }
            }
        }
    }

    /// The stage-1 model a stage-2 job starts from, retried through transient failures;
    /// `None` when it cannot be had. A lost model (NOT_FOUND) sets `lost`: the coordinator
    /// has ended this lease and queued the stage-1 job to train again.
    pub(super) async fn download_model(&mut self) -> Option<Vec<u8>> {
        let mut backoff = backoff::for_calls();
        // Tries so far: transient failures are retried up to DOWNLOAD_TRIES tries in all.
        let mut tries = 1;
        loop {
            match self.shared.client.download_model(&self.lease_id).await {
                Ok(StageOneModel::Model(bytes)) => return Some(bytes),
                Ok(StageOneModel::Lost(err)) => {
                    tracing::warn!(lease = %self.lease_id, %err, "the stage-1 model is lost; the coordinator trains it again and this job waits");
                    self.lost = true;
                    return None;
                }
                Err(err) if err.is_lost_lease() => {
                    self.lost = true;
                    return None;
                }
                // Past the coordinator's stream limits (downloads hold a stream each, and
                // every worker shares one token): busy, not a refusal of this download. Waited
                // out without counting as a try, so a crowd of workers resuming at once loses
                // no model; a lease that ends meanwhile ends the wait with its refusal.
                Err(err) if err.is_exhausted() => {
                    backoff::wait(&mut backoff, "download the model", &err).await;
                }
                Err(err) if err.is_transient() && tries < DOWNLOAD_TRIES => {
                    tries += 1;
                    backoff::wait(&mut backoff, "download the model", &err).await;
                }
                Err(err) => {
                    tracing::warn!(lease = %self.lease_id, %err, "the stage-1 model is unavailable");
                    return None;
                }
            }
        }
    }
}
