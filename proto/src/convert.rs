//! Conversions between the wire messages ([`crate::pb`]) and the domain types, made at the
//! boundary: a missing or unknown field becomes a [`ConvertError`] naming the field.

use crate::pb;
use ltsweep_domain::arch::{Arch, Precision};
use ltsweep_domain::baseline::{BaseLoss, Sampler};
use ltsweep_domain::job::Stage2;
use ltsweep_domain::job::{
    AxisValue, ClassScope, CompMode, DatasetConfig, DatasetKind, HeadSplit, JobId, JobSpec,
    JobState, ListConfig, LossConfig, LossPlan, LrSchedule, ModelConfig, Normalization, SweepId,
    SyntheticConfig, TrainConfig, WorkerId,
};
use ltsweep_domain::result::{
    ClassGroup, ClassMetrics, EpochMetrics, GroupAccuracy, JobResult, PosthocAccuracy, Shot,
};

mod augment;
mod stage2;
mod status;

pub use status::slurm_placement_from;

/// A message that lacks a field or holds a value this version does not know.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct ConvertError {
    pub field: &'static str,
    pub problem: &'static str,
}

fn missing(field: &'static str) -> ConvertError {
    ConvertError {
        field,
        problem: "missing",
    }
}

fn list_from(l: pb::ListConfig) -> Result<ListConfig, ConvertError> {
    let normalization = match (<[f64; 3]>::try_from(l.mean), <[f64; 3]>::try_from(l.std)) {
        (Ok(mean), Ok(std)) => Normalization { mean, std },
        // Both empty: a sender that predates the setting, whose jobs normalise as ImageNet.
        (Err(mean), Err(std)) if mean.is_empty() && std.is_empty() => Normalization::IMAGENET,
        _ => {
            return Err(ConvertError {
                field: "job.dataset.list.mean",
                problem: "mean and std need three values each (R, G, B), or neither any",
            });
        }
    };
    Ok(ListConfig {
        train: l.train,
        val: Some(l.val).filter(|v| !v.is_empty()),
        test: l.test,
        crop_size: l.crop_size,
        resize_size: l.resize_size,
        color_jitter: l.color_jitter,
        normalization,
        reduced_decode: !l.full_decode,
        packed: Some(l.packed).filter(|p| !p.is_empty()),
    })
}

fn unknown(field: &'static str) -> ConvertError {
    ConvertError {
        field,
        problem: "unknown or unspecified value",
    }
}

impl From<ClassScope> for pb::ClassScope {
    fn from(scope: ClassScope) -> Self {
        match scope {
            ClassScope::None => pb::ClassScope::None,
            ClassScope::Head => pb::ClassScope::Head,
            ClassScope::Tail => pb::ClassScope::Tail,
            ClassScope::All => pb::ClassScope::All,
        }
    }
}

fn scope_from(value: i32, field: &'static str) -> Result<ClassScope, ConvertError> {
    match pb::ClassScope::try_from(value) {
        Ok(pb::ClassScope::None) => Ok(ClassScope::None),
        Ok(pb::ClassScope::Head) => Ok(ClassScope::Head),
        Ok(pb::ClassScope::Tail) => Ok(ClassScope::Tail),
        Ok(pb::ClassScope::All) => Ok(ClassScope::All),
        _ => Err(unknown(field)),
    }
}

impl From<LossPlan> for pb::LossPlan {
    fn from(plan: LossPlan) -> Self {
        pb::LossPlan {
            comp: pb::ClassScope::from(plan.comp).into(),
            pc: pb::ClassScope::from(plan.pc).into(),
        }
    }
}

impl TryFrom<pb::LossPlan> for LossPlan {
    type Error = ConvertError;

    fn try_from(plan: pb::LossPlan) -> Result<Self, ConvertError> {
        Ok(LossPlan {
            comp: scope_from(plan.comp, "plan.comp")?,
            pc: scope_from(plan.pc, "plan.pc")?,
        })
    }
}

impl From<DatasetKind> for pb::DatasetKind {
    fn from(kind: DatasetKind) -> Self {
        match kind {
            DatasetKind::Cifar10 => pb::DatasetKind::Cifar10,
            DatasetKind::Cifar100 => pb::DatasetKind::Cifar100,
            DatasetKind::FashionMnist => pb::DatasetKind::FashionMnist,
            DatasetKind::Mnist => pb::DatasetKind::Mnist,
            DatasetKind::Synthetic => pb::DatasetKind::Synthetic,
            DatasetKind::List => pb::DatasetKind::List,
            DatasetKind::ImagenetLt => pb::DatasetKind::ImagenetLt,
            DatasetKind::PlacesLt => pb::DatasetKind::PlacesLt,
            DatasetKind::Inat2018 => pb::DatasetKind::Inat2018,
        }
    }
}

