//! `--fuse N|auto`: a slot leases up to N jobs and trains those of one shape as one fused array
//! ([`crate::fused`]).
//!
//! Each leased job keeps its own supervisor in [`super::job::run_job`] (lease, heartbeats, progress,
//! checkpoints, completion); only its training is handed here. The slot's N lease tasks poll as
//! one-job slots do; the jobs that arrive within [`GATHER`] of the first (or until N have) are
//! grouped by shape ([`ShapeKey`]) and by how far they have trained, and each group trains on a
//! thread of its own, fused when it has more than one member. A member whose lease is lost or
//! whose sweep is cancelled sees its observer cancel it and leaves the array at the next step
//! boundary; a preemption stops every member at the next step, each with its checkpoint.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ltsweep_domain::{DatasetKind, JobSpec};
use ltsweep_proto::client::Retry;
use tch::Device;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Shared;
use super::blocking::{ChannelObserver, JobFailure, prepare_trainer, train_caught};
use crate::fused::{FusedTrainer, ShapeKey};
use crate::train::{Observer, Outcome, Trainer};

/// How long the first leased job of a fused slot waits for others to join it.
const GATHER: Duration = Duration::from_secs(3);

/// Jobs per fused array under `--fuse auto` on a GPU: the paper's 27-job study in one array
/// with room to spare; a CIFAR ResNet-20 at batch 128 takes well under 1 GiB per member.
pub const AUTO_CUDA: u32 = 32;

/// Whether and how widely a worker fuses jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fuse {
    /// One job per slot.
    #[default]
    Off,
    /// Up to this many jobs of one shape per slot, on any device.
    Up(u32),
    /// Off on the CPU (a fused array gains little there: the cores are busy with one job),
    /// [`AUTO_CUDA`] on a GPU.
    Auto,
}

impl Fuse {
    /// Jobs per slot on `device`; 1 is no fusion.
    pub fn size(self, device: Device) -> u32 {
        match self {
            Fuse::Off => 1,
            Fuse::Up(n) => n,
            Fuse::Auto if device.is_cuda() => AUTO_CUDA,
            Fuse::Auto => 1,
        }
    }
}

impl FromStr for Fuse {
    type Err = String;

    /// `off`, `auto`, or a number of jobs (1 is off).
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" => Ok(Fuse::Off),
            "auto" => Ok(Fuse::Auto),
            _ => match text.parse::<u32>() {
                Ok(0) | Err(_) => Err(format!(
                    "`{text}` is not a fuse setting: `off`, `auto` or a number of jobs (1 or more)"
                )),
                Ok(1) => Ok(Fuse::Off),
                Ok(n) => Ok(Fuse::Up(n)),
            },
        }
    }
}

/// A leased job's training, handed to the slot's fuser.
struct Request {
    spec: JobSpec,
    resume_from: Option<Vec<u8>>,
    observer: ChannelObserver,
    reply: oneshot::Sender<Result<Outcome, JobFailure>>,
}

/// Whether a job trains alone even in a fused slot: an ImageNet network would not fit N times
/// on one GPU, a job that streams list data decodes each image on the CPU per job, so
/// fusing it would share nothing, and a fused array has no mixed loss.
pub(super) fn trains_alone(spec: &JobSpec) -> bool {
    !spec.model.arch.is_cifar()
        || spec.dataset.kind == DatasetKind::List
        || !spec.train.augmentation.mix.is_none()
}

/// The trainer side of a fused slot.
#[derive(Clone)]
pub(super) struct Fuser {
    requests: mpsc::UnboundedSender<Request>,
    /// The slot's turn to lease: its lease tasks poll one at a time, and a task that leased a
    /// job which [trains alone](trains_alone) keeps the turn until that job ends, so the slot
    /// never holds leases of jobs it would not train yet.
    turn: Arc<Semaphore>,
}

impl Fuser {
    /// Starts the slot's gathering task; `size` jobs at most per array.
    pub(super) fn start(shared: Arc<Shared>, device: Device, size: u32) -> Self {
        let (requests, received) = mpsc::unbounded_channel();
        tokio::spawn(gather(shared, device, size as usize, received));
        Self {
            requests,
            turn: Arc::new(Semaphore::new(1)),
        }
    }

    /// Waits for the slot's turn to lease; the permit is given back when dropped.
    pub(super) async fn turn(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.turn)
            .acquire_owned()
            .await
            .expect("the turn's semaphore is never closed")
    }

    /// Trains the job in the next array; the handle ends with its outcome.
    pub(super) fn submit(
        &self,
        spec: JobSpec,
        resume_from: Option<Vec<u8>>,
        observer: ChannelObserver,
    ) -> JoinHandle<Result<Outcome, JobFailure>> {
        let (reply, outcome) = oneshot::channel();
        let sent = self.requests.send(Request {
            spec,
            resume_from,
            observer,
            reply,
        });
        tokio::spawn(async move {
            if sent.is_err() {
                return Err(gone());
            }
            outcome.await.unwrap_or_else(|_| Err(gone()))
        })
    }
}

