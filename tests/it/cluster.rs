//! The cluster end to end: a real coordinator and real worker processes on loopback training
//! with tch, through worker kills, a coordinator kill and a stale completion.

use std::time::Duration;

use ltsweep_domain::{GroupAccuracy, JobResult, JobSpec};
use ltsweep_proto::{PROTOCOL_VERSION, pb};
use serde_json::Value;
use tonic::Code;

use crate::cluster_support::{TestCluster, assert_one_result_per_job, spec_with, tiny_spec};
use crate::harness::register;

/// How long a sweep may go without any change of its status before a test fails.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(60);

fn count(status: &Value, state: &str) -> u64 {
    status[state].as_u64().unwrap()
}

register!(three_workers_run_the_paper_grid_of_two_seeds);
fn three_workers_run_the_paper_grid_of_two_seeds() {
    // A lease long enough that no job is leased twice however loaded the machine: the test
    // checks that each ran once.
    let cluster = TestCluster::start_with_lease(3, "60s");
    let spec = cluster.write_spec(&tiny_spec(3));
    let sweep = cluster.submit(&spec);
    // Submitting again is the same sweep, with no new jobs.
    assert_eq!(cluster.submit(&spec), sweep);
    let status = cluster.wait_for_state(&sweep, "18 jobs to succeed", SWEEP_TIMEOUT, |s| {
        count(s, "succeeded") == 18
    });
    assert_eq!(count(&status, "total"), 18);
    for job in status["jobs"].as_array().unwrap() {
        assert_eq!(job["state"], "succeeded");
        assert_eq!(job["attempts"], 1, "{job}");
        assert!(
            job["worker"].as_str().is_some_and(|w| !w.is_empty()),
            "{job}"
        );
    }
    let results = cluster.results(&sweep);
    assert_one_result_per_job(&results, 18);
    for result in &results {
        assert_eq!(result.epochs.len(), 3);
        assert!(result.accuracy.acc_all.is_some());
        assert_eq!(*result.sweep_id, sweep);
    }
}

