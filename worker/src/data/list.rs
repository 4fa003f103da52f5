//! List data: JPEG files under a root folder, named by list files (`relative/path.jpg label`
//! a line, as Liu et al. 2019 released ImageNet-LT and Places-LT) or by COCO-style JSON
//! annotations (iNaturalist 2018's `train2018.json`: `images`, `annotations`, `categories`).
//!
//! The lists are read whole and checked before anything trains: every malformed line, label out
//! of range, annotation without its image (or image without its annotation) is an error naming
//! the file and the line (or the JSON entry). The images themselves are read while training, by
//! [`crate::loader`]; [`prepare`] checks that each one is there first (or in the packed copy).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ltsweep_domain::spec::leaves_its_folder;
use ltsweep_domain::{ClassGroup, DatasetConfig, HeadSplit, ListConfig, Shot};
use serde::Deserialize;

use super::pack::Pack;
use super::root::{DataRoot, Limit};
use super::{ClassInfo, DataError, MAX_LIST_BYTES};

/// The most images one split may list.
pub const MAX_IMAGES: usize = 20_000_000;
/// The largest image file read (iNaturalist's largest photographs are a few MB).
pub const MAX_IMAGE_BYTES: u64 = 64 << 20;
/// The bound on one image's bytes, as read.
pub const IMAGE_LIMIT: Limit = Limit {
    bytes: MAX_IMAGE_BYTES,
    what: "an image",
};
const LIST_LIMIT: Limit = Limit {
    bytes: MAX_LIST_BYTES,
    what: "a list",
};

/// One image of a split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the data set's folder, without `..`.
    pub path: String,
    pub label: u32,
    /// The 1-based line of a list file, or the 0-based index in a JSON file's `images`.
    pub at: u32,
}

/// How a split's list is written, for naming where an entry came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    Lines,
    Coco,
}

/// The images of one split, in the list's order.
#[derive(Clone, Debug)]
pub struct FileSplit {
    /// The list file it was read from.
    pub list: PathBuf,
    pub format: ListFormat,
    pub entries: Vec<Entry>,
}

impl FileSplit {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn labels(&self) -> Vec<i64> {
        self.entries.iter().map(|e| i64::from(e.label)).collect()
    }

    /// Where entry `index` is written: `ImageNet_LT_train.txt line 17`, `val2018.json images[16]`.
    pub fn locate(&self, index: usize) -> String {
        let entry = &self.entries[index];
        match self.format {
            ListFormat::Lines => format!("{} line {}", self.list.display(), entry.at),
            ListFormat::Coco => format!("{} images[{}]", self.list.display(), entry.at),
        }
    }
}

/// Where the images' bytes come from.
#[derive(Debug)]
pub enum ImageStore {
    /// The files themselves, under this folder.
    Files(PathBuf),
    /// A packed copy; each split's entries mapped to the pack's records.
    Packed {
        pack: Pack,
        train: Vec<u32>,
        val: Vec<u32>,
        test: Vec<u32>,
    },
}

/// Which split an image belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Val,
    Test,
}

/// A list data set ready to stream: its lists, class groups and where the bytes are.
#[derive(Debug)]
pub struct FileData {
    pub config: ListConfig,
    /// The data set's folder.
    pub root: PathBuf,
    /// The folder every image must lie under: what the loader opens them through.
    pub data_root: DataRoot,
    pub train: FileSplit,
    /// The validation list, when the data set has one: kept for model selection, never
    /// trained on.
    pub val: Option<FileSplit>,
    pub test: FileSplit,
    pub classes: ClassInfo,
    pub images: ImageStore,
}

impl FileData {
    pub fn split(&self, split: Split) -> Option<&FileSplit> {
        match split {
            Split::Train => Some(&self.train),
            Split::Val => self.val.as_ref(),
            Split::Test => Some(&self.test),
        }
    }
}

/// The lists of a data set, read and checked, with the class count they use.
#[derive(Clone, Debug)]
pub struct Lists {
    pub config: ListConfig,
    /// The data set's folder.
    pub root: PathBuf,
    /// The folder every file must lie under.
    pub data_root: DataRoot,
    pub train: FileSplit,
    pub val: Option<FileSplit>,
    pub test: FileSplit,
    pub classes: ClassInfo,
}

