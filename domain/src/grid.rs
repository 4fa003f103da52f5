//! A [`SweepSpec`] expanded into its grid of [`JobSpec`]s: base losses × samplers × plans ×
//! list-valued settings × seeds, each such stage-1 job followed by its stage-2 jobs (one per
//! stage-2 method and setting).
//!
//! Ids are hashes of content, so the same spec always gives the same sweep id and job ids, and a
//! spec that differs in any setting gives different ones.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::arch::Precision;
use crate::augment::{Augmentation, Mix, Policy};
use crate::baseline::{BaseLoss, Sampler};
use crate::job::Stage2;
use crate::job::{
    AxisValue, DEFAULT_IMBALANCE_RATIO, DatasetConfig, DatasetKind, HeadSplit, JobId, JobSpec,
    ListConfig, LossConfig, LossPlan, LrSchedule, ModelConfig, Normalization, SweepId,
    SyntheticConfig, TrainConfig,
};
use crate::spec::{Axis, DEFAULT_CROP, DatasetSection, SampledAxis, SubsetSeed, SweepSpec};
use crate::stage2::Stage2Method;

/// The settings of one point of the grid, before plan and seed.
#[derive(Clone, Serialize)]
struct Settings {
    dataset: DatasetConfig,
    model: ModelConfig,
    train: TrainConfig,
    losses: LossConfig,
    /// A stage-2 job's method; left out of a stage-1 job's hash, so its id is the one it had
    /// before stage 2 existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    stage2: Option<Stage2Method>,
}

/// Reads each setting of the spec for one choice of axis values, and notes which settings are
/// axes (lists) and which are sampled (distributions). Resolving the spec once with no choice
/// lists them; every setting is named once.
struct Resolver<'a> {
    choice: &'a BTreeMap<&'static str, f64>,
    axes: RefCell<Vec<(&'static str, Vec<f64>)>>,
    sampled: RefCell<Vec<SampledAxis>>,
}

impl<'a> Resolver<'a> {
    fn new(choice: &'a BTreeMap<&'static str, f64>) -> Self {
        Self {
            choice,
            axes: RefCell::new(Vec::new()),
            sampled: RefCell::new(Vec::new()),
        }
    }

    fn note<T: Copy + Into<f64>>(&self, name: &'static str, axis: &Axis<T>, whole: bool) {
        let reals = |values: &[T]| values.iter().map(|&v| v.into()).collect();
        match axis {
            Axis::One(_) => {}
            Axis::Many(values) => self.axes.borrow_mut().push((name, reals(values))),
            Axis::Sampled {
                distribution,
                values,
            } => self.sampled.borrow_mut().push(SampledAxis {
                name,
                distribution: *distribution,
                values: reals(values),
                whole,
            }),
        }
    }

    fn real(&self, name: &'static str, axis: &Axis<f64>) -> f64 {
        self.note(name, axis, false);
        self.choice
            .get(name)
            .copied()
            .unwrap_or_else(|| axis.first())
    }

    fn count(&self, name: &'static str, axis: &Axis<u32>) -> u32 {
        self.note(name, axis, true);
        // Axis values of a whole-number setting are whole numbers stored as f64.
        self.choice
            .get(name)
            .map(|&v| v as u32)
            .unwrap_or_else(|| axis.first())
    }