impl From<JobState> for pb::JobState {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Pending => pb::JobState::Pending,
            JobState::Running => pb::JobState::Running,
            JobState::Succeeded => pb::JobState::Succeeded,
            JobState::Failed => pb::JobState::Failed,
            JobState::Cancelled => pb::JobState::Cancelled,
        }
    }
}

/// A job state from the wire value of a `pb::JobState` field.
pub fn job_state_from(value: i32) -> Result<JobState, ConvertError> {
    match pb::JobState::try_from(value) {
        Ok(pb::JobState::Pending) => Ok(JobState::Pending),
        Ok(pb::JobState::Running) => Ok(JobState::Running),
        Ok(pb::JobState::Succeeded) => Ok(JobState::Succeeded),
        Ok(pb::JobState::Failed) => Ok(JobState::Failed),
        Ok(pb::JobState::Cancelled) => Ok(JobState::Cancelled),
        _ => Err(unknown("job.state")),
    }
}

impl From<AxisValue> for pb::AxisValue {
    fn from(axis: AxisValue) -> Self {
        pb::AxisValue {
            name: axis.name,
            value: axis.value,
        }
    }
}

impl From<pb::AxisValue> for AxisValue {
    fn from(axis: pb::AxisValue) -> Self {
        AxisValue {
            name: axis.name,
            value: axis.value,
        }
    }
}

impl From<Sampler> for pb::Sampler {
    fn from(sampler: Sampler) -> Self {
        match sampler {
            Sampler::Instance => pb::Sampler::Instance,
            Sampler::ClassBalanced => pb::Sampler::ClassBalanced,
            Sampler::Sqrt => pb::Sampler::Sqrt,
        }
    }
}

/// An unspecified sampler is an older sender's: every image once an epoch.
fn sampler_from(value: i32) -> Result<Sampler, ConvertError> {
    match pb::Sampler::try_from(value) {
        Ok(pb::Sampler::Unspecified | pb::Sampler::Instance) => Ok(Sampler::Instance),
        Ok(pb::Sampler::ClassBalanced) => Ok(Sampler::ClassBalanced),
        Ok(pb::Sampler::Sqrt) => Ok(Sampler::Sqrt),
        Err(_) => Err(unknown("job.train.sampler")),
    }
}

impl From<Arch> for pb::Arch {
    fn from(arch: Arch) -> Self {
        match arch {
            Arch::Cifar => pb::Arch::Cifar,
            Arch::Resnet10 => pb::Arch::Resnet10,
            Arch::Resnet18 => pb::Arch::Resnet18,
            Arch::Resnet34 => pb::Arch::Resnet34,
            Arch::Resnet50 => pb::Arch::Resnet50,
            Arch::Resnet101 => pb::Arch::Resnet101,
            Arch::Resnet152 => pb::Arch::Resnet152,
            Arch::Resnext50_32x4d => pb::Arch::Resnext5032x4d,
        }
    }
}

/// An unspecified architecture is an older sender's: the CIFAR ResNet.
fn arch_from(value: i32) -> Result<Arch, ConvertError> {
    Ok(match pb::Arch::try_from(value) {
        Ok(pb::Arch::Unspecified | pb::Arch::Cifar) => Arch::Cifar,
        Ok(pb::Arch::Resnet10) => Arch::Resnet10,
        Ok(pb::Arch::Resnet18) => Arch::Resnet18,
        Ok(pb::Arch::Resnet34) => Arch::Resnet34,
        Ok(pb::Arch::Resnet50) => Arch::Resnet50,
        Ok(pb::Arch::Resnet101) => Arch::Resnet101,
        Ok(pb::Arch::Resnet152) => Arch::Resnet152,
        Ok(pb::Arch::Resnext5032x4d) => Arch::Resnext50_32x4d,
        Err(_) => return Err(unknown("job.model.arch")),
    })
}

fn lr_schedule_from(value: i32) -> Result<LrSchedule, ConvertError> {
    match pb::LrSchedule::try_from(value) {
        Ok(pb::LrSchedule::Unspecified | pb::LrSchedule::Step) => Ok(LrSchedule::Step),
        Ok(pb::LrSchedule::Cosine) => Ok(LrSchedule::Cosine),
        Err(_) => Err(unknown("job.train.lr_schedule")),
    }
}