register!(a_job_of_a_killed_worker_completes_elsewhere);
fn a_job_of_a_killed_worker_completes_elsewhere() {
    let mut cluster = TestCluster::start(1);
    // The nine plans of one seed: the killed job, and others for the new workers to share.
    let spec = cluster.write_spec(&spec_with(30, 1, "[0]"));
    let sweep = cluster.submit(&spec);
    let doomed = cluster.worker_id(0);
    // The worker is stopped while its job is read and it is killed: the job is certainly in
    // mid-run when it dies, and no lease can expire in between however slow the machine.
    let (victim, _) = cluster.act_on_running_job(
        &sweep,
        "a job part-way through",
        1,
        |w| w == doomed,
        |cluster, _, _| cluster.workers[0].kill(),
    );
    cluster.add_worker();
    cluster.add_worker();
    let status = cluster.wait_for_state(&sweep, "9 jobs to succeed", SWEEP_TIMEOUT, |s| {
        count(s, "succeeded") == 9
    });
    let job = status["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == victim.as_str())
        .unwrap()
        .clone();
    assert!(job["attempts"].as_u64().unwrap() >= 2, "{job}");
    assert_ne!(job["worker"], doomed.as_str(), "{job}");
    assert_one_result_per_job(&cluster.results(&sweep), 9);
}

register!(a_killed_coordinator_restarts_with_nothing_lost);
fn a_killed_coordinator_restarts_with_nothing_lost() {
    let mut cluster = TestCluster::start(2);
    let spec = cluster.write_spec(&tiny_spec(8));
    let sweep = cluster.submit(&spec);
    cluster.wait_for_state(
        &sweep,
        "some jobs done, others running",
        SWEEP_TIMEOUT,
        |s| count(s, "succeeded") >= 2 && count(s, "running") >= 1,
    );
    let before = cluster.results(&sweep);
    cluster.restart_coordinator();
    // The workers find the new coordinator by themselves.
    cluster.wait_for_state(&sweep, "18 jobs to succeed", SWEEP_TIMEOUT, |s| {
        count(s, "succeeded") == 18
    });
    let after = cluster.results(&sweep);
    assert_one_result_per_job(&after, 18);
    assert!(before.len() >= 2);
    for earlier in &before {
        let later = after.iter().find(|r| r.job_id == earlier.job_id).unwrap();
        assert_eq!(
            later, earlier,
            "a result recorded before the kill is kept as it was"
        );
    }
}

fn fake_result(job: &JobSpec) -> pb::JobResult {
    JobResult {
        accuracy: GroupAccuracy {
            acc_all: Some(0.5),
            ..GroupAccuracy::default()
        },
        device: "cpu".to_owned(),
        ..JobResult::blank(job)
    }
    .into()
}

register!(a_late_completion_with_a_stale_lease_is_refused_and_changes_nothing);
fn a_late_completion_with_a_stale_lease_is_refused_and_changes_nothing() {
    let mut cluster = TestCluster::start(0);
    let spec = cluster.write_spec(
        &(tiny_spec(2).replace("seeds = [0, 1]", "seeds = [0]")
            + "[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]\n"),
    );
    let sweep = cluster.submit(&spec);
    let connection = cluster.connection();
    let register = |cluster: &TestCluster, client: &mut ltsweep_proto::client::WorkerClient| {
        cluster
            .block_on(client.register_worker(pb::RegisterWorkerRequest {
                host: "fake".into(),
                devices: vec![pb::Device {
                    name: "cpu".into(),
                    slots: 1,
                }],
                protocol_version: PROTOCOL_VERSION,
                version: "test".into(),
                slurm: None,
            }))
            .unwrap()
            .into_inner()
    };
    // None too while the restarted coordinator is not back yet.
    let poll =
        |cluster: &TestCluster, client: &mut ltsweep_proto::client::WorkerClient, worker: &str| {
            cluster
                .block_on(client.poll_work(pb::PollWorkRequest {
                    worker_id: worker.to_owned(),
                    device: "cpu".into(),
                }))
                .ok()
                .and_then(|response| response.into_inner().lease)
        };
    // Each fake worker's calls carry its own registration's secret.
    let late = register(&cluster, &mut connection.worker());
    let prompt = register(&cluster, &mut connection.worker());
    let (late_id, prompt_id) = (late.worker_id, prompt.worker_id);
    let mut late = connection.worker_as(&late.worker_secret).unwrap();
    let mut prompt = connection.worker_as(&prompt.worker_secret).unwrap();
    let first = poll(&cluster, &mut late, &late_id).expect("the job is leased");
    let job = JobSpec::try_from(first.job.clone().unwrap()).unwrap();
    // No heartbeat: the lease expires and the job returns to the queue.
    cluster.wait_for_state(&sweep, "the lease to expire", SWEEP_TIMEOUT, |s| {
        count(s, "pending") == 1
    });
    // The rest takes as long as it takes: the same state under a long lease, so that the
    // next lease does not expire while the test looks around.
    cluster.restart_coordinator_with_lease("60s");
    let mut second = None;
    crate::support::wait_until(
        "the job to be leased again",
        Duration::from_secs(60),
        || {
            second = poll(&cluster, &mut prompt, &prompt_id);
            second.is_some()
        },
    );
    let second = second.unwrap();
    assert_ne!(second.lease_id, first.lease_id);
    assert_eq!(second.attempt, 2);

    let refused = cluster
        .block_on(late.complete_job(pb::CompleteJobRequest {
            worker_id: late_id.clone(),
            lease_id: first.lease_id.clone(),
            result: Some(fake_result(&job)),
        }))
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let progress = cluster
        .block_on(late.report_progress(pb::ReportProgressRequest {
            worker_id: late_id,
            lease_id: first.lease_id,
            epoch: None,
        }))
        .unwrap_err();
    assert_eq!(progress.code(), Code::FailedPrecondition);
    let heartbeat = |client: &mut ltsweep_proto::client::WorkerClient| {
        cluster
            .block_on(client.report_progress(pb::ReportProgressRequest {
                worker_id: prompt_id.clone(),
                lease_id: second.lease_id.clone(),
                epoch: None,
            }))
            .unwrap();
    };
    heartbeat(&mut prompt);
    let sweep_id = ltsweep_domain::SweepId(sweep.clone());
    let status = cluster
        .block_on(
            connection
                .sweep_api()
                .status(ltsweep_proto::client::Which::Sweep(&sweep_id), false),
        )
        .unwrap();
    let counts = status.counts;
    assert_eq!((counts.running, counts.succeeded), (1, 0));
    assert_eq!(status.jobs[0].attempts, 2);
    assert!(cluster.results(&sweep).is_empty());
    heartbeat(&mut prompt);

    cluster
        .block_on(prompt.complete_job(pb::CompleteJobRequest {
            worker_id: prompt_id.clone(),
            lease_id: second.lease_id.clone(),
            result: Some(fake_result(&job)),
        }))
        .unwrap();
    let results = cluster.results(&sweep);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].worker_id.as_deref(), Some(prompt_id.as_str()));
}

register!(cli_errors_are_one_line_with_their_exit_codes);
fn cli_errors_are_one_line_with_their_exit_codes() {
    let cluster = TestCluster::start(0);
    let output = cluster.cli(&["status", "no-such-sweep"]);
    assert_eq!(output.status.code(), Some(2));
    let output = crate::support::ltsweep()
        .args(["status", "--coordinator", &cluster.url()])
        .env("LTSWEEP_TOKEN", "wrong-token-0123456789abcdef0123456789")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("token"), "{err}");
    let output = crate::support::ltsweep()
        .args(["status", "--coordinator", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot reach the coordinator"));
}

register!(an_unusable_state_dir_stops_the_coordinator_at_start_with_its_path);
fn an_unusable_state_dir_stops_the_coordinator_at_start_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = crate::support::write(dir.path(), "not-a-folder", "");
    let state = file.join("state");
    let output = crate::support::ltsweep()
        .args([
            "coordinator",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            state.to_str().unwrap(),
        ])
        .env("LTSWEEP_TOKEN", crate::cluster_support::TOKEN)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("cannot start") && err.contains(state.to_str().unwrap()),
        "{err}"
    );
    assert!(!err.contains("listening"), "{err}");
}
