//! One training run, as a worker receives it: ids, the loss plan, and the concrete settings of
//! every grid axis.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::baseline::{BaseLoss, Sampler};
use crate::stage2::Stage2;

/// Declares a newtype id over a `String` (`Display`, `From<&str>`, serde as the bare string), so
/// that a job id cannot be passed where a worker id is meant.
#[macro_export]
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A sweep: its name and a hash of its jobs, so the same spec submitted twice is one sweep.
    SweepId
);
string_id!(
    /// A job: a hash of its sweep name and its full configuration; the same spec gives the same ids.
    JobId
);

/// The classes a loss term is switched on for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassScope {
    None,
    Head,
    Tail,
    All,
}

impl ClassScope {
    pub const ALL_SCOPES: [ClassScope; 4] = [Self::None, Self::Head, Self::Tail, Self::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Head => "head",
            Self::Tail => "tail",
            Self::All => "all",
        }
    }

    /// Whether a class of the given group takes part.
    pub fn includes(self, head: bool) -> bool {
        match self {
            Self::None => false,
            Self::Head => head,
            Self::Tail => !head,
            Self::All => true,
        }
    }

    pub fn covers_head(self) -> bool {
        self.includes(true)
    }

    pub fn covers_tail(self) -> bool {
        self.includes(false)
    }
}

impl fmt::Display for ClassScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ClassScope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL_SCOPES
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not one of none, head, tail, all"))
    }
}

/// Which classes Complement Entropy and Prototype Conformity are switched on for; cross
/// entropy is always on for every class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossPlan {
    #[serde(default = "scope_none")]
    pub comp: ClassScope,
    #[serde(default = "scope_none")]
    pub pc: ClassScope,
}

fn scope_none() -> ClassScope {
    ClassScope::None
}

impl LossPlan {
    pub const fn new(comp: ClassScope, pc: ClassScope) -> Self {
        Self { comp, pc }
    }

    /// Cross entropy alone: the baseline row of Table 1.
    pub const CE_ONLY: LossPlan = LossPlan::new(ClassScope::None, ClassScope::None);

    /// The nine plans of the paper's Table 1, in its row order.
    pub const PAPER: [LossPlan; 9] = {
        use ClassScope::*;
        [
            LossPlan::new(None, None),
            LossPlan::new(All, None),
            LossPlan::new(Head, None),
            LossPlan::new(Tail, None),
            LossPlan::new(None, All),
            LossPlan::new(None, Head),
            LossPlan::new(None, Tail),
            LossPlan::new(Head, Tail),
            LossPlan::new(Tail, Head),
        ]
    };

    /// All sixteen plans: the paper's nine in its order, then the other seven.
    pub fn full() -> Vec<LossPlan> {
        let mut plans = Self::PAPER.to_vec();
        for comp in ClassScope::ALL_SCOPES {
            for pc in ClassScope::ALL_SCOPES {
                let plan = LossPlan::new(comp, pc);
                if !plans.contains(&plan) {
                    plans.push(plan);
                }
            }
        }
        plans
    }
}

impl fmt::Display for LossPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "comp={},pc={}", self.comp, self.pc)
    }
}

impl FromStr for LossPlan {
    type Err = String;

    /// Parses `comp=tail,pc=head` (either order; a missing part is `none`).
    fn from_str(s: &str) -> Result<Self, String> {
        let mut plan = LossPlan::CE_ONLY;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not of the form comp=SCOPE or pc=SCOPE"))?;
            let scope: ClassScope = value.trim().parse()?;
            match key.trim() {
                "comp" => plan.comp = scope,
                "pc" => plan.pc = scope,
                other => return Err(format!("unknown loss `{other}` (expected comp or pc)")),
            }
        }
        Ok(plan)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    Cifar10,
    Cifar100,
    FashionMnist,
    Mnist,
    Synthetic,
}

