//! The policies as torchvision 0.26's `AutoAugment`, `RandAugment` and `TrivialAugmentWide` draw
//! them (`torchvision/transforms/autoaugment.py`): the same sub-policies, op lists, magnitude
//! bins (float32, as `torch.linspace` gives them) and signs; the draws are the job's, from its
//! seed, the epoch and the image's position in the epoch, so that a resumed epoch draws the same.

use ltsweep_data::rng::{Rng, purpose};
use ltsweep_domain::Policy;
use tch::{Device, Kind, Tensor};

use super::ops::{self, Op, OpDraw};
use Op::*;

/// A sub-policy op's bin; `NONE`: the op takes no magnitude.
const NONE: usize = usize::MAX;

type SubPolicy = [(Op, f64, usize); 2];

/// `AutoAugmentPolicy.IMAGENET`'s 25 sub-policies: (op, probability, magnitude bin of 10).
#[rustfmt::skip]
const IMAGENET: [SubPolicy; 25] = [
    [(Posterize, 0.4, 8), (Rotate, 0.6, 9)],
    [(Solarize, 0.6, 5), (AutoContrast, 0.6, NONE)],
    [(Equalize, 0.8, NONE), (Equalize, 0.6, NONE)],
    [(Posterize, 0.6, 7), (Posterize, 0.6, 6)],
    [(Equalize, 0.4, NONE), (Solarize, 0.2, 4)],
    [(Equalize, 0.4, NONE), (Rotate, 0.8, 8)],
    [(Solarize, 0.6, 3), (Equalize, 0.6, NONE)],
    [(Posterize, 0.8, 5), (Equalize, 1.0, NONE)],
    [(Rotate, 0.2, 3), (Solarize, 0.6, 8)],
    [(Equalize, 0.6, NONE), (Posterize, 0.4, 6)],
    [(Rotate, 0.8, 8), (Color, 0.4, 0)],
    [(Rotate, 0.4, 9), (Equalize, 0.6, NONE)],
    [(Equalize, 0.0, NONE), (Equalize, 0.8, NONE)],
    [(Invert, 0.6, NONE), (Equalize, 1.0, NONE)],
    [(Color, 0.6, 4), (Contrast, 1.0, 8)],
    [(Rotate, 0.8, 8), (Color, 1.0, 2)],
    [(Color, 0.8, 8), (Solarize, 0.8, 7)],
    [(Sharpness, 0.4, 7), (Invert, 0.6, NONE)],
    [(ShearX, 0.6, 5), (Equalize, 1.0, NONE)],
    [(Color, 0.4, 0), (Equalize, 0.6, NONE)],
    [(Equalize, 0.4, NONE), (Solarize, 0.2, 4)],
    [(Solarize, 0.6, 5), (AutoContrast, 0.6, NONE)],
    [(Invert, 0.6, NONE), (Equalize, 1.0, NONE)],
    [(Color, 0.6, 4), (Contrast, 1.0, 8)],
    [(Equalize, 0.8, NONE), (Equalize, 0.6, NONE)],
];

/// `AutoAugmentPolicy.CIFAR10`'s.
#[rustfmt::skip]
const CIFAR10: [SubPolicy; 25] = [
    [(Invert, 0.1, NONE), (Contrast, 0.2, 6)],
    [(Rotate, 0.7, 2), (TranslateX, 0.3, 9)],
    [(Sharpness, 0.8, 1), (Sharpness, 0.9, 3)],
    [(ShearY, 0.5, 8), (TranslateY, 0.7, 9)],
    [(AutoContrast, 0.5, NONE), (Equalize, 0.9, NONE)],
    [(ShearY, 0.2, 7), (Posterize, 0.3, 7)],
    [(Color, 0.4, 3), (Brightness, 0.6, 7)],
    [(Sharpness, 0.3, 9), (Brightness, 0.7, 9)],
    [(Equalize, 0.6, NONE), (Equalize, 0.5, NONE)],
    [(Contrast, 0.6, 7), (Sharpness, 0.6, 5)],
    [(Color, 0.7, 7), (TranslateX, 0.5, 8)],
    [(Equalize, 0.3, NONE), (AutoContrast, 0.4, NONE)],
    [(TranslateY, 0.4, 3), (Sharpness, 0.2, 6)],
    [(Brightness, 0.9, 6), (Color, 0.2, 8)],
    [(Solarize, 0.5, 2), (Invert, 0.0, NONE)],
    [(Equalize, 0.2, NONE), (AutoContrast, 0.6, NONE)],
    [(Equalize, 0.2, NONE), (Equalize, 0.6, NONE)],
    [(Color, 0.9, 9), (Equalize, 0.6, NONE)],
    [(AutoContrast, 0.8, NONE), (Solarize, 0.2, 8)],
    [(Brightness, 0.1, 3), (Color, 0.7, 0)],
    [(Solarize, 0.4, 5), (AutoContrast, 0.9, NONE)],
    [(TranslateY, 0.9, 9), (TranslateY, 0.7, 9)],
    [(AutoContrast, 0.9, NONE), (Solarize, 0.8, 3)],
    [(Equalize, 0.8, NONE), (Invert, 0.1, NONE)],
    [(TranslateY, 0.7, 9), (AutoContrast, 0.9, NONE)],
];

