//! The columns of the three frames: their names and types, in one place, so that building,
//! exporting, reading back and checking a frame cannot disagree.

use polars::prelude::{DataFrame, DataType};

/// A column's type. Plain Arrow types only (no categoricals), so that pandas with pyarrow
/// reads the Parquet files as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Real,
    Count,
    Seed,
    Flag,
}

impl Kind {
    pub(crate) fn dtype(self) -> DataType {
        match self {
            Kind::Text => DataType::String,
            Kind::Real => DataType::Float64,
            Kind::Count => DataType::UInt32,
            Kind::Seed => DataType::UInt64,
            Kind::Flag => DataType::Boolean,
        }
    }
}

pub(crate) struct ColumnSpec {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Added after the first exports: an export without it reads as if it were all null.
    pub(crate) optional: bool,
}

const fn column(name: &'static str, kind: Kind) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        optional: false,
    }
}

/// A column that exports of older versions lack.
const fn later(name: &'static str, kind: Kind) -> ColumnSpec {
    ColumnSpec {
        name,
        kind,
        optional: true,
    }
}

/// The jobs frame's columns before the grid axes (one `Real` column per axis).
pub(crate) const JOBS_LEADING: &[ColumnSpec] = &[
    column("sweep", Kind::Text),
    column("job_id", Kind::Text),
    column("plan", Kind::Text),
    column("comp_on", Kind::Text),
    column("pc_on", Kind::Text),
    column("base", Kind::Text),
    column("sampler", Kind::Text),
    column("stage2", Kind::Text),
    column("augment", Kind::Text),
];

/// The jobs frame's columns after the grid axes.
pub(crate) const JOBS_TRAILING: &[ColumnSpec] = &[
    column("seed", Kind::Seed),
    column("state", Kind::Text),
    column("attempts", Kind::Count),
    column("acc_all_final", Kind::Real),
    column("acc_head_final", Kind::Real),
    column("acc_tail_final", Kind::Real),
    column("acc_many_final", Kind::Real),
    column("acc_medium_final", Kind::Real),
    column("acc_few_final", Kind::Real),
    column("final_epoch", Kind::Count),
    column("acc_all_best", Kind::Real),
    column("acc_head_best", Kind::Real),
    column("acc_tail_best", Kind::Real),
    column("acc_many_best", Kind::Real),
    column("acc_medium_best", Kind::Real),
    column("acc_few_best", Kind::Real),
    column("best_epoch", Kind::Count),
    column("train_seconds", Kind::Real),
    column("epochs_retrained", Kind::Count),
    column("worker", Kind::Text),
    column("error", Kind::Text),
    later("parent_id", Kind::Text),
    later("val_all_final", Kind::Real),
    later("val_head_final", Kind::Real),
    later("val_tail_final", Kind::Real),
    later("val_many_final", Kind::Real),
    later("val_medium_final", Kind::Real),
    later("val_few_final", Kind::Real),
    later("acc_all_best_val", Kind::Real),
    later("acc_head_best_val", Kind::Real),
    later("acc_tail_best_val", Kind::Real),
    later("acc_many_best_val", Kind::Real),
    later("acc_medium_best_val", Kind::Real),
    later("acc_few_best_val", Kind::Real),
    later("val_all_best_val", Kind::Real),
    later("val_head_best_val", Kind::Real),
    later("val_tail_best_val", Kind::Real),
    later("val_many_best_val", Kind::Real),
    later("val_medium_best_val", Kind::Real),
    later("val_few_best_val", Kind::Real),
    later("best_val_epoch", Kind::Count),
    later("stopped_at", Kind::Count),
    later("stopped_reading", Kind::Real),
    later("search_metric", Kind::Text),
    later("rung_readings", Kind::Text),
];

pub(crate) const PER_CLASS: &[ColumnSpec] = &[
    column("job_id", Kind::Text),
    column("plan", Kind::Text),
    column("seed", Kind::Seed),
    column("epoch", Kind::Count),
    column("class", Kind::Count),
    column("train_count", Kind::Count),
    column("group", Kind::Text),
    column("shot", Kind::Text),
    column("test_total", Kind::Count),
    column("test_correct", Kind::Count),
    column("recall", Kind::Real),
    column("precision", Kind::Real),
    column("final", Kind::Flag),
];

