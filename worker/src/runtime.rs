//! The worker runtime: registers with a coordinator, long-polls for one job per free slot,
//! trains each job on a blocking thread (never on the async runtime), and meanwhile sends
//! heartbeats on a timer of their own, epoch progress and checkpoints; then completes or fails
//! the job with its lease id.
//!
//! A coordinator that cannot be reached, or that is at one of its limits, is retried with
//! backoff while training goes on; only a refusal that no retry can change (a wrong token,
//! another protocol) stops the worker. A refused lease (it expired and the job went elsewhere)
//! drops the job; a completion is retried until the coordinator accepts or refuses it. A preempted worker checkpoints its jobs at the
//! next step and gives their leases back (see [`crate::preempt`]). A finished job whose lease
//! says so uploads its model before it completes; a stage-2 job downloads its stage-1 job's
//! model before it starts (`models`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ltsweep_domain::{DatasetConfig, WorkerId};
use ltsweep_proto::RemoteError;
use ltsweep_proto::client::{Connection, Polled, Registration as Announcement, WorkerApi};
use tch::Device;
use tokio::sync::watch;

use crate::backoff;
use crate::pause::DataPause;
use crate::train::device_name;
use ltsweep_data::{DataError, Prepared};

mod blocking;
mod checkpoint_transfers;
mod fuse;
mod job;
mod lease;
mod models;
mod training;

pub use fuse::{AUTO_CUDA, Fuse};

use job::run_job;

pub use crate::preempt::Shutdown;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    pub host: String,
    pub devices: Vec<Device>,
    pub slots_per_device: u32,
    /// The folder the spec's data paths are relative to.
    pub data_root: PathBuf,
    /// libtorch threads per job; `None` shares the cores among the slots.
    pub threads_per_job: Option<i32>,
    /// Loader threads per job of list data; `None`: the cores the slot owns.
    pub loader_threads: Option<usize>,
    /// Jobs of one shape a slot leases and trains as one fused array (see [`Fuse`]).
    pub fuse: Fuse,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A refusal no retry can change: a wrong token, a token without the worker role, another
    /// protocol version.
    #[error("the coordinator refused this worker: {0}")]
    Refused(#[from] RemoteError),
    #[error("stopped before registering")]
    StoppedBeforeRegistering,
}

/// The worker id and the timing the coordinator asked for.
#[derive(Clone, Debug)]
pub(super) struct Registration {
    worker_id: WorkerId,
    heartbeat: Duration,
    poll_timeout: Duration,
}

pub(super) struct Shared {
    client: WorkerApi,
    config: WorkerConfig,
    threads_per_job: i32,
    loader_threads: usize,
    registration: tokio::sync::Mutex<Option<Registration>>,
    data: Mutex<HashMap<String, Arc<Prepared>>>,
    data_pause: DataPause,
    shutdown: watch::Receiver<Shutdown>,
}

/// Runs until drained (or stopped), one task per slot.
pub async fn run(
    connection: &Connection,
    config: WorkerConfig,
    shutdown: watch::Receiver<Shutdown>,
) -> Result<(), RuntimeError> {
    let slots = config.devices.len() as u32 * config.slots_per_device;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let slot_cores = (cores / slots.max(1)).max(1);
    let shared = Arc::new(Shared {
        client: connection.worker_api(),
        loader_threads: config.loader_threads.unwrap_or(slot_cores as usize),
        threads_per_job: config.threads_per_job.unwrap_or(slot_cores as i32),
        config,
        registration: tokio::sync::Mutex::new(None),
        data: Mutex::new(HashMap::new()),
        data_pause: DataPause::default(),
        shutdown,
    });
    // Register before the slots start, so a refused worker says so at once.
    shared.registration().await?;
    let mut tasks = tokio::task::JoinSet::new();
    for &device in &shared.config.devices {
        for slot in 0..shared.config.slots_per_device {
            // A fused slot: N lease tasks feeding one fuser.
            let size = shared.config.fuse.size(device);
            let fuser = (size > 1).then(|| fuse::Fuser::start(Arc::clone(&shared), device, size));
            for _ in 0..size {
                tasks.spawn(run_slot(Arc::clone(&shared), device, slot, fuser.clone()));
            }
        }
    }
    let mut outcome = Ok(());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Err(err)) => outcome = Err(err),
            Err(err) => tracing::error!(%err, "a slot task failed"),
            Ok(Ok(())) => {}
        }
    }
    outcome
}

