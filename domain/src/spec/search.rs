//! `[search]`: how the sweep explores its configurations. `grid` (the default) runs every job to
//! its last epoch; `asha` (asynchronous successive halving, Li et al. 2020) trains each
//! configuration, all its seeds together, to a rung and continues only the best of those that
//! reached it, judged on a validation metric; `hyperband` shares the configurations out among
//! brackets of successive halving that start at later rungs, as the asynchronous Hyperband of
//! the same paper loops over its brackets, so that a configuration slow to start is not judged
//! only at the first rung.
//!
//! A rung compares configurations only where they can be told apart by what they are: after
//! the epochs every plan trains as plain cross entropy, after LDAM-DRW's re-weighting starts,
//! after the first decay of a step schedule (every configuration is far from its final
//! accuracy before it), and after the warm-up. `validate` refuses a rung anywhere else, naming
//! the switch it falls before.

use serde::Deserialize;

use super::validate::{Invalid, check};
use super::{Axis, SweepSpec};
use crate::baseline::BaseKind;
use crate::job::LrSchedule;
use crate::result::GroupAccuracy;
use crate::string_enum::string_enum;

string_enum!(
    /// How a sweep explores its configurations.
    #[derive(Default)]
    pub enum SearchMethod("a search method") {
        /// Every job trains to its last epoch.
        #[default]
        Grid = "grid",
        /// Asynchronous successive halving.
        Asha = "asha",
        /// Hyperband's brackets of successive halving.
        Hyperband = "hyperband",
    }
);

string_enum!(
    /// The validation metric a search judges configurations on (the higher the better).
    pub enum SearchMetric("a validation metric") {
        /// Top-1 accuracy over every class of the validation split.
        ValAll = "val_all",
        /// Top-1 accuracy over the Tail classes of the validation split.
        ValTail = "val_tail",
        /// The mean of the two.
        ValAllTailMean = "val_all_tail_mean",
    }
);

impl SearchMetric {
    /// The metric's value in a validation accuracy; `None` where a group it needs is absent.
    pub fn read(self, val: &GroupAccuracy) -> Option<f64> {
        match self {
            SearchMetric::ValAll => val.acc_all,
            SearchMetric::ValTail => val.acc_tail,
            SearchMetric::ValAllTailMean => Some((val.acc_all? + val.acc_tail?) / 2.0),
        }
    }
}

/// The largest reduction factor: past it a rung keeps under a sixteenth of its configurations,
/// and a study of a few dozen has no second rung.
pub const MAX_REDUCTION_FACTOR: u32 = 16;
/// The most configurations `samples` may draw.
pub const MAX_SAMPLES: u32 = 10_000;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSection {
    #[serde(default)]
    pub method: SearchMethod,
    /// `val_all`, `val_tail` or `val_all_tail_mean`; read as text so that a test-set metric is
    /// refused with the reason, not as an unknown name. When absent: `val_all`.
    #[serde(default)]
    pub metric: Option<String>,
    /// A rung keeps the top 1/`reduction_factor` of the configurations that reached it; rungs
    /// lie at `min_epochs * reduction_factor^k`. When absent: 3.
    #[serde(default)]
    pub reduction_factor: Option<u32>,
    #[serde(default)]
    pub min_epochs: Option<u32>,
    /// No rung past it; when absent, `train.epochs`.
    #[serde(default)]
    pub max_epochs: Option<u32>,
    /// The most epochs the search trains, all jobs together.
    #[serde(default)]
    pub budget_epochs: Option<u64>,
    /// The most jobs (each configuration's seeds count one each) the search starts.
    #[serde(default)]
    pub budget_jobs: Option<u32>,
    /// How many configurations to draw over the sampled settings.
    #[serde(default)]
    pub samples: Option<u32>,
    /// The seed of the scrambled Halton sequence the samples come from.
    #[serde(default)]
    pub seed: u64,
    /// Hyperband's brackets: bracket `b` starts judging at rung `b`. When absent, one per rung
    /// and one without any (every rung count from all to none).
    #[serde(default)]
    pub brackets: Option<u32>,
}

impl Default for SearchSection {
    fn default() -> Self {
        toml::from_str("").expect("every search setting has a default")
    }
}

impl SearchSection {
    pub fn reduction_factor(&self) -> u32 {
        self.reduction_factor.unwrap_or(3)
    }

