//! What the tables choose per job or row: the epoch of each job ([`EpochChoice`]), and with
//! `--select`, for each row, the value of one grid axis (`--select pc_weight`) or the settings
//! of a stage-2 method (`--select stage2.tau_norm.tau`, `--select stage2`) chosen on the
//! validation set. The choice reads validation accuracies only ([`validation_score`]); the
//! test set is read afterwards, at the value chosen, by the tables.

use std::collections::HashSet;

use ltsweep_domain::{BaseKind, GroupAccuracy, JobState, LossPlan, Sampler, Stage2Kind};

use crate::AnalysisError;
use crate::frames::STANDARD_AUGMENT;
use crate::rows::{JobRow, Tidy};
use crate::stage2::{MethodLabel, is_numeric};
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

/// The refusal of a choice on a validation set the sweep lacks; `what` names the option.
pub(crate) fn no_validation(what: &str) -> AnalysisError {
    AnalysisError::Options(format!(
        "{what} chooses on the validation set, and no job of the sweep has one: add \
         `val_per_class = N` to the spec's [dataset] section (or, for the best epoch chosen on \
         the test set, an optimistic figure, --metric best-test)"
    ))
}

/// One row's choice, for the report's notes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Choice {
    /// The row without what was chosen: `comp=tail,pc=head lr=0.1`,
    /// `comp=none,pc=none stage2=tau_norm`.
    pub(crate) row: String,
    /// The value chosen: `0.01`, or `epochs=10,lr=0.1` where several settings are chosen
    /// together.
    pub(crate) value: String,
    /// The mean validation All accuracy over the seeds at the value chosen, in percent.
    pub(crate) val_mean: f64,
    /// The other values' means, in the order the jobs list them, for the notes.
    pub(crate) others: Vec<(String, f64)>,
}

/// What `--select` chooses for each row.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Target {
    /// A grid axis, by its index among the jobs' axes.
    Axis(usize),
    /// Settings of stage-2 methods: each row is then one method (and its settings that are
    /// not chosen) at the other columns' values.
    Stage2(Stage2Scope),
}

/// Which stage-2 settings `--select stage2[.METHOD[.SETTING]]` chooses: one setting of one
/// method (`stage2.tau_norm.tau`), every numeric setting of one method (`stage2.crt`: epochs
/// and lr together), or every numeric setting of every method (`stage2`). Settings in words
/// (`bn=frozen`, `features=l2n`) are variants a study compares, never chosen: they stay rows.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stage2Scope {
    kind: Option<Stage2Kind>,
    setting: Option<String>,
}

impl Stage2Scope {
    /// The scope `name` asks for; `None` where `name` does not start with `stage2`.
    fn parse(name: &str) -> Option<Result<Stage2Scope, AnalysisError>> {
        let rest = name.strip_prefix("stage2")?;
        if rest.is_empty() {
            return Some(Ok(Stage2Scope {
                kind: None,
                setting: None,
            }));
        }
        let rest = rest.strip_prefix('.')?;
        let (kind, setting) = match rest.split_once('.') {
            Some((kind, setting)) => (kind, Some(setting.to_owned())),
            None => (rest, None),
        };
        let refuse =
            |problem: String| AnalysisError::Options(format!("--select {name}: {problem}"));
        Some(match kind.parse::<Stage2Kind>() {
            Err(problem) => Err(refuse(problem)),
            Ok(Stage2Kind::None) => Err(refuse(
                "`none` is the stage-1 job, which has no stage-2 settings".to_owned(),
            )),
            Ok(kind) => Ok(Stage2Scope {
                kind: Some(kind),
                setting,
            }),
        })
    }

