//! Table 1 of a sweep whose every number is worked out by hand (see `fixtures::golden`).

use ltsweep_analysis::stats::Interval;
use ltsweep_analysis::{
    EpochChoice, Frames, Metric, PlanRow, ReportOptions, table1_rows, table1_rows_with,
    write_report, write_report_with,
};

use crate::fixtures;

/// t(0.975, 2) = 0.95 / sqrt(2 * 0.975 * 0.025): the closed form for two degrees of freedom.
const T_975_2: f64 = 4.302652729749464;
const TOLERANCE: f64 = 1e-9;

fn assert_close(found: f64, expected: f64, what: &str) {
    assert!(
        (found - expected).abs() <= TOLERANCE,
        "{what}: found {found}, expected {expected}"
    );
}

fn assert_summary(row: &PlanRow, metric: Metric, mean: f64, std: f64) {
    let what = format!("{} {}", row.label(), metric.label());
    let summary = row.metric(metric);
    assert_eq!(summary.n, 3, "{what}: n");
    assert_close(summary.mean.expect("a mean"), mean, &format!("{what} mean"));
    assert_close(summary.std.expect("a std"), std, &format!("{what} std"));
}

fn assert_difference(row: &PlanRow, metric: Metric, mean: f64, std: f64, half_width: f64) {
    let what = format!("{} {} vs CE", row.label(), metric.label());
    let difference = row.metric(metric).vs_ce.expect("a difference to CE");
    assert_eq!(difference.pairs, 3, "{what}: pairs");
    assert_close(difference.mean, mean, &format!("{what} mean"));
    assert_close(difference.std.expect("a std"), std, &format!("{what} std"));
    let Interval { low, high } = difference.ci.expect("an interval");
    assert_close(low, mean - half_width, &format!("{what} low"));
    assert_close(high, mean + half_width, &format!("{what} high"));
}

