//! The free-disk floor of the state dir (`--min-free-disk-bytes`), held across concurrent
//! writes: each upload reserves the size its header announces before its first byte is
//! accepted, and a result the bytes it will take in the store, until it ends. A new write is
//! refused when the disk's free space, less every reservation still open, would go below the
//! floor; the free space alone would let several uploads, each checked before the others
//! wrote anything, pass the floor together.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::CoordinatorError;
use crate::limits;

type Result<T> = std::result::Result<T, CoordinatorError>;

/// The state dir's floor and the bytes reserved against it.
#[derive(Debug)]
pub(crate) struct DiskFloor {
    state_dir: PathBuf,
    floor: u64,
    reserved: Mutex<u64>,
}

/// Bytes reserved for one write; dropping it (the write ended, stored or failed) frees them.
#[derive(Debug)]
pub(crate) struct Reservation {
    disk: Arc<DiskFloor>,
    bytes: u64,
}

impl DiskFloor {
    pub(crate) fn new(state_dir: &Path, floor: u64) -> Arc<DiskFloor> {
        Arc::new(DiskFloor {
            state_dir: state_dir.to_owned(),
            floor,
            reserved: Mutex::new(0),
        })
    }

    fn reserved(&self) -> std::sync::MutexGuard<'_, u64> {
        // The count stays right through a panic elsewhere: nothing here panics holding it.
        self.reserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves `bytes` for a write of a `what` ("checkpoint", "model", "result"), or refuses
    /// it naming the floor's flag. Free space is read under the lock, so two writes cannot
    /// both take the last bytes above the floor.
    pub(crate) fn reserve(self: &Arc<Self>, bytes: u64, what: &str) -> Result<Reservation> {
        let mut reserved = self.reserved();
        let free = limits::free_disk_bytes(&self.state_dir)?;
        let left = free.saturating_sub(*reserved).saturating_sub(bytes);
        if left < self.floor {
            return Err(CoordinatorError::Exhausted(format!(
                "the state dir's disk has {free} bytes free and {} bytes reserved by writes under way; a {what} of {bytes} bytes would leave less than the floor of {} bytes (--min-free-disk-bytes): free some space, or try again once the writes under way end",
                *reserved, self.floor
            )));
        }
        *reserved += bytes;
        Ok(Reservation {
            disk: Arc::clone(self),
            bytes,
        })
    }

    #[cfg(test)]
    fn reserved_now(&self) -> u64 {
        *self.reserved()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        *self.disk.reserved() -= self.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_under_way_count_against_the_floor_until_they_end() {
        let dir = tempfile::tempdir().unwrap();
        let free = limits::free_disk_bytes(dir.path()).unwrap();
        // Room for 250 MiB above the floor, whatever this disk holds (other writes on the
        // machine move the free space a little: the margins below are tens of MiB).
        let room = 250 << 20;
        let disk = DiskFloor::new(dir.path(), free.saturating_sub(room));
        let first = disk.reserve(100 << 20, "checkpoint").unwrap();
        let second = disk.reserve(100 << 20, "checkpoint").unwrap();
        let refused = disk.reserve(100 << 20, "model").unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(
            refused.to_string().contains("--min-free-disk-bytes"),
            "{refused}"
        );
        assert!(refused.to_string().contains("model of"), "{refused}");
        drop(first);
        assert_eq!(disk.reserved_now(), 100 << 20);
        let third = disk.reserve(100 << 20, "result").unwrap();
        drop((second, third));
        assert_eq!(disk.reserved_now(), 0);
    }

    #[test]
    fn a_write_past_the_floor_is_refused_and_a_zero_floor_takes_any() {
        let dir = tempfile::tempdir().unwrap();
        let free = limits::free_disk_bytes(dir.path()).unwrap();
        let disk = DiskFloor::new(dir.path(), free.saturating_add(1 << 30));
        let err = disk.reserve(1, "checkpoint").unwrap_err();
        assert!(err.to_string().contains("--min-free-disk-bytes"), "{err}");
        DiskFloor::new(dir.path(), 0)
            .reserve(1, "checkpoint")
            .unwrap();
    }
}
