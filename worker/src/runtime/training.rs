//! How a leased job trains, in one place: a stage-2 job's method on its stage-1 model, a job
//! alone on a blocking thread, or a member of the slot's fused array ([`Fuser`]). Every way
//! answers the same [`Outcome`] or [`JobFailure`], and reports through the same observer.

use std::sync::Arc;

use ltsweep_domain::JobSpec;
use ltsweep_proto::client::Retry;
use tch::Device;
use tokio::task::JoinHandle;

use super::Shared;
use super::blocking::{ChannelObserver, JobFailure, prepare_trainer, train_caught};
use super::fuse::Fuser;
use crate::stage2;
use crate::train::Outcome;

/// How a leased job starts.
pub(super) enum Start {
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

/// Starts the job's training, to the last epoch or to `stop_after` (a search's rung); the
/// handle answers its outcome, or a panic that escaped it.
pub(super) fn train(
    shared: &Arc<Shared>,
    spec: &JobSpec,
    device: Device,
    start: Start,
    observer: ChannelObserver,
    fuser: Option<&Fuser>,
    stop_after: Option<u32>,
) -> JoinHandle<Result<Outcome, JobFailure>> {
    let shared = Arc::clone(shared);
    let spec = spec.clone();
    // A fused group trains its members to one end: a job that stops at a rung trains alone.
    let fuser = fuser.filter(|_| stop_after.is_none());
    match (start, fuser) {
        // A stage-2 job trains a classifier at most: it is never fused.
        (Start::Stage2(model), _) => tokio::task::spawn_blocking(move || {
            stage2_blocking(&shared, &spec, device, &model, observer)
        }),
        (start, Some(fuser)) => fuser.submit(spec, start.checkpoint(), observer),
        (start, None) => tokio::task::spawn_blocking(move || {
            train_blocking(
                &shared,
                &spec,
                device,
                start.checkpoint(),
                observer,
                stop_after,
            )
        }),
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
        retry: Retry::Never,
    })?;
    // An image of list data that cannot be decoded fails every attempt alike.
    stage2::run(&trainer, method, &mut observer).map_err(|err| JobFailure {
        retry: err.retry(),
        reason: err.to_string(),
    })
}

/// Runs on a blocking thread: loads the data, builds the trainer, resumes, trains.
fn train_blocking(
    shared: &Shared,
    spec: &JobSpec,
    device: Device,
    resume_from: Option<Vec<u8>>,
    mut observer: ChannelObserver,
    stop_after: Option<u32>,
) -> Result<Outcome, JobFailure> {
    // OpenMP's thread count is per thread: set it on the thread that trains.
    tch::set_num_threads(shared.threads_per_job);
    let mut trainer = prepare_trainer(shared, spec, device, resume_from)?;
    train_caught(spec, || trainer.run(&mut observer, stop_after))
}
