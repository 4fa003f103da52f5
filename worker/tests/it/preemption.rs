//! Preemption in the trainer: stopped between two steps of an epoch, checkpointed and resumed,
//! again and again, a run ends exactly as an uninterrupted one.

use std::cell::Cell;
use std::path::Path;

use ltsweep_data::longtail;
use ltsweep_domain::SweepSpec;
use ltsweep_worker::train::{Outcome, Quiet, Trainer};
use tch::Device;

use crate::register;
use crate::support::{PreemptAt, without_timing};

register!(a_run_preempted_mid_epoch_five_times_ends_exactly_as_an_uninterrupted_one);
fn a_run_preempted_mid_epoch_five_times_ends_exactly_as_an_uninterrupted_one() {
    let spec = SweepSpec::parse(
        r#"
name = "preempted"
seeds = [3]
[dataset]
kind = "synthetic"
classes = 6
train_per_class = 60
test_per_class = 20
image_size = 12
noise = 2.0
imbalance_ratio = 10
head_min_count = 30
[model]
depth = 8
[train]
epochs = 3
batch_size = 16
lr = 0.05
warmup_epochs = 0
lr_decay_epochs = [2]
pretrain_ce_epochs = 1
eval_epochs = [2, 3]
checkpoint_every = 10
"#,
    )
    .unwrap();
    // Comp. on Tail and PC on Head: every part of the state (momentum, centres) matters.
    let job = spec
        .jobs()
        .into_iter()
        .find(|j| j.plan.to_string() == "comp=tail,pc=head")
        .unwrap();
    let data = longtail::prepare(&job.dataset, Path::new("")).unwrap();
    let straight = match Trainer::new(&job, &data, Device::Cpu)
        .run(&mut Quiet, None)
        .unwrap()
    {
        Outcome::Finished(result) => *result,
        other => panic!("the run did not finish: {other:?}"),
    };

    // 150 training images in batches of 16: 10 steps an epoch. The stops: in the first epoch
    // (no checkpoint: checkpoints count finished epochs from 1), then from scratch in the
    // middle of the second epoch, later in it, at the start of the third, and at once.
    let mut checkpoint: Option<Vec<u8>> = None;
    let mut stops = Vec::new();
    for at in [4, 13, 5, 5, 1] {
        let mut trainer = Trainer::new(&job, &data, Device::Cpu);
        if let Some(bytes) = &checkpoint {
            trainer.resume(bytes).unwrap();
        }
        let mut observer = PreemptAt {
            at,
            asked: Cell::new(0),
            checkpoint: None,
        };
        match trainer.run(&mut observer, None).unwrap() {
            Outcome::Preempted { epoch } => {
                stops.push(epoch);
                match observer.checkpoint {
                    Some((at_epoch, bytes)) => {
                        assert_eq!(at_epoch, epoch);
                        assert!(epoch > 0);
                        checkpoint = Some(bytes);
                    }
                    None => assert_eq!(epoch, 0, "a checkpoint once an epoch finished"),
                }
            }
            other => panic!("expected a preemption, got {other:?}"),
        }
    }
    assert_eq!(stops, [0, 1, 1, 2, 2]);
    let mut last = Trainer::new(&job, &data, Device::Cpu);
    last.resume(checkpoint.as_ref().unwrap()).unwrap();
    let resumed = match last.run(&mut Quiet, None).unwrap() {
        Outcome::Finished(result) => *result,
        other => panic!("the run did not finish: {other:?}"),
    };
    assert_eq!(without_timing(resumed), without_timing(straight));
}
