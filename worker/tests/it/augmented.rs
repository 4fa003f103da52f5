//! A job with an image policy, Cutout and batch mixing trains, changes what it trains on, and
//! resumed after a preemption mid-epoch ends exactly as an uninterrupted run: every draw comes
//! from the seed, the epoch and the position.

use std::cell::Cell;
use std::path::Path;

use ltsweep_data::longtail;
use ltsweep_domain::{JobResult, JobSpec, SweepSpec};
use ltsweep_worker::train::{Outcome, Quiet, Trainer};
use tch::Device;

use crate::register;
use crate::support::{PreemptAt, finished, without_timing};

fn job(augment: &str) -> JobSpec {
    let spec = SweepSpec::parse(&format!(
        r#"
name = "augmented"
seeds = [5]
[dataset]
kind = "synthetic"
classes = 4
train_per_class = 40
test_per_class = 10
image_size = 12
noise = 1.5
imbalance_ratio = 4
[model]
depth = 8
[train]
epochs = 2
batch_size = 16
lr = 0.05
warmup_epochs = 0
checkpoint_every = 10
[losses]
plans = [{{}}]
base = "la"
[augment]
{augment}
"#
    ))
    .unwrap();
    spec.jobs().remove(0)
}

fn straight(job: &JobSpec) -> JobResult {
    let data = longtail::prepare(&job.dataset, Path::new("")).unwrap();
    finished(
        Trainer::new(job, &data, Device::Cpu)
            .run(&mut Quiet, None)
            .unwrap(),
    )
}

/// Preempted in the middle of the second epoch, then resumed from its checkpoint.
fn resumed(job: &JobSpec) -> JobResult {
    let data = longtail::prepare(&job.dataset, Path::new("")).unwrap();
    let mut first = Trainer::new(job, &data, Device::Cpu);
    let mut observer = PreemptAt {
        at: 10,
        asked: Cell::new(0),
        checkpoint: None,
    };
    match first.run(&mut observer, None).unwrap() {
        Outcome::Preempted { epoch: 1 } => {}
        other => panic!("expected a preemption in the second epoch: {other:?}"),
    }
    let (_, bytes) = observer.checkpoint.expect("a checkpoint at the preemption");
    let mut second = Trainer::new(job, &data, Device::Cpu);
    second.resume(&bytes).unwrap();
    finished(second.run(&mut Quiet, None).unwrap())
}

register!(a_policy_cutout_and_mixing_run_resumes_exactly_and_differs_from_the_standard);
fn a_policy_cutout_and_mixing_run_resumes_exactly_and_differs_from_the_standard() {
    let plain = straight(&job(""));
    for augment in [
        "policy = \"autoaugment_cifar10\"\ncutout = 4\nmix = \"mixup\"",
        "policy = \"trivialaugment_wide\"\nmix = \"cutmix\"\ncutmix_prob = 0.5",
        "policy = \"randaugment\"\nmix = \"remix\"",
    ] {
        let job = job(augment);
        let once = straight(&job);
        assert_ne!(
            once.epochs[0].loss_base, plain.epochs[0].loss_base,
            "{augment}: the same losses as without"
        );
        assert!(
            once.epochs.iter().all(|e| e.loss_base.is_finite()),
            "{augment}"
        );
        assert_eq!(without_timing(resumed(&job)), once, "{augment}");
    }
}
