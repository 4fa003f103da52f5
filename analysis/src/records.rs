//! A sweep's jobs as the report receives them from the coordinator.

use std::collections::HashMap;

use ltsweep_domain::{
    JobId, JobResult, JobSearchStatus, JobSpec, JobState, SweepId, SweepStatus, WorkerId,
};

use crate::AnalysisError;

/// One job of a sweep as the report sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub spec: JobSpec,
    pub state: JobState,
    pub attempts: u32,
    /// The worker that ran (or runs) the job's latest attempt.
    pub worker: Option<WorkerId>,
    /// Why the job failed, for a failed job.
    pub error: Option<String>,
    /// `Some` for succeeded jobs.
    pub result: Option<JobResult>,
    /// A searched sweep's job: its rung readings and where it waits or was stopped.
    pub search: Option<JobSearchStatus>,
}

/// Every job of one sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRecords {
    pub sweep_id: SweepId,
    pub name: String,
    /// In grid order: Table 1's rows follow the order in which plans first appear here.
    pub jobs: Vec<JobRecord>,
}

impl SweepRecords {
    /// The records in a typed client's answers (the CLI's, the page's): the sweep's status
    /// with specs and its results.
    pub fn from_status(
        status: SweepStatus,
        results: Vec<JobResult>,
    ) -> Result<SweepRecords, AnalysisError> {
        let mut by_job: HashMap<JobId, JobResult> = results
            .into_iter()
            .map(|result| (result.job_id.clone(), result))
            .collect();
        let jobs = status
            .jobs
            .into_iter()
            .map(|job| {
                let spec = job.spec.ok_or_else(|| AnalysisError::BadRecord {
                    job: job.id.to_string(),
                    problem: "the coordinator sent it without its spec".into(),
                })?;
                Ok(JobRecord {
                    state: job.state,
                    attempts: job.attempts,
                    worker: job.worker,
                    error: job.error,
                    result: by_job.remove(&spec.id),
                    search: job.search,
                    spec,
                })
            })
            .collect::<Result<Vec<_>, AnalysisError>>()?;
        Ok(SweepRecords {
            sweep_id: status.id,
            name: status.name,
            jobs,
        })
    }
}
