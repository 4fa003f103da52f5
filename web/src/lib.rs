//! ltsweep's web page, served by the coordinator beside gRPC (`ltsweep coordinator --http`):
//! the sweeps, each sweep's jobs and workers, and Table 1, the Many/Medium/Few table, the
//! recall table and the figures of the results so far, updated live without a reload.
//!
//! The page reads the coordinator through its own [`SweepApi`], in-process: the same reads
//! `ltsweep status` and `ltsweep watch` make, and the live updates are the `WatchSweep`
//! stream relayed as server-sent events. The tables and figures come from
//! [`ltsweep_analysis::live_report`]. HTML, CSS and script are compiled into the binary.
//!
//! Who may see what is the coordinator's business: a request's token (an `Authorization:
//! Bearer` header) or session cookie (from the login form) makes a [`Caller`] with the token's
//! roles, and each endpoint needs the role of the RPC it stands for, from the same table gRPC
//! reads ([`ltsweep_proto::roles::RPC_ROLES`]). The page also refuses a `Host` it does not
//! serve (DNS rebinding), several credentials in one request, and, from one address, more
//! wrong tokens than `--auth-failures-per-minute`. See `docs/guide/security.md`.
//!
//! ```no_run
//! use ltsweep_coordinator::{Access, CoordinatorConfig, Opened};
//! use ltsweep_proto::token::Token;
//! use ltsweep_web::{Web, WebConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = CoordinatorConfig::new("state");
//! config.access = Access::shared(&Token::generate());
//! let opened = Opened::open(config.clone())?;
//! let web = Web::new(
//!     opened.sweep_api(),
//!     opened.auth_throttle(),
//!     WebConfig {
//!         access: config.access.clone(),
//!         tls: config.tls.clone(),
//!         hosts: vec!["sweeps.example.org".into()],
//!         limits: config.limits,
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

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use ltsweep_coordinator::{Access, AuthThrottle, Caller, Limits, SweepApi, TlsFiles};
use tracing::info;

/// The page's settings: the coordinator's tokens, TLS files and limits, so that the page asks
/// for what gRPC asks for, and the host names it answers to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebConfig {
    /// The coordinator's tokens; without any the page is open to whoever reaches it.
    pub access: Access,
    /// Serve HTTPS with these files (and mark the session cookie `Secure`, `__Host-`).
    pub tls: Option<TlsFiles>,
    /// Names the page answers to besides IP addresses and `localhost` (`--http-host`).
    pub hosts: Vec<String>,
    /// The header-read and idle timeouts, the wrong-token budget.
    pub limits: Limits,
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
    sessions: Arc<session::Sessions>,
    /// Served over TLS: the session cookie is `Secure`, same-origin checks expect `https`,
    /// and every answer carries HSTS.
    secure: bool,
    reports: Arc<report::ReportCache>,
}

/// The page, ready to serve.
pub struct Web {
    state: AppState,
    hosts: Vec<String>,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Web {
    /// Reads the TLS files, if any, so that a bad one is an error before anything listens.
    /// `throttle` counts wrong tokens by address, shared with the coordinator's gRPC.
    pub fn new(
        api: SweepApi,
        throttle: Arc<AuthThrottle>,
        config: WebConfig,
    ) -> Result<Web, WebError> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let state = AppState {
            api,
            access: Arc::new(config.access),
            throttle,
            sessions: Arc::new(session::Sessions::new()?),
            secure: tls.is_some(),
            reports: Arc::default(),
        };
        Ok(Web {
            state,
            hosts: config.hosts,
            limits: config.limits,
            tls,
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
        serve::serve(listener, router, self.tls, self.limits, shutdown).await?;
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

/// A call to the coordinator in-process on behalf of `caller`, whose streams it counts.
fn request_of<T>(caller: Caller, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(caller);
    request
}