    /// The metric, once `validate` has accepted the spec.
    pub fn metric(&self) -> SearchMetric {
        self.metric
            .as_deref()
            .and_then(|m| m.parse().ok())
            .unwrap_or(SearchMetric::ValAll)
    }
}

impl SweepSpec {
    /// The epochs (1-based, counted as finished) a configuration is judged at before it may
    /// continue: `min_epochs * reduction_factor^k` up to `max_epochs`, below `train.epochs`
    /// (the last epoch ends the job). Empty for a grid.
    pub fn rungs(&self) -> Vec<u32> {
        let s = &self.search;
        let (SearchMethod::Asha | SearchMethod::Hyperband, Some(min)) = (s.method, s.min_epochs)
        else {
            return Vec::new();
        };
        let epochs = self.train.epochs.first();
        let max = s.max_epochs.unwrap_or(epochs).min(epochs.saturating_sub(1));
        let rf = u64::from(s.reduction_factor().max(2));
        let mut rungs = Vec::new();
        let mut rung = u64::from(min.max(1));
        while rung <= u64::from(max) {
            rungs.push(rung as u32);
            rung *= rf;
        }
        rungs
    }

    /// How many brackets the search runs: one for `asha`, `search.brackets` (by default one per
    /// rung and one more) for `hyperband`, none for a grid.
    pub fn brackets(&self) -> u32 {
        match self.search.method {
            SearchMethod::Grid => 0,
            SearchMethod::Asha => 1,
            SearchMethod::Hyperband => self
                .search
                .brackets
                .unwrap_or(self.rungs().len() as u32 + 1),
        }
    }

    /// `[search]` and the sampled settings.
    pub(super) fn validate_search(&self) -> Result<(), Invalid> {
        let s = &self.search;
        self.validate_samples()?;
        if let Some(metric) = &s.metric {
            check(
                !metric.starts_with("test") && !metric.starts_with("acc"),
                "search.metric",
                &format!(
                    "`{metric}` is read on the test set: a configuration chosen on it makes the reported test accuracy optimistic; give val_all, val_tail or val_all_tail_mean (the validation split)"
                ),
            )?;
            if let Err(message) = metric.parse::<SearchMetric>() {
                return Err(invalid("search.metric", message));
            }
        }
        match s.method {
            SearchMethod::Grid => {
                for (key, given) in [
                    ("search.metric", s.metric.is_some()),
                    ("search.reduction_factor", s.reduction_factor.is_some()),
                    ("search.min_epochs", s.min_epochs.is_some()),
                    ("search.max_epochs", s.max_epochs.is_some()),
                    ("search.budget_epochs", s.budget_epochs.is_some()),
                    ("search.budget_jobs", s.budget_jobs.is_some()),
                    ("search.brackets", s.brackets.is_some()),
                ] {
                    check(
                        !given,
                        key,
                        "applies to search.method = \"asha\" or \"hyperband\"; a grid trains every job to its last epoch",
                    )?;
                }
                Ok(())
            }
            SearchMethod::Asha => {
                check(
                    s.brackets.is_none(),
                    "search.brackets",
                    "applies to search.method = \"hyperband\"; asha is one bracket",
                )?;
                self.validate_asha()
            }
            SearchMethod::Hyperband => {
                self.validate_asha()?;
                let most = self.rungs().len() as u32 + 1;
                let brackets = self.brackets();
                check(
                    (1..=most).contains(&brackets),
                    "search.brackets",
                    &format!(
                        "{brackets} is not from 1 to {most} (one bracket a rung, {}, and one with none)",
                        most - 1
                    ),
                )
            }
        }
    }

