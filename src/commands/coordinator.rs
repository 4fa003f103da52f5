//! `ltsweep coordinator --listen ADDR --state-dir DIR`.

use anyhow::Context;
use ltsweep_coordinator::{CoordinatorConfig, Durability, Limits, Opened, TlsFiles};

use crate::cli::{CoordinatorArgs, DurabilityArg};
use crate::exit::BadInput;

pub fn run(args: &CoordinatorArgs) -> anyhow::Result<()> {
    let token = super::client::token(args.token_file.as_deref())?;
    if token.is_none() {
        if !args.insecure && !is_loopback(&args.listen) {
            return Err(BadInput(format!(
                "no token (--token-file, LTSWEEP_TOKEN) on {}, an address other machines reach: give a token, listen on 127.0.0.1, or pass --insecure",
                args.listen
            ))
            .into());
        }
        tracing::warn!(
            "no token (--token-file, LTSWEEP_TOKEN): anyone who reaches {} can submit and take jobs",
            args.listen
        );
    }
    let config = CoordinatorConfig {
        lease_ttl: args.lease_ttl,
        heartbeat_interval: args.heartbeat,
        poll_timeout: args.poll_timeout,
        token,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        durability: match args.durability {
            DurabilityArg::Normal => Durability::Normal,
            DurabilityArg::Full => Durability::Full,
        },
        limits: Limits {
            max_spec_bytes: usize::try_from(args.limits.max_spec_bytes).unwrap_or(usize::MAX),
            max_jobs_per_sweep: args.limits.max_jobs_per_sweep,
            max_jobs: args.limits.max_jobs,
            max_checkpoint_bytes: args.limits.max_checkpoint_bytes,
            max_workers: args.limits.max_workers,
            min_free_disk_bytes: args.limits.min_free_disk_bytes,
        },
        ..CoordinatorConfig::new(&args.state_dir)
    };
    config.validate().map_err(|e| BadInput(e.to_string()))?;
    super::client::block_on(async {
        // The state and the TLS files first: a coordinator that cannot keep its state never
        // says it is listening.
        let opened = Opened::open(config).context("the coordinator cannot start")?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| BadInput(format!("cannot listen on {}: {e}", args.listen)))?;
        let address = listener.local_addr()?;
        eprintln!(
            "ltsweep coordinator listening on {address}, state in {}",
            args.state_dir.display()
        );
        opened
            .serve(listener, super::worker::shutdown_signal())
            .await
            .context("the coordinator stopped")
    })
}

/// Whether every address `listen` names is a loopback one (a name that does not resolve is
/// not: binding it fails with its own message).
fn is_loopback(listen: &str) -> bool {
    use std::net::ToSocketAddrs;
    listen.to_socket_addrs().is_ok_and(|addresses| {
        let addresses: Vec<_> = addresses.collect();
        !addresses.is_empty() && addresses.iter().all(|a| a.ip().is_loopback())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_are_loopback() {
        assert!(is_loopback("127.0.0.1:7070"));
        assert!(is_loopback("[::1]:7070"));
        assert!(is_loopback("localhost:7070"));
        assert!(!is_loopback("0.0.0.0:7070"));
        assert!(!is_loopback("[::]:7070"));
        assert!(!is_loopback("10.1.2.3:7070"));
    }
}
