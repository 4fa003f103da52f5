//! The numbers of the report: Table 1's rows (one per loss plan and axis values), recall by
//! class group and per class. Pure functions of the typed rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use ltsweep_domain::{
    AxisValue, BaseKind, ClassGroup, GroupAccuracy, JobState, LossPlan, Sampler, Shot,
};

use crate::AnalysisError;
use crate::frames::{Frames, NO_STAGE2, STANDARD_AUGMENT};
use crate::rows::{ClassRow, JobRow, Tidy};
use crate::search;
use crate::select::{self, EpochChoice, Selection};
use crate::stats::{self, PairedDifference, PairedTest, multiple};

/// A top-1 accuracy of Table 1 (All, Head, Tail) or of the shots table (Many, Medium, Few).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    All,
    Head,
    Tail,
    Many,
    Medium,
    Few,
}

impl Metric {
    /// Every metric, in the order of [`GroupAccuracy`]'s fields.
    pub const EVERY: [Metric; 6] = [
        Metric::All,
        Metric::Head,
        Metric::Tail,
        Metric::Many,
        Metric::Medium,
        Metric::Few,
    ];
    /// Table 1's columns.
    pub const TABLE1: [Metric; 3] = [Metric::All, Metric::Head, Metric::Tail];
    /// The shots table's columns.
    pub const SHOTS: [Metric; 3] = [Metric::Many, Metric::Medium, Metric::Few];

    pub fn label(self) -> &'static str {
        match self {
            Metric::All => "All",
            Metric::Head => "Head",
            Metric::Tail => "Tail",
            Metric::Many => "Many",
            Metric::Medium => "Medium",
            Metric::Few => "Few",
        }
    }

    /// The lowercase name CSV columns start with.
    pub fn key(self) -> &'static str {
        match self {
            Metric::All => "all",
            Metric::Head => "head",
            Metric::Tail => "tail",
            Metric::Many => "many",
            Metric::Medium => "medium",
            Metric::Few => "few",
        }
    }

    /// The position in [`Metric::EVERY`], which lists the variants in declaration order.
    fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn of(self, accuracy: &GroupAccuracy) -> Option<f64> {
        match self {
            Metric::All => accuracy.acc_all,
            Metric::Head => accuracy.acc_head,
            Metric::Tail => accuracy.acc_tail,
            Metric::Many => accuracy.acc_many,
            Metric::Medium => accuracy.acc_medium,
            Metric::Few => accuracy.acc_few,
        }
    }
}

/// One accuracy of one row over its seeds, in percent.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricSummary {
    /// Seeds with a value: succeeded jobs whose test set has classes of the group.
    pub n: usize,
    pub mean: Option<f64>,
    /// Sample standard deviation over seeds; `None` for fewer than two.
    pub std: Option<f64>,
    /// This row minus the reference row (CE alone: base loss `ce`, sampler `instance`, no Comp.,
    /// no PC, no stage 2) of the same axis values, paired by seed. `None` for the reference row itself, when
    /// there is none, or when no seed succeeded in both.
    pub vs_ce: Option<PairedDifference>,
    /// The values the summary is of, by seed, in percent.
    pub by_seed: BTreeMap<u64, f64>,
}

/// How a row's jobs stand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub pending: usize,
    pub running: usize,
    pub cancelled: usize,
}

impl JobCounts {
    fn add(&mut self, state: JobState) {
        self.total += 1;
        match state {
            JobState::Succeeded => self.succeeded += 1,
            JobState::Failed => self.failed += 1,
            JobState::Pending => self.pending += 1,
            JobState::Running => self.running += 1,
            JobState::Cancelled => self.cancelled += 1,
        }
    }

    /// `3` when every job succeeded, else `2/3`.
    pub fn n_label(&self) -> String {
        if self.succeeded == self.total {
            self.total.to_string()
        } else {
            format!("{}/{}", self.succeeded, self.total)
        }
    }

