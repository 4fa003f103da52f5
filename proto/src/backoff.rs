//! Doubling back-off: how long to wait after each failure in a row.
//!
//! Every retry loop of ltsweep paces itself with this one type: a worker's calls to a lost
//! coordinator, its pause when a job's data is missing, the coordinator's expiry sweeps and
//! its reloads while the store fails. Only the numbers differ; the rule (the first wait, twice
//! as long after each further failure up to a cap, the first wait again after a success) is
//! written once. It does no waiting itself, so the pure scheduler's neighbours and async loops
//! alike can ask it.
//!
//! ```
//! use std::time::Duration;
//! use ltsweep_proto::Backoff;
//!
//! let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(1));
//! let waits: Vec<u128> = (0..4).map(|_| backoff.fail().as_millis()).collect();
//! assert_eq!(waits, [250, 500, 1_000, 1_000]);
//! backoff.reset();
//! assert_eq!(backoff.fail(), Duration::from_millis(250));
//! ```

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Waits that double from `first` up to `cap`, one failure at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    jitter: bool,
    /// Failures in a row.
    failures: u32,
}

impl Backoff {
    /// Waits of `first`, then twice as long after each further failure, never above `cap`.
    pub const fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap,
            jitter: false,
            failures: 0,
        }
    }

    /// Each wait drawn from the upper half of its step, `[step/2, step]`: many clients that
    /// failed at the same moment (workers that lost the coordinator) then do not all come back
    /// at once.
    pub const fn jittered(self) -> Self {
        Self {
            jitter: true,
            ..self
        }
    }

    /// Counts one more failure and answers how long to wait before the next try.
    pub fn fail(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let step = self.step().unwrap_or(self.first);
        if self.jitter {
            step / 2 + step.mul_f64(jitter() / 2.0)
        } else {
            step
        }
    }

    /// The step after the failures so far (before any jitter); `None` after none.
    pub fn step(&self) -> Option<Duration> {
        // Past 31 doublings every step is the cap anyway; the shift must stay in a u32.
        let doublings = self.failures.checked_sub(1)?.min(31);
        Some(self.first.saturating_mul(1 << doublings).min(self.cap))
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
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

    const FIRST: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(5);

    #[test]
    fn waits_double_up_to_the_cap_and_a_reset_starts_again() {
        let mut backoff = Backoff::new(FIRST, CAP);
        assert_eq!(backoff.step(), None);
        let waits: Vec<u128> = (0..8).map(|_| backoff.fail().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
        assert_eq!(backoff.failures(), 8);
        for _ in 0..100 {
            backoff.fail();
        }
        assert_eq!(backoff.step(), Some(CAP));
        backoff.reset();
        assert_eq!((backoff.failures(), backoff.step()), (0, None));
        assert_eq!(backoff.fail(), FIRST);
    }

    #[test]
    fn jittered_waits_lie_in_the_upper_half_of_each_step() {
        let mut backoff = Backoff::new(FIRST, CAP).jittered();
        let mut step = FIRST;
        for _ in 0..12 {
            let wait = backoff.fail();
            assert!(wait >= step / 2 && wait <= step, "{wait:?} for {step:?}");
            assert_eq!(backoff.step(), Some(step));
            step = (step * 2).min(CAP);
        }
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
