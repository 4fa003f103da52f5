//! Choices made on the validation set: `--metric best` (each job's epoch) and `--select AXIS`
//! (each row's axis value) read validation accuracies only. In these sweeps the test set
//! disagrees with the validation set on every choice, so a choice that looked at the test set
//! would report other numbers.

use ltsweep_analysis::{
    AnalysisError, EpochChoice, Frames, Metric, PlanRow, ReportOptions, SweepRecords,
    table1_rows_with, write_report_with,
};
use ltsweep_domain::GroupAccuracy;

use crate::fixtures;

/// CE alone and the paper's plan at two PC weights, three seeds, evaluated after epochs 2 and 4.
const SPEC: &str = r#"
name = "select"
seeds = [0, 1, 2]
[dataset]
kind = "synthetic"
classes = 4
val_per_class = 5
[train]
epochs = 4
eval_epochs = [2]
[losses]
plans = [{ comp = "none", pc = "none" }, { comp = "tail", pc = "head" }]
pc_weight = [0.01, 0.1]
"#;

fn all(percent: f64) -> GroupAccuracy {
    GroupAccuracy {
        acc_all: Some(percent / 100.0),
        acc_head: Some(percent / 100.0),
        acc_tail: Some(percent / 100.0),
        ..GroupAccuracy::default()
    }
}

/// Test and validation All accuracy (percent) of one job at epochs 2 and 4.
struct Job {
    test: [f64; 2],
    val: [f64; 2],
}

/// The sweep with each job's accuracies set from `accuracies(plan is CE, pc_weight, seed)`.
fn sweep(accuracies: impl Fn(bool, f64, u64) -> Job) -> SweepRecords {
    let jobs = fixtures::jobs_of(SPEC);
    let outcomes = vec![fixtures::succeeded(60.0, 20.0); jobs.len()];
    let mut records = fixtures::sweep(SPEC, &outcomes);
    for record in &mut records.jobs {
        let spec = &record.spec;
        let job = accuracies(
            spec.plan.comp == ltsweep_domain::ClassScope::None,
            spec.losses.pc_weight,
            spec.seed,
        );
        let result = record.result.as_mut().expect("a result");
        for (k, epoch) in [2usize, 4].into_iter().enumerate() {
            let metrics = &mut result.epochs[epoch - 1];
            metrics.accuracy = Some(all(job.test[k]));
            metrics.val_accuracy = Some(all(job.val[k]));
        }
        result.accuracy = all(job.test[1]);
        result.val_accuracy = Some(all(job.val[1]));
    }
    records
}

fn rows(records: &SweepRecords, options: &ReportOptions) -> Vec<PlanRow> {
    let frames = Frames::from_records(records).expect("frames");
    table1_rows_with(&frames, options).expect("rows")
}

fn mean_all(row: &PlanRow) -> f64 {
    row.metric(Metric::All).mean.expect("a mean")
}

fn select(epoch: EpochChoice) -> ReportOptions {
    ReportOptions {
        epoch,
        select: Some("pc_weight".to_owned()),
        ..ReportOptions::default()
    }
}

/// The validation set prefers PC weight 0.01 for the paper's plan (val 60 against 50), the
/// test set 0.1 (test 70 against 50): the row reports 0.01 and its test accuracy, 50.
#[test]
fn select_chooses_each_rows_value_on_the_validation_set() {
    let records = sweep(|ce, pc_weight, seed| {
        let s = seed as f64;
        match (ce, pc_weight == 0.01) {
            (true, _) => Job {
                test: [40.0, 45.0 + s],
                val: [40.0, 45.0 + s],
            },
            (false, true) => Job {
                test: [40.0, 50.0 + s],
                val: [40.0, 60.0 + s],
            },
            (false, false) => Job {
                test: [40.0, 70.0 + s],
                val: [40.0, 50.0 + s],
            },
        }
    });
    let rows = rows(&records, &select(EpochChoice::Final));
    assert_eq!(
        rows.len(),
        2,
        "one row a plan: the axis is chosen, not listed"
    );
    let paper = &rows[1];
    assert_eq!(paper.axes[0].value, 0.01, "chosen on the validation set");
    assert_eq!(
        mean_all(paper),
        51.0,
        "the test accuracy at the value chosen"
    );
    // Compared with CE alone although CE chose its own value (the first of equal means).
    let vs_ce = paper.metric(Metric::All).vs_ce.expect("a difference to CE");
    assert_eq!(vs_ce.mean, 5.0);

    let out = tempfile::tempdir().expect("a temporary directory");
    let frames = Frames::from_records(&records).expect("frames");
    let report =
        write_report_with(&frames, out.path(), &select(EpochChoice::Final)).expect("report");
    assert!(
        report
            .table1_markdown
            .contains("The pc_weight column: the value chosen for each row on the validation set"),
        "{}",
        report.table1_markdown
    );
    assert!(
        report.notes.iter().any(|note| note
            == "pc_weight chosen on the validation set for comp=tail,pc=head: 0.01 (mean validation All 61.00; 0.1: 51.00)"),
        "{:?}",
        report.notes
    );
}

/// Each job's validation accuracy peaks at epoch 2 (80 against 70 at the end), its test
/// accuracy at epoch 4 (60 against 40): --metric best reports epoch 2's test accuracy, 40;
/// --metric best-test, named as the optimistic choice, 60.
#[test]
fn the_best_epoch_is_chosen_on_the_validation_set() {
    let records = sweep(|_, _, _| Job {
        test: [40.0, 60.0],
        val: [80.0, 70.0],
    });
    let best = rows(
        &records,
        &ReportOptions {
            epoch: EpochChoice::Best,
            ..ReportOptions::default()
        },
    );
    assert!(best.iter().all(|row| mean_all(row) == 40.0));
    let optimistic = rows(
        &records,
        &ReportOptions {
            epoch: EpochChoice::BestTest,
            ..ReportOptions::default()
        },
    );
    assert!(optimistic.iter().all(|row| mean_all(row) == 60.0));
    // --select at the validation-chosen epoch reads the validation set there: 80 everywhere,
    // a tie, so the first value (0.01); the test set's 40 is reported.
    let selected = rows(&records, &select(EpochChoice::Best));
    assert!(
        selected
            .iter()
            .all(|row| row.axes[0].value == 0.01 && mean_all(row) == 40.0)
    );
}

#[test]
fn choices_on_a_validation_set_the_sweep_lacks_are_refused() {
    let records = fixtures::golden();
    let frames = Frames::from_records(&records).expect("frames");
    for options in [
        ReportOptions {
            epoch: EpochChoice::Best,
            ..ReportOptions::default()
        },
        select(EpochChoice::Final),
    ] {
        let err = table1_rows_with(&frames, &options).unwrap_err();
        assert!(
            matches!(&err, AnalysisError::Options(m) if m.contains("val_per_class")),
            "{err}"
        );
    }
    let records = sweep(|_, _, _| Job {
        test: [40.0, 60.0],
        val: [80.0, 70.0],
    });
    let frames = Frames::from_records(&records).expect("frames");
    let err = table1_rows_with(
        &frames,
        &ReportOptions {
            select: Some("la_tau".to_owned()),
            ..ReportOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "--select la_tau: no such grid axis; the sweep's axes are pc_weight"
    );
    let err = table1_rows_with(&frames, &select(EpochChoice::BestTest)).unwrap_err();
    assert!(err.to_string().contains("--metric best-test"), "{err}");
}
