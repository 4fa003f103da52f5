//! torchvision's ImageNet ResNets (He et al. 2016; ResNeXt: Xie et al. 2017), with
//! torchvision's variable names and initialisation, so that a `state_dict` written by PyTorch
//! loads as it is ([`crate::pretrained`]) and a fresh network starts as torchvision's does.
//!
//! - Names: `conv1.weight`, `bn1.{weight,bias,running_mean,running_var}`,
//!   `layer{1..4}.{i}.{conv,bn}{1,2,3}.*`, `layer{k}.0.downsample.{0,1}.*`, `fc.{weight,bias}`
//!   (PyTorch's `num_batches_tracked` counters are not kept: they only matter to a BatchNorm
//!   without momentum).
//! - Initialisation: convolutions Kaiming-normal with fan-out and ReLU's gain, BatchNorm scale 1
//!   and shift 0 (`zero_init_residual` off, torchvision's default), the linear classifier as
//!   `nn.Linear` draws it; LDAM's cosine classifier is built by the CIFAR ResNet's own code.
//! - The stride of a bottleneck is on its 3x3 convolution (torchvision's "ResNet v1.5").
//! - ResNet-10 is `ResNet(BasicBlock, [1, 1, 1, 1])`, the long-tail papers' ImageNet-LT
//!   network (Liu et al. 2019, Kang et al. 2020).
//!
//! [`Compute`] says how the forward pass runs: bf16 mixed precision as autocast does it for a
//! ResNet (each convolution's input and weight in bf16, BatchNorm on bf16 activations with
//! float32 statistics, the pooled features and the classifier in float32), and channels-last
//! activations. The weights stay float32 in either case, so the optimiser, checkpoints and
//! pretrained files do not change with the precision.

use ltsweep_domain::{Arch, Precision};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use crate::cifar_resnet::{Head, HeadKind, LinearInit, batch_norm};

/// torchvision's convolution initialisation: `kaiming_normal_(mode="fan_out",
/// nonlinearity="relu")`.
const CONV_INIT: nn::Init = nn::Init::Kaiming {
    dist: nn::init::NormalOrUniform::Normal,
    fan: nn::init::FanInOut::FanOut,
    non_linearity: nn::init::NonLinearity::ReLU,
};

/// How a forward pass computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compute {
    pub precision: Precision,
    pub channels_last: bool,
}

impl Compute {
    pub const FP32: Compute = Compute {
        precision: Precision::Fp32,
        channels_last: false,
    };

    /// The input in the kind and memory layout the convolutions take.
    fn input(self, x: &Tensor) -> Tensor {
        let x = match self.precision {
            Precision::Bf16 => x.to_kind(Kind::BFloat16),
            Precision::Fp32 => x.shallow_clone(),
        };
        if self.channels_last {
            to_channels_last(&x)
        } else {
            x
        }
    }

    /// A convolution's weight as this pass uses it: a bf16 copy under mixed precision, through
    /// which the float32 weight receives its gradient.
    fn weight(self, w: &Tensor) -> Tensor {
        match self.precision {
            Precision::Bf16 => w.to_kind(Kind::BFloat16),
            Precision::Fp32 => w.shallow_clone(),
        }
    }
}

/// `x` (`[N, C, H, W]`) with channels-last strides. Convolutions (cuDNN's and oneDNN's) keep the
/// layout of their input, and BatchNorm, ReLU, the residual sums and pooling keep it too, so
/// converting the input converts every activation of the network.
pub fn to_channels_last(x: &Tensor) -> Tensor {
    let size = x.size();
    let [n, c, h, w] = size[..] else {
        return x.shallow_clone();
    };
    let mut out = Tensor::empty_strided(
        [n, c, h, w],
        [c * h * w, 1, w * c, c],
        (x.kind(), x.device()),
    );
    out.copy_(x);
    out
}

/// A convolution without bias, as torchvision's ResNets have.
#[derive(Debug)]
struct Conv {
    weight: Tensor,
    stride: i64,
    padding: i64,
    groups: i64,
}

impl Conv {
    fn new(p: nn::Path, c_in: i64, c_out: i64, kernel: i64, stride: i64, groups: i64) -> Self {
        Self {
            weight: p.var("weight", &[c_out, c_in / groups, kernel, kernel], CONV_INIT),
            stride,
            padding: (kernel - 1) / 2,
            groups,
        }
    }