    fn chooses(&self, kind: Stage2Kind, name: &str, value: &str) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && match &self.setting {
                Some(setting) => setting == name,
                None => is_numeric(value),
            }
    }

    /// The method without the settings chosen: the row's method.
    fn row_method(&self, method: &MethodLabel) -> MethodLabel {
        method.without(|name, value| self.chooses(method.kind, name, value))
    }

    /// The settings chosen of a method, as the notes name them (`1`, or `epochs=10,lr=0.1`
    /// for several), or `None` where this scope chooses none of them.
    fn candidate(&self, method: &MethodLabel) -> Option<String> {
        let chosen: Vec<&(String, String)> = method
            .settings
            .iter()
            .filter(|(name, value)| self.chooses(method.kind, name, value))
            .collect();
        match (chosen.as_slice(), &self.setting) {
            ([], _) => None,
            ([(_, value)], Some(_)) => Some(value.clone()),
            (chosen, _) => Some(
                chosen
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
        }
    }

    /// Why the scope chooses nothing in these jobs, if it does not.
    fn check(&self, name: &str, tidy: &Tidy) -> Result<(), AnalysisError> {
        if tidy
            .jobs
            .iter()
            .any(|job| self.candidate(&job.stage2).is_some())
        {
            return Ok(());
        }
        let refuse =
            |problem: String| AnalysisError::Options(format!("--select {name}: {problem}"));
        let settings = stage2_selectors(tidy);
        let Some(kind) = self.kind else {
            return Err(refuse(if settings.is_empty() {
                "the sweep has no stage-2 job with a numeric setting ([stage2] method, with \
                 `[stage2.tau_norm] tau = [...]` or the like)"
                    .to_owned()
            } else {
                format!(
                    "the sweep's stage-2 settings in words are not chosen; its settings are {}",
                    settings.join(", ")
                )
            }));
        };
        let of_kind: Vec<&String> = settings
            .iter()
            .filter(|s| s.starts_with(&format!("stage2.{kind}.")))
            .collect();
        Err(refuse(
            if !tidy.jobs.iter().any(|job| job.stage2.kind == kind) {
                format!(
                    "the sweep has no {kind} job (add it to [stage2] method){}",
                    listed(&settings)
                )
            } else if of_kind.is_empty() {
                format!("{kind} has no setting to choose in this sweep")
            } else {
                let of_kind: Vec<&str> = of_kind.iter().map(|s| s.as_str()).collect();
                let of_kind = of_kind.join(", ");
                match self.setting {
                    Some(_) => format!(
                        "{kind} has no such setting in this sweep; its settings are {of_kind}"
                    ),
                    None => format!(
                        "{kind} has no numeric setting in this sweep; name one of its \
                         settings: {of_kind}"
                    ),
                }
            },
        ))
    }
}

/// `; the sweep's stage-2 settings are stage2.crt.epochs, ...`, or nothing without any.
fn listed(selectors: &[String]) -> String {
    if selectors.is_empty() {
        String::new()
    } else {
        format!(
            "; the sweep's stage-2 settings are {}",
            selectors.join(", ")
        )
    }
}

/// `stage2.tau_norm.tau`, ...: every setting of the sweep's stage-2 jobs, as `--select` names
/// it, in the order the jobs first show them.
fn stage2_selectors(tidy: &Tidy) -> Vec<String> {
    let mut selectors: Vec<String> = Vec::new();
    for job in &tidy.jobs {
        for (name, _) in &job.stage2.settings {
            let selector = format!("stage2.{}.{name}", job.stage2.kind);
            if !selectors.contains(&selector) {
                selectors.push(selector);
            }
        }
    }
    selectors
}

/// Each row's choice of one axis or of stage-2 settings, and the jobs it keeps.
pub(crate) struct Selection {
    pub(crate) target: Target,
    /// The selection as `--select` names it: `pc_weight`, `stage2.tau_norm.tau`.
    pub(crate) name: String,
    /// Indices into [`Tidy::jobs`] of the rows kept: a job evaluated with several post-hoc
    /// taus has a row per tau, and jobs no part of the choice are all kept.
    kept: HashSet<usize>,
    pub(crate) choices: Vec<Choice>,
}

