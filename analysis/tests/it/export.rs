//! The export (one Parquet file a frame, in a folder) reads back into the same frames, as does
//! the single stacked file earlier versions exported; a file that lacks a frame's column is
//! refused with that column's name.

use std::fs::File;
use std::path::Path;

use ltsweep_analysis::{AnalysisError, Frames, write_report};
use ltsweep_domain::JobState;
use polars::prelude::{Column, DataFrame, ParquetReader, ParquetWriter, SerReader};

use crate::fixtures::{self, Outcome, succeeded};

/// The single file earlier versions exported: the three frames stacked, a `frame` column saying
/// whose each row is, every other column named `FRAME.COLUMN` and null outside its frame.
fn write_stacked(frames: &Frames, path: &Path) {
    let parts = [
        ("jobs", &frames.jobs),
        ("per_class", &frames.per_class),
        ("epochs", &frames.epochs),
    ];
    let height: usize = parts.iter().map(|(_, f)| f.height()).sum();
    let mut names = Vec::new();
    for (name, frame) in parts {
        names.extend(std::iter::repeat_n(name, frame.height()));
    }
    let mut columns = vec![Column::new("frame".into(), names)];
    let mut before = 0;
    for (name, frame) in parts {
        let after = height - before - frame.height();
        for column in frame.columns() {
            let full = format!("{name}.{}", column.name());
            let mut stacked = Column::full_null(full.as_str().into(), before, column.dtype());
            stacked
                .append(&column.clone().with_name(full.as_str().into()))
                .unwrap();
            stacked
                .append(&Column::full_null(
                    full.as_str().into(),
                    after,
                    column.dtype(),
                ))
                .unwrap();
            columns.push(stacked);
        }
        before += frame.height();
    }
    let mut table = DataFrame::new(height, columns).unwrap();
    ParquetWriter::new(File::create(path).expect("create"))
        .finish(&mut table)
        .expect("write");
}

fn round_trip(frames: &Frames) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("results");
    let files = frames.export(&path).expect("export");
    assert_eq!(files.len(), 3);
    let read = Frames::read_results(&path).expect("read back");
    assert_eq!(&read, frames);
    // The single file of earlier versions reads the same.
    let stacked = dir.path().join("results.parquet");
    write_stacked(frames, &stacked);
    let read = Frames::read_results(&stacked).expect("read back");
    assert_eq!(read.jobs.schema(), frames.jobs.schema());
    assert_eq!(read.per_class.schema(), frames.per_class.schema());
    assert_eq!(read.epochs.schema(), frames.epochs.schema());
    assert_eq!(&read, frames);
}

#[test]
fn export_reads_back_into_equal_frames() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    // Three jobs x (epoch 2 + final epoch 4) x four classes: the final epoch's evaluation is
    // in the result and in its last epoch's metrics, and counts once.
    assert_eq!(frames.per_class.height(), 9 * 2 * 4);
    assert_eq!(frames.epochs.height(), 9 * 4);
    round_trip(&frames);
}

#[test]
fn export_keeps_axes_nulls_and_unfinished_jobs() {
    let spec = r#"
name = "axes"
seeds = [0, 1]
[dataset]
kind = "synthetic"
classes = 4
[train]
epochs = 4
lr = [0.1, 0.05]
eval_epochs = [2]
[losses]
plans = [{ comp = "none" }, { pc = "head" }]
"#;
    let records = fixtures::sweep(
        spec,
        &[
            succeeded(60.0, 20.0),
            Outcome::Not(JobState::Failed),
            succeeded(50.0, 10.0),
            Outcome::Not(JobState::Pending),
            succeeded(61.0, 21.0),
            succeeded(64.0, 24.0),
            Outcome::Not(JobState::Running),
            succeeded(56.0, 16.0),
        ],
    );
    let frames = Frames::from_records(&records).expect("frames");
    // The `lr` axis shares its name with the epochs frame's learning rate.
    let lr = frames.jobs.column("lr").expect("an lr axis column");
    assert_eq!(lr.f64().expect("f64").get(2), Some(0.05));
    round_trip(&frames);
}

#[test]
fn an_empty_sweep_round_trips() {
    let records = ltsweep_analysis::SweepRecords {
        sweep_id: "empty-00000000".into(),
        name: "empty".to_owned(),
        jobs: Vec::new(),
    };
    round_trip(&Frames::from_records(&records).expect("frames"));
}

fn read_error(path: &Path) -> String {
    match Frames::read_results(path) {
        Ok(_) => panic!("{} should be refused", path.display()),
        Err(error) => error.to_string(),
    }
}

#[test]
fn the_jobs_file_is_one_row_a_job_and_a_report_folder_reads_back() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    let dir = tempfile::tempdir().expect("a temporary directory");
    frames.export(dir.path()).expect("export");
    let jobs = ParquetReader::new(File::open(dir.path().join("jobs.parquet")).expect("open"))
        .finish()
        .expect("read");
    assert_eq!(jobs, frames.jobs);
    assert!(jobs.column("frame").is_err(), "no stacking column");

    // A missing column of one frame's file is named with the file.
    let mut lacking = jobs.drop("acc_all_final").expect("drop a column");
    ParquetWriter::new(File::create(dir.path().join("jobs.parquet")).expect("create"))
        .finish(&mut lacking)
        .expect("write");
    let message = read_error(dir.path());
    assert!(message.contains("`acc_all_final`"), "{message}");
    assert!(message.contains("jobs.parquet"), "{message}");

    // A report's folder holds the same files.
    let report = dir.path().join("report");
    write_report(&frames, &report).expect("report");
    assert_eq!(Frames::read_results(&report).expect("read back"), frames);
}

#[test]
fn a_file_without_a_column_is_refused_with_its_name() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exported = dir.path().join("results.parquet");
    write_stacked(&frames, &exported);

    let table = ParquetReader::new(File::open(&exported).expect("open"))
        .finish()
        .expect("read");
    let mut lacking = table.drop("per_class.recall").expect("drop a column");
    let broken = dir.path().join("broken.parquet");
    ParquetWriter::new(File::create(&broken).expect("create"))
        .finish(&mut lacking)
        .expect("write");
    let message = read_error(&broken);
    assert!(message.contains("`per_class.recall`"), "{message}");
    assert!(message.contains("broken.parquet"), "{message}");
    assert!(matches!(
        Frames::read_results(&broken),
        Err(AnalysisError::MissingColumn { column, .. }) if column == "per_class.recall"
    ));

    // A report's own jobs.parquet is one frame, not an export.
    write_report(&frames, dir.path()).expect("report");
    let message = read_error(&dir.path().join("jobs.parquet"));
    assert!(message.contains("column `frame` is missing"), "{message}");
}

#[test]
fn an_export_of_an_earlier_version_reads_under_the_current_column_names() {
    let frames = Frames::from_records(&fixtures::golden()).expect("frames");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exported = dir.path().join("results.parquet");
    write_stacked(&frames, &exported);
    let mut table = ParquetReader::new(File::open(&exported).expect("open"))
        .finish()
        .expect("read");
    // Before base losses, the epochs' base loss was `loss_ce`.
    table
        .rename("epochs.loss_base", "epochs.loss_ce".into())
        .expect("rename");
    let older = dir.path().join("older.parquet");
    ParquetWriter::new(File::create(&older).expect("create"))
        .finish(&mut table)
        .expect("write");
    assert_eq!(Frames::read_results(&older).expect("read back"), frames);
}
