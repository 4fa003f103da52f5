//! What a finished job produced: the `result.json` a trainer writes and the record a worker
//! sends to the coordinator.

use serde::{Deserialize, Serialize};

use crate::job::{DatasetKind, JobId, JobSpec, SweepId, WorkerId};

use crate::string_enum::string_enum;

/// The longest text a result carries (its device's name, a worker id): a device name or an id
/// is tens of bytes.
pub const MAX_RESULT_TEXT_BYTES: usize = 256;

/// Top-1 accuracy in [0, 1] by class group; `None` for a group without classes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupAccuracy {
    pub acc_all: Option<f64>,
    pub acc_head: Option<f64>,
    pub acc_tail: Option<f64>,
    pub acc_many: Option<f64>,
    pub acc_medium: Option<f64>,
    pub acc_few: Option<f64>,
}

string_enum!(
    /// The literature's split by training images: Many > 100, Medium 20 to 100, Few < 20.
    pub enum Shot("a shot group") {
        Many = "many",
        Medium = "medium",
        Few = "few",
    }
);

impl Shot {
    pub fn of_count(train_count: u32) -> Shot {
        match train_count {
            101.. => Shot::Many,
            20..=100 => Shot::Medium,
            _ => Shot::Few,
        }
    }
}

string_enum!(
    /// Head or Tail, as the spec's split decides.
    pub enum ClassGroup("a class group") {
        Head = "head",
        Tail = "tail",
    }
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub class: u32,
    pub train_count: u32,
    pub test_total: u32,
    pub test_correct: u32,
    pub recall: f64,
    /// 0 when the model never predicted the class.
    pub precision: f64,
    pub group: ClassGroup,
    pub shot: Shot,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epochs finished (1-based).
    pub epoch: u32,
    pub lr: f64,
    /// The mean base loss of the epoch's batches (the job's `losses.base`: cross entropy,
    /// focal, ...). Results written before base losses existed call it `loss_ce`.
    #[serde(alias = "loss_ce")]
    pub loss_base: f64,
    pub loss_comp: f64,
    pub loss_pc: f64,
    pub images_per_second: f64,
    pub seconds: f64,
    /// Present after an evaluation of the test set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<GroupAccuracy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_class: Vec<ClassMetrics>,
    /// The validation set's, evaluated with the test set, for a job that holds one out
    /// (`[dataset] val_per_class`); absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<GroupAccuracy>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: JobId,
    pub sweep_id: SweepId,
    pub spec: JobSpec,
    #[serde(flatten)]
    pub accuracy: GroupAccuracy,
    pub per_class: Vec<ClassMetrics>,
    pub epochs: Vec<EpochMetrics>,
    pub num_classes: u32,
    pub train_images: u32,
    /// `confusion[true class][predicted class]` on the test set.
    pub confusion: Vec<Vec<u32>>,
    pub train_seconds: f64,
    pub device: String,
    #[serde(default)]
    pub worker_id: Option<WorkerId>,
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub epochs_retrained: u32,
    /// The final model with each post-hoc logit adjustment the job asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub posthoc: Vec<PosthocAccuracy>,
    /// The final model on the validation set, for a job that holds one out; absent in older
    /// results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<GroupAccuracy>,
}

/// Top-1 accuracy of the final model evaluated with `logits - tau * log(pi)`, pi the training
/// class frequencies (Menon et al. 2021's post-hoc logit adjustment): no retraining.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PosthocAccuracy {
    pub tau: f64,
    #[serde(flatten)]
    pub accuracy: GroupAccuracy,
    /// The same adjustment on the validation set, for a job that holds one out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<GroupAccuracy>,
}

impl JobResult {
    /// The evaluated epoch with the highest All accuracy on the test set (the first of equal
    /// ones) and its test accuracies. Choosing an epoch by its test accuracy flatters the
    /// model: a best-on-test figure is optimistic, unlike the final epoch's (`accuracy`) or the
    /// one chosen on the validation set ([`JobResult::best_val_epoch`]).
    pub fn best_test_epoch(&self) -> Option<(u32, &GroupAccuracy)> {
        let best = first_highest(
            self.epochs
                .iter()
                .filter_map(|m| Some((m, m.accuracy.as_ref()?.acc_all?))),
        )?;
        Some((best.epoch, best.accuracy.as_ref()?))
    }

    /// The evaluated epoch with the highest All accuracy on the validation set (the first of
    /// equal ones): the epoch is chosen without a look at the test set, whose accuracies at
    /// that epoch come back beside the validation set's. `None` for a job without a validation
    /// set, or without a test evaluation at the chosen epoch.
    pub fn best_val_epoch(&self) -> Option<ChosenEpoch<'_>> {
        let best = first_highest(
            self.epochs
                .iter()
                .filter_map(|m| Some((m, m.val_accuracy.as_ref()?.acc_all?))),
        )?;
        Some(ChosenEpoch {
            epoch: best.epoch,
            test: best.accuracy.as_ref()?,
            val: best.val_accuracy.as_ref()?,
        })
    }
}

