//! The page's HTTP/1.1 server: each connection under the caps and deadlines gRPC's
//! connections keep ([`ConnectionCaps`], [`GuardedIo`]), its TLS handshake, every request's
//! headers, and then that request's whole body, each within `--header-read-timeout` (hyper's
//! timer also closes a kept-alive connection that sends no next request in that time), its
//! buffers bounded.
//!
//! axum's own `serve` sets no header-read timeout and no body timeout, so a half-sent request
//! or a body sent a byte at a time would hold its connection open for good; this loop is the
//! same accept-and-spawn with those settings.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use ltsweep_proto::server::{
    ConnectionCaps, ConnectionInfo, ConnectionPermit, Deadlines, GuardedIo, InFlight,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Sleep;
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
    caps: Arc<ConnectionCaps>,
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
        // Past a cap the connection is dropped (closed) at once, before TLS or HTTP.
        let Some(permit) = caps.admit(Some(remote.ip())) else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(
            tcp,
            permit,
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
    permit: ConnectionPermit,
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
    )
    .holding(permit);
    let info = io.info();
    match tls {
        None => http(TokioIo::new(io), info, remote, router, timeouts, stopped).await,
        Some(acceptor) => {
            match tokio::time::timeout(timeouts.header_read, acceptor.accept(io)).await {
                Ok(Ok(tls)) => {
                    http(TokioIo::new(tls), info, remote, router, timeouts, stopped).await;
                }
                Ok(Err(err)) => debug!(%remote, error = %err, "TLS handshake failed"),
                Err(_) => debug!(%remote, "TLS handshake timed out (--header-read-timeout)"),
            }
        }
    }
}

async fn http<I>(
    io: I,
    info: ConnectionInfo,
    remote: SocketAddr,
    router: Router,
    timeouts: Timeouts,
    mut stopped: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        // In flight, for the idle timeout, until the answer's body ends (a live event
        // stream: until it closes).
        let in_flight = info.request_started();
        request.extensions_mut().insert(ConnectInfo(remote));
        let request = request
            .map(|body| axum::body::Body::new(BodyDeadline::new(body, timeouts.header_read)));
        let answer = router.clone().oneshot(request);
        async move {
            let answer = answer.await?;
            Ok::<_, std::convert::Infallible>(
                answer.map(|body| axum::body::Body::new(InFlight::new(body, Some(in_flight)))),
            )
        }
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

/// A request's body, which must have arrived whole within `limit` of its headers: past it,
/// reading fails, the handler answers 400 and hyper closes the connection rather than read
/// the rest.
struct BodyDeadline {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
    limit: Duration,
}

impl BodyDeadline {
    fn new(body: Incoming, limit: Duration) -> BodyDeadline {
        BodyDeadline {
            body,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

/// A body that had not arrived whole by its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request's body did not arrive within {0:?} of its headers (--header-read-timeout)")]
struct SlowBody(Duration);

impl hyper::body::Body for BodyDeadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            debug!("a request's body was cut off (--header-read-timeout)");
            return Poll::Ready(Some(Err(SlowBody(self.limit).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        hyper::body::Body::is_end_stream(&self.body)
    }

    fn size_hint(&self) -> SizeHint {
        hyper::body::Body::size_hint(&self.body)
    }
}
