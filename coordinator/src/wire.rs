//! The scheduler's views → protocol messages. Requests come in through
//! [`ltsweep_proto::convert`]; this is the way out.

use ltsweep_proto::pb;

use crate::scheduler::{Job, Lease, Scheduler, SearchPlan, Sweep, Worker};

/// A job's status; `search` is its sweep's search, `with_spec` adds its full spec, which
/// reports need and status views don't.
pub(crate) fn job_status(job: &Job, search: Option<&SearchPlan>, with_spec: bool) -> pb::JobStatus {
    let rt = &job.runtime;
    pb::JobStatus {
        spec: with_spec.then(|| job.spec().into()),
        job_id: job.id.0.clone(),
        plan: Some(job.plan.into()),
        seed: job.seed,
        axes: job.axes().iter().cloned().map(Into::into).collect(),
        state: pb::JobState::from(rt.state).into(),
        attempts: rt.attempts,
        worker_id: rt.worker.as_ref().map(|w| w.0.clone()).unwrap_or_default(),
        epoch: rt.epoch,
        epochs_total: job.epochs(),
        error: rt.error.clone().unwrap_or_default(),
        epochs_retrained: rt.epochs_retrained,
        last_accuracy: rt.last_accuracy,
        preemptions: rt.preemptions,
        parent_job_id: job.parent().map(|p| p.0.clone()).unwrap_or_default(),
        stage2: job.stage2().map(|m| m.to_string()).unwrap_or_default(),
        base: job.base().to_string(),
        sampler: job.sampler().to_string(),
        search: rt.search.as_ref().map(|s| pb::JobSearchStatus {
            readings: s
                .readings
                .iter()
                .map(|r| pb::RungReading {
                    epoch: r.epoch,
                    value: r.value,
                })
                .collect(),
            paused_at: s.paused_at,
            stopped_at: s.stopped_at,
            metric: search
                .map(|plan| plan.metric.to_string())
                .unwrap_or_default(),
        }),
    }
}

pub(crate) fn sweep_summary(sweep: &Sweep) -> pb::SweepSummary {
    pb::SweepSummary {
        sweep_id: sweep.record.id.0.clone(),
        name: sweep.record.name.clone(),
        counts: Some(sweep.counts.into()),
        submitted_unix_ms: sweep.record.submitted_ms,
    }
}

pub(crate) fn worker_info(scheduler: &Scheduler, worker: &Worker, now_ms: u64) -> pb::WorkerInfo {
    let record = &worker.record;
    pb::WorkerInfo {
        worker_id: record.id.0.clone(),
        host: record.host.clone(),
        devices: record
            .devices
            .iter()
            .map(|d| pb::Device {
                name: d.name.clone(),
                slots: d.slots,
            })
            .collect(),
        version: record.version.clone(),
        last_seen_unix_ms: record.last_seen_ms,
        running_jobs: worker.running.iter().map(|j| j.0.clone()).collect(),
        alive: scheduler.is_alive(worker, now_ms),
        slurm: record.slurm.clone().map(Into::into),
    }
}

/// Takes the lease: its spec, built for it by the poll, moves into the message uncopied.
pub(crate) fn lease(lease: Lease) -> pb::Lease {
    pb::Lease {
        lease_id: lease.id.0,
        deadline_unix_ms: lease.deadline_ms,
        attempt: lease.attempt,
        job: Some(lease.job.into()),
        checkpoint_epoch: lease.checkpoint_epoch,
        keep_model: lease.keep_model,
        stop_after_epoch: lease.stop_after.unwrap_or(0),
    }
}
