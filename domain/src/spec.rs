//! The sweep spec: TOML text → a validated [`SweepSpec`].
//!
//! Every error names the key it is about and the key's line in the file, whether it comes from
//! the TOML syntax, from a type or an unknown key (serde), or from a check of values against each
//! other (`lr_decay_epochs` past `epochs`).
//!
//! ```
//! let spec = ltsweep_domain::SweepSpec::parse(r#"
//!     name = "demo"
//!     seeds = [0, 1]
//!     [dataset]
//!     kind = "synthetic"
//!     [losses]
//!     pc_weight = [0.1, 1.0]
//! "#).unwrap();
//! assert_eq!(spec.jobs().len(), 9 * 2 * 2);
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

use crate::arch::{Arch, Precision};
use crate::baseline::{BaseKind, BaseLoss, Choice, Sampler};
use crate::job::{CompMode, DatasetKind, LossPlan, LrSchedule};
use crate::stage2::{BnMode, NcmFeatures, Stage2Kind, Stage2Method, Stage2Sampler, TauBias};

/// The most jobs one sweep may hold.
pub const MAX_JOBS: usize = 1_000_000;

/// The longest sweep name, in characters: it is copied into the sweep id every job carries.
pub const MAX_NAME_CHARS: usize = 64;

/// The longest `dataset.path`, in bytes (Linux's own limit on a path is 4,096).
pub const MAX_PATH_BYTES: usize = 1_024;

/// The most attempts a spec may give a job. A job that fails retryably is leased again, on
/// another worker as likely as not: without a bound one sweep could try a job that harms
/// workers on each of them in turn.
pub const MAX_ATTEMPTS: u32 = 100;

/// What takes `path`, a file or folder a spec or a list names, out of the folder it is read
/// under (the workers' `--data-root`, or a data set's folder there): a root or prefix (it is
/// absolute) or a `..` component. `None` for a path that stays under it lexically; symbolic
/// links are the worker's to check, when it opens the file. The spec's `validate` and the
/// worker (which may be sent a job that never went through `validate`) both ask this.
pub fn leaves_its_folder(path: &str) -> Option<&'static str> {
    std::path::Path::new(path)
        .components()
        .find_map(|component| match component {
            std::path::Component::Prefix(_) | std::path::Component::RootDir => Some("is absolute"),
            std::path::Component::ParentDir => Some("has a `..` component"),
            std::path::Component::CurDir | std::path::Component::Normal(_) => None,
        })
}

/// The synthetic data set's largest settings: beyond them a worker would not build the set in
/// memory (`image_size = 1000000` is a terabyte a class), so the spec is refused instead.
pub const MAX_IMAGE_SIZE: u32 = 512;
/// The most classes a spec may ask for, of any data set.
pub const MAX_CLASSES: u32 = 10_000;
/// The most synthetic images of one class in one split.
pub const MAX_IMAGES_PER_CLASS: u32 = 100_000;
/// The largest synthetic data set, train and test together, in bytes of pixels (one byte a
/// pixel and channel, as the worker holds it).
pub const MAX_SYNTHETIC_BYTES: u64 = 2 << 30;
/// List data's crop side when the spec gives none: ImageNet's 224.
pub const DEFAULT_CROP: u32 = 224;
/// The smallest crop side of list data (the CIFAR ResNet's three stride-2 stages need 8).
pub const MIN_CROP: u32 = 8;

/// A spec that is not valid: what is wrong, with the key and its line when known.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("line {line}, column {column}: not valid TOML: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", describe_key_error(.key, *.line, .message))]
    Key {
        /// Dotted path: `train.lr_decay_epochs`, `losses.plans[1].comp`; empty for the top level.
        key: String,
        line: Option<usize>,
        message: String,
    },
}

fn describe_key_error(key: &str, line: Option<usize>, message: &str) -> String {
    let mut text = String::new();
    if let Some(line) = line {
        text.push_str(&format!("line {line}: "));
    }
    if !key.is_empty() {
        text.push_str(&format!("{key}: "));
    }
    text.push_str(message);
    text
}

/// A numeric setting: one value, or a list of values that becomes an axis of the grid.
#[derive(Clone, Debug, PartialEq)]
pub enum Axis<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Copy> Axis<T> {
    pub fn values(&self) -> &[T] {
        match self {
            Axis::One(value) => std::slice::from_ref(value),
            Axis::Many(values) => values,
        }
    }

    pub fn first(&self) -> T {
        self.values()[0]
    }
}

impl<T: Copy + PartialOrd> Axis<T> {
    fn min(&self) -> T {
        let mut values = self.values().iter().copied();
        let first = values.next().expect("an axis has at least one value");
        values.fold(first, |a, b| if b < a { b } else { a })
    }
}

/// The numbers a spec may hold: whole numbers (counts, epochs) and reals.
trait AxisNumber: Copy + Sized {
    const EXPECTING: &'static str;
    fn from_i64(v: i64) -> Result<Self, String>;
    fn from_f64(v: f64) -> Result<Self, String>;
}

impl AxisNumber for u32 {
    const EXPECTING: &'static str = "a whole number";

    fn from_i64(v: i64) -> Result<Self, String> {
        u32::try_from(v).map_err(|_| format!("{v} is not a whole number from 0 to {}", u32::MAX))
    }

    fn from_f64(v: f64) -> Result<Self, String> {
        Err(format!("{v} is not a whole number"))
    }
}

impl AxisNumber for f64 {
    const EXPECTING: &'static str = "a number";

    fn from_i64(v: i64) -> Result<Self, String> {
        Ok(v as f64)
    }

    fn from_f64(v: f64) -> Result<Self, String> {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{v} is not a finite number"))
        }
    }
}

struct NumberVisitor<T>(PhantomData<T>);

impl<'de, T: AxisNumber> Visitor<'de> for NumberVisitor<T> {
    type Value = Axis<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} or a list of them", T::EXPECTING)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        T::from_i64(v).map(Axis::One).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        let v = i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))?;
        self.visit_i64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        T::from_f64(v).map(Axis::One).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element::<Scalar<T>>()? {
            values.push(value.0);
        }
        match values.len() {
            0 => Err(de::Error::custom("an empty list gives no value to run")),
            1 => Ok(Axis::One(values[0])),
            _ => Ok(Axis::Many(values)),
        }
    }
}

/// One element of a list axis.
struct Scalar<T>(T);

impl<'de, T: AxisNumber> Deserialize<'de> for Scalar<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ScalarVisitor<T>(PhantomData<T>);
        impl<'de, T: AxisNumber> Visitor<'de> for ScalarVisitor<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
                T::from_i64(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
                let v = i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))?;
                T::from_i64(v).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
                T::from_f64(v).map_err(E::custom)
            }
        }
        d.deserialize_any(ScalarVisitor(PhantomData)).map(Scalar)
    }
}

impl<'de, T: AxisNumber> Deserialize<'de> for Axis<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor(PhantomData))
    }
}

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

/// The largest pretrained weights file a worker reads (ResNet-152's float32 weights are 241 MB).
pub const MAX_INIT_BYTES: u64 = 2 << 30;

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
    /// `posthoc_la`.
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
}

impl Default for Stage2Section {
    fn default() -> Self {
        toml::from_str("").expect("every stage-2 setting has a default")
    }
}

/// A validated sweep spec. [`SweepSpec::jobs`] expands it into its grid.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    pub name: String,
    #[serde(default)]
    pub seeds: Option<Vec<u64>>,
    /// Attempts per job before a retryable failure becomes final.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    pub dataset: DatasetSection,
    #[serde(default)]
    pub model: ModelSection,
    #[serde(default)]
    pub train: TrainSection,
    #[serde(default)]
    pub losses: LossesSection,
    #[serde(default)]
    pub eval: EvalSection,
    #[serde(default)]
    pub stage2: Stage2Section,
    /// Keep every stage-1 job's final model until the sweep is deleted (`ltsweep model` writes
    /// one out), not only while a stage-2 job still needs it.
    #[serde(default)]
    pub keep_models: bool,
}