fn precision_from(value: i32) -> Result<Precision, ConvertError> {
    match pb::Precision::try_from(value) {
        Ok(pb::Precision::Unspecified | pb::Precision::Fp32) => Ok(Precision::Fp32),
        Ok(pb::Precision::Bf16) => Ok(Precision::Bf16),
        Err(_) => Err(unknown("job.train.precision")),
    }
}

impl From<BaseLoss> for pb::BaseLoss {
    fn from(base: BaseLoss) -> Self {
        let kind = |k: pb::BaseLossKind| pb::BaseLoss {
            kind: k.into(),
            ..Default::default()
        };
        match base {
            BaseLoss::Ce => kind(pb::BaseLossKind::Ce),
            BaseLoss::Focal { gamma } => pb::BaseLoss {
                focal_gamma: gamma,
                ..kind(pb::BaseLossKind::Focal)
            },
            BaseLoss::Cb { beta } => pb::BaseLoss {
                cb_beta: beta,
                ..kind(pb::BaseLossKind::Cb)
            },
            BaseLoss::La { tau } => pb::BaseLoss {
                la_tau: tau,
                ..kind(pb::BaseLossKind::La)
            },
            BaseLoss::LdamDrw {
                max_margin,
                s,
                drw_epoch,
            } => pb::BaseLoss {
                ldam_max_margin: max_margin,
                ldam_s: s,
                drw_epoch,
                ..kind(pb::BaseLossKind::LdamDrw)
            },
        }
    }
}

/// An absent base loss is an older sender's: cross entropy.
fn base_from(base: Option<pb::BaseLoss>) -> Result<BaseLoss, ConvertError> {
    let Some(b) = base else {
        return Ok(BaseLoss::Ce);
    };
    match pb::BaseLossKind::try_from(b.kind) {
        Ok(pb::BaseLossKind::Unspecified | pb::BaseLossKind::Ce) => Ok(BaseLoss::Ce),
        Ok(pb::BaseLossKind::Focal) => Ok(BaseLoss::Focal {
            gamma: b.focal_gamma,
        }),
        Ok(pb::BaseLossKind::Cb) => Ok(BaseLoss::Cb { beta: b.cb_beta }),
        Ok(pb::BaseLossKind::La) => Ok(BaseLoss::La { tau: b.la_tau }),
        Ok(pb::BaseLossKind::LdamDrw) => Ok(BaseLoss::LdamDrw {
            max_margin: b.ldam_max_margin,
            s: b.ldam_s,
            drw_epoch: b.drw_epoch,
        }),
        Err(_) => Err(unknown("job.losses.base.kind")),
    }
}

