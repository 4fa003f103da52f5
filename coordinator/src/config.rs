//! The coordinator's settings, checked against each other before anything starts.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::CoordinatorError;
use crate::limits::Limits;
use crate::scheduler::Timing;
use ltsweep_proto::server::{Access, TlsFiles};

/// How hard SQLite works to keep a commit across failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: a killed coordinator loses nothing it answered; a power
    /// cut may lose the last commits.
    #[default]
    Normal,
    /// WAL with `synchronous=FULL`: every commit is on disk before the call answers.
    Full,
}

/// Everything [`crate::serve`] needs. Its `Debug` print leaves the tokens out.
#[derive(Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Holds `ltsweep.db` and `checkpoints/`; created when missing.
    pub state_dir: PathBuf,
    /// A lease without progress for this long expires and its job returns to the queue.
    pub lease_ttl: Duration,
    /// How often workers report progress on a running job (told to them at registration).
    pub heartbeat_interval: Duration,
    /// How long a `PollWork` waits for a job before answering none.
    pub poll_timeout: Duration,
    /// A worker unseen this long, holding no lease, is forgotten (`--worker-expiry`).
    pub worker_expiry: Duration,
    /// The tokens every call but health and reflection must carry, and their roles.
    pub access: Access,
    /// Serve TLS with these files; plaintext clients are then refused.
    pub tls: Option<TlsFiles>,
    pub durability: Durability,
    /// What callers may make the coordinator hold.
    pub limits: Limits,
}

impl std::fmt::Debug for CoordinatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorConfig")
            .field("state_dir", &self.state_dir)
            .field("lease_ttl", &self.lease_ttl)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("poll_timeout", &self.poll_timeout)
            .field("worker_expiry", &self.worker_expiry)
            .field("access", &self.access)
            .field("tls", &self.tls)
            .field("durability", &self.durability)
            .field("limits", &self.limits)
            .finish()
    }
}

impl CoordinatorConfig {
    /// Defaults fit GPU training runs: a 60 s lease renewed by a heartbeat every 10 s, and
    /// 20 s long polls.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            lease_ttl: Duration::from_secs(60),
            heartbeat_interval: Duration::from_secs(10),
            poll_timeout: Duration::from_secs(20),
            worker_expiry: Duration::from_secs(3_600),
            access: Access::open(),
            tls: None,
            durability: Durability::Normal,
            limits: Limits::default(),
        }
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), CoordinatorError> {
        let fail = |message: String| Err(CoordinatorError::Config(message));
        if self.state_dir.as_os_str().is_empty() {
            return fail(
                "the state dir is empty: give a folder for the coordinator's state".into(),
            );
        }
        // The protocol carries times as u32 milliseconds.
        for (name, value) in [
            ("lease ttl", self.lease_ttl),
            ("heartbeat interval", self.heartbeat_interval),
            ("poll timeout", self.poll_timeout),
        ] {
            if value.is_zero() {
                return fail(format!("the {name} is zero: give a positive duration"));
            }
            if value.as_millis() > u128::from(u32::MAX) {
                return fail(format!(
                    "the {name} of {value:?} is too long: at most 49 days"
                ));
            }
        }
        if self.heartbeat_interval >= self.lease_ttl {
            return fail(format!(
                "the heartbeat interval ({:?}) must be shorter than the lease ttl ({:?}), or every lease expires between two heartbeats",
                self.heartbeat_interval, self.lease_ttl
            ));
        }
        if self.poll_timeout >= self.lease_ttl {
            return fail(format!(
                "the poll timeout ({:?}) must be shorter than the lease ttl ({:?})",
                self.poll_timeout, self.lease_ttl
            ));
        }
        // A worker that held a lease is forgotten only once the lease could have expired.
        if self.worker_expiry <= self.lease_ttl {
            return fail(format!(
                "the worker expiry ({:?}, --worker-expiry) must be longer than the lease ttl ({:?}, --lease-ttl)",
                self.worker_expiry, self.lease_ttl
            ));
        }
        self.limits.validate()
    }

    /// The timing the scheduler keeps and tells workers at registration.
    pub fn timing(&self) -> Timing {
        Timing {
            lease_ttl_ms: millis(self.lease_ttl),
            heartbeat_interval_ms: millis(self.heartbeat_interval),
            poll_timeout_ms: millis(self.poll_timeout),
            worker_expiry_ms: millis(self.worker_expiry),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        CoordinatorConfig::new("state").validate().unwrap();
    }

    #[test]
    fn heartbeat_must_be_shorter_than_the_lease() {
        let mut config = CoordinatorConfig::new("state");
        config.heartbeat_interval = config.lease_ttl;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("heartbeat interval"), "{message}");
    }

    #[test]
    fn poll_timeout_must_be_shorter_than_the_lease() {
        let mut config = CoordinatorConfig::new("state");
        config.poll_timeout = Duration::from_secs(600);
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("poll timeout")
        );
    }

    #[test]
    fn worker_expiry_must_be_longer_than_the_lease() {
        let mut config = CoordinatorConfig::new("state");
        config.worker_expiry = config.lease_ttl;
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("--worker-expiry"), "{message}");
    }

    #[test]
    fn the_token_is_not_in_a_debug_print() {
        let mut config = CoordinatorConfig::new("state");
        let token = ltsweep_proto::token::Token::generate();
        config.access = Access::shared(&token);
        let printed = format!("{config:?}");
        assert!(!printed.contains(token.as_str()), "{printed}");
        assert!(printed.contains("Roles(worker+viewer+user)"), "{printed}");
    }
}
