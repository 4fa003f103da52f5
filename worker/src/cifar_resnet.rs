//! The CIFAR ResNet (He et al. 2016, section 4.2): depth 6n+2, three stages of 16/32/64
//! channels with n basic blocks each, option-A shortcuts (stride-2 subsampling and zero-padded
//! channels, no parameters: the paper's and LDAM-DRW's choice), Kaiming-normal initialisation.
//! The 64-d pooled features are returned beside the logits for the Prototype Conformity loss.
//!
//! Initialisation is PyTorch's CIFAR ResNet recipe (the one of LDAM-DRW's code): convolution and
//! linear weights Kaiming-normal (fan-in, gain sqrt(2)), the linear bias uniform in
//! ±1/sqrt(fan-in) (PyTorch's `nn.Linear` default), BatchNorm scale 1 and shift 0 with momentum 0.1
//! and eps 1e-5. tch's own BatchNorm default draws the scale from Uniform(0, 1): in a PyTorch
//! trainer of the Fashion-MNIST-LT recipe that alone cost 3.7 points All and 5.8 Tail.

use ltsweep_domain::BaseLoss;
use tch::Tensor;
use tch::nn::{self, ModuleT};

/// Width of the pooled features.
pub const FEATURES: i64 = 64;

/// A 2-D BatchNorm as PyTorch initialises it: scale 1, shift 0.
pub(crate) fn batch_norm(p: nn::Path, channels: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        ws_init: nn::Init::Const(1.0),
        bs_init: nn::Init::Const(0.0),
        momentum: 0.1,
        eps: 1e-5,
        ..Default::default()
    };
    nn::batch_norm2d(p, channels, config)
}

fn conv3x3(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> nn::Conv2D {
    let config = nn::ConvConfig {
        stride,
        padding: 1,
        bias: false,
        ws_init: nn::init::DEFAULT_KAIMING_NORMAL,
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, 3, config)
}

#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    /// Channels of zeros added on each side of the shortcut; `None` for an identity shortcut.
    shortcut_pad: Option<i64>,
}

impl BasicBlock {
    fn new(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        Self {
            conv1: conv3x3(&p / "conv1", c_in, c_out, stride),
            bn1: batch_norm(&p / "bn1", c_out),
            conv2: conv3x3(&p / "conv2", c_out, c_out, 1),
            bn2: batch_norm(&p / "bn2", c_out),
            shortcut_pad: (stride != 1 || c_in != c_out).then_some((c_out - c_in) / 2),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let out = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        let out = out.apply(&self.conv2).apply_t(&self.bn2, train);
        let shortcut = match self.shortcut_pad {
            None => x.shallow_clone(),
            Some(pad) => x
                .slice(2, 0, None, 2)
                .slice(3, 0, None, 2)
                .constant_pad_nd([0, 0, 0, 0, pad, pad]),
        };
        (out + shortcut).relu()
    }
}

/// How a linear classifier's weights start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LinearInit {
    /// Kaiming-normal (fan-in, gain sqrt(2)): the CIFAR ResNet recipe of LDAM-DRW's code.
    KaimingNormal,
    /// `nn.Linear`'s own: Uniform(±1/sqrt(fan-in)), as torchvision's ResNets leave it.
    PyTorch,
}

/// Which classifier a job's network ends in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum HeadKind {
    /// `W x + b`.
    Linear,
    /// `scale * cos(x, w_c)`: LDAM's classifier (`NormedLinear` of Cao et al.'s code), with the
    /// scale `s` their loss multiplies the cosines by. The network's logits are the scaled
    /// ones, the logits the loss sees, so that everything that reads logits (Complement
    /// Entropy, post-hoc adjustment, the stage-2 methods) reads what the loss saw.
    Cosine { scale: f64 },
}

impl HeadKind {
    /// The classifier a base loss trains: the cosine one for LDAM-DRW.
    pub fn of(base: &BaseLoss) -> Self {
        match *base {
            BaseLoss::LdamDrw { s, .. } => HeadKind::Cosine { scale: s },
            _ => HeadKind::Linear,
        }
    }
}

