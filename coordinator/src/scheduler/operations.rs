//! The plans of sweep, worker and job calls: submit, register, poll, complete, fail, release,
//! cancel, retry.

use std::collections::HashSet;
use std::sync::Arc;

use ltsweep_domain::{JobId, JobResult, JobState, SweepId};

use super::leases::{LeaseStatus, stale};
use super::plan::{Announcement, Change, Lease, Planned, Registration, Submission, SubmitAnswer};
use super::state::{
    Counters, DeviceSlots, EndedLease, LeaseEnd, LeaseId, LiveLease, ReleaseReason, SweepRecord,
    WorkerId, WorkerRecord,
};
use super::{Result, Scheduler, SchedulerError};

// Operations: each plans from `&self`.
impl Scheduler {
    /// Parses and expands a sweep spec, then plans its submission: [`Submission::parse`]
    /// followed by [`Scheduler::submit_prepared`].
    pub fn submit(&self, now_ms: u64, spec_toml: &str) -> Result<Planned<SubmitAnswer>> {
        self.submit_prepared(now_ms, Submission::parse(spec_toml)?)
    }

    /// Submits a parsed spec. Submitting the same spec again is answered with the same sweep
    /// id, `created: false`, and changes nothing.
    pub fn submit_prepared(
        &self,
        now_ms: u64,
        submission: Submission,
    ) -> Result<Planned<SubmitAnswer>> {
        let Submission {
            spec_toml,
            name,
            max_attempts,
            keep_models,
            search,
            sweep: sweep_id,
            jobs,
        } = submission;
        let count = u32::try_from(jobs.len()).map_err(|_| {
            SchedulerError::invalid("spec_toml", "the grid has too many jobs: split the sweep")
        })?;
        if self.sweeps.contains_key(&sweep_id) {
            return Ok(Planned::unchanged(SubmitAnswer {
                sweep: sweep_id,
                jobs: count,
                created: false,
            }));
        }
        let mut seen = HashSet::with_capacity(jobs.len());
        for job in jobs.iter() {
            if !seen.insert(&job.id) || self.jobs.contains_key(&job.id) {
                return Err(SchedulerError::invalid(
                    "spec_toml",
                    format!(
                        "the grid holds job {} twice: list each loss plan and axis value once",
                        job.label()
                    ),
                ));
            }
        }
        let first_queue_seq = self.counters.next_queue_seq;
        // Stage-2 jobs wait for their stage-1 jobs out of the queue.
        let queued = jobs.iter().filter(|job| job.stage2.is_none()).count() as u64;
        let counters = Counters {
            next_queue_seq: first_queue_seq + queued,
            ..self.counters
        };
        Ok(Planned {
            answer: SubmitAnswer {
                sweep: sweep_id.clone(),
                jobs: count,
                created: true,
            },
            changes: vec![
                Change::SweepSubmitted {
                    spec_toml: spec_toml.into(),
                    sweep: SweepRecord {
                        id: sweep_id,
                        name,
                        submitted_ms: now_ms,
                        max_attempts,
                        cancelled: false,
                        keep_models,
                        search,
                    },
                    jobs,
                    first_queue_seq,
                },
                Change::Counters(counters),
            ],
        })
    }

    /// Registers a worker under a new id, known from now on by its secret (`secret_sha256`,
    /// the SHA-256 the coordinator keeps of it); a worker of another protocol version is
    /// refused.
    pub fn register_worker(
        &self,
        now_ms: u64,
        host: &str,
        devices: Vec<DeviceSlots>,
        protocol_version: u32,
        version: &str,
        secret_sha256: &str,
    ) -> Result<Planned<Registration>> {
        let announcement = Announcement {
            host: host.to_owned(),
            devices,
            protocol_version,
            version: version.to_owned(),
            slurm: None,
        };
        self.register_placed_worker(now_ms, announcement, secret_sha256)
    }

