//! The connections a process holds open at once: in all (`--max-connections`, kept below the
//! process's file-descriptor limit) and per client address (`--max-connections-per-address`;
//! IPv6 by its /64, as the wrong-token throttle counts). A connection past either cap is
//! closed as it is accepted, before any TLS or HTTP work, so that one client opening
//! connections cannot take the descriptors every worker needs. The gRPC server and the web
//! page share one set of caps: they share the process's descriptors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use super::throttle::client_key;

/// How often a refused connection is logged at most: a flood of them must not flood the log.
const WARN_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
    /// Refused since the last warning, and when that was.
    refused: u64,
    warned: Option<Instant>,
}

/// The caps, and the connections open under them.
#[derive(Debug)]
pub struct ConnectionCaps {
    total: usize,
    per_address: usize,
    open: Mutex<Open>,
}

/// A connection's place under the caps, given back when it is dropped (the connection closed).
#[derive(Debug)]
pub struct ConnectionPermit {
    caps: Arc<ConnectionCaps>,
    key: Option<IpAddr>,
}

impl ConnectionCaps {
    /// At most `total` connections at once, `per_address` of them from one client address.
    pub fn new(total: usize, per_address: usize) -> Arc<ConnectionCaps> {
        Arc::new(ConnectionCaps {
            total,
            per_address: per_address.min(total),
            open: Mutex::new(Open::default()),
        })
    }

    /// The caps: in all, and per address.
    pub fn limits(&self) -> (usize, usize) {
        (self.total, self.per_address)
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a connection from `remote` (unknown: counted in all only), or `None` when a
    /// cap is reached: close the connection at once.
    pub fn admit(self: &Arc<Self>, remote: Option<IpAddr>) -> Option<ConnectionPermit> {
        let key = remote.map(client_key);
        let mut open = self.open();
        let from_address = key.map_or(0, |key| open.by_address.get(&key).copied().unwrap_or(0));
        let refusal = if open.total >= self.total {
            Some(format!(
                "{} connections are open, the limit (--max-connections)",
                open.total
            ))
        } else if from_address >= self.per_address {
            Some(format!(
                "{from_address} connections are open from {}, the limit per address (--max-connections-per-address; IPv6: per /64)",
                remote.map_or_else(String::new, |ip| ip.to_string())
            ))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            open.refused += 1;
            let now = Instant::now();
            if open.warned.is_none_or(|at| now >= at + WARN_EVERY) {
                warn!(
                    refused = open.refused,
                    "a connection closed as it was accepted: {refusal}; raise the cap if these are workers"
                );
                open.refused = 0;
                open.warned = Some(now);
            }
            return None;
        }
        open.total += 1;
        if let Some(key) = key {
            *open.by_address.entry(key).or_insert(0) += 1;
        }
        Some(ConnectionPermit {
            caps: Arc::clone(self),
            key,
        })
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut open = self.caps.open();
        open.total -= 1;
        if let Some(key) = self.key
            && let Some(count) = open.by_address.get_mut(&key)
        {
            *count -= 1;
            if *count == 0 {
                open.by_address.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_past_either_cap_are_refused_until_one_closes() {
        let caps = ConnectionCaps::new(5, 2);
        let stranger: IpAddr = "10.0.0.9".parse().unwrap();
        let neighbour: IpAddr = "fd00::1".parse().unwrap();
        let same_64: IpAddr = "fd00::2".parse().unwrap();
        let held: Vec<_> = (0..2)
            .map(|_| caps.admit(Some(stranger)).unwrap())
            .collect();
        assert!(caps.admit(Some(stranger)).is_none(), "the address's cap");
        let first = caps.admit(Some(neighbour)).unwrap();
        let _second = caps.admit(Some(same_64)).unwrap();
        assert!(caps.admit(Some(same_64)).is_none(), "one /64 is one client");
        let _unknown = caps.admit(None).unwrap();
        assert!(
            caps.admit(Some("10.0.0.10".parse().unwrap())).is_none(),
            "the cap in all"
        );
        drop(first);
        assert!(caps.admit(Some(neighbour)).is_some());
        drop(held);
        let again = caps.admit(Some(stranger));
        assert!(again.is_some());
        assert_eq!(caps.limits(), (5, 2));
        assert_eq!(ConnectionCaps::new(3, 10).limits(), (3, 3));
    }
}
