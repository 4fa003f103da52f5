//! Unit tests of the stage-2 graph: waiting, failing and retrying with the stage-1 job, the
//! models between them. The promises across random sequences are in `proptests`.

use ltsweep_domain::{JobId, JobState};
use ltsweep_proto::PROTOCOL_VERSION;

use super::tests::{Coded, TIMING, result_for, run, test_key, test_secret};
use super::*;

/// One stage-1 job (one plan, one seed) and its two stage-2 jobs (τ-norm, NCM).
pub(crate) const STAGE2_SPEC: &str = r#"
name = "two-stage"
seeds = [0]
max_attempts = 1
[dataset]
kind = "synthetic"
[losses]
plans = [{}]
[stage2]
method = ["none", "tau_norm", "ncm"]
"#;

struct Graph {
    s: Scheduler,
    sweep: SweepId,
    worker: WorkerId,
    parent: JobId,
    children: Vec<JobId>,
}

fn setup(spec: &str) -> Graph {
    let mut s = Scheduler::new(TIMING, test_key());
    let sweep = run(&mut s, |s| s.submit(0, spec)).unwrap().sweep;
    let worker = run(&mut s, |s| {
        s.register_worker(0, "host", vec![], PROTOCOL_VERSION, "t", &test_secret(s))
    })
    .unwrap()
    .worker;
    let record = s.sweep(&sweep).unwrap();
    let jobs: Vec<JobId> = s.jobs_of(record).map(|j| j.id.clone()).collect();
    Graph {
        parent: jobs[0].clone(),
        children: jobs[1..].to_vec(),
        s,
        sweep,
        worker,
    }
}

fn model(sha: char) -> KeptModel {
    KeptModel {
        sha256: sha.to_string().repeat(64).parse().unwrap(),
        size: 10,
        epochs: 200,
    }
}

impl Graph {
    fn runtime(&self, job: &JobId) -> &JobRuntime {
        &self.s.job(job).unwrap().runtime
    }

    fn poll(&mut self) -> Option<Lease> {
        let worker = self.worker.clone();
        run(&mut self.s, |s| s.poll(1, &worker)).unwrap()
    }

    /// Leases the stage-1 job, records its model and completes it.
    fn run_parent(&mut self) -> Vec<Change> {
        let lease = self.poll().expect("the stage-1 job");
        assert_eq!(lease.job.id, self.parent);
        assert!(
            lease.keep_model,
            "a stage-1 job with stage-2 jobs keeps its model"
        );
        let worker = self.worker.clone();
        run(&mut self.s, |s| {
            s.record_model(2, &worker, &lease.id, model('a'))
        })
        .unwrap();
        let planned = self
            .s
            .complete(3, &worker, &lease.id, result_for(&lease.job, 0.5))
            .unwrap();
        let changes = planned.changes.clone();
        self.s.apply(&planned.changes);
        self.s.check_invariants().unwrap();
        changes
    }
}

#[test]
fn a_stage2_job_is_leased_only_once_its_stage1_job_succeeded() {
    let mut g = setup(STAGE2_SPEC);
    assert_eq!(g.s.sweep(&g.sweep).unwrap().counts.pending, 3);
    assert_eq!(g.s.pending(), 1, "only the stage-1 job is queued");
    for child in &g.children {
        assert!(g.runtime(child).is_waiting());
        assert_eq!(g.s.job(child).unwrap().parent(), Some(&g.parent));
    }
    let lease = g.poll().unwrap();
    assert_eq!(lease.job.id, g.parent);
    assert!(
        g.poll().is_none(),
        "no stage-2 job before its stage-1 job succeeded"
    );
    let worker = g.worker.clone();
    run(&mut g.s, |s| {
        s.record_model(2, &worker, &lease.id, model('a'))
    })
    .unwrap();
    run(&mut g.s, |s| {
        s.complete(3, &worker, &lease.id, result_for(&lease.job, 0.5))
    })
    .unwrap();
    // One stage-1 job serves both, each with the stage-1 job's recipe and its method.
    for child in g.children.clone() {
        let lease = g
            .poll()
            .expect("a stage-2 job once its stage-1 job succeeded");
        assert_eq!(lease.job.id, child);
        assert!(!lease.keep_model);
        let stage2 = lease.job.stage2.as_ref().unwrap();
        assert_eq!(stage2.parent, g.parent);
        let source = g.s.model_source(&g.worker, &lease.id).unwrap();
        assert_eq!(source.parent, g.parent);
        assert_eq!(source.model, Some(model('a')));
    }
    assert!(g.poll().is_none());
}

