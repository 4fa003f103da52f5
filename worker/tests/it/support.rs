//! What the trainer's tests share: results without the clock, and an observer that preempts.

use std::cell::Cell;

use ltsweep_domain::JobResult;
use ltsweep_worker::train::{Observer, Outcome, TrainError};

/// Everything but the clock.
pub fn without_timing(mut result: JobResult) -> JobResult {
    result.train_seconds = 0.0;
    for epoch in &mut result.epochs {
        epoch.seconds = 0.0;
        epoch.images_per_second = 0.0;
    }
    result
}

/// A finished run's result without the clock; any other outcome fails the test.
pub fn finished(outcome: Outcome) -> JobResult {
    match outcome {
        Outcome::Finished(result) => without_timing(*result),
        other => panic!("the run did not finish: {other:?}"),
    }
}

/// Preempts at the `at`-th step boundary it is asked about, keeping the checkpoint it is given
/// (its epoch and bytes).
pub struct PreemptAt {
    pub at: u32,
    pub asked: Cell<u32>,
    pub checkpoint: Option<(u32, Vec<u8>)>,
}

impl Observer for PreemptAt {
    fn checkpoint(&mut self, epoch: u32, bytes: Vec<u8>) -> Result<(), TrainError> {
        self.checkpoint = Some((epoch, bytes));
        Ok(())
    }

    fn preempted(&self) -> bool {
        self.asked.set(self.asked.get() + 1);
        self.asked.get() >= self.at
    }
}
