//! `ltsweep bench train` (the training loop's throughput) and `bench sweep` (a sweep's overhead
//! through real worker processes).

use std::time::Instant;

use ltsweep_data::rng::Rng;
use ltsweep_data::{ClassInfo, ImageSet, LongTailData};
use ltsweep_domain::{ClassGroup, LossPlan, Shot, SweepSpec};
use ltsweep_proto::client::Connection;
use ltsweep_worker::fused::FusedTrainer;
use ltsweep_worker::train::{Trainer, device_name};

use super::{Child, start_coordinator};
use crate::cli::{BenchSweepArgs, BenchTrainArgs};
use crate::exit::BadInput;

/// Random pixels and labels, as the PyTorch peer uses: throughput does not depend on content.
fn random_images(n: usize, size: usize, classes: usize, seed: u64) -> ImageSet {
    let mut rng = Rng::derive(seed, &[]);
    ImageSet {
        pixels: (0..n * 3 * size * size)
            .map(|_| rng.below(256) as u8)
            .collect(),
        labels: (0..n).map(|_| rng.below(classes as u64) as i64).collect(),
        channels: 3,
        height: size,
        width: size,
        num_classes: classes,
    }
}

/// The `[model]` and extra `[train]` lines of the benchmark's spec.
fn model_lines(args: &BenchTrainArgs) -> (String, String) {
    let Some(arch) = &args.arch else {
        return (format!("depth = {}", args.depth), String::new());
    };
    let mut train = String::new();
    if let Some(precision) = &args.precision {
        train.push_str(&format!("precision = \"{precision}\"\n"));
    }
    if let Some(channels_last) = args.channels_last {
        train.push_str(&format!("channels_last = {channels_last}\n"));
    }
    (format!("arch = \"{arch}\""), train)
}

