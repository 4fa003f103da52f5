//! The trainer's evaluation: confusion matrices of the test and validation sets, with the
//! logits adjusted post hoc or from another classifier, in evaluation mode.

use ltsweep_data::list::Split;
use ltsweep_domain::GroupAccuracy;
use tch::{Device, Tensor};

use super::{EVAL_BATCH, Source, TrainError, Trainer};
use crate::baselines;
use crate::metrics::Confusion;

impl Trainer {
    /// The confusion matrix on the test set, in evaluation mode.
    pub fn evaluate(&self) -> Result<Confusion, TrainError> {
        Ok(self.evaluate_adjusted(&[0.0])?.remove(0))
    }

    /// The confusion matrices on the test set with the logits adjusted post hoc, one for each
    /// tau, in one pass: `logits - tau * log(pi)`, pi the training class frequencies (Menon et
    /// al. 2021); `tau = 0` is the model as trained.
    pub fn evaluate_adjusted(&self, taus: &[f64]) -> Result<Vec<Confusion>, TrainError> {
        self.confusions(Split::Test, taus)
    }

    /// Whether the job holds validation images.
    pub(crate) fn has_val(&self) -> bool {
        match &self.source {
            Source::Memory(memory) => memory.val.is_some(),
            Source::Stream(loader, _) => loader.has(Split::Val),
        }
    }

    /// Group accuracies on the validation set, one for each tau as in
    /// [`Trainer::evaluate_adjusted`]; `None` for a job without a validation set.
    pub fn evaluate_val(&self, taus: &[f64]) -> Result<Option<Vec<GroupAccuracy>>, TrainError> {
        if !self.has_val() {
            return Ok(None);
        }
        Ok(Some(
            self.confusions(Split::Val, taus)?
                .iter()
                .map(|confusion| confusion.group_accuracy(&self.classes))
                .collect(),
        ))
    }

    /// `log(pi)` `[1, K]`, pi the training class frequencies.
    pub(crate) fn log_prior(&self) -> Tensor {
        Tensor::from_slice(&baselines::log_priors(&self.classes.train_counts))
            .to_kind(self.kind)
            .to_device(self.device)
            .view([1, -1])
    }

    /// The confusion matrices of a held-out split (validation or test), in evaluation mode,
    /// one for each post-hoc tau.
    pub(super) fn confusions(
        &self,
        split: Split,
        taus: &[f64],
    ) -> Result<Vec<Confusion>, TrainError> {
        let log_prior = self.log_prior();
        let head = self.model.head();
        let logits_of = |features: &Tensor| {
            let logits = head.forward(features);
            taus.iter()
                .map(|&tau| {
                    if tau == 0.0 {
                        logits.shallow_clone()
                    } else {
                        &logits - &log_prior * tau
                    }
                })
                .collect()
        };
        self.confusions_with(split, taus.len(), &logits_of)
    }

    /// The confusion matrix on `split` (validation or test) of the logits `logits_of` gives
    /// for the pooled features of the network in evaluation mode (its own classifier, or a
    /// stage-2 one).
    pub(crate) fn evaluate_with(
        &self,
        split: Split,
        logits_of: &dyn Fn(&Tensor) -> Tensor,
    ) -> Result<Confusion, TrainError> {
        let mut confusions = self.confusions_with(split, 1, &|f| vec![logits_of(f)])?;
        Ok(confusions.remove(0))
    }

    /// The confusion matrices of `n` classifiers at once: `logits_of` maps a batch's pooled
    /// features to each classifier's logits.
    pub(super) fn confusions_with(
        &self,
        split: Split,
        n: usize,
        logits_of: &dyn Fn(&Tensor) -> Vec<Tensor>,
    ) -> Result<Vec<Confusion>, TrainError> {
        let k = self.classes.num_classes() as i64;
        tch::no_grad(|| {
            let mut predictions: Vec<Vec<Tensor>> = (0..n).map(|_| Vec::new()).collect();
            let mut labels = Vec::new();
            let mut predict = |x: &Tensor| {
                let features = self.model.features_t(x, false);
                for (logits, predicted) in logits_of(&features).iter().zip(&mut predictions) {
                    predicted.push(logits.argmax(1, false));
                }
            };
            match &self.source {
                Source::Memory(memory) => {
                    let set = match split {
                        Split::Val => memory.val.as_ref().expect("a job with a validation set"),
                        _ => &memory.test,
                    };
                    let n = set.len();
                    let mut from = 0;
                    while from < n {
                        let len = EVAL_BATCH.min(n - from);
                        let images = set.images.narrow(0, from, len);
                        predict(&self.in_kind(memory.normalize.apply(&images)));
                        from += len;
                    }
                    labels.push(set.labels.shallow_clone());
                }
                Source::Stream(loader, _) => {
                    let mut feed = loader.eval(split, self.job.train.batch_size as usize);
                    while let Some(batch) = feed.next_batch() {
                        let (x, y) = self.streamed(batch?);
                        predict(&x);
                        labels.push(y);
                    }
                }
            }
            let labels = Tensor::cat(&labels, 0);
            Ok(predictions
                .iter()
                .map(|predicted| {
                    let predicted = Tensor::cat(predicted, 0);
                    let cells = (&labels * k + predicted).bincount(None::<Tensor>, k * k);
                    let flat = Vec::<i64>::try_from(cells.to_device(Device::Cpu))
                        .expect("bincount gives a 1-D integer tensor");
                    Confusion::from_flat(&flat, k as usize)
                })
                .collect())
        })
    }
}
