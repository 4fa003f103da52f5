//! The input pipeline as batched tensor ops on the training device: a padded random crop and a
//! horizontal flip per image (one `gather` does both), then normalisation, all from uint8.
//!
//! A job's `[augment]` adds, after the crop and flip, an image policy on the uint8 images
//! ([`PolicyOps`], torchvision's ops in [`ops`]) and, after normalisation, Cutout ([`Cutout`]).
//!
//! There is no loader process and no per-image work on the CPU: the whole training set is one
//! uint8 tensor on the device, and the random choices of an epoch are drawn up front from the
//! job's seed and the epoch, so a resumed epoch makes the same choices.

use ltsweep_domain::{Augmentation, Normalization, Policy};
use tch::{Device, Kind, Tensor};

use ltsweep_data::rng::{Rng, purpose};

mod cutout;
mod mix;
pub mod ops;
mod policy;

pub use cutout::{Cutout, CutoutDraws};
pub use mix::{BatchMix, LabelWeight, Mixed, mixed_loss, remix_weight};
pub use policy::{PolicyDraws, PolicyOps};

/// Per-channel normalisation folded into one multiply-add on uint8 values:
/// `(x / 255 - mean) / std = x * scale + shift`.
pub struct Normalize {
    scale: Tensor,
    shift: Tensor,
}

impl Normalize {
    /// From the training images' own per-channel mean and standard deviation; `pixels` is
    /// `[N, C, H, W]` with `plane = H * W`.
    pub fn fit(pixels: &[u8], channels: usize, plane: usize, device: Device) -> Self {
        let mut sum = vec![0f64; channels];
        let mut sum_sq = vec![0f64; channels];
        for (i, chunk) in pixels.chunks_exact(plane).enumerate() {
            let c = i % channels;
            for &v in chunk {
                let v = f64::from(v) / 255.0;
                sum[c] += v;
                sum_sq[c] += v * v;
            }
        }
        let count = (pixels.len() / channels) as f64;
        let mut scale = Vec::with_capacity(channels);
        let mut shift = Vec::with_capacity(channels);
        for c in 0..channels {
            let mean = sum[c] / count;
            let std = (sum_sq[c] / count - mean * mean).max(1e-12).sqrt();
            scale.push((1.0 / (255.0 * std)) as f32);
            shift.push((-mean / std) as f32);
        }
        let shape = [1, channels as i64, 1, 1];
        Self {
            scale: Tensor::from_slice(&scale).view(shape).to_device(device),
            shift: Tensor::from_slice(&shift).view(shape).to_device(device),
        }
    }

    /// With the given per-channel mean and standard deviation (list data's, from its
    /// configuration).
    pub fn with(n: &Normalization, device: Device) -> Self {
        let scale: Vec<f32> = n.std.iter().map(|s| (1.0 / (255.0 * s)) as f32).collect();
        let shift: Vec<f32> = n
            .mean
            .iter()
            .zip(n.std)
            .map(|(m, s)| (-m / s) as f32)
            .collect();
        Self {
            scale: Tensor::from_slice(&scale)
                .view([1, 3, 1, 1])
                .to_device(device),
            shift: Tensor::from_slice(&shift)
                .view([1, 3, 1, 1])
                .to_device(device),
        }
    }

    pub fn apply(&self, images: &Tensor) -> Tensor {
        images.to_kind(Kind::Float) * &self.scale + &self.shift
    }

    /// The uint8 values normalised images were made from. Exact for images this normalisation
    /// made, and for the list pipeline's (its table holds the same `(v / 255 - mean) / std` in
    /// float32): the float error is far below the half level the rounding allows.
    pub fn to_u8(&self, images: &Tensor) -> Tensor {
        ((images.to_kind(Kind::Float) - &self.shift) / &self.scale)
            .round()
            .clamp(0.0, 255.0)
            .to_kind(Kind::Uint8)
    }
}

/// The random crop offsets and flips of one epoch, in the epoch's sample order.
pub struct EpochDraws {
    pub offset_y: Tensor,
    pub offset_x: Tensor,
    pub flip: Tensor,
}