/// Where a result does not fit the job it answers; `field` names the result's field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ResultMismatch {
    pub field: &'static str,
    pub problem: String,
}

fn mismatch(field: &'static str, problem: String) -> ResultMismatch {
    ResultMismatch { field, problem }
}

impl JobSpec {
    /// The classes a result of this job holds, where the spec alone says: its data set's own
    /// count (a preset's wins over `classes`, as the worker reads it), `classes`, or the
    /// synthetic set's default of 10. `None` for list data that counts them from its training
    /// list.
    pub fn result_classes(&self) -> Option<u32> {
        let dataset = &self.dataset;
        if let Some(preset) = dataset.kind.preset() {
            return Some(preset.classes);
        }
        if let Some(classes) = dataset.classes {
            return Some(classes);
        }
        match dataset.kind {
            DatasetKind::Cifar10
            | DatasetKind::FashionMnist
            | DatasetKind::Mnist
            | DatasetKind::Synthetic => Some(10),
            DatasetKind::Cifar100 => Some(100),
            _ => None,
        }
    }

    /// The most epochs a result of this job reports: stage 1's, or a stage-2 method's own.
    pub fn result_epochs(&self) -> u32 {
        let stage2 = self.stage2.as_ref().map_or(0, |s| s.method.epochs());
        self.train.epochs.max(stage2).max(1)
    }
}

impl JobResult {
    /// A result of `job`'s shape that measured nothing: its class count's empty per-class
    /// metrics and confusion matrix, no epochs, no accuracy. What the coordinator's benchmark
    /// sends for the jobs it does not train.
    pub fn blank(job: &JobSpec) -> JobResult {
        let classes = job.result_classes().unwrap_or(2);
        JobResult {
            job_id: job.id.clone(),
            sweep_id: job.sweep.clone(),
            spec: job.clone(),
            accuracy: GroupAccuracy::default(),
            per_class: (0..classes)
                .map(|class| ClassMetrics {
                    class,
                    train_count: 0,
                    test_total: 0,
                    test_correct: 0,
                    recall: 0.0,
                    precision: 0.0,
                    group: ClassGroup::Tail,
                    shot: Shot::Few,
                })
                .collect(),
            epochs: Vec::new(),
            num_classes: classes,
            train_images: 0,
            confusion: vec![vec![0; classes as usize]; classes as usize],
            train_seconds: 0.0,
            device: String::new(),
            worker_id: None,
            attempts: 0,
            epochs_retrained: 0,
            posthoc: Vec::new(),
            val_accuracy: None,
        }
    }

    /// Checks a result against the job it answers before it is kept: the job's class count
    /// (per-class metrics and the confusion matrix), no more epochs than the job trains, one
    /// post-hoc accuracy a tau it asked for, and text fields of a bounded length. A result
    /// that passes holds no more than its job can honestly produce.
    pub fn check_against(&self, job: &JobSpec) -> Result<(), ResultMismatch> {
        let classes = match job.result_classes() {
            Some(expected) if self.num_classes != expected => {
                return Err(mismatch(
                    "result.num_classes",
                    format!(
                        "{} classes, but job {} has {expected}: send the leased job's result",
                        self.num_classes, job.id
                    ),
                ));
            }
            Some(expected) => expected,
            None if self.num_classes > crate::spec::MAX_CLASSES => {
                return Err(mismatch(
                    "result.num_classes",
                    format!(
                        "{} classes is over the limit of {}",
                        self.num_classes,
                        crate::spec::MAX_CLASSES
                    ),
                ));
            }
            None => self.num_classes,
        } as usize;
        if self.per_class.len() != classes {
            return Err(mismatch(
                "result.per_class",
                format!(
                    "{} entries, but the result has {classes} classes",
                    self.per_class.len()
                ),
            ));
        }
        if self.confusion.len() != classes || self.confusion.iter().any(|row| row.len() != classes)
        {
            return Err(mismatch(
                "result.confusion",
                format!("is not {classes} x {classes} counts"),
            ));
        }
        let epochs = job.result_epochs();
        if self.epochs.len() > epochs as usize {
            return Err(mismatch(
                "result.epochs",
                format!(
                    "{} entries, but job {} trains {epochs} epochs",
                    self.epochs.len(),
                    job.id
                ),
            ));
        }
        for metrics in &self.epochs {
            if metrics.epoch > epochs {
                return Err(mismatch(
                    "result.epochs.epoch",
                    format!(
                        "epoch {} is past the {epochs} epochs job {} trains",
                        metrics.epoch, job.id
                    ),
                ));
            }
            if !metrics.per_class.is_empty() && metrics.per_class.len() != classes {
                return Err(mismatch(
                    "result.epochs.per_class",
                    format!(
                        "{} entries at epoch {}, but the result has {classes} classes",
                        metrics.per_class.len(),
                        metrics.epoch
                    ),
                ));
            }
        }
        if self.posthoc.len() > job.train.posthoc_tau.len() {
            return Err(mismatch(
                "result.posthoc",
                format!(
                    "{} entries, but job {} asked for {} taus",
                    self.posthoc.len(),
                    job.id,
                    job.train.posthoc_tau.len()
                ),
            ));
        }
        for (field, text) in [
            ("result.device", Some(self.device.as_str())),
            (
                "result.worker_id",
                self.worker_id.as_ref().map(WorkerId::as_str),
            ),
        ] {
            let length = text.map_or(0, str::len);
            if length > MAX_RESULT_TEXT_BYTES {
                return Err(mismatch(
                    field,
                    format!("{length} bytes is over the limit of {MAX_RESULT_TEXT_BYTES}"),
                ));
            }
        }
        Ok(())
    }
}

