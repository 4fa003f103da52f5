//! List data for tests: a few hundred small photographic JPEGs cut from the photographs in
//! `worker/tests/data/photos/` (see its README for where they come from), with their lists in
//! the formats the literature ships (`path label` lines) and as COCO-style JSON. The root package's `tests/it/list_cli.rs` includes this file too.

use std::path::{Path, PathBuf};

use ltsweep_data::jpeg::{self, Pixels};
use ltsweep_data::rng::Rng;

/// The photographs, decoded.
pub fn photos(dir: &Path) -> Vec<Pixels> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).unwrap();
            let (w, h) = jpeg::dimensions(&bytes).unwrap();
            jpeg::decode(&bytes, w, h).unwrap()
        })
        .collect()
}

/// A `width` x `height` window of a photograph at a random place and scale (nearest
/// neighbour), mirrored half of the time, as a JPEG of quality 90.
pub fn cut(photo: &Pixels, width: u32, height: u32, rng: &mut Rng) -> Vec<u8> {
    let scale = 0.5 + 0.5 * rng.unit();
    let (win_w, win_h) = (
        (f64::from(photo.width) * scale) as u32,
        (f64::from(photo.width) * scale * f64::from(height) / f64::from(width)) as u32,
    );
    let win_h = win_h.min(photo.height);
    let left = rng.below(u64::from(photo.width - win_w) + 1) as u32;
    let top = rng.below(u64::from(photo.height - win_h) + 1) as u32;
    let mirror = rng.below(2) == 1;
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let x = if mirror { width - 1 - x } else { x };
            let sx = left + x * win_w / width;
            let sy = top + y * win_h / height;
            let at = ((sy * photo.width + sx) * 3) as usize;
            data.extend_from_slice(&photo.data[at..at + 3]);
        }
    }
    jpeg::encode(
        &Pixels {
            data,
            width,
            height,
            channels: 3,
        },
        90,
    )
    .unwrap()
}

/// One split's images: `(relative path, label)` in list order.
pub type Listing = Vec<(String, u32)>;

/// Writes `counts[c]` training images of class `c` and `test_per_class` test images (and as
/// many validation images) under `root/images/`, between 40 and 72 pixels a side; class `c`
/// cuts from photograph `c % 5`, its colours turned when `c >= 5`, so classes differ.
pub fn write_images(
    root: &Path,
    photos: &[Pixels],
    counts: &[usize],
    test_per_class: usize,
) -> (Listing, Listing, Listing) {
    let mut rng = Rng::derive(42, &[]);
    let mut splits: [Listing; 3] = Default::default();
    for (split, name) in ["train", "val", "test"].iter().enumerate() {
        for (class, &train_count) in counts.iter().enumerate() {
            let count = if split == 0 {
                train_count
            } else {
                test_per_class
            };
            let folder = root.join("images").join(name).join(format!("c{class}"));
            std::fs::create_dir_all(&folder).unwrap();
            let mut photo = photos[class % photos.len()].clone();
            if class >= photos.len() {
                for p in photo.data.chunks_exact_mut(3) {
                    p.rotate_left(1);
                }
            }
            for i in 0..count {
                let (w, h) = (40 + rng.below(33) as u32, 40 + rng.below(33) as u32);
                let relative = format!("images/{name}/c{class}/{i}.jpg");
                std::fs::write(root.join(&relative), cut(&photo, w, h, &mut rng)).unwrap();
                splits[split].push((relative, class as u32));
            }
        }
        // The lists the literature ships are not sorted by class.
        Rng::derive(7, &[split as u64]).shuffle(&mut splits[split]);
    }
    let [train, val, test] = splits;
    (train, val, test)
}

/// `path label` lines.
pub fn write_list(path: &Path, listing: &Listing) {
    let text: String = listing.iter().map(|(p, l)| format!("{p} {l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// COCO-style annotations, iNaturalist 2018's layout: category ids offset by 100 and image ids
/// by 1000, so labels must come from the categories' order.
pub fn write_coco(path: &Path, listing: &Listing, classes: usize) {
    let images: Vec<serde_json::Value> = listing
        .iter()
        .enumerate()
        .map(|(i, (p, _))| serde_json::json!({"id": 1000 + i, "file_name": p, "width": 0, "height": 0}))
        .collect();
    let annotations: Vec<serde_json::Value> = listing
        .iter()
        .enumerate()
        .map(|(i, (_, l))| serde_json::json!({"id": i, "image_id": 1000 + i, "category_id": 100 + l}))
        .collect();
    let categories: Vec<serde_json::Value> = (0..classes)
        .map(|c| serde_json::json!({"id": 100 + c, "name": format!("species {c}")}))
        .collect();
    let json =
        serde_json::json!({"images": images, "annotations": annotations, "categories": categories});
    std::fs::write(path, serde_json::to_vec(&json).unwrap()).unwrap();
}
