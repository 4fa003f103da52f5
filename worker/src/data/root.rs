//! Files a spec names, opened confined to the worker's `--data-root`.
//!
//! A spec is written by any holder of the user token, and the worker reads what it names with
//! the worker's own rights, which reach its token file, `/etc` and the devices. So every file a
//! spec or a list names is opened here and nowhere else: CIFAR and IDX files, lists and COCO
//! files, the packed copy, each JPEG the loader reads, `model.init`. Each open
//!
//! - checks the name again lexically (relative, no `..`): a job may reach a worker without the
//!   spec's `validate`, through the raw API;
//! - opens without blocking (`O_NONBLOCK`: a FIFO's open would wait for a writer for ever) and
//!   takes the kind from the opened descriptor: regular files only, never a device, FIFO or
//!   socket;
//! - asks where the opened descriptor really is (`/proc/self/fd` on Linux: a symbolic link
//!   swapped in between a check and the open cannot move it) and refuses a file outside the
//!   root, so that a link under the root may point elsewhere under it, never out of it;
//! - counts the bytes it reads against a limit instead of trusting the size in the metadata
//!   (a device says 0 bytes, and a file can grow while it is read).
//!
//! Nothing here quotes a file's contents: a refusal names the file and what is wrong with it.
//! The root is canonicalised when a job first opens a file under it, not when the worker
//! starts, so a root mounted later is found, and a missing one shows as the data set's missing
//! folder, named as the spec and the flag give it.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use ltsweep_domain::spec::leaves_its_folder;

use super::DataError;

/// The most bytes read from one file, and what such a file is, for the refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    pub what: &'static str,
}

/// The folder every file of a job's data set must lie under.
#[derive(Clone, Debug)]
pub struct DataRoot {
    /// As the flag gave it: messages name files under it.
    given: PathBuf,
    /// With every symbolic link resolved, when first needed.
    canonical: OnceLock<PathBuf>,
}

/// A regular file under the root, open for reading.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    /// Its size when opened (a regular file's, so it can be trusted to size a buffer or a map).
    pub len: u64,
    path: PathBuf,
}

impl DataRoot {
    pub fn new(given: impl Into<PathBuf>) -> DataRoot {
        DataRoot {
            given: given.into(),
            canonical: OnceLock::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.given
    }

    /// `name`, a file or folder the spec gives as `key`, under `folder` (the root or a data
    /// set's folder under it); refused, naming the key, if it is absolute or has a `..`.
    pub fn spec_path(&self, folder: &Path, key: &str, name: &str) -> Result<PathBuf, DataError> {
        join(folder, name).map_err(|problem| DataError::Refused {
            path: folder.join(name),
            detail: format!(
                "{key} {problem}; a job reads only files inside the worker's --data-root"
            ),
        })
    }

    /// The data set's folder (`dataset.path`): there, and under the root once its links are
    /// resolved.
    pub fn folder(&self, relative: &str) -> Result<PathBuf, DataError> {
        let folder = self.spec_path(&self.given, "dataset.path", relative)?;
        if !folder.is_dir() {
            return Err(DataError::Missing {
                path: folder,
                hint: "the data set's folder; check its path and the worker's --data-root"
                    .to_owned(),
            });
        }
        let real = std::fs::canonicalize(&folder).map_err(|source| DataError::Io {
            path: folder.clone(),
            source,
        })?;
        if !real.starts_with(self.canonical()?) {
            return Err(outside(folder));
        }
        Ok(folder)
    }

    /// Opens the regular file at `path` (a name already joined under the root); `hint` says
    /// what a missing file is.
    pub fn open(&self, path: &Path, hint: &str) -> Result<Opened, DataError> {
        let mut options = OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // A FIFO opened for reading without O_NONBLOCK blocks until a writer comes: the
            // descriptor's kind is checked below, after an open that returns at once.
            options.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC);
        }
        let file = options.open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => DataError::Missing {
                path: path.to_owned(),
                hint: hint.to_owned(),
            },
            _ => DataError::Io {
                path: path.to_owned(),
                source,
            },
        })?;
        let io = |source| DataError::Io {
            path: path.to_owned(),
            source,
        };
        let real = real_path(&file, path).map_err(io)?;
        if !real.starts_with(self.canonical()?) {
            return Err(outside(path.to_owned()));
        }
        let metadata = file.metadata().map_err(io)?;
        if !metadata.is_file() {
            return Err(DataError::Refused {
                path: path.to_owned(),
                detail: format!(
                    "{}, not a regular file; a job reads only regular files",
                    kind_of(&metadata.file_type())
                ),
            });
        }
        Ok(Opened {
            file,
            len: metadata.len(),
            path: path.to_owned(),
        })
    }

    /// The whole regular file at `path`, refused past `limit` bytes read.
    pub fn read(&self, path: &Path, limit: Limit, hint: &str) -> Result<Vec<u8>, DataError> {
        self.open(path, hint)?.read_all(limit)
    }

    fn canonical(&self) -> Result<&Path, DataError> {
        if let Some(canonical) = self.canonical.get() {
            return Ok(canonical);
        }
        let canonical = std::fs::canonicalize(&self.given).map_err(|source| DataError::Io {
            path: self.given.clone(),
            source,
        })?;
        Ok(self.canonical.get_or_init(|| canonical))
    }
}

