//! One training run, as a worker receives it: ids, the loss plan, and the concrete settings of
//! every grid axis.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::arch::{Arch, Precision};
use crate::augment::Augmentation;
use crate::baseline::{BaseLoss, Sampler};
use crate::stage2::Stage2Method;

use crate::string_enum::string_enum;

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

        /// Read as text wherever text is read (a table cell, a file name); a `&str` never
        /// becomes an id without naming the type.
        impl ::std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
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
string_id!(
    /// A worker, as the coordinator named it at registration: `w-17`, from a persisted
    /// counter, so ids stay unique across coordinator restarts.
    WorkerId
);
string_id!(
    /// A lease on a job: every call about the job carries it (fencing). `l-<tag>-<job id>`: 128
    /// bits no other worker can guess (32 hex digits), then the job it leases, so that any
    /// lease id leads to its job.
    LeaseId
);

impl LeaseId {
    /// A lease on `job` named by `tag`, which the coordinator derives so that no one can guess it.
    pub fn issued(tag: u128, job: &JobId) -> Self {
        Self(format!("l-{tag:032x}-{job}"))
    }

    /// The job this lease id was issued for, if it is one of a coordinator's at all.
    pub fn job(&self) -> Option<JobId> {
        let rest = self.0.strip_prefix("l-")?;
        let (tag, job) = rest.split_once('-')?;
        (!tag.is_empty() && tag.bytes().all(|b| b.is_ascii_hexdigit()) && !job.is_empty())
            .then(|| JobId(job.to_owned()))
    }
}

string_enum!(
    /// The classes a loss term is switched on for.
    #[derive(PartialOrd, Ord)]
    pub enum ClassScope("a class scope") {
        None = "none",
        Head = "head",
        Tail = "tail",
        All = "all",
    }
);

impl ClassScope {
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
        for comp in ClassScope::ALL {
            for pc in ClassScope::ALL {
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

string_enum!(
    /// A data set, as the spec's `dataset.kind` names it.
    pub enum DatasetKind("a data set kind") {
        Cifar10 = "cifar10",
        Cifar100 = "cifar100",
        FashionMnist = "fashion-mnist",
        Mnist = "mnist",
        Synthetic = "synthetic",
        /// JPEG files under a root folder, named by list files (`relative/path.jpg label` a line)
        /// or COCO-style JSON annotations.
        List = "list",
        /// ImageNet-LT (Liu et al. 2019): [`DatasetKind::List`] with its files and counts known.
        ImagenetLt = "imagenet-lt",
        /// Places-LT (Liu et al. 2019).
        PlacesLt = "places-lt",
        /// iNaturalist 2018 from its own JSON annotations; its validation set is the test set.
        Inat2018 = "inat2018",
    }
);

impl DatasetKind {
    /// Whether the images are files named by lists (streamed while training) rather than a
    /// set held in memory.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            Self::List | Self::ImagenetLt | Self::PlacesLt | Self::Inat2018
        )
    }

    /// The files, class count and split sizes a preset knows; `None` for other kinds.
    pub fn preset(self) -> Option<&'static ListPreset> {
        PRESETS.iter().find(|p| p.kind == self)
    }

    /// The normalisation of list data when the spec gives none: the preset's, else ImageNet's.
    pub fn normalization(self) -> Normalization {
        self.preset()
            .map_or(Normalization::IMAGENET, |p| p.normalization)
    }
}

/// A published long-tailed benchmark: its list files (relative to the data set's folder), its
/// classes and the images each split must hold.
#[derive(Debug, PartialEq)]
pub struct ListPreset {
    pub kind: DatasetKind,
    pub train: &'static str,
    pub val: Option<&'static str>,
    pub test: &'static str,
    pub classes: u32,
    /// Images in the train, validation and test lists.
    pub counts: [usize; 3],
    /// The mean and standard deviation images are normalised with, by default.
    pub normalization: Normalization,
}

/// The per-channel (R, G, B) mean and standard deviation of `Normalize(mean, std)`, on pixel
/// values scaled to [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

