//! The long-tail baselines as grid axes: the base loss a plan's Complement Entropy and Prototype
//! Conformity terms are added to, and the sampler that draws each epoch's training images.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// The name of a base loss, as the spec's `losses.base` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseKind {
    /// Cross entropy.
    Ce,
    /// Focal loss (Lin et al. 2017).
    Focal,
    /// Class-balanced re-weighting of cross entropy (Cui et al. 2019).
    Cb,
    /// The logit-adjusted loss (Menon et al. 2021); Balanced Softmax at τ = 1.
    La,
    /// LDAM with deferred re-weighting (Cao et al. 2019).
    LdamDrw,
}

impl BaseKind {
    pub const ALL: [BaseKind; 5] = [Self::Ce, Self::Focal, Self::Cb, Self::La, Self::LdamDrw];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ce => "ce",
            Self::Focal => "focal",
            Self::Cb => "cb",
            Self::La => "la",
            Self::LdamDrw => "ldam_drw",
        }
    }
}

impl fmt::Display for BaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BaseKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a base loss (ce, focal, cb, la, ldam_drw)"))
    }
}

/// A base loss with its settings, as a job trains it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum BaseLoss {
    /// Mean cross entropy.
    #[default]
    Ce,
    /// Mean of `-(1 - p_y)^gamma log p_y`.
    Focal { gamma: f64 },
    /// Cross entropy weighted by class, `(1 - beta) / (1 - beta^n_y)` normalised to sum to the
    /// number of classes; the weighted mean, as PyTorch's `cross_entropy(weight=...)`.
    Cb { beta: f64 },
    /// Cross entropy of the logits plus `tau * log(pi)`, pi the training class frequencies.
    La { tau: f64 },
    /// Cross entropy of `s * (z - m_y)` at the label, margins `m ∝ n^(-1/4)` with the largest
    /// `max_margin`, on a cosine classifier; class-balanced weights (beta 0.9999) from the
    /// 0-based epoch `drw_epoch` on.
    LdamDrw {
        max_margin: f64,
        s: f64,
        drw_epoch: u32,
    },
}

impl BaseLoss {
    /// The β of deferred re-weighting's class-balanced weights (Cao et al.'s code).
    pub const DRW_BETA: f64 = 0.9999;

    pub fn kind(&self) -> BaseKind {
        match self {
            Self::Ce => BaseKind::Ce,
            Self::Focal { .. } => BaseKind::Focal,
            Self::Cb { .. } => BaseKind::Cb,
            Self::La { .. } => BaseKind::La,
            Self::LdamDrw { .. } => BaseKind::LdamDrw,
        }
    }

    /// Cross entropy, the default (left out of a job's serialised form, so that the ids of
    /// specs written before base losses existed do not change).
    pub fn is_ce(&self) -> bool {
        matches!(self, Self::Ce)
    }
}

/// How the images of a training epoch are drawn.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Sampler {
    /// Every training image once, shuffled.
    #[default]
    Instance,
    /// As many draws as images; a class with probability 1/K, then an image of it uniformly.
    ClassBalanced,
    /// As many draws as images; a class with probability ∝ sqrt(n_c), then an image of it.
    Sqrt,
}

impl Sampler {
    pub const ALL: [Sampler; 3] = [Self::Instance, Self::ClassBalanced, Self::Sqrt];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Instance => "instance",
            Self::ClassBalanced => "class_balanced",
            Self::Sqrt => "sqrt",
        }
    }

    /// The default (left out of a job's serialised form, as [`BaseLoss::is_ce`]).
    pub fn is_instance(&self) -> bool {
        matches!(self, Self::Instance)
    }
}

impl fmt::Display for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Sampler {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a sampler (instance, class_balanced, sqrt)"))
    }
}

/// A named choice given as one name or a list of names; a list is an axis of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice<T>(Vec<T>);

impl<T: Copy> Choice<T> {
    pub fn one(value: T) -> Self {
        Self(vec![value])
    }

    pub fn values(&self) -> &[T] {
        &self.0
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Choice<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ChoiceVisitor<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for ChoiceVisitor<T> {
            type Value = Choice<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or a list of names")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(v.into_deserializer()).map(|value| Choice(vec![value]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<T>()? {
                    values.push(value);
                }
                if values.is_empty() {
                    return Err(de::Error::custom("an empty list gives no value to run"));
                }
                Ok(Choice(values))
            }
        }
        d.deserialize_any(ChoiceVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_print_and_parse() {
        for kind in BaseKind::ALL {
            assert_eq!(kind.as_str().parse::<BaseKind>(), Ok(kind));
        }
        for sampler in Sampler::ALL {
            assert_eq!(sampler.as_str().parse::<Sampler>(), Ok(sampler));
        }
        assert!("ldam".parse::<BaseKind>().is_err());
    }

    #[test]
    fn a_choice_is_a_name_or_a_list() {
        #[derive(Deserialize)]
        struct T {
            base: Choice<BaseKind>,
        }
        let one: T = toml::from_str("base = \"la\"").unwrap();
        assert_eq!(one.base.values(), [BaseKind::La]);
        let many: T = toml::from_str("base = [\"ce\", \"ldam_drw\"]").unwrap();
        assert_eq!(many.base.values(), [BaseKind::Ce, BaseKind::LdamDrw]);
        let err = toml::from_str::<T>("base = \"ldam\"").err().unwrap();
        assert!(err.to_string().contains("unknown variant `ldam`"), "{err}");
        assert!(toml::from_str::<T>("base = []").is_err());
    }
}
