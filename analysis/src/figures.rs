//! Figure 1 (per-class accuracy early and late in training, CE alone against the best plan)
//! and the accuracy curves, each drawn once for a PNG and once for an SVG.
//!
//! Text is drawn with DejaVu Sans compiled into the crate (plotters' `ab_glyph` backend), so the
//! PNGs need no fontconfig or freetype on the machine that makes the report.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

mod search;

pub(crate) use search::SearchFigure;

use crate::AnalysisError;
use crate::rows::Tidy;
use crate::stats;
use crate::summary::{self, ClassKey, Metric, PlanRow};

/// DejaVu Sans; its licence is `assets/DejaVuSans-LICENSE.txt`.
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// The family plotters asks for by default, so every label of every chart uses the font.
const FAMILY: &str = "sans-serif";

const CE_COLOR: RGBColor = RGBColor(31, 119, 180);
const BEST_COLOR: RGBColor = RGBColor(214, 39, 40);
const TAIL_SHADE: RGBColor = RGBColor(200, 200, 200);
/// Matplotlib's "tab10": distinct, and readable on white.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn line_color(index: usize) -> RGBColor {
    match PALETTE.get(index) {
        Some(color) => *color,
        None => {
            let (r, g, b) = Palette99::pick(index).rgb();
            RGBColor(r, g, b)
        }
    }
}

fn figure_error(path: &Path, error: impl Display) -> AnalysisError {
    AnalysisError::Figure {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

fn ensure_font(path: &Path) -> Result<(), AnalysisError> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let registered =
        *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok());
    if registered {
        Ok(())
    } else {
        Err(figure_error(
            path,
            "the embedded DejaVu Sans font does not load",
        ))
    }
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure that can draw itself on any plotters backend.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// Draws `figure` into `<stem>.png` and `<stem>.svg`; returns both paths.
fn save(figure: &impl Figure, out_dir: &Path, stem: &str) -> Result<Vec<PathBuf>, AnalysisError> {
    let png = out_dir.join(format!("{stem}.png"));
    let svg = out_dir.join(format!("{stem}.svg"));
    ensure_font(&png)?;
    {
        let root = BitMapBackend::new(&png, figure.size()).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| figure_error(&png, e))?;
    }
    let text = svg_text(figure, &svg)?;
    std::fs::write(&svg, text).map_err(|source| AnalysisError::Io {
        path: svg.clone(),
        source,
    })?;
    Ok(vec![png, svg])
}

/// Draws `figure` as an SVG document in memory; `name` names it in errors.
fn svg_text(figure: &impl Figure, name: &Path) -> Result<String, AnalysisError> {
    ensure_font(name)?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, figure.size()).into_drawing_area();
        figure
            .draw(&root)
            .and_then(|()| root.present())
            .map_err(|e| figure_error(name, e))?;
    }
    Ok(text)
}

fn title_font(size: u32) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// A figure with nothing to show says so instead of drawing empty axes.
fn draw_message<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    message: &str,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let area = root.margin(12, 0, 0, 0).titled(title, title_font(28))?;
    let (width, height) = area.dim_in_pixel();
    let style = title_font(20).pos(Pos::new(HPos::Center, VPos::Center));
    area.draw_text(message, &style, (width as i32 / 2, height as i32 / 2))
}

/// One line of a panel.
struct Line {
    label: String,
    color: RGBColor,
    /// Thicker for the line a reader should find first.
    width: u32,
    points: Vec<(f64, f64)>,
}

/// The mesh of a chart of a percentage against epochs: whole epochs on x, at most ten labels.
fn draw_epoch_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    first: f64,
    last: f64,
    y_desc: &str,
) -> DrawResult<DB> {
    chart
        .configure_mesh()
        .max_light_lines(1)
        .x_labels(((last - first) as usize + 1).min(10))
        .x_label_formatter(&|x| {
            // Epochs are whole numbers; a short run would otherwise repeat labels.
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("epoch")
        .y_desc(y_desc)
        .axis_desc_style(title_font(18))
        .label_style(title_font(15))
        .draw()
}

fn draw_lines<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    lines: &[Line],
) -> DrawResult<DB> {
    for line in lines {
        let style = line.color.stroke_width(line.width);
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), style))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(
            line.points
                .iter()
                .map(|&point| Circle::new(point, line.width + 1, line.color.filled())),
        )?;
    }
    Ok(())
}