impl Normalization {
    /// ImageNet's, which Kang et al.'s loader (classifier-balancing, data/dataloader.py,
    /// `RGB_statistics['default']`) uses for ImageNet-LT and Places-LT.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// iNaturalist 2018's own, from the same file (`RGB_statistics['iNaturalist18']`).
    pub const INAT2018: Normalization = Normalization {
        mean: [0.466, 0.471, 0.380],
        std: [0.195, 0.194, 0.192],
    };

    fn is_imagenet(&self) -> bool {
        *self == Self::IMAGENET
    }
}

impl Default for Normalization {
    fn default() -> Self {
        Self::IMAGENET
    }
}

/// The three benchmarks of the long-tail literature besides CIFAR-LT: ImageNet-LT and
/// Places-LT as Liu et al. (2019) released their lists, iNaturalist 2018 as its JSON files
/// (8,142 species; the 24,426 validation images are the test set every paper reports).
pub const PRESETS: [ListPreset; 3] = [
    ListPreset {
        kind: DatasetKind::ImagenetLt,
        train: "ImageNet_LT_train.txt",
        val: Some("ImageNet_LT_val.txt"),
        test: "ImageNet_LT_test.txt",
        classes: 1000,
        counts: [115_846, 20_000, 50_000],
        normalization: Normalization::IMAGENET,
    },
    ListPreset {
        kind: DatasetKind::PlacesLt,
        train: "Places_LT_train.txt",
        val: Some("Places_LT_val.txt"),
        test: "Places_LT_test.txt",
        classes: 365,
        counts: [62_500, 7_300, 36_500],
        normalization: Normalization::IMAGENET,
    },
    ListPreset {
        kind: DatasetKind::Inat2018,
        train: "train2018.json",
        val: None,
        test: "val2018.json",
        classes: 8142,
        counts: [437_513, 0, 24_426],
        normalization: Normalization::INAT2018,
    },
];

/// The files of a data set of [`DatasetKind::List`] or a preset, and how its images are read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListConfig {
    /// The training list, relative to the data set's folder (`.json`: COCO-style annotations).
    pub train: String,
    /// The validation list, if the data set has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<String>,
    pub test: String,
    /// The side of the square training crop and evaluation centre crop (224).
    pub crop_size: u32,
    /// The shorter side evaluation images are resized to before the centre crop (256).
    pub resize_size: u32,
    /// Brightness, contrast and saturation jitter of training images (0: off; the decoupling
    /// recipe's 0.4).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub color_jitter: f64,
    /// `Normalize(mean, std)` of every image. Absent from a job's JSON when ImageNet's, so the
    /// ids of jobs from before the setting are unchanged.
    #[serde(default, skip_serializing_if = "Normalization::is_imagenet")]
    pub normalization: Normalization,
    /// Whether a JPEG is decoded at the smallest IDCT scale that still covers the crop (1/2,
    /// 1/4, 1/8: faster, and slightly different pixels from a full decode) or always at full
    /// size, as Pillow without `draft()` does.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub reduced_decode: bool,
    /// A packed copy (`ltsweep data pack`) read instead of the image files, relative to the
    /// data set's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packed: Option<String>,
}

