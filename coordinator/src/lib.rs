//! ltsweep's coordinator: it expands sweeps into jobs, leases them to workers, and keeps every
//! result, durably.
//!
//! - [`scheduler`]: the pure state machine (sweeps, jobs, leases, workers; time passed in).
//! - [`store`]: its SQLite record, written before any call answers and read back on start.
//! - the gRPC services `ltsweep.v1.WorkerService` and `ltsweep.v1.SweepService`, with health,
//!   reflection, tokens by role ([`Access`](ltsweep_proto::server::Access)), optional TLS, and
//!   bounds on connections and what each holds ([`Limits`]), started by [`serve`];
//!   [`Opened::sweep_client`] is the typed client of the `SweepService` in this process (the
//!   web page's).
//!
//! ```no_run
//! use ltsweep_coordinator::{CoordinatorConfig, serve};
//! use ltsweep_proto::server::Access;
//! use ltsweep_proto::token::Token;
//!
//! # async fn run() -> Result<(), ltsweep_coordinator::CoordinatorError> {
//! let (workers, users) = (Token::generate(), Token::generate());
//! let mut config = CoordinatorConfig::new("state");
//! config.access = Access::by_role(Some(&workers), Some(&users), None)?;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:7070")
//!     .await
//!     .map_err(ltsweep_coordinator::CoordinatorError::Listener)?;
//! serve(config, listener, async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```

mod auth;
mod clock;
mod committer;
mod config;
mod descriptors;
mod disk;
mod error;
mod expiry;
mod limits;
pub mod scheduler;
mod service;
pub mod store;
mod stored_files;
mod streams;
mod wire;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use ltsweep_proto::pb;
use ltsweep_proto::pb::sweep_service_server::SweepServiceServer;
use ltsweep_proto::pb::worker_service_server::WorkerServiceServer;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tracing::{info, warn};

pub use config::{CoordinatorConfig, Durability};
pub use error::CoordinatorError;
pub use limits::{Limits, free_disk_bytes};

use ltsweep_proto::client::SweepApi;
use ltsweep_proto::server::{AuthThrottle, ConnectionCaps, Deadlines, GuardedIo, TlsFiles};
use service::{Coordinator, SweepHandlers, WorkerHandlers};

/// The largest message sent: a page of a sweep's status, a job result read back.
const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// The most header bytes a gRPC request may carry: a token and a few fields need far less.
const MAX_HEADER_BYTES: u32 = 16 << 10;