    /// What is missing, `1 failed, 1 pending`; empty when nothing is.
    pub fn missing(&self) -> String {
        [
            (self.failed, "failed"),
            (self.pending, "pending"),
            (self.running, "running"),
            (self.cancelled, "cancelled"),
        ]
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, state)| format!("{count} {state}"))
        .collect::<Vec<_>>()
        .join(", ")
    }
}

/// One row of Table 1: a base loss, sampler, loss plan and stage-2 method at one combination of
/// the other grid axes.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRow {
    pub plan: LossPlan,
    pub base: BaseKind,
    pub sampler: Sampler,
    /// `none`, or the stage-2 method and settings of the row's jobs: `tau_norm(tau=1)`.
    pub stage2: String,
    /// `standard`, or the image policy and batch mixing of the row's jobs.
    pub augment: String,
    /// [`PlanRow::stage2`] without the settings chosen on the validation set (`--select
    /// stage2...`): `tau_norm`, the same row in another sweep, where the choice may differ.
    stage2_key: String,
    /// The other grid axes' values, in the jobs frame's column order.
    pub axes: Vec<AxisValue>,
    pub jobs: JobCounts,
    /// The highest mean All accuracy of the table.
    pub best: bool,
    /// The axis (an index into `axes`) whose value was chosen for this row on the validation
    /// set (`--select`): rows compare with CE alone whatever value each chose.
    pub selected: Option<usize>,
    metrics: [MetricSummary; 6],
    /// Every job of the row, succeeded or not.
    job_ids: HashSet<String>,
}

impl PlanRow {
    pub fn metric(&self, metric: Metric) -> &MetricSummary {
        &self.metrics[metric.index()]
    }

    /// The reference row every other row is compared with: cross entropy alone (base loss
    /// `ce`, sampler `instance`, no Comp., no PC, no stage 2, no policy or mixing).
    pub fn is_ce_only(&self) -> bool {
        self.plan == LossPlan::CE_ONLY
            && self.base == BaseKind::Ce
            && self.sampler == Sampler::Instance
            && !self.is_stage2()
            && !self.is_augmented()
    }

    /// A row of jobs with an image policy or batch mixing.
    pub fn is_augmented(&self) -> bool {
        self.augment != STANDARD_AUGMENT
    }

    /// A row of stage-2 jobs.
    pub fn is_stage2(&self) -> bool {
        self.stage2 != NO_STAGE2
    }

    /// `comp=tail,pc=head pc_weight=0.1`, with `base=la sampler=sqrt` first when they are not
    /// the defaults and `stage2=crt(epochs=10,lr=0.1)` last: the row as a person names it.
    pub fn label(&self) -> String {
        let mut label = String::new();
        if self.base != BaseKind::Ce {
            label.push_str(&format!("base={} ", self.base));
        }
        if self.sampler != Sampler::Instance {
            label.push_str(&format!("sampler={} ", self.sampler));
        }
        if self.is_augmented() {
            label.push_str(&format!("{} ", self.augment));
        }
        label.push_str(&self.plan.to_string());
        for axis in &self.axes {
            label.push_str(&format!(" {}={}", axis.name, axis.value));
        }
        if self.is_stage2() {
            label.push_str(&format!(" stage2={}", self.stage2));
        }
        label
    }

    /// [`PlanRow::label`] without the axis or the stage-2 settings chosen on the validation
    /// set: the same row in another sweep, where the choice may differ.
    pub fn key(&self) -> String {
        let mut label = String::new();
        if self.base != BaseKind::Ce {
            label.push_str(&format!("base={} ", self.base));
        }
        if self.sampler != Sampler::Instance {
            label.push_str(&format!("sampler={} ", self.sampler));
        }
        if self.is_augmented() {
            label.push_str(&format!("{} ", self.augment));
        }
        label.push_str(&self.plan.to_string());
        let axes = self.axes_label();
        if !axes.is_empty() {
            label.push(' ');
            label.push_str(&axes);
        }
        if self.is_stage2() {
            label.push_str(&format!(" stage2={}", self.stage2_key));
        }
        label
    }