impl From<JobSpec> for pb::JobSpec {
    fn from(job: JobSpec) -> Self {
        let d = job.dataset;
        let t = job.train;
        let l = job.losses;
        pb::JobSpec {
            job_id: job.id.0,
            sweep_id: job.sweep.0,
            plan: Some(job.plan.into()),
            seed: job.seed,
            axes: job.axes.into_iter().map(Into::into).collect(),
            dataset: Some(pb::DatasetConfig {
                kind: pb::DatasetKind::from(d.kind).into(),
                path: d.path.unwrap_or_default(),
                imbalance_ratio: d.imbalance_ratio,
                sampling_seed: d.sampling_seed,
                classes: d.classes.unwrap_or(0),
                head_split: Some(match d.head {
                    HeadSplit::MinCount(n) => pb::dataset_config::HeadSplit::HeadMinCount(n),
                    HeadSplit::Fraction(f) => pb::dataset_config::HeadSplit::HeadFraction(f),
                }),
                synthetic: Some(pb::SyntheticConfig {
                    train_per_class: d.synthetic.train_per_class,
                    test_per_class: d.synthetic.test_per_class,
                    image_size: d.synthetic.image_size,
                    channels: d.synthetic.channels,
                    noise: d.synthetic.noise,
                }),
                val_per_class: d.val_per_class,
                subset_seed: d.subset_seed,
                list: d.list.map(|l| pb::ListConfig {
                    train: l.train,
                    val: l.val.unwrap_or_default(),
                    test: l.test,
                    crop_size: l.crop_size,
                    resize_size: l.resize_size,
                    color_jitter: l.color_jitter,
                    packed: l.packed.unwrap_or_default(),
                    mean: l.normalization.mean.to_vec(),
                    std: l.normalization.std.to_vec(),
                    full_decode: !l.reduced_decode,
                }),
            }),
            model: Some(pb::ModelConfig {
                depth: job.model.depth,
                arch: pb::Arch::from(job.model.arch).into(),
                init: job.model.init.unwrap_or_default(),
                init_skip: job.model.init_skip,
            }),
            train: Some(pb::TrainConfig {
                epochs: t.epochs,
                batch_size: t.batch_size,
                lr: t.lr,
                momentum: t.momentum,
                weight_decay: t.weight_decay,
                warmup_epochs: t.warmup_epochs,
                lr_decay_epochs: t.lr_decay_epochs,
                lr_decay_factor: t.lr_decay_factor,
                pretrain_ce_epochs: t.pretrain_ce_epochs,
                eval_epochs: t.eval_epochs,
                checkpoint_every: t.checkpoint_every,
                augment: t.augment,
                sampler: pb::Sampler::from(t.sampler).into(),
                posthoc_tau: t.posthoc_tau,
                lr_schedule: match t.lr_schedule {
                    LrSchedule::Step => pb::LrSchedule::Step,
                    LrSchedule::Cosine => pb::LrSchedule::Cosine,
                }
                .into(),
                lr_reference_batch: t.lr_reference_batch.unwrap_or(0),
                exclude_norm_and_bias_from_decay: !t.decay_norm_and_bias,
                precision: match t.precision {
                    Precision::Fp32 => pb::Precision::Fp32,
                    Precision::Bf16 => pb::Precision::Bf16,
                }
                .into(),
                channels_last: t.channels_last,
                augmentation: Some(t.augmentation.into()),
            }),
            losses: Some(pb::LossConfig {
                comp_weight: l.comp_weight,
                comp_mode: match l.comp_mode {
                    CompMode::Alternate => pb::CompMode::Alternate,
                    CompMode::Sum => pb::CompMode::Sum,
                }
                .into(),
                pc_weight: l.pc_weight,
                pc_push_weight: l.pc_push_weight,
                pc_center_lr: l.pc_center_lr,
                base: Some(l.base.into()),
            }),
            stage2: job.stage2.map(Into::into),
        }
    }
}

impl TryFrom<pb::JobSpec> for JobSpec {
    type Error = ConvertError;

