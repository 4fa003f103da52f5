//! Two-stage sweeps through the real binaries: `validate` shows the graph; a coordinator and a
//! worker process run stage-1 jobs and then their stage-2 jobs from the kept models; the report
//! shows the stage-2 method as a column; `ltsweep model` writes a stage-1 job's model.

use std::time::Duration;

use crate::cluster_support::TestCluster;
use crate::harness::register;
use crate::support::{run, stderr, stdout, write};

/// One stage-1 job (two seeds) with four stage-2 jobs each; its models kept for good.
const SPEC: &str = r#"
name = "two-stage"
seeds = [0, 1]
keep_models = true
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
epochs = 2
batch_size = 16
lr = 0.05
warmup_epochs = 0
lr_decay_epochs = [1]
[losses]
plans = [{}]
[stage2]
method = ["none", "crt", "tau_norm", "ncm", "posthoc_la"]
[stage2.crt]
epochs = 1
"#;

register!(validate_shows_each_stage2_job_after_its_stage1_job);
fn validate_shows_each_stage2_job_after_its_stage1_job() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "spec.toml", SPEC);
    let output = run(&["validate", spec.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("stage 2") && text.contains("after"), "{text}");
    // Row 1 is the first stage-1 job, rows 2-5 its stage-2 jobs.
    let row = |n: usize| text.lines().nth(n + 1).unwrap_or_default().to_owned();
    assert!(row(1).contains(" none"), "{text}");
    assert!(
        row(2).contains("crt(epochs=1,lr=0.1)") && row(2).contains("#1 ("),
        "{text}"
    );
    assert!(
        row(6).contains(" none") && row(7).contains("#6 ("),
        "{text}"
    );
    assert!(
        text.contains("10 jobs = 1 plans x 2 seeds x (1 stage-1 job + 4 stage-2 jobs after it)"),
        "{text}"
    );
    assert!(text.contains("keep_models"), "{text}");
    let output = run(&["validate", spec.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let jobs = json["jobs"].as_array().unwrap();
    assert_eq!(jobs[1]["after"], jobs[0]["id"]);
    assert_eq!(jobs[1]["stage2"], "crt(epochs=1,lr=0.1)");
    assert!(jobs[0].get("after").is_none());

    // `[eval] posthoc_tau` is refused, saying where post-hoc adjustment went.
    let old = write(
        dir.path(),
        "old.toml",
        "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[eval]\nposthoc_tau = [1.0]\n",
    );
    let output = run(&["validate", old.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("posthoc_la"),
        "{}",
        stderr(&output)
    );
}

register!(stage2_jobs_run_from_kept_models_and_report_their_method_as_a_column);
fn stage2_jobs_run_from_kept_models_and_report_their_method_as_a_column() {
    let cluster = TestCluster::start(1);
    let spec = cluster.write_spec(SPEC);
    let sweep = cluster.submit(&spec);
    let status = cluster.wait_for_state(
        &sweep,
        "every stage-1 and stage-2 job to succeed",
        Duration::from_secs(120),
        |s| s["succeeded"] == 10 || s["failed"].as_u64() > Some(0),
    );
    assert_eq!(status["succeeded"], 10, "{status:#}");
    let jobs = status["jobs"].as_array().unwrap();
    let stage1: Vec<&str> = jobs
        .iter()
        .filter(|j| j.get("after").is_none())
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(stage1.len(), 2);
    for job in jobs.iter().filter(|j| j.get("after").is_some()) {
        assert!(stage1.contains(&job["after"].as_str().unwrap()), "{job}");
        assert!(job["stage2"].is_string(), "{job}");
        assert_eq!(job["base"], "ce", "{job}");
    }
    // The table shows the stage-2 method as a column, as `validate` does.
    let output = cluster.cli(&["status", &sweep]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = stdout(&output);
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("stage 2"), "{table}");
    assert!(!header.contains("base"), "only what varies: {table}");

    // The report: the stage-2 method as a column, each row against CE alone.
    let out = cluster.dir.path().join("report");
    let output = cluster.cli(&["report", &sweep, "--out", out.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let table = std::fs::read_to_string(out.join("table1.md")).unwrap();
    assert!(table.contains("| stage 2 |"), "{table}");
    for method in [
        "crt(epochs=1,lr=0.1)",
        "tau_norm(tau=1)",
        "ncm",
        "posthoc_la(tau=1)",
    ] {
        assert!(
            table.contains(&format!("| {method} |")),
            "{method}: {table}"
        );
    }

    // The kept model (PyTorch opens it: see `kept_model`).
    let model = cluster.dir.path().join("model.safetensors");
    let output = cluster.cli(&["model", &sweep, stage1[0], "--out", model.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("wrote the model"),
        "{}",
        stdout(&output)
    );
    // A stage-2 job keeps none.
    let stage2 = jobs.iter().find(|j| j.get("after").is_some()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = cluster.cli(&["model", &sweep, &stage2, "--out", "unused.safetensors"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("stage-1 job"),
        "{}",
        stderr(&refused)
    );
    let (tensors, metadata) =
        ltsweep_worker::model_file::decode(&std::fs::read(&model).unwrap()).unwrap();
    assert!(
        tensors
            .iter()
            .any(|(name, _)| name == "layer1.0.bn1.running_mean")
    );
    assert_eq!(metadata[ltsweep_worker::model_file::CLASSIFIER], "linear");
}