    fn settings(&self, spec: &SweepSpec) -> Settings {
        let d = &spec.dataset;
        let head = match (&d.head_min_count, &d.head_fraction) {
            (_, Some(fraction)) => HeadSplit::Fraction(self.real("head_fraction", fraction)),
            (Some(count), None) => HeadSplit::MinCount(self.count("head_min_count", count)),
            (None, None) => HeadSplit::MinCount(100),
        };
        let opt_count = |name, axis: &Option<Axis<u32>>, default| {
            axis.as_ref().map_or(default, |a| self.count(name, a))
        };
        let synthetic = SyntheticConfig::DEFAULT;
        let dataset = DatasetConfig {
            kind: d.kind,
            path: d.path.clone(),
            // List data is trained as its lists give it.
            imbalance_ratio: match &d.imbalance_ratio {
                Some(axis) => self.real("imbalance_ratio", axis),
                None if d.kind.is_list() => 1.0,
                None => DEFAULT_IMBALANCE_RATIO,
            },
            head,
            sampling_seed: u64::from(self.count("sampling_seed", &d.sampling_seed)),
            classes: match &d.classes {
                Some(axis) => Some(self.count("classes", axis)),
                // The synthetic set has no natural class count.
                None if d.kind == DatasetKind::Synthetic => Some(SyntheticConfig::DEFAULT_CLASSES),
                None => None,
            },
            synthetic: SyntheticConfig {
                train_per_class: opt_count(
                    "train_per_class",
                    &d.train_per_class,
                    synthetic.train_per_class,
                ),
                test_per_class: opt_count(
                    "test_per_class",
                    &d.test_per_class,
                    synthetic.test_per_class,
                ),
                image_size: opt_count("image_size", &d.image_size, synthetic.image_size),
                channels: opt_count("channels", &d.channels, synthetic.channels),
                noise: d
                    .noise
                    .as_ref()
                    .map_or(synthetic.noise, |a| self.real("noise", a)),
            },
            val_per_class: d.val_per_class,
            // Set per job by the grid: it is the job's seed.
            subset_seed: None,
            list: d.kind.is_list().then(|| list_config(d)),
        };
        let t = &spec.train;
        let arch = spec.model.arch();
        let epochs = self.count("epochs", &t.epochs);
        let train = TrainConfig {
            epochs,
            batch_size: self.count("batch_size", &t.batch_size),
            lr: self.real("lr", &t.lr),
            momentum: self.real("momentum", &t.momentum),
            weight_decay: self.real("weight_decay", &t.weight_decay),
            warmup_epochs: match &t.warmup_epochs {
                Some(axis) => self.count("warmup_epochs", axis),
                None => (epochs / 10).min(5),
            },
            lr_decay_epochs: match t.lr_schedule {
                LrSchedule::Cosine => Vec::new(),
                LrSchedule::Step => t.lr_decay_epochs.clone().unwrap_or_else(|| {
                    // 160 and 180 of 200 epochs, scaled; a decay at epoch 0 would be no schedule.
                    let mut decays: Vec<u32> = [8, 9]
                        .iter()
                        .map(|tenths| epochs * tenths / 10)
                        .filter(|&e| e >= 1)
                        .collect();
                    decays.dedup();
                    decays
                }),
            },
            lr_decay_factor: self.real("lr_decay_factor", &t.lr_decay_factor),
            pretrain_ce_epochs: self.count("pretrain_ce_epochs", &t.pretrain_ce_epochs),
            eval_epochs: with_rungs(&t.eval_epochs, &spec.rungs(), epochs),
            checkpoint_every: self.count("checkpoint_every", &t.checkpoint_every),
            augment: t.augment,
            // Set per job by the grid: the sampler and the base loss are axes of names.
            sampler: Sampler::Instance,
            // `[eval] posthoc_tau` is refused (it moved to stage 2); the field stays for the
            // jobs of earlier versions.
            posthoc_tau: Vec::new(),
            lr_schedule: t.lr_schedule,
            lr_reference_batch: t.lr_reference_batch,
            decay_norm_and_bias: t.decay_norm_and_bias,
            // The ImageNet networks train in bf16 and channels-last unless told otherwise.
            precision: t.precision.unwrap_or(if arch.is_cifar() {
                Precision::Fp32
            } else {
                Precision::Bf16
            }),
            channels_last: t.channels_last.unwrap_or(!arch.is_cifar()),
            // Set per job by the grid: the policy and the mixing are axes of names.
            augmentation: Augmentation {
                cutout: self.count("cutout", &spec.augment.cutout),
                ..Augmentation::default()
            },
        };
        let l = &spec.losses;
        let losses = LossConfig {
            comp_weight: self.real("comp_weight", &l.comp_weight),
            comp_mode: l.comp_mode,
            pc_weight: self.real("pc_weight", &l.pc_weight),
            pc_push_weight: self.real("pc_push_weight", &l.pc_push_weight),
            pc_center_lr: self.real("pc_center_lr", &l.pc_center_lr),
            base: BaseLoss::Ce,
        };
        Settings {
            dataset,
            model: ModelConfig {
                depth: self.count("depth", &spec.model.depth()),
                arch,
                init: spec.model.init.clone(),
                init_skip: spec.model.init_skip.clone(),
            },
            train,
            losses,
            stage2: None,
        }
    }
}

/// The spec's evaluation epochs up to the job's last, and every rung of a search (where its
/// validation metric is read), in increasing order. Without rungs, the spec's list as given.
fn with_rungs(given: &[u32], rungs: &[u32], epochs: u32) -> Vec<u32> {
    let mut eval: Vec<u32> = given.iter().copied().filter(|&e| e <= epochs).collect();
    if !rungs.is_empty() {
        eval.extend(rungs);
        eval.sort_unstable();
        eval.dedup();
    }
    eval
}

