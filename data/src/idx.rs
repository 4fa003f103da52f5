//! MNIST and Fashion-MNIST: IDX files, gzip-compressed or not.
//!
//! A folder holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`
//! and `t10k-labels-idx1-ubyte`, each possibly with `.gz`. An IDX file is a big-endian magic
//! number (0x0803: unsigned bytes, 3 dimensions; 0x0801: 1 dimension), the sizes of its
//! dimensions as big-endian u32, then the data.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use crate::root::{DataRoot, Limit};
use crate::{DataError, ImageSet, Splits, check_labels};

const CLASSES: usize = 10;
const IMAGES_MAGIC: u32 = 0x0803;
const LABELS_MAGIC: u32 = 0x0801;
/// MNIST's training images are 47 MiB; a gzip stream that inflates far beyond is refused
/// before it exhausts memory.
const MAX_DECOMPRESSED: u64 = 256 << 20;
/// A file as stored is no larger than what it decompresses to.
const FILE_LIMIT: Limit = Limit {
    bytes: MAX_DECOMPRESSED,
    what: "an IDX file",
};

/// The splits of the data set's folder `dir` under `root`.
pub fn load(root: &DataRoot, dir: &Path) -> Result<Splits, DataError> {
    Ok(Splits {
        train: split(root, dir, "train")?,
        val: None,
        test: split(root, dir, "t10k")?,
    })
}

fn split(root: &DataRoot, dir: &Path, prefix: &str) -> Result<ImageSet, DataError> {
    let images_path = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let hint = "check the data set's path and the worker's --data-root";
    let images = root.read(&images_path, FILE_LIMIT, hint)?;
    let (dims, pixels) = parse_file(&images_path, &images, Contents::Images)?;
    let labels = root.read(&labels_path, FILE_LIMIT, hint)?;
    let (label_dims, label_bytes) = parse_file(&labels_path, &labels, Contents::Labels)?;
    if label_dims[0] != dims[0] {
        return Err(DataError::Malformed {
            path: labels_path,
            detail: format!(
                "{} labels for {} images in {}",
                label_dims[0],
                dims[0],
                images_path.display()
            ),
        });
    }
    let labels: Vec<i64> = label_bytes.iter().map(|&b| i64::from(b)).collect();
    check_labels(&labels_path, &labels, CLASSES)?;
    Ok(ImageSet {
        pixels,
        labels,
        channels: 1,
        height: dims[1],
        width: dims[2],
        num_classes: CLASSES,
    })
}

/// `name` or `name.gz`, whichever is there.
fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if plain.exists() {
        Ok(plain)
    } else if gz.exists() {
        Ok(gz)
    } else {
        Err(DataError::Missing {
            path: plain,
            hint: "nor its .gz; an MNIST-style folder has train- and t10k- images and labels"
                .to_owned(),
        })
    }
}

/// What an IDX file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contents {
    /// Unsigned bytes in 3 dimensions: count, rows, columns.
    Images,
    /// Unsigned bytes in 1 dimension.
    Labels,
}

/// A whole IDX file as read from disk, gzip-compressed or not: its dimensions and data.
/// `path` names the file in errors.
pub fn parse_file(
    path: &Path,
    raw: &[u8],
    contents: Contents,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        // One byte past the limit tells a file that is too large from one that fits.
        GzDecoder::new(raw)
            .take(MAX_DECOMPRESSED + 1)
            .read_to_end(&mut out)
            .map_err(|e| DataError::Malformed {
                path: path.to_owned(),
                detail: format!("broken gzip stream: {e}"),
            })?;
        if out.len() as u64 > MAX_DECOMPRESSED {
            return Err(DataError::Malformed {
                path: path.to_owned(),
                detail: format!(
                    "decompresses to more than {} MiB, far more than an MNIST-style file",
                    MAX_DECOMPRESSED >> 20
                ),
            });
        }
        out
    } else {
        raw.to_vec()
    };
    match contents {
        Contents::Images => parse(path, &bytes, IMAGES_MAGIC, 3),
        Contents::Labels => parse(path, &bytes, LABELS_MAGIC, 1),
    }
}

