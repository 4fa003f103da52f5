//! ltsweep's web page, served by the coordinator beside gRPC (`ltsweep coordinator --http`):
//! the sweeps, each sweep's jobs and workers, and Table 1, the Many/Medium/Few table, the
//! recall table and the figures of the results so far, updated live without a reload.
//!
//! The page is a client of the coordinator like the CLI: it calls the user's typed client,
//! [`SweepApi`], in domain types, over the coordinator's service in the same process (the
//! coordinator hands it one: `Opened::sweep_client`), making the same reads `ltsweep status`
//! and `ltsweep watch` make; the live updates are the `WatchSweep` stream relayed as
//! server-sent events. A failed call is a [`RemoteError`](ltsweep_proto::RemoteError), whose
//! HTTP status comes from the contract's one error table, as its gRPC code does. The tables and
//! figures come from [`ltsweep_analysis::live_report`]. HTML, CSS and script are compiled into
//! the binary.
//!
//! Who may see what is the coordinator's rule, checked here with the same pieces its gRPC gate
//! uses ([`ltsweep_proto::server`]): a request's token (an `Authorization: Bearer` header) or
//! session cookie (from the login form) makes a [`Caller`] with the token's roles, and each
//! endpoint needs the role of the RPC it stands for, from the same table gRPC reads
//! ([`ltsweep_proto::roles::RPC_ROLES`]); each call is made as that caller. The page also
//! refuses a `Host` it does not serve (DNS rebinding), several credentials in one request,
//! from one address more wrong tokens than `--auth-failures-per-minute` (never a right one) and
//! more logins than `--logins-per-minute`; one token's logins never end another token's
//! sessions. See `docs/guide/security.md`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use ltsweep_proto::client::SweepApi;
//! use ltsweep_proto::server::{Access, AuthThrottle, ConnectionCaps};
//! use ltsweep_proto::token::Token;
//! use ltsweep_web::{Web, WebConfig};
//!
//! # async fn run(sweeps: SweepApi) -> Result<(), Box<dyn std::error::Error>> {
//! // `sweeps`: the coordinator's in-process client (`Opened::sweep_client`).
//! let web = Web::new(
//!     sweeps,
//!     Arc::new(AuthThrottle::new(10)),
//!     ConnectionCaps::new(4096, 1024),
//!     WebConfig {
//!         access: Access::shared(&Token::generate()),
//!         tls: None,
//!         hosts: vec!["sweeps.example.org".into()],
//!         header_read_timeout: Duration::from_secs(10),
//!         idle_timeout: Duration::from_secs(120),
//!         logins_per_minute: 10,
//!         max_sessions_per_credential: 2_500,
//!     },
//! )?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! web.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

mod auth;
mod events;
mod host;
mod html;
mod pages;
mod report;
mod respond;
mod serve;
mod session;
mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use ltsweep_proto::client::SweepApi;
use ltsweep_proto::server::{Access, AddressRate, AuthThrottle, Caller, ConnectionCaps, TlsFiles};
use tracing::info;

/// The page's settings: the coordinator's tokens, TLS files and connection deadlines, so that
/// the page asks for what gRPC asks for, and the host names it answers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebConfig {
    /// The coordinator's tokens; without any the page is open to whoever reaches it.
    pub access: Access,
    /// Serve HTTPS with these files (and mark the session cookie `Secure`, `__Host-`).
    pub tls: Option<TlsFiles>,
    /// Names the page answers to besides IP addresses and `localhost` (`--http-host`).
    pub hosts: Vec<String>,
    /// Every request's headers, then its whole body, and a TLS handshake must each arrive
    /// within this (`--header-read-timeout`).
    pub header_read_timeout: Duration,
    /// A connection without a request for this long is closed (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// Successful logins one client address may make a minute (`--logins-per-minute`).
    pub logins_per_minute: u32,
    /// Live sessions one token may hold; its oldest ends when it logs in past it
    /// (`--max-sessions-per-credential`).
    pub max_sessions_per_credential: usize,
}

