//! A sweep's jobs as the report receives them from the coordinator.

use std::collections::HashMap;

use ltsweep_proto::{JobResult, JobSpec, JobState, SweepStatus, pb};

use crate::AnalysisError;

/// One job of a sweep as the report sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    pub spec: JobSpec,
    pub state: JobState,
    pub attempts: u32,
    /// The worker that ran (or runs) the job's latest attempt.
    pub worker: Option<String>,
    /// Why the job failed, for a failed job.
    pub error: Option<String>,
    /// `Some` for succeeded jobs.
    pub result: Option<JobResult>,
}

/// Every job of one sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepRecords {
    pub sweep_id: String,
    pub name: String,
    /// In grid order: Table 1's rows follow the order in which plans first appear here.
    pub jobs: Vec<JobRecord>,
}

impl SweepRecords {
    /// The records in the coordinator's answers: the sweep's status with specs (`GetSweep`
    /// with `with_specs`) and the results it streams (`GetResults`).
    pub fn from_wire(
        status: pb::SweepStatus,
        results: Vec<pb::JobResult>,
    ) -> Result<SweepRecords, AnalysisError> {
        let mut by_job: HashMap<String, JobResult> = HashMap::new();
        for result in results {
            let job = result.job_id.clone();
            let result = JobResult::try_from(result).map_err(|e| AnalysisError::BadRecord {
                job: job.clone(),
                problem: format!("its result from the coordinator: {e}"),
            })?;
            by_job.insert(job, result);
        }
        let jobs = status
            .jobs
            .into_iter()
            .map(|job| {
                let bad = |problem: String| AnalysisError::BadRecord {
                    job: job.job_id.clone(),
                    problem,
                };
                let spec = job
                    .spec
                    .clone()
                    .ok_or_else(|| bad("the coordinator sent it without its spec".into()))
                    .and_then(|spec| {
                        JobSpec::try_from(spec).map_err(|e| bad(format!("its spec: {e}")))
                    })?;
                let state =
                    JobState::try_from(job.state).map_err(|e| bad(format!("its state: {e}")))?;
                Ok(JobRecord {
                    state,
                    attempts: job.attempts,
                    worker: Some(job.worker_id).filter(|w| !w.is_empty()),
                    error: Some(job.error).filter(|e| !e.is_empty()),
                    result: by_job.remove(spec.id.as_str()),
                    spec,
                })
            })
            .collect::<Result<Vec<_>, AnalysisError>>()?;
        Ok(SweepRecords {
            sweep_id: status.sweep_id,
            name: status.name,
            jobs,
        })
    }

    /// The records in a typed client's answers: the sweep's status with specs and its
    /// results.
    pub fn from_status(
        status: SweepStatus,
        results: Vec<JobResult>,
    ) -> Result<SweepRecords, AnalysisError> {
        let mut by_job: HashMap<String, JobResult> = results
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
                    result: by_job.remove(spec.id.as_str()),
                    spec,
                })
            })
            .collect::<Result<Vec<_>, AnalysisError>>()?;
        Ok(SweepRecords {
            sweep_id: status.id.0,
            name: status.name,
            jobs,
        })
    }
}
