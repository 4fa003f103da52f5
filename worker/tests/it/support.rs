//! What the trainer's tests share: results without the clock, an observer that preempts, and
//! the reading of reference vectors (JSON files written by the scripts beside them).

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

/// The reference vectors of `tests/data/<name>/vectors.json`.
pub fn vectors(name: &str) -> serde_json::Value {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .join("vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A JSON list of lists of numbers as a float64 matrix.
pub fn matrix(value: &serde_json::Value) -> tch::Tensor {
    let rows: Vec<Vec<f64>> =
        serde_json::from_value(value.clone()).expect("a list of lists of numbers");
    let cols = rows.first().map_or(0, Vec::len);
    let flat: Vec<f64> = rows.into_iter().flatten().collect();
    tch::Tensor::from_slice(&flat).view([-1, cols as i64])
}

/// The number under `key`.
pub fn number(vector: &serde_json::Value, key: &str) -> f64 {
    vector[key]
        .as_f64()
        .unwrap_or_else(|| panic!("a number `{key}`"))
}
