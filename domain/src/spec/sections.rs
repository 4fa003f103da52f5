//! The spec's sections, `[dataset]`, `[model]`, `[train]`, `[losses]`, `[eval]` and `[stage2]`,
//! as serde reads them; what serde cannot check is `validate`'s.

use serde::{Deserialize, Serialize};

use super::Axis;
use super::defaults;
use crate::arch::{Arch, Precision};
use crate::baseline::{BaseKind, Choice, Sampler};
use crate::job::{CompMode, DatasetKind, LossPlan, LrSchedule};
use crate::stage2::{BnMode, NcmFeatures, Stage2Kind, Stage2Sampler, TauBias};

/// The grid of loss plans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GridPreset {
    /// The nine plans of the paper's Table 1.
    Paper,
    /// Comp. and PC each on none / Head / Tail / all classes: 16 plans.
    Full,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    pub kind: DatasetKind,
    #[serde(default)]
    pub path: Option<String>,
    /// When absent: 100 (list data takes its lists as they are).
    #[serde(default)]
    pub imbalance_ratio: Option<Axis<f64>>,
    #[serde(default)]
    pub head_min_count: Option<Axis<u32>>,
    #[serde(default)]
    pub head_fraction: Option<Axis<f64>>,
    #[serde(default = "defaults::zero")]
    pub sampling_seed: Axis<u32>,
    #[serde(default)]
    pub classes: Option<Axis<u32>>,
    // The synthetic data set's own settings.
    #[serde(default)]
    pub train_per_class: Option<Axis<u32>>,
    #[serde(default)]
    pub test_per_class: Option<Axis<u32>>,
    #[serde(default)]
    pub image_size: Option<Axis<u32>>,
    #[serde(default)]
    pub channels: Option<Axis<u32>>,
    #[serde(default)]
    pub noise: Option<Axis<f64>>,
    /// Images of every class held out of the balanced training images as the validation set
    /// (drawn from `sampling_seed`, before the long-tailed subset is); 0 for none.
    #[serde(default)]
    pub val_per_class: u32,
    /// Whether the long-tailed subset is the same for every job (`fixed`, drawn from
    /// `sampling_seed`) or drawn anew for each job's seed (`job`).
    #[serde(default)]
    pub subset_seed: SubsetSeed,
    // List data's own settings (see `ListConfig`).
    #[serde(default)]
    pub train_list: Option<String>,
    #[serde(default)]
    pub val_list: Option<String>,
    #[serde(default)]
    pub test_list: Option<String>,
    #[serde(default)]
    pub crop_size: Option<u32>,
    #[serde(default)]
    pub resize_size: Option<u32>,
    #[serde(default)]
    pub color_jitter: Option<f64>,
    /// `Normalize(mean, std)`, R, G, B, on pixels scaled to [0, 1]: both or neither (the
    /// preset's, see `DatasetKind::normalization`).
    #[serde(default)]
    pub mean: Option<Vec<f64>>,
    #[serde(default)]
    pub std: Option<Vec<f64>>,
    /// `false` decodes every JPEG at full size instead of at a reduced IDCT scale.
    #[serde(default)]
    pub reduced_decode: Option<bool>,
    #[serde(default)]
    pub packed: Option<String>,
}

/// Which seed draws the long-tailed subset of the training images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubsetSeed {
    /// The data set's `sampling_seed` alone: every job trains on the same subset.
    #[default]
    Fixed,
    /// The data set's `sampling_seed` and the job's seed: the subset is one more source of
    /// variance between seeds (Bouthillier et al., MLSys 2021), and seed-paired comparisons
    /// still compare plans on the same subset.
    Job,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// The CIFAR ResNet's depth (6n+2); when absent, 20. Not for an ImageNet `arch`.
    #[serde(default)]
    pub depth: Option<Axis<u32>>,
    /// `resnet10` ... `resnext50_32x4d`; when absent, the CIFAR ResNet of `depth`.
    #[serde(default)]
    pub arch: Option<Arch>,
    /// A safetensors file of initial weights, relative to the workers' `--data-root`.
    #[serde(default)]
    pub init: Option<String>,
    /// Variables (or prefixes: `fc`) that keep their fresh initialisation when `init` loads.
    #[serde(default)]
    pub init_skip: Vec<String>,
}

