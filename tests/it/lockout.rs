//! Strangers cannot lock anyone out of a real coordinator process: wrong tokens from a worker's
//! own address leave its right token and the worker working, and a worker refused for a limit
//! waits for room rather than exit; connections past the caps are closed as they are accepted
//! while a worker's call goes through; connections that only ever ask the open health service,
//! and a login form's body sent a byte at a time, are closed at the header-read timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use ltsweep_domain::JobState;
use ltsweep_proto::client::{Connection, Which};
use ltsweep_proto::pb;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http;

use crate::cluster_support::{Process, TOKEN, TestCluster, listening_address};
use crate::harness::register;
use crate::support::{ltsweep, trainer, wait_until};
use crate::web::Served;

/// A token of the right length that is none of the coordinator's.
const WRONG: &str = "wrong-token-0123456789abcdef012345678";

/// Two jobs of one epoch on tiny synthetic data with a depth-8 ResNet.
const TINY_SWEEP: &str = r#"
name = "lockout"
seeds = [0, 1]
[dataset]
kind = "synthetic"
classes = 4
train_per_class = 40
test_per_class = 10
image_size = 8
noise = 2.0
imbalance_ratio = 5
head_min_count = 20
[model]
depth = 8
[train]
epochs = 1
batch_size = 16
lr = 0.05
warmup_epochs = 0
lr_decay_epochs = []
pretrain_ce_epochs = 0
[losses]
plans = [{ comp = "none", pc = "none" }]
"#;

/// A coordinator process with the test token and `extra` flags, and its gRPC address.
fn coordinator(state: &std::path::Path, extra: &[&str]) -> (Process, SocketAddr) {
    coordinator_with(state, extra, |_| {})
}

/// As [`coordinator`], with the command configured further by `configure`.
fn coordinator_with(
    state: &std::path::Path,
    extra: &[&str],
    configure: impl FnOnce(&mut std::process::Command),
) -> (Process, SocketAddr) {
    let mut command = ltsweep();
    command
        .args(["coordinator", "--listen", "127.0.0.1:0"])
        .arg("--state-dir")
        .arg(state)
        .args(extra)
        .env("LTSWEEP_TOKEN", TOKEN)
        .env("RUST_LOG", "info");
    configure(&mut command);
    let process = Process::spawn(command);
    let address = listening_address(&process).parse().unwrap();
    (process, address)
}

/// Whether the peer has closed `stream`: a read answers end of file or an error, rather than
/// waiting out `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