mod defaults {
    use super::{Axis, BaseKind, Choice, Sampler, Stage2Kind};
    use crate::job::CompMode;

    pub fn base() -> Choice<BaseKind> {
        Choice::one(BaseKind::Ce)
    }
    pub fn sampler() -> Choice<Sampler> {
        Choice::one(Sampler::Instance)
    }
    pub fn focal_gamma() -> Axis<f64> {
        Axis::One(1.0)
    }
    pub fn cb_beta() -> Axis<f64> {
        Axis::One(0.9999)
    }
    pub fn ldam_max_margin() -> Axis<f64> {
        Axis::One(0.5)
    }
    pub fn ldam_s() -> Axis<f64> {
        Axis::One(30.0)
    }

    pub fn zero() -> Axis<u32> {
        Axis::One(0)
    }
    pub fn depth() -> Axis<u32> {
        Axis::One(20)
    }
    pub fn epochs() -> Axis<u32> {
        Axis::One(200)
    }
    pub fn batch_size() -> Axis<u32> {
        Axis::One(128)
    }
    pub fn lr() -> Axis<f64> {
        Axis::One(0.1)
    }
    pub fn momentum() -> Axis<f64> {
        Axis::One(0.9)
    }
    pub fn weight_decay() -> Axis<f64> {
        Axis::One(2e-4)
    }
    pub fn lr_decay_factor() -> Axis<f64> {
        Axis::One(0.01)
    }
    pub fn checkpoint_every() -> Axis<u32> {
        Axis::One(10)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn one() -> Axis<f64> {
        Axis::One(1.0)
    }
    pub fn comp_mode() -> CompMode {
        CompMode::Alternate
    }
    pub fn pc_weight() -> Axis<f64> {
        Axis::One(0.01)
    }
    pub fn pc_push_weight() -> Axis<f64> {
        Axis::One(1e-4)
    }
    pub fn pc_center_lr() -> Axis<f64> {
        Axis::One(0.5)
    }
    pub fn stage2() -> Choice<Stage2Kind> {
        Choice::one(Stage2Kind::None)
    }
    pub fn stage2_epochs() -> Axis<u32> {
        Axis::One(10)
    }
    /// A stage-2 option at its default (Kang et al.'s).
    pub fn first<T: Copy + Default>() -> Choice<T> {
        Choice::one(T::default())
    }
    pub fn max_attempts() -> u32 {
        3
    }
}

impl SweepSpec {
    /// Parses and validates a spec; every error names its key and line.
    pub fn parse(text: &str) -> Result<SweepSpec, SpecError> {
        let document = DeTable::parse(text).map_err(|e| syntax_error(text, &e))?;
        let spec: SweepSpec = toml::from_str(text).map_err(|e| {
            // An empty span is the document as a whole (a missing top-level key).
            let span = e.span().filter(|s| !s.is_empty());
            SpecError::Key {
                key: span
                    .as_ref()
                    .and_then(|s| key_at(document.get_ref(), s.start, ""))
                    .unwrap_or_default(),
                line: span.map(|s| line_of(text, s.start)),
                message: e.message().replace("field", "key"),
            }
        })?;
        spec.validate().map_err(|Invalid { key, message }| {
            let line = span_of(document.get_ref(), &key).map(|offset| line_of(text, offset));
            SpecError::Key { key, line, message }
        })?;
        Ok(spec)
    }

    /// The `keep_models` of a spec's text, read without validating the rest: a spec stored by
    /// an earlier version may hold what this one refuses, and its sweep must still load.
    pub fn keeps_models(text: &str) -> bool {
        toml::from_str::<toml::Table>(text)
            .ok()
            .and_then(|table| table.get("keep_models")?.as_bool())
            .unwrap_or(false)
    }

    /// The loss plans of the grid, in order.
    pub fn plans(&self) -> Vec<LossPlan> {
        match (&self.losses.plans, self.losses.grid) {
            (Some(plans), _) => plans.clone(),
            (None, Some(GridPreset::Full)) => LossPlan::full(),
            (None, _) => LossPlan::PAPER.to_vec(),
        }
    }

    pub fn seeds(&self) -> &[u64] {
        self.seeds.as_deref().unwrap_or_default()
    }

    /// The base losses of the grid, in the spec's order.
    pub fn bases(&self) -> &[BaseKind] {
        self.losses.base.values()
    }

    /// The samplers of the grid, in the spec's order.
    pub fn samplers(&self) -> &[Sampler] {
        self.train.sampler.values()
    }

    /// The stage-2 methods each stage-1 job is followed by, in the spec's order, each with every
    /// value of its own settings (`none` is the stage-1 job itself and is not among them).
    pub fn stage2_methods(&self) -> Vec<Stage2Method> {
        let st = &self.stage2;
        let mut methods = Vec::new();
        for &kind in st.method.values() {
            match kind {
                Stage2Kind::None => {}
                Stage2Kind::Crt | Stage2Kind::Lws => {
                    let trained = match kind {
                        Stage2Kind::Crt => st.crt.clone(),
                        _ => st.lws.clone(),
                    }
                    .unwrap_or_default();
                    for &epochs in trained.epochs.values() {
                        for &lr in trained.lr.values() {
                            for &bn in trained.bn.values() {
                                for &sampler in trained.sampler.values() {
                                    methods.push(match kind {
                                        Stage2Kind::Crt => Stage2Method::Crt {
                                            epochs,
                                            lr,
                                            bn,
                                            sampler,
                                        },
                                        _ => Stage2Method::Lws {
                                            epochs,
                                            lr,
                                            bn,
                                            sampler,
                                        },
                                    });
                                }
                            }
                        }
                    }
                }
                Stage2Kind::TauNorm => {
                    let settings = st.tau_norm.clone().unwrap_or_default();
                    for &tau in settings.tau.values() {
                        for &bias in settings.bias.values() {
                            methods.push(Stage2Method::TauNorm { tau, bias });
                        }
                    }
                }
                Stage2Kind::Ncm => {
                    let settings = st.ncm.clone().unwrap_or_default();
                    methods.extend(
                        settings
                            .features
                            .values()
                            .iter()
                            .map(|&features| Stage2Method::Ncm { features }),
                    );
                }
                Stage2Kind::PosthocLa => {
                    let taus = st.posthoc_la.clone().unwrap_or_default();
                    methods.extend(
                        taus.tau
                            .values()
                            .iter()
                            .map(|&tau| Stage2Method::PosthocLa { tau }),
                    );
                }
            }
        }
        methods
    }

    /// A base loss with the spec's settings, for a job of `epochs` epochs.
    pub fn base_loss(&self, kind: BaseKind, epochs: u32) -> BaseLoss {
        let l = &self.losses;
        match kind {
            BaseKind::Ce => BaseLoss::Ce,
            BaseKind::Focal => BaseLoss::Focal {
                gamma: l.focal_gamma.first(),
            },
            BaseKind::Cb => BaseLoss::Cb {
                beta: l.cb_beta.first(),
            },
            BaseKind::La => BaseLoss::La {
                tau: l.la_tau.first(),
            },
            BaseKind::LdamDrw => BaseLoss::LdamDrw {
                max_margin: l.ldam_max_margin.first(),
                s: l.ldam_s.first(),
                drw_epoch: l.drw_epoch.as_ref().map_or(epochs * 4 / 5, Axis::first),
            },
        }
    }