    /// The settings `asha` and `hyperband` share.
    fn validate_asha(&self) -> Result<(), Invalid> {
        let s = &self.search;
        let method = s.method;
        let d = &self.dataset;
        let has_val = if d.kind.is_list() {
            d.val_list.is_some() || d.kind.preset().and_then(|p| p.val).is_some()
        } else {
            d.val_per_class > 0
        };
        check(
            has_val,
            "search.method",
            &format!(
                "{method} judges configurations on a validation split, which the data set lacks: set dataset.val_per_class (e.g. 20) or, for list data, dataset.val_list"
            ),
        )?;
        let Axis::One(epochs) = self.train.epochs else {
            return Err(invalid(
                "train.epochs",
                format!(
                    "takes one value under search.method = \"{method}\": every configuration is judged at the same rungs of the same schedule"
                ),
            ));
        };
        check(
            self.stage2_methods().is_empty(),
            "stage2.method",
            &format!(
                "stage-2 jobs are not run under search.method = \"{method}\" yet: search the stage-1 settings first, then run stage 2 as a grid"
            ),
        )?;
        let rf = s.reduction_factor();
        check(
            (2..=MAX_REDUCTION_FACTOR).contains(&rf),
            "search.reduction_factor",
            &format!("{rf} is not from 2 to {MAX_REDUCTION_FACTOR}"),
        )?;
        let Some(min) = s.min_epochs else {
            return Err(invalid(
                "search.min_epochs",
                format!(
                    "{method} needs the first rung's epoch, e.g. min_epochs = 20 (see `validate`'s rungs)"
                ),
            ));
        };
        check(
            min >= 1 && min < epochs,
            "search.min_epochs",
            &format!(
                "{min} is not from 1 to {} (below train.epochs = {epochs}: the last epoch ends a job, it is no rung)",
                epochs.saturating_sub(1)
            ),
        )?;
        if let Some(max) = s.max_epochs {
            check(
                max >= min && max <= epochs,
                "search.max_epochs",
                &format!("{max} is not from search.min_epochs = {min} to train.epochs = {epochs}"),
            )?;
        }
        self.check_rung_phases(min)?;
        let seeds = self.seeds().len() as u64;
        let configurations = self.job_count() / u128::from(seeds.max(1));
        check(
            !(s.budget_epochs.is_some() && s.budget_jobs.is_some()),
            "search.budget_jobs",
            "give one budget, budget_epochs or budget_jobs, not both",
        )?;
        if let Some(budget) = s.budget_epochs {
            let least = u64::from(min) * seeds;
            let most = configurations.saturating_mul(u128::from(seeds) * u128::from(epochs));
            check(
                u128::from(budget) >= u128::from(least) && u128::from(budget) <= most,
                "search.budget_epochs",
                &format!(
                    "{budget} is not from {least} (one configuration's {seeds} seeds to the first rung at epoch {min}) to {most} (every job to its last epoch)"
                ),
            )?;
        }
        if let Some(budget) = s.budget_jobs {
            let most = configurations.saturating_mul(u128::from(seeds));
            check(
                u64::from(budget) >= seeds && u128::from(budget) <= most,
                "search.budget_jobs",
                &format!(
                    "{budget} is not from {seeds} (one configuration's seeds) to {most} (every job of the grid)"
                ),
            )?;
        }
        Ok(())
    }

    /// The first rung (every later one is further on) must fall after each switch that puts
    /// the configurations it compares in different phases.
    fn check_rung_phases(&self, rung: u32) -> Result<(), Invalid> {
        let t = &self.train;
        let epochs = t.epochs.first();
        let refuse = |switch: String, why: &str| {
            Err(invalid(
                "search.min_epochs",
                format!(
                    "rung at epoch {rung} falls before {switch}: {why}; raise search.min_epochs past it"
                ),
            ))
        };
        let warmup = t
            .warmup_epochs
            .as_ref()
            .map_or((epochs / 10).min(5), Axis::min);
        let warmup_most = t.warmup_epochs.as_ref().map_or(warmup, max);
        if rung <= warmup_most {
            return refuse(
                format!("the end of the warm-up (train.warmup_epochs = {warmup_most})"),
                &format!(
                    "the learning rate is still rising to its peak, before the {} schedule starts",
                    t.lr_schedule
                ),
            );
        }
        let pretrain = max(&t.pretrain_ce_epochs);
        if rung <= pretrain {
            return refuse(
                format!("pretrain_ce_epochs = {pretrain}"),
                "every plan is still plain cross entropy",
            );
        }
        if self.bases().contains(&BaseKind::LdamDrw) {
            let drw = self
                .losses
                .drw_epoch
                .as_ref()
                .map_or(epochs * 4 / 5, Axis::first);
            if rung <= drw {
                return refuse(
                    format!(
                        "the DRW switch (losses.drw_epoch = {drw}, 0-based: re-weighting starts in epoch {})",
                        drw + 1
                    ),
                    "ldam_drw has not re-weighted yet, and its Tail accuracy jumps when it does",
                );
            }
        }
        if t.lr_schedule == LrSchedule::Step {
            let decays = t.lr_decay_epochs.clone().unwrap_or_else(|| {
                [8, 9]
                    .iter()
                    .map(|tenths| epochs * tenths / 10)
                    .filter(|&e| e >= 1)
                    .collect()
            });
            if let Some(&first) = decays.first()
                && rung <= first
            {
                return refuse(
                    format!("the first learning-rate decay (train.lr_decay_epochs = {decays:?})"),
                    "under a step schedule every configuration is far from its final accuracy until the decay",
                );
            }
        }
        Ok(())
    }

