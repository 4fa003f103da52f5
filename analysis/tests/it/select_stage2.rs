//! `--select stage2...`: a stage-2 method's settings (τ, cRT's epochs) chosen on the validation
//! set for each row, as `--select AXIS` chooses an axis value. The sweeps here make the test
//! set prefer other settings than the validation set, so a choice that looked at the test set
//! would report other rows.

use ltsweep_analysis::{
    AnalysisError, EpochChoice, Frames, Metric, PlanRow, ReportOptions, SweepRecords,
    table1_rows_with, write_report_with,
};
use ltsweep_domain::{GroupAccuracy, Stage2Method};

use crate::fixtures;

/// CE alone followed by cRT at two epoch counts, τ-normalisation at three τ and post-hoc logit
/// adjustment at two: one row per setting without a selection.
const SPEC: &str = r#"
name = "select-stage2"
seeds = [0, 1, 2]
[dataset]
kind = "synthetic"
classes = 4
val_per_class = 5
[train]
epochs = 4
eval_epochs = [2]
[losses]
plans = [{}]
[stage2]
method = ["none", "crt", "tau_norm", "posthoc_la"]
[stage2.crt]
epochs = [5, 10]
[stage2.tau_norm]
tau = [0.5, 1.0, 1.5]
[stage2.posthoc_la]
tau = [1.0, 2.0]
"#;

fn all(percent: f64) -> GroupAccuracy {
    GroupAccuracy {
        acc_all: Some(percent / 100.0),
        acc_head: Some(percent / 100.0),
        acc_tail: Some(percent / 100.0),
        ..GroupAccuracy::default()
    }
}

/// (test, validation) All accuracy in percent of seed 0; seed `s` adds `s` to both. The
/// validation set prefers cRT at 5 epochs, τ-norm at τ = 1 and post-hoc τ = 2; the test set
/// prefers 10 epochs, τ = 1.5 and post-hoc τ = 1.
fn accuracies(method: Option<Stage2Method>) -> (f64, f64) {
    match method {
        None => (50.0, 50.0),
        Some(Stage2Method::Crt { epochs: 5, .. }) => (60.0, 66.0),
        Some(Stage2Method::Crt { .. }) => (64.0, 62.0),
        Some(Stage2Method::TauNorm { tau: 0.5, .. }) => (55.0, 55.0),
        Some(Stage2Method::TauNorm { tau: 1.0, .. }) => (58.0, 70.0),
        Some(Stage2Method::TauNorm { .. }) => (80.0, 60.0),
        Some(Stage2Method::PosthocLa { tau: 1.0, .. }) => (70.0, 60.0),
        Some(Stage2Method::PosthocLa { .. }) => (60.0, 65.0),
        Some(other) => panic!("the spec has no {other}"),
    }
}

/// The sweep with every job's final test and validation accuracies set; `with_val` false
/// leaves the validation set out of the jobs `with_val` names false for.
fn sweep(with_val: impl Fn(Option<Stage2Method>) -> bool) -> SweepRecords {
    let jobs = fixtures::jobs_of(SPEC);
    let outcomes = vec![fixtures::succeeded(60.0, 20.0); jobs.len()];
    let mut records = fixtures::sweep(SPEC, &outcomes);
    for record in &mut records.jobs {
        let method = record.spec.stage2.as_ref().map(|stage2| stage2.method);
        let (test, val) = accuracies(method);
        let seed = record.spec.seed as f64;
        let result = record.result.as_mut().expect("a result");
        result.accuracy = all(test + seed);
        result.val_accuracy = with_val(method).then(|| all(val + seed));
    }
    records
}

fn select(name: &str) -> ReportOptions {
    ReportOptions {
        epoch: EpochChoice::Final,
        select: Some(name.to_owned()),
        ..ReportOptions::default()
    }
}

fn rows(records: &SweepRecords, options: &ReportOptions) -> Vec<PlanRow> {
    let frames = Frames::from_records(records).expect("frames");
    table1_rows_with(&frames, options).expect("rows")
}

fn labels(rows: &[PlanRow]) -> Vec<String> {
    rows.iter().map(PlanRow::label).collect()
}

