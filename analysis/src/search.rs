//! A searched sweep's stopped configurations: the search judged them at a rung and trained them
//! no further, so they have no final accuracy and stay out of the tables and statistics. They
//! are listed apart, each with the rung it stopped at and its reading there.

use ltsweep_domain::{BaseKind, Sampler};

use crate::rows::{JobRow, Tidy};

/// A configuration: a job's place in the grid without its seed. Axis values compare by their
/// bits (they come from one spec, so equal values are bit-identical).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Configuration {
    plan: String,
    base: BaseKind,
    sampler: Sampler,
    stage2: String,
    augment: String,
    axes: Vec<u64>,
}

impl Configuration {
    pub(crate) fn of(job: &JobRow) -> Configuration {
        Configuration {
            plan: job.plan.to_string(),
            base: job.base,
            sampler: job.sampler,
            stage2: job.stage2.to_string(),
            augment: job.augment.clone(),
            axes: job.axes.iter().map(|v| v.to_bits()).collect(),
        }
    }
}

/// One stopped configuration, its seeds together.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct StoppedRow {
    /// The configuration as `validate` shows a job: plan, base loss and sampler where not the
    /// defaults, grid axes.
    pub(crate) label: String,
    /// The rung epoch its seeds stopped at.
    pub(crate) rung: u32,
    /// The mean of its seeds' search metric there, in percent; `None` where no seed has one.
    pub(crate) reading: Option<f64>,
    /// Its jobs (seeds) the search stopped.
    pub(crate) seeds: usize,
}

/// The configurations that have a job the search stopped, in grid order.
pub(crate) fn stopped_configurations(tidy: &Tidy) -> Vec<Configuration> {
    let mut stopped: Vec<Configuration> = Vec::new();
    for job in tidy.jobs.iter().filter(|job| job.stopped_at.is_some()) {
        let configuration = Configuration::of(job);
        if !stopped.contains(&configuration) {
            stopped.push(configuration);
        }
    }
    stopped
}

/// Each stopped configuration with its last rung (the highest its seeds stopped at: they stop
/// together) and the mean of its seeds' readings there.
pub(crate) fn stopped_rows(tidy: &Tidy) -> Vec<StoppedRow> {
    stopped_configurations(tidy)
        .iter()
        .map(|configuration| {
            let jobs: Vec<&JobRow> = tidy
                .jobs
                .iter()
                .filter(|job| job.stopped_at.is_some() && Configuration::of(job) == *configuration)
                .collect();
            let rung = jobs
                .iter()
                .filter_map(|job| job.stopped_at)
                .max()
                .unwrap_or(0);
            let readings: Vec<f64> = jobs
                .iter()
                .filter(|job| job.stopped_at == Some(rung))
                .filter_map(|job| job.stopped_reading)
                .collect();
            StoppedRow {
                label: label(tidy, jobs[0]),
                rung,
                reading: (!readings.is_empty())
                    .then(|| readings.iter().sum::<f64>() / readings.len() as f64 * 100.0),
                seeds: jobs.len(),
            }
        })
        .collect()
}

/// A configuration as `validate` shows a job, without its seed.
pub(crate) fn label(tidy: &Tidy, job: &JobRow) -> String {
    let mut label = job.plan.to_string();
    if job.base != BaseKind::Ce {
        label.push_str(&format!(" base={}", job.base));
    }
    if job.sampler != Sampler::Instance {
        label.push_str(&format!(" sampler={}", job.sampler));
    }
    for (name, value) in tidy.axis_names.iter().zip(&job.axes) {
        label.push_str(&format!(" {name}={value}"));
    }
    label
}

/// The stopped configurations as Markdown (a caption, a blank line, a table) and as CSV.
pub(crate) fn stopped_tables(rows: &[StoppedRow]) -> (String, String) {
    let mut markdown = String::from(
        "Configurations stopped by the search: the rung (epoch) each stopped at and its reading \
         there, the mean over its seeds of the search metric on the validation set [%]. They \
         trained no further and are not in the tables.\n\n\
         | configuration | rung | reading | seeds |\n|---|---:|---:|---:|\n",
    );
    let mut csv = String::from("configuration,rung,reading,seeds\n");
    for row in rows {
        let reading = row.reading.map(|r| format!("{r:.2}"));
        markdown.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            row.label,
            row.rung,
            reading.as_deref().unwrap_or("n/a"),
            row.seeds
        ));
        csv.push_str(&format!(
            "\"{}\",{},{},{}\n",
            row.label.replace('"', "\"\""),
            row.rung,
            reading.unwrap_or_default(),
            row.seeds
        ));
    }
    (markdown, csv)
}
