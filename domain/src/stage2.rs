//! Decoupled two-stage training (Kang et al., ICLR 2020) as a grid axis: a stage-1 job trains
//! the whole network; its stage-2 jobs start from its final model and re-balance only the
//! classifier, each in its own way.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::string_enum::string_enum;

string_enum!(
    /// The name of a stage-2 method, as the spec's `stage2.method` lists it.
    #[derive(PartialOrd, Ord)]
    pub enum Stage2Kind("a stage-2 method") {
        /// No stage 2: the stage-1 job's own model.
        None = "none",
        /// Classifier re-training: a fresh classifier trained on the frozen backbone with
        /// class-balanced sampling.
        Crt = "crt",
        /// Learnable weight scaling: one learnt scale per class on the frozen stage-1 classifier.
        Lws = "lws",
        /// τ-normalisation: each class's weight vector divided by its norm to the power τ.
        TauNorm = "tau_norm",
        /// The nearest class mean of the L2-normalised features.
        Ncm = "ncm",
        /// Post-hoc logit adjustment (Menon et al. 2021): `logits - τ log(pi)`.
        PosthocLa = "posthoc_la",
        /// Weight balancing (Alshammari et al. 2022): the stage-1 classifier re-trained with
        /// class-balanced loss, weight decay and the MaxNorm constraint.
        WeightBalancing = "weight_balancing",
        /// MiSLAS (Zhong et al. 2021): the classifier and learnable weight scaling trained with
        /// label-aware smoothing while the backbone's BatchNorm statistics follow the
        /// class-balanced data.
        Mislas = "mislas",
    }
);

string_enum!(
    /// BatchNorm of the frozen backbone while cRT or LWS trains.
    /// The first value is the default, which follows Kang et al.'s code.
    #[derive(Default)]
    pub enum BnMode("a BatchNorm mode") {
        /// Training mode, as Kang et al.'s `run_networks.py` (`model.train()` on every network,
        /// the frozen one included): the running statistics are re-estimated on the
        /// class-balanced batches and used at test time; no weight moves.
        #[default]
        Train = "train",
        /// Evaluation mode: neither weights nor statistics move.
        Frozen = "frozen",
    }
);

string_enum!(
    /// How cRT and LWS draw their training images.
    /// The first value is the default, which follows Kang et al.'s code.
    #[derive(Default)]
    pub enum Stage2Sampler("a stage-2 sampler") {
        /// Kang et al.'s `ClassAwareSampler` (`num_samples_cls = 4`): classes cycled in an order
        /// reshuffled at each pass, 4 images of a class in a row, each class's images cycled
        /// without replacement; an epoch is the largest class's count times the classes.
        #[default]
        ClassAware = "class_aware",
        /// As many independent draws as images, with replacement: a class with probability
        /// 1/K, then one of its images.
        ClassBalanced = "class_balanced",
    }
);

string_enum!(
    /// What τ-normalisation does with the classifier's bias.
    /// The first value is the default, which follows Kang et al.'s code.
    #[derive(Default)]
    pub enum TauBias("a bias treatment") {
        /// Left out, as Kang et al.'s `tau_norm.py` (the logits are the features times the
        /// normalised weights alone).
        #[default]
        Drop = "drop",
        /// Kept unnormalised, so that τ = 0 is exactly the stage-1 model.
        Keep = "keep",
    }
);

string_enum!(
    /// The features NCM's class means and queries are compared on.
    /// The first value is the default, which follows Kang et al.'s code.
    #[derive(Default)]
    pub enum NcmFeatures("an NCM feature kind") {
        /// Centred on the mean of all training features, then L2-normalised (Kang et al.'s
        /// `KNNClassifier` with `feat_type = 'cl2n'`, its default).
        #[default]
        Cl2n = "cl2n",
        /// L2-normalised.
        L2n = "l2n",
    }
);