/// A legend of `lines` under `title`, in its own area beside the panels.
fn draw_legend<DB: DrawingBackend>(
    legend: DrawingArea<DB, Shift>,
    title: &str,
    lines: &[Line],
) -> DrawResult<DB> {
    let legend = legend.margin(70, 10, 10, 10);
    legend.draw_text(title, &title_font(18), (0, 0))?;
    for (i, line) in lines.iter().enumerate() {
        let y = 36 + 28 * i as i32;
        legend.draw(&PathElement::new(
            vec![(0, y), (34, y)],
            line.color.stroke_width(line.width + 1),
        ))?;
        legend.draw_text(
            &line.label,
            &title_font(16).pos(Pos::new(HPos::Left, VPos::Center)),
            (44, y),
        )?;
    }
    Ok(())
}

/// Figure 1: per-class accuracy at the first evaluated epoch and at the final one.
pub(crate) struct Figure1 {
    title: String,
    /// Classes in x order: most training images first.
    classes: Vec<ClassKey>,
    /// Index of the first Tail class in `classes`, if any.
    tail_start: Option<usize>,
    panels: Vec<(String, Vec<Line>)>,
}

impl Figure1 {
    /// Also returns notes about what the figure could not show.
    pub(crate) fn build(tidy: &Tidy, rows: &[PlanRow]) -> (Figure1, Vec<String>) {
        let mut notes = Vec::new();
        let empty = |title: &str| Figure1 {
            title: title.to_owned(),
            classes: Vec::new(),
            tail_start: None,
            panels: Vec::new(),
        };
        let Some(best) = rows.iter().find(|row| row.best) else {
            notes.push("figure 1 is empty: no job has succeeded yet".to_owned());
            return (empty("Per-class test accuracy"), notes);
        };
        let ce = rows
            .iter()
            .find(|row| row.is_ce_only() && row.same_axes(best));
        let mut compared: Vec<(&PlanRow, String, RGBColor)> = Vec::new();
        match ce {
            Some(ce) if !best.is_ce_only() => {
                compared.push((ce, format!("CE alone ({})", ce.label()), CE_COLOR));
                compared.push((best, format!("best: {}", best.label()), BEST_COLOR));
            }
            Some(ce) => {
                compared.push((
                    ce,
                    format!("CE alone, the best plan ({})", ce.label()),
                    CE_COLOR,
                ));
                // The figure is a comparison: with CE on top, it sets CE against its closest
                // challenger rather than drawing one line.
                let runner_up = rows
                    .iter()
                    .filter(|row| !row.is_ce_only() && row.same_axes(ce))
                    .filter_map(|row| Some((row, row.metric(Metric::All).mean?)))
                    .max_by(|(_, a), (_, b)| a.total_cmp(b));
                if let Some((row, _)) = runner_up {
                    compared.push((row, format!("runner-up: {}", row.label()), BEST_COLOR));
                }
            }
            None => {
                notes.push(
                    "figure 1 shows the best plan alone: the sweep has no CE-only plan with its \
                     axis values"
                        .to_owned(),
                );
                compared.push((best, format!("best: {}", best.label()), BEST_COLOR));
            }
        }
        let title = match compared.as_slice() {
            [_, (other, ..)] => format!("Per-class test accuracy: CE alone vs {}", other.label()),
            _ => format!("Per-class test accuracy: {}", best.label()),
        };

        let finals: Vec<BTreeMap<ClassKey, f64>> = compared
            .iter()
            .map(|(row, ..)| summary::class_recalls(tidy, row, None))
            .collect();
        let mut classes: Vec<ClassKey> = finals.iter().flat_map(|f| f.keys().copied()).collect();
        classes.sort_by(|a, b| b.train_count.cmp(&a.train_count).then(a.cmp(b)));
        classes.dedup();
        if classes.is_empty() {
            notes.push(
                "figure 1 is empty: the best plan's jobs have no per-class metrics".to_owned(),
            );
            return (empty(&title), notes);
        }
        let tail_start = classes.iter().position(|class| class.group == "tail");

        let drawn = |job_id: &str| compared.iter().any(|(row, ..)| row.has_job(job_id));
        let final_epoch = tidy
            .classes
            .iter()
            .filter(|c| c.is_final && drawn(&c.job_id))
            .map(|c| c.epoch)
            .max();
        // Early means once the compared losses differ: until a plan's Comp. or PC loss is on
        // (the CE-only pre-training epochs), every plan of a seed trains the same network.
        let losses_differ_from = tidy
            .epochs
            .iter()
            .filter(|e| e.auxiliary_on && drawn(&e.job_id))
            .map(|e| e.epoch)
            .min();
        let evaluated: BTreeSet<u32> = tidy
            .classes
            .iter()
            .filter(|c| !c.is_final && drawn(&c.job_id))
            .map(|c| c.epoch)
            .collect();
        let early_epoch = losses_differ_from
            .and_then(|from| evaluated.range(from..).next())
            .or(evaluated.first())
            .copied();

        let lines = |recalls: &[BTreeMap<ClassKey, f64>]| -> Vec<Line> {
            compared
                .iter()
                .zip(recalls)
                .map(|((_, label, color), recall)| Line {
                    label: label.clone(),
                    color: *color,
                    width: 2,
                    points: classes
                        .iter()
                        .enumerate()
                        .filter_map(|(x, class)| Some((x as f64, recall.get(class)? * 100.0)))
                        .collect(),
                })
                .collect()
        };
        let late_title = match final_epoch {
            Some(epoch) => format!("Late: epoch {epoch} (final)"),
            None => "Late: final epoch".to_owned(),
        };
        let mut panels = Vec::new();
        match early_epoch {
            Some(epoch) => {
                let early: Vec<_> = compared
                    .iter()
                    .map(|(row, ..)| summary::class_recalls(tidy, row, Some(epoch)))
                    .collect();
                panels.push((format!("Early: epoch {epoch}"), lines(&early)));
            }
            None => notes.push(
                "figure 1 has no early panel: only the final epoch was evaluated (set \
                 train.eval_epochs)"
                    .to_owned(),
            ),
        }
        panels.push((late_title, lines(&finals)));
        (
            Figure1 {
                title,
                classes,
                tail_start,
                panels,
            },
            notes,
        )
    }

