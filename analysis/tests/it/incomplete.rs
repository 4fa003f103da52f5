//! Sweeps that are not done, or have no CE-only plan, still report.

use ltsweep_analysis::{Frames, Metric, table1_rows, write_report};
use ltsweep_domain::JobState;

use crate::fixtures::{self, Outcome, succeeded};

const THREE_PLANS: &str = r#"
name = "unfinished"
seeds = [0, 1, 2]
[dataset]
kind = "synthetic"
classes = 4
[train]
epochs = 4
eval_epochs = [2]
[losses]
plans = [{ comp = "none" }, { comp = "tail" }, { pc = "all" }]
"#;

#[test]
fn failed_and_pending_jobs_show_in_n_and_notes() {
    let records = fixtures::sweep(
        THREE_PLANS,
        &[
            // CE: seed 1 still pending.
            succeeded(60.0, 20.0),
            Outcome::Not(JobState::Pending),
            succeeded(64.0, 24.0),
            // comp=tail: seed 2 failed, so only seed 0 pairs with CE.
            succeeded(62.0, 23.0),
            succeeded(63.0, 25.0),
            Outcome::Not(JobState::Failed),
            // pc=all: nothing succeeded.
            Outcome::Not(JobState::Failed),
            Outcome::Not(JobState::Running),
            Outcome::Not(JobState::Cancelled),
        ],
    );
    let frames = Frames::from_records(&records).expect("frames");
    let rows = table1_rows(&frames).expect("rows");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].jobs.n_label(), "2/3");
    assert_eq!(rows[0].jobs.missing(), "1 pending");
    assert_eq!(rows[1].jobs.missing(), "1 failed");
    assert_eq!(rows[2].jobs.n_label(), "0/3");
    assert_eq!(rows[2].jobs.missing(), "1 failed, 1 running, 1 cancelled");

    // comp=tail All: 42.5 and 44 against CE's 40 (seed 0): one pair, a mean but no interval.
    let difference = rows[1].metric(Metric::All).vs_ce.expect("one pair");
    assert_eq!(difference.pairs, 1);
    assert!((difference.mean - 2.5).abs() < 1e-9);
    assert_eq!(difference.ci, None);
    assert_eq!(rows[2].metric(Metric::All).mean, None);

    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    let table = &report.table1_markdown;
    assert!(
        table.contains(
            "| 2/3 | 42.00 ± 2.83 | 62.00 ± 2.83 | 22.00 ± 2.83 | — | — | — | 1 pending |"
        ),
        "{table}"
    );
    assert!(
        table.contains(
            "| 2/3 | **43.25 ± 1.06** | **62.50 ± 0.71** | **24.00 ± 1.41** | +2.50 [n/a] \
             | +2.00 [n/a] | +3.00 [n/a] | 1 failed |"
        ),
        "{table}"
    );
    assert!(
        table.contains("| ✓ | ✓ | 0/3 |  |  |  |  |  |  | 1 failed, 1 running, 1 cancelled |"),
        "{table}"
    );
    assert!(
        report
            .notes
            .contains(&"5 of 9 jobs did not succeed (2 failed, 1 pending, 1 running, 1 cancelled): rows show n as succeeded/total seeds".to_owned()),
        "{:?}",
        report.notes
    );
}

#[test]
fn a_sweep_where_nothing_succeeded_reports_empty_cells() {
    let records = fixtures::sweep(THREE_PLANS, &[Outcome::Not(JobState::Pending); 9]);
    let frames = Frames::from_records(&records).expect("frames");
    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    assert!(
        report
            .table1_markdown
            .contains("|  |  |  |  | 0/3 |  |  |  | — | — | — | 3 pending |"),
        "{}",
        report.table1_markdown
    );
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.starts_with("no job has succeeded yet")),
        "{:?}",
        report.notes
    );
    assert!(out.path().join("figure1.png").is_file());
}

#[test]
fn without_a_ce_only_plan_the_differences_are_left_out() {
    let spec = THREE_PLANS.replace(r#"{ comp = "none" }, "#, "");
    let records = fixtures::sweep(
        &spec,
        &[
            succeeded(62.0, 23.0),
            succeeded(63.0, 25.0),
            succeeded(61.0, 21.0),
            succeeded(60.0, 20.0),
            succeeded(64.0, 24.0),
            succeeded(66.0, 22.0),
        ],
    );
    let frames = Frames::from_records(&records).expect("frames");
    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    assert!(
        !report.table1_markdown.contains('Δ'),
        "{}",
        report.table1_markdown
    );
    let csv = std::fs::read_to_string(out.path().join("table1.csv")).expect("table1.csv");
    assert!(!csv.contains("_diff"), "{csv}");
    assert!(
        report
            .notes
            .iter()
            .any(|note| note.starts_with("the sweep has no CE-only plan")),
        "{:?}",
        report.notes
    );
}

#[test]
fn rows_group_by_axis_values_and_compare_with_the_ce_row_of_the_same_values() {
    let spec = r#"
name = "weights"
seeds = [0, 1]
[dataset]
kind = "synthetic"
classes = 4
[train]
epochs = 4
eval_epochs = [2]
[losses]
plans = [{ comp = "none" }, { pc = "head" }]
pc_weight = [0.01, 0.1]
"#;
    // Grid order: plan, then pc_weight, then seed.
    let records = fixtures::sweep(
        spec,
        &[
            succeeded(60.0, 20.0),
            succeeded(62.0, 22.0),
            succeeded(50.0, 10.0),
            succeeded(52.0, 12.0),
            succeeded(61.0, 21.0),
            succeeded(64.0, 24.0),
            succeeded(55.0, 15.0),
            succeeded(56.0, 16.0),
        ],
    );
    let frames = Frames::from_records(&records).expect("frames");
    let rows = table1_rows(&frames).expect("rows");
    let labels: Vec<String> = rows.iter().map(|row| row.label()).collect();
    assert_eq!(
        labels,
        [
            "comp=none,pc=none pc_weight=0.01",
            "comp=none,pc=head pc_weight=0.01",
            "comp=none,pc=none pc_weight=0.1",
            "comp=none,pc=head pc_weight=0.1",
        ]
    );
    // pc=head at 0.1 against CE at 0.1: All 35, 36 against 30, 32: differences 5, 4.
    let difference = rows[3].metric(Metric::All).vs_ce.expect("two pairs");
    assert_eq!(difference.pairs, 2);
    assert!((difference.mean - 4.5).abs() < 1e-9);
    assert!(rows[1].best, "pc=head at 0.01 has the highest mean All");

    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    assert!(
        report.table1_markdown.contains(
            "| Comp. on Head | Comp. on Tail | PC on Head | PC on Tail | pc_weight | n |"
        ),
        "{}",
        report.table1_markdown
    );
}
