//! `ltsweep report` and `ltsweep export`: a sweep's results as frames, tables and figures.

use std::path::Path;

use anyhow::Context;
use ltsweep_analysis::{EpochChoice, Frames, SweepRecords, write_report_at};
use ltsweep_proto::SweepId;
use ltsweep_proto::client::{Connection, Which};

use super::client::{block_on, connect, remote_error};
use crate::cli::{ExportArgs, RemoteArgs, ReportArgs};
use crate::exit::BadInput;

/// Every job of a sweep with its state and, when it succeeded, its result; an empty `sweep`
/// is the latest one.
pub async fn records(
    connection: &Connection,
    sweep: &str,
    remote: &RemoteArgs,
) -> anyhow::Result<SweepRecords> {
    let api = connection.sweep_api();
    let id = (!sweep.is_empty()).then(|| SweepId::from(sweep));
    let status = api
        .status(id.as_ref().map_or(Which::Latest, Which::Sweep), true)
        .await
        .map_err(|e| remote_error(e, remote))?;
    let results = api
        .results(&status.id)
        .await
        .map_err(|e| remote_error(e, remote))?;
    Ok(SweepRecords::from_status(status, results)?)
}

/// Writes the report files (tables at the chosen epoch of each job) and prints the tables.
pub fn write_and_print_at(frames: &Frames, out: &Path, epoch: EpochChoice) -> anyhow::Result<()> {
    let report = write_report_at(frames, out, epoch)
        .with_context(|| format!("cannot write the report to {}", out.display()))?;
    println!("{}", report.table1_markdown);
    println!("{}", report.shots_markdown);
    for note in &report.notes {
        println!("note: {note}");
    }
    println!("wrote {} files to {}", report.files.len(), out.display());
    Ok(())
}

pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let frames = match &args.results {
        Some(path) => Frames::read_results(path).map_err(|e| BadInput(e.to_string()))?,
        None => {
            let records = block_on(async {
                let connection = connect(&args.remote)?;
                records(
                    &connection,
                    args.sweep.as_deref().unwrap_or(""),
                    &args.remote,
                )
                .await
            })?;
            Frames::from_records(&records)?
        }
    };
    let epoch = if args.metric == "best" {
        EpochChoice::Best
    } else {
        EpochChoice::Final
    };
    write_and_print_at(&frames, &args.out, epoch)
}

pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    let records = block_on(async {
        let connection = connect(&args.remote)?;
        records(&connection, &args.sweep, &args.remote).await
    })?;
    let succeeded = records.jobs.iter().filter(|j| j.result.is_some()).count();
    Frames::from_records(&records)?.export(&args.out)?;
    println!(
        "wrote {} jobs ({succeeded} with results) of {} to {}",
        records.jobs.len(),
        records.sweep_id,
        args.out.display()
    );
    Ok(())
}
