//! Checkpoint files, `<state_dir>/checkpoints/<job_id>-<sha256>.ckpt`, the latest one per job
//! while the job can still resume; and kept models, `<state_dir>/models/<job_id>-<sha256>.safetensors`,
//! a job's final weights while a stage-2 job needs them (see the scheduler's `graph`). Both are
//! received, checked, installed and read the same way.
//!
//! An upload is written to a temporary file named after its lease, checked against the
//! header's size and SHA-256, flushed to disk, and only then renamed to a name of its own (its
//! content's hash): the record of the previous checkpoint still names the previous file, which
//! is removed only once the new record is committed. A reader never sees half a checkpoint, two
//! uploads never write the same temporary file, and a failed commit leaves the previous
//! checkpoint whole. A job that ended (succeeded, failed for good, cancelled) needs no
//! checkpoint: its file is removed once that is committed, and at start every file no resumable
//! job's record names is removed.

use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use ltsweep_domain::{JobId, Sha256};
use ltsweep_proto::chunks::{self, CheckpointHeader, ChunkError, Verifier};
use ltsweep_proto::pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::CoordinatorError;
use crate::scheduler::{Change, Checkpoint, KeptModel, LeaseId, Scheduler, SchedulerError};

type Result<T> = std::result::Result<T, CoordinatorError>;

/// Which files a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    Checkpoints,
    Models,
}

impl FileKind {
    fn folder(self) -> &'static str {
        match self {
            FileKind::Checkpoints => "checkpoints",
            FileKind::Models => "models",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            FileKind::Checkpoints => "ckpt",
            FileKind::Models => "safetensors",
        }
    }

    /// What a file is, in messages: `checkpoint of job`.
    fn noun(self) -> &'static str {
        match self {
            FileKind::Checkpoints => "checkpoint of job",
            FileKind::Models => "model of job",
        }
    }
}

/// The checkpoint or model folder of a state dir.
#[derive(Debug)]
pub(crate) struct CheckpointFiles {
    dir: PathBuf,
    kind: FileKind,
}

/// A verified upload on disk, not yet installed. Removed when dropped uninstalled.
#[derive(Debug)]
pub(crate) struct Received {
    path: PathBuf,
    installed: bool,
}

