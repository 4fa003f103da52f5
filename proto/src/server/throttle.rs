//! Wrong tokens from one client address, throttled: each failure fills the address's bucket by
//! one, which drains at `--auth-failures-per-minute`; a full bucket refuses the address's
//! attempts, right or wrong, before any token is compared, until it drains. One throttle
//! serves gRPC and the web page, so an address gets the same budget over both.
//!
//! An IPv6 address is counted by its /64 (what one host or site is handed). Behind a proxy
//! every client shares the proxy's address, so a client that keeps failing slows the others;
//! the refusal says so.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use tracing::warn;

use super::Refusal;

/// Addresses remembered at once; past it, those whose bucket drained are forgotten first.
const MAX_CLIENTS: usize = 16_384;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Failures not yet drained.
    level: f64,
    at: Instant,
}

/// Failed authentications by client address.
#[derive(Debug)]
pub struct AuthThrottle {
    per_minute: u32,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

/// The key an address is counted under: itself, or its /64 for IPv6.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl AuthThrottle {
    pub fn new(per_minute: u32) -> AuthThrottle {
        AuthThrottle {
            per_minute,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn drained(&self, bucket: Bucket, now: Instant) -> f64 {
        let minutes = now.saturating_duration_since(bucket.at).as_secs_f64() / 60.0;
        (bucket.level - minutes * f64::from(self.per_minute)).max(0.0)
    }

    /// Refuses an address whose bucket is full; call before comparing its token. An unknown
    /// address (a call from inside the process) is never throttled.
    pub fn admit(&self, ip: Option<IpAddr>) -> Result<(), Refusal> {
        let Some(ip) = ip else { return Ok(()) };
        let now = Instant::now();
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        match clients.get(&key(ip)) {
            Some(&bucket) if self.drained(bucket, now) + 1.0 > f64::from(self.per_minute) => {
                Err(Refusal::Throttled(format!(
                    "too many wrong tokens from {ip}: wait a minute before trying again (at most {} a minute: --auth-failures-per-minute; behind a proxy, every client shares its address)",
                    self.per_minute
                )))
            }
            _ => Ok(()),
        }
    }

    /// Counts a wrong token from `ip` and logs it; `what` says where (a login, a call).
    pub fn failed(&self, ip: Option<IpAddr>, what: &str) {
        let Some(ip) = ip else { return };
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key(ip)) {
            clients.retain(|_, bucket| self.drained(*bucket, now) >= 1.0);
            if clients.len() >= MAX_CLIENTS {
                // Every remembered address is failing: forget the calmest one.
                let calmest = clients
                    .iter()
                    .min_by(|a, b| self.drained(*a.1, now).total_cmp(&self.drained(*b.1, now)))
                    .map(|(ip, _)| *ip);
                if let Some(calmest) = calmest {
                    clients.remove(&calmest);
                }
            }
        }
        let bucket = clients.entry(key(ip)).or_insert(Bucket {
            level: 0.0,
            at: now,
        });
        let level = self.drained(*bucket, now) + 1.0;
        *bucket = Bucket { level, at: now };
        if level + 1.0 > f64::from(self.per_minute) {
            warn!(client = %ip, what, "a wrong token; this address is throttled for a while (--auth-failures-per-minute)");
        } else {
            warn!(client = %ip, what, "a wrong token");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_once_its_failures_fill_the_bucket() {
        let throttle = AuthThrottle::new(3);
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            throttle.admit(Some(attacker)).unwrap();
            throttle.failed(Some(attacker), "a test");
        }
        let refused = throttle.admit(Some(attacker)).unwrap_err().to_string();
        assert!(refused.contains("--auth-failures-per-minute"), "{refused}");
        throttle.admit(Some(other)).unwrap();
        throttle.admit(None).unwrap();
        // The same /64 is the same client.
        let a: IpAddr = "fd00::1".parse().unwrap();
        let b: IpAddr = "fd00::ffff:2".parse().unwrap();
        for _ in 0..3 {
            throttle.failed(Some(a), "a test");
        }
        assert!(throttle.admit(Some(b)).is_err());
        assert!(
            throttle
                .admit(Some("fd00:0:0:1::1".parse().unwrap()))
                .is_ok()
        );
    }

    #[test]
    fn a_bucket_drains_with_time() {
        let throttle = AuthThrottle::new(60);
        let start = Instant::now();
        let bucket = Bucket {
            level: 60.0,
            at: start,
        };
        let later = start + std::time::Duration::from_secs(30);
        assert!((throttle.drained(bucket, later) - 30.0).abs() < 1e-9);
        assert_eq!(
            throttle.drained(bucket, start + std::time::Duration::from_secs(90)),
            0.0
        );
    }
}
