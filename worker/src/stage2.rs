//! Stage 2 of decoupled training (Kang et al., ICLR 2020): a stage-1 job's final model, its
//! backbone frozen, with the classifier re-balanced.
//!
//! A stage-2 job's trainer is built from its spec (the stage-1 job's recipe) and takes the
//! stage-1 model ([`Trainer::load_model`]); then [`run`] does the method and evaluates:
//! - `crt`: a classifier drawn afresh (as stage 1 draws one, from the job's seed) trained with
//!   class-balanced sampling and cross entropy;
//! - `lws`: one scale per class, from 1, multiplying the stage-1 logits (bias included, as Kang
//!   et al.'s `DotProduct_Classifier` with its `scales`), trained in the same way;
//! - `tau_norm`: each class's weight vector divided by its norm to the power τ. Kang et al.'s
//!   script drops the bias; here it stays, so that τ = 0 is exactly the stage-1 model. On
//!   LDAM's cosine classifier, whose columns are normalised anyway, it changes nothing;
//! - `ncm`: each class's mean of the L2-normalised training features (no augmentation), and the
//!   nearest mean in Euclidean distance (Kang et al.'s `KNNClassifier` with `l2n` features);
//! - `posthoc_la`: the stage-1 logits minus `τ log(pi)` (Menon et al. 2021).
//!
//! cRT and LWS train for the method's epochs with the job's momentum and weight decay, the
//! learning rate from the method's `lr` down to 0 on a cosine, one value per epoch (Kang et
//! al.'s `coslr`), on the job's augmentation; the backbone runs in evaluation mode, so no
//! parameter or BatchNorm statistic of it moves. Their random draws (order, crops, the fresh
//! classifier) come from the job's seed under a purpose of their own.

use std::time::Instant;

use ltsweep_proto::{EpochMetrics, Sampler, Stage2Method};
use tch::{Kind, Tensor, nn};

use crate::baselines;
use crate::data::list::Split;
use crate::losses;
use crate::model::{Head, HeadKind, unit};
use crate::optim::Sgd;
use crate::rng::{Rng, purpose};
use crate::train::{Observer, Outcome, TrainError, Trainer, with_seed};