    /// Sampled settings need `samples`, and `samples` needs sampled settings; a stage-2
    /// setting is never sampled (it is no axis of the grid).
    fn validate_samples(&self) -> Result<(), Invalid> {
        let sampled = self.sampled_axes();
        let s = &self.search;
        for (key, sampled) in self.stage2_sampled() {
            check(
                !sampled,
                key,
                "a stage-2 setting takes a value or a list, not a distribution",
            )?;
        }
        check(
            sampled.len() <= super::sample::MAX_SAMPLED_SETTINGS,
            "search.samples",
            &format!(
                "{} settings are sampled, over the limit of {}",
                sampled.len(),
                super::sample::MAX_SAMPLED_SETTINGS
            ),
        )?;
        match (s.samples, sampled.first()) {
            (None, Some(first)) => Err(invalid(
                "search.samples",
                format!(
                    "{} is given as a distribution: say how many configurations to draw, e.g. [search] samples = 27",
                    first.name
                ),
            )),
            (Some(_), None) => Err(invalid(
                "search.samples",
                "no setting is a distribution (e.g. lr = { log_uniform = [0.01, 0.5] }): give one, or leave samples out".to_owned(),
            )),
            (Some(n), Some(_)) => check(
                (1..=MAX_SAMPLES).contains(&n),
                "search.samples",
                &format!("{n} is not from 1 to {MAX_SAMPLES}"),
            ),
            (None, None) => Ok(()),
        }
    }

    /// Whether each stage-2 setting is given as a distribution.
    fn stage2_sampled(&self) -> [(&'static str, bool); 4] {
        let st = &self.stage2;
        let trained = |t: &Option<super::TrainedStage2>| {
            t.as_ref()
                .is_some_and(|t| is_sampled(&t.epochs) || is_sampled(&t.lr))
        };
        [
            ("stage2.crt", trained(&st.crt)),
            ("stage2.lws", trained(&st.lws)),
            (
                "stage2.tau_norm.tau",
                st.tau_norm.as_ref().is_some_and(|t| is_sampled(&t.tau)),
            ),
            (
                "stage2.posthoc_la.tau",
                st.posthoc_la.as_ref().is_some_and(|t| is_sampled(&t.tau)),
            ),
        ]
    }
}

/// Hyperband's share of `configurations` (in grid order) among `brackets` brackets over `rungs`
/// rungs: each configuration's bracket, `b` judging from rung `b` on. Bracket `b` has
/// `r = rungs - b` rungs and its weight is `rf^r / (r + 1)`, Hyperband's (Li et al. 2018)
/// `n_s`; the configurations go to the brackets in turn by largest shortfall against those
/// weights, so every share is within one of its weight's and the same grid gets the same
/// brackets.
pub fn hyperband_brackets(configurations: usize, rungs: usize, brackets: u32, rf: u32) -> Vec<u32> {
    let brackets = (brackets.max(1) as usize).min(rungs + 1);
    let weights: Vec<f64> = (0..brackets)
        .map(|b| {
            let r = (rungs - b) as i32;
            f64::from(rf).powi(r) / f64::from(r + 1)
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut given = vec![0usize; brackets];
    (0..configurations)
        .map(|i| {
            let shortfall = |b: usize| weights[b] / total * (i + 1) as f64 - given[b] as f64;
            let b = (0..brackets)
                .max_by(|&x, &y| shortfall(x).total_cmp(&shortfall(y)).then(y.cmp(&x)))
                .expect("at least one bracket");
            given[b] += 1;
            b as u32
        })
        .collect()
}

fn is_sampled<T>(axis: &Axis<T>) -> bool {
    matches!(axis, Axis::Sampled { .. })
}

fn max(axis: &Axis<u32>) -> u32 {
    axis.values().iter().copied().max().unwrap_or(0)
}

fn invalid(key: &str, message: String) -> Invalid {
    Invalid {
        key: key.to_owned(),
        message,
    }
}
