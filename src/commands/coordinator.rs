//! `ltsweep coordinator --listen ADDR --state-dir DIR`.

use anyhow::Context;
use ltsweep_coordinator::{CoordinatorConfig, Durability, Opened, TlsFiles};

use crate::cli::{CoordinatorArgs, DurabilityArg};
use crate::exit::BadInput;

pub fn run(args: &CoordinatorArgs) -> anyhow::Result<()> {
    let token = super::client::token(args.token_file.as_deref())?;
    if token.is_none() {
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
