//! The image ops of AutoAugment, RandAugment and TrivialAugmentWide on a uint8 batch, each image
//! with its own op and magnitude, computed as torchvision 0.26's tensor functionals
//! (`torchvision/transforms/_functional_tensor.py`) compute them: the same float32 operations in
//! the same order, so the pixels are equal (the `policy_ops` test compares them with
//! torchvision's on fixed images).
//!
//! The geometric ops are torchvision's `affine`/`rotate` with NEAREST interpolation and no fill
//! (zeros outside the image, torchvision's default for tensors); the images of a batch that take
//! one are resampled together by one `grid_sampler` with a matrix each.

use tch::{Device, Kind, Tensor};

/// An op, as torchvision's `_apply_op` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
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
    Invert,
}

impl Op {
    pub const ALL: [Op; 15] = [
        Op::Identity,
        Op::ShearX,
        Op::ShearY,
        Op::TranslateX,
        Op::TranslateY,
        Op::Rotate,
        Op::Brightness,
        Op::Color,
        Op::Contrast,
        Op::Sharpness,
        Op::Posterize,
        Op::Solarize,
        Op::AutoContrast,
        Op::Equalize,
        Op::Invert,
    ];

    /// torchvision's name of the op (`_apply_op`'s `op_name`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Identity => "Identity",
            Op::ShearX => "ShearX",
            Op::ShearY => "ShearY",
            Op::TranslateX => "TranslateX",
            Op::TranslateY => "TranslateY",
            Op::Rotate => "Rotate",
            Op::Brightness => "Brightness",
            Op::Color => "Color",
            Op::Contrast => "Contrast",
            Op::Sharpness => "Sharpness",
            Op::Posterize => "Posterize",
            Op::Solarize => "Solarize",
            Op::AutoContrast => "AutoContrast",
            Op::Equalize => "Equalize",
            Op::Invert => "Invert",
        }
    }

    fn is_geometric(self) -> bool {
        matches!(
            self,
            Op::ShearX | Op::ShearY | Op::TranslateX | Op::TranslateY | Op::Rotate
        )
    }
}

/// One image's op and the magnitude `_apply_op` receives (signed; a float32 bin value widened).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpDraw {
    pub op: Op,
    pub magnitude: f64,
}

impl OpDraw {
    pub const IDENTITY: OpDraw = OpDraw {
        op: Op::Identity,
        magnitude: 0.0,
    };
}

/// Applies each image's op to a uint8 batch `[B, C, H, W]` (C is 1 or 3); `draws[i]` is image
/// `i`'s.
pub fn apply(images: &Tensor, draws: &[OpDraw]) -> Tensor {
    let device = images.device();
    let size = images.size();
    let (height, width) = (size[2], size[3]);
    let mut out = images.copy();
    let geometric: Vec<usize> = (0..draws.len())
        .filter(|&i| draws[i].op.is_geometric())
        .collect();
    if !geometric.is_empty() {
        let matrices: Vec<[f64; 6]> = geometric
            .iter()
            .map(|&i| affine_matrix(draws[i], height, width))
            .collect();
        let index = indices(&geometric, device);
        let moved = affine(&images.index_select(0, &index), &matrices, height, width);
        out = out.index_copy(0, &index, &moved);
    }
    for op in [
        Op::Brightness,
        Op::Color,
        Op::Contrast,
        Op::Sharpness,
        Op::Posterize,
        Op::Solarize,
        Op::AutoContrast,
        Op::Equalize,
        Op::Invert,
    ] {
        let members: Vec<usize> = (0..draws.len()).filter(|&i| draws[i].op == op).collect();
        if members.is_empty() {
            continue;
        }
        let index = indices(&members, device);
        let subset = images.index_select(0, &index);
        let magnitudes: Vec<f64> = members.iter().map(|&i| draws[i].magnitude).collect();
        let result = match op {
            Op::Brightness => blend(&subset, &subset.zeros_like(), &factors(&magnitudes, device)),
            Op::Color => {
                if size[1] == 1 {
                    // torchvision returns a one-channel image as it is ("Match PIL behaviour").
                    subset
                } else {
                    blend(&subset, &grayscale(&subset), &factors(&magnitudes, device))
                }
            }
            Op::Contrast => {
                let gray = if size[1] == 3 {
                    grayscale(&subset)
                } else {
                    subset.shallow_clone()
                };
                let mean =
                    gray.to_kind(Kind::Float)
                        .mean_dim([1i64, 2, 3].as_slice(), true, Kind::Float);
                blend(&subset, &mean, &factors(&magnitudes, device))
            }
            Op::Sharpness => sharpness(&subset, &factors(&magnitudes, device)),
            Op::Posterize => {
                // `img & -int(2 ** (8 - bits))`: the top `bits` bits kept.
                let masks: Vec<u8> = magnitudes
                    .iter()
                    .map(|&m| (0xFFu32 << (8 - (m as i64).clamp(0, 8) as u32)) as u8)
                    .collect();
                let masks = Tensor::from_slice(&masks)
                    .to_device(device)
                    .view([-1, 1, 1, 1]);
                subset.bitwise_and_tensor(&masks)
            }
            Op::Solarize => {
                let thresholds = per_image(&magnitudes, device);
                let inverted = subset.bitwise_not();
                inverted.where_self(&subset.to_kind(Kind::Float).ge_tensor(&thresholds), &subset)
            }
            Op::AutoContrast => autocontrast(&subset),
            Op::Equalize => equalize(&subset),
            Op::Invert => subset.bitwise_not(),
            _ => unreachable!("the geometric ops and Identity are not in this list"),
        };
        out = out.index_copy(0, &index, &result);
    }
    out
}

