//! The durable record of the scheduler: SQLite in WAL mode, `<state_dir>/ltsweep.db`.
//!
//! The store owns the database file and nothing else. It writes the scheduler's
//! [`Change`]s, all of one operation in one transaction, before the call that caused them
//! answers, and reads the whole state back at start ([`Store::load`]). Job specs and results
//! are kept as protobuf bytes (compact, and exact for every float, NaN included); a job's
//! runtime state is JSON, with its state also exposed as a column for `sqlite3` users.
//!
//! Lease deadlines are not persisted on renewal: on restart every running job keeps its lease
//! with a fresh deadline, so a worker that kept training while the coordinator was down can
//! still report and complete.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ltsweep_domain::{JobResult, JobSpec};
use ltsweep_proto::pb;
use prost::Message;
use rusqlite::{Connection, Transaction, params};

use crate::config::Durability;
use crate::error::CoordinatorError;
use crate::scheduler::{Change, JobRuntime, initial_runtimes};

type Result<T> = std::result::Result<T, CoordinatorError>;

mod load;
mod results;
pub use results::ResultReader;

/// The database file inside the state dir.
pub const DB_FILE: &str = "ltsweep.db";

/// Bumped on any change of the tables below; a newer file is refused rather than misread.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS counters (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    next_worker INTEGER NOT NULL,
    next_lease INTEGER NOT NULL,
    next_queue_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (id, next_worker, next_lease, next_queue_seq) VALUES (1, 1, 1, 1);
CREATE TABLE IF NOT EXISTS sweeps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    spec_toml TEXT NOT NULL,
    submitted_ms INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    cancelled INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    sweep_id TEXT NOT NULL REFERENCES sweeps (id),
    grid_index INTEGER NOT NULL,
    spec BLOB NOT NULL,
    runtime TEXT NOT NULL,
    state TEXT GENERATED ALWAYS AS (json_extract(runtime, '$.state')) VIRTUAL
);
CREATE INDEX IF NOT EXISTS jobs_by_sweep ON jobs (sweep_id, grid_index);
-- One row per job at most, ever: the primary key refuses a second result.
CREATE TABLE IF NOT EXISTS results (
    job_id TEXT PRIMARY KEY REFERENCES jobs (id),
    sweep_id TEXT NOT NULL,
    result BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    ordinal INTEGER NOT NULL,
    host TEXT NOT NULL,
    devices TEXT NOT NULL,
    version TEXT NOT NULL,
    registered_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
-- The Slurm job of a worker that Slurm started (a table of its own, so older files gain it).
CREATE TABLE IF NOT EXISTS worker_slurm (
    worker_id TEXT PRIMARY KEY REFERENCES workers (id),
    job_id TEXT NOT NULL,
    array_task_id TEXT NOT NULL
);
-- The SHA-256 of each worker's secret, by which its calls are known (a table of its own, so
-- older files gain it; their workers, without one, register again).
CREATE TABLE IF NOT EXISTS worker_secrets (
    worker_id TEXT PRIMARY KEY REFERENCES workers (id),
    sha256 TEXT NOT NULL
);
";

/// How often the background thread copies the write-ahead log into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// A last resort should the background checkpoints stop: the committing thread checkpoints
/// itself once the log holds this many pages (about 200 MB).
const AUTOCHECKPOINT_PAGES: i64 = 50_000;

/// The page cache of each connection, as SQLite takes it: negative for KiB.
const CACHE_KIB: i64 = -8_192;

/// The open database of one state dir.
pub struct Store {
    conn: Connection,
    db_path: PathBuf,
    /// Checkpoints the log in the background; stops when this sender is dropped.
    checkpointer: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.checkpointer.take() {
            drop(stop);
            let _ = thread.join();
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("db_path", &self.db_path)
            .finish()
    }
}

