//! Asynchronous successive halving (Li et al. 2020, "A System for Massively Parallel
//! Hyperparameter Tuning") over a sweep's configurations, as scheduler state and operations.
//!
//! A configuration is a stage-1 job's settings without its seed: its jobs (one per seed) move
//! together. Each job's lease carries the rung it trains to ([`Lease::stop_after`]); the worker
//! stops there with a checkpoint and gives the lease back, and the job *pauses*: pending, out of
//! the queue, keeping its checkpoint and its metric at the rung (read from the progress report
//! of that epoch, an evaluation epoch of every job of a search). A configuration has *reached* a
//! rung when every one of its jobs has a reading there; it is judged on their mean. When the
//! configuration's last job pauses, every configuration paused at a rung is promoted that is
//! among the top `1 / reduction_factor` of those that reached the rung so far (no barrier: a
//! rung with fewer than `reduction_factor` arrivals promotes none yet, and a later arrival may
//! promote one that waited). A promoted configuration's jobs go back to the queue together and
//! resume from their checkpoints at the rung, so no epoch is trained twice. A sweep's
//! configurations are finite: once none of its jobs is queued or running, the best waiting
//! configuration of the highest rung that has promoted none goes on (as synchronous successive
//! halving keeps at least one a rung, so the best trains to the last epoch); when every such
//! rung has promoted one, the configurations still waiting are stopped where they wait
//! (cancelled, with the rung in their record and error), and the sweep is over.
//!
//! A budget (`budget_epochs`, `budget_jobs`) bounds what the search commits to: every job of a
//! started configuration, to the epoch it trains to now. A configuration is leased only if its
//! first rung fits (else the configurations that cannot start are cancelled), and promoted only
//! if its next stretch fits.
//!
//! Readings, pauses, promotions and stops are job updates like any other, committed before they
//! are applied, so a restarted coordinator holds the same promotions. The checks read the
//! sweep's jobs: O(jobs of the sweep) per pause or end of a searched sweep's job.
//!
//! Hyperband runs several such searches side by side, one a bracket: the configurations are
//! shared out among the brackets once, by grid order ([`hyperband_brackets`]), bracket `b`'s
//! configurations train straight to rung `b` and are judged from there on, and each bracket
//! promotes among its own configurations only. ASHA is the one bracket that starts at rung 0.
//!
//! [`Lease::stop_after`]: super::Lease::stop_after

use std::collections::BTreeMap;

use ltsweep_domain::{
    EpochMetrics, JobId, JobState, SearchMethod, SearchMetric, SweepId, SweepSpec,
    hyperband_brackets,
};
use serde::{Deserialize, Serialize};

use super::graph::{planned, upsert};
use super::plan::Change;
use super::shared::Job;
use super::state::{Counters, JobRuntime};
use super::{Scheduler, Sweep};

/// A searched sweep's rungs and how it judges them, read from its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchPlan {
    /// Epochs (1-based, counted as finished), increasing, each below the last epoch.
    pub rungs: Vec<u32>,
    pub reduction_factor: u32,
    pub metric: SearchMetric,
    /// The jobs' last epoch.
    pub epochs: u32,
    /// The most epochs the search commits to, all jobs together.
    pub budget_epochs: Option<u64>,
    /// The most jobs the search starts.
    pub budget_jobs: Option<u32>,
    /// Hyperband's brackets; 1 for ASHA.
    pub brackets: u32,
}

impl SearchPlan {
    /// The plan of a spec that asks for ASHA; `None` for a grid.
    pub fn of(spec: &SweepSpec) -> Option<SearchPlan> {
        (spec.search.method != SearchMethod::Grid).then(|| SearchPlan {
            rungs: spec.rungs(),
            reduction_factor: spec.search.reduction_factor(),
            metric: spec.search.metric(),
            epochs: spec.train.epochs.first(),
            budget_epochs: spec.search.budget_epochs,
            budget_jobs: spec.search.budget_jobs,
            brackets: spec.brackets(),
        })
    }

    /// Each configuration's bracket (the rung it is first judged at), in grid order.
    pub(super) fn brackets_of(&self, configurations: usize) -> Vec<usize> {
        if self.brackets <= 1 {
            return vec![0; configurations];
        }
        hyperband_brackets(
            configurations,
            self.rungs.len(),
            self.brackets,
            self.reduction_factor,
        )
        .into_iter()
        .map(|b| b as usize)
        .collect()
    }

