//! What the tables choose per job or row: the epoch of each job ([`EpochChoice`]), and with
//! `--select AXIS`, for each row, the value of one grid axis chosen on the validation set. The
//! choice reads validation accuracies only ([`validation_score`]); the test set is read
//! afterwards, at the value chosen, by the tables.

use std::collections::HashSet;

use ltsweep_proto::{BaseKind, GroupAccuracy, JobState, LossPlan, Sampler};

use crate::AnalysisError;
use crate::rows::{JobRow, Tidy};
use crate::stats;

/// Which epoch of each job the tables report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EpochChoice {
    /// The last epoch: what a run delivers.
    #[default]
    Final,
    /// Each job's evaluated epoch of the highest All accuracy on the validation set; the test
    /// set's accuracies there. Needs a validation set (`[dataset] val_per_class`).
    Best,
    /// Each job's evaluated epoch of the highest All accuracy on the test set: an optimistic
    /// figure (the test set chose the epoch), as papers that report the best epoch do.
    BestTest,
}

impl EpochChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            EpochChoice::Final => "final",
            EpochChoice::Best => "best",
            EpochChoice::BestTest => "best-test",
        }
    }

    /// The test accuracies a job contributes at this choice.
    pub(crate) fn test_accuracy(self, job: &JobRow) -> &GroupAccuracy {
        match self {
            EpochChoice::Final => &job.accuracy,
            EpochChoice::Best => &job.best_val,
            EpochChoice::BestTest => &job.best,
        }
    }
}

/// A job's validation All accuracy at the epoch the tables report: the final epoch's, or the
/// one at the epoch chosen on the validation set. Never the test set's.
pub(crate) fn validation_score(job: &JobRow, epoch: EpochChoice) -> Option<f64> {
    match epoch {
        EpochChoice::Final => job.val.acc_all,
        EpochChoice::Best => job.best_val_val.acc_all,
        // Refused before a selection is made: that epoch was chosen on the test set.
        EpochChoice::BestTest => None,
    }
}

/// One row's choice, for the report's notes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Choice {
    /// The row without the chosen axis: `comp=tail,pc=head lr=0.1`.
    pub(crate) row: String,
    pub(crate) value: f64,
    /// The mean validation All accuracy over the seeds at the value chosen, in percent.
    pub(crate) val_mean: f64,
    /// The other values' means, in axis order, for the notes.
    pub(crate) others: Vec<(f64, f64)>,
}

/// The jobs at each row's chosen value of one axis.
pub(crate) struct Selection {
    /// The axis's index among the jobs' axes.
    pub(crate) axis: usize,
    pub(crate) name: String,
    /// Job ids and the axis value of their rows kept: a job evaluated with several post-hoc
    /// taus has a row per tau, all under its id.
    kept: HashSet<(String, u64)>,
    pub(crate) choices: Vec<Choice>,
}

impl Selection {
    pub(crate) fn keeps(&self, job: &JobRow) -> bool {
        self.kept
            .contains(&(job.job_id.clone(), job.axes[self.axis].to_bits()))
    }
}

type RowKey = (LossPlan, BaseKind, Sampler, Vec<u64>);

/// A row's jobs by the chosen axis's value, in the axis's order.
type ByValue<'a> = Vec<(f64, Vec<&'a JobRow>)>;

/// For every row (plan, base loss, sampler and the other axes' values), the value of `axis`
/// whose jobs have the highest mean validation All accuracy over their seeds (the first in
/// the axis's order of equal ones). A row none of whose jobs has a validation accuracy yet
/// keeps the axis's first value.
pub(crate) fn select(
    tidy: &Tidy,
    axis_name: &str,
    epoch: EpochChoice,
) -> Result<Selection, AnalysisError> {
    let axis = tidy
        .axis_names
        .iter()
        .position(|name| name == axis_name)
        .ok_or_else(|| {
            AnalysisError::Options(if tidy.axis_names.is_empty() {
                format!(
                    "--select {axis_name}: the sweep has no grid axis (a setting given as a list)"
                )
            } else {
                format!(
                    "--select {axis_name}: no such grid axis; the sweep's axes are {}",
                    tidy.axis_names.join(", ")
                )
            })
        })?;
    let key = |job: &JobRow| -> RowKey {
        let others = job
            .axes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != axis)
            .map(|(_, v)| v.to_bits())
            .collect();
        (job.plan, job.base, job.sampler, others)
    };
    // Rows in the order they first appear, each with its axis values in order.
    let mut rows: Vec<(RowKey, ByValue)> = Vec::new();
    for job in &tidy.jobs {
        let row_key = key(job);
        let index = match rows.iter().position(|(k, _)| *k == row_key) {
            Some(index) => index,
            None => {
                rows.push((row_key, Vec::new()));
                rows.len() - 1
            }
        };
        let values = &mut rows[index].1;
        let value = job.axes[axis];
        match values
            .iter_mut()
            .find(|(v, _)| v.to_bits() == value.to_bits())
        {
            Some((_, jobs)) => jobs.push(job),
            None => values.push((value, vec![job])),
        }
    }
    let mut kept = HashSet::new();
    let mut choices = Vec::new();
    for (_, values) in &rows {
        let means: Vec<(f64, Option<f64>)> = values
            .iter()
            .map(|(value, jobs)| {
                let scores: Vec<f64> = jobs
                    .iter()
                    .filter(|job| job.state == JobState::Succeeded)
                    .filter_map(|job| validation_score(job, epoch))
                    .map(|score| score * 100.0)
                    .collect();
                (*value, stats::mean(&scores))
            })
            .collect();
        let best = means
            .iter()
            .enumerate()
            .filter_map(|(i, (_, mean))| Some((i, (*mean)?)))
            // The first of equal means: compare reversed indices on ties.
            .max_by(|(i, a), (j, b)| a.total_cmp(b).then(j.cmp(i)));
        let chosen = best.map_or(0, |(i, _)| i);
        let jobs = &values[chosen].1;
        kept.extend(
            jobs.iter()
                .map(|job| (job.job_id.clone(), job.axes[axis].to_bits())),
        );
        if let Some((_, val_mean)) = best {
            choices.push(Choice {
                row: row_label(jobs[0], tidy, axis),
                value: values[chosen].0,
                val_mean,
                others: means
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != chosen)
                    .filter_map(|(_, (value, mean))| Some((*value, (*mean)?)))
                    .collect(),
            });
        }
    }
    Ok(Selection {
        axis,
        name: axis_name.to_owned(),
        kept,
        choices,
    })
}

/// `base=la comp=tail,pc=head lr=0.1`: a row as the notes name it, without the chosen axis.
fn row_label(job: &JobRow, tidy: &Tidy, axis: usize) -> String {
    let mut label = String::new();
    if job.base != BaseKind::Ce {
        label.push_str(&format!("base={} ", job.base));
    }
    if job.sampler != Sampler::Instance {
        label.push_str(&format!("sampler={} ", job.sampler));
    }
    label.push_str(&job.plan.to_string());
    for (i, (name, value)) in tidy.axis_names.iter().zip(&job.axes).enumerate() {
        if i != axis {
            label.push_str(&format!(" {name}={value}"));
        }
    }
    label
}
