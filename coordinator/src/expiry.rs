//! When the lease-expiry sweep runs next: soon after the earliest deadline while the store
//! commits, backing off while it does not.
//!
//! A sweep that cannot commit (a full disk, a database locked by another process) changes
//! nothing, and trying again every few milliseconds would only burn a core and flood the log:
//! each failure doubles the wait, up to [`MAX_BACKOFF`]; one success goes back to the normal
//! pace. Leases lose nothing meanwhile: while the store fails, each sweep gives every live lease
//! a fresh deadline instead of expiring any (see `Coordinator::expiry_round`).

use std::time::Duration;

use ltsweep_proto::Backoff;

/// The normal pace when no deadline is nearer.
pub(crate) const IDLE_WAIT: Duration = Duration::from_secs(1);
/// The shortest wait: deadlines are in milliseconds, and a burst of them expires in one sweep.
const MIN_WAIT: Duration = Duration::from_millis(10);
/// The first wait after a failed sweep.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait after failed sweeps.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The pace of the expiry sweeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ExpiryPacing {
    /// Counts the sweeps that failed in a row.
    backoff: Backoff,
}

impl Default for ExpiryPacing {
    fn default() -> Self {
        Self {
            backoff: Backoff::new(FIRST_BACKOFF, MAX_BACKOFF),
        }
    }
}

impl ExpiryPacing {
    /// How long to wait before the next sweep, given how far the earliest live deadline is
    /// (`None`: no lease is live).
    pub(crate) fn wait(&self, until_deadline: Option<Duration>) -> Duration {
        if let Some(step) = self.backoff.step() {
            return step;
        }
        until_deadline
            .map_or(IDLE_WAIT, |d| d + Duration::from_millis(1))
            .clamp(MIN_WAIT, IDLE_WAIT)
    }

    pub(crate) fn failed(&mut self) {
        self.backoff.fail();
    }

    pub(crate) fn succeeded(&mut self) {
        self.backoff.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_sweeps_follow_the_nearest_deadline() {
        let pacing = ExpiryPacing::default();
        assert_eq!(pacing.wait(None), IDLE_WAIT);
        assert_eq!(
            pacing.wait(Some(Duration::from_millis(300))),
            Duration::from_millis(301)
        );
        // A deadline already passed: soon, but never a spin.
        assert_eq!(pacing.wait(Some(Duration::ZERO)), MIN_WAIT);
        assert_eq!(pacing.wait(Some(Duration::from_secs(90))), IDLE_WAIT);
    }

    #[test]
    fn failed_sweeps_back_off_doubling_up_to_the_cap_and_one_success_resets() {
        let mut pacing = ExpiryPacing::default();
        let mut waits = Vec::new();
        for _ in 0..10 {
            pacing.failed();
            // However near a deadline is, a failing store is not retried at once.
            waits.push(pacing.wait(Some(Duration::ZERO)));
        }
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(
            ms,
            [
                250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000, 10_000
            ]
        );
        for _ in 0..100 {
            pacing.failed();
        }
        assert_eq!(pacing.wait(None), MAX_BACKOFF);
        pacing.succeeded();
        assert_eq!(
            pacing.wait(Some(Duration::from_millis(40))),
            Duration::from_millis(41)
        );
    }
}