    /// The epoch a job promoted past `k` rungs trains to.
    fn bound(&self, k: usize) -> u32 {
        self.rungs.get(k).copied().unwrap_or(self.epochs)
    }

    /// Whether `epochs` and `jobs` more fit the budget beside what is committed.
    fn affords(&self, committed: Committed, epochs: u64, jobs: u64) -> bool {
        self.budget_epochs
            .is_none_or(|budget| committed.epochs + epochs <= budget)
            && self
                .budget_jobs
                .is_none_or(|budget| committed.jobs + jobs <= u64::from(budget))
    }

    /// The plan of a stored spec's text: a spec that no longer validates (an earlier version's)
    /// is a grid, as it was when submitted.
    pub fn of_text(spec_toml: &str) -> Option<SearchPlan> {
        if !SweepSpec::searches(spec_toml) {
            return None;
        }
        SweepSpec::parse(spec_toml)
            .ok()
            .and_then(|spec| SearchPlan::of(&spec))
    }
}

/// A searched job's record: its metric at each rung it reached and how far it may train.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobSearch {
    /// The metric at each rung reached, in rung order; a non-finite reading is not kept.
    #[serde(default)]
    pub readings: Vec<RungReading>,
    /// The rungs its configuration was promoted past: it trains to the rung of this index
    /// next, or to the last epoch past the last rung.
    #[serde(default)]
    pub promoted: u32,
    /// The rung epoch it waits at for its configuration to be promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<u32>,
    /// The rung epoch it was stopped at: its configuration was not promoted past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RungReading {
    pub epoch: u32,
    pub value: f64,
}

/// The rungs a job's configuration was promoted past, counting those below its bracket's first
/// as passed.
fn promoted(search: Option<&JobSearch>, bracket: usize) -> usize {
    search.map_or(0, |s| s.promoted as usize).max(bracket)
}

impl JobSearch {
    fn reading(&self, epoch: u32) -> Option<f64> {
        self.readings
            .iter()
            .find(|r| r.epoch == epoch)
            .map(|r| r.value)
    }
}

impl Scheduler {
    pub(super) fn search_plan(&self, sweep: &SweepId) -> Option<&SearchPlan> {
        self.sweeps.get(sweep)?.record.search.as_ref()
    }

    /// The bracket of `job`'s configuration: 0 under ASHA.
    fn bracket(&self, plan: &SearchPlan, job: &Job) -> usize {
        if plan.brackets <= 1 {
            return 0;
        }
        let configurations = configurations(self, self.sweep_ref(job.sweep()));
        let index = configurations
            .iter()
            .position(|jobs| jobs.contains(&job.id))
            .expect("a job is in one of its sweep's configurations");
        plan.brackets_of(configurations.len())[index]
    }

    /// The epoch a lease of `job` trains to: its next rung past its checkpoint, or `None` for
    /// the last epoch (a grid's job, a search's past its last rung, or one stopped by the
    /// search that a retry sends on).
    pub(super) fn stop_after(&self, job: &Job, runtime: &JobRuntime) -> Option<u32> {
        let plan = self.search_plan(job.sweep())?;
        if runtime
            .search
            .as_ref()
            .is_some_and(|s| s.stopped_at.is_some())
        {
            return None;
        }
        let promoted = promoted(runtime.search.as_deref(), self.bracket(plan, job));
        let done = runtime.checkpoint.as_ref().map_or(0, |c| c.epoch);
        plan.rungs
            .iter()
            .skip(promoted)
            .copied()
            .find(|&rung| rung > done)
    }

    /// Keeps the metric of a rung epoch's report in the job's record.
    pub(super) fn read_rung(&self, job: &Job, runtime: &mut JobRuntime, metrics: &EpochMetrics) {
        let Some(plan) = self.search_plan(job.sweep()) else {
            return;
        };
        if !plan.rungs.contains(&metrics.epoch) {
            return;
        }
        let Some(value) = metrics
            .val_accuracy
            .as_ref()
            .and_then(|val| plan.metric.read(val))
            .filter(|v| v.is_finite())
        else {
            return;
        };
        let search = runtime.search.get_or_insert_with(Box::default);
        search.readings.retain(|r| r.epoch != metrics.epoch);
        search.readings.push(RungReading {
            epoch: metrics.epoch,
            value,
        });
        search.readings.sort_by_key(|r| r.epoch);
    }