impl Shared {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow() != Shutdown::Run
    }

    fn stopping_now(&self) -> bool {
        *self.shutdown.borrow() == Shutdown::Now
    }

    fn preempting(&self) -> bool {
        *self.shutdown.borrow() == Shutdown::Preempt
    }

    /// The current registration, registering (again) when there is none.
    async fn registration(&self) -> Result<Registration, RuntimeError> {
        let mut guard = self.registration.lock().await;
        if let Some(registration) = guard.as_ref() {
            return Ok(registration.clone());
        }
        let announcement = Announcement {
            host: self.config.host.clone(),
            devices: self
                .config
                .devices
                .iter()
                .map(|&d| (device_name(d), self.config.slots_per_device))
                .collect(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            slurm: crate::placement::slurm_placement(),
        };
        let mut backoff = backoff::for_calls();
        loop {
            match self.client.register(&announcement).await {
                Ok(registered) => {
                    let registration = Registration {
                        worker_id: registered.worker,
                        heartbeat: registered.heartbeat.max(Duration::from_millis(50)),
                        poll_timeout: registered.poll_timeout,
                    };
                    tracing::info!(worker = %registration.worker_id, "registered");
                    crate::placement::mark_ready();
                    *guard = Some(registration.clone());
                    return Ok(registration);
                }
                // An outage, or a limit (a full worker table): room comes back.
                Err(err) if err.is_transient() || err.is_exhausted() => {
                    if self.stopping() {
                        return Err(RuntimeError::StoppedBeforeRegistering);
                    }
                    backoff::wait(&mut backoff, "register", &err).await;
                }
                // A wrong token, a token without the worker role, another protocol: retrying
                // cannot help.
                Err(err) => return Err(RuntimeError::Refused(err)),
            }
        }
    }

    /// Forgets a registration the coordinator no longer knows (its state was reset).
    async fn forget(&self, worker_id: &WorkerId) {
        let mut guard = self.registration.lock().await;
        if guard.as_ref().is_some_and(|r| r.worker_id == *worker_id) {
            *guard = None;
        }
    }

    /// The long-tailed data of a job (or the lists of list data), loaded once per worker and
    /// data set.
    fn data(&self, config: &DatasetConfig) -> Result<Arc<Prepared>, DataError> {
        let key = serde_json::to_string(config).expect("a data set config serialises");
        if let Some(data) = self.data.lock().expect("data cache").get(&key) {
            return Ok(Arc::clone(data));
        }
        let data = Arc::new(ltsweep_data::prepare(config, &self.config.data_root)?);
        let mut cache = self.data.lock().expect("data cache");
        // A few data sets at most: enough for a sweep's axes without holding every one.
        if cache.len() >= 4 {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&data));
        Ok(data)
    }
}

async fn run_slot(
    shared: Arc<Shared>,
    device: Device,
    slot: u32,
    fuser: Option<fuse::Fuser>,
) -> Result<(), RuntimeError> {
    let mut shutdown = shared.shutdown.clone();
    let mut backoff = backoff::for_calls();
    while !shared.stopping() {
        if let Some(until) = shared.data_pause.until() {
            tokio::select! {
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let registration = shared.registration().await?;
        // A fused slot's lease tasks take turns to poll (see `Fuser::turn`).
        let turn = match &fuser {
            Some(fuser) => tokio::select! {
                turn = fuser.turn() => Some(turn),
                _ = shutdown.changed() => continue,
            },
            None => None,
        };
        let device_label = device_name(device);
        let poll = shared.client.poll(
            &registration.worker_id,
            &device_label,
            registration.poll_timeout,
        );
        let polled = tokio::select! {
            polled = poll => polled,
            _ = shutdown.changed() => continue,
        };
        match polled {
            Ok(Polled::Leased(lease)) => {
                backoff.reset();
                let alone = lease.job.as_ref().is_ok_and(fuse::trains_alone);
                // Others may lease beside a job that can join a fused array.
                let turn = turn.filter(|_| alone);
                run_job(&shared, device, &registration, *lease, fuser.as_ref()).await;
                drop(turn);
            }
            Ok(Polled::NoWork) => backoff.reset(),
            Ok(Polled::UnknownWorker) => {
                tracing::warn!(worker = %registration.worker_id, "the coordinator does not know this worker; registering again");
                shared.forget(&registration.worker_id).await;
            }
            Err(err) if err.is_transient() || err.is_exhausted() => {
                backoff::wait(&mut backoff, "poll for work", &err).await;
            }
            Err(err) => return Err(RuntimeError::Refused(err)),
        }
    }
    tracing::debug!(device = %device_name(device), slot, "slot stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_why_and_keeps_the_coordinators_error() {
        let refused = RuntimeError::from(RemoteError::from(tonic::Status::unauthenticated(
            "a wrong token",
        )));
        assert_eq!(
            refused.to_string(),
            "the coordinator refused this worker: a wrong token"
        );
        let source = std::error::Error::source(&refused)
            .and_then(|source| source.downcast_ref::<RemoteError>())
            .expect("the coordinator's error is the source");
        assert!(!source.is_transient());
    }
}
