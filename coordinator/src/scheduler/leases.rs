//! The lease life cycle: heartbeats renew, deadlines expire, a restart or a stalled store
//! renews every live lease, and a presented lease is checked (fencing). Checkpoints are
//! uploaded and recorded under a live lease.

use ltsweep_domain::{EpochMetrics, JobId, JobState};

use super::plan::{Change, Planned, ProgressAnswer};
use super::shared::Job;
use super::state::{Checkpoint, Counters, LeaseEnd, LeaseId, WorkerId};
use super::{Result, Scheduler, SchedulerError};

/// A worker's last-seen time is recorded (and committed) at most this often, so that bare
/// heartbeats do not each cost a write.
const SEEN_RESOLUTION_MS: u64 = 1_000;

/// What a lease id presented by a worker is to its job.
pub(super) enum LeaseStatus {
    Live,
    Ended(LeaseEnd),
}

impl Scheduler {
    /// A heartbeat, with the metrics of a finished epoch or without. Renews the lease; answers
    /// `cancel` when the job's sweep was cancelled.
    pub fn progress(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        metrics: Option<&EpochMetrics>,
    ) -> Result<Planned<ProgressAnswer>> {
        let (job_id, job, status) = self.lease_status(worker, lease)?;
        match status {
            LeaseStatus::Live => {}
            LeaseStatus::Ended(LeaseEnd::Cancelled) => {
                return Ok(Planned::unchanged(ProgressAnswer {
                    cancel: true,
                    deadline_ms: 0,
                }));
            }
            LeaseStatus::Ended(_) => {
                return Err(stale(lease, "the job already ended with this lease"));
            }
        }
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        let deadline_ms = now_ms + self.timing.lease_ttl_ms;
        let reported_before = job
            .runtime
            .lease
            .as_ref()
            .map_or(0, |live| live.reported_epoch);
        match metrics {
            // A heartbeat, or an epoch this lease reported already (a retried call).
            None => changes.push(Change::LeaseRenewed {
                job: job_id,
                deadline_ms,
            }),
            Some(metrics) if metrics.epoch <= reported_before => {
                changes.push(Change::LeaseRenewed {
                    job: job_id,
                    deadline_ms,
                })
            }
            Some(metrics) => {
                let mut runtime = job.runtime.clone();
                if let Some(live) = &mut runtime.lease {
                    live.deadline_ms = deadline_ms;
                    live.reported_epoch = metrics.epoch;
                }
                if metrics.epoch <= runtime.max_epoch {
                    runtime.epochs_retrained += 1;
                }
                runtime.max_epoch = runtime.max_epoch.max(metrics.epoch);
                runtime.epoch = metrics.epoch;
                // Non-finite accuracies are not worth keeping (and do not survive JSON).
                if let Some(all) = metrics
                    .accuracy
                    .as_ref()
                    .and_then(|a| a.acc_all)
                    .filter(|a| a.is_finite())
                {
                    runtime.last_accuracy = Some(all);
                }
                self.read_rung(job, &mut runtime, metrics);
                changes.push(Change::JobUpdated {
                    job: job_id,
                    runtime,
                });
            }
        }
        Ok(Planned {
            answer: ProgressAnswer {
                cancel: false,
                deadline_ms,
            },
            changes,
        })
    }

    /// Takes back every lease whose deadline has passed: its job returns to the end of the
    /// queue, or fails when it used up its attempts. Answers how many leases expired.
    pub fn expire(&self, now_ms: u64) -> Planned<usize> {
        let mut changes = Vec::new();
        let mut next_queue_seq = self.counters.next_queue_seq;
        for (deadline_ms, job_id) in &self.deadlines {
            if *deadline_ms > now_ms {
                break;
            }
            let job = self.job_ref(job_id);
            let max_attempts = self.sweep_ref(job.sweep()).record.max_attempts;
            let mut runtime = job.runtime.clone();
            let worker = runtime
                .lease
                .take()
                .map(|lease| lease.worker.0)
                .unwrap_or_default();
            runtime.ended_lease = None;
            if runtime.attempts - runtime.retry_base >= max_attempts {
                runtime.state = JobState::Failed;
                runtime.error = Some(format!(
                    "lease expired on attempt {} of {max_attempts}: worker {worker} stopped reporting; retry the sweep's failed jobs to run it again",
                    runtime.attempts - runtime.retry_base
                ));
            } else {
                runtime.requeue(next_queue_seq);
                next_queue_seq += 1;
                runtime.error = Some(format!(
                    "lease expired on attempt {}: worker {worker} stopped reporting",
                    runtime.attempts
                ));
            }
            changes.push(Change::JobUpdated {
                job: job_id.clone(),
                runtime,
            });
        }
        let expired = changes.len();
        if next_queue_seq != self.counters.next_queue_seq {
            changes.push(Change::Counters(Counters {
                next_queue_seq,
                ..self.counters
            }));
        }
        self.settle(&mut changes);
        self.settle_search(&mut changes);
        Planned {
            answer: expired,
            changes,
        }
    }

