//! A searched sweep's report: the configurations the search stopped are listed apart with
//! their rung and reading, and never enter Table 1 or its statistics.

use ltsweep_analysis::{Frames, table1_rows, write_report};
use ltsweep_domain::{GroupAccuracy, JobSearchStatus, JobState, SearchMetric};

use crate::fixtures::{self, Outcome, succeeded};

/// The root integration test's search (`tests/it/search_cluster.rs`): three configurations
/// (plans) x two seeds, rungs at epochs 2 and 6 of 12.
const SEARCHED: &str = r#"
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

fn stopped_at(rung: u32, value: f64) -> Option<JobSearchStatus> {
    Some(JobSearchStatus {
        readings: vec![(rung, value)],
        paused_at: None,
        stopped_at: Some(rung),
        metric: Some(SearchMetric::ValAll),
    })
}

/// As the cluster test ends: CE alone promoted past both rungs and trained to epoch 12 (both
/// seeds), comp=tail and pc=head stopped at the rung at epoch 2.
fn searched() -> ltsweep_analysis::SweepRecords {
    let cancelled = Outcome::Not(JobState::Cancelled);
    let mut records = fixtures::sweep(
        SEARCHED,
        &[
            succeeded(60.0, 20.0),
            succeeded(64.0, 24.0),
            cancelled,
            cancelled,
            cancelled,
            cancelled,
        ],
    );
    for job in &mut records.jobs[..2] {
        // Validation All of 10% a finished epoch.
        for epoch in &mut job.result.as_mut().expect("succeeded").epochs {
            epoch.val_accuracy = Some(GroupAccuracy {
                acc_all: Some(0.1 * f64::from(epoch.epoch)),
                ..GroupAccuracy::default()
            });
        }
        job.search = Some(JobSearchStatus {
            readings: vec![(2, 0.5), (6, 0.6)],
            paused_at: None,
            stopped_at: None,
            metric: Some(SearchMetric::ValAll),
        });
    }
    let readings = [0.40, 0.45, 0.30, 0.36];
    for (job, value) in records.jobs[2..].iter_mut().zip(readings) {
        job.error = Some("stopped by the search at its rung at epoch 2".to_owned());
        job.search = stopped_at(2, value);
    }
    records
}

#[test]
fn stopped_configurations_are_listed_apart_and_never_in_table1() {
    let frames = Frames::from_records(&searched()).expect("frames");
    let rows = table1_rows(&frames).expect("rows");
    let labels: Vec<String> = rows.iter().map(|row| row.label()).collect();
    assert_eq!(labels, ["comp=none,pc=none"], "{labels:?}");
    assert_eq!(rows[0].jobs.n_label(), "2");

    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    for table in [&report.table1_markdown, &report.shots_markdown] {
        assert!(
            !table.contains("comp=tail") && !table.contains("pc=head"),
            "{table}"
        );
    }
    // Every job of Table 1's rows succeeded: no note of missing jobs.
    assert!(
        !report.notes.iter().any(|n| n.contains("did not succeed")),
        "{:?}",
        report.notes
    );
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.starts_with("2 configurations stopped by the search")),
        "{:?}",
        report.notes
    );
    // Each stopped configuration at its rung, with its seeds' mean reading in percent.
    let stopped = &report.stopped_markdown;
    assert!(
        stopped.contains("| comp=tail,pc=none | 2 | 42.50 | 2 |"),
        "{stopped}"
    );
    assert!(
        stopped.contains("| comp=none,pc=head | 2 | 33.00 | 2 |"),
        "{stopped}"
    );
    let csv = std::fs::read_to_string(out.path().join("stopped.csv")).expect("stopped.csv");
    assert_eq!(csv.lines().count(), 3, "{csv}");

    // The figure: CE alone through its evaluated epochs, each stopped configuration to its
    // rung, the rungs marked.
    let svg = std::fs::read_to_string(out.path().join("search.svg")).expect("search.svg");
    for text in [
        "comp=none,pc=none",
        "comp=tail,pc=none (stopped at epoch 2)",
        "comp=none,pc=head (stopped at epoch 2)",
        "rung 2",
        "rung 6",
        "validation val_all [%]",
    ] {
        assert!(svg.contains(text), "search.svg lacks {text}");
    }
    assert!(out.path().join("search.png").is_file());

    // The report's folder reads back to the same report.
    let again = Frames::read_results(out.path()).expect("the report's frames");
    let out_again = tempfile::tempdir().expect("a temporary directory");
    let report_again = write_report(&again, out_again.path()).expect("report");
    assert_eq!(report_again.table1_markdown, report.table1_markdown);
    assert_eq!(report_again.stopped_markdown, report.stopped_markdown);
    let svg_again =
        std::fs::read_to_string(out_again.path().join("search.svg")).expect("search.svg");
    assert_eq!(svg_again, svg);
}

#[test]
fn a_stopped_job_sent_on_to_success_is_complete() {
    let mut records = searched();
    // `retry-failed` sent comp=tail's seeds on from their rung; both succeeded.
    for job in &mut records.jobs[2..4] {
        job.state = JobState::Succeeded;
        job.error = None;
        job.result = records_result(&job.spec);
    }
    let frames = Frames::from_records(&records).expect("frames");
    let rows = table1_rows(&frames).expect("rows");
    assert_eq!(rows.len(), 2);
    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    assert!(report.stopped_markdown.contains("comp=none,pc=head"));
    assert!(!report.stopped_markdown.contains("comp=tail"));
}

fn records_result(spec: &ltsweep_domain::JobSpec) -> Option<ltsweep_domain::JobResult> {
    let done = fixtures::sweep(SEARCHED, &[succeeded(62.0, 22.0); 6]);
    done.jobs
        .into_iter()
        .find(|job| job.spec.id == spec.id)
        .and_then(|job| job.result)
}