/// Runs the coordinator on `listener` until `shutdown` completes: [`Opened::open`] then
/// [`Opened::serve`].
pub async fn serve(
    config: CoordinatorConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CoordinatorError> {
    Opened::open(config)?.serve(listener, shutdown).await
}

/// A coordinator whose state is open and whose TLS files are read, ready to serve.
pub struct Opened {
    config: CoordinatorConfig,
    tls: Option<ServerTlsConfig>,
    coordinator: Arc<Coordinator>,
    throttle: Arc<AuthThrottle>,
    caps: Arc<ConnectionCaps>,
}

impl Opened {
    /// Opens (or creates) the state in `config.state_dir` and reads the TLS files, so that a
    /// bad state dir or TLS file is an error before anything listens.
    pub fn open(config: CoordinatorConfig) -> Result<Opened, CoordinatorError> {
        config.validate()?;
        let tls = config.tls.as_ref().map(tls_config).transpose()?;
        let coordinator = Coordinator::open(&config)?;
        let throttle = Arc::new(AuthThrottle::new(config.limits.auth_failures_per_minute));
        let caps = descriptors::connection_caps(&config.limits);
        Ok(Opened {
            config,
            tls,
            coordinator,
            throttle,
            caps,
        })
    }

    /// The typed client of this coordinator's `SweepService`, in-process (the web page's). No
    /// role is checked: the caller checks its own callers' and names each with
    /// [`SweepApi::as_caller`], by which streams are counted.
    pub fn sweep_client(&self) -> SweepApi {
        SweepApi::in_process(self.sweep_server())
    }

    /// The `SweepService` as gRPC and the in-process client serve it: users send specs and ids
    /// only, so no room for a 64 MiB spec in memory.
    fn sweep_server(&self) -> SweepServiceServer<SweepHandlers> {
        SweepServiceServer::new(SweepHandlers(Arc::clone(&self.coordinator)))
            .max_decoding_message_size(self.config.limits.sweep_message_bytes())
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The throttle of wrong tokens by client address, for the web page to share with gRPC.
    pub fn auth_throttle(&self) -> Arc<AuthThrottle> {
        Arc::clone(&self.throttle)
    }

    /// The caps on connections open at once, for the web page to share with gRPC: they share
    /// the process's file descriptors.
    pub fn connection_caps(&self) -> Arc<ConnectionCaps> {
        Arc::clone(&self.caps)
    }

    /// Serves on `listener` until `shutdown` completes. On shutdown, long polls and watch
    /// streams end at once; every answered call was committed.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), CoordinatorError> {
        let sweeps = self.sweep_server();
        let Opened {
            config,
            tls,
            coordinator,
            throttle,
            caps,
        } = self;
        let address = listener.local_addr().map_err(CoordinatorError::Listener)?;

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<WorkerServiceServer<WorkerHandlers>>()
            .await;
        health
            .set_serving::<SweepServiceServer<SweepHandlers>>()
            .await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| CoordinatorError::Internal(format!("reflection descriptors: {e}")))?;
        let workers = WorkerServiceServer::new(WorkerHandlers(Arc::clone(&coordinator)))
            .max_decoding_message_size(config.limits.worker_message_bytes());
        let gate = auth::GateLayer(Arc::new(auth::Gate {
            access: config.access.clone(),
            throttle,
        }));
        let limits = config.limits;

        let mut builder = Server::builder()
            // Dead clients are noticed even while their long poll or watch is idle.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .max_concurrent_streams(limits.max_streams_per_connection)
            .http2_max_header_list_size(MAX_HEADER_BYTES);
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| CoordinatorError::Config(format!("tls: {e}")))?;
        }
        let expiry = tokio::spawn(Arc::clone(&coordinator).expire_leases());
        let closing = Arc::clone(&coordinator);
        let signal = async move {
            shutdown.await;
            info!("coordinator shutting down");
            closing.close();
        };
        info!(
            %address,
            state_dir = %config.state_dir.display(),
            tls = config.tls.is_some(),
            tokens = ?config.access.names(),
            "coordinator listening"
        );
        if config.access.is_shared() && !address.ip().is_loopback() {
            warn!(
                %address,
                "one token holds every role (--token-file, LTSWEEP_TOKEN): a worker's copy of it can submit, cancel and delete sweeps; give --worker-token-file, --user-token-file and --viewer-token-file instead"
            );
        }
        let deadlines = Deadlines {
            first_request: Some(limits.header_read_timeout),
            idle: limits.idle_timeout,
        };
        // A connection past a cap is dropped (closed) as it is accepted, before TLS or HTTP/2.
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .try_filter_map(move |tcp| {
                let remote = tcp.peer_addr().ok().map(|a| a.ip());
                let admitted = caps
                    .admit(remote)
                    .map(|permit| GuardedIo::new(tcp, deadlines).holding(permit));
                futures::future::ready(Ok(admitted))
            });
        let served = builder
            .layer(gate)
            .add_service(health_service)
            .add_service(reflection)
            .add_service(workers)
            .add_service(sweeps)
            .serve_with_incoming_shutdown(incoming, signal)
            .await;
        coordinator.close();
        expiry.abort();
        Ok(served?)
    }
}

/// Reads the PEM files; an unreadable one is named.
fn tls_config(files: &TlsFiles) -> Result<ServerTlsConfig, CoordinatorError> {
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| {
            CoordinatorError::Config(format!(
                "cannot read the TLS {what} {}: {e}",
                path.display()
            ))
        })
    };
    let cert = read(&files.cert, "certificate")?;
    let key = read(&files.key, "key")?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
}