/// An epoch chosen on the validation set: its test and validation accuracies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChosenEpoch<'a> {
    pub epoch: u32,
    pub test: &'a GroupAccuracy,
    pub val: &'a GroupAccuracy,
}

/// The first epoch of the highest score among `(epoch, score)` pairs.
fn first_highest<'a>(
    scored: impl Iterator<Item = (&'a EpochMetrics, f64)>,
) -> Option<&'a EpochMetrics> {
    let mut best: Option<(&EpochMetrics, f64)> = None;
    for (metrics, score) in scored {
        if best.is_none_or(|(_, top)| score > top) {
            best = Some((metrics, score));
        }
    }
    best.map(|(metrics, _)| metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(dataset: &str) -> JobSpec {
        crate::SweepSpec::parse(&format!(
            "name = \"r\"\nseeds = [0]\n[dataset]\n{dataset}\n[train]\nepochs = 3"
        ))
        .unwrap()
        .jobs()
        .remove(0)
    }

    #[test]
    fn a_result_must_fit_its_job() {
        let synthetic = job("kind = \"synthetic\"");
        assert_eq!(synthetic.result_classes(), Some(10));
        assert_eq!(
            job("kind = \"synthetic\"\nclasses = 4").result_classes(),
            Some(4)
        );
        let honest = JobResult::blank(&synthetic);
        honest.check_against(&synthetic).unwrap();

        let field = |result: JobResult| result.check_against(&synthetic).unwrap_err().field;
        let other = JobResult::blank(&job("kind = \"synthetic\"\nclasses = 4"));
        assert_eq!(field(other), "result.num_classes");
        let mut short = honest.clone();
        short.per_class.pop();
        assert_eq!(field(short), "result.per_class");
        let mut ragged = honest.clone();
        ragged.confusion[3].push(1);
        assert_eq!(field(ragged), "result.confusion");
        let epoch = |epoch| EpochMetrics {
            epoch,
            lr: 0.1,
            loss_base: 1.0,
            loss_comp: 0.0,
            loss_pc: 0.0,
            images_per_second: 1.0,
            seconds: 1.0,
            accuracy: None,
            per_class: Vec::new(),
            val_accuracy: None,
        };
        let mut late = honest.clone();
        late.epochs = vec![epoch(4)];
        assert_eq!(field(late), "result.epochs.epoch");
        let mut many = honest.clone();
        many.epochs = (1..=4).map(|_| epoch(1)).collect();
        assert_eq!(field(many), "result.epochs");
        let mut three = honest.clone();
        three.epochs = (1..=3).map(epoch).collect();
        three.check_against(&synthetic).unwrap();
        let mut long = honest;
        long.device = "x".repeat(MAX_RESULT_TEXT_BYTES + 1);
        let err = long.check_against(&synthetic).unwrap_err();
        assert_eq!(err.field, "result.device");
        assert!(err.to_string().contains("over the limit of 256"), "{err}");
    }

    #[test]
    fn an_epoch_of_an_earlier_version_reads_its_loss_ce_as_the_base_loss() {
        let old = r#"{"epoch": 2, "lr": 0.1, "loss_ce": 1.5, "loss_comp": 0.0, "loss_pc": 0.0,
                      "images_per_second": 10.0, "seconds": 1.0}"#;
        let metrics: EpochMetrics = serde_json::from_str(old).unwrap();
        assert_eq!(metrics.loss_base, 1.5);
        let written = serde_json::to_string(&metrics).unwrap();
        assert!(written.contains("\"loss_base\":1.5"), "{written}");
    }
}