register!(wrong_tokens_from_a_workers_address_lock_out_neither_its_token_nor_the_worker);
fn wrong_tokens_from_a_workers_address_lock_out_neither_its_token_nor_the_worker() {
    let cluster = TestCluster::start(1);
    cluster.worker_id(0);
    let url = cluster.url();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (wrong, right) = {
        let _guard = runtime.enter();
        (
            Connection::new(&url, Some(WRONG), None).unwrap(),
            Connection::new(&url, Some(TOKEN), None).unwrap(),
        )
    };
    let list = |connection: &Connection| {
        runtime.block_on(
            connection
                .sweeps()
                .list_sweeps(pb::ListSweepsRequest::default()),
        )
    };

    // Ten wrong tokens from 127.0.0.1, the worker's address, then more: past the budget the
    // wrong ones are throttled, naming the flag.
    for _ in 0..10 {
        assert_eq!(list(&wrong).unwrap_err().code(), Code::Unauthenticated);
    }
    let throttled = list(&wrong).unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted, "{throttled:?}");
    assert!(
        throttled.message().contains("--auth-failures-per-minute"),
        "{}",
        throttled.message()
    );
    // The right token from the same address is accepted.
    list(&right).expect("the right token after ten wrong ones");

    // Wrong tokens keep coming from the worker's address while it takes and trains a sweep.
    let stop = Arc::new(AtomicBool::new(false));
    let guesses = Arc::new(AtomicUsize::new(0));
    let guesser = {
        let (stop, guesses, url) = (Arc::clone(&stop), Arc::clone(&guesses), url.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let wrong = {
                let _guard = runtime.enter();
                Connection::new(&url, Some(WRONG), None).unwrap()
            };
            while !stop.load(Ordering::SeqCst) {
                let answer =
                    runtime.block_on(wrong.sweeps().list_sweeps(pb::ListSweepsRequest::default()));
                assert!(answer.is_err(), "a wrong token was accepted");
                guesses.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // The bucket is full well before the sweep exists, and stays full while it runs.
    wait_until("wrong tokens to be sent", Duration::from_secs(60), || {
        guesses.load(Ordering::SeqCst) >= 20
    });
    let sweep = cluster.submit(&cluster.write_spec(TINY_SWEEP));
    let status = cluster.wait_for_state(
        &sweep,
        "the sweep to finish under a burst of wrong tokens",
        Duration::from_secs(180),
        |status| status["succeeded"] == 2,
    );
    stop.store(true, Ordering::SeqCst);
    guesser.join().expect("the guesser ran");
    assert_eq!(status["total"], 2, "{status}");
    let worker = &cluster.workers[0];
    assert!(
        worker.line_containing("too many wrong tokens").is_none()
            && worker.line_containing("refused this worker").is_none(),
        "the worker was refused: {:?}",
        worker.lines.lock().unwrap()
    );
    let mut cluster = cluster;
    assert!(
        matches!(cluster.workers[0].child.try_wait(), Ok(None)),
        "the worker exited"
    );
    drop(runtime);
}

fn register_request(host: &str) -> pb::RegisterWorkerRequest {
    pb::RegisterWorkerRequest {
        host: host.to_owned(),
        devices: vec![pb::Device {
            name: "cpu".into(),
            slots: 1,
        }],
        protocol_version: ltsweep_proto::PROTOCOL_VERSION,
        version: "lockout".into(),
        slurm: None,
    }
}

register!(a_worker_refused_for_a_limit_waits_for_room_and_trains);
fn a_worker_refused_for_a_limit_waits_for_room_and_trains() {
    let dir = tempfile::tempdir().unwrap();
    let (_coordinator, address) = coordinator(
        &dir.path().join("state"),
        &[
            "--max-workers",
            "1",
            "--heartbeat",
            "1s",
            "--poll-timeout",
            "1s",
        ],
    );
    let url = format!("http://{address}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connection = {
        let _guard = runtime.enter();
        Connection::new(&url, Some(TOKEN), None).unwrap()
    };
    // Another worker takes the one place and keeps it while it polls.
    let squatter = runtime
        .block_on(
            connection
                .worker()
                .register_worker(register_request("squatter")),
        )
        .unwrap()
        .into_inner()
        .worker_id;
    let mut command = trainer();
    command
        .args(["worker", "--coordinator", &url])
        .args(["--devices", "cpu", "--threads", "1"])
        .env("LTSWEEP_TOKEN", TOKEN)
        .env("RUST_LOG", "info");
    let mut worker = Process::spawn(command);
    wait_until(
        "the worker to be refused for --max-workers",
        Duration::from_secs(60),
        || {
            let mut calls = connection.worker();
            let _ = runtime.block_on(calls.poll_work(pb::PollWorkRequest {
                worker_id: squatter.clone(),
                device: "cpu".into(),
            }));
            worker.line_containing("--max-workers").is_some()
        },
    );
    assert!(
        matches!(worker.child.try_wait(), Ok(None)),
        "the worker exited on a limit: {:?}",
        worker.lines.lock().unwrap()
    );
    // The squatter stops polling and its place frees up: the worker gets it and trains.
    let api = connection.sweep_api();
    let sweep = runtime.block_on(api.submit(TINY_SWEEP)).unwrap().sweep;
    wait_until(
        "the worker to finish the sweep once a place is free",
        Duration::from_secs(180),
        || {
            runtime
                .block_on(api.status(Which::Sweep(&sweep), false))
                .is_ok_and(|status| {
                    status
                        .jobs
                        .iter()
                        .filter(|job| job.state == JobState::Succeeded)
                        .count()
                        == 2
                })
        },
    );
    assert!(matches!(worker.child.try_wait(), Ok(None)));
}

/// `count` connections to `address` from the loopback address 127.0.0.2 (all of 127/8 is
/// loopback on Linux): another client, as the coordinator counts them. With `give_up`, as many
/// as connect within it each, up to `count`; without, every one must.
fn connections_from_another_address(
    address: SocketAddr,
    count: usize,
    give_up: Option<Duration>,
) -> Vec<TcpStream> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut streams = Vec::new();
        for _ in 0..count {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
            let connect = socket.connect(address);
            let stream = match give_up {
                None => connect.await.unwrap(),
                Some(wait) => match tokio::time::timeout(wait, connect).await {
                    Ok(Ok(stream)) => stream,
                    _ => break,
                },
            };
            let stream = stream.into_std().unwrap();
            stream.set_nonblocking(false).unwrap();
            streams.push(stream);
        }
        streams
    })
}

