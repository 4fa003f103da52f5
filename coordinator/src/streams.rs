//! How many long-lived streams (`WatchSweep`, `GetResults`, the web page's live events, which
//! are `WatchSweep` underneath, and the file downloads `GetModel`, `DownloadModel` and
//! `DownloadCheckpoint`) are open, per credential and in all. Each stream holds a permit for as
//! long as it lives; past a limit, a new one is refused naming it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ltsweep_proto::server::Caller;

use crate::error::CoordinatorError;

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_credential: HashMap<&'static str, usize>,
}

/// The open streams.
#[derive(Debug)]
pub(crate) struct StreamSlots {
    max: usize,
    max_per_credential: usize,
    held: Mutex<Held>,
}

/// One open stream; dropping it frees its slot.
#[derive(Debug)]
pub(crate) struct StreamPermit {
    slots: Arc<StreamSlots>,
    credential: &'static str,
}

impl StreamSlots {
    pub(crate) fn new(max: usize, max_per_credential: usize) -> Arc<StreamSlots> {
        Arc::new(StreamSlots {
            max,
            max_per_credential,
            held: Mutex::default(),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // Counts stay right through a panic elsewhere: nothing here panics holding the lock.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn acquire(
        self: &Arc<Self>,
        caller: &Caller,
    ) -> Result<StreamPermit, CoordinatorError> {
        let mut held = self.held();
        let mine = held
            .by_credential
            .get(caller.credential)
            .copied()
            .unwrap_or(0);
        if mine >= self.max_per_credential {
            return Err(CoordinatorError::Exhausted(format!(
                "the {} has {mine} streams open, its limit (--max-streams-per-credential {}): close a `watch`, a sweep's page or a download, then try again",
                caller.credential, self.max_per_credential
            )));
        }
        if held.total >= self.max {
            return Err(CoordinatorError::Exhausted(format!(
                "the coordinator has {} streams open, its limit (--max-streams {}): try again once some close",
                held.total, self.max
            )));
        }
        held.total += 1;
        *held.by_credential.entry(caller.credential).or_insert(0) += 1;
        Ok(StreamPermit {
            slots: Arc::clone(self),
            credential: caller.credential,
        })
    }

    #[cfg(test)]
    pub(crate) fn total(&self) -> usize {
        self.held().total
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        held.total -= 1;
        if let Some(count) = held.by_credential.get_mut(self.credential) {
            *count -= 1;
            if *count == 0 {
                held.by_credential.remove(self.credential);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ltsweep_proto::roles::Roles;

    use super::*;

    #[test]
    fn streams_are_capped_per_credential_and_in_all() {
        let slots = StreamSlots::new(3, 2);
        let viewer = Caller {
            credential: "viewer token",
            roles: Roles::VIEWER,
        };
        let user = Caller {
            credential: "user token",
            roles: Roles::USER,
        };
        let a = slots.acquire(&viewer).unwrap();
        let _b = slots.acquire(&viewer).unwrap();
        let refused = slots.acquire(&viewer).unwrap_err().to_string();
        assert!(
            refused.contains("--max-streams-per-credential 2"),
            "{refused}"
        );
        let _c = slots.acquire(&user).unwrap();
        let refused = slots.acquire(&user).unwrap_err().to_string();
        assert!(refused.contains("--max-streams 3"), "{refused}");
        drop(a);
        assert_eq!(slots.total(), 2);
        slots.acquire(&user).unwrap();
    }
}
