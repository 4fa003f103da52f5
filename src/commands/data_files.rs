//! `ltsweep data check` (decode every image of list data once and list the unreadable ones)
//! and `ltsweep data pack` (write a packed copy), both on a pool of threads with a progress
//! bar.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use ltsweep_domain::{DatasetKind, HeadSplit};
use ltsweep_worker::data::list::{FileSplit, IMAGE_LIMIT, Lists, image_error};
use ltsweep_worker::data::pack::{Pack, PackWriter};
use ltsweep_worker::data::{DataError, DataRoot};
use ltsweep_worker::jpeg::{self, transform};

use super::data::{bad_data, read_lists};
use crate::cli::{DataCheckArgs, DataPackArgs};
use crate::exit::BadInput;

/// Images a pack writes per round: read and re-encoded in parallel, then written in order.
const PACK_ROUND: usize = 512;

/// One image to read: its split and index there.
struct Item<'a> {
    split: &'a FileSplit,
    index: usize,
}

fn kind_of(text: &str) -> anyhow::Result<DatasetKind> {
    let kind: DatasetKind = text.parse().map_err(BadInput)?;
    if !kind.is_list() {
        return Err(BadInput(format!(
            "--kind {kind}: check and pack are for list data (list, imagenet-lt, places-lt, inat2018)"
        ))
        .into());
    }
    Ok(kind)
}

fn threads(given: Option<usize>) -> usize {
    given
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} images ({{per_sec}}, {{eta}} left)"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Every entry of every split, in order.
fn items(lists: &Lists) -> Vec<Item<'_>> {
    [Some(&lists.train), lists.val.as_ref(), Some(&lists.test)]
        .into_iter()
        .flatten()
        .flat_map(|split| (0..split.len()).map(move |index| Item { split, index }))
        .collect()
}

/// Where an image's bytes are: the pack, or its file (the data set's folder, and the root the
/// files are confined to).
enum Source<'a> {
    Files(&'a Path, &'a DataRoot),
    Packed(&'a Pack),
}

impl Source<'_> {
    fn read(&self, item: &Item<'_>) -> Result<Vec<u8>, String> {
        let entry = &item.split.entries[item.index];
        match self {
            Source::Files(folder, root) => root
                .read(&folder.join(&entry.path), IMAGE_LIMIT, "")
                .map_err(|err| match image_error(err, item.split, item.index) {
                    DataError::Image { detail, .. } => detail,
                    DataError::Io { source, .. } => format!("cannot read: {source}"),
                    other => other.to_string(),
                }),
            Source::Packed(pack) => pack
                .record(&entry.path)
                .map(|record| pack.bytes(record).to_vec())
                .ok_or_else(|| "the pack holds no such image; pack the data set again".to_owned()),
        }
    }

    fn name(&self, root: &Path, item: &Item<'_>) -> PathBuf {
        let entry = &item.split.entries[item.index];
        match self {
            Source::Files(..) => root.join(&entry.path),
            Source::Packed(pack) => pack.path().join(&entry.path),
        }
    }
}

