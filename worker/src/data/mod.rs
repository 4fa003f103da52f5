//! Data sets: the files (CIFAR-10/100 binary, MNIST-style IDX) or the synthetic set, made
//! long-tailed, with each class's group; and list data (JPEGs named by list files), which is
//! long-tailed as listed and streamed while training.
//!
//! Loading is plain Rust on bytes; the trainer turns an [`ImageSet`] into one uint8 tensor on
//! the training device, and streams a [`FileData`] through [`crate::loader`].

pub mod cifar;
pub mod idx;
pub mod list;
pub mod longtail;
pub mod pack;
pub mod root;
pub mod synthetic;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ltsweep_domain::{DatasetConfig, DatasetKind};

pub use list::FileData;
pub use root::DataRoot;

/// The largest list or annotation file read (iNaturalist 2018's `train2018.json` is about
/// 200 MB), and the largest index of a packed copy.
pub const MAX_LIST_BYTES: u64 = 2 << 30;
pub use longtail::{ClassInfo, LongTailData};

/// A data set ready to train on: held in memory, or files to stream.
#[derive(Debug)]
pub enum Prepared {
    Memory(Box<LongTailData>),
    Files(Arc<FileData>),
}

impl Prepared {
    pub fn classes(&self) -> &ClassInfo {
        match self {
            Prepared::Memory(data) => &data.classes,
            Prepared::Files(data) => &data.classes,
        }
    }
}

/// Loads the data set a job names: made long-tailed in memory, or its lists read and checked.
pub fn prepare(config: &DatasetConfig, data_root: &Path) -> Result<Prepared, DataError> {
    if config.kind.is_list() {
        list::prepare(config, data_root).map(|data| Prepared::Files(Arc::new(data)))
    } else {
        longtail::prepare(config, data_root).map(|data| Prepared::Memory(Box::new(data)))
    }
}

/// A data file that is missing or not what it claims to be. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not found ({hint})", .path.display())]
    Missing { path: PathBuf, hint: String },
    #[error("{}: {detail}", .path.display())]
    Malformed { path: PathBuf, detail: String },
    /// A file the worker will not read: outside its --data-root, no regular file, or over a
    /// size limit. Every attempt would be refused alike.
    #[error("{}: {detail}", .path.display())]
    Refused { path: PathBuf, detail: String },
    #[error("{}: label {label} of image {index} is out of range (the data set has {classes} classes)", .path.display())]
    LabelOutOfRange {
        path: PathBuf,
        index: usize,
        label: i64,
        classes: usize,
    },
    #[error("{}: line {line}: {detail}", .path.display())]
    ListLine {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    /// An image a list names that cannot be used: missing, not a JPEG, cut short.
    #[error("{}: {detail} (listed at {entry})", .path.display())]
    Image {
        path: PathBuf,
        entry: String,
        detail: String,
    },
    #[error("{asked} classes asked, but {source_name} has {has}")]
    TooManyClasses {
        asked: usize,
        has: usize,
        source_name: String,
    },
    #[error(
        "{source_name}: the long-tailed subset leaves class {class} of {classes} with no training image (n_i = floor({n_max} * (1/{ratio})^(i/{last})), 0 from class {class} on): lower dataset.imbalance_ratio or use fewer classes",
        last = .classes - 1
    )]
    EmptyClass {
        source_name: String,
        class: usize,
        classes: usize,
        n_max: u32,
        ratio: f64,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Images of one split: uint8 pixels laid out `[N, C, H, W]`, and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub num_classes: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn image(&self, index: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[index * n..(index + 1) * n]
    }

    /// The images whose indices are given, in that order.
    pub fn select(&self, indices: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        ImageSet {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ..self.empty_like()
        }
    }

    /// Only the images of the first `classes` classes.
    pub fn first_classes(&self, classes: usize) -> ImageSet {
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| (self.labels[i] as usize) < classes)
            .collect();
        ImageSet {
            num_classes: classes,
            ..self.select(&keep)
        }
    }

    fn empty_like(&self) -> ImageSet {
        ImageSet {
            pixels: Vec::new(),
            labels: Vec::new(),
            channels: self.channels,
            height: self.height,
            width: self.width,
            num_classes: self.num_classes,
        }
    }

    /// Images per class.
    pub fn class_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.num_classes];
        for &label in &self.labels {
            counts[label as usize] += 1;
        }
        counts
    }
}

/// The splits of a data set, as it ships them.
///
/// Where validation images come from: a data set that ships its own validation split (a
/// list-file data set such as ImageNet-LT, whose `val` list is drawn apart from its training
/// list) sets `val`, and [`longtail::make_long_tailed`] takes it as it is (`val_per_class` is
/// refused for it). A data set without one leaves `val` as `None`; a job that asks for
/// `val_per_class = N` then has N images of every class held out of `train`, before the
/// long-tailed subset is drawn.
#[derive(Clone, Debug)]
pub struct Splits {
    /// The balanced training images (or, for a data set that ships it so, the long-tailed ones).
    pub train: ImageSet,
    /// The data set's own validation images, if it ships some.
    pub val: Option<ImageSet>,
    pub test: ImageSet,
}

/// Reads (or generates) the balanced splits of a data set.
pub fn load_splits(config: &DatasetConfig, data_root: &Path) -> Result<Splits, DataError> {
    let root = DataRoot::new(data_root);
    let folder = || root.folder(config.path.as_deref().unwrap_or_default());
    match config.kind {
        DatasetKind::Cifar10 => cifar::load(&root, &folder()?, cifar::Format::Cifar10),
        DatasetKind::Cifar100 => cifar::load(&root, &folder()?, cifar::Format::Cifar100),
        DatasetKind::FashionMnist | DatasetKind::Mnist => idx::load(&root, &folder()?),
        DatasetKind::Synthetic => Ok(synthetic::splits(
            config.classes.unwrap_or(10) as usize,
            &config.synthetic,
        )),
        kind => Err(DataError::Invalid(format!(
            "{kind} is list data: its images are streamed, not loaded whole"
        ))),
    }
}

/// A JSON file that does not parse, described by where and what kind of error, never by
/// serde_json's message, which quotes the values it found.
pub(crate) fn json_problem(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "cannot be read",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "a value of the wrong type, or a key missing",
        serde_json::error::Category::Eof => "the JSON ends early",
    };
    format!("line {} column {}: {kind}", error.line(), error.column())
}

/// Checks every label of a split against the class count.
fn check_labels(path: &Path, labels: &[i64], classes: usize) -> Result<(), DataError> {
    match labels.iter().position(|&l| l < 0 || l as usize >= classes) {
        Some(index) => Err(DataError::LabelOutOfRange {
            path: path.to_owned(),
            index,
            label: labels[index],
            classes,
        }),
        None => Ok(()),
    }
}
