//! A real Slurm: `ltsweep launch slurm` submits a job array of workers to a one-node Slurm of
//! the test's own; they run the quickstart sweep to the end. Then one array task of a second
//! launch gets `scancel --signal=TERM` mid-job: its job is checkpointed, given back, and
//! finished by the other worker, with no attempt counted and the undisturbed run's result.

use std::time::Duration;

use ltsweep_proto::pb;
use serde_json::Value;

use crate::cluster_support::{TOKEN, TestCluster};
use crate::preemption::{comparable, one_job_spec, undisturbed};
use crate::slurm_support::TestSlurm;
use crate::support::{repo, stderr, stdout, wait_until};

const TIMEOUT: Duration = Duration::from_secs(1800);

/// `ltsweep launch slurm ...` against this Slurm; the job id it printed.
fn launch(slurm: &TestSlurm, cluster: &TestCluster, workers: u32) -> String {
    let log_dir = slurm.log_dir();
    let output = slurm
        .command(env!("CARGO_BIN_EXE_ltsweep"))
        .args(["launch", "slurm", "--coordinator", &cluster.url()])
        .args(["--workers", &workers.to_string(), "--log-dir"])
        .arg(&log_dir)
        .env("LTSWEEP_TOKEN", TOKEN)
        .env("LTSWEEP_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "launch: {}{}",
        stderr(&output),
        slurm.logs()
    );
    // The loopback address works on this one node, but would not on others: it says so.
    assert!(stderr(&output).contains("loopback"), "{}", stderr(&output));
    let job = stdout(&output).trim().to_owned();
    assert!(job.bytes().all(|b| b.is_ascii_digit()), "a job id: {job}");
    job
}

/// The workers registered from array job `job`: (worker id, array task id).
fn workers_of(cluster: &TestCluster, job: &str) -> Vec<(String, String)> {
    let connection = cluster.connection();
    let workers = cluster.block_on(async {
        connection
            .sweeps()
            .list_workers(pb::ListWorkersRequest {})
            .await
            .unwrap()
            .into_inner()
            .workers
    });
    workers
        .into_iter()
        .filter_map(|w| {
            let slurm = w.slurm?;
            (slurm.job_id == job).then_some((w.worker_id, slurm.array_task_id))
        })
        .collect()
}

fn wait_for_workers(slurm: &TestSlurm, cluster: &TestCluster, job: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    wait_until("both array tasks to register", TIMEOUT, || {
        found = workers_of(cluster, job);
        found.len() == 2
    });
    found.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        found.iter().map(|w| w.1.as_str()).collect::<Vec<_>>(),
        ["0", "1"],
        "{}",
        slurm.logs()
    );
    found
}

fn cancel(slurm: &TestSlurm, job: &str) {
    let output = slurm
        .command(env!("CARGO_BIN_EXE_ltsweep"))
        .args(["launch", "slurm", "--cancel", job])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    slurm.wait_for_empty_queue();
}

