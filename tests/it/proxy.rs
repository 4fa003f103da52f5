//! A TCP proxy the test controls, standing between one worker and the coordinator: `cut`
//! drops every connection and refuses new ones, as a network partition would; `heal` lets
//! traffic through again. A throttled proxy passes each direction at a set rate, as a slow
//! link would.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Proxy {
    pub address: String,
    cut: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// Forwards connections on a fresh loopback port to `target` (`host:port`).
    pub fn start(target: &str) -> Proxy {
        Self::start_with_rate(target, None)
    }

    /// A proxy that passes at most `bytes_per_second` in each direction of each connection.
    pub fn start_throttled(target: &str, bytes_per_second: u64) -> Proxy {
        Self::start_with_rate(target, Some(bytes_per_second))
    }

    fn start_with_rate(target: &str, rate: Option<u64>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (target, accept_cut, accept_open) =
            (target.to_owned(), Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if accept_cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut open = accept_open.lock().unwrap();
                open.push(client.try_clone().unwrap());
                open.push(server.try_clone().unwrap());
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    rate,
                );
                pipe(server, client, rate);
            }
        });
        Proxy { address, cut, open }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Copies one direction until either side closes, then closes both; at most `rate` bytes a
/// second when given.
fn pipe(mut from: TcpStream, mut to: TcpStream, rate: Option<u64>) {
    std::thread::spawn(move || {
        // Small reads keep a throttled stream smooth rather than bursty.
        let mut buffer = vec![0u8; if rate.is_some() { 4 * 1024 } else { 16 * 1024 }];
        // When the bytes passed so far may have gone through: idle time earns no burst.
        let mut free_at = Instant::now();
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                    if let Some(rate) = rate {
                        free_at = free_at.max(Instant::now())
                            + Duration::from_secs_f64(n as f64 / rate as f64);
                        std::thread::sleep(free_at.saturating_duration_since(Instant::now()));
                    }
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}
