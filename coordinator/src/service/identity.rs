//! Which worker a call comes from: the one whose registration's secret it carries in its
//! metadata, never the worker id its request claims. Secrets and the lease key are drawn here,
//! from the operating system's random source, so that the scheduler stays deterministic.

use ltsweep_proto::WORKER_SECRET_METADATA;
use tonic::metadata::MetadataMap;

use super::{Coordinator, Result};
use crate::error::CoordinatorError;
use crate::limits;
use crate::scheduler::{LeaseId, LeaseKey, SchedulerError, WorkerId, secret_sha256};

/// Random bytes in a worker's secret.
const SECRET_BYTES: usize = 32;

/// The key lease ids are derived with, drawn once per start.
pub(super) fn draw_lease_key() -> LeaseKey {
    LeaseKey::new(random_bytes())
}

/// A fresh worker secret: 32 random bytes in hex.
pub(super) fn draw_secret() -> String {
    random_bytes::<SECRET_BYTES>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS random source failing is a broken system, not a state to go on in: a secret that
    // is not random would let one worker act as another.
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes
}

impl Coordinator {
    /// The registered worker a call's secret names, if any. A call without a secret is refused
    /// outright: that says nothing of any worker or lease.
    pub(super) fn secret_holder(&self, metadata: &MetadataMap) -> Result<Option<WorkerId>> {
        let secret = metadata
            .get(WORKER_SECRET_METADATA)
            .and_then(|value| value.to_str().ok())
            .filter(|secret| !secret.is_empty())
            .ok_or_else(|| {
                CoordinatorError::invalid(
                    WORKER_SECRET_METADATA,
                    "missing: register, then send the worker_secret its answer holds with every call",
                )
            })?;
        limits::check_length(secret, WORKER_SECRET_METADATA)?;
        let hash = secret_sha256(secret);
        self.read(|s| Ok(s.worker_by_secret(&hash).cloned()))
    }

    /// The worker polling: the secret's, which a claimed `worker_id` (where given) must name.
    /// Anything else is an unknown worker, which a worker answers by registering again.
    pub(super) fn polling_worker(&self, metadata: &MetadataMap, claimed: &str) -> Result<WorkerId> {
        limits::check_length(claimed, "worker_id")?;
        self.secret_holder(metadata)?
            .filter(|worker| claimed.is_empty() || worker.as_str() == claimed)
            .ok_or_else(|| {
                CoordinatorError::not_found(
                    "worker",
                    claimed,
                    "register again (the coordinator does not know this worker's secret)",
                )
            })
    }
}

/// The worker calling about `lease`: the secret's (`holder`), which a claimed `worker_id`
/// (where given) must name. A call with an unknown secret or a claim of another worker gets the
/// same refusal as a lease that is not the caller's, so that it tells nothing either.
pub(super) fn lease_caller(
    holder: Option<WorkerId>,
    claimed: &str,
    lease: &LeaseId,
) -> Result<WorkerId> {
    holder
        .filter(|worker| claimed.is_empty() || worker.as_str() == claimed)
        .ok_or_else(|| SchedulerError::lease_not_yours(lease).into())
}