fn three(values: &Option<Vec<f64>>) -> Option<[f64; 3]> {
    values.as_deref().and_then(|v| v.try_into().ok())
}

/// The files of list data: the spec's, else the preset's.
fn list_config(d: &DatasetSection) -> ListConfig {
    let preset = d.kind.preset();
    let named = |given: &Option<String>, known: Option<&str>| {
        given.clone().or_else(|| known.map(str::to_owned))
    };
    let crop_size = d.crop_size.unwrap_or(DEFAULT_CROP);
    ListConfig {
        train: named(&d.train_list, preset.map(|p| p.train)).unwrap_or_default(),
        val: named(&d.val_list, preset.and_then(|p| p.val)),
        test: named(&d.test_list, preset.map(|p| p.test)).unwrap_or_default(),
        crop_size,
        // 256 for 224, as every ImageNet evaluation since AlexNet.
        resize_size: d.resize_size.unwrap_or(crop_size * 8 / 7),
        color_jitter: d.color_jitter.unwrap_or(0.0),
        normalization: match (three(&d.mean), three(&d.std)) {
            (Some(mean), Some(std)) => Normalization { mean, std },
            // Validation accepts both, of three values each, or neither.
            _ => d.kind.normalization(),
        },
        reduced_decode: d.reduced_decode.unwrap_or(true),
        packed: d.packed.clone(),
    }
}

impl SweepSpec {
    /// The settings given as lists, in the order of the spec's sections.
    pub fn axes(&self) -> Vec<(&'static str, Vec<f64>)> {
        let none = BTreeMap::new();
        let resolver = Resolver::new(&none);
        resolver.settings(self);
        resolver.axes.into_inner()
    }

    /// The settings given as distributions, in the order of the spec's sections.
    pub fn sampled_axes(&self) -> Vec<SampledAxis> {
        let none = BTreeMap::new();
        let resolver = Resolver::new(&none);
        resolver.settings(self);
        resolver.sampled.into_inner()
    }

    /// How many configurations the sampled settings contribute: `[search] samples`, or 1
    /// when no setting is sampled.
    pub fn sample_count(&self) -> usize {
        match self.search.samples {
            Some(n) if !self.sampled_axes().is_empty() => n as usize,
            _ => 1,
        }
    }

    /// The drawn configurations of the sampled settings: `samples` points of the scrambled
    /// Halton sequence seeded by `[search] seed`, one value per sampled setting each, in
    /// `sampled_axes` order. One empty configuration when no setting is sampled.
    pub fn samples(&self) -> Vec<Vec<AxisValue>> {
        let sampled = self.sampled_axes();
        if sampled.is_empty() {
            return vec![Vec::new()];
        }
        crate::spec::halton(self.sample_count(), sampled.len(), self.search.seed)
            .into_iter()
            .map(|point| {
                sampled
                    .iter()
                    .zip(point)
                    .map(|(axis, u)| AxisValue {
                        name: axis.name.to_owned(),
                        value: axis.draw(u),
                    })
                    .collect()
            })
            .collect()
    }

