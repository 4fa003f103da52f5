//! The three tidy frames, built from job records, and their one-file Parquet export.
//!
//! The export holds the three frames in one table: a `frame` column says which frame a row
//! belongs to, and every other column is named `<frame>.<column>` (`per_class.recall`), null in
//! the other frames' rows. Prefixes keep same-named columns of different frames apart (an `lr`
//! grid axis in `jobs` against the learning rate in `epochs`), and the file stays one plain
//! table that pandas or Polars can filter.

use std::fs::File;
use std::path::{Path, PathBuf};

use ltsweep_domain::{
    ChosenEpoch, ClassMetrics, EpochMetrics, GroupAccuracy, JobResult, JobState, SweepId,
};
use polars::prelude::{
    BooleanChunked, Column, DataFrame, DataType, NamedFrom, ParquetReader, ParquetWriter,
    PolarsError, SerReader,
};

use crate::AnalysisError;
use crate::records::{JobRecord, SweepRecords};
use crate::schema::{self, FrameKind, SchemaProblem};

/// A sweep's results as three tidy frames (plain column types: text, f64, u32, u64, bool).
///
/// A sweep evaluated with post-hoc logit adjustment (`[eval] posthoc_tau`) has one jobs row per
/// job and tau, with `posthoc_tau` as its last axis column; the per-class and epoch rows are
/// the model's as trained.
#[derive(Clone, Debug, PartialEq)]
pub struct Frames {
    /// One row a job: sweep, job_id, plan, comp_on, pc_on, base (the base loss), sampler,
    /// stage2 (`none`, or a stage-2 job's method and settings: `tau_norm(tau=1)`), one `f64`
    /// column per grid axis, seed, state, attempts, acc_all_final .. acc_few_final (the last epoch's), final_epoch,
    /// acc_all_best .. acc_few_best (the evaluated epoch of the highest All accuracy on the test
    /// set: optimistic), best_epoch, train_seconds, epochs_retrained, worker, error; then, for
    /// jobs with a validation set (null otherwise, and in exports of older versions):
    /// val_all_final .. val_few_final (the validation set's at the last epoch),
    /// acc_all_best_val .. acc_few_best_val (the test set's at the evaluated epoch of the
    /// highest All accuracy on the validation set), val_all_best_val .. val_few_best_val (the
    /// validation set's there) and best_val_epoch; parent_id (a stage-2 job's stage-1 job;
    /// null otherwise); stopped_at and stopped_reading (a job the search stopped: the rung
    /// epoch it stopped at and its search metric there, a fraction; null otherwise),
    /// search_metric (`val_all`, ...) and rung_readings (its metric at each rung it reached,
    /// `epoch:value` pairs by spaces; both null for a grid's job).
    pub jobs: DataFrame,
    /// One row a job, evaluated epoch and class: job_id, plan, seed, epoch, class, train_count,
    /// group, shot, test_total, test_correct, recall, precision, final.
    pub per_class: DataFrame,
    /// One row a job and epoch: job_id, plan, seed, epoch, lr, loss_base, loss_comp, loss_pc,
    /// images_per_second, seconds, acc_all .. acc_few (null where the epoch was not evaluated),
    /// val_all .. val_few (the validation set's; null without one).
    pub epochs: DataFrame,
}

/// The column of a stacked export (versions before one file a frame) that says which frame a
/// row belongs to.
const FRAME_COLUMN: &str = "frame";

