//! What runs on a job's training thread, alone or in a fused array: its trainer built (and
//! resumed) from the worker's data, its panics caught as failures that say what to change, and
//! its epochs, checkpoints and model sent to the job's supervisor.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ltsweep_domain::{EpochMetrics, JobSpec};
use ltsweep_proto::client::Retry;
use tch::Device;
use tokio::sync::mpsc;

use super::Shared;
use crate::train::{Observer, Outcome, TrainError, Trainer};
use ltsweep_data::{DataError, Prepared};

/// What the training thread tells the async side.
pub(super) enum Event {
    /// Boxed: an epoch's metrics are large beside a checkpoint's handle.
    Epoch(Box<EpochMetrics>),
    Checkpoint(u32, Vec<u8>),
    /// The finished job's final weights, to keep.
    Model(Vec<u8>),
}

pub(super) struct ChannelObserver {
    pub(super) events: mpsc::UnboundedSender<Event>,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) shared: Arc<Shared>,
    /// The lease asks for the final weights.
    pub(super) keep_model: bool,
}

impl Observer for ChannelObserver {
    fn epoch(&mut self, metrics: &EpochMetrics) {
        let _ = self.events.send(Event::Epoch(Box::new(metrics.clone())));
    }

    fn checkpoint(&mut self, epoch: u32, bytes: Vec<u8>) -> Result<(), TrainError> {
        self.events
            .send(Event::Checkpoint(epoch, bytes))
            .map_err(|_| TrainError::CheckpointNotKept("the job's supervisor is gone".into()))
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn preempted(&self) -> bool {
        self.shared.preempting()
    }

    fn wants_model(&self) -> bool {
        self.keep_model
    }

    fn model(&mut self, bytes: Vec<u8>) {
        let _ = self.events.send(Event::Model(bytes));
    }
}

/// A failure of the job itself, and whether another attempt could succeed.
pub(super) struct JobFailure {
    pub(super) reason: String,
    pub(super) retry: Retry,
}

pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}

/// Runs a job's training, turning a panic (libtorch's errors are panics in tch's infallible
/// calls) into a retryable failure; one that ran out of memory says at which batch size and
/// precision, the settings to lower.
pub(super) fn train_caught(
    spec: &JobSpec,
    train: impl FnOnce() -> Result<Outcome, TrainError>,
) -> Result<Outcome, JobFailure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(train)) {
        Ok(outcome) => outcome.map_err(|err| JobFailure {
            retry: err.retry(),
            reason: err.to_string(),
        }),
        Err(payload) => Err(JobFailure {
            reason: failure_reason(spec, &panic_message(payload.as_ref())),
            retry: Retry::Transient,
        }),
    }
}

/// What a failed trainer's message means for the person who reads it.
pub(super) fn failure_reason(spec: &JobSpec, message: &str) -> String {
    // libtorch's errors carry the C++ stack after their message (a tch panic prints the error
    // escaped, with `\n` as two characters).
    let message = match message.find("frame #0") {
        Some(end) => message[..end].trim_end_matches("\\n").trim_end(),
        None => message,
    };
    // CUDA's caching allocator says "CUDA out of memory", a failed CUDA call "out of memory",
    // libtorch's CPU allocator "can't allocate memory" (older versions "not enough memory").
    let out_of_memory = [
        "out of memory",
        "can't allocate memory",
        "not enough memory",
    ]
    .iter()
    .any(|phrase| message.contains(phrase));
    if out_of_memory {
        format!(
            "out of memory at batch size {} ({} in {}{}): lower train.batch_size, or run fewer slots per device: {message}",
            spec.train.batch_size,
            spec.model.arch,
            spec.train.precision,
            if spec.train.channels_last {
                ", channels-last"
            } else {
                ""
            },
        )
    } else {
        format!("the trainer failed: {message}")
    }
}

/// Loads the data and builds the job's trainer, resumed from its checkpoint if it has one.
pub(super) fn prepare_trainer(
    shared: &Shared,
    spec: &JobSpec,
    device: Device,
    resume_from: Option<Vec<u8>>,
) -> Result<Trainer, JobFailure> {
    let data = shared.data(&spec.dataset).map_err(|err| match err {
        // This worker's data is not there: another worker may have it.
        DataError::Missing { .. } | DataError::Io { .. } => {
            let pause = shared.data_pause.missing();
            tracing::error!(%err, ?pause, data_root = %shared.config.data_root.display(), "a job's data is missing; pausing before taking more jobs");
            JobFailure {
                reason: format!(
                    "{err} (on worker host {}, --data-root {}; it takes no job for {}s)",
                    shared.config.host,
                    shared.config.data_root.display(),
                    pause.as_secs()
                ),
                retry: Retry::Transient,
            }
        }
        err => JobFailure {
            reason: err.to_string(),
            retry: Retry::Never,
        },
    })?;
    shared.data_pause.found();
    // A job's `model.init` weights are its starting point; a checkpoint replaces every variable,
    // so a resumed job does not read them.
    let build = || match &*data {
        Prepared::Memory(memory) => Trainer::new(spec, memory, device),
        Prepared::Files(files) => {
            Trainer::streaming(spec, Arc::clone(files), device, shared.loader_threads)
        }
    };
    let start = || {
        let trainer = build();
        trainer
            .load_init(&shared.config.data_root)
            .map_err(|err| JobFailure {
                reason: format!("{err} (on worker host {})", shared.config.host),
                // A missing, damaged or mismatched weights file fails every attempt alike.
                retry: Retry::Never,
            })?;
        Ok(trainer)
    };
    let Some(bytes) = resume_from else {
        return start();
    };
    let mut trainer = build();
    if let Err(err) = trainer.resume(&bytes) {
        tracing::warn!(job = %spec.id, %err, "cannot resume from the checkpoint; starting from scratch");
        return start();
    }
    tracing::info!(job = %spec.id, epoch = trainer.epoch(), "resumed from a checkpoint");
    Ok(trainer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ltsweep_domain::SweepSpec;
    use tch::{Kind, Tensor};

    #[test]
    fn a_trainer_out_of_memory_fails_retryably_naming_the_batch_size() {
        let spec = SweepSpec::parse(
            "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[model]\narch = \"resnet50\"\n[train]\nbatch_size = 256",
        )
        .unwrap();
        let job = &spec.jobs()[0];
        // A real allocation libtorch refuses: 4 PiB of float32.
        let failure = train_caught(job, || {
            let _ = Tensor::zeros([1 << 50], (Kind::Float, Device::Cpu));
            unreachable!("the allocation succeeded")
        })
        .unwrap_err();
        assert_eq!(failure.retry, Retry::Transient);
        assert!(
            failure
                .reason
                .starts_with("out of memory at batch size 256 (resnet50 in bf16, channels-last): lower train.batch_size"),
            "{}",
            failure.reason
        );
        assert!(
            failure
                .reason
                .ends_with("you tried to allocate 4503599627370496 bytes. Error code 12 (Cannot allocate memory)"),
            "{}",
            failure.reason
        );
        let other = train_caught(job, || panic!("a shape mismatch")).unwrap_err();
        assert_eq!(other.reason, "the trainer failed: a shape mismatch");
    }
}