    /// `pc_weight=0.1`, or empty without other axes; an axis chosen on the validation set is
    /// left out.
    pub(crate) fn axes_label(&self) -> String {
        self.axes
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.selected)
            .map(|(_, axis)| format!("{}={}", axis.name, axis.value))
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(crate) fn has_job(&self, job_id: &str) -> bool {
        self.job_ids.contains(job_id)
    }

    /// Whether both rows have the same values of the other grid axes (but the one chosen on
    /// the validation set).
    pub(crate) fn same_axes(&self, other: &PlanRow) -> bool {
        self.axes
            .iter()
            .zip(&other.axes)
            .enumerate()
            .all(|(i, (a, b))| Some(i) == self.selected || a.value.to_bits() == b.value.to_bits())
    }
}

/// How the tables read a sweep: the epoch of each job, the test of the differences to CE, and
/// an axis whose value each row takes from the validation set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportOptions {
    pub epoch: EpochChoice,
    pub test: PairedTest,
    /// A grid axis (`pc_weight`, `la_tau`, ...) whose value is chosen for each row as the one of
    /// the highest mean validation All accuracy over seeds, or stage-2 settings chosen so for
    /// each method (`stage2.tau_norm.tau`, `stage2.crt`, `stage2`: every numeric setting); the
    /// row reports the test set there.
    pub select: Option<String>,
}

/// Table 1's rows at the final epoch; see [`table1_rows_with`].
pub fn table1_rows(frames: &Frames) -> Result<Vec<PlanRow>, AnalysisError> {
    table1_rows_with(frames, &ReportOptions::default())
}

/// Table 1's rows, in the order of the jobs frame: grouped by the other axes' values (in the
/// order they first appear), then by base loss, sampler and plan (in the order each first
/// appears).
pub fn table1_rows_with(
    frames: &Frames,
    options: &ReportOptions,
) -> Result<Vec<PlanRow>, AnalysisError> {
    plan_rows(&Tidy::read(frames)?, options)
}

/// Why the options cannot be read from these jobs, if they cannot.
fn check_options(tidy: &Tidy, options: &ReportOptions) -> Result<(), AnalysisError> {
    let succeeded = || tidy.jobs.iter().filter(|j| j.state == JobState::Succeeded);
    if options.epoch == EpochChoice::Best
        && succeeded().next().is_some()
        && succeeded().all(|j| j.best_val.acc_all.is_none())
    {
        return Err(select::no_validation("--metric best"));
    }
    if let Some(name) = &options.select {
        if options.epoch == EpochChoice::BestTest {
            return Err(AnalysisError::Options(
                "--select chooses on the validation set, --metric best-test on the test set: \
                 choose epochs with --metric best (validation) or final"
                    .to_owned(),
            ));
        }
        if succeeded().next().is_some()
            && succeeded().all(|j| select::validation_score(j, options.epoch).is_none())
        {
            return Err(select::no_validation(&format!("--select {name}")));
        }
    }
    Ok(())
}

pub(crate) fn plan_rows(
    tidy: &Tidy,
    options: &ReportOptions,
) -> Result<Vec<PlanRow>, AnalysisError> {
    Ok(plan_rows_selected(tidy, options)?.0)
}

