//! The report directory: tables, recall tables, tidy Parquet frames and figures.

use std::fs;
use std::path::{Path, PathBuf};

use ltsweep_domain::{BaseKind, Sampler};

use crate::AnalysisError;
use crate::figures::{Curves, Figure1, SearchFigure};
use crate::frames::Frames;
use crate::rows::Tidy;
use crate::search;
use crate::select::{EpochChoice, Selection};
use crate::stats::PairedTest;
use crate::stats::resampling::{EXACT_MAX_PAIRS, sign_flip_floor};
use crate::summary::{
    self, Family, JobCounts, Metric, PlanRow, ReportOptions, plan_rows_selected, stage1_rows,
};
use crate::tables::{self, AccuracyTable, TableText};
use crate::tensorboard;

/// What [`write_report`] wrote, and what to tell the person who asked for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Table 1 (All / Head / Tail), as in `table1.md`.
    pub table1_markdown: String,
    /// The Many / Medium / Few table, as in `shots.md`.
    pub shots_markdown: String,
    /// A searched sweep's stopped configurations, as in `stopped.md`; empty where the search
    /// stopped none (or the sweep is a grid).
    pub stopped_markdown: String,
    /// Every file written, in the order written.
    pub files: Vec<PathBuf>,
    /// What the tables cannot show on their own: missing jobs, a missing baseline, the best row.
    pub notes: Vec<String>,
}

/// Writes every report file into `out_dir` (created if missing): `table1.md|csv|tex`,
/// `shots.md|csv|tex`, `recall.csv`, `per_class_recall.csv`, `jobs.parquet`,
/// `per_class.parquet`, `epochs.parquet`, `figure1.png|svg`, `curves.png|svg` and the
/// TensorBoard event files in `tensorboard/`; for a searched sweep whose search stopped
/// configurations, `stopped.md|csv` (they are in no table); for a searched sweep,
/// `search.png|svg` (each configuration's search metric against the epochs, rungs marked).
///
/// The tables report each job's final epoch with Student t comparisons; [`write_report_with`]
/// chooses.
pub fn write_report(frames: &Frames, out_dir: &Path) -> Result<Report, AnalysisError> {
    write_report_with(frames, out_dir, &ReportOptions::default())
}

