//! Who a worker is, and what it can name: each registration's secret, which the scheduler
//! keeps only as a SHA-256 and knows a caller by (never by a worker id the caller claims);
//! lease ids no other worker can guess; and the registry's bound, workers unseen for a while
//! forgotten.
//!
//! A lease id's tag is an HMAC of the lease counter and the job under a key the coordinator
//! draws at start: the scheduler stays deterministic (tests give a fixed key), the persisted
//! counter keeps tags unique across restarts whatever the key, and a worker that sees its own
//! lease ids learns nothing of another's.

use std::fmt;

use ltsweep_domain::JobId;
use ring::hmac;

use super::Scheduler;
use super::plan::{Change, Planned};
use super::state::{LeaseId, WorkerId};

/// The key lease ids are derived with. Never persisted: ids already issued stay valid after a
/// restart because they are compared whole, not derived again.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseKey([u8; 32]);

impl LeaseKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The id of the `counter`-th lease, on `job`: 128 bits of HMAC-SHA-256 over both.
    pub(super) fn lease_id(&self, counter: u64, job: &JobId) -> LeaseId {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut context = hmac::Context::with_key(&key);
        context.update(&counter.to_be_bytes());
        context.update(job.as_str().as_bytes());
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&context.sign().as_ref()[..16]);
        LeaseId::issued(u128::from_be_bytes(tag), job)
    }
}

impl fmt::Debug for LeaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseKey(..)")
    }
}

/// The lowercase hex SHA-256 of a worker's secret: all the coordinator keeps of it.
pub fn secret_sha256(secret: &str) -> String {
    ltsweep_domain::Sha256::of(secret.as_bytes()).to_string()
}

impl Scheduler {
    /// The worker a call's secret (its SHA-256) belongs to.
    pub fn worker_by_secret(&self, secret_sha256: &str) -> Option<&WorkerId> {
        self.secrets.get(secret_sha256)
    }

    /// The workers to forget now: unseen for `expiry_ms` and holding no lease (a worker that
    /// holds one is still working, whatever its last-seen time says). Oldest first.
    pub(super) fn unseen_workers(&self, now_ms: u64, expiry_ms: u64) -> Vec<WorkerId> {
        let mut unseen: Vec<_> = self
            .workers
            .values()
            .filter(|w| {
                w.running.is_empty() && now_ms.saturating_sub(w.record.last_seen_ms) >= expiry_ms
            })
            .map(|w| (w.record.last_seen_ms, w.record.ordinal, w.record.id.clone()))
            .collect();
        unseen.sort();
        unseen.into_iter().map(|(_, _, id)| id).collect()
    }

    /// Forgets the workers unseen for the timing's `worker_expiry_ms` that hold no lease; their
    /// secrets stop working (a worker that comes back registers again). Answers how many.
    pub fn expire_workers(&self, now_ms: u64) -> Planned<usize> {
        let changes: Vec<Change> = self
            .unseen_workers(now_ms, self.timing.worker_expiry_ms)
            .into_iter()
            .map(|worker| Change::WorkerExpired { worker })
            .collect();
        Planned {
            answer: changes.len(),
            changes,
        }
    }

    /// Room for one more registration in a registry of at most `max_workers`: nothing to do
    /// while it has room; else the longest-unseen workers that are not alive and hold no lease
    /// are forgotten, so that stale registrations never lock new workers out. `None` when every
    /// registered worker is alive or holds a lease.
    pub fn make_room(&self, now_ms: u64, max_workers: usize) -> Option<Vec<Change>> {
        if self.workers.len() < max_workers {
            return Some(Vec::new());
        }
        let excess = self.workers.len() + 1 - max_workers;
        let room: Vec<Change> = self
            .unseen_workers(now_ms, self.alive_window_ms().saturating_add(1))
            .into_iter()
            .take(excess)
            .map(|worker| Change::WorkerExpired { worker })
            .collect();
        (room.len() == excess).then_some(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_depend_on_key_counter_and_job_and_lead_to_their_job() {
        let job = JobId::from("job-a");
        let key = LeaseKey::new([7; 32]);
        let id = key.lease_id(1, &job);
        assert_eq!(id.job(), Some(job.clone()));
        let tag = id
            .as_str()
            .strip_prefix("l-")
            .unwrap()
            .split_once('-')
            .unwrap()
            .0;
        assert_eq!(tag.len(), 32, "{id}");
        assert_eq!(key.lease_id(1, &job), id, "deterministic");
        assert_ne!(key.lease_id(2, &job), id);
        assert_ne!(
            key.lease_id(1, &JobId::from("job-b")).as_str()[..34],
            id.as_str()[..34]
        );
        assert_ne!(LeaseKey::new([8; 32]).lease_id(1, &job), id);
        assert_eq!(
            format!("{key:?}"),
            "LeaseKey(..)",
            "the key is never logged"
        );
    }
}
