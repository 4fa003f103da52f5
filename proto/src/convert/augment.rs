//! A job's augmentation on the wire: the policy and the mixing as enums with their settings
//! beside them, every setting sent (a setting of a policy or mixing not chosen is 0).

use ltsweep_domain::augment::{Augmentation, Mix, Policy};

use super::{ConvertError, unknown};
use crate::pb;

impl From<Augmentation> for pb::Augmentation {
    fn from(a: Augmentation) -> Self {
        let mut out = pb::Augmentation {
            cutout: a.cutout,
            ..Default::default()
        };
        out.policy = match a.policy {
            Policy::Standard => pb::Policy::Standard,
            Policy::AutoaugmentCifar10 => pb::Policy::AutoaugmentCifar10,
            Policy::AutoaugmentImagenet => pb::Policy::AutoaugmentImagenet,
            Policy::Randaugment { num_ops, magnitude } => {
                out.num_ops = num_ops;
                out.magnitude = magnitude;
                pb::Policy::Randaugment
            }
            Policy::TrivialaugmentWide => pb::Policy::TrivialaugmentWide,
        }
        .into();
        out.mix = match a.mix {
            Mix::None => pb::MixKind::None,
            Mix::Mixup { alpha } => {
                out.mix_alpha = alpha;
                pb::MixKind::Mixup
            }
            Mix::Cutmix { alpha, prob } => {
                out.mix_alpha = alpha;
                out.cutmix_prob = prob;
                pb::MixKind::Cutmix
            }
            Mix::Remix { alpha, kappa, tau } => {
                out.mix_alpha = alpha;
                out.remix_kappa = kappa;
                out.remix_tau = tau;
                pb::MixKind::Remix
            }
        }
        .into();
        out
    }
}

/// An absent message is an older sender's job: the crop and flip alone.
pub(super) fn augmentation_from(a: Option<pb::Augmentation>) -> Result<Augmentation, ConvertError> {
    let Some(a) = a else {
        return Ok(Augmentation::default());
    };
    let policy = match pb::Policy::try_from(a.policy) {
        Ok(pb::Policy::Unspecified | pb::Policy::Standard) => Policy::Standard,
        Ok(pb::Policy::AutoaugmentCifar10) => Policy::AutoaugmentCifar10,
        Ok(pb::Policy::AutoaugmentImagenet) => Policy::AutoaugmentImagenet,
        Ok(pb::Policy::Randaugment) => Policy::Randaugment {
            num_ops: a.num_ops,
            magnitude: a.magnitude,
        },
        Ok(pb::Policy::TrivialaugmentWide) => Policy::TrivialaugmentWide,
        Err(_) => return Err(unknown("job.train.augmentation.policy")),
    };
    let alpha = a.mix_alpha;
    let mix = match pb::MixKind::try_from(a.mix) {
        Ok(pb::MixKind::Unspecified | pb::MixKind::None) => Mix::None,
        Ok(pb::MixKind::Mixup) => Mix::Mixup { alpha },
        Ok(pb::MixKind::Cutmix) => Mix::Cutmix {
            alpha,
            prob: a.cutmix_prob,
        },
        Ok(pb::MixKind::Remix) => Mix::Remix {
            alpha,
            kappa: a.remix_kappa,
            tau: a.remix_tau,
        },
        Err(_) => return Err(unknown("job.train.augmentation.mix")),
    };
    Ok(Augmentation {
        policy,
        cutout: a.cutout,
        mix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_policy_and_mixing_round_trips_and_absence_is_the_standard() {
        let policies = [
            Policy::Standard,
            Policy::AutoaugmentCifar10,
            Policy::AutoaugmentImagenet,
            Policy::Randaugment {
                num_ops: 3,
                magnitude: 14,
            },
            Policy::TrivialaugmentWide,
        ];
        let mixes = [
            Mix::None,
            Mix::Mixup { alpha: 0.2 },
            Mix::Cutmix {
                alpha: 1.0,
                prob: 0.5,
            },
            Mix::Remix {
                alpha: 1.0,
                kappa: 3.0,
                tau: 0.5,
            },
        ];
        for policy in policies {
            for mix in mixes {
                let a = Augmentation {
                    policy,
                    cutout: 8,
                    mix,
                };
                assert_eq!(augmentation_from(Some(a.into())), Ok(a));
            }
        }
        assert_eq!(augmentation_from(None), Ok(Augmentation::default()));
        let bad = pb::Augmentation {
            policy: 99,
            ..Default::default()
        };
        assert_eq!(
            augmentation_from(Some(bad)).unwrap_err().field,
            "job.train.augmentation.policy"
        );
    }
}
