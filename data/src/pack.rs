//! A packed copy of list data: every image once, in one file that is memory-mapped, with an
//! index from its path under the data set's folder to its bytes. Small files on a shared file
//! system are what slow real clusters down; one file read through the page cache is not.
//!
//! Layout: `LTSWPACK`, a little-endian u32 format version, the u32 shorter side the images were
//! re-encoded at, the u64 offset and u64 length of the index; the images' JPEG bytes; the index
//! as JSON (`{"records": [[path, offset, length], ...]}`). A pack is written under a temporary
//! name and renamed when complete, so a killed `ltsweep data pack` leaves no half pack.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::root::DataRoot;
use crate::{DataError, MAX_LIST_BYTES};

/// `ltsweep data pack`'s shorter side when none is given: the smallest of 256, 320, 384 at which
/// ImageNet's commonest photograph (500 x 375) is stored as it is, so that its training crops are
/// no blurrier than from the originals (at 256, 81% of `RandomResizedCrop(224)` crops of it are
/// upsampled, against 33%); larger photographs (iNaturalist's 800 x 600) still shrink to 41% of
/// their pixels. The test below prints the table docs/guide/large-datasets.md shows.
pub const DEFAULT_SHORTER_SIDE: u32 = 384;

const MAGIC: &[u8; 8] = b"LTSWPACK";
const VERSION: u32 = 1;
const HEADER: u64 = 32;

