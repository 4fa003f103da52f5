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
        if let Some(search) = &self.search {
            // Rung epoch -> the job's search metric there.
            row["rungs"] = search
                .readings
                .iter()
                .map(|(epoch, value)| (epoch.to_string(), json!(value)))
                .collect::<serde_json::Map<_, _>>()
                .into();
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
    /// where they apply (a searched job's `rungs`: rung epoch to its reading there); for a
    /// search, `configurations`, as [`SweepStatus::configurations`].
    pub fn to_json(&self) -> serde_json::Value {
        let jobs: Vec<serde_json::Value> = self.jobs.iter().map(JobStatus::to_json).collect();
        let counts = &self.counts;
        let mut status = serde_json::json!({
            "sweep": self.id,
            "name": self.name,
            "total": counts.total,
            "pending": counts.pending,
            "running": counts.running,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "cancelled": counts.cancelled,
            "jobs": jobs,
        });
        let configurations = self.configurations();
        if !configurations.is_empty() {
            status["configurations"] = configurations
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "configuration": c.label,
                        "seeds": c.seeds,
                        "standing": c.standing.as_str(),
                        "rung": c.standing.rung(),
                        "reading": c.reading,
                    })
                })
                .collect();
        }
        status
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

/// Where a configuration of a search stands (its seeds together), as `status` shows it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RungStanding {
    /// No rung reached by every seed yet.
    Training,
    /// Every seed waits at this rung for the configuration to be promoted.
    Waiting(u32),
    /// Promoted past this rung: training to the next, or to the last epoch.
    Promoted(u32),
    /// Stopped by the search at this rung.
    Stopped(u32),
}

impl RungStanding {
    /// The rung it stands at; `None` before the first.
    pub fn rung(self) -> Option<u32> {
        match self {
            RungStanding::Training => None,
            RungStanding::Waiting(rung)
            | RungStanding::Promoted(rung)
            | RungStanding::Stopped(rung) => Some(rung),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RungStanding::Training => "training",
            RungStanding::Waiting(_) => "waiting",
            RungStanding::Promoted(_) => "promoted",
            RungStanding::Stopped(_) => "stopped",
        }
    }
}

/// One configuration of a search: a job's place in the grid without its seed.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigurationStatus {
    /// As [`JobStatus::label`].
    pub label: String,
    pub seeds: usize,
    pub standing: RungStanding,
    /// The mean of its seeds' search metric at the rung it stands at (a fraction).
    pub reading: Option<f64>,
}

