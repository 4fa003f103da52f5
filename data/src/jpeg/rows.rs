//! Full-size decoding with `zune-jpeg`, of the whole image or of only its top rows.
//!
//! A training crop of `RandomResizedCrop` ends, on average, about a quarter of the image above
//! its bottom edge, and nothing below the crop is used. A sequential (baseline or extended)
//! JPEG codes its MCU rows top to bottom, so a decoder told, in the frame header, that the
//! image is only as tall as the rows wanted decodes exactly those and stops: the rows are the
//! same pixels a whole decode gives, since nothing above a row depends on what comes below it,
//! except chroma upsampling, which reads one chroma row further down. One more MCU row than the
//! rows asked for covers that. A progressive JPEG codes each scan over the whole image, so it is
//! always decoded whole.
//!
//! `zune-jpeg` decodes these photographs about a quarter faster than `jpeg-decoder`
//! (docs/guide/large-datasets.md), but has no reduced-size IDCT and converts CMYK its own way:
//! those stay with [`super::decode`]'s `jpeg-decoder` path, as does any file `zune-jpeg` refuses,
//! so a file decodes, or fails with the same error, as before it was used.

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::Pixels;

/// Where a sequential frame's height is written, and how many rows an MCU row holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Frame {
    /// The offset of the frame header's 16-bit height.
    height_at: usize,
    height: u32,
    mcu_rows: u32,
}

/// The frame of a sequential Huffman-coded JPEG (SOF0 or SOF1), found by walking the marker
/// segments before the first scan; `None` for any other coding, or for anything unexpected on
/// the way (the whole image is then decoded, which checks the file as before).
pub(super) fn sequential_frame(bytes: &[u8]) -> Option<Frame> {
    let mut at = 2;
    loop {
        let marker = *bytes.get(at + 1)?;
        if bytes[at] != 0xFF {
            return None;
        }
        if marker == 0xFF {
            // Fill bytes before a marker.
            at += 1;
            continue;
        }
        if matches!(marker, 0x01 | 0xD0..=0xD8) {
            // Markers without a length.
            at += 2;
            continue;
        }
        let length = usize::from(u16::from_be_bytes([
            *bytes.get(at + 2)?,
            *bytes.get(at + 3)?,
        ]));
        match marker {
            0xC0 | 0xC1 => {
                let segment = bytes.get(at + 4..at + 2 + length)?;
                // Precision, height, width, component count, then 3 bytes a component.
                let count = usize::from(*segment.get(5)?);
                let components = segment.get(6..6 + 3 * count)?;
                let height = u32::from(u16::from_be_bytes([segment[1], segment[2]]));
                let v_max = components
                    .chunks_exact(3)
                    .map(|c| u32::from(c[1] & 0x0F))
                    .max()?;
                // A single component is coded in 8 x 8 blocks whatever its factors say.
                let mcu_rows = if count == 1 { 8 } else { 8 * v_max };
                // Height 0 is defined later by a DNL marker: not worth handling.
                return (height > 0 && (1..=4).contains(&v_max)).then_some(Frame {
                    height_at: at + 5,
                    height,
                    mcu_rows,
                });
            }
            // Any other frame (progressive, lossless, arithmetic) or the scan itself.
            0xC2..=0xCF | 0xDA => return None,
            _ => at += 2 + length,
        }
    }
}

/// The height to tell the decoder so that rows `0..rows` come out as in the whole image: the
/// MCU row holding the last of them and the one after it; `None` when that is the whole image.
pub(super) fn truncated_height(frame: Frame, rows: u32) -> Option<u32> {
    let mcus = rows.div_ceil(frame.mcu_rows) + 1;
    let height = mcus.saturating_mul(frame.mcu_rows);
    (height < frame.height).then_some(height)
}

/// Decodes at full size, only the top `rows` rows or more (every row when `rows` is the
/// height), as 8-bit grey or RGB; `None` when `zune-jpeg` cannot: a CMYK or YCCK file, or any
/// error, which the caller's decoder then reports as it always has.
pub(super) fn decode_top(bytes: &[u8], rows: u32) -> Option<Pixels> {
    let truncated;
    let input = match sequential_frame(bytes).and_then(|f| Some((f, truncated_height(f, rows)?))) {
        Some((frame, height)) => {
            let mut copy = bytes.to_vec();
            // `height` is below the frame's own, which fits in 16 bits.
            copy[frame.height_at..frame.height_at + 2]
                .copy_from_slice(&(height as u16).to_be_bytes());
            truncated = copy;
            &truncated[..]
        }
        None => bytes,
    };
    // Strict: a file cut short is an error here rather than grey rows (the default).
    let options = DecoderOptions::default().set_strict_mode(true);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(input), options);
    decoder.decode_headers().ok()?;
    let (out, channels) = match decoder.input_colorspace()? {
        ColorSpace::Luma => (ColorSpace::Luma, 1),
        ColorSpace::YCbCr | ColorSpace::RGB => (ColorSpace::RGB, 3),
        _ => return None,
    };
    decoder.set_options(options.jpeg_set_out_colorspace(out));
    let data = decoder.decode().ok()?;
    let info = decoder.info()?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    (data.len() == width as usize * height as usize * channels as usize).then_some(Pixels {
        data,
        width,
        height,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jpeg::{encode, tests::gradient};

    #[test]
    fn the_frame_is_found_and_only_sequential_frames_are_cut() {
        // jpeg-encoder writes colour at 4:2:0 below quality 90 (MCU rows of 16), and at 4:4:4
        // from 90 (MCU rows of 8).
        let frame = sequential_frame(&encode(&gradient(64, 100), 80).unwrap()).unwrap();
        assert_eq!((frame.height, frame.mcu_rows), (100, 16));
        assert_eq!(truncated_height(frame, 1), Some(32));
        assert_eq!(truncated_height(frame, 40), Some(64));
        assert_eq!(truncated_height(frame, 81), None);
        let bytes = encode(&gradient(64, 100), 95).unwrap();
        let frame = sequential_frame(&bytes).unwrap();
        assert_eq!((frame.height, frame.mcu_rows), (100, 8));
        assert_eq!(truncated_height(frame, 81), Some(96));
        assert_eq!(truncated_height(frame, 89), None);
        assert_eq!(sequential_frame(&bytes[..20]), None);
        assert_eq!(sequential_frame(b"\xFF\xD8\xFF\xC2\x00\x11"), None);
        assert_eq!(sequential_frame(b"\xFF\xD8"), None);
    }

    #[test]
    fn the_top_rows_are_the_whole_decodes_rows() {
        for quality in [80, 95] {
            let bytes = encode(&gradient(64, 100), quality).unwrap();
            let whole = decode_top(&bytes, 100).unwrap();
            assert_eq!((whole.width, whole.height), (64, 100));
            for rows in [1, 15, 16, 17, 40, 63, 70] {
                let top = decode_top(&bytes, rows).unwrap();
                assert!(
                    top.height >= rows && top.height < 100,
                    "{rows}: {}",
                    top.height
                );
                let n = rows as usize * 64 * 3;
                assert_eq!(
                    top.data[..n],
                    whole.data[..n],
                    "quality {quality}, rows {rows}"
                );
            }
        }
    }
}
