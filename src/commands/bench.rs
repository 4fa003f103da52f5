//! `ltsweep bench ...`: benchmark programs. Each prints a table of measured figures and, last,
//! one `key=value` line for scripts; the scripts in `bench/` run the peers in the same run.

use std::time::Instant;

use anyhow::Context;
use ltsweep_proto::{ClassGroup, LossPlan, Shot, SweepSpec};
use ltsweep_worker::data::{ClassInfo, ImageSet, LongTailData};
use ltsweep_worker::rng::Rng;
use ltsweep_worker::train::{Trainer, device_name};

use crate::cli::{BenchCommand, BenchTrainArgs};
use crate::exit::BadInput;

pub fn run(command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Train(args) => train(args),
    }
}

/// Random pixels and labels, as the PyTorch peer uses: throughput does not depend on content.
fn random_images(n: usize, classes: usize, seed: u64) -> ImageSet {
    let mut rng = Rng::derive(seed, &[]);
    ImageSet {
        pixels: (0..n * 3 * 32 * 32).map(|_| rng.below(256) as u8).collect(),
        labels: (0..n).map(|_| rng.below(classes as u64) as i64).collect(),
        channels: 3,
        height: 32,
        width: 32,
        num_classes: classes,
    }
}

fn train(args: &BenchTrainArgs) -> anyhow::Result<()> {
    let plan: LossPlan = args.plan.parse().map_err(BadInput)?;
    let device = super::train::resolve_device(&args.device)?;
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    // The recipe of the peer: batch 128, momentum SGD, crop + flip + normalise. The epoch count
    // only keeps evaluation out of the timed epochs.
    let spec = SweepSpec::parse(&format!(
        "name = \"bench\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\nimbalance_ratio = 1\n\
         [model]\ndepth = {}\n[train]\nepochs = 1000000\nbatch_size = {}\nlr = 0.1\nwarmup_epochs = 0\n\
         lr_decay_epochs = [999999]\n[losses]\nplans = [{{ comp = \"{}\", pc = \"{}\" }}]\n",
        args.depth, args.batch, plan.comp, plan.pc
    ))
    .context("the benchmark's own spec")?;
    let job = &spec.jobs()[0];
    let train = random_images(args.images, args.classes, 1);
    let counts = train.class_counts();
    let data = LongTailData {
        test: random_images(args.classes, args.classes, 2),
        classes: ClassInfo {
            groups: vec![ClassGroup::Head; args.classes],
            shots: counts.iter().map(|&n| Shot::of_count(n)).collect(),
            train_counts: counts,
        },
        train,
    };
    let mut trainer = Trainer::new(job, &data, device);
    trainer.train_epoch(&|| false)?;
    let start = Instant::now();
    let mut images = 0usize;
    for _ in 0..args.epochs {
        trainer.train_epoch(&|| false)?;
        images += args.images;
    }
    let seconds = start.elapsed().as_secs_f64();
    let rate = images as f64 / seconds;
    println!(
        "ltsweep bench train: ResNet-{} {} batch {} on {} ({} libtorch threads), {} images x {} epochs",
        args.depth,
        plan,
        args.batch,
        device_name(device),
        tch::get_num_threads(),
        args.images,
        args.epochs
    );
    println!("seconds={seconds:.3}");
    println!("images_per_second={rate:.1}");
    Ok(())
}
