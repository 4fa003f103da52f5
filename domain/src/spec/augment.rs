//! `[augment]`: an image policy, Cutout and batch mixing for in-memory data. `policy` and `mix`
//! are axes of names (as `losses.base`), `cutout` a numeric axis; each policy's and mixing's own
//! settings take one value, as a base loss's do.

use serde::Deserialize;

use super::validate::{Invalid, check, no_repeats};
use super::{Axis, SweepSpec};
use crate::augment::{Mix, MixKind, Policy, PolicyKind};
use crate::baseline::{BaseKind, Choice};
use crate::job::ClassScope;

/// RandAugment's magnitude bins (torchvision's `num_magnitude_bins = 31`): a magnitude indexes them.
pub const MAGNITUDE_BINS: u32 = 31;
/// More RandAugment ops an image than this is a typo (torchvision's default is 2).
pub const MAX_NUM_OPS: u32 = 10;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentSection {
    #[serde(default = "standard")]
    pub policy: Choice<PolicyKind>,
    /// RandAugment's ops an image; torchvision's default.
    #[serde(default = "two")]
    pub num_ops: Axis<u32>,
    /// RandAugment's magnitude bin (0 to 30); torchvision's default.
    #[serde(default = "nine")]
    pub magnitude: Axis<u32>,
    /// Cutout's side in pixels; 0 is off.
    #[serde(default = "zero")]
    pub cutout: Axis<u32>,
    #[serde(default = "no_mix")]
    pub mix: Choice<MixKind>,
    /// The α of λ ~ Beta(α, α): mixup-cifar10's and CutMix-PyTorch's 1.0.
    #[serde(default = "one")]
    pub mix_alpha: Axis<f64>,
    /// The probability a batch is CutMixed: CutMix-PyTorch's CIFAR recipe, 0.5.
    #[serde(default = "half")]
    pub cutmix_prob: Axis<f64>,
    /// Remix's κ and τ: Chou et al.'s 3 and 0.5.
    #[serde(default = "three")]
    pub remix_kappa: Axis<f64>,
    #[serde(default = "half")]
    pub remix_tau: Axis<f64>,
}

fn standard() -> Choice<PolicyKind> {
    Choice::one(PolicyKind::Standard)
}
fn no_mix() -> Choice<MixKind> {
    Choice::one(MixKind::None)
}
fn two() -> Axis<u32> {
    Axis::One(2)
}
fn nine() -> Axis<u32> {
    Axis::One(9)
}
fn zero() -> Axis<u32> {
    Axis::One(0)
}
fn one() -> Axis<f64> {
    Axis::One(1.0)
}
fn half() -> Axis<f64> {
    Axis::One(0.5)
}
fn three() -> Axis<f64> {
    Axis::One(3.0)
}

impl Default for AugmentSection {
    fn default() -> Self {
        toml::from_str("").expect("every augment setting has a default")
    }
}

impl AugmentSection {
    /// Every policy and mixing of the grid with its settings, policies outermost.
    pub fn choices(&self) -> Vec<(Policy, Mix)> {
        let mut out = Vec::new();
        for &kind in self.policy.values() {
            let policy = match kind {
                PolicyKind::Standard => Policy::Standard,
                PolicyKind::AutoaugmentCifar10 => Policy::AutoaugmentCifar10,
                PolicyKind::AutoaugmentImagenet => Policy::AutoaugmentImagenet,
                PolicyKind::Randaugment => Policy::Randaugment {
                    num_ops: self.num_ops.first(),
                    magnitude: self.magnitude.first(),
                },
                PolicyKind::TrivialaugmentWide => Policy::TrivialaugmentWide,
            };
            for &mix in self.mix.values() {
                let alpha = self.mix_alpha.first();
                out.push((
                    policy,
                    match mix {
                        MixKind::None => Mix::None,
                        MixKind::Mixup => Mix::Mixup { alpha },
                        MixKind::Cutmix => Mix::Cutmix {
                            alpha,
                            prob: self.cutmix_prob.first(),
                        },
                        MixKind::Remix => Mix::Remix {
                            alpha,
                            kappa: self.remix_kappa.first(),
                            tau: self.remix_tau.first(),
                        },
                    },
                ));
            }
        }
        out
    }

