//! `ltsweep worker --coordinator URL`: one process per machine, training on its devices.
//!
//! The first SIGTERM, SIGUSR1 or SIGINT preempts: running jobs checkpoint at their next step and
//! go back to the queue without costing an attempt; a second one stops at once (see
//! `ltsweep_worker::preempt`).

use anyhow::Context;
use ltsweep_worker::preempt;
use ltsweep_worker::runtime::{self, Shutdown, WorkerConfig};
use tch::Device;
use tokio::sync::watch;

use crate::cli::WorkerArgs;
use crate::exit::BadInput;

pub fn run(args: &WorkerArgs) -> anyhow::Result<()> {
    let devices = parse_devices(&args.devices)?;
    if args.slots_per_device == 0 {
        return Err(BadInput("--slots-per-device must be at least 1".to_owned()).into());
    }
    let config = WorkerConfig {
        host: hostname(),
        devices,
        slots_per_device: args.slots_per_device,
        data_root: args.data_root.clone(),
        threads_per_job: args.threads,
        loader_threads: args.loader_threads,
        fuse: args.fuse,
    };
    super::client::block_on(async {
        // Under systemd the token may come as the unit's credential `token`.
        let connection = super::client::connect_with(&args.remote, Some("token"))?;
        let (tx, rx) = watch::channel(Shutdown::Run);
        preempt::forward_signals(tx).context("cannot install the signal handlers")?;
        runtime::run(&connection, config, rx)
            .await
            .map_err(|e| crate::exit::Refused(e.to_string()).into())
    })
}

/// `auto`, `cpu`, or a comma-separated list of `cuda:N`.
pub fn parse_devices(text: &str) -> anyhow::Result<Vec<Device>> {
    if text == "auto" {
        let gpus = tch::Cuda::device_count();
        return Ok(if gpus > 0 {
            (0..gpus as usize).map(Device::Cuda).collect()
        } else {
            vec![Device::Cpu]
        });
    }
    text.split(',')
        .map(|part| super::train::resolve_device(part.trim()))
        .collect()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}