#[test]
fn table1_numbers_match_hand_arithmetic() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    let rows = table1_rows(&frames).expect("rows");
    let labels: Vec<String> = rows.iter().map(PlanRow::label).collect();
    assert_eq!(
        labels,
        ["comp=none,pc=none", "comp=all,pc=none", "comp=tail,pc=head"]
    );
    let [ce, comp_all, best] = [&rows[0], &rows[1], &rows[2]];

    // CE: All 40, 42, 44: mean 42, deviations -2, 0, 2, variance 8 / 2 = 4, std 2.
    // Head 60, 62, 64 and Tail 20, 22, 24 the same way.
    assert_summary(ce, Metric::All, 42.0, 2.0);
    assert_summary(ce, Metric::Head, 62.0, 2.0);
    assert_summary(ce, Metric::Tail, 22.0, 2.0);
    for metric in Metric::TABLE1 {
        assert_eq!(
            ce.metric(metric).vs_ce,
            None,
            "CE has no difference to itself"
        );
    }
    // Shots: Many = Head; Medium = Tail + 5 (25, 27, 29); Few = Tail - 5 (15, 17, 19).
    assert_summary(ce, Metric::Many, 62.0, 2.0);
    assert_summary(ce, Metric::Medium, 27.0, 2.0);
    assert_summary(ce, Metric::Few, 17.0, 2.0);

    // comp=all: All 41, 45, 46: mean 44, deviations -3, 1, 2, variance 14 / 2 = 7.
    // Head 62, 66, 64: mean 64, deviations -2, 2, 0, variance 4. Tail 20, 24, 28: std 4.
    assert_summary(comp_all, Metric::All, 44.0, 7f64.sqrt());
    assert_summary(comp_all, Metric::Head, 64.0, 2.0);
    assert_summary(comp_all, Metric::Tail, 24.0, 4.0);
    // Differences by seed, All: 1, 3, 2: mean 2, std 1; half-width t * 1 / sqrt(3)
    // = 2.484137711750331, so the interval is [-0.4841, 4.4841].
    assert_difference(comp_all, Metric::All, 2.0, 1.0, T_975_2 / 3f64.sqrt());
    assert_close(T_975_2 / 3f64.sqrt(), 2.484137711750331, "All half-width");
    // Head: 2, 4, 0 and Tail: 0, 2, 4: mean 2, std 2, half-width 2t / sqrt(3) = 4.9683.
    assert_difference(
        comp_all,
        Metric::Head,
        2.0,
        2.0,
        2.0 * T_975_2 / 3f64.sqrt(),
    );
    assert_difference(
        comp_all,
        Metric::Tail,
        2.0,
        2.0,
        2.0 * T_975_2 / 3f64.sqrt(),
    );

    // comp=tail,pc=head: All 45, 47, 52: mean 48, deviations -3, -1, 4, variance 26 / 2 = 13.
    // Head 66, 68, 70: std 2. Tail 24, 26, 34: mean 28, deviations -4, -2, 6, variance 56 / 2.
    assert_summary(best, Metric::All, 48.0, 13f64.sqrt());
    assert_summary(best, Metric::Head, 68.0, 2.0);
    assert_summary(best, Metric::Tail, 28.0, 28f64.sqrt());
    // All: 5, 5, 8: mean 6, variance 6 / 2 = 3, half-width t * sqrt(3) / sqrt(3) = t:
    // [1.6973, 10.3027].
    assert_difference(best, Metric::All, 6.0, 3f64.sqrt(), T_975_2);
    // Head: 6, 6, 6: no spread, so the interval is the point itself, and no p (no claim).
    assert_difference(best, Metric::Head, 6.0, 0.0, 0.0);
    assert_eq!(best.metric(Metric::Head).vs_ce.and_then(|d| d.p), None);
    // Tail: 4, 4, 10: mean 6, variance 24 / 2 = 12, half-width t * sqrt(12) / sqrt(3) = 2t.
    assert_difference(best, Metric::Tail, 6.0, 12f64.sqrt(), 2.0 * T_975_2);

    let best_rows: Vec<bool> = rows.iter().map(|row| row.best).collect();
    assert_eq!(
        best_rows,
        [false, false, true],
        "the highest mean All is the best"
    );
}

#[test]
fn markdown_shows_the_numbers_rounded_and_the_best_figures_bold() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    let table = &report.table1_markdown;
    assert!(
        table.contains(
            "| Comp. on Head | Comp. on Tail | PC on Head | PC on Tail | n | All | Head | Tail \
             | Δ All vs CE | Δ Head vs CE | Δ Tail vs CE | notes |"
        ),
        "{table}"
    );
    assert!(
        table.contains(
            "|  |  |  |  | 3 | 42.00 ± 2.00 | 62.00 ± 2.00 | 22.00 ± 2.00 | — | — | — |  |"
        ),
        "{table}"
    );
    assert!(
        table.contains(
            "| ✓ | ✓ |  |  | 3 | 44.00 ± 2.65 | 64.00 ± 2.00 | 24.00 ± 4.00 \
             | +2.00 [-0.48, +4.48] p=0.297 | +2.00 [-2.97, +6.97] p=0.451 \
             | +2.00 [-2.97, +6.97] p=0.451 |  |"
        ),
        "{table}"
    );
    // 6 ± 2t = 6 ± 8.6053 for the Tail difference.
    assert!(
        table.contains(
            "|  | ✓ | ✓ |  | 3 | **48.00 ± 3.61** | **68.00 ± 2.00** | **28.00 ± 5.29** \
             | +6.00 [+1.70, +10.30] p=0.133 | +6.00 [+6.00, +6.00] \
             | +6.00 [-2.61, +14.61] p=0.297 |  |"
        ),
        "{table}"
    );
    let shots = &report.shots_markdown;
    assert!(
        shots.contains("| 3 | 62.00 ± 2.00 | 27.00 ± 2.00 | 17.00 ± 2.00 | — | — | — |  |"),
        "{shots}"
    );
    assert_eq!(
        report.notes,
        ["best row (highest mean All): comp=tail,pc=head"]
    );

    let latex = std::fs::read_to_string(out.path().join("table1.tex")).expect("table1.tex");
    assert!(
        latex.contains(
            " & \\checkmark & \\checkmark &  & 3 & \\textbf{48.00 $\\pm$ 3.61} & \
             \\textbf{68.00 $\\pm$ 2.00} & \\textbf{28.00 $\\pm$ 5.29} & \
             $+6.00$ [$+1.70$, $+10.30$] $p=0.133$ & $+6.00$ [$+6.00$, $+6.00$] & "
        ),
        "{latex}"
    );
}

