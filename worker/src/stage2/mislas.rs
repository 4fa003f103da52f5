//! MiSLAS's second stage (Zhong et al., CVPR 2021), as their code computes it
//! (github.com/dvlab-research/MiSLAS): on the frozen backbone, the stage-1 classifier and
//! learnable per-class weight scales trained with label-aware smoothing, while the backbone's
//! BatchNorm statistics follow the class-balanced batches ("shift learning").
//!
//! - `train_stage2.py`: the backbone runs under `torch.no_grad()`, in training mode when
//!   `shift_bn` (`model.train()`): no backbone parameter trains, BatchNorm's affine weight and
//!   bias included; its running mean and variance move with every batch, and evaluation uses
//!   them. The optimiser is SGD over two groups, the classifier at `lr_factor * lr` and the
//!   scales at `lr`, both with the config's momentum and `weight_decay`; `adjust_learning_rate`
//!   sets the cosine's value for the 0-based epoch e, `lr * (1 + cos(pi e / num_epochs)) / 2`,
//!   before the epoch's batches. The batches come from `dataset.train_balance`, a
//!   `ClassAwareSampler` of 4 images per class in a row, and an epoch ends after ceil(N / B) + 1
//!   of them (`if i > end_steps: break`). Evaluation applies the scales.
//! - `methods.py`: `LabelAwareSmoothing` ([`smoothing_factors`], [`label_aware_smoothing`])
//!   and `LearnableWeightScaling` (`learned_norm`, ones `[1, K]`, times the logits).
//! - `config/cifar100/cifar100_imb001_stage2_mislas.yaml`: the defaults (10 epochs, `lr` 0.1,
//!   `lr_factor` 0.2, `weight_decay` 2e-4, `smooth_head` 0.4, `smooth_tail` 0.1, batch 128,
//!   momentum 0.9, no mixup).

use ltsweep_domain::{MislasClassifier, MislasSettings, SmoothShape, WeightScaling};
use tch::{Kind, Tensor, nn};

use super::{Objective, Order, Trained, Training, fresh_classifier_drawn, train};
use crate::cifar_resnet::{Head, LinearInit};
use crate::train::{Observer, TrainError, Trainer};

/// Each class's smoothing factor from the training counts, as `LabelAwareSmoothing.__init__`
/// computes it: `smooth_tail` at the smallest count n_K, `smooth_head` at the largest n_1, and
/// between them the shape's curve of `r = (n - n_K) / (n_1 - n_K)`. `None` where every class
/// has as many images (n_1 = n_K), where their formula divides 0 by 0.
pub fn smoothing_factors(
    counts: &[u32],
    smooth_head: f64,
    smooth_tail: f64,
    shape: SmoothShape,
) -> Option<Vec<f64>> {
    let largest = f64::from(*counts.iter().max()?);
    let smallest = f64::from(*counts.iter().min()?);
    if largest == smallest {
        return None;
    }
    let spread = smooth_head - smooth_tail;
    let half_pi = std::f64::consts::FRAC_PI_2;
    Some(
        counts
            .iter()
            .map(|&n| {
                let r = (f64::from(n) - smallest) / (largest - smallest);
                match shape {
                    SmoothShape::Concave => smooth_tail + spread * (r * half_pi).sin(),
                    SmoothShape::Linear => smooth_tail + spread * r,
                    // sin(3π/2 + x) is -cos(x): from -1 at the tail to 0 at the head.
                    SmoothShape::Convex => {
                        smooth_head + spread * (3.0 * half_pi + r * half_pi).sin()
                    }
                }
            })
            .collect(),
    )
}

/// `LabelAwareSmoothing.forward`: with `s = smooth[y]` and `log p` the log-softmax of the logits,
/// the batch mean of `(1 - s) (-log p_y) + s (-mean_c log p_c)`; `smooth` `[K]` is cast to the
/// logits' kind (theirs is float32, as the logits).
pub fn label_aware_smoothing(logits: &Tensor, labels: &Tensor, smooth: &Tensor) -> Tensor {
    let smoothing = smooth.to_kind(logits.kind()).index_select(0, labels);
    let log_p = logits.log_softmax(-1, logits.kind());
    let nll = -log_p.gather(1, &labels.view([-1, 1]), false).squeeze_dim(1);
    let uniform = -log_p.mean_dim(-1, false, logits.kind());
    ((-&smoothing + 1.0) * nll + smoothing * uniform).mean(logits.kind())
}

