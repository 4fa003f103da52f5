//! Augmentation beyond the crop and flip, as grid axes of in-memory data: an image policy
//! (AutoAugment, RandAugment, TrivialAugmentWide, each as torchvision 0.26 computes it), Cutout
//! (DeVries & Taylor 2017) and batch mixing (mixup, CutMix, Remix), as a job trains them.

use serde::{Deserialize, Serialize};

use crate::string_enum::string_enum;

string_enum!(
    /// The name of an image policy, as the spec's `augment.policy` lists it.
    #[derive(Default, PartialOrd, Ord)]
    pub enum PolicyKind("a policy") {
        /// The padded crop and flip alone.
        #[default]
        Standard = "standard",
        /// torchvision's `AutoAugment(AutoAugmentPolicy.CIFAR10)`.
        AutoaugmentCifar10 = "autoaugment_cifar10",
        /// torchvision's `AutoAugment(AutoAugmentPolicy.IMAGENET)`.
        AutoaugmentImagenet = "autoaugment_imagenet",
        /// torchvision's `RandAugment(num_ops, magnitude)`.
        Randaugment = "randaugment",
        /// torchvision's `TrivialAugmentWide()`.
        TrivialaugmentWide = "trivialaugment_wide",
    }
);

string_enum!(
    /// The name of a batch mixing, as the spec's `augment.mix` lists it.
    #[derive(Default, PartialOrd, Ord)]
    pub enum MixKind("a mixing") {
        #[default]
        None = "none",
        /// Zhang et al. 2018, as facebookresearch/mixup-cifar10's `mixup_data`.
        Mixup = "mixup",
        /// Yun et al. 2019, as clovaai/CutMix-PyTorch's `rand_bbox`.
        Cutmix = "cutmix",
        /// Chou et al. 2020: mixup's images with labels re-balanced towards the rarer class.
        Remix = "remix",
    }
);

/// An image policy with its settings, applied after the crop and flip, before Cutout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Policy {
    #[default]
    Standard,
    AutoaugmentCifar10,
    AutoaugmentImagenet,
    /// `num_ops` ops of the 14, each at bin `magnitude` of 31.
    Randaugment {
        num_ops: u32,
        magnitude: u32,
    },
    TrivialaugmentWide,
}

impl Policy {
    pub fn kind(&self) -> PolicyKind {
        match self {
            Self::Standard => PolicyKind::Standard,
            Self::AutoaugmentCifar10 => PolicyKind::AutoaugmentCifar10,
            Self::AutoaugmentImagenet => PolicyKind::AutoaugmentImagenet,
            Self::Randaugment { .. } => PolicyKind::Randaugment,
            Self::TrivialaugmentWide => PolicyKind::TrivialaugmentWide,
        }
    }
}

/// A batch mixing with its settings; λ ~ Beta(alpha, alpha) once a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mix {
    #[default]
    None,
    Mixup {
        alpha: f64,
    },
    /// A batch is mixed with probability `prob` (CutMix-PyTorch's `cutmix_prob`).
    Cutmix {
        alpha: f64,
        prob: f64,
    },
    /// The label weight of a pair becomes 0 (or 1) when the first image's class has at least
    /// `kappa` times the second's training images and λ is below `tau` (or the reverse).
    Remix {
        alpha: f64,
        kappa: f64,
        tau: f64,
    },
}

impl Mix {
    pub fn kind(&self) -> MixKind {
        match self {
            Self::None => MixKind::None,
            Self::Mixup { .. } => MixKind::Mixup,
            Self::Cutmix { .. } => MixKind::Cutmix,
            Self::Remix { .. } => MixKind::Remix,
        }
    }

    pub fn is_none(&self) -> bool {
        matches!(self, Self::None)
    }
}

/// What a job's training images go through besides the crop and flip. Left out of a job's
/// serialised form when it is all off, so that the ids of specs without `[augment]` hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    #[serde(default, skip_serializing_if = "is_standard_policy")]
    pub policy: Policy,
    /// The side of Cutout's square in pixels; 0 is off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cutout: u32,
    #[serde(default, skip_serializing_if = "Mix::is_none")]
    pub mix: Mix,
}

fn is_standard_policy(policy: &Policy) -> bool {
    *policy == Policy::Standard
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Augmentation {
    /// The crop and flip alone: no policy, no Cutout, no mixing.
    pub fn is_standard(&self) -> bool {
        *self == Self::default()
    }

    /// `policy=randaugment(2,9) mix=mixup(1)`, the names that are not the default; empty when
    /// none. Cutout is a numeric setting: a job's label shows it where it is an axis.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        match self.policy {
            Policy::Standard => {}
            Policy::Randaugment { num_ops, magnitude } => {
                parts.push(format!("policy=randaugment({num_ops},{magnitude})"))
            }
            other => parts.push(format!("policy={}", other.kind())),
        }
        match self.mix {
            Mix::None => {}
            Mix::Mixup { alpha } => parts.push(format!("mix=mixup({alpha})")),
            Mix::Cutmix { alpha, prob } => parts.push(format!("mix=cutmix({alpha},{prob})")),
            Mix::Remix { alpha, kappa, tau } => {
                parts.push(format!("mix=remix({alpha},{kappa},{tau})"))
            }
        }
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_left_out_and_the_rest_round_trips() {
        assert_eq!(
            serde_json::to_string(&Augmentation::default()).unwrap(),
            "{}"
        );
        let aug = Augmentation {
            policy: Policy::Randaugment {
                num_ops: 2,
                magnitude: 9,
            },
            cutout: 16,
            mix: Mix::Remix {
                alpha: 1.0,
                kappa: 3.0,
                tau: 0.5,
            },
        };
        let json = serde_json::to_string(&aug).unwrap();
        assert_eq!(serde_json::from_str::<Augmentation>(&json).unwrap(), aug);
        assert_eq!(aug.label(), "policy=randaugment(2,9) mix=remix(1,3,0.5)");
        assert!(!aug.is_standard());
    }
}