impl Frames {
    /// Builds the frames from a sweep's records. Accuracies are null for jobs that have not
    /// succeeded; per-class and epoch rows come from the results of succeeded jobs.
    pub fn from_records(records: &SweepRecords) -> Result<Frames, AnalysisError> {
        let axis_names = axis_names(records)?;
        let mut jobs = JobColumns::default();
        let mut per_class = ClassColumns::default();
        let mut epochs = EpochColumns::default();
        for record in &records.jobs {
            let result = usable_result(record)?;
            let taus = &record.spec.train.posthoc_tau;
            if taus.is_empty() {
                jobs.push(&records.sweep_id, record, result, None);
            }
            // One row per post-hoc tau: the same model, its logits adjusted.
            for &tau in taus {
                jobs.push(&records.sweep_id, record, result, Some(tau));
            }
            if let Some(result) = result {
                per_class.push_result(record, result);
                for metrics in &result.epochs {
                    epochs.push(record, metrics);
                }
            }
        }
        Ok(Frames {
            jobs: jobs.into_frame(&axis_names)?,
            per_class: per_class.into_frame()?,
            epochs: epochs.into_frame()?,
        })
    }

    /// Writes each frame as a Parquet file of its own in `dir` (`jobs.parquet`,
    /// `per_class.parquet`, `epochs.parquet`: one row a job, a job's class at an evaluated
    /// epoch, a job's epoch), from which [`Frames::read_results`] rebuilds them; the files.
    pub fn export(&self, dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
        self.check()?;
        std::fs::create_dir_all(dir).map_err(|source| AnalysisError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut files = Vec::new();
        for (kind, frame) in self.parts() {
            let path = dir.join(kind.file_name());
            write_parquet(&mut frame.clone(), &path)?;
            files.push(path);
        }
        Ok(files)
    }

    /// Reads what [`Frames::export`] wrote into a folder (a report's folder holds the same
    /// three files), or the single file of stacked frames that versions before it exported. A
    /// file without one of the frames' columns is refused with that column's name.
    pub fn read_results(path: &Path) -> Result<Frames, AnalysisError> {
        if path.is_dir() {
            let read = |kind: FrameKind| {
                let file = path.join(kind.file_name());
                let table = read_parquet(&file)?;
                Export {
                    path: &file,
                    table: &table,
                }
                .frame(kind, "", None)
            };
            return Ok(Frames {
                jobs: read(FrameKind::Jobs)?,
                per_class: read(FrameKind::PerClass)?,
                epochs: read(FrameKind::Epochs)?,
            });
        }
        let table = read_parquet(path)?;
        let export = Export {
            path,
            table: &table,
        };
        let which = export.frame_mask()?;
        let stacked = |kind: FrameKind| {
            let prefix = format!("{}.", kind.name());
            let rows: Vec<bool> = which
                .iter()
                .map(|&name| name == Some(kind.name()))
                .collect();
            export.frame(kind, &prefix, Some(&rows))
        };
        Ok(Frames {
            jobs: stacked(FrameKind::Jobs)?,
            per_class: stacked(FrameKind::PerClass)?,
            epochs: stacked(FrameKind::Epochs)?,
        })
    }

    fn parts(&self) -> [(FrameKind, &DataFrame); 3] {
        [
            (FrameKind::Jobs, &self.jobs),
            (FrameKind::PerClass, &self.per_class),
            (FrameKind::Epochs, &self.epochs),
        ]
    }

    /// Checks every frame's columns; returns the jobs frame's axis names.
    pub(crate) fn check(&self) -> Result<Vec<String>, AnalysisError> {
        let mut axes = Vec::new();
        for (kind, frame) in self.parts() {
            let found = schema::check(frame, kind).map_err(|problem| {
                let (column, problem) = match problem {
                    SchemaProblem::Missing { column } => (column, "is missing".to_owned()),
                    SchemaProblem::WrongType {
                        column,
                        expected,
                        found,
                    } => (column, format!("is {found}, expected {expected}")),
                };
                AnalysisError::BadColumn {
                    frame: kind.name(),
                    column,
                    problem,
                }
            })?;
            if kind == FrameKind::Jobs {
                axes = found;
            }
        }
        Ok(axes)
    }
}

/// An export file being read back.
struct Export<'a> {
    path: &'a Path,
    table: &'a DataFrame,
}