/// Reads and checks the lists a spec names; no image is opened.
pub fn read_lists(config: &DatasetConfig, data_root: &Path) -> Result<Lists, DataError> {
    let list = config
        .list
        .clone()
        .ok_or_else(|| DataError::Invalid(format!("{}: the spec names no lists", config.kind)))?;
    let data_root = DataRoot::new(data_root);
    let root = data_root.folder(config.path.as_deref().unwrap_or_default())?;
    let preset = config.kind.preset();
    let declared = preset.map(|p| p.classes).or(config.classes);
    let read = |key: &str, file: &str, categories: Option<&Categories>| {
        let path = data_root.spec_path(&root, key, file)?;
        read_split(&data_root, path, categories)
    };
    let (train, categories) = read("dataset.train_list", &list.train, None)?;
    let classes = match declared {
        Some(n) => n as usize,
        None => train
            .entries
            .iter()
            .map(|e| e.label as usize + 1)
            .max()
            .unwrap_or(0),
    };
    let val = list
        .val
        .as_deref()
        .map(|file| read("dataset.val_list", file, categories.as_ref()).map(|(split, _)| split))
        .transpose()?;
    let (test, _) = read("dataset.test_list", &list.test, categories.as_ref())?;
    for split in [Some(&train), val.as_ref(), Some(&test)]
        .into_iter()
        .flatten()
    {
        check_labels(split, classes)?;
    }
    if let Some(preset) = preset {
        for (split, expected) in [Some(&train), val.as_ref(), Some(&test)]
            .into_iter()
            .zip(preset.counts)
        {
            if let Some(split) = split
                && split.len() != expected
            {
                return Err(DataError::Invalid(format!(
                    "{}: {} images, but {} lists {expected}; use kind = \"list\" for other lists",
                    split.list.display(),
                    split.len(),
                    config.kind
                )));
            }
        }
    }
    let mut counts = vec![0u32; classes];
    for entry in &train.entries {
        counts[entry.label as usize] += 1;
    }
    if let Some(empty) = counts.iter().position(|&n| n == 0) {
        return Err(DataError::Invalid(format!(
            "{}: class {empty} has no training image ({classes} classes); every class needs one",
            train.list.display()
        )));
    }
    Ok(Lists {
        classes: ClassInfo {
            groups: groups_of(&counts, config.head),
            shots: counts.iter().map(|&n| Shot::of_count(n)).collect(),
            train_counts: counts,
        },
        config: list,
        root,
        data_root,
        train,
        val,
        test,
    })
}

/// The record of each image of a split in the packed copy; an image the pack lacks is an
/// error naming it.
fn records_of(pack: &Pack, split: &FileSplit) -> Result<Vec<u32>, DataError> {
    split
        .entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            pack.record(&entry.path).ok_or_else(|| DataError::Image {
                path: pack.path().to_owned(),
                entry: split.locate(i),
                detail: format!(
                    "the pack holds no `{}`; pack the data set again",
                    entry.path
                ),
            })
        })
        .collect()
}

/// Reads the lists and checks that every image they name can be read: a regular file under
/// the data root, or a record of the packed copy.
pub fn prepare(config: &DatasetConfig, data_root: &Path) -> Result<FileData, DataError> {
    let lists = read_lists(config, data_root)?;
    let images = match &lists.config.packed {
        Some(name) => {
            let path = lists
                .data_root
                .spec_path(&lists.root, "dataset.packed", name)?;
            let pack = Pack::open(&lists.data_root, &path)?;
            let find = |split: Option<&FileSplit>| match split {
                Some(split) => records_of(&pack, split),
                None => Ok(Vec::new()),
            };
            ImageStore::Packed {
                train: find(Some(&lists.train))?,
                val: find(lists.val.as_ref())?,
                test: find(Some(&lists.test))?,
                pack,
            }
        }
        None => {
            for split in [Some(&lists.train), lists.val.as_ref(), Some(&lists.test)]
                .into_iter()
                .flatten()
            {
                for (i, entry) in split.entries.iter().enumerate() {
                    let path = lists.root.join(&entry.path);
                    lists
                        .data_root
                        .open(&path, "")
                        .map_err(|err| image_error(err, split, i))?;
                }
            }
            ImageStore::Files(lists.root.clone())
        }
    };
    Ok(FileData {
        config: lists.config,
        root: lists.root,
        data_root: lists.data_root,
        train: lists.train,
        val: lists.val,
        test: lists.test,
        classes: lists.classes,
        images,
    })
}

/// An image a list names that cannot be opened, named with the line (or JSON entry) that
/// lists it; a read that fails on this worker's side stays an I/O error.
pub fn image_error(err: DataError, split: &FileSplit, index: usize) -> DataError {
    match err {
        DataError::Missing { path, .. } => DataError::Image {
            path,
            entry: split.locate(index),
            detail: "no such file".to_owned(),
        },
        DataError::Refused { path, detail } => DataError::Image {
            path,
            entry: split.locate(index),
            detail,
        },
        other => other,
    }
}

