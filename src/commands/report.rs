//! `ltsweep report` and `ltsweep export`: a sweep's results as frames, tables and figures.

use std::path::Path;

use ltsweep_analysis::{
    AnalysisError, EpochChoice, Frames, PairedTest, ReportOptions, Sweep, write_report_with,
    write_several,
};

use super::client::{block_on, connect, records};
use crate::cli::{ExportArgs, ExportTo, ReportArgs};
use crate::exit::BadInput;

/// Writes the report files (the tables read as `options` say) and prints the tables.
pub fn write_and_print_with(
    frames: &Frames,
    out: &Path,
    options: &ReportOptions,
) -> anyhow::Result<()> {
    let report = write_report_with(frames, out, options).map_err(|e| match e {
        AnalysisError::Options(message) => BadInput(message).into(),
        other => anyhow::Error::new(other)
            .context(format!("cannot write the report to {}", out.display())),
    })?;
    println!("{}", report.table1_markdown);
    println!("{}", report.shots_markdown);
    if !report.stopped_markdown.is_empty() {
        println!("{}", report.stopped_markdown);
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    println!("wrote {} files to {}", report.files.len(), out.display());
    Ok(())
}

fn options(args: &ReportArgs) -> ReportOptions {
    ReportOptions {
        epoch: match args.metric.as_str() {
            "best" => EpochChoice::Best,
            "best-test" => EpochChoice::BestTest,
            _ => EpochChoice::Final,
        },
        test: match args.test.as_str() {
            "permutation" => PairedTest::Permutation,
            "bootstrap" => PairedTest::Bootstrap,
            _ => PairedTest::StudentT,
        },
        select: args.select.clone(),
    }
}

/// The name of a sweep's frames: the sweep id its jobs carry.
fn sweep_name(frames: &Frames, fallback: &str) -> String {
    frames
        .jobs
        .column("sweep")
        .ok()
        .and_then(|c| c.str().ok()?.get(0).map(str::to_owned))
        .unwrap_or_else(|| fallback.to_owned())
}

pub fn report(args: &ReportArgs) -> anyhow::Result<()> {
    let mut sweeps = Vec::new();
    for path in &args.results {
        let frames = Frames::read_results(path).map_err(|e| BadInput(e.to_string()))?;
        let fallback = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        sweeps.push(Sweep {
            name: sweep_name(&frames, &fallback),
            frames,
        });
    }
    let asked: Vec<&str> = if args.sweeps.is_empty() && args.results.is_empty() {
        vec![""]
    } else {
        args.sweeps.iter().map(String::as_str).collect()
    };
    if !asked.is_empty() {
        let fetched = block_on(async {
            let connection = connect(&args.remote)?;
            let mut all = Vec::new();
            for sweep in &asked {
                all.push(records(&connection, sweep, &args.remote).await?);
            }
            anyhow::Ok(all)
        })?;
        for records in fetched {
            sweeps.push(Sweep {
                name: records.sweep_id.to_string(),
                frames: Frames::from_records(&records)?,
            });
        }
    }
    let options = options(args);
    if let [one] = sweeps.as_slice() {
        return write_and_print_with(&one.frames, &args.out, &options);
    }
    let mut names: Vec<&str> = Vec::new();
    for sweep in &sweeps {
        if names.contains(&sweep.name.as_str()) {
            return Err(BadInput(format!("sweep {} is given twice", sweep.name)).into());
        }
        names.push(&sweep.name);
    }
    for sweep in &sweeps {
        println!("== {}", sweep.name);
        write_and_print_with(&sweep.frames, &args.out.join(&sweep.name), &options)?;
    }
    let several = write_several(&sweeps, &args.out, &options).map_err(|e| match e {
        AnalysisError::Options(message) => BadInput(message).into(),
        other => anyhow::Error::new(other),
    })?;
    println!("{}", several.aggregate_markdown);
    println!("{}", several.datasets_markdown);
    for note in &several.notes {
        println!("note: {note}");
    }
    println!(
        "wrote {} files across {} sweeps to {}",
        several.files.len(),
        sweeps.len(),
        args.out.display()
    );
    Ok(())
}

pub fn export(args: &ExportArgs) -> anyhow::Result<()> {
    if let Some(ExportTo::Mlflow(mlflow)) = &args.to {
        return super::mlflow::export(mlflow);
    }
    let (Some(sweep), Some(out)) = (&args.sweep, &args.out) else {
        return Err(BadInput("give a sweep and --out FOLDER".to_owned()).into());
    };
    if out.is_file() || out.extension().is_some_and(|e| e == "parquet") {
        return Err(BadInput(format!(
            "--out {}: give a folder; the export writes one Parquet file a frame into it \
             (jobs.parquet, per_class.parquet, epochs.parquet)",
            out.display()
        ))
        .into());
    }
    let records = block_on(async {
        let connection = connect(&args.remote)?;
        records(&connection, sweep, &args.remote).await
    })?;
    let succeeded = records.jobs.iter().filter(|j| j.result.is_some()).count();
    let files = Frames::from_records(&records)?.export(out)?;
    println!(
        "wrote {} jobs ({succeeded} with results) of {} to {}",
        records.jobs.len(),
        records.sweep_id,
        out.display()
    );
    for file in files {
        println!("  {}", file.display());
    }
    Ok(())
}
