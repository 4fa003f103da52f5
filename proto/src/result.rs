//! What a finished job produced: the `result.json` a trainer writes and the record a worker
//! sends to the coordinator.

use serde::{Deserialize, Serialize};

use crate::job::JobSpec;

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

/// The literature's split by training images: Many > 100, Medium 20 to 100, Few < 20.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shot {
    Many,
    Medium,
    Few,
}

impl Shot {
    pub fn of_count(train_count: u32) -> Shot {
        match train_count {
            101.. => Shot::Many,
            20..=100 => Shot::Medium,
            _ => Shot::Few,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Shot::Many => "many",
            Shot::Medium => "medium",
            Shot::Few => "few",
        }
    }
}

/// Head or Tail, as the spec's split decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassGroup {
    Head,
    Tail,
}

impl ClassGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            ClassGroup::Head => "head",
            ClassGroup::Tail => "tail",
        }
    }
}

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
    pub job_id: String,
    pub sweep_id: String,
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
    pub worker_id: Option<String>,
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
