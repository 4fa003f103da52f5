//! The deterministic path of list data's pipeline (decode, `Resize(256)` of the shorter side,
//! `CenterCrop(224)`, `ToTensor`, `Normalize`) against Pillow and torchvision on the same
//! JPEGs (baseline, progressive, grey and CMYK). The tolerance, in normalised units (one 8-bit level is 1/255/std, 0.0171 to 0.0174):
//! - at full decoding size, the mean absolute difference of an image at most 0.01 (under
//!   0.6 of a level) and at most 2% of its values more than one level off; the decoders'
//!   IDCTs and the resizers' fixed-point rounding differ by a level here and there;
//! - decoded at a reduced IDCT scale (an image at least twice the resize), where Pillow
//!   decodes the whole image and filters it down, a mean at most 0.05 (three levels);
//! - with the reduced scales turned off (`dataset.reduced_decode = false`), every image at the
//!   full-size tolerance.

use std::path::{Path, PathBuf};
use std::process::Command;

use ltsweep_data::jpeg::transform::{Pipeline, Scratch, resized_size};
use ltsweep_data::jpeg::{self, Pixels};
use ltsweep_data::rng::Rng;

use crate::photos;
use crate::register;

/// The project's Python with torchvision and Pillow (`./dev setup` installs them).
fn torchvision_python(test: &str) -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    // Found, not imported: importing torch takes seconds, and the comparison's script pays
    // for that once already.
    let found = Command::new(&python)
        .args([
            "-c",
            "import importlib.util, sys\n\
             missing = [m for m in ('torchvision', 'PIL') if importlib.util.find_spec(m) is None]\n\
             sys.exit(', '.join(missing) + ' missing' if missing else 0)",
        ])
        .output();
    match found {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "{test}: torchvision and Pillow are not in .venv ({}); ./dev setup installs them",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("{test}: {}: {e}; ./dev setup makes it", python.display()),
    }
}

/// A grey copy of a photograph.
fn grey(photo: &Pixels) -> Pixels {
    Pixels {
        data: photo
            .data
            .chunks_exact(3)
            .map(|p| {
                ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000)
                    as u8
            })
            .collect(),
        channels: 1,
        ..photo.clone()
    }
}

