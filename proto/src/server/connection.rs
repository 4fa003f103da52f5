//! Deadlines on every connection the coordinator's servers accept, below TLS and HTTP, counted
//! in requests rather than bytes, so that bytes which are not requests (HTTP/2 pings, a TLS
//! record, a trickle of a preface) hold nothing open:
//!
//! - a connection must bring an *authenticated* request (one the role gate let through,
//!   [`ConnectionInfo::authenticated`]) within the header-read timeout, or it is closed: calls
//!   to the open health and reflection services, refused calls and half requests do not keep
//!   a connection;
//! - a connection with no request in flight, and none started or ended for the idle timeout,
//!   is closed. A request in flight (a long poll, a `WatchSweep`, the page's live events) is
//!   not idle, however quiet; its stream is bounded by the stream caps instead;
//! - a connection whose peer does not take what it is sent (a write waiting) for the idle
//!   timeout is closed, in flight or not.
//!
//! The web page's HTTP/1.1 server leaves the first deadline to hyper's own header-read timeout,
//! which also covers every later request on a kept-alive connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use super::caps::ConnectionPermit;

/// Which deadlines a connection keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// An authenticated request must have arrived this long after the connection opened.
    pub first_request: Option<Duration>,
    /// Closed after this long without a request in flight, started or ended.
    pub idle: Duration,
}

/// What the requests of one connection have done, shared by the connection and its requests.
#[derive(Debug)]
struct Requests {
    opened: Instant,
    authenticated: AtomicBool,
    in_flight: AtomicUsize,
    /// When a request last started or ended, in milliseconds after `opened`.
    last_ms: AtomicU64,
}

impl Requests {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }
}

/// What a request learns of its connection: the client's address, and a way to say that an
/// authenticated request arrived and how long each request is in flight.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub remote: Option<SocketAddr>,
    requests: Arc<Requests>,
}

impl ConnectionInfo {
    /// A request passed the role gate: lifts the first-request deadline.
    pub fn authenticated(&self) {
        self.requests.authenticated.store(true, Ordering::Relaxed);
    }

    /// A request starts: the connection is not idle until the guard (held until the
    /// response's body has ended) is dropped.
    pub fn request_started(&self) -> RequestGuard {
        self.requests.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.touch();
        RequestGuard {
            requests: Arc::clone(&self.requests),
        }
    }
}