/// [`plan_rows`] and, with `--select`, what each row chose.
pub(crate) fn plan_rows_selected(
    tidy: &Tidy,
    options: &ReportOptions,
) -> Result<(Vec<PlanRow>, Option<Selection>), AnalysisError> {
    check_options(tidy, options)?;
    let selection: Option<Selection> = options
        .select
        .as_deref()
        .map(|axis| select::select(tidy, axis, options.epoch))
        .transpose()?;
    // A configuration the search stopped has no final epoch: it is listed apart, never in a
    // row as if it had completed.
    let stopped = search::stopped_configurations(tidy);
    let kept: Vec<&JobRow> = tidy
        .jobs
        .iter()
        .enumerate()
        .filter(|(index, _)| selection.as_ref().is_none_or(|s| s.keeps(*index)))
        .filter(|(_, job)| !stopped.contains(&search::Configuration::of(job)))
        .map(|(_, job)| job)
        .collect();
    let selected = selection.as_ref().and_then(Selection::axis);
    // Axis values compare by their bits: they come from one spec, so equal values are
    // bit-identical, and bits can be keys where floats cannot. An axis chosen per row is no
    // part of a row's place in the table.
    let key = |job: &JobRow| -> Vec<u64> {
        job.axes
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != selected)
            .map(|(_, v)| v.to_bits())
            .collect()
    };
    let mut points: Vec<Vec<u64>> = Vec::new();
    type RowKey = (LossPlan, BaseKind, Sampler, String, String);
    let mut groups: Vec<(usize, RowKey, Vec<&JobRow>)> = Vec::new();
    for job in kept {
        let point = key(job);
        let point_index = match points.iter().position(|p| *p == point) {
            Some(index) => index,
            None => {
                points.push(point);
                points.len() - 1
            }
        };
        let row_key = (
            job.plan,
            job.base,
            job.sampler,
            job.stage2.to_string(),
            job.augment.clone(),
        );
        match groups
            .iter_mut()
            .find(|(p, k, _)| *p == point_index && *k == row_key)
        {
            Some((_, _, jobs)) => jobs.push(job),
            None => groups.push((point_index, row_key, vec![job])),
        }
    }
    groups.sort_by_key(|(point, _, _)| *point);

    let epoch = options.epoch;
    let percent_by_seed = |jobs: &[&JobRow], metric: Metric| -> BTreeMap<u64, f64> {
        jobs.iter()
            .filter(|job| job.state == JobState::Succeeded)
            .filter_map(|job| Some((job.seed, metric.of(epoch.test_accuracy(job))? * 100.0)))
            .collect()
    };
    let mut rows: Vec<PlanRow> = groups
        .iter()
        .map(|(_, (plan, base, sampler, stage2, augment), jobs)| {
            let mut counts = JobCounts::default();
            for job in jobs {
                counts.add(job.state);
            }
            let metrics = Metric::EVERY.map(|metric| {
                let by_seed = percent_by_seed(jobs, metric);
                let values: Vec<f64> = by_seed.values().copied().collect();
                MetricSummary {
                    n: values.len(),
                    mean: stats::mean(&values),
                    std: stats::sample_std(&values),
                    vs_ce: None,
                    by_seed,
                }
            });
            PlanRow {
                plan: *plan,
                base: *base,
                sampler: *sampler,
                stage2: stage2.clone(),
                augment: augment.clone(),
                stage2_key: match &selection {
                    Some(selection) => selection.row_method(&jobs[0].stage2).to_string(),
                    None => stage2.clone(),
                },
                axes: tidy
                    .axis_names
                    .iter()
                    .zip(&jobs[0].axes)
                    .map(|(name, &value)| AxisValue {
                        name: name.clone(),
                        value,
                    })
                    .collect(),
                jobs: counts,
                best: false,
                selected,
                metrics,
                // Per-class and epoch rows are the model's as trained: a row adjusted post hoc
                // has none of its own.
                job_ids: jobs
                    .iter()
                    .filter(|job| !job.adjusted)
                    .map(|job| job.job_id.clone())
                    .collect(),
            }
        })
        .collect();

    for (i, (_, _, jobs)) in groups.iter().enumerate() {
        if rows[i].is_ce_only() {
            continue;
        }
        let Some(baseline) = rows
            .iter()
            .position(|row| row.is_ce_only() && row.same_axes(&rows[i]))
        else {
            continue;
        };
        let baseline_jobs = &groups[baseline].2;
        let label = rows[i].label();
        for metric in Metric::EVERY {
            let ce = percent_by_seed(baseline_jobs, metric);
            let pairs: Vec<(f64, f64)> = percent_by_seed(jobs, metric)
                .into_iter()
                .filter_map(|(seed, value)| Some((value, *ce.get(&seed)?)))
                .collect();
            let seed = resampling_seed(&label, metric);
            rows[i].metrics[metric.index()].vs_ce =
                stats::paired_comparison(&pairs, options.test, seed);
        }
    }
    for family in [Metric::TABLE1, Metric::SHOTS] {
        adjust_by_holm(&mut rows, &family);
    }

    mark_best(&mut rows);
    Ok((rows, selection))
}

