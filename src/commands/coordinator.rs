//! `ltsweep coordinator --listen ADDR --state-dir DIR [--http ADDR]`.

use std::path::Path;

use anyhow::Context;
use ltsweep_coordinator::{CoordinatorConfig, Durability, Limits, Opened};
use ltsweep_proto::roles::Role;
use ltsweep_proto::server::{Access, TlsFiles};
use ltsweep_proto::token::{Token, read_token_file, systemd_credential};
use ltsweep_web::{Web, WebConfig};

use crate::cli::{CoordinatorArgs, DurabilityArg};
use crate::exit::BadInput;

/// A role's token: its flag's file, else the systemd credential of the same name.
fn role_token(flag: Option<&Path>, credential: &str) -> anyhow::Result<Option<Token>> {
    match flag {
        Some(path) => read_token_file(path).map(Some),
        None => systemd_credential(credential),
    }
    .map_err(|e| BadInput(e.to_string()).into())
}

/// The tokens: one for every role (`--token-file`, `LTSWEEP_TOKEN`), one per role (their
/// flags or systemd credentials), or none.
fn access(args: &CoordinatorArgs) -> anyhow::Result<Access> {
    let shared = super::client::token(args.token_file.as_deref(), None)?;
    let worker = role_token(args.worker_token_file.as_deref(), "worker-token")?;
    let user = role_token(args.user_token_file.as_deref(), "user-token")?;
    let viewer = role_token(args.viewer_token_file.as_deref(), "viewer-token")?;
    let by_role = worker.is_some() || user.is_some() || viewer.is_some();
    match shared {
        Some(_) if by_role => Err(BadInput(
            "--token-file (or LTSWEEP_TOKEN) is one token for every role, and cannot go with --worker-token-file, --user-token-file or --viewer-token-file (or their systemd credentials): give one or the other".into(),
        )
        .into()),
        Some(token) => Ok(Access::shared(&token)),
        None if by_role => {
            for (token, role, who) in [
                (&worker, Role::Worker, "no worker can take a job"),
                (&user, Role::User, "no one can submit or cancel a sweep"),
            ] {
                if token.is_none() {
                    tracing::warn!("no {role} token ({}): {who}", role.token_flag());
                }
            }
            Access::by_role(worker.as_ref(), user.as_ref(), viewer.as_ref())
                .map_err(|e| BadInput(e.to_string()).into())
        }
        None => Ok(Access::open()),
    }
}

pub fn run(args: &CoordinatorArgs) -> anyhow::Result<()> {
    let access = access(args)?;
    if access.is_open() {
        // The web page with no token shows everything and has working cancel buttons, so its
        // address is held to the same rule as the gRPC one.
        let exposed = std::iter::once(&args.listen)
            .chain(&args.http)
            .find(|address| !is_loopback(address));
        if let (false, Some(address)) = (args.insecure, exposed) {
            return Err(BadInput(format!(
                "no token on {address}, an address other machines reach: give tokens (--worker-token-file, --user-token-file, --viewer-token-file, or one --token-file), listen on 127.0.0.1, or pass --insecure"
            ))
            .into());
        }
        tracing::warn!(
            "no token: anyone who reaches {} can submit and take jobs",
            args.listen
        );
    }
    let config = CoordinatorConfig {
        lease_ttl: args.lease_ttl,
        heartbeat_interval: args.heartbeat,
        poll_timeout: args.poll_timeout,
        worker_expiry: args.worker_expiry,
        access,
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
            max_result_bytes: usize::try_from(args.limits.max_result_bytes).unwrap_or(usize::MAX),
            max_streams: args.limits.max_streams,
            max_streams_per_credential: args.limits.max_streams_per_credential,
            max_streams_per_connection: args.limits.max_streams_per_connection,
            auth_failures_per_minute: args.limits.auth_failures_per_minute,
            max_connections: args.limits.max_connections,
            max_connections_per_address: args.limits.max_connections_per_address,
            header_read_timeout: args.limits.header_read_timeout,
            idle_timeout: args.limits.idle_timeout,
        },
        ..CoordinatorConfig::new(&args.state_dir)
    };
    config.validate().map_err(|e| BadInput(e.to_string()))?;
    super::client::block_on(async {
        // The state and the TLS files first: a coordinator that cannot keep its state never
        // says it is listening.
        let opened = Opened::open(config.clone()).context("the coordinator cannot start")?;
        let web = args
            .http
            .as_ref()
            .map(|address| {
                let web = Web::new(
                    opened.sweep_client(),
                    opened.auth_throttle(),
                    opened.connection_caps(),
                    WebConfig {
                        access: config.access.clone(),
                        tls: config.tls.clone(),
                        hosts: args.http_host.clone(),
                        header_read_timeout: config.limits.header_read_timeout,
                        idle_timeout: config.limits.idle_timeout,
                        logins_per_minute: args.limits.logins_per_minute,
                        max_sessions_per_credential: usize::try_from(
                            args.limits.max_sessions_per_credential,
                        )
                        .unwrap_or(usize::MAX),
                    },
                )
                .map_err(|e| BadInput(e.to_string()))?;
                anyhow::Ok((address, web))
            })
            .transpose()?;
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .map_err(|e| BadInput(format!("cannot listen on {}: {e}", args.listen)))?;
        let web = match web {
            Some((address, web)) => {
                let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
                    BadInput(format!("cannot serve the web page on {address}: {e}"))
                })?;
                Some((listener, web))
            }
            None => None,
        };
        let address = listener.local_addr()?;
        eprintln!(
            "ltsweep coordinator listening on {address}, state in {}",
            args.state_dir.display()
        );
        // One signal stops both servers; so does the gRPC server stopping on its own.
        let stop = std::sync::Arc::new(tokio::sync::watch::channel(false).0);
        let signalled = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            shutdown_signal().await;
            signalled.send_replace(true);
        });
        let until_stopped = || {
            let mut stopped = stop.subscribe();
            async move {
                let _ = stopped.wait_for(|&s| s).await;
            }
        };
        let web = match web {
            Some((listener, web)) => {
                let scheme = if config.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                eprintln!("ltsweep web page at {scheme}://{}/", listener.local_addr()?);
                Some(tokio::spawn(web.serve(listener, until_stopped())))
            }
            None => None,
        };
        let served = opened
            .serve(listener, until_stopped())
            .await
            .context("the coordinator stopped");
        stop.send_replace(true);
        served?;
        if let Some(web) = web {
            web.await?.context("the web page stopped")?;
        }
        Ok(())
    })
}

/// Completes at the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
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