/// How the training of a classifier (cRT) or of scales (LWS) ended.
enum Trained {
    Done(Vec<EpochMetrics>),
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
        Stage2Method::TauNorm { tau } => {
            let head = tau_normalised(stage1, tau);
            (Box::new(move |f| head.forward(f)), Vec::new())
        }
        Stage2Method::Ncm => {
            let means = class_means(trainer)?;
            (
                Box::new(move |f| nearest_mean_logits(f, &means)),
                Vec::new(),
            )
        }
        Stage2Method::Crt { epochs, lr } => {
            match retrain_classifier(trainer, epochs, lr, observer)? {
                (Trained::Done(history), head) => (Box::new(move |f| head.forward(f)), history),
                (other, _) => return Ok(ended(other, observer)),
            }
        }
        Stage2Method::Lws { epochs, lr } => match learn_scales(trainer, epochs, lr, observer)? {
            (Trained::Done(history), scales) => {
                (Box::new(move |f| stage1.forward(f) * &scales), history)
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
    if let Some(last) = epochs.last_mut() {
        last.accuracy = Some(accuracy);
        last.per_class = per_class;
        last.val_accuracy = val_accuracy.clone();
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
    epochs: u32,
    lr: f64,
    observer: &mut dyn Observer,
) -> Result<(Trained, Head), TrainError> {
    let (head_vs, head) = fresh_classifier(trainer);
    let params = trainable(&head_vs);
    let trained = train(trainer, params, &|f| head.forward(f), epochs, lr, observer)?;
    Ok((trained, head))
}

/// LWS: per-class scales `[K]` of the frozen stage-1 logits, learnt from 1.
fn learn_scales(
    trainer: &Trainer,
    epochs: u32,
    lr: f64,
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
        epochs,
        lr,
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

/// The classifier with each class's weight vector divided by its norm to the power `tau`.
pub(crate) fn tau_normalised(head: &Head, tau: f64) -> Head {
    tch::no_grad(|| match head {
        Head::Linear(fc) => {
            // Rows [K, 64]: one per class.
            let norms = fc.ws.norm_scalaropt_dim(2, [1], true);
            Head::Linear(nn::Linear {
                ws: &fc.ws / norms.pow_tensor_scalar(tau),
                bs: fc.bs.as_ref().map(Tensor::shallow_clone),
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

/// Each class's mean of the L2-normalised training features `[K, 64]` (eval mode, no crop).
pub(crate) fn class_means(trainer: &Trainer) -> Result<Tensor, TrainError> {
    let (features, labels) = trainer.training_features()?;
    Ok(tch::no_grad(|| {
        let k = trainer.classes().num_classes() as i64;
        let normalised = unit(&features, 1);
        let sums = Tensor::zeros(
            [k, normalised.size()[1]],
            (normalised.kind(), normalised.device()),
        )
        .index_add(0, &labels, &normalised);
        let counts = labels
            .bincount(None::<Tensor>, k)
            .to_kind(normalised.kind())
            .view([-1, 1]);
        sums / counts
    }))
}

/// Minus the squared distance of each normalised feature to each class mean: the nearest mean
/// has the largest logit.
pub(crate) fn nearest_mean_logits(features: &Tensor, means: &Tensor) -> Tensor {
    let x = unit(features, 1);
    let x2 = x.pow_tensor_scalar(2).sum_dim_intlist(1, true, x.kind());
    let m2 = means
        .pow_tensor_scalar(2)
        .sum_dim_intlist(1, true, means.kind());
    let distances: Tensor = x2 + m2.transpose(0, 1) - 2.0 * x.matmul(&means.transpose(0, 1));
    -distances
}

/// A classifier of the job's kind drawn afresh, in its own variable store (the network's
/// classifier stays the stage-1 one), from the job's seed.
fn fresh_classifier(trainer: &Trainer) -> (nn::VarStore, Head) {
    let vs = nn::VarStore::new(trainer.device());
    let k = trainer.classes().num_classes() as i64;
    let head = with_seed(stage2_seed(trainer) as i64, || {
        Head::new(
            &vs.root(),
            trainer.model.features(),
            k,
            HeadKind::of(&trainer.job().losses.base),
            trainer.model.linear_init(),
        )
    });
    let mut vs = vs;
    if trainer.kind() != Kind::Float {
        vs.set_kind(trainer.kind());
    }
    (vs, head)
}

fn trainable(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut params: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    params
}

/// The seed of stage 2's own draws.
fn stage2_seed(trainer: &Trainer) -> u64 {
    Rng::derive(trainer.job().seed, &[purpose::STAGE2]).next_u64()
}

/// The learning rate of a 0-based epoch of `epochs`: `lr` down to 0 on a cosine.
pub(crate) fn cosine_lr(lr: f64, epoch: u32, epochs: u32) -> f64 {
    lr * 0.5 * (1.0 + (std::f64::consts::PI * f64::from(epoch) / f64::from(epochs)).cos())
}

/// Trains `params` (a classifier's, or LWS's scales) for `epochs` epochs on the frozen
/// backbone's features with class-balanced sampling and cross entropy of `logits_of`.
fn train(
    trainer: &Trainer,
    params: Vec<(String, Tensor)>,
    logits_of: &dyn Fn(&Tensor) -> Tensor,
    epochs: u32,
    lr: f64,
    observer: &mut dyn Observer,
) -> Result<Trained, TrainError> {
    let job = trainer.job();
    let mut sgd = Sgd::new(
        params,
        job.train.momentum,
        job.train.weight_decay,
        job.train.decay_norm_and_bias,
    );
    let seed = stage2_seed(trainer);
    let mut history = Vec::with_capacity(epochs as usize);
    for epoch in 0..epochs {
        let start = Instant::now();
        let lr_now = cosine_lr(lr, epoch, epochs);
        let order = baselines::epoch_order(
            trainer.train_labels(),
            trainer.classes().num_classes(),
            Sampler::ClassBalanced,
            seed,
            epoch,
        );
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
            let features = tch::no_grad(|| trainer.model.features_t(&x, false));
            let loss = losses::cross_entropy(&logits_of(&features), &y);
            loss_sum += loss.detach().to_kind(Kind::Float);
            batches += 1;
            sgd.backward_step(&loss, lr_now, None);
        }
        let seconds = start.elapsed().as_secs_f64();
        let metrics = EpochMetrics {
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
                    "the stage-2 cross entropy became {} in epoch {} (learning rate {lr_now})",
                    metrics.loss_base, metrics.epoch
                ),
            });
        }
        observer.epoch(&metrics);
        history.push(metrics);
    }
    Ok(Trained::Done(history))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use ltsweep_proto::{ClassGroup, JobSpec, SweepSpec};
    use tch::Device;

    use super::*;
    use crate::augment::Normalize;
    use crate::data::{LongTailData, longtail};
    use crate::train::Quiet;

    /// A stage-1 job and its stage-2 jobs on a tiny long-tailed set (6 classes, 60 down to 6
    /// training images), trained 3 epochs: a model biased toward the Head classes.
    fn jobs() -> (Vec<JobSpec>, LongTailData) {
        let spec = SweepSpec::parse(
            r#"
name = "stage2"
seeds = [1]
[dataset]
kind = "synthetic"
classes = 6
train_per_class = 60
test_per_class = 20
image_size = 12
noise = 2.0
imbalance_ratio = 10
head_min_count = 20
[model]
depth = 8
[train]
epochs = 3
batch_size = 32
lr = 0.05
warmup_epochs = 0
[losses]
plans = [{}]
[stage2]
method = ["none", "crt", "lws", "tau_norm", "ncm", "posthoc_la"]
[stage2.crt]
epochs = 2
[stage2.lws]
epochs = 2
[stage2.tau_norm]
tau = [0, 1]
[stage2.posthoc_la]
tau = [0, 2]
"#,
        )
        .unwrap();
        let jobs = spec.jobs();
        let data = longtail::prepare(&jobs[0].dataset, Path::new("")).unwrap();
        (jobs, data)
    }

    /// The stage-1 job trained, its result and its model.
    fn stage1(jobs: &[JobSpec], data: &LongTailData) -> (ltsweep_proto::JobResult, Vec<u8>) {
        assert!(jobs[0].stage2.is_none());
        let mut trainer = Trainer::new(&jobs[0], data, Device::Cpu);
        let Outcome::Finished(result) = trainer.run(&mut Quiet, None).unwrap() else {
            panic!("stage 1 finishes");
        };
        (*result, trainer.model_bytes().unwrap())
    }

    /// The stage-2 job of `method`'s kind (and setting), with the stage-1 model loaded.
    fn stage2_trainer(
        jobs: &[JobSpec],
        data: &LongTailData,
        model: &[u8],
        method: Stage2Method,
    ) -> Trainer {
        let job = jobs
            .iter()
            .find(|j| j.stage2.as_ref().is_some_and(|s| s.method == method))
            .expect("the method is in the grid");
        assert_eq!(job.stage2.as_ref().unwrap().parent, jobs[0].id);
        let mut trainer = Trainer::new(job, data, Device::Cpu);
        trainer.load_model(model).unwrap();
        trainer
    }

    fn finished(outcome: Outcome) -> ltsweep_proto::JobResult {
        match outcome {
            Outcome::Finished(result) => *result,
            other => panic!("a stage-2 job finishes, not {other:?}"),
        }
    }

    fn variables(trainer: &Trainer) -> HashMap<String, Tensor> {
        trainer
            .vs
            .variables()
            .into_iter()
            .map(|(name, t)| (name, t.copy()))
            .collect()
    }

    fn assert_unchanged(before: &HashMap<String, Tensor>, trainer: &Trainer) {
        let after = variables(trainer);
        assert_eq!(before.len(), after.len());
        // Every weight and BatchNorm statistic of the backbone, and the stage-1 classifier.
        assert!(before.keys().any(|k| k.ends_with("running_mean")));
        for (name, tensor) in before {
            assert!(tensor.equal(&after[name]), "{name} moved");
        }
    }

    #[test]
    fn tau_norm_and_posthoc_adjustment_at_tau_zero_give_the_stage1_predictions_exactly() {
        let (jobs, data) = jobs();
        let (result, model) = stage1(&jobs, &data);
        for method in [
            Stage2Method::TauNorm { tau: 0.0 },
            Stage2Method::PosthocLa { tau: 0.0 },
        ] {
            let trainer = stage2_trainer(&jobs, &data, &model, method);
            let adjusted = finished(run(&trainer, method, &mut Quiet).unwrap());
            assert_eq!(adjusted.confusion, result.confusion, "{method}");
            assert_eq!(adjusted.job_id, trainer.job().id.to_string());
        }
        // τ = 1 changes the classifier: its class vectors are unit vectors.
        let trainer = stage2_trainer(&jobs, &data, &model, Stage2Method::TauNorm { tau: 1.0 });
        let Head::Linear(normed) = tau_normalised(trainer.model.head(), 1.0) else {
            panic!("a linear classifier");
        };
        let norms = normed.ws.norm_scalaropt_dim(2, [1], false);
        assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
    }

    #[test]
    fn posthoc_adjustment_moves_predictions_toward_the_rare_classes() {
        let (jobs, data) = jobs();
        let (_, model) = stage1(&jobs, &data);
        let trainer = stage2_trainer(&jobs, &data, &model, Stage2Method::PosthocLa { tau: 2.0 });
        let tail = data.classes.classes_in(ClassGroup::Tail);
        let predicted_tail = |confusion: &[Vec<u32>]| -> u32 {
            confusion
                .iter()
                .map(|row| tail.iter().map(|&c| row[c]).sum::<u32>())
                .sum()
        };
        let confusions = trainer.evaluate_adjusted(&[0.0, 2.0]).unwrap();
        let plain = predicted_tail(&confusions[0].counts);
        let adjusted = predicted_tail(&confusions[1].counts);
        assert!(
            adjusted > plain,
            "images predicted as Tail classes: {plain} as trained, {adjusted} adjusted"
        );
    }

    #[test]
    fn crt_leaves_every_backbone_parameter_and_batchnorm_statistic_unchanged() {
        let (jobs, data) = jobs();
        let (_, model) = stage1(&jobs, &data);
        let method = Stage2Method::Crt { epochs: 2, lr: 0.1 };
        let trainer = stage2_trainer(&jobs, &data, &model, method);
        let before = variables(&trainer);
        let (trained, head) = retrain_classifier(&trainer, 2, 0.1, &mut Quiet).unwrap();
        let Trained::Done(history) = trained else {
            panic!("cRT trains to the end");
        };
        assert_eq!(history.len(), 2);
        assert_unchanged(&before, &trainer);
        // The new classifier is another than the stage-1 one, and trained.
        let (Head::Linear(fresh), Head::Linear(old)) = (&head, trainer.model.head()) else {
            panic!("linear classifiers");
        };
        assert!(!fresh.ws.equal(&old.ws));
        assert!(history.iter().all(|e| e.loss_base.is_finite()));
        let result = finished(run(&trainer, method, &mut Quiet).unwrap());
        assert_eq!(result.epochs.len(), 2);
        assert!(result.epochs[1].accuracy.is_some());
    }

    #[test]
    fn lws_trains_only_its_scales() {
        let (jobs, data) = jobs();
        let (_, model) = stage1(&jobs, &data);
        let trainer = stage2_trainer(
            &jobs,
            &data,
            &model,
            Stage2Method::Lws { epochs: 2, lr: 0.1 },
        );
        let before = variables(&trainer);
        let (trained, scales) = learn_scales(&trainer, 2, 0.1, &mut Quiet).unwrap();
        assert!(matches!(trained, Trained::Done(_)));
        assert_unchanged(&before, &trainer);
        let moved = (&scales - 1.0).abs().max().double_value(&[]);
        assert!(moved > 1e-4, "the scales stayed at 1 ({moved})");
    }

    #[test]
    fn ncm_class_means_equal_a_direct_computation() {
        let (jobs, data) = jobs();
        let (_, model) = stage1(&jobs, &data);
        let trainer = stage2_trainer(&jobs, &data, &model, Stage2Method::Ncm);
        let means = class_means(&trainer).unwrap();
        // One training image at a time: its features in evaluation mode, normalised, averaged
        // per class.
        let k = data.classes.num_classes();
        let mut sums: Vec<Tensor> = (0..k)
            .map(|_| Tensor::zeros([64], (Kind::Float, Device::Cpu)))
            .collect();
        let mut counts = vec![0.0; k];
        let train = &data.train;
        // The training set's own mean and std, as the trainer normalises with.
        let normalize = Normalize::fit(
            &train.pixels,
            train.channels,
            train.height * train.width,
            Device::Cpu,
        );
        for i in 0..train.len() {
            let x = Tensor::from_slice(train.image(i)).view([
                1,
                train.channels as i64,
                train.height as i64,
                train.width as i64,
            ]);
            let x = normalize.apply(&x);
            let f = tch::no_grad(|| trainer.model.features_t(&x, false)).squeeze_dim(0);
            let label = train.labels[i] as usize;
            sums[label] = &sums[label] + &f / f.norm();
            counts[label] += 1.0;
        }
        for c in 0..k {
            let direct = &sums[c] / counts[c];
            let gap = (&direct - means.get(c as i64))
                .abs()
                .max()
                .double_value(&[]);
            assert!(gap < 1e-5, "class {c}: {gap}");
        }
        assert_eq!(counts.iter().sum::<f64>() as usize, train.len());
        let result = finished(run(&trainer, Stage2Method::Ncm, &mut Quiet).unwrap());
        assert!(result.accuracy.acc_all.is_some());
    }
}