/// Marks the row of the highest mean All accuracy (the first of equal ones) as the best, and
/// no other.
pub(crate) fn mark_best(rows: &mut [PlanRow]) {
    let best = rows
        .iter()
        .enumerate()
        .filter_map(|(i, row)| Some((i, row.metric(Metric::All).mean?)))
        // The first of equal rows wins: `max_by` keeps the last, so compare reversed indices.
        .max_by(|(i, a), (j, b)| a.total_cmp(b).then(j.cmp(i)));
    for row in rows.iter_mut() {
        row.best = false;
    }
    if let Some((i, _)) = best {
        rows[i].best = true;
    }
}

/// The seed of a comparison's resamples: a hash of its row and metric, so that each
/// comparison has its own draws and a report made twice prints the same figures.
fn resampling_seed(label: &str, metric: Metric) -> u64 {
    // FNV-1a: stable across Rust versions, unlike the standard library's hasher.
    label
        .bytes()
        .chain(metric.key().bytes())
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// Holm's adjustment over one table's comparisons with CE: every difference with a p-value in
/// the table's metrics is one member of the family.
fn adjust_by_holm(rows: &mut [PlanRow], metrics: &[Metric]) {
    let members: Vec<(usize, Metric, f64)> = rows
        .iter()
        .enumerate()
        .flat_map(|(i, row)| {
            metrics
                .iter()
                .filter_map(move |&metric| Some((i, metric, row.metric(metric).vs_ce?.p?)))
        })
        .collect();
    let p_values: Vec<f64> = members.iter().map(|(_, _, p)| *p).collect();
    for ((i, metric, _), adjusted) in members.iter().zip(multiple::holm(&p_values)) {
        if let Some(difference) = rows[*i].metrics[metric.index()].vs_ce.as_mut() {
            difference.p_holm = Some(adjusted);
        }
    }
}

/// What a table's comparisons with CE rest on: how many there are (the Holm family) and the
/// fewest seed pairs of any.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Family {
    pub comparisons: usize,
    pub fewest_pairs: Option<usize>,
}

/// The Holm family of a table of these metrics.
pub fn family(rows: &[PlanRow], metrics: &[Metric]) -> Family {
    let differences: Vec<&PairedDifference> = rows
        .iter()
        .flat_map(|row| metrics.iter().filter_map(|&m| row.metric(m).vs_ce.as_ref()))
        .collect();
    Family {
        comparisons: differences.iter().filter(|d| d.p.is_some()).count(),
        fewest_pairs: differences.iter().map(|d| d.pairs).min(),
    }
}

/// The rows of stage-1 jobs, the best among them marked: what the figures draw (a stage-2
/// job's epochs are its classifier's, not a training run's).
pub(crate) fn stage1_rows(rows: &[PlanRow]) -> Vec<PlanRow> {
    let mut stage1: Vec<PlanRow> = rows.iter().filter(|r| !r.is_stage2()).cloned().collect();
    mark_best(&mut stage1);
    stage1
}