    fn forward(&self, x: &Tensor, compute: Compute) -> Tensor {
        x.conv2d(
            &compute.weight(&self.weight),
            None::<Tensor>,
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            self.groups,
        )
    }
}

/// The projection shortcut of a block that changes the shape: `downsample.0` (1x1 convolution)
/// and `downsample.1` (BatchNorm).
#[derive(Debug)]
struct Downsample {
    conv: Conv,
    bn: nn::BatchNorm,
}

impl Downsample {
    fn new(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        Self {
            conv: Conv::new(&p / "0", c_in, c_out, 1, stride, 1),
            bn: batch_norm(&p / "1", c_out),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        self.conv.forward(x, compute).apply_t(&self.bn, train)
    }
}

#[derive(Debug)]
struct Block {
    /// `conv1`/`bn1` ... `conv3`/`bn3` (two pairs in a basic block, three in a bottleneck).
    layers: Vec<(Conv, nn::BatchNorm)>,
    downsample: Option<Downsample>,
}

impl Block {
    /// torchvision's `BasicBlock`: two 3x3 convolutions; `planes` channels out.
    fn basic(p: nn::Path, c_in: i64, planes: i64, stride: i64) -> Self {
        Self {
            layers: vec![
                (
                    Conv::new(&p / "conv1", c_in, planes, 3, stride, 1),
                    batch_norm(&p / "bn1", planes),
                ),
                (
                    Conv::new(&p / "conv2", planes, planes, 3, 1, 1),
                    batch_norm(&p / "bn2", planes),
                ),
            ],
            downsample: (stride != 1 || c_in != planes)
                .then(|| Downsample::new(&p / "downsample", c_in, planes, stride)),
        }
    }

    /// torchvision's `Bottleneck`: 1x1 down to `width`, 3x3 (strided, grouped), 1x1 up to
    /// `4 * planes`.
    fn bottleneck(p: nn::Path, c_in: i64, planes: i64, stride: i64, shape: &Shape) -> Self {
        let width = planes * shape.width_per_group / 64 * shape.groups;
        let c_out = planes * 4;
        Self {
            layers: vec![
                (
                    Conv::new(&p / "conv1", c_in, width, 1, 1, 1),
                    batch_norm(&p / "bn1", width),
                ),
                (
                    Conv::new(&p / "conv2", width, width, 3, stride, shape.groups),
                    batch_norm(&p / "bn2", width),
                ),
                (
                    Conv::new(&p / "conv3", width, c_out, 1, 1, 1),
                    batch_norm(&p / "bn3", c_out),
                ),
            ],
            downsample: (stride != 1 || c_in != c_out)
                .then(|| Downsample::new(&p / "downsample", c_in, c_out, stride)),
        }
    }

    fn forward_t(&self, x: &Tensor, train: bool, compute: Compute) -> Tensor {
        let last = self.layers.len() - 1;
        let mut out = x.shallow_clone();
        for (i, (conv, bn)) in self.layers.iter().enumerate() {
            out = conv.forward(&out, compute).apply_t(bn, train);
            if i < last {
                out = out.relu();
            }
        }
        let shortcut = match &self.downsample {
            Some(downsample) => downsample.forward_t(x, train, compute),
            None => x.shallow_clone(),
        };
        (out + shortcut).relu()
    }
}

/// An architecture's blocks: kind, count per stage, and ResNeXt's groups.
struct Shape {
    bottleneck: bool,
    blocks: [usize; 4],
    groups: i64,
    width_per_group: i64,
}

impl Shape {
    fn of(arch: Arch) -> Option<Shape> {
        let (bottleneck, blocks, groups, width_per_group) = match arch {
            Arch::Cifar => return None,
            Arch::Resnet10 => (false, [1, 1, 1, 1], 1, 64),
            Arch::Resnet18 => (false, [2, 2, 2, 2], 1, 64),
            Arch::Resnet34 => (false, [3, 4, 6, 3], 1, 64),
            Arch::Resnet50 => (true, [3, 4, 6, 3], 1, 64),
            Arch::Resnet101 => (true, [3, 4, 23, 3], 1, 64),
            Arch::Resnet152 => (true, [3, 8, 36, 3], 1, 64),
            Arch::Resnext50_32x4d => (true, [3, 4, 6, 3], 32, 4),
        };
        Some(Shape {
            bottleneck,
            blocks,
            groups,
            width_per_group,
        })
    }
}

/// One of torchvision's ImageNet ResNets.
#[derive(Debug)]
pub struct ImageNetResNet {
    conv1: Conv,
    bn1: nn::BatchNorm,
    blocks: Vec<Block>,
    head: Head,
    features: i64,
    compute: Compute,
}

impl ImageNetResNet {
    /// `arch` must be an ImageNet architecture (not [`Arch::Cifar`]).
    pub fn new(
        p: &nn::Path,
        arch: Arch,
        in_channels: i64,
        classes: i64,
        head: HeadKind,
        compute: Compute,
    ) -> Self {
        let shape = Shape::of(arch).expect("an ImageNet architecture");
        // Created in torchvision's order of modules (stem, stages, classifier), so that one
        // seed draws the same kind of network whatever else changes.
        let conv1 = Conv::new(p / "conv1", in_channels, 64, 7, 2, 1);
        let bn1 = batch_norm(p / "bn1", 64);
        let expansion = if shape.bottleneck { 4 } else { 1 };
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (stage, (&count, planes)) in shape.blocks.iter().zip([64, 128, 256, 512]).enumerate() {
            for i in 0..count {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let path = p / format!("layer{}", stage + 1) / i;
                blocks.push(if shape.bottleneck {
                    Block::bottleneck(path, c_in, planes, stride, &shape)
                } else {
                    Block::basic(path, c_in, planes, stride)
                });
                c_in = planes * expansion;
            }
        }
        let features = 512 * expansion;
        let head = Head::new(p, features, classes, head, LinearInit::PyTorch);
        Self {
            conv1,
            bn1,
            blocks,
            head,
            features,
            compute,
        }
    }