#[test]
fn a_stage1_job_failed_for_good_fails_its_stage2_jobs_with_its_reason() {
    let mut g = setup(STAGE2_SPEC);
    let lease = g.poll().unwrap();
    let worker = g.worker.clone();
    run(&mut g.s, |s| {
        s.fail(2, &worker, &lease.id, "out of memory", true)
    })
    .unwrap();
    assert_eq!(g.runtime(&g.parent).state, JobState::Failed);
    for child in &g.children {
        let runtime = g.runtime(child);
        assert_eq!(runtime.state, JobState::Failed);
        let error = runtime.error.as_deref().unwrap();
        assert!(
            error.contains(g.parent.as_str()) && error.contains("out of memory"),
            "{error}"
        );
    }
    // Retrying follows the graph: the stage-1 job is queued, its stage-2 jobs wait for it.
    let sweep = g.sweep.clone();
    assert_eq!(run(&mut g.s, |s| s.retry_failed(&sweep)).unwrap(), 3);
    assert_eq!(g.s.pending(), 1);
    assert!(g.children.iter().all(|c| g.runtime(c).is_waiting()));
    g.run_parent();
    assert_eq!(
        g.s.pending(),
        2,
        "both stage-2 jobs queued once it succeeded"
    );
}

#[test]
fn cancelling_cancels_the_waiting_stage2_jobs_and_a_retry_waits_them_again() {
    let mut g = setup(STAGE2_SPEC);
    let sweep = g.sweep.clone();
    assert_eq!(run(&mut g.s, |s| s.cancel(&sweep)).unwrap(), 3);
    assert!(
        g.children
            .iter()
            .all(|c| g.runtime(c).state == JobState::Cancelled)
    );
    assert_eq!(run(&mut g.s, |s| s.retry_failed(&sweep)).unwrap(), 3);
    assert!(g.children.iter().all(|c| g.runtime(c).is_waiting()));
    // Deleting needs every job final, the waiting ones too.
    let err = g.s.delete(&sweep).unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
}

#[test]
fn a_lost_model_trains_the_stage1_job_again_without_a_second_result() {
    let mut g = setup(STAGE2_SPEC);
    g.run_parent();
    let first = g.poll().unwrap();
    let second = g.poll().unwrap();
    assert_eq!(first.job.id, g.children[0]);
    // The first stage-2 job finds the model lost; the other one is running already.
    let worker = g.worker.clone();
    let parent = run(&mut g.s, |s| s.model_lost(&worker, &first.id)).unwrap();
    assert_eq!(parent, g.parent);
    let rt = g.runtime(&g.parent);
    assert_eq!(rt.state, JobState::Pending);
    assert!(rt.rerun_for_model && rt.model.is_none() && rt.has_result());
    assert!(g.runtime(&g.children[0]).is_waiting());
    assert_eq!(
        g.runtime(&g.children[0]).attempts - g.runtime(&g.children[0]).retry_base,
        0,
        "a lost model costs the stage-2 job no attempt"
    );
    assert_eq!(g.runtime(&g.children[1]).state, JobState::Running);
    // Its lease is over.
    assert!(matches!(
        g.s.model_source(&worker, &first.id),
        Err(SchedulerError::StaleLease { .. })
    ));
    // Trained again: the model comes back, and no second result is recorded.
    let changes = g.run_parent();
    assert!(
        !changes
            .iter()
            .any(|c| matches!(c, Change::ResultRecorded { .. })),
        "a job has one result, ever"
    );
    let rt = g.runtime(&g.parent);
    assert_eq!(rt.state, JobState::Succeeded);
    assert!(!rt.rerun_for_model);
    assert_eq!(g.poll().unwrap().job.id, g.children[0]);
    let _ = second;
}

#[test]
fn a_model_is_kept_until_its_stage2_jobs_succeeded_or_for_good() {
    for keep in [false, true] {
        let spec = if keep {
            format!("keep_models = true\n{STAGE2_SPEC}")
        } else {
            STAGE2_SPEC.to_owned()
        };
        let mut g = setup(&spec);
        g.run_parent();
        let worker = g.worker.clone();
        let leases = [g.poll().unwrap(), g.poll().unwrap()];
        // The first stage-2 job fails for good: it may be retried, so the model stays.
        run(&mut g.s, |s| {
            s.fail(4, &worker, &leases[0].id, "boom", false)
        })
        .unwrap();
        run(&mut g.s, |s| {
            s.complete(5, &worker, &leases[1].id, result_for(&leases[1].job, 0.5))
        })
        .unwrap();
        assert!(g.runtime(&g.parent).model.is_some());
        let sweep = g.sweep.clone();
        run(&mut g.s, |s| s.retry_failed(&sweep)).unwrap();
        let lease = g.poll().unwrap();
        run(&mut g.s, |s| {
            s.complete(6, &worker, &lease.id, result_for(&lease.job, 0.5))
        })
        .unwrap();
        assert_eq!(
            g.runtime(&g.parent).model.is_some(),
            keep,
            "keep_models = {keep}"
        );
        let kept = g.s.kept_model(&g.sweep, &g.parent);
        assert_eq!(kept.is_ok(), keep);
        if !keep {
            let message = kept.unwrap_err().to_string();
            assert!(message.contains("keep_models = true"), "{message}");
        }
    }
}

#[test]
fn only_a_job_that_keeps_a_model_may_record_one() {
    let mut g = setup(STAGE2_SPEC);
    g.run_parent();
    let lease = g.poll().unwrap();
    let err =
        g.s.record_model(5, &g.worker, &lease.id, model('b'))
            .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.to_string().contains("keeps no model"), "{err}");
}