/// What can stop the page from serving.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A TLS file that cannot be read or used.
    #[error("{0}")]
    Tls(String),
    /// No random source for the session key.
    #[error("the session key: {0}")]
    Random(String),
    #[error("the web page's listener: {0}")]
    Io(#[from] std::io::Error),
}

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    api: SweepApi,
    access: Arc<Access>,
    throttle: Arc<AuthThrottle>,
    logins: Arc<AddressRate>,
    sessions: Arc<session::Sessions>,
    /// Served over TLS: the session cookie is `Secure`, same-origin checks expect `https`,
    /// and every answer carries HSTS.
    secure: bool,
    reports: Arc<report::ReportCache>,
}

impl AppState {
    /// The coordinator's client, calling as `caller`: the coordinator counts the caller's
    /// streams by it.
    fn api(&self, caller: Caller) -> SweepApi {
        self.api.as_caller(caller)
    }
}

/// The page, ready to serve.
pub struct Web {
    state: AppState,
    hosts: Vec<String>,
    timeouts: serve::Timeouts,
    tls: Option<tokio_rustls::TlsAcceptor>,
    caps: Arc<ConnectionCaps>,
}

impl Web {
    /// Reads the TLS files, if any, so that a bad one is an error before anything listens.
    /// `throttle` counts wrong tokens by address and `caps` the connections open, both shared
    /// with the coordinator's gRPC.
    pub fn new(
        api: SweepApi,
        throttle: Arc<AuthThrottle>,
        caps: Arc<ConnectionCaps>,
        config: WebConfig,
    ) -> Result<Web, WebError> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let state = AppState {
            api,
            access: Arc::new(config.access),
            throttle,
            logins: Arc::new(AddressRate::new(config.logins_per_minute)),
            sessions: Arc::new(session::Sessions::new(config.max_sessions_per_credential)?),
            secure: tls.is_some(),
            reports: Arc::default(),
        };
        Ok(Web {
            state,
            hosts: config.hosts,
            timeouts: serve::Timeouts {
                header_read: config.header_read_timeout,
                idle: config.idle_timeout,
            },
            tls,
            caps,
        })
    }

    /// Serves on `listener` until `shutdown` completes; open event streams end when the
    /// coordinator closes its watch streams.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), WebError> {
        let address = listener.local_addr()?;
        info!(%address, tls = self.tls.is_some(), "web page listening");
        let hosts = host::Hosts::new(address, &self.hosts);
        let router = router(self.state, hosts);
        serve::serve(
            listener,
            router,
            self.tls,
            self.caps,
            self.timeouts,
            shutdown,
        )
        .await?;
        Ok(())
    }
}

/// The routes, each behind the role of the RPC it stands for; then, around them all, the
/// caller found, the `Host` checked and the security headers set.
fn router(state: AppState, hosts: host::Hosts) -> Router {
    let guard = |rpc: &'static str, page: bool| {
        axum::middleware::from_fn_with_state(auth::Guard::of(rpc, page), auth::guard)
    };
    Router::new()
        .route(
            "/",
            get(pages::sweeps_page).route_layer(guard("ListSweeps", true)),
        )
        .route(
            "/sweeps/{sweep}",
            get(pages::sweep_page).route_layer(guard("GetSweep", true)),
        )
        .route(
            "/api/sweeps",
            get(pages::sweeps_fragment).route_layer(guard("ListSweeps", false)),
        )
        .route(
            "/api/workers",
            get(pages::workers_fragment).route_layer(guard("ListWorkers", false)),
        )
        .route(
            "/api/sweeps/{sweep}/events",
            get(events::sweep_events).route_layer(guard("WatchSweep", false)),
        )
        .route(
            "/api/sweeps/{sweep}/report",
            get(report::report_fragment).route_layer(guard("GetResults", false)),
        )
        .route(
            "/api/sweeps/{sweep}/cancel",
            post(pages::cancel).route_layer(guard("CancelSweep", false)),
        )
        .route(
            "/api/sweeps/{sweep}/retry-failed",
            post(pages::retry_failed).route_layer(guard("RetryFailed", false)),
        )
        .route(
            "/login",
            get(auth::login_page)
                .post(auth::login)
                // One token fits in far less; a form of guesses does not get read.
                .layer(DefaultBodyLimit::max(auth::LOGIN_FORM_BYTES)),
        )
        .route("/logout", post(auth::logout))
        .route("/assets/style.css", get(pages::style))
        .route("/assets/app.js", get(pages::script))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::identify,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(hosts),
            host::check_host,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            pages::security_headers,
        ))
        .with_state(state)
}
