//! A worker that cannot read a job's data pauses its polling, longer each time.
//!
//! The data a job needs lives on the worker (`--data-root`); when it is not there, every job
//! of the sweep would fail on this worker in milliseconds, using up their attempts, while
//! better-placed workers could run them. So the job is failed as retryable (another worker may
//! have the data), with the missing path in its reason, and the whole worker stops taking
//! jobs for a while: 30 s, then twice as long after each further failure, up to 10 minutes.
//! A data set that loads resets the pause.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ltsweep_proto::Backoff;

const FIRST_PAUSE: Duration = Duration::from_secs(30);
const LONGEST_PAUSE: Duration = Duration::from_secs(600);

/// When polling may resume, shared by the worker's slots.
#[derive(Debug)]
pub struct DataPause {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    until: Option<Instant>,
    pauses: Backoff,
}

impl Default for DataPause {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                until: None,
                pauses: Backoff::new(FIRST_PAUSE, LONGEST_PAUSE),
            }),
        }
    }
}

impl DataPause {
    /// A job's data was missing: pause from now, and answer for how long.
    pub fn missing(&self) -> Duration {
        let mut state = self.state.lock().expect("pause state");
        let pause = state.pauses.fail();
        state.until = Some(Instant::now() + pause);
        pause
    }

    /// A job's data loaded: the next failure starts the pauses afresh.
    pub fn found(&self) {
        let mut state = self.state.lock().expect("pause state");
        state.pauses.reset();
    }

    /// The end of the current pause, if one is on.
    pub fn until(&self) -> Option<Instant> {
        let state = self.state.lock().expect("pause state");
        state.until.filter(|&until| until > Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_a_limit_and_reset_once_data_loads() {
        let pause = DataPause::default();
        assert!(pause.until().is_none());
        assert_eq!(pause.missing(), FIRST_PAUSE);
        assert!(pause.until().is_some());
        assert_eq!(pause.missing(), FIRST_PAUSE * 2);
        for _ in 0..10 {
            pause.missing();
        }
        assert_eq!(pause.missing(), LONGEST_PAUSE);
        pause.found();
        assert_eq!(pause.missing(), FIRST_PAUSE);
    }
}