fn gone() -> JobFailure {
    JobFailure {
        reason: "the fused trainer stopped before the job ended".to_owned(),
        retry: Retry::Transient,
    }
}

/// Collects the jobs that arrive together and starts their training.
async fn gather(
    shared: Arc<Shared>,
    device: Device,
    size: usize,
    mut received: mpsc::UnboundedReceiver<Request>,
) {
    while let Some(first) = received.recv().await {
        let mut requests = vec![first];
        let deadline = tokio::time::Instant::now() + GATHER;
        while requests.len() < size {
            tokio::select! {
                request = received.recv() => match request {
                    Some(request) => requests.push(request),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        let shared = Arc::clone(&shared);
        tokio::task::spawn_blocking(move || train_requests(&shared, device, requests));
    }
}

/// Builds (and resumes) each job's trainer, then trains each group of one shape and position
/// on a thread of its own.
fn train_requests(shared: &Shared, device: Device, requests: Vec<Request>) {
    tch::set_num_threads(shared.threads_per_job);
    let mut groups: Vec<Vec<Member>> = Vec::new();
    for request in requests {
        let trainer = match prepare_trainer(shared, &request.spec, device, request.resume_from) {
            Ok(trainer) => trainer,
            Err(failure) => {
                let _ = request.reply.send(Err(failure));
                continue;
            }
        };
        let member = Member {
            trainer,
            observer: request.observer,
            reply: request.reply,
        };
        let alone = trains_alone(member.trainer.job());
        match groups
            .iter_mut()
            .find(|g| !alone && !trains_alone(g[0].trainer.job()) && g[0].joins(&member))
        {
            Some(group) => group.push(member),
            None => groups.push(vec![member]),
        }
    }
    std::thread::scope(|scope| {
        for group in groups {
            scope.spawn(move || {
                tch::set_num_threads(shared.threads_per_job);
                train_group(group);
            });
        }
    });
}

/// A job of a group that trains together: its trainer (built and resumed), what it reports
/// through, and where its outcome goes.
struct Member {
    trainer: Trainer,
    observer: ChannelObserver,
    reply: oneshot::Sender<Result<Outcome, JobFailure>>,
}

impl Member {
    /// Whether `other` can train in one array with this member: the same shape, at the same
    /// point of training.
    fn joins(&self, other: &Member) -> bool {
        ShapeKey::of(self.trainer.job()) == ShapeKey::of(other.trainer.job())
            && self.trainer.position() == other.trainer.position()
    }
}

fn train_group(group: Vec<Member>) {
    let mut trainers = Vec::with_capacity(group.len());
    let mut observers = Vec::with_capacity(group.len());
    let mut replies = Vec::with_capacity(group.len());
    for member in group {
        trainers.push(member.trainer);
        observers.push(member.observer);
        replies.push(member.reply);
    }
    if trainers.len() == 1 {
        let mut trainer = trainers.into_iter().next().expect("one");
        let spec = trainer.job().clone();
        let outcome = train_caught(&spec, || trainer.run(&mut observers[0], None));
        let _ = replies.into_iter().next().expect("one").send(outcome);
        return;
    }
    let ids: Vec<String> = trainers.iter().map(|t| t.job().id.to_string()).collect();
    tracing::info!(jobs = ?ids, "training as one fused array");
    let outcomes = FusedTrainer::new(trainers).and_then(|mut fused| {
        let mut refs: Vec<&mut dyn Observer> = observers
            .iter_mut()
            .map(|o| o as &mut dyn Observer)
            .collect();
        fused.run(&mut refs, None)
    });
    match outcomes {
        Ok(outcomes) => {
            for (reply, outcome) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(err) => {
            let reason = err.to_string();
            for reply in replies {
                let _ = reply.send(Err(JobFailure {
                    reason: reason.clone(),
                    retry: Retry::Transient,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuse_settings_parse_and_auto_is_off_on_the_cpu() {
        assert_eq!("off".parse::<Fuse>(), Ok(Fuse::Off));
        assert_eq!("1".parse::<Fuse>(), Ok(Fuse::Off));
        assert_eq!("9".parse::<Fuse>(), Ok(Fuse::Up(9)));
        assert!("0".parse::<Fuse>().unwrap_err().contains("`0`"));
        assert!("many".parse::<Fuse>().is_err());
        assert_eq!(Fuse::Auto.size(Device::Cpu), 1);
        assert_eq!(Fuse::Auto.size(Device::Cuda(0)), AUTO_CUDA);
        assert_eq!(Fuse::Up(4).size(Device::Cpu), 4);
    }
}
