//! A worker as a user client reads it (`ListWorkers`), and the Slurm job it reports at
//! registration: the domain side, converted at the boundary (`ltsweep-proto`'s `convert`) like
//! the job types.

use crate::job::{JobId, WorkerId};

/// A worker's Slurm job and array task, as it reported them at registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlurmPlacement {
    pub job_id: String,
    /// Empty when the job is not an array.
    pub array_task_id: String,
}

/// `1234_0` for a task of a job array (as `squeue` writes it), `1234` for a plain job.
impl std::fmt::Display for SlurmPlacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.array_task_id.as_str() {
            "" => f.write_str(&self.job_id),
            task => write!(f, "{}_{task}", self.job_id),
        }
    }
}

/// A registered worker, as `ltsweep workers` and the page list it.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerInfo {
    pub id: WorkerId,
    pub host: String,
    /// Each device's name ("cpu", "cuda:N") and its slots.
    pub devices: Vec<(String, u32)>,
    /// The ltsweep version it runs.
    pub version: String,
    pub last_seen_unix_ms: u64,
    /// The jobs it holds leases on.
    pub running_jobs: Vec<JobId>,
    /// Seen within its lease's time to live.
    pub alive: bool,
    pub slurm: Option<SlurmPlacement>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_placements_print_as_squeue_names_them() {
        let placement = |job: &str, task: &str| SlurmPlacement {
            job_id: job.into(),
            array_task_id: task.into(),
        };
        assert_eq!(placement("4242", "").to_string(), "4242");
        assert_eq!(placement("4242", "7").to_string(), "4242_7");
    }
}
