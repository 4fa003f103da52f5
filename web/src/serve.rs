//! The page's HTTP/1.1 server: each connection under the coordinator's connection deadlines
//! ([`GuardedIo`]), its TLS handshake and every request's headers within
//! `--header-read-timeout` (hyper's timer also closes a kept-alive connection that sends no
//! next request in that time), its buffers bounded.
//!
//! axum's own `serve` sets no header-read timeout, so a half-sent request would hold its
//! connection open for good; this loop is the same accept-and-spawn with those settings.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ltsweep_coordinator::{Deadlines, GuardedIo, Limits};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::debug;

/// The most bytes a connection buffers, each way: room for any request head the page needs,
/// and a bound on what a client that does not read leaves in memory.
const MAX_BUFFER_BYTES: usize = 64 << 10;

/// Accepts until `shutdown` completes, then waits for the open connections to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
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
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
            limits,
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
    limits: Limits,
    stopped: watch::Receiver<bool>,
) {
    let io = GuardedIo::new(
        tcp,
        Deadlines {
            first_request: None,
            idle: limits.idle_timeout,
        },
    );
    match tls {
        None => http(TokioIo::new(io), remote, router, limits, stopped).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) => http(TokioIo::new(tls), remote, router, limits, stopped).await,
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
    limits: Limits,
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
        .header_read_timeout(limits.header_read_timeout)
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