impl Opened {
    /// Every byte of the file, counting what is read: past `limit`, refused naming the limit.
    pub fn read_all(self, limit: Limit) -> Result<Vec<u8>, DataError> {
        // One byte past the limit tells a file that is too large from one that fits; sized
        // from the metadata (capped), the buffer is filled without a copy.
        let capacity = self.len.min(limit.bytes).saturating_add(1);
        let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(usize::MAX));
        (&self.file)
            .take(limit.bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|source| DataError::Io {
                path: self.path.clone(),
                source,
            })?;
        if bytes.len() as u64 > limit.bytes {
            return Err(DataError::Refused {
                path: self.path,
                detail: format!(
                    "over the limit of {} bytes for {} (counted as read)",
                    limit.bytes, limit.what
                ),
            });
        }
        Ok(bytes)
    }
}

/// `name` under `folder` if it stays there lexically, its `.` components dropped so that
/// messages name files as a person would; else what takes it out.
pub fn join(folder: &Path, name: &str) -> Result<PathBuf, &'static str> {
    if let Some(problem) = leaves_its_folder(name) {
        return Err(problem);
    }
    let rest: PathBuf = Path::new(name)
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    Ok(if rest.as_os_str().is_empty() {
        folder.to_owned()
    } else {
        folder.join(rest)
    })
}

fn outside(path: PathBuf) -> DataError {
    DataError::Refused {
        path,
        detail: "lies outside the worker's --data-root once its symbolic links are resolved; a job reads only files inside it".to_owned(),
    }
}

/// Where an opened file is, its links resolved: the kernel's name for the descriptor itself.
#[cfg(target_os = "linux")]
fn real_path(file: &File, path: &Path) -> std::io::Result<PathBuf> {
    use std::os::fd::AsRawFd;
    match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
        Ok(real) => Ok(real),
        // Without /proc (a sandbox may hide it) the name is resolved again, as elsewhere.
        Err(_) => std::fs::canonicalize(path),
    }
}

#[cfg(not(target_os = "linux"))]
fn real_path(_file: &File, path: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(path)
}