/// The best row by All need not be best in every column: each column's best mean is bold,
/// and so are ties as printed.
#[test]
fn each_column_marks_its_own_best_mean() {
    let seeds = |head, tail| [fixtures::succeeded(head, tail); 3];
    let outcomes = [seeds(70.0, 20.0), seeds(56.0, 34.0), seeds(66.0, 34.0)].concat();
    let records = fixtures::sweep(fixtures::GOLDEN_SPEC, &outcomes);
    let frames = Frames::from_records(&records).expect("frames");
    let out = tempfile::tempdir().expect("a temporary directory");
    let table = write_report(&frames, out.path())
        .expect("report")
        .table1_markdown;
    for row in [
        "|  |  |  |  | 3 | 45.00 ± 0.00 | **70.00 ± 0.00** | 20.00 ± 0.00 |",
        "| ✓ | ✓ |  |  | 3 | 45.00 ± 0.00 | 56.00 ± 0.00 | **34.00 ± 0.00** |",
        "|  | ✓ | ✓ |  | 3 | **50.00 ± 0.00** | 66.00 ± 0.00 | **34.00 ± 0.00** |",
    ] {
        assert!(table.contains(row), "no row {row} in\n{table}");
    }
}

#[test]
fn csv_holds_full_precision_numbers_in_their_own_columns() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    let out = tempfile::tempdir().expect("a temporary directory");
    write_report(&frames, out.path()).expect("report");
    let csv = std::fs::read_to_string(out.path().join("table1.csv")).expect("table1.csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "row,plan,comp_on,pc_on,base,sampler,comp_head,comp_tail,pc_head,pc_tail,jobs,n,failed,pending,\
         running,cancelled,all_mean,all_std,all_n,all_diff,all_diff_pairs,all_ci_low,all_ci_high,\
         all_p,all_p_holm,all_holds,head_mean,head_std,head_n,head_diff,head_diff_pairs,\
         head_ci_low,head_ci_high,head_p,head_p_holm,head_holds,tail_mean,tail_std,tail_n,\
         tail_diff,tail_diff_pairs,tail_ci_low,tail_ci_high,tail_p,tail_p_holm,tail_holds,best,\
         notes"
    );
    assert_eq!(lines.len(), 4);
    let best: Vec<&str> = lines[3].split(',').collect();
    assert_eq!(best[..4], ["3", "\"comp=tail", "pc=head\"", "tail"]);
    let number = |i: usize| best[i].parse::<f64>().expect("a number");
    assert_eq!(best[5..7], ["ce", "instance"], "base loss and sampler");
    // Shifted by one: the quoted plan holds a comma.
    assert_close(number(17), 48.0, "all_mean");
    assert_close(number(18), 13f64.sqrt(), "all_std");
    assert_close(number(20), 6.0, "all_diff");
    assert_close(number(22), 6.0 - T_975_2, "all_ci_low");
    assert_close(number(23), 6.0 + T_975_2, "all_ci_high");
    // t = 6 / (sqrt(3) / sqrt(3)) = 6 on 2 degrees of freedom: p = 1 - 6 / sqrt(2 + 36)
    // (the t(2) distribution's closed form), and Holm multiplies the smallest of the table's
    // five p-values by 5 (Head's differences are all 6: no spread, so no p, and no member of
    // the family).
    let p = 1.0 - 6.0 / 38f64.sqrt();
    assert_close(number(24), p, "all_p");
    assert_close(number(25), 5.0 * p, "all_p_holm");
    assert_eq!(best[26], "0", "All does not hold after Holm");
    assert_eq!(
        best[34..37],
        ["", "", ""],
        "Head: no p, no adjusted p, no claim"
    );
    assert_eq!(best[best.len() - 2..], ["1", ""], "best, no notes");

    let recall = std::fs::read_to_string(out.path().join("recall.csv")).expect("recall.csv");
    // CE's Head classes score head ± 10 in every seed: mean recall 0.62 over classes and seeds.
    let ce_head = recall
        .lines()
        .find(|line| line.starts_with("1,") && line.contains(",head,"))
        .expect("CE's head line");
    let fields: Vec<&str> = ce_head.split(',').collect();
    assert_eq!(
        fields[..8],
        [
            "1",
            "\"comp=none",
            "pc=none\"",
            "ce",
            "instance",
            "head",
            "2",
            "3"
        ]
    );
    assert_close(fields[8].parse().expect("recall"), 0.62, "recall_mean");
    assert_close(fields[9].parse().expect("std"), 0.02, "recall_std");
}

