//! Stage 2 of decoupled training (Kang et al., ICLR 2020): a stage-1 job's final model, its
//! backbone frozen, with the classifier re-balanced. Each method's default follows Kang et al.'s
//! code (facebookresearch/classifier-balancing); an option keeps the variant ltsweep ran before.
//!
//! A stage-2 job's trainer is built from its spec (the stage-1 job's recipe) and takes the
//! stage-1 model ([`Trainer::load_model`]); then [`run`] does the method and evaluates:
//! - `crt`: a classifier drawn afresh (`nn.Linear`'s default init, as `DotProduct_Classifier`,
//!   from the job's seed; LDAM's cosine classifier as stage 1 draws it) trained with
//!   class-balanced sampling and cross entropy;
//! - `lws`: one scale per class, from 1, multiplying the stage-1 logits (bias included, as Kang
//!   et al.'s `TauNormClassifier.py` with its `scales`), trained in the same way;
//! - `tau_norm`: each class's weight vector divided by its norm to the power τ; the bias dropped
//!   (`tau_norm.py` multiplies the features by the normalised weights alone) or kept, where τ = 0
//!   is exactly the stage-1 model. LDAM's cosine classifier has no bias, and its columns are
//!   normalised anyway: τ changes nothing there;
//! - `ncm`: each class's mean of the training features (no augmentation) centred on the mean of
//!   them all and L2-normalised (`cl2n`), or L2-normalised alone (`l2n`), and the nearest mean in
//!   Euclidean distance to the test image's feature transformed alike (`KNNClassifier.py`);
//! - `posthoc_la`: the stage-1 logits minus `τ log(pi)` (Menon et al. 2021);
//! - `weight_balancing` (Alshammari et al. 2022): the stage-1 classifier trained on with
//!   class-balanced loss, weight decay and MaxNorm, as their code does ([`weight_balancing`]);
//! - `mislas` (Zhong et al. 2021): the classifier and per-class weight scales trained with
//!   label-aware smoothing while BatchNorm's statistics follow the class-balanced batches, as
//!   their code does ([`mislas`]).
//!
//! cRT and LWS train for the method's epochs with the job's momentum and weight decay, the
//! learning rate from the method's `lr` down to 0 on a cosine, one value per epoch (Kang et
//! al.'s `coslr`), on the job's augmentation. No weight of the backbone moves; its BatchNorm
//! runs in training mode by default (`run_networks.py` calls `model.train()` on the frozen
//! network too), so its running statistics are re-estimated on the class-balanced batches and
//! used at test time, or in evaluation mode (`bn = "frozen"`). Their images come from Kang et
//! al.'s class-aware sampler or from independent class-balanced draws. Where the job holds a
//! validation set, each epoch is evaluated on it and the best epoch's classifier (or scales)
//! and BatchNorm statistics are kept, as `run_networks.py` keeps its best model; otherwise the
//! last epoch's. Their random draws (order, crops, the fresh classifier) come from the job's
//! seed under a purpose of their own. Their batches, and NCM's feature pass, come from the job's
//! source, in memory or streamed from list data ([`crate::train`]'s `stage2_input`).

pub mod mislas;
pub mod weight_balancing;

use std::time::Instant;

use ltsweep_domain::{
    BnMode, EpochMetrics, NcmFeatures, Sampler, Stage2Method, Stage2Sampler, TauBias,
};
use tch::{Kind, Tensor, nn};

use crate::baselines;
use crate::cifar_resnet::{Head, HeadKind, LinearInit, unit};
use crate::losses;
use crate::optim::{self, Sgd};
use crate::train::{Observer, Outcome, TrainError, Trainer, with_seed};
use ltsweep_data::list::Split;
use ltsweep_data::rng::{Rng, purpose};
use weight_balancing::MaxNorm;

