//! Faults during a sweep. Jobs checkpoint through the coordinator and resume on any worker, so
//! a sweep hit by worker kills, coordinator restarts and a network partition ends with one
//! result a job, each equal to that of an undisturbed run, and no resumed attempt trains more
//! than `checkpoint_every` epochs again.

use std::time::Duration;

use ltsweep_domain::JobResult;
use serde_json::Value;

use crate::cluster_support::{TestCluster, assert_one_result_per_job};
use crate::harness::register;
use crate::preemption::comparable;
use crate::proxy::Proxy;

/// How long a sweep may go without any change of its status before a test fails.
const TIMEOUT: Duration = Duration::from_secs(60);
const CHECKPOINT_EVERY: u32 = 3;

/// Nine jobs of forty epochs (a few seconds each). The faults land on running jobs because
/// the test stops every worker while it picks its target and acts (see
/// `TestCluster::act_on_running_job`), not because a status poll happened to catch one.
fn chaos_spec() -> String {
    format!(
        r#"
name = "chaos"
seeds = [0]
max_attempts = 10
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
[train]
epochs = 40
batch_size = 16
lr = 0.05
warmup_epochs = 0
lr_decay_epochs = [30]
pretrain_ce_epochs = 1
checkpoint_every = {CHECKPOINT_EVERY}
eval_epochs = [5]
"#
    )
}

fn jobs(status: &Value) -> &Vec<Value> {
    status["jobs"].as_array().unwrap()
}

fn succeeded(status: &Value) -> u64 {
    status["succeeded"].as_u64().unwrap()
}

fn undisturbed_results() -> Vec<JobResult> {
    let cluster = TestCluster::start(2);
    let sweep = cluster.submit(&cluster.write_spec(&chaos_spec()));
    cluster.wait_for_state(&sweep, "the undisturbed sweep", TIMEOUT, |s| {
        succeeded(s) == 9
    });
    cluster.results(&sweep)
}

register!(a_sweep_through_kills_restarts_and_a_partition_ends_as_an_undisturbed_one);
fn a_sweep_through_kills_restarts_and_a_partition_ends_as_an_undisturbed_one() {
    let reference = undisturbed_results();

    let mut cluster = TestCluster::start(2);
    let proxy = Proxy::start(&cluster.address);
    cluster.add_worker_at(&proxy.url());
    let ids: Vec<String> = (0..3).map(|i| cluster.worker_id(i)).collect();
    let cut_off = ids[2].clone();
    let sweep = cluster.submit(&cluster.write_spec(&chaos_spec()));
    // Workers are stopped while the target is chosen and killed: its job is certainly in
    // mid-run, after a checkpoint or two, when it dies.
    let kill_a_worker = |cluster: &mut TestCluster, what: &str| {
        cluster.act_on_running_job(
            &sweep,
            what,
            4,
            |w| w != cut_off && ids.iter().any(|id| id == w),
            |cluster, _, worker| {
                let index = ids.iter().position(|id| id == worker).unwrap();
                cluster.workers[index].kill();
            },
        );
        cluster.add_worker();
    };

    // A worker dies part-way through a job, after a checkpoint or two.
    kill_a_worker(&mut cluster, "a job part-way through, to kill its worker");
    // The coordinator dies with jobs running.
    cluster.wait_for_state(&sweep, "a first result", TIMEOUT, |s| succeeded(s) >= 1);
    cluster.restart_coordinator();
    // One worker is cut off for longer than its lease: its job goes to another worker.
    // Cut while that worker is stopped mid-job: the job cannot end before the cut.
    let (job, _) = cluster.act_on_running_job(
        &sweep,
        "a job on the worker behind the proxy",
        1,
        |w| w == cut_off,
        |_, _, _| proxy.cut(),
    );
    cluster.wait_for_state(&sweep, "the cut-off worker's job to move", TIMEOUT, |s| {
        jobs(s)
            .iter()
            .any(|j| j["id"] == job.as_str() && j["worker"] != cut_off.as_str())
    });
    proxy.heal();
    // The coordinator dies again, and another worker.
    cluster.wait_for_state(&sweep, "four results", TIMEOUT, |s| succeeded(s) >= 4);
    cluster.restart_coordinator();
    kill_a_worker(
        &mut cluster,
        "a job part-way through, to kill its worker again",
    );

    let status = cluster.wait_for_state(&sweep, "every job to succeed", TIMEOUT, |s| {
        succeeded(s) == 9
    });
    let results = cluster.results(&sweep);
    assert_one_result_per_job(&results, 9);
    for result in &results {
        let undisturbed = reference
            .iter()
            .find(|r| r.job_id == result.job_id)
            .unwrap();
        assert_eq!(
            comparable(result),
            comparable(undisturbed),
            "job {} differs from the undisturbed run",
            result.job_id
        );
    }
    let mut leased_again = 0;
    for job in jobs(&status) {
        let attempts = job["attempts"].as_u64().unwrap();
        let retrained = job["epochs_retrained"].as_u64().unwrap();
        assert!(
            retrained <= u64::from(CHECKPOINT_EVERY) * (attempts - 1),
            "a resumed attempt trained more than checkpoint_every epochs again: {job}"
        );
        leased_again += attempts - 1;
    }
    // Two kills and a partition each cost a job one attempt (one job may be hit twice); the
    // coordinator restarts cost none, as workers keep their leases through them.
    assert!(leased_again >= 3, "every fault moved a job: {status}");
    // The job the partition moved was leased again, and still has one result.
    let moved = results.iter().find(|r| *r.job_id == job).unwrap();
    assert!(moved.attempts >= 2, "{moved:?}");
}