impl Export<'_> {
    fn missing(&self, column: String) -> AnalysisError {
        AnalysisError::MissingColumn {
            path: self.path.to_owned(),
            column,
        }
    }

    fn wrong_type(&self, column: String, expected: &DataType, found: &DataType) -> AnalysisError {
        AnalysisError::ColumnType {
            path: self.path.to_owned(),
            column,
            expected: expected.to_string(),
            found: found.to_string(),
        }
    }

    /// The frame each row of a stacked file belongs to.
    fn frame_mask(&self) -> Result<Vec<Option<&str>>, AnalysisError> {
        let column = self
            .table
            .column(FRAME_COLUMN)
            .map_err(|_| self.missing(FRAME_COLUMN.to_owned()))?;
        let names = column.str().map_err(|_| {
            self.wrong_type(FRAME_COLUMN.to_owned(), &DataType::String, column.dtype())
        })?;
        Ok(names.iter().collect())
    }

    /// One frame: its columns (named with `prefix` in a stacked file, whose rows of this frame
    /// `rows` marks) under their current names, with what an earlier version lacked filled in.
    fn frame(
        &self,
        kind: FrameKind,
        prefix: &str,
        rows: Option<&[bool]>,
    ) -> Result<DataFrame, AnalysisError> {
        for spec in kind.fixed_columns().filter(|spec| !spec.optional) {
            let column = format!("{prefix}{}", spec.name);
            let old = schema::former_name(kind, spec.name).map(|old| format!("{prefix}{old}"));
            let found = |name: &str| self.table.column(name).is_ok();
            let added = schema::added_columns(kind).any(|(added, _)| added.name == spec.name);
            if !found(&column) && !old.as_deref().is_some_and(found) && !added {
                return Err(self.missing(column));
            }
        }
        let height = rows.map_or(self.table.height(), |rows| {
            rows.iter().filter(|&&keep| keep).count()
        });
        let mask = rows.map(|rows| BooleanChunked::new("mask".into(), rows));
        let reading = |source| polars_error(format!("reading {}", self.path.display()), source);
        let mut columns = Vec::new();
        for column in self.table.columns() {
            if let Some(name) = column.name().strip_prefix(prefix) {
                let kept = match &mask {
                    Some(mask) => column.filter(mask).map_err(reading)?,
                    None => column.clone(),
                };
                columns.push(kept.with_name(schema::current_name(kind, name).into()));
            }
        }
        // Columns added since files were first exported: an earlier file's rows get their
        // default.
        for (added, default) in schema::added_columns(kind) {
            if !columns.iter().any(|c| c.name().as_str() == added.name) {
                let values: Vec<Option<&str>> = vec![default; height];
                columns.push(Column::new(added.name.into(), values));
            }
        }
        // An older export lacks the columns added since: they read as null.
        for spec in kind.fixed_columns().filter(|spec| spec.optional) {
            if !columns.iter().any(|c| c.name().as_str() == spec.name) {
                columns.push(Column::full_null(
                    spec.name.into(),
                    height,
                    &spec.kind.dtype(),
                ));
            }
        }
        let frame = DataFrame::new(height, columns).map_err(reading)?;
        schema::check(&frame, kind).map_err(|problem| match problem {
            SchemaProblem::Missing { column } => self.missing(format!("{prefix}{column}")),
            SchemaProblem::WrongType {
                column,
                expected,
                found,
            } => self.wrong_type(format!("{prefix}{column}"), &expected, &found),
        })?;
        Ok(frame)
    }
}

/// Reads one Parquet file.
fn read_parquet(path: &Path) -> Result<DataFrame, AnalysisError> {
    let file = File::open(path).map_err(|source| AnalysisError::Io {
        path: path.to_owned(),
        source,
    })?;
    ParquetReader::new(file)
        .finish()
        .map_err(|source| polars_error(format!("reading {}", path.display()), source))
}