impl Selection {
    /// Whether the job at `index` of [`Tidy::jobs`] is reported.
    pub(crate) fn keeps(&self, index: usize) -> bool {
        self.kept.contains(&index)
    }

    /// The axis chosen per row, if an axis is what is chosen.
    pub(crate) fn axis(&self) -> Option<usize> {
        match self.target {
            Target::Axis(axis) => Some(axis),
            Target::Stage2(_) => None,
        }
    }

    /// A row's stage-2 method as the row is named across sweeps, where each may choose other
    /// settings: without the settings chosen here.
    pub(crate) fn row_method(&self, method: &MethodLabel) -> MethodLabel {
        match &self.target {
            Target::Axis(_) => method.clone(),
            Target::Stage2(scope) => scope.row_method(method),
        }
    }

    /// The tables' caption sentence on what was chosen.
    pub(crate) fn caption(&self) -> String {
        let what = match &self.target {
            Target::Axis(_) => format!("The {} column: the value", self.name),
            Target::Stage2(_) => format!(
                "The stage 2 column: the settings `--select {}` names",
                self.name
            ),
        };
        format!(
            " {what} chosen for each row on the validation set (the highest mean validation All \
             accuracy over seeds, at the same epoch); the test accuracy is reported there."
        )
    }
}

/// The row a job's choice is made in (plan, base loss, sampler, policy and mixing, the axes not
/// stage-2 method without the settings chosen) and what it is a candidate of.
type RowKey = (LossPlan, BaseKind, Sampler, String, Vec<u64>, String);

/// A row's jobs (indices into [`Tidy::jobs`]) by candidate value, in the order first seen.
type ByValue = Vec<(String, Vec<usize>)>;