    fn try_from(job: pb::JobSpec) -> Result<Self, ConvertError> {
        let d = job.dataset.ok_or(missing("job.dataset"))?;
        let s = d.synthetic.ok_or(missing("job.dataset.synthetic"))?;
        let t = job.train.ok_or(missing("job.train"))?;
        let l = job.losses.ok_or(missing("job.losses"))?;
        let kind = match pb::DatasetKind::try_from(d.kind) {
            Ok(pb::DatasetKind::Cifar10) => DatasetKind::Cifar10,
            Ok(pb::DatasetKind::Cifar100) => DatasetKind::Cifar100,
            Ok(pb::DatasetKind::FashionMnist) => DatasetKind::FashionMnist,
            Ok(pb::DatasetKind::Mnist) => DatasetKind::Mnist,
            Ok(pb::DatasetKind::Synthetic) => DatasetKind::Synthetic,
            Ok(pb::DatasetKind::List) => DatasetKind::List,
            Ok(pb::DatasetKind::ImagenetLt) => DatasetKind::ImagenetLt,
            Ok(pb::DatasetKind::PlacesLt) => DatasetKind::PlacesLt,
            Ok(pb::DatasetKind::Inat2018) => DatasetKind::Inat2018,
            _ => return Err(unknown("job.dataset.kind")),
        };
        let head = match d.head_split.ok_or(missing("job.dataset.head_split"))? {
            pb::dataset_config::HeadSplit::HeadMinCount(n) => HeadSplit::MinCount(n),
            pb::dataset_config::HeadSplit::HeadFraction(f) => HeadSplit::Fraction(f),
        };
        let comp_mode = match pb::CompMode::try_from(l.comp_mode) {
            Ok(pb::CompMode::Alternate) => CompMode::Alternate,
            Ok(pb::CompMode::Sum) => CompMode::Sum,
            _ => return Err(unknown("job.losses.comp_mode")),
        };
        if job.job_id.is_empty() {
            return Err(missing("job.job_id"));
        }
        Ok(JobSpec {
            id: JobId(job.job_id),
            sweep: SweepId(job.sweep_id),
            plan: job.plan.ok_or(missing("job.plan"))?.try_into()?,
            seed: job.seed,
            axes: job.axes.into_iter().map(Into::into).collect(),
            dataset: DatasetConfig {
                kind,
                path: Some(d.path).filter(|p| !p.is_empty()),
                imbalance_ratio: d.imbalance_ratio,
                head,
                sampling_seed: d.sampling_seed,
                classes: Some(d.classes).filter(|&c| c > 0),
                synthetic: SyntheticConfig {
                    train_per_class: s.train_per_class,
                    test_per_class: s.test_per_class,
                    image_size: s.image_size,
                    channels: s.channels,
                    noise: s.noise,
                },
                val_per_class: d.val_per_class,
                subset_seed: d.subset_seed,
                list: d.list.map(list_from).transpose()?,
            },
            model: {
                let m = job.model.ok_or(missing("job.model"))?;
                ModelConfig {
                    depth: m.depth,
                    arch: arch_from(m.arch)?,
                    init: Some(m.init).filter(|p| !p.is_empty()),
                    init_skip: m.init_skip,
                }
            },
            train: TrainConfig {
                epochs: t.epochs,
                batch_size: t.batch_size,
                lr: t.lr,
                momentum: t.momentum,
                weight_decay: t.weight_decay,
                warmup_epochs: t.warmup_epochs,
                lr_decay_epochs: t.lr_decay_epochs,
                lr_decay_factor: t.lr_decay_factor,
                pretrain_ce_epochs: t.pretrain_ce_epochs,
                eval_epochs: t.eval_epochs,
                checkpoint_every: t.checkpoint_every,
                augment: t.augment,
                sampler: sampler_from(t.sampler)?,
                posthoc_tau: t.posthoc_tau,
                lr_schedule: lr_schedule_from(t.lr_schedule)?,
                lr_reference_batch: Some(t.lr_reference_batch).filter(|&b| b > 0),
                decay_norm_and_bias: !t.exclude_norm_and_bias_from_decay,
                precision: precision_from(t.precision)?,
                channels_last: t.channels_last,
                augmentation: augment::augmentation_from(t.augmentation)?,
            },
            losses: LossConfig {
                comp_weight: l.comp_weight,
                comp_mode,
                pc_weight: l.pc_weight,
                pc_push_weight: l.pc_push_weight,
                pc_center_lr: l.pc_center_lr,
                base: base_from(l.base)?,
            },
            stage2: job.stage2.map(Stage2::try_from).transpose()?,
        })
    }
}

impl From<GroupAccuracy> for pb::GroupAccuracy {
    fn from(a: GroupAccuracy) -> Self {
        pb::GroupAccuracy {
            all: a.acc_all,
            head: a.acc_head,
            tail: a.acc_tail,
            many: a.acc_many,
            medium: a.acc_medium,
            few: a.acc_few,
        }
    }
}

impl From<pb::GroupAccuracy> for GroupAccuracy {
    fn from(a: pb::GroupAccuracy) -> Self {
        GroupAccuracy {
            acc_all: a.all,
            acc_head: a.head,
            acc_tail: a.tail,
            acc_many: a.many,
            acc_medium: a.medium,
            acc_few: a.few,
        }
    }
}

impl From<ClassMetrics> for pb::ClassMetrics {
    fn from(c: ClassMetrics) -> Self {
        pb::ClassMetrics {
            class_index: c.class,
            train_count: c.train_count,
            test_total: c.test_total,
            test_correct: c.test_correct,
            recall: c.recall,
            precision: c.precision,
            head: c.group == ClassGroup::Head,
            shot: match c.shot {
                Shot::Many => pb::Shot::Many,
                Shot::Medium => pb::Shot::Medium,
                Shot::Few => pb::Shot::Few,
            }
            .into(),
        }
    }
}

impl TryFrom<pb::ClassMetrics> for ClassMetrics {
    type Error = ConvertError;

    fn try_from(c: pb::ClassMetrics) -> Result<Self, ConvertError> {
        Ok(ClassMetrics {
            class: c.class_index,
            train_count: c.train_count,
            test_total: c.test_total,
            test_correct: c.test_correct,
            recall: c.recall,
            precision: c.precision,
            group: if c.head {
                ClassGroup::Head
            } else {
                ClassGroup::Tail
            },
            shot: match pb::Shot::try_from(c.shot) {
                Ok(pb::Shot::Many) => Shot::Many,
                Ok(pb::Shot::Medium) => Shot::Medium,
                Ok(pb::Shot::Few) => Shot::Few,
                _ => return Err(unknown("per_class.shot")),
            },
        })
    }
}

