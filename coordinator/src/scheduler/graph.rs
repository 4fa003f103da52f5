//! Stage-2 jobs and the models they start from.
//!
//! A stage-2 job depends on its stage-1 job (its parent): it is leased only once the parent
//! succeeded, and starts from the parent's final weights, which the parent's worker uploads
//! before it completes and the coordinator keeps as the parent's model.
//!
//! Every operation ends its plan with [`Scheduler::settle`], which puts each stage-2 job its
//! changes touch (or whose parent they touch) where the parent's planned state says it belongs:
//! queued once the parent succeeded, waiting (pending, out of the queue) while the parent is
//! pending or running, failed with the parent's reason once the parent failed for good. So
//! cancel, retry, expiry and failure follow the graph without knowing of it.
//!
//! A model is kept while a stage-2 job of its job has not succeeded (a failed one may be
//! retried), for good when the sweep says `keep_models`, and goes with the sweep. A stage-2 job
//! that finds its parent's model lost sends the parent back to the queue to train again (its
//! recorded result stays: a job has one result, ever) and waits with its siblings.

use std::collections::BTreeSet;

use ltsweep_domain::{JobId, JobState, SweepId};

use super::leases::{LeaseStatus, stale};
use super::plan::{Change, Planned};
use super::shared::Job;
use super::state::{EndedLease, JobRuntime, KeptModel, LeaseEnd, LeaseId, WorkerId};
use super::{Result, Scheduler, SchedulerError};

/// Where a leased stage-2 job's model comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSource {
    /// The stage-1 job.
    pub parent: JobId,
    /// Its model; `None` when the coordinator holds none.
    pub model: Option<KeptModel>,
}

impl Scheduler {
    /// Whether a job's final weights are to be kept: a stage-1 job with stage-2 jobs, or any
    /// stage-1 job of a sweep that keeps its models.
    pub fn keeps_model(&self, job: &Job) -> bool {
        job.parent().is_none()
            && (!job.children().is_empty() || self.sweep_ref(job.sweep()).record.keep_models)
    }

    /// Records a model that is safely on disk, under the job's live lease (before it
    /// completes); renews the lease. Answers the model it replaces, whose file goes once this
    /// is committed.
    pub fn record_model(
        &self,
        now_ms: u64,
        worker: &WorkerId,
        lease: &LeaseId,
        model: KeptModel,
    ) -> Result<Planned<Option<KeptModel>>> {
        let job_id = self.check_upload(worker, lease)?;
        let job = self.job_ref(&job_id);
        if !self.keeps_model(job) {
            return Err(SchedulerError::invalid(
                "lease_id",
                format!(
                    "job {job_id} keeps no model (no stage-2 job needs it and its sweep does not keep models): complete it without uploading one"
                ),
            ));
        }
        let mut runtime = job.runtime.clone();
        if let Some(live) = &mut runtime.lease {
            live.deadline_ms = now_ms + self.timing.lease_ttl_ms;
        }
        let previous = runtime.model.replace(Box::new(model)).map(|m| *m);
        Ok(Planned {
            answer: previous,
            changes: vec![Change::JobUpdated {
                job: job_id,
                runtime,
            }],
        })
    }

    /// The model a live lease's stage-2 job starts from.
    pub fn model_source(&self, worker: &WorkerId, lease: &LeaseId) -> Result<ModelSource> {
        let job_id = self.check_upload(worker, lease)?;
        let Some(parent) = self.job_ref(&job_id).parent() else {
            return Err(SchedulerError::invalid(
                "lease_id",
                format!("job {job_id} is a stage-1 job: it starts from no model"),
            ));
        };
        Ok(ModelSource {
            parent: parent.clone(),
            model: self.job_ref(parent).runtime.model.as_deref().cloned(),
        })
    }

    /// A leased stage-2 job found its stage-1 job's model lost (never uploaded, its file gone
    /// or damaged): the stage-1 job is queued to train again, only to make the model (its
    /// result stays), with a fresh attempt budget; the stage-2 job's lease ends as given back
    /// (no attempt counted) and it waits, with its siblings, for the new model. Answers the
    /// stage-1 job.
    pub fn model_lost(&self, worker: &WorkerId, lease: &LeaseId) -> Result<Planned<JobId>> {
        let (job_id, job, status) = self.lease_status(worker, lease)?;
        match status {
            LeaseStatus::Live => {}
            LeaseStatus::Ended(LeaseEnd::Cancelled) => {
                return Err(stale(lease, "the sweep was cancelled"));
            }
            LeaseStatus::Ended(_) => return Err(stale(lease, "the job already ended")),
        }
        let Some(parent_id) = job.parent().cloned() else {
            return Err(SchedulerError::invalid(
                "lease_id",
                format!("job {job_id} is a stage-1 job: it starts from no model"),
            ));
        };
        let mut changes = Vec::new();
        let mut counters = self.counters;
        let parent = self.job_ref(&parent_id);
        if parent.runtime.state == JobState::Succeeded {
            let mut runtime = parent.runtime.clone();
            runtime.requeue(counters.next_queue_seq);
            counters.next_queue_seq += 1;
            runtime.rerun_for_model = true;
            runtime.model = None;
            runtime.retry_base = runtime.attempts;
            runtime.error = Some(
                "its model was lost: training it again for its stage-2 jobs (its result stays)"
                    .to_owned(),
            );
            changes.push(Change::JobUpdated {
                job: parent_id.clone(),
                runtime,
            });
            changes.push(Change::Counters(counters));
        }
        let mut runtime = job.runtime.clone();
        let live = runtime.lease.take().expect("a live lease");
        runtime.ended_lease = Some(EndedLease {
            id: live.id,
            worker: live.worker,
            how: LeaseEnd::Released,
        });
        runtime.retry_base += 1;
        runtime.wait();
        runtime.error = Some(format!(
            "the model of stage-1 job {parent_id} was lost: waiting for it to be trained again"
        ));
        changes.push(Change::JobUpdated {
            job: job_id,
            runtime,
        });
        self.settle(&mut changes);
        Ok(Planned {
            answer: parent_id,
            changes,
        })
    }