    /// Whether a lease given back at `epoch` is a pause at the rung the lease trained to: its
    /// checkpoint and its reading at the rung are in.
    pub(super) fn pauses_at_rung(&self, job: &Job, runtime: &JobRuntime) -> Option<u32> {
        let plan = self.search_plan(job.sweep())?;
        let search = runtime.search.as_ref().filter(|s| s.stopped_at.is_none())?;
        let rung = *plan
            .rungs
            .get(promoted(Some(search), self.bracket(plan, job)))?;
        let checkpoint = runtime.checkpoint.as_ref()?.epoch;
        (checkpoint == rung && search.reading(rung).is_some()).then_some(rung)
    }

    /// Promotes the configurations the changes' pauses entitle, and stops the waiting ones of
    /// a searched sweep with nothing left queued or running. Changes of jobs of grids are left
    /// as they are.
    pub(super) fn settle_search(&self, changes: &mut Vec<Change>) {
        let mut sweeps: Vec<&SweepId> = Vec::new();
        for change in changes.iter() {
            if let Change::JobUpdated { job, .. } = change
                && let Some(known) = self.jobs.get(job)
                && self.search_plan(known.sweep()).is_some()
                && !sweeps.contains(&known.sweep())
            {
                sweeps.push(known.sweep());
            }
        }
        for sweep in sweeps {
            let sweep = self.sweep_ref(sweep);
            let plan = sweep.record.search.clone().expect("a searched sweep");
            self.promote(sweep, &plan, changes);
        }
    }

    fn promote(&self, sweep: &Sweep, plan: &SearchPlan, changes: &mut Vec<Change>) {
        let configurations = configurations(self, sweep);
        let brackets = plan.brackets_of(configurations.len());
        for bracket in 0..plan.brackets.max(1) as usize {
            for (k, &rung) in plan.rungs.iter().enumerate().skip(bracket) {
                let standing = self.standing(&configurations, &brackets, bracket, k, rung, changes);
                let top = standing.reached.len() / plan.reduction_factor as usize;
                for &(_, index) in &standing.reached[..top] {
                    if standing.waiting.contains(&index)
                        && self.affords_promotion(
                            plan,
                            &configurations,
                            &brackets,
                            index,
                            k,
                            changes,
                        )
                    {
                        self.promote_one(&configurations[index], k, changes);
                    }
                }
            }
        }
        if self.idle(sweep, changes) && !sweep.record.cancelled {
            self.settle_idle(sweep, plan, &configurations, &brackets, changes);
        }
    }

    /// A sweep with nothing queued or running would wait for ever: as synchronous successive
    /// halving keeps at least one configuration a rung, the best waiting configuration of the
    /// highest rung that has promoted none of those that reached it goes on; with none such,
    /// every waiting configuration is stopped where it waits, and the sweep is over.
    fn settle_idle(
        &self,
        sweep: &Sweep,
        plan: &SearchPlan,
        configurations: &[Vec<JobId>],
        brackets: &[usize],
        changes: &mut Vec<Change>,
    ) {
        for bracket in 0..plan.brackets.max(1) as usize {
            for (k, &rung) in plan.rungs.iter().enumerate().skip(bracket).rev() {
                let standing = self.standing(configurations, brackets, bracket, k, rung, changes);
                if standing.promoted == 0
                    && let Some(&(_, index)) = standing
                        .reached
                        .iter()
                        .find(|(_, index)| standing.waiting.contains(index))
                    && self.affords_promotion(plan, configurations, brackets, index, k, changes)
                {
                    self.promote_one(&configurations[index], k, changes);
                    return;
                }
            }
        }
        for id in &sweep.jobs {
            let mut runtime = planned(changes, self.job_ref(id));
            let Some(rung) = runtime.paused_at() else {
                continue;
            };
            let search = runtime.search.as_mut().expect("a paused job's record");
            search.paused_at = None;
            search.stopped_at = Some(rung);
            runtime.state = JobState::Cancelled;
            runtime.error = Some(format!(
                "stopped by the search at its rung at epoch {rung}: its configuration was not among the best 1/{} of those that reached it",
                plan.reduction_factor
            ));
            upsert(changes, id, runtime);
        }
    }

