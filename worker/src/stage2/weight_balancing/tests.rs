use std::collections::HashMap;
use std::path::Path;

use ltsweep_domain::{JobSpec, Stage2Method, SweepSpec};
use tch::Device;

use super::*;
use crate::stage2::{cosine_lr, run};
use crate::train::{Outcome, Quiet};
use ltsweep_data::{LongTailData, longtail};

/// A stage-1 job (6 classes, 60 down to 6 training images, 3 epochs: a classifier whose Head
/// rows have grown longer than its Tail rows) and its weight-balancing jobs, projecting after
/// each epoch and after each step.
fn jobs() -> (Vec<JobSpec>, LongTailData) {
    let spec = SweepSpec::parse(
        r#"
name = "wb"
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
method = ["none", "weight_balancing"]
[stage2.weight_balancing]
epochs = 4
max_norm_every = ["epoch", "step"]
"#,
    )
    .unwrap();
    let jobs = spec.jobs();
    let data = longtail::prepare(&jobs[0].dataset, Path::new("")).unwrap();
    (jobs, data)
}

fn settings(method: Stage2Method) -> WeightBalancingSettings {
    let Stage2Method::WeightBalancing(settings) = method else {
        panic!("a weight-balancing job");
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
fn a_weight_balancing_job_ends_with_every_class_row_on_or_inside_the_ball_and_above_chance() {
    let (jobs, data) = jobs();
    let mut stage1 = Trainer::new(&jobs[0], &data, Device::Cpu);
    assert!(matches!(
        stage1.run(&mut Quiet, None).unwrap(),
        Outcome::Finished(_)
    ));
    let model = stage1.model_bytes().unwrap();
    assert_eq!(jobs.len(), 3);
    for job in &jobs[1..] {
        let stage2 = job.stage2.as_ref().unwrap();
        assert_eq!(stage2.parent, jobs[0].id);
        let settings = settings(stage2.method);
        let mut trainer = Trainer::new(job, &data, Device::Cpu);
        trainer.load_model(&model).unwrap();
        let Head::Linear(old) = trainer.model.head() else {
            panic!("a linear classifier");
        };
        let radius = max_norm_radius(&old.ws, settings.max_norm);
        let before = variables(&trainer);
        // Some stage-1 rows are over the ball: the projection has work to do.
        let longest = row_norms(&old.ws).max().double_value(&[]);
        assert!(longest > 1.05 * radius, "{longest} against {radius}");

        let (trained, head) = retrain(&trainer, settings, &mut Quiet).unwrap();
        let Trained::Done { history, .. } = trained else {
            panic!("weight balancing trains to the end");
        };
        let Head::Linear(fc) = &head else {
            panic!("a linear classifier");
        };
        let norms = Vec::<f64>::try_from(row_norms(&fc.ws).to_kind(Kind::Double)).unwrap();
        for (class, norm) in norms.iter().enumerate() {
            assert!(
                *norm <= radius * (1.0 + 1e-6),
                "{:?}: class {class}'s row has norm {norm}, over the radius {radius}",
                settings.max_norm_every
            );
        }
        // It trained from the stage-1 classifier, bias included, and moved nothing else but
        // BatchNorm's running statistics (training mode, as their `model.train()`).
        assert!(!fc.ws.equal(&old.ws));
        assert!(!fc.bs.as_ref().unwrap().equal(old.bs.as_ref().unwrap()));
        for (name, tensor) in &before {
            let statistic = name.ends_with("running_mean") || name.ends_with("running_var");
            assert_eq!(
                tensor.equal(&trainer.vs.variables()[name]),
                !statistic,
                "{name}"
            );
        }
        // Their scheduler is stepped before each epoch: epoch e trains at the cosine's value
        // for e + 1, the last at 0.
        let rates: Vec<f64> = history.iter().map(|e| e.lr).collect();
        let expected: Vec<f64> = (1..=4).map(|e| cosine_lr(0.01, e, 4)).collect();
        assert_eq!(rates, expected);
        assert_eq!(rates[3], 0.0);
        assert!(history.iter().all(|e| e.loss_base.is_finite()));

        // The whole job: evaluated on the test set, above chance (1 in 6).
        let mut trainer = Trainer::new(job, &data, Device::Cpu);
        trainer.load_model(&model).unwrap();
        let Outcome::Finished(result) = run(&trainer, stage2.method, &mut Quiet).unwrap() else {
            panic!("the job finishes");
        };
        assert_eq!(result.epochs.len(), 4);
        let accuracy = result.accuracy.acc_all.unwrap();
        assert!(accuracy > 2.0 / 6.0, "accuracy {accuracy}");
    }
}