/// CE alone and the best plan, each on cross entropy and on the logit-adjusted loss.
const BASES_SPEC: &str = r#"
name = "bases"
seeds = [0, 1, 2]
[dataset]
kind = "synthetic"
classes = 4
[train]
epochs = 4
eval_epochs = [2]
[losses]
plans = [{}, { comp = "tail", pc = "head" }]
base = ["ce", "la"]
"#;

#[test]
fn base_losses_are_columns_and_every_row_pairs_with_cross_entropy_alone() {
    let s = fixtures::succeeded;
    let outcomes = [
        // ce, CE alone: All 40, 42, 44.
        s(60.0, 20.0),
        s(62.0, 22.0),
        s(64.0, 24.0),
        // ce, best plan: All 45, 47, 52.
        s(66.0, 24.0),
        s(68.0, 26.0),
        s(70.0, 34.0),
        // la, CE alone: Head 2 lower, Tail 10 higher than ce in every seed: All +4.
        s(58.0, 30.0),
        s(60.0, 32.0),
        s(62.0, 34.0),
        // la, best plan: All 49, 50, 51.
        s(64.0, 34.0),
        s(64.0, 36.0),
        s(64.0, 38.0),
    ];
    let frames = Frames::from_records(&fixtures::sweep(BASES_SPEC, &outcomes)).expect("frames");
    let rows = table1_rows(&frames).expect("rows");
    let labels: Vec<String> = rows.iter().map(PlanRow::label).collect();
    assert_eq!(
        labels,
        [
            "comp=none,pc=none",
            "comp=tail,pc=head",
            "base=la comp=none,pc=none",
            "base=la comp=tail,pc=head"
        ]
    );
    // The reference is cross entropy alone, not the CE-only plan of the same base loss.
    assert!(rows[0].is_ce_only() && !rows[2].is_ce_only());
    assert_difference(&rows[2], Metric::All, 4.0, 0.0, 0.0);
    assert_difference(&rows[2], Metric::Head, -2.0, 0.0, 0.0);
    assert_difference(&rows[2], Metric::Tail, 10.0, 0.0, 0.0);
    // la + best plan: All 49, 50, 51 against 40, 42, 44: 9, 8, 7.
    assert_difference(&rows[3], Metric::All, 8.0, 1.0, T_975_2 / 3f64.sqrt());

    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    let table = &report.table1_markdown;
    assert!(
        table.contains("| base | Comp. on Head | Comp. on Tail | PC on Head | PC on Tail | n |"),
        "the base loss is a column, the sampler (always instance) is not: {table}"
    );
    assert!(
        table.contains(
            "| la |  |  |  |  | 3 | 46.00 ± 2.00 | 60.00 ± 2.00 | 32.00 ± 2.00 \
             | +4.00 [+4.00, +4.00] | -2.00 [-2.00, -2.00] \
             | +10.00 [+10.00, +10.00] |  |"
        ),
        "{table}"
    );
    assert!(table.contains("base loss ce, sampler instance"), "{table}");
    let latex = std::fs::read_to_string(out.path().join("table1.tex")).expect("table1.tex");
    assert!(latex.contains("\\begin{tabular}{lccccrrrrrrrl}"), "{latex}");
    assert!(
        latex.contains("\\cmidrule(lr){2-3} \\cmidrule(lr){4-5}"),
        "{latex}"
    );
}