impl Drop for Received {
    fn drop(&mut self) {
        if !self.installed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl CheckpointFiles {
    /// Creates the folder and removes temporary files a killed coordinator left behind.
    pub(crate) fn open(state_dir: &Path, kind: FileKind) -> Result<Self> {
        let dir = state_dir.join(kind.folder());
        std::fs::create_dir_all(&dir).map_err(|e| {
            CoordinatorError::storage(
                &dir,
                format!("cannot create the {} folder: {e}", kind.folder()),
            )
        })?;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().ends_with(".tmp") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(Self { dir, kind })
    }

    /// Job ids and SHA-256s are hex and lease ids are ours, so all are safe file names.
    pub(crate) fn path(&self, job: &JobId, sha256: &Sha256) -> PathBuf {
        self.dir
            .join(format!("{job}-{sha256}.{}", self.kind.extension()))
    }

    /// The one file name of earlier versions, the same for every checkpoint of a job.
    fn legacy_path(&self, job: &JobId) -> PathBuf {
        self.dir.join(format!("{job}.ckpt"))
    }

    /// Removes every file no record names: of checkpoints, those that jobs which can still
    /// resume (pending or running) hold (a file of an earlier version's name is renamed to the
    /// new one); of models, those the jobs' records keep. Answers how many files were removed.
    pub(crate) fn reclaim(&self, scheduler: &Scheduler) -> Result<usize> {
        let mut keep = std::collections::HashSet::new();
        for sweep in scheduler.sweeps() {
            for job in scheduler.jobs_of(sweep) {
                if self.kind == FileKind::Models {
                    if let Some(model) = &job.runtime.model {
                        keep.insert(self.path(&job.id, &model.sha256));
                    }
                    continue;
                }
                let Some(checkpoint) = &job.runtime.checkpoint else {
                    continue;
                };
                if job.runtime.state.is_final() {
                    continue;
                }
                let path = self.path(&job.id, &checkpoint.sha256);
                let legacy = self.legacy_path(&job.id);
                if !path.exists() && legacy.exists() {
                    std::fs::rename(&legacy, &path)
                        .map_err(|e| CoordinatorError::storage(&legacy, e))?;
                }
                keep.insert(path);
            }
        }
        let entries =
            std::fs::read_dir(&self.dir).map_err(|e| CoordinatorError::storage(&self.dir, e))?;
        let mut removed = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            if !keep.contains(&path) && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes a file whose record no longer names it; a missing file is no error.
    pub(crate) fn remove(&self, job: &JobId, sha256: &Sha256) {
        let path = self.path(job, sha256);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a file no record names; it is removed at the next start")
            }
        }
    }

    /// Writes the data chunks of an upload to a temporary file and checks them against the
    /// header's size and hex SHA-256.
    pub(crate) async fn receive(
        &self,
        lease: &LeaseId,
        size: u64,
        sha256: Sha256,
        mut chunks: impl Stream<Item = Result<Vec<u8>>> + Unpin,
    ) -> Result<Received> {
        let path = self
            .dir
            .join(format!("{lease}.{}.tmp", self.kind.extension()));
        let io = |e: std::io::Error| CoordinatorError::storage(&path, e);
        let mut file = tokio::fs::File::create(&path).await.map_err(io)?;
        let received = Received {
            path: path.clone(),
            installed: false,
        };
        // The chunk format's own check, the same one a downloading worker makes.
        let mut verifier = Verifier::new(size, sha256);
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            verifier.update(&chunk).map_err(refused)?;
            file.write_all(&chunk).await.map_err(io)?;
        }
        verifier.finish().map_err(refused)?;
        // On disk before it can replace the previous checkpoint.
        file.sync_all().await.map_err(io)?;
        drop(file);
        Ok(received)
    }

    /// Renames a verified upload to its own name and makes the rename durable. No record
    /// names the file yet: the previous file stays whole until the new record commits.
    pub(crate) fn install(
        &self,
        mut received: Received,
        job: &JobId,
        sha256: &Sha256,
    ) -> Result<()> {
        let target = self.path(job, sha256);
        std::fs::rename(&received.path, &target)
            .map_err(|e| CoordinatorError::storage(&target, e))?;
        received.installed = true;
        // The rename lives in the directory: flush it too (not possible on every platform).
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Opens a job's file for a download and checks it against the SHA-256 of its record,
    /// reading it once in chunks (never whole in memory). A missing file is `NotFound`, a
    /// damaged one `Corrupted`; see [`CheckpointFiles::is_lost`]. The answer reads from the
    /// handle opened here, so a file removed meanwhile (a newer checkpoint replaced it) is
    /// still sent whole.
    pub(crate) async fn open_stored(&self, job: &JobId, sha256: &Sha256) -> Result<StoredFile> {
        let path = self.path(job, sha256);
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CoordinatorError::not_found(
                    self.kind.noun(),
                    job.to_string(),
                    match self.kind {
                        FileKind::Checkpoints => "its file is gone: start the job from epoch 0",
                        FileKind::Models => "its file is gone",
                    },
                ));
            }
            Err(e) => return Err(CoordinatorError::storage(&path, e)),
        };
        let expected = *sha256;
        let (file, size, matches) = tokio::task::spawn_blocking(move || check_file(file, expected))
            .await
            .map_err(|e| CoordinatorError::Internal(e.to_string()))?
            .map_err(|e| CoordinatorError::storage(&path, e))?;
        if !matches {
            return Err(CoordinatorError::Corrupted(format!(
                "the {} {job} no longer matches the SHA-256 recorded at upload{}",
                self.kind.noun(),
                match self.kind {
                    FileKind::Checkpoints => "; start the job from epoch 0",
                    FileKind::Models => "",
                }
            )));
        }
        Ok(StoredFile {
            file: tokio::fs::File::from_std(file),
            size,
            path,
        })
    }

    /// Whether a [`CheckpointFiles::open_stored`] error means the file is lost for good (gone or
    /// damaged on disk), not that the disk could not be read just now.
    pub(crate) fn is_lost(error: &CoordinatorError) -> bool {
        matches!(
            error,
            CoordinatorError::Refused(SchedulerError::NotFound { .. })
                | CoordinatorError::Corrupted(_)
        )
    }
}