/// The ops RandAugment and TrivialAugmentWide choose among, in torchvision's order.
const WIDE_OPS: [Op; 14] = [
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
];

/// Which `_augmentation_space` the magnitudes come from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Space {
    /// AutoAugment's and RandAugment's (translations scaled by the image's side).
    Auto,
    /// TrivialAugmentWide's.
    Wide,
}

/// An op's magnitude bins as torchvision's `_augmentation_space(num_bins, image_size)` builds
/// them, computed by the same libtorch calls (`torch.linspace` in float32); empty for an op
/// without magnitude.
fn bins(op: Op, space: Space, num_bins: i64, height: i64, width: i64) -> Vec<f64> {
    let cpu = (Kind::Float, Device::Cpu);
    let linspace = |end: f64| Tensor::linspace(0.0, end, num_bins, cpu);
    let wide = space == Space::Wide;
    let values = match op {
        ShearX | ShearY => linspace(if wide { 0.99 } else { 0.3 }),
        TranslateX if wide => linspace(32.0),
        TranslateY if wide => linspace(32.0),
        TranslateX => linspace(150.0 / 331.0 * width as f64),
        TranslateY => linspace(150.0 / 331.0 * height as f64),
        Rotate => linspace(if wide { 135.0 } else { 30.0 }),
        Brightness | Color | Contrast | Sharpness => linspace(if wide { 0.99 } else { 0.9 }),
        Posterize => {
            // `8 - (torch.arange(num_bins) / ((num_bins - 1) / k)).round().int()`.
            let k = if wide { 6.0 } else { 4.0 };
            let steps =
                Tensor::arange(num_bins, (Kind::Int64, Device::Cpu)) / ((num_bins - 1) as f64 / k);
            (steps.round().to_kind(Kind::Int) * -1 + 8).to_kind(Kind::Float)
        }
        Solarize => Tensor::linspace(255.0, 0.0, num_bins, cpu),
        Identity | AutoContrast | Equalize | Invert => return Vec::new(),
    };
    Vec::<f32>::try_from(&values)
        .expect("a float32 vector")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Whether an op's magnitude is negated half of the time.
fn signed(op: Op) -> bool {
    matches!(
        op,
        ShearX
            | ShearY
            | TranslateX
            | TranslateY
            | Rotate
            | Brightness
            | Color
            | Contrast
            | Sharpness
    )
}

/// A policy's magnitude tables for one image size.
pub struct PolicyOps {
    policy: Policy,
    /// Each op's bins (in [`WIDE_OPS`]'s order for RandAugment and TrivialAugmentWide; by op
    /// for AutoAugment), for the policy's space and bin count.
    table: Vec<(Op, Vec<f64>)>,
}

/// The ops of one epoch: `steps[k][i]` is the `k`-th op of the epoch's `i`-th image (Identity
/// where a sub-policy's op did not fire).
pub struct PolicyDraws {
    steps: Vec<Vec<OpDraw>>,
}

impl PolicyOps {
    /// `None` for the standard policy (no op).
    pub fn new(policy: Policy, height: i64, width: i64) -> Option<Self> {
        let (space, num_bins) = match policy {
            Policy::Standard => return None,
            Policy::AutoaugmentCifar10 | Policy::AutoaugmentImagenet => (Space::Auto, 10),
            Policy::Randaugment { .. } => (Space::Auto, 31),
            Policy::TrivialaugmentWide => (Space::Wide, 31),
        };
        let mut ops = WIDE_OPS.to_vec();
        ops.push(Invert);
        let table = ops
            .into_iter()
            .map(|op| (op, bins(op, space, num_bins, height, width)))
            .collect();
        Some(Self { policy, table })
    }

    /// The policy's ops with their magnitude bins and whether they are signed, as
    /// torchvision's `_augmentation_space` of the policy lists them (AutoAugment's holds
    /// Invert and no Identity; the others the reverse).
    pub fn space(&self) -> Vec<(Op, Vec<f64>, bool)> {
        let autoaugment = matches!(
            self.policy,
            Policy::AutoaugmentCifar10 | Policy::AutoaugmentImagenet
        );
        self.table
            .iter()
            .filter(|(op, _)| match op {
                Identity => !autoaugment,
                Invert => autoaugment,
                _ => true,
            })
            .map(|(op, bins)| (*op, bins.clone(), signed(*op)))
            .collect()
    }

    /// AutoAugment's sub-policies, `(op, probability, magnitude bin)`; empty for the others.
    pub fn sub_policies(&self) -> Vec<[(Op, f64, Option<usize>); 2]> {
        let table: &[SubPolicy] = match self.policy {
            Policy::AutoaugmentCifar10 => &CIFAR10,
            Policy::AutoaugmentImagenet => &IMAGENET,
            _ => &[],
        };
        table
            .iter()
            .map(|sub| sub.map(|(op, p, bin)| (op, p, (bin != NONE).then_some(bin))))
            .collect()
    }

    fn bins_of(&self, op: Op) -> &[f64] {
        &self
            .table
            .iter()
            .find(|(o, _)| *o == op)
            .expect("every op has a table")
            .1
    }

    /// `op` at `bin`, negated when signed and `negate`.
    fn draw_of(&self, op: Op, bin: usize, negate: bool) -> OpDraw {
        let bins = self.bins_of(op);
        let magnitude = if bins.is_empty() { 0.0 } else { bins[bin] };
        OpDraw {
            op,
            magnitude: if signed(op) && negate {
                -magnitude
            } else {
                magnitude
            },
        }
    }

    /// The ops of `n` images of one epoch, from the job's seed and the epoch.
    pub fn draw(&self, n: usize, seed: u64, epoch: u32) -> PolicyDraws {
        let mut rng = Rng::derive(seed, &[purpose::POLICY, u64::from(epoch)]);
        let steps = match self.policy {
            Policy::Randaugment { num_ops, .. } => num_ops as usize,
            Policy::TrivialaugmentWide => 1,
            _ => 2,
        };
        let mut out = vec![Vec::with_capacity(n); steps];
        for _ in 0..n {
            for (step, draw) in out.iter_mut().zip(self.image(&mut rng, steps)) {
                step.push(draw);
            }
        }
        PolicyDraws { steps: out }
    }

    /// One image's `steps` ops.
    fn image(&self, rng: &mut Rng, steps: usize) -> Vec<OpDraw> {
        let sub_policies = match self.policy {
            Policy::AutoaugmentCifar10 => &CIFAR10,
            Policy::AutoaugmentImagenet => &IMAGENET,
            Policy::Randaugment { magnitude, .. } => {
                return (0..steps)
                    .map(|_| {
                        let op = WIDE_OPS[rng.below(WIDE_OPS.len() as u64) as usize];
                        self.draw_of(op, magnitude as usize, rng.below(2) == 1)
                    })
                    .collect();
            }
            Policy::TrivialaugmentWide => {
                let op = WIDE_OPS[rng.below(WIDE_OPS.len() as u64) as usize];
                let bin = rng.below(31) as usize;
                return vec![self.draw_of(op, bin, rng.below(2) == 1)];
            }
            Policy::Standard => return vec![OpDraw::IDENTITY; steps],
        };
        // AutoAugment: a sub-policy, then each of its two ops with its probability; the
        // magnitude negated on sign 0, as torchvision's `signs[i] == 0`.
        let sub_policy = sub_policies[rng.below(sub_policies.len() as u64) as usize];
        sub_policy
            .iter()
            .map(|&(op, p, bin)| {
                let fires = rng.unit() <= p;
                let negate = rng.below(2) == 0;
                if fires {
                    self.draw_of(op, if bin == NONE { 0 } else { bin }, negate)
                } else {
                    OpDraw::IDENTITY
                }
            })
            .collect()
    }
}

impl PolicyDraws {
    /// Applies the ops of the epoch's images `from..from + len` to their uint8 batch.
    pub fn apply(&self, images: &Tensor, from: usize, len: usize) -> Tensor {
        let mut images = images.shallow_clone();
        for step in &self.steps {
            images = ops::apply(&images, &step[from..from + len]);
        }
        images
    }
}
