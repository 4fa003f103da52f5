//! `ltsweep validate` on a `[search]`: the rungs it prints (and Hyperband's brackets), the sampled
//! configurations, and a rung refused for falling before a switch of the schedule.

use serde_json::Value;

use crate::harness::register;
use crate::support::{run, stderr, stdout, write};

/// Fashion-MNIST-LT with a validation split, on a 30-epoch cosine schedule with 10 epochs of
/// cross entropy first.
const ASHA: &str = r#"
name = "asha"
seeds = [0, 1, 2]
[dataset]
kind = "fashion-mnist"
path = "fashion-mnist"
val_per_class = 20
[train]
epochs = 30
lr_schedule = "cosine"
warmup_epochs = 2
pretrain_ce_epochs = 10
lr = { log_uniform = [0.01, 0.5] }
[losses]
plans = [{}, { comp = "tail", pc = "head" }]
pc_weight = [0.1, 1.0]
[search]
method = "asha"
metric = "val_tail"
min_epochs = 11
samples = 4
"#;

register!(validate_prints_a_searchs_rungs_and_refuses_one_before_the_plans_start);
fn validate_prints_a_searchs_rungs_and_refuses_one_before_the_plans_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "asha.toml", ASHA);
    let output = run(&["validate", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("48 jobs = 2 plans x 2 pc_weight x 4 samples of (lr) x 3 seeds"),
        "{text}"
    );
    assert!(
        text.contains("search: asha on val_tail, reduction factor 3: rungs at epochs 11 (each configuration's seeds judged together on their mean), the promoted train to epoch 30"),
        "{text}"
    );
    assert!(
        text.contains(
            "samples: 4 configurations drawn from a scrambled Halton sequence (search.seed = 0)"
        ),
        "{text}"
    );

    let output = run(&["validate", path.to_str().unwrap(), "--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let grid: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(grid["search"]["rungs"], serde_json::json!([11]));
    assert_eq!(grid["search"]["metric"], "val_tail");
    let jobs = grid["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 48);
    let mut rates: Vec<f64> = jobs.iter().map(|j| j["lr"].as_f64().unwrap()).collect();
    rates.sort_by(f64::total_cmp);
    rates.dedup();
    assert_eq!(rates.len(), 4, "{rates:?}");
    assert!(
        rates.iter().all(|lr| (0.01..=0.5).contains(lr)),
        "{rates:?}"
    );

    // Hyperband: the same rungs, and the configurations shared among its brackets.
    let hyperband = write(
        dir.path(),
        "hyperband.toml",
        &ASHA.replace("method = \"asha\"", "method = \"hyperband\""),
    );
    let output = run(&["validate", hyperband.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("search: hyperband on val_tail, reduction factor 3: rungs at epochs 11")
            && text.contains(
                "  bracket 0: 10 configurations, judged from the rung at epoch 11 on\n  \
                 bracket 1: 6 configurations, no rung: they train to epoch 30"
            ),
        "{text}"
    );
    let output = run(&["validate", hyperband.to_str().unwrap(), "--json"]);
    let grid: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(grid["search"]["brackets"], serde_json::json!([10, 6]));

    let early = write(
        dir.path(),
        "early.toml",
        &ASHA.replace("min_epochs = 11", "min_epochs = 4"),
    );
    let output = run(&["validate", early.to_str().unwrap()]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("search.min_epochs: rung at epoch 4 falls before pretrain_ce_epochs = 10: every plan is still plain cross entropy"),
        "{err}"
    );
}
