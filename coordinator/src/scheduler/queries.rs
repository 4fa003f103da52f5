//! Reads of the state, and the check of its invariants.

use std::collections::HashMap;

use ltsweep_domain::{JobId, JobState, SweepId};

use super::shared::Job;
use super::state::{Sweep, SweepCounts, Worker, WorkerId};
use super::{Result, Scheduler, SchedulerError};

/// A worker is alive while it was seen within this many heartbeat intervals.
const ALIVE_HEARTBEATS: u64 = 3;

impl Scheduler {
    pub fn sweep(&self, id: &SweepId) -> Option<&Sweep> {
        self.sweeps.get(id)
    }

    /// The most recently submitted sweep.
    pub fn latest_sweep(&self) -> Option<&Sweep> {
        self.sweep_order.last().and_then(|id| self.sweeps.get(id))
    }

    /// Every sweep, in submission order.
    pub fn sweeps(&self) -> impl Iterator<Item = &Sweep> {
        self.sweep_order.iter().filter_map(|id| self.sweeps.get(id))
    }

    pub fn job(&self, id: &JobId) -> Option<&Job> {
        self.jobs.get(id)
    }

    /// A sweep's jobs in grid order.
    pub fn jobs_of<'a>(&'a self, sweep: &'a Sweep) -> impl Iterator<Item = &'a Job> + 'a {
        sweep.jobs.iter().filter_map(|id| self.jobs.get(id))
    }

    /// Every worker, in registration order.
    pub fn workers(&self) -> Vec<&Worker> {
        let mut workers: Vec<&Worker> = self.workers.values().collect();
        workers.sort_by_key(|w| w.record.ordinal);
        workers
    }

    pub fn worker(&self, id: &WorkerId) -> Option<&Worker> {
        self.workers.get(id)
    }

    /// Seen within three heartbeat intervals, or holding a live lease.
    pub fn is_alive(&self, worker: &Worker, now_ms: u64) -> bool {
        !worker.running.is_empty()
            || now_ms.saturating_sub(worker.record.last_seen_ms) <= self.alive_window_ms()
    }

    /// How long after it was last seen a worker still counts as alive.
    pub(super) fn alive_window_ms(&self) -> u64 {
        ALIVE_HEARTBEATS * self.timing.heartbeat_interval_ms
    }

    /// A sweep's succeeded jobs, in grid order: those whose results the store holds.
    pub fn succeeded(&self, sweep: &SweepId) -> Result<Vec<JobId>> {
        let sweep = self.sweep_or_not_found(sweep)?;
        Ok(self
            .jobs_of(sweep)
            .filter(|job| job.runtime.state == JobState::Succeeded)
            .map(|job| job.id.clone())
            .collect())
    }

    /// How many jobs wait in the queue.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Checks that the derived indices agree with the jobs (tests and debugging): every job is
    /// in exactly one of the queue, the running set and the final states.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let mut counts: HashMap<&SweepId, SweepCounts> = HashMap::new();
        let mut queued = 0;
        let mut running = 0;
        for (id, job) in &self.jobs {
            let rt = &job.runtime;
            let sweep = self
                .sweeps
                .get(job.sweep())
                .ok_or_else(|| format!("job {id} of unknown sweep"))?;
            *counts
                .entry(job.sweep())
                .or_default()
                .of_state_mut(rt.state) += 1;
            counts.entry(job.sweep()).or_default().total += 1;
            match rt.state {
                JobState::Pending => {
                    // A stage-2 job is queued exactly when its stage-1 job succeeded.
                    let parent_ready = job
                        .parent()
                        .map(|p| self.jobs.get(p).map(|p| p.runtime.state));
                    match (parent_ready, rt.queue_seq) {
                        (Some(Some(JobState::Succeeded)), None) => {
                            return Err(format!(
                                "stage-2 job {id} waits although its stage-1 job succeeded"
                            ));
                        }
                        (Some(Some(JobState::Failed)), _) => {
                            return Err(format!(
                                "stage-2 job {id} is pending although its stage-1 job failed"
                            ));
                        }
                        (Some(Some(state)), Some(_)) if state != JobState::Succeeded => {
                            return Err(format!(
                                "stage-2 job {id} is queued while its stage-1 job is {state}"
                            ));
                        }
                        (Some(None), _) => {
                            return Err(format!("stage-2 job {id} has no stage-1 job"));
                        }
                        (None, None) if rt.paused_at().is_none() => {
                            return Err(format!("pending job {id} not queued"));
                        }
                        _ => {}
                    }
                    if let Some(seq) = rt.queue_seq {
                        queued += 1;
                        if self.queue.get(&seq) != Some(id) {
                            return Err(format!("pending job {id} not in the queue at {seq}"));
                        }
                    }
                    if rt.lease.is_some() {
                        return Err(format!("pending job {id} holds a lease"));
                    }
                    if sweep.record.cancelled {
                        return Err(format!("job {id} of a cancelled sweep is pending"));
                    }
                }
                JobState::Running => {
                    running += 1;
                    let live = rt
                        .lease
                        .as_ref()
                        .ok_or(format!("running job {id} unleased"))?;
                    if rt.queue_seq.is_some() {
                        return Err(format!("running job {id} also queued"));
                    }
                    if !self.deadlines.contains(&(live.deadline_ms, id.clone())) {
                        return Err(format!("running job {id} has no deadline entry"));
                    }
                    if let Some(worker) = self.workers.get(&live.worker)
                        && !worker.running.contains(id)
                    {
                        return Err(format!("running job {id} missing from its worker"));
                    }
                }
                _ => {
                    if rt.queue_seq.is_some() || rt.lease.is_some() {
                        return Err(format!("final job {id} queued or leased"));
                    }
                }
            }
            if rt
                .queue_seq
                .is_some_and(|seq| seq >= self.counters.next_queue_seq)
            {
                return Err(format!("job {id} queued past the counter"));
            }
        }
        if queued != self.queue.len() || running != self.deadlines.len() {
            return Err("queue or deadline index holds entries of no job".into());
        }
        let leases: usize = self.workers.values().map(|w| w.running.len()).sum();
        if leases > running {
            return Err("a worker lists a lease no job holds".into());
        }
        for (id, sweep) in &self.sweeps {
            let expected = counts.get(id).copied().unwrap_or_default();
            if sweep.counts != expected {
                return Err(format!(
                    "sweep {id} counts {:?}, jobs say {expected:?}",
                    sweep.counts
                ));
            }
        }
        Ok(())
    }

    pub(super) fn sweep_or_not_found(&self, sweep: &SweepId) -> Result<&Sweep> {
        self.sweeps
            .get(sweep)
            .ok_or_else(|| SchedulerError::NotFound {
                kind: "sweep",
                id: sweep.to_string(),
                hint: "`ltsweep sweeps` lists them",
            })
    }

    /// A job the indices name: they only ever name known jobs.
    pub(super) fn job_ref(&self, id: &JobId) -> &Job {
        &self.jobs[id]
    }

    pub(super) fn sweep_ref(&self, id: &SweepId) -> &Sweep {
        &self.sweeps[id]
    }
}
