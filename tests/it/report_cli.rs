//! `ltsweep run`, `report` and `export`: a whole study in one command, its report files, the
//! offline report from an export, and a results file of the wrong schema.

use std::path::Path;

use crate::cluster_support::serve_finished_study;
use crate::harness::register;
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

register!(a_study_runs_in_one_command_reports_and_resumes);
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

register!(an_export_reports_offline_and_a_wrong_file_names_the_missing_column);
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
    let (_coordinator, address) = serve_finished_study(&out);
    let results = dir.path().join("results");
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

register!(several_studies_make_one_report_with_choices_on_the_validation_set);
/// Two studies at different imbalance ratios, each with a validation split and a PC-weight
/// axis, read as one report: each study's own tables (epochs and PC weights chosen on the
/// validation set, sign-flip tests) and the aggregates across them.
fn several_studies_make_one_report_with_choices_on_the_validation_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut exports = Vec::new();
    for ratio in ["5", "10"] {
        let study = STUDY
            .replace("name = \"study\"", &format!("name = \"ratio{ratio}\""))
            .replace("imbalance_ratio = 5", &format!("imbalance_ratio = {ratio}\nval_per_class = 4"))
            .replace("epochs = 3", "epochs = 2")
            .replace("lr_decay_epochs = [2]", "lr_decay_epochs = [1]")
            .replace(
                "pc_weight = [0.01, 0.1]",
                "plans = [{ comp = \"none\", pc = \"none\" }, { comp = \"tail\", pc = \"head\" }]\npc_weight = [0.01, 0.1]",
            );
        let spec = write(dir.path(), &format!("ratio{ratio}.toml"), &study);
        let out = dir.path().join(format!("ratio{ratio}"));
        let output = run(&[
            "run",
            spec.to_str().unwrap(),
            "--workers",
            "2",
            "--devices",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        // A study's report folder holds its frames: `report --results` reads them.
        exports.push(out.clone());
    }
    let all = dir.path().join("all");
    let output = run(&[
        "report",
        "--results",
        exports[0].to_str().unwrap(),
        exports[1].to_str().unwrap(),
        "--select",
        "pc_weight",
        "--metric",
        "best",
        "--test",
        "permutation",
        "--out",
        all.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let aggregate = std::fs::read_to_string(all.join("aggregate.md")).unwrap();
    assert!(
        aggregate.contains("| row | IQM All | P(> CE) All |"),
        "{aggregate}"
    );
    // Both plans are in both studies.
    assert!(aggregate.contains("| comp=none,pc=none | "), "{aggregate}");
    assert!(aggregate.contains("| comp=tail,pc=head | "), "{aggregate}");
    let side = std::fs::read_to_string(all.join("datasets.md")).unwrap();
    assert_eq!(
        side.lines().filter(|l| l.starts_with("| comp=")).count(),
        2,
        "{side}"
    );
    for study in std::fs::read_dir(&all).unwrap().flatten() {
        if !study.path().is_dir() {
            continue;
        }
        let table = std::fs::read_to_string(study.path().join("table1.md")).unwrap();
        assert!(table.contains("chosen on the validation set"), "{table}");
        assert!(table.contains("sign-flip permutation test"), "{table}");
        assert!(
            table.contains("Caution: some comparisons rest on 2 seeds"),
            "{table}"
        );
        assert!(study.path().join("tensorboard").is_dir());
    }

    // A choice on a validation set the sweep lacks is refused with what to do.
    let plain = dir.path().join("plain");
    let one_job = STUDY.replace("seeds = [0, 1]", "seeds = [0]").replace(
        "pc_weight = [0.01, 0.1]",
        "plans = [{ comp = \"none\", pc = \"none\" }]",
    );
    let spec = write(dir.path(), "plain.toml", &one_job);
    let output = run(&[
        "run",
        spec.to_str().unwrap(),
        "--workers",
        "2",
        "--devices",
        "cpu",
        "--out",
        plain.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(&[
        "report",
        "--results",
        plain.to_str().unwrap(),
        "--metric",
        "best",
        "--out",
        dir.path().join("refused").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("val_per_class"),
        "{}",
        stderr(&output)
    );
}
