//! The search figure: each configuration's search metric on the validation set against the
//! epochs, the seeds' mean, with the rungs marked. A configuration that trained to the last
//! epoch is drawn from its evaluated epochs; one the search stopped has only its readings at
//! the rungs it reached, so it is drawn through them and ends at the rung it stopped at.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ltsweep_domain::SearchMetric;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    DrawResult, Figure, Line, draw_epoch_mesh, draw_legend, draw_lines, line_color, save,
    title_font,
};
use crate::AnalysisError;
use crate::rows::{JobRow, Tidy};
use crate::search::Configuration;
use crate::stats;

const RUNG_COLOR: RGBColor = RGBColor(150, 150, 150);

pub(crate) struct SearchFigure {
    metric: SearchMetric,
    /// The rung epochs, from every job's readings.
    rungs: Vec<u32>,
    lines: Vec<Line>,
    /// The first and last epoch drawn.
    epochs: (f64, f64),
}

impl SearchFigure {
    /// `None` for a sweep that is not a search (no job has a search metric).
    pub(crate) fn build(tidy: &Tidy) -> Option<SearchFigure> {
        let metric = tidy.jobs.iter().find_map(|job| job.search_metric)?;
        let rungs: BTreeSet<u32> = tidy
            .jobs
            .iter()
            .flat_map(|job| job.rung_readings.iter().map(|(epoch, _)| *epoch))
            .collect();
        let mut configurations: Vec<(Configuration, Vec<&JobRow>)> = Vec::new();
        for job in tidy.jobs.iter().filter(|job| !job.adjusted) {
            let configuration = Configuration::of(job);
            match configurations.iter_mut().find(|(c, _)| *c == configuration) {
                Some((_, jobs)) => jobs.push(job),
                None => configurations.push((configuration, vec![job])),
            }
        }
        let lines: Vec<Line> = configurations
            .iter()
            .enumerate()
            .map(|(i, (_, jobs))| line(tidy, metric, jobs, i))
            .collect();
        let all = lines
            .iter()
            .flat_map(|line| line.points.iter().map(|p| p.0))
            .chain(rungs.iter().map(|&r| f64::from(r)));
        let (first, last) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        Some(SearchFigure {
            metric,
            rungs: rungs.into_iter().collect(),
            lines,
            epochs: (first, last),
        })
    }

    pub(crate) fn save(&self, out_dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
        save(self, out_dir, "search")
    }

    fn legend_width(&self) -> u32 {
        let longest = self
            .lines
            .iter()
            .map(|l| l.label.chars().count())
            .max()
            .unwrap_or(0);
        (longest as u32 * 10 + 90).max(260)
    }
}

/// One configuration's line: the seeds' mean of the metric at each epoch they all have (a
/// mean over fewer seeds would jump where one is missing).
fn line(tidy: &Tidy, metric: SearchMetric, jobs: &[&JobRow], index: usize) -> Line {
    let stopped = jobs.iter().filter_map(|job| job.stopped_at).max();
    let mut by_epoch: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    if stopped.is_some() {
        for job in jobs {
            for &(epoch, value) in &job.rung_readings {
                by_epoch.entry(epoch).or_default().push(value * 100.0);
            }
        }
    } else {
        for epoch in tidy
            .epochs
            .iter()
            .filter(|e| jobs.iter().any(|job| job.job_id == e.job_id))
        {
            if let Some(value) = metric.read(&epoch.val) {
                by_epoch.entry(epoch.epoch).or_default().push(value * 100.0);
            }
        }
    }
    let points = by_epoch
        .into_iter()
        .filter(|(_, values)| values.len() == jobs.len())
        .filter_map(|(epoch, values)| Some((f64::from(epoch), stats::mean(&values)?)))
        .collect();
    let label = crate::search::label(tidy, jobs[0]);
    Line {
        label: match stopped {
            Some(rung) => format!("{label} (stopped at epoch {rung})"),
            None => label,
        },
        color: line_color(index),
        width: if stopped.is_some() { 1 } else { 2 },
        points,
    }
}