/// What MiSLAS trained: its classifier and, where it learns them, its per-class scales `[K]`.
pub(super) struct Mislas {
    pub head: Head,
    pub scales: Option<Tensor>,
}

impl Mislas {
    pub(super) fn logits(&self, features: &Tensor) -> Tensor {
        let logits = self.head.forward(features);
        match &self.scales {
            Some(scales) => logits * scales,
            None => logits,
        }
    }
}

/// Trains MiSLAS's classifier and scales on the frozen backbone as `train_stage2.py` does.
pub(super) fn retrain(
    trainer: &Trainer,
    settings: MislasSettings,
    observer: &mut dyn Observer,
) -> Result<(Trained, Mislas), TrainError> {
    let Head::Linear(stage1) = trainer.model.head() else {
        return Err(TrainError::Unsupported(
            "mislas re-trains a linear classifier, and this job's is LDAM's cosine one".to_owned(),
        ));
    };
    let counts = &trainer.classes().train_counts;
    let smooth = smoothing_factors(counts, settings.smooth_head, settings.smooth_tail, settings.shape)
        .ok_or_else(|| {
            TrainError::Unsupported(
                "mislas's label-aware smoothing needs a largest and a smallest class that differ (it spreads its factors over n_1 - n_K), and every class of this job has as many training images".to_owned(),
            )
        })?;
    // `LabelAwareSmoothing` computes its factors in float64 and keeps them as float32.
    let smooth = Tensor::from_slice(&smooth)
        .to_kind(Kind::Float)
        .to_device(trainer.device());
    let head = match settings.classifier {
        MislasClassifier::Stage1 => {
            let (weight, bias) = tch::no_grad(|| {
                (
                    stage1.ws.copy().set_requires_grad(true),
                    stage1.bs.as_ref().map(|b| b.copy().set_requires_grad(true)),
                )
            });
            Head::Linear(nn::Linear {
                ws: weight,
                bs: bias,
            })
        }
        // Their `Classifier` applies `_weights_init`: Kaiming-normal on the weight.
        MislasClassifier::Fresh => fresh_classifier_drawn(trainer, LinearInit::KaimingNormal).1,
    };
    let Head::Linear(fc) = &head else {
        unreachable!("both starts are linear classifiers");
    };
    let mut params = Vec::with_capacity(3);
    if let Some(bias) = &fc.bs {
        params.push(("fc.bias".to_owned(), bias.shallow_clone()));
    }
    params.push(("fc.weight".to_owned(), fc.ws.shallow_clone()));
    let k = trainer.classes().num_classes() as i64;
    let scales = (settings.scaling == WeightScaling::Learned)
        .then(|| Tensor::ones([k], (trainer.kind(), trainer.device())).set_requires_grad(true));
    if let Some(scales) = &scales {
        params.push(("learned_norm".to_owned(), scales.shallow_clone()));
    }
    let model = Mislas { head, scales };
    let training = Training {
        epochs: settings.epochs,
        lr: settings.lr,
        bn: settings.bn,
        order: Order::ClassAwareCut,
        weight_decay: settings.weight_decay,
        // Their SGD decays every parameter of both groups: biases and scales too.
        decay_norm_and_bias: true,
        lr_lead: 0,
        // The classifier's group trains at `lr_factor * lr`, the scales' at `lr`.
        lr_factors: vec![
            ("fc.weight".to_owned(), settings.lr_factor),
            ("fc.bias".to_owned(), settings.lr_factor),
        ],
        objective: Objective::LabelAwareSmoothing(smooth),
        max_norm: None,
    };
    let trained = train(trainer, params, &|f| model.logits(f), training, observer)?;
    let model = Mislas {
        scales: model.scales.map(|s| s.detach()),
        head: model.head,
    };
    Ok((trained, model))
}

#[cfg(test)]
mod tests;
