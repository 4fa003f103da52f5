//! Deleting a sweep whose jobs all ended: it frees the jobs' memory, store rows and the room
//! they take under `--max-jobs`.

use ltsweep_domain::SweepId;

use super::{Change, Planned, Result, Scheduler, SchedulerError};

impl Scheduler {
    /// Plans the removal of a sweep, its jobs and their results. Only a sweep with no pending
    /// or running job may go (cancel it first): no lease can then name one of its jobs.
    /// Answers how many jobs go with it.
    pub fn delete(&self, sweep: &SweepId) -> Result<Planned<u32>> {
        let record = self.sweep_or_not_found(sweep)?;
        let counts = record.counts;
        if !counts.all_final() {
            return Err(SchedulerError::Precondition(format!(
                "sweep {sweep} still has {} pending and {} running jobs: `ltsweep cancel` it first, or wait until it ends",
                counts.pending, counts.running
            )));
        }
        Ok(Planned {
            answer: counts.total,
            changes: vec![Change::SweepDeleted {
                sweep: sweep.clone(),
            }],
        })
    }

    /// Applies a committed deletion. Its jobs are all final, so no queue entry, deadline or
    /// worker's lease names them.
    pub(super) fn remove_sweep(&mut self, sweep: &SweepId) {
        let Some(removed) = self.sweeps.remove(sweep) else {
            return;
        };
        self.sweep_order.retain(|id| id != sweep);
        for job in &removed.jobs {
            let gone = self.jobs.remove(job);
            debug_assert!(gone.is_none_or(|j| j.runtime.state.is_final()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Timing;
    use crate::scheduler::tests::{Coded, SPEC, test_key};

    #[test]
    fn only_a_sweep_whose_jobs_ended_is_deleted() {
        let mut scheduler = Scheduler::new(Timing::default(), test_key());
        let submitted = scheduler.submit(1, SPEC).unwrap();
        let sweep = submitted.answer.sweep.clone();
        scheduler.apply(&submitted.changes);
        let err = scheduler.delete(&sweep).unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);
        assert!(err.to_string().contains("ltsweep cancel"), "{err}");

        let cancelled = scheduler.cancel(&sweep).unwrap();
        scheduler.apply(&cancelled.changes);
        let deleted = scheduler.delete(&sweep).unwrap();
        assert_eq!(deleted.answer, submitted.answer.jobs);
        scheduler.apply(&deleted.changes);
        assert!(scheduler.sweep(&sweep).is_none());
        assert_eq!(scheduler.sweeps().count(), 0);
        assert!(scheduler.jobs.is_empty());
        scheduler.check_invariants().unwrap();
        assert_eq!(
            scheduler.delete(&sweep).unwrap_err().code(),
            tonic::Code::NotFound
        );
        // Submitted again, it is a new sweep.
        let again = scheduler.submit(2, SPEC).unwrap();
        assert!(again.answer.created);
    }
}