#[test]
fn tables_report_the_final_epoch_or_the_best_one_on_the_test_set_when_asked() {
    // Cross entropy alone peaks early in seeds 0 and 1: All at epoch 2 is 10 points above the
    // final one there.
    let mut records = fixtures::golden();
    for job in &mut records.jobs[..2] {
        let result = job.result.as_mut().expect("a result");
        let early = result.epochs[1]
            .accuracy
            .as_mut()
            .expect("epoch 2 is evaluated");
        early.acc_all = Some(result.accuracy.acc_all.unwrap() + 0.1);
        early.acc_tail = Some(0.5);
    }
    let frames = Frames::from_records(&records).expect("frames");
    let best_epochs: Vec<Option<u32>> = frames
        .jobs
        .column("best_epoch")
        .expect("best_epoch")
        .u32()
        .expect("counts")
        .iter()
        .collect();
    assert_eq!(best_epochs[..4], [Some(2), Some(2), Some(4), Some(4)]);
    let final_all: Vec<Option<f64>> = frames
        .jobs
        .column("acc_all_final")
        .expect("acc_all_final")
        .f64()
        .expect("reals")
        .iter()
        .collect();
    assert_eq!(final_all[0], Some(0.40));

    let final_rows = table1_rows(&frames).expect("rows");
    assert_summary(&final_rows[0], Metric::All, 42.0, 2.0);
    // Best: 50, 52 (epoch 2) and 44 (final): mean 48.67.
    let best_test = ReportOptions {
        epoch: EpochChoice::BestTest,
        ..ReportOptions::default()
    };
    let best_rows = table1_rows_with(&frames, &best_test).expect("rows");
    let all = best_rows[0].metric(Metric::All);
    assert_close(
        all.mean.expect("a mean"),
        (50.0 + 52.0 + 44.0) / 3.0,
        "best All",
    );
    assert_close(
        best_rows[0].metric(Metric::Tail).mean.expect("a mean"),
        (50.0 + 50.0 + 24.0) / 3.0,
        "best Tail",
    );

    let out = tempfile::tempdir().expect("a temporary directory");
    let final_report = write_report(&frames, out.path()).expect("report");
    assert!(
        final_report
            .table1_markdown
            .starts_with("Table 1: top-1 accuracy [%] on the test set at the final epoch"),
        "{}",
        final_report.table1_markdown
    );
    let best_report = write_report_with(&frames, out.path(), &best_test).expect("report");
    assert!(
        best_report
            .table1_markdown
            .contains("best epoch on the test set (the evaluated epoch of the highest All accuracy on the test set: optimistic, best-on-test)"),
        "{}",
        best_report.table1_markdown
    );
    assert!(best_report.table1_markdown.contains("48.67 ± "));
}

