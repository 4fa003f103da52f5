//! `ltsweep bench ...`: benchmark programs. Each prints a table of measured figures and, last,
//! one `key=value` line for scripts; the scripts in `bench/` run the peers in the same run.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use ltsweep_proto::client::{Connection, Registration, Which};
use ltsweep_proto::{ClassGroup, GroupAccuracy, JobResult, LossPlan, Shot, SweepSpec};
use ltsweep_worker::data::{ClassInfo, ImageSet, LongTailData};
use ltsweep_worker::fused::FusedTrainer;
use ltsweep_worker::rng::Rng;
use ltsweep_worker::train::{Trainer, device_name};

use crate::cli::{BenchCommand, BenchCoordinatorArgs, BenchSweepArgs, BenchTrainArgs};
use crate::exit::BadInput;

pub fn run(command: &BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Train(args) => train(args),
        BenchCommand::Coordinator(args) => coordinator(args),
        BenchCommand::Sweep(args) => sweep(args),
        BenchCommand::Loader(args) => super::bench_loader::loader(args),
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
    if args.fuse == 0 {
        return Err(BadInput("--fuse must be at least 1".to_owned()).into());
    }
    let device = super::train::resolve_device(&args.device)?;
    if let Some(threads) = args.threads {
        tch::set_num_threads(threads);
    }
    // The recipe of the peer: batch 128, momentum SGD, crop + flip + normalise. The epoch count
    // only keeps evaluation out of the timed epochs.
    let seeds: Vec<String> = (0..args.fuse).map(|s| s.to_string()).collect();
    let spec = SweepSpec::parse(&format!(
        "name = \"bench\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"\nimbalance_ratio = 1\n\
         [model]\ndepth = {}\n[train]\nepochs = 1000000\nbatch_size = {}\nlr = 0.1\nwarmup_epochs = 0\n\
         lr_decay_epochs = [999999]\naugment = {}\n[losses]\nplans = [{{ comp = \"{}\", pc = \"{}\" }}]\n",
        seeds.join(", "),
        args.depth,
        args.batch,
        args.augment,
        plan.comp,
        plan.pc
    ))
    .context("the benchmark's own spec")?;
    let jobs = spec.jobs();
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
    println!(
        "ltsweep bench train: ResNet-{} {} batch {} on {} ({} libtorch threads), {} images x {} epochs{}",
        args.depth,
        plan,
        args.batch,
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
    println!("images_per_second={rate:.1}");
    Ok(())
}

/// A child `ltsweep` process, killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Child {
    fn spawn(args: &[&str], token: &str) -> anyhow::Result<Child> {
        Self::spawn_with_stderr(args, token, std::process::Stdio::inherit())
    }

    fn spawn_with_stderr(
        args: &[&str],
        token: &str,
        stderr: std::process::Stdio,
    ) -> anyhow::Result<Child> {
        let child = std::process::Command::new(std::env::current_exe()?)
            .args(args)
            .env("LTSWEEP_TOKEN", token)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()?;
        Ok(Child(child))
    }

    /// The peak resident memory of the process, from /proc.
    fn peak_memory_mib(&self) -> Option<f64> {
        self.memory_mib("VmHWM:")
    }

    /// The resident memory of the process now, from /proc.
    fn resident_memory_mib(&self) -> Option<f64> {
        self.memory_mib("VmRSS:")
    }

    fn memory_mib(&self, field: &str) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }
}

/// Starts `ltsweep coordinator` on loopback with its state in `state`. It binds port 0 itself
/// and holds that listener: the port is read from the line it prints once listening, so no
/// other process can take the port between a probe and the bind.
fn start_coordinator(state: &Path, token: &str, extra: &[&str]) -> anyhow::Result<(Child, String)> {
    use std::io::BufRead;

    let mut args = vec![
        "coordinator",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        state.to_str().context("a UTF-8 path")?,
    ];
    args.extend_from_slice(extra);
    let mut child = Child::spawn_with_stderr(&args, token, std::process::Stdio::piped())?;
    let stderr = child.0.stderr.take().context("a piped stderr")?;
    let (found, address) = std::sync::mpsc::channel();
    // Reads on past the address line, passing the coordinator's warnings on, so that it never
    // blocks on a full pipe.
    std::thread::spawn(move || {
        let mut found = Some(found);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let address = line
                .split_once("listening on ")
                .and_then(|(_, rest)| rest.split([' ', ',']).next())
                .map(str::to_owned);
            match (address, found.take()) {
                (Some(address), Some(sender)) => {
                    let _ = sender.send(address);
                }
                (_, sender) => {
                    found = sender;
                    eprintln!("{line}");
                }
            }
        }
    });
    let address = address
        .recv_timeout(Duration::from_secs(60))
        .context("the coordinator did not say where it listens within 60 s")?;
    Ok((child, format!("http://{address}")))
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

/// One simulated worker's latencies, in microseconds.
#[derive(Default)]
struct Latencies {
    poll: Vec<u32>,
    complete: Vec<u32>,
}

/// What one run of the load generator measured.
struct LoadRun {
    submit_seconds: f64,
    seconds: f64,
    succeeded: u32,
    latencies: Latencies,
}

fn coordinator(args: &BenchCoordinatorArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let dir = tempfile::tempdir()?;
    let token = "bench";
    let durability = match args.durability {
        crate::cli::DurabilityArg::Normal => "normal",
        crate::cli::DurabilityArg::Full => "full",
    };
    let (coordinator, url) = start_coordinator(
        &dir.path().join("state"),
        token,
        &[
            "--poll-timeout",
            "1s",
            "--lease-ttl",
            "60s",
            "--durability",
            durability,
        ],
    )?;
    // What the process holds before any sweep (libtorch is linked into the one binary).
    let idle = coordinator.resident_memory_mib();
    let period = Duration::from_secs_f64(args.workers as f64 / args.rate);
    let paced = super::client::block_on(load_run(&url, token, "paced", args, Some(period)))?;
    let saturated = super::client::block_on(load_run(&url, token, "saturated", args, None))?;
    let memory = coordinator.peak_memory_mib();

    println!(
        "ltsweep bench coordinator: a load generator standing in for {} workers (each its own connection, \
         instant jobs) against a coordinator process, durability {durability}, {} jobs a run",
        args.workers, args.jobs
    );
    println!(
        "| figure | paced: {:.0} jobs/s offered | saturated: no pause |",
        args.rate
    );
    println!("|---|---|---|");
    let row = |name: &str, f: &dyn Fn(&LoadRun) -> String| {
        println!("| {name} | {} | {} |", f(&paced), f(&saturated));
    };
    row("submit of the sweep", &|r| {
        format!("{:.2} s", r.submit_seconds)
    });
    row("jobs recorded as succeeded", &|r| r.succeeded.to_string());
    row("wall time, first poll to last completion", &|r| {
        format!("{:.1} s", r.seconds)
    });
    row("completions/s", &|r| {
        format!("{:.0}", f64::from(r.succeeded) / r.seconds)
    });
    row("PollWork latency p50 / p99", &|r| {
        format!(
            "{:.2} / {:.2} ms",
            percentile(&r.latencies.poll, 0.5),
            percentile(&r.latencies.poll, 0.99)
        )
    });
    row("CompleteJob latency p50 / p99", &|r| {
        format!(
            "{:.2} / {:.2} ms",
            percentile(&r.latencies.complete, 0.5),
            percentile(&r.latencies.complete, 0.99)
        )
    });
    let mib = |m: Option<f64>| m.map_or("unknown".to_owned(), |m| format!("{m:.0} MiB"));
    println!(
        "| coordinator memory before the first sweep (VmRSS) | {} | |",
        mib(idle)
    );
    println!(
        "| coordinator peak memory (VmHWM), both runs | {} | |",
        mib(memory)
    );
    println!(
        "completions_per_second={:.1}",
        f64::from(saturated.succeeded) / saturated.seconds
    );
    Ok(())
}

/// Submits a sweep of `args.jobs` instant jobs and lets the simulated workers take them all.
async fn load_run(
    url: &str,
    token: &str,
    name: &str,
    args: &BenchCoordinatorArgs,
    period: Option<Duration>,
) -> anyhow::Result<LoadRun> {
    let seeds: Vec<String> = (0..args.jobs).map(|s| s.to_string()).collect();
    let spec = format!(
        "name = \"load-{name}\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{{ comp = \"none\", pc = \"none\" }}]\n",
        seeds.join(", ")
    );
    let api = Connection::new(url, Some(token), None)?.sweep_api();
    let submit_start = Instant::now();
    let submitted = api.submit(&spec).await?;
    let submit_seconds = submit_start.elapsed().as_secs_f64();
    let completed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.workers {
        // Its own connection, as a real worker on its own machine has.
        let connection = Connection::new(url, Some(token), None)?;
        let completed = Arc::clone(&completed);
        let jobs = args.jobs;
        // Spread over the period, so that the workers do not all ask at the same instant.
        let pace = period.map(|p| (p, p.mul_f64(i as f64 / args.workers as f64)));
        tasks.spawn(async move { simulated_worker(connection, i, jobs, completed, pace).await });
    }
    let mut latencies = Latencies::default();
    while let Some(joined) = tasks.join_next().await {
        let mine = joined??;
        latencies.poll.extend(mine.poll);
        latencies.complete.extend(mine.complete);
    }
    let seconds = start.elapsed().as_secs_f64();
    let status = api.status(Which::Sweep(&submitted.sweep), false).await?;
    let succeeded = status.counts.succeeded;
    anyhow::ensure!(
        succeeded as usize == args.jobs,
        "only {succeeded} of {} jobs succeeded",
        args.jobs
    );
    latencies.poll.sort_unstable();
    latencies.complete.sort_unstable();
    Ok(LoadRun {
        submit_seconds,
        seconds,
        succeeded,
        latencies,
    })
}

/// Polls, completes at once with a minimal result, and polls again (after `pace`'s period, if
/// given), until every job is done.
async fn simulated_worker(
    connection: Connection,
    index: usize,
    jobs: usize,
    completed: Arc<AtomicUsize>,
    pace: Option<(Duration, Duration)>,
) -> anyhow::Result<Latencies> {
    let api = connection.worker_api();
    let registered = api
        .register(&Registration {
            host: format!("load-{index}"),
            devices: vec![("cpu".into(), 1)],
            version: env!("CARGO_PKG_VERSION").into(),
            slurm: None,
        })
        .await?;
    let worker = registered.worker;
    let mut latencies = Latencies::default();
    let mut next = tokio::time::Instant::now() + pace.map_or(Duration::ZERO, |(_, offset)| offset);
    while completed.load(Ordering::Relaxed) < jobs {
        if let Some((period, _)) = pace {
            tokio::time::sleep_until(next).await;
            next += period;
        }
        let start = Instant::now();
        let lease = api.poll(&worker, "cpu", registered.poll_timeout).await?;
        let Some(lease) = lease else { continue };
        latencies.poll.push(start.elapsed().as_micros() as u32);
        let job = lease.job?;
        let result = JobResult {
            job_id: job.id.0.clone(),
            sweep_id: job.sweep.0.clone(),
            accuracy: GroupAccuracy {
                acc_all: Some(0.5),
                ..Default::default()
            },
            spec: job,
            per_class: Vec::new(),
            epochs: Vec::new(),
            num_classes: 0,
            train_images: 0,
            confusion: Vec::new(),
            train_seconds: 0.0,
            device: "cpu".into(),
            worker_id: None,
            attempts: 0,
            epochs_retrained: 0,
            posthoc: Vec::new(),
        };
        let start = Instant::now();
        api.complete(&worker, &lease.id, result).await?;
        latencies.complete.push(start.elapsed().as_micros() as u32);
        completed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(latencies)
}

fn sweep(args: &BenchSweepArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let token = "bench";
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
        )?);
    }
    super::client::block_on(async {
        let api = Connection::new(&url, Some(token), None)?.sweep_api();
        let submit_start = Instant::now();
        let submitted = api.submit(&spec).await?;
        let mut watch = api.watch(&submitted.sweep).await?;
        let mut counts = ltsweep_proto::SweepCounts::default();
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
