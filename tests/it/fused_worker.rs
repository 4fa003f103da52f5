//! A worker with `--fuse 3` trains three jobs of one shape as one fused array, each under its
//! own lease: a SIGTERM checkpoints and releases every member as preempted (no attempt lost,
//! nothing trained twice), and a fused worker started afterwards resumes all three and
//! finishes them.

use std::time::Duration;

use serde_json::Value;

use crate::cluster_support::{TestCluster, assert_one_result_per_job};
use crate::harness::register;
use crate::preemption::{one_job_spec, signal, wait_for_exit};
use crate::support::wait_until;

const TIMEOUT: Duration = Duration::from_secs(600);

fn jobs(status: &Value) -> Vec<Value> {
    status["jobs"].as_array().unwrap().clone()
}

register!(a_fused_worker_preempts_and_resumes_every_member);
fn a_fused_worker_preempts_and_resumes_every_member() {
    let spec = one_job_spec().replace("seeds = [4]", "seeds = [4, 5, 6]");
    let mut cluster = TestCluster::start_with_lease(0, "10m");
    let sweep = cluster.submit(&cluster.write_spec(&spec));
    let url = cluster.url();
    cluster.add_worker_with(&url, &["--fuse", "3"]);
    cluster.wait_for_state(&sweep, "three jobs to train", TIMEOUT, |s| {
        jobs(s)
            .iter()
            .all(|j| j["state"] == "running" && j["epoch"].as_u64() >= Some(2))
    });
    let worker = cluster.workers.last_mut().unwrap();
    assert!(
        worker
            .line_containing("training as one fused array")
            .is_some(),
        "the three jobs train fused"
    );
    signal(worker, libc::SIGTERM);
    let exit = wait_for_exit(worker, "the preempted worker to exit");
    assert!(exit.success(), "a preempted worker exits cleanly: {exit}");
    let status = cluster.status(&sweep);
    for job in jobs(&status) {
        assert_eq!(job["state"], "pending", "{job}");
        assert_eq!(job["preemptions"], 1, "{job}");
        assert!(job.get("error").is_none(), "{job}");
    }

    cluster.add_worker_with(&url, &["--fuse", "3"]);
    let status = cluster.wait_for_state(&sweep, "the three jobs to succeed", TIMEOUT, |s| {
        s["succeeded"] == 3
    });
    for job in jobs(&status) {
        assert_eq!(job["preemptions"], 1, "{job}");
        assert_eq!(job["epochs_retrained"], 0, "nothing trained twice: {job}");
    }
    let results = cluster.results(&sweep);
    assert_one_result_per_job(&results, 3);
    for result in &results {
        assert_eq!(result.epochs.len(), 40);
        assert!(result.accuracy.acc_all.unwrap() > 0.25, "above chance");
    }
    wait_until("the second worker's log", Duration::from_secs(60), || {
        cluster.workers[1]
            .line_containing("training as one fused array")
            .is_some()
    });
}