#[test]
fn slurm_job_array_workers_run_a_sweep_and_survive_a_preemption() {
    let Some(slurm) =
        TestSlurm::start("slurm_job_array_workers_run_a_sweep_and_survive_a_preemption")
    else {
        return;
    };
    let reference = undisturbed();
    let cluster = TestCluster::start_with_lease(0, "10m");

    // sbatch refusing the script: its message and exit code come through.
    let refused = slurm
        .command(env!("CARGO_BIN_EXE_ltsweep"))
        .args(["launch", "slurm", "--coordinator", &cluster.url()])
        .args(["--workers", "2", "--partition", "nosuch"])
        .env("LTSWEEP_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("sbatch refused") && stderr(&refused).contains("partition"),
        "{}",
        stderr(&refused)
    );
    println!(
        "slurm: sbatch refusing --partition nosuch -> exit 1: {}",
        stderr(&refused).lines().last().unwrap_or_default()
    );

    // The quickstart sweep through a job array of two workers.
    let job = launch(&slurm, &cluster, 2);
    let workers = wait_for_workers(&slurm, &cluster, &job);
    let sweep = cluster.submit(&repo().join("examples/quickstart.toml"));
    let status = cluster.wait_for_state(&sweep, "the quickstart sweep", TIMEOUT, |s| {
        s["succeeded"] == s["total"]
    });
    let total = status["total"].as_u64().unwrap();
    let ran_on = |w: &str| {
        status["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["worker"] == w)
            .count()
    };
    for (worker, _) in &workers {
        assert!(ran_on(worker) > 0, "worker {worker} ran no job: {status}");
    }
    let table = cluster.cli(&["workers"]);
    assert!(
        stdout(&table).contains(&format!("{job}_0"))
            && stdout(&table).contains(&format!("{job}_1")),
        "`ltsweep workers` shows the array tasks:\n{}",
        stdout(&table)
    );
    cancel(&slurm, &job);
    println!(
        "slurm: job array {job} (tasks 0 and 1) ran the quickstart sweep: {total} jobs succeeded ({} on task 0, {} on task 1); squeue empty after --cancel",
        ran_on(&workers[0].0),
        ran_on(&workers[1].0)
    );

    // A longer job, and `scancel --signal=TERM` of the array task running it.
    let job = launch(&slurm, &cluster, 2);
    let workers = wait_for_workers(&slurm, &cluster, &job);
    let sweep = cluster.submit(&cluster.write_spec(&one_job_spec()));
    let running = cluster.wait_for_state(&sweep, "the job part-way", TIMEOUT, |s| {
        s["jobs"][0]["state"] == "running" && s["jobs"][0]["epoch"].as_u64() >= Some(2)
    });
    let victim = running["jobs"][0]["worker"].as_str().unwrap().to_owned();
    let job_id = running["jobs"][0]["id"].as_str().unwrap().to_owned();
    let (_, task) = workers.iter().find(|(w, _)| *w == victim).unwrap().clone();
    let (other, _) = workers.iter().find(|(w, _)| *w != victim).unwrap().clone();
    slurm.run("scancel", &["--signal=TERM", &format!("{job}_{task}")]);
    // The preempted worker gives the job back and exits: its array task leaves the queue.
    wait_until("the signalled array task to end", TIMEOUT, || {
        !slurm
            .queue()
            .iter()
            .any(|l| l.starts_with(&format!("{job}_{task} ")))
    });
    let log = slurm.job_log(&job, &task);
    assert!(log.contains("preempted: lease given back"), "{log}");
    let mut stored: Vec<String> = Vec::new();
    wait_until("the coordinator's log of the checkpoint", TIMEOUT, || {
        stored = cluster
            .coordinator
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("checkpoint stored") && l.contains(&job_id))
            .cloned()
            .collect();
        !stored.is_empty()
    });
    assert_eq!(
        stored.len(),
        1,
        "the preempted job's checkpoint: {stored:?}"
    );
    // Back in the queue at once (the lease has ten minutes left), and the idle worker took it.
    let status = cluster.wait_for_state(&sweep, "the job to succeed", TIMEOUT, |s| {
        s["succeeded"] == 1
    });
    let done: Value = status["jobs"][0].clone();
    assert_eq!(done["worker"], other.as_str(), "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
    assert_eq!(done["preemptions"], 1, "no failed attempt: {done}");
    assert_eq!(done["epochs_retrained"], 0, "{done}");
    let other_task = if task == "0" { "1" } else { "0" };
    assert!(
        slurm
            .job_log(&job, other_task)
            .contains("resumed from a checkpoint"),
        "{}",
        slurm.job_log(&job, other_task)
    );
    let result = cluster.results(&sweep).remove(0);
    assert_eq!(comparable(&result), comparable(&reference));
    cancel(&slurm, &job);
    println!(
        "slurm: scancel --signal=TERM {job}_{task} at epoch {} -> checkpoint uploaded ({}), job finished on task {other_task} ({other}) with attempts 2, preemptions 1, failed attempts 0, result equal to the undisturbed run; squeue empty",
        running["jobs"][0]["epoch"],
        stored[0]
            .split("checkpoint stored")
            .nth(1)
            .unwrap_or("")
            .trim()
    );
}