    pub(crate) fn save(&self, out_dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
        save(self, out_dir, "figure1")
    }

    pub(crate) fn svg(&self) -> Result<String, AnalysisError> {
        svg_text(self, Path::new("figure1.svg"))
    }
}

impl Figure for Figure1 {
    fn size(&self) -> (u32, u32) {
        (1600, 680)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        if self.panels.is_empty() {
            return draw_message(root, &self.title, "no per-class metrics to show yet");
        }
        root.fill(&WHITE)?;
        let area = root
            .margin(12, 0, 0, 0)
            .titled(&self.title, title_font(28))?;
        let panels = area.split_evenly((1, self.panels.len()));
        let last = self.classes.len() as f64 - 0.5;
        let counts: Vec<u32> = self.classes.iter().map(|c| c.train_count).collect();
        let tick_label = |x: &f64| -> String {
            // Only whole positions are classes; plotters may ask for labels in between.
            let rank = x.round();
            if (x - rank).abs() > 1e-6 || rank < 0.0 {
                return String::new();
            }
            counts
                .get(rank as usize)
                .map_or(String::new(), u32::to_string)
        };
        for (panel, (title, lines)) in panels.iter().zip(&self.panels) {
            let mut chart = ChartBuilder::on(panel)
                .caption(title, title_font(22))
                .margin(16)
                .x_label_area_size(60)
                .y_label_area_size(70)
                .build_cartesian_2d(-0.5..last, 0.0..100.0)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .max_light_lines(1)
                .x_labels(self.classes.len().min(12))
                .x_label_formatter(&tick_label)
                .y_label_formatter(&|y| format!("{y:.0}"))
                .x_desc("classes, most training images first (tick: training images)")
                .y_desc("test accuracy of the class [%]")
                .axis_desc_style(title_font(18))
                .label_style(title_font(15))
                .draw()?;
            if let Some(start) = self.tail_start {
                let boundary = start as f64 - 0.5;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(boundary, 0.0), (last, 100.0)],
                    TAIL_SHADE.mix(0.35).filled(),
                )))?;
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(boundary, 0.0), (boundary, 100.0)],
                    BLACK.stroke_width(2),
                )))?;
                let label = title_font(18).pos(Pos::new(HPos::Center, VPos::Top));
                chart.draw_series([
                    Text::new("Head", ((boundary - 0.5) / 2.0, 98.0), label.clone()),
                    Text::new("Tail", ((boundary + last) / 2.0, 98.0), label.clone()),
                ])?;
            }
            draw_lines(&mut chart, lines)?;
            // Head classes score high and Tail classes low, so the lower left stays clear.
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .margin(12)
                .label_font(title_font(16))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()?;
        }
        Ok(())
    }
}

