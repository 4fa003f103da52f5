//! Reading the whole state back at start ([`Store::load`]), a table at a time.

use std::collections::{HashMap, HashSet};

use ltsweep_domain::{JobId, JobSpec, SweepId, SweepSpec};
use ltsweep_proto::pb;
use prost::Message;
use rusqlite::OptionalExtension;

use super::{Result, Store, get_u64};
use crate::error::CoordinatorError;
use crate::scheduler::{
    Change, Counters, DeviceSlots, JobRuntime, LeaseKey, Scheduler, SearchPlan, SlurmPlacement,
    SweepRecord, Timing, WorkerId, WorkerRecord,
};

/// Each sweep's jobs in grid order, with their runtime state.
type JobsBySweep = HashMap<SweepId, Vec<(JobSpec, JobRuntime)>>;

impl Store {
    /// Rebuilds the whole scheduler. Running jobs keep their leases, with deadlines reset to
    /// `now_ms` + the lease ttl.
    pub fn load(&self, timing: Timing, lease_key: LeaseKey, now_ms: u64) -> Result<Scheduler> {
        let mut scheduler = Scheduler::new(timing, lease_key);
        scheduler.restore_counters(self.load_counters()?);
        for worker in self.load_workers()? {
            scheduler.apply(&[Change::WorkerRegistered(worker)]);
        }
        // Results stay on disk (reports read them, see `read_results`); only which jobs have
        // one is checked against their states.
        let mut results = self.load_result_ids()?;
        let mut jobs = self.load_jobs(&mut results)?;
        for sweep in self.load_sweeps()? {
            let entries = jobs.remove(&sweep.id).unwrap_or_default();
            scheduler.restore_sweep(sweep, entries);
        }
        if let Some(job) = results.iter().next() {
            return Err(self.corrupt(format!("a result of unknown job {job}")));
        }
        if let Some(sweep) = jobs.keys().next() {
            return Err(self.corrupt(format!("jobs of unknown sweep {sweep}")));
        }
        scheduler.renew_leases(now_ms);
        scheduler
            .check_invariants()
            .map_err(|e| self.corrupt(format!("inconsistent state: {e}")))?;
        Ok(scheduler)
    }

    fn load_counters(&self) -> Result<Counters> {
        Ok(self
            .conn
            .query_row(
                "SELECT next_worker, next_lease, next_queue_seq FROM counters WHERE id = 1",
                [],
                |row| {
                    Ok(Counters {
                        next_worker: get_u64(row, 0)?,
                        next_lease: get_u64(row, 1)?,
                        next_queue_seq: get_u64(row, 2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.fail(e))?
            .unwrap_or_default())
    }

    /// The registered workers in registration order, with their Slurm jobs and secrets.
    fn load_workers(&self) -> Result<Vec<WorkerRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, ordinal, host, devices, version, registered_ms, last_seen_ms,
                        s.job_id, s.array_task_id, k.sha256
                 FROM workers LEFT JOIN worker_slurm s ON s.worker_id = workers.id
                 LEFT JOIN worker_secrets k ON k.worker_id = workers.id
                 ORDER BY ordinal",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([], |row| {
                let slurm_job: Option<String> = row.get(7)?;
                let slurm_task: Option<String> = row.get(8)?;
                Ok((
                    WorkerRecord {
                        id: WorkerId(row.get(0)?),
                        ordinal: get_u64(row, 1)?,
                        host: row.get(2)?,
                        devices: Vec::new(),
                        version: row.get(4)?,
                        registered_ms: get_u64(row, 5)?,
                        last_seen_ms: get_u64(row, 6)?,
                        slurm: slurm_job.map(|job_id| SlurmPlacement {
                            job_id,
                            array_task_id: slurm_task.unwrap_or_default(),
                        }),
                        secret_sha256: row.get::<_, Option<String>>(9)?.unwrap_or_default(),
                    },
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        let mut workers = Vec::new();
        for row in rows {
            let (mut record, devices) = row.map_err(|e| self.fail(e))?;
            record.devices = serde_json::from_str::<Vec<DeviceSlots>>(&devices)
                .map_err(|e| self.corrupt(format!("devices of worker {}: {e}", record.id)))?;
            workers.push(record);
        }
        Ok(workers)
    }

    /// The jobs that have a result.
    fn load_result_ids(&self) -> Result<HashSet<JobId>> {
        let mut stmt = self
            .conn
            .prepare("SELECT job_id FROM results")
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([], |row| Ok(JobId(row.get(0)?)))
            .map_err(|e| self.fail(e))?;
        rows.map(|row| row.map_err(|e| self.fail(e))).collect()
    }

    /// Every job, each checked against `results` (taken out of it as it is matched): a job has
    /// a result exactly when its state says so.
    fn load_jobs(&self, results: &mut HashSet<JobId>) -> Result<JobsBySweep> {
        let mut jobs = JobsBySweep::new();
        let mut stmt = self
            .conn
            .prepare("SELECT id, sweep_id, spec, runtime FROM jobs ORDER BY sweep_id, grid_index")
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    JobId(row.get(0)?),
                    SweepId(row.get(1)?),
                    row.get::<_, Vec<u8>>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.fail(e))?;
        for row in rows {
            let (id, sweep, spec, runtime) = row.map_err(|e| self.fail(e))?;
            let spec = pb::JobSpec::decode(spec.as_slice())
                .map_err(|e| e.to_string())
                .and_then(|s| JobSpec::try_from(s).map_err(|e| e.to_string()))
                .map_err(|e| self.corrupt(format!("spec of job {id}: {e}")))?;
            let runtime: JobRuntime = serde_json::from_str(&runtime)
                .map_err(|e| self.corrupt(format!("state of job {id}: {e}")))?;
            if results.remove(&id) != runtime.has_result() {
                return Err(self.corrupt(format!(
                    "job {id} is {:?} but has {} result",
                    runtime.state,
                    if runtime.has_result() { "no" } else { "a" }
                )));
            }
            jobs.entry(sweep).or_default().push((spec, runtime));
        }
        Ok(jobs)
    }

    /// The sweeps in submission order, without their spec text (it stays on disk).
    fn load_sweeps(&self) -> Result<Vec<SweepRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, name, spec_toml, submitted_ms, max_attempts, cancelled
                 FROM sweeps ORDER BY seq",
            )
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([], |row| {
                // Read for what memory keeps of it, then dropped.
                let spec_toml: String = row.get(2)?;
                Ok(SweepRecord {
                    id: SweepId(row.get(0)?),
                    name: row.get(1)?,
                    keep_models: SweepSpec::keeps_models(&spec_toml),
                    search: SearchPlan::of_text(&spec_toml),
                    submitted_ms: get_u64(row, 3)?,
                    max_attempts: row.get(4)?,
                    cancelled: row.get(5)?,
                })
            })
            .map_err(|e| self.fail(e))?;
        rows.map(|row| row.map_err(|e| self.fail(e))).collect()
    }

    fn fail(&self, err: rusqlite::Error) -> CoordinatorError {
        CoordinatorError::storage(&self.db_path, err)
    }

    /// A file whose content cannot be what the coordinator wrote.
    fn corrupt(&self, what: String) -> CoordinatorError {
        CoordinatorError::storage(
            &self.db_path,
            format!("{what}: the file is damaged; restore it from a backup"),
        )
    }
}