impl From<EpochMetrics> for pb::EpochMetrics {
    fn from(e: EpochMetrics) -> Self {
        pb::EpochMetrics {
            epoch: e.epoch,
            lr: e.lr,
            loss_base: e.loss_base,
            loss_comp: e.loss_comp,
            loss_pc: e.loss_pc,
            images_per_second: e.images_per_second,
            seconds: e.seconds,
            accuracy: e.accuracy.map(Into::into),
            per_class: e.per_class.into_iter().map(Into::into).collect(),
            val_accuracy: e.val_accuracy.map(Into::into),
        }
    }
}

impl TryFrom<pb::EpochMetrics> for EpochMetrics {
    type Error = ConvertError;

    fn try_from(e: pb::EpochMetrics) -> Result<Self, ConvertError> {
        Ok(EpochMetrics {
            epoch: e.epoch,
            lr: e.lr,
            loss_base: e.loss_base,
            loss_comp: e.loss_comp,
            loss_pc: e.loss_pc,
            images_per_second: e.images_per_second,
            seconds: e.seconds,
            accuracy: e.accuracy.map(Into::into),
            per_class: e
                .per_class
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            val_accuracy: e.val_accuracy.map(Into::into),
        })
    }
}

impl From<JobResult> for pb::JobResult {
    fn from(r: JobResult) -> Self {
        pb::JobResult {
            job_id: r.job_id.0,
            sweep_id: r.sweep_id.0,
            spec: Some(r.spec.into()),
            accuracy: Some(r.accuracy.into()),
            per_class: r.per_class.into_iter().map(Into::into).collect(),
            epochs: r.epochs.into_iter().map(Into::into).collect(),
            num_classes: r.num_classes,
            confusion: r.confusion.into_iter().flatten().collect(),
            train_seconds: r.train_seconds,
            device: r.device,
            worker_id: r.worker_id.map(|w| w.0).unwrap_or_default(),
            attempts: r.attempts,
            epochs_retrained: r.epochs_retrained,
            train_images: r.train_images,
            posthoc: r
                .posthoc
                .into_iter()
                .map(|p| pb::PosthocAccuracy {
                    tau: p.tau,
                    accuracy: Some(p.accuracy.into()),
                    val_accuracy: p.val_accuracy.map(Into::into),
                })
                .collect(),
            val_accuracy: r.val_accuracy.map(Into::into),
        }
    }
}

impl TryFrom<pb::JobResult> for JobResult {
    type Error = ConvertError;

