//! The coordinator's clock: unix milliseconds read once at start, then advanced by the
//! monotonic clock.
//!
//! Lease deadlines, last-seen times and submission times all come from it. A wall-clock jump
//! (NTP stepping the clock, an operator setting it) therefore neither expires every lease at
//! once nor keeps dead ones alive: only time that really passed counts. Deadlines are not
//! persisted; on restart every recovered lease gets a full TTL from this clock's new start.

use std::time::Instant;

use ltsweep_domain::time::unix_ms_now;

/// Milliseconds since the unix epoch, as of the coordinator's start plus the monotonic time
/// since.
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    Monotonic {
        /// The wall clock when the coordinator started.
        anchor_ms: u64,
        start: Instant,
    },
    /// Moved by the test itself, so tests control their own pacing.
    #[cfg(test)]
    Manual(std::sync::Arc<std::sync::atomic::AtomicU64>),
}

impl Clock {
    /// Anchored at the wall clock now.
    pub(crate) fn monotonic() -> Self {
        Self::Monotonic {
            anchor_ms: unix_ms_now(),
            start: Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        match self {
            Self::Monotonic { .. } => self.at(Instant::now()),
            #[cfg(test)]
            Self::Manual(ms) => ms.load(std::sync::atomic::Ordering::SeqCst),
        }
    }

    /// The time of a monotonic instant; instants before the start read as the start.
    pub(crate) fn at(&self, instant: Instant) -> u64 {
        match self {
            Self::Monotonic { anchor_ms, start } => {
                let since = instant.saturating_duration_since(*start).as_millis();
                anchor_ms.saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
            }
            #[cfg(test)]
            Self::Manual(_) => self.now_ms(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn time_is_the_anchor_plus_monotonic_time_only() {
        let start = Instant::now();
        // An anchor far from today's wall clock: nothing reads the wall clock after the start.
        let clock = Clock::Monotonic {
            anchor_ms: 1_000,
            start,
        };
        assert_eq!(clock.at(start), 1_000);
        assert_eq!(clock.at(start + Duration::from_millis(60_001)), 61_001);
        // An instant from before the start (a caller's stale reading) never goes backwards.
        let earlier = start.checked_sub(Duration::from_secs(5)).unwrap_or(start);
        assert_eq!(clock.at(earlier), 1_000);
    }

    #[test]
    fn a_fresh_clock_reads_about_the_wall_clock_and_never_goes_back() {
        let clock = Clock::monotonic();
        let first = clock.now_ms();
        let second = clock.now_ms();
        assert!(second >= first);
        // 2020-01-01: a sanity bound, not a timing window.
        assert!(first > 1_577_836_800_000, "{first}");
    }
}