/// Rows (`dim` 1) or columns (`dim` 0) of unit length.
pub(crate) fn unit(t: &Tensor, dim: i64) -> Tensor {
    t / t.norm_scalaropt_dim(2, [dim], true).clamp_min(1e-12)
}

/// A cosine classifier's weight `[features, classes]` as `NormedLinear` draws it:
/// `uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)`, Uniform(-1, 1) columns rescaled to unit
/// norm. The norm matters although the forward pass normalises: a cosine's gradient with
/// respect to a column is inversely proportional to the column's norm, so columns of norm
/// about 4.7 (64 Uniform(-1, 1) draws) would take angular steps about 21 times smaller.
fn normed_linear_weight(p: nn::Path, features: i64, classes: i64) -> Tensor {
    let init = nn::Init::Uniform { lo: -1.0, up: 1.0 };
    let weight = p.var("weight", &[features, classes], init);
    tch::no_grad(|| {
        let mut columns = weight.shallow_clone();
        let _ = columns.renorm_(2.0, 1, 1e-5);
        let _ = columns.g_mul_scalar_(1e5);
    });
    weight
}

/// The classifier on the pooled features, of every network the trainer builds.
#[derive(Debug)]
pub(crate) enum Head {
    Linear(nn::Linear),
    /// `scale * cos(x, w_c)`, one weight column `w_c` per class.
    Cosine {
        weight: Tensor,
        scale: f64,
    },
}

impl Head {
    /// A classifier of `kind` on `features` pooled features, drawn as its recipe draws it;
    /// its variables are `fc.weight` (and `fc.bias` for the linear one) under `p`.
    pub(crate) fn new(
        p: &nn::Path,
        features: i64,
        classes: i64,
        kind: HeadKind,
        linear_init: LinearInit,
    ) -> Self {
        match kind {
            HeadKind::Cosine { scale } => Head::Cosine {
                weight: normed_linear_weight(p / "fc", features, classes),
                scale,
            },
            HeadKind::Linear => {
                let ws_init = match linear_init {
                    LinearInit::KaimingNormal => nn::init::DEFAULT_KAIMING_NORMAL,
                    LinearInit::PyTorch => {
                        let bound = 1.0 / (features as f64).sqrt();
                        nn::Init::Uniform {
                            lo: -bound,
                            up: bound,
                        }
                    }
                };
                let fc_config = nn::LinearConfig {
                    ws_init,
                    ..Default::default()
                };
                Head::Linear(nn::linear(p / "fc", features, classes, fc_config))
            }
        }
    }

    pub(crate) fn forward(&self, features: &Tensor) -> Tensor {
        match self {
            Head::Linear(fc) => features.apply(fc),
            Head::Cosine { weight, scale } => unit(features, 1).matmul(&unit(weight, 0)) * *scale,
        }
    }
}

#[derive(Debug)]
pub struct ResNet {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    blocks: Vec<BasicBlock>,
    pub(crate) head: Head,
}

impl ResNet {
    /// `depth` must be 6n+2 (checked when the spec is validated).
    pub fn new(p: &nn::Path, depth: u32, in_channels: i64, classes: i64) -> Self {
        Self::with_head(p, depth, in_channels, classes, HeadKind::Linear)
    }

    /// With the classifier `head`.
    pub fn with_head(
        p: &nn::Path,
        depth: u32,
        in_channels: i64,
        classes: i64,
        head: HeadKind,
    ) -> Self {
        let n = (depth as usize - 2) / 6;
        let mut blocks = Vec::with_capacity(3 * n);
        let mut c_in = 16;
        for (stage, c_out) in [16, 32, 64].into_iter().enumerate() {
            for i in 0..n {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                blocks.push(BasicBlock::new(
                    p / format!("layer{}", stage + 1) / i,
                    c_in,
                    c_out,
                    stride,
                ));
                c_in = c_out;
            }
        }
        // The order of the draws from the seed: the blocks, the classifier, then conv1.
        let head = Head::new(p, FEATURES, classes, head, LinearInit::KaimingNormal);
        Self {
            conv1: conv3x3(p / "conv1", in_channels, 16, 1),
            bn1: batch_norm(p / "bn1", 16),
            blocks,
            head,
        }
    }

