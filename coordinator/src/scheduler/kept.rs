//! Kept models: a job's final weights, which its worker uploads before it completes the job
//! and the coordinator keeps when the sweep says `keep_models`, until the sweep is deleted.

use ltsweep_proto::{JobId, JobState, SweepId};

use super::model::{Job, KeptModel, LeaseId};
use super::plan::{Change, Planned};
use super::{Result, Scheduler, SchedulerError};

impl Scheduler {
    /// Whether a job's final weights are to be kept: its sweep keeps its models.
    pub fn keeps_model(&self, job: &Job) -> bool {
        self.sweep_ref(job.sweep()).record.keep_models
    }

    /// Records a model that is safely on disk, under the job's live lease (before it
    /// completes); renews the lease. Answers the model it replaces, whose file goes once this
    /// is committed.
    pub fn record_model(
        &self,
        now_ms: u64,
        lease: &LeaseId,
        model: KeptModel,
    ) -> Result<Planned<Option<KeptModel>>> {
        let job_id = self.check_upload(lease)?;
        let job = self.job_ref(&job_id);
        if !self.keeps_model(job) {
            return Err(SchedulerError::invalid(
                "lease_id",
                format!(
                    "job {job_id} keeps no model (its sweep does not keep models): complete it without uploading one"
                ),
            ));
        }
        let mut runtime = job.runtime.clone();
        if let Some(live) = &mut runtime.lease {
            live.deadline_ms = now_ms + self.timing.lease_ttl_ms;
        }
        let previous = runtime.model.replace(Box::new(model)).map(|m| *m);
        Ok(Planned {
            answer: previous,
            changes: vec![Change::JobUpdated {
                job: job_id,
                runtime,
            }],
        })
    }

    /// A job's kept model, for a user's download.
    pub fn kept_model(&self, sweep: &SweepId, job_id: &JobId) -> Result<KeptModel> {
        let record = self.sweep_or_not_found(sweep)?;
        let job = self
            .jobs
            .get(job_id)
            .filter(|job| job.sweep() == &record.record.id)
            .ok_or_else(|| SchedulerError::NotFound {
                kind: "job",
                id: job_id.to_string(),
                hint: "`ltsweep status SWEEP` lists the sweep's jobs",
            })?;
        if let Some(model) = &job.runtime.model {
            return Ok((**model).clone());
        }
        let why = if job.runtime.state != JobState::Succeeded {
            "it has not succeeded"
        } else if !self.keeps_model(job) {
            "its sweep does not keep models: submit it with `keep_models = true`"
        } else {
            "its worker did not upload one"
        };
        Err(SchedulerError::Precondition(format!(
            "job {job_id} has no kept model: {why}"
        )))
    }
}
