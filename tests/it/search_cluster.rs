//! A search on a real coordinator and workers: each job stops at its rung with a checkpoint,
//! the best configuration resumes from it to the last epoch with no epoch trained twice, and the
//! others are stopped where they waited.

use std::time::Duration;

use crate::cluster_support::TestCluster;
use crate::harness::register;

const STALL: Duration = Duration::from_secs(90);

/// Three configurations (plans) x two seeds of a tiny synthetic set with a validation split;
/// rungs at epochs 2 and 6 of 12.
const SPEC: &str = r#"
name = "searched"
seeds = [0, 1]
[dataset]
kind = "synthetic"
classes = 4
train_per_class = 40
test_per_class = 10
val_per_class = 5
image_size = 8
noise = 2.0
imbalance_ratio = 5
head_min_count = 20
[model]
depth = 8
[losses]
plans = [{}, { comp = "tail" }, { pc = "head" }]
[train]
epochs = 12
batch_size = 16
lr = 0.05
lr_schedule = "cosine"
warmup_epochs = 1
pretrain_ce_epochs = 1
checkpoint_every = 1000
[search]
method = "asha"
min_epochs = 2
"#;

register!(a_search_stops_jobs_at_their_rungs_and_the_promoted_resume_without_retraining);
fn a_search_stops_jobs_at_their_rungs_and_the_promoted_resume_without_retraining() {
    let cluster = TestCluster::start_with_lease(2, "10m");
    let sweep = cluster.submit(&cluster.write_spec(SPEC));
    let status = cluster.wait_for_state(&sweep, "the search to end", STALL, |s| {
        s["pending"] == 0 && s["running"] == 0
    });
    assert_eq!(status["succeeded"], 2, "{status}");
    assert_eq!(status["cancelled"], 4, "{status}");
    let jobs = status["jobs"].as_array().unwrap();
    for job in jobs {
        if job["state"] == "cancelled" {
            // Stopped where it waited: at the first rung, trained no further.
            assert_eq!(job["epoch"], 2, "{job}");
            assert!(
                job["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("stopped by the search at its rung at epoch 2"),
                "{job}"
            );
        } else {
            assert_eq!(job["epochs_retrained"], 0, "{job}");
            // Paused twice, leased three times, none of it a preemption.
            assert_eq!(job["attempts"], 3, "{job}");
            assert_eq!(job["preemptions"], 0, "{job}");
        }
    }
    // Status shows each configuration where its seeds stand: the promoted one past its last
    // rung, the others stopped at the first, each with its seeds' mean reading there.
    let configurations = status["configurations"]
        .as_array()
        .expect("a search's rungs");
    let standings: Vec<(&str, u64)> = configurations
        .iter()
        .map(|c| (c["standing"].as_str().unwrap(), c["rung"].as_u64().unwrap()))
        .collect();
    let mut sorted = standings.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [("promoted", 6), ("stopped", 2), ("stopped", 2)],
        "{status}"
    );
    for configuration in configurations {
        assert_eq!(configuration["seeds"], 2, "{configuration}");
        assert!(configuration["reading"].is_f64(), "{configuration}");
    }
    for job in jobs {
        assert!(job["rungs"]["2"].is_f64(), "{job}");
    }
    // The two seeds of one configuration went on together.
    let succeeded: Vec<&serde_json::Value> =
        jobs.iter().filter(|j| j["state"] == "succeeded").collect();
    assert_eq!(succeeded[0]["plan"], succeeded[1]["plan"]);
    // Each result holds every epoch once, across its three leases.
    for result in cluster.results(&sweep) {
        let epochs: Vec<u32> = result.epochs.iter().map(|e| e.epoch).collect();
        assert_eq!(epochs, (1..=12).collect::<Vec<_>>());
        assert_eq!(result.epochs_retrained, 0);
        // The rungs were evaluated on the validation split.
        for rung in [2, 6] {
            assert!(result.epochs[rung - 1].val_accuracy.is_some());
        }
    }
}
