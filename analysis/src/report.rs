//! The report directory: tables, recall tables, tidy Parquet frames and figures.

use std::fs;
use std::path::{Path, PathBuf};

use ltsweep_proto::{BaseKind, Sampler};

use crate::AnalysisError;
use crate::figures::{Curves, Figure1};
use crate::frames::{Frames, write_parquet};
use crate::rows::Tidy;
use crate::summary::{EpochChoice, JobCounts, Metric, PlanRow, plan_rows, stage1_rows};
use crate::tables::{self, AccuracyTable, TableText};

/// What [`write_report`] wrote, and what to tell the person who asked for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Table 1 (All / Head / Tail), as in `table1.md`.
    pub table1_markdown: String,
    /// The Many / Medium / Few table, as in `shots.md`.
    pub shots_markdown: String,
    /// Every file written, in the order written.
    pub files: Vec<PathBuf>,
    /// What the tables cannot show on their own: missing jobs, a missing baseline, the best row.
    pub notes: Vec<String>,
}

/// Writes every report file into `out_dir` (created if missing): `table1.md|csv|tex`,
/// `shots.md|csv|tex`, `recall.csv`, `per_class_recall.csv`, `jobs.parquet`,
/// `per_class.parquet`, `epochs.parquet`, `figure1.png|svg` and `curves.png|svg`.
///
/// The tables report each job's final epoch; [`write_report_at`] chooses.
pub fn write_report(frames: &Frames, out_dir: &Path) -> Result<Report, AnalysisError> {
    write_report_at(frames, out_dir, EpochChoice::Final)
}

/// [`write_report`] with the tables at the chosen epoch of each job.
pub fn write_report_at(
    frames: &Frames,
    out_dir: &Path,
    epoch: EpochChoice,
) -> Result<Report, AnalysisError> {
    fs::create_dir_all(out_dir).map_err(|source| AnalysisError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let tidy = Tidy::read(frames)?;
    let rows = plan_rows(&tidy, epoch);
    let with_differences = rows.iter().any(PlanRow::is_ce_only);
    let mut notes = table_notes(&rows, with_differences);
    let mut files = Vec::new();

    let (table1, shots) = accuracy_tables(&tidy, &rows, with_differences, epoch);
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

    for (name, frame) in [
        ("jobs.parquet", &frames.jobs),
        ("per_class.parquet", &frames.per_class),
        ("epochs.parquet", &frames.epochs),
    ] {
        let path = out_dir.join(name);
        write_parquet(&mut frame.clone(), &path)?;
        files.push(path);
    }

    let figure_rows = stage1_rows(&rows);
    let (figure1, figure_notes) = Figure1::build(&tidy, &figure_rows);
    notes.extend(figure_notes);
    files.extend(figure1.save(out_dir)?);
    files.extend(Curves::build(&tidy, &figure_rows).save(out_dir)?);

    Ok(Report {
        table1_markdown: table1.markdown,
        shots_markdown: shots.markdown,
        files,
        notes,
    })
}

/// Table 1 (All / Head / Tail) and the Many / Medium / Few table, at the chosen epoch of each
/// job.
pub(crate) fn accuracy_tables(
    tidy: &Tidy,
    rows: &[PlanRow],
    with_differences: bool,
    epoch: EpochChoice,
) -> (TableText, TableText) {
    // A column for the base loss and the sampler once any row is not the default: where
    // they vary, or where the whole sweep uses another one.
    let show_base = rows.iter().any(|row| row.base != BaseKind::Ce);
    let show_sampler = rows.iter().any(|row| row.sampler != Sampler::Instance);
    let show_stage2 = rows.iter().any(PlanRow::is_stage2);
    let at = match epoch {
        EpochChoice::Final => "at the final epoch",
        EpochChoice::Best => {
            "at each job's best epoch (the evaluated epoch of the highest All accuracy on the \
             test set: optimistic, best-on-test)"
        }
    };
    let differences = if with_differences {
        " Δ vs CE: mean of the seed-paired differences to CE alone (base loss ce, sampler \
         instance, no Comp., no PC, no stage 2) with the same axis values [95% Student t \
         interval]."
    } else {
        ""
    };
    let table1_caption = format!(
        "Table 1: top-1 accuracy [%] on the test set {at}, mean ± std over seeds (n: seeds \
         that succeeded).{differences} Bold: the best mean of each column."
    );
    let shots_caption = format!(
        "Top-1 accuracy [%] {at} by training images of the class: Many (> 100), Medium (20 \
         to 100), Few (< 20); mean ± std over seeds. Bold: the best mean of each column."
    );
    let table1 = AccuracyTable {
        caption: &table1_caption,
        metrics: Metric::TABLE1,
        rows,
        axis_names: &tidy.axis_names,
        show_base,
        show_sampler,
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