    /// Width of the pooled features: 512 (basic blocks) or 2048 (bottlenecks).
    pub fn features(&self) -> i64 {
        self.features
    }

    pub fn compute(&self) -> Compute {
        self.compute
    }

    /// Logits `[N, classes]` and pooled features `[N, features]`, both in the weights' kind.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Tensor) {
        let features = self.features_t(x, train);
        (self.head.forward(&features), features)
    }

    /// The pooled features `[N, features]` alone, in the weights' kind: the backbone without
    /// its classifier.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Tensor {
        let compute = self.compute;
        let x = compute.input(x);
        let mut out = self
            .conv1
            .forward(&x, compute)
            .apply_t(&self.bn1, train)
            .relu()
            .max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for block in &self.blocks {
            out = block.forward_t(&out, train, compute);
        }
        let features = out.adaptive_avg_pool2d([1, 1]).flatten(1, -1);
        let kind = self.conv1.weight.kind();
        if features.kind() == kind {
            features
        } else {
            features.to_kind(kind)
        }
    }

    /// The classifier on the pooled features.
    pub(crate) fn head(&self) -> &Head {
        &self.head
    }
}

impl ModuleT for ImageNetResNet {
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        ImageNetResNet::forward_t(self, x, train).0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Trainable parameters with 1,000 classes, as `sum(p.numel() for p in m.parameters())`
    /// counts them for torchvision 0.26.0's models. `worker/tests/it/imagenet.rs` compares every
    /// architecture with torchvision itself (`tests/data/imagenet/torchvision_reference.py`).
    const TORCHVISION_PARAMETERS: [(Arch, i64); 7] = [
        (Arch::Resnet10, 5_418_792),
        (Arch::Resnet18, 11_689_512),
        (Arch::Resnet34, 21_797_672),
        (Arch::Resnet50, 25_557_032),
        (Arch::Resnet101, 44_549_160),
        (Arch::Resnet152, 60_192_808),
        (Arch::Resnext50_32x4d, 25_028_904),
    ];

    fn parameters(vs: &nn::VarStore) -> i64 {
        vs.trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum()
    }

    #[test]
    fn parameter_counts_equal_torchvisions() {
        for (arch, expected) in TORCHVISION_PARAMETERS {
            let vs = nn::VarStore::new(Device::Cpu);
            let net =
                ImageNetResNet::new(&vs.root(), arch, 3, 1000, HeadKind::Linear, Compute::FP32);
            assert_eq!(parameters(&vs), expected, "{arch}");
            let basic = matches!(arch, Arch::Resnet10 | Arch::Resnet18 | Arch::Resnet34);
            assert_eq!(net.features(), if basic { 512 } else { 2048 }, "{arch}");
        }
    }

