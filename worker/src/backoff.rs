//! The worker's retry pacing: exponential backoff with jitter, for calls that failed with a
//! transient error ([`ltsweep_proto::RemoteError::is_transient`]). Jitter spreads the retries of many workers
//! that lost the coordinator at the same moment, so they do not all come back at once.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

const FIRST: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(5);

/// Exponential backoff from 100 ms to 5 s, each wait drawn from the upper half of its step.
#[derive(Debug)]
pub(crate) struct Backoff {
    step: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            step: FIRST,
            failures: 0,
        }
    }
}

impl Backoff {
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }

    /// The next wait, in [step/2, step], and the step doubled up to the cap.
    fn next_delay(&mut self) -> Duration {
        let delay = self.step / 2 + self.step.mul_f64(jitter() / 2.0);
        self.step = (self.step * 2).min(CAP);
        delay
    }

    /// Waits before the next try of `what`, logging the error now and then.
    pub(crate) async fn wait(&mut self, what: &str, err: &(dyn std::fmt::Display + Sync)) {
        self.failures += 1;
        // Loud on the first failure and then now and again, not on every retry.
        if self.failures == 1 || self.failures.is_multiple_of(20) {
            tracing::warn!(err = %err, failures = self.failures, "cannot {what}; retrying");
        }
        tokio::time::sleep(self.next_delay()).await;
    }
}

/// A fraction in [0, 1), fresh each call: the standard library's per-map random keys are
/// drawn from the OS and are all the randomness jitter needs.
fn jitter() -> f64 {
    let bits = RandomState::new().build_hasher().finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_below_each_step() {
        let mut backoff = Backoff::default();
        let mut step = FIRST;
        for _ in 0..12 {
            let delay = backoff.next_delay();
            assert!(delay >= step / 2 && delay <= step, "{delay:?} for {step:?}");
            step = (step * 2).min(CAP);
        }
        assert_eq!(backoff.step, CAP);
        backoff.reset();
        assert_eq!(backoff.step, FIRST);
    }

    #[test]
    fn jitter_varies() {
        let draws: std::collections::HashSet<u64> = (0..16).map(|_| jitter().to_bits()).collect();
        assert!(draws.len() > 1);
        assert!(
            draws
                .iter()
                .all(|&b| (0.0..1.0).contains(&f64::from_bits(b)))
        );
    }
}
