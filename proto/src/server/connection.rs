//! Deadlines on every connection the coordinator's servers accept, below TLS and HTTP:
//!
//! - a connection must bring its first request within the header-read timeout (TLS handshake
//!   and HTTP/2 preface included), or it is closed: a client that opens connections and sends
//!   half a request holds nothing for long;
//! - a connection on which no byte moves either way for the idle timeout is closed. A live
//!   gRPC connection always moves bytes (HTTP/2 pings every 30 s), a live event stream too
//!   (a comment every 15 s); one whose peer stopped reading with full buffers does not.
//!
//! The web page's HTTP/1.1 server leaves the first deadline to hyper's own header-read timeout,
//! which also covers every later request on a kept-alive connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Which deadlines a connection keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// The first request must have arrived this long after the connection opened.
    pub first_request: Option<Duration>,
    /// Closed after this long without a byte in either direction.
    pub idle: Duration,
}

/// What a request learns of its connection: the client's address, and a way to say that a
/// request arrived (which lifts the first-request deadline).
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub remote: Option<SocketAddr>,
    request_arrived: Arc<AtomicBool>,
}

impl ConnectionInfo {
    pub fn request_arrived(&self) {
        self.request_arrived.store(true, Ordering::Relaxed);
    }
}

/// A TCP connection with [`Deadlines`]: past one, reads and writes fail with `TimedOut` and
/// the server drops the connection.
pub struct GuardedIo {
    inner: TcpStream,
    info: ConnectionInfo,
    deadlines: Deadlines,
    opened: Instant,
    last_activity: Instant,
    /// Never later than the real deadline: when it fires, the real one is worked out again
    /// (activity moves it later), so a busy connection never resets a timer per byte.
    timer: Pin<Box<Sleep>>,
}

impl GuardedIo {
    pub fn new(inner: TcpStream, deadlines: Deadlines) -> GuardedIo {
        let now = Instant::now();
        let remote = inner.peer_addr().ok();
        let mut io = GuardedIo {
            inner,
            info: ConnectionInfo {
                remote,
                request_arrived: Arc::new(AtomicBool::new(false)),
            },
            deadlines,
            opened: now,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now)),
        };
        let deadline = io.deadline();
        io.timer.as_mut().reset(deadline);
        io
    }

    fn deadline(&self) -> Instant {
        let idle = self.last_activity + self.deadlines.idle;
        match self.deadlines.first_request {
            Some(limit) if !self.info.request_arrived.load(Ordering::Relaxed) => {
                idle.min(self.opened + limit)
            }
            _ => idle,
        }
    }

    /// Fails once a deadline has passed; otherwise makes sure the task is woken when it may.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            let deadline = self.deadline();
            if Instant::now() >= deadline {
                let why = if self.info.request_arrived.load(Ordering::Relaxed)
                    || self.deadlines.first_request.is_none()
                {
                    "no byte moved for the idle timeout (--idle-timeout)"
                } else {
                    "no request within the header-read timeout (--header-read-timeout)"
                };
                return Err(io::Error::new(io::ErrorKind::TimedOut, why));
            }
            if self.timer.deadline() != deadline {
                self.timer.as_mut().reset(deadline);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
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
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.last_activity = Instant::now();
        }
        read
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
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.last_activity = Instant::now();
        }
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
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.last_activity = Instant::now();
        }
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
    async fn half_a_first_request_is_cut_off_at_the_header_deadline() {
        let deadlines = Deadlines {
            first_request: Some(Duration::from_secs(1)),
            idle: Duration::from_secs(600),
        };
        let (mut server, mut client) = pair(deadlines).await;
        client.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(server.read(&mut buf).await.unwrap(), 16);
        // Half a preface, then nothing: the next read fails, long before the idle timeout.
        let read = tokio::time::timeout(Duration::from_secs(120), server.read(&mut buf)).await;
        let err = read
            .expect("cut off well before the idle timeout")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("--header-read-timeout"), "{err}");
    }

    #[tokio::test]
    async fn after_the_first_request_only_silence_sets_the_deadline() {
        let deadlines = Deadlines {
            first_request: Some(Duration::from_secs(5)),
            idle: Duration::from_secs(60),
        };
        let (mut server, _client) = pair(deadlines).await;
        let opened = server.opened;
        assert_eq!(server.deadline(), opened + Duration::from_secs(5));
        server.last_activity = opened + Duration::from_secs(40);
        assert_eq!(server.deadline(), opened + Duration::from_secs(5));
        server.info.request_arrived();
        assert_eq!(server.deadline(), opened + Duration::from_secs(100));
        let http1 = Deadlines {
            first_request: None,
            ..deadlines
        };
        let (server, _client) = pair(http1).await;
        assert_eq!(server.deadline(), server.opened + Duration::from_secs(60));
    }
}