impl ModelSection {
    pub fn arch(&self) -> Arch {
        self.arch.unwrap_or_default()
    }

    /// The depth axis: the spec's, 20 when absent, or the ImageNet architecture's own.
    pub fn depth(&self) -> Axis<u32> {
        match (self.arch().depth(), &self.depth) {
            (Some(depth), _) => Axis::One(depth),
            (None, Some(axis)) => axis.clone(),
            (None, None) => defaults::depth(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    #[serde(default = "defaults::epochs")]
    pub epochs: Axis<u32>,
    #[serde(default = "defaults::batch_size")]
    pub batch_size: Axis<u32>,
    #[serde(default = "defaults::lr")]
    pub lr: Axis<f64>,
    #[serde(default = "defaults::momentum")]
    pub momentum: Axis<f64>,
    #[serde(default = "defaults::weight_decay")]
    pub weight_decay: Axis<f64>,
    /// When absent: 5, or a tenth of the epochs when that is fewer.
    #[serde(default)]
    pub warmup_epochs: Option<Axis<u32>>,
    /// When absent: 80% and 90% of the epochs (160 and 180 of 200, the common CIFAR-LT recipe).
    #[serde(default)]
    pub lr_decay_epochs: Option<Vec<u32>>,
    #[serde(default = "defaults::lr_decay_factor")]
    pub lr_decay_factor: Axis<f64>,
    #[serde(default = "defaults::zero")]
    pub pretrain_ce_epochs: Axis<u32>,
    #[serde(default)]
    pub eval_epochs: Vec<u32>,
    #[serde(default = "defaults::checkpoint_every")]
    pub checkpoint_every: Axis<u32>,
    #[serde(default = "defaults::yes")]
    pub augment: bool,
    /// `instance` (every image once an epoch), `class_balanced` or `sqrt`; a list is an axis.
    #[serde(default = "defaults::sampler")]
    pub sampler: Choice<Sampler>,
    /// `step` (the default: `lr_decay_epochs`) or `cosine`.
    #[serde(default)]
    pub lr_schedule: LrSchedule,
    /// Linear scaling: the peak rate is `lr * batch_size / lr_reference_batch`.
    #[serde(default)]
    pub lr_reference_batch: Option<u32>,
    /// `false` leaves BatchNorm's parameters and biases out of weight decay.
    #[serde(default = "defaults::yes")]
    pub decay_norm_and_bias: bool,
    /// `fp32` or `bf16`; when absent, bf16 for the ImageNet architectures.
    #[serde(default)]
    pub precision: Option<Precision>,
    /// When absent, on for the ImageNet architectures.
    #[serde(default)]
    pub channels_last: Option<bool>,
}

impl Default for TrainSection {
    fn default() -> Self {
        toml::from_str("").expect("every train setting has a default")
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossesSection {
    #[serde(default)]
    pub grid: Option<GridPreset>,
    #[serde(default)]
    pub plans: Option<Vec<LossPlan>>,
    #[serde(default = "defaults::one")]
    pub comp_weight: Axis<f64>,
    #[serde(default = "defaults::comp_mode")]
    pub comp_mode: CompMode,
    #[serde(default = "defaults::pc_weight")]
    pub pc_weight: Axis<f64>,
    #[serde(default = "defaults::pc_push_weight")]
    pub pc_push_weight: Axis<f64>,
    #[serde(default = "defaults::pc_center_lr")]
    pub pc_center_lr: Axis<f64>,
    /// The loss beneath every plan: `ce`, `focal`, `cb`, `la`, `ldam_drw`; a list is an axis.
    #[serde(default = "defaults::base")]
    pub base: Choice<BaseKind>,
    // Each base loss's own settings take one value: a list would multiply the jobs of every
    // other base loss with copies that differ in a setting they do not use.
    #[serde(default = "defaults::focal_gamma")]
    pub focal_gamma: Axis<f64>,
    #[serde(default = "defaults::cb_beta")]
    pub cb_beta: Axis<f64>,
    #[serde(default = "defaults::one")]
    pub la_tau: Axis<f64>,
    #[serde(default = "defaults::ldam_max_margin")]
    pub ldam_max_margin: Axis<f64>,
    #[serde(default = "defaults::ldam_s")]
    pub ldam_s: Axis<f64>,
    /// The 0-based epoch deferred re-weighting starts at; when absent, 80% of the epochs.
    #[serde(default)]
    pub drw_epoch: Option<Axis<u32>>,
}

impl Default for LossesSection {
    fn default() -> Self {
        toml::from_str("").expect("every loss setting has a default")
    }
}

/// `[eval]`. Its `posthoc_tau` moved to the stage-2 axis (`[stage2] method = ["posthoc_la"]`):
/// a spec that still gives it is refused with a message saying so.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    #[serde(default)]
    pub posthoc_tau: Option<toml::Value>,
}

/// The settings of a stage-2 method that trains (cRT, LWS); a list is an axis of that
/// method's jobs alone.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainedStage2 {
    #[serde(default = "defaults::stage2_epochs")]
    pub epochs: Axis<u32>,
    #[serde(default = "defaults::lr")]
    pub lr: Axis<f64>,
    /// The frozen backbone's BatchNorm: `train` (Kang et al.'s) or `frozen`.
    #[serde(default = "defaults::first")]
    pub bn: Choice<BnMode>,
    /// `class_aware` (Kang et al.'s `ClassAwareSampler`) or `class_balanced`.
    #[serde(default = "defaults::first")]
    pub sampler: Choice<Stage2Sampler>,
}

impl Default for TrainedStage2 {
    fn default() -> Self {
        toml::from_str("").expect("every stage-2 training setting has a default")
    }
}

/// The τ of τ-normalisation or of post-hoc logit adjustment; a list is an axis of that
/// method's jobs alone.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TauSetting {
    #[serde(default = "defaults::one")]
    pub tau: Axis<f64>,
}

impl Default for TauSetting {
    fn default() -> Self {
        toml::from_str("").expect("tau has a default")
    }
}

/// `[stage2.tau_norm]`: its τ and what becomes of the bias; a list is an axis of τ-norm's
/// jobs alone.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TauNormSetting {
    #[serde(default = "defaults::one")]
    pub tau: Axis<f64>,
    /// `drop` (Kang et al.'s `tau_norm.py`) or `keep`.
    #[serde(default = "defaults::first")]
    pub bias: Choice<TauBias>,
}

impl Default for TauNormSetting {
    fn default() -> Self {
        toml::from_str("").expect("every tau_norm setting has a default")
    }
}

/// `[stage2.ncm]`: the features NCM compares; a list is an axis of NCM's jobs alone.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NcmSetting {
    /// `cl2n` (Kang et al.'s `KNNClassifier` default) or `l2n`.
    #[serde(default = "defaults::first")]
    pub features: Choice<NcmFeatures>,
}