string_enum!(
    /// When weight balancing projects the classifier's rows onto MaxNorm's ball.
    /// The first value is the default, which follows Alshammari et al.'s code.
    #[derive(Default)]
    pub enum MaxNormEvery("a MaxNorm projection schedule") {
        /// After each epoch's training, before its evaluation: `train_model` of their
        /// `utils/trainval.py` calls `pgdFunc.PGD(model)` once the training phase has ended.
        #[default]
        Epoch = "epoch",
        /// After every optimiser step: projected gradient descent as the paper writes it.
        Step = "step",
    }
);

string_enum!(
    /// How MiSLAS's label-aware smoothing goes from the tail's factor to the head's over the
    /// class counts (`LabelAwareSmoothing` of Zhong et al.'s `methods.py`).
    /// The first value is the default, which follows their `train_stage2.py`.
    #[derive(Default)]
    pub enum SmoothShape("a label-aware smoothing shape") {
        /// `tail + (head - tail) sin(pi (n - n_K) / (2 (n_1 - n_K)))`.
        #[default]
        Concave = "concave",
        /// `tail + (head - tail) (n - n_K) / (n_1 - n_K)`.
        Linear = "linear",
        /// `head + (head - tail) sin(3 pi / 2 + pi (n - n_K) / (2 (n_1 - n_K)))`.
        Convex = "convex",
    }
);

string_enum!(
    /// The classifier MiSLAS trains in stage 2.
    /// The first value is the default, which follows Zhong et al.'s `train_stage2.py`.
    #[derive(Default)]
    pub enum MislasClassifier("a MiSLAS classifier start") {
        /// The stage-1 classifier, trained on (their `resume` loads `state_dict_classifier`).
        #[default]
        Stage1 = "stage1",
        /// A classifier drawn afresh, as cRT's.
        Fresh = "fresh",
    }
);

string_enum!(
    /// Whether MiSLAS scales the classifier's logits by learnt per-class factors.
    /// The first value is the default, which follows Zhong et al.'s `train_stage2.py`.
    #[derive(Default)]
    pub enum WeightScaling("a weight-scaling choice") {
        /// `LearnableWeightScaling`: one factor per class, from 1, trained at the full `lr`.
        #[default]
        Learned = "learned",
        /// The classifier's logits as they are.
        None = "none",
    }
);

/// Serialises an option only where it is not its default, so that a job at the defaults keeps
/// its serialised form (and id).
fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A stage-2 method with its settings, as a stage-2 job runs it. Every option defaults to what
/// Kang et al.'s code does.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Stage2Method {
    /// A classifier drawn afresh (`nn.Linear`'s default init) and trained for `epochs` epochs on
    /// the frozen backbone (BatchNorm as `bn` says) with `sampler`'s draws and cross entropy,
    /// the learning rate from `lr` down to 0 on a cosine.
    Crt {
        epochs: u32,
        lr: f64,
        #[serde(default, skip_serializing_if = "is_default")]
        bn: BnMode,
        #[serde(default, skip_serializing_if = "is_default")]
        sampler: Stage2Sampler,
    },
    /// Per-class scales `f_c`, from 1, of the stage-1 logits `f_c * z_c` (the classifier and
    /// backbone's weights frozen), trained as cRT trains its classifier.
    Lws {
        epochs: u32,
        lr: f64,
        #[serde(default, skip_serializing_if = "is_default")]
        bn: BnMode,
        #[serde(default, skip_serializing_if = "is_default")]
        sampler: Stage2Sampler,
    },
    /// The classifier's class weight vectors `w_c / |w_c|^tau`, its bias as `bias` says.
    TauNorm {
        tau: f64,
        #[serde(default, skip_serializing_if = "is_default")]
        bias: TauBias,
    },
    /// Nearest class mean: the mean of each class's `features` of the training images (no
    /// augmentation, evaluation mode), and a test image's class that of the nearest mean.
    Ncm {
        #[serde(default, skip_serializing_if = "is_default")]
        features: NcmFeatures,
    },
    /// The stage-1 logits minus `tau * log(pi)`, pi the training class frequencies.
    PosthocLa { tau: f64 },
    /// The stage-1 classifier (weight and bias) re-trained on the frozen backbone for `epochs`
    /// epochs over instance-sampled batches with the class-balanced loss of β `cb_beta` in
    /// its softmax form, SGD with `weight_decay`, the learning rate from `lr` down to 0 on a
    /// cosine, and each class's weight vector projected onto the ball of radius
    /// `min + max_norm * (max - min)` of the stage-1 rows' norms (`max_norm_every`).
    WeightBalancing(WeightBalancingSettings),
    /// MiSLAS's stage 2: the classifier (`classifier`) at `lr * lr_factor` and the per-class
    /// weight scales (`scaling`) at `lr`, both down to 0 on a cosine over `epochs`, trained on
    /// the frozen backbone's features of class-aware batches with label-aware smoothing
    /// (`smooth_head`, `smooth_tail`, `shape`), SGD with `weight_decay`; in `bn = train`, the
    /// backbone's BatchNorm statistics follow those batches (their `shift_bn`).
    Mislas(MislasSettings),
}

