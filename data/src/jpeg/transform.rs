//! The ImageNet input pipeline on one image, from JPEG bytes to a normalised `[3, C, C]` float
//! image, as torchvision writes it for PIL images:
//! - training: `RandomResizedCrop(C, scale=(0.08, 1), ratio=(3/4, 4/3))` drawn as torchvision
//!   draws it (ten tries, then the central crop), `RandomHorizontalFlip()`, optionally
//!   `ColorJitter(b, b, b, 0)` (brightness, contrast and saturation in a random order, each
//!   blended in 8 bits as Pillow's `ImageEnhance` does), then `ToTensor` and `Normalize` with
//!   the data set's mean and standard deviation (ImageNet's unless the job says otherwise);
//! - evaluation: `Resize(R)` of the shorter side, `CenterCrop(C)`, `ToTensor`, `Normalize`.
//!
//! Resizing is Pillow's bilinear filter with its support widened when shrinking (antialiasing),
//! through `fast_image_resize`'s SIMD convolution; a training crop is cut out before resizing
//! and an evaluation crop is a window of the resized image, as torchvision does each. When the
//! crop allows, the JPEG is decoded at a reduced IDCT scale first (see [`super::decode`]), unless
//! the pipeline decodes at full size ([`Pipeline::with_reduced_decode`]) as Pillow does without
//! `draft()`.
//!
//! Every random choice comes from the generator the caller derives from `(seed, epoch,
//! position)`, so an image's augmentation is the same however the loader's threads share the
//! work and whether the epoch was resumed.

use fast_image_resize::images::{CroppedImage, Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use ltsweep_domain::Normalization;

use super::{ImageError, Pixels, decode, decode_rows, dimensions};
use crate::rng::Rng;

/// A crop of the source image, in its pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

/// The augmentation of one training image.
#[derive(Clone, Debug, PartialEq)]
pub struct Draw {
    pub crop: CropBox,
    pub flip: bool,
    /// Brightness, contrast, saturation factors in the order they apply (empty: no jitter).
    pub jitter: Vec<(Enhance, f32)>,
}

/// One of Pillow's `ImageEnhance` operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enhance {
    Brightness,
    Contrast,
    Saturation,
}

/// torchvision's `RandomResizedCrop.get_params` with scale (0.08, 1) and ratio (3/4, 4/3).
pub fn random_resized_crop(width: u32, height: u32, rng: &mut Rng) -> CropBox {
    let (w_f, h_f) = (f64::from(width), f64::from(height));
    let area = w_f * h_f;
    let (log_lo, log_hi) = ((3.0f64 / 4.0).ln(), (4.0f64 / 3.0).ln());
    for _ in 0..10 {
        let target_area = area * (0.08 + rng.unit() * (1.0 - 0.08));
        let aspect = (log_lo + rng.unit() * (log_hi - log_lo)).exp();
        // Python's round: half to even.
        let w = (target_area * aspect).sqrt().round_ties_even();
        let h = (target_area / aspect).sqrt().round_ties_even();
        if w > 0.0 && w <= w_f && h > 0.0 && h <= h_f {
            let (w, h) = (w as u32, h as u32);
            let top = rng.below(u64::from(height - h) + 1) as u32;
            let left = rng.below(u64::from(width - w) + 1) as u32;
            return CropBox {
                left,
                top,
                width: w,
                height: h,
            };
        }
    }
    let ratio = w_f / h_f;
    let (w, h) = if ratio < 3.0 / 4.0 {
        (width, ((w_f / (3.0 / 4.0)).round_ties_even() as u32).max(1))
    } else if ratio > 4.0 / 3.0 {
        (
            ((h_f * (4.0 / 3.0)).round_ties_even() as u32).max(1),
            height,
        )
    } else {
        (width, height)
    };
    CropBox {
        left: (width - w) / 2,
        top: (height - h) / 2,
        width: w,
        height: h,
    }
}

