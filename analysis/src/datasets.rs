//! Several sweeps in one report (different data sets or imbalance ratios): per row, the
//! interquartile mean of normalised scores and the probability of improvement over CE alone
//! across the sweeps, with stratified-bootstrap intervals (Agarwal et al., NeurIPS 2021), and
//! a table of each sweep side by side.
//!
//! A row is matched across sweeps by its plan, base loss, sampler and other axes (an axis
//! chosen on the validation set with `--select` is left out of the match: each sweep chooses
//! its own value). Only rows every sweep has are aggregated.
//!
//! Normalised score of a run: `(accuracy - chance) / (mean accuracy of CE alone - chance)` in
//! its own sweep, chance being `100 / classes`: 0 is guessing, 1 is cross entropy alone, as
//! the Atari scores the method was made for run from random play (0) to a human (1).

use std::fs;
use std::path::{Path, PathBuf};

use crate::AnalysisError;
use crate::frames::Frames;
use crate::rows::Tidy;
use crate::stats::aggregate::{self, Estimate};
use crate::stats::resampling::SplitMix;
use crate::summary::{Metric, PlanRow, ReportOptions, plan_rows};
use crate::tables::csv_line;

/// Stratified-bootstrap resamples of each aggregate's interval.
pub const AGGREGATE_RESAMPLES: usize = 10_000;

/// One sweep of a report over several: a name (its sweep id) and its frames.
pub struct Sweep {
    pub name: String,
    pub frames: Frames,
}

/// One sweep's rows and what its scores are normalised by.
struct Task {
    name: String,
    rows: Vec<PlanRow>,
    /// `100 / classes`, in percent; 0 when the sweep's classes are unknown (no per-class rows).
    chance: f64,
}

/// What [`write_several`] wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SeveralReport {
    /// The aggregates table, as in `aggregate.md`.
    pub aggregate_markdown: String,
    /// The sweeps side by side, as in `datasets.md`.
    pub datasets_markdown: String,
    pub files: Vec<PathBuf>,
    pub notes: Vec<String>,
}

/// The aggregate of one row and metric.
struct Aggregate {
    iqm: Option<Estimate>,
    improvement: Option<Estimate>,
}

/// The metrics aggregated: All and Tail.
const METRICS: [Metric; 2] = [Metric::All, Metric::Tail];