/// Checks the header and the size; returns the dimensions and the data.
fn parse(
    path: &Path,
    bytes: &[u8],
    magic: u32,
    ndims: usize,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let malformed = |detail: String| DataError::Malformed {
        path: path.to_owned(),
        detail,
    };
    let header_len = 4 + 4 * ndims;
    let truncated = || {
        malformed(format!(
            "truncated: {} bytes is shorter than an IDX header",
            bytes.len()
        ))
    };
    if bytes.len() < 4 {
        return Err(truncated());
    }
    let word = |i: usize| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"));
    let found = word(0);
    if found != magic {
        // What the file holds is not quoted: only which of the two IDX files it is, if either.
        let detail = match found {
            IMAGES_MAGIC => "an IDX file of images where the labels were expected".to_owned(),
            LABELS_MAGIC => "an IDX file of labels where the images were expected".to_owned(),
            _ => format!(
                "not an IDX file of unsigned bytes: wrong magic number (expected 0x{magic:08x})"
            ),
        };
        return Err(malformed(detail));
    }
    if bytes.len() < header_len {
        return Err(truncated());
    }
    let dims: Vec<usize> = (1..=ndims).map(|i| word(i) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |product, &d| product.checked_mul(d))
        .ok_or_else(|| malformed("the header's dimensions are impossibly large".to_owned()))?;
    let data = &bytes[header_len..];
    if data.len() != expected {
        return Err(malformed(format!(
            "truncated or wrong size: the header promises {} bytes of data, the file has {}",
            expected,
            data.len()
        )));
    }
    Ok((dims, data.to_vec()))
}

/// Writes one IDX file (uncompressed), for tests.
#[cfg(test)]
pub(crate) fn write_idx(path: &Path, magic: u32, dims: &[u32], data: &[u8]) {
    let mut bytes = magic.to_be_bytes().to_vec();
    for d in dims {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compression, write::GzEncoder};
    use std::io::Write;

    fn write_split(dir: &Path, prefix: &str, n: u32, gzip: bool) {
        let pixels: Vec<u8> = (0..n * 28 * 28).map(|i| (i % 251) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let images = dir.join(format!("{prefix}-images-idx3-ubyte"));
        let label_file = dir.join(format!("{prefix}-labels-idx1-ubyte"));
        write_idx(&images, IMAGES_MAGIC, &[n, 28, 28], &pixels);
        write_idx(&label_file, LABELS_MAGIC, &[n], &labels);
        if gzip {
            for path in [images, label_file] {
                let raw = std::fs::read(&path).unwrap();
                let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
                enc.write_all(&raw).unwrap();
                std::fs::write(path.with_extension("gz"), enc.finish().unwrap()).unwrap();
                std::fs::remove_file(path).unwrap();
            }
        }
    }

    #[test]
    fn plain_and_gzip_files_load() {
        for gzip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_split(dir.path(), "train", 20, gzip);
            write_split(dir.path(), "t10k", 10, gzip);
            let splits = load(&DataRoot::new(dir.path()), dir.path()).unwrap();
            assert_eq!(splits.train.len(), 20);
            assert_eq!(splits.test.len(), 10);
            assert_eq!((splits.train.channels, splits.train.height), (1, 28));
            assert_eq!(splits.train.labels[13], 3);
        }
    }

    #[test]
    fn a_wrong_magic_number_is_named_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 4, false);
        write_split(dir.path(), "t10k", 4, false);
        let path = dir.path().join("t10k-images-idx3-ubyte");
        let mut bytes = std::fs::read(&path).unwrap();
        for (last, detail) in [
            (
                0x01,
                "t10k-images-idx3-ubyte: an IDX file of labels where the images were expected",
            ),
            (
                0x77,
                "t10k-images-idx3-ubyte: not an IDX file of unsigned bytes: wrong magic number (expected 0x00000803)",
            ),
        ] {
            bytes[3] = last;
            std::fs::write(&path, &bytes).unwrap();
            let err = load(&DataRoot::new(dir.path()), dir.path())
                .unwrap_err()
                .to_string();
            assert!(err.ends_with(detail), "{err}");
            assert!(!err.contains("877"), "{err}");
        }
    }

    #[test]
    fn a_truncated_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 4, false);
        write_split(dir.path(), "t10k", 4, false);
        let path = dir.path().join("train-images-idx3-ubyte");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..100]).unwrap();
        let err = load(&DataRoot::new(dir.path()), dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-images-idx3-ubyte") && err.contains("truncated"),
            "{err}"
        );
    }
}