    /// Where the configurations of `bracket` stand at rung `k` (epoch `rung`), as the changes
    /// leave them.
    fn standing(
        &self,
        configurations: &[Vec<JobId>],
        brackets: &[usize],
        bracket: usize,
        k: usize,
        rung: u32,
        changes: &[Change],
    ) -> Standing {
        let mut standing = Standing::default();
        for (index, jobs) in configurations.iter().enumerate() {
            if brackets[index] != bracket {
                continue;
            }
            let runtimes: Vec<JobRuntime> = jobs
                .iter()
                .map(|id| planned(changes, self.job_ref(id)))
                .collect();
            let readings: Option<Vec<f64>> = runtimes
                .iter()
                .map(|r| r.search.as_ref().and_then(|s| s.reading(rung)))
                .collect();
            let Some(readings) = readings else { continue };
            let mean = readings.iter().sum::<f64>() / readings.len() as f64;
            standing.reached.push((mean, index));
            let promoted = |r: &JobRuntime| promoted(r.search.as_deref(), bracket);
            if runtimes.iter().all(|r| promoted(r) > k) {
                standing.promoted += 1;
            }
            if runtimes
                .iter()
                .all(|r| r.paused_at() == Some(rung) && promoted(r) == k)
            {
                standing.waiting.push(index);
            }
        }
        // Best first; equal means in grid order, so the choice never depends on timing.
        standing
            .reached
            .sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        standing
    }

    /// Sends a configuration's jobs, all waiting at rung `k`, back to the queue together, to
    /// train to the next rung.
    fn promote_one(&self, jobs: &[JobId], k: usize, changes: &mut Vec<Change>) {
        let mut counters = planned_counters(self, changes);
        for id in jobs {
            let mut runtime = planned(changes, self.job_ref(id));
            runtime.requeue(counters.next_queue_seq);
            counters.next_queue_seq += 1;
            if let Some(search) = &mut runtime.search {
                search.promoted = k as u32 + 1;
            }
            runtime.error = None;
            upsert(changes, id, runtime);
        }
        changes.push(Change::Counters(counters));
    }

    /// Whether the budget lets configuration `index` train on from rung `k` to the next.
    fn affords_promotion(
        &self,
        plan: &SearchPlan,
        configurations: &[Vec<JobId>],
        brackets: &[usize],
        index: usize,
        k: usize,
        changes: &[Change],
    ) -> bool {
        let seeds = configurations[index].len() as u64;
        let more = u64::from(plan.bound(k + 1) - plan.bound(k)) * seeds;
        plan.affords(
            self.committed(plan, configurations, brackets, changes),
            more,
            0,
        )
    }

    /// What a searched sweep has committed to: each job of a configuration that started (one
    /// of its jobs was leased), to the epoch it trains to now.
    fn committed(
        &self,
        plan: &SearchPlan,
        configurations: &[Vec<JobId>],
        brackets: &[usize],
        changes: &[Change],
    ) -> Committed {
        let mut committed = Committed::default();
        for (jobs, &bracket) in configurations.iter().zip(brackets) {
            let runtimes: Vec<JobRuntime> = jobs
                .iter()
                .map(|id| planned(changes, self.job_ref(id)))
                .collect();
            if !runtimes.iter().any(started) {
                continue;
            }
            for runtime in &runtimes {
                committed.jobs += 1;
                committed.epochs +=
                    u64::from(plan.bound(promoted(runtime.search.as_deref(), bracket)));
            }
        }
        committed
    }