/// Padded random crop plus horizontal flip.
pub struct Augment {
    pad: i64,
    height: i64,
    width: i64,
    rows: Tensor,
    cols: Tensor,
    cols_flipped: Tensor,
}

impl Augment {
    /// CIFAR's 4-pixel padding for 32-pixel images, scaled for other sizes.
    pub fn new(height: i64, width: i64, device: Device) -> Self {
        let pad = (height / 8).max(1);
        let opts = (Kind::Int64, device);
        Self {
            pad,
            height,
            width,
            rows: Tensor::arange(height, opts),
            cols: Tensor::arange(width, opts),
            cols_flipped: Tensor::arange(width, opts).flip([0]),
        }
    }

    /// The choices for `n` samples of one epoch.
    pub fn draw(&self, n: usize, seed: u64, epoch: u32, device: Device) -> EpochDraws {
        let mut rng = Rng::derive(seed, &[purpose::AUGMENT, u64::from(epoch)]);
        let span = 2 * self.pad as u64 + 1;
        let mut oy = Vec::with_capacity(n);
        let mut ox = Vec::with_capacity(n);
        let mut flip = Vec::with_capacity(n);
        for _ in 0..n {
            oy.push(rng.below(span) as i64);
            ox.push(rng.below(span) as i64);
            flip.push(rng.below(2) == 1);
        }
        EpochDraws {
            offset_y: Tensor::from_slice(&oy).to_device(device),
            offset_x: Tensor::from_slice(&ox).to_device(device),
            flip: Tensor::from_slice(&flip).to_device(device),
        }
    }

    /// Crops and flips a uint8 batch `[B, C, H, W]` with the draws of its samples.
    pub fn apply(
        &self,
        images: &Tensor,
        offset_y: &Tensor,
        offset_x: &Tensor,
        flip: &Tensor,
    ) -> Tensor {
        let (b, c) = (images.size()[0], images.size()[1]);
        let p = self.pad;
        let padded_width = self.width + 2 * p;
        let padded = images.constant_pad_nd([p, p, p, p]).view([b, c, -1]);
        let rows = offset_y.unsqueeze(1) + self.rows.unsqueeze(0);
        let cols = offset_x.unsqueeze(1)
            + self
                .cols_flipped
                .unsqueeze(0)
                .where_self(&flip.unsqueeze(1), &self.cols.unsqueeze(0));
        let index = (rows.unsqueeze(2) * padded_width + cols.unsqueeze(1))
            .view([b, 1, -1])
            .expand([b, c, self.height * self.width], false);
        padded
            .gather(2, &index, false)
            .view([b, c, self.height, self.width])
    }
}

/// What a job's `[augment]` adds to its epochs: the policy's ops on the uint8 images after the
/// crop and flip, and Cutout on the normalised ones (torchvision's CIFAR recipe's order: crop,
/// flip, policy, `ToTensor`, `Normalize`, then the authors' Cutout). List data's batches come
/// cropped, flipped and normalised from the loader threads; their uint8 values are recovered
/// ([`Normalize::to_u8`]) for the policy, on the device, as in-memory data's are.
pub struct Extras {
    policy: Option<PolicyOps>,
    cutout: Option<Cutout>,
}

/// The draws of [`Extras`] for one epoch.
pub struct ExtraDraws {
    policy: Option<PolicyDraws>,
    cutout: Option<CutoutDraws>,
}

impl Extras {
    /// `None` when the job adds nothing (no policy, no Cutout).
    pub fn new(
        augmentation: &Augmentation,
        height: i64,
        width: i64,
        device: Device,
    ) -> Option<Self> {
        let policy = PolicyOps::new(augmentation.policy, height, width);
        let cutout = Cutout::new(augmentation.cutout, height, width, device);
        (augmentation.policy != Policy::Standard || cutout.is_some())
            .then_some(Self { policy, cutout })
    }