/// The draws of one training image: crop, flip, and the jitter when `jitter > 0`.
pub fn draw(width: u32, height: u32, jitter: f64, rng: &mut Rng) -> Draw {
    let crop = random_resized_crop(width, height, rng);
    let flip = rng.below(2) == 1;
    let mut order = [Enhance::Brightness, Enhance::Contrast, Enhance::Saturation];
    let jitter = if jitter > 0.0 {
        rng.shuffle(&mut order);
        let lo = (1.0 - jitter).max(0.0);
        let hi = 1.0 + jitter;
        order
            .into_iter()
            .map(|op| (op, (lo + rng.unit() * (hi - lo)) as f32))
            .collect()
    } else {
        Vec::new()
    };
    Draw { crop, flip, jitter }
}

/// The settings of the pipeline and its normalisation table.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub crop: u32,
    pub resize: u32,
    pub jitter: f64,
    /// Whether a JPEG is decoded at the smallest IDCT scale that still covers the output.
    pub reduced_decode: bool,
    /// `(v / 255 - mean) / std` for every 8-bit value, per channel.
    table: Vec<[f32; 256]>,
}

/// What one thread reuses from image to image.
pub struct Scratch {
    resizer: Resizer,
    out: Image<'static>,
    out_grey: Image<'static>,
}

impl Scratch {
    pub fn new(crop: u32) -> Self {
        Self {
            resizer: Resizer::new(),
            out: Image::new(crop, crop, PixelType::U8x3),
            out_grey: Image::new(crop, crop, PixelType::U8),
        }
    }
}

impl Pipeline {
    /// A pipeline normalising with ImageNet's mean and standard deviation, decoding at reduced
    /// scales.
    pub fn new(crop: u32, resize: u32, jitter: f64) -> Self {
        Self {
            crop,
            resize,
            jitter,
            reduced_decode: true,
            table: Vec::new(),
        }
        .with_normalization(&Normalization::IMAGENET)
    }

    /// The same pipeline normalising with `n` instead.
    pub fn with_normalization(mut self, n: &Normalization) -> Self {
        self.table = (0..3)
            .map(|c| {
                let (mean, std) = (n.mean[c] as f32, n.std[c] as f32);
                let mut t = [0f32; 256];
                for (v, slot) in t.iter_mut().enumerate() {
                    *slot = (v as f32 / 255.0 - mean) / std;
                }
                t
            })
            .collect();
        self
    }

    /// The same pipeline decoding every JPEG at full size when `reduced` is false.
    pub fn with_reduced_decode(mut self, reduced: bool) -> Self {
        self.reduced_decode = reduced;
        self
    }

    /// Floats of one output image: `3 * crop * crop`.
    pub fn image_len(&self) -> usize {
        3 * self.crop as usize * self.crop as usize
    }

    /// A training image: its draws from `rng`, written normalised into `out` (`[3, C, C]`).
    pub fn train(
        &self,
        bytes: &[u8],
        rng: &mut Rng,
        scratch: &mut Scratch,
        out: &mut [f32],
    ) -> Result<(), ImageError> {
        let (width, height) = dimensions(bytes)?;
        let d = draw(width, height, self.jitter, rng);
        let c = self.crop;
        // Decoded smaller only while the crop still has at least C pixels each way.
        let (need_w, need_h) = if self.reduced_decode {
            (
                (u64::from(width) * u64::from(c)).div_ceil(u64::from(d.crop.width)),
                (u64::from(height) * u64::from(c)).div_ceil(u64::from(d.crop.height)),
            )
        } else {
            (u64::from(width), u64::from(height))
        };
        // Nothing below the crop is read: at full size, the rows under it are not decoded.
        let decoded = decode_rows(
            bytes,
            need_w.min(u64::from(width)) as u32,
            need_h.min(u64::from(height)) as u32,
            d.crop.top + d.crop.height,
        )?;
        let pixels = &decoded.pixels;
        let channels = pixels.channels;
        if decoded.denominator == 1 {
            let image = image_ref(pixels)?;
            let cropped =
                CroppedImage::new(&image, d.crop.left, d.crop.top, d.crop.width, d.crop.height)
                    .map_err(|e| ImageError::Invalid(format!("crop: {e}")))?;
            self.resize_into(scratch, &cropped, channels, None)?;
        } else {
            let (sx, sy) = scale_of(pixels, width, height);
            let window = (
                f64::from(d.crop.left) * sx,
                f64::from(d.crop.top) * sy,
                f64::from(d.crop.width) * sx,
                f64::from(d.crop.height) * sy,
            );
            self.resize_into(scratch, &image_ref(pixels)?, channels, Some(window))?;
        }
        let resized = if channels == 3 {
            scratch.out.buffer_mut()
        } else {
            scratch.out_grey.buffer_mut()
        };
        for &(op, factor) in &d.jitter {
            enhance(resized, channels, op, factor);
        }
        self.normalize(resized, channels, d.flip, out);
        Ok(())
    }

