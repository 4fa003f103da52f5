//! A job's kept model to the coordinator: a finished job's weights uploaded before it
//! completes.

use super::lease::JobRunner;
use crate::backoff::Backoff;

/// How the upload of a finished job's model ended.
pub(super) enum ModelUpload {
    Stored,
    /// The lease was lost or the worker stops at once: the job is no longer this worker's.
    Dropped,
    /// Refused for good (over the size limit, say): the job fails with this reason rather
    /// than succeed without the model its sweep keeps.
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
        let mut backoff = Backoff::default();
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
                    backoff.wait("upload the model", &err).await;
                }
                Err(err) => {
                    return ModelUpload::Refused(format!("its model was not kept: {err}"));
                }
            }
        }
    }
}