impl Store {
    /// Opens (or creates) `<state_dir>/ltsweep.db`, creating the dir. A dir that cannot be
    /// created or written is an error naming it, found here rather than at the first call.
    pub fn open(state_dir: &Path, durability: Durability) -> Result<Self> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            CoordinatorError::storage(
                state_dir,
                format!("cannot create the state dir ({e}): pick a folder you can write"),
            )
        })?;
        let db_path = state_dir.join(DB_FILE);
        let fail = |e: rusqlite::Error| {
            CoordinatorError::storage(
                &db_path,
                format!("{e}: check that the state dir is writable and its disk not full"),
            )
        };
        let conn = Connection::open(&db_path).map_err(fail)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(fail)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(fail)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(CoordinatorError::storage(
                &db_path,
                format!(
                    "cannot use write-ahead logging (journal mode {mode}): put the state dir on a local disk"
                ),
            ));
        }
        let synchronous = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(fail)?;
        conn.set_prepared_statement_cache_capacity(32);
        // Room for the hot pages of a 100,000-job sweep, so commits rarely read from disk.
        conn.pragma_update(None, "cache_size", CACHE_KIB)
            .map_err(fail)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(fail)?;
        if version > SCHEMA_VERSION {
            return Err(CoordinatorError::storage(
                &db_path,
                format!(
                    "written by a newer ltsweep (schema {version}, this one knows {SCHEMA_VERSION}): upgrade ltsweep"
                ),
            ));
        }
        // Creating the tables also proves the file writable; for an existing file the update
        // that changes nothing does.
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; \
             UPDATE counters SET next_worker = next_worker WHERE id = 1; COMMIT;"
        ))
        .map_err(fail)?;
        // A checkpoint syncs the database file; done by the committing thread it would stall
        // every call waiting for the coordinator's lock, so a thread of its own does it.
        conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES)
            .map_err(fail)?;
        conn.pragma_update(None, "journal_size_limit", 64i64 << 20)
            .map_err(fail)?;
        let checkpointer = Connection::open(&db_path).map_err(fail)?;
        checkpointer
            .busy_timeout(Duration::from_secs(5))
            .map_err(fail)?;
        checkpointer
            .pragma_update(None, "synchronous", synchronous)
            .map_err(fail)?;
        checkpointer
            .pragma_update(None, "cache_size", CACHE_KIB)
            .map_err(fail)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ltsweep-checkpoint".into())
            .spawn(move || checkpoint_until_stopped(&checkpointer, &stopped))
            .map_err(|e| CoordinatorError::storage(&db_path, e))?;
        Ok(Self {
            conn,
            db_path,
            checkpointer: Some((stop, thread)),
        })
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// A reader of the stored results, for reports.
    pub fn result_reader(&self) -> ResultReader {
        ResultReader::new(self.db_path.clone())
    }

    /// Writes the durable changes of one operation in one transaction. On error nothing is
    /// written: memory must not hold the changes.
    pub fn commit(&mut self, changes: &[Change]) -> Result<()> {
        self.commit_all(std::iter::once(changes))
    }

    /// Writes the changes of several operations, in order, in one transaction: all or none.
    /// One commit writes each touched page to the log once, however many operations changed it.
    /// A group with nothing durable (lease renewals only) opens no transaction.
    pub fn commit_all<'a>(&mut self, batches: impl Iterator<Item = &'a [Change]>) -> Result<()> {
        let mut durable = batches.flatten().filter(|c| c.is_durable()).peekable();
        if durable.peek().is_none() {
            return Ok(());
        }
        let path = &self.db_path;
        let fail = |e: rusqlite::Error| CoordinatorError::storage(path, e);
        let tx = self.conn.transaction().map_err(fail)?;
        for change in durable {
            write_change(&tx, change).map_err(fail)?;
        }
        tx.commit().map_err(fail)
    }

    /// Commits a write that changes nothing: whether the store takes writes again after
    /// failed commits.
    pub fn probe(&mut self) -> Result<()> {
        let path = &self.db_path;
        let fail = |e: rusqlite::Error| CoordinatorError::storage(path, e);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(fail)?;
        tx.execute(
            "UPDATE counters SET next_worker = next_worker WHERE id = 1",
            [],
        )
        .map_err(fail)?;
        tx.commit().map_err(fail)
    }

    /// Makes every later commit fail, as a full disk would.
    #[cfg(test)]
    pub(crate) fn fail_commits(&self) {
        self.conn
            .pragma_update(None, "query_only", true)
            .expect("query_only is a plain pragma");
    }

    /// Undoes [`Store::fail_commits`].
    #[cfg(test)]
    pub(crate) fn recover_commits(&self) {
        self.conn
            .pragma_update(None, "query_only", false)
            .expect("query_only is a plain pragma");
    }
}

/// Copies committed pages from the log into the database until the store is dropped. Passive
/// checkpoints never block the writer.
fn checkpoint_until_stopped(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %err, "background checkpoint failed; trying again");
        }
    }
}

