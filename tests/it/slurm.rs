//! A real Slurm: `ltsweep launch slurm` submits a job array of workers to a one-node Slurm of
//! the test's own; they run a sweep of 18 jobs to the end. Then the worker running a job is
//! stopped the three ways Slurm stops jobs: `scancel --full --signal=TERM` (the batch step and
//! every job step), a plain `scancel` (the job ends: SIGCONT and SIGTERM, SIGKILL after
//! KillWait), and its time limit (the warning, SIGUSR1, then SIGTERM). Each time that worker
//! reaches the coordinator over a slow link, so its checkpoint takes seconds to upload; the
//! job goes back and a second worker finishes it, with no attempt counted and the undisturbed
//! run's result. The three stops run at once, each with a coordinator and job arrays of its
//! own: most of each is waiting on Slurm (the time limit alone is a minute), not training.

use std::time::Duration;

use ltsweep_domain::JobResult;
use ltsweep_proto::pb;
use serde_json::Value;

use crate::cluster_support::{TOKEN, TestCluster, tiny_spec};
use crate::harness::register;
use crate::preemption::{comparable, one_job_spec, undisturbed};
use crate::proxy::Proxy;
use crate::slurm_support::{ProcessSignals, TestSlurm, send, worker_pid};
use crate::support::{stderr, stdout, wait_until};

const TIMEOUT: Duration = Duration::from_secs(1800);

/// The stopped worker's link to the coordinator, in bytes a second: its checkpoint (about
/// 600 KB) takes about ten seconds to upload, well within KillWait (60 s in the test's Slurm)
/// and far longer than a worker killed with the signal would live.
const SLOW_LINK: u64 = 64 * 1024;