/// A stored file checked against its record and open for sending.
#[derive(Debug)]
pub(crate) struct StoredFile {
    file: tokio::fs::File,
    size: u64,
    path: PathBuf,
}

impl StoredFile {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The file as the checkpoint chunks of a download: `header`, then data chunks of
    /// [`chunks::CHUNK_BYTES`], each read from disk only when the client has taken the one
    /// before. `held` (a stream permit) lives as long as the stream.
    pub(crate) fn chunks<H: Send + 'static>(
        self,
        header: &CheckpointHeader,
        held: H,
    ) -> impl Stream<Item = std::result::Result<pb::CheckpointChunk, tonic::Status>> + Send + use<H>
    {
        let first = futures::stream::once(futures::future::ready(Ok(header.chunk())));
        let data = futures::stream::try_unfold(
            (self, 0u64, held),
            |(mut stored, sent, held)| async move {
                if sent == stored.size {
                    return Ok(None);
                }
                let want = (stored.size - sent).min(chunks::CHUNK_BYTES as u64) as usize;
                let mut bytes = vec![0; want];
                let io = |e: std::io::Error| {
                    tonic::Status::from(CoordinatorError::storage(&stored.path, e))
                };
                stored.file.read_exact(&mut bytes).await.map_err(io)?;
                let chunk = pb::CheckpointChunk {
                    part: Some(pb::checkpoint_chunk::Part::Data(bytes)),
                };
                Ok(Some((chunk, (stored, sent + want as u64, held))))
            },
        );
        first.chain(data)
    }
}

/// Reads a file through once in chunks and checks it against `sha256`: the file (rewound),
/// its size, and whether it matches.
fn check_file(
    mut file: std::fs::File,
    sha256: Sha256,
) -> std::io::Result<(std::fs::File, u64, bool)> {
    use std::io::{Read, Seek};
    let size = file.metadata()?.len();
    let mut verifier = Verifier::new(size, sha256);
    let mut buffer = vec![0; chunks::CHUNK_BYTES];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        if verifier.update(&buffer[..read]).is_err() {
            return Ok((file, size, false));
        }
    }
    file.rewind()?;
    Ok((file, size, verifier.finish().is_ok()))
}

/// An upload whose bytes differ from its header: a size that lies is the sender's mistake, a
/// digest that differs is damage on the way (upload again).
fn refused(err: ChunkError) -> CoordinatorError {
    match err {
        ChunkError::Longer { .. } => CoordinatorError::invalid(
            "header.size",
            format!("{err}: send the checkpoint's real size"),
        ),
        ChunkError::Shorter { .. } => {
            CoordinatorError::invalid("header.size", format!("{err}: send the whole checkpoint"))
        }
        ChunkError::Digest { .. } => CoordinatorError::Corrupted(err.to_string()),
    }
}

/// Takes the checkpoints out of the records of jobs that these changes end, and answers them:
/// a job that succeeded, failed for good or was cancelled will not resume, so its record
/// drops the checkpoint and, once that is committed, its file is removed.
pub(crate) fn take_ended(changes: &mut [Change]) -> Vec<(JobId, Checkpoint)> {
    changes
        .iter_mut()
        .filter_map(|change| match change {
            Change::JobUpdated { job, runtime } if runtime.state.is_final() => {
                runtime.checkpoint.take().map(|c| (job.clone(), *c))
            }
            _ => None,
        })
        .collect()
}

