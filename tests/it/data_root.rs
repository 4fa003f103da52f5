//! A worker whose data is not where the spec says: it fails a job or two with the missing
//! path, then pauses, instead of failing every job of the sweep in milliseconds.

use std::time::Duration;

use crate::cluster_support::TestCluster;
use crate::harness::register;

/// 9 paper plans x 3 seeds on CIFAR-10 files the worker does not have.
const SPEC: &str = r#"
name = "no-data"
seeds = [0, 1, 2]
[dataset]
kind = "cifar10"
path = "cifar-10-batches-bin"
[model]
depth = 8
[train]
epochs = 1
"#;

register!(a_worker_with_a_wrong_data_root_fails_a_few_jobs_naming_the_path);
fn a_worker_with_a_wrong_data_root_fails_a_few_jobs_naming_the_path() {
    let mut cluster = TestCluster::start(0);
    let nowhere = cluster.dir.path().join("not-the-data-root");
    let spec = cluster.write_spec(SPEC);
    let sweep = cluster.submit(&spec);
    let url = cluster.url();
    cluster.add_worker_with(&url, &["--data-root", nowhere.to_str().unwrap()]);

    let missing = nowhere.join("cifar-10-batches-bin");
    let missing = missing.to_str().unwrap();
    let with_error = |status: &serde_json::Value| -> Vec<String> {
        status["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|job| job["error"].as_str().map(str::to_owned))
            .collect()
    };
    cluster.wait_for_state(
        &sweep,
        "a job failed for its missing data",
        Duration::from_secs(60),
        |status| !with_error(status).is_empty(),
    );
    // The worker says it pauses; give it the time it would take to fail every other job.
    crate::support::wait_until("the worker to pause", Duration::from_secs(60), || {
        cluster.workers[0]
            .line_containing("pausing before taking more jobs")
            .is_some()
    });
    std::thread::sleep(Duration::from_secs(3));
    let status = cluster.status(&sweep);
    let errors = with_error(&status);
    assert!(
        (1..=2).contains(&errors.len()),
        "{} jobs failed on the worker without data: {errors:?}",
        errors.len()
    );
    for error in &errors {
        assert!(error.contains(missing), "`{error}` does not name {missing}");
    }
    // Retryable: no job failed for good, another worker may have the data.
    assert_eq!(status["failed"], 0, "{status}");
    assert_eq!(status["total"], 27);
}