    /// Every job of the sweep: for each base loss, each sampler, each plan, each combination of
    /// axis values, each seed, a stage-1 job and right after it its stage-2 jobs.
    pub fn jobs(&self) -> Vec<JobSpec> {
        let axes = self.axes();
        let sampled = self.sampled_axes();
        let names: Vec<&'static str> = axes
            .iter()
            .map(|(name, _)| *name)
            .chain(sampled.iter().map(|axis| axis.name))
            .collect();
        let mut points: Vec<Vec<AxisValue>> = vec![Vec::new()];
        for (name, values) in &axes {
            points = points
                .iter()
                .flat_map(|point| {
                    values.iter().map(move |&value| {
                        let mut point = point.clone();
                        point.push(AxisValue {
                            name: (*name).to_owned(),
                            value,
                        });
                        point
                    })
                })
                .collect();
        }
        // The sampled settings' configurations, drawn jointly, are one more axis (the last).
        let samples = self.samples();
        if !sampled.is_empty() {
            points = points
                .iter()
                .flat_map(|point| {
                    samples.iter().map(move |sample| {
                        let mut point = point.clone();
                        point.extend(sample.iter().cloned());
                        point
                    })
                })
                .collect();
        }
        // Each distinct setting once, and the grid as indices into them: a 100,000-seed sweep
        // is not held twice over while its specs are made.
        let mut distinct: Vec<(Vec<AxisValue>, Settings)> = Vec::new();
        let mut grid: Vec<(LossPlan, u64, usize)> = Vec::new();
        let stage2 = self.stage2_methods();
        let augmentations = self.augment.choices();
        let sampler_augmentations: Vec<(Sampler, Policy, Mix)> = self
            .samplers()
            .iter()
            .flat_map(|&s| augmentations.iter().map(move |&(p, m)| (s, p, m)))
            .collect();
        for &base in self.bases() {
            for &(sampler, policy, mix) in &sampler_augmentations {
                for plan in self.plans() {
                    for point in &points {
                        let choice = names
                            .iter()
                            .zip(point)
                            .map(|(name, axis)| (*name, axis.value))
                            .collect();
                        let resolver = Resolver::new(&choice);
                        let mut settings = resolver.settings(self);
                        settings.losses.base = self.base_loss(base, settings.train.epochs);
                        settings.train.sampler = sampler;
                        settings.train.augmentation.policy = policy;
                        settings.train.augmentation.mix = mix;
                        let index = distinct.len();
                        let children = stage2.iter().map(|&method| Settings {
                            stage2: Some(method),
                            ..settings.clone()
                        });
                        let children: Vec<Settings> = children.collect();
                        distinct.push((point.clone(), settings));
                        distinct.extend(children.into_iter().map(|c| (point.clone(), c)));
                        for &seed in self.seeds() {
                            grid.push((plan, seed, index));
                            grid.extend((1..=stage2.len()).map(|k| (plan, seed, index + k)));
                        }
                    }
                }
            }
        }
        let per_job_subset = self.dataset.subset_seed == SubsetSeed::Job;
        let content = Content {
            grid: &grid,
            distinct: &distinct,
            per_job_subset,
        };
        // Keeping models is the sweep's own setting: the same jobs kept otherwise are another
        // sweep (it is left out when off, so that older sweeps keep their ids).
        let hash = if self.keep_models {
            short_hash(&(&self.name, self.max_attempts, content, "keep_models"))
        } else {
            short_hash(&(&self.name, self.max_attempts, content))
        };
        let sweep = SweepId(format!("{}-{}", self.name, &hash[..8]));
        // A stage-2 job follows its stage-1 job in the grid.
        let mut parent: Option<JobId> = None;
        grid.into_iter()
            .map(|(plan, seed, index)| {
                let (axes, shared) = &distinct[index];
                let own = per_job_subset.then(|| shared.with_subset_seed(seed));
                let settings = own.as_ref().unwrap_or(shared);
                let id = JobId(short_hash(&(sweep.as_str(), plan, seed, settings)));
                let stage2 = match settings.stage2 {
                    None => {
                        parent = Some(id.clone());
                        None
                    }
                    Some(method) => Some(Stage2 {
                        parent: parent.clone().expect("a stage-1 job comes first"),
                        method,
                    }),
                };
                JobSpec {
                    id,
                    sweep: sweep.clone(),
                    plan,
                    seed,
                    axes: axes.clone(),
                    dataset: settings.dataset.clone(),
                    model: settings.model.clone(),
                    train: settings.train.clone(),
                    losses: settings.losses.clone(),
                    stage2,
                }
            })
            .collect()
    }

    /// `NAME-HASH`: the same name and the same jobs give the same id.
    pub fn sweep_id(&self) -> SweepId {
        self.jobs()
            .first()
            .map(|job| job.sweep.clone())
            .expect("a valid spec has at least one job")
    }
}

impl Settings {
    /// The settings of a job whose long-tailed subset is drawn with its own seed.
    fn with_subset_seed(&self, seed: u64) -> Settings {
        let mut settings = self.clone();
        settings.dataset.subset_seed = Some(seed);
        settings
    }
}

/// The grid's jobs as `[plan, seed, settings]` triples, serialised from the indices.
struct Content<'a> {
    grid: &'a [(LossPlan, u64, usize)],
    distinct: &'a [(Vec<AxisValue>, Settings)],
    /// Each job's settings carry its seed as the subset's (`subset_seed = "job"`).
    per_job_subset: bool,
}

impl Serialize for Content<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.grid.iter().map(|&(plan, seed, index)| {
            let shared = &self.distinct[index].1;
            let settings = if self.per_job_subset {
                Cow::Owned(shared.with_subset_seed(seed))
            } else {
                Cow::Borrowed(shared)
            };
            (plan, seed, settings)
        }))
    }
}

