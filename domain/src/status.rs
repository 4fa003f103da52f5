//! A sweep's and its jobs' status as a user client reads them: the domain side of `GetSweep`,
//! `ListSweeps` and `WatchSweep`, converted at the boundary (`ltsweep-proto`'s `convert`) like
//! the job types.

use crate::baseline::{BaseKind, Sampler};
use crate::job::{AxisValue, JobId, JobSpec, JobState, LossPlan, SweepId, WorkerId};
use crate::spec::SearchMetric;

/// How many jobs of a sweep are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepCounts {
    pub total: u32,
    pub pending: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
}

impl SweepCounts {
    /// Nothing pending or running: the sweep is over until a retry.
    pub fn all_final(&self) -> bool {
        self.pending == 0 && self.running == 0
    }

    /// The jobs that ended, whichever way.
    pub fn ended(&self) -> u32 {
        self.succeeded + self.failed + self.cancelled
    }

    /// The count of jobs in `state`, to change as a job moves.
    pub fn of_state_mut(&mut self, state: JobState) -> &mut u32 {
        match state {
            JobState::Pending => &mut self.pending,
            JobState::Running => &mut self.running,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
        }
    }
}

/// One job as the coordinator last saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobStatus {
    pub id: JobId,
    pub plan: LossPlan,
    pub seed: u64,
    pub axes: Vec<AxisValue>,
    pub state: JobState,
    /// Leases handed out, preemptions included.
    pub attempts: u32,
    /// The worker holding the lease (running) or that finished the job.
    pub worker: Option<WorkerId>,
    /// Epochs finished, as last reported.
    pub epoch: u32,
    pub epochs_total: u32,
    pub error: Option<String>,
    pub epochs_retrained: u32,
    /// Test accuracy (All) at the last evaluation.
    pub last_accuracy: Option<f64>,
    /// The full spec, when asked for (reports).
    pub spec: Option<JobSpec>,
    pub preemptions: u32,
    /// A stage-2 job's stage-1 job.
    pub parent: Option<JobId>,
    /// A stage-2 job's method and settings, `tau_norm(tau=1)`.
    pub stage2: Option<String>,
    /// The base loss and sampler; `None` from a coordinator of an earlier version.
    pub base: Option<BaseKind>,
    pub sampler: Option<Sampler>,
    /// Where a searched sweep's job stands in its search; `None` for a grid's job (and from a
    /// coordinator of an earlier version).
    pub search: Option<JobSearchStatus>,
}

/// A searched job's rungs: the search metric it read at each rung it reached, and whether it
/// waits at one or was stopped at one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JobSearchStatus {
    /// `(rung epoch, the job's search metric there)`, in rung order.
    pub readings: Vec<(u32, f64)>,
    /// The rung epoch it waits at for its configuration to be promoted.
    pub paused_at: Option<u32>,
    /// The rung epoch the search stopped it at.
    pub stopped_at: Option<u32>,
    /// The metric the readings are of.
    pub metric: Option<SearchMetric>,
}

impl JobStatus {
    /// The job's row of [`SweepStatus::to_json`].
    fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let mut row = json!({
            "id": self.id,
            "plan": self.plan.to_string(),
            "seed": self.seed,
            "state": self.state.as_str(),
            "attempts": self.attempts,
            "worker": self.worker,
            "epoch": self.epoch,
            "epochs": self.epochs_total,
            "epochs_retrained": self.epochs_retrained,
            "preemptions": self.preemptions,
        });
        for axis in &self.axes {
            row[axis.name.as_str()] = json!(axis.value);
        }
        if let Some(error) = &self.error {
            row["error"] = json!(error);
        }
        if let Some(parent) = &self.parent {
            row["after"] = json!(parent);
        }
        if let Some(stage2) = &self.stage2 {
            row["stage2"] = json!(stage2);
        }
        if let Some(base) = self.base {
            row["base"] = json!(base.as_str());
        }
        if let Some(sampler) = self.sampler {
            row["sampler"] = json!(sampler.as_str());
        }
        row
    }

    /// The job's place in the grid on one line, as `validate` shows it: its plan, a base loss
    /// and sampler other than the defaults, its grid axes, and a stage-2 job's method:
    /// `comp=tail,pc=head base=la lr=0.05 stage2=ncm`.
    pub fn label(&self) -> String {
        let mut label = self.plan.to_string();
        if let Some(base) = self.base.filter(|&b| b != BaseKind::Ce) {
            label.push_str(&format!(" base={base}"));
        }
        if let Some(sampler) = self.sampler.filter(|&s| s != Sampler::Instance) {
            label.push_str(&format!(" sampler={sampler}"));
        }
        for axis in &self.axes {
            label.push_str(&format!(" {}={}", axis.name, axis.value));
        }
        if let Some(stage2) = &self.stage2 {
            label.push_str(&format!(" stage2={stage2}"));
        }
        label
    }
}

/// A sweep and every one of its jobs, in grid order.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepStatus {
    pub id: SweepId,
    pub name: String,
    pub counts: SweepCounts,
    pub jobs: Vec<JobStatus>,
    pub cancelled: bool,
    pub submitted_unix_ms: u64,
}

impl SweepStatus {
    /// The status as `ltsweep status --json` prints it, the form scripts read: the counts, and a
    /// row a job with its grid axes as keys and the stage-2, base-loss and sampler keys only
    /// where they apply.
    pub fn to_json(&self) -> serde_json::Value {
        let jobs: Vec<serde_json::Value> = self.jobs.iter().map(JobStatus::to_json).collect();
        let counts = &self.counts;
        serde_json::json!({
            "sweep": self.id,
            "name": self.name,
            "total": counts.total,
            "pending": counts.pending,
            "running": counts.running,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "cancelled": counts.cancelled,
            "jobs": jobs,
        })
    }
}

/// A sweep without its jobs, as `ListSweeps` answers.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSummary {
    pub id: SweepId,
    pub name: String,
    pub counts: SweepCounts,
    pub submitted_unix_ms: u64,
}

/// One change of a watched sweep: a job's new status and the sweep's counts after it.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepEvent {
    pub job: Option<JobStatus>,
    pub counts: Option<SweepCounts>,
}
