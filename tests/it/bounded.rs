//! A real coordinator process against what a shared cluster's other users could send it:
//! streams that never read (capped, and cheap while open), a web site reaching a tokenless
//! page through DNS rebinding (a foreign `Host`), half-sent requests on both servers, a
//! request carrying thousands of guesses, and one address guessing tokens in turn (throttled,
//! while its right token still gets in).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ltsweep_proto::client::Connection;
use ltsweep_proto::pb;
use tonic::Code;

use crate::cluster_support::memory_mib;
use crate::harness::register;
use crate::roles::{USER_TOKEN, VIEWER_TOKEN, role_flags};
use crate::support::wait_until;
use crate::web::Served;

/// Jobs in the sweep the streams watch. The coordinator used to copy a sweep's whole status
/// into each stream until its client read it: some 5 MB a stream at this size, 200 MB for
/// the 40 streams below.
const JOBS: usize = 10_000;
/// How far the coordinator's peak resident memory may rise over its resident memory before
/// the streams, with 40 streams open that never read and the refusals past them. Each stream
/// now holds what its transport buffers (HTTP/2 at most 400 KiB, the page's HTTP/1.1 64 KiB)
/// and a batch of 64 messages.
const STREAMS_MEMORY_BOUND_MIB: u64 = 64;

/// `jobs` jobs: one plan, seeds 0..jobs, never run.
fn sweep_spec(jobs: usize) -> String {
    let seeds: Vec<String> = (0..jobs).map(|s| s.to_string()).collect();
    format!(
        "name = \"watched\"\nseeds = [{}]\n[dataset]\nkind = \"synthetic\"\n[losses]\nplans = [{{ comp = \"none\", pc = \"none\" }}]\n",
        seeds.join(", ")
    )
}

/// Opens the page's event stream of `sweep` and reads no further than its answer's head:
/// the status code, and the connection, left unread.
fn open_events(port: u16, sweep: &str, token: &str) -> (u16, TcpStream) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "GET /api/sweeps/{sweep}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut status = String::new();
    BufReader::new(&stream).read_line(&mut status).unwrap();
    let code = status
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {status:?}"));
    (code, stream)
}

/// Sends `request` as it is (a write cut short by the server is no error) and reads what
/// comes back until the server closes.
fn exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends half a request and waits for the server to close the connection; panics if it is
/// still open after a minute (the test sets a header-read timeout of one second, and an idle
/// timeout of ten minutes that cannot be what closes it).
fn cut_off(port: u16, half: &[u8]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(half).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(err) => assert!(
            !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "half a request held the connection open: {err}"
        ),
    }
}

register!(streams_past_their_caps_are_refused_and_unread_ones_cost_little);
fn streams_past_their_caps_are_refused_and_unread_ones_cost_little() {
    let tokens = tempfile::tempdir().unwrap();
    let flags = role_flags(tokens.path());
    let served = Served::start_with(|command| {
        command
            .args(&flags)
            .args(["--max-streams", "40", "--max-streams-per-credential", "24"]);
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("http://{}", served.grpc);
    let (users, viewers) = {
        let _guard = runtime.enter();
        (
            Connection::new(&url, Some(USER_TOKEN), None).unwrap(),
            Connection::new(&url, Some(VIEWER_TOKEN), None).unwrap(),
        )
    };
    let sweep = runtime
        .block_on(users.sweep_api().submit(&sweep_spec(JOBS)))
        .unwrap()
        .sweep
        .to_string();
    let before = memory_mib(&served.coordinator, "VmRSS:");
    let watch = |connection: &Connection| {
        runtime.block_on(connection.sweeps().watch_sweep(pb::WatchSweepRequest {
            sweep_id: sweep.clone(),
        }))
    };

    // 24 watches with the viewer's token, never read; the 25th is one too many for it.
    let mut watches = Vec::new();
    for _ in 0..24 {
        watches.push(watch(&viewers).unwrap());
    }
    let refused = watch(&viewers).unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("--max-streams-per-credential 24"),
        "{}",
        refused.message()
    );
    // 16 event streams of the page with the user's token, read no further than their head:
    // 40 in all, and the next is refused whoever asks.
    let mut pages = Vec::new();
    for _ in 0..16 {
        let (code, stream) = open_events(served.web_port, &sweep, USER_TOKEN);
        assert_eq!(code, 200);
        pages.push(stream);
    }
    let (code, _refused) = open_events(served.web_port, &sweep, USER_TOKEN);
    assert_eq!(code, 429, "an event stream past --max-streams");
    let refused = watch(&users).unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("--max-streams 40"),
        "{}",
        refused.message()
    );

    // Closed streams give their slots back.
    drop(watches);
    drop(pages);
    let mut reopened = None;
    wait_until(
        "a closed stream's slot to be free again",
        Duration::from_secs(60),
        || {
            reopened = watch(&viewers).ok();
            reopened.is_some()
        },
    );
    let peak = memory_mib(&served.coordinator, "VmHWM:");
    eprintln!(
        "bounded: {JOBS}-job sweep, 40 unread streams: coordinator resident {before} MiB before, peak {peak} MiB after (bound: +{STREAMS_MEMORY_BOUND_MIB} MiB)"
    );
    assert!(
        peak < before + STREAMS_MEMORY_BOUND_MIB,
        "the streams took the coordinator from {before} MiB to a peak of {peak} MiB"
    );
}

