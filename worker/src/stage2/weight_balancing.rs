//! Weight balancing's second stage (Alshammari et al., CVPR 2022), as their code computes it
//! (github.com/ShadeAlsha/LTR-weight-balancing): the stage-1 classifier, weight and bias, is
//! trained on, the backbone frozen, with Cui et al.'s class-balanced loss in its softmax form,
//! SGD with weight decay on both, and the MaxNorm constraint: each class's weight vector
//! projected back onto a ball whose radius comes from the stage-1 norms.
//!
//! - `demo2_second-stage-training.py`: the layers trained (`model.encoder.fc.weight` and
//!   `.bias`, every other parameter frozen), the optimiser (SGD, momentum 0.9,
//!   `weight_decay = 0.1`, `base_lr = 0.01`, `CosineAnnealingLR` over 10 epochs), the loss
//!   (`CB_loss(..., "softmax", 0.9999, ...)`) and MaxNorm's `thresh = 0.1`;
//! - `utils/regularizers.py`, `MaxNorm_via_PGD`: the radius, set once from the classifier it
//!   starts with, is `min + thresh * (max - min)` of its rows' L2 norms; each row (one class)
//!   above it is scaled onto it; the bias is never projected (its threshold is infinite);
//! - `utils/trainval.py`, `train_model`: the projection after each epoch's training phase, and
//!   the scheduler stepped before each epoch's batches, so that epoch e (0-based) trains at the
//!   cosine's value for e + 1 and the last epoch at 0 (it still moves BatchNorm's statistics,
//!   the model being in training mode);
//! - `utils/class_balanced_loss.py`, `CB_loss`: the softmax probabilities scored against the
//!   one-hot labels by binary cross entropy, each sample's terms weighted by its class's
//!   `(1 - β) / (1 - β^n)` normalised to sum to the number of classes, averaged over the batch
//!   and the classes.

use ltsweep_domain::{MaxNormEvery, WeightBalancingSettings};
use tch::{Kind, Reduction, Tensor, nn};

use super::{Objective, Order, Trained, Training, train};
use crate::baselines;
use crate::cifar_resnet::Head;
use crate::train::{Observer, TrainError, Trainer};

/// The MaxNorm constraint on a classifier's weight `[K, features]`: its rows, one per class,
/// projected onto the ball of `radius`.
pub(crate) struct MaxNorm {
    pub weight: Tensor,
    pub radius: f64,
    pub every: MaxNormEvery,
}

impl MaxNorm {
    pub(crate) fn after_step(&self) {
        if self.every == MaxNormEvery::Step {
            project_rows(&self.weight, self.radius);
        }
    }

    pub(crate) fn after_epoch(&self) {
        if self.every == MaxNormEvery::Epoch {
            project_rows(&self.weight, self.radius);
        }
    }
}

/// The L2 norm of each row of `weight` `[K, features]`: one per class.
pub fn row_norms(weight: &Tensor) -> Tensor {
    weight.norm_scalaropt_dim(2, [1], false)
}

/// MaxNorm's radius for a classifier that starts at `weight`: the smallest row norm plus
/// `max_norm` times the spread to the largest (`MaxNorm_via_PGD.setPerLayerThresh`).
pub fn max_norm_radius(weight: &Tensor, max_norm: f64) -> f64 {
    let norms = tch::no_grad(|| row_norms(weight));
    let smallest = norms.min().double_value(&[]);
    let largest = norms.max().double_value(&[]);
    smallest + max_norm * (largest - smallest)
}

/// Scales, in place, each row of `weight` whose norm is over `radius` onto the ball of that
/// radius, and leaves the others as they are (`MaxNorm_via_PGD.PGD`).
pub fn project_rows(weight: &Tensor, radius: f64) {
    tch::no_grad(|| {
        let norms = weight.norm_scalaropt_dim(2, [1], true);
        // At most 1: a row within the ball (a zero row too: radius / 0 is infinite) keeps its
        // values exactly.
        let scale = (norms.reciprocal() * radius).clamp_max(1.0);
        let _ = weight.shallow_clone().g_mul_(&scale);
    });
}

/// Cui et al.'s class-balanced loss as `CB_loss` computes it with `loss_type = "softmax"`:
/// `-1/(N K) sum_i w[y_i] sum_c (t_ic log p_ic + (1 - t_ic) log(1 - p_ic))`, `p = softmax(z)`,
/// `t` the one-hot labels and `w` the per-class weights `[K]`
/// ([`baselines::class_balanced_weights`]). It is PyTorch's `binary_cross_entropy`, whose
/// logarithms are clamped at -100 and whose gradient is PyTorch's.
pub fn class_balanced_softmax_bce(logits: &Tensor, labels: &Tensor, weights: &Tensor) -> Tensor {
    let probabilities = logits.softmax(1, logits.kind());
    let one_hot = probabilities
        .zeros_like()
        .scatter_value(1, &labels.view([-1, 1]), 1.0);
    let per_sample = weights
        .to_kind(logits.kind())
        .index_select(0, labels)
        .view([-1, 1])
        .expand_as(&probabilities);
    probabilities.binary_cross_entropy(&one_hot, Some(&per_sample), Reduction::Mean)
}

/// Trains a copy of the stage-1 classifier as weight balancing does; returns it, projected.
pub(super) fn retrain(
    trainer: &Trainer,
    settings: WeightBalancingSettings,
    observer: &mut dyn Observer,
) -> Result<(Trained, Head), TrainError> {
    let Head::Linear(stage1) = trainer.model.head() else {
        return Err(TrainError::Unsupported(
            "weight_balancing re-trains a linear classifier, and this job's is LDAM's cosine one, which normalises every class's weight vector".to_owned(),
        ));
    };
    let (weight, bias) = tch::no_grad(|| {
        (
            stage1.ws.copy().set_requires_grad(true),
            stage1.bs.as_ref().map(|b| b.copy().set_requires_grad(true)),
        )
    });
    let head = Head::Linear(nn::Linear {
        ws: weight.shallow_clone(),
        bs: bias.as_ref().map(Tensor::shallow_clone),
    });
    let mut params = Vec::with_capacity(2);
    if let Some(bias) = &bias {
        params.push(("fc.bias".to_owned(), bias.shallow_clone()));
    }
    params.push(("fc.weight".to_owned(), weight.shallow_clone()));
    let weights =
        baselines::class_balanced_weights(&trainer.classes().train_counts, settings.cb_beta);
    // `CB_loss` casts its weights to float32.
    let weights = Tensor::from_slice(&weights)
        .to_kind(Kind::Float)
        .to_device(trainer.device());
    let training = Training {
        epochs: settings.epochs,
        lr: settings.lr,
        bn: settings.bn,
        order: Order::Instance,
        weight_decay: settings.weight_decay,
        // Their SGD decays every parameter it is given: the bias too.
        decay_norm_and_bias: true,
        lr_lead: 1,
        lr_factors: Vec::new(),
        objective: Objective::ClassBalancedBce(weights),
        max_norm: Some(MaxNorm {
            radius: max_norm_radius(&weight, settings.max_norm),
            weight: weight.shallow_clone(),
            every: settings.max_norm_every,
        }),
    };
    let trained = train(trainer, params, &|f| head.forward(f), training, observer)?;
    Ok((trained, head))
}

#[cfg(test)]
mod tests;