fn mean_all(row: &PlanRow) -> f64 {
    row.metric(Metric::All).mean.expect("a mean")
}

/// `--select stage2.tau_norm.tau`: τ-norm's three rows become one, at τ = 1 (validation 71
/// against 56 and 61), reporting its test accuracy (59), where the test set would have taken
/// τ = 1.5 (81); the other methods keep a row per setting.
#[test]
fn one_setting_of_one_method_is_chosen_on_the_validation_set() {
    let records = sweep(|_| true);
    let options = select("stage2.tau_norm.tau");
    let rows = rows(&records, &options);
    assert_eq!(
        labels(&rows),
        [
            "comp=none,pc=none",
            "comp=none,pc=none stage2=crt(epochs=5,lr=0.1)",
            "comp=none,pc=none stage2=crt(epochs=10,lr=0.1)",
            "comp=none,pc=none stage2=tau_norm(tau=1)",
            "comp=none,pc=none stage2=posthoc_la(tau=1)",
            "comp=none,pc=none stage2=posthoc_la(tau=2)",
        ]
    );
    let tau_norm = &rows[3];
    assert_eq!(mean_all(tau_norm), 59.0, "the test accuracy at τ = 1");
    assert_eq!(tau_norm.jobs.total, 3, "the three seeds at τ = 1 alone");
    let vs_ce = tau_norm
        .metric(Metric::All)
        .vs_ce
        .expect("a difference")
        .mean;
    assert!((vs_ce - 8.0).abs() < 1e-9, "{vs_ce}");
    assert_eq!(tau_norm.key(), "comp=none,pc=none stage2=tau_norm");

    let out = tempfile::tempdir().expect("a temporary directory");
    let frames = Frames::from_records(&records).expect("frames");
    let report = write_report_with(&frames, out.path(), &options).expect("report");
    assert!(
        report.notes.iter().any(|note| note
            == "stage2.tau_norm.tau chosen on the validation set for comp=none,pc=none \
                stage2=tau_norm: 1 (mean validation All 71.00; 0.5: 56.00, 1.5: 61.00)"),
        "{:?}",
        report.notes
    );
    assert!(
        report.table1_markdown.contains(
            "The stage 2 column: the settings `--select stage2.tau_norm.tau` names chosen for \
             each row on the validation set"
        ),
        "{}",
        report.table1_markdown
    );
}

/// `--select stage2`: one row per method, each at the numeric settings of the highest mean
/// validation accuracy: cRT at 5 epochs (test 61, where 10 epochs has 65), τ-norm at 1,
/// post-hoc at τ = 2 (test 61, where τ = 1 has 71).
#[test]
fn every_method_keeps_one_row_at_its_settings_chosen_on_the_validation_set() {
    let records = sweep(|_| true);
    let options = select("stage2");
    let rows = rows(&records, &options);
    assert_eq!(
        labels(&rows),
        [
            "comp=none,pc=none",
            "comp=none,pc=none stage2=crt(epochs=5,lr=0.1)",
            "comp=none,pc=none stage2=tau_norm(tau=1)",
            "comp=none,pc=none stage2=posthoc_la(tau=2)",
        ]
    );
    let means: Vec<f64> = rows.iter().map(mean_all).collect();
    assert_eq!(means, [51.0, 61.0, 59.0, 61.0]);
    let keys: Vec<String> = rows.iter().map(PlanRow::key).collect();
    assert_eq!(
        keys,
        [
            "comp=none,pc=none",
            "comp=none,pc=none stage2=crt",
            "comp=none,pc=none stage2=tau_norm",
            "comp=none,pc=none stage2=posthoc_la",
        ]
    );

    let out = tempfile::tempdir().expect("a temporary directory");
    let frames = Frames::from_records(&records).expect("frames");
    let report = write_report_with(&frames, out.path(), &options).expect("report");
    for expected in [
        "stage2 chosen on the validation set for comp=none,pc=none stage2=crt: epochs=5,lr=0.1 \
         (mean validation All 67.00; epochs=10,lr=0.1: 63.00)",
        "stage2 chosen on the validation set for comp=none,pc=none stage2=posthoc_la: tau=2 \
         (mean validation All 66.00; tau=1: 61.00)",
    ] {
        assert!(
            report.notes.iter().any(|note| note == expected),
            "{expected}\n{:?}",
            report.notes
        );
    }
}

