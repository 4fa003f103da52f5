//! The page's HTTP/1.1 server: each connection under the deadlines gRPC's connections keep
//! ([`GuardedIo`]), its TLS handshake and every request's headers within
//! `--header-read-timeout` (hyper's timer also closes a kept-alive connection that sends no
//! next request in that time), its buffers bounded.
//!
//! axum's own `serve` sets no header-read timeout, so a half-sent request would hold its
//! connection open for good; this loop is the same accept-and-spawn with those settings.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ltsweep_proto::server::{Deadlines, GuardedIo};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::debug;

/// The most bytes a connection buffers, each way: room for any request head the page needs,
/// and a bound on what a client that does not read leaves in memory.
const MAX_BUFFER_BYTES: usize = 64 << 10;

/// How long a connection may take to send a request's headers, and stay silent.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) header_read: Duration,
    pub(crate) idle: Duration,
}

/// Accepts until `shutdown` completes, then waits for the open connections to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    timeouts: Timeouts,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait, then go on accepting.
                    debug!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            tcp,
            remote,
            router.clone(),
            tls.clone(),
            timeouts,
            stopped.clone(),
        ));
    }
    drop(listener);
    stop.send_replace(true);
    drop(stopped);
    // Every connection holds a receiver until it ends.
    stop.closed().await;
    Ok(())
}

async fn connection(
    tcp: tokio::net::TcpStream,
    remote: SocketAddr,
    router: Router,
    tls: Option<TlsAcceptor>,
    timeouts: Timeouts,
    stopped: watch::Receiver<bool>,
) {
    let io = GuardedIo::new(
        tcp,
        Deadlines {
            first_request: None,
            idle: timeouts.idle,
        },
    );
    match tls {
        None => http(TokioIo::new(io), remote, router, timeouts, stopped).await,
        Some(acceptor) => {
            match tokio::time::timeout(timeouts.header_read, acceptor.accept(io)).await {
                Ok(Ok(tls)) => http(TokioIo::new(tls), remote, router, timeouts, stopped).await,
                Ok(Err(err)) => debug!(%remote, error = %err, "TLS handshake failed"),
                Err(_) => debug!(%remote, "TLS handshake timed out (--header-read-timeout)"),
            }
        }
    }
}

async fn http<I>(
    io: I,
    remote: SocketAddr,
    router: Router,
    timeouts: Timeouts,
    mut stopped: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .max_buf_size(MAX_BUFFER_BYTES);
    let mut conn = pin!(builder.serve_connection(io, service));
    // The guard `wait_for` answers with is not `Send`: it must not live on.
    let stopping = async move {
        let _ = stopped.wait_for(|&stop| stop).await;
    };
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = stopping => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = ended {
        debug!(%remote, error = %err, "connection ended");
    }
}