/// Weight balancing's settings (a [`Stage2Method::WeightBalancing`] job's).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightBalancingSettings {
    pub epochs: u32,
    pub lr: f64,
    pub weight_decay: f64,
    pub cb_beta: f64,
    pub max_norm: f64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub bn: BnMode,
    #[serde(default, skip_serializing_if = "is_default")]
    pub max_norm_every: MaxNormEvery,
}

/// MiSLAS's settings (a [`Stage2Method::Mislas`] job's).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MislasSettings {
    pub epochs: u32,
    pub lr: f64,
    pub lr_factor: f64,
    pub weight_decay: f64,
    pub smooth_head: f64,
    pub smooth_tail: f64,
    #[serde(default, skip_serializing_if = "is_default")]
    pub shape: SmoothShape,
    #[serde(default, skip_serializing_if = "is_default")]
    pub bn: BnMode,
    #[serde(default, skip_serializing_if = "is_default")]
    pub classifier: MislasClassifier,
    #[serde(default, skip_serializing_if = "is_default")]
    pub scaling: WeightScaling,
}

impl Stage2Method {
    /// cRT at these settings, every option at its default.
    pub fn crt(epochs: u32, lr: f64) -> Self {
        Self::Crt {
            epochs,
            lr,
            bn: BnMode::default(),
            sampler: Stage2Sampler::default(),
        }
    }

    /// LWS at these settings, every option at its default.
    pub fn lws(epochs: u32, lr: f64) -> Self {
        Self::Lws {
            epochs,
            lr,
            bn: BnMode::default(),
            sampler: Stage2Sampler::default(),
        }
    }

    /// Weight balancing at Alshammari et al.'s settings for CIFAR-100-LT
    /// (`demo2_second-stage-training.py`), every option at its default.
    pub fn weight_balancing() -> Self {
        Self::WeightBalancing(WeightBalancingSettings {
            epochs: 10,
            lr: 0.01,
            weight_decay: 0.1,
            cb_beta: 0.9999,
            max_norm: 0.1,
            bn: BnMode::default(),
            max_norm_every: MaxNormEvery::default(),
        })
    }

    /// MiSLAS at Zhong et al.'s settings for CIFAR-100-LT ratio 100
    /// (`config/cifar100/cifar100_imb001_stage2_mislas.yaml`), every option at its default.
    pub fn mislas() -> Self {
        Self::Mislas(MislasSettings {
            epochs: 10,
            lr: 0.1,
            lr_factor: 0.2,
            weight_decay: 2e-4,
            smooth_head: 0.4,
            smooth_tail: 0.1,
            shape: SmoothShape::default(),
            bn: BnMode::default(),
            classifier: MislasClassifier::default(),
            scaling: WeightScaling::default(),
        })
    }

    pub fn kind(&self) -> Stage2Kind {
        match self {
            Self::Crt { .. } => Stage2Kind::Crt,
            Self::Lws { .. } => Stage2Kind::Lws,
            Self::TauNorm { .. } => Stage2Kind::TauNorm,
            Self::Ncm { .. } => Stage2Kind::Ncm,
            Self::PosthocLa { .. } => Stage2Kind::PosthocLa,
            Self::WeightBalancing(_) => Stage2Kind::WeightBalancing,
            Self::Mislas(_) => Stage2Kind::Mislas,
        }
    }