    /// The checks serde cannot make: ranges, and settings against each other.
    fn validate(&self) -> Result<(), Invalid> {
        check(
            !self.name.is_empty()
                && self
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "name",
            "use letters, digits, '-', '_' and '.' only (it names files and ids)",
        )?;
        check(
            self.name.chars().count() <= MAX_NAME_CHARS,
            "name",
            &format!(
                "{} characters is over the limit of {MAX_NAME_CHARS}: every job's id carries the name, give a shorter one",
                self.name.chars().count()
            ),
        )?;
        let seeds = self.seeds.as_deref().unwrap_or_default();
        check(
            !seeds.is_empty(),
            "seeds",
            "give at least one seed, e.g. seeds = [0]",
        )?;
        let mut unique = seeds.to_vec();
        unique.sort_unstable();
        unique.dedup();
        check(
            unique.len() == seeds.len(),
            "seeds",
            "a seed is listed twice",
        )?;
        check(self.max_attempts >= 1, "max_attempts", "must be at least 1")?;
        check(
            self.max_attempts <= MAX_ATTEMPTS,
            "max_attempts",
            &format!(
                "{} attempts is over the limit of {MAX_ATTEMPTS} a job",
                self.max_attempts
            ),
        )?;
        self.validate_dataset()?;
        self.validate_model()?;
        self.validate_train()?;
        self.validate_losses()?;
        self.validate_base()?;
        self.validate_eval()?;
        self.validate_stage2()?;
        self.validate_grid_size()
    }

    fn validate_model(&self) -> Result<(), Invalid> {
        let m = &self.model;
        let arch = m.arch();
        if arch.is_cifar() {
            for &depth in m.depth().values() {
                check(
                    depth >= 8 && (depth - 2) % 6 == 0,
                    "model.depth",
                    &format!(
                        "{depth} is not a CIFAR ResNet depth 6n+2 of at least 8 (8, 20, 32, 44, 56, 110)"
                    ),
                )?;
            }
        } else {
            check(
                m.depth.is_none(),
                "model.depth",
                &format!("applies to the CIFAR ResNet; {arch} has its own depth"),
            )?;
        }
        if let Some(init) = &m.init {
            check(
                init.ends_with(".safetensors"),
                "model.init",
                &format!(
                    "`{init}` is not a .safetensors file (write PyTorch's weights with safetensors.torch.save_file)"
                ),
            )?;
            check(
                init.len() <= MAX_PATH_BYTES,
                "model.init",
                &format!("{} bytes is over the limit of {MAX_PATH_BYTES}", init.len()),
            )?;
            check(
                !init.contains('\0'),
                "model.init",
                "holds a NUL character, which no file name can",
            )?;
            check_under_data_root("model.init", init, "the --data-root")?;
        }
        check(
            m.init_skip.is_empty() || m.init.is_some(),
            "model.init_skip",
            "names variables to leave out of model.init, which is not given",
        )?;
        for name in &m.init_skip {
            check(
                !name.is_empty() && !name.starts_with('.') && !name.ends_with('.'),
                "model.init_skip",
                &format!(
                    "`{name}` is not a variable name or prefix such as \"fc\" or \"layer4.2\""
                ),
            )?;
        }
        no_repeats(&m.init_skip, "model.init_skip")
    }

    /// A grid of millions of jobs is a typo (a list where a number was meant), not a study.
    fn validate_grid_size(&self) -> Result<(), Invalid> {
        let mut factors: Vec<(String, usize)> = vec![
            ("losses".to_owned(), self.plans().len()),
            ("seeds".to_owned(), self.seeds().len()),
            ("losses.base".to_owned(), self.bases().len()),
            ("train.sampler".to_owned(), self.samplers().len()),
            // Each stage-1 job and one stage-2 job per method and setting.
            ("stage2.method".to_owned(), 1 + self.stage2_methods().len()),
        ];
        factors.extend(
            self.axes()
                .into_iter()
                .map(|(name, values)| (name.to_owned(), values.len())),
        );
        let jobs = factors
            .iter()
            .fold(1u128, |product, (_, n)| product.saturating_mul(*n as u128));
        let (largest, _) = factors
            .iter()
            .max_by_key(|(_, n)| *n)
            .expect("plans and seeds are always factors");
        check(
            jobs <= MAX_JOBS as u128,
            largest,
            &format!("the grid has {jobs} jobs; a sweep holds at most {MAX_JOBS}"),
        )
    }

    fn validate_dataset(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        let synthetic = d.kind == DatasetKind::Synthetic;
        if synthetic {
            check(
                d.path.is_none(),
                "dataset.path",
                "the synthetic data set is generated, it has no path",
            )?;
        } else {
            check(
                d.path.as_deref().is_some_and(|p| !p.is_empty()),
                "dataset.path",
                &format!("give the folder of the {} files", d.kind),
            )?;
            let path = d.path.as_deref().unwrap_or_default();
            check(
                path.len() <= MAX_PATH_BYTES,
                "dataset.path",
                &format!(
                    "{} bytes is over the limit of {MAX_PATH_BYTES}: give the folder relative to the workers' --data-root",
                    path.len()
                ),
            )?;
            check(
                !path.contains('\0'),
                "dataset.path",
                "holds a NUL character, which no file name can",
            )?;
            check_under_data_root("dataset.path", path, "the --data-root")?;
            for (key, given) in [
                ("dataset.train_per_class", d.train_per_class.is_some()),
                ("dataset.test_per_class", d.test_per_class.is_some()),
                ("dataset.image_size", d.image_size.is_some()),
                ("dataset.channels", d.channels.is_some()),
                ("dataset.noise", d.noise.is_some()),
            ] {
                check(
                    !given,
                    key,
                    &format!("applies to the synthetic data set only, not to {}", d.kind),
                )?;
            }
        }
        if d.kind.is_list() {
            self.validate_list()?;
        } else {
            for (key, given) in [
                ("dataset.train_list", d.train_list.is_some()),
                ("dataset.val_list", d.val_list.is_some()),
                ("dataset.test_list", d.test_list.is_some()),
                ("dataset.crop_size", d.crop_size.is_some()),
                ("dataset.resize_size", d.resize_size.is_some()),
                ("dataset.color_jitter", d.color_jitter.is_some()),
                ("dataset.mean", d.mean.is_some()),
                ("dataset.std", d.std.is_some()),
                ("dataset.reduced_decode", d.reduced_decode.is_some()),
                ("dataset.packed", d.packed.is_some()),
            ] {
                check(
                    !given,
                    key,
                    &format!(
                        "applies to list data (kind = \"list\" or a preset) only, not to {}",
                        d.kind
                    ),
                )?;
            }
        }
        let ratios = d.imbalance_ratio.as_ref().map(Axis::values);
        for &ratio in ratios.unwrap_or_default() {
            check(
                ratio >= 1.0,
                "dataset.imbalance_ratio",
                &format!("{ratio} is below 1 (1 keeps every class at full size)"),
            )?;
        }
        check(
            !(d.head_min_count.is_some() && d.head_fraction.is_some()),
            "dataset.head_fraction",
            "give head_min_count or head_fraction, not both",
        )?;
        positive_counts(d.head_min_count.as_ref(), "dataset.head_min_count")?;
        if let Some(fraction) = &d.head_fraction {
            for &f in fraction.values() {
                check(
                    f > 0.0 && f < 1.0,
                    "dataset.head_fraction",
                    &format!("{f} is not between 0 and 1"),
                )?;
            }
        }
        if let Some(classes) = &d.classes {
            for &c in classes.values() {
                check(
                    c >= 2,
                    "dataset.classes",
                    &format!("{c} classes is too few; at least 2"),
                )?;
                check(
                    c <= MAX_CLASSES,
                    "dataset.classes",
                    &format!("{c} classes is over the limit of {MAX_CLASSES}"),
                )?;
            }
        }
        check(
            d.val_per_class <= MAX_IMAGES_PER_CLASS,
            "dataset.val_per_class",
            &format!(
                "{} images a class is over the limit of {MAX_IMAGES_PER_CLASS}",
                d.val_per_class
            ),
        )?;
        check(
            !(d.kind.is_list() && d.val_per_class > 0),
            "dataset.val_per_class",
            &format!(
                "list data has its own validation list (val_list); {} takes none from training",
                d.kind
            ),
        )?;
        if synthetic && d.val_per_class > 0 {
            // File data sets are checked when loaded: only then are their class sizes known.
            let smallest = d.train_per_class.as_ref().map_or(500, |axis| {
                axis.values().iter().copied().min().unwrap_or(500)
            });
            check(
                d.val_per_class < smallest,
                "dataset.val_per_class",
                &format!(
                    "{} validation images a class leave none to train on: train_per_class is {smallest}",
                    d.val_per_class
                ),
            )?;
        }
        positive_counts(d.train_per_class.as_ref(), "dataset.train_per_class")?;
        positive_counts(d.test_per_class.as_ref(), "dataset.test_per_class")?;
        for (key, axis) in [
            ("dataset.train_per_class", &d.train_per_class),
            ("dataset.test_per_class", &d.test_per_class),
        ] {
            for &n in axis.as_ref().map(Axis::values).unwrap_or_default() {
                check(
                    n <= MAX_IMAGES_PER_CLASS,
                    key,
                    &format!("{n} images a class is over the limit of {MAX_IMAGES_PER_CLASS}"),
                )?;
            }
        }
        if let Some(size) = &d.image_size {
            for &s in size.values() {
                check(
                    s >= 4,
                    "dataset.image_size",
                    &format!("{s} pixels is too small; at least 4"),
                )?;
                check(
                    s <= MAX_IMAGE_SIZE,
                    "dataset.image_size",
                    &format!(
                        "{s} pixels is over the limit of {MAX_IMAGE_SIZE} (CIFAR images are 32)"
                    ),
                )?;
            }
        }
        if let Some(channels) = &d.channels {
            for &c in channels.values() {
                check(
                    c == 1 || c == 3,
                    "dataset.channels",
                    &format!("{c} channels; images have 1 or 3"),
                )?;
            }
        }
        if let Some(noise) = &d.noise {
            for &n in noise.values() {
                check(n >= 0.0, "dataset.noise", &format!("{n} is negative"))?;
            }
        }
        if synthetic {
            self.validate_synthetic_size()?;
            self.validate_synthetic_counts()?;
        }
        Ok(())
    }