fn write_change(tx: &Transaction<'_>, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::SweepSubmitted {
            sweep,
            spec_toml,
            jobs,
            first_queue_seq,
        } => {
            tx.prepare_cached(
                "INSERT INTO sweeps (id, name, spec_toml, submitted_ms, max_attempts, cancelled)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                sweep.id.as_str(),
                sweep.name,
                spec_toml.as_ref(),
                sql_int(sweep.submitted_ms),
                sweep.max_attempts,
                sweep.cancelled,
            ])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO jobs (id, sweep_id, grid_index, spec, runtime)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let runtimes = initial_runtimes(jobs, *first_queue_seq);
            for ((index, spec), runtime) in jobs.iter().enumerate().zip(runtimes) {
                let bytes = pb::JobSpec::from(JobSpec::clone(spec)).encode_to_vec();
                insert.execute(params![
                    spec.id.as_str(),
                    sweep.id.as_str(),
                    sql_int(index as u64),
                    bytes,
                    runtime_json(&runtime)?,
                ])?;
            }
        }
        Change::SweepCancelled { sweep, cancelled } => {
            tx.prepare_cached("UPDATE sweeps SET cancelled = ?2 WHERE id = ?1")?
                .execute(params![sweep.as_str(), cancelled])?;
        }
        Change::SweepDeleted { sweep } => {
            for sql in [
                "DELETE FROM results WHERE sweep_id = ?1",
                "DELETE FROM jobs WHERE sweep_id = ?1",
                "DELETE FROM sweeps WHERE id = ?1",
            ] {
                tx.prepare_cached(sql)?.execute(params![sweep.as_str()])?;
            }
        }
        Change::JobUpdated { job, runtime } => {
            let updated = tx
                .prepare_cached("UPDATE jobs SET runtime = ?2 WHERE id = ?1")?
                .execute(params![job.as_str(), runtime_json(runtime)?])?;
            if updated != 1 {
                return Err(rusqlite::Error::QueryReturnedNoRows);
            }
        }
        Change::LeaseRenewed { .. } => {}
        Change::ResultRecorded { job, result } => {
            let bytes = pb::JobResult::from(JobResult::clone(result)).encode_to_vec();
            tx.prepare_cached(
                "INSERT INTO results (job_id, sweep_id, result) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![job.as_str(), result.sweep_id.as_str(), bytes])?;
        }
        Change::WorkerRegistered(worker) => {
            let devices = serde_json::to_string(&worker.devices)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO workers
                 (id, ordinal, host, devices, version, registered_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![
                worker.id.as_str(),
                sql_int(worker.ordinal),
                worker.host,
                devices,
                worker.version,
                sql_int(worker.registered_ms),
                sql_int(worker.last_seen_ms),
            ])?;
            if let Some(slurm) = &worker.slurm {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO worker_slurm (worker_id, job_id, array_task_id)
                     VALUES (?1, ?2, ?3)",
                )?
                .execute(params![
                    worker.id.as_str(),
                    slurm.job_id,
                    slurm.array_task_id
                ])?;
            }
            tx.prepare_cached(
                "INSERT OR REPLACE INTO worker_secrets (worker_id, sha256) VALUES (?1, ?2)",
            )?
            .execute(params![worker.id.as_str(), worker.secret_sha256])?;
        }
        Change::WorkerExpired { worker } => {
            for sql in [
                "DELETE FROM worker_secrets WHERE worker_id = ?1",
                "DELETE FROM worker_slurm WHERE worker_id = ?1",
                "DELETE FROM workers WHERE id = ?1",
            ] {
                tx.prepare_cached(sql)?.execute(params![worker.as_str()])?;
            }
        }
        Change::WorkerSeen { worker, at_ms } => {
            tx.prepare_cached("UPDATE workers SET last_seen_ms = ?2 WHERE id = ?1")?
                .execute(params![worker.as_str(), sql_int(*at_ms)])?;
        }
        Change::Counters(counters) => {
            tx.prepare_cached(
                "UPDATE counters SET next_worker = ?1, next_lease = ?2, next_queue_seq = ?3
                 WHERE id = 1",
            )?
            .execute(params![
                sql_int(counters.next_worker),
                sql_int(counters.next_lease),
                sql_int(counters.next_queue_seq),
            ])?;
        }
    }
    Ok(())
}

/// SQLite integers are signed; ours never come near 2^63.
fn sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn get_u64(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Integer,
            Box::new(e),
        )
    })
}

fn runtime_json(runtime: &JobRuntime) -> rusqlite::Result<String> {
    serde_json::to_string(runtime).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

#[cfg(test)]
mod tests;