/// Results of an earlier version's `[eval] posthoc_tau` (now the stage-2 method `posthoc_la`,
/// which a spec can no longer ask for this way) still read as before.
#[test]
fn post_hoc_taus_of_an_earlier_version_are_an_axis_of_the_same_jobs() {
    let golden = fixtures::golden();
    let outcomes: Vec<fixtures::Outcome> = golden
        .jobs
        .iter()
        .map(|job| {
            let a = &job.result.as_ref().expect("a result").accuracy;
            fixtures::succeeded(a.acc_head.unwrap() * 100.0, a.acc_tail.unwrap() * 100.0)
        })
        .collect();
    let mut records = fixtures::sweep(fixtures::GOLDEN_SPEC, &outcomes);
    // Adjusted by tau = 1: Head 4 points lower, Tail 10 higher, in every job.
    for job in &mut records.jobs {
        job.spec.train.posthoc_tau = vec![0.0, 1.0];
        let result = job.result.as_mut().expect("a result");
        result.spec.train.posthoc_tau = vec![0.0, 1.0];
        let a = result.accuracy.clone();
        let (head, tail) = (a.acc_head.unwrap() - 0.04, a.acc_tail.unwrap() + 0.10);
        let adjusted = ltsweep_domain::GroupAccuracy {
            acc_all: Some((head + tail) / 2.0),
            acc_head: Some(head),
            acc_tail: Some(tail),
            ..a.clone()
        };
        result.posthoc = vec![
            ltsweep_domain::PosthocAccuracy {
                tau: 0.0,
                accuracy: a,
                val_accuracy: None,
            },
            ltsweep_domain::PosthocAccuracy {
                tau: 1.0,
                accuracy: adjusted,
                val_accuracy: None,
            },
        ];
    }
    let frames = Frames::from_records(&records).expect("frames");
    assert_eq!(frames.jobs.height(), 18, "one row per job and tau");
    let rows = table1_rows(&frames).expect("rows");
    let labels: Vec<String> = rows.iter().map(PlanRow::label).collect();
    assert_eq!(
        labels,
        [
            "comp=none,pc=none posthoc_tau=0",
            "comp=all,pc=none posthoc_tau=0",
            "comp=tail,pc=head posthoc_tau=0",
            "comp=none,pc=none posthoc_tau=1",
            "comp=all,pc=none posthoc_tau=1",
            "comp=tail,pc=head posthoc_tau=1",
        ]
    );
    // tau = 0 is the table without adjustment.
    assert_summary(&rows[0], Metric::All, 42.0, 2.0);
    assert_difference(&rows[2], Metric::All, 6.0, 3f64.sqrt(), T_975_2);
    // tau = 1: CE alone's Head 58, Tail 32, All 45; each row is paired with CE alone at tau = 1.
    assert_summary(&rows[3], Metric::Head, 58.0, 2.0);
    assert_summary(&rows[3], Metric::Tail, 32.0, 2.0);
    assert_summary(&rows[3], Metric::All, 45.0, 2.0);
    assert!(rows[3].is_ce_only());
    assert_difference(&rows[5], Metric::All, 6.0, 3f64.sqrt(), T_975_2);

    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    assert!(
        report.table1_markdown.contains("| posthoc_tau |"),
        "{}",
        report.table1_markdown
    );
    // Per-class recall is the model's as trained: the adjusted rows have none of their own.
    let recall = std::fs::read_to_string(out.path().join("recall.csv")).expect("recall.csv");
    let adjusted_head = recall
        .lines()
        .find(|line| line.starts_with("4,") && line.contains(",head,"))
        .expect("row 4's head line");
    assert!(adjusted_head.contains(",head,0,0,"), "{adjusted_head}");
}

/// CE alone with its stage-2 jobs, and the logit-adjusted loss without: every row is compared
/// with CE alone without stage 2.
const STAGE2_SPEC: &str = r#"
name = "two-stage"
seeds = [0, 1, 2]
[dataset]
kind = "synthetic"
classes = 4
[train]
epochs = 4
eval_epochs = [2]
[losses]
plans = [{}]
base = ["ce", "la"]
[stage2]
method = ["none", "crt", "tau_norm"]
[stage2.tau_norm]
tau = [0.5, 1.0]
"#;

