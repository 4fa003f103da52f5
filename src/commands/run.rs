//! `ltsweep run SPEC.toml --workers N --out DIR`: a whole study on one machine. The coordinator
//! and the workers are the same as on a cluster, talking gRPC over loopback inside this
//! process; the coordinator's state lives in `DIR/state`, so rerunning an interrupted study
//! resumes it, and a finished one only writes its report again.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use ltsweep_analysis::Frames;
use ltsweep_coordinator::CoordinatorConfig;
use ltsweep_proto::client::Connection;
use ltsweep_proto::server::Access;
use ltsweep_proto::token::Token;
use ltsweep_worker::runtime::{self, Shutdown, WorkerConfig};
use tokio::sync::{oneshot, watch};

use super::client::{block_on, remote_error, watch_sweep};
use crate::cli::{RemoteArgs, RunArgs};
use crate::exit::BadInput;

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let (text, spec) = super::load_spec(&args.spec)?;
    if args.workers == 0 {
        return Err(BadInput("--workers must be at least 1".to_owned()).into());
    }
    // Missing or broken data is the user's to fix: say so before anything starts.
    let mut checked = HashSet::new();
    for job in spec.jobs() {
        let key = serde_json::to_string(&job.dataset)?;
        if checked.insert(key) {
            ltsweep_data::prepare(&job.dataset, &args.data_root).map_err(super::data::bad_data)?;
        }
    }
    let devices = super::worker::parse_devices(&args.devices)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = args
        .threads
        .unwrap_or_else(|| (cores / args.workers).max(1) as i32);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;

    block_on(async {
        // The embedded coordinator listens on loopback only, but other local users could
        // reach it: a fresh token per run keeps them out.
        let token = Token::generate();
        // Short leases: after an interrupted run, the jobs its workers held come back within
        // seconds of the rerun.
        let config = CoordinatorConfig {
            lease_ttl: Duration::from_secs(10),
            heartbeat_interval: Duration::from_secs(1),
            poll_timeout: Duration::from_secs(5),
            access: Access::shared(&token),
            ..CoordinatorConfig::new(args.out.join("state"))
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let remote = RemoteArgs {
            coordinator: format!("http://{}", listener.local_addr()?),
            token_file: None,
            tls_ca: None,
        };
        let (stop_server, server_stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(ltsweep_coordinator::serve(config, listener, async {
            let _ = server_stopped.await;
        }));
        let connection = Connection::new(&remote.coordinator, Some(token.as_str()), None)?;
        let submitted = connection
            .sweep_api()
            .submit(&text)
            .await
            .map_err(|e| remote_error(e, &remote))?;
        println!(
            "{} {}: {} jobs on {} workers ({}, {threads} libtorch threads each); state in {}",
            if submitted.created {
                "running"
            } else {
                "resuming"
            },
            submitted.sweep,
            submitted.jobs,
            args.workers,
            devices
                .iter()
                .map(|&d| ltsweep_worker::train::device_name(d))
                .collect::<Vec<_>>()
                .join(", "),
            args.out.join("state").display()
        );

        let (shutdown, shutdown_rx) = watch::channel(Shutdown::Run);
        let mut workers = tokio::task::JoinSet::new();
        for i in 0..args.workers {
            let config = WorkerConfig {
                host: format!("local-{i}"),
                devices: vec![devices[i % devices.len()]],
                slots_per_device: 1,
                data_root: args.data_root.clone(),
                threads_per_job: Some(threads),
                // The cores this worker owns, as for libtorch's threads.
                loader_threads: args.loader_threads.or(Some(threads as usize)),
                fuse: args.fuse,
            };
            let connection = connection.clone();
            let shutdown = shutdown_rx.clone();
            workers.spawn(async move { runtime::run(&connection, config, shutdown).await });
        }

        let finished = tokio::select! {
            watched = watch_sweep(&connection, &submitted.sweep, &remote) => Some(watched),
            _ = tokio::signal::ctrl_c() => None,
        };
        let interrupted = finished.is_none();
        // Interrupted: give the running jobs back now. Finished: nothing is left to poll for.
        let _ = shutdown.send(if interrupted {
            Shutdown::Now
        } else {
            Shutdown::Drain
        });
        while let Some(joined) = workers.join_next().await {
            if let Ok(Err(err)) = joined {
                tracing::warn!(%err, "a worker stopped");
            }
        }
        let records = match finished {
            Some(watched) => {
                watched?;
                Some(super::client::records(&connection, submitted.sweep.as_str(), &remote).await?)
            }
            None => None,
        };
        let _ = stop_server.send(());
        server.await.context("the coordinator task")??;
        let Some(records) = records else {
            anyhow::bail!(
                "interrupted; run the same command again to resume (state in {})",
                args.out.join("state").display()
            );
        };
        let frames = Frames::from_records(&records)?;
        // The report's folder holds the frames too: `ltsweep report --results` reads the study
        // again from it with other options (--select, --metric, --test), without a coordinator.
        super::report::write_and_print_with(&frames, &args.out, &Default::default())
    })
}