/// For every row, the value of what `name` selects (a grid axis, or stage-2 settings) whose
/// jobs have the highest mean validation All accuracy over their seeds (the first in the
/// jobs' order of equal ones). A row none of whose jobs has a validation accuracy yet keeps
/// its first value. A grid axis of that name comes first; then `stage2[.METHOD[.SETTING]]`.
pub(crate) fn select(
    tidy: &Tidy,
    name: &str,
    epoch: EpochChoice,
) -> Result<Selection, AnalysisError> {
    let target = match tidy.axis_names.iter().position(|axis| axis == name) {
        Some(axis) => Target::Axis(axis),
        None => match Stage2Scope::parse(name) {
            Some(scope) => {
                let scope = scope?;
                scope.check(name, tidy)?;
                Target::Stage2(scope)
            }
            None => return Err(no_such_axis(tidy, name)),
        },
    };
    let place = |job: &JobRow| -> Option<(RowKey, String)> {
        let axes = |skipped: Option<usize>| -> Vec<u64> {
            job.axes
                .iter()
                .enumerate()
                .filter(|(i, _)| Some(*i) != skipped)
                .map(|(_, v)| v.to_bits())
                .collect()
        };
        let (axes, method, value) = match &target {
            Target::Axis(axis) => (
                axes(Some(*axis)),
                job.stage2.clone(),
                job.axes[*axis].to_string(),
            ),
            Target::Stage2(scope) => (
                axes(None),
                scope.row_method(&job.stage2),
                scope.candidate(&job.stage2)?,
            ),
        };
        Some((
            (
                job.plan,
                job.base,
                job.sampler,
                job.augment.clone(),
                axes,
                method.to_string(),
            ),
            value,
        ))
    };
    // Rows in the order they first appear, each with its values in order; jobs no part of the
    // choice (stage-1 jobs and other methods, for stage-2 settings) are reported as they are.
    let mut kept = HashSet::new();
    let mut rows: Vec<(RowKey, ByValue)> = Vec::new();
    for (index, job) in tidy.jobs.iter().enumerate() {
        let Some((row_key, value)) = place(job) else {
            kept.insert(index);
            continue;
        };
        let row = match rows.iter().position(|(k, _)| *k == row_key) {
            Some(row) => row,
            None => {
                rows.push((row_key, Vec::new()));
                rows.len() - 1
            }
        };
        let values = &mut rows[row].1;
        match values.iter_mut().find(|(v, _)| *v == value) {
            Some((_, jobs)) => jobs.push(index),
            None => values.push((value, vec![index])),
        }
    }
    let scored = |index: &usize| {
        let job = &tidy.jobs[*index];
        (job.state == JobState::Succeeded).then(|| validation_score(job, epoch))?
    };
    if matches!(target, Target::Stage2(_)) {
        let candidates = rows
            .iter()
            .flat_map(|(_, values)| values)
            .flat_map(|(_, jobs)| jobs);
        let succeeded = candidates
            .clone()
            .filter(|&&index| tidy.jobs[index].state == JobState::Succeeded);
        if succeeded.clone().next().is_some() && succeeded.clone().all(|i| scored(i).is_none()) {
            return Err(AnalysisError::Options(format!(
                "--select {name} chooses on the validation set, and none of the stage-2 jobs \
                 it chooses among reports a validation accuracy (only their stage-1 jobs \
                 do), so there is nothing to choose on"
            )));
        }
    }
    let mut choices = Vec::new();
    for (_, values) in &rows {
        let means: Vec<(&String, Option<f64>)> = values
            .iter()
            .map(|(value, jobs)| {
                let scores: Vec<f64> = jobs
                    .iter()
                    .filter_map(scored)
                    .map(|score| score * 100.0)
                    .collect();
                (value, stats::mean(&scores))
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
        kept.extend(jobs.iter().copied());
        if let Some((_, val_mean)) = best {
            choices.push(Choice {
                row: row_label(&tidy.jobs[jobs[0]], tidy, &target),
                value: values[chosen].0.clone(),
                val_mean,
                others: means
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != chosen)
                    .filter_map(|(_, (value, mean))| Some(((*value).clone(), (*mean)?)))
                    .collect(),
            });
        }
    }
    Ok(Selection {
        target,
        name: name.to_owned(),
        kept,
        choices,
    })
}

/// The refusal of a name that is neither a grid axis nor stage-2 settings.
fn no_such_axis(tidy: &Tidy, name: &str) -> AnalysisError {
    let stage2 = listed(&stage2_selectors(tidy));
    AnalysisError::Options(if tidy.axis_names.is_empty() {
        format!("--select {name}: the sweep has no grid axis (a setting given as a list){stage2}")
    } else {
        format!(
            "--select {name}: no such grid axis; the sweep's axes are {}{stage2}",
            tidy.axis_names.join(", ")
        )
    })
}

/// `base=la comp=tail,pc=head lr=0.1 stage2=crt`: a row as the notes name it, without what
/// was chosen.
fn row_label(job: &JobRow, tidy: &Tidy, target: &Target) -> String {
    let mut label = String::new();
    if job.base != BaseKind::Ce {
        label.push_str(&format!("base={} ", job.base));
    }
    if job.sampler != Sampler::Instance {
        label.push_str(&format!("sampler={} ", job.sampler));
    }
    if job.augment != STANDARD_AUGMENT {
        label.push_str(&format!("{} ", job.augment));
    }
    label.push_str(&job.plan.to_string());
    for (i, (name, value)) in tidy.axis_names.iter().zip(&job.axes).enumerate() {
        if *target != Target::Axis(i) {
            label.push_str(&format!(" {name}={value}"));
        }
    }
    let method = match target {
        Target::Axis(_) => job.stage2.clone(),
        Target::Stage2(scope) => scope.row_method(&job.stage2),
    };
    if method.kind != Stage2Kind::None {
        label.push_str(&format!(" stage2={method}"));
    }
    label
}
