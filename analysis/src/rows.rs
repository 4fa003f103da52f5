//! The frames read back into typed rows: the report's computations run on these, so a report
//! made from an export is the same as one made from records.

use ltsweep_domain::{
    BaseKind, ClassGroup, GroupAccuracy, JobState, LossPlan, Sampler, SearchMetric, Shot,
};
use polars::prelude::{Column, DataFrame};

use crate::AnalysisError;
use crate::frames::{Frames, POSTHOC_AXIS, parse_readings};
use crate::schema::FrameKind;
use crate::stage2::MethodLabel;

pub(crate) struct JobRow {
    pub(crate) job_id: String,
    pub(crate) plan: LossPlan,
    pub(crate) base: BaseKind,
    pub(crate) sampler: Sampler,
    /// `none`, or a stage-2 job's method and settings.
    pub(crate) stage2: MethodLabel,
    /// `standard`, or the job's policy and mixing (`policy=randaugment(2,9) mix=mixup(1)`).
    pub(crate) augment: String,
    /// Values of the grid axes, in the order of [`Tidy::axis_names`].
    pub(crate) axes: Vec<f64>,
    pub(crate) seed: u64,
    pub(crate) state: JobState,
    /// At the final epoch.
    pub(crate) accuracy: GroupAccuracy,
    /// At the evaluated epoch of the highest All accuracy on the test set.
    pub(crate) best: GroupAccuracy,
    /// The validation set's at the final epoch; empty without a validation set.
    pub(crate) val: GroupAccuracy,
    /// The test set's at the evaluated epoch of the highest All accuracy on the validation set.
    pub(crate) best_val: GroupAccuracy,
    /// The validation set's at that epoch.
    pub(crate) best_val_val: GroupAccuracy,
    /// A row of the model with its logits adjusted post hoc (tau not 0): the job's per-class
    /// and epoch rows are not this row's.
    pub(crate) adjusted: bool,
    /// A job the search stopped: the rung epoch it stopped at.
    pub(crate) stopped_at: Option<u32>,
    /// Its search metric at that rung, a fraction.
    pub(crate) stopped_reading: Option<f64>,
    /// A searched job's search metric and its readings, `(rung epoch, fraction)`.
    pub(crate) search_metric: Option<SearchMetric>,
    pub(crate) rung_readings: Vec<(u32, f64)>,
}

pub(crate) struct ClassRow {
    pub(crate) job_id: String,
    pub(crate) epoch: u32,
    pub(crate) class: u32,
    pub(crate) train_count: u32,
    pub(crate) group: ClassGroup,
    pub(crate) shot: Shot,
    pub(crate) recall: f64,
    pub(crate) precision: f64,
    pub(crate) is_final: bool,
}

pub(crate) struct EpochRow {
    pub(crate) job_id: String,
    pub(crate) epoch: u32,
    pub(crate) lr: f64,
    /// Cross entropy (or the base loss in its place), Complement Entropy, PC.
    pub(crate) losses: [f64; 3],
    /// Seconds the epoch took.
    pub(crate) seconds: f64,
    pub(crate) accuracy: GroupAccuracy,
    /// The validation set's; empty without one or where the epoch was not evaluated.
    pub(crate) val: GroupAccuracy,
    /// Whether Complement Entropy or PC loss trained in this epoch (not in the CE-only
    /// pre-training epochs, nor ever under CE alone).
    pub(crate) auxiliary_on: bool,
}

/// The three frames as rows.
pub(crate) struct Tidy {
    pub(crate) axis_names: Vec<String>,
    pub(crate) jobs: Vec<JobRow>,
    pub(crate) classes: Vec<ClassRow>,
    pub(crate) epochs: Vec<EpochRow>,
}

impl Tidy {
    pub(crate) fn read(frames: &Frames) -> Result<Tidy, AnalysisError> {
        let axis_names = frames.check()?;
        Ok(Tidy {
            jobs: read_jobs(&frames.jobs, &axis_names)?,
            classes: read_classes(&frames.per_class)?,
            epochs: read_epochs(&frames.epochs)?,
            axis_names,
        })
    }
}

/// Typed access to one frame's columns, with errors that name the frame and column.
struct Reader<'a> {
    frame: &'a DataFrame,
    kind: FrameKind,
}

impl<'a> Reader<'a> {
    fn bad(&self, column: &str, problem: String) -> AnalysisError {
        AnalysisError::BadColumn {
            frame: self.kind.name(),
            column: column.to_owned(),
            problem,
        }
    }