    #[test]
    fn variables_carry_torchvisions_names_and_initialisation() {
        let vs = nn::VarStore::new(Device::Cpu);
        let _net = crate::train::with_seed(0, || {
            ImageNetResNet::new(
                &vs.root(),
                Arch::Resnet50,
                3,
                10,
                HeadKind::Linear,
                Compute::FP32,
            )
        });
        let vars = vs.variables();
        for name in [
            "conv1.weight",
            "bn1.running_mean",
            "layer1.0.downsample.0.weight",
            "layer1.0.downsample.1.running_var",
            "layer4.2.conv3.weight",
            "layer4.2.bn3.bias",
            "fc.weight",
            "fc.bias",
        ] {
            assert!(vars.contains_key(name), "{name} missing");
        }
        assert!(!vars.contains_key("layer1.1.downsample.0.weight"));
        // Kaiming-normal, fan-out: std sqrt(2 / (64 * 7 * 7)) for the stem.
        let std = vars["conv1.weight"].std(true).double_value(&[]);
        let expected = (2.0f64 / (64.0 * 49.0)).sqrt();
        assert!(
            (std / expected - 1.0).abs() < 0.02,
            "{std} against {expected}"
        );
        let bound = 1.0 / 2048f64.sqrt();
        let fc = &vars["fc.weight"];
        assert!(fc.abs().max().double_value(&[]) <= bound);
        assert!(fc.abs().max().double_value(&[]) > 0.9 * bound);
        assert_eq!(
            vars["layer2.0.bn2.weight"]
                .mean(Kind::Float)
                .double_value(&[]),
            1.0
        );
        assert_eq!(
            vars["layer2.0.bn2.bias"]
                .abs()
                .sum(Kind::Float)
                .double_value(&[]),
            0.0
        );
    }

    #[test]
    fn small_images_one_channel_and_a_cosine_head_work() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ImageNetResNet::new(
            &vs.root(),
            Arch::Resnet10,
            1,
            7,
            HeadKind::Cosine { scale: 1.0 },
            Compute::FP32,
        );
        let x = Tensor::randn([3, 1, 32, 32], (Kind::Float, Device::Cpu));
        let (logits, features) = net.forward_t(&x, true);
        assert_eq!(logits.size(), [3, 7]);
        assert_eq!(features.size(), [3, 512]);
        assert!(logits.abs().max().double_value(&[]) <= 1.0 + 1e-5);
    }

    #[test]
    fn bf16_and_channels_last_give_float32_logits_close_to_float32s() {
        let vs = nn::VarStore::new(Device::Cpu);
        let (mut net, x) = crate::train::with_seed(1, || {
            let net = ImageNetResNet::new(
                &vs.root(),
                Arch::Resnet18,
                3,
                10,
                HeadKind::Linear,
                Compute::FP32,
            );
            (
                net,
                Tensor::randn([4, 3, 64, 64], (Kind::Float, Device::Cpu)),
            )
        });
        let (reference, _) = net.forward_t(&x, false);
        for (precision, channels_last, tolerance) in [
            (Precision::Fp32, true, 1e-4),
            (Precision::Bf16, false, 5e-2),
            (Precision::Bf16, true, 5e-2),
        ] {
            net.compute = Compute {
                precision,
                channels_last,
            };
            let (logits, features) = net.forward_t(&x, false);
            assert_eq!(logits.kind(), Kind::Float);
            assert_eq!(features.kind(), Kind::Float);
            let scale = reference.abs().max().double_value(&[]);
            let error = (&logits - &reference).abs().max().double_value(&[]);
            assert!(
                error <= tolerance * scale,
                "{precision} channels_last={channels_last}: {error} of {scale}"
            );
        }
        // The activations really are channels-last: the stem's output keeps the input's layout.
        let x = to_channels_last(&x);
        let stem = net.conv1.forward(&x, Compute::FP32);
        let [_, c, _, _] = stem.size()[..] else {
            unreachable!()
        };
        assert_eq!(stem.stride()[1], 1);
        assert_eq!(stem.stride()[3], c);
    }

    #[test]
    fn bf16_gradients_reach_the_float32_weights() {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = ImageNetResNet::new(
            &vs.root(),
            Arch::Resnet10,
            3,
            5,
            HeadKind::Linear,
            Compute {
                precision: Precision::Bf16,
                channels_last: true,
            },
        );
        let x = Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu));
        let loss = net.forward_t(&x, true).0.sum(Kind::Float);
        loss.backward();
        let grad = vs.variables()["conv1.weight"].grad();
        assert_eq!(grad.kind(), Kind::Float);
        assert!(grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    }
}