    /// An evaluation image: shorter side resized to `resize`, the centre `crop` x `crop`.
    pub fn eval(
        &self,
        bytes: &[u8],
        scratch: &mut Scratch,
        out: &mut [f32],
    ) -> Result<(), ImageError> {
        let (width, height) = dimensions(bytes)?;
        let (new_w, new_h) = resized_size(width, height, self.resize);
        let c = self.crop;
        let left = round_half_even(f64::from(new_w - c) / 2.0);
        let top = round_half_even(f64::from(new_h - c) / 2.0);
        let pixels = if self.reduced_decode {
            decode(bytes, new_w, new_h)?
        } else {
            decode(bytes, width, height)?
        };
        // The window of the decoded image that becomes the crop after the resize.
        let sx = f64::from(pixels.width) / f64::from(new_w);
        let sy = f64::from(pixels.height) / f64::from(new_h);
        let window = (
            f64::from(left) * sx,
            f64::from(top) * sy,
            f64::from(c) * sx,
            f64::from(c) * sy,
        );
        let channels = pixels.channels;
        self.resize_into(scratch, &image_ref(&pixels)?, channels, Some(window))?;
        let resized = if channels == 3 {
            scratch.out.buffer()
        } else {
            scratch.out_grey.buffer()
        };
        self.normalize(resized, channels, false, out);
        Ok(())
    }

    /// Bilinear (antialiased) resize of `source`, or of a window of it, to C x C.
    fn resize_into(
        &self,
        scratch: &mut Scratch,
        source: &impl fast_image_resize::IntoImageView,
        channels: u8,
        window: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), ImageError> {
        let mut options =
            ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        if let Some((left, top, width, height)) = window {
            options = options.crop(left, top, width, height);
        }
        let target = if channels == 3 {
            &mut scratch.out
        } else {
            &mut scratch.out_grey
        };
        scratch
            .resizer
            .resize(source, target, &options)
            .map_err(|e| ImageError::Invalid(format!("resize: {e}")))
    }

    /// `[C, C, ch]` bytes (mirrored when `flip`) to normalised `[3, C, C]` floats; grey is
    /// repeated in each channel, as `convert("RGB")` does.
    fn normalize(&self, pixels: &[u8], channels: u8, flip: bool, out: &mut [f32]) {
        let c = self.crop as usize;
        let ch = channels as usize;
        for (plane, table) in self.table.iter().enumerate() {
            let source = if ch == 3 { plane } else { 0 };
            let out_plane = &mut out[plane * c * c..(plane + 1) * c * c];
            for (y, out_row) in out_plane.chunks_exact_mut(c).enumerate() {
                let row = &pixels[y * c * ch..(y + 1) * c * ch];
                if flip {
                    for (x, slot) in out_row.iter_mut().enumerate() {
                        *slot = table[row[(c - 1 - x) * ch + source] as usize];
                    }
                } else {
                    for (x, slot) in out_row.iter_mut().enumerate() {
                        *slot = table[row[x * ch + source] as usize];
                    }
                }
            }
        }
    }
}