impl SweepStatus {
    /// A searched sweep's configurations, in grid order, with the rung each has reached and
    /// its reading there; empty for a grid (no job with a search record).
    pub fn configurations(&self) -> Vec<ConfigurationStatus> {
        let mut groups: Vec<(String, Vec<&JobStatus>)> = Vec::new();
        for job in self.jobs.iter().filter(|job| job.search.is_some()) {
            let label = job.label();
            match groups.iter_mut().find(|(l, _)| *l == label) {
                Some((_, jobs)) => jobs.push(job),
                None => groups.push((label, vec![job])),
            }
        }
        groups
            .into_iter()
            .map(|(label, jobs)| {
                let searches: Vec<&JobSearchStatus> =
                    jobs.iter().filter_map(|job| job.search.as_ref()).collect();
                let reading_at = |rung: u32| -> Option<f64> {
                    let values: Option<Vec<f64>> = searches
                        .iter()
                        .map(|s| s.readings.iter().find(|r| r.0 == rung).map(|r| r.1))
                        .collect();
                    values.map(|v| v.iter().sum::<f64>() / v.len() as f64)
                };
                // The highest rung every seed has read: the seeds move together.
                let reached = searches
                    .iter()
                    .flat_map(|s| s.readings.iter().map(|r| r.0))
                    .filter(|&rung| reading_at(rung).is_some())
                    .max();
                let stopped = searches.iter().filter_map(|s| s.stopped_at).max();
                let standing = match (stopped, reached) {
                    (Some(rung), _) => RungStanding::Stopped(rung),
                    (None, Some(rung)) if searches.iter().all(|s| s.paused_at == Some(rung)) => {
                        RungStanding::Waiting(rung)
                    }
                    (None, Some(rung)) => RungStanding::Promoted(rung),
                    (None, None) => RungStanding::Training,
                };
                ConfigurationStatus {
                    label,
                    seeds: jobs.len(),
                    reading: standing.rung().and_then(reading_at),
                    standing,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(plan: &str, seed: u64, search: JobSearchStatus) -> JobStatus {
        JobStatus {
            id: JobId(format!("{plan}-{seed}")),
            plan: plan.parse().expect("a plan"),
            seed,
            axes: Vec::new(),
            state: if search.stopped_at.is_some() {
                JobState::Cancelled
            } else {
                JobState::Pending
            },
            attempts: 1,
            worker: None,
            epoch: 2,
            epochs_total: 12,
            error: None,
            epochs_retrained: 0,
            last_accuracy: None,
            spec: None,
            preemptions: 0,
            parent: None,
            stage2: None,
            base: None,
            sampler: None,
            search: Some(search),
        }
    }

    fn at(
        readings: &[(u32, f64)],
        paused_at: Option<u32>,
        stopped_at: Option<u32>,
    ) -> JobSearchStatus {
        JobSearchStatus {
            readings: readings.to_vec(),
            paused_at,
            stopped_at,
            metric: Some(SearchMetric::ValAll),
        }
    }

    #[test]
    fn a_configuration_stands_where_all_its_seeds_are() {
        let sweep = SweepStatus {
            id: SweepId("s".into()),
            name: "s".into(),
            counts: SweepCounts::default(),
            jobs: vec![
                // Promoted past 2: one seed already waits at 6, the other trains to it.
                job(
                    "comp=none,pc=none",
                    0,
                    at(&[(2, 0.5), (6, 0.7)], Some(6), None),
                ),
                job("comp=none,pc=none", 1, at(&[(2, 0.6)], None, None)),
                // Both seeds wait at 2.
                job("comp=tail,pc=none", 0, at(&[(2, 0.3)], Some(2), None)),
                job("comp=tail,pc=none", 1, at(&[(2, 0.4)], Some(2), None)),
                // Stopped at 2.
                job("comp=none,pc=head", 0, at(&[(2, 0.1)], None, Some(2))),
                job("comp=none,pc=head", 1, at(&[(2, 0.2)], None, Some(2))),
                // One seed at its first rung, the other not yet.
                job("comp=all,pc=none", 0, at(&[(2, 0.9)], Some(2), None)),
                job("comp=all,pc=none", 1, at(&[], None, None)),
            ],
            cancelled: false,
            submitted_unix_ms: 0,
        };
        let standings: Vec<(String, RungStanding, Option<i64>)> = sweep
            .configurations()
            .into_iter()
            .map(|c| {
                assert_eq!(c.seeds, 2);
                (
                    c.label,
                    c.standing,
                    c.reading.map(|r| (r * 1000.0).round() as i64),
                )
            })
            .collect();
        assert_eq!(
            standings,
            [
                (
                    "comp=none,pc=none".to_owned(),
                    RungStanding::Promoted(2),
                    Some(550)
                ),
                (
                    "comp=tail,pc=none".to_owned(),
                    RungStanding::Waiting(2),
                    Some(350)
                ),
                (
                    "comp=none,pc=head".to_owned(),
                    RungStanding::Stopped(2),
                    Some(150)
                ),
                ("comp=all,pc=none".to_owned(), RungStanding::Training, None),
            ]
        );
        let json = sweep.to_json();
        assert_eq!(json["configurations"][1]["standing"], "waiting");
        assert_eq!(json["configurations"][1]["rung"], 2);
        assert_eq!(json["configurations"][3]["rung"], serde_json::Value::Null);
        assert_eq!(json["jobs"][0]["rungs"]["6"], 0.7);
    }

    #[test]
    fn a_grid_has_no_configurations_in_its_status() {
        let mut grid = job("comp=none,pc=none", 0, at(&[], None, None));
        grid.search = None;
        let sweep = SweepStatus {
            id: SweepId("g".into()),
            name: "g".into(),
            counts: SweepCounts::default(),
            jobs: vec![grid],
            cancelled: false,
            submitted_unix_ms: 0,
        };
        assert!(sweep.configurations().is_empty());
        let json = sweep.to_json();
        assert!(json.get("configurations").is_none() && json["jobs"][0].get("rungs").is_none());
    }
}