fn refusal(records: &SweepRecords, name: &str) -> String {
    let frames = Frames::from_records(records).expect("frames");
    match table1_rows_with(&frames, &select(name)) {
        Err(AnalysisError::Options(message)) => message,
        other => panic!("--select {name}: {:?}", other.map(|rows| labels(&rows))),
    }
}

#[test]
fn stage2_selections_without_a_validation_set_or_the_setting_are_refused() {
    // No job with a validation set.
    let message = refusal(&sweep(|_| false), "stage2.tau_norm.tau");
    assert!(
        message.starts_with("--select stage2.tau_norm.tau chooses on the validation set")
            && message.contains("val_per_class"),
        "{message}"
    );
    // The stage-1 jobs with one, the stage-2 jobs they would choose among without.
    let message = refusal(&sweep(|method| method.is_none()), "stage2");
    assert!(
        message.starts_with("--select stage2 chooses on the validation set"),
        "{message}"
    );

    let records = sweep(|_| true);
    assert_eq!(
        refusal(&records, "stage2.tau_norm.epochs"),
        "--select stage2.tau_norm.epochs: tau_norm has no such setting in this sweep; its \
         settings are stage2.tau_norm.tau"
    );
    assert_eq!(
        refusal(&records, "stage2.lws.epochs"),
        "--select stage2.lws.epochs: the sweep has no lws job (add it to [stage2] method); \
         the sweep's stage-2 settings are stage2.crt.epochs, stage2.crt.lr, \
         stage2.tau_norm.tau, stage2.posthoc_la.tau"
    );
    assert!(
        refusal(&records, "stage2.decoupled").contains("`decoupled` is not a stage-2 method"),
        "the method's name is checked"
    );
    assert_eq!(
        refusal(&records, "tau"),
        "--select tau: the sweep has no grid axis (a setting given as a list); the sweep's \
         stage-2 settings are stage2.crt.epochs, stage2.crt.lr, stage2.tau_norm.tau, \
         stage2.posthoc_la.tau"
    );
}

/// The paper's plan at two PC weights, each stage-1 job followed by cRT.
const AXIS_SPEC: &str = r#"
name = "select-axis-stage2"
seeds = [0, 1]
[dataset]
kind = "synthetic"
classes = 4
val_per_class = 5
[train]
epochs = 4
eval_epochs = [2]
[losses]
plans = [{ comp = "tail", pc = "head" }]
pc_weight = [0.01, 0.1]
[stage2]
method = ["none", "crt"]
"#;

/// `--select pc_weight` chooses for each row, and a stage-2 method is part of the row: the
/// stage-1 jobs prefer 0.01 (validation 60 against 50), their cRT jobs 0.1 (70 against 55),
/// where the two pooled would have given both rows 0.1 (60 against 57.5).
#[test]
fn an_axis_is_chosen_for_each_stage2_row_on_its_own() {
    let jobs = fixtures::jobs_of(AXIS_SPEC);
    let outcomes = vec![fixtures::succeeded(60.0, 20.0); jobs.len()];
    let mut records = fixtures::sweep(AXIS_SPEC, &outcomes);
    for record in &mut records.jobs {
        let small = record.spec.losses.pc_weight == 0.01;
        let percent = match (record.spec.stage2.is_some(), small) {
            (false, true) => 60.0,
            (false, false) => 50.0,
            (true, true) => 55.0,
            (true, false) => 70.0,
        };
        let result = record.result.as_mut().expect("a result");
        result.accuracy = all(percent);
        result.val_accuracy = Some(all(percent));
    }
    let rows = rows(&records, &select("pc_weight"));
    let chosen: Vec<(String, f64)> = rows
        .iter()
        .map(|row| (row.stage2.clone(), row.axes[0].value))
        .collect();
    assert_eq!(
        chosen,
        [
            ("none".to_owned(), 0.01),
            ("crt(epochs=10,lr=0.1)".to_owned(), 0.1)
        ]
    );
}
