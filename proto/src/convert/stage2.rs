//! A stage-2 job's method on the wire: the method as an enum and every method's settings
//! beside it (a setting of a method not chosen is left at its default).

use ltsweep_domain::job::Stage2;
use ltsweep_domain::stage2::{
    BnMode, MaxNormEvery, MislasClassifier, MislasSettings, NcmFeatures, SmoothShape, Stage2Method,
    Stage2Sampler, TauBias, WeightBalancingSettings, WeightScaling,
};

use super::{ConvertError, JobId, missing, unknown};
use crate::pb;

impl From<Stage2> for pb::Stage2 {
    fn from(stage2: Stage2) -> Self {
        let method = |m: pb::Stage2Method| pb::Stage2 {
            parent_job_id: stage2.parent.0.clone(),
            method: m.into(),
            ..Default::default()
        };
        match stage2.method {
            Stage2Method::Crt {
                epochs,
                lr,
                bn,
                sampler,
            } => pb::Stage2 {
                epochs,
                lr,
                bn_frozen: bn == BnMode::Frozen,
                independent_draws: sampler == Stage2Sampler::ClassBalanced,
                ..method(pb::Stage2Method::Crt)
            },
            Stage2Method::Lws {
                epochs,
                lr,
                bn,
                sampler,
            } => pb::Stage2 {
                epochs,
                lr,
                bn_frozen: bn == BnMode::Frozen,
                independent_draws: sampler == Stage2Sampler::ClassBalanced,
                ..method(pb::Stage2Method::Lws)
            },
            Stage2Method::TauNorm { tau, bias } => pb::Stage2 {
                tau,
                keep_bias: bias == TauBias::Keep,
                ..method(pb::Stage2Method::TauNorm)
            },
            Stage2Method::Ncm { features } => pb::Stage2 {
                l2n_features: features == NcmFeatures::L2n,
                ..method(pb::Stage2Method::Ncm)
            },
            Stage2Method::PosthocLa { tau } => pb::Stage2 {
                tau,
                ..method(pb::Stage2Method::PosthocLa)
            },
            Stage2Method::WeightBalancing(WeightBalancingSettings {
                epochs,
                lr,
                weight_decay,
                cb_beta,
                max_norm,
                bn,
                max_norm_every,
            }) => pb::Stage2 {
                epochs,
                lr,
                weight_decay,
                cb_beta,
                max_norm,
                bn_frozen: bn == BnMode::Frozen,
                max_norm_every_step: max_norm_every == MaxNormEvery::Step,
                ..method(pb::Stage2Method::WeightBalancing)
            },
            Stage2Method::Mislas(MislasSettings {
                epochs,
                lr,
                lr_factor,
                weight_decay,
                smooth_head,
                smooth_tail,
                shape,
                bn,
                classifier,
                scaling,
            }) => pb::Stage2 {
                epochs,
                lr,
                lr_factor,
                weight_decay,
                smooth_head,
                smooth_tail,
                smooth_shape: shape.to_string(),
                bn_frozen: bn == BnMode::Frozen,
                fresh_classifier: classifier == MislasClassifier::Fresh,
                no_weight_scaling: scaling == WeightScaling::None,
                ..method(pb::Stage2Method::Mislas)
            },
        }
    }
}

impl TryFrom<pb::Stage2> for Stage2 {
    type Error = ConvertError;

    fn try_from(s: pb::Stage2) -> Result<Self, ConvertError> {
        if s.parent_job_id.is_empty() {
            return Err(missing("job.stage2.parent_job_id"));
        }
        let bn = if s.bn_frozen {
            BnMode::Frozen
        } else {
            BnMode::Train
        };
        let sampler = if s.independent_draws {
            Stage2Sampler::ClassBalanced
        } else {
            Stage2Sampler::ClassAware
        };
        let method = match pb::Stage2Method::try_from(s.method) {
            Ok(pb::Stage2Method::Crt) => Stage2Method::Crt {
                epochs: s.epochs,
                lr: s.lr,
                bn,
                sampler,
            },
            Ok(pb::Stage2Method::Lws) => Stage2Method::Lws {
                epochs: s.epochs,
                lr: s.lr,
                bn,
                sampler,
            },
            Ok(pb::Stage2Method::TauNorm) => Stage2Method::TauNorm {
                tau: s.tau,
                bias: if s.keep_bias {
                    TauBias::Keep
                } else {
                    TauBias::Drop
                },
            },
            Ok(pb::Stage2Method::Ncm) => Stage2Method::Ncm {
                features: if s.l2n_features {
                    NcmFeatures::L2n
                } else {
                    NcmFeatures::Cl2n
                },
            },
            Ok(pb::Stage2Method::PosthocLa) => Stage2Method::PosthocLa { tau: s.tau },
            Ok(pb::Stage2Method::WeightBalancing) => {
                Stage2Method::WeightBalancing(WeightBalancingSettings {
                    epochs: s.epochs,
                    lr: s.lr,
                    weight_decay: s.weight_decay,
                    cb_beta: s.cb_beta,
                    max_norm: s.max_norm,
                    bn,
                    max_norm_every: if s.max_norm_every_step {
                        MaxNormEvery::Step
                    } else {
                        MaxNormEvery::Epoch
                    },
                })
            }
            Ok(pb::Stage2Method::Mislas) => Stage2Method::Mislas(MislasSettings {
                epochs: s.epochs,
                lr: s.lr,
                lr_factor: s.lr_factor,
                weight_decay: s.weight_decay,
                smooth_head: s.smooth_head,
                smooth_tail: s.smooth_tail,
                shape: if s.smooth_shape.is_empty() {
                    SmoothShape::default()
                } else {
                    s.smooth_shape
                        .parse()
                        .map_err(|_| unknown("job.stage2.smooth_shape"))?
                },
                bn,
                classifier: if s.fresh_classifier {
                    MislasClassifier::Fresh
                } else {
                    MislasClassifier::Stage1
                },
                scaling: if s.no_weight_scaling {
                    WeightScaling::None
                } else {
                    WeightScaling::Learned
                },
            }),
            _ => return Err(unknown("job.stage2.method")),
        };
        Ok(Stage2 {
            parent: JobId(s.parent_job_id),
            method,
        })
    }
}