    /// [`Scheduler::register_worker`] for a worker that may say which Slurm job it runs in.
    pub fn register_placed_worker(
        &self,
        now_ms: u64,
        announcement: Announcement,
        secret_sha256: &str,
    ) -> Result<Planned<Registration>> {
        let Announcement {
            host,
            devices,
            protocol_version,
            version,
            slurm,
        } = announcement;
        if protocol_version != ltsweep_proto::PROTOCOL_VERSION {
            return Err(SchedulerError::VersionMismatch {
                worker: protocol_version,
                coordinator: ltsweep_proto::PROTOCOL_VERSION,
            });
        }
        if secret_sha256.is_empty() || self.secrets.contains_key(secret_sha256) {
            return Err(SchedulerError::invalid(
                "worker_secret",
                "empty or already another worker's: draw a fresh secret for each registration",
            ));
        }
        let ordinal = self.counters.next_worker;
        let id = WorkerId(format!("w-{ordinal}"));
        Ok(Planned {
            answer: Registration {
                worker: id.clone(),
                timing: self.timing,
            },
            changes: vec![
                Change::WorkerRegistered(WorkerRecord {
                    id,
                    ordinal,
                    host,
                    devices,
                    version,
                    registered_ms: now_ms,
                    last_seen_ms: now_ms,
                    slurm,
                    secret_sha256: secret_sha256.to_owned(),
                }),
                Change::Counters(Counters {
                    next_worker: ordinal + 1,
                    ..self.counters
                }),
            ],
        })
    }

    /// Leases the first pending job to `worker`, or answers `None` when the queue is empty.
    pub fn poll(&self, now_ms: u64, worker: &WorkerId) -> Result<Planned<Option<Lease>>> {
        if !self.workers.contains_key(worker) {
            return Err(SchedulerError::NotFound {
                kind: "worker",
                id: worker.to_string(),
                hint: "register again (the coordinator does not know this worker id)",
            });
        }
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        // The first queued job a search's budget admits; a searched sweep's configurations
        // that the budget cannot start are stopped on the way.
        let mut stopped: HashSet<JobId> = HashSet::new();
        let mut next = None;
        for job_id in self.queue.values() {
            if stopped.contains(job_id) {
                continue;
            }
            let job = self.job_ref(job_id);
            if self.admits(job, &changes) {
                next = Some(job_id);
                break;
            }
            self.stop_unstarted(job.sweep(), &mut changes);
            stopped.extend(changes.iter().filter_map(|change| match change {
                Change::JobUpdated { job, runtime } if runtime.state == JobState::Cancelled => {
                    Some(job.clone())
                }
                _ => None,
            }));
        }
        let Some(job_id) = next else {
            self.settle_search(&mut changes);
            return Ok(Planned {
                answer: None,
                changes,
            });
        };
        let job = self.job_ref(job_id);
        let id = self.lease_key.lease_id(self.counters.next_lease, job_id);
        let deadline_ms = now_ms + self.timing.lease_ttl_ms;
        let mut runtime = job.runtime.clone();
        runtime.state = JobState::Running;
        runtime.attempts += 1;
        runtime.queue_seq = None;
        runtime.lease = Some(Box::new(LiveLease {
            id: id.clone(),
            worker: worker.clone(),
            deadline_ms,
            reported_epoch: 0,
        }));
        runtime.ended_lease = None;
        runtime.worker = Some(worker.clone());
        runtime.error = None;
        let lease = Lease {
            id,
            deadline_ms,
            attempt: runtime.attempts,
            job: job.spec(),
            checkpoint_epoch: runtime.checkpoint.as_ref().map_or(0, |c| c.epoch),
            keep_model: self.keeps_model(job),
            stop_after: self.stop_after(job, &runtime),
        };
        changes.push(Change::JobUpdated {
            job: job_id.clone(),
            runtime,
        });
        changes.push(Change::Counters(Counters {
            next_lease: self.counters.next_lease + 1,
            ..self.counters
        }));
        if !stopped.is_empty() {
            self.settle_search(&mut changes);
        }
        Ok(Planned {
            answer: Some(lease),
            changes,
        })
    }

