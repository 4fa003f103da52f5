//! A worker as a user client reads it (`ListWorkers`), and the Slurm job it reports at
//! registration: the domain side, converted at the boundary (`ltsweep-proto`'s `convert`) like
//! the job types.

use crate::job::{JobId, WorkerId};
use crate::time::ago;

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

/// The worker table's columns: `ltsweep workers` prints them and the page shows them, each
/// row from [`WorkerInfo::row`].
pub const WORKER_COLUMNS: [&str; 8] = [
    "worker",
    "host",
    "devices",
    "Slurm job",
    "jobs",
    "version",
    "last seen",
    "alive",
];

impl WorkerInfo {
    /// The worker's row of the table, a plain-text cell per column of [`WORKER_COLUMNS`];
    /// `now_ms` dates its last heartbeat.
    pub fn row(&self, now_ms: u64) -> [String; WORKER_COLUMNS.len()] {
        let devices: Vec<String> = self
            .devices
            .iter()
            .map(|(name, slots)| format!("{name} ×{slots}"))
            .collect();
        [
            self.id.0.clone(),
            self.host.clone(),
            devices.join(", "),
            self.slurm
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string),
            self.running_jobs.len().to_string(),
            self.version.clone(),
            ago(now_ms, self.last_seen_unix_ms),
            if self.alive { "yes" } else { "no" }.to_owned(),
        ]
    }
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

    #[test]
    fn a_worker_row_has_a_cell_per_column() {
        let worker = WorkerInfo {
            id: WorkerId("w-1".into()),
            host: "node7".into(),
            devices: vec![("cpu".into(), 2), ("cuda:0".into(), 1)],
            version: "0.1.0".into(),
            last_seen_unix_ms: 88_000,
            running_jobs: vec![JobId("j1".into())],
            alive: true,
            slurm: Some(SlurmPlacement {
                job_id: "4242".into(),
                array_task_id: "0".into(),
            }),
        };
        assert_eq!(
            worker.row(100_000),
            [
                "w-1",
                "node7",
                "cpu ×2, cuda:0 ×1",
                "4242_0",
                "1",
                "0.1.0",
                "12 s ago",
                "yes"
            ]
        );
    }
}