/// Test accuracy (All, Head, Tail) per evaluated epoch, one line per plan row.
pub(crate) struct Curves {
    panels: Vec<(Metric, Vec<Line>)>,
    /// Epochs covered by any line.
    epochs: Option<(f64, f64)>,
}

impl Curves {
    pub(crate) fn build(tidy: &Tidy, rows: &[PlanRow]) -> Curves {
        let mut epochs: Option<(f64, f64)> = None;
        let panels = Metric::TABLE1
            .into_iter()
            .map(|metric| {
                let lines = rows
                    .iter()
                    .enumerate()
                    .map(|(i, row)| {
                        let mut by_epoch: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
                        for epoch in tidy.epochs.iter().filter(|e| row.has_job(&e.job_id)) {
                            if let Some(value) = metric.of(&epoch.accuracy) {
                                by_epoch.entry(epoch.epoch).or_default().push(value * 100.0);
                            }
                        }
                        let points: Vec<(f64, f64)> = by_epoch
                            .into_iter()
                            .filter_map(|(epoch, values)| {
                                Some((f64::from(epoch), stats::mean(&values)?))
                            })
                            .collect();
                        for &(epoch, _) in &points {
                            epochs = Some(epochs.map_or((epoch, epoch), |(low, high)| {
                                (low.min(epoch), high.max(epoch))
                            }));
                        }
                        Line {
                            label: if row.best {
                                format!("{} (best)", row.label())
                            } else {
                                row.label()
                            },
                            color: if row.is_ce_only() {
                                BLACK
                            } else {
                                line_color(i)
                            },
                            width: if row.best || row.is_ce_only() { 3 } else { 2 },
                            points,
                        }
                    })
                    .collect();
                (metric, lines)
            })
            .collect();
        Curves { panels, epochs }
    }

    pub(crate) fn save(&self, out_dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
        save(self, out_dir, "curves")
    }

    pub(crate) fn svg(&self) -> Result<String, AnalysisError> {
        svg_text(self, Path::new("curves.svg"))
    }

    fn legend_width(&self) -> u32 {
        let longest = self.panels.first().map_or(0, |(_, lines)| {
            lines
                .iter()
                .map(|l| l.label.chars().count())
                .max()
                .unwrap_or(0)
        });
        (longest as u32 * 10 + 90).max(260)
    }
}

impl Figure for Curves {
    fn size(&self) -> (u32, u32) {
        (1800 + self.legend_width(), 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        const TITLE: &str = "Test accuracy per evaluated epoch (mean over seeds)";
        let Some((first, last)) = self.epochs else {
            return draw_message(root, TITLE, "no evaluated epochs to show yet");
        };
        // A single evaluated epoch still gets an x range around it.
        let (first, last) = if first < last {
            (first, last)
        } else {
            (first - 1.0, last + 1.0)
        };
        root.fill(&WHITE)?;
        let area = root.margin(12, 0, 0, 0).titled(TITLE, title_font(28))?;
        let (charts, legend) = area.split_horizontally(1800);
        for (panel, (metric, lines)) in charts.split_evenly((1, 3)).iter().zip(&self.panels) {
            // Each panel spans its own values: differences between plans are a few points,
            // which a shared 0 to 100 axis would flatten.
            let (low, high) = lines
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
            let mut chart = ChartBuilder::on(panel)
                .caption(format!("{} classes", metric.label()), title_font(22))
                .margin(16)
                .x_label_area_size(55)
                .y_label_area_size(70)
                .build_cartesian_2d(first..last, y_range)?;
            draw_epoch_mesh(&mut chart, first, last, "top-1 accuracy [%]")?;
            draw_lines(&mut chart, lines)?;
        }
        // One legend for the three panels, beside them, so that no line hides behind it.
        let entries = self
            .panels
            .first()
            .map_or(&[][..], |(_, lines)| lines.as_slice());
        draw_legend(legend, "plan", entries)
    }
}
