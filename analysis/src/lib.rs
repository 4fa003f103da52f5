//! ltsweep's report: the results of a sweep as tidy Polars frames, then Table 1, recall tables,
//! figures and Parquet exports.
//!
//! - [`SweepRecords`]: the jobs of a sweep as the coordinator knows them (spec, state, result).
//! - [`Frames`]: three tidy frames built from the records: `jobs` (one row a job), `per_class`
//!   (one row a job, evaluated epoch and class) and `epochs` (one row a job and epoch). They
//!   [export](Frames::export) to one Parquet file and [read back](Frames::read_results) from it.
//! - [`write_report`]: every report file from the frames alone, so a report made from an export
//!   equals one made from the coordinator's records.
//! - [`table1_rows`]: Table 1's numbers, typed, for callers that want more than the text.
//! - [`live_report`]: the tables and figures in memory, for a page that shows a running sweep.
//! - [`stats`]: the statistics behind the tables.
//! - [`write_several`]: several sweeps (data sets, imbalance ratios) in one report: the
//!   interquartile mean of normalised scores and the probability of improvement over CE alone,
//!   with stratified-bootstrap intervals, and each sweep side by side.
//!
//! Accuracies in the frames are fractions in `[0, 1]`, as the trainer reports them; Table 1 and
//! its CSV show percent, as the paper does.
//!
//! ```no_run
//! use std::path::Path;
//!
//! use ltsweep_analysis::{AnalysisError, Frames, SweepRecords, write_report};
//!
//! fn report(records: &SweepRecords, out_dir: &Path) -> Result<(), AnalysisError> {
//!     let frames = Frames::from_records(records)?;
//!     // The report's folder holds the frames too (`Frames::read_results` reads it back).
//!     let report = write_report(&frames, out_dir)?;
//!     print!("{}\n{}", report.table1_markdown, report.shots_markdown);
//!     for note in &report.notes {
//!         eprintln!("note: {note}");
//!     }
//!     Ok(())
//! }
//! ```

mod datasets;
mod figures;
mod frames;
mod live;
mod records;
mod report;
mod rows;
mod schema;
mod search;
mod select;
mod stage2;
pub mod stats;
mod summary;
mod tables;
mod tensorboard;

use std::path::PathBuf;

pub use datasets::{AGGREGATE_RESAMPLES, SeveralReport, Sweep, write_several};
pub use frames::Frames;
pub use live::{LiveReport, live_report};
pub use records::{JobRecord, SweepRecords};
pub use report::{Report, write_report, write_report_with};
pub use select::EpochChoice;
pub use stats::PairedTest;
pub use summary::{
    Family, JobCounts, Metric, MetricSummary, PlanRow, ReportOptions, table1_rows, table1_rows_with,
};

/// Everything that can go wrong between records and report files.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: column `{column}` is missing; this is not an ltsweep results export \
         (write one with `ltsweep export SWEEP --out FILE.parquet`)"
    )]
    MissingColumn { path: PathBuf, column: String },
    #[error("{path}: column `{column}` is {found}, expected {expected}")]
    ColumnType {
        path: PathBuf,
        column: String,
        expected: String,
        found: String,
    },
    /// A frame given to the report lacks a column, has it with the wrong type, or holds a
    /// value that means nothing (a plan that does not parse, a null job id).
    #[error("the {frame} frame: column `{column}` {problem}")]
    BadColumn {
        frame: &'static str,
        column: String,
        problem: String,
    },
    /// A job record contradicts itself or the rest of its sweep.
    #[error("job {job}: {problem}")]
    BadRecord { job: String, problem: String },
    #[error("{context}: {source}")]
    Polars {
        context: String,
        #[source]
        source: polars::error::PolarsError,
    },
    #[error("{path}: could not draw the figure: {message}")]
    Figure { path: PathBuf, message: String },
    /// What the report was asked for cannot be read from these results (a selection on a
    /// validation set the sweep lacks, an axis it does not have).
    #[error("{0}")]
    Options(String),
}