    /// Whether the budget lets `job` be leased: a job of a grid, of a configuration that
    /// started, or of one the budget can start to its first rung, all its seeds.
    pub(super) fn admits(&self, job: &Job, changes: &[Change]) -> bool {
        let Some(plan) = self.search_plan(job.sweep()) else {
            return true;
        };
        if plan.budget_epochs.is_none() && plan.budget_jobs.is_none() {
            return true;
        }
        let configurations = configurations(self, self.sweep_ref(job.sweep()));
        let Some(index) = configurations
            .iter()
            .position(|jobs| jobs.contains(&job.id))
        else {
            return true;
        };
        let jobs = &configurations[index];
        if jobs
            .iter()
            .any(|id| started(&planned(changes, self.job_ref(id))))
        {
            return true;
        }
        let seeds = jobs.len() as u64;
        let brackets = plan.brackets_of(configurations.len());
        plan.affords(
            self.committed(plan, &configurations, &brackets, changes),
            u64::from(plan.bound(brackets[index])) * seeds,
            seeds,
        )
    }

    /// Stops every job of a searched sweep's configurations that have not started and that the
    /// budget cannot start: under ASHA all of them (they cost the same to their first rung),
    /// under Hyperband those of the brackets whose first rung no longer fits.
    pub(super) fn stop_unstarted(&self, sweep: &SweepId, changes: &mut Vec<Change>) {
        let sweep = self.sweep_ref(sweep);
        let Some(plan) = &sweep.record.search else {
            return;
        };
        let budget = match (plan.budget_epochs, plan.budget_jobs) {
            (Some(epochs), _) => format!("budget_epochs = {epochs}"),
            (None, Some(jobs)) => format!("budget_jobs = {jobs}"),
            (None, None) => return,
        };
        let configurations = configurations(self, sweep);
        let brackets = plan.brackets_of(configurations.len());
        let committed = self.committed(plan, &configurations, &brackets, changes);
        for (jobs, &bracket) in configurations.iter().zip(&brackets) {
            let runtimes: Vec<JobRuntime> = jobs
                .iter()
                .map(|id| planned(changes, self.job_ref(id)))
                .collect();
            let seeds = jobs.len() as u64;
            if runtimes.iter().any(started)
                || plan.affords(committed, u64::from(plan.bound(bracket)) * seeds, seeds)
            {
                continue;
            }
            for (id, mut runtime) in jobs.iter().zip(runtimes) {
                if runtime.state != JobState::Pending {
                    continue;
                }
                runtime.queue_seq = None;
                runtime.state = JobState::Cancelled;
                runtime.error = Some(format!(
                    "not started: the search's {budget} cannot take its configuration to the first rung"
                ));
                upsert(changes, id, runtime);
            }
        }
    }

    /// Nothing of the sweep queued or running.
    fn idle(&self, sweep: &Sweep, changes: &[Change]) -> bool {
        sweep.jobs.iter().all(|id| {
            let r = planned(changes, self.job_ref(id));
            r.state != JobState::Running && !(r.state == JobState::Pending && r.queue_seq.is_some())
        })
    }
}

/// Epochs and jobs a search committed to.
#[derive(Clone, Copy, Default)]
struct Committed {
    epochs: u64,
    jobs: u64,
}

/// A job was leased, or reached a rung, at least once.
fn started(runtime: &JobRuntime) -> bool {
    runtime.attempts > 0 || runtime.search.is_some()
}

/// The configurations at one rung: those that reached it (mean over their seeds, index),
/// best first; how many of them were promoted past it; and which wait there.
#[derive(Default)]
struct Standing {
    reached: Vec<(f64, usize)>,
    promoted: usize,
    waiting: Vec<usize>,
}

/// A sweep's configurations: its jobs grouped by everything but the seed, in grid order.
pub(super) fn configurations(scheduler: &Scheduler, sweep: &Sweep) -> Vec<Vec<JobId>> {
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut groups: Vec<Vec<JobId>> = Vec::new();
    for id in &sweep.jobs {
        let job = scheduler.job_ref(id);
        let key = serde_json::to_string(&(job.plan, job.axes(), job.base(), job.sampler()))
            .expect("a configuration's key serialises");
        let next = groups.len();
        let at = *index.entry(key).or_insert(next);
        if at == next {
            groups.push(Vec::new());
        }
        groups[at].push(id.clone());
    }
    groups
}

fn planned_counters(scheduler: &Scheduler, changes: &[Change]) -> Counters {
    changes
        .iter()
        .rev()
        .find_map(|change| match change {
            Change::Counters(counters) => Some(*counters),
            _ => None,
        })
        .unwrap_or(scheduler.counters)
}
