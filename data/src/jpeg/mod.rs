//! JPEG decoding for list data: the header alone (the size, for drawing a crop), or the pixels
//! at the smallest reduced-size IDCT scale (1, 1/2, 1/4, 1/8) that still covers what the crop
//! needs, as Pillow's `draft()` and libjpeg's `scale_denom` do, and at full size only the rows
//! down to the crop's bottom edge; and re-encoding for packed copies.
//!
//! Full-size decoding, which is every training crop of an ImageNet-size photograph, is
//! `zune-jpeg`'s (`rows.rs`): pure Rust with SSE/AVX2 paths, a quarter faster than `jpeg-decoder`
//! on the benchmark's photographs and as fast as libjpeg-turbo through Pillow (measured in
//! docs/guide/large-datasets.md). `jpeg-decoder` decodes the rest: the reduced IDCT scales
//! (`zune-jpeg` 0.5 has none), CMYK files, and any file `zune-jpeg` refuses, so that such a file
//! decodes, or fails with the same error, as it did before. libjpeg-turbo itself is not used:
//! its SIMD code needs NASM to build, which no package registry this project builds from
//! carries, and without it libjpeg-turbo (through `mozjpeg`) was twice as slow.
//!
//! Every input is outside input: a file that is not a JPEG, is cut short, is larger than
//! [`MAX_PIXELS`], or makes a decoder fail in any way is an [`ImageError`], never a panic.

mod rows;
pub mod transform;

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use jpeg_decoder::{Decoder, Error as JpegError, PixelFormat};

/// The largest image decoded: 50 megapixels (ImageNet's largest photographs are about 16).
pub const MAX_PIXELS: u64 = 50_000_000;

/// Why an image could not be used.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ImageError {
    /// What the file starts with instead, as a known format's name: its bytes are not quoted,
    /// since the file may be any file a list names.
    #[error("not a JPEG file (it starts with {0})")]
    NotJpeg(&'static str),
    #[error("truncated JPEG: the data ends before the image does")]
    Truncated,
    #[error("not a valid JPEG: {0}")]
    Invalid(String),
    #[error("{width} x {height} pixels is over the limit of {MAX_PIXELS} pixels")]
    TooLarge { width: u32, height: u32 },
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Decoded pixels, row-major, 1 (grey) or 3 (RGB) channels.
#[derive(Clone, Debug)]
pub struct Pixels {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub channels: u8,
}

/// The width and height of a JPEG, from its header.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), ImageError> {
    guarded(|| {
        let mut decoder = decoder(bytes)?;
        decoder.read_info().map_err(error_of)?;
        let info = decoder
            .info()
            .ok_or_else(|| ImageError::Invalid("no frame header".to_owned()))?;
        let (width, height) = (u32::from(info.width), u32::from(info.height));
        if width == 0 || height == 0 {
            return Err(ImageError::Invalid(format!("{width} x {height} pixels")));
        }
        if u64::from(width) * u64::from(height) > MAX_PIXELS {
            return Err(ImageError::TooLarge { width, height });
        }
        Ok((width, height))
    })
}

/// Decodes at the smallest scale (1, 1/2, 1/4 or 1/8 of each side) whose image is still at
/// least `need_width` x `need_height`; the full size when none is smaller.
pub fn decode(bytes: &[u8], need_width: u32, need_height: u32) -> Result<Pixels, ImageError> {
    decode_rows(bytes, need_width, need_height, u32::MAX).map(|d| d.pixels)
}

/// Pixels and the scale they were decoded at.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub pixels: Pixels,
    /// 1, 2, 4 or 8: each side is the full size divided by it, rounded up.
    pub denominator: u32,
}

/// As [`decode`], except that at full size only the top `rows` rows are sure to be decoded:
/// the pixels may stop below them (a whole MCU row or more further down) when the file allows.
/// Those rows are the whole image's, value for value. Reduced scales decode the whole image.
pub fn decode_rows(
    bytes: &[u8],
    need_width: u32,
    need_height: u32,
    rows: u32,
) -> Result<Decoded, ImageError> {
    let (width, height) = dimensions(bytes)?;
    let denominator = [8u32, 4, 2]
        .into_iter()
        .find(|&d| width.div_ceil(d) >= need_width && height.div_ceil(d) >= need_height)
        .unwrap_or(1);
    if denominator == 1 {
        let rows = rows.min(height);
        // A panic in zune-jpeg, like its errors, leaves the file to jpeg-decoder.
        if let Ok(Some(pixels)) = guarded(|| Ok(rows::decode_top(bytes, rows)))
            && pixels.width == width
            && (rows..=height).contains(&pixels.height)
        {
            return Ok(Decoded {
                pixels,
                denominator,
            });
        }
    }
    guarded(|| {
        let mut decoder = decoder(bytes)?;
        decoder.read_info().map_err(error_of)?;
        if denominator > 1 {
            // Both sides fit in u16: the header holds them as such.
            decoder
                .scale(
                    width.div_ceil(denominator) as u16,
                    height.div_ceil(denominator) as u16,
                )
                .map_err(error_of)?;
        }
        let info = decoder
            .info()
            .ok_or_else(|| ImageError::Invalid("no frame header".to_owned()))?;
        let data = decoder.decode().map_err(error_of)?;
        let (w, h) = (u32::from(info.width), u32::from(info.height));
        let plane = w as usize * h as usize;
        let (data, channels) = match info.pixel_format {
            PixelFormat::L8 => (data, 1),
            // 12-bit and 16-bit grey, big-endian: keep the high byte.
            PixelFormat::L16 => (data.chunks_exact(2).map(|p| p[0]).collect(), 1),
            PixelFormat::RGB24 => (data, 3),
            PixelFormat::CMYK32 => (cmyk_to_rgb(&data), 3),
        };
        if data.len() != plane * channels as usize {
            return Err(ImageError::Invalid(format!(
                "{} bytes of pixels for {w} x {h}",
                data.len()
            )));
        }
        Ok(Decoded {
            pixels: Pixels {
                data,
                width: w,
                height: h,
                channels,
            },
            denominator,
        })
    })
}