    fn try_from(r: pb::JobResult) -> Result<Self, ConvertError> {
        let k = r.num_classes as usize;
        if r.confusion.len() != k * k {
            return Err(ConvertError {
                field: "result.confusion",
                problem: "is not num_classes × num_classes counts",
            });
        }
        Ok(JobResult {
            job_id: JobId(r.job_id),
            sweep_id: SweepId(r.sweep_id),
            spec: r.spec.ok_or(missing("result.spec"))?.try_into()?,
            accuracy: r.accuracy.ok_or(missing("result.accuracy"))?.into(),
            per_class: r
                .per_class
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            epochs: r
                .epochs
                .into_iter()
                .map(TryInto::try_into)
                .collect::<Result<_, _>>()?,
            num_classes: r.num_classes,
            confusion: r.confusion.chunks(k.max(1)).map(<[u32]>::to_vec).collect(),
            train_seconds: r.train_seconds,
            device: r.device,
            worker_id: Some(r.worker_id).filter(|w| !w.is_empty()).map(WorkerId),
            attempts: r.attempts,
            epochs_retrained: r.epochs_retrained,
            train_images: r.train_images,
            posthoc: r
                .posthoc
                .into_iter()
                .map(|p| {
                    Ok(PosthocAccuracy {
                        tau: p.tau,
                        accuracy: p.accuracy.ok_or(missing("result.posthoc.accuracy"))?.into(),
                        val_accuracy: p.val_accuracy.map(Into::into),
                    })
                })
                .collect::<Result<_, ConvertError>>()?,
            val_accuracy: r.val_accuracy.map(Into::into),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ltsweep_domain::SweepSpec;

    #[test]
    fn job_specs_survive_the_wire() {
        let spec = SweepSpec::parse(
            "name = \"w\"\nseeds = [3]\n[dataset]\nkind = \"cifar100\"\npath = \"c\"\nhead_fraction = 0.35\nval_per_class = 20\nsubset_seed = \"job\"\n[losses]\npc_weight = [0.1, 1.0]\ncomp_mode = \"sum\"\nbase = [\"ce\", \"focal\", \"cb\", \"la\", \"ldam_drw\"]\n[train]\nsampler = [\"instance\", \"class_balanced\", \"sqrt\"]",
        )
        .unwrap();
        assert_eq!(spec.jobs().len(), 9 * 2 * 5 * 3);
        assert_eq!(spec.jobs()[0].dataset.subset_seed, Some(3));
        for job in spec.jobs() {
            let wire = pb::JobSpec::from(job.clone());
            assert_eq!(JobSpec::try_from(wire).unwrap(), job);
        }
    }

    #[test]
    fn imagenet_models_and_recipes_survive_the_wire() {
        let spec = SweepSpec::parse(
            "name = \"w\"\nseeds = [3]\n[dataset]\nkind = \"synthetic\"\n[model]\narch = \"resnext50_32x4d\"\ninit = \"w/r50.safetensors\"\ninit_skip = [\"fc\"]\n[train]\nlr_schedule = \"cosine\"\nlr_reference_batch = 256\ndecay_norm_and_bias = false\nchannels_last = false",
        )
        .unwrap();
        for job in spec.jobs() {
            assert_eq!(job.train.precision, Precision::Bf16);
            let wire = pb::JobSpec::from(job.clone());
            assert_eq!(JobSpec::try_from(wire).unwrap(), job);
        }
    }

    #[test]
    fn stage2_jobs_survive_the_wire() {
        let spec = SweepSpec::parse(
            "name = \"w\"\nseeds = [3]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{}]\n\
             [stage2]\nmethod = [\"none\", \"crt\", \"lws\", \"tau_norm\", \"ncm\", \"posthoc_la\"]\n\
             [stage2.tau_norm]\ntau = [0.5, 1.0]\nbias = [\"drop\", \"keep\"]\n\
             [stage2.crt]\nbn = [\"train\", \"frozen\"]\n\
             sampler = [\"class_aware\", \"class_balanced\"]\n\
             [stage2.lws]\nbn = \"frozen\"\nsampler = \"class_balanced\"\n\
             [stage2.ncm]\nfeatures = [\"cl2n\", \"l2n\"]\n",
        )
        .unwrap();
        let jobs = spec.jobs();
        // cRT 4, LWS 1, τ-norm 4, NCM 2, post-hoc 1.
        assert_eq!(jobs.len(), 1 + 12);
        assert!(jobs[0].stage2.is_none());
        for job in jobs {
            let wire = pb::JobSpec::from(job.clone());
            assert_eq!(JobSpec::try_from(wire).unwrap(), job);
        }
    }

    #[test]
    fn weight_balancing_jobs_survive_the_wire() {
        let spec = SweepSpec::parse(
            "name = \"w\"\nseeds = [3]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{}]\n\
             [stage2]\nmethod = [\"none\", \"weight_balancing\"]\n\
             [stage2.weight_balancing]\nepochs = 3\nlr = 0.02\nweight_decay = [0.1, 0.05]\n\
             cb_beta = 0.999\nmax_norm = 0.2\nbn = [\"train\", \"frozen\"]\n\
             max_norm_every = [\"epoch\", \"step\"]\n",
        )
        .unwrap();
        let jobs = spec.jobs();
        assert_eq!(jobs.len(), 1 + 8);
        for job in jobs {
            let wire = pb::JobSpec::from(job.clone());
            assert_eq!(JobSpec::try_from(wire).unwrap(), job);
        }
    }

    #[test]
    fn mislas_jobs_survive_the_wire() {
        let spec = SweepSpec::parse(
            "name = \"m\"\nseeds = [3]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{}]\n\
             [stage2]\nmethod = [\"none\", \"mislas\"]\n\
             [stage2.mislas]\nepochs = 3\nlr = 0.05\nlr_factor = 0.5\nweight_decay = 5e-4\n\
             smooth_head = 0.3\nsmooth_tail = 0.0\nshape = [\"concave\", \"linear\", \"convex\"]\n\
             bn = [\"train\", \"frozen\"]\nclassifier = [\"stage1\", \"fresh\"]\n\
             scaling = [\"learned\", \"none\"]\n",
        )
        .unwrap();
        let jobs = spec.jobs();
        assert_eq!(jobs.len(), 1 + 3 * 2 * 2 * 2);
        for job in jobs {
            let wire = pb::JobSpec::from(job.clone());
            assert_eq!(JobSpec::try_from(wire).unwrap(), job);
        }
    }

    #[test]
    fn an_older_sender_means_cross_entropy_and_every_image() {
        let job = SweepSpec::parse("name = \"w\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"")
            .unwrap()
            .jobs()
            .remove(0);
        let mut wire = pb::JobSpec::from(job.clone());
        wire.losses.as_mut().unwrap().base = None;
        wire.train.as_mut().unwrap().sampler = 0;
        assert_eq!(JobSpec::try_from(wire).unwrap(), job);
    }

    #[test]
    fn validation_accuracies_survive_the_wire_and_older_results_have_none() {
        let job = SweepSpec::parse("name = \"w\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"")
            .unwrap()
            .jobs()
            .remove(0);
        let accuracy = |all: f64| GroupAccuracy {
            acc_all: Some(all),
            ..GroupAccuracy::default()
        };
        let epoch = EpochMetrics {
            epoch: 1,
            lr: 0.1,
            loss_base: 1.0,
            loss_comp: 0.0,
            loss_pc: 0.0,
            images_per_second: 1.0,
            seconds: 1.0,
            accuracy: Some(accuracy(0.5)),
            per_class: Vec::new(),
            val_accuracy: Some(accuracy(0.6)),
        };
        let result = JobResult {
            job_id: job.id.clone(),
            sweep_id: job.sweep.clone(),
            spec: job,
            accuracy: accuracy(0.5),
            per_class: Vec::new(),
            epochs: vec![epoch],
            num_classes: 0,
            train_images: 0,
            confusion: Vec::new(),
            train_seconds: 1.0,
            device: "cpu".into(),
            worker_id: None,
            attempts: 0,
            epochs_retrained: 0,
            posthoc: vec![PosthocAccuracy {
                tau: 1.0,
                accuracy: accuracy(0.4),
                val_accuracy: Some(accuracy(0.45)),
            }],
            val_accuracy: Some(accuracy(0.6)),
        };
        let wire = pb::JobResult::from(result.clone());
        assert_eq!(JobResult::try_from(wire.clone()).unwrap(), result);
        let mut older = wire;
        older.val_accuracy = None;
        older.epochs[0].val_accuracy = None;
        let read = JobResult::try_from(older).unwrap();
        assert_eq!(read.val_accuracy, None);
        assert_eq!(read.epochs[0].val_accuracy, None);
        // A result.json of an older version reads too: the fields are optional.
        let mut json = serde_json::to_value(&result).unwrap();
        json.as_object_mut().unwrap().remove("val_accuracy");
        let read: JobResult = serde_json::from_value(json).unwrap();
        assert_eq!(read.val_accuracy, None);
    }

    #[test]
    fn list_normalization_and_decode_survive_the_wire_and_older_senders_mean_imagenet() {
        let job = |dataset: &str| {
            SweepSpec::parse(&format!("name = \"w\"\nseeds = [0]\n[dataset]\n{dataset}"))
                .unwrap()
                .jobs()
                .remove(0)
        };
        for job in [
            job("kind = \"inat2018\"\npath = \"i\"\nreduced_decode = false"),
            job(
                "kind = \"imagenet-lt\"\npath = \"i\"\nmean = [0.5, 0.4, 0.3]\nstd = [0.3, 0.2, 0.1]",
            ),
        ] {
            let wire = pb::JobSpec::from(job.clone());
            assert_eq!(JobSpec::try_from(wire).unwrap(), job);
        }
        let imagenet = job("kind = \"imagenet-lt\"\npath = \"i\"");
        let mut wire = pb::JobSpec::from(imagenet.clone());
        let list = wire.dataset.as_mut().unwrap().list.as_mut().unwrap();
        (list.mean, list.std) = (Vec::new(), Vec::new());
        assert_eq!(JobSpec::try_from(wire.clone()).unwrap(), imagenet);
        wire.dataset.as_mut().unwrap().list.as_mut().unwrap().mean = vec![0.5];
        let err = JobSpec::try_from(wire).unwrap_err();
        assert_eq!(err.field, "job.dataset.list.mean");
    }

    #[test]
    fn a_missing_field_is_named() {
        let err = JobSpec::try_from(pb::JobSpec::default()).unwrap_err();
        assert_eq!(err.field, "job.dataset");
    }
}
