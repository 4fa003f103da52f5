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

/// A stage-2 method with its settings, as a stage-2 job runs it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "method")]
pub enum Stage2Method {
    /// A classifier drawn afresh (as stage 1 draws it) and trained for `epochs` epochs on the
    /// frozen backbone (evaluation mode: BatchNorm statistics unchanged) with class-balanced
    /// sampling and cross entropy, the learning rate from `lr` down to 0 on a cosine.
    Crt { epochs: u32, lr: f64 },
    /// Per-class scales `f_c`, from 1, of the stage-1 logits `f_c * z_c` (the classifier and
    /// backbone frozen), trained as cRT trains its classifier.
    Lws { epochs: u32, lr: f64 },
    /// The classifier's class weight vectors `w_c / |w_c|^tau` (the bias kept); `tau = 0` is the
    /// stage-1 model.
    TauNorm { tau: f64 },
    /// Nearest class mean: the mean of each class's L2-normalised training features (no
    /// augmentation, evaluation mode), and a test image's class that of the nearest mean.
    Ncm,
    /// The stage-1 logits minus `tau * log(pi)`, pi the training class frequencies.
    PosthocLa { tau: f64 },
}

impl Stage2Method {
    pub fn kind(&self) -> Stage2Kind {
        match self {
            Self::Crt { .. } => Stage2Kind::Crt,
            Self::Lws { .. } => Stage2Kind::Lws,
            Self::TauNorm { .. } => Stage2Kind::TauNorm,
            Self::Ncm => Stage2Kind::Ncm,
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

/// `crt(epochs=10,lr=0.1)`, `tau_norm(tau=1)`, `ncm`: how tables and labels name a method.
impl fmt::Display for Stage2Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind();
        match self {
            Self::Crt { epochs, lr } | Self::Lws { epochs, lr } => {
                write!(f, "{kind}(epochs={epochs},lr={lr})")
            }
            Self::TauNorm { tau } | Self::PosthocLa { tau } => write!(f, "{kind}(tau={tau})"),
            Self::Ncm => write!(f, "{kind}"),
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
            Stage2Method::Crt {
                epochs: 10,
                lr: 0.1
            }
            .to_string(),
            "crt(epochs=10,lr=0.1)"
        );
        assert_eq!(
            Stage2Method::TauNorm { tau: 1.0 }.to_string(),
            "tau_norm(tau=1)"
        );
        assert_eq!(Stage2Method::Ncm.to_string(), "ncm");
    }
}
