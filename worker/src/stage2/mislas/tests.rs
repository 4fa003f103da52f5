use std::collections::HashMap;
use std::path::Path;

use ltsweep_domain::{BnMode, JobSpec, Stage2Method, SweepSpec};
use tch::Device;

use super::*;
use crate::stage2::{cosine_lr, run};
use crate::train::{Outcome, Quiet};
use ltsweep_data::{LongTailData, longtail};

/// A stage-1 job (6 classes, 60 down to 6 training images, 8 epochs) and its MiSLAS jobs: the
/// stage-1 or a fresh classifier, BatchNorm's statistics following the batches or frozen.
fn jobs() -> (Vec<JobSpec>, LongTailData) {
    let spec = SweepSpec::parse(
        r#"
name = "mislas"
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
epochs = 8
batch_size = 32
lr = 0.05
warmup_epochs = 0
[losses]
plans = [{}]
[stage2]
method = ["none", "mislas"]
[stage2.mislas]
epochs = 4
bn = ["train", "frozen"]
classifier = ["stage1", "fresh"]
"#,
    )
    .unwrap();
    let jobs = spec.jobs();
    let data = longtail::prepare(&jobs[0].dataset, Path::new("")).unwrap();
    (jobs, data)
}

fn settings(method: Stage2Method) -> MislasSettings {
    let Stage2Method::Mislas(settings) = method else {
        panic!("a MiSLAS job");
    };
    settings
}

fn variables(trainer: &Trainer) -> HashMap<String, Tensor> {
    trainer
        .vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, t.copy()))
        .collect()
}

#[test]
fn a_mislas_job_trains_its_classifier_and_scales_and_shifts_only_batchnorms_statistics() {
    let (jobs, data) = jobs();
    let mut stage1 = Trainer::new(&jobs[0], &data, Device::Cpu);
    assert!(matches!(
        stage1.run(&mut Quiet, None).unwrap(),
        Outcome::Finished(_)
    ));
    let model = stage1.model_bytes().unwrap();
    assert_eq!(jobs.len(), 5);
    for job in &jobs[1..] {
        let stage2 = job.stage2.as_ref().unwrap();
        assert_eq!(stage2.parent, jobs[0].id);
        let settings = settings(stage2.method);
        let what = format!("{:?} {:?}", settings.bn, settings.classifier);
        let mut trainer = Trainer::new(job, &data, Device::Cpu);
        trainer.load_model(&model).unwrap();
        let Head::Linear(old) = trainer.model.head() else {
            panic!("a linear classifier");
        };
        let before = variables(&trainer);

        let (trained, mislas) = retrain(&trainer, settings, &mut Quiet).unwrap();
        let Trained::Done { history, .. } = trained else {
            panic!("{what}: MiSLAS trains to the end");
        };
        let Head::Linear(fc) = &mislas.head else {
            panic!("a linear classifier");
        };
        // The classifier trained (from stage 1's, or from a fresh draw) and the scales moved
        // from 1.
        assert!(!fc.ws.equal(&old.ws), "{what}");
        assert!(
            !fc.bs.as_ref().unwrap().equal(old.bs.as_ref().unwrap()),
            "{what}"
        );
        let scales = mislas.scales.as_ref().expect("learnt scales by default");
        let moved = (scales - 1.0).abs().max().double_value(&[]);
        assert!(moved > 1e-4, "{what}: the scales moved {moved}");
        // No backbone parameter moved, BatchNorm's weight and bias included (their backbone
        // runs under `no_grad`); its running statistics did exactly in training mode (their
        // `shift_bn`), and the network's own classifier is still stage 1's.
        let statistics_move = settings.bn == BnMode::Train;
        for (name, tensor) in &before {
            let statistic = name.ends_with("running_mean") || name.ends_with("running_var");
            assert_eq!(
                tensor.equal(&trainer.vs.variables()[name]),
                !(statistic && statistics_move),
                "{what}: {name}"
            );
        }
        // `adjust_learning_rate` sets the cosine's value for epoch e before its batches.
        let rates: Vec<f64> = history.iter().map(|e| e.lr).collect();
        let expected: Vec<f64> = (0..4).map(|e| cosine_lr(0.1, e, 4)).collect();
        assert_eq!(rates, expected, "{what}");
        assert!(history.iter().all(|e| e.loss_base.is_finite()), "{what}");

        // The whole job: evaluated on the test set with the scales, above chance (1 in 6).
        let mut trainer = Trainer::new(job, &data, Device::Cpu);
        trainer.load_model(&model).unwrap();
        let Outcome::Finished(result) = run(&trainer, stage2.method, &mut Quiet).unwrap() else {
            panic!("{what}: the job finishes");
        };
        assert_eq!(result.epochs.len(), 4);
        // An epoch is ceil(N / B) + 1 class-aware batches, as their loop breaks.
        let n = data.classes.train_counts.iter().sum::<u32>() as f64;
        let images = result.epochs[0].images_per_second * result.epochs[0].seconds;
        let expected = ((n / 32.0).ceil() + 1.0) * 32.0;
        assert!(
            (images - expected).abs() < 1e-6 * images,
            "{what}: {images} images"
        );
        let accuracy = result.accuracy.acc_all.unwrap();
        assert!(accuracy > 2.0 / 6.0, "{what}: accuracy {accuracy}");
    }

    // The classifier's group trains at `lr * lr_factor`, the scales' at `lr`: with a vanishing
    // factor the stage-1 classifier stays where it was while the scales still move.
    let job = &jobs[1];
    let mut trainer = Trainer::new(job, &data, Device::Cpu);
    trainer.load_model(&model).unwrap();
    let slow = MislasSettings {
        lr_factor: 1e-12,
        ..settings(job.stage2.as_ref().unwrap().method)
    };
    assert_eq!(slow.classifier, MislasClassifier::Stage1);
    let Head::Linear(old) = trainer.model.head() else {
        panic!("a linear classifier");
    };
    let (_, mislas) = retrain(&trainer, slow, &mut Quiet).unwrap();
    let Head::Linear(fc) = &mislas.head else {
        panic!("a linear classifier");
    };
    let classifier_moved = (&fc.ws - &old.ws).abs().max().double_value(&[]);
    assert!(
        classifier_moved < 1e-9,
        "the classifier moved {classifier_moved}"
    );
    let scales = mislas.scales.unwrap();
    assert!((scales - 1.0).abs().max().double_value(&[]) > 1e-4);
}

#[test]
fn classes_of_one_count_have_no_label_aware_smoothing() {
    assert_eq!(
        smoothing_factors(&[50, 50, 50], 0.4, 0.1, SmoothShape::Concave),
        None
    );
    assert_eq!(
        smoothing_factors(&[50, 5], 0.4, 0.1, SmoothShape::Linear),
        Some(vec![0.4, 0.1])
    );
}
