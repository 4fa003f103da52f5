use std::collections::HashMap;
use std::path::Path;

use ltsweep_domain::{ClassGroup, JobSpec, SweepSpec};
use tch::Device;

use super::*;
use crate::augment::Normalize;
use crate::train::Quiet;
use ltsweep_data::{LongTailData, longtail};

/// A stage-1 job and its stage-2 jobs on a tiny long-tailed set (6 classes, 60 down to 6
/// training images), trained 3 epochs: a model biased toward the Head classes.
fn jobs() -> (Vec<JobSpec>, LongTailData) {
    jobs_with("")
}

/// [`jobs`] with more `[dataset]` settings.
fn jobs_with(dataset: &str) -> (Vec<JobSpec>, LongTailData) {
    let spec = SweepSpec::parse(&format!(
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
{dataset}
[model]
depth = 8
[train]
epochs = 3
batch_size = 32
lr = 0.05
warmup_epochs = 0
[losses]
plans = [{{}}]
[stage2]
method = ["none", "crt", "lws", "tau_norm", "ncm", "posthoc_la"]
[stage2.crt]
epochs = 2
bn = ["train", "frozen"]
[stage2.lws]
epochs = 2
bn = ["train", "frozen"]
[stage2.tau_norm]
tau = [0, 1]
bias = ["drop", "keep"]
[stage2.ncm]
features = ["cl2n", "l2n"]
[stage2.posthoc_la]
tau = [0, 2]
"#
    ))
    .unwrap();
    let jobs = spec.jobs();
    let data = longtail::prepare(&jobs[0].dataset, Path::new("")).unwrap();
    (jobs, data)
}

