//! Sweeps with hand-chosen results: four classes, so every number of the report can be
//! worked out on paper.

use ltsweep_analysis::{JobRecord, SweepRecords};
use ltsweep_domain::{
    ClassGroup, ClassMetrics, EpochMetrics, GroupAccuracy, JobResult, JobSpec, JobState, Shot,
    SweepId, SweepSpec,
};

/// Training images of classes 0..4: two Head classes (>= 100), two Tail; Many, Many, Medium,
/// Few.
pub const TRAIN_COUNTS: [u32; 4] = [200, 120, 50, 10];
/// Test images per class: a recall of r percent is r correct images.
const TEST_PER_CLASS: u32 = 100;
pub const EPOCHS: u32 = 4;
pub const EARLY_EPOCH: u32 = 2;

/// Three plans (CE alone first) x three seeds, four classes, evaluated after epochs 2 and 4.
pub const GOLDEN_SPEC: &str = r#"
name = "golden"
seeds = [0, 1, 2]
[dataset]
kind = "synthetic"
classes = 4
[train]
epochs = 4
eval_epochs = [2]
[losses]
plans = [{ comp = "none", pc = "none" }, { comp = "all" }, { comp = "tail", pc = "head" }]
"#;

/// What became of a job. Accuracies in percent.
#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    /// Final Head and Tail accuracy: the Head classes score `head ± 10`, the Tail classes
    /// `tail ± 5`, so All is `(head + tail) / 2`, Many `head`, Medium `tail + 5`, Few `tail - 5`.
    Succeeded {
        head: f64,
        tail: f64,
    },
    Not(JobState),
}

pub fn succeeded(head: f64, tail: f64) -> Outcome {
    Outcome::Succeeded { head, tail }
}

pub fn jobs_of(spec: &str) -> Vec<JobSpec> {
    SweepSpec::parse(spec)
        .expect("the test spec is valid")
        .jobs()
}

/// The records of `spec`'s jobs in grid order, with one outcome per job.
pub fn sweep(spec: &str, outcomes: &[Outcome]) -> SweepRecords {
    let jobs = jobs_of(spec);
    assert_eq!(jobs.len(), outcomes.len(), "one outcome per job");
    let sweep_id = jobs[0].sweep.to_string();
    SweepRecords {
        name: sweep_id.split('-').next().unwrap_or_default().to_owned(),
        sweep_id: SweepId(sweep_id),
        jobs: jobs
            .into_iter()
            .zip(outcomes)
            .map(|(spec, &outcome)| record(spec, outcome))
            .collect(),
    }
}

/// The golden sweep: All = (Head + Tail) / 2 for every job.
///
/// | plan              | Head (seeds 0, 1, 2) | Tail       | All        |
/// |-------------------|----------------------|------------|------------|
/// | comp=none,pc=none | 60, 62, 64           | 20, 22, 24 | 40, 42, 44 |
/// | comp=all,pc=none  | 62, 66, 64           | 20, 24, 28 | 41, 45, 46 |
/// | comp=tail,pc=head | 66, 68, 70           | 24, 26, 34 | 45, 47, 52 |
pub fn golden() -> SweepRecords {
    sweep(
        GOLDEN_SPEC,
        &[
            succeeded(60.0, 20.0),
            succeeded(62.0, 22.0),
            succeeded(64.0, 24.0),
            succeeded(62.0, 20.0),
            succeeded(66.0, 24.0),
            succeeded(64.0, 28.0),
            succeeded(66.0, 24.0),
            succeeded(68.0, 26.0),
            succeeded(70.0, 34.0),
        ],
    )
}

fn record(spec: JobSpec, outcome: Outcome) -> JobRecord {
    let (state, result) = match outcome {
        Outcome::Succeeded { head, tail } => {
            let result = result(&spec, [head + 10.0, head - 10.0, tail + 5.0, tail - 5.0]);
            (JobState::Succeeded, Some(result))
        }
        Outcome::Not(state) => (state, None),
    };
    JobRecord {
        state,
        attempts: u32::from(state != JobState::Pending),
        worker: (state != JobState::Pending).then(|| "worker-1".into()),
        error: (state == JobState::Failed).then(|| "loss is not finite".to_owned()),
        result,
        spec,
        search: None,
    }
}

/// Per-class metrics and group accuracies from per-class recalls in percent.
fn evaluation(recalls: [f64; 4]) -> (GroupAccuracy, Vec<ClassMetrics>) {
    let classes: Vec<ClassMetrics> = recalls
        .iter()
        .zip(TRAIN_COUNTS)
        .enumerate()
        .map(|(class, (&recall, train_count))| ClassMetrics {
            class: class as u32,
            train_count,
            test_total: TEST_PER_CLASS,
            test_correct: recall as u32,
            recall: recall / 100.0,
            precision: (0.9 * recall + 5.0) / 100.0,
            group: if train_count >= 100 {
                ClassGroup::Head
            } else {
                ClassGroup::Tail
            },
            shot: Shot::of_count(train_count),
        })
        .collect();
    let mean = |members: &[usize]| {
        Some(members.iter().map(|&i| recalls[i]).sum::<f64>() / members.len() as f64 / 100.0)
    };
    let accuracy = GroupAccuracy {
        acc_all: mean(&[0, 1, 2, 3]),
        acc_head: mean(&[0, 1]),
        acc_tail: mean(&[2, 3]),
        acc_many: mean(&[0, 1]),
        acc_medium: mean(&[2]),
        acc_few: mean(&[3]),
    };
    (accuracy, classes)
}

/// A result whose final per-class recalls are `recalls`; early in training the Head classes
/// are 10 points lower and the Tail classes 20.
fn result(spec: &JobSpec, recalls: [f64; 4]) -> JobResult {
    let early = [0, 1, 2, 3].map(|i| (recalls[i] - if i < 2 { 10.0 } else { 20.0 }).max(0.0));
    let (accuracy, per_class) = evaluation(recalls);
    let epochs = (1..=EPOCHS)
        .map(|epoch| {
            let evaluated = match epoch {
                EARLY_EPOCH => Some(evaluation(early)),
                EPOCHS => Some((accuracy.clone(), per_class.clone())),
                _ => None,
            };
            let (accuracy, per_class) = evaluated.map_or((None, Vec::new()), |(a, c)| (Some(a), c));
            EpochMetrics {
                epoch,
                lr: 0.1,
                loss_base: 2.0 / f64::from(epoch),
                loss_comp: 0.5,
                loss_pc: 0.25,
                images_per_second: 1000.0,
                seconds: 1.5,
                accuracy,
                per_class,
                val_accuracy: None,
            }
        })
        .collect();
    JobResult {
        job_id: spec.id.clone(),
        sweep_id: spec.sweep.clone(),
        spec: spec.clone(),
        accuracy,
        per_class,
        epochs,
        num_classes: 4,
        train_images: TRAIN_COUNTS.iter().sum(),
        confusion: Vec::new(),
        train_seconds: 6.0,
        device: "cpu".to_owned(),
        worker_id: Some("worker-1".into()),
        attempts: 1,
        epochs_retrained: 0,
        posthoc: Vec::new(),
        val_accuracy: None,
    }
}