impl Figure for SearchFigure {
    fn size(&self) -> (u32, u32) {
        (1000 + self.legend_width(), 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let title = format!(
            "Search: {} on the validation set per epoch (mean over seeds); rungs dashed",
            self.metric
        );
        let (first, last) = self.epochs;
        let (first, last) = if first < last {
            (first, last)
        } else {
            (first - 1.0, last + 1.0)
        };
        let (low, high) = self
            .lines
            .iter()
            .flat_map(|line| line.points.iter().map(|point| point.1))
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), v| {
                (low.min(v), high.max(v))
            });
        let y_range = if low <= high {
            (low - 3.0).max(0.0)..(high + 3.0).min(100.0)
        } else {
            0.0..100.0
        };
        root.fill(&WHITE)?;
        let area = root.margin(12, 0, 0, 0).titled(&title, title_font(24))?;
        let (panel, legend) = area.split_horizontally(1000);
        let mut chart = ChartBuilder::on(&panel)
            .margin(16)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(first..last, y_range.clone())?;
        draw_epoch_mesh(
            &mut chart,
            first,
            last,
            &format!("validation {} [%]", self.metric),
        )?;
        for &rung in &self.rungs {
            let x = f64::from(rung);
            chart.draw_series(DashedLineSeries::new(
                [(x, y_range.start), (x, y_range.end)],
                6,
                4,
                RUNG_COLOR.stroke_width(2),
            ))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("rung {rung}"),
                (x, y_range.end),
                title_font(14).pos(Pos::new(HPos::Left, VPos::Top)),
            )))?;
        }
        draw_lines(&mut chart, &self.lines)?;
        draw_legend(legend, "configuration", &self.lines)
    }
}

#[cfg(test)]
mod tests {
    use ltsweep_domain::{BaseKind, GroupAccuracy, JobState, LossPlan, Sampler};

    use super::*;
    use crate::rows::EpochRow;
    use crate::stage2::MethodLabel;

    fn job(id: &str, plan: &str, seed: u64, stopped: bool, readings: &[(u32, f64)]) -> JobRow {
        JobRow {
            job_id: id.to_owned(),
            plan: plan.parse::<LossPlan>().expect("a plan"),
            base: BaseKind::Ce,
            sampler: Sampler::Instance,
            stage2: MethodLabel::parse("none").expect("no stage 2"),
            augment: "standard".to_owned(),
            axes: Vec::new(),
            seed,
            state: if stopped {
                JobState::Cancelled
            } else {
                JobState::Succeeded
            },
            accuracy: GroupAccuracy::default(),
            best: GroupAccuracy::default(),
            val: GroupAccuracy::default(),
            best_val: GroupAccuracy::default(),
            best_val_val: GroupAccuracy::default(),
            adjusted: false,
            stopped_at: stopped.then(|| readings.last().expect("a reading").0),
            stopped_reading: stopped.then(|| readings.last().expect("a reading").1),
            search_metric: Some(SearchMetric::ValTail),
            rung_readings: readings.to_vec(),
        }
    }

    fn epoch(id: &str, epoch: u32, tail: f64) -> EpochRow {
        EpochRow {
            job_id: id.to_owned(),
            epoch,
            lr: 0.1,
            losses: [1.0, 0.0, 0.0],
            seconds: 1.0,
            accuracy: GroupAccuracy::default(),
            val: GroupAccuracy {
                acc_all: Some(0.9),
                acc_tail: Some(tail),
                ..GroupAccuracy::default()
            },
            auxiliary_on: false,
        }
    }

    #[test]
    fn a_finished_configuration_follows_its_epochs_and_a_stopped_one_its_rungs() {
        let tidy = Tidy {
            axis_names: Vec::new(),
            jobs: vec![
                job("a0", "comp=none,pc=none", 0, false, &[(2, 0.2)]),
                job("a1", "comp=none,pc=none", 1, false, &[(2, 0.4)]),
                job("b0", "comp=tail,pc=none", 0, true, &[(2, 0.1)]),
                job("b1", "comp=tail,pc=none", 1, true, &[(2, 0.3)]),
            ],
            classes: Vec::new(),
            epochs: vec![
                epoch("a0", 2, 0.2),
                epoch("a1", 2, 0.4),
                epoch("a0", 4, 0.6),
                epoch("a1", 4, 0.8),
                // One seed's epoch alone: no mean of both.
                epoch("a0", 5, 0.9),
            ],
        };
        let figure = SearchFigure::build(&tidy).expect("a search");
        assert_eq!(figure.metric, SearchMetric::ValTail);
        assert_eq!(figure.rungs, [2]);
        let points: Vec<Vec<(u32, i64)>> = figure
            .lines
            .iter()
            .map(|line| {
                line.points
                    .iter()
                    .map(|&(x, y)| (x as u32, (y * 1000.0).round() as i64))
                    .collect()
            })
            .collect();
        assert_eq!(points, [vec![(2, 30_000), (4, 70_000)], vec![(2, 20_000)]]);
        assert_eq!(
            figure.lines[1].label,
            "comp=tail,pc=none (stopped at epoch 2)"
        );
        assert_eq!(figure.epochs, (2.0, 4.0));
    }
}
