//! ltsweep's web page, served by the coordinator beside gRPC (`ltsweep coordinator --http`):
//! the sweeps, each sweep's jobs and workers, and Table 1, the Many/Medium/Few table, the
//! recall table and the figures of the results so far, updated live without a reload.
//!
//! The page reads the coordinator through its own [`SweepApi`], in-process: the same reads
//! `ltsweep status` and `ltsweep watch` make, and the live updates are the `WatchSweep`
//! stream relayed as server-sent events. The tables and figures come from
//! [`ltsweep_analysis::live_report`]. HTML, CSS and script are compiled into the binary.
//!
//! With a token, everything but the login form and the static assets asks for it: once, on
//! the login form (then kept in an `HttpOnly`, `SameSite=Strict` cookie), or as an
//! `Authorization: Bearer` header. The write actions (cancel, retry failed) also refuse a
//! cookie-carrying request that does not come from the page's own origin.
//!
//! ```no_run
//! use ltsweep_coordinator::{CoordinatorConfig, Opened};
//! use ltsweep_web::{Web, WebConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = CoordinatorConfig::new("state");
//! config.token = Some("s3cret".into());
//! let opened = Opened::open(config.clone())?;
//! let web = Web::new(
//!     opened.sweep_api(),
//!     WebConfig { token: config.token.clone(), tls: config.tls.clone() },
//! )?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! web.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(())
//! # }
//! ```

mod auth;
mod events;
mod html;
mod pages;
mod report;
mod tls;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use ltsweep_coordinator::{SweepApi, TlsFiles};
use tracing::info;

/// The page's settings: the coordinator's token and TLS files, so that the page asks for what
/// gRPC asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebConfig {
    /// The coordinator's shared token; without one the page is open to whoever reaches it.
    pub token: Option<String>,
    /// Serve HTTPS with these files (and mark the login cookie `Secure`).
    pub tls: Option<TlsFiles>,
}

/// What can stop the page from serving.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A TLS file that cannot be read or used.
    #[error("{0}")]
    Tls(String),
    #[error("the web page's listener: {0}")]
    Io(#[from] std::io::Error),
}

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    api: SweepApi,
    token: Option<Arc<str>>,
    /// Served over TLS: the login cookie is `Secure` and same-origin checks expect `https`.
    secure: bool,
    reports: Arc<report::ReportCache>,
}

/// The page, ready to serve.
pub struct Web {
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Web {
    /// Reads the TLS files, if any, so that a bad one is an error before anything listens.
    pub fn new(api: SweepApi, config: WebConfig) -> Result<Web, WebError> {
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let state = AppState {
            api,
            token: config.token.map(Into::into),
            secure: tls.is_some(),
            reports: Arc::default(),
        };
        Ok(Web {
            router: router(state),
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
        match self.tls {
            Some(acceptor) => {
                axum::serve(tls::TlsListener::new(listener, acceptor), self.router)
                    .with_graceful_shutdown(shutdown)
                    .await?
            }
            None => {
                axum::serve(listener, self.router)
                    .with_graceful_shutdown(shutdown)
                    .await?
            }
        }
        Ok(())
    }
}

fn router(state: AppState) -> Router {
    let pages = Router::new()
        .route("/", get(pages::sweeps_page))
        .route("/sweeps/{sweep}", get(pages::sweep_page))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token_or_login,
        ));
    let api = Router::new()
        .route("/api/sweeps", get(pages::sweeps_fragment))
        .route("/api/workers", get(pages::workers_fragment))
        .route("/api/sweeps/{sweep}/events", get(events::sweep_events))
        .route("/api/sweeps/{sweep}/report", get(report::report_fragment))
        .route("/api/sweeps/{sweep}/cancel", post(pages::cancel))
        .route(
            "/api/sweeps/{sweep}/retry-failed",
            post(pages::retry_failed),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .merge(pages)
        .merge(api)
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/assets/style.css", get(pages::style))
        .route("/assets/app.js", get(pages::script))
        .layer(axum::middleware::from_fn(pages::security_headers))
        .with_state(state)
}