fn indices(members: &[usize], device: Device) -> Tensor {
    let members: Vec<i64> = members.iter().map(|&i| i as i64).collect();
    Tensor::from_slice(&members).to_device(device)
}

/// One float32 value an image, shaped to broadcast over `[B, C, H, W]`.
fn per_image(values: &[f64], device: Device) -> Tensor {
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_slice(&values)
        .to_device(device)
        .view([-1, 1, 1, 1])
}

/// The enhance factor `1.0 + magnitude` of Brightness, Color, Contrast and Sharpness.
fn factors(magnitudes: &[f64], device: Device) -> (Tensor, Tensor) {
    let ratio: Vec<f64> = magnitudes.iter().map(|m| 1.0 + m).collect();
    let rest: Vec<f64> = ratio.iter().map(|r| 1.0 - r).collect();
    (per_image(&ratio, device), per_image(&rest, device))
}

/// `_blend`: `(ratio * img1 + (1.0 - ratio) * img2).clamp(0, 255).to(uint8)`; the scalars as
/// float32 (PyTorch casts a Python float to the tensor's float32 computation) and the cast
/// truncating, as torchvision's.
fn blend(img1: &Tensor, img2: &Tensor, (ratio, rest): &(Tensor, Tensor)) -> Tensor {
    let a = img1.to_kind(Kind::Float) * ratio;
    let b = img2.to_kind(Kind::Float) * rest;
    (a + b).clamp(0.0, 255.0).to_kind(Kind::Uint8)
}

/// `rgb_to_grayscale`: `(0.2989 r + 0.587 g + 0.114 b).to(uint8)`, one channel.
fn grayscale(images: &Tensor) -> Tensor {
    let channel = |c: i64| images.select(1, c).to_kind(Kind::Float);
    let l = channel(0) * 0.2989 + channel(1) * 0.587 + channel(2) * 0.114;
    l.to_kind(Kind::Uint8).unsqueeze(1)
}

/// `adjust_sharpness`: a blend with the image smoothed by a 3×3 kernel (1s around a 5, over
/// 13), rounded, in the interior; the border pixels stay.
fn sharpness(images: &Tensor, factors: &(Tensor, Tensor)) -> Tensor {
    let size = images.size();
    let (c, h, w) = (size[1], size[2], size[3]);
    if h <= 2 || w <= 2 {
        return images.shallow_clone();
    }
    let device = images.device();
    let kernel = Tensor::ones([3, 3], (Kind::Float, device));
    let _ = kernel.get(1).get(1).fill_(5.0);
    let kernel = &kernel / kernel.sum(Kind::Float);
    let kernel = kernel.expand([c, 1, 3, 3], false);
    let smoothed = images
        .to_kind(Kind::Float)
        .conv2d(&kernel, None::<Tensor>, [1, 1], [0, 0], [1, 1], c)
        .round()
        .to_kind(Kind::Uint8);
    let degenerate = images.copy();
    degenerate
        .narrow(2, 1, h - 2)
        .narrow(3, 1, w - 2)
        .copy_(&smoothed);
    blend(images, &degenerate, factors)
}

/// `autocontrast`: each channel stretched to [0, 255]; a flat channel stays.
fn autocontrast(images: &Tensor) -> Tensor {
    let minimum = images.amin([2i64, 3].as_slice(), true).to_kind(Kind::Float);
    let maximum = images.amax([2i64, 3].as_slice(), true).to_kind(Kind::Float);
    let scale = (&maximum - &minimum).reciprocal() * 255.0;
    let flat = scale.isfinite().logical_not();
    let minimum = minimum.masked_fill(&flat, 0.0);
    let scale = scale.masked_fill(&flat, 1.0);
    ((images.to_kind(Kind::Float) - minimum) * scale)
        .clamp(0.0, 255.0)
        .to_kind(Kind::Uint8)
}