/// One request in flight on a connection; see [`ConnectionInfo::request_started`].
#[derive(Debug)]
pub struct RequestGuard {
    requests: Arc<Requests>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // The end is recorded before the count falls, so a connection seen with nothing in
        // flight also sees when its last request ended.
        self.requests.touch();
        self.requests.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until the body has ended (or is
/// dropped): a stream is a request for as long as it runs.
#[derive(Debug)]
pub struct InFlight<B> {
    body: B,
    _request: Option<RequestGuard>,
}

impl<B> InFlight<B> {
    pub fn new(body: B, request: Option<RequestGuard>) -> InFlight<B> {
        InFlight {
            body,
            _request: request,
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for InFlight<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A TCP connection with [`Deadlines`]: past one, reads and writes fail with `TimedOut` and
/// the server drops the connection. It holds its place under the connection caps until then.
pub struct GuardedIo {
    inner: TcpStream,
    info: ConnectionInfo,
    deadlines: Deadlines,
    /// Since when a write has waited for the peer to read, if one waits.
    write_blocked: Option<Instant>,
    /// Never later than the real deadline: when it fires, the real one is worked out again
    /// (requests move it later), so a busy connection never resets a timer per byte.
    timer: Pin<Box<Sleep>>,
    _permit: Option<ConnectionPermit>,
}

impl GuardedIo {
    pub fn new(inner: TcpStream, deadlines: Deadlines) -> GuardedIo {
        let now = Instant::now();
        let remote = inner.peer_addr().ok();
        let mut io = GuardedIo {
            inner,
            info: ConnectionInfo {
                remote,
                requests: Arc::new(Requests {
                    opened: now,
                    authenticated: AtomicBool::new(false),
                    in_flight: AtomicUsize::new(0),
                    last_ms: AtomicU64::new(0),
                }),
            },
            deadlines,
            write_blocked: None,
            timer: Box::pin(tokio::time::sleep_until(now)),
            _permit: None,
        };
        let deadline = io.deadline().unwrap_or(now + deadlines.idle);
        io.timer.as_mut().reset(deadline);
        io
    }

    /// The same connection, holding its place under the caps until it closes.
    pub fn holding(mut self, permit: ConnectionPermit) -> GuardedIo {
        self._permit = Some(permit);
        self
    }

    /// What its requests are told of it (for a server that does not use tonic's
    /// `Connected`).
    pub fn info(&self) -> ConnectionInfo {
        self.info.clone()
    }

    fn first_request_deadline(&self) -> Option<Instant> {
        let requests = &self.info.requests;
        match self.deadlines.first_request {
            Some(limit) if !requests.authenticated.load(Ordering::Relaxed) => {
                Some(requests.opened + limit)
            }
            _ => None,
        }
    }

    /// When the connection is to be closed as things stand; `None` while nothing is due (a
    /// request in flight, its writes taken).
    fn deadline(&self) -> Option<Instant> {
        let requests = &self.info.requests;
        let idle = (requests.in_flight.load(Ordering::Relaxed) == 0).then(|| {
            requests.opened
                + Duration::from_millis(requests.last_ms.load(Ordering::Relaxed))
                + self.deadlines.idle
        });
        let stalled = self.write_blocked.map(|since| since + self.deadlines.idle);
        [self.first_request_deadline(), idle, stalled]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fails once a deadline has passed; otherwise makes sure the task is woken when it may.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            let now = Instant::now();
            match self.deadline() {
                Some(deadline) if now >= deadline => {
                    let why = if self.first_request_deadline().is_some_and(|d| now >= d) {
                        "no authenticated request within the header-read timeout (--header-read-timeout)"
                    } else if self
                        .write_blocked
                        .is_some_and(|since| now >= since + self.deadlines.idle)
                    {
                        "the peer took nothing it was sent for the idle timeout (--idle-timeout)"
                    } else {
                        "no request for the idle timeout (--idle-timeout)"
                    };
                    return Err(io::Error::new(io::ErrorKind::TimedOut, why));
                }
                Some(deadline) if self.timer.deadline() != deadline => {
                    self.timer.as_mut().reset(deadline);
                }
                Some(_) => {}
                // A request in flight: look again an idle timeout from now (it may have
                // ended by then without a byte moving here).
                None if self.timer.deadline() <= now => {
                    self.timer.as_mut().reset(now + self.deadlines.idle);
                }
                None => {}
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
        }
    }

    /// Notes whether a write waits for the peer to read.
    fn wrote<T>(&mut self, written: &Poll<io::Result<T>>) {
        if written.is_pending() {
            self.write_blocked.get_or_insert_with(Instant::now);
        } else {
            self.write_blocked = None;
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        this.wrote(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if let Err(e) = this.check(cx) {
            return Poll::Ready(Err(e));
        }
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for GuardedIo {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        self.info.clone()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn pair(deadlines: Deadlines) -> (GuardedIo, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (
            GuardedIo::new(accepted.unwrap().0, deadlines),
            client.unwrap(),
        )
    }

    #[tokio::test]
    async fn bytes_without_an_authenticated_request_are_cut_off_at_the_header_deadline() {
        let deadlines = Deadlines {
            first_request: Some(Duration::from_secs(1)),
            idle: Duration::from_secs(600),
        };
        let (mut server, mut client) = pair(deadlines).await;
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(server.read(&mut buf).await.unwrap(), 16);
        // A request that was no authenticated one (a health check) lifts nothing either.
        drop(server.info().request_started());
        let read = tokio::time::timeout(Duration::from_secs(120), server.read(&mut buf)).await;
        let err = read
            .expect("cut off well before the idle timeout")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("--header-read-timeout"), "{err}");
    }

    #[tokio::test]
    async fn only_requests_set_the_idle_deadline_and_one_in_flight_is_never_idle() {
        let deadlines = Deadlines {
            first_request: Some(Duration::from_secs(5)),
            idle: Duration::from_secs(60),
        };
        let (server, _client) = pair(deadlines).await;
        let requests = &server.info.requests;
        let opened = requests.opened;
        assert_eq!(server.deadline(), Some(opened + Duration::from_secs(5)));
        server.info().authenticated();
        assert_eq!(server.deadline(), Some(opened + Duration::from_secs(60)));
        // The last request ended 40 s after the connection opened.
        requests.last_ms.store(40_000, Ordering::Relaxed);
        assert_eq!(server.deadline(), Some(opened + Duration::from_secs(100)));
        let stream = server.info().request_started();
        assert_eq!(server.deadline(), None, "a request in flight is not idle");
        drop(stream);
        assert_eq!(server.deadline(), Some(opened + Duration::from_secs(100)));
        let http1 = Deadlines {
            first_request: None,
            ..deadlines
        };
        let (server, _client) = pair(http1).await;
        let opened = server.info.requests.opened;
        assert_eq!(server.deadline(), Some(opened + Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn bytes_that_are_not_requests_do_not_keep_a_connection() {
        let deadlines = Deadlines {
            first_request: None,
            idle: Duration::from_secs(2),
        };
        let (mut server, mut client) = pair(deadlines).await;
        // A byte a second (pings, say) for longer than the idle timeout.
        let trickle = tokio::spawn(async move {
            for _ in 0..120 {
                if client.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(100), async {
            loop {
                if let Err(err) = server.read(&mut buf).await {
                    return err;
                }
            }
        })
        .await
        .expect("closed at the idle timeout, whatever bytes arrive");
        assert!(closed.to_string().contains("--idle-timeout"), "{closed}");
        trickle.abort();
    }
}