    /// Epochs of training (cRT, LWS, weight balancing, MiSLAS); the others only evaluate.
    pub fn epochs(&self) -> u32 {
        match self {
            Self::Crt { epochs, .. }
            | Self::Lws { epochs, .. }
            | Self::WeightBalancing(WeightBalancingSettings { epochs, .. })
            | Self::Mislas(MislasSettings { epochs, .. }) => *epochs,
            _ => 0,
        }
    }
}

/// `crt(epochs=10,lr=0.1)`, `tau_norm(tau=1)`, `ncm`: how tables and labels name a method. An
/// option other than its default follows the settings (`crt(epochs=10,lr=0.1,bn=frozen)`,
/// `ncm(features=l2n)`), so a method at its defaults keeps the label it always had.
impl fmt::Display for Stage2Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        let mut settings: Vec<String> = Vec::new();
        match self {
            Self::Crt {
                epochs,
                lr,
                bn,
                sampler,
            }
            | Self::Lws {
                epochs,
                lr,
                bn,
                sampler,
            } => {
                settings.push(format!("epochs={epochs}"));
                settings.push(format!("lr={lr}"));
                if !is_default(bn) {
                    settings.push(format!("bn={bn}"));
                }
                if !is_default(sampler) {
                    settings.push(format!("sampler={sampler}"));
                }
            }
            Self::TauNorm { tau, bias } => {
                settings.push(format!("tau={tau}"));
                if !is_default(bias) {
                    settings.push(format!("bias={bias}"));
                }
            }
            Self::Ncm { features } => {
                if !is_default(features) {
                    settings.push(format!("features={features}"));
                }
            }
            Self::PosthocLa { tau } => settings.push(format!("tau={tau}")),
            Self::WeightBalancing(WeightBalancingSettings {
                epochs,
                lr,
                weight_decay,
                cb_beta,
                max_norm,
                bn,
                max_norm_every,
            }) => {
                settings.push(format!("epochs={epochs}"));
                settings.push(format!("lr={lr}"));
                settings.push(format!("weight_decay={weight_decay}"));
                settings.push(format!("cb_beta={cb_beta}"));
                settings.push(format!("max_norm={max_norm}"));
                if !is_default(bn) {
                    settings.push(format!("bn={bn}"));
                }
                if !is_default(max_norm_every) {
                    settings.push(format!("max_norm_every={max_norm_every}"));
                }
            }
            Self::Mislas(MislasSettings {
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
            }) => {
                settings.push(format!("epochs={epochs}"));
                settings.push(format!("lr={lr}"));
                settings.push(format!("lr_factor={lr_factor}"));
                settings.push(format!("weight_decay={weight_decay}"));
                settings.push(format!("smooth_head={smooth_head}"));
                settings.push(format!("smooth_tail={smooth_tail}"));
                if !is_default(shape) {
                    settings.push(format!("shape={shape}"));
                }
                if !is_default(bn) {
                    settings.push(format!("bn={bn}"));
                }
                if !is_default(classifier) {
                    settings.push(format!("classifier={classifier}"));
                }
                if !is_default(scaling) {
                    settings.push(format!("scaling={scaling}"));
                }
            }
        }
        if settings.is_empty() {
            write!(f, "{kind}")
        } else {
            write!(f, "{kind}({})", settings.join(","))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_print_and_parse() {
        for kind in Stage2Kind::ALL {
            assert_eq!(kind.as_str().parse::<Stage2Kind>(), Ok(kind));
        }
        assert!("decoupled".parse::<Stage2Kind>().is_err());
        assert_eq!(
            Stage2Method::crt(10, 0.1).to_string(),
            "crt(epochs=10,lr=0.1)"
        );
        assert_eq!(
            Stage2Method::TauNorm {
                tau: 1.0,
                bias: TauBias::Drop
            }
            .to_string(),
            "tau_norm(tau=1)"
        );
        assert_eq!(
            Stage2Method::Ncm {
                features: NcmFeatures::Cl2n
            }
            .to_string(),
            "ncm"
        );
    }

    #[test]
    fn weight_balancing_is_named_by_its_numeric_settings_and_its_options_off_their_defaults() {
        let wb = Stage2Method::weight_balancing();
        assert_eq!(
            wb.to_string(),
            "weight_balancing(epochs=10,lr=0.01,weight_decay=0.1,cb_beta=0.9999,max_norm=0.1)"
        );
        assert_eq!(wb.kind(), Stage2Kind::WeightBalancing);
        assert_eq!(wb.epochs(), 10);
        let json = serde_json::to_string(&wb).unwrap();
        assert_eq!(
            json,
            r#"{"method":"weight_balancing","epochs":10,"lr":0.01,"weight_decay":0.1,"cb_beta":0.9999,"max_norm":0.1}"#
        );
        assert_eq!(serde_json::from_str::<Stage2Method>(&json).unwrap(), wb);
        let Stage2Method::WeightBalancing(WeightBalancingSettings {
            epochs,
            lr,
            weight_decay,
            cb_beta,
            max_norm,
            ..
        }) = wb
        else {
            unreachable!()
        };
        let variant = Stage2Method::WeightBalancing(WeightBalancingSettings {
            epochs,
            lr,
            weight_decay,
            cb_beta,
            max_norm,
            bn: BnMode::Frozen,
            max_norm_every: MaxNormEvery::Step,
        });
        assert_eq!(
            variant.to_string(),
            "weight_balancing(epochs=10,lr=0.01,weight_decay=0.1,cb_beta=0.9999,max_norm=0.1,bn=frozen,max_norm_every=step)"
        );
        let json = serde_json::to_string(&variant).unwrap();
        assert_eq!(
            serde_json::from_str::<Stage2Method>(&json).unwrap(),
            variant
        );
    }

    #[test]
    fn an_option_off_its_default_is_labelled_and_serialised_and_a_default_is_neither() {
        let frozen = Stage2Method::Crt {
            epochs: 10,
            lr: 0.1,
            bn: BnMode::Frozen,
            sampler: Stage2Sampler::ClassBalanced,
        };
        assert_eq!(
            frozen.to_string(),
            "crt(epochs=10,lr=0.1,bn=frozen,sampler=class_balanced)"
        );
        let lws = Stage2Method::Lws {
            epochs: 5,
            lr: 0.2,
            bn: BnMode::Frozen,
            sampler: Stage2Sampler::ClassAware,
        };
        assert_eq!(lws.to_string(), "lws(epochs=5,lr=0.2,bn=frozen)");
        let keep = Stage2Method::TauNorm {
            tau: 1.0,
            bias: TauBias::Keep,
        };
        assert_eq!(keep.to_string(), "tau_norm(tau=1,bias=keep)");
        let l2n = Stage2Method::Ncm {
            features: NcmFeatures::L2n,
        };
        assert_eq!(l2n.to_string(), "ncm(features=l2n)");
        // At the defaults the serialised form is the one a job had before the options: a
        // stored job reads back, and its id (a hash of it) stays.
        let crt = Stage2Method::crt(10, 0.1);
        let json = serde_json::to_string(&crt).unwrap();
        assert_eq!(json, r#"{"method":"crt","epochs":10,"lr":0.1}"#);
        assert_eq!(serde_json::from_str::<Stage2Method>(&json).unwrap(), crt);
        assert_eq!(
            serde_json::from_str::<Stage2Method>(r#"{"method":"ncm"}"#).unwrap(),
            Stage2Method::Ncm {
                features: NcmFeatures::Cl2n
            }
        );
        for method in [frozen, lws, keep, l2n] {
            let json = serde_json::to_string(&method).unwrap();
            assert_eq!(serde_json::from_str::<Stage2Method>(&json).unwrap(), method);
        }
        assert!(
            serde_json::to_string(&frozen)
                .unwrap()
                .contains(r#""bn":"frozen","sampler":"class_balanced""#)
        );
    }
}