    /// Records a job's result. The lease that completed it may complete it again (the worker
    /// retries when an answer was lost): that is answered OK and changes nothing.
    pub fn complete(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        mut result: JobResult,
    ) -> Result<Planned<()>> {
        let (job_id, job, status) = self.lease_status(worker, lease)?;
        match status {
            LeaseStatus::Live => {}
            LeaseStatus::Ended(LeaseEnd::Completed) => return Ok(Planned::unchanged(())),
            LeaseStatus::Ended(LeaseEnd::Cancelled) => {
                return Err(stale(
                    lease,
                    "the sweep was cancelled, so the result is not kept",
                ));
            }
            LeaseStatus::Ended(LeaseEnd::Failed) => {
                return Err(stale(lease, "the job already failed with this lease"));
            }
            LeaseStatus::Ended(LeaseEnd::Released) => {
                return Err(stale(lease, "the worker gave this lease back"));
            }
        }
        if result.job_id != job_id {
            return Err(SchedulerError::invalid(
                "result.job_id",
                format!(
                    "names job `{}` but the lease is for job `{job_id}`: send the result of the leased job",
                    result.job_id
                ),
            ));
        }
        // Nothing a result holds is kept unless its job could have produced it.
        result
            .check_against(&job.spec())
            .map_err(|e| SchedulerError::invalid(e.field, e.problem))?;
        let mut runtime = job.runtime.clone();
        runtime.state = JobState::Succeeded;
        runtime.lease = None;
        runtime.ended_lease = Some(EndedLease {
            id: lease.clone(),
            worker: worker.clone(),
            how: LeaseEnd::Completed,
        });
        runtime.worker = Some(worker.clone());
        runtime.error = None;
        // The result is the last word on how far the run went, whatever progress got through.
        if let Some(last) = result.epochs.last() {
            runtime.epoch = last.epoch;
        }
        if let Some(all) = result.accuracy.acc_all.filter(|a| a.is_finite()) {
            runtime.last_accuracy = Some(all);
        }
        // The coordinator's own record of the run wins over whatever the worker filled in.
        result.sweep_id = job.sweep().clone();
        result.spec = job.spec();
        result.attempts = runtime.attempts;
        result.epochs_retrained = runtime.epochs_retrained;
        result.worker_id = Some(worker.clone());
        // A run that only made a lost model again: the job keeps its first result.
        let first_result = !std::mem::take(&mut runtime.rerun_for_model);
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        changes.push(Change::JobUpdated {
            job: job_id.clone(),
            runtime,
        });
        if first_result {
            changes.push(Change::ResultRecorded {
                job: job_id,
                result: Arc::new(result),
            });
        }
        self.settle(&mut changes);
        self.settle_search(&mut changes);
        Ok(Planned {
            answer: (),
            changes,
        })
    }

    /// A failed attempt: back to the end of the queue while `retryable` and attempts remain,
    /// else failed for good with `reason`. The same report again is answered OK.
    pub fn fail(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        reason: &str,
        retryable: bool,
    ) -> Result<Planned<()>> {
        let (job_id, job, status) = self.lease_status(worker, lease)?;
        match status {
            LeaseStatus::Live => {}
            // A worker that stops a cancelled job may well report it as failed.
            LeaseStatus::Ended(LeaseEnd::Failed | LeaseEnd::Cancelled) => {
                return Ok(Planned::unchanged(()));
            }
            LeaseStatus::Ended(LeaseEnd::Completed) => {
                return Err(stale(lease, "the job already succeeded with this lease"));
            }
            LeaseStatus::Ended(LeaseEnd::Released) => {
                return Err(stale(lease, "the worker gave this lease back"));
            }
        }
        let max_attempts = self.sweep_ref(job.sweep()).record.max_attempts;
        let mut runtime = job.runtime.clone();
        runtime.ended_lease = Some(EndedLease {
            id: lease.clone(),
            worker: worker.clone(),
            how: LeaseEnd::Failed,
        });
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        if retryable && runtime.attempts - runtime.retry_base < max_attempts {
            runtime.requeue(self.counters.next_queue_seq);
            runtime.error = Some(format!("attempt {} failed: {reason}", runtime.attempts));
            changes.push(Change::Counters(Counters {
                next_queue_seq: self.counters.next_queue_seq + 1,
                ..self.counters
            }));
        } else {
            runtime.state = JobState::Failed;
            runtime.lease = None;
            runtime.worker = Some(worker.clone());
            runtime.error = Some(reason.to_owned());
        }
        changes.push(Change::JobUpdated {
            job: job_id,
            runtime,
        });
        self.settle(&mut changes);
        self.settle_search(&mut changes);
        Ok(Planned {
            answer: (),
            changes,
        })
    }

