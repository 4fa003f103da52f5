//! One leased job: training on a blocking thread, its epochs and checkpoints streamed to the
//! async side, heartbeats on a timer, and the outcome delivered with the lease id.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ltsweep_proto::client::Lease;
use ltsweep_proto::{EpochMetrics, JobSpec};
use tch::Device;
use tokio::sync::mpsc;

use super::lease::JobRunner;
use super::models::ModelUpload;
use super::{Registration, Shared};
use crate::data::{DataError, Prepared};
use crate::stage2;
use crate::train::{Observer, Outcome, Trainer, device_name};

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

    fn checkpoint(&mut self, epoch: u32, bytes: Vec<u8>) -> Result<(), String> {
        self.events
            .send(Event::Checkpoint(epoch, bytes))
            .map_err(|_| "the job's supervisor is gone".to_owned())
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
    pub(super) retryable: bool,
}

/// One leased job: train it, keep the lease alive, deliver the outcome.
pub(super) async fn run_job(
    shared: &Arc<Shared>,
    device: Device,
    registration: &Registration,
    lease: Lease,
    fuser: Option<&super::fuse::Fuser>,
) {
    let mut job = JobRunner {
        shared: Arc::clone(shared),
        worker_id: registration.worker_id.clone(),
        lease_id: lease.id.clone(),
        cancel: Arc::new(AtomicBool::new(false)),
        lost: false,
        cancelled_by_coordinator: false,
        pending: VecDeque::new(),
        checkpoint: None,
        model: None,
    };
    let spec = match lease.job {
        Ok(spec) => spec,
        Err(err) => {
            return job
                .fail(format!("the lease's job is malformed: {err}"), false, 0)
                .await;
        }
    };
    tracing::info!(job = %spec.id, plan = %spec.plan, seed = spec.seed, attempt = lease.attempt, device = %device_name(device), "job started");
    // A stage-2 job starts from its stage-1 job's model; a stage-1 job may resume.
    let start = if spec.stage2.is_some() {
        match job.download_model().await {
            Some(bytes) => Start::Stage2(bytes),
            None if job.lost => Start::Fresh,
            None => {
                return job
                    .fail(
                        "the stage-1 job's model could not be downloaded".to_owned(),
                        true,
                        0,
                    )
                    .await;
            }
        }
    } else if lease.checkpoint_epoch > 0 {
        job.download_checkpoint()
            .await
            .map_or(Start::Fresh, Start::Resume)
    } else {
        Start::Fresh
    };
    if job.lost {
        tracing::warn!(job = %spec.id, lease = %job.lease_id, "the lease was given to another worker; dropping the job");
        return;
    }

    let (events, mut received) = mpsc::unbounded_channel();
    let observer = ChannelObserver {
        events,
        cancel: Arc::clone(&job.cancel),
        shared: Arc::clone(shared),
        keep_model: lease.keep_model,
    };
    let trainer_shared = Arc::clone(shared);
    let trainer_spec = spec.clone();
    let mut training = match (start, fuser) {
        // A stage-2 job trains a classifier at most: it is never fused.
        (Start::Stage2(model), _) => tokio::task::spawn_blocking(move || {
            stage2_blocking(&trainer_shared, &trainer_spec, device, &model, observer)
        }),
        (start, Some(fuser)) => fuser.submit(trainer_spec, start.checkpoint(), observer),
        (start, None) => tokio::task::spawn_blocking(move || {
            train_blocking(
                &trainer_shared,
                &trainer_spec,
                device,
                start.checkpoint(),
                observer,
            )
        }),
    };
    let mut heartbeat = tokio::time::interval(registration.heartbeat);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutdown = shared.shutdown.clone();
    let mut events_open = true;
    let outcome = loop {
        tokio::select! {
            joined = &mut training => break joined,
            event = received.recv(), if events_open => match event {
                Some(Event::Epoch(metrics)) => {
                    job.pending.push_back(*metrics);
                    job.report().await;
                }
                Some(Event::Checkpoint(epoch, bytes)) => {
                    job.checkpoint = Some((epoch, bytes));
                    job.upload_checkpoint().await;
                }
                Some(Event::Model(bytes)) => job.model = Some(bytes),
                None => events_open = false,
            },
            _ = heartbeat.tick() => {
                job.upload_checkpoint().await;
                job.report().await;
            }
            _ = shutdown.changed() => {}
        }
        if job.lost || shared.stopping_now() {
            job.cancel.store(true, Ordering::Relaxed);
        }
    };
    // What the trainer sent last may still wait here, a preemption's checkpoint included.
    while let Ok(event) = received.try_recv() {
        match event {
            Event::Epoch(metrics) => job.pending.push_back(*metrics),
            Event::Checkpoint(epoch, bytes) => job.checkpoint = Some((epoch, bytes)),
            Event::Model(bytes) => job.model = Some(bytes),
        }
    }
    if matches!(outcome, Ok(Ok(Outcome::Finished(_)))) {
        // A finished job needs no checkpoint: nothing holds its last epochs back.
        job.checkpoint = None;
    }
    if !job.lost {
        if matches!(outcome, Ok(Ok(Outcome::Preempted { .. }))) {
            job.upload_checkpoint_until_stored().await;
        } else {
            job.upload_checkpoint().await;
        }
        job.report().await;
    }
    if job.lost {
        tracing::warn!(job = %spec.id, lease = %job.lease_id, "the lease was given to another worker; dropping the job");
        return;
    }
    match outcome {
        Ok(Ok(Outcome::Finished(result))) => {
            // The model goes first: a stage-2 job may start the moment this one succeeds.
            if lease.keep_model {
                let epochs = result.epochs.last().map_or(0, |e| e.epoch);
                match job.upload_model_until_stored(epochs).await {
                    ModelUpload::Stored => {}
                    ModelUpload::Dropped => return,
                    ModelUpload::Refused(reason) => return job.fail(reason, false, 0).await,
                }
            }
            job.complete(*result).await
        }
        Ok(Ok(Outcome::Diverged { epoch, reason })) => job.fail(reason, false, epoch).await,
        Ok(Ok(Outcome::Preempted { epoch })) => job.release(epoch).await,
        Ok(Ok(Outcome::Cancelled { epoch } | Outcome::Stopped { epoch })) => {
            if job.cancelled_by_coordinator {
                tracing::info!(job = %spec.id, epoch, "cancelled by the coordinator");
            } else {
                // Stopped at once: not the job's fault either; it goes on from the last
                // checkpoint the coordinator holds.
                job.release(epoch).await;
            }
        }
        Ok(Err(failure)) => job.fail(failure.reason, failure.retryable, 0).await,
        Err(joined) => {
            let reason = match joined.try_into_panic() {
                Ok(payload) => panic_message(payload.as_ref()),
                Err(err) => err.to_string(),
            };
            job.fail(failure_reason(&spec, &reason), true, 0).await;
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic".to_owned())
}

/// How a leased job starts.
enum Start {
    Fresh,
    /// From its latest checkpoint.
    Resume(Vec<u8>),
    /// A stage-2 job, from its stage-1 job's model.
    Stage2(Vec<u8>),
}

impl Start {
    fn checkpoint(self) -> Option<Vec<u8>> {
        match self {
            Start::Resume(bytes) => Some(bytes),
            _ => None,
        }
    }
}

/// Runs a stage-2 job on a blocking thread: the data, its stage-1 model, the method.
fn stage2_blocking(
    shared: &Shared,
    spec: &JobSpec,
    device: Device,
    model: &[u8],
    mut observer: ChannelObserver,
) -> Result<Outcome, JobFailure> {
    tch::set_num_threads(shared.threads_per_job);
    let method = spec
        .stage2
        .as_ref()
        .map(|s| s.method)
        .expect("a stage-2 job");
    let mut trainer = prepare_trainer(shared, spec, device, None)?;
    // A model that does not fit the network is a broken upload or another version's: the
    // same bytes would not fit on another worker either.
    trainer.load_model(model).map_err(|err| JobFailure {
        reason: format!("the stage-1 model does not fit this job's network: {err}"),
        retryable: false,
    })?;
    stage2::run(&trainer, method, &mut observer).map_err(|err| JobFailure {
        reason: err.to_string(),
        retryable: true,
    })
}

/// Runs on a blocking thread: loads the data, builds the trainer, resumes, trains.
fn train_blocking(
    shared: &Shared,
    spec: &JobSpec,
    device: Device,
    resume_from: Option<Vec<u8>>,
    mut observer: ChannelObserver,
) -> Result<Outcome, JobFailure> {
    // OpenMP's thread count is per thread: set it on the thread that trains.
    tch::set_num_threads(shared.threads_per_job);
    let mut trainer = prepare_trainer(shared, spec, device, resume_from)?;
    train_caught(spec, || trainer.run(&mut observer, None))
}

/// Runs a job's training, turning a panic (libtorch's errors are panics in tch's infallible
/// calls) into a retryable failure; one that ran out of memory says at which batch size and
/// precision, the settings to lower.
pub(super) fn train_caught(
    spec: &JobSpec,
    train: impl FnOnce() -> Result<Outcome, crate::train::TrainError>,
) -> Result<Outcome, JobFailure> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(train)) {
        Ok(outcome) => outcome.map_err(|err| JobFailure {
            retryable: err.is_retryable(),
            reason: err.to_string(),
        }),
        Err(payload) => Err(JobFailure {
            reason: failure_reason(spec, &panic_message(payload.as_ref())),
            retryable: true,
        }),
    }
}

/// What a failed trainer's message means for the person who reads it.
fn failure_reason(spec: &JobSpec, message: &str) -> String {
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
                retryable: true,
            }
        }
        err => JobFailure {
            reason: err.to_string(),
            retryable: false,
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
                retryable: false,
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
    use ltsweep_proto::SweepSpec;
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
        assert!(failure.retryable);
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