/// Head/Tail of classes in any order: by the count threshold, or the most frequent fraction
/// (ties broken by class index).
pub fn groups_of(counts: &[u32], split: HeadSplit) -> Vec<ClassGroup> {
    match split {
        HeadSplit::MinCount(min) => counts
            .iter()
            .map(|&n| {
                if n >= min {
                    ClassGroup::Head
                } else {
                    ClassGroup::Tail
                }
            })
            .collect(),
        HeadSplit::Fraction(f) => {
            let heads = ((f * counts.len() as f64).round() as usize).max(1);
            let mut by_count: Vec<usize> = (0..counts.len()).collect();
            by_count.sort_by_key(|&c| (std::cmp::Reverse(counts[c]), c));
            let mut groups = vec![ClassGroup::Tail; counts.len()];
            for &c in &by_count[..heads.min(counts.len())] {
                groups[c] = ClassGroup::Head;
            }
            groups
        }
    }
}

fn check_labels(split: &FileSplit, classes: usize) -> Result<(), DataError> {
    if let Some(i) = split
        .entries
        .iter()
        .position(|e| e.label as usize >= classes)
    {
        let detail = format!(
            "label {} is out of range: the data set has {classes} classes (0 to {})",
            split.entries[i].label,
            classes.saturating_sub(1)
        );
        return Err(match split.format {
            ListFormat::Lines => DataError::ListLine {
                path: split.list.clone(),
                line: split.entries[i].at as usize,
                detail,
            },
            ListFormat::Coco => DataError::Malformed {
                path: split.list.clone(),
                detail: format!("images[{}]: {detail}", split.entries[i].at),
            },
        });
    }
    Ok(())
}

/// Category ids of a COCO-style file, mapped to labels 0..K by their order.
type Categories = HashMap<u64, u32>;

/// Reads one list (a `.json` file is COCO-style) at `path` under `root`; with `categories`,
/// JSON labels follow the training file's categories.
fn read_split(
    root: &DataRoot,
    path: PathBuf,
    categories: Option<&Categories>,
) -> Result<(FileSplit, Option<Categories>), DataError> {
    let bytes = root.read(
        &path,
        LIST_LIMIT,
        "a list named by the spec; check its name and the data set's path",
    )?;
    if path.as_os_str().as_encoded_bytes().ends_with(b".json") {
        let (entries, categories) = parse_coco(&path, &bytes, categories)?;
        Ok((
            FileSplit {
                list: path,
                format: ListFormat::Coco,
                entries,
            },
            Some(categories),
        ))
    } else {
        let text = std::str::from_utf8(&bytes).map_err(|e| DataError::Malformed {
            path: path.clone(),
            detail: format!("not UTF-8 text (byte {})", e.valid_up_to()),
        })?;
        Ok((
            FileSplit {
                entries: parse_lines(&path, text)?,
                list: path,
                format: ListFormat::Lines,
            },
            None,
        ))
    }
}

/// `relative/path.jpg label` a line; blank lines are skipped.
pub fn parse_lines(path: &Path, text: &str) -> Result<Vec<Entry>, DataError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let bad = |detail: String| DataError::ListLine {
            path: path.to_owned(),
            line: number,
            detail,
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        // A line that is not `path label` is described, never quoted: a list may be any file
        // a spec names, and the message reaches every viewer of the sweep.
        let mut fields = line.split_whitespace();
        let (Some(file), Some(label), None) = (fields.next(), fields.next(), fields.next()) else {
            let count = line.split_whitespace().count();
            return Err(bad(format!(
                "expected `relative/path.jpg label`, found {count} field{} ({} bytes)",
                if count == 1 { "" } else { "s" },
                line.len()
            )));
        };
        let label: u32 = label.parse().map_err(|_| {
            bad(format!(
                "the label (field 2, {} bytes) is not a class number (0, 1, 2, ...)",
                label.len()
            ))
        })?;
        check_relative(file).map_err(bad)?;
        if entries.len() == MAX_IMAGES {
            return Err(bad(format!("more than {MAX_IMAGES} images in one list")));
        }
        entries.push(Entry {
            path: file.to_owned(),
            label,
            at: number as u32,
        });
    }
    Ok(entries)
}

/// A path an entry may name: relative, and never out of the data set's folder.
fn check_relative(file: &str) -> Result<(), String> {
    match leaves_its_folder(file) {
        None => Ok(()),
        Some(problem) => Err(format!(
            "the image's path {problem}: give it relative to the data set's folder, without `..`"
        )),
    }
}

