//! CIFAR-10 and CIFAR-100 in the official binary version.
//!
//! CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin` and `test_batch.bin`, records of one label
//! byte and 3,072 pixel bytes. CIFAR-100: `train.bin` and `test.bin`, records of a coarse and a
//! fine label byte and 3,072 pixel bytes (the fine label is used). Pixels are 1,024 red, then
//! green, then blue bytes, each a 32×32 row-major plane: already `[C, H, W]`.

use std::path::Path;

use super::root::{DataRoot, Limit};
use super::{DataError, ImageSet, Splits, check_labels};

const PIXELS: usize = 3 * 32 * 32;
/// CIFAR-100's `train.bin`, the largest file, is 154 MB.
const FILE_LIMIT: Limit = Limit {
    bytes: 256 << 20,
    what: "a CIFAR file",
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Cifar10,
    Cifar100,
}

impl Format {
    fn label_bytes(self) -> usize {
        match self {
            Format::Cifar10 => 1,
            Format::Cifar100 => 2,
        }
    }

    pub fn classes(self) -> usize {
        match self {
            Format::Cifar10 => 10,
            Format::Cifar100 => 100,
        }
    }

    fn record_len(self) -> usize {
        self.label_bytes() + PIXELS
    }

    fn train_files(self) -> Vec<String> {
        match self {
            Format::Cifar10 => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            Format::Cifar100 => vec!["train.bin".to_owned()],
        }
    }

    fn test_file(self) -> &'static str {
        match self {
            Format::Cifar10 => "test_batch.bin",
            Format::Cifar100 => "test.bin",
        }
    }
}

/// The splits of the data set's folder `dir` under `root`.
pub fn load(root: &DataRoot, dir: &Path, format: Format) -> Result<Splits, DataError> {
    let mut train = empty(format);
    for name in format.train_files() {
        append(root, &mut train, &dir.join(name), format)?;
    }
    let mut test = empty(format);
    append(root, &mut test, &dir.join(format.test_file()), format)?;
    Ok(Splits {
        train,
        val: None,
        test,
    })
}

fn empty(format: Format) -> ImageSet {
    ImageSet {
        pixels: Vec::new(),
        labels: Vec::new(),
        channels: 3,
        height: 32,
        width: 32,
        num_classes: format.classes(),
    }
}

fn append(
    root: &DataRoot,
    set: &mut ImageSet,
    path: &Path,
    format: Format,
) -> Result<(), DataError> {
    let bytes = root.read(
        path,
        FILE_LIMIT,
        "check the data set's path and the worker's --data-root",
    )?;
    let (labels, pixels) = parse(path, &bytes, format)?;
    set.labels.extend(labels);
    set.pixels.extend(pixels);
    Ok(())
}

/// The labels and pixels of one file's records; `path` names the file in errors.
pub fn parse(path: &Path, bytes: &[u8], format: Format) -> Result<(Vec<i64>, Vec<u8>), DataError> {
    let record = format.record_len();
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::Malformed {
            path: path.to_owned(),
            detail: format!(
                "truncated or not {}: {} bytes is not a whole number of {record}-byte records",
                match format {
                    Format::Cifar10 => "CIFAR-10",
                    Format::Cifar100 => "CIFAR-100",
                },
                bytes.len()
            ),
        });
    }
    let labels: Vec<i64> = bytes
        .chunks_exact(record)
        .map(|r| i64::from(r[format.label_bytes() - 1]))
        .collect();
    check_labels(path, &labels, format.classes())?;
    let mut pixels = Vec::with_capacity(labels.len() * PIXELS);
    for r in bytes.chunks_exact(record) {
        pixels.extend_from_slice(&r[format.label_bytes()..]);
    }
    Ok((labels, pixels))
}

/// Writes splits in the official format (for `ltsweep data synth` and tests). Images must be
/// 3×32×32.
pub fn write(dir: &Path, format: Format, splits: &Splits) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let train_files = format.train_files();
    let per_file = splits.train.len().div_ceil(train_files.len());
    for (i, name) in train_files.iter().enumerate() {
        let end = ((i + 1) * per_file).min(splits.train.len());
        write_records(&dir.join(name), format, &splits.train, i * per_file..end)?;
    }
    write_records(
        &dir.join(format.test_file()),
        format,
        &splits.test,
        0..splits.test.len(),
    )
}

fn write_records(
    path: &Path,
    format: Format,
    set: &ImageSet,
    range: std::ops::Range<usize>,
) -> Result<(), DataError> {
    assert_eq!(set.image_len(), PIXELS, "CIFAR images are 3x32x32");
    let mut bytes = Vec::with_capacity(range.len() * format.record_len());
    for i in range {
        let label = set.labels[i] as u8;
        if format == Format::Cifar100 {
            // The coarse label: CIFAR-100 groups its classes five to a superclass.
            bytes.push(label / 5);
        }
        bytes.push(label);
        bytes.extend_from_slice(set.image(i));
    }
    std::fs::write(path, bytes).map_err(|source| DataError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic;
    use ltsweep_domain::SyntheticConfig;

    fn small(classes: usize) -> Splits {
        synthetic::splits(
            classes,
            &SyntheticConfig {
                train_per_class: 3,
                test_per_class: 2,
                image_size: 32,
                channels: 3,
                noise: 1.0,
            },
        )
    }

    #[test]
    fn written_files_read_back_identically() {
        for (format, classes) in [(Format::Cifar10, 10), (Format::Cifar100, 100)] {
            let dir = tempfile::tempdir().unwrap();
            let splits = small(classes);
            write(dir.path(), format, &splits).unwrap();
            let back = load(&DataRoot::new(dir.path()), dir.path(), format).unwrap();
            assert_eq!(back.train, splits.train);
            assert_eq!(back.test, splits.test);
        }
    }

    #[test]
    fn a_truncated_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), Format::Cifar100, &small(100)).unwrap();
        let path = dir.path().join("test.bin");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = load(&DataRoot::new(dir.path()), dir.path(), Format::Cifar100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("test.bin") && err.contains("truncated"),
            "{err}"
        );
    }

    #[test]
    fn a_label_out_of_range_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), Format::Cifar10, &small(10)).unwrap();
        let path = dir.path().join("data_batch_2.bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[PIXELS + 1] = 10;
        std::fs::write(&path, bytes).unwrap();
        let err = load(&DataRoot::new(dir.path()), dir.path(), Format::Cifar10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("data_batch_2.bin") && err.contains("label 10"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&DataRoot::new(dir.path()), dir.path(), Format::Cifar10).unwrap_err();
        let missing = dir.path().join("data_batch_1.bin");
        assert!(
            err.to_string()
                .starts_with(&format!("{}: not found", missing.display())),
            "{err}"
        );
    }
}
