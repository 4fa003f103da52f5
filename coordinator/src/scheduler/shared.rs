//! A job, and what the jobs of one sweep share, held once per sweep rather than once per job.
//!
//! A job's spec is its id, plan and seed, plus settings (data set, model, recipe, losses, axis
//! values) that differ only along the grid's other axes: a sweep of 100,000 seeds has one set of
//! settings. Memory keeps each distinct set once and every job an index into them, so a job costs
//! its runtime state and a few words, not a copy of its whole spec; the spec is rebuilt when a
//! lease or a report needs it.

use std::collections::HashMap;
use std::sync::Arc;

use ltsweep_domain::{
    AxisValue, BaseKind, DatasetConfig, JobId, JobSpec, LossConfig, LossPlan, ModelConfig, Sampler,
    Stage2, Stage2Method, SweepId, TrainConfig,
};
use serde::Serialize;

use super::state::JobRuntime;

/// A job: who it is (its id, plan and seed; the rest of its spec is shared with its sweep's
/// other jobs, held once per sweep) and its runtime state. Its result is in the store only:
/// results are large (a confusion matrix, every epoch's metrics) and only reports read them.
#[derive(Clone, Debug, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub plan: LossPlan,
    pub seed: u64,
    pub(super) shared: Arc<SweepShared>,
    /// Which of the sweep's distinct settings are this job's.
    pub(super) settings: u32,
    pub runtime: JobRuntime,
}

/// One distinct set of settings of a sweep's jobs.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct Settings {
    axes: Vec<AxisValue>,
    dataset: DatasetConfig,
    model: ModelConfig,
    train: TrainConfig,
    losses: LossConfig,
    stage2: Option<Stage2Method>,
}

/// A sweep's id, the distinct settings of its jobs, and its graph of stage-2 jobs.
#[derive(Debug, PartialEq)]
pub struct SweepShared {
    sweep: SweepId,
    settings: Vec<Settings>,
    /// Each stage-2 job's stage-1 job.
    parents: HashMap<JobId, JobId>,
    /// Each stage-1 job's stage-2 jobs, in grid order.
    children: HashMap<JobId, Vec<JobId>>,
}

impl Job {
    pub fn sweep(&self) -> &SweepId {
        &self.shared.sweep
    }

    fn settings(&self) -> &Settings {
        &self.shared.settings[self.settings as usize]
    }

    /// The values of the grid's numeric axes, in the spec's order.
    pub fn axes(&self) -> &[AxisValue] {
        &self.settings().axes
    }

    /// The epochs the job trains: a stage-2 job's method's (0 for one that only evaluates).
    pub fn epochs(&self) -> u32 {
        let settings = self.settings();
        settings
            .stage2
            .map_or(settings.train.epochs, |method| method.epochs())
    }

    /// A stage-2 job's stage-1 job.
    pub fn parent(&self) -> Option<&JobId> {
        self.shared.parents.get(&self.id)
    }

    /// A stage-1 job's stage-2 jobs (none for a sweep without stage 2).
    pub fn children(&self) -> &[JobId] {
        self.shared
            .children
            .get(&self.id)
            .map_or(&[], Vec::as_slice)
    }

    /// A stage-2 job's method and settings.
    pub fn stage2(&self) -> Option<Stage2Method> {
        self.settings().stage2
    }

    /// The job's base loss.
    pub fn base(&self) -> BaseKind {
        self.settings().losses.base.kind()
    }

    /// The job's sampler.
    pub fn sampler(&self) -> Sampler {
        self.settings().train.sampler
    }

    /// The job's whole spec, as submitted.
    pub fn spec(&self) -> JobSpec {
        let settings = self.settings().clone();
        JobSpec {
            id: self.id.clone(),
            sweep: self.shared.sweep.clone(),
            plan: self.plan,
            seed: self.seed,
            axes: settings.axes,
            dataset: settings.dataset,
            model: settings.model,
            train: settings.train,
            losses: settings.losses,
            stage2: settings.stage2.map(|method| Stage2 {
                parent: self
                    .parent()
                    .cloned()
                    .expect("a stage-2 job has a stage-1 job"),
                method,
            }),
        }
    }
}