/// Writes `aggregate.md|csv` and `datasets.md|csv` into `out_dir` for sweeps read with
/// `options`.
pub fn write_several(
    sweeps: &[Sweep],
    out_dir: &Path,
    options: &ReportOptions,
) -> Result<SeveralReport, AnalysisError> {
    let tasks = sweeps
        .iter()
        .map(|sweep| {
            let tidy = Tidy::read(&sweep.frames)?;
            let classes = tidy.classes.iter().map(|c| c.class + 1).max().unwrap_or(0);
            Ok(Task {
                name: sweep.name.clone(),
                rows: plan_rows(&tidy, options)?,
                chance: if classes > 0 {
                    100.0 / f64::from(classes)
                } else {
                    0.0
                },
            })
        })
        .collect::<Result<Vec<Task>, AnalysisError>>()?;
    // Rows in the first sweep's order, kept when every sweep has them.
    let mut keys: Vec<String> = Vec::new();
    for row in tasks.iter().flat_map(|t| &t.rows) {
        if !keys.contains(&row.key()) {
            keys.push(row.key());
        }
    }
    let mut notes = Vec::new();
    let shared: Vec<&String> = keys
        .iter()
        .filter(|key| {
            let everywhere = tasks
                .iter()
                .all(|t| t.rows.iter().any(|r| &r.key() == *key));
            if !everywhere {
                notes.push(format!(
                    "{key} is not in every sweep: left out of the aggregates"
                ));
            }
            everywhere
        })
        .collect();
    let aggregates: Vec<(String, Vec<Aggregate>)> = shared
        .iter()
        .map(|key| {
            let values = METRICS.map(|metric| aggregate_row(&tasks, key, metric));
            ((*key).clone(), values.into_iter().collect())
        })
        .collect();
    if aggregates
        .iter()
        .all(|(_, a)| a.iter().all(|a| a.improvement.is_none()))
    {
        notes.push(
            "no row pairs with CE alone in every sweep: no normalised scores, no probability of \
             improvement"
                .to_owned(),
        );
    }

    fs::create_dir_all(out_dir).map_err(|source| AnalysisError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    let (aggregate_markdown, aggregate_csv) = aggregate_tables(&tasks, &aggregates, options);
    let (datasets_markdown, datasets_csv) = side_by_side(&tasks, &keys);
    for (name, text) in [
        ("aggregate.md", &aggregate_markdown),
        ("aggregate.csv", &aggregate_csv),
        ("datasets.md", &datasets_markdown),
        ("datasets.csv", &datasets_csv),
    ] {
        let path = out_dir.join(name);
        fs::write(&path, text).map_err(|source| AnalysisError::Io {
            path: path.clone(),
            source,
        })?;
        files.push(path);
    }
    Ok(SeveralReport {
        aggregate_markdown,
        datasets_markdown,
        files,
        notes,
    })
}

/// The IQM and the probability of improvement of one row over CE alone, on one metric.
fn aggregate_row(tasks: &[Task], key: &str, metric: Metric) -> Aggregate {
    let mut scores = Vec::new();
    let mut baseline = Vec::new();
    let mut chance = Vec::new();
    for task in tasks {
        let row = task.rows.iter().find(|r| r.key() == key);
        let ce = row.and_then(|row| {
            task.rows
                .iter()
                .find(|other| other.is_ce_only() && other.same_axes(row))
        });
        let (Some(row), Some(ce)) = (row, ce) else {
            return Aggregate {
                iqm: None,
                improvement: None,
            };
        };
        scores.push(row.metric(metric).by_seed.values().copied().collect());
        baseline.push(ce.metric(metric).by_seed.values().copied().collect());
        chance.push(task.chance);
    }
    let seed = key.bytes().fold(0x5eed_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) ^ metric as u64;
    let mut rng = SplitMix::new(seed);
    let counts = |tasks: &[Vec<f64>]| tasks.iter().map(Vec::len).collect::<Vec<_>>();
    // The row's runs and CE alone's are resampled independently within each sweep (rliable's
    // StratifiedIndependentBootstrap); the IQM's normaliser is CE alone's resampled mean.
    let x_resamples =
        aggregate::stratified_indices(&counts(&scores), AGGREGATE_RESAMPLES, &mut rng);
    let y_resamples =
        aggregate::stratified_indices(&counts(&baseline), AGGREGATE_RESAMPLES, &mut rng);
    Aggregate {
        iqm: aggregate::normalised_iqm_with(
            &scores,
            &baseline,
            &chance,
            &x_resamples,
            &y_resamples,
        ),
        improvement: aggregate::improvement_with(&scores, &baseline, &x_resamples, &y_resamples),
    }
}

fn estimate_cell(estimate: Option<Estimate>) -> String {
    estimate.map_or(String::new(), |e| {
        format!("{:.3} [{:.3}, {:.3}]", e.value, e.low, e.high)
    })
}

fn number(value: Option<f64>) -> String {
    value.map_or(String::new(), |v| v.to_string())
}

/// The aggregates as Markdown and CSV.
fn aggregate_tables(
    tasks: &[Task],
    aggregates: &[(String, Vec<Aggregate>)],
    options: &ReportOptions,
) -> (String, String) {
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    let fewest = tasks
        .iter()
        .flat_map(|t| &t.rows)
        .map(|r| r.metric(Metric::All).n)
        .filter(|&n| n > 0)
        .min()
        .unwrap_or(0);
    let mut markdown = format!(
        "Across {} sweeps ({}), test accuracy at the {} epoch{}: IQM, the interquartile mean of \
         every run's normalised score ((accuracy - chance) / (CE alone's mean - chance) in its \
         own sweep: 0 is chance, 1 is CE alone); P(> CE), the probability that a run of the row \
         beats a run of CE alone on a sweep drawn at random (Mann-Whitney, ties one half). \
         [95% stratified-bootstrap intervals, {AGGREGATE_RESAMPLES} resamples of the runs within \
         each sweep] (Agarwal et al., NeurIPS 2021).{}\n\n",
        tasks.len(),
        names.join(", "),
        match options.epoch {
            crate::EpochChoice::Final => "final",
            crate::EpochChoice::Best => "validation-chosen",
            crate::EpochChoice::BestTest => "test-chosen (optimistic)",
        },
        options
            .select
            .as_ref()
            .map_or(String::new(), |axis| format!(
                ", {axis} chosen per row and sweep on the validation set"
            )),
        if fewest > 0 && fewest < 5 {
            format!(" Caution: {fewest} runs a sweep in the smallest row: the intervals are rough.")
        } else {
            String::new()
        }
    );
    markdown.push_str("| row | IQM All | P(> CE) All | IQM Tail | P(> CE) Tail |\n");
    markdown.push_str("| :-- | --: | --: | --: | --: |\n");
    let mut csv = csv_line(&[
        "row",
        "all_iqm",
        "all_iqm_low",
        "all_iqm_high",
        "all_p_improve",
        "all_p_improve_low",
        "all_p_improve_high",
        "tail_iqm",
        "tail_iqm_low",
        "tail_iqm_high",
        "tail_p_improve",
        "tail_p_improve_low",
        "tail_p_improve_high",
    ]);
    for (key, values) in aggregates {
        let mut cells = vec![key.clone()];
        let mut fields = vec![key.clone()];
        for aggregate in values {
            cells.push(estimate_cell(aggregate.iqm));
            cells.push(estimate_cell(aggregate.improvement));
            for estimate in [aggregate.iqm, aggregate.improvement] {
                fields.extend([
                    number(estimate.map(|e| e.value)),
                    number(estimate.map(|e| e.low)),
                    number(estimate.map(|e| e.high)),
                ]);
            }
        }
        markdown.push_str(&format!("| {} |\n", cells.join(" | ")));
        csv.push_str(&csv_line(&fields));
    }
    (markdown, csv)
}

/// Each sweep's All and Tail (mean ± std over seeds) side by side, one line a row.
fn side_by_side(tasks: &[Task], keys: &[String]) -> (String, String) {
    let mut markdown = String::from(
        "Test accuracy [%] of each sweep side by side, mean ± std over seeds.\n\n| row |",
    );
    let mut header = vec!["row".to_owned()];
    for task in tasks {
        markdown.push_str(&format!(" {} All | {} Tail |", task.name, task.name));
        for metric in METRICS {
            header.extend([
                format!("{}.{}_mean", task.name, metric.key()),
                format!("{}.{}_std", task.name, metric.key()),
                format!("{}.{}_n", task.name, metric.key()),
            ]);
        }
    }
    markdown.push_str(&format!("\n| :-- |{}\n", " --: |".repeat(2 * tasks.len())));
    let mut csv = csv_line(&header);
    for key in keys {
        let mut cells = vec![key.clone()];
        let mut fields = vec![key.clone()];
        for task in tasks {
            let row = task.rows.iter().find(|r| &r.key() == key);
            for metric in METRICS {
                let summary = row.map(|r| r.metric(metric));
                cells.push(match summary.and_then(|s| Some((s.mean?, s.std))) {
                    Some((mean, Some(std))) => format!("{mean:.2} ± {std:.2}"),
                    Some((mean, None)) => format!("{mean:.2}"),
                    None => String::new(),
                });
                fields.extend([
                    number(summary.and_then(|s| s.mean)),
                    number(summary.and_then(|s| s.std)),
                    summary.map_or(String::new(), |s| s.n.to_string()),
                ]);
            }
        }
        markdown.push_str(&format!("| {} |\n", cells.join(" | ")));
        csv.push_str(&csv_line(&fields));
    }
    (markdown, csv)
}
