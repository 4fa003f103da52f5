//! The worker's retry pacing for calls that failed with a transient error
//! ([`ltsweep_proto::RemoteError::is_transient`]): the shared [`Backoff`] from 100 ms to 5 s,
//! jittered so that many workers that lost the coordinator at the same moment do not all come
//! back at once, and a log line now and then.

use std::time::Duration;

use ltsweep_proto::Backoff;

const FIRST: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(5);

/// A fresh back-off for a loop of calls to the coordinator.
pub(crate) fn for_calls() -> Backoff {
    Backoff::new(FIRST, CAP).jittered()
}

/// Waits before the next try of `what`, logging the error now and then.
pub(crate) async fn wait(backoff: &mut Backoff, what: &str, err: &(dyn std::fmt::Display + Sync)) {
    let delay = backoff.fail();
    let failures = backoff.failures();
    // Loud on the first failure and then now and again, not on every retry.
    if failures == 1 || failures.is_multiple_of(20) {
        tracing::warn!(err = %err, failures, "cannot {what}; retrying");
    }
    tokio::time::sleep(delay).await;
}