pub(crate) const EPOCHS: &[ColumnSpec] = &[
    column("job_id", Kind::Text),
    column("plan", Kind::Text),
    column("seed", Kind::Seed),
    column("epoch", Kind::Count),
    column("lr", Kind::Real),
    column("loss_base", Kind::Real),
    column("loss_comp", Kind::Real),
    column("loss_pc", Kind::Real),
    column("images_per_second", Kind::Real),
    column("seconds", Kind::Real),
    column("acc_all", Kind::Real),
    column("acc_head", Kind::Real),
    column("acc_tail", Kind::Real),
    column("acc_many", Kind::Real),
    column("acc_medium", Kind::Real),
    column("acc_few", Kind::Real),
    later("val_all", Kind::Real),
    later("val_head", Kind::Real),
    later("val_tail", Kind::Real),
    later("val_many", Kind::Real),
    later("val_medium", Kind::Real),
    later("val_few", Kind::Real),
];

/// Columns renamed since files were first exported: (frame, former name, name). A file of an
/// earlier version is read with its columns under their current names.
const RENAMED: &[(FrameKind, &str, &str)] = &[(FrameKind::Epochs, "loss_ce", "loss_base")];

/// Text columns added since files were first exported, with the value an earlier file's rows
/// get: (frame, column, value).
const ADDED: &[(FrameKind, &str, Option<&str>)] = &[
    (FrameKind::Jobs, "stage2", Some("none")),
    (FrameKind::Jobs, "augment", Some("standard")),
];

/// The columns of `kind` a file of an earlier version may lack, each with its default.
pub(crate) fn added_columns(
    kind: FrameKind,
) -> impl Iterator<Item = (&'static ColumnSpec, Option<&'static str>)> {
    ADDED
        .iter()
        .filter(move |(frame, _, _)| *frame == kind)
        .filter_map(move |(_, name, default)| {
            kind.fixed_columns()
                .find(|spec| spec.name == *name)
                .map(|spec| (spec, *default))
        })
}

/// A column's current name, given the name a file holds it under.
pub(crate) fn current_name(kind: FrameKind, name: &str) -> &str {
    RENAMED
        .iter()
        .find(|(frame, former, _)| *frame == kind && *former == name)
        .map_or(name, |(_, _, current)| current)
}

/// The name a column had in files of earlier versions, if it was renamed.
pub(crate) fn former_name(kind: FrameKind, name: &str) -> Option<&'static str> {
    RENAMED
        .iter()
        .find(|(frame, _, current)| *frame == kind && *current == name)
        .map(|(_, former, _)| *former)
}

/// Which of the three frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    Jobs,
    PerClass,
    Epochs,
}

impl FrameKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            FrameKind::Jobs => "jobs",
            FrameKind::PerClass => "per_class",
            FrameKind::Epochs => "epochs",
        }
    }

    /// The frame's file in an export's or a report's folder.
    pub(crate) fn file_name(self) -> &'static str {
        match self {
            FrameKind::Jobs => "jobs.parquet",
            FrameKind::PerClass => "per_class.parquet",
            FrameKind::Epochs => "epochs.parquet",
        }
    }

    /// The columns every frame of this kind has; the jobs frame has its axes besides.
    pub(crate) fn fixed_columns(self) -> impl Iterator<Item = &'static ColumnSpec> {
        let (first, second): (&[ColumnSpec], &[ColumnSpec]) = match self {
            FrameKind::Jobs => (JOBS_LEADING, JOBS_TRAILING),
            FrameKind::PerClass => (PER_CLASS, &[]),
            FrameKind::Epochs => (EPOCHS, &[]),
        };
        first.iter().chain(second)
    }

    pub(crate) fn is_fixed(self, name: &str) -> bool {
        self.fixed_columns().any(|spec| spec.name == name)
    }
}

/// What is wrong with a frame's columns.
pub(crate) enum SchemaProblem {
    Missing {
        column: String,
    },
    WrongType {
        column: String,
        expected: DataType,
        found: DataType,
    },
}

/// Checks that `frame` has every fixed column of `kind` with its type, and (for the jobs frame)
/// that every other column is a numeric axis. Returns the axis names in column order.
pub(crate) fn check(frame: &DataFrame, kind: FrameKind) -> Result<Vec<String>, SchemaProblem> {
    let schema = frame.schema();
    for spec in kind.fixed_columns() {
        let found = schema
            .get(spec.name)
            .ok_or_else(|| SchemaProblem::Missing {
                column: spec.name.to_owned(),
            })?;
        if *found != spec.kind.dtype() {
            return Err(SchemaProblem::WrongType {
                column: spec.name.to_owned(),
                expected: spec.kind.dtype(),
                found: found.clone(),
            });
        }
    }
    let mut axes = Vec::new();
    if kind == FrameKind::Jobs {
        for (name, dtype) in schema.iter() {
            if kind.is_fixed(name) {
                continue;
            }
            if *dtype != Kind::Real.dtype() {
                return Err(SchemaProblem::WrongType {
                    column: name.to_string(),
                    expected: Kind::Real.dtype(),
                    found: dtype.clone(),
                });
            }
            axes.push(name.to_string());
        }
    }
    Ok(axes)
}