pub(crate) fn polars_error(context: impl Into<String>, source: PolarsError) -> AnalysisError {
    AnalysisError::Polars {
        context: context.into(),
        source,
    }
}

/// Writes one frame as a Parquet file.
pub(crate) fn write_parquet(frame: &mut DataFrame, path: &Path) -> Result<(), AnalysisError> {
    let file = File::create(path).map_err(|source| AnalysisError::Io {
        path: path.to_owned(),
        source,
    })?;
    ParquetWriter::new(file)
        .finish(frame)
        .map_err(|source| polars_error(format!("writing {}", path.display()), source))?;
    Ok(())
}

/// The jobs frame's axis column of post-hoc logit adjustment: a job evaluated with several
/// taus has one row per tau.
pub(crate) const POSTHOC_AXIS: &str = "posthoc_tau";

/// The grid axes every job shares, in the first job's order, then `posthoc_tau` when the jobs
/// are evaluated with post-hoc logit adjustment.
fn axis_names(records: &SweepRecords) -> Result<Vec<String>, AnalysisError> {
    let Some(first) = records.jobs.first() else {
        return Ok(Vec::new());
    };
    let names: Vec<String> = first.spec.axes.iter().map(|a| a.name.clone()).collect();
    for record in &records.jobs {
        if record.spec.train.posthoc_tau != first.spec.train.posthoc_tau {
            return Err(AnalysisError::BadRecord {
                job: record.spec.id.to_string(),
                problem: "its post-hoc taus differ from the sweep's".to_owned(),
            });
        }
    }
    for name in &names {
        if FrameKind::Jobs.is_fixed(name) {
            return Err(AnalysisError::BadRecord {
                job: first.spec.id.to_string(),
                problem: format!("grid axis `{name}` has the name of a column of the jobs frame"),
            });
        }
    }
    for record in &records.jobs {
        if !record.spec.axes.iter().map(|a| &a.name).eq(&names) {
            let found: Vec<&str> = record.spec.axes.iter().map(|a| a.name.as_str()).collect();
            return Err(AnalysisError::BadRecord {
                job: record.spec.id.to_string(),
                problem: format!(
                    "its grid axes ({}) differ from the sweep's ({})",
                    found.join(", "),
                    names.join(", ")
                ),
            });
        }
    }
    let mut names = names;
    if !first.spec.train.posthoc_tau.is_empty() {
        names.push(POSTHOC_AXIS.to_owned());
    }
    Ok(names)
}

/// A job's stage-2 method and settings, `tau_norm(tau=1)`; `none` for a stage-1 job.
pub(crate) fn stage2_label(spec: &ltsweep_domain::JobSpec) -> String {
    spec.stage2
        .as_ref()
        .map_or_else(|| NO_STAGE2.to_owned(), |s| s.method.to_string())
}

/// A job's image policy and batch mixing, `policy=autoaugment_cifar10 mix=mixup(1)`;
/// [`STANDARD_AUGMENT`] for the crop and flip alone (Cutout, a numeric setting, is an axis
/// where it varies).
pub(crate) fn augment_label(spec: &ltsweep_domain::JobSpec) -> String {
    let label = spec.train.augmentation.label();
    if label.is_empty() {
        STANDARD_AUGMENT.to_owned()
    } else {
        label
    }
}

/// The `augment` of a job without a policy or mixing.
pub(crate) const STANDARD_AUGMENT: &str = "standard";

/// The `stage2` of a stage-1 job's row.
pub(crate) const NO_STAGE2: &str = "none";

/// The result of a succeeded job; a succeeded job without one is a broken record.
fn usable_result(record: &JobRecord) -> Result<Option<&JobResult>, AnalysisError> {
    match (record.state, &record.result) {
        (JobState::Succeeded, Some(result)) => Ok(Some(result)),
        (JobState::Succeeded, None) => Err(AnalysisError::BadRecord {
            job: record.spec.id.to_string(),
            problem: "succeeded but has no result".to_owned(),
        }),
        // A result left from an earlier attempt of a job that was retried is not its result.
        _ => Ok(None),
    }
}

