//! Wall-clock time as the contract writes it: milliseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch; 0 for a clock set before 1970.
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long before `now_ms` the time `then_ms` was, in the largest whole unit ("12 s ago",
/// "15 min ago"); "never" for 0, the contract's "not yet".
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    if then_ms == 0 {
        return "never".to_owned();
    }
    let seconds = now_ms.saturating_sub(then_ms) / 1000;
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..172_800 => format!("{} h ago", seconds / 3600),
        _ => format!("{} days ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_the_largest_unit() {
        assert_eq!(ago(100_000, 0), "never");
        assert_eq!(ago(100_000, 88_000), "12 s ago");
        assert_eq!(ago(1_000_000, 100_000), "15 min ago");
        assert_eq!(ago(10_000_000, 1_000), "2 h ago");
        assert_eq!(ago(500_000_000, 1_000), "5 days ago");
    }

    #[test]
    fn now_is_after_this_code_was_written() {
        // 2026-01-01 in Unix milliseconds: a clock read as seconds or nanoseconds fails.
        let now = unix_ms_now();
        assert!(
            (1_767_225_600_000..4_000_000_000_000).contains(&now),
            "{now}"
        );
    }
}