impl Job {
    /// A job of `spec`, whose settings are `shared`'s at `settings` (see [`split`]).
    pub(super) fn new(
        spec: &JobSpec,
        shared: Arc<SweepShared>,
        settings: u32,
        runtime: JobRuntime,
    ) -> Self {
        debug_assert_eq!(&spec.sweep, &shared.sweep, "a job of another sweep");
        Self {
            id: spec.id.clone(),
            plan: spec.plan,
            seed: spec.seed,
            shared,
            settings,
            runtime,
        }
    }
}

/// What one sweep's jobs share, and each job's index into it, from their specs in grid order.
///
/// Settings equal to the previous job's (the grid's seeds are its innermost axis) are found at
/// once; others by their JSON, so a sweep of many distinct settings is split in linear time.
pub(super) fn split<'a>(
    sweep: &SweepId,
    specs: impl Iterator<Item = &'a JobSpec>,
) -> (Arc<SweepShared>, Vec<u32>) {
    let mut settings: Vec<Settings> = Vec::new();
    let mut index_of: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut indices: Vec<u32> = Vec::with_capacity(specs.size_hint().0);
    let mut parents = HashMap::new();
    let mut children: HashMap<JobId, Vec<JobId>> = HashMap::new();
    for spec in specs {
        if let Some(stage2) = &spec.stage2 {
            parents.insert(spec.id.clone(), stage2.parent.clone());
            children
                .entry(stage2.parent.clone())
                .or_default()
                .push(spec.id.clone());
        }
        debug_assert_eq!(&spec.sweep, sweep, "a job of another sweep");
        let own = Settings {
            axes: spec.axes.clone(),
            dataset: spec.dataset.clone(),
            model: spec.model.clone(),
            train: spec.train.clone(),
            losses: spec.losses.clone(),
            stage2: spec.stage2.as_ref().map(|s| s.method),
        };
        let index = match indices.last() {
            Some(&last) if settings[last as usize] == own => last,
            _ => {
                let key = serde_json::to_vec(&own).expect("settings serialise to JSON");
                *index_of.entry(key).or_insert_with(|| {
                    settings.push(own);
                    (settings.len() - 1) as u32
                })
            }
        };
        indices.push(index);
    }
    let shared = Arc::new(SweepShared {
        sweep: sweep.clone(),
        settings,
        parents,
        children,
    });
    (shared, indices)
}

#[cfg(test)]
mod tests {
    use ltsweep_domain::SweepSpec;

    use super::*;

    #[test]
    fn every_spec_is_rebuilt_exactly_and_each_distinct_setting_is_held_once() {
        let spec = SweepSpec::parse(
            "name = \"shared\"\nseeds = [0, 1, 2]\n[dataset]\nkind = \"synthetic\"\n\
             [losses]\nplans = [{}, { comp = \"tail\" }]\npc_weight = [0.1, 1.0]\nbase = [\"ce\", \"la\"]\n",
        )
        .unwrap();
        let specs = spec.jobs();
        assert_eq!(specs.len(), 2 * 2 * 2 * 3);
        let (shared, settings) = split(&specs[0].sweep, specs.iter());
        let jobs: Vec<Job> = specs
            .iter()
            .zip(settings)
            .map(|(spec, settings)| {
                Job::new(spec, Arc::clone(&shared), settings, JobRuntime::pending(0))
            })
            .collect();
        assert_eq!(jobs.len(), specs.len());
        for (job, spec) in jobs.iter().zip(&specs) {
            assert_eq!(&job.spec(), spec);
            assert_eq!(job.sweep(), &spec.sweep);
            assert_eq!(job.axes(), spec.axes.as_slice());
        }
        // Two base losses x two PC weights: the plans and seeds share them.
        assert_eq!(jobs[0].shared.settings.len(), 4);
        assert!(jobs.iter().all(|j| Arc::ptr_eq(&j.shared, &jobs[0].shared)));
    }

    /// A 100,000-job sweep holds 100,000 of these in one hash map (plus its empty slots): the
    /// rare parts of a job's state (a live lease, a checkpoint, a search's record) are boxed to
    /// keep it small.
    #[test]
    fn a_job_in_memory_stays_small() {
        let size = std::mem::size_of::<Job>();
        assert!(
            size <= 248,
            "a Job takes {size} bytes inline; box what most jobs lack"
        );
    }
}
