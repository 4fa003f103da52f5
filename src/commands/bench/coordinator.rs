//! `ltsweep bench coordinator`: a load generator standing in for many workers against a real
//! coordinator process.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ltsweep_domain::{GroupAccuracy, JobResult};
use ltsweep_proto::client::{Connection, Polled, Registration, Which};

use super::start_coordinator;
use crate::cli::BenchCoordinatorArgs;

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

pub(super) fn run(args: &BenchCoordinatorArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let dir = tempfile::tempdir()?;
    let token = ltsweep_proto::token::Token::generate();
    let token = token.as_str();
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
    // What the process holds before any sweep (libtorch too, in a build with the trainer).
    let idle = coordinator.resident_memory_mib();
    let period = Duration::from_secs_f64(args.workers as f64 / args.rate);
    let paced =
        crate::commands::client::block_on(load_run(&url, token, "paced", args, Some(period)))?;
    let saturated =
        crate::commands::client::block_on(load_run(&url, token, "saturated", args, None))?;
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
        let lease = match api.poll(&worker, "cpu", registered.poll_timeout).await? {
            Polled::Leased(lease) => lease,
            Polled::NoWork => continue,
            Polled::UnknownWorker => anyhow::bail!("the coordinator forgot load worker {worker}"),
        };
        latencies.poll.push(start.elapsed().as_micros() as u32);
        let job = lease.job?;
        let result = JobResult {
            accuracy: GroupAccuracy {
                acc_all: Some(0.5),
                ..Default::default()
            },
            device: "cpu".into(),
            ..JobResult::blank(&job)
        };
        let start = Instant::now();
        api.complete(&worker, &lease.id, result).await?;
        latencies.complete.push(start.elapsed().as_micros() as u32);
        completed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(latencies)
}
