//! The limits a spec must keep within, so that no sweep asks a coordinator or a worker for
//! more than it can hold.

/// The most jobs one sweep may hold.
pub const MAX_JOBS: usize = 1_000_000;

/// The longest sweep name, in characters: it is copied into the sweep id every job carries.
pub const MAX_NAME_CHARS: usize = 64;

/// The longest `dataset.path`, in bytes (Linux's own limit on a path is 4,096).
pub const MAX_PATH_BYTES: usize = 1_024;

/// The most attempts a spec may give a job. A job that fails retryably is leased again, on
/// another worker as likely as not: without a bound one sweep could try a job that harms
/// workers on each of them in turn.
pub const MAX_ATTEMPTS: u32 = 100;

/// What takes `path`, a file or folder a spec or a list names, out of the folder it is read
/// under (the workers' `--data-root`, or a data set's folder there): a root or prefix (it is
/// absolute) or a `..` component. `None` for a path that stays under it lexically; symbolic
/// links are the worker's to check, when it opens the file. The spec's `validate` and the
/// worker (which may be sent a job that never went through `validate`) both ask this.
pub fn leaves_its_folder(path: &str) -> Option<&'static str> {
    std::path::Path::new(path)
        .components()
        .find_map(|component| match component {
            std::path::Component::Prefix(_) | std::path::Component::RootDir => Some("is absolute"),
            std::path::Component::ParentDir => Some("has a `..` component"),
            std::path::Component::CurDir | std::path::Component::Normal(_) => None,
        })
}

/// The synthetic data set's largest settings: beyond them a worker would not build the set in
/// memory (`image_size = 1000000` is a terabyte a class), so the spec is refused instead.
pub const MAX_IMAGE_SIZE: u32 = 512;
/// The most classes a spec may ask for, of any data set.
pub const MAX_CLASSES: u32 = 10_000;
/// The most synthetic images of one class in one split.
pub const MAX_IMAGES_PER_CLASS: u32 = 100_000;
/// The largest synthetic data set, train and test together, in bytes of pixels (one byte a
/// pixel and channel, as the worker holds it).
pub const MAX_SYNTHETIC_BYTES: u64 = 2 << 30;
/// List data's crop side when the spec gives none: ImageNet's 224.
pub const DEFAULT_CROP: u32 = 224;
/// The smallest crop side of list data (the CIFAR ResNet's three stride-2 stages need 8).
pub const MIN_CROP: u32 = 8;

/// The largest pretrained weights file a worker reads (ResNet-152's float32 weights are 241 MB).
pub const MAX_INIT_BYTES: u64 = 2 << 30;