/// At most 80 characters of a well-formed name in a message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

#[derive(Deserialize)]
struct Coco {
    images: Vec<CocoImage>,
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    #[serde(default)]
    id: Option<u64>,
    image_id: u64,
    category_id: u64,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: u64,
}

/// COCO-style annotations: one annotation per image, labels from the categories' order.
pub fn parse_coco(
    path: &Path,
    bytes: &[u8],
    known: Option<&Categories>,
) -> Result<(Vec<Entry>, Categories), DataError> {
    let bad = |detail: String| DataError::Malformed {
        path: path.to_owned(),
        detail,
    };
    let coco: Coco = serde_json::from_slice(bytes).map_err(|e| {
        bad(format!(
            "{}: not COCO-style annotations ({{\"images\", \"annotations\", \"categories\"}})",
            super::json_problem(&e)
        ))
    })?;
    if coco.images.len() > MAX_IMAGES {
        return Err(bad(format!("more than {MAX_IMAGES} images")));
    }
    let categories = match known {
        Some(known) => known.clone(),
        None => {
            let mut ids: Vec<u64> = coco.categories.iter().map(|c| c.id).collect();
            ids.sort_unstable();
            ids.dedup();
            ids.into_iter()
                .enumerate()
                .map(|(label, id)| (id, label as u32))
                .collect()
        }
    };
    let mut index: HashMap<u64, usize> = HashMap::with_capacity(coco.images.len());
    for (i, image) in coco.images.iter().enumerate() {
        check_relative(&image.file_name).map_err(|e| bad(format!("images[{i}]: {e}")))?;
        if index.insert(image.id, i).is_some() {
            return Err(bad(format!(
                "images[{i}]: image id {} is listed twice",
                image.id
            )));
        }
    }
    let mut labels: Vec<Option<u32>> = vec![None; coco.images.len()];
    for (a, annotation) in coco.annotations.iter().enumerate() {
        let name = match annotation.id {
            Some(id) => format!("annotations[{a}] (id {id})"),
            None => format!("annotations[{a}]"),
        };
        let Some(&i) = index.get(&annotation.image_id) else {
            return Err(bad(format!(
                "{name}: image_id {} has no entry in `images`",
                annotation.image_id
            )));
        };
        let Some(&label) = categories.get(&annotation.category_id) else {
            return Err(bad(format!(
                "{name}: category_id {} is not among the training file's categories",
                annotation.category_id
            )));
        };
        if labels[i].replace(label).is_some() {
            return Err(bad(format!(
                "{name}: image_id {} has a second annotation (one label an image)",
                annotation.image_id
            )));
        }
    }
    let entries = coco
        .images
        .into_iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (image, label))| {
            let label = label.ok_or_else(|| {
                bad(format!(
                    "images[{i}] (id {}, {}): no annotation gives its label",
                    image.id,
                    shorten(&image.file_name)
                ))
            })?;
            Ok(Entry {
                path: image.file_name,
                label,
                at: i as u32,
            })
        })
        .collect::<Result<Vec<_>, DataError>>()?;
    Ok((entries, categories))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_bad_lines_are_named() {
        let path = Path::new("train.txt");
        let entries = parse_lines(path, "a/b.jpg 3\n\nc.jpg 0\n").unwrap();
        assert_eq!(
            entries,
            vec![
                Entry {
                    path: "a/b.jpg".into(),
                    label: 3,
                    at: 1
                },
                Entry {
                    path: "c.jpg".into(),
                    label: 0,
                    at: 3
                }
            ]
        );
        let err = parse_lines(path, "a.jpg 1\nb.jpg\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "train.txt: line 2: expected `relative/path.jpg label`, found 1 field (5 bytes)"
        );
        let err = parse_lines(path, "a.jpg -1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "train.txt: line 1: the label (field 2, 2 bytes) is not a class number (0, 1, 2, ...)"
        );
        let err = parse_lines(path, "a.jpg 1\n../etc/passwd 2\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "train.txt: line 2: the image's path has a `..` component: give it relative to the data set's folder, without `..`"
        );
        let err = parse_lines(path, "/abs.jpg 2\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("line 1: the image's path is absolute"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_line_is_described_never_quoted() {
        // The reviewer's reproductions: `/etc/passwd` and a token file read as lists quoted
        // their first line to every viewer of the sweep.
        let path = Path::new("passwd");
        for (text, detail) in [
            (
                "root:x:0:0:root:/root:/bin/bash\n",
                "found 1 field (31 bytes)",
            ),
            ("tok3n-s3cret-0123456789\n", "found 1 field (23 bytes)"),
            ("tok3n s3cret 0123456789\n", "found 3 fields (23 bytes)"),
            (
                "tok3n s3cret\n",
                "the label (field 2, 6 bytes) is not a class number",
            ),
            ("/tok3n/s3cret 1\n", "the image's path is absolute"),
        ] {
            let err = parse_lines(path, text).unwrap_err().to_string();
            assert!(err.starts_with("passwd: line 1: "), "{err}");
            assert!(err.contains(detail), "{err}");
            for secret in ["root:x", "tok3n", "s3cret", "0123456789"] {
                assert!(!err.contains(secret), "{err}");
            }
        }
    }

    #[test]
    fn coco_annotations_need_their_images_and_the_reverse() {
        let path = Path::new("train2018.json");
        let json = |annotations: &str| {
            format!(
                r#"{{"images": [{{"id": 10, "file_name": "a.jpg"}}, {{"id": 11, "file_name": "b.jpg"}}],
                   "annotations": [{annotations}],
                   "categories": [{{"id": 5}}, {{"id": 7}}]}}"#
            )
        };
        let (entries, categories) = parse_coco(
            path,
            json(r#"{"id": 1, "image_id": 11, "category_id": 5}, {"id": 2, "image_id": 10, "category_id": 7}"#)
                .as_bytes(),
            None,
        )
        .unwrap();
        assert_eq!(categories[&7], 1);
        assert_eq!((entries[0].label, entries[1].label), (1, 0));
        let err = parse_coco(
            path,
            json(r#"{"id": 1, "image_id": 12, "category_id": 5}"#).as_bytes(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "train2018.json: annotations[0] (id 1): image_id 12 has no entry in `images`"
        );
        let err = parse_coco(
            path,
            json(r#"{"id": 1, "image_id": 11, "category_id": 5}"#).as_bytes(),
            None,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("images[0] (id 10, a.jpg): no annotation"),
            "{err}"
        );
        let err = parse_coco(path, b"{\"images\": [}", None).unwrap_err();
        assert!(
            err.to_string().starts_with("train2018.json: line 1 column"),
            "{err}"
        );
        // serde_json's own message quotes the value it found; only its kind is said.
        let err = parse_coco(
            path,
            br#"{"images": [{"id": "tok3n-s3cret", "file_name": "a.jpg"}]}"#,
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("train2018.json: line 1 column ")
                && err.contains(": a value of the wrong type"),
            "{err}"
        );
        assert!(!err.contains("tok3n"), "{err}");
    }

    #[test]
    fn groups_of_unsorted_counts() {
        let counts = [5, 200, 50, 120];
        let g = groups_of(&counts, HeadSplit::MinCount(100));
        assert_eq!(
            g,
            vec![
                ClassGroup::Tail,
                ClassGroup::Head,
                ClassGroup::Tail,
                ClassGroup::Head
            ]
        );
        let g = groups_of(&counts, HeadSplit::Fraction(0.25));
        assert_eq!(
            g,
            vec![
                ClassGroup::Tail,
                ClassGroup::Head,
                ClassGroup::Tail,
                ClassGroup::Tail
            ]
        );
    }

    #[test]
    fn a_pack_round_trips_and_names_what_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.ltpack");
        let mut writer = crate::data::pack::PackWriter::create(&path, 256).unwrap();
        writer.add("a/1.jpg", b"first").unwrap();
        writer.add("b/2.jpg", b"second!").unwrap();
        writer.finish().unwrap();
        let pack = Pack::open(&DataRoot::new(dir.path()), &path).unwrap();
        assert_eq!(pack.shorter_side, 256);
        let split = FileSplit {
            list: "train.txt".into(),
            format: ListFormat::Lines,
            entries: vec![
                Entry {
                    path: "b/2.jpg".into(),
                    label: 0,
                    at: 1,
                },
                Entry {
                    path: "a/1.jpg".into(),
                    label: 1,
                    at: 2,
                },
            ],
        };
        let records = records_of(&pack, &split).unwrap();
        assert_eq!(pack.bytes(records[0]), b"second!");
        assert_eq!(pack.bytes(records[1]), b"first");
        let mut missing = split.clone();
        missing.entries[1].path = "c/3.jpg".into();
        let err = records_of(&pack, &missing).unwrap_err().to_string();
        assert!(
            err.contains("train.txt line 2") && err.contains("`c/3.jpg`"),
            "{err}"
        );
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = Pack::open(&DataRoot::new(dir.path()), &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated pack"), "{err}");
    }
}