    /// A lease given back by its worker: the job returns to the end of the queue at once (no
    /// wait for the lease to expire) and, preempted, the attempt does not count toward
    /// `max_attempts`; a searched job given back at the rung its lease trained to, with its
    /// checkpoint and reading there, pauses instead (see `search`). The same release again is
    /// answered OK; any other stale lease changes nothing.
    pub fn release(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        reason: ReleaseReason,
    ) -> Result<Planned<()>> {
        let (job_id, job, status) = self.lease_status(worker, lease)?;
        match status {
            LeaseStatus::Live => {}
            LeaseStatus::Ended(LeaseEnd::Released) => return Ok(Planned::unchanged(())),
            LeaseStatus::Ended(_) => {
                return Err(stale(lease, "the job already ended with this lease"));
            }
        }
        let mut runtime = job.runtime.clone();
        let paused = self.pauses_at_rung(job, &runtime);
        runtime.ended_lease = Some(EndedLease {
            id: lease.clone(),
            worker: worker.clone(),
            how: LeaseEnd::Released,
        });
        let mut changes: Vec<Change> = self.seen(worker, now_ms).into_iter().collect();
        match (paused, reason) {
            (Some(rung), _) => {
                // Stopping at the rung is the search's doing: not an attempt, nor a preemption.
                runtime.retry_base += 1;
                runtime.state = JobState::Pending;
                runtime.queue_seq = None;
                runtime.lease = None;
                runtime.worker = None;
                if let Some(search) = &mut runtime.search {
                    search.paused_at = Some(rung);
                }
                // Status, `watch` and the page show a job's error as its note.
                runtime.error = Some(format!(
                    "waiting at the rung at epoch {rung} for its configuration to be promoted"
                ));
                changes.push(Change::JobUpdated {
                    job: job_id,
                    runtime,
                });
            }
            (None, ReleaseReason::Preempted) => {
                runtime.retry_base += 1;
                runtime.preemptions += 1;
                runtime.requeue(self.counters.next_queue_seq);
                changes.push(Change::JobUpdated {
                    job: job_id,
                    runtime,
                });
                changes.push(Change::Counters(Counters {
                    next_queue_seq: self.counters.next_queue_seq + 1,
                    ..self.counters
                }));
            }
        }
        self.settle(&mut changes);
        self.settle_search(&mut changes);
        Ok(Planned {
            answer: (),
            changes,
        })
    }

    /// Cancels a sweep's pending and running jobs; a running job's worker learns it from the
    /// answer to its next progress report. Answers how many jobs were cancelled.
    pub fn cancel(&self, sweep: &SweepId) -> Result<Planned<u32>> {
        let record = self.sweep_or_not_found(sweep)?;
        let mut changes = Vec::new();
        for job_id in &record.jobs {
            let job = self.job_ref(job_id);
            let mut runtime = job.runtime.clone();
            match runtime.state {
                JobState::Pending => runtime.queue_seq = None,
                JobState::Running => {
                    if let Some(live) = runtime.lease.take() {
                        runtime.ended_lease = Some(EndedLease {
                            id: live.id,
                            worker: live.worker,
                            how: LeaseEnd::Cancelled,
                        });
                    }
                }
                _ => continue,
            }
            runtime.state = JobState::Cancelled;
            changes.push(Change::JobUpdated {
                job: job_id.clone(),
                runtime,
            });
        }
        let cancelled = changes.len() as u32;
        if !record.record.cancelled {
            changes.push(Change::SweepCancelled {
                sweep: sweep.clone(),
                cancelled: true,
            });
        }
        Ok(Planned {
            answer: cancelled,
            changes,
        })
    }

    /// Returns a sweep's failed and cancelled jobs to the queue with a fresh attempt budget (a
    /// stage-2 job to wait for its stage-1 job, until that succeeded); the sweep is no longer
    /// cancelled. Answers how many jobs were requeued.
    pub fn retry_failed(&self, sweep: &SweepId) -> Result<Planned<u32>> {
        let record = self.sweep_or_not_found(sweep)?;
        let mut changes = Vec::new();
        let mut next_queue_seq = self.counters.next_queue_seq;
        for job_id in &record.jobs {
            let job = self.job_ref(job_id);
            if !matches!(job.runtime.state, JobState::Failed | JobState::Cancelled) {
                continue;
            }
            let mut runtime = job.runtime.clone();
            runtime.requeue(next_queue_seq);
            next_queue_seq += 1;
            runtime.retry_base = runtime.attempts;
            // A cancelled job's old lease is now simply stale.
            runtime.ended_lease = None;
            runtime.error = None;
            changes.push(Change::JobUpdated {
                job: job_id.clone(),
                runtime,
            });
        }
        let requeued = changes.len() as u32;
        if next_queue_seq != self.counters.next_queue_seq {
            changes.push(Change::Counters(Counters {
                next_queue_seq,
                ..self.counters
            }));
        }
        if record.record.cancelled {
            changes.push(Change::SweepCancelled {
                sweep: sweep.clone(),
                cancelled: false,
            });
        }
        // A stage-2 job whose stage-1 job has not succeeded waits for it instead.
        self.settle(&mut changes);
        Ok(Planned {
            answer: requeued,
            changes,
        })
    }
}
