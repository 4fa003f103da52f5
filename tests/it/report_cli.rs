//! `ltsweep run`, `report` and `export`: a whole study in one command, its report files, the
//! offline report from an export, and a results file of the wrong schema.

use std::path::Path;

use crate::cluster_support::{Process, listening_address};
use crate::support::{ltsweep, repo, run, stderr, stdout, write};

const STUDY: &str = r#"
name = "study"
seeds = [0, 1]
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
epochs = 3
batch_size = 16
lr = 0.05
warmup_epochs = 0
lr_decay_epochs = [2]
pretrain_ce_epochs = 1
eval_epochs = [1]
checkpoint_every = 1
[losses]
pc_weight = [0.01, 0.1]
"#;

const REPORT_FILES: [&str; 9] = [
    "table1.md",
    "table1.csv",
    "table1.tex",
    "recall.csv",
    "jobs.parquet",
    "per_class.parquet",
    "epochs.parquet",
    "figure1.png",
    "figure1.svg",
];

fn check_parquet_with_pandas(dir: &Path) {
    let python = repo().join(".venv/bin/python");
    let output = std::process::Command::new(&python)
        .arg(repo().join("scripts/check_parquet.py"))
        .arg(dir)
        .arg("pc_weight")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}; run ./dev setup", python.display()));
    assert!(
        output.status.success(),
        "pandas could not read the report (./dev setup installs pandas): {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_study_runs_in_one_command_reports_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "study.toml", STUDY);
    let out = dir.path().join("report");
    let args = [
        "run",
        spec.to_str().unwrap(),
        "--workers",
        "2",
        "--devices",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ];
    let output = run(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("Table 1"), "{text}");
    assert!(text.contains("| ✓ |"), "{text}");
    for file in REPORT_FILES {
        assert!(out.join(file).is_file(), "{file} written");
    }
    let table = std::fs::read_to_string(out.join("table1.md")).unwrap();
    // 9 plans x 2 PC weights, each with both seeds.
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains(" 2 |"))
            .count(),
        18,
        "{table}"
    );
    check_parquet_with_pandas(&out);
    // Every job checkpointed each epoch, and every one succeeded: no checkpoint is kept.
    let kept: Vec<_> = std::fs::read_dir(out.join("state/checkpoints"))
        .unwrap()
        .collect();
    assert!(kept.is_empty(), "checkpoints left: {kept:?}");

    // A second run of a finished study trains nothing and writes the same table.
    let again = run(&args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("resuming"));
    assert_eq!(
        std::fs::read_to_string(out.join("table1.md")).unwrap(),
        table
    );
}

#[test]
fn an_export_reports_offline_and_a_wrong_file_names_the_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let study = STUDY.replace("seeds = [0, 1]", "seeds = [0]").replace(
        "pc_weight = [0.01, 0.1]",
        "plans = [{ comp = \"none\", pc = \"none\" }, { comp = \"tail\", pc = \"head\" }]",
    );
    let spec = write(dir.path(), "study.toml", &study);
    let out = dir.path().join("study");
    let output = run(&[
        "run",
        spec.to_str().unwrap(),
        "--workers",
        "1",
        "--devices",
        "cpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let sweep = stdout(&output)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();

    // A coordinator on the finished study's state serves its results for an export.
    // Port 0: the coordinator holds the port it says it listens on, none is probed.
    let mut command = ltsweep();
    command
        .args(["coordinator", "--listen", "127.0.0.1:0"])
        .args(["--state-dir", out.join("state").to_str().unwrap()])
        .env("LTSWEEP_TOKEN", crate::cluster_support::TOKEN);
    let coordinator = Process::spawn(command);
    let address = listening_address(&coordinator);
    let results = dir.path().join("results.parquet");
    let output = ltsweep()
        .args(["export", &sweep, "--out", results.to_str().unwrap()])
        .args(["--coordinator", &format!("http://{address}")])
        .env("LTSWEEP_TOKEN", crate::cluster_support::TOKEN)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let offline = dir.path().join("offline");
    let output = run(&[
        "report",
        "--results",
        results.to_str().unwrap(),
        "--out",
        offline.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    for file in REPORT_FILES {
        assert!(offline.join(file).is_file(), "{file} written");
    }
    assert_eq!(
        std::fs::read_to_string(offline.join("table1.md")).unwrap(),
        std::fs::read_to_string(out.join("table1.md")).unwrap()
    );

    // One frame of a report is not an export: the error names what is missing.
    let jobs = out.join("jobs.parquet");
    let output = run(&[
        "report",
        "--results",
        jobs.to_str().unwrap(),
        "--out",
        offline.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(
        err.contains("column `") && err.contains("is missing"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}