    /// The synthetic set's long-tailed counts are known here: a subset that leaves a class
    /// without a training image is refused naming the class (a file data set's counts are
    /// known on the worker, which fails such a job for good).
    fn validate_synthetic_counts(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        // The defaults the grid resolves absent settings to (see `grid.rs`).
        let classes = d.classes.as_ref().map_or(&[10][..], Axis::values);
        let sizes = d.train_per_class.as_ref().map_or(&[500][..], Axis::values);
        for &ratio in d
            .imbalance_ratio
            .as_ref()
            .map_or(&[100.0][..], Axis::values)
        {
            for &size in sizes {
                for &k in classes {
                    let counts = crate::job::long_tail_counts(size, k as usize, ratio);
                    if let Some(class) = crate::job::first_empty_class(&counts) {
                        return Err(Invalid {
                            key: "dataset.imbalance_ratio".to_owned(),
                            message: format!(
                                "at ratio {ratio}, {size} training images a class leave class {class} of {k} with none (n_i = floor({size} * (1/{ratio})^(i/{}))): lower the ratio or raise dataset.train_per_class",
                                k - 1
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// List data: the lists named (or known to the preset), crop sizes, jitter; no setting that
    /// makes a set long-tailed, since the lists already are.
    fn validate_list(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        check(
            d.imbalance_ratio.is_none(),
            "dataset.imbalance_ratio",
            &format!(
                "list data is trained as its lists give it ({} is long-tailed already); remove the key",
                d.kind
            ),
        )?;
        let preset = d.kind.preset();
        if preset.is_some() {
            check(
                d.classes.is_none(),
                "dataset.classes",
                &format!(
                    "{} has a fixed class count; use kind = \"list\" for other lists",
                    d.kind
                ),
            )?;
        } else {
            check(
                d.train_list.is_some(),
                "dataset.train_list",
                "give the training list (`relative/path.jpg label` a line, or COCO-style .json), relative to dataset.path",
            )?;
            check(
                d.test_list.is_some(),
                "dataset.test_list",
                "give the test list, relative to dataset.path",
            )?;
            if let Some(classes) = &d.classes {
                check(
                    matches!(classes, Axis::One(_)),
                    "dataset.classes",
                    "takes one value for list data: the lists' class count",
                )?;
            }
        }
        for (key, file) in [
            ("dataset.train_list", &d.train_list),
            ("dataset.val_list", &d.val_list),
            ("dataset.test_list", &d.test_list),
            ("dataset.packed", &d.packed),
        ] {
            if let Some(file) = file {
                check(
                    !file.is_empty() && file.len() <= MAX_PATH_BYTES && !file.contains('\0'),
                    key,
                    &format!(
                        "give a file name relative to dataset.path, of 1 to {MAX_PATH_BYTES} bytes"
                    ),
                )?;
                check_under_data_root(key, file, "dataset.path")?;
            }
        }
        let crop = d.crop_size.unwrap_or(DEFAULT_CROP);
        check(
            (MIN_CROP..=MAX_IMAGE_SIZE).contains(&crop),
            "dataset.crop_size",
            &format!("{crop} pixels is not between {MIN_CROP} and {MAX_IMAGE_SIZE}"),
        )?;
        let resize = d.resize_size.unwrap_or(crop * 8 / 7);
        check(
            resize >= crop && resize <= 2 * MAX_IMAGE_SIZE,
            "dataset.resize_size",
            &format!(
                "{resize} pixels: evaluation resizes the shorter side to at least the crop ({crop}) and at most {}",
                2 * MAX_IMAGE_SIZE
            ),
        )?;
        let jitter = d.color_jitter.unwrap_or(0.0);
        check(
            jitter.is_finite() && (0.0..1.0).contains(&jitter),
            "dataset.color_jitter",
            &format!("{jitter} is not in [0, 1) (0.4 is the decoupling recipe's)"),
        )?;
        self.validate_normalization()
    }

    /// `dataset.mean` and `dataset.std`: both or neither, three values each, in the range of
    /// pixels scaled to [0, 1].
    fn validate_normalization(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        check(
            d.mean.is_some() == d.std.is_some(),
            if d.mean.is_some() {
                "dataset.std"
            } else {
                "dataset.mean"
            },
            "give dataset.mean and dataset.std together (or neither, for the preset's)",
        )?;
        for (key, values, lo, hi) in [
            ("dataset.mean", &d.mean, 0.0, 1.0),
            ("dataset.std", &d.std, 0.01, 1.0),
        ] {
            let Some(values) = values else { continue };
            check(
                values.len() == 3,
                key,
                &format!("{} values: give three, for R, G and B", values.len()),
            )?;
            for &v in values {
                check(
                    v.is_finite() && (lo..=hi).contains(&v),
                    key,
                    &format!("{v} is not between {lo} and {hi} (pixels are scaled to [0, 1])"),
                )?;
            }
        }
        Ok(())
    }

    /// The largest synthetic set of the grid (each axis at its largest) must fit the limit.
    fn validate_synthetic_size(&self) -> Result<(), Invalid> {
        let d = &self.dataset;
        // The defaults the grid resolves absent settings to (see `grid.rs`).
        let largest = |axis: &Option<Axis<u32>>, default: u32| {
            u64::from(axis.as_ref().map_or(default, |a| {
                a.values().iter().copied().max().unwrap_or(default)
            }))
        };
        let classes = largest(&d.classes, 10);
        let images = largest(&d.train_per_class, 500) + largest(&d.test_per_class, 100);
        let size = largest(&d.image_size, 32);
        let bytes = classes * images * largest(&d.channels, 3) * size * size;
        let key = if d.image_size.is_some() {
            "dataset.image_size"
        } else {
            "dataset.train_per_class"
        };
        check(
            bytes <= MAX_SYNTHETIC_BYTES,
            key,
            &format!(
                "the synthetic set would hold {bytes} bytes of pixels, over the limit of {MAX_SYNTHETIC_BYTES} (2 GiB): fewer classes, images or pixels"
            ),
        )
    }

    /// How many jobs the grid holds, without expanding it (saturating).
    pub fn job_count(&self) -> u128 {
        self.axes()
            .iter()
            .map(|(_, values)| values.len() as u128)
            .chain([
                self.plans().len() as u128,
                self.seeds().len() as u128,
                self.bases().len() as u128,
                self.samplers().len() as u128,
                1 + self.stage2_methods().len() as u128,
            ])
            .fold(1u128, u128::saturating_mul)
    }

    fn validate_train(&self) -> Result<(), Invalid> {
        let t = &self.train;
        positive_counts(Some(&t.epochs), "train.epochs")?;
        positive_counts(Some(&t.batch_size), "train.batch_size")?;
        positive_counts(Some(&t.checkpoint_every), "train.checkpoint_every")?;
        for &lr in t.lr.values() {
            check(lr > 0.0, "train.lr", &format!("{lr} is not positive"))?;
        }
        for &m in t.momentum.values() {
            check(
                (0.0..1.0).contains(&m),
                "train.momentum",
                &format!("{m} is not in [0, 1)"),
            )?;
        }
        for &wd in t.weight_decay.values() {
            check(
                wd >= 0.0,
                "train.weight_decay",
                &format!("{wd} is negative"),
            )?;
        }
        for &f in t.lr_decay_factor.values() {
            check(
                f > 0.0 && f <= 1.0,
                "train.lr_decay_factor",
                &format!("{f} is not in (0, 1]"),
            )?;
        }
        // The binding constraint of every "before the last epoch" rule is the shortest run.
        let epochs = t.epochs.min();
        for &w in t
            .warmup_epochs
            .as_ref()
            .map(Axis::values)
            .unwrap_or_default()
        {
            check(
                w < epochs,
                "train.warmup_epochs",
                &format!("{w} warm-up epochs leave no training in {epochs} epochs"),
            )?;
        }
        for &p in t.pretrain_ce_epochs.values() {
            check(
                p < epochs,
                "train.pretrain_ce_epochs",
                &format!(
                    "{p} epochs of cross entropy alone leave none for the plan in {epochs} epochs"
                ),
            )?;
        }
        if let Some(decays) = &t.lr_decay_epochs {
            for &e in decays {
                check(
                    e >= 1 && e < epochs,
                    "train.lr_decay_epochs",
                    &format!("epoch {e} is past the last epoch (train.epochs = {epochs})"),
                )?;
            }
            check(
                decays.windows(2).all(|w| w[0] < w[1]),
                "train.lr_decay_epochs",
                "list the epochs in increasing order",
            )?;
        }
        for &e in &t.eval_epochs {
            check(
                e >= 1 && e <= epochs,
                "train.eval_epochs",
                &format!("epoch {e} is not between 1 and the last epoch ({epochs})"),
            )?;
        }
        check(
            !(t.lr_schedule == LrSchedule::Cosine && t.lr_decay_epochs.is_some()),
            "train.lr_decay_epochs",
            "applies to the step schedule; the cosine schedule has no decay epochs",
        )?;
        if let Some(reference) = t.lr_reference_batch {
            check(
                reference >= 1,
                "train.lr_reference_batch",
                "must be at least 1 (the batch size `lr` is given for, e.g. 256)",
            )?;
        }
        let arch = self.model.arch();
        for (key, given) in [
            ("train.precision", t.precision.is_some()),
            ("train.channels_last", t.channels_last.is_some()),
        ] {
            check(
                !(given && arch.is_cifar()),
                key,
                "applies to the ImageNet architectures (model.arch); the CIFAR ResNet trains in float32",
            )?;
        }
        no_repeats(t.sampler.values(), "train.sampler")
    }

    fn validate_eval(&self) -> Result<(), Invalid> {
        check(
            self.eval.posthoc_tau.is_none(),
            "eval.posthoc_tau",
            "post-hoc logit adjustment is a stage-2 method now: write `[stage2] method = [\"none\", \"posthoc_la\"]` and its taus as `[stage2.posthoc_la] tau = [...]` (one job per tau, on the stage-1 job's model)",
        )
    }

    /// The stage-2 methods and their settings.
    fn validate_stage2(&self) -> Result<(), Invalid> {
        let st = &self.stage2;
        let methods = st.method.values();
        no_repeats(methods, "stage2.method")?;
        for (key, kind, given) in [
            ("stage2.crt", Stage2Kind::Crt, st.crt.is_some()),
            ("stage2.lws", Stage2Kind::Lws, st.lws.is_some()),
            (
                "stage2.tau_norm",
                Stage2Kind::TauNorm,
                st.tau_norm.is_some(),
            ),
            ("stage2.ncm", Stage2Kind::Ncm, st.ncm.is_some()),
            (
                "stage2.posthoc_la",
                Stage2Kind::PosthocLa,
                st.posthoc_la.is_some(),
            ),
        ] {
            check(
                !given || methods.contains(&kind),
                key,
                &format!("settings of `{kind}`, which stage2.method does not list: add it there"),
            )?;
        }
        for (key, trained) in [("stage2.crt", &st.crt), ("stage2.lws", &st.lws)] {
            let Some(trained) = trained else { continue };
            positive_counts(Some(&trained.epochs), &format!("{key}.epochs"))?;
            for &lr in trained.lr.values() {
                check(
                    lr > 0.0,
                    &format!("{key}.lr"),
                    &format!("{lr} is not positive"),
                )?;
            }
            no_repeats(trained.epochs.values(), &format!("{key}.epochs"))?;
            no_repeats(trained.lr.values(), &format!("{key}.lr"))?;
            no_repeats(trained.bn.values(), &format!("{key}.bn"))?;
            no_repeats(trained.sampler.values(), &format!("{key}.sampler"))?;
        }
        if let Some(tau_norm) = &st.tau_norm {
            for &tau in tau_norm.tau.values() {
                check(
                    tau >= 0.0,
                    "stage2.tau_norm.tau",
                    &format!(
                        "{tau} is negative (0 is the stage-1 classifier, 1 unit-norm weights)"
                    ),
                )?;
            }
            no_repeats(tau_norm.tau.values(), "stage2.tau_norm.tau")?;
            no_repeats(tau_norm.bias.values(), "stage2.tau_norm.bias")?;
        }
        if let Some(ncm) = &st.ncm {
            no_repeats(ncm.features.values(), "stage2.ncm.features")?;
        }
        if let Some(posthoc) = &st.posthoc_la {
            no_repeats(posthoc.tau.values(), "stage2.posthoc_la.tau")?;
        }
        Ok(())
    }

    /// The base losses and their settings.
    fn validate_base(&self) -> Result<(), Invalid> {
        let l = &self.losses;
        no_repeats(l.base.values(), "losses.base")?;
        for (key, axis) in [
            ("losses.focal_gamma", &l.focal_gamma),
            ("losses.cb_beta", &l.cb_beta),
            ("losses.la_tau", &l.la_tau),
            ("losses.ldam_max_margin", &l.ldam_max_margin),
            ("losses.ldam_s", &l.ldam_s),
        ] {
            check(
                matches!(axis, Axis::One(_)),
                key,
                "takes one value: a base loss's setting is no axis (write one spec per value)",
            )?;
        }
        let gamma = l.focal_gamma.first();
        check(
            gamma >= 0.0,
            "losses.focal_gamma",
            &format!("{gamma} is negative"),
        )?;
        let beta = l.cb_beta.first();
        check(
            (0.0..1.0).contains(&beta),
            "losses.cb_beta",
            &format!("{beta} is not in [0, 1)"),
        )?;
        for (key, value) in [
            ("losses.ldam_max_margin", l.ldam_max_margin.first()),
            ("losses.ldam_s", l.ldam_s.first()),
        ] {
            check(value > 0.0, key, &format!("{value} is not positive"))?;
        }
        if let Some(drw) = &l.drw_epoch {
            check(
                matches!(drw, Axis::One(_)),
                "losses.drw_epoch",
                "takes one value: a base loss's setting is no axis (write one spec per value)",
            )?;
            let epochs = self.train.epochs.min();
            let e = drw.first();
            check(
                e < epochs,
                "losses.drw_epoch",
                &format!(
                    "re-weighting from epoch {e} never starts in {epochs} epochs (0-based: 0 to {})",
                    epochs - 1
                ),
            )?;
        }
        Ok(())
    }

    fn validate_losses(&self) -> Result<(), Invalid> {
        let l = &self.losses;
        check(
            !(l.grid.is_some() && l.plans.is_some()),
            "losses.plans",
            "give a grid preset or a list of plans, not both",
        )?;
        if let Some(plans) = &l.plans {
            check(
                !plans.is_empty(),
                "losses.plans",
                "the list of plans is empty",
            )?;
            for (i, plan) in plans.iter().enumerate() {
                check(
                    !plans[..i].contains(plan),
                    &format!("losses.plans[{i}]"),
                    &format!("{plan} is listed twice"),
                )?;
            }
        }
        for (key, axis) in [
            ("losses.comp_weight", &l.comp_weight),
            ("losses.pc_weight", &l.pc_weight),
            ("losses.pc_push_weight", &l.pc_push_weight),
        ] {
            for &w in axis.values() {
                check(w >= 0.0, key, &format!("{w} is negative"))?;
            }
        }
        for &w in l.pc_weight.values() {
            // The centres' gradient is rescaled by 1/weight, as the PC reference code does.
            check(
                w > 0.0,
                "losses.pc_weight",
                "must be positive (switch PC off with the plans instead)",
            )?;
        }
        for &lr in l.pc_center_lr.values() {
            check(
                lr > 0.0,
                "losses.pc_center_lr",
                &format!("{lr} is not positive"),
            )?;
        }
        Ok(())
    }
}

/// A failed check: the dotted key and what is wrong with it.
struct Invalid {
    key: String,
    message: String,
}

fn check(ok: bool, key: &str, message: &str) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid {
            key: key.to_owned(),
            message: message.to_owned(),
        })
    }
}

/// A file or folder the workers read: relative to `base` (their `--data-root`, or
/// `dataset.path` under it) and never out of it. A NUL is refused by the caller, with its own
/// length limit.
fn check_under_data_root(key: &str, path: &str, base: &str) -> Result<(), Invalid> {
    match leaves_its_folder(path) {
        None => Ok(()),
        Some(problem) => Err(Invalid {
            key: key.to_owned(),
            message: format!(
                "`{path}` {problem}; a spec reads only files inside the workers' --data-root: give it relative to {base}, without `..`"
            ),
        }),
    }
}

fn no_repeats<T: PartialEq + fmt::Display>(values: &[T], key: &str) -> Result<(), Invalid> {
    for (i, value) in values.iter().enumerate() {
        check(
            !values[..i].contains(value),
            key,
            &format!("{value} is listed twice"),
        )?;
    }
    Ok(())
}

fn positive_counts(axis: Option<&Axis<u32>>, key: &str) -> Result<(), Invalid> {
    for &n in axis.map(Axis::values).unwrap_or_default() {
        check(n >= 1, key, "must be at least 1")?;
    }
    Ok(())
}

fn syntax_error(text: &str, error: &toml::de::Error) -> SpecError {
    let offset = error.span().map(|s| s.start).unwrap_or(0);
    let line_start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    SpecError::Syntax {
        line: line_of(text, offset),
        column: text[line_start..offset.min(text.len())].chars().count() + 1,
        message: error.message().to_owned(),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The dotted path of the deepest key whose key or value spans `offset`.
fn key_at(table: &DeTable<'_>, offset: usize, prefix: &str) -> Option<String> {
    for (key, value) in table {
        let path = join(prefix, key.get_ref());
        if let Some(found) = key_in_value(value.get_ref(), offset, &path) {
            return Some(found);
        }
        if key.span().contains(&offset) || value.span().contains(&offset) {
            return Some(path);
        }
    }
    None
}

fn key_in_value(value: &DeValue<'_>, offset: usize, path: &str) -> Option<String> {
    match value {
        DeValue::Table(table) => key_at(table, offset, path),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let item_path = format!("{path}[{i}]");
            key_in_value(item.get_ref(), offset, &item_path)
                .or_else(|| item.span().contains(&offset).then_some(item_path))
        }),
        _ => None,
    }
}

/// Where a dotted key (`losses.plans[1].comp`) starts in the text; for a key that is absent,
/// where its nearest present parent starts.
fn span_of(table: &DeTable<'_>, path: &str) -> Option<usize> {
    let mut table = table;
    let mut found = None;
    for segment in path.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let Some((key, mut value)) = table.iter().find(|(k, _)| k.get_ref() == name) else {
            break;
        };
        found = Some(key.span().start);
        if let Some(item) = index.and_then(|i| value.get_ref().as_array()?.get(i)) {
            value = item;
            found = Some(item.span().start);
        }
        match value.get_ref() {
            DeValue::Table(t) => table = t,
            _ => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> SpecError {
        SweepSpec::parse(text).unwrap_err()
    }

    #[test]
    fn a_missing_section_is_named_without_a_line() {
        let err = error("name = \"x\"\nseeds = [0]\n");
        assert_eq!(err.to_string(), "missing key `dataset`");
    }

    #[test]
    fn a_missing_key_in_a_section_names_the_section() {
        let err = error("name = \"x\"\nseeds = [0]\n[dataset]\npath = \"p\"\n");
        assert_eq!(err.to_string(), "line 3: dataset: missing key `kind`");
    }

    #[test]
    fn dotted_keys_and_inline_tables_are_located() {
        let err =
            error("name = \"x\"\nseeds = [0]\ndataset = { kind = \"synthetic\", noise = -1 }\n");
        assert_eq!(err.to_string(), "line 3: dataset.noise: -1 is negative");
        let err = error(
            "name = \"x\"\nseeds = [0]\ndataset.kind = \"synthetic\"\nmodel.depth = [20, 21]\n",
        );
        assert!(
            err.to_string()
                .starts_with("line 4: model.depth: 21 is not"),
            "{err}"
        );
    }

    #[test]
    fn a_grid_of_millions_of_jobs_is_refused() {
        let err = error(
            "name = \"x\"\nseeds = [0, 1]\n[dataset]\nkind = \"synthetic\"\n[train]\nlr = [1,2,3,4,5,6,7,8,9,10]\nmomentum = [0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9]\nweight_decay = [0,1,2,3,4,5,6,7,8,9]\nlr_decay_factor = [0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1]\n[losses]\npc_weight = [1,2,3,4,5,6,7,8,9,10]\n",
        );
        assert!(
            err.to_string().contains("the grid has 1800000 jobs"),
            "{err}"
        );
    }

    #[test]
    fn a_list_of_one_value_is_no_axis() {
        let spec = SweepSpec::parse("name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[losses]\npc_weight = [0.1]\n").unwrap();
        assert_eq!(spec.losses.pc_weight, Axis::One(0.1));
        assert!(spec.axes().is_empty());
    }

    #[test]
    fn whole_number_settings_refuse_fractions() {
        let err = error(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[train]\nepochs = 2.5\n",
        );
        assert_eq!(
            err.to_string(),
            "line 6: train.epochs: 2.5 is not a whole number"
        );
    }

    #[test]
    fn file_data_sets_need_a_path_and_no_synthetic_settings() {
        let err = error("name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"cifar10\"\n");
        assert_eq!(
            err.to_string(),
            "line 3: dataset.path: give the folder of the cifar10 files"
        );
        let err = error(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"mnist\"\npath = \"m\"\nnoise = 1\n",
        );
        assert!(
            err.to_string()
                .starts_with("line 6: dataset.noise: applies to the synthetic"),
            "{err}"
        );
    }

    #[test]
    fn a_long_name_or_path_is_refused_naming_the_limit() {
        let name = "n".repeat(MAX_NAME_CHARS + 1);
        let err = error(&format!(
            "name = \"{name}\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n"
        ));
        assert_eq!(
            err.to_string(),
            format!(
                "line 1: name: 65 characters is over the limit of 64: every job's id carries the name, give a shorter one"
            )
        );
        let path = "p".repeat(MAX_PATH_BYTES + 1);
        let err = error(&format!(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"cifar10\"\npath = \"{path}\"\n"
        ));
        assert!(
            err.to_string()
                .starts_with("line 5: dataset.path: 1025 bytes is over the limit of 1024"),
            "{err}"
        );
        SweepSpec::parse(&format!(
            "name = \"{}\"\nseeds = [0]\n[dataset]\nkind = \"cifar10\"\npath = \"{}\"\n",
            "n".repeat(MAX_NAME_CHARS),
            "p".repeat(MAX_PATH_BYTES)
        ))
        .unwrap();
    }

    #[test]
    fn synthetic_sizes_a_worker_cannot_hold_are_refused() {
        let synthetic = |extra: &str| {
            SweepSpec::parse(&format!(
                "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n{extra}\n"
            ))
        };
        let err = synthetic("image_size = 1000000").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 5: dataset.image_size: 1000000 pixels is over the limit of 512 (CIFAR images are 32)"
        );
        let err = synthetic("train_per_class = 1000000").unwrap_err();
        assert!(
            err.to_string()
                .contains("1000000 images a class is over the limit of 100000"),
            "{err}"
        );
        let err = synthetic("classes = 20000").unwrap_err();
        assert!(err.to_string().contains("over the limit of 10000"), "{err}");
        // Each setting within its limit, together too much: 1000 classes of 600 images of
        // 3 x 512 x 512.
        let err = synthetic("classes = 1000\nimage_size = 512").unwrap_err();
        assert!(
            err.to_string()
                .contains("over the limit of 2147483648 (2 GiB)"),
            "{err}"
        );
        synthetic("classes = 100\nimage_size = 64").unwrap();
    }

    #[test]
    fn older_specs_keep_their_ids() {
        // Printed by `ltsweep validate --json examples/paper-table1.toml` before the model and
        // recipe settings of the ImageNet models existed.
        let spec = SweepSpec::parse(include_str!("../../examples/paper-table1.toml")).unwrap();
        let jobs = spec.jobs();
        assert_eq!(jobs[0].sweep.as_str(), "paper-table1-72b31520");
        assert_eq!(jobs[0].id.as_str(), "1f5ae0c9b399");
        assert_eq!(jobs[1].id.as_str(), "ef9e87e085e0");
    }

    fn imagenet(extra: &str) -> Result<SweepSpec, SpecError> {
        SweepSpec::parse(&format!(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n{extra}\n"
        ))
    }

    #[test]
    fn imagenet_models_take_their_own_depth_and_default_to_bf16_channels_last() {
        let spec = imagenet("[model]\narch = \"resnet50\"").unwrap();
        let job = &spec.jobs()[0];
        assert_eq!(job.model.depth, 50);
        assert_eq!(job.model.arch, Arch::Resnet50);
        assert_eq!(job.train.precision, Precision::Bf16);
        assert!(job.train.channels_last);
        let err = imagenet("[model]\narch = \"resnet50\"\ndepth = 20").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 7: model.depth: applies to the CIFAR ResNet; resnet50 has its own depth"
        );
        let err = imagenet("[model]\narch = \"resnet51\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 6: model.arch: unknown variant `resnet51`"),
            "{err}"
        );
        let err = imagenet("[train]\nprecision = \"bf16\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 6: train.precision: applies to the ImageNet"),
            "{err}"
        );
        let spec = imagenet(
            "[model]\narch = \"resnet10\"\n[train]\nprecision = \"fp32\"\nchannels_last = false",
        )
        .unwrap();
        let job = &spec.jobs()[0];
        assert_eq!(
            (job.train.precision, job.train.channels_last),
            (Precision::Fp32, false)
        );
    }

    #[test]
    fn a_cosine_schedule_has_no_decay_epochs_and_scales_with_the_batch() {
        let err =
            imagenet("[train]\nlr_schedule = \"cosine\"\nlr_decay_epochs = [10]").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 7: train.lr_decay_epochs: applies to the step"),
            "{err}"
        );
        let spec = imagenet("[train]\nlr_schedule = \"cosine\"\nbatch_size = 512\nlr_reference_batch = 256\nlr = 0.1\nwarmup_epochs = 0").unwrap();
        let train = &spec.jobs()[0].train;
        assert!(train.lr_decay_epochs.is_empty());
        assert!((train.lr_at(0) - 0.2).abs() < 1e-12);
        let err = imagenet("[train]\nlr_reference_batch = 0").unwrap_err();
        assert!(
            err.to_string()
                .contains("train.lr_reference_batch: must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn init_files_stay_inside_the_data_root() {
        for (path, message) in [
            (
                "/etc/r50.safetensors",
                "`/etc/r50.safetensors` is absolute; a spec reads only files inside the workers' --data-root",
            ),
            (
                "../r50.safetensors",
                "`../r50.safetensors` has a `..` component; a spec reads only files inside",
            ),
            ("w/r50.pth", "is not a .safetensors file"),
        ] {
            let err =
                imagenet(&format!("[model]\narch = \"resnet50\"\ninit = \"{path}\"")).unwrap_err();
            assert!(err.to_string().starts_with("line 7: model.init: "), "{err}");
            assert!(err.to_string().contains(message), "{err}");
        }
        let err = imagenet("[model]\ninit_skip = [\"fc\"]").unwrap_err();
        assert!(
            err.to_string().contains("model.init_skip: names variables"),
            "{err}"
        );
        let spec = imagenet("[model]\narch = \"resnet152\"\ninit = \"weights/resnet152.safetensors\"\ninit_skip = [\"fc\"]").unwrap();
        let model = &spec.jobs()[0].model;
        assert_eq!(model.init.as_deref(), Some("weights/resnet152.safetensors"));
        assert_eq!(model.init_skip, ["fc"]);
    }

    #[test]
    fn a_validation_split_must_leave_images_to_train_on() {
        let err = error(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\ntrain_per_class = [40, 20]\nval_per_class = 20\n",
        );
        assert_eq!(
            err.to_string(),
            "line 6: dataset.val_per_class: 20 validation images a class leave none to train on: train_per_class is 20"
        );
        let err = error(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\nsubset_seed = \"each\"\n",
        );
        assert!(err.to_string().contains("dataset.subset_seed"), "{err}");
        SweepSpec::parse(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"cifar10\"\npath = \"c\"\nval_per_class = 50\nsubset_seed = \"job\"\n",
        )
        .unwrap();
    }

    #[test]
    fn a_synthetic_subset_that_leaves_a_class_empty_is_refused_naming_it() {
        let err = error(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\ntrain_per_class = 50\nimbalance_ratio = [10, 100]\n",
        );
        assert!(
            err.to_string().starts_with(
                "line 6: dataset.imbalance_ratio: at ratio 100, 50 training images a class leave class 8 of 10 with none"
            ),
            "{err}"
        );
        SweepSpec::parse(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\ntrain_per_class = 50\nimbalance_ratio = 50\n",
        )
        .unwrap();
    }

    #[test]
    fn the_job_count_is_the_product_of_the_axes() {
        let spec = SweepSpec::parse("name = \"x\"\nseeds = [0, 1, 2]\n[dataset]\nkind = \"synthetic\"\n[losses]\npc_weight = [0.1, 1.0]\n").unwrap();
        assert_eq!(spec.job_count(), 9 * 3 * 2);
        assert_eq!(spec.job_count(), spec.jobs().len() as u128);
    }

    #[test]
    fn list_settings_are_checked_and_named() {
        let list = |extra: &str| {
            SweepSpec::parse(&format!("name = \"x\"\nseeds = [0]\n[dataset]\n{extra}\n"))
        };
        let err = list("kind = \"list\"\npath = \"d\"\ntest_list = \"t.txt\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("line 3: dataset.train_list: give the training list"),
            "{err}"
        );
        let err = list("kind = \"list\"\npath = \"d\"\ntrain_list = \"a\"\ntest_list = \"b\"\nval_per_class = 5")
            .unwrap_err();
        assert!(err.to_string().contains("dataset.val_per_class"), "{err}");
        assert!(err.to_string().contains("val_list"), "{err}");
        let err = list("kind = \"imagenet-lt\"\npath = \"d\"\nimbalance_ratio = 10").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "line 6: dataset.imbalance_ratio: list data is trained as its lists give it"
            ),
            "{err}"
        );
        let err = list("kind = \"places-lt\"\npath = \"d\"\nclasses = 10").unwrap_err();
        assert!(
            err.to_string()
                .contains("places-lt has a fixed class count"),
            "{err}"
        );
        let err = list("kind = \"cifar10\"\npath = \"d\"\ncrop_size = 32").unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 6: dataset.crop_size: applies to list data (kind = \"list\" or a preset) only, not to cifar10"
        );
        let err = list("kind = \"inat2018\"\npath = \"d\"\ncrop_size = 4").unwrap_err();
        assert!(
            err.to_string()
                .contains("4 pixels is not between 8 and 512"),
            "{err}"
        );
        let err = list("kind = \"inat2018\"\npath = \"d\"\nresize_size = 200").unwrap_err();
        assert!(err.to_string().contains("at least the crop (224)"), "{err}");
        let err = list("kind = \"inat2018\"\npath = \"d\"\ncolor_jitter = 1.5").unwrap_err();
        assert!(err.to_string().contains("1.5 is not in [0, 1)"), "{err}");
        let err = list("kind = \"inat2018\"\npath = \"d\"\nmean = [0.5, 0.5, 0.5]").unwrap_err();
        assert!(
            err.to_string()
                .contains("dataset.std: give dataset.mean and dataset.std together"),
            "{err}"
        );
        let err =
            list("kind = \"places-lt\"\npath = \"d\"\nmean = [0.5, 0.5]\nstd = [0.2, 0.2, 0.2]")
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("dataset.mean: 2 values: give three"),
            "{err}"
        );
        let err =
            list("kind = \"places-lt\"\npath = \"d\"\nmean = [0.5, 0.5, 0.5]\nstd = [0.2, 0, 0.2]")
                .unwrap_err();
        assert!(
            err.to_string()
                .contains("dataset.std: 0 is not between 0.01 and 1"),
            "{err}"
        );
        let err = list("kind = \"cifar10\"\npath = \"d\"\nreduced_decode = false").unwrap_err();
        assert!(
            err.to_string()
                .contains("dataset.reduced_decode: applies to list data"),
            "{err}"
        );
        list("kind = \"list\"\npath = \"d\"\ntrain_list = \"a.txt\"\ntest_list = \"b.json\"\nclasses = 3")
            .unwrap();
    }