    /// A job's kept model, for a user's download.
    pub fn kept_model(&self, sweep: &SweepId, job_id: &JobId) -> Result<KeptModel> {
        let record = self.sweep_or_not_found(sweep)?;
        let job = self
            .jobs
            .get(job_id)
            .filter(|job| job.sweep() == &record.record.id)
            .ok_or_else(|| SchedulerError::NotFound {
                kind: "job",
                id: job_id.to_string(),
                hint: "`ltsweep status SWEEP` lists the sweep's jobs",
            })?;
        if let Some(model) = &job.runtime.model {
            return Ok((**model).clone());
        }
        let keeps_for_good = self.sweep_ref(job.sweep()).record.keep_models;
        let why = if job.parent().is_some() {
            "a stage-2 job keeps none; ask for its stage-1 job's"
        } else if job.runtime.state != JobState::Succeeded {
            "it has not succeeded"
        } else if !keeps_for_good {
            "its sweep keeps a model only while a stage-2 job needs it: submit the sweep with `keep_models = true` to keep them all"
        } else {
            "its worker did not upload one, or it was lost"
        };
        Err(SchedulerError::Precondition(format!(
            "job {job_id} has no kept model: {why}"
        )))
    }

    /// Puts the stage-2 jobs that planned changes touch (or whose stage-1 jobs they touch)
    /// where their stage-1 job's planned state says they belong, and drops the models no
    /// stage-2 job needs any more. See the module docs.
    pub(super) fn settle(&self, changes: &mut Vec<Change>) {
        let mut parents: BTreeSet<JobId> = BTreeSet::new();
        for change in changes.iter() {
            let Change::JobUpdated { job, .. } = change else {
                continue;
            };
            let Some(known) = self.jobs.get(job) else {
                continue;
            };
            if let Some(parent) = known.parent() {
                parents.insert(parent.clone());
            } else if !known.children().is_empty() {
                parents.insert(job.clone());
            }
        }
        if parents.is_empty() {
            return;
        }
        let mut counters = changes
            .iter()
            .rev()
            .find_map(|change| match change {
                Change::Counters(counters) => Some(*counters),
                _ => None,
            })
            .unwrap_or(self.counters);
        let first_free = counters.next_queue_seq;
        for parent_id in parents {
            let parent_job = self.job_ref(&parent_id);
            let parent = planned(changes, parent_job);
            let ready = parent.state == JobState::Succeeded;
            let mut all_succeeded = true;
            for child_id in parent_job.children() {
                let child_job = self.job_ref(child_id);
                let mut child = planned(changes, child_job);
                all_succeeded &= child.state == JobState::Succeeded;
                if child.state != JobState::Pending {
                    continue;
                }
                let before = child.clone();
                match parent.state {
                    JobState::Succeeded if child.queue_seq.is_none() => {
                        child.queue_seq = Some(counters.next_queue_seq);
                        counters.next_queue_seq += 1;
                        child.error = None;
                    }
                    JobState::Pending | JobState::Running if child.queue_seq.is_some() => {
                        child.wait();
                    }
                    JobState::Failed => {
                        child.state = JobState::Failed;
                        child.queue_seq = None;
                        child.error = Some(format!(
                            "its stage-1 job {parent_id} failed: {}",
                            parent.error.as_deref().unwrap_or("no reason given")
                        ));
                    }
                    _ => {}
                }
                if child != before {
                    upsert(changes, child_id, child);
                }
            }
            let keeps_for_good = self.sweep_ref(parent_job.sweep()).record.keep_models;
            if ready && all_succeeded && !keeps_for_good && parent.model.is_some() {
                let mut parent = parent;
                parent.model = None;
                upsert(changes, &parent_id, parent);
            }
        }
        if counters.next_queue_seq != first_free {
            changes.push(Change::Counters(counters));
        }
    }
}

/// A job's runtime as the planned changes leave it.
pub(super) fn planned(changes: &[Change], job: &Job) -> JobRuntime {
    changes
        .iter()
        .rev()
        .find_map(|change| match change {
            Change::JobUpdated { job: id, runtime } if *id == job.id => Some(runtime.clone()),
            _ => None,
        })
        .unwrap_or_else(|| job.runtime.clone())
}

/// Replaces a job's last planned update, or plans one.
pub(super) fn upsert(changes: &mut Vec<Change>, job: &JobId, runtime: JobRuntime) {
    let last = changes.iter_mut().rev().find_map(|change| match change {
        Change::JobUpdated { job: id, runtime } if id == job => Some(runtime),
        _ => None,
    });
    match last {
        Some(slot) => *slot = runtime,
        None => changes.push(Change::JobUpdated {
            job: job.clone(),
            runtime,
        }),
    }
}
