//! Preemption of real worker processes: SIGTERM during a job checkpoints it at the next step,
//! gives the lease back as `preempted` and exits; the job is queued again at once, and the
//! attempt does not count. Five times on one job, and it still ends as an undisturbed run.

use std::time::Duration;

use ltsweep_domain::JobResult;
use serde_json::Value;

use crate::cluster_support::{Process, TestCluster};
use crate::harness::register;
use crate::support::wait_until;

/// How long a sweep may go without any change of its status before a test fails.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Long enough that no lease can expire during the test: every requeue is a release.
const LEASE_TTL: &str = "10m";
const PREEMPTIONS: u64 = 5;

/// One job of forty short epochs that checkpoints only when preempted.
pub fn one_job_spec() -> String {
    r#"
name = "preempted"
seeds = [4]
max_attempts = 1
[dataset]
kind = "synthetic"
classes = 4
train_per_class = 40
test_per_class = 10
image_size = 8
noise = 2.0
imbalance_ratio = 5
head_min_count = 20
[model]
depth = 8
[losses]
plans = [{ comp = "tail", pc = "head" }]
[train]
epochs = 40
batch_size = 16
lr = 0.05
warmup_epochs = 0
lr_decay_epochs = [30]
pretrain_ce_epochs = 1
checkpoint_every = 1000
eval_epochs = [5]
"#
    .to_owned()
}

/// What two runs of a job must agree on: everything but the clock and the run's history.
pub fn comparable(result: &JobResult) -> JobResult {
    let mut result = result.clone();
    result.train_seconds = 0.0;
    result.attempts = 0;
    result.epochs_retrained = 0;
    result.worker_id = None;
    for epoch in &mut result.epochs {
        epoch.seconds = 0.0;
        epoch.images_per_second = 0.0;
    }
    result
}

fn the_job(status: &Value) -> Value {
    status["jobs"][0].clone()
}

pub fn signal(process: &Process, signal: i32) {
    let pid = libc::pid_t::try_from(process.child.id()).unwrap();
    // SAFETY: kill(2) with a pid of our own child and a valid signal number.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

/// Waits for a process to exit by itself; its exit status.
pub fn wait_for_exit(process: &mut Process, what: &str) -> std::process::ExitStatus {
    let mut status = None;
    wait_until(what, Duration::from_secs(60), || {
        status = process.child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

/// The job's result from one worker, untouched.
pub fn undisturbed() -> JobResult {
    let cluster = TestCluster::start_with_lease(1, LEASE_TTL);
    let sweep = cluster.submit(&cluster.write_spec(&one_job_spec()));
    cluster.wait_for_state(&sweep, "the undisturbed run", TIMEOUT, |s| {
        s["succeeded"] == 1
    });
    cluster.results(&sweep).remove(0)
}

register!(sigterm_five_times_on_one_job_costs_no_attempt_and_changes_no_result);
fn sigterm_five_times_on_one_job_costs_no_attempt_and_changes_no_result() {
    let reference = undisturbed();
    let mut cluster = TestCluster::start_with_lease(0, LEASE_TTL);
    let sweep = cluster.submit(&cluster.write_spec(&one_job_spec()));
    for round in 0..PREEMPTIONS {
        cluster.add_worker();
        let target = 2 * round + 1;
        // Signalled while stopped in mid-job: the job cannot end before the signal lands.
        let last = cluster.workers.len() - 1;
        cluster.act_on_running_job(
            &sweep,
            "the job to train on",
            u32::try_from(target).unwrap(),
            |_| true,
            |cluster, _, _| signal(&cluster.workers[last], libc::SIGTERM),
        );
        let worker = cluster.workers.last_mut().unwrap();
        let exit = wait_for_exit(worker, "the preempted worker to exit");
        assert!(exit.success(), "a preempted worker exits cleanly: {exit}");
        let mut released = None;
        wait_until(
            "the worker's log of the release",
            Duration::from_secs(60),
            || {
                released = worker.line_containing("preempted: lease given back");
                released.is_some()
            },
        );
        let released = released.unwrap();
        // The worker exits only once the coordinator took the lease back: the job waits in
        // the queue now, with no worker left to run it, long before its lease could expire.
        let job = the_job(&cluster.status(&sweep));
        assert_eq!(job["state"], "pending", "round {round}: {job}");
        assert_eq!(job["attempts"], round + 1, "{job}");
        assert_eq!(job["preemptions"], round + 1, "{job}");
        assert!(
            job.get("error").is_none(),
            "a preemption is no error: {job}"
        );
        // The checkpoint the worker took at the stop is the one the coordinator holds.
        let epoch = field(&released, "epoch=");
        assert!(epoch.parse::<u64>().unwrap() >= target, "{released}");
        let mut stored_now = Vec::new();
        wait_until(
            "the coordinator's log of the checkpoint",
            Duration::from_secs(60),
            || {
                stored_now = cluster
                    .coordinator
                    .lines
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|l| l.contains("checkpoint stored"))
                    .cloned()
                    .collect();
                stored_now.len() > round as usize
            },
        );
        assert_eq!(
            stored_now.len() as u64,
            round + 1,
            "one checkpoint per preemption"
        );
        assert_eq!(field(stored_now.last().unwrap(), "epoch="), epoch);
    }
    cluster.add_worker();
    let status = cluster.wait_for_state(&sweep, "the job to succeed", TIMEOUT, |s| {
        s["succeeded"] == 1
    });
    let job = the_job(&status);
    assert_eq!(job["attempts"], PREEMPTIONS + 1, "{job}");
    assert_eq!(job["preemptions"], PREEMPTIONS, "no failed attempt: {job}");
    assert_eq!(job["epochs_retrained"], 0, "nothing trained twice: {job}");
    let result = cluster.results(&sweep).remove(0);
    assert_eq!(comparable(&result), comparable(&reference));
}

/// The value after `key` in a log line (`key=value`, ANSI colours off).
fn field(line: &str, key: &str) -> String {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + key.len();
    line[start..]
        .split(|c: char| c.is_whitespace() || c == ',')
        .next()
        .unwrap()
        .to_owned()
}