/// `ltsweep launch slurm ...` of `workers` workers that reach the coordinator at `url`; the
/// job id it printed.
fn launch(slurm: &TestSlurm, url: &str, workers: u32) -> String {
    let log_dir = slurm.log_dir();
    let output = slurm
        .command(env!("CARGO_BIN_EXE_ltsweep"))
        .args(["launch", "slurm", "--coordinator", url])
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
            .list_workers(pb::ListWorkersRequest::default())
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

/// The `count` workers of array job `job`, by task id, once all registered.
fn wait_for_workers(
    slurm: &TestSlurm,
    cluster: &TestCluster,
    job: &str,
    count: usize,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    wait_until("the array tasks to register", TIMEOUT, || {
        found = workers_of(cluster, job);
        found.len() == count
    });
    found.sort_by(|a, b| a.1.cmp(&b.1));
    let tasks: Vec<String> = (0..count).map(|t| t.to_string()).collect();
    assert_eq!(
        found.iter().map(|w| &w.1).collect::<Vec<_>>(),
        tasks.iter().collect::<Vec<_>>(),
        "{}",
        slurm.logs()
    );
    found
}

/// `ltsweep launch slurm --cancel JOB`, then waits until `squeue` lists none of its tasks.
fn cancel(slurm: &TestSlurm, job: &str) {
    let output = slurm
        .command(env!("CARGO_BIN_EXE_ltsweep"))
        .args(["launch", "slurm", "--cancel", job])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let task_of_job = format!("{job}_");
    wait_until("the cancelled job to leave squeue", TIMEOUT, || {
        !slurm.queue().iter().any(|l| l.starts_with(&task_of_job))
    });
}

/// How Slurm is asked to stop the worker that runs the job.
#[derive(Clone, Copy, Debug)]
enum SlurmStop {
    /// `scancel --full --signal=TERM`: SIGTERM to the batch step and every job step.
    FullTerm,
    /// A plain `scancel`: the job ends.
    Cancel,
    /// The time limit, lowered to one minute while the job runs: Slurm's warning is due at
    /// once (`--signal=B:USR1@60`), the limit itself follows.
    TimeLimit,
}

impl SlurmStop {
    fn command(self, task: &str) -> (&'static str, Vec<String>) {
        match self {
            SlurmStop::FullTerm => (
                "scancel",
                vec!["--full".into(), "--signal=TERM".into(), task.into()],
            ),
            SlurmStop::Cancel => ("scancel", vec![task.into()]),
            SlurmStop::TimeLimit => (
                "scontrol",
                vec![
                    "update".into(),
                    format!("JobId={task}"),
                    "TimeLimit=1".into(),
                ],
            ),
        }
    }
}

/// A job's worker stopped by Slurm as `stop` says while it trains; what happened, in a line.
fn preempted_by(slurm: &TestSlurm, reference: &JobResult, stop: SlurmStop) -> String {
    let cluster = TestCluster::start_with_lease(0, "10m");
    let link = Proxy::start_throttled(&cluster.address, SLOW_LINK);
    let victim = launch(slurm, &link.url(), 1);
    let victim_worker = wait_for_workers(slurm, &cluster, &victim, 1).remove(0).0;
    let sweep = cluster.submit(&cluster.write_spec(&one_job_spec()));
    let running = cluster.wait_for_state(&sweep, "the job part-way", TIMEOUT, |s| {
        s["jobs"][0]["state"] == "running" && s["jobs"][0]["epoch"].as_u64() >= Some(2)
    });
    let job_id = running["jobs"][0]["id"].as_str().unwrap().to_owned();
    let pid = worker_pid(&victim, "0").expect("the worker process of the array task");
    // Held stopped while Slurm acts, so the job cannot end first however slow this machine.
    send(pid, libc::SIGSTOP);
    let finisher = launch(slurm, &cluster.url(), 1);
    let finisher_worker = wait_for_workers(slurm, &cluster, &finisher, 1).remove(0).0;
    let task = format!("{victim}_0");
    let (program, args) = stop.command(&task);
    slurm.run(
        program,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    // Slurm continues a stopped process when it ends a job; a signal alone waits, pending,
    // until the process continues. Either way the worker goes on once SIGTERM has reached it.
    wait_until("Slurm's SIGTERM to reach the worker", TIMEOUT, || {
        ProcessSignals::of(pid).is_none_or(|p| !p.stopped || p.pending(libc::SIGTERM))
    });
    if ProcessSignals::of(pid).is_some() {
        send(pid, libc::SIGCONT);
    }
    wait_until("the stopped array task to end", TIMEOUT, || {
        !slurm
            .queue()
            .iter()
            .any(|l| l.starts_with(&format!("{task} ")))
    });
    let log = slurm.job_log(&victim, "0");
    assert!(
        log.contains("SIGTERM"),
        "{stop:?}: the signal is logged: {log}"
    );
    if matches!(stop, SlurmStop::TimeLimit) {
        assert!(
            log.contains("SIGUSR1"),
            "{stop:?}: the warning is logged: {log}"
        );
    }
    assert!(
        log.contains("preempted: lease given back"),
        "{stop:?}: {log}"
    );
    let stored: Vec<String> = cluster
        .coordinator
        .lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("checkpoint stored") && l.contains(&job_id))
        .cloned()
        .collect();
    assert_eq!(
        stored.len(),
        1,
        "{stop:?}: the preempted job's checkpoint: {stored:?}"
    );
    // Back in the queue at once (the lease has ten minutes left), and the idle worker took it.
    let status = cluster.wait_for_state(&sweep, "the job to succeed", TIMEOUT, |s| {
        s["succeeded"] == 1
    });
    let done: Value = status["jobs"][0].clone();
    assert_eq!(done["worker"], finisher_worker.as_str(), "{stop:?}: {done}");
    assert_eq!(done["attempts"], 2, "{stop:?}: {done}");
    assert_eq!(
        done["preemptions"], 1,
        "{stop:?}: no failed attempt: {done}"
    );
    assert_eq!(done["epochs_retrained"], 0, "{stop:?}: {done}");
    let finisher_log = slurm.job_log(&finisher, "0");
    assert!(
        finisher_log.contains("resumed from a checkpoint"),
        "{stop:?}: {finisher_log}"
    );
    let result = cluster.results(&sweep).remove(0);
    assert_eq!(comparable(&result), comparable(reference), "{stop:?}");
    cancel(slurm, &finisher);
    format!(
        "slurm: {program} {} at epoch {} of a job on {victim_worker} over a {} KiB/s link -> checkpoint uploaded ({}), job finished on {finisher_worker} with attempts 2, preemptions 1, failed attempts 0, epochs retrained 0, result equal to the undisturbed run; both arrays gone from squeue",
        args.join(" "),
        running["jobs"][0]["epoch"],
        SLOW_LINK / 1024,
        stored[0]
            .split("checkpoint stored")
            .nth(1)
            .unwrap_or("")
            .trim()
    )
}

register!(slurm_job_array_workers_run_a_sweep_and_survive_slurms_own_stops, needs: [Slurm]);
fn slurm_job_array_workers_run_a_sweep_and_survive_slurms_own_stops() {
    let slurm =
        TestSlurm::start("slurm_job_array_workers_run_a_sweep_and_survive_slurms_own_stops");
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

    // A sweep through a job array of two workers: both registered before it is submitted, so
    // both are waiting for work when it arrives.
    let job = launch(&slurm, &cluster.url(), 2);
    let workers = wait_for_workers(&slurm, &cluster, &job, 2);
    let sweep = cluster.submit(&cluster.write_spec(&tiny_spec(4)));
    let status = cluster.wait_for_state(&sweep, "the sweep", TIMEOUT, |s| {
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
    slurm.wait_for_empty_queue();
    println!(
        "slurm: job array {job} (tasks 0 and 1) ran a sweep: {total} jobs succeeded ({} on task 0, {} on task 1); squeue empty after --cancel",
        ran_on(&workers[0].0),
        ran_on(&workers[1].0)
    );
    drop(cluster);

    let stops = [SlurmStop::FullTerm, SlurmStop::Cancel, SlurmStop::TimeLimit];
    let (slurm_ref, reference) = (&slurm, &reference);
    let lines: Vec<String> = std::thread::scope(|scope| {
        let running: Vec<_> = stops
            .map(|stop| scope.spawn(move || preempted_by(slurm_ref, reference, stop)))
            .into_iter()
            .collect();
        running
            .into_iter()
            .map(|stop| {
                stop.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    for line in lines {
        println!("{line}");
    }
    slurm.wait_for_empty_queue();
    println!("slurm: squeue empty after the three stops");
}
