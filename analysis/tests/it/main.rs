//! The report from records to files: golden numbers, incomplete sweeps, the Parquet export,
//! and the files a report directory holds.

mod export;
mod files;
mod fixtures;
mod golden;
mod incomplete;
mod search;
mod select;
mod select_stage2;
mod stats_golden;
mod tensorboard;