fn is_zero(value: &f64) -> bool {
    *value == 0.0
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

impl SyntheticConfig {
    /// The settings the spec leaves out: CIFAR's shape (32×32 RGB), 500 training and 100 test
    /// images a class. The grid resolves absent settings to them and the spec's limits are
    /// checked against them.
    pub const DEFAULT: SyntheticConfig = SyntheticConfig {
        train_per_class: 500,
        test_per_class: 100,
        image_size: 32,
        channels: 3,
        noise: 1.0,
    };
    /// The class count when the spec gives none: the synthetic set has no natural one.
    pub const DEFAULT_CLASSES: u32 = 10;
}

/// The imbalance ratio of a data set held in memory when the spec gives none (list data is
/// trained as its lists give it).
pub const DEFAULT_IMBALANCE_RATIO: f64 = 100.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetConfig {
    pub kind: DatasetKind,
    /// On the worker, relative to its data root; `None` for the synthetic set.
    pub path: Option<String>,
    pub imbalance_ratio: f64,
    pub head: HeadSplit,
    pub sampling_seed: u64,
    /// Use the first `classes` classes; `None` for all of the data set's. For list data: the
    /// number of classes (a label at or past it is an error); `None` to count them from the
    /// training list.
    pub classes: Option<u32>,
    pub synthetic: SyntheticConfig,
    /// Images of every class held out of the balanced training images as the validation set,
    /// drawn from `sampling_seed` before the long-tailed subset is; 0 for none (left out then,
    /// so ids of older specs hold).
    #[serde(default, skip_serializing_if = "is_zero_count")]
    pub val_per_class: u32,
    /// The job's seed when the long-tailed subset's draw varies with it (`[dataset]
    /// subset_seed = "job"`); `None`: drawn from `sampling_seed` alone, the same for every job
    /// (left out then, so ids of older specs hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset_seed: Option<u64>,
    /// The files of list data; absent for the other kinds (ids of older specs hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListConfig>,
}

fn is_zero_count(n: &u32) -> bool {
    *n == 0
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
    /// The CIFAR ResNet's depth; an ImageNet architecture's nominal depth (50 for ResNet-50).
    pub depth: u32,
    /// Left out when the CIFAR ResNet (ids of older specs hold).
    #[serde(default, skip_serializing_if = "Arch::is_cifar")]
    pub arch: Arch,
    /// A safetensors file of initial weights, relative to the worker's data root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// Variables left at their fresh initialisation when `init` is loaded: names or name
    /// prefixes ending at a `.` (`fc` is `fc.weight` and `fc.bias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_skip: Vec<String>,
}

/// How the learning rate moves after the warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// Multiplied by `lr_decay_factor` at each of `lr_decay_epochs`.
    #[default]
    Step,
    /// Half a cosine from the peak rate down to 0 over the epochs after the warm-up, stepped
    /// once an epoch (PyTorch's `CosineAnnealingLR(T_max = epochs - warmup, eta_min = 0)`).
    Cosine,
}

impl LrSchedule {
    pub fn is_step(&self) -> bool {
        *self == Self::Step
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Step => "step",
            Self::Cosine => "cosine",
        })
    }
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
    // The fields below are left out at their defaults, so that older specs keep their ids.
    #[serde(default, skip_serializing_if = "LrSchedule::is_step")]
    pub lr_schedule: LrSchedule,
    /// Linear scaling (Goyal et al. 2017): the peak rate is `lr * batch_size / reference`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_reference_batch: Option<u32>,
    /// Whether weight decay applies to BatchNorm's scales and shifts and to biases (every
    /// parameter of one dimension) as well as to the convolution and classifier weights.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub decay_norm_and_bias: bool,
    #[serde(default, skip_serializing_if = "Precision::is_fp32")]
    pub precision: Precision,
    /// Activations in channels-last (NHWC) memory layout.
    #[serde(default, skip_serializing_if = "is_false")]
    pub channels_last: bool,
    /// An image policy, Cutout and batch mixing beyond the crop and flip.
    #[serde(default, skip_serializing_if = "Augmentation::is_standard")]
    pub augmentation: Augmentation,
}