register!(a_worker_cut_off_shorter_than_its_lease_keeps_its_job_and_completes_once);
fn a_worker_cut_off_shorter_than_its_lease_keeps_its_job_and_completes_once() {
    // The cut lands while the worker is stopped in mid-job, so the job needs no more epochs
    // than it takes to be seen running; an epoch takes under a tenth of a second here.
    const EPOCHS: usize = 30;
    // The lease outlasts every wait of the test, so the job keeps it however loaded the
    // machine.
    let mut cluster = TestCluster::start_with_lease(0, "600s");
    let proxy = Proxy::start(&cluster.address);
    cluster.add_worker_at(&proxy.url());
    let worker = cluster.worker_id(0);
    let spec = chaos_spec()
        .replace("epochs = 40", &format!("epochs = {EPOCHS}"))
        .replace("lr_decay_epochs = [30]", "lr_decay_epochs = [20]")
        + "[losses]\nplans = [{ comp = \"none\", pc = \"none\" }]\n";
    let sweep = cluster.submit(&cluster.write_spec(&spec));
    cluster.act_on_running_job(
        &sweep,
        "the job to start",
        1,
        |_| true,
        |_, _, _| proxy.cut(),
    );
    // The worker trains on and finishes while cut off; its completion fails and is retried.
    // Bounded by a stall, not by the training's length: each checkpoint the cut-off worker
    // takes (every few epochs) it logs as not uploaded, so a slow machine makes the wait
    // longer while a stuck worker fails the test within TIMEOUT.
    let mut latest_checkpoint = None;
    let mut changed = std::time::Instant::now();
    while cluster.workers[0]
        .line_containing("cannot complete")
        .is_none()
    {
        let newest = cluster.workers[0]
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("checkpoint not uploaded"))
            .filter_map(|l| {
                l.split("epoch=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u32>()
                    .ok()
            })
            .max();
        if newest != latest_checkpoint {
            latest_checkpoint = newest;
            changed = std::time::Instant::now();
        }
        assert!(
            changed.elapsed() < TIMEOUT,
            "waiting for a failed completion: no new checkpoint for {TIMEOUT:?} (last: epoch {latest_checkpoint:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy.heal();
    let status =
        cluster.wait_for_state(&sweep, "the job to succeed", TIMEOUT, |s| succeeded(s) == 1);
    assert_eq!(jobs(&status)[0]["attempts"], 1, "{status}");
    let results = cluster.results(&sweep);
    assert_one_result_per_job(&results, 1);
    assert_eq!(results[0].worker_id.as_deref(), Some(worker.as_str()));
    assert_eq!(results[0].epochs.len(), EPOCHS);
}