    /// Gives every live lease a fresh deadline. On a restart, so that workers that kept
    /// training while the coordinator was down can still report with their lease.
    pub fn renew_leases(&mut self, now_ms: u64) {
        let running: Vec<JobId> = self.deadlines.iter().map(|(_, job)| job.clone()).collect();
        for job in running {
            let mut runtime = self.job_ref(&job).runtime.clone();
            if let Some(live) = &mut runtime.lease {
                live.deadline_ms = now_ms + self.timing.lease_ttl_ms;
            }
            self.update_job(&job, runtime);
        }
    }

    /// Records that a worker was seen now, when its last-seen time is due for a write.
    pub fn see(&self, now_ms: u64, worker: &WorkerId) -> Planned<()> {
        Planned {
            answer: (),
            changes: self.seen(worker, now_ms).into_iter().collect(),
        }
    }

    /// The job a checkpoint upload with this lease is for; only the job's live lease, by the
    /// worker it was granted to, may upload (or download).
    pub fn check_upload(&self, worker: &WorkerId, lease: &LeaseId) -> Result<JobId> {
        match self.lease_status(worker, lease)? {
            (job, _, LeaseStatus::Live) => Ok(job),
            (_, _, LeaseStatus::Ended(LeaseEnd::Cancelled)) => {
                Err(stale(lease, "the sweep was cancelled"))
            }
            (_, _, LeaseStatus::Ended(_)) => Err(stale(lease, "the job already ended")),
        }
    }

    /// Records a checkpoint that is safely on disk; it also renews the lease.
    pub fn record_checkpoint(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        checkpoint: Checkpoint,
    ) -> Result<Planned<u32>> {
        let job_id = self.check_upload(worker, lease)?;
        let mut runtime = self.job_ref(&job_id).runtime.clone();
        if let Some(live) = &mut runtime.lease {
            live.deadline_ms = now_ms + self.timing.lease_ttl_ms;
        }
        let epoch = checkpoint.epoch;
        runtime.checkpoint = Some(Box::new(checkpoint));
        Ok(Planned {
            answer: epoch,
            changes: vec![Change::JobUpdated {
                job: job_id,
                runtime,
            }],
        })
    }

    /// The latest checkpoint of the job a live lease is for.
    pub fn checkpoint_of(
        &self,
        worker: &WorkerId,
        lease: &LeaseId,
    ) -> Result<(JobId, Option<Checkpoint>)> {
        let job_id = self.check_upload(worker, lease)?;
        let checkpoint = self.job_ref(&job_id).runtime.checkpoint.as_deref().cloned();
        Ok((job_id, checkpoint))
    }

    /// The earliest deadline of a live lease.
    pub fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// What a presented lease is to its job, for the worker presenting it. Anything but the
    /// job's live lease or the lease its last attempt ended with, granted to this worker, gets
    /// the one refusal of [`SchedulerError::lease_not_yours`], whether the lease exists or not: the answer tells a
    /// worker nothing of other workers' leases.
    pub(super) fn lease_status(
        &self,
        worker: &WorkerId,
        lease: &LeaseId,
    ) -> Result<(JobId, &Job, LeaseStatus)> {
        let Some((job_id, job)) = lease
            .job()
            .and_then(|id| self.jobs.get(&id).map(|job| (id, job)))
        else {
            return Err(not_yours(lease));
        };
        // The holder is compared first: another worker's call never gets as far as comparing
        // the lease id itself.
        if let Some(live) = &job.runtime.lease
            && live.worker == *worker
            && live.id == *lease
        {
            return Ok((job_id, job, LeaseStatus::Live));
        }
        if let Some(ended) = &job.runtime.ended_lease
            && ended.worker == *worker
            && ended.id == *lease
        {
            return Ok((job_id, job, LeaseStatus::Ended(ended.how)));
        }
        Err(not_yours(lease))
    }

    pub(super) fn seen(&self, worker: &WorkerId, now_ms: u64) -> Option<Change> {
        let last = self.workers.get(worker)?.record.last_seen_ms;
        (now_ms.saturating_sub(last) >= SEEN_RESOLUTION_MS).then(|| Change::WorkerSeen {
            worker: worker.clone(),
            at_ms: now_ms,
        })
    }
}

fn not_yours(lease: &LeaseId) -> SchedulerError {
    SchedulerError::lease_not_yours(lease)
}

pub(super) fn stale(lease: &LeaseId, reason: &str) -> SchedulerError {
    SchedulerError::StaleLease {
        lease: lease.clone(),
        reason: reason.to_owned(),
    }
}
