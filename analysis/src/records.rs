//! A sweep's jobs as the report receives them from the coordinator.

use ltsweep_proto::{JobResult, JobSpec, JobState};

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