/// Feeds JSON to the hash as it is written: a large grid's JSON is never held whole.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn hash_json<T: Serialize>(value: &T) -> String {
    let mut writer = HashWriter(Sha256::new());
    serde_json::to_writer(&mut writer, value).expect("settings serialise to JSON");
    writer
        .0
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn short_hash<T: Serialize>(value: &T) -> String {
    hash_json(value)[..12].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::LossPlan;

    fn spec(extra: &str) -> SweepSpec {
        SweepSpec::parse(&format!(
            "name = \"t\"\nseeds = [0, 1, 2]\n[dataset]\nkind = \"synthetic\"\n{extra}"
        ))
        .unwrap()
    }

    #[test]
    fn the_synthetic_settings_a_spec_leaves_out_are_the_ones_its_limits_are_checked_at() {
        let job = &spec("").jobs()[0];
        assert_eq!(job.dataset.synthetic, SyntheticConfig::DEFAULT);
        assert_eq!(job.dataset.classes, Some(SyntheticConfig::DEFAULT_CLASSES));
        assert_eq!(job.dataset.imbalance_ratio, DEFAULT_IMBALANCE_RATIO);
        let train = SyntheticConfig::DEFAULT.train_per_class;
        let refusal = SweepSpec::parse(&format!(
            "name = \"t\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\nval_per_class = {train}"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            refusal.contains(&format!("train_per_class is {train}")),
            "{refusal}"
        );
    }

    #[test]
    fn paper_grid_is_nine_plans_per_seed() {
        let jobs = spec("").jobs();
        assert_eq!(jobs.len(), 27);
        let plans: Vec<_> = jobs.iter().step_by(3).map(|j| j.plan).collect();
        assert_eq!(plans, LossPlan::PAPER);
    }

    #[test]
    fn full_grid_is_sixteen_plans() {
        assert_eq!(spec("[losses]\ngrid = \"full\"").jobs().len(), 48);
    }

    #[test]
    fn a_list_setting_is_an_axis() {
        let jobs = spec("[losses]\npc_weight = [0.1, 1.0]\n[train]\nepochs = [20, 40]").jobs();
        assert_eq!(jobs.len(), 27 * 4);
        let job = &jobs[3];
        assert_eq!(job.axes.len(), 2);
        assert_eq!(job.losses.pc_weight, job.axes[1].value);
        assert_eq!(job.train.epochs as f64, job.axes[0].value);
        // Default decays follow each job's own epoch count.
        assert!(
            jobs.iter().all(|j| j.train.lr_decay_epochs
                == vec![j.train.epochs * 8 / 10, j.train.epochs * 9 / 10])
        );
    }

    #[test]
    fn base_losses_and_samplers_are_axes_of_names() {
        let jobs = spec(
            "[losses]\nplans = [{}, { comp = \"tail\", pc = \"head\" }]\nbase = [\"ce\", \"la\", \"ldam_drw\"]\n[train]\nepochs = 10\nsampler = [\"instance\", \"sqrt\"]",
        )
        .jobs();
        assert_eq!(jobs.len(), 3 * 2 * 2 * 3);
        let mut ids: Vec<_> = jobs.iter().map(|j| j.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), jobs.len());
        assert_eq!(jobs[0].losses.base, BaseLoss::Ce);
        assert_eq!(jobs[0].train.sampler, Sampler::Instance);
        assert_eq!(jobs[3].train.sampler, Sampler::Instance);
        assert_eq!(jobs[6].train.sampler, Sampler::Sqrt);
        assert_eq!(jobs[12].losses.base, BaseLoss::La { tau: 1.0 });
        // Deferred re-weighting starts at 80% of the epochs unless drw_epoch says otherwise.
        assert_eq!(
            jobs[24].losses.base,
            BaseLoss::LdamDrw {
                max_margin: 0.5,
                s: 30.0,
                drw_epoch: 8
            }
        );
        assert!(
            jobs[24]
                .label()
                .starts_with("base=ldam_drw comp=none,pc=none")
        );
        assert!(
            jobs[30]
                .label()
                .starts_with("base=ldam_drw sampler=sqrt comp=none")
        );
    }

    #[test]
    fn cross_entropy_jobs_keep_the_ids_of_a_spec_without_base_losses() {
        let plain = spec("").jobs();
        let explicit = spec("[losses]\nbase = \"ce\"\n[train]\nsampler = \"instance\"").jobs();
        assert_eq!(plain, explicit);
        let with_la = spec("[losses]\nbase = [\"ce\", \"la\"]").jobs();
        assert_eq!(with_la.len(), 2 * plain.len());
        assert!(!serde_json::to_string(&plain[0]).unwrap().contains("base"));
    }

    #[test]
    fn a_validation_split_and_a_per_job_subset_are_settings_of_their_own() {
        let plain = spec("").jobs();
        // At their defaults they are left out of a job's JSON, so older ids hold.
        let json = serde_json::to_string(&plain[0]).unwrap();
        assert!(!json.contains("val_per_class") && !json.contains("subset_seed"));
        assert_eq!(
            plain,
            spec(
                "val_per_class = 0
subset_seed = \"fixed\""
            )
            .jobs()
        );

        let held_out = spec("val_per_class = 20").jobs();
        assert!(held_out.iter().all(|j| j.dataset.val_per_class == 20));
        assert_ne!(held_out[0].id, plain[0].id);
        assert_ne!(held_out[0].sweep, plain[0].sweep);

        let per_job = spec("subset_seed = \"job\"").jobs();
        for (job, fixed) in per_job.iter().zip(&plain) {
            assert_eq!(job.dataset.subset_seed, Some(job.seed));
            assert_ne!(job.id, fixed.id);
        }
        assert_ne!(per_job[0].sweep, plain[0].sweep);
        assert_eq!(per_job, spec("subset_seed = \"job\"").jobs());
    }

    #[test]
    fn each_stage1_job_is_followed_by_its_stage2_jobs_whose_settings_are_their_own_axes() {
        let plain = spec("[losses]\nplans = [{}, { comp = \"tail\" }]").jobs();
        let jobs = spec(
            "[losses]\nplans = [{}, { comp = \"tail\" }]\n\
             [stage2]\nmethod = [\"none\", \"crt\", \"tau_norm\", \"ncm\"]\n\
             [stage2.crt]\nepochs = [5, 10]\n[stage2.tau_norm]\ntau = [0.5, 1.0, 2.0]",
        )
        .jobs();
        // Per stage-1 job: cRT at 2 epoch counts, τ-norm at 3 taus, NCM: 6 stage-2 jobs.
        assert_eq!(jobs.len(), plain.len() * 7);
        let stage1: Vec<&JobSpec> = jobs.iter().filter(|j| j.stage2.is_none()).collect();
        assert_eq!(stage1.len(), plain.len());
        // The same settings as without stage 2 (the ids differ: the sweep does).
        for (a, b) in stage1.iter().zip(&plain) {
            assert_eq!(
                (a.plan, a.seed, &a.train, &a.losses),
                (b.plan, b.seed, &b.train, &b.losses)
            );
        }
        for chunk in jobs.chunks(7) {
            let parent = &chunk[0];
            assert!(parent.stage2.is_none());
            let methods: Vec<String> = chunk[1..]
                .iter()
                .map(|child| {
                    let stage2 = child.stage2.as_ref().unwrap();
                    assert_eq!(stage2.parent, parent.id);
                    assert_eq!((child.plan, child.seed), (parent.plan, parent.seed));
                    assert_eq!(child.train, parent.train);
                    assert_eq!(child.losses, parent.losses);
                    stage2.method.to_string()
                })
                .collect();
            assert_eq!(
                methods,
                [
                    "crt(epochs=5,lr=0.1)",
                    "crt(epochs=10,lr=0.1)",
                    "tau_norm(tau=0.5)",
                    "tau_norm(tau=1)",
                    "tau_norm(tau=2)",
                    "ncm"
                ]
            );
            // The method's settings are no axis of the grid.
            assert!(chunk.iter().all(|j| j.axes.is_empty()));
        }
        let mut unique: Vec<&JobId> = jobs.iter().map(|j| &j.id).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), jobs.len());
    }

    #[test]
    fn keeping_models_is_another_sweep_of_the_same_jobs() {
        let plain = spec("").jobs();
        let kept = SweepSpec::parse(
            "name = \"t\"\nseeds = [0, 1, 2]\nkeep_models = true\n[dataset]\nkind = \"synthetic\"\n",
        )
        .unwrap();
        assert!(kept.keep_models);
        assert!(SweepSpec::keeps_models(
            "keep_models = true\n[eval]\nposthoc_tau = [1]"
        ));
        assert!(!SweepSpec::keeps_models("name = \"t\""));
        let kept = kept.jobs();
        assert_ne!(kept[0].sweep, plain[0].sweep);
        assert_eq!(kept.len(), plain.len());
    }

    #[test]
    fn stage2_settings_of_a_method_not_listed_and_posthoc_tau_are_refused() {
        let parse = |extra: &str| {
            SweepSpec::parse(&format!(
                "name = \"t\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n{extra}"
            ))
        };
        let err = parse("[stage2]\nmethod = [\"crt\"]\n[stage2.tau_norm]\ntau = 1").unwrap_err();
        assert!(
            err.to_string().contains(
                "stage2.tau_norm: settings of `tau_norm`, which stage2.method does not list"
            ),
            "{err}"
        );
        let err =
            parse("[stage2]\nmethod = [\"tau_norm\"]\n[stage2.tau_norm]\ntau = -1").unwrap_err();
        assert!(
            err.to_string()
                .contains("stage2.tau_norm.tau: -1 is negative"),
            "{err}"
        );
        let err = parse("[stage2]\nmethod = [\"crt\", \"crt\"]").unwrap_err();
        assert!(
            err.to_string()
                .contains("stage2.method: crt is listed twice"),
            "{err}"
        );
        let err = parse("[stage2]\nmethod = [\"decoupled\"]").unwrap_err();
        assert!(err.to_string().contains("stage2.method"), "{err}");
        let err = parse("[eval]\nposthoc_tau = [1.0]").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "line 6: eval.posthoc_tau: post-hoc logit adjustment is a stage-2 method now"
            ),
            "{err}"
        );
        let spec =
            parse("[stage2]\nmethod = [\"posthoc_la\"]\n[stage2.posthoc_la]\ntau = [0.5, 1]")
                .unwrap();
        assert_eq!(spec.jobs().len(), 9 * 3);
        assert_eq!(spec.job_count(), 27);
    }

    #[test]
    fn stage2_options_run_as_values_of_their_method_and_an_unknown_value_names_its_key() {
        let parse = |extra: &str| {
            SweepSpec::parse(&format!(
                "name = \"t\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n\
                 [losses]\nplans = [{{}}]\n{extra}"
            ))
        };
        let spec = parse(
            "[stage2]\nmethod = [\"none\", \"crt\", \"lws\", \"tau_norm\", \"ncm\"]\n\
             [stage2.crt]\nbn = [\"train\", \"frozen\"]\n\
             sampler = [\"class_aware\", \"class_balanced\"]\n\
             [stage2.lws]\nbn = \"frozen\"\n\
             [stage2.tau_norm]\ntau = [0, 1]\nbias = [\"drop\", \"keep\"]\n\
             [stage2.ncm]\nfeatures = [\"cl2n\", \"l2n\"]",
        )
        .unwrap();
        let methods: Vec<String> = spec
            .jobs()
            .iter()
            .filter_map(|j| j.stage2.as_ref().map(|s| s.method.to_string()))
            .collect();
        assert_eq!(
            methods,
            [
                "crt(epochs=10,lr=0.1)",
                "crt(epochs=10,lr=0.1,sampler=class_balanced)",
                "crt(epochs=10,lr=0.1,bn=frozen)",
                "crt(epochs=10,lr=0.1,bn=frozen,sampler=class_balanced)",
                "lws(epochs=10,lr=0.1,bn=frozen)",
                "tau_norm(tau=0)",
                "tau_norm(tau=0,bias=keep)",
                "tau_norm(tau=1)",
                "tau_norm(tau=1,bias=keep)",
                "ncm",
                "ncm(features=l2n)",
            ]
        );
        assert_eq!(spec.job_count(), 12);
        // A job at the defaults is the job the spec without the options gives, id and all.
        let plain = parse("[stage2]\nmethod = [\"none\", \"crt\", \"ncm\"]").unwrap();
        let defaults = parse(
            "[stage2]\nmethod = [\"none\", \"crt\", \"ncm\"]\n\
             [stage2.crt]\nbn = \"train\"\nsampler = \"class_aware\"\n\
             [stage2.ncm]\nfeatures = \"cl2n\"",
        )
        .unwrap();
        assert_eq!(plain.jobs(), defaults.jobs());
        for (extra, key) in [
            (
                "[stage2]\nmethod = [\"crt\"]\n[stage2.crt]\nbn = \"eval\"",
                "stage2.crt.bn",
            ),
            (
                "[stage2]\nmethod = [\"lws\"]\n[stage2.lws]\nsampler = [\"sqrt\"]",
                "stage2.lws.sampler",
            ),
            (
                "[stage2]\nmethod = [\"tau_norm\"]\n[stage2.tau_norm]\nbias = \"scaled\"",
                "stage2.tau_norm.bias",
            ),
            (
                "[stage2]\nmethod = [\"ncm\"]\n[stage2.ncm]\nfeatures = \"un\"",
                "stage2.ncm.features",
            ),
            (
                "[stage2]\nmethod = [\"crt\"]\n[stage2.crt]\nbn = [\"train\", \"train\"]",
                "stage2.crt.bn: train is listed twice",
            ),
            (
                "[stage2]\nmethod = [\"crt\"]\n[stage2.ncm]\nfeatures = \"l2n\"",
                "stage2.ncm: settings of `ncm`, which stage2.method does not list",
            ),
        ] {
            let err = parse(extra).unwrap_err().to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
    }

    #[test]
    fn ids_are_deterministic_and_unique() {
        let a = spec("[losses]\npc_weight = [0.1, 1.0]").jobs();
        let b = spec("[losses]\npc_weight = [0.1, 1.0]").jobs();
        assert_eq!(a, b);
        let mut ids: Vec<_> = a.iter().map(|j| j.id.clone()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), a.len());
        let c = spec("[losses]\npc_weight = [0.1, 2.0]").jobs();
        assert_ne!(a[0].sweep, c[0].sweep);
        assert_ne!(a[0].id, c[0].id);
        assert!(a[0].sweep.as_str().starts_with("t-"));
    }

    #[test]
    fn list_data_resolves_its_preset_files_and_old_specs_keep_their_ids() {
        let parse = |dataset: &str| {
            SweepSpec::parse(&format!("name = \"t\"\nseeds = [0]\n[dataset]\n{dataset}"))
                .unwrap()
                .jobs()
                .remove(0)
        };
        let job = parse("kind = \"imagenet-lt\"\npath = \"ImageNet\"");
        assert_eq!(job.dataset.kind, DatasetKind::ImagenetLt);
        assert_eq!(job.dataset.imbalance_ratio, 1.0);
        assert_eq!(
            job.dataset.list,
            Some(ListConfig {
                train: "ImageNet_LT_train.txt".into(),
                val: Some("ImageNet_LT_val.txt".into()),
                test: "ImageNet_LT_test.txt".into(),
                crop_size: 224,
                resize_size: 256,
                color_jitter: 0.0,
                normalization: Normalization::IMAGENET,
                reduced_decode: true,
                packed: None,
            })
        );
        let inat = parse(
            "kind = \"inat2018\"\npath = \"iNat\"\ntrain_list = \"iNaturalist18_train.txt\"\ncrop_size = 112\ncolor_jitter = 0.4",
        );
        let list = inat.dataset.list.clone().unwrap();
        assert_eq!(
            (list.train.as_str(), list.val, list.test.as_str()),
            ("iNaturalist18_train.txt", None, "val2018.json")
        );
        assert_eq!(
            (list.crop_size, list.resize_size, list.color_jitter),
            (112, 128, 0.4)
        );
        // Each preset normalises with its reference loader's statistics unless the spec says
        // otherwise; ImageNet's, the default, stays out of the job's JSON (and its id).
        assert_eq!(list.normalization, Normalization::INAT2018);
        assert_eq!(
            list.normalization.mean,
            [0.466, 0.471, 0.380],
            "classifier-balancing data/dataloader.py"
        );
        assert_eq!(list.normalization.std, [0.195, 0.194, 0.192]);
        assert!(
            serde_json::to_string(&inat)
                .unwrap()
                .contains("\"normalization\"")
        );
        assert!(
            !serde_json::to_string(&job)
                .unwrap()
                .contains("normalization")
        );
        let given = parse(
            "kind = \"list\"\npath = \"d\"\ntrain_list = \"a.txt\"\ntest_list = \"b.txt\"\nclasses = 3\nmean = [0.5, 0.4, 0.3]\nstd = [0.25, 0.2, 0.15]\nreduced_decode = false",
        );
        let list = given.dataset.list.unwrap();
        assert_eq!(
            list.normalization,
            Normalization {
                mean: [0.5, 0.4, 0.3],
                std: [0.25, 0.2, 0.15]
            }
        );
        assert!(!list.reduced_decode);
        let places = parse(
            "kind = \"places-lt\"\npath = \"p\"\nmean = [0.5, 0.5, 0.5]\nstd = [0.2, 0.2, 0.2]",
        );
        assert_eq!(places.dataset.list.unwrap().normalization.std, [0.2; 3]);
        // Jobs of the other kinds carry no list settings: their ids are those of before.
        let plain = spec("").jobs();
        assert!(!serde_json::to_string(&plain[0]).unwrap().contains("list"));
        assert_eq!(plain[0].dataset.imbalance_ratio, 100.0);
    }
}
