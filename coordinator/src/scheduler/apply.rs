//! Applying committed changes, and rebuilding the state the store read back (recovery): the
//! derived indices (queue, deadlines, worker leases, sweep counts) follow every update.

use std::sync::Arc;

use ltsweep_domain::{JobId, JobSpec, SweepId};

use super::plan::{Change, initial_runtimes};
use super::shared::Job;
use super::state::{Counters, JobRuntime, Sweep, SweepCounts, SweepRecord, Worker};
use super::{Scheduler, shared};

impl Scheduler {
    /// Performs committed changes in memory. Changes come from this scheduler's own plans (or
    /// the store's records of them), so they cannot fail.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::SweepSubmitted {
                    sweep,
                    jobs,
                    first_queue_seq,
                    ..
                } => {
                    let runtimes = initial_runtimes(jobs, *first_queue_seq);
                    self.insert_sweep(sweep.clone(), jobs.iter(), runtimes);
                }
                Change::SweepCancelled { sweep, cancelled } => {
                    if let Some(sweep) = self.sweeps.get_mut(sweep) {
                        sweep.record.cancelled = *cancelled;
                    }
                }
                Change::SweepDeleted { sweep } => self.remove_sweep(sweep),
                Change::JobUpdated { job, runtime } => self.update_job(job, runtime.clone()),
                Change::LeaseRenewed { job, deadline_ms } => {
                    let Some(runtime) = self.jobs.get(job).map(|j| &j.runtime) else {
                        continue;
                    };
                    if runtime.lease.is_some() {
                        let mut runtime = runtime.clone();
                        if let Some(live) = &mut runtime.lease {
                            live.deadline_ms = *deadline_ms;
                        }
                        self.update_job(job, runtime);
                    }
                }
                // Results are read from the store; the job's state says it has one.
                Change::ResultRecorded { .. } => {}
                Change::WorkerRegistered(record) => {
                    let running = match self.workers.remove(&record.id) {
                        Some(old) => {
                            self.secrets.remove(&old.record.secret_sha256);
                            old.running
                        }
                        None => Default::default(),
                    };
                    // A record without a secret (none is ever planned so) names no caller.
                    if !record.secret_sha256.is_empty() {
                        self.secrets
                            .insert(record.secret_sha256.clone(), record.id.clone());
                    }
                    self.workers.insert(
                        record.id.clone(),
                        Worker {
                            record: record.clone(),
                            running,
                        },
                    );
                }
                Change::WorkerExpired { worker } => {
                    if let Some(old) = self.workers.remove(worker) {
                        self.secrets.remove(&old.record.secret_sha256);
                    }
                }
                Change::WorkerSeen { worker, at_ms } => {
                    if let Some(worker) = self.workers.get_mut(worker) {
                        worker.record.last_seen_ms = *at_ms;
                    }
                }
                Change::Counters(counters) => self.counters = *counters,
            }
        }
    }

    /// Rebuilds a sweep read back from the store, its jobs in grid order.
    pub(crate) fn restore_sweep(&mut self, record: SweepRecord, jobs: Vec<(JobSpec, JobRuntime)>) {
        let (specs, runtimes): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        self.insert_sweep(record, specs.iter(), runtimes);
    }

    pub(crate) fn restore_counters(&mut self, counters: Counters) {
        self.counters = counters;
    }

    /// Inserts a sweep and its jobs, each spec with its runtime state in grid order. The specs
    /// are read twice (their shared settings first), so no second copy of the jobs is built.
    pub(super) fn insert_sweep<'a>(
        &mut self,
        record: SweepRecord,
        specs: impl Iterator<Item = &'a JobSpec> + Clone,
        runtimes: impl IntoIterator<Item = JobRuntime>,
    ) {
        let id = record.id.clone();
        self.sweep_order.push(id.clone());
        // In first: indexing a job counts it in its sweep.
        self.sweeps.insert(
            id.clone(),
            Sweep {
                record,
                jobs: Vec::new(),
                counts: SweepCounts::default(),
            },
        );
        let (shared, settings) = shared::split(&id, specs.clone());
        self.jobs.reserve(settings.len());
        let mut ids = Vec::with_capacity(settings.len());
        for ((spec, settings), runtime) in specs.zip(settings).zip(runtimes) {
            let job = Job::new(spec, Arc::clone(&shared), settings, runtime);
            self.index(&job.id, &id, &job.runtime, true);
            ids.push(job.id.clone());
            self.jobs.insert(job.id.clone(), job);
        }
        if let Some(sweep) = self.sweeps.get_mut(&id) {
            sweep.counts.total = ids.len() as u32;
            sweep.jobs = ids;
        }
    }

    pub(super) fn update_job(&mut self, id: &JobId, runtime: JobRuntime) {
        let Some(job) = self.jobs.get_mut(id) else {
            debug_assert!(false, "an update of unknown job {id}");
            return;
        };
        let old = std::mem::replace(&mut job.runtime, runtime.clone());
        let sweep = job.sweep().clone();
        self.index(id, &sweep, &old, false);
        self.index(id, &sweep, &runtime, true);
    }

    /// Adds a job's runtime to (or removes it from) the derived indices: queue, deadlines,
    /// worker leases, sweep counts.
    pub(super) fn index(&mut self, id: &JobId, sweep: &SweepId, runtime: &JobRuntime, add: bool) {
        if let Some(seq) = runtime.queue_seq {
            if add {
                self.queue.insert(seq, id.clone());
            } else {
                self.queue.remove(&seq);
            }
        }
        if let Some(live) = &runtime.lease {
            let key = (live.deadline_ms, id.clone());
            let worker = self.workers.get_mut(&live.worker);
            if add {
                self.deadlines.insert(key);
                if let Some(worker) = worker {
                    worker.running.insert(id.clone());
                }
            } else {
                self.deadlines.remove(&key);
                if let Some(worker) = worker {
                    worker.running.remove(id);
                }
            }
        }
        if let Some(sweep) = self.sweeps.get_mut(sweep) {
            let slot = sweep.counts.of_state_mut(runtime.state);
            if add {
                *slot += 1;
            } else {
                *slot -= 1;
            }
        }
    }
}