/// A JPEG re-encoded with its shorter side resized to `shorter` (bilinear, antialiased), at
/// `quality`; `None` when the shorter side is `shorter` or less already (the bytes are good as
/// they are). The image is decoded either way, so a broken one is an error here.
pub fn shrink(bytes: &[u8], shorter: u32, quality: u8) -> Result<Option<Vec<u8>>, ImageError> {
    let (width, height) = dimensions(bytes)?;
    if width.min(height) <= shorter {
        decode(bytes, width, height)?;
        return Ok(None);
    }
    let (new_w, new_h) = resized_size(width, height, shorter);
    let pixels = decode(bytes, new_w, new_h)?;
    let kind = if pixels.channels == 3 {
        PixelType::U8x3
    } else {
        PixelType::U8
    };
    let mut out = Image::new(new_w, new_h, kind);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&image_ref(&pixels)?, &mut out, &options)
        .map_err(|e| ImageError::Invalid(format!("resize: {e}")))?;
    let resized = Pixels {
        data: out.into_vec(),
        width: new_w,
        height: new_h,
        channels: pixels.channels,
    };
    super::encode(&resized, quality).map(Some)
}

/// torchvision's `Resize(size)` of the shorter side: `(w, h)` after it.
pub fn resized_size(width: u32, height: u32, size: u32) -> (u32, u32) {
    let long =
        |long: u32, short: u32| (u64::from(size) * u64::from(long) / u64::from(short)) as u32;
    if width <= height {
        (size, long(height, width))
    } else {
        (long(width, height), size)
    }
}

fn round_half_even(v: f64) -> u32 {
    v.round_ties_even() as u32
}

fn scale_of(pixels: &Pixels, width: u32, height: u32) -> (f64, f64) {
    (
        f64::from(pixels.width) / f64::from(width),
        f64::from(pixels.height) / f64::from(height),
    )
}

fn image_ref(pixels: &Pixels) -> Result<ImageRef<'_>, ImageError> {
    let kind = if pixels.channels == 3 {
        PixelType::U8x3
    } else {
        PixelType::U8
    };
    ImageRef::new(pixels.width, pixels.height, &pixels.data, kind)
        .map_err(|e| ImageError::Invalid(format!("pixels: {e}")))
}

/// Pillow's grey value of an RGB pixel (`convert("L")`).
fn luma(p: &[u8]) -> u8 {
    ((u32::from(p[0]) * 19595 + u32::from(p[1]) * 38470 + u32::from(p[2]) * 7471 + 0x8000) >> 16)
        as u8
}

/// Pillow's `Image.blend(degenerate, image, factor)`: `d + f (v - d)`, truncated to 8 bits.
fn blend(degenerate: u8, value: u8, factor: f32) -> u8 {
    let v = f32::from(degenerate) + factor * (f32::from(value) - f32::from(degenerate));
    v.clamp(0.0, 255.0) as u8
}