register!(connections_past_the_caps_are_closed_while_a_workers_call_succeeds);
fn connections_past_the_caps_are_closed_while_a_workers_call_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    // A long header-read timeout: only the cap can close these connections in this test.
    let (coordinator, address) = coordinator(
        &dir.path().join("state"),
        &[
            "--max-connections-per-address",
            "8",
            "--header-read-timeout",
            "10m",
        ],
    );
    let mut streams = connections_from_another_address(address, 20, None);

    // The twelve past the cap are closed; eight stay open, holding nothing but their socket.
    let mut closed = vec![false; streams.len()];
    wait_until(
        "the connections past the cap to be closed",
        Duration::from_secs(60),
        || {
            for (stream, closed) in streams.iter_mut().zip(&mut closed) {
                if !*closed {
                    *closed = closed_within(stream, Duration::from_millis(50));
                }
            }
            closed.iter().filter(|&&c| c).count() >= 12
        },
    );
    let open: Vec<&mut TcpStream> = streams
        .iter_mut()
        .zip(&closed)
        .filter(|(_, closed)| !**closed)
        .map(|(stream, _)| stream)
        .collect();
    assert_eq!(open.len(), 8, "as many open as the cap per address");
    for stream in open {
        assert!(
            !closed_within(stream, Duration::from_secs(1)),
            "a connection within the cap was closed"
        );
    }
    let logged = coordinator
        .line_containing("closed as it was accepted")
        .expect("the refusal is logged");
    assert!(logged.contains("--max-connections-per-address"), "{logged}");

    // Meanwhile a worker's call from 127.0.0.1 goes through.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let worker = {
        let _guard = runtime.enter();
        Connection::new(&format!("http://{address}"), Some(TOKEN), None).unwrap()
    };
    let registered = runtime.block_on(worker.worker().register_worker(register_request("honest")));
    registered.expect("a worker registers beside connections at their cap");
    drop(streams);
}

/// Connections a stranger opens against a coordinator of 256 file descriptors: more than it
/// can accept.
const STRANGERS: usize = 400;

register!(a_stranger_cannot_take_every_descriptor_a_worker_needs);
fn a_stranger_cannot_take_every_descriptor_a_worker_needs() {
    let dir = tempfile::tempdir().unwrap();
    // The review's set-up: 256 descriptors, soft and hard, and connections that are not
    // closed for want of a request while the test runs (a long header-read timeout), so that
    // only the caps keep room for the worker.
    let (coordinator, address) = coordinator_with(
        &dir.path().join("state"),
        &["--header-read-timeout", "10m"],
        |command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; the closure touches nothing else.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: 256,
                        rlim_max: 256,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        },
    );
    let streams =
        connections_from_another_address(address, STRANGERS, Some(Duration::from_secs(10)));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let worker = {
        let _guard = runtime.enter();
        Connection::new(&format!("http://{address}"), Some(TOKEN), None).unwrap()
    };
    let registered = runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            worker.worker().register_worker(register_request("honest")),
        )
        .await
    });
    let registered = registered.unwrap_or_else(|_| {
        panic!(
            "a worker's call got no answer beside {STRANGERS} connections from a stranger: {:?}",
            coordinator.line_containing("connections capped")
        )
    });
    registered.expect("a worker registers beside so many connections from a stranger");
    drop(streams);
}

