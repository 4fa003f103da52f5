//! Reading results back for reports: on a connection of its own, off the committing thread.

use std::path::PathBuf;
use std::time::Duration;

use ltsweep_domain::JobId;
use ltsweep_proto::pb;
use prost::Message;
use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::Result;
use crate::error::CoordinatorError;

/// Reads stored results. In WAL mode a reader neither waits for the committing thread nor holds
/// it up, so a report streams while commits go on (or stall).
#[derive(Clone, Debug)]
pub struct ResultReader {
    db_path: PathBuf,
}

impl ResultReader {
    pub(super) fn new(db_path: PathBuf) -> Self {
        Self { db_path }
    }

    /// Passes the results of `jobs` to `send` in their order, one lookup at a time (no read
    /// transaction is held across them, so a slow reader keeps no log from being checkpointed),
    /// until `send` says the reader is gone. A job whose result is no longer there (its sweep
    /// was deleted meanwhile) is skipped.
    pub fn read(&self, jobs: &[JobId], mut send: impl FnMut(pb::JobResult) -> bool) -> Result<()> {
        let path = &self.db_path;
        let fail = |e: rusqlite::Error| CoordinatorError::storage(path, e);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(fail)?;
        let mut stmt = conn
            .prepare("SELECT result FROM results WHERE job_id = ?1")
            .map_err(fail)?;
        for job in jobs {
            let Some(bytes) = stmt
                .query_row([job.as_str()], |row| row.get::<_, Vec<u8>>(0))
                .optional()
                .map_err(fail)?
            else {
                continue;
            };
            let result = pb::JobResult::decode(bytes.as_slice()).map_err(|e| {
                CoordinatorError::storage(path, format!("the result of job {job} is damaged: {e}"))
            })?;
            if !send(result) {
                break;
            }
        }
        Ok(())
    }
}