/// One `ImageEnhance` operation in place on `[.., ch]` pixels.
pub fn enhance(pixels: &mut [u8], channels: u8, op: Enhance, factor: f32) {
    let ch = channels as usize;
    match op {
        Enhance::Brightness => {
            for v in pixels.iter_mut() {
                *v = blend(0, *v, factor);
            }
        }
        Enhance::Contrast => {
            // The degenerate image is the grey mean, rounded as `int(mean + 0.5)`.
            let count = (pixels.len() / ch).max(1) as f64;
            let sum: f64 = if ch == 3 {
                pixels.chunks_exact(3).map(|p| f64::from(luma(p))).sum()
            } else {
                pixels.iter().map(|&v| f64::from(v)).sum()
            };
            let mean = (sum / count + 0.5) as u8;
            for v in pixels.iter_mut() {
                *v = blend(mean, *v, factor);
            }
        }
        Enhance::Saturation => {
            if ch == 3 {
                for p in pixels.chunks_exact_mut(3) {
                    let grey = luma(p);
                    for v in p.iter_mut() {
                        *v = blend(grey, *v, factor);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_stay_inside_and_follow_torchvision_bounds() {
        let mut rng = Rng::derive(1, &[]);
        for _ in 0..2000 {
            let c = random_resized_crop(500, 375, &mut rng);
            assert!(c.left + c.width <= 500 && c.top + c.height <= 375, "{c:?}");
            let area = f64::from(c.width * c.height) / (500.0 * 375.0);
            let ratio = f64::from(c.width) / f64::from(c.height);
            assert!((0.079..=1.0).contains(&area), "{c:?}");
            assert!((0.74..=1.34).contains(&ratio), "{c:?}");
        }
        // A very wide image falls back to the central crop of ratio 4/3 once tries fail.
        let c = random_resized_crop(1000, 10, &mut Rng::derive(2, &[]));
        assert!(c.height <= 10 && c.width <= 1000);
    }

    #[test]
    fn resize_of_the_shorter_side_matches_torchvision() {
        assert_eq!(resized_size(500, 375, 256), (341, 256));
        assert_eq!(resized_size(375, 500, 256), (256, 341));
        assert_eq!(resized_size(256, 256, 256), (256, 256));
    }

    /// A textured `width` x `height` JPEG, so that decoding at a reduced scale shows.
    fn textured(width: u32, height: u32) -> Vec<u8> {
        textured_at(width, height, 90)
    }

    fn textured_at(width: u32, height: u32, quality: u8) -> Vec<u8> {
        let mut data = Vec::new();
        for y in 0..height {
            for x in 0..width {
                data.extend([
                    ((x * 7 + y * 13) % 256) as u8,
                    ((x ^ y) % 256) as u8,
                    ((x * y / 5) % 256) as u8,
                ]);
            }
        }
        let pixels = Pixels {
            data,
            width,
            height,
            channels: 3,
        };
        super::super::encode(&pixels, quality).unwrap()
    }

    #[test]
    fn a_training_crop_decodes_down_to_its_bottom_only_and_equals_the_whole_decodes_crop() {
        let (width, height) = (500, 375);
        // 4:2:0 (MCU rows of 16) and 4:4:4 (rows of 8).
        for quality in [80, 90] {
            let bytes = textured_at(width, height, quality);
            let pipeline = Pipeline::new(224, 256, 0.0);
            let whole = decode(&bytes, width, height).unwrap();
            let (mut scratch, mut expected_scratch) = (Scratch::new(224), Scratch::new(224));
            let n = pipeline.image_len();
            let (mut got, mut expected) = (vec![0f32; n], vec![0f32; n]);
            let mut cut = 0;
            for seed in 0..40 {
                pipeline
                    .train(&bytes, &mut Rng::derive(seed, &[]), &mut scratch, &mut got)
                    .unwrap();
                let d = draw(width, height, 0.0, &mut Rng::derive(seed, &[]));
                let bottom = d.crop.top + d.crop.height;
                let top = decode_rows(&bytes, width, height, bottom).unwrap();
                assert!(top.pixels.height >= bottom);
                cut += usize::from(top.pixels.height < height);
                let image = image_ref(&whole).unwrap();
                let cropped =
                    CroppedImage::new(&image, d.crop.left, d.crop.top, d.crop.width, d.crop.height)
                        .unwrap();
                pipeline
                    .resize_into(&mut expected_scratch, &cropped, 3, None)
                    .unwrap();
                pipeline.normalize(expected_scratch.out.buffer(), 3, d.flip, &mut expected);
                assert_eq!(got, expected, "quality {quality}, seed {seed}");
            }
            // Most crops end well above the bottom edge.
            assert!(
                cut >= 20,
                "quality {quality}: {cut} of 40 decoded fewer rows"
            );
        }
    }

    #[test]
    fn full_size_decode_crops_the_full_decode_value_for_value() {
        let (width, height) = (800, 600);
        let bytes = textured(width, height);
        let reduced = Pipeline::new(64, 73, 0.0);
        let full = Pipeline::new(64, 73, 0.0).with_reduced_decode(false);
        let whole = decode(&bytes, width, height).unwrap();
        assert_eq!((whole.width, whole.height), (width, height));
        let mut scratch = Scratch::new(64);
        let mut expected_scratch = Scratch::new(64);
        let n = full.image_len();
        let (mut got, mut shrunk, mut expected) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
        for seed in 0..4 {
            full.train(&bytes, &mut Rng::derive(seed, &[]), &mut scratch, &mut got)
                .unwrap();
            reduced
                .train(
                    &bytes,
                    &mut Rng::derive(seed, &[]),
                    &mut scratch,
                    &mut shrunk,
                )
                .unwrap();
            // The same draw, cut from the full-size decode and resized.
            let d = draw(width, height, 0.0, &mut Rng::derive(seed, &[]));
            let image = image_ref(&whole).unwrap();
            let cropped =
                CroppedImage::new(&image, d.crop.left, d.crop.top, d.crop.width, d.crop.height)
                    .unwrap();
            full.resize_into(&mut expected_scratch, &cropped, 3, None)
                .unwrap();
            full.normalize(expected_scratch.out.buffer(), 3, d.flip, &mut expected);
            assert_eq!(got, expected, "seed {seed}");
            // A crop of at most 800 x 600 to 64 pixels decodes at 1/2 or less when allowed.
            assert_ne!(shrunk, expected, "seed {seed}: the reduced decode differs");
        }
        // Evaluation: Resize(73) of the full decode, then the centre 64 x 64.
        full.eval(&bytes, &mut scratch, &mut got).unwrap();
        reduced.eval(&bytes, &mut scratch, &mut shrunk).unwrap();
        let (new_w, new_h) = resized_size(width, height, 73);
        let mut resized = Image::new(new_w, new_h, PixelType::U8x3);
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        Resizer::new()
            .resize(&image_ref(&whole).unwrap(), &mut resized, &options)
            .unwrap();
        let (left, top) = ((new_w - 64) / 2, (new_h - 64) / 2);
        let mut centre = Vec::new();
        for y in top..top + 64 {
            let row = (y * new_w + left) as usize * 3;
            centre.extend_from_slice(&resized.buffer()[row..row + 64 * 3]);
        }
        full.normalize(&centre, 3, false, &mut expected);
        let worst = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // The pipeline resizes only the window it keeps: the same filter taps, so equal up to
        // a level where fixed-point rounding of the two routes differs.
        assert!(worst <= 1.001 / 255.0 / 0.224, "{worst}");
        assert_ne!(
            shrunk, got,
            "evaluation decodes at a reduced scale by default"
        );
    }

    #[test]
    fn images_are_normalised_with_the_given_mean_and_std() {
        let bytes = textured(120, 90);
        let imagenet = Pipeline::new(32, 36, 0.0);
        let inat = Pipeline::new(32, 36, 0.0).with_normalization(&Normalization::INAT2018);
        let mut scratch = Scratch::new(32);
        let n = imagenet.image_len();
        let (mut a, mut b) = (vec![0f32; n], vec![0f32; n]);
        imagenet.eval(&bytes, &mut scratch, &mut a).unwrap();
        inat.eval(&bytes, &mut scratch, &mut b).unwrap();
        let plane = n / 3;
        for c in 0..3 {
            let (imagenet_c, inat_c) = (Normalization::IMAGENET, Normalization::INAT2018);
            for i in c * plane..(c + 1) * plane {
                // Both are `v / 255` of the same 8-bit value, normalised two ways.
                let v = f64::from(a[i]) * imagenet_c.std[c] + imagenet_c.mean[c];
                let expected = (v - inat_c.mean[c]) / inat_c.std[c];
                assert!((f64::from(b[i]) - expected).abs() < 1e-4, "{c} {i}");
            }
        }
        assert_ne!(a, b);
    }

    #[test]
    fn enhance_blends_as_pillow() {
        let mut p = vec![100u8, 200, 50];
        enhance(&mut p, 3, Enhance::Brightness, 1.5);
        assert_eq!(p, vec![150, 255, 75]);
        let mut p = vec![100u8, 200, 50];
        enhance(&mut p, 3, Enhance::Saturation, 0.0);
        let grey = luma(&[100, 200, 50]);
        assert_eq!(p, vec![grey; 3]);
    }
}