/// Re-encodes `pixels` as a baseline JPEG of the given quality (1 to 100), 4:2:0 for colour.
pub fn encode(pixels: &Pixels, quality: u8) -> Result<Vec<u8>, ImageError> {
    let mut out = Vec::new();
    let encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    let color = if pixels.channels == 1 {
        jpeg_encoder::ColorType::Luma
    } else {
        jpeg_encoder::ColorType::Rgb
    };
    let side = |n: u32| u16::try_from(n).map_err(|_| ImageError::Encode(format!("{n} pixels")));
    encoder
        .encode(
            &pixels.data,
            side(pixels.width)?,
            side(pixels.height)?,
            color,
        )
        .map_err(|e| ImageError::Encode(e.to_string()))?;
    Ok(out)
}

/// The image format a file that is no JPEG starts as, if it is a common one.
fn signature(bytes: &[u8]) -> &'static str {
    if bytes.is_empty() {
        "nothing: the file is empty"
    } else if bytes.starts_with(b"\x89PNG") {
        "a PNG signature"
    } else if bytes.starts_with(b"GIF8") {
        "a GIF signature"
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        "a WebP signature"
    } else if bytes.starts_with(b"BM") {
        "a BMP signature"
    } else {
        "neither the JPEG marker FF D8 nor another image format's signature"
    }
}

fn decoder(bytes: &[u8]) -> Result<Decoder<Cursor<&[u8]>>, ImageError> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err(ImageError::NotJpeg(signature(bytes)));
    }
    let mut decoder = Decoder::new(Cursor::new(bytes));
    // The pixel buffer's bound, so that a header claiming a huge image allocates nothing.
    decoder.set_max_decoding_buffer_size(MAX_PIXELS as usize * 4);
    Ok(decoder)
}

fn error_of(error: JpegError) -> ImageError {
    match error {
        JpegError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => ImageError::Truncated,
        JpegError::Format(message) => ImageError::Invalid(message),
        JpegError::Unsupported(feature) => {
            ImageError::Invalid(format!("unsupported feature {feature:?}"))
        }
        other => ImageError::Invalid(other.to_string()),
    }
}

/// Runs a decoding step so that a panic inside the decoder on a hostile file becomes an error
/// naming the file, not the end of the loader.
fn guarded<T>(f: impl FnOnce() -> Result<T, ImageError>) -> Result<T, ImageError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the decoder failed".to_owned());
        Err(ImageError::Invalid(message))
    })
}

/// CMYK (as the decoder gives it, Adobe inversion undone) to RGB, as Pillow converts:
/// `r = (255 - c)(255 - k) / 255`.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let nk = 255 - u32::from(p[3]);
        for &c in &p[..3] {
            rgb.push(((255 - u32::from(c)) * nk / 255) as u8);
        }
    }
    rgb
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn gradient(width: u32, height: u32) -> Pixels {
        let mut data = Vec::new();
        for y in 0..height {
            for x in 0..width {
                data.extend([(x * 255 / width) as u8, (y * 255 / height) as u8, 128]);
            }
        }
        Pixels {
            data,
            width,
            height,
            channels: 3,
        }
    }

    #[test]
    fn a_jpeg_round_trips_and_decodes_smaller_when_allowed() {
        let bytes = encode(&gradient(160, 120), 95).unwrap();
        assert_eq!(dimensions(&bytes).unwrap(), (160, 120));
        let full = decode(&bytes, 160, 120).unwrap();
        assert_eq!((full.width, full.height, full.channels), (160, 120, 3));
        let mean_error: f64 = full
            .data
            .iter()
            .zip(&gradient(160, 120).data)
            .map(|(&a, &b)| (f64::from(a) - f64::from(b)).abs())
            .sum::<f64>()
            / full.data.len() as f64;
        assert!(mean_error < 2.0, "{mean_error}");
        let half = decode(&bytes, 70, 60).unwrap();
        assert_eq!((half.width, half.height), (80, 60));
        let eighth = decode(&bytes, 1, 1).unwrap();
        assert_eq!((eighth.width, eighth.height), (20, 15));
    }

    #[test]
    fn bad_files_are_errors() {
        let bytes = encode(&gradient(64, 48), 90).unwrap();
        assert_eq!(
            decode(b"\x89PNG\r\n", 1, 1).unwrap_err().to_string(),
            "not a JPEG file (it starts with a PNG signature)"
        );
        assert_eq!(
            decode(b"root:x:0:0", 1, 1).unwrap_err().to_string(),
            "not a JPEG file (it starts with neither the JPEG marker FF D8 nor another image format's signature)"
        );
        assert_eq!(
            decode(b"", 1, 1).unwrap_err().to_string(),
            "not a JPEG file (it starts with nothing: the file is empty)"
        );
        let cut = &bytes[..bytes.len() / 2];
        assert_eq!(decode(cut, 64, 48).unwrap_err(), ImageError::Truncated);
        let cut_header = &bytes[..20];
        assert!(decode(cut_header, 64, 48).is_err());
    }
}