#[derive(Default)]
struct Accuracies {
    all: Vec<Option<f64>>,
    head: Vec<Option<f64>>,
    tail: Vec<Option<f64>>,
    many: Vec<Option<f64>>,
    medium: Vec<Option<f64>>,
    few: Vec<Option<f64>>,
}

impl Accuracies {
    fn push(&mut self, accuracy: Option<&GroupAccuracy>) {
        let get = |pick: fn(&GroupAccuracy) -> Option<f64>| accuracy.and_then(pick);
        self.all.push(get(|a| a.acc_all));
        self.head.push(get(|a| a.acc_head));
        self.tail.push(get(|a| a.acc_tail));
        self.many.push(get(|a| a.acc_many));
        self.medium.push(get(|a| a.acc_medium));
        self.few.push(get(|a| a.acc_few));
    }

    /// `acc_all{suffix}` .. `acc_few{suffix}`.
    fn into_columns(self, suffix: &str) -> [Column; 6] {
        self.into_columns_named("acc", suffix)
    }

    /// `{prefix}_all{suffix}` .. `{prefix}_few{suffix}`.
    fn into_columns_named(self, prefix: &str, suffix: &str) -> [Column; 6] {
        let name = |group: &str| format!("{prefix}_{group}{suffix}").as_str().into();
        [
            Column::new(name("all"), self.all),
            Column::new(name("head"), self.head),
            Column::new(name("tail"), self.tail),
            Column::new(name("many"), self.many),
            Column::new(name("medium"), self.medium),
            Column::new(name("few"), self.few),
        ]
    }
}

/// The plan's columns every frame repeats, so that each frame can be read on its own.
#[derive(Default)]
struct JobKeys {
    job_id: Vec<String>,
    plan: Vec<String>,
    seed: Vec<u64>,
}

impl JobKeys {
    fn push(&mut self, record: &JobRecord) {
        self.job_id.push(record.spec.id.to_string());
        self.plan.push(record.spec.plan.to_string());
        self.seed.push(record.spec.seed);
    }

    fn into_columns(self) -> [Column; 3] {
        [
            Column::new("job_id".into(), self.job_id),
            Column::new("plan".into(), self.plan),
            Column::new("seed".into(), self.seed),
        ]
    }
}