/// [`write_report`] with the tables read as `options` say.
pub fn write_report_with(
    frames: &Frames,
    out_dir: &Path,
    options: &ReportOptions,
) -> Result<Report, AnalysisError> {
    let tidy = Tidy::read(frames)?;
    let (rows, selection) = plan_rows_selected(&tidy, options)?;
    fs::create_dir_all(out_dir).map_err(|source| AnalysisError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let with_differences = rows.iter().any(PlanRow::is_ce_only);
    let mut notes = table_notes(&rows, with_differences);
    notes.extend(selection_notes(selection.as_ref()));
    let mut files = Vec::new();

    let stopped = search::stopped_rows(&tidy);
    let mut stopped_markdown = String::new();
    if !stopped.is_empty() {
        notes.push(format!(
            "{} configurations stopped by the search are left out of the tables and statistics \
             (stopped.md lists them with their rung)",
            stopped.len()
        ));
        let (markdown, csv) = search::stopped_tables(&stopped);
        write_text(out_dir, "stopped.md", &markdown, &mut files)?;
        write_text(out_dir, "stopped.csv", &csv, &mut files)?;
        stopped_markdown = markdown;
    }

    let (table1, shots) =
        accuracy_tables(&tidy, &rows, with_differences, options, selection.as_ref());
    for (stem, table) in [("table1", &table1), ("shots", &shots)] {
        write_text(out_dir, &format!("{stem}.md"), &table.markdown, &mut files)?;
        write_text(out_dir, &format!("{stem}.csv"), &table.csv, &mut files)?;
        write_text(out_dir, &format!("{stem}.tex"), &table.latex, &mut files)?;
    }
    write_text(
        out_dir,
        "recall.csv",
        &tables::recall_csv(&tidy, &rows),
        &mut files,
    )?;
    write_text(
        out_dir,
        "per_class_recall.csv",
        &tables::per_class_recall_csv(&tidy, &rows),
        &mut files,
    )?;

    files.extend(frames.export(out_dir)?);

    let figure_rows = stage1_rows(&rows);
    let (figure1, figure_notes) = Figure1::build(&tidy, &figure_rows);
    notes.extend(figure_notes);
    files.extend(figure1.save(out_dir)?);
    files.extend(Curves::build(&tidy, &figure_rows).save(out_dir)?);
    if let Some(figure) = SearchFigure::build(&tidy) {
        files.extend(figure.save(out_dir)?);
    }
    files.extend(tensorboard::write_runs(
        &tidy,
        &out_dir.join("tensorboard"),
    )?);

    Ok(Report {
        table1_markdown: table1.markdown,
        shots_markdown: shots.markdown,
        stopped_markdown,
        files,
        notes,
    })
}

/// What each row chose on the validation set, one note a row.
fn selection_notes(selection: Option<&Selection>) -> Vec<String> {
    let Some(selection) = selection else {
        return Vec::new();
    };
    selection
        .choices
        .iter()
        .map(|choice| {
            let others: Vec<String> = choice
                .others
                .iter()
                .map(|(value, mean)| format!("{value}: {mean:.2}"))
                .collect();
            format!(
                "{} chosen on the validation set for {}: {} (mean validation All {:.2}{}{})",
                selection.name,
                choice.row,
                choice.value,
                choice.val_mean,
                if others.is_empty() { "" } else { "; " },
                others.join(", ")
            )
        })
        .collect()
}

/// The captions' sentence on the differences to CE: the test, the interval, the correction and,
/// below 5 seeds, a caution.
fn differences_sentence(test: PairedTest, family: Family) -> String {
    let (interval, p) = match test {
        PairedTest::StudentT => ("95% Student t interval", "two-sided paired t-test"),
        PairedTest::Permutation => (
            "95% Student t interval",
            "two-sided sign-flip permutation test of the paired differences (exact over all \
             2^n sign flips for n <= 16 seeds, 100,000 random flips above)",
        ),
        PairedTest::Bootstrap => (
            "95% paired bootstrap percentile interval, 10,000 resamples of the seeds",
            "the bootstrap's two-sided p (twice the smaller share of resampled means beyond \
             zero, never below 2/2^n, the exact sign-flip test's smallest p for n seeds)",
        ),
    };
    let mut text = format!(
        " Δ vs CE: mean of the seed-paired differences to CE alone (base loss ce, sampler \
         instance, no Comp., no PC, no stage 2) with the same axis values [{interval}]; p: {p}, \
         Holm-adjusted over this table's {} comparisons with CE (one family: every Δ cell of \
         the table); *: holds after the correction (adjusted p < 0.05). Intervals are not \
         adjusted.",
        family.comparisons
    );
    if let Some(fewest) = family.fewest_pairs.filter(|&n| n < 5) {
        text.push_str(&format!(
            " Caution: some comparisons rest on {fewest} seeds (fewer than 5): their intervals \
             and p-values are rough"
        ));
        if test != PairedTest::StudentT && fewest <= EXACT_MAX_PAIRS {
            let smallest = sign_flip_floor(fewest);
            text.push_str(&format!(
                ", and a {} of {fewest} pairs cannot give p below {smallest:.3}",
                if test == PairedTest::Permutation {
                    "sign-flip test"
                } else {
                    "bootstrap floored at the sign-flip minimum"
                }
            ));
        }
        text.push('.');
    }
    text
}

/// Table 1 (All / Head / Tail) and the Many / Medium / Few table, read as `options` say.
pub(crate) fn accuracy_tables(
    tidy: &Tidy,
    rows: &[PlanRow],
    with_differences: bool,
    options: &ReportOptions,
    selection: Option<&Selection>,
) -> (TableText, TableText) {
    // A column for the base loss and the sampler once any row is not the default: where
    // they vary, or where the whole sweep uses another one.
    let show_base = rows.iter().any(|row| row.base != BaseKind::Ce);
    let show_sampler = rows.iter().any(|row| row.sampler != Sampler::Instance);
    let show_stage2 = rows.iter().any(PlanRow::is_stage2);
    let show_augment = rows.iter().any(PlanRow::is_augmented);
    let at = match options.epoch {
        EpochChoice::Final => "at the final epoch",
        EpochChoice::Best => {
            "at each job's best epoch chosen on the validation set (the evaluated epoch of the \
             highest All accuracy on the validation set; the test set chose nothing)"
        }
        EpochChoice::BestTest => {
            "at each job's best epoch on the test set (the evaluated epoch of the highest All \
             accuracy on the test set: optimistic, best-on-test)"
        }
    };
    let selected = selection.map(Selection::caption).unwrap_or_default();
    let differences = |metrics: &[Metric]| {
        if with_differences {
            differences_sentence(options.test, summary::family(rows, metrics))
        } else {
            String::new()
        }
    };
    let table1_caption = format!(
        "Table 1: top-1 accuracy [%] on the test set {at}, mean ± std over seeds (n: seeds \
         that succeeded).{selected}{} Bold: the best mean of each column.",
        differences(&Metric::TABLE1)
    );
    let shots_caption = format!(
        "Top-1 accuracy [%] on the test set {at} by training images of the class: Many \
         (> 100), Medium (20 to 100), Few (< 20); mean ± std over seeds.{selected}{} Bold: the \
         best mean of each column.",
        differences(&Metric::SHOTS)
    );
    let table1 = AccuracyTable {
        caption: &table1_caption,
        metrics: Metric::TABLE1,
        rows,
        axis_names: &tidy.axis_names,
        show_base,
        show_sampler,
        show_augment,
        show_stage2,
        with_differences,
    }
    .render();
    let shots = AccuracyTable {
        caption: &shots_caption,
        metrics: Metric::SHOTS,
        rows,
        axis_names: &tidy.axis_names,
        show_base,
        show_sampler,
        show_augment,
        show_stage2,
        with_differences,
    }
    .render();
    (table1, shots)
}

fn write_text(
    out_dir: &Path,
    name: &str,
    text: &str,
    files: &mut Vec<PathBuf>,
) -> Result<(), AnalysisError> {
    let path = out_dir.join(name);
    fs::write(&path, text).map_err(|source| AnalysisError::Io {
        path: path.clone(),
        source,
    })?;
    files.push(path);
    Ok(())
}

/// The notes about the tables: jobs that did not succeed, a missing CE-only baseline, the best
/// row.
pub(crate) fn table_notes(rows: &[PlanRow], with_differences: bool) -> Vec<String> {
    let mut notes = Vec::new();
    let mut counts = JobCounts::default();
    for row in rows {
        let jobs = &row.jobs;
        counts.total += jobs.total;
        counts.succeeded += jobs.succeeded;
        counts.failed += jobs.failed;
        counts.pending += jobs.pending;
        counts.running += jobs.running;
        counts.cancelled += jobs.cancelled;
    }
    if counts.total == 0 {
        notes.push("the sweep has no jobs: the tables are empty".to_owned());
    } else if counts.succeeded == 0 {
        notes.push(format!(
            "no job has succeeded yet ({}): the tables have empty cells",
            counts.missing()
        ));
    } else if counts.succeeded < counts.total {
        notes.push(format!(
            "{} of {} jobs did not succeed ({}): rows show n as succeeded/total seeds",
            counts.total - counts.succeeded,
            counts.total,
            counts.missing()
        ));
    }
    if !with_differences && !rows.is_empty() {
        notes.push(
            "the sweep has no CE-only plan (comp=none,pc=none with base ce, sampler instance): \
             the tables leave out the differences to CE"
                .to_owned(),
        );
    }
    if with_differences {
        let mut unmatched: Vec<String> = Vec::new();
        for row in rows {
            let has_baseline = rows
                .iter()
                .any(|other| other.is_ce_only() && other.same_axes(row));
            let label = row.axes_label();
            if !has_baseline && !unmatched.contains(&label) {
                unmatched.push(label);
            }
        }
        for label in unmatched {
            notes.push(format!(
                "no CE-only plan with {label}: those rows show no difference to CE (n/a)"
            ));
        }
    }
    if let Some(best) = rows.iter().find(|row| row.best) {
        notes.push(format!("best row (highest mean All): {}", best.label()));
    }
    notes
}