    /// Logits `[N, classes]` and pooled features `[N, 64]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let features = self.features_t(x, train);
        (self.head.forward(&features), features)
    }

    /// The pooled features `[N, 64]` alone: the backbone without its classifier.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        let mut out = x.apply(&self.conv1).apply_t(&self.bn1, train).relu();
        for block in &self.blocks {
            out = block.forward_t(&out, train);
        }
        out.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
    }
}

impl ModuleT for ResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        ResNet::forward_t(self, x, train).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn shapes_and_parameter_counts_match_the_cifar_resnets() {
        // Counted by hand: 269,722 weights for ResNet-20 on 10 classes (the paper's "0.27M").
        for (depth, params) in [(20, 269_722), (32, 464_154)] {
            let vs = nn::VarStore::new(Device::Cpu);
            let net = ResNet::new(&vs.root(), depth, 3, 10);
            let x = Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu));
            let (logits, features) = net.forward_t(&x, false);
            assert_eq!(logits.size(), [2, 10]);
            assert_eq!(features.size(), [2, 64]);
            let count: i64 = vs
                .trainable_variables()
                .iter()
                .map(Tensor::numel)
                .map(|n| n as i64)
                .sum();
            assert_eq!(count, params, "depth {depth}");
        }
    }

    #[test]
    fn batch_norm_starts_as_pytorch_does() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = ResNet::new(&vs.root(), 8, 3, 10);
        let mut norms = 0;
        for (name, tensor) in vs.variables() {
            let expected = if name.ends_with("bn1.weight") || name.ends_with("bn2.weight") {
                1.0
            } else if name.ends_with("bn1.bias") || name.ends_with("bn2.bias") {
                0.0
            } else {
                continue;
            };
            norms += 1;
            let values = Vec::<f32>::try_from(tensor.flatten(0, -1)).unwrap();
            assert!(values.iter().all(|&v| v == expected), "{name}: {values:?}");
        }
        // conv1's BatchNorm and two in each of the three blocks of ResNet-8, scale and shift.
        assert_eq!(norms, 2 * 7);
    }

    #[test]
    fn a_cosine_head_gives_scaled_cosines_and_starts_with_unit_columns() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ResNet::with_head(&vs.root(), 8, 3, 5, HeadKind::Cosine { scale: 30.0 });
        let x = Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu));
        let (logits, features) = net.forward_t(&x, true);
        assert_eq!(logits.size(), [4, 5]);
        let largest = logits.abs().max().double_value(&[]);
        assert!(largest <= 30.0 * (1.0 + 1e-5), "{largest}");
        // The logits are 30 times the cosines, not the cosines.
        let weight = &vs.variables()["fc.weight"];
        let cosines = unit(&features, 1).matmul(&unit(weight, 0));
        let gap = (&logits - cosines * 30.0).abs().max().double_value(&[]);
        assert!(gap < 1e-4, "{gap}");
        // NormedLinear's columns start at unit norm, not at the ~4.7 of Uniform(-1, 1) draws.
        let norms = Vec::<f64>::try_from(
            weight
                .norm_scalaropt_dim(2, [0], false)
                .to_kind(Kind::Double),
        )
        .unwrap();
        assert_eq!(norms.len(), 5);
        for norm in norms {
            assert!((norm - 1.0).abs() < 1e-5, "a column of norm {norm}");
        }
    }

    #[test]
    fn one_channel_and_small_images_work() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), 8, 1, 7);
        let x = Tensor::zeros([3, 1, 12, 12], (Kind::Float, Device::Cpu));
        assert_eq!(net.forward_t(&x, true).0.size(), [3, 7]);
    }
}