fn kind_of(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limit = Limit {
        bytes: 16,
        what: "a test file",
    };

    /// A root with `a.txt` and `sub/b.txt` in it, and a file beside it, outside.
    fn fixture() -> (tempfile::TempDir, DataRoot) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("a.txt"), "inside").unwrap();
        std::fs::write(root.join("sub/b.txt"), "also inside").unwrap();
        std::fs::write(dir.path().join("secret"), "token-outside-the-root").unwrap();
        (dir, DataRoot::new(root))
    }

    fn refusal(result: Result<Vec<u8>, DataError>) -> String {
        match result {
            Err(err @ DataError::Refused { .. }) => err.to_string(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn absolute_names_and_dotdot_are_refused_before_anything_is_opened() {
        let (_dir, root) = fixture();
        for (name, problem) in [
            ("/etc/passwd", "is absolute"),
            ("../secret", "has a `..` component"),
            ("sub/../../secret", "has a `..` component"),
        ] {
            let err = root
                .spec_path(root.path(), "dataset.train_list", name)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("dataset.train_list {problem}")),
                "{name}: {err}"
            );
        }
        let inside = root.spec_path(root.path(), "model.init", "./sub/b.txt");
        assert_eq!(inside.unwrap(), root.path().join("sub/b.txt"));
        let err = root.folder("/etc").unwrap_err().to_string();
        assert!(err.contains("dataset.path is absolute"), "{err}");
    }

    #[test]
    fn a_link_out_of_the_root_is_refused_and_one_inside_it_followed() {
        let (dir, root) = fixture();
        let r = root.path();
        std::os::unix::fs::symlink(dir.path().join("secret"), r.join("out.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), r.join("up")).unwrap();
        std::os::unix::fs::symlink(r.join("sub"), r.join("in")).unwrap();
        std::os::unix::fs::symlink("sub/b.txt", r.join("b-link.txt")).unwrap();

        let err = refusal(root.read(&r.join("out.txt"), SMALL, ""));
        assert!(
            err.contains("out.txt: lies outside the worker's --data-root"),
            "{err}"
        );
        assert!(!err.contains("token-outside"), "{err}");
        let err = refusal(root.read(&r.join("up/secret"), SMALL, ""));
        assert!(err.contains("lies outside"), "{err}");
        let err = root.folder("up").unwrap_err().to_string();
        assert!(err.contains("lies outside"), "{err}");

        assert_eq!(
            root.read(&r.join("in/b.txt"), SMALL, "").unwrap(),
            b"also inside"
        );
        assert_eq!(
            root.read(&r.join("b-link.txt"), SMALL, "").unwrap(),
            b"also inside"
        );
        assert_eq!(root.folder("in").unwrap(), r.join("in"));
    }

    #[test]
    fn a_root_that_is_itself_a_link_holds_its_files() {
        let (dir, _) = fixture();
        std::os::unix::fs::symlink(dir.path().join("root"), dir.path().join("mounted")).unwrap();
        let root = DataRoot::new(dir.path().join("mounted"));
        let file = root.path().join("a.txt");
        assert_eq!(root.read(&file, SMALL, "").unwrap(), b"inside");
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let (_dir, root) = fixture();
        let fifo = root.path().join("pipe.txt");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        // No writer ever opens it: a blocking open would hang this test.
        let err = refusal(root.read(&fifo, SMALL, ""));
        assert!(
            err.contains("pipe.txt: a FIFO, not a regular file"),
            "{err}"
        );
    }

    #[test]
    fn devices_are_refused_inside_the_root_and_through_a_link() {
        // /dev as the root: the device is inside it, and refused for what it is.
        let dev = DataRoot::new("/dev");
        let err = refusal(dev.read(Path::new("/dev/zero"), SMALL, ""));
        assert!(
            err.contains("/dev/zero: a device, not a regular file"),
            "{err}"
        );
        // A link to it from a data root: outside.
        let (_dir, root) = fixture();
        let zero = root.path().join("zero.txt");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let err = refusal(root.read(&zero, SMALL, ""));
        assert!(err.contains("zero.txt: lies outside"), "{err}");
    }

    #[test]
    fn the_limit_counts_bytes_read() {
        let (_dir, root) = fixture();
        let path = root.path().join("long.txt");
        std::fs::write(&path, [b'x'; 17]).unwrap();
        let err = refusal(root.read(&path, SMALL, ""));
        assert!(
            err.contains("long.txt: over the limit of 16 bytes for a test file"),
            "{err}"
        );
        std::fs::write(&path, [b'x'; 16]).unwrap();
        assert_eq!(root.read(&path, SMALL, "").unwrap().len(), 16);
        // The metadata's size is not what counts: an open file that grows past its size at
        // open is refused by what is read.
        let opened = root.open(&path, "").unwrap();
        assert_eq!(opened.len, 16);
        std::fs::write(&path, [b'x'; 40]).unwrap();
        let err = opened.read_all(SMALL).unwrap_err().to_string();
        assert!(err.contains("over the limit of 16"), "{err}");
    }

    #[test]
    fn a_missing_file_or_root_is_named_with_the_hint() {
        let (dir, root) = fixture();
        let err = root
            .read(
                &root.path().join("none.txt"),
                SMALL,
                "a list the spec names",
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("none.txt: not found (a list the spec names)"),
            "{err}"
        );
        let nowhere = DataRoot::new(dir.path().join("no-root"));
        let err = nowhere
            .folder("cifar-10-batches-bin")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no-root/cifar-10-batches-bin: not found"),
            "{err}"
        );
    }
}
