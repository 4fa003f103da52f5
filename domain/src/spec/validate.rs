//! The checks serde cannot make: ranges, and settings against each other. Each returns the
//! first failed check's key and message; `SweepSpec::parse` adds the key's line.

use std::fmt;

mod dataset;
mod mislas;
mod weight_balancing;

use super::limits::*;
use super::{Axis, SweepSpec, leaves_its_folder};
use crate::job::LrSchedule;
use crate::stage2::Stage2Kind;

impl SweepSpec {
    /// The checks serde cannot make: ranges, and settings against each other.
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        check(
            !self.name.is_empty()
                && self
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "name",
            "use letters, digits, '-', '_' and '.' only (it names files and ids)",
        )?;
        check(
            self.name.chars().count() <= MAX_NAME_CHARS,
            "name",
            &format!(
                "{} characters is over the limit of {MAX_NAME_CHARS}: every job's id carries the name, give a shorter one",
                self.name.chars().count()
            ),
        )?;
        let seeds = self.seeds.as_deref().unwrap_or_default();
        check(
            !seeds.is_empty(),
            "seeds",
            "give at least one seed, e.g. seeds = [0]",
        )?;
        let mut unique = seeds.to_vec();
        unique.sort_unstable();
        unique.dedup();
        check(
            unique.len() == seeds.len(),
            "seeds",
            "a seed is listed twice",
        )?;
        check(self.max_attempts >= 1, "max_attempts", "must be at least 1")?;
        check(
            self.max_attempts <= MAX_ATTEMPTS,
            "max_attempts",
            &format!(
                "{} attempts is over the limit of {MAX_ATTEMPTS} a job",
                self.max_attempts
            ),
        )?;
        self.validate_dataset()?;
        self.validate_model()?;
        self.validate_train()?;
        self.validate_losses()?;
        self.validate_base()?;
        self.validate_eval()?;
        self.validate_stage2()?;
        self.validate_search()?;
        self.validate_augment()?;
        self.validate_grid_size()
    }

    fn validate_model(&self) -> Result<(), Invalid> {
        let m = &self.model;
        let arch = m.arch();
        if arch.is_cifar() {
            for &depth in m.depth().values() {
                check(
                    depth >= 8 && (depth - 2) % 6 == 0,
                    "model.depth",
                    &format!(
                        "{depth} is not a CIFAR ResNet depth 6n+2 of at least 8 (8, 20, 32, 44, 56, 110)"
                    ),
                )?;
            }
        } else {
            check(
                m.depth.is_none(),
                "model.depth",
                &format!("applies to the CIFAR ResNet; {arch} has its own depth"),
            )?;
        }
        if let Some(init) = &m.init {
            check(
                init.ends_with(".safetensors"),
                "model.init",
                &format!(
                    "`{init}` is not a .safetensors file (write PyTorch's weights with safetensors.torch.save_file)"
                ),
            )?;
            check(
                init.len() <= MAX_PATH_BYTES,
                "model.init",
                &format!("{} bytes is over the limit of {MAX_PATH_BYTES}", init.len()),
            )?;
            check(
                !init.contains('\0'),
                "model.init",
                "holds a NUL character, which no file name can",
            )?;
            check_under_data_root("model.init", init, "the --data-root")?;
        }
        check(
            m.init_skip.is_empty() || m.init.is_some(),
            "model.init_skip",
            "names variables to leave out of model.init, which is not given",
        )?;
        for name in &m.init_skip {
            check(
                !name.is_empty() && !name.starts_with('.') && !name.ends_with('.'),
                "model.init_skip",
                &format!(
                    "`{name}` is not a variable name or prefix such as \"fc\" or \"layer4.2\""
                ),
            )?;
        }
        no_repeats(&m.init_skip, "model.init_skip")
    }

    /// A grid of millions of jobs is a typo (a list where a number was meant), not a study.
    fn validate_grid_size(&self) -> Result<(), Invalid> {
        let mut factors: Vec<(String, usize)> = vec![
            ("losses".to_owned(), self.plans().len()),
            ("seeds".to_owned(), self.seeds().len()),
            ("losses.base".to_owned(), self.bases().len()),
            ("train.sampler".to_owned(), self.samplers().len()),
            ("augment".to_owned(), self.augment.choices().len()),
            // Each stage-1 job and one stage-2 job per method and setting.
            ("stage2.method".to_owned(), 1 + self.stage2_methods().len()),
        ];
        factors.extend(
            self.axes()
                .into_iter()
                .map(|(name, values)| (name.to_owned(), values.len())),
        );
        // The sampled settings, drawn together, are one factor of `samples` configurations.
        if !self.sampled_axes().is_empty() {
            factors.push(("search.samples".to_owned(), self.sample_count()));
        }
        let jobs = factors
            .iter()
            .fold(1u128, |product, (_, n)| product.saturating_mul(*n as u128));
        let (largest, _) = factors
            .iter()
            .max_by_key(|(_, n)| *n)
            .expect("plans and seeds are always factors");
        check(
            jobs <= MAX_JOBS as u128,
            largest,
            &format!("the grid has {jobs} jobs; a sweep holds at most {MAX_JOBS}"),
        )
    }

    fn validate_train(&self) -> Result<(), Invalid> {
        let t = &self.train;
        positive_counts(Some(&t.epochs), "train.epochs")?;
        positive_counts(Some(&t.batch_size), "train.batch_size")?;
        positive_counts(Some(&t.checkpoint_every), "train.checkpoint_every")?;
        for &lr in t.lr.values() {
            check(lr > 0.0, "train.lr", &format!("{lr} is not positive"))?;
        }
        for &m in t.momentum.values() {
            check(
                (0.0..1.0).contains(&m),
                "train.momentum",
                &format!("{m} is not in [0, 1)"),
            )?;
        }
        for &wd in t.weight_decay.values() {
            check(
                wd >= 0.0,
                "train.weight_decay",
                &format!("{wd} is negative"),
            )?;
        }
        for &f in t.lr_decay_factor.values() {
            check(
                f > 0.0 && f <= 1.0,
                "train.lr_decay_factor",
                &format!("{f} is not in (0, 1]"),
            )?;
        }
        // The binding constraint of every "before the last epoch" rule is the shortest run.
        let epochs = t.epochs.min();
        for &w in t
            .warmup_epochs
            .as_ref()
            .map(Axis::values)
            .unwrap_or_default()
        {
            check(
                w < epochs,
                "train.warmup_epochs",
                &format!("{w} warm-up epochs leave no training in {epochs} epochs"),
            )?;
        }
        for &p in t.pretrain_ce_epochs.values() {
            check(
                p < epochs,
                "train.pretrain_ce_epochs",
                &format!(
                    "{p} epochs of cross entropy alone leave none for the plan in {epochs} epochs"
                ),
            )?;
        }
        if let Some(decays) = &t.lr_decay_epochs {
            for &e in decays {
                check(
                    e >= 1 && e < epochs,
                    "train.lr_decay_epochs",
                    &format!("epoch {e} is past the last epoch (train.epochs = {epochs})"),
                )?;
            }
            check(
                decays.windows(2).all(|w| w[0] < w[1]),
                "train.lr_decay_epochs",
                "list the epochs in increasing order",
            )?;
        }
        for &e in &t.eval_epochs {
            check(
                e >= 1 && e <= epochs,
                "train.eval_epochs",
                &format!("epoch {e} is not between 1 and the last epoch ({epochs})"),
            )?;
        }
        check(
            !(t.lr_schedule == LrSchedule::Cosine && t.lr_decay_epochs.is_some()),
            "train.lr_decay_epochs",
            "applies to the step schedule; the cosine schedule has no decay epochs",
        )?;
        if let Some(reference) = t.lr_reference_batch {
            check(
                reference >= 1,
                "train.lr_reference_batch",
                "must be at least 1 (the batch size `lr` is given for, e.g. 256)",
            )?;
        }
        let arch = self.model.arch();
        for (key, given) in [
            ("train.precision", t.precision.is_some()),
            ("train.channels_last", t.channels_last.is_some()),
        ] {
            check(
                !(given && arch.is_cifar()),
                key,
                "applies to the ImageNet architectures (model.arch); the CIFAR ResNet trains in float32",
            )?;
        }
        no_repeats(t.sampler.values(), "train.sampler")
    }

    fn validate_eval(&self) -> Result<(), Invalid> {
        check(
            self.eval.posthoc_tau.is_none(),
            "eval.posthoc_tau",
            "post-hoc logit adjustment is a stage-2 method now: write `[stage2] method = [\"none\", \"posthoc_la\"]` and its taus as `[stage2.posthoc_la] tau = [...]` (one job per tau, on the stage-1 job's model)",
        )
    }

    /// The stage-2 methods and their settings.
    fn validate_stage2(&self) -> Result<(), Invalid> {
        let st = &self.stage2;
        let methods = st.method.values();
        no_repeats(methods, "stage2.method")?;
        for (key, kind, given) in [
            ("stage2.crt", Stage2Kind::Crt, st.crt.is_some()),
            ("stage2.lws", Stage2Kind::Lws, st.lws.is_some()),
            (
                "stage2.tau_norm",
                Stage2Kind::TauNorm,
                st.tau_norm.is_some(),
            ),
            ("stage2.ncm", Stage2Kind::Ncm, st.ncm.is_some()),
            (
                "stage2.posthoc_la",
                Stage2Kind::PosthocLa,
                st.posthoc_la.is_some(),
            ),
            (
                "stage2.weight_balancing",
                Stage2Kind::WeightBalancing,
                st.weight_balancing.is_some(),
            ),
            ("stage2.mislas", Stage2Kind::Mislas, st.mislas.is_some()),
        ] {
            check(
                !given || methods.contains(&kind),
                key,
                &format!("settings of `{kind}`, which stage2.method does not list: add it there"),
            )?;
        }
        for (key, trained) in [("stage2.crt", &st.crt), ("stage2.lws", &st.lws)] {
            let Some(trained) = trained else { continue };
            positive_counts(Some(&trained.epochs), &format!("{key}.epochs"))?;
            for &lr in trained.lr.values() {
                check(
                    lr > 0.0,
                    &format!("{key}.lr"),
                    &format!("{lr} is not positive"),
                )?;
            }
            no_repeats(trained.epochs.values(), &format!("{key}.epochs"))?;
            no_repeats(trained.lr.values(), &format!("{key}.lr"))?;
            no_repeats(trained.bn.values(), &format!("{key}.bn"))?;
            no_repeats(trained.sampler.values(), &format!("{key}.sampler"))?;
        }
        if let Some(tau_norm) = &st.tau_norm {
            for &tau in tau_norm.tau.values() {
                check(
                    tau >= 0.0,
                    "stage2.tau_norm.tau",
                    &format!(
                        "{tau} is negative (0 is the stage-1 classifier, 1 unit-norm weights)"
                    ),
                )?;
            }
            no_repeats(tau_norm.tau.values(), "stage2.tau_norm.tau")?;
            no_repeats(tau_norm.bias.values(), "stage2.tau_norm.bias")?;
        }
        if let Some(ncm) = &st.ncm {
            no_repeats(ncm.features.values(), "stage2.ncm.features")?;
        }
        if let Some(posthoc) = &st.posthoc_la {
            no_repeats(posthoc.tau.values(), "stage2.posthoc_la.tau")?;
        }
        self.validate_weight_balancing()?;
        self.validate_mislas()
    }

    /// The base losses and their settings.
    fn validate_base(&self) -> Result<(), Invalid> {
        let l = &self.losses;
        no_repeats(l.base.values(), "losses.base")?;
        for (key, axis) in [
            ("losses.focal_gamma", &l.focal_gamma),
            ("losses.cb_beta", &l.cb_beta),
            ("losses.la_tau", &l.la_tau),
            ("losses.ldam_max_margin", &l.ldam_max_margin),
            ("losses.ldam_s", &l.ldam_s),
        ] {
            check(
                matches!(axis, Axis::One(_)),
                key,
                "takes one value: a base loss's setting is no axis (write one spec per value)",
            )?;
        }
        let gamma = l.focal_gamma.first();
        check(
            gamma >= 0.0,
            "losses.focal_gamma",
            &format!("{gamma} is negative"),
        )?;
        let beta = l.cb_beta.first();
        check(
            (0.0..1.0).contains(&beta),
            "losses.cb_beta",
            &format!("{beta} is not in [0, 1)"),
        )?;
        for (key, value) in [
            ("losses.ldam_max_margin", l.ldam_max_margin.first()),
            ("losses.ldam_s", l.ldam_s.first()),
        ] {
            check(value > 0.0, key, &format!("{value} is not positive"))?;
        }
        if let Some(drw) = &l.drw_epoch {
            check(
                matches!(drw, Axis::One(_)),
                "losses.drw_epoch",
                "takes one value: a base loss's setting is no axis (write one spec per value)",
            )?;
            let epochs = self.train.epochs.min();
            let e = drw.first();
            check(
                e < epochs,
                "losses.drw_epoch",
                &format!(
                    "re-weighting from epoch {e} never starts in {epochs} epochs (0-based: 0 to {})",
                    epochs - 1
                ),
            )?;
        }
        Ok(())
    }

    fn validate_losses(&self) -> Result<(), Invalid> {
        let l = &self.losses;
        check(
            !(l.grid.is_some() && l.plans.is_some()),
            "losses.plans",
            "give a grid preset or a list of plans, not both",
        )?;
        if let Some(plans) = &l.plans {
            check(
                !plans.is_empty(),
                "losses.plans",
                "the list of plans is empty",
            )?;
            for (i, plan) in plans.iter().enumerate() {
                check(
                    !plans[..i].contains(plan),
                    &format!("losses.plans[{i}]"),
                    &format!("{plan} is listed twice"),
                )?;
            }
        }
        for (key, axis) in [
            ("losses.comp_weight", &l.comp_weight),
            ("losses.pc_weight", &l.pc_weight),
            ("losses.pc_push_weight", &l.pc_push_weight),
        ] {
            for &w in axis.values() {
                check(w >= 0.0, key, &format!("{w} is negative"))?;
            }
        }
        for &w in l.pc_weight.values() {
            // The centres' gradient is rescaled by 1/weight, as the PC reference code does.
            check(
                w > 0.0,
                "losses.pc_weight",
                "must be positive (switch PC off with the plans instead)",
            )?;
        }
        for &lr in l.pc_center_lr.values() {
            check(
                lr > 0.0,
                "losses.pc_center_lr",
                &format!("{lr} is not positive"),
            )?;
        }
        Ok(())
    }
}

