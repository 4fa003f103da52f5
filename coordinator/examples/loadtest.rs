//! Drives an in-process coordinator over loopback with simulated workers and instant jobs,
//! then prints the throughput and the latency of `PollWork` and `CompleteJob`.
//!
//! ```text
//! cargo run --release -p ltsweep-coordinator --example loadtest -- [WORKERS] [JOBS] [JOB_MS]
//! ```
//!
//! Defaults: 1000 workers, 100,000 jobs, jobs of 0 ms. Each worker registers, then polls,
//! "runs" the job for JOB_MS, completes it, and polls again until every job is done. With
//! instant jobs every worker always has a call in flight, so the latency is the number of
//! workers over the throughput; a JOB_MS near the number of workers (1000 workers, 1000 ms)
//! offers about 1000 completions a second and shows the latency at that rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ltsweep_coordinator::{CoordinatorConfig, serve};
use ltsweep_proto::pb;
use ltsweep_proto::pb::sweep_service_client::SweepServiceClient;
use ltsweep_proto::pb::worker_service_client::WorkerServiceClient;
use tonic::transport::Endpoint;

#[derive(Default)]
struct Latencies {
    poll: Vec<Duration>,
    complete: Vec<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().map_or(1000, |a| a.parse().expect("WORKERS"));
    let jobs: usize = args.next().map_or(100_000, |a| a.parse().expect("JOBS"));
    let job_time = Duration::from_millis(args.next().map_or(0, |a| a.parse().expect("JOB_MS")));

    let state = tempfile::tempdir().expect("a temp dir");
    let mut config = CoordinatorConfig::new(state.path());
    config.poll_timeout = Duration::from_secs(5);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(config, listener, async {
        let _ = stopped.await;
    }));
    let endpoint = Endpoint::from_shared(format!("http://{address}")).unwrap();

    let seeds: Vec<String> = (0..jobs).map(|i| i.to_string()).collect();
    let spec = format!(
        "name = \"load\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{{ comp = \"none\", pc = \"none\" }}]\n",
        seeds.join(",")
    );
    let mut sweeps = SweepServiceClient::new(endpoint.connect().await.unwrap())
        .max_decoding_message_size(64 << 20);
    let started = Instant::now();
    let submitted = sweeps
        .submit_sweep(pb::SubmitSweepRequest { spec_toml: spec })
        .await
        .unwrap()
        .into_inner();
    let submit_time = started.elapsed();
    assert_eq!(submitted.jobs as usize, jobs);

    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let channel = endpoint.connect().await.unwrap();
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut client = WorkerServiceClient::new(channel);
            let worker_id = client
                .register_worker(pb::RegisterWorkerRequest {
                    host: "load".into(),
                    devices: vec![pb::Device {
                        name: "cpu".into(),
                        slots: 1,
                    }],
                    protocol_version: ltsweep_proto::PROTOCOL_VERSION,
                    version: "load".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .worker_id;
            let mut latencies = Latencies::default();
            while done.load(Ordering::Relaxed) < jobs {
                let asked = Instant::now();
                let Ok(response) = client
                    .poll_work(pb::PollWorkRequest {
                        worker_id: worker_id.clone(),
                        device: "cpu".into(),
                    })
                    .await
                else {
                    break;
                };
                let Some(lease) = response.into_inner().lease else {
                    continue;
                };
                latencies.poll.push(asked.elapsed());
                if !job_time.is_zero() {
                    tokio::time::sleep(job_time).await;
                }
                let spec = lease.job.clone().unwrap();
                let result = pb::JobResult {
                    job_id: spec.job_id.clone(),
                    sweep_id: spec.sweep_id.clone(),
                    spec: Some(spec),
                    accuracy: Some(pb::GroupAccuracy {
                        all: Some(0.5),
                        ..Default::default()
                    }),
                    device: "cpu".into(),
                    ..Default::default()
                };
                let asked = Instant::now();
                client
                    .complete_job(pb::CompleteJobRequest {
                        worker_id: worker_id.clone(),
                        lease_id: lease.lease_id,
                        result: Some(result),
                    })
                    .await
                    .unwrap();
                latencies.complete.push(asked.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    while done.load(Ordering::Relaxed) < jobs {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    let mut all = Latencies::default();
    for task in tasks {
        let latencies = task.await.unwrap();
        all.poll.extend(latencies.poll);
        all.complete.extend(latencies.complete);
    }
    server.await.unwrap().unwrap();
    all.poll.sort();
    all.complete.sort();

    println!("workers              {workers}");
    println!("jobs                 {jobs}");
    println!("job time             {} ms", job_time.as_millis());
    println!("submit               {:.2} s", submit_time.as_secs_f64());
    println!("run                  {:.2} s", elapsed.as_secs_f64());
    println!(
        "completions/s        {:.0}   (target: at least 1000)",
        jobs as f64 / elapsed.as_secs_f64()
    );
    for (name, sorted) in [("PollWork", &all.poll), ("CompleteJob", &all.complete)] {
        println!(
            "{name:<12} p50 {:>6.2} ms   p99 {:>6.2} ms   max {:>7.2} ms   (target p99: under 50 ms)",
            percentile(sorted, 0.5).as_secs_f64() * 1e3,
            percentile(sorted, 0.99).as_secs_f64() * 1e3,
            sorted.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        );
    }
}
