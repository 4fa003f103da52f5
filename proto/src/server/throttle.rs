//! Rates by client address: a bucket per address that each counted event fills by one and that
//! drains at so many a minute ([`AddressRate`]). Two budgets use it:
//!
//! - [`AuthThrottle`], wrong tokens (`--auth-failures-per-minute`), shared by gRPC and the web
//!   page so that an address gets one budget over both. It bounds what wrong tokens cost the
//!   coordinator (a log line each, an answer each): past the budget a wrong token is refused
//!   with `RESOURCE_EXHAUSTED` and neither counted nor logged. It never stands in the way of a
//!   right token, whatever its address sent before: a stranger sharing a worker's address (a
//!   NAT, a proxy, the same machine) must not lock the worker out. Guessing is stopped by the
//!   tokens' entropy (at least 32 bytes), not by this budget.
//! - the web page's successful logins (`--logins-per-minute`), each of which opens a session.
//!
//! An IPv6 address is counted by its /64 (what one host or site is handed).

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
    /// Events not yet drained.
    level: f64,
    at: Instant,
}

/// The key an address is counted under: itself, or its /64 for IPv6.
pub(super) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// Events by client address, at most `per_minute` a minute each.
#[derive(Debug)]
pub struct AddressRate {
    per_minute: u32,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

impl AddressRate {
    pub fn new(per_minute: u32) -> AddressRate {
        AddressRate {
            per_minute,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The budget a minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    fn drained(&self, bucket: Bucket, now: Instant) -> f64 {
        let minutes = now.saturating_duration_since(bucket.at).as_secs_f64() / 60.0;
        (bucket.level - minutes * f64::from(self.per_minute)).max(0.0)
    }

    /// Counts one event from `ip` if its budget has room: `true` when counted, `false` when
    /// the address is at its budget (nothing counted, so the bucket is empty again a minute
    /// after the address stops). An unknown address (a call from inside the process) always
    /// has room.
    pub fn take(&self, ip: Option<IpAddr>) -> bool {
        self.take_at(ip, Instant::now())
    }

    fn take_at(&self, ip: Option<IpAddr>, now: Instant) -> bool {
        let Some(ip) = ip else { return true };
        let key = client_key(ip);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let level = clients.get(&key).map_or(0.0, |b| self.drained(*b, now));
        if level + 1.0 > f64::from(self.per_minute) {
            return false;
        }
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&key) {
            clients.retain(|_, bucket| self.drained(*bucket, now) >= 1.0);
            if clients.len() >= MAX_CLIENTS {
                // Every remembered address is busy: forget the calmest one.
                let calmest = clients
                    .iter()
                    .min_by(|a, b| self.drained(*a.1, now).total_cmp(&self.drained(*b.1, now)))
                    .map(|(ip, _)| *ip);
                if let Some(calmest) = calmest {
                    clients.remove(&calmest);
                }
            }
        }
        clients.insert(
            key,
            Bucket {
                level: level + 1.0,
                at: now,
            },
        );
        true
    }
}

/// Wrong tokens by client address (`--auth-failures-per-minute`).
#[derive(Debug)]
pub struct AuthThrottle {
    rate: AddressRate,
}

impl AuthThrottle {
    pub fn new(per_minute: u32) -> AuthThrottle {
        AuthThrottle {
            rate: AddressRate::new(per_minute),
        }
    }

    /// The refusal of a wrong token from `ip`, counted and logged while the address is within
    /// its budget (`Unauthenticated`); past it, refused as throttled without a log line each.
    /// `what` says where (a login, a call). Only a token that matched none of the
    /// coordinator's comes here: a right one is never counted nor refused.
    pub fn wrong_token(&self, ip: Option<IpAddr>, what: &str) -> Refusal {
        if self.rate.take(ip) {
            if let Some(ip) = ip {
                warn!(client = %ip, what, "a wrong token");
            }
            return Refusal::Unauthenticated;
        }
        Refusal::Throttled(format!(
            "too many wrong tokens from {}: at most {} a minute (--auth-failures-per-minute); a right token is still accepted",
            ip.map_or_else(|| "this address".to_owned(), |ip| ip.to_string()),
            self.rate.per_minute()
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn wrong_tokens_past_the_budget_are_throttled_by_address() {
        let throttle = AuthThrottle::new(3);
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(
                throttle.wrong_token(Some(attacker), "a test"),
                Refusal::Unauthenticated
            );
        }
        let refused = throttle.wrong_token(Some(attacker), "a test");
        assert_eq!(refused.kind(), crate::ErrorKind::Exhausted);
        assert!(
            refused.to_string().contains("--auth-failures-per-minute"),
            "{refused}"
        );
        assert_eq!(
            throttle.wrong_token(Some(other), "a test"),
            Refusal::Unauthenticated
        );
        assert_eq!(
            throttle.wrong_token(None, "a test"),
            Refusal::Unauthenticated
        );
        // The same /64 is the same client.
        let a: IpAddr = "fd00::1".parse().unwrap();
        let b: IpAddr = "fd00::ffff:2".parse().unwrap();
        for _ in 0..3 {
            throttle.wrong_token(Some(a), "a test");
        }
        assert_ne!(
            throttle.wrong_token(Some(b), "a test"),
            Refusal::Unauthenticated
        );
        assert_eq!(
            throttle.wrong_token(Some("fd00:0:0:1::1".parse().unwrap()), "a test"),
            Refusal::Unauthenticated
        );
    }

    #[test]
    fn a_bucket_drains_with_time_and_refusals_do_not_fill_it() {
        let rate = AddressRate::new(60);
        let ip = Some("10.0.0.1".parse().unwrap());
        let start = Instant::now();
        for _ in 0..60 {
            assert!(rate.take_at(ip, start));
        }
        // Refused attempts are not counted: the bucket is as full as before them.
        for _ in 0..1_000 {
            assert!(!rate.take_at(ip, start));
        }
        let bucket = Bucket {
            level: 60.0,
            at: start,
        };
        let later = start + Duration::from_secs(30);
        assert!((rate.drained(bucket, later) - 30.0).abs() < 1e-9);
        assert_eq!(rate.drained(bucket, start + Duration::from_secs(90)), 0.0);
        // Two seconds drain two of sixty a minute.
        let later = start + Duration::from_secs(2);
        assert!(rate.take_at(ip, later) && rate.take_at(ip, later));
        assert!(!rate.take_at(ip, later));
    }
}