/// A failed check: the dotted key and what is wrong with it.
pub(super) struct Invalid {
    pub(super) key: String,
    pub(super) message: String,
}

pub(super) fn check(ok: bool, key: &str, message: &str) -> Result<(), Invalid> {
    if ok {
        Ok(())
    } else {
        Err(Invalid {
            key: key.to_owned(),
            message: message.to_owned(),
        })
    }
}

/// A file or folder the workers read: relative to `base` (their `--data-root`, or
/// `dataset.path` under it) and never out of it. A NUL is refused by the caller, with its own
/// length limit.
fn check_under_data_root(key: &str, path: &str, base: &str) -> Result<(), Invalid> {
    match leaves_its_folder(path) {
        None => Ok(()),
        Some(problem) => Err(Invalid {
            key: key.to_owned(),
            message: format!(
                "`{path}` {problem}; a spec reads only files inside the workers' --data-root: give it relative to {base}, without `..`"
            ),
        }),
    }
}

pub(super) fn no_repeats<T: PartialEq + fmt::Display>(
    values: &[T],
    key: &str,
) -> Result<(), Invalid> {
    for (i, value) in values.iter().enumerate() {
        check(
            !values[..i].contains(value),
            key,
            &format!("{value} is listed twice"),
        )?;
    }
    Ok(())
}

fn positive_counts(axis: Option<&Axis<u32>>, key: &str) -> Result<(), Invalid> {
    for &n in axis.map(Axis::values).unwrap_or_default() {
        check(n >= 1, key, "must be at least 1")?;
    }
    Ok(())
}