    /// Whether anything beyond the crop and flip is asked for.
    fn is_on(&self) -> bool {
        self.choices()
            .iter()
            .any(|&(policy, mix)| policy != Policy::Standard || !mix.is_none())
            || self.cutout.values().iter().any(|&c| c > 0)
    }
}

impl SweepSpec {
    /// The settings' ranges, and the combinations with no defined form.
    pub(super) fn validate_augment(&self) -> Result<(), Invalid> {
        let a = &self.augment;
        no_repeats(a.policy.values(), "augment.policy")?;
        no_repeats(a.mix.values(), "augment.mix")?;
        no_repeats(a.cutout.values(), "augment.cutout")?;
        for (key, one) in [
            ("augment.num_ops", matches!(a.num_ops, Axis::One(_))),
            ("augment.magnitude", matches!(a.magnitude, Axis::One(_))),
            ("augment.mix_alpha", matches!(a.mix_alpha, Axis::One(_))),
            ("augment.cutmix_prob", matches!(a.cutmix_prob, Axis::One(_))),
            ("augment.remix_kappa", matches!(a.remix_kappa, Axis::One(_))),
            ("augment.remix_tau", matches!(a.remix_tau, Axis::One(_))),
        ] {
            check(
                one,
                key,
                "takes one value: a policy's or a mixing's setting is no axis (write one spec per value)",
            )?;
        }
        let num_ops = a.num_ops.first();
        check(
            (1..=MAX_NUM_OPS).contains(&num_ops),
            "augment.num_ops",
            &format!("{num_ops} is not from 1 to {MAX_NUM_OPS}"),
        )?;
        let magnitude = a.magnitude.first();
        check(
            magnitude < MAGNITUDE_BINS,
            "augment.magnitude",
            &format!(
                "{magnitude} is not a magnitude bin from 0 to {} (torchvision's 31 bins)",
                MAGNITUDE_BINS - 1
            ),
        )?;
        let alpha = a.mix_alpha.first();
        check(
            alpha > 0.0,
            "augment.mix_alpha",
            &format!("{alpha} is not positive (the α of Beta(α, α))"),
        )?;
        let prob = a.cutmix_prob.first();
        check(
            (0.0..=1.0).contains(&prob) && prob > 0.0,
            "augment.cutmix_prob",
            &format!("{prob} is not in (0, 1]"),
        )?;
        let kappa = a.remix_kappa.first();
        check(
            kappa >= 1.0,
            "augment.remix_kappa",
            &format!("{kappa} is below 1 (a ratio of class counts)"),
        )?;
        let tau = a.remix_tau.first();
        check(
            (0.0..=1.0).contains(&tau),
            "augment.remix_tau",
            &format!("{tau} is not in [0, 1]"),
        )?;
        for &side in a.cutout.values() {
            check(
                side <= crate::spec::MAX_IMAGE_SIZE,
                "augment.cutout",
                &format!(
                    "{side} pixels is over the limit of {}",
                    crate::spec::MAX_IMAGE_SIZE
                ),
            )?;
        }
        for (key, given, default) in [
            ("augment.num_ops", &a.num_ops, 2),
            ("augment.magnitude", &a.magnitude, 9),
        ] {
            check(
                given.first() == default || a.policy.values().contains(&PolicyKind::Randaugment),
                key,
                "applies to `randaugment`, which augment.policy does not list",
            )?;
        }
        if !a.is_on() {
            return Ok(());
        }
        let mixes = a.mix.values();
        if mixes.iter().all(|m| *m == MixKind::None) {
            return Ok(());
        }
        // A mixed image has two labels: the terms below are defined for one.
        for plan in self.plans() {
            check(
                plan.comp == ClassScope::None && plan.pc == ClassScope::None,
                "augment.mix",
                &format!(
                    "the plan {plan} has no mixed-label form: Complement Entropy's complement and Prototype Conformity's centre are of one class (list only plans without comp and pc, e.g. plans = [{{}}])"
                ),
            )?;
        }
        for &base in self.bases() {
            check(
                base != BaseKind::LdamDrw,
                "augment.mix",
                "ldam_drw has no mixed-label form: its margin is subtracted at one label's logit (mixing is built for ce, focal, cb and la)",
            )?;
            check(
                !(mixes.contains(&MixKind::Remix)
                    && matches!(base, BaseKind::Cb | BaseKind::Focal)),
                "augment.mix",
                &format!(
                    "remix is built for the base losses ce and la, whose per-sample terms take Remix's per-sample label weights; {base} is not"
                ),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Augmentation;

    const HEAD: &str = "name = \"aug\"\nseeds = [0, 1]\n[dataset]\nkind = \"synthetic\"\n";

    fn parse(rest: &str) -> Result<SweepSpec, String> {
        SweepSpec::parse(&format!("{HEAD}{rest}")).map_err(|e| e.to_string())
    }

    fn refused(rest: &str) -> String {
        parse(rest).expect_err("refused")
    }

    #[test]
    fn a_spec_without_augment_keeps_its_sweep_and_job_ids() {
        // The ids this spec had before `[augment]` existed.
        let jobs = parse("").unwrap().jobs();
        assert_eq!(jobs[0].sweep.as_str(), "aug-546cb0b9");
        assert_eq!(jobs[0].id.as_str(), "78d4bc868cca");
        assert_eq!(jobs[17].id.as_str(), "38b2f3f8b935");
        assert!(jobs.iter().all(|j| j.train.augmentation.is_standard()));
        // Giving the defaults explicitly is the same sweep.
        let explicit = parse("[augment]\npolicy = \"standard\"\ncutout = 0\nmix = \"none\"\n")
            .unwrap()
            .jobs();
        assert_eq!(explicit, jobs);
    }

    #[test]
    fn policy_and_mix_are_axes_of_names_and_cutout_a_numeric_axis() {
        let spec = parse(
            "[losses]\nplans = [{}]\n[augment]\npolicy = [\"standard\", \"randaugment\", \"autoaugment_cifar10\"]\nnum_ops = 3\nmagnitude = 12\ncutout = [0, 16]\nmix = [\"none\", \"cutmix\"]\nmix_alpha = 0.4\ncutmix_prob = 1.0\n",
        )
        .unwrap();
        let jobs = spec.jobs();
        assert_eq!(jobs.len(), 3 * 2 * 2 * 2);
        let augs: Vec<Augmentation> = jobs.iter().map(|j| j.train.augmentation).collect();
        assert!(augs.contains(&Augmentation {
            policy: Policy::Randaugment {
                num_ops: 3,
                magnitude: 12
            },
            cutout: 16,
            mix: Mix::Cutmix {
                alpha: 0.4,
                prob: 1.0
            },
        }));
        let mut ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), jobs.len());
        let labelled = jobs
            .iter()
            .find(|j| {
                let a = j.train.augmentation;
                a.cutout == 16 && !a.mix.is_none() && a.policy != Policy::Standard
            })
            .unwrap();
        assert!(
            labelled.label().starts_with("policy=")
                && labelled.label().contains("mix=cutmix(0.4,1)")
                && labelled.label().matches("cutout=16").count() == 1,
            "{}",
            labelled.label()
        );
    }

    #[test]
    fn settings_out_of_range_or_of_an_unlisted_policy_are_refused() {
        let err = refused("[augment]\npolicy = \"randaugment\"\nmagnitude = 31\n");
        assert!(
            err.contains("augment.magnitude: 31 is not a magnitude bin"),
            "{err}"
        );
        let err = refused("[augment]\nnum_ops = 3\n");
        assert!(
            err.contains("augment.num_ops: applies to `randaugment`"),
            "{err}"
        );
        let err = refused("[augment]\npolicy = \"randaugment\"\nnum_ops = 0\n");
        assert!(err.contains("augment.num_ops: 0 is not from 1"), "{err}");
        let err =
            refused("[augment]\nmix = \"mixup\"\nmix_alpha = [0.2, 1.0]\n[losses]\nplans = [{}]\n");
        assert!(err.contains("augment.mix_alpha: takes one value"), "{err}");
        let err = refused("[augment]\nmix = \"mixup\"\nmix_alpha = 0\n[losses]\nplans = [{}]\n");
        assert!(
            err.contains("augment.mix_alpha: 0 is not positive"),
            "{err}"
        );
        let err = refused("[augment]\npolicy = \"autoaugment_svhn\"\n");
        assert!(err.contains("autoaugment_svhn"), "{err}");
        let err = refused("[augment]\npolicy = [\"standard\", \"standard\"]\n");
        assert!(
            err.contains("augment.policy: standard is listed twice"),
            "{err}"
        );
    }

    #[test]
    fn losses_without_a_mixed_label_form_are_refused_by_name() {
        // The paper's plans hold Complement Entropy and PC terms.
        let err = refused("[augment]\nmix = \"mixup\"\n");
        assert!(
            err.contains("augment.mix: the plan comp=") && err.contains("no mixed-label form"),
            "{err}"
        );
        let err = refused(
            "[augment]\nmix = \"cutmix\"\n[losses]\nplans = [{}]\nbase = [\"ce\", \"ldam_drw\"]\n",
        );
        assert!(err.contains("ldam_drw has no mixed-label form"), "{err}");
        let err = refused("[augment]\nmix = \"remix\"\n[losses]\nplans = [{}]\nbase = \"cb\"\n");
        assert!(
            err.contains("remix is built for the base losses ce and la"),
            "{err}"
        );
        // Mixup and CutMix take every other base loss; Remix takes ce and la.
        parse("[augment]\nmix = [\"mixup\", \"cutmix\"]\n[losses]\nplans = [{}]\nbase = [\"ce\", \"focal\", \"cb\", \"la\"]\n").unwrap();
        parse("[augment]\nmix = \"remix\"\n[losses]\nplans = [{}]\nbase = [\"ce\", \"la\"]\n")
            .unwrap();
    }

    #[test]
    fn list_data_takes_policies_cutout_and_mixing() {
        let list = "name = \"x\"\nseeds = [0]\n[dataset]\nkind = \"imagenet-lt\"\npath = \"i\"\n";
        let spec = SweepSpec::parse(&format!(
            "{list}[augment]\npolicy = \"randaugment\"\ncutout = 16\nmix = \"mixup\"\n[losses]\nplans = [{{}}]\n"
        ))
        .unwrap();
        let augmentation = &spec.jobs()[0].train.augmentation;
        assert_eq!(
            (augmentation.policy, augmentation.cutout),
            (
                Policy::Randaugment {
                    num_ops: 2,
                    magnitude: 9
                },
                16
            )
        );
    }
}

#[cfg(test)]
mod examples {
    use super::*;

    #[test]
    fn the_augmentation_examples_are_the_grids_their_comments_describe() {
        let autoaugment = SweepSpec::parse(include_str!(
            "../../../examples/cifar100-lt-autoaugment.toml"
        ))
        .unwrap();
        let jobs = autoaugment.jobs();
        assert_eq!(jobs.len(), 12);
        assert!(jobs.iter().all(|j| j.train.augmentation.cutout == 16));
        assert_eq!(
            jobs.iter()
                .filter(|j| j.train.augmentation.policy == Policy::AutoaugmentCifar10)
                .count(),
            6
        );
        let mixup = SweepSpec::parse(include_str!(
            "../../../examples/fashion-mnist-lt-mixup.toml"
        ))
        .unwrap();
        assert_eq!(mixup.jobs().len(), 24);
    }
}
