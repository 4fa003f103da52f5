//! `ltsweep launch`: workers placed by a cluster's own scheduler (Slurm, Kubernetes) rather
//! than started by hand beside it. Each launcher renders a template from `deploy/` (built into
//! the binary) with the command's flags.

mod k8s;
mod slurm;

pub use k8s::K8sArgs;

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum LaunchCommand {
    /// Workers as a Slurm job array: renders deploy/slurm/workers.sbatch and submits it with
    /// sbatch (prints the job id), or cancels such a job with --cancel.
    Slurm(SlurmArgs),
    /// Kubernetes manifests (JSON documents for `kubectl apply -f -`): the coordinator as a
    /// StatefulSet with a Service, the workers as a Deployment, and NetworkPolicies; every pod
    /// non-root on a read-only root file system, its tokens from Secrets.
    K8s(K8sArgs),
}

#[derive(Args, Debug)]
pub struct SlurmArgs {
    /// The coordinator's address as the compute nodes reach it, e.g. http://head:7070.
    #[arg(long, env = "LTSWEEP_COORDINATOR", required_unless_present = "cancel")]
    pub coordinator: Option<String>,
    /// Worker processes: one array task each.
    #[arg(long, required_unless_present = "cancel")]
    pub workers: Option<u32>,
    /// GPUs per worker (`--gres=gpu:G`); 0 trains on the CPU.
    #[arg(long, default_value_t = 0)]
    pub gpus_per_worker: u32,
    /// Jobs each device trains at once.
    #[arg(long, default_value_t = 1)]
    pub slots_per_device: u32,
    /// CPU cores per worker (`--cpus-per-task`).
    #[arg(long)]
    pub cpus_per_worker: Option<u32>,
    #[arg(long)]
    pub partition: Option<String>,
    /// The time limit of each worker, as sbatch takes it (e.g. 1-00:00:00 or 90).
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long)]
    pub account: Option<String>,
    /// Seconds before the time limit at which Slurm warns each worker (SIGUSR1) to checkpoint
    /// and give its jobs back: enough for its largest checkpoint to upload.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u16).range(1..))]
    pub warning_seconds: u16,
    /// More sbatch options, e.g. "--qos=high --mem=16G" (each becomes an #SBATCH line).
    #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true)]
    pub extra_sbatch: Vec<String>,
    /// The token file the workers read (on a file system the nodes share, readable by you
    /// alone); without it, LTSWEEP_TOKEN reaches them through the environment sbatch exports.
    #[arg(long, env = "LTSWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The folder the spec's data paths are relative to, on the nodes.
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// The ltsweep binary the nodes run (default: this one; it must be on a shared path).
    #[arg(long)]
    pub ltsweep: Option<PathBuf>,
    /// Where each worker's log goes (default: the current folder).
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    #[arg(long, default_value = "ltsweep-workers")]
    pub job_name: String,
    /// Print the script instead of submitting it.
    #[arg(long)]
    pub dry_run: bool,
    /// End the workers of this Slurm job (they checkpoint and give their jobs back first).
    #[arg(long, value_name = "JOBID", conflicts_with_all = ["workers", "dry_run"])]
    pub cancel: Option<String>,
}

pub fn run(command: &LaunchCommand) -> anyhow::Result<()> {
    match command {
        LaunchCommand::Slurm(args) => slurm::run(args),
        LaunchCommand::K8s(args) => k8s::run(args),
    }
}

/// A warning when `url` names this machine itself (loopback), which workers on other nodes
/// cannot reach.
fn loopback_warning(url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = if let Some(bracketed) = authority.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or(bracketed)
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host)
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
    loopback.then(|| {
        format!(
            "warning: the coordinator address {url} is this machine's loopback: workers on other nodes cannot reach it; give an address they can (e.g. http://$(hostname -f):7070)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::loopback_warning;

    #[test]
    fn loopback_addresses_are_warned_about() {
        for url in [
            "http://127.0.0.1:7070",
            "http://localhost:7070",
            "https://[::1]:7070",
            "http://0.0.0.0:7070",
            "127.0.0.2:80",
        ] {
            assert!(loopback_warning(url).is_some(), "{url}");
        }
        for url in [
            "http://head:7070",
            "https://10.0.0.5:7070",
            "http://[fd00::1]:7070",
        ] {
            assert!(loopback_warning(url).is_none(), "{url}");
        }
    }
}