/// The stage-1 job trained, its result and its model.
fn stage1(jobs: &[JobSpec], data: &LongTailData) -> (ltsweep_domain::JobResult, Vec<u8>) {
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

fn finished(outcome: Outcome) -> ltsweep_domain::JobResult {
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

fn is_statistic(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

/// Every weight of the backbone and the stage-1 classifier unchanged; the BatchNorm running
/// statistics unchanged too where `statistics_move` is false, and every one of them moved
/// where it is true.
fn assert_unchanged(before: &HashMap<String, Tensor>, trainer: &Trainer, statistics_move: bool) {
    let after = variables(trainer);
    assert_eq!(before.len(), after.len());
    assert!(before.keys().any(|k| k.ends_with("running_mean")));
    assert!(before.keys().any(|k| k.ends_with("conv1.weight")));
    for (name, tensor) in before {
        if statistics_move && is_statistic(name) {
            assert!(!tensor.equal(&after[name]), "{name} did not move");
        } else {
            assert!(tensor.equal(&after[name]), "{name} moved");
        }
    }
}

fn crt(bn: BnMode) -> Stage2Method {
    Stage2Method::Crt {
        epochs: 2,
        lr: 0.1,
        bn,
        sampler: Stage2Sampler::ClassAware,
    }
}

fn training(trainer: &Trainer, bn: BnMode) -> Training {
    Training::kang(trainer, 2, 0.1, bn, Stage2Sampler::ClassAware)
}

#[test]
fn tau_norm_and_posthoc_adjustment_at_tau_zero_give_the_stage1_predictions_exactly() {
    let (jobs, data) = jobs();
    let (result, model) = stage1(&jobs, &data);
    for method in [
        Stage2Method::TauNorm {
            tau: 0.0,
            bias: TauBias::Keep,
        },
        Stage2Method::PosthocLa { tau: 0.0 },
    ] {
        let trainer = stage2_trainer(&jobs, &data, &model, method);
        let adjusted = finished(run(&trainer, method, &mut Quiet).unwrap());
        assert_eq!(adjusted.confusion, result.confusion, "{method}");
        assert_eq!(adjusted.job_id, trainer.job().id);
    }
    // τ = 1 changes the classifier: its class vectors are unit vectors.
    let tau_one = Stage2Method::TauNorm {
        tau: 1.0,
        bias: TauBias::Keep,
    };
    let trainer = stage2_trainer(&jobs, &data, &model, tau_one);
    let Head::Linear(normed) = tau_normalised(trainer.model.head(), 1.0, TauBias::Keep) else {
        panic!("a linear classifier");
    };
    let norms = normed.ws.norm_scalaropt_dim(2, [1], false);
    assert!((norms - 1.0).abs().max().double_value(&[]) < 1e-5);
    assert!(normed.bs.is_some());
}

#[test]
fn tau_norm_by_default_drops_the_bias_as_kangs_script() {
    let (jobs, data) = jobs();
    let (result, model) = stage1(&jobs, &data);
    let method = Stage2Method::TauNorm {
        tau: 0.0,
        bias: TauBias::Drop,
    };
    let trainer = stage2_trainer(&jobs, &data, &model, method);
    let Head::Linear(fc) = trainer.model.head() else {
        panic!("a linear classifier");
    };
    // The stage-1 bias is not zero: dropping it changes something.
    assert!(fc.bs.as_ref().unwrap().abs().max().double_value(&[]) > 1e-6);
    let Head::Linear(normed) = tau_normalised(trainer.model.head(), 0.0, TauBias::Drop) else {
        panic!("a linear classifier");
    };
    assert!(normed.bs.is_none());
    // `tau_norm.py`'s logits: the features times the normalised weights, nothing added.
    let features = Tensor::randn([5, 64], (Kind::Float, Device::Cpu));
    let logits = Head::Linear(normed).forward(&features);
    assert!(logits.equal(&features.matmul(&fc.ws.transpose(0, 1))));
    let dropped = finished(run(&trainer, method, &mut Quiet).unwrap());
    assert_eq!(dropped.job_id, trainer.job().id);
    assert_eq!(
        dropped.confusion.iter().flatten().sum::<u32>(),
        result.confusion.iter().flatten().sum::<u32>()
    );
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
fn crt_leaves_every_backbone_weight_unchanged_and_by_default_moves_the_batchnorm_statistics() {
    let (jobs, data) = jobs();
    let (_, model) = stage1(&jobs, &data);
    for (bn, statistics_move) in [(BnMode::Train, true), (BnMode::Frozen, false)] {
        let trainer = stage2_trainer(&jobs, &data, &model, crt(bn));
        let before = variables(&trainer);
        let (trained, head) =
            retrain_classifier(&trainer, training(&trainer, bn), &mut Quiet).unwrap();
        let Trained::Done { history, kept } = trained else {
            panic!("cRT trains to the end");
        };
        assert_eq!(history.len(), 2);
        // No validation set: the last epoch.
        assert_eq!(kept, 1);
        assert_unchanged(&before, &trainer, statistics_move);
        // The new classifier is another than the stage-1 one, and trained.
        let (Head::Linear(fresh), Head::Linear(old)) = (&head, trainer.model.head()) else {
            panic!("linear classifiers");
        };
        assert!(!fresh.ws.equal(&old.ws));
        assert!(history.iter().all(|e| e.loss_base.is_finite()));
    }
    // The whole job: the test set evaluated with the re-estimated statistics, which stay in
    // the network the job evaluates.
    let trainer = stage2_trainer(&jobs, &data, &model, crt(BnMode::Train));
    let before = variables(&trainer);
    let result = finished(run(&trainer, crt(BnMode::Train), &mut Quiet).unwrap());
    assert_unchanged(&before, &trainer, true);
    assert_eq!(result.epochs.len(), 2);
    assert!(result.epochs[1].accuracy.is_some());
    // An epoch of Kang et al.'s sampler is the largest class's count times the classes.
    let largest = data.classes.train_counts.iter().max().copied().unwrap() as f64;
    let images = result.epochs[0].images_per_second * result.epochs[0].seconds;
    assert!(
        (images - largest * 6.0).abs() < 1e-6 * images,
        "{images} images"
    );
}

#[test]
fn crts_fresh_classifier_is_drawn_as_nn_linear_draws_it() {
    let (jobs, data) = jobs();
    let trainer = Trainer::new(&jobs[1], &data, Device::Cpu);
    let (_, head) = fresh_classifier(&trainer);
    let Head::Linear(fc) = head else {
        panic!("a linear classifier");
    };
    // Uniform(±1/sqrt(64)) for weight and bias: 0.125 at most, and spread up to it (a
    // Kaiming-normal draw of std sqrt(2/64) = 0.177 would exceed it).
    let bound = 1.0 / 64f64.sqrt();
    let bias = fc.bs.as_ref().unwrap();
    for (name, t) in [("weight", &fc.ws), ("bias", bias)] {
        let largest = t.abs().max().double_value(&[]);
        assert!(largest <= bound, "{name}: {largest}");
    }
    assert!(fc.ws.abs().max().double_value(&[]) > 0.9 * bound);
    assert!(bias.abs().max().double_value(&[]) > 0.5 * bound);
}

#[test]
fn lws_trains_only_its_scales() {
    let (jobs, data) = jobs();
    let (_, model) = stage1(&jobs, &data);
    for (bn, statistics_move) in [(BnMode::Train, true), (BnMode::Frozen, false)] {
        let method = Stage2Method::Lws {
            epochs: 2,
            lr: 0.1,
            bn,
            sampler: Stage2Sampler::ClassAware,
        };
        let trainer = stage2_trainer(&jobs, &data, &model, method);
        let before = variables(&trainer);
        let (trained, scales) = learn_scales(&trainer, training(&trainer, bn), &mut Quiet).unwrap();
        assert!(matches!(trained, Trained::Done { .. }));
        assert_unchanged(&before, &trainer, statistics_move);
        let moved = (&scales - 1.0).abs().max().double_value(&[]);
        assert!(moved > 1e-4, "the scales stayed at 1 ({moved})");
    }
}

#[test]
fn stage2_keeps_its_best_epoch_on_validation_and_reports_the_test_set_there() {
    let (jobs, data) = jobs_with("val_per_class = 10");
    let (_, model) = stage1(&jobs, &data);
    // At this learning rate validation accuracy is not monotone in the epochs (0.33, 0.18,
    // 0.35, 0.37, then 0.45 to 0.52, 0.45), so the state kept often has to be restored.
    let method = Stage2Method::Crt {
        epochs: 6,
        lr: 2.0,
        bn: BnMode::Train,
        sampler: Stage2Sampler::ClassAware,
    };
    let job = jobs
        .iter()
        .find(|j| {
            j.stage2
                .as_ref()
                .is_some_and(|s| s.method == crt(BnMode::Train))
        })
        .unwrap();
    let mut job = job.clone();
    job.stage2.as_mut().unwrap().method = method;
    let mut trainer = Trainer::new(&job, &data, Device::Cpu);
    trainer.load_model(&model).unwrap();
    assert!(trainer.has_val());
    let result = finished(run(&trainer, method, &mut Quiet).unwrap());
    assert_eq!(result.epochs.len(), 6);
    let val: Vec<f64> = result
        .epochs
        .iter()
        .map(|e| e.val_accuracy.as_ref().unwrap().acc_all.unwrap())
        .collect();
    // The first epoch of the best validation accuracy is kept: the test set is evaluated there
    // and only its metrics carry it.
    let best = val.iter().copied().fold(f64::MIN, f64::max);
    let kept = val.iter().position(|&v| v == best).unwrap();
    for (i, epoch) in result.epochs.iter().enumerate() {
        assert_eq!(epoch.accuracy.is_some(), i == kept, "epoch {}", i + 1);
    }
    assert_eq!(
        result.epochs[kept].accuracy.as_ref(),
        Some(&result.accuracy)
    );
    // The network evaluated is that epoch's: its validation accuracy, measured again on the
    // restored classifier and statistics, is the one that epoch reported.
    assert_eq!(result.val_accuracy.as_ref().unwrap().acc_all, Some(best));
}

#[test]
fn ncm_class_means_equal_a_direct_computation() {
    let (jobs, data) = jobs();
    let (_, model) = stage1(&jobs, &data);
    let method = Stage2Method::Ncm {
        features: NcmFeatures::Cl2n,
    };
    let trainer = stage2_trainer(&jobs, &data, &model, method);
    let ncm = NearestMean::fit(&trainer, NcmFeatures::Cl2n).unwrap();
    let l2n = NearestMean::fit(&trainer, NcmFeatures::L2n).unwrap();
    assert!(l2n.centre.is_none());
    // One training image at a time: its features in evaluation mode; `cl2n` subtracts the mean
    // of every training image's features, normalises, and averages per class (as
    // `get_knncentroids` of `run_networks.py`); `l2n` only normalises.
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
    let features: Vec<Tensor> = (0..train.len())
        .map(|i| {
            let x = Tensor::from_slice(train.image(i)).view([
                1,
                train.channels as i64,
                train.height as i64,
                train.width as i64,
            ]);
            let x = normalize.apply(&x);
            tch::no_grad(|| trainer.model.features_t(&x, false)).squeeze_dim(0)
        })
        .collect();
    let centre = features
        .iter()
        .fold(Tensor::zeros([64], (Kind::Float, Device::Cpu)), |a, f| {
            a + f
        })
        / train.len() as f64;
    let centre_gap = (&centre - ncm.centre.as_ref().unwrap())
        .abs()
        .max()
        .double_value(&[]);
    assert!(centre_gap < 1e-5, "centre: {centre_gap}");
    let mut l2n_sums = sums.iter().map(Tensor::copy).collect::<Vec<_>>();
    for (i, f) in features.iter().enumerate() {
        let label = train.labels[i] as usize;
        let centred = f - &centre;
        sums[label] = &sums[label] + &centred / centred.norm();
        l2n_sums[label] = &l2n_sums[label] + f / f.norm();
        counts[label] += 1.0;
    }
    for c in 0..k {
        for (name, sums, fitted) in [("cl2n", &sums, &ncm), ("l2n", &l2n_sums, &l2n)] {
            let direct = &sums[c] / counts[c];
            let gap = (&direct - fitted.means.get(c as i64))
                .abs()
                .max()
                .double_value(&[]);
            assert!(gap < 1e-5, "{name} class {c}: {gap}");
        }
    }
    assert_eq!(counts.iter().sum::<f64>() as usize, train.len());
    // A query is centred and normalised alike: the logits are minus its squared distances to
    // the means.
    let query = &features[0];
    let q = (query - &centre) / (query - &centre).norm();
    let logits = ncm.logits(&query.unsqueeze(0)).squeeze_dim(0);
    for c in 0..k {
        let distance = (&q - ncm.means.get(c as i64))
            .pow_tensor_scalar(2)
            .sum(Kind::Float);
        let gap = (logits.get(c as i64) + distance).abs().double_value(&[]);
        assert!(gap < 1e-4, "class {c}: {gap}");
    }
    let result = finished(run(&trainer, method, &mut Quiet).unwrap());
    assert!(result.accuracy.acc_all.is_some());
}
