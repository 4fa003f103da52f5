//! The report of a sweep that may still be running, in memory: the tables as text and the
//! figures as SVG, for a page that redraws them as results arrive. The same rows, tables and
//! figures as [`crate::write_report`], from the same frames.

use crate::AnalysisError;
use crate::figures::{Curves, Figure1};
use crate::frames::Frames;
use crate::report::{accuracy_tables, table_notes};
use crate::rows::Tidy;
use crate::summary::{PlanRow, ReportOptions, plan_rows, stage1_rows};
use crate::tables;

/// Everything a page shows of the results so far.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveReport {
    /// Table 1's rows, in the tables' order: a row with fewer succeeded jobs than jobs is
    /// incomplete (its [`PlanRow::jobs`] say what is missing).
    pub rows: Vec<PlanRow>,
    /// Table 1 (All / Head / Tail) as Markdown: a caption, a blank line, then one line a row
    /// of `rows`.
    pub table1_markdown: String,
    /// The Many / Medium / Few table, laid out as `table1_markdown`.
    pub shots_markdown: String,
    /// Recall and precision by class group, as `recall.csv`: its `row` column is the 1-based
    /// index into `rows`.
    pub recall_csv: String,
    /// Figure 1 as an SVG document.
    pub figure1_svg: String,
    /// The accuracy curves as an SVG document.
    pub curves_svg: String,
    /// What the tables cannot show on their own (as [`crate::Report::notes`]).
    pub notes: Vec<String>,
}

/// Builds the tables and figures of whatever results `frames` hold.
pub fn live_report(frames: &Frames) -> Result<LiveReport, AnalysisError> {
    let tidy = Tidy::read(frames)?;
    let options = ReportOptions::default();
    let rows = plan_rows(&tidy, &options)?;
    let with_differences = rows.iter().any(PlanRow::is_ce_only);
    let mut notes = table_notes(&rows, with_differences);
    let (table1, shots) = accuracy_tables(&tidy, &rows, with_differences, &options, None);
    let figure_rows = stage1_rows(&rows);
    let (figure1, figure_notes) = Figure1::build(&tidy, &figure_rows);
    notes.extend(figure_notes);
    Ok(LiveReport {
        recall_csv: tables::recall_csv(&tidy, &rows),
        figure1_svg: figure1.svg()?,
        curves_svg: Curves::build(&tidy, &figure_rows).svg()?,
        table1_markdown: table1.markdown,
        shots_markdown: shots.markdown,
        rows,
        notes,
    })
}