/// The model files these changes stop naming (a record replaced or dropped, a sweep deleted),
/// as the state before them holds them: each is removed once the changes are committed.
pub(crate) fn dropped_models(scheduler: &Scheduler, changes: &[Change]) -> Vec<(JobId, KeptModel)> {
    let mut dropped = Vec::new();
    // A job's last update is what it ends as.
    let mut last = std::collections::HashMap::new();
    for change in changes {
        if let Change::JobUpdated { job, runtime } = change {
            last.insert(job, runtime);
        }
    }
    for (job, runtime) in last {
        let Some(old) = scheduler.job(job).and_then(|j| j.runtime.model.as_deref()) else {
            continue;
        };
        if runtime
            .model
            .as_deref()
            .is_none_or(|new| new.sha256 != old.sha256)
        {
            dropped.push((job.clone(), old.clone()));
        }
    }
    for change in changes {
        if let Change::SweepDeleted { sweep } = change
            && let Some(record) = scheduler.sweep(sweep)
        {
            dropped.extend(
                scheduler.jobs_of(record).filter_map(|job| {
                    Some((job.id.clone(), job.runtime.model.as_deref()?.clone()))
                }),
            );
        }
    }
    dropped
}

/// A SHA-256 as a header carries it: 64 hex digits, either case.
pub(crate) fn parse_sha256(text: &str) -> Result<Sha256> {
    text.parse().map_err(|_| {
        CoordinatorError::invalid(
            "header.sha256",
            "give the checkpoint's SHA-256 as 64 hex digits",
        )
    })
}

#[cfg(test)]
mod tests {
    use ltsweep_proto::pb::checkpoint_chunk::Part;

    use super::*;

    /// A stored file as a download sends it: the header, then the data in chunks.
    async fn download(files: &CheckpointFiles, job: &JobId, sha256: &Sha256) -> Result<Vec<u8>> {
        let stored = files.open_stored(job, sha256).await?;
        let header = CheckpointHeader {
            lease_id: String::new(),
            epoch: 1,
            size: stored.size(),
            sha256: *sha256,
        };
        let chunks: Vec<_> = stored.chunks(&header, ()).collect().await;
        let mut bytes = Vec::new();
        for chunk in chunks.into_iter().skip(1) {
            let Some(Part::Data(data)) = chunk.unwrap().part else {
                panic!("data chunks follow the header");
            };
            bytes.extend(data);
        }
        Ok(bytes)
    }

    fn files() -> (tempfile::TempDir, CheckpointFiles) {
        let dir = tempfile::tempdir().unwrap();
        let files = CheckpointFiles::open(dir.path(), FileKind::Checkpoints).unwrap();
        (dir, files)
    }

    fn chunks(parts: &[&[u8]]) -> impl Stream<Item = Result<Vec<u8>>> + Unpin {
        futures::stream::iter(parts.iter().map(|p| Ok(p.to_vec())).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn a_verified_upload_replaces_the_checkpoint() {
        let (_dir, files) = files();
        let job = JobId("abc".into());
        let lease = LeaseId("l-1-abc".into());
        let sha = Sha256::of(b"hello world");
        let received = files
            .receive(&lease, 11, sha, chunks(&[b"hello ", b"world"]))
            .await
            .unwrap();
        files.install(received, &job, &sha).unwrap();
        assert_eq!(download(&files, &job, &sha).await.unwrap(), b"hello world");
        files.remove(&job, &sha);
        let gone = download(&files, &job, &sha).await.unwrap_err();
        assert!(CheckpointFiles::is_lost(&gone), "{gone}");
    }

    #[tokio::test]
    async fn a_wrong_checksum_or_size_leaves_nothing_behind() {
        let (dir, files) = files();
        let lease = LeaseId("l-1-abc".into());
        let sha = Sha256::of(b"hello world");
        let err = files
            .receive(&lease, 11, sha, chunks(&[b"hello there"]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::DataLoss);
        let err = files
            .receive(&lease, 5, sha, chunks(&[b"hello world"]))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        let left = std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .count();
        assert_eq!(left, 0);
    }

    #[test]
    fn sha256_must_be_hex() {
        assert!(parse_sha256("xyz").is_err());
        assert_eq!(
            parse_sha256(&"AB".repeat(32)).unwrap().to_string(),
            "ab".repeat(32)
        );
    }
}