    /// The choices for `n` samples of one epoch.
    pub fn draw(&self, n: usize, seed: u64, epoch: u32, device: Device) -> ExtraDraws {
        ExtraDraws {
            policy: self.policy.as_ref().map(|p| p.draw(n, seed, epoch)),
            cutout: self.cutout.as_ref().map(|c| c.draw(n, seed, epoch, device)),
        }
    }

    /// The policy's ops on the uint8 batch of the epoch's samples `from..from + len`.
    pub fn before_normalising(
        &self,
        images: &Tensor,
        draws: &ExtraDraws,
        from: i64,
        len: i64,
    ) -> Tensor {
        match &draws.policy {
            Some(policy) => policy.apply(images, from as usize, len as usize),
            None => images.shallow_clone(),
        }
    }

    /// Cutout on the normalised batch of the same samples.
    pub fn after_normalising(
        &self,
        images: &Tensor,
        draws: &ExtraDraws,
        from: i64,
        len: i64,
    ) -> Tensor {
        match (&self.cutout, &draws.cutout) {
            (Some(cutout), Some(d)) => cutout.apply(images, d, from, len),
            _ => images.shallow_clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_datas_normalised_values_give_back_their_uint8_values() {
        for n in [Normalization::IMAGENET, Normalization::INAT2018] {
            let normalize = Normalize::with(&n, Device::Cpu);
            // The list pipeline's table: `(v / 255 - mean) / std` in float32, per channel.
            let values: Vec<f32> = (0..3)
                .flat_map(|c| {
                    (0..=255u8)
                        .map(move |v| (f32::from(v) / 255.0 - n.mean[c] as f32) / n.std[c] as f32)
                })
                .collect();
            let images = Tensor::from_slice(&values).view([1, 3, 1, 256]);
            let back = Vec::<u8>::try_from(normalize.to_u8(&images).flatten(0, -1)).unwrap();
            let expected: Vec<u8> = (0..3).flat_map(|_| 0..=255u8).collect();
            assert_eq!(back, expected);
            // And this normalisation's own values.
            let again = normalize.to_u8(&normalize.apply(&normalize.to_u8(&images)));
            assert!(again.equal(&normalize.to_u8(&images)));
        }
    }

    #[test]
    fn crop_at_the_centre_without_flip_is_the_identity_and_flip_mirrors() {
        let aug = Augment::new(8, 8, Device::Cpu);
        let images = Tensor::arange(2 * 3 * 64, (Kind::Int64, Device::Cpu))
            .remainder(251)
            .to_kind(Kind::Uint8)
            .view([2, 3, 8, 8]);
        let centre = Tensor::from_slice(&[1i64, 1]);
        let no = Tensor::from_slice(&[false, false]);
        let yes = Tensor::from_slice(&[true, true]);
        let same = aug.apply(&images, &centre, &centre, &no);
        assert!(same.equal(&images));
        let mirrored = aug.apply(&images, &centre, &centre, &yes);
        assert!(mirrored.equal(&images.flip([3])));
    }

    #[test]
    fn a_corner_crop_shifts_in_zeros() {
        let aug = Augment::new(8, 8, Device::Cpu);
        let images = Tensor::ones([1, 1, 8, 8], (Kind::Uint8, Device::Cpu));
        let zero = Tensor::from_slice(&[0i64]);
        let out = aug.apply(&images, &zero, &zero, &Tensor::from_slice(&[false]));
        // pad = 1: the first row and column come from the padding.
        assert_eq!(out.int64_value(&[0, 0, 0, 0]), 0);
        assert_eq!(out.int64_value(&[0, 0, 1, 1]), 1);
        assert_eq!(out.sum(Kind::Int64).int64_value(&[]), 49);
    }

    #[test]
    fn normalisation_centres_each_channel() {
        let pixels: Vec<u8> = (0..2 * 2 * 16).map(|i| (i * 7 % 256) as u8).collect();
        let norm = Normalize::fit(&pixels, 2, 16, Device::Cpu);
        let x = norm.apply(&Tensor::from_slice(&pixels).view([2, 2, 4, 4]));
        let mean = x.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
        assert!(mean.abs().max().double_value(&[]) < 1e-5);
    }
}