/// A job's rung readings as one text value, `epoch:value` pairs by spaces (`2:0.41 6:0.5`),
/// so the jobs frame keeps plain column types.
fn format_readings(readings: &[(u32, f64)]) -> String {
    readings
        .iter()
        .map(|(epoch, value)| format!("{epoch}:{value}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The readings [`format_readings`] wrote; `None` for text it cannot have written.
pub(crate) fn parse_readings(text: &str) -> Option<Vec<(u32, f64)>> {
    text.split_whitespace()
        .map(|pair| {
            let (epoch, value) = pair.split_once(':')?;
            Some((epoch.parse().ok()?, value.parse().ok()?))
        })
        .collect()
}

#[derive(Default)]
struct JobColumns {
    sweep: Vec<String>,
    keys: JobKeys,
    comp_on: Vec<String>,
    pc_on: Vec<String>,
    base: Vec<String>,
    sampler: Vec<String>,
    stage2: Vec<String>,
    augment: Vec<String>,
    axes: Vec<Vec<f64>>,
    state: Vec<String>,
    attempts: Vec<u32>,
    accuracy: Accuracies,
    final_epoch: Vec<Option<u32>>,
    best: Accuracies,
    best_epoch: Vec<Option<u32>>,
    val: Accuracies,
    best_val: Accuracies,
    best_val_val: Accuracies,
    best_val_epoch: Vec<Option<u32>>,
    train_seconds: Vec<Option<f64>>,
    epochs_retrained: Vec<Option<u32>>,
    worker: Vec<Option<String>>,
    error: Vec<Option<String>>,
    parent_id: Vec<Option<String>>,
    stopped_at: Vec<Option<u32>>,
    stopped_reading: Vec<Option<f64>>,
    search_metric: Vec<Option<String>>,
    rung_readings: Vec<Option<String>>,
}

impl JobColumns {
    /// A job's row; with `tau`, its row at that post-hoc logit adjustment, whose final
    /// accuracies are the adjusted model's and whose best-epoch ones are null unless tau is 0
    /// (the epochs were evaluated unadjusted).
    fn push(
        &mut self,
        sweep: &SweepId,
        record: &JobRecord,
        result: Option<&JobResult>,
        tau: Option<f64>,
    ) {
        let spec = &record.spec;
        self.sweep.push(sweep.to_string());
        self.keys.push(record);
        self.comp_on.push(spec.plan.comp.to_string());
        self.pc_on.push(spec.plan.pc.to_string());
        self.base.push(spec.losses.base.kind().to_string());
        self.sampler.push(spec.train.sampler.to_string());
        self.stage2.push(stage2_label(spec));
        self.augment.push(augment_label(spec));
        self.parent_id
            .push(spec.stage2.as_ref().map(|s| s.parent.to_string()));
        let mut axes: Vec<f64> = spec.axes.iter().map(|axis| axis.value).collect();
        axes.extend(tau);
        self.axes.push(axes);
        self.state.push(record.state.to_string());
        self.attempts.push(record.attempts);
        let (accuracy, val) = match tau {
            None => (
                result.map(|r| &r.accuracy),
                result.and_then(|r| r.val_accuracy.as_ref()),
            ),
            Some(tau) => {
                let adjusted = result
                    .and_then(|r| r.posthoc.iter().find(|p| p.tau.to_bits() == tau.to_bits()));
                (
                    adjusted.map(|p| &p.accuracy),
                    adjusted.and_then(|p| p.val_accuracy.as_ref()),
                )
            }
        };
        self.accuracy.push(accuracy);
        self.val.push(val);
        self.final_epoch
            .push(result.map(|r| r.epochs.last().map_or(spec.train.epochs, |last| last.epoch)));
        // The epochs were evaluated unadjusted: a row adjusted post hoc has no best epoch.
        let unadjusted = tau.is_none_or(|t| t == 0.0);
        let best = result
            .and_then(JobResult::best_test_epoch)
            .filter(|_| unadjusted);
        // A stage-2 job is evaluated once, at its end (a method that only evaluates has no
        // epochs): its best is its final, on either set.
        let last_epoch = result.map(|r| r.epochs.last().map_or(0, |e| e.epoch));
        let best = match (&spec.stage2, result) {
            (Some(_), Some(r)) if best.is_none() => Some((last_epoch.unwrap_or(0), &r.accuracy)),
            _ => best,
        };
        self.best.push(best.map(|(_, accuracy)| accuracy));
        self.best_epoch.push(best.map(|(epoch, _)| epoch));
        let best_val = result
            .and_then(JobResult::best_val_epoch)
            .filter(|_| unadjusted);
        let best_val = match (&spec.stage2, result) {
            (Some(_), Some(r)) if best_val.is_none() => {
                r.val_accuracy.as_ref().map(|val| ChosenEpoch {
                    epoch: last_epoch.unwrap_or(0),
                    test: &r.accuracy,
                    val,
                })
            }
            _ => best_val,
        };
        self.best_val.push(best_val.map(|chosen| chosen.test));
        self.best_val_val.push(best_val.map(|chosen| chosen.val));
        self.best_val_epoch
            .push(best_val.map(|chosen| chosen.epoch));
        self.train_seconds.push(result.map(|r| r.train_seconds));
        self.epochs_retrained
            .push(result.map(|r| r.epochs_retrained));
        self.worker
            .push(record.worker.as_ref().map(ToString::to_string));
        self.error.push(record.error.clone());
        // A job the search stopped and nothing sent on since: a retried one that succeeded
        // is complete.
        let stopped = record
            .search
            .as_ref()
            .and_then(|s| s.stopped_at.map(|at| (at, s)))
            .filter(|_| record.state == JobState::Cancelled);
        self.stopped_at.push(stopped.map(|(at, _)| at));
        self.stopped_reading.push(stopped.and_then(|(at, s)| {
            s.readings
                .iter()
                .find(|(epoch, _)| *epoch == at)
                .map(|(_, value)| *value)
        }));
        let search = record.search.as_ref();
        self.search_metric
            .push(search.and_then(|s| s.metric).map(|m| m.to_string()));
        self.rung_readings
            .push(search.map(|s| format_readings(&s.readings)));
    }

    fn into_frame(self, axis_names: &[String]) -> Result<DataFrame, AnalysisError> {
        let height = self.sweep.len();
        let [job_id, plan, seed] = self.keys.into_columns();
        let mut columns = vec![
            Column::new("sweep".into(), self.sweep),
            job_id,
            plan,
            Column::new("comp_on".into(), self.comp_on),
            Column::new("pc_on".into(), self.pc_on),
            Column::new("base".into(), self.base),
            Column::new("sampler".into(), self.sampler),
            Column::new("stage2".into(), self.stage2),
            Column::new("augment".into(), self.augment),
        ];
        for (i, name) in axis_names.iter().enumerate() {
            let values: Vec<f64> = self.axes.iter().map(|point| point[i]).collect();
            columns.push(Column::new(name.as_str().into(), values));
        }
        columns.extend([
            seed,
            Column::new("state".into(), self.state),
            Column::new("attempts".into(), self.attempts),
        ]);
        columns.extend(self.accuracy.into_columns("_final"));
        columns.push(Column::new("final_epoch".into(), self.final_epoch));
        columns.extend(self.best.into_columns("_best"));
        columns.push(Column::new("best_epoch".into(), self.best_epoch));
        columns.extend([
            Column::new("train_seconds".into(), self.train_seconds),
            Column::new("epochs_retrained".into(), self.epochs_retrained),
            Column::new("worker".into(), self.worker),
            Column::new("error".into(), self.error),
            Column::new("parent_id".into(), self.parent_id),
        ]);
        columns.extend(self.val.into_columns_named("val", "_final"));
        columns.extend(self.best_val.into_columns("_best_val"));
        columns.extend(self.best_val_val.into_columns_named("val", "_best_val"));
        columns.push(Column::new("best_val_epoch".into(), self.best_val_epoch));
        columns.extend([
            Column::new("stopped_at".into(), self.stopped_at),
            Column::new("stopped_reading".into(), self.stopped_reading),
            Column::new("search_metric".into(), self.search_metric),
            Column::new("rung_readings".into(), self.rung_readings),
        ]);
        DataFrame::new(height, columns)
            .map_err(|source| polars_error("building the jobs frame", source))
    }
}

#[derive(Default)]
struct ClassColumns {
    keys: JobKeys,
    epoch: Vec<u32>,
    class: Vec<u32>,
    train_count: Vec<u32>,
    group: Vec<String>,
    shot: Vec<String>,
    test_total: Vec<u32>,
    test_correct: Vec<u32>,
    recall: Vec<f64>,
    precision: Vec<f64>,
    is_final: Vec<bool>,
}

impl ClassColumns {
    /// Rows of every evaluation epoch, then the final epoch's. The result's own per-class
    /// metrics are the final epoch's authority, so the final epoch's evaluation is taken from
    /// the epoch list only when the result has none.
    fn push_result(&mut self, record: &JobRecord, result: &JobResult) {
        let final_epoch = result
            .epochs
            .last()
            .map_or(record.spec.train.epochs, |last| last.epoch);
        for metrics in &result.epochs {
            if metrics.epoch != final_epoch {
                self.push_epoch(record, metrics.epoch, &metrics.per_class, false);
            }
        }
        let final_classes = if result.per_class.is_empty() {
            result
                .epochs
                .iter()
                .rev()
                .find(|metrics| metrics.epoch == final_epoch)
                .map_or(&[][..], |metrics| metrics.per_class.as_slice())
        } else {
            result.per_class.as_slice()
        };
        self.push_epoch(record, final_epoch, final_classes, true);
    }

    fn push_epoch(&mut self, record: &JobRecord, epoch: u32, classes: &[ClassMetrics], last: bool) {
        for metrics in classes {
            self.keys.push(record);
            self.epoch.push(epoch);
            self.class.push(metrics.class);
            self.train_count.push(metrics.train_count);
            self.group.push(metrics.group.as_str().to_owned());
            self.shot.push(metrics.shot.as_str().to_owned());
            self.test_total.push(metrics.test_total);
            self.test_correct.push(metrics.test_correct);
            self.recall.push(metrics.recall);
            self.precision.push(metrics.precision);
            self.is_final.push(last);
        }
    }

    fn into_frame(self) -> Result<DataFrame, AnalysisError> {
        let height = self.epoch.len();
        let mut columns = Vec::from(self.keys.into_columns());
        columns.extend([
            Column::new("epoch".into(), self.epoch),
            Column::new("class".into(), self.class),
            Column::new("train_count".into(), self.train_count),
            Column::new("group".into(), self.group),
            Column::new("shot".into(), self.shot),
            Column::new("test_total".into(), self.test_total),
            Column::new("test_correct".into(), self.test_correct),
            Column::new("recall".into(), self.recall),
            Column::new("precision".into(), self.precision),
            Column::new("final".into(), self.is_final),
        ]);
        DataFrame::new(height, columns)
            .map_err(|source| polars_error("building the per_class frame", source))
    }
}

#[derive(Default)]
struct EpochColumns {
    keys: JobKeys,
    epoch: Vec<u32>,
    lr: Vec<f64>,
    loss_base: Vec<f64>,
    loss_comp: Vec<f64>,
    loss_pc: Vec<f64>,
    images_per_second: Vec<f64>,
    seconds: Vec<f64>,
    accuracy: Accuracies,
    val: Accuracies,
}

impl EpochColumns {
    fn push(&mut self, record: &JobRecord, metrics: &EpochMetrics) {
        self.keys.push(record);
        self.epoch.push(metrics.epoch);
        self.lr.push(metrics.lr);
        self.loss_base.push(metrics.loss_base);
        self.loss_comp.push(metrics.loss_comp);
        self.loss_pc.push(metrics.loss_pc);
        self.images_per_second.push(metrics.images_per_second);
        self.seconds.push(metrics.seconds);
        self.accuracy.push(metrics.accuracy.as_ref());
        self.val.push(metrics.val_accuracy.as_ref());
    }

    fn into_frame(self) -> Result<DataFrame, AnalysisError> {
        let height = self.epoch.len();
        let mut columns = Vec::from(self.keys.into_columns());
        columns.extend([
            Column::new("epoch".into(), self.epoch),
            Column::new("lr".into(), self.lr),
            Column::new("loss_base".into(), self.loss_base),
            Column::new("loss_comp".into(), self.loss_comp),
            Column::new("loss_pc".into(), self.loss_pc),
            Column::new("images_per_second".into(), self.images_per_second),
            Column::new("seconds".into(), self.seconds),
        ]);
        columns.extend(self.accuracy.into_columns(""));
        columns.extend(self.val.into_columns_named("val", ""));
        DataFrame::new(height, columns)
            .map_err(|source| polars_error("building the epochs frame", source))
    }
}