/// Runs `work` on every item with `threads` threads, in rounds of at most `round` items; the
/// results of a round come back in the items' order.
fn parallel<T: Send>(
    items: &[Item<'_>],
    threads: usize,
    bar: &ProgressBar,
    work: impl Fn(&Item<'_>) -> T + Sync,
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, T)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = work(item);
                    results
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push((i, result));
                    bar.inc(1);
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

pub fn check(args: &DataCheckArgs) -> anyhow::Result<()> {
    let kind = kind_of(&args.kind)?;
    let lists = read_lists(
        kind,
        &args.path,
        &args.lists,
        args.classes,
        HeadSplit::MinCount(100),
    )?;
    let pack = match &args.lists.packed {
        Some(name) => {
            let path = lists
                .data_root
                .spec_path(&lists.root, "--packed", name)
                .map_err(bad_data)?;
            Some(Pack::open(&lists.data_root, &path).map_err(bad_data)?)
        }
        None => None,
    };
    let source = match &pack {
        Some(pack) => Source::Packed(pack),
        None => Source::Files(&lists.root, &lists.data_root),
    };
    let items = items(&lists);
    let bar = bar(items.len(), "decoding");
    let failures: Vec<Option<String>> = parallel(&items, threads(args.threads), &bar, |item| {
        let bytes = match source.read(item) {
            Ok(bytes) => bytes,
            Err(detail) => return Some(detail),
        };
        let decoded = jpeg::dimensions(&bytes).and_then(|(w, h)| jpeg::decode(&bytes, w, h));
        decoded.err().map(|e| e.to_string())
    });
    bar.finish_and_clear();
    let mut unreadable = 0;
    for (item, failure) in items.iter().zip(&failures) {
        if let Some(detail) = failure {
            unreadable += 1;
            println!(
                "{}: {detail} (listed at {})",
                source.name(&lists.root, item).display(),
                item.split.locate(item.index)
            );
        }
    }
    println!(
        "checked {} images ({} train{}, {} test): {unreadable} unreadable",
        items.len(),
        lists.train.len(),
        lists
            .val
            .as_ref()
            .map_or(String::new(), |v| format!(", {} validation", v.len())),
        lists.test.len()
    );
    if unreadable > 0 {
        return Err(BadInput(format!(
            "{unreadable} of {} images cannot be read; fix or remove them from the lists",
            items.len()
        ))
        .into());
    }
    Ok(())
}

pub fn pack(args: &DataPackArgs) -> anyhow::Result<()> {
    let kind = kind_of(&args.kind)?;
    if args.lists.packed.is_some() {
        return Err(BadInput("--packed: a pack is written from the image files".to_owned()).into());
    }
    if !(1..=100).contains(&args.quality) {
        return Err(BadInput(format!(
            "--quality {} is not between 1 and 100",
            args.quality
        ))
        .into());
    }
    if args.shorter_side < ltsweep_domain::spec::MIN_CROP {
        return Err(BadInput(format!(
            "--shorter-side {} is below {} pixels",
            args.shorter_side,
            ltsweep_domain::spec::MIN_CROP
        ))
        .into());
    }
    let lists = read_lists(
        kind,
        &args.path,
        &args.lists,
        args.classes,
        HeadSplit::MinCount(100),
    )?;
    // Each image once, however many splits list it.
    let mut seen = HashSet::new();
    let items: Vec<Item<'_>> = items(&lists)
        .into_iter()
        .filter(|item| seen.insert(item.split.entries[item.index].path.clone()))
        .collect();
    let source = Source::Files(&lists.root, &lists.data_root);
    let threads = threads(args.threads);
    let bar = bar(items.len(), "packing");
    let mut writer = PackWriter::create(&args.out, args.shorter_side).map_err(bad_data)?;
    let (mut shrunk, mut failures) = (0usize, Vec::new());
    for round in items.chunks(PACK_ROUND) {
        let made = parallel(round, threads, &bar, |item| {
            let bytes = source.read(item)?;
            match transform::shrink(&bytes, args.shorter_side, args.quality) {
                Ok(Some(smaller)) => Ok((smaller, true)),
                Ok(None) => Ok((bytes, false)),
                Err(e) => Err(e.to_string()),
            }
        });
        for (item, made) in round.iter().zip(made) {
            match made {
                Ok((bytes, resized)) => {
                    shrunk += usize::from(resized);
                    writer
                        .add(&item.split.entries[item.index].path, &bytes)
                        .map_err(bad_data)?;
                }
                Err(detail) => failures.push(format!(
                    "{}: {detail} (listed at {})",
                    source.name(&lists.root, item).display(),
                    item.split.locate(item.index)
                )),
            }
        }
    }
    bar.finish_and_clear();
    if !failures.is_empty() {
        for failure in &failures {
            println!("{failure}");
        }
        return Err(BadInput(format!(
            "{} images cannot be read; no pack written (ltsweep data check lists them)",
            failures.len()
        ))
        .into());
    }
    let bytes = writer.finish().map_err(bad_data)?;
    println!(
        "packed {} images ({shrunk} resized to a shorter side of {}, the rest copied) into {} ({:.1} MiB)",
        items.len(),
        args.shorter_side,
        args.out.display(),
        bytes as f64 / (1 << 20) as f64
    );
    Ok(())
}