/// How a trained method (cRT, LWS, weight balancing) trains.
pub(crate) struct Training {
    pub epochs: u32,
    pub lr: f64,
    pub bn: BnMode,
    pub order: Order,
    pub weight_decay: f64,
    pub decay_norm_and_bias: bool,
    /// Epoch e (0-based) trains at the cosine's value for epoch e + `lr_lead`: 0 for Kang et
    /// al.'s `coslr`; 1 where the scheduler is stepped before each epoch's batches (weight
    /// balancing's `train_model`), so that the last epoch trains at 0.
    pub lr_lead: u32,
    /// Parameters, by name, trained at this factor of the learning rate (MiSLAS's classifier
    /// group); the others at the rate itself.
    pub lr_factors: Vec<(String, f64)>,
    pub objective: Objective,
    pub max_norm: Option<MaxNorm>,
}

impl Training {
    /// cRT's and LWS's: cross entropy, the job's weight decay, Kang et al.'s `coslr`.
    pub(crate) fn kang(
        trainer: &Trainer,
        epochs: u32,
        lr: f64,
        bn: BnMode,
        sampler: Stage2Sampler,
    ) -> Self {
        let train = &trainer.job().train;
        Self {
            epochs,
            lr,
            bn,
            order: match sampler {
                Stage2Sampler::ClassAware => Order::ClassAware,
                Stage2Sampler::ClassBalanced => Order::ClassBalanced,
            },
            weight_decay: train.weight_decay,
            decay_norm_and_bias: train.decay_norm_and_bias,
            lr_lead: 0,
            lr_factors: Vec::new(),
            objective: Objective::CrossEntropy,
            max_norm: None,
        }
    }
}

/// The order a trained method draws its training images in, each epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Order {
    /// Kang et al.'s class-aware sampler, its cycles running on from epoch to epoch.
    ClassAware,
    /// The class-aware sampler cut to ceil(N / B) + 1 batches an epoch, N the training images
    /// and B the batch: MiSLAS's `train` breaks out of its loader at `i > end_steps`,
    /// `end_steps = ceil(N / B)`, long before the sampler's largest count times the classes.
    ClassAwareCut,
    /// Independent draws, a class with probability 1/K and then one of its images.
    ClassBalanced,
    /// Every image once, shuffled (weight balancing's `DataLoader(shuffle=True)`).
    Instance,
}

/// What a trained method minimises.
pub(crate) enum Objective {
    CrossEntropy,
    /// [`weight_balancing::class_balanced_softmax_bce`] with these per-class weights `[K]`.
    ClassBalancedBce(Tensor),
    /// [`mislas::label_aware_smoothing`] with these per-class smoothing factors `[K]`.
    LabelAwareSmoothing(Tensor),
}

impl Objective {
    fn loss(&self, logits: &Tensor, labels: &Tensor) -> Tensor {
        match self {
            Self::CrossEntropy => losses::cross_entropy(logits, labels),
            Self::ClassBalancedBce(weights) => {
                weight_balancing::class_balanced_softmax_bce(logits, labels, weights)
            }
            Self::LabelAwareSmoothing(smooth) => {
                mislas::label_aware_smoothing(logits, labels, smooth)
            }
        }
    }
}

/// How the training of a classifier (cRT) or of scales (LWS) ended.
enum Trained {
    /// Every epoch's metrics; the parameters and BatchNorm statistics are those of the epoch
    /// at index `kept` (the best on validation, or the last).
    Done {
        history: Vec<EpochMetrics>,
        kept: usize,
    },
    /// Cancelled or preempted between two steps.
    Stopped,
    Diverged {
        epoch: u32,
        reason: String,
    },
}