impl Default for NcmSetting {
    fn default() -> Self {
        toml::from_str("").expect("every ncm setting has a default")
    }
}

/// `[stage2]`: what follows each stage-1 job, on its final model (Kang et al. 2020's decoupled
/// classifier re-balancing). Each method other than `none` is one more job per stage-1 job (per
/// value of its own settings), which waits for its stage-1 job to succeed.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage2Section {
    /// `none` (the stage-1 jobs, always in the sweep), `crt`, `lws`, `tau_norm`, `ncm`,
    /// `posthoc_la`, `weight_balancing`, `mislas`.
    #[serde(default = "defaults::stage2")]
    pub method: Choice<Stage2Kind>,
    #[serde(default)]
    pub crt: Option<TrainedStage2>,
    #[serde(default)]
    pub lws: Option<TrainedStage2>,
    #[serde(default)]
    pub tau_norm: Option<TauNormSetting>,
    #[serde(default)]
    pub ncm: Option<NcmSetting>,
    #[serde(default)]
    pub posthoc_la: Option<TauSetting>,
    #[serde(default)]
    pub weight_balancing: Option<super::WeightBalancingSetting>,
    #[serde(default)]
    pub mislas: Option<super::MislasSetting>,
}

impl Default for Stage2Section {
    fn default() -> Self {
        toml::from_str("").expect("every stage-2 setting has a default")
    }
}