/// Pillow and torchvision's verdict on `pipeline`'s evaluation transform of 58 JPEGs: a JSON
/// line per image, and whether this build's decoder can decode it at a reduced scale.
fn against_torchvision(test: &str, pipeline: &Pipeline) -> (Vec<serde_json::Value>, Vec<bool>) {
    let python = torchvision_python(test);
    let dir = tempfile::tempdir().unwrap();
    let photos = photos::photos(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos"));
    let mut rng = Rng::derive(5, &[]);
    // ImageNet's usual sizes, portrait and square ones, an image smaller than the crop, a
    // grey one, and large ones that decode at half and a quarter of their size.
    let sizes = [
        (500, 375),
        (500, 333),
        (375, 500),
        (400, 400),
        (333, 500),
        (256, 256),
        (300, 227),
        (180, 140),
        (640, 480),
        (1100, 800),
        (1400, 1050),
    ];
    let mut paths = Vec::new();
    let mut reduced = Vec::new();
    for (i, &(w, h)) in sizes.iter().enumerate() {
        for (j, photo) in photos.iter().enumerate() {
            let bytes = photos::cut(photo, w, h, &mut rng);
            let path = dir.path().join(format!("{i}_{j}.jpg"));
            std::fs::write(&path, &bytes).unwrap();
            let (nw, nh) = resized_size(w, h, 256);
            reduced.push(jpeg::decode(&bytes, nw, nh).unwrap().width < w);
            paths.push(path);
        }
    }
    let pixels = jpeg::decode(&std::fs::read(&paths[0]).unwrap(), 500, 375).unwrap();
    let grey_path = dir.path().join("grey.jpg");
    std::fs::write(&grey_path, jpeg::encode(&grey(&pixels), 90).unwrap()).unwrap();
    paths.push(grey_path);
    reduced.push(false);
    // The same photograph progressive (zune-jpeg decodes it whole) and as Adobe CMYK (left to
    // jpeg-decoder).
    for (name, progressive, color) in [
        ("progressive.jpg", true, jpeg_encoder::ColorType::Rgb),
        ("cmyk.jpg", false, jpeg_encoder::ColorType::Cmyk),
    ] {
        let data: Vec<u8> = match color {
            // Pillow's RGB to CMYK: the complements, no black.
            jpeg_encoder::ColorType::Cmyk => pixels
                .data
                .chunks_exact(3)
                .flat_map(|p| [255 - p[0], 255 - p[1], 255 - p[2], 0])
                .collect(),
            _ => pixels.data.clone(),
        };
        let mut bytes = Vec::new();
        let mut encoder = jpeg_encoder::Encoder::new(&mut bytes, 90);
        encoder.set_progressive(progressive);
        encoder.encode(&data, 500, 375, color).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        paths.push(path);
        reduced.push(false);
    }

    let mut scratch = Scratch::new(224);
    let mut floats = vec![0f32; pipeline.image_len()];
    let mut out = Vec::new();
    for path in &paths {
        pipeline
            .eval(&std::fs::read(path).unwrap(), &mut scratch, &mut floats)
            .unwrap();
        out.extend(floats.iter().flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(dir.path().join("ltsweep.f32"), out).unwrap();
    let list: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
    std::fs::write(dir.path().join("paths.txt"), list).unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/jpeg/torchvision_eval.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .args(["256", "224"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), paths.len());
    (lines, reduced)
}

register!(resize_center_crop_and_normalise_agree_with_pillow_and_torchvision);
fn resize_center_crop_and_normalise_agree_with_pillow_and_torchvision() {
    let test = "resize_center_crop_and_normalise_agree_with_pillow_and_torchvision";
    let (lines, reduced) = against_torchvision(test, &Pipeline::new(224, 256, 0.0));
    let (mut worst_full, mut worst_over, mut worst_max, mut worst_reduced) =
        (0f64, 0f64, 0f64, 0f64);
    for (line, &smaller) in lines.iter().zip(&reduced) {
        let mean = line["mean"].as_f64().unwrap();
        let over = line["over_one_level"].as_f64().unwrap();
        if smaller {
            worst_reduced = worst_reduced.max(mean);
            assert!(mean <= 0.05, "decoded smaller: {line}");
        } else {
            worst_full = worst_full.max(mean);
            worst_over = worst_over.max(over);
            worst_max = worst_max.max(line["max"].as_f64().unwrap());
            assert!(mean <= 0.01 && over <= 0.02, "{line}");
        }
    }
    assert!(
        reduced.iter().any(|&r| r),
        "some images decode at a reduced scale"
    );
    println!(
        "{} images ({} decoded smaller): at full size the worst mean |difference| is {worst_full:.4}, \
         the worst share of values more than one level off {:.2}%, the largest difference \
         {worst_max:.3}; decoded smaller, the worst mean {worst_reduced:.4}",
        lines.len(),
        reduced.iter().filter(|&&r| r).count(),
        100.0 * worst_over
    );
}

register!(decoded_at_full_size_every_image_agrees_with_pillow_to_the_full_size_tolerance);
fn decoded_at_full_size_every_image_agrees_with_pillow_to_the_full_size_tolerance() {
    let test = "decoded_at_full_size_every_image_agrees_with_pillow_to_the_full_size_tolerance";
    let pipeline = Pipeline::new(224, 256, 0.0).with_reduced_decode(false);
    let (lines, reduced) = against_torchvision(test, &pipeline);
    // The large images too: decoded whole, as Pillow decodes them, they meet the tolerance that
    // a reduced IDCT scale misses (its worst mean is about 0.03).
    assert!(reduced.iter().any(|&r| r));
    let mut worst = 0f64;
    for line in &lines {
        let mean = line["mean"].as_f64().unwrap();
        worst = worst.max(mean);
        assert!(
            mean <= 0.01 && line["over_one_level"].as_f64().unwrap() <= 0.02,
            "{line}"
        );
    }
    println!(
        "{} images decoded at full size: the worst mean |difference| is {worst:.4}",
        lines.len()
    );
}