    fn column(&self, name: &str) -> Result<&'a Column, AnalysisError> {
        self.frame
            .column(name)
            .map_err(|_| self.bad(name, "is missing".to_owned()))
    }

    fn wrong_type(&self, name: &str) -> AnalysisError {
        let found = self
            .frame
            .column(name)
            .map(|c| c.dtype().to_string())
            .unwrap_or_default();
        self.bad(name, format!("has the wrong type ({found})"))
    }

    fn texts(&self, name: &str) -> Result<Vec<Option<&'a str>>, AnalysisError> {
        let column = self.column(name)?;
        let values = column.str().map_err(|_| self.wrong_type(name))?;
        Ok(values.iter().collect())
    }

    fn reals(&self, name: &str) -> Result<Vec<Option<f64>>, AnalysisError> {
        let column = self.column(name)?;
        let values = column.f64().map_err(|_| self.wrong_type(name))?;
        Ok(values.iter().collect())
    }

    fn counts(&self, name: &str) -> Result<Vec<Option<u32>>, AnalysisError> {
        let column = self.column(name)?;
        let values = column.u32().map_err(|_| self.wrong_type(name))?;
        Ok(values.iter().collect())
    }

    fn flags(&self, name: &str) -> Result<Vec<Option<bool>>, AnalysisError> {
        let column = self.column(name)?;
        let values = column.bool().map_err(|_| self.wrong_type(name))?;
        Ok(values.iter().collect())
    }

    fn seeds(&self, name: &str) -> Result<Vec<Option<u64>>, AnalysisError> {
        let column = self.column(name)?;
        let values = column.u64().map_err(|_| self.wrong_type(name))?;
        Ok(values.iter().collect())
    }

    /// A value the report cannot do without.
    fn required<T>(&self, name: &str, row: usize, value: Option<T>) -> Result<T, AnalysisError> {
        value.ok_or_else(|| self.bad(name, format!("is null in row {row}")))
    }

    /// A text value that must parse into one of a few known words.
    fn parsed<T>(
        &self,
        name: &str,
        row: usize,
        value: Option<&str>,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<T, AnalysisError> {
        let text = self.required(name, row, value)?;
        parse(text).ok_or_else(|| self.bad(name, format!("has `{text}` in row {row}")))
    }

    /// The columns `acc_all{suffix}` .. `acc_few{suffix}`.
    fn accuracies(&self, suffix: &str) -> Result<Vec<GroupAccuracy>, AnalysisError> {
        self.accuracies_named("acc", suffix)
    }

    /// The columns `{prefix}_all{suffix}` .. `{prefix}_few{suffix}`.
    fn accuracies_named(
        &self,
        prefix: &str,
        suffix: &str,
    ) -> Result<Vec<GroupAccuracy>, AnalysisError> {
        let get = |group: &str| self.reals(&format!("{prefix}_{group}{suffix}"));
        let all = get("all")?;
        let head = get("head")?;
        let tail = get("tail")?;
        let many = get("many")?;
        let medium = get("medium")?;
        let few = get("few")?;
        Ok((0..all.len())
            .map(|i| GroupAccuracy {
                acc_all: all[i],
                acc_head: head[i],
                acc_tail: tail[i],
                acc_many: many[i],
                acc_medium: medium[i],
                acc_few: few[i],
            })
            .collect())
    }
}

fn parse_state(text: &str) -> Option<JobState> {
    [
        JobState::Pending,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ]
    .into_iter()
    .find(|state| state.as_str() == text)
}

fn parse_group(text: &str) -> Option<ClassGroup> {
    [ClassGroup::Head, ClassGroup::Tail]
        .into_iter()
        .find(|group| group.as_str() == text)
}

fn parse_shot(text: &str) -> Option<Shot> {
    [Shot::Many, Shot::Medium, Shot::Few]
        .into_iter()
        .find(|shot| shot.as_str() == text)
}