#[test]
fn stage2_methods_are_a_column_and_every_row_pairs_with_ce_alone_without_stage2() {
    let jobs = fixtures::jobs_of(STAGE2_SPEC);
    // Each stage-1 job is followed by its three stage-2 jobs.
    assert_eq!(jobs.len(), 2 * 3 * 4);
    let s = fixtures::succeeded;
    // CE alone: All 40, 42, 44; its cRT +6 All in every seed (Head -2, Tail +14); τ-norm 0.5
    // +2 (Head 0, Tail +4); τ-norm 1 +4 (Head -4, Tail +12). la: All 46, 48, 50, and its
    // stage-2 jobs as la alone.
    let seed = |k: f64| {
        [
            s(60.0 + k, 20.0 + k),
            s(58.0 + k, 34.0 + k),
            s(60.0 + k, 24.0 + k),
            s(56.0 + k, 32.0 + k),
        ]
    };
    let la = |k: f64| [s(62.0 + k, 30.0 + k); 4];
    let outcomes: Vec<fixtures::Outcome> = [0.0, 2.0, 4.0]
        .into_iter()
        .flat_map(seed)
        .chain([0.0, 2.0, 4.0].into_iter().flat_map(la))
        .collect();
    let frames = Frames::from_records(&fixtures::sweep(STAGE2_SPEC, &outcomes)).expect("frames");
    let rows = table1_rows(&frames).expect("rows");
    let labels: Vec<String> = rows.iter().map(PlanRow::label).collect();
    assert_eq!(
        labels,
        [
            "comp=none,pc=none",
            "comp=none,pc=none stage2=crt(epochs=10,lr=0.1)",
            "comp=none,pc=none stage2=tau_norm(tau=0.5)",
            "comp=none,pc=none stage2=tau_norm(tau=1)",
            "base=la comp=none,pc=none",
            "base=la comp=none,pc=none stage2=crt(epochs=10,lr=0.1)",
            "base=la comp=none,pc=none stage2=tau_norm(tau=0.5)",
            "base=la comp=none,pc=none stage2=tau_norm(tau=1)",
        ]
    );
    assert!(rows[0].is_ce_only());
    assert!(rows[1..].iter().all(|row| !row.is_ce_only()));
    assert_difference(&rows[1], Metric::All, 6.0, 0.0, 0.0);
    assert_difference(&rows[1], Metric::Head, -2.0, 0.0, 0.0);
    assert_difference(&rows[1], Metric::Tail, 14.0, 0.0, 0.0);
    assert_difference(&rows[3], Metric::All, 4.0, 0.0, 0.0);
    assert_difference(&rows[7], Metric::All, 6.0, 0.0, 0.0);

    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    let table = &report.table1_markdown;
    assert!(
        table.contains("| base | stage 2 | Comp. on Head |"),
        "the stage-2 method is a column: {table}"
    );
    assert!(
        table.contains("| ce | crt(epochs=10,lr=0.1) |  |  |  |  | 3 | **48.00 ± 2.00** |"),
        "{table}"
    );
    assert!(table.contains("no stage 2"), "{table}");
    let csv = std::fs::read_to_string(out.path().join("table1.csv")).expect("table1.csv");
    assert!(csv.lines().next().unwrap().contains(",stage2,"), "{csv}");
    // The jobs frame names each stage-2 job's method and stage-1 job.
    let stage2 = frames.jobs.column("stage2").expect("a stage2 column");
    let parents = frames.jobs.column("parent_id").expect("a parent_id column");
    assert_eq!(stage2.str().unwrap().get(0), Some("none"));
    assert_eq!(parents.str().unwrap().get(0), None);
    assert_eq!(stage2.str().unwrap().get(1), Some("crt(epochs=10,lr=0.1)"));
    let job_ids = frames.jobs.column("job_id").expect("job ids");
    assert_eq!(parents.str().unwrap().get(1), job_ids.str().unwrap().get(0));
}