/// Mean recall and precision of one class group, over the group's classes, then over seeds.
pub(crate) struct GroupRecall {
    pub(crate) group: &'static str,
    /// Classes in the group.
    pub(crate) classes: usize,
    /// Seeds with final per-class metrics.
    pub(crate) n: usize,
    pub(crate) recall_mean: Option<f64>,
    pub(crate) recall_std: Option<f64>,
    pub(crate) precision_mean: Option<f64>,
    pub(crate) precision_std: Option<f64>,
}

/// Whether a class belongs to a group.
type Membership = fn(&ClassRow) -> bool;

/// The group names recall.csv reports, and which classes each holds.
const RECALL_GROUPS: [(&str, Membership); 5] = [
    ("head", |c| c.group == ClassGroup::Head),
    ("tail", |c| c.group == ClassGroup::Tail),
    ("many", |c| c.shot == Shot::Many),
    ("medium", |c| c.shot == Shot::Medium),
    ("few", |c| c.shot == Shot::Few),
];

/// The final-epoch per-class rows of a plan row's jobs, by job.
fn final_classes_by_job<'a>(tidy: &'a Tidy, row: &PlanRow) -> BTreeMap<&'a str, Vec<&'a ClassRow>> {
    let mut by_job: BTreeMap<&str, Vec<&ClassRow>> = BTreeMap::new();
    for class in tidy.classes.iter().filter(|c| c.is_final) {
        if row.has_job(&class.job_id) {
            by_job.entry(&class.job_id).or_default().push(class);
        }
    }
    by_job
}

pub(crate) fn group_recalls(tidy: &Tidy, row: &PlanRow) -> Vec<GroupRecall> {
    let by_job = final_classes_by_job(tidy, row);
    RECALL_GROUPS
        .iter()
        .map(|(group, member)| {
            let mut recalls = Vec::new();
            let mut precisions = Vec::new();
            let mut classes = 0;
            for job_classes in by_job.values() {
                let members: Vec<&&ClassRow> = job_classes.iter().filter(|c| member(c)).collect();
                classes = classes.max(members.len());
                let recall: Vec<f64> = members.iter().map(|c| c.recall).collect();
                let precision: Vec<f64> = members.iter().map(|c| c.precision).collect();
                if let (Some(recall), Some(precision)) =
                    (stats::mean(&recall), stats::mean(&precision))
                {
                    recalls.push(recall);
                    precisions.push(precision);
                }
            }
            GroupRecall {
                group,
                classes,
                n: recalls.len(),
                recall_mean: stats::mean(&recalls),
                recall_std: stats::sample_std(&recalls),
                precision_mean: stats::mean(&precisions),
                precision_std: stats::sample_std(&precisions),
            }
        })
        .collect()
}

/// A class as the per-class table and Figure 1 key it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ClassKey {
    pub(crate) class: u32,
    pub(crate) train_count: u32,
    pub(crate) group: &'static str,
    pub(crate) shot: &'static str,
}

impl ClassKey {
    fn of(row: &ClassRow) -> ClassKey {
        ClassKey {
            class: row.class,
            train_count: row.train_count,
            group: row.group.as_str(),
            shot: row.shot.as_str(),
        }
    }
}

/// Mean recall over a plan row's seeds, per class, at one epoch (`None`: the final epoch).
pub(crate) fn class_recalls(
    tidy: &Tidy,
    row: &PlanRow,
    epoch: Option<u32>,
) -> BTreeMap<ClassKey, f64> {
    let mut by_class: HashMap<ClassKey, Vec<f64>> = HashMap::new();
    let wanted = |class: &ClassRow| match epoch {
        None => class.is_final,
        Some(epoch) => class.epoch == epoch,
    };
    for class in tidy.classes.iter().filter(|c| wanted(c)) {
        if row.has_job(&class.job_id) {
            by_class
                .entry(ClassKey::of(class))
                .or_default()
                .push(class.recall);
        }
    }
    by_class
        .into_iter()
        .filter_map(|(key, recalls)| Some((key, stats::mean(&recalls)?)))
        .collect()
}
