//! The network a job trains and the arithmetic it trains in: the CIFAR ResNet chosen by depth,
//! or one of torchvision's ImageNet ResNets; float32, or bfloat16 mixed precision.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A network architecture, as the spec's `model.arch` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// The CIFAR ResNet of depth 6n+2 (`model.depth`), 16/32/64 channels: the default.
    #[default]
    Cifar,
    /// ResNet-10: basic blocks [1, 1, 1, 1], the long-tail papers' ImageNet-LT baseline
    /// (Liu et al. 2019, Kang et al. 2020); not one of torchvision's functions, built from its
    /// `ResNet` class.
    Resnet10,
    Resnet18,
    Resnet34,
    Resnet50,
    Resnet101,
    Resnet152,
    /// ResNeXt-50 32x4d: bottlenecks [3, 4, 6, 3] with 32 groups of width 4.
    #[serde(rename = "resnext50_32x4d")]
    Resnext50_32x4d,
}

impl Arch {
    pub const ALL: [Arch; 8] = [
        Self::Cifar,
        Self::Resnet10,
        Self::Resnet18,
        Self::Resnet34,
        Self::Resnet50,
        Self::Resnet101,
        Self::Resnet152,
        Self::Resnext50_32x4d,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cifar => "cifar",
            Self::Resnet10 => "resnet10",
            Self::Resnet18 => "resnet18",
            Self::Resnet34 => "resnet34",
            Self::Resnet50 => "resnet50",
            Self::Resnet101 => "resnet101",
            Self::Resnet152 => "resnet152",
            Self::Resnext50_32x4d => "resnext50_32x4d",
        }
    }

    pub fn is_cifar(&self) -> bool {
        *self == Self::Cifar
    }

    /// The nominal depth of an ImageNet architecture (its name's number); `None` for the CIFAR
    /// ResNet, whose depth the spec gives.
    pub fn depth(self) -> Option<u32> {
        match self {
            Self::Cifar => None,
            Self::Resnet10 => Some(10),
            Self::Resnet18 => Some(18),
            Self::Resnet34 => Some(34),
            Self::Resnet50 | Self::Resnext50_32x4d => Some(50),
            Self::Resnet101 => Some(101),
            Self::Resnet152 => Some(152),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Arch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|a| a.as_str()).collect();
                format!("`{s}` is not an architecture ({})", names.join(", "))
            })
    }
}

/// The arithmetic of the network's forward and backward passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Float32 throughout.
    #[default]
    Fp32,
    /// bfloat16 mixed precision, as PyTorch's autocast does it for a ResNet: convolutions,
    /// BatchNorm outputs, activations and pooling in bfloat16; the weights, their gradients,
    /// the optimiser, BatchNorm's statistics, the classifier and the loss in float32.
    Bf16,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Bf16 => "bf16",
        }
    }

    pub fn is_fp32(&self) -> bool {
        *self == Self::Fp32
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_as_the_spec_writes_them() {
        for arch in Arch::ALL {
            assert_eq!(arch.as_str().parse::<Arch>(), Ok(arch));
            let json = serde_json::to_string(&arch).unwrap();
            assert_eq!(json, format!("\"{arch}\""));
        }
        assert!(
            "resnet20"
                .parse::<Arch>()
                .unwrap_err()
                .contains("resnext50_32x4d")
        );
        assert_eq!(Arch::Resnext50_32x4d.depth(), Some(50));
        assert_eq!(Arch::Cifar.depth(), None);
    }
}