fn read_jobs(frame: &DataFrame, axis_names: &[String]) -> Result<Vec<JobRow>, AnalysisError> {
    let reader = Reader {
        frame,
        kind: FrameKind::Jobs,
    };
    let job_ids = reader.texts("job_id")?;
    let plans = reader.texts("plan")?;
    let bases = reader.texts("base")?;
    let samplers = reader.texts("sampler")?;
    let stage2 = reader.texts("stage2")?;
    let augment = reader.texts("augment")?;
    let seeds = reader.seeds("seed")?;
    let states = reader.texts("state")?;
    let accuracies = reader.accuracies("_final")?;
    let mut bests = reader.accuracies("_best")?.into_iter();
    let mut vals = reader.accuracies_named("val", "_final")?.into_iter();
    let mut best_vals = reader.accuracies("_best_val")?.into_iter();
    let mut best_val_vals = reader.accuracies_named("val", "_best_val")?.into_iter();
    let axes = axis_names
        .iter()
        .map(|name| reader.reals(name))
        .collect::<Result<Vec<_>, _>>()?;
    let stopped_at = reader.counts("stopped_at")?;
    let stopped_reading = reader.reals("stopped_reading")?;
    let search_metrics = reader.texts("search_metric")?;
    let rung_readings = reader.texts("rung_readings")?;
    let posthoc = axis_names.iter().position(|name| name == POSTHOC_AXIS);
    let mut rows = Vec::with_capacity(frame.height());
    for (i, accuracy) in accuracies.into_iter().enumerate() {
        let axes = axis_names
            .iter()
            .zip(&axes)
            .map(|(name, values)| reader.required(name, i, values[i]))
            .collect::<Result<Vec<f64>, _>>()?;
        let adjusted = posthoc.is_some_and(|at| axes[at] != 0.0);
        rows.push(JobRow {
            job_id: reader.required("job_id", i, job_ids[i])?.to_owned(),
            plan: reader.parsed("plan", i, plans[i], |text| text.parse().ok())?,
            base: reader.parsed("base", i, bases[i], |text| text.parse().ok())?,
            sampler: reader.parsed("sampler", i, samplers[i], |text| text.parse().ok())?,
            stage2: reader.parsed("stage2", i, stage2[i], MethodLabel::parse)?,
            augment: reader.required("augment", i, augment[i])?.to_owned(),
            axes,
            seed: reader.required("seed", i, seeds[i])?,
            state: reader.parsed("state", i, states[i], parse_state)?,
            accuracy,
            best: bests.next().unwrap_or_default(),
            val: vals.next().unwrap_or_default(),
            best_val: best_vals.next().unwrap_or_default(),
            best_val_val: best_val_vals.next().unwrap_or_default(),
            adjusted,
            stopped_at: stopped_at[i],
            stopped_reading: stopped_reading[i],
            search_metric: search_metrics[i]
                .map(|text| reader.parsed("search_metric", i, Some(text), |t| t.parse().ok()))
                .transpose()?,
            rung_readings: rung_readings[i]
                .map(|text| reader.parsed("rung_readings", i, Some(text), parse_readings))
                .transpose()?
                .unwrap_or_default(),
        });
    }
    Ok(rows)
}

fn read_classes(frame: &DataFrame) -> Result<Vec<ClassRow>, AnalysisError> {
    let reader = Reader {
        frame,
        kind: FrameKind::PerClass,
    };
    let job_ids = reader.texts("job_id")?;
    let epochs = reader.counts("epoch")?;
    let classes = reader.counts("class")?;
    let train_counts = reader.counts("train_count")?;
    let groups = reader.texts("group")?;
    let shots = reader.texts("shot")?;
    let recalls = reader.reals("recall")?;
    let precisions = reader.reals("precision")?;
    let finals = reader.flags("final")?;
    (0..frame.height())
        .map(|i| {
            Ok(ClassRow {
                job_id: reader.required("job_id", i, job_ids[i])?.to_owned(),
                epoch: reader.required("epoch", i, epochs[i])?,
                class: reader.required("class", i, classes[i])?,
                train_count: reader.required("train_count", i, train_counts[i])?,
                group: reader.parsed("group", i, groups[i], parse_group)?,
                shot: reader.parsed("shot", i, shots[i], parse_shot)?,
                recall: reader.required("recall", i, recalls[i])?,
                precision: reader.required("precision", i, precisions[i])?,
                is_final: reader.required("final", i, finals[i])?,
            })
        })
        .collect()
}

fn read_epochs(frame: &DataFrame) -> Result<Vec<EpochRow>, AnalysisError> {
    let reader = Reader {
        frame,
        kind: FrameKind::Epochs,
    };
    let job_ids = reader.texts("job_id")?;
    let epochs = reader.counts("epoch")?;
    let lrs = reader.reals("lr")?;
    let seconds = reader.reals("seconds")?;
    let ce = reader.reals("loss_base")?;
    let (comp, pc) = (reader.reals("loss_comp")?, reader.reals("loss_pc")?);
    let accuracies = reader.accuracies("")?;
    let mut vals = reader.accuracies_named("val", "")?.into_iter();
    accuracies
        .into_iter()
        .enumerate()
        .map(|(i, accuracy)| {
            Ok(EpochRow {
                job_id: reader.required("job_id", i, job_ids[i])?.to_owned(),
                epoch: reader.required("epoch", i, epochs[i])?,
                lr: reader.required("lr", i, lrs[i])?,
                losses: [
                    reader.required("loss_base", i, ce[i])?,
                    reader.required("loss_comp", i, comp[i])?,
                    reader.required("loss_pc", i, pc[i])?,
                ],
                seconds: reader.required("seconds", i, seconds[i])?,
                accuracy,
                val: vals.next().unwrap_or_default(),
                auxiliary_on: [comp[i], pc[i]].iter().flatten().any(|&loss| loss != 0.0),
            })
        })
        .collect()
}