    #[test]
    fn two_stage_specs_on_list_data_are_accepted() {
        for kind in [
            "kind = \"imagenet-lt\"",
            "kind = \"list\"\ntrain_list = \"a.txt\"\ntest_list = \"b.txt\"\nclasses = 3",
        ] {
            let spec = SweepSpec::parse(&format!(
                "name = \"x\"\nseeds = [0]\n[dataset]\n{kind}\npath = \"d\"\npacked = \"d.ltpack\"\n[losses]\nplans = [{{}}]\n[stage2]\nmethod = [\"none\", \"crt\", \"lws\", \"tau_norm\", \"ncm\", \"posthoc_la\"]\n"
            ))
            .unwrap_or_else(|err| panic!("{kind}: {err}"));
            let jobs = spec.jobs();
            assert_eq!(jobs.len(), 6, "{kind}");
            assert!(
                jobs[1..]
                    .iter()
                    .all(|j| j.stage2.as_ref().is_some_and(|s| s.parent == jobs[0].id))
            );
        }
    }

    fn dataset(lines: &str) -> Result<SweepSpec, SpecError> {
        SweepSpec::parse(&format!("name = \"x\"\nseeds = [0]\n[dataset]\n{lines}\n"))
    }

    #[test]
    fn a_spec_reads_only_paths_under_the_data_root() {
        // A reviewer's reproduction: `/etc` and `passwd` passed, and the job's failure quoted
        // the file to every viewer.
        let err = dataset(
            "kind = \"list\"\npath = \"/etc\"\ntrain_list = \"passwd\"\ntest_list = \"passwd\"",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("line 5: dataset.path: `/etc` is absolute; a spec reads only files inside the workers' --data-root"),
            "{err}"
        );
        for (key, lines) in [
            ("dataset.path", "kind = \"cifar10\"\npath = \"../../etc\""),
            (
                "dataset.path",
                "kind = \"fashion-mnist\"\npath = \"data/../../x\"",
            ),
            (
                "dataset.train_list",
                "kind = \"list\"\npath = \"d\"\ntrain_list = \"/var/lib/ltsweep/worker-token\"\ntest_list = \"t.txt\"",
            ),
            (
                "dataset.test_list",
                "kind = \"list\"\npath = \"d\"\ntrain_list = \"a.txt\"\ntest_list = \"../../etc/passwd\"",
            ),
            (
                "dataset.val_list",
                "kind = \"list\"\npath = \"d\"\ntrain_list = \"a.txt\"\nval_list = \"/dev/zero\"\ntest_list = \"t.txt\"",
            ),
            (
                "dataset.packed",
                "kind = \"imagenet-lt\"\npath = \"d\"\npacked = \"../p.ltpack\"",
            ),
        ] {
            let err = dataset(lines).unwrap_err().to_string();
            assert!(err.contains(&format!("{key}: `")), "{lines}: {err}");
            assert!(
                err.contains("is absolute;") || err.contains("has a `..` component;"),
                "{lines}: {err}"
            );
        }
        // Inside the root: a folder, `.`, and names with dots in them.
        dataset("kind = \"list\"\npath = \".\"\ntrain_list = \"lists/a..b.txt\"\ntest_list = \"./t.txt\"")
            .unwrap();
        dataset("kind = \"cifar10\"\npath = \"sets/cifar-10-batches-bin\"").unwrap();
        assert_eq!(leaves_its_folder("a/b.jpg"), None);
        assert_eq!(leaves_its_folder("/a"), Some("is absolute"));
        assert_eq!(leaves_its_folder("a/../../b"), Some("has a `..` component"));
    }

    #[test]
    fn max_attempts_is_bounded() {
        let spec = |attempts: u32| {
            SweepSpec::parse(&format!(
                "name = \"x\"\nseeds = [0]\nmax_attempts = {attempts}\n[dataset]\nkind = \"synthetic\"\n"
            ))
        };
        assert_eq!(spec(MAX_ATTEMPTS).unwrap().max_attempts, MAX_ATTEMPTS);
        let err = spec(MAX_ATTEMPTS + 1).unwrap_err().to_string();
        assert_eq!(
            err,
            "line 3: max_attempts: 101 attempts is over the limit of 100 a job"
        );
        assert!(spec(u32::MAX).is_err());
    }
}