/// A codec for messages whose fields are all left out: a health check asks about the server as
/// a whole, and its answer is not read.
#[derive(Clone, Copy, Debug, Default)]
struct EmptyCodec;

impl Codec for EmptyCodec {
    type Encode = ();
    type Decode = ();
    type Encoder = EmptyCodec;
    type Decoder = EmptyCodec;

    fn encoder(&mut self) -> EmptyCodec {
        *self
    }

    fn decoder(&mut self) -> EmptyCodec {
        *self
    }
}

impl Encoder for EmptyCodec {
    type Item = ();
    type Error = tonic::Status;

    fn encode(&mut self, (): (), _: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        Ok(())
    }
}

impl Decoder for EmptyCodec {
    type Item = ();
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        buf.advance(buf.remaining());
        Ok(Some(()))
    }
}

/// Connects to one address, counting the connections it opens: a channel opens a new one only
/// when the server closed the last.
#[derive(Clone)]
struct CountingConnector {
    address: SocketAddr,
    opened: Arc<AtomicUsize>,
}

impl tonic::codegen::Service<http::Uri> for CountingConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        self.opened.fetch_add(1, Ordering::SeqCst);
        let address = self.address;
        Box::pin(async move {
            let tcp = tokio::net::TcpStream::connect(address).await?;
            Ok(hyper_util::rt::TokioIo::new(tcp))
        })
    }
}

register!(connections_that_only_ask_the_health_service_close_at_the_header_deadline);
fn connections_that_only_ask_the_health_service_close_at_the_header_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (_coordinator, address) = coordinator(
        &dir.path().join("state"),
        &["--header-read-timeout", "2s", "--idle-timeout", "10m"],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let connector = CountingConnector {
        address,
        opened: Arc::clone(&opened),
    };
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .unwrap()
            .connect_with_connector_lazy(connector);
        let mut health = tonic::client::Grpc::new(channel);
        let check = http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
        // Health checks twice a second, far more often than any timeout: before, each one
        // lifted the first-request deadline and kept the connection open for good.
        let mut answered = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while opened.load(Ordering::SeqCst) < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a connection asking only the health service stayed open for two minutes"
            );
            if health.ready().await.is_ok()
                && health
                    .unary(tonic::Request::new(()), check.clone(), EmptyCodec)
                    .await
                    .is_ok()
            {
                answered += 1;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert!(answered > 0, "the health service answered");
    });
}

register!(a_login_body_sent_a_byte_at_a_time_is_cut_off_at_the_timeout);
fn a_login_body_sent_a_byte_at_a_time_is_cut_off_at_the_timeout() {
    let served = Served::start_with(|command| {
        command.env("LTSWEEP_TOKEN", TOKEN).args([
            "--header-read-timeout",
            "2s",
            "--idle-timeout",
            "10m",
        ]);
    });
    let port = served.web_port;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The body announces 1,000 bytes and comes a byte a second: 17 minutes at that pace.
    write!(
        stream,
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ntoken="
    )
    .unwrap();
    let sent = Arc::new(AtomicUsize::new(0));
    let trickle = {
        let (mut stream, sent) = (stream.try_clone().unwrap(), Arc::clone(&sent));
        std::thread::spawn(move || {
            for _ in 0..994 {
                std::thread::sleep(Duration::from_secs(1));
                if stream.write_all(b"x").is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    if let Err(err) = &read {
        assert!(
            !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "a body sent a byte a second held its connection for two minutes"
        );
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );
    assert!(
        sent.load(Ordering::SeqCst) < 994,
        "closed before the body was whole"
    );
    drop(stream);
    trickle.join().unwrap();
}