impl DatasetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cifar10 => "cifar10",
            Self::Cifar100 => "cifar100",
            Self::FashionMnist => "fashion-mnist",
            Self::Mnist => "mnist",
            Self::Synthetic => "synthetic",
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DatasetKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [
            Self::Cifar10,
            Self::Cifar100,
            Self::FashionMnist,
            Self::Mnist,
            Self::Synthetic,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            format!(
                "`{s}` is not a data set kind (cifar10, cifar100, fashion-mnist, mnist, synthetic)"
            )
        })
    }
}

/// How classes are split into Head and Tail.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadSplit {
    /// Head: at least this many training images (the paper: 100).
    MinCount(u32),
    /// Head: the most frequent fraction of classes.
    Fraction(f64),
}

/// The deterministic synthetic data set: class-dependent patterns plus noise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyntheticConfig {
    pub train_per_class: u32,
    pub test_per_class: u32,
    pub image_size: u32,
    pub channels: u32,
    pub noise: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    pub kind: DatasetKind,
    /// On the worker, relative to its data root; `None` for the synthetic set.
    pub path: Option<String>,
    pub imbalance_ratio: f64,
    pub head: HeadSplit,
    pub sampling_seed: u64,
    /// Use the first `classes` classes; `None` for all of the data set's.
    pub classes: Option<u32>,
    pub synthetic: SyntheticConfig,
}

/// The per-class training counts of a long-tailed set: `n_i = floor(n_max *
/// (1/ratio)^(i/(C-1)))`, written as the common LDAM-DRW code computes it, so the counts match it
/// exactly.
pub fn long_tail_counts(n_max: u32, classes: usize, ratio: f64) -> Vec<u32> {
    if classes == 1 {
        return vec![n_max];
    }
    let factor = 1.0 / ratio;
    (0..classes)
        .map(|i| (f64::from(n_max) * factor.powf(i as f64 / (classes - 1) as f64)) as u32)
        .collect()
}

/// The first class a long-tailed subset leaves without a training image, if any: its
/// class-balanced weight and LDAM margin would be NaN, and post-hoc adjustment would predict it
/// everywhere.
pub fn first_empty_class(counts: &[u32]) -> Option<usize> {
    counts.iter().position(|&n| n == 0)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub depth: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompMode {
    /// A Complement Entropy step after the cross-entropy step, on the same batch, as the
    /// reference code of Complement Objective Training does.
    Alternate,
    /// Complement Entropy as one more term of a single loss.
    Sum,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: u32,
    pub batch_size: u32,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub warmup_epochs: u32,
    /// The learning rate is multiplied by `lr_decay_factor` once each of these epochs is reached.
    pub lr_decay_epochs: Vec<u32>,
    pub lr_decay_factor: f64,
    pub pretrain_ce_epochs: u32,
    /// Epochs (1-based, counted as finished) after which the test set is evaluated; the last
    /// epoch always is.
    pub eval_epochs: Vec<u32>,
    pub checkpoint_every: u32,
    pub augment: bool,
    /// How an epoch's images are drawn; left out when `instance` (ids of older specs hold).
    #[serde(default, skip_serializing_if = "Sampler::is_instance")]
    pub sampler: Sampler,
    /// Post-hoc logit adjustment: the final model is also evaluated with `logits - tau * log(pi)`
    /// for each tau (`[eval] posthoc_tau`); left out when none (ids of older specs hold).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub posthoc_tau: Vec<f64>,
}

impl TrainConfig {
    /// The learning rate of a 0-based epoch: linear warm-up, then step decay.
    pub fn lr_at(&self, epoch: u32) -> f64 {
        if epoch < self.warmup_epochs {
            return self.lr * f64::from(epoch + 1) / f64::from(self.warmup_epochs);
        }
        let decays = self.lr_decay_epochs.iter().filter(|&&e| epoch >= e).count();
        self.lr * self.lr_decay_factor.powi(decays as i32)
    }

    /// Whether the test set is evaluated after `finished` epochs.
    pub fn evaluates_after(&self, finished: u32) -> bool {
        finished == self.epochs || self.eval_epochs.contains(&finished)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    pub comp_weight: f64,
    pub comp_mode: CompMode,
    pub pc_weight: f64,
    pub pc_push_weight: f64,
    pub pc_center_lr: f64,
    /// The loss beneath the plan's terms; left out when cross entropy (ids of older specs hold).
    #[serde(default, skip_serializing_if = "BaseLoss::is_ce")]
    pub base: BaseLoss,
}

/// One value of a grid axis (a numeric setting the spec gave as a list).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AxisValue {
    /// The setting's key, without its section: `pc_weight`.
    pub name: String,
    pub value: f64,
}

/// One training run of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    pub id: JobId,
    pub sweep: SweepId,
    pub plan: LossPlan,
    pub seed: u64,
    pub axes: Vec<AxisValue>,
    pub dataset: DatasetConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub losses: LossConfig,
    /// A stage-2 job's stage-1 job and method; left out for a stage-1 job (ids of older specs
    /// hold). The other settings are the stage-1 job's, the recipe its model was trained with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage2: Option<Stage2>,
}