/// An open pack.
#[derive(Debug)]
pub struct Pack {
    path: PathBuf,
    map: Mmap,
    records: Vec<(u64, u64)>,
    index: HashMap<String, u32>,
    /// The shorter side the images were re-encoded at.
    pub shorter_side: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Index {
    records: Vec<(String, u64, u64)>,
}

impl Pack {
    /// Maps the pack at `path`, a regular file under `root`.
    pub fn open(root: &DataRoot, path: &Path) -> Result<Pack, DataError> {
        let bad = |detail: String| DataError::Malformed {
            path: path.to_owned(),
            detail,
        };
        let file = root
            .open(
                path,
                "the packed copy dataset.packed names; write it with `ltsweep data pack`",
            )?
            .file;
        // SAFETY: the map is read-only, and a pack is written once under a temporary name and
        // renamed into place, never changed after; a pack truncated by someone while a job
        // reads it would fault like any other mapped file.
        let map = unsafe { Mmap::map(&file) }.map_err(|source| DataError::Io {
            path: path.to_owned(),
            source,
        })?;
        if map.len() < HEADER as usize || &map[..8] != MAGIC {
            return Err(bad("not an ltsweep pack (no LTSWPACK header)".to_owned()));
        }
        let u32_at = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(map[at..at + 8].try_into().expect("8 bytes"));
        let version = u32_at(8);
        if version != VERSION {
            return Err(bad(format!(
                "pack format version {version}; this build reads version {VERSION}"
            )));
        }
        let (index_at, index_len) = (u64_at(16), u64_at(24));
        let end = index_at.checked_add(index_len);
        if index_at < HEADER || index_len > MAX_LIST_BYTES || end != Some(map.len() as u64) {
            return Err(bad(
                "the index is not where the header says (a truncated pack?)".to_owned(),
            ));
        }
        let index: Index = serde_json::from_slice(&map[index_at as usize..])
            .map_err(|e| bad(format!("the index: {}", crate::json_problem(&e))))?;
        let mut by_path = HashMap::with_capacity(index.records.len());
        let mut records = Vec::with_capacity(index.records.len());
        for (i, (name, offset, len)) in index.records.into_iter().enumerate() {
            if offset < HEADER || offset.checked_add(len).is_none_or(|e| e > index_at) {
                return Err(bad(format!("record {i} ({name}) lies outside the images")));
            }
            by_path.insert(name, i as u32);
            records.push((offset, len));
        }
        Ok(Pack {
            path: path.to_owned(),
            shorter_side: u32_at(12),
            map,
            records,
            index: by_path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The record of an image, by its path under the data set's folder.
    pub fn record(&self, path: &str) -> Option<u32> {
        self.index.get(path).copied()
    }

    /// The JPEG bytes of a record.
    pub fn bytes(&self, record: u32) -> &[u8] {
        let (offset, len) = self.records[record as usize];
        &self.map[offset as usize..(offset + len) as usize]
    }
}

/// Writes a pack record by record; dropped before [`PackWriter::finish`], it removes what it
/// wrote.
pub struct PackWriter {
    path: PathBuf,
    temporary: PathBuf,
    /// `None` once finished.
    file: Option<BufWriter<File>>,
    offset: u64,
    records: Vec<(String, u64, u64)>,
    shorter_side: u32,
}

impl PackWriter {
    pub fn create(path: &Path, shorter_side: u32) -> Result<PackWriter, DataError> {
        let temporary = path.with_extension("partial");
        let io = |source| DataError::Io {
            path: temporary.clone(),
            source,
        };
        let mut file = BufWriter::new(File::create(&temporary).map_err(io)?);
        file.write_all(&[0; HEADER as usize]).map_err(io)?;
        Ok(PackWriter {
            path: path.to_owned(),
            file: Some(file),
            offset: HEADER,
            records: Vec::new(),
            shorter_side,
            temporary,
        })
    }

    pub fn add(&mut self, name: &str, bytes: &[u8]) -> Result<(), DataError> {
        let file = self
            .file
            .as_mut()
            .expect("a pack is written until finished");
        file.write_all(bytes).map_err(|source| DataError::Io {
            path: self.temporary.clone(),
            source,
        })?;
        self.records
            .push((name.to_owned(), self.offset, bytes.len() as u64));
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes the index and the header, and renames the pack into place.
    pub fn finish(mut self) -> Result<u64, DataError> {
        let io = |source| DataError::Io {
            path: self.temporary.clone(),
            source,
        };
        let index = serde_json::to_vec(&Index {
            records: std::mem::take(&mut self.records),
        })
        .map_err(|e| DataError::Invalid(format!("the pack's index: {e}")))?;
        let mut file = self.file.take().expect("a pack is finished once");
        file.write_all(&index).map_err(io)?;
        let mut header = Vec::with_capacity(HEADER as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&self.shorter_side.to_le_bytes());
        header.extend_from_slice(&self.offset.to_le_bytes());
        header.extend_from_slice(&(index.len() as u64).to_le_bytes());
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header).map_err(io)?;
        let file = file.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&self.temporary, &self.path).map_err(|source| DataError::Io {
            path: self.path.clone(),
            source,
        })?;
        Ok(self.offset + index.len() as u64)
    }
}

impl Drop for PackWriter {
    fn drop(&mut self) {
        // Unfinished (an error, a bad image): no partial pack stays behind. After a finish the
        // temporary name is gone already.
        let _ = std::fs::remove_file(&self.temporary);
    }
}

#[cfg(test)]
mod tests {
    use super::DEFAULT_SHORTER_SIDE;
    use crate::jpeg::transform::{random_resized_crop, resized_size};
    use crate::rng::Rng;

    const CROP: u32 = 224;
    const DRAWS: u64 = 100_000;

    /// Over `DRAWS` seeded `RandomResizedCrop` draws on an image stored at `width` x `height`:
    /// the share whose crop is under `CROP` pixels either way (the resize to `CROP` stretches
    /// it), and the mean of the largest stretch over those.
    fn upsampled(width: u32, height: u32) -> (f64, f64) {
        let mut rng = Rng::derive(0, &[]);
        let (mut count, mut stretch) = (0u64, 0f64);
        for _ in 0..DRAWS {
            let c = random_resized_crop(width, height, &mut rng);
            if c.width < CROP || c.height < CROP {
                count += 1;
                stretch += f64::from(CROP) / f64::from(c.width.min(c.height));
            }
        }
        (count as f64 / DRAWS as f64, stretch / count.max(1) as f64)
    }

    /// The cost of `data pack --shorter-side`, printed as the table in
    /// docs/guide/large-datasets.md
    /// (`cargo test -p ltsweep-data --lib pack::tests -- --nocapture`).
    #[test]
    fn a_smaller_pack_upsamples_more_training_crops() {
        println!("source     side  stored     pixels  upsampled  mean stretch");
        for (width, height) in [(500, 375), (800, 600)] {
            let mut last = (0u32, f64::INFINITY);
            let full = upsampled(width, height);
            for side in [256, 320, 384, 448, 512] {
                // `data pack` copies an image whose shorter side is at most `side` as it is.
                let (w, h) = if width.min(height) <= side {
                    (width, height)
                } else {
                    resized_size(width, height, side)
                };
                let (share, stretch) = upsampled(w, h);
                let pixels = f64::from(w * h) / f64::from(width * height);
                println!(
                    "{width}x{height}  {side:>4}  {w}x{h}  {:>5.0}%  {:>8.1}%  {stretch:>11.2}x",
                    100.0 * pixels,
                    100.0 * share
                );
                // A larger side never upsamples more crops; one the source already fits is the
                // source itself.
                assert!(share <= last.1, "{width}x{height} at {side}");
                if (w, h) == (width, height) {
                    assert_eq!((share, stretch), full);
                }
                // The default keeps ImageNet's commonest photograph as it is.
                if (width, side) == (500, DEFAULT_SHORTER_SIDE) {
                    assert_eq!((w, h), (width, height));
                }
                last = (side, share);
            }
            assert_eq!(last.0, 512);
        }
    }
}
