//! Decoupled two-stage training (Kang et al., ICLR 2020) as a grid axis: a stage-1 job trains
//! the whole network; its stage-2 jobs start from its final model and re-balance only the
//! classifier, each in its own way.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The name of a stage-2 method, as the spec's `stage2.method` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage2Kind {
    /// No stage 2: the stage-1 job's own model.
    None,
    /// Classifier re-training: a fresh classifier trained on the frozen backbone with
    /// class-balanced sampling.
    Crt,
    /// Learnable weight scaling: one learnt scale per class on the frozen stage-1 classifier.
    Lws,
    /// τ-normalisation: each class's weight vector divided by its norm to the power τ.
    TauNorm,
    /// The nearest class mean of the L2-normalised features.
    Ncm,
    /// Post-hoc logit adjustment (Menon et al. 2021): `logits - τ log(pi)`.
    PosthocLa,
}

impl Stage2Kind {
    pub const ALL: [Stage2Kind; 6] = [
        Self::None,
        Self::Crt,
        Self::Lws,
        Self::TauNorm,
        Self::Ncm,
        Self::PosthocLa,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Crt => "crt",
            Self::Lws => "lws",
            Self::TauNorm => "tau_norm",
            Self::Ncm => "ncm",
            Self::PosthocLa => "posthoc_la",
        }
    }
}

impl fmt::Display for Stage2Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stage2Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a stage-2 method (none, crt, lws, tau_norm, ncm, posthoc_la)")
            })
    }
}

/// Declares a stage-2 option: its values, each with the name the spec and labels use; the
/// first is the default, which follows Kang et al.'s code.
macro_rules! stage2_option {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            #[default]
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &[$name] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stage2_option!(
    /// BatchNorm of the frozen backbone while cRT or LWS trains.
    BnMode {
        /// Training mode, as Kang et al.'s `run_networks.py` (`model.train()` on every network,
        /// the frozen one included): the running statistics are re-estimated on the
        /// class-balanced batches and used at test time; no weight moves.
        Train = "train",
        /// Evaluation mode: neither weights nor statistics move.
        Frozen = "frozen",
    }
);

stage2_option!(
    /// How cRT and LWS draw their training images.
    Stage2Sampler {
        /// Kang et al.'s `ClassAwareSampler` (`num_samples_cls = 4`): classes cycled in an order
        /// reshuffled at each pass, 4 images of a class in a row, each class's images cycled
        /// without replacement; an epoch is the largest class's count times the classes.
        ClassAware = "class_aware",
        /// As many independent draws as images, with replacement: a class with probability
        /// 1/K, then one of its images.
        ClassBalanced = "class_balanced",
    }
);

stage2_option!(
    /// What τ-normalisation does with the classifier's bias.
    TauBias {
        /// Left out, as Kang et al.'s `tau_norm.py` (the logits are the features times the
        /// normalised weights alone).
        Drop = "drop",
        /// Kept unnormalised, so that τ = 0 is exactly the stage-1 model.
        Keep = "keep",
    }
);

stage2_option!(
    /// The features NCM's class means and queries are compared on.
    NcmFeatures {
        /// Centred on the mean of all training features, then L2-normalised (Kang et al.'s
        /// `KNNClassifier` with `feat_type = 'cl2n'`, its default).
        Cl2n = "cl2n",
        /// L2-normalised.
        L2n = "l2n",
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

    pub fn kind(&self) -> Stage2Kind {
        match self {
            Self::Crt { .. } => Stage2Kind::Crt,
            Self::Lws { .. } => Stage2Kind::Lws,
            Self::TauNorm { .. } => Stage2Kind::TauNorm,
            Self::Ncm { .. } => Stage2Kind::Ncm,
            Self::PosthocLa { .. } => Stage2Kind::PosthocLa,
        }
    }

    /// Epochs of training (cRT and LWS); the others only evaluate.
    pub fn epochs(&self) -> u32 {
        match self {
            Self::Crt { epochs, .. } | Self::Lws { epochs, .. } => *epochs,
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