impl JobSpec {
    /// `comp=tail,pc=head pc_weight=0.1 seed=0`: what a person reads in a table or a log; a
    /// base loss other than cross entropy and a sampler other than `instance` come first, a
    /// stage-2 method last before the seed.
    pub fn label(&self) -> String {
        let mut label = String::new();
        if !self.losses.base.is_ce() {
            label.push_str(&format!("base={} ", self.losses.base.kind()));
        }
        if !self.train.sampler.is_instance() {
            label.push_str(&format!("sampler={} ", self.train.sampler));
        }
        label.push_str(&self.plan.to_string());
        for axis in &self.axes {
            label.push_str(&format!(" {}={}", axis.name, axis.value));
        }
        if let Some(stage2) = &self.stage2 {
            label.push_str(&format!(" stage2={}", stage2.method));
        }
        label.push_str(&format!(" seed={}", self.seed));
        label
    }
}

/// Where a job is in its life: `Pending → Running (leased) → Succeeded | Failed | Cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Succeeded, failed or cancelled: nothing more happens without a retry.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_print_and_parse() {
        let plan = LossPlan::new(ClassScope::Tail, ClassScope::Head);
        assert_eq!(plan.to_string(), "comp=tail,pc=head");
        assert_eq!("pc=head, comp=tail".parse::<LossPlan>(), Ok(plan));
        assert_eq!("".parse::<LossPlan>(), Ok(LossPlan::CE_ONLY));
        assert!("comp=middle".parse::<LossPlan>().is_err());
        assert!("ce=all".parse::<LossPlan>().is_err());
    }

    #[test]
    fn full_grid_starts_with_the_paper_rows() {
        let full = LossPlan::full();
        assert_eq!(full.len(), 16);
        assert_eq!(&full[..9], &LossPlan::PAPER);
        let mut unique = full.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 16);
    }

    #[test]
    fn learning_rate_warms_up_then_decays() {
        let train = TrainConfig {
            epochs: 300,
            batch_size: 128,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 2e-4,
            warmup_epochs: 5,
            lr_decay_epochs: vec![240, 270],
            lr_decay_factor: 0.01,
            pretrain_ce_epochs: 10,
            eval_epochs: vec![],
            checkpoint_every: 10,
            augment: true,
            sampler: Sampler::Instance,
            posthoc_tau: Vec::new(),
        };
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(train.lr_at(0), 0.02));
        assert!(close(train.lr_at(4), 0.1));
        assert!(close(train.lr_at(239), 0.1));
        assert!(close(train.lr_at(240), 0.001));
        assert!(close(train.lr_at(299), 0.00001));
    }
}