/// `equalize`: each channel through the lookup table of its histogram, as torchvision's
/// `_scale_channel` builds it (PIL's `ImageOps.equalize`).
fn equalize(images: &Tensor) -> Tensor {
    let size = images.size();
    let (b, c) = (size[0], size[1]);
    let rows = b * c;
    let device = images.device();
    let flat = images.reshape([rows, -1]).to_kind(Kind::Int64);
    let hist =
        Tensor::zeros([rows, 256], (Kind::Int64, device)).scatter_add(1, &flat, &flat.ones_like());
    // `step = sum(nonzero_hist[:-1]) // 255`: every count but that of the last value present.
    let last = (hist.gt(0).to_kind(Kind::Int64)
        * Tensor::arange(256, (Kind::Int64, device)).view([1, 256]))
    .argmax(1, true);
    let step = (hist.sum_dim_intlist(1, true, Kind::Int64) - hist.gather(1, &last, false))
        .floor_divide_scalar(255);
    let safe = step.clamp_min(1);
    let lut = (hist.cumsum(1, Kind::Int64) + step.floor_divide_scalar(2)).floor_divide(&safe);
    // Shifted right by one: the first value maps to 0.
    let lut = lut.constant_pad_nd([1, 0]).narrow(1, 0, 256).clamp(0, 255);
    let mapped = lut.gather(1, &flat, false);
    // A channel of one value (step 0) stays as it is.
    let mapped = flat.where_self(&step.eq(0), &mapped);
    mapped.to_kind(Kind::Uint8).view(size.as_slice())
}

/// The inverse matrix torchvision's `affine` and `rotate` sample with
/// (`_get_inverse_affine_matrix`), in float64 as Python computes it.
fn affine_matrix(draw: OpDraw, height: i64, width: i64) -> [f64; 6] {
    let m = draw.magnitude;
    // (centre, angle, translate, shear) as `_apply_op` passes them; an explicit centre [0, 0]
    // is the top-left corner, in coordinates about the image centre.
    let corner = [-(width as f64) * 0.5, -(height as f64) * 0.5];
    let (center, angle, translate, shear) = match draw.op {
        Op::ShearX => (corner, 0.0, [0.0, 0.0], [m.atan().to_degrees(), 0.0]),
        Op::ShearY => (corner, 0.0, [0.0, 0.0], [0.0, m.atan().to_degrees()]),
        // `int(magnitude)` pixels.
        Op::TranslateX => ([0.0, 0.0], 0.0, [m.trunc(), 0.0], [0.0, 0.0]),
        Op::TranslateY => ([0.0, 0.0], 0.0, [0.0, m.trunc()], [0.0, 0.0]),
        // `rotate` passes `-angle` ("incoherence of rotation angle direction").
        Op::Rotate => ([0.0, 0.0], -m, [0.0, 0.0], [0.0, 0.0]),
        _ => unreachable!("not a geometric op"),
    };
    inverse_affine_matrix(center, angle, translate, shear)
}

/// torchvision's `_get_inverse_affine_matrix` at scale 1, operation for operation.
fn inverse_affine_matrix(
    center: [f64; 2],
    angle: f64,
    translate: [f64; 2],
    shear: [f64; 2],
) -> [f64; 6] {
    let rot = angle.to_radians();
    let sx = shear[0].to_radians();
    let sy = shear[1].to_radians();
    let [cx, cy] = center;
    let [tx, ty] = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut matrix = [d, -b, 0.0, -c, a, 0.0];
    matrix[2] += matrix[0] * (-cx - tx) + matrix[1] * (-cy - ty);
    matrix[5] += matrix[3] * (-cx - tx) + matrix[4] * (-cy - ty);
    matrix[2] += cx;
    matrix[5] += cy;
    matrix
}

/// `_gen_affine_grid` and `_apply_grid_transform` (NEAREST, zeros outside): the output pixel
/// centres about the image centre, through each image's matrix, normalised, sampled, rounded.
fn affine(images: &Tensor, matrices: &[[f64; 6]], height: i64, width: i64) -> Tensor {
    let device = images.device();
    let b = matrices.len() as i64;
    let theta: Vec<f32> = matrices.iter().flatten().map(|&v| v as f32).collect();
    let theta = Tensor::from_slice(&theta).to_device(device).view([b, 2, 3]);
    let opts = (Kind::Float, device);
    let (w, h) = (width as f64, height as f64);
    let xs = Tensor::linspace(-w * 0.5 + 0.5, w * 0.5 + 0.5 - 1.0, width, opts);
    let ys = Tensor::linspace(-h * 0.5 + 0.5, h * 0.5 + 0.5 - 1.0, height, opts);
    let base = Tensor::stack(
        &[
            xs.view([1, width]).expand([height, width], false),
            ys.view([height, 1]).expand([height, width], false),
            Tensor::ones([height, width], opts),
        ],
        2,
    )
    .view([1, height * width, 3]);
    let halves = Tensor::from_slice(&[(0.5 * w) as f32, (0.5 * h) as f32]).to_device(device);
    let rescaled = theta.transpose(1, 2) / halves;
    // One image's grid at a time, as torchvision's `[1, H*W, 3] @ [1, 3, 2]`: a batched product
    // may sum the three terms in another order.
    let grids: Vec<Tensor> = (0..b)
        .map(|i| base.bmm(&rescaled.narrow(0, i, 1)))
        .collect();
    let grid = Tensor::cat(&grids, 0).view([b, height, width, 2]);
    // interpolation 1: nearest; padding 0: zeros.
    images
        .to_kind(Kind::Float)
        .grid_sampler(&grid, 1, 0, false)
        .round()
        .to_kind(Kind::Uint8)
}