fn yes() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl TrainConfig {
    /// The learning rate of a 0-based epoch: linear warm-up to the peak rate, then step decay
    /// or a cosine.
    pub fn lr_at(&self, epoch: u32) -> f64 {
        let peak = self.peak_lr();
        if epoch < self.warmup_epochs {
            return peak * f64::from(epoch + 1) / f64::from(self.warmup_epochs);
        }
        match self.lr_schedule {
            LrSchedule::Step => {
                let decays = self.lr_decay_epochs.iter().filter(|&&e| epoch >= e).count();
                peak * self.lr_decay_factor.powi(decays as i32)
            }
            LrSchedule::Cosine => {
                let span = f64::from(self.epochs.saturating_sub(self.warmup_epochs).max(1));
                let progress = f64::from(epoch - self.warmup_epochs) / span;
                peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }

    /// `lr`, scaled by `batch_size / lr_reference_batch` when a reference batch is given.
    pub fn peak_lr(&self) -> f64 {
        match self.lr_reference_batch {
            Some(reference) => self.lr * f64::from(self.batch_size) / f64::from(reference),
            None => self.lr,
        }
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

/// What makes a job a stage-2 job: the stage-1 job whose final model it starts from, and what
/// it does with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage2 {
    pub parent: JobId,
    #[serde(flatten)]
    pub method: Stage2Method,
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
        if !self.train.augmentation.is_standard() {
            label.push_str(&format!("{} ", self.train.augmentation.label()));
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

string_enum!(
    /// Where a job is in its life: `Pending → Running (leased) → Succeeded | Failed | Cancelled`.
    pub enum JobState("a job state") {
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
);

impl JobState {
    /// Succeeded, failed or cancelled: nothing more happens without a retry.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
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

    fn recipe() -> TrainConfig {
        TrainConfig {
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
            lr_schedule: LrSchedule::Step,
            lr_reference_batch: None,
            decay_norm_and_bias: true,
            precision: Precision::Fp32,
            channels_last: false,
            augmentation: Augmentation::default(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn learning_rate_warms_up_then_decays() {
        let train = recipe();
        assert!(close(train.lr_at(0), 0.02));
        assert!(close(train.lr_at(4), 0.1));
        assert!(close(train.lr_at(239), 0.1));
        assert!(close(train.lr_at(240), 0.001));
        assert!(close(train.lr_at(299), 0.00001));
    }

    #[test]
    fn the_cosine_schedule_follows_pytorchs_cosine_annealing() {
        // Kang et al.'s ImageNet-LT recipe: 90 epochs, no warm-up, lr 0.2 at batch 512.
        let mut train = TrainConfig {
            epochs: 90,
            batch_size: 512,
            lr: 0.2,
            warmup_epochs: 0,
            lr_decay_epochs: Vec::new(),
            lr_schedule: LrSchedule::Cosine,
            ..recipe()
        };
        // torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=90, eta_min=0), read after
        // 0, 1, 45, 60 and 89 calls of step(), as printed by PyTorch 2.11.
        for (epoch, expected) in [
            (0, 0.2),
            (1, 0.199_939_082_701_909_6),
            (45, 0.099_999_999_999_999_99),
            (60, 0.050_000_000_000_000_02),
            (89, 6.091_729_809_042_376e-5),
        ] {
            let lr = train.lr_at(epoch);
            assert!(
                (lr - expected).abs() < 1e-12,
                "epoch {epoch}: {lr} against {expected}"
            );
        }
        // A warm-up of 5 epochs, then the cosine over the 85 left; linear scaling by batch.
        train.warmup_epochs = 5;
        train.lr_reference_batch = Some(256);
        assert!(close(train.peak_lr(), 0.4));
        assert!(close(train.lr_at(0), 0.08));
        assert!(close(train.lr_at(4), 0.4));
        assert!(close(train.lr_at(5), 0.4));
        assert!(close(
            train.lr_at(5 + 85 / 2),
            0.2 * (1.0 + (std::f64::consts::PI * 42.0 / 85.0).cos())
        ));
        assert!(train.lr_at(89) > 0.0 && train.lr_at(89) < train.lr_at(88));
    }

    #[test]
    fn linear_scaling_scales_the_step_schedule() {
        let train = TrainConfig {
            batch_size: 64,
            lr_reference_batch: Some(256),
            ..recipe()
        };
        assert!(close(train.lr_at(4), 0.025));
        assert!(close(train.lr_at(240), 0.000_25));
    }

    #[test]
    fn a_stage2_serialises_with_its_parent_and_method() {
        let stage2 = Stage2 {
            parent: JobId("abc".into()),
            method: Stage2Method::PosthocLa { tau: 1.0 },
        };
        let json = serde_json::to_string(&stage2).unwrap();
        assert_eq!(json, r#"{"parent":"abc","method":"posthoc_la","tau":1.0}"#);
        assert_eq!(serde_json::from_str::<Stage2>(&json).unwrap(), stage2);
    }
}
