//! One leased job's supervisor: its start (a checkpoint or a stage-1 model downloaded), its
//! training handed to [`super::training`], its epochs and checkpoints delivered as they come,
//! heartbeats on a timer, and the outcome delivered with the lease id.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ltsweep_proto::client::{Lease, Retry};

use tch::Device;
use tokio::sync::mpsc;

use super::blocking::{ChannelObserver, Event, failure_reason, panic_message};
use super::fuse::Fuser;
use super::lease::JobRunner;
use super::models::ModelUpload;
use super::training::{self, Start};
use super::{Registration, Shared};
use crate::train::{Outcome, device_name};

/// One leased job: train it, keep the lease alive, deliver the outcome.
pub(super) async fn run_job(
    shared: &Arc<Shared>,
    device: Device,
    registration: &Registration,
    lease: Lease,
    fuser: Option<&Fuser>,
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
                .fail(format!("the lease's job is malformed: {err}"), Retry::Never)
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
                        Retry::Transient,
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
    let mut training = training::train(
        shared,
        &spec,
        device,
        start,
        observer,
        fuser,
        lease.stop_after,
    );
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
                    job.checkpoint_taken(epoch, bytes);
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
            Event::Checkpoint(epoch, bytes) => job.checkpoint_taken(epoch, bytes),
            Event::Model(bytes) => job.model = Some(bytes),
        }
    }
    if matches!(outcome, Ok(Ok(Outcome::Finished(_)))) {
        // A finished job needs no checkpoint: nothing holds its last epochs back.
        job.checkpoint = None;
    }
    if !job.lost {
        // A preempted job, or one stopped at a search's rung, resumes from this checkpoint.
        if matches!(
            outcome,
            Ok(Ok(Outcome::Preempted { .. } | Outcome::Stopped { .. }))
        ) {
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
                    ModelUpload::Refused(reason) => return job.fail(reason, Retry::Never).await,
                }
            }
            job.complete(*result).await
        }
        Ok(Ok(Outcome::Diverged { epoch, reason })) => job.diverged(reason, epoch).await,
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
        Ok(Err(failure)) => job.fail(failure.reason, failure.retry).await,
        Err(joined) => {
            let reason = match joined.try_into_panic() {
                Ok(payload) => panic_message(payload.as_ref()),
                Err(err) => err.to_string(),
            };
            job.fail(failure_reason(&spec, &reason), Retry::Transient)
                .await;
        }
    }
}