register!(a_foreign_host_and_half_sent_requests_are_cut_off);
fn a_foreign_host_and_half_sent_requests_are_cut_off() {
    // No token, on loopback: the page a web site would reach through DNS rebinding.
    let served = Served::start_with(|command| {
        command.args([
            "--header-read-timeout",
            "1s",
            "--idle-timeout",
            "10m",
            "--http-host",
            "sweeps.example.org",
        ]);
    });
    let port = served.web_port;
    let get = |host: &str| {
        exchange(
            port,
            format!("GET /api/sweeps HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
    };
    let rebound = get(&format!("rebound.example:{port}"));
    assert!(rebound.starts_with("HTTP/1.1 421"), "{rebound}");
    assert!(rebound.contains("--http-host"), "{rebound}");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "sweeps.example.org".to_owned(),
    ] {
        let served = get(&host);
        assert!(served.starts_with("HTTP/1.1 200"), "{host}: {served}");
    }

    // Half a request on either server is closed once the header-read timeout passes.
    cut_off(port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    let grpc_port: u16 = served
        .grpc
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    cut_off(grpc_port, b"PRI * HTTP/2.0\r\n");
}

register!(guesses_in_one_request_are_refused_and_wrong_tokens_throttled);
fn guesses_in_one_request_are_refused_and_wrong_tokens_throttled() {
    let tokens = tempfile::tempdir().unwrap();
    let flags = role_flags(tokens.path());
    let served = Served::start_with(|command| {
        command.args(&flags).args([
            "--auth-failures-per-minute",
            "5",
            "--logins-per-minute",
            "2",
        ]);
    });
    let port = served.web_port;
    let origin = format!("http://127.0.0.1:{port}");
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", origin.as_str()),
    ];

    // A session's cookie opens the page until logging out revokes it.
    let login = served.post("/login", &form, &format!("token={USER_TOKEN}"));
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login.header("set-cookie").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    assert_eq!(served.get("/", &[("Cookie", &cookie)]).status, 200);
    let logout = served.post("/logout", &[("Cookie", &cookie), ("Origin", &origin)], "");
    assert_eq!(logout.status, 303);
    assert_eq!(served.get("/", &[("Cookie", &cookie)]).status, 401);

    // 12,000 guesses in one request's cookies are not 12,000 attempts.
    let guesses: String = (0..12_000)
        .map(|guess| format!("ltsweep_session={guess:064x}; ltsweep_token={guess:064x}; "))
        .collect();
    let answer = exchange(
        port,
        format!("GET /api/sweeps HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {guesses}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    let status = answer.split_whitespace().nth(1).unwrap_or("none");
    assert!(
        status.starts_with('4') || status == "none",
        "12,000 guesses were read as one request: {}",
        &answer[..answer.len().min(200)]
    );
    // Two session cookies, or two Authorization headers: refused, not tried in turn.
    let two_cookies = served.get("/api/sweeps", &[("Cookie", &format!("{cookie}; {cookie}"))]);
    assert_eq!(two_cookies.status, 400);
    assert!(
        two_cookies.body.contains("several session cookies"),
        "{}",
        two_cookies.body
    );
    let bearer = format!("Bearer {USER_TOKEN}");
    let two_headers = served.get(
        "/api/sweeps",
        &[
            ("Authorization", "Bearer wrong"),
            ("Authorization", &bearer),
        ],
    );
    assert_eq!(two_headers.status, 400);

    // Those were two failures; three wrong logins make five, the limit: the next wrong token
    // from this address is refused as throttled, on gRPC too; the right one is accepted, on
    // both.
    for _ in 0..3 {
        let wrong = served.post(
            "/login",
            &form,
            "token=not-a-token-of-this-coordinator-at-all",
        );
        assert_eq!(wrong.status, 401);
    }
    let throttled = served.post(
        "/login",
        &form,
        "token=not-a-token-of-this-coordinator-at-all",
    );
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert!(
        throttled.body.contains("--auth-failures-per-minute"),
        "{}",
        throttled.body
    );
    assert!(throttled.header("set-cookie").is_none());
    let right = served.post("/login", &form, &format!("token={USER_TOKEN}"));
    assert_eq!(right.status, 303, "the right token is never locked out");
    assert!(right.header("set-cookie").is_some());
    // That was the second login from this address in the minute, the limit: each opens a
    // session, so a third is refused, naming the flag.
    let third = served.post("/login", &form, &format!("token={USER_TOKEN}"));
    assert_eq!(third.status, 429, "{}", third.body);
    assert!(third.body.contains("--logins-per-minute"), "{}", third.body);
    assert!(third.header("set-cookie").is_none());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let connect = |token: &str| {
        let _guard = runtime.enter();
        Connection::new(&format!("http://{}", served.grpc), Some(token), None).unwrap()
    };
    let refused = runtime
        .block_on(
            connect(&"w".repeat(40))
                .sweeps()
                .list_sweeps(pb::ListSweepsRequest::default()),
        )
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    runtime
        .block_on(
            connect(USER_TOKEN)
                .sweeps()
                .list_sweeps(pb::ListSweepsRequest::default()),
        )
        .expect("the right token on gRPC from the throttled address");
    let logged = served
        .coordinator
        .line_containing("a wrong token")
        .expect("wrong tokens are logged");
    assert!(logged.contains("127.0.0.1"), "{logged}");
}