/// Three seeds whose differences to CE all have one sign (the best row's All: 5, 5, 8) gave the
/// bootstrap a percentile p of 0, which Holm left at 0; floored at the exact sign-flip
/// minimum (0.25 for three seeds), no cell of the table can hold, as with the sign-flip test.
#[test]
fn the_bootstrap_on_three_seeds_marks_no_cell() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    let options = ReportOptions {
        test: ltsweep_analysis::PairedTest::Bootstrap,
        ..ReportOptions::default()
    };
    let rows = table1_rows_with(&frames, &options).expect("rows");
    for row in &rows {
        for metric in Metric::TABLE1 {
            if let Some(d) = row.metric(metric).vs_ce {
                let p = d.p.expect("three pairs have a p");
                assert!(p >= 0.25, "{} {metric:?}: p = {p}", row.label());
                assert!(
                    !d.holds(),
                    "{} {metric:?} holds on three seeds",
                    row.label()
                );
            }
        }
    }
    let out = tempfile::tempdir().expect("a temporary directory");
    write_report_with(&frames, out.path(), &options).expect("report");
    let table = std::fs::read_to_string(out.path().join("table1.md")).expect("table1.md");
    // A difference that holds is marked `p=0.031*` (bold `**` is the best mean).
    let marked = table
        .split("p=")
        .skip(1)
        .filter(|rest| {
            rest.split([' ', '|'])
                .next()
                .is_some_and(|p| p.ends_with('*'))
        })
        .count();
    assert!(table.contains("p="), "{table}");
    assert_eq!(marked, 0, "cells marked on three seeds: {table}");
}

/// CE alone with the crop and flip, and with AutoAugment and mixup: jobs that differ in their
/// policy and mixing alone are rows of their own, compared with CE alone without them.
const AUGMENT_SPEC: &str = r#"
name = "augmented"
seeds = [0, 1, 2]
[dataset]
kind = "synthetic"
classes = 4
[train]
epochs = 4
[losses]
plans = [{}]
[augment]
policy = ["standard", "autoaugment_cifar10"]
mix = ["none", "mixup"]
"#;

#[test]
fn policies_and_mixings_are_rows_of_their_own_against_ce_alone_without_them() {
    let jobs = fixtures::jobs_of(AUGMENT_SPEC);
    assert_eq!(jobs.len(), 4 * 3);
    let s = fixtures::succeeded;
    // In grid order (the rows, then the seeds): each row d points above the standard one, in
    // Head and Tail alike, in every seed k.
    let outcomes: Vec<fixtures::Outcome> = [0.0, 2.0, 4.0, 6.0]
        .into_iter()
        .flat_map(|d| {
            [0.0, 2.0, 4.0]
                .into_iter()
                .map(move |k| s(60.0 + k + d, 20.0 + k + d))
        })
        .collect();
    let frames = Frames::from_records(&fixtures::sweep(AUGMENT_SPEC, &outcomes)).expect("frames");
    let rows = table1_rows(&frames).expect("rows");
    let labels: Vec<String> = rows.iter().map(PlanRow::label).collect();
    assert_eq!(
        labels,
        [
            "comp=none,pc=none",
            "mix=mixup(1) comp=none,pc=none",
            "policy=autoaugment_cifar10 comp=none,pc=none",
            "policy=autoaugment_cifar10 mix=mixup(1) comp=none,pc=none",
        ]
    );
    assert!(rows[0].is_ce_only());
    assert!(rows[1..].iter().all(|row| !row.is_ce_only()));
    assert_difference(&rows[3], Metric::All, 6.0, 0.0, 0.0);
    let out = tempfile::tempdir().expect("a temporary directory");
    let report = write_report(&frames, out.path()).expect("report");
    assert!(
        report.table1_markdown.contains("| augment |"),
        "{}",
        report.table1_markdown
    );
}