pub(super) fn train(args: &BenchTrainArgs) -> anyhow::Result<()> {
    let plan: LossPlan = args.plan.parse().map_err(BadInput)?;
    if args.fuse == 0 {
        return Err(BadInput("--fuse must be at least 1".to_owned()).into());
    }
    let device = crate::commands::train::resolve_device(&args.device)?;
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    // The recipe of the peer: batch 128, momentum SGD, crop + flip + normalise. The epoch count
    // only keeps evaluation out of the timed epochs.
    let seeds: Vec<String> = (0..args.fuse).map(|s| s.to_string()).collect();
    let (model, extra_train) = model_lines(args);
    let spec = SweepSpec::parse(&format!(
        "name = \"bench\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"\nimbalance_ratio = 1\n\
         [model]\n{}\n[train]\nepochs = 1000000\nbatch_size = {}\nlr = 0.1\nwarmup_epochs = 0\n\
         lr_decay_epochs = [999999]\naugment = {}\n{}[losses]\nplans = [{{ comp = \"{}\", pc = \"{}\" }}]\n\
         [augment]\npolicy = \"{}\"\ncutout = {}\nmix = \"{}\"\n",
        seeds.join(", "),
        model,
        args.batch,
        args.augment,
        extra_train,
        plan.comp,
        plan.pc,
        args.policy,
        args.cutout,
        args.mix
    ))
    .map_err(|e| {
        BadInput(format!(
            "--arch, --precision, --channels-last, --policy, --cutout or --mix: {e}"
        ))
    })?;
    let jobs = spec.jobs();
    let size = args.image_size as usize;
    let train = random_images(args.images, size, args.classes, 1);
    let counts = train.class_counts();
    let data = LongTailData {
        val: None,
        test: random_images(args.classes, size, args.classes, 2),
        classes: ClassInfo {
            groups: vec![ClassGroup::Head; args.classes],
            shots: counts.iter().map(|&n| Shot::of_count(n)).collect(),
            train_counts: counts,
        },
        train,
    };
    let mut trainers: Vec<Trainer> = jobs
        .iter()
        .map(|j| Trainer::new(j, &data, device))
        .collect();
    // One job trains as it does in a worker; several as one fused array.
    let mut fused = if trainers.len() > 1 {
        Some(FusedTrainer::new(std::mem::take(&mut trainers))?)
    } else {
        None
    };
    let mut epoch = || -> anyhow::Result<()> {
        match &mut fused {
            Some(fused) => fused.train_epoch()?,
            None => {
                trainers[0].train_epoch(&|| false)?;
            }
        }
        Ok(())
    };
    epoch()?;
    let start = Instant::now();
    let mut images = 0usize;
    for _ in 0..args.epochs {
        epoch()?;
        images += args.images * jobs.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    let rate = images as f64 / seconds;
    let job = &jobs[0];
    let network = match job.model.arch {
        ltsweep_domain::Arch::Cifar => format!("ResNet-{}", job.model.depth),
        arch => format!(
            "{arch} ({}{})",
            job.train.precision,
            if job.train.channels_last {
                ", channels-last"
            } else {
                ""
            }
        ),
    };
    println!(
        "ltsweep bench train: {network} {} batch {} on {}x{} images on {} ({} libtorch threads), {} images x {} epochs{}",
        plan,
        args.batch,
        size,
        size,
        device_name(device),
        tch::get_num_threads(),
        args.images,
        args.epochs,
        if jobs.len() > 1 {
            format!(", {} jobs fused (images/s summed over them)", jobs.len())
        } else {
            String::new()
        }
    );
    println!("seconds={seconds:.3}");
    println!("images_per_second={rate:.3}");
    Ok(())
}

pub(super) fn sweep(args: &BenchSweepArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = ltsweep_proto::token::Token::generate();
    let token = token.as_str();
    let seeds: Vec<String> = (0..args.seeds).map(|s| s.to_string()).collect();
    // One training step a job: the whole training set is one batch, for one epoch.
    let spec = format!(
        "name = \"overhead\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"\nclasses = 2\ntrain_per_class = 8\n\
         test_per_class = 4\nimage_size = 8\nimbalance_ratio = 2\nhead_min_count = 5\n[model]\ndepth = 8\n\
         [train]\nepochs = 1\nbatch_size = 64\nwarmup_epochs = 0\nlr_decay_epochs = []\n",
        seeds.join(", ")
    );
    let total_start = Instant::now();
    let (_coordinator, url) = start_coordinator(
        &dir.path().join("state"),
        token,
        &[
            "--poll-timeout",
            "5s",
            "--heartbeat",
            "1s",
            "--lease-ttl",
            "10s",
        ],
    )?;
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        workers.push(Child::spawn(
            &[
                "worker",
                "--coordinator",
                &url,
                "--devices",
                "cpu",
                "--threads",
                "1",
            ],
            token,
            std::process::Stdio::inherit(),
        )?);
    }
    crate::commands::client::block_on(async {
        let api = Connection::new(&url, Some(token), None)?.sweep_api();
        let submit_start = Instant::now();
        let submitted = api.submit(&spec).await?;
        let mut watch = api.watch(&submitted.sweep).await?;
        let mut counts = ltsweep_domain::SweepCounts::default();
        while let Some(event) = watch.next().await? {
            counts = event.counts.unwrap_or(counts);
        }
        let submit_seconds = submit_start.elapsed().as_secs_f64();
        let total_seconds = total_start.elapsed().as_secs_f64();
        anyhow::ensure!(
            counts.succeeded == submitted.jobs,
            "only {} of {} jobs succeeded",
            counts.succeeded,
            submitted.jobs
        );
        println!(
            "{}",
            serde_json::json!({
                "tool": concat!("ltsweep ", env!("CARGO_PKG_VERSION")),
                "trials": submitted.jobs,
                "concurrent": args.workers,
                "submit_to_last_result_s": (submit_seconds * 1000.0).round() / 1000.0,
                "total_s": (total_seconds * 1000.0).round() / 1000.0,
                "per_trial_s": (submit_seconds / f64::from(submitted.jobs) * 10000.0).round() / 10000.0,
            })
        );
        Ok(())
    })
}