/// Does a stage-2 job's method on the stage-1 model its trainer holds, and evaluates.
pub fn run(
    trainer: &Trainer,
    method: Stage2Method,
    observer: &mut dyn Observer,
) -> Result<Outcome, TrainError> {
    let start = Instant::now();
    let log_prior = trainer.log_prior();
    let stage1 = trainer.model.head();
    type Logits<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;
    // The epoch whose model is evaluated: its metrics carry the test accuracy.
    let mut kept_epoch = None;
    let (logits_of, mut epochs): (Logits, Vec<EpochMetrics>) = match method {
        Stage2Method::PosthocLa { tau } => (
            Box::new(move |f| {
                let logits = stage1.forward(f);
                if tau == 0.0 {
                    logits
                } else {
                    logits - &log_prior * tau
                }
            }),
            Vec::new(),
        ),
        Stage2Method::TauNorm { tau, bias } => {
            let head = tau_normalised(stage1, tau, bias);
            (Box::new(move |f| head.forward(f)), Vec::new())
        }
        Stage2Method::Ncm { features } => {
            let ncm = NearestMean::fit(trainer, features)?;
            (Box::new(move |f| ncm.logits(f)), Vec::new())
        }
        Stage2Method::Crt {
            epochs,
            lr,
            bn,
            sampler,
        } => {
            let training = Training::kang(trainer, epochs, lr, bn, sampler);
            match retrain_classifier(trainer, training, observer)? {
                (Trained::Done { history, kept }, head) => {
                    kept_epoch = Some(kept);
                    (Box::new(move |f| head.forward(f)), history)
                }
                (other, _) => return Ok(ended(other, observer)),
            }
        }
        Stage2Method::Lws {
            epochs,
            lr,
            bn,
            sampler,
        } => {
            let training = Training::kang(trainer, epochs, lr, bn, sampler);
            match learn_scales(trainer, training, observer)? {
                (Trained::Done { history, kept }, scales) => {
                    kept_epoch = Some(kept);
                    (Box::new(move |f| stage1.forward(f) * &scales), history)
                }
                (other, _) => return Ok(ended(other, observer)),
            }
        }
        Stage2Method::WeightBalancing(settings) => {
            match weight_balancing::retrain(trainer, settings, observer)? {
                (Trained::Done { history, kept }, head) => {
                    kept_epoch = Some(kept);
                    (Box::new(move |f| head.forward(f)), history)
                }
                (other, _) => return Ok(ended(other, observer)),
            }
        }
        Stage2Method::Mislas(settings) => match mislas::retrain(trainer, settings, observer)? {
            (Trained::Done { history, kept }, model) => {
                kept_epoch = Some(kept);
                (Box::new(move |f| model.logits(f)), history)
            }
            (other, _) => return Ok(ended(other, observer)),
        },
    };
    let confusion = trainer.evaluate_with(Split::Test, &*logits_of)?;
    let val_accuracy = if trainer.has_val() {
        let val = trainer.evaluate_with(Split::Val, &*logits_of)?;
        Some(val.group_accuracy(trainer.classes()))
    } else {
        None
    };
    let accuracy = confusion.group_accuracy(trainer.classes());
    let per_class = confusion.per_class(trainer.classes());
    if let Some(kept) = kept_epoch.and_then(|i| epochs.get_mut(i)) {
        kept.accuracy = Some(accuracy);
        kept.per_class = per_class;
        kept.val_accuracy = val_accuracy.clone();
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(Outcome::Finished(Box::new(trainer.result_of(
        confusion,
        val_accuracy,
        epochs,
        seconds,
    ))))
}

/// cRT: a fresh classifier trained on the frozen backbone.
fn retrain_classifier(
    trainer: &Trainer,
    training: Training,
    observer: &mut dyn Observer,
) -> Result<(Trained, Head), TrainError> {
    let (head_vs, head) = fresh_classifier(trainer);
    let params = optim::trainable_in_name_order(&head_vs);
    let trained = train(trainer, params, &|f| head.forward(f), training, observer)?;
    Ok((trained, head))
}

/// LWS: per-class scales `[K]` of the frozen stage-1 logits, learnt from 1.
fn learn_scales(
    trainer: &Trainer,
    training: Training,
    observer: &mut dyn Observer,
) -> Result<(Trained, Tensor), TrainError> {
    let k = trainer.classes().num_classes() as i64;
    let scales = Tensor::ones([k], (trainer.kind(), trainer.device())).set_requires_grad(true);
    let params = vec![("scales".to_owned(), scales.shallow_clone())];
    let head = trainer.model.head();
    let trained = train(
        trainer,
        params,
        &|f| head.forward(f) * &scales,
        training,
        observer,
    )?;
    Ok((trained, scales.detach()))
}

/// How a stage-2 job that did not finish its training ends. It holds no checkpoint (it is short,
/// and starts again from the stage-1 model), so a preemption gives the lease back at epoch 0.
fn ended(trained: Trained, observer: &dyn Observer) -> Outcome {
    match trained {
        Trained::Diverged { epoch, reason } => Outcome::Diverged { epoch, reason },
        _ if observer.cancelled() => Outcome::Cancelled { epoch: 0 },
        _ => Outcome::Preempted { epoch: 0 },
    }
}

/// The classifier with each class's weight vector divided by its norm to the power `tau`, its
/// bias dropped or kept.
pub(crate) fn tau_normalised(head: &Head, tau: f64, bias: TauBias) -> Head {
    tch::no_grad(|| match head {
        Head::Linear(fc) => {
            // Rows [K, 64]: one per class.
            let norms = fc.ws.norm_scalaropt_dim(2, [1], true);
            Head::Linear(nn::Linear {
                ws: &fc.ws / norms.pow_tensor_scalar(tau),
                bs: match bias {
                    TauBias::Drop => None,
                    TauBias::Keep => fc.bs.as_ref().map(Tensor::shallow_clone),
                },
            })
        }
        Head::Cosine { weight, scale } => {
            // Columns [64, K]: the forward pass normalises them again.
            let norms = weight.norm_scalaropt_dim(2, [0], true);
            Head::Cosine {
                weight: weight / norms.pow_tensor_scalar(tau),
                scale: *scale,
            }
        }
    })
}

/// Nearest class mean: each class's mean of the transformed training features `[K, 64]`, and
/// the centre `cl2n` subtracts first.
pub(crate) struct NearestMean {
    pub means: Tensor,
    /// The mean of every training image's feature `[64]` (`cl2n`); `None` for `l2n`.
    pub centre: Option<Tensor>,
}

impl NearestMean {
    /// The class means of the training features (evaluation mode, no crop), as
    /// `get_knncentroids` of `run_networks.py` computes them: the centre is the mean over all
    /// training images, each class's mean the mean of its images' transformed features.
    pub(crate) fn fit(trainer: &Trainer, features: NcmFeatures) -> Result<Self, TrainError> {
        let (training, labels) = trainer.training_features()?;
        Ok(tch::no_grad(|| {
            let centre = match features {
                NcmFeatures::Cl2n => Some(training.mean_dim(0, false, training.kind())),
                NcmFeatures::L2n => None,
            };
            let transformed = transform(&training, centre.as_ref());
            let k = trainer.classes().num_classes() as i64;
            let sums = Tensor::zeros(
                [k, transformed.size()[1]],
                (transformed.kind(), transformed.device()),
            )
            .index_add(0, &labels, &transformed);
            let counts = labels
                .bincount(None::<Tensor>, k)
                .to_kind(transformed.kind())
                .view([-1, 1]);
            Self {
                means: sums / counts,
                centre,
            }
        }))
    }

    /// Minus the squared distance of each transformed feature to each class mean (the means
    /// themselves not normalised again, as `KNNClassifier.py`): the nearest mean has the
    /// largest logit.
    pub(crate) fn logits(&self, features: &Tensor) -> Tensor {
        let x = transform(features, self.centre.as_ref());
        let means = &self.means;
        let x2 = x.pow_tensor_scalar(2).sum_dim_intlist(1, true, x.kind());
        let m2 = means
            .pow_tensor_scalar(2)
            .sum_dim_intlist(1, true, means.kind());
        let distances: Tensor = x2 + m2.transpose(0, 1) - 2.0 * x.matmul(&means.transpose(0, 1));
        -distances
    }
}

/// Features `[N, 64]` minus the centre (where there is one), L2-normalised.
fn transform(features: &Tensor, centre: Option<&Tensor>) -> Tensor {
    match centre {
        Some(centre) => unit(&(features - centre), 1),
        None => unit(features, 1),
    }
}

/// cRT's classifier drawn afresh ([`fresh_classifier_drawn`]): `DotProduct_Classifier` is a
/// plain `nn.Linear`, whatever stage 1 drew (weight and bias Uniform(±1/sqrt(fan-in))).
fn fresh_classifier(trainer: &Trainer) -> (nn::VarStore, Head) {
    fresh_classifier_drawn(trainer, LinearInit::PyTorch)
}

/// A classifier of the job's kind drawn afresh, in its own variable store (the network's
/// classifier stays the stage-1 one), from the job's seed: a linear one as `init` says, a cosine
/// one as stage 1 draws it.
fn fresh_classifier_drawn(trainer: &Trainer, init: LinearInit) -> (nn::VarStore, Head) {
    let vs = nn::VarStore::new(trainer.device());
    let k = trainer.classes().num_classes() as i64;
    let head = with_seed(stage2_seed(trainer) as i64, || {
        Head::new(
            &vs.root(),
            trainer.model.features(),
            k,
            HeadKind::of(&trainer.job().losses.base),
            init,
        )
    });
    let mut vs = vs;
    if trainer.kind() != Kind::Float {
        vs.set_kind(trainer.kind());
    }
    (vs, head)
}

/// The seed of stage 2's own draws.
fn stage2_seed(trainer: &Trainer) -> u64 {
    Rng::derive(trainer.job().seed, &[purpose::STAGE2]).next_u64()
}

/// The learning rate of a 0-based epoch of `epochs`: `lr` down to 0 on a cosine.
pub(crate) fn cosine_lr(lr: f64, epoch: u32, epochs: u32) -> f64 {
    lr * 0.5 * (1.0 + (std::f64::consts::PI * f64::from(epoch) / f64::from(epochs)).cos())
}

/// The backbone's BatchNorm running statistics: what training mode moves.
fn batchnorm_statistics(trainer: &Trainer) -> Vec<Tensor> {
    let mut stats: Vec<(String, Tensor)> = trainer
        .vs
        .variables()
        .into_iter()
        .filter(|(name, _)| name.ends_with("running_mean") || name.ends_with("running_var"))
        .collect();
    stats.sort_by(|a, b| a.0.cmp(&b.0));
    stats.into_iter().map(|(_, t)| t).collect()
}

/// Trains `params` (a classifier's, or LWS's scales) on the frozen backbone's features as
/// `training` says (its order of images, its loss of `logits_of`, its MaxNorm), and leaves them
/// (with the BatchNorm statistics, in training mode) at the best epoch on validation, or the
/// last.
fn train(
    trainer: &Trainer,
    params: Vec<(String, Tensor)>,
    logits_of: &dyn Fn(&Tensor) -> Tensor,
    training: Training,
    observer: &mut dyn Observer,
) -> Result<Trained, TrainError> {
    let job = trainer.job();
    let bn_train = training.bn == BnMode::Train;
    // What the best epoch's snapshot holds, restored into the same tensors at the end.
    let mut state: Vec<Tensor> = params.iter().map(|(_, t)| t.shallow_clone()).collect();
    if bn_train {
        state.extend(batchnorm_statistics(trainer));
    }
    let mut sgd = Sgd::new(
        params,
        job.train.momentum,
        training.weight_decay,
        training.decay_norm_and_bias,
    );
    for (name, factor) in &training.lr_factors {
        sgd.scale_lr(name, *factor);
    }
    let seed = stage2_seed(trainer);
    let class_aware_order = matches!(training.order, Order::ClassAware | Order::ClassAwareCut);
    let mut class_aware = class_aware_order.then(|| {
        baselines::ClassAware::new(
            trainer.train_labels(),
            trainer.classes().num_classes(),
            seed,
        )
    });
    let epochs = training.epochs;
    let mut history = Vec::with_capacity(epochs as usize);
    // The best validation accuracy so far, its epoch's index and its state.
    let mut best: Option<(f64, usize, Vec<Tensor>)> = None;
    for epoch in 0..epochs {
        let start = Instant::now();
        let lr_now = cosine_lr(training.lr, epoch + training.lr_lead, epochs);
        let order = match (class_aware.as_mut(), training.order) {
            (Some(sampler), Order::ClassAwareCut) => {
                let images = trainer.train_labels().len();
                let batch = job.train.batch_size as usize;
                let mut order = sampler.epoch();
                order.truncate((images.div_ceil(batch) + 1) * batch);
                order
            }
            (Some(sampler), _) => sampler.epoch(),
            (None, order) => baselines::epoch_order(
                trainer.train_labels(),
                trainer.classes().num_classes(),
                match order {
                    Order::Instance => Sampler::Instance,
                    _ => Sampler::ClassBalanced,
                },
                seed,
                epoch,
            ),
        };
        let mut input = trainer.stage2_batches(order, seed, epoch);
        let mut loss_sum = Tensor::zeros([], (Kind::Float, trainer.device()));
        let mut batches = 0u32;
        let mut seen = 0;
        loop {
            if observer.cancelled() || observer.preempted() {
                return Ok(Trained::Stopped);
            }
            let Some(batch) = input.next() else { break };
            let (x, y) = batch?;
            seen += y.size()[0];
            // No gradient reaches the backbone; in training mode its BatchNorm normalises
            // with the batch's statistics and updates its running ones.
            let features = tch::no_grad(|| trainer.model.features_t(&x, bn_train));
            let loss = training.objective.loss(&logits_of(&features), &y);
            loss_sum += loss.detach().to_kind(Kind::Float);
            batches += 1;
            sgd.backward_step(&loss, lr_now, None);
            if let Some(max_norm) = &training.max_norm {
                max_norm.after_step();
            }
        }
        // Before the epoch is evaluated and kept, as `train_model` projects after its
        // training phase.
        if let Some(max_norm) = &training.max_norm {
            max_norm.after_epoch();
        }
        let seconds = start.elapsed().as_secs_f64();
        let mut metrics = EpochMetrics {
            epoch: epoch + 1,
            lr: lr_now,
            loss_base: loss_sum.double_value(&[]) / f64::from(batches.max(1)),
            loss_comp: 0.0,
            loss_pc: 0.0,
            images_per_second: seen as f64 / seconds.max(1e-9),
            seconds,
            accuracy: None,
            per_class: Vec::new(),
            val_accuracy: None,
        };
        if !metrics.loss_base.is_finite() {
            return Ok(Trained::Diverged {
                epoch: metrics.epoch,
                reason: format!(
                    "the stage-2 loss became {} in epoch {} (learning rate {lr_now})",
                    metrics.loss_base, metrics.epoch
                ),
            });
        }
        if trainer.has_val() {
            let val = trainer
                .evaluate_with(Split::Val, logits_of)?
                .group_accuracy(trainer.classes());
            let accuracy = val.acc_all.unwrap_or(0.0);
            // The first epoch, then only a strictly better one (`run_networks.py`).
            if best.as_ref().is_none_or(|(b, _, _)| accuracy > *b) {
                let snapshot = tch::no_grad(|| state.iter().map(Tensor::copy).collect());
                best = Some((accuracy, history.len(), snapshot));
            }
            metrics.val_accuracy = Some(val);
        }
        observer.epoch(&metrics);
        history.push(metrics);
    }
    let kept = match best {
        Some((_, kept, snapshot)) => {
            if kept + 1 < history.len() {
                tch::no_grad(|| {
                    for (tensor, saved) in state.iter_mut().zip(&snapshot) {
                        tensor.copy_(saved);
                    }
                });
            }
            kept
        }
        None => history.len().saturating_sub(1),
    };
    Ok(Trained::Done { history, kept })
}

#[cfg(test)]
mod tests;
