//! `WatchSweep` (and through it the web page's live events): every job of a sweep, then each
//! job again whenever it changes, until the sweep is over.
//!
//! A watcher holds no copy of its sweep. It reads jobs from the shared state in memory when
//! its client is ready for more (the stream is pulled by the transport, which stops pulling
//! while the client does not read), and hears only *which* job changed, from one broadcast all
//! watchers share. What it keeps of its own is bounded whatever the sweep's size:
//!
//! - a pass over the sweep's jobs still to send: an index and a count;
//! - the ids of jobs changed since they were sent, up to [`MAX_CHANGED`]; past it, or when
//!   it missed events (it lagged behind the broadcast, or memory was reloaded from the store),
//!   the watcher starts a new pass over every job instead;
//! - a batch of at most [`BATCH`] messages read ahead.
//!
//! A job's message always carries the job's state and the sweep's counts as they are when it
//! is sent. The watcher drains its events and reads the state under the same read lock that
//! changes are published under the write lock of, so when it finds nothing left to send and
//! the sweep over, no change is still on its way: the stream ends.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use futures::{Stream, StreamExt, stream};
use ltsweep_domain::{JobId, SweepId};
use ltsweep_proto::pb;
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::sync::watch;
use tonic::Status;

use super::memory::StateEvent;
use super::{Coordinator, Result, shut_down, unknown_sweep};
use crate::error::CoordinatorError;
use crate::scheduler::Scheduler;
use crate::streams::StreamPermit;
use crate::wire;

/// Changed jobs remembered by id; more changes than this turn into a new pass.
const MAX_CHANGED: usize = 256;
/// Messages read from the state at once, under one read lock.
const BATCH: usize = 64;

/// The jobs of a pass still to send: `remaining` of them from index `next`, wrapping around.
#[derive(Clone, Copy, Debug)]
struct Pass {
    next: usize,
    remaining: usize,
}

struct Watcher {
    coordinator: Arc<Coordinator>,
    sweep: SweepId,
    events: broadcast::Receiver<StateEvent>,
    closing: watch::Receiver<bool>,
    pass: Option<Pass>,
    changed: HashSet<JobId>,
    ready: VecDeque<pb::SweepEvent>,
    finished: bool,
    /// The stream's slot, freed when the stream is dropped.
    _permit: StreamPermit,
}

/// What a look at the state found.
enum Read {
    /// Messages to send are ready.
    Ready,
    /// Nothing to send; wait for a change.
    Wait,
    /// Everything sent and the sweep over.
    Over,
    /// The broadcast closed: the coordinator is going away.
    Closed,
}

/// Starts watching `sweep`: an unknown sweep is refused now, before any stream.
pub(super) fn watch_sweep(
    coordinator: Arc<Coordinator>,
    sweep: SweepId,
    permit: StreamPermit,
) -> Result<impl Stream<Item = std::result::Result<pb::SweepEvent, Status>> + Send + 'static> {
    // Subscribed under the read lock: every change after this look is heard of.
    let (events, jobs) = coordinator.read(|s| {
        let record = s
            .sweep(&sweep)
            .ok_or_else(|| unknown_sweep(sweep.as_str()))?;
        Ok((coordinator.memory.events.subscribe(), record.jobs.len()))
    })?;
    let watcher = Watcher {
        closing: coordinator.closing.subscribe(),
        coordinator,
        sweep,
        events,
        pass: Some(Pass {
            next: 0,
            remaining: jobs,
        }),
        changed: HashSet::new(),
        ready: VecDeque::new(),
        finished: false,
        _permit: permit,
    };
    Ok(stream::unfold(watcher, |mut watcher| async move {
        let next = watcher.next().await?;
        Some((next, watcher))
    })
    .boxed())
}

impl Watcher {
    async fn next(&mut self) -> Option<std::result::Result<pb::SweepEvent, Status>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.finished {
                return None;
            }
            let coordinator = Arc::clone(&self.coordinator);
            match coordinator.read(|s| self.read(s)) {
                Ok(Read::Ready) => continue,
                Ok(Read::Over | Read::Closed) => {
                    self.finished = true;
                    return None;
                }
                Ok(Read::Wait) => {}
                Err(err) => {
                    self.finished = true;
                    return Some(Err(err.into()));
                }
            }
            tokio::select! {
                _ = shut_down(&mut self.closing) => {
                    // Not a clean end: the sweep is not over, the watcher should come back.
                    self.finished = true;
                    return Some(Err(CoordinatorError::ShuttingDown.into()));
                }
                received = self.events.recv() => match received {
                    Ok(event) => self.heard(event),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.start_pass(),
                    Err(broadcast::error::RecvError::Closed) => {
                        self.finished = true;
                        return None;
                    }
                },
            }
        }
    }

    fn heard(&mut self, event: StateEvent) {
        match event {
            StateEvent::Job(changed) if changed.sweep == self.sweep => {
                if self.changed.len() >= MAX_CHANGED {
                    self.start_pass();
                } else {
                    self.changed.insert(changed.job.clone());
                }
            }
            StateEvent::Job(_) => {}
            // Memory was rebuilt from the store: what was sent may name changes that were
            // never committed, so every job goes again.
            StateEvent::Reloaded => self.start_pass(),
        }
    }

    /// Every job again, from where the current pass is (so a busy sweep cannot keep a slow
    /// watcher from ever reaching its last jobs).
    fn start_pass(&mut self) {
        self.changed.clear();
        let next = self.pass.map_or(0, |p| p.next);
        self.pass = Some(Pass {
            next,
            remaining: usize::MAX,
        });
    }

    /// Under the read lock: hears what was published, then reads the next batch.
    fn read(&mut self, s: &Scheduler) -> Result<Read> {
        loop {
            match self.events.try_recv() {
                Ok(event) => self.heard(event),
                Err(TryRecvError::Lagged(_)) => self.start_pass(),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return Ok(Read::Closed),
            }
        }
        let sweep = s
            .sweep(&self.sweep)
            .ok_or_else(|| unknown_sweep(self.sweep.as_str()))?;
        let total = sweep.jobs.len();
        let counts = Some(pb::SweepCounts::from(sweep.counts));
        let message = |id: &JobId| {
            s.job(id).map(|job| pb::SweepEvent {
                job: Some(wire::job_status(job, sweep.record.search.as_ref(), false)),
                counts,
            })
        };
        if let Some(pass) = &mut self.pass {
            pass.remaining = pass.remaining.min(total);
            while pass.remaining > 0 && self.ready.len() < BATCH {
                let id = &sweep.jobs[pass.next % total];
                pass.next = (pass.next + 1) % total;
                pass.remaining -= 1;
                self.ready.extend(message(id));
            }
            if pass.remaining == 0 {
                self.pass = None;
            }
        }
        while self.ready.len() < BATCH {
            let Some(id) = self.changed.iter().next().cloned() else {
                break;
            };
            self.changed.remove(&id);
            self.ready.extend(message(&id));
        }
        Ok(if !self.ready.is_empty() {
            Read::Ready
        } else if self.pass.is_none() && self.changed.is_empty() && sweep.counts.all_final() {
            Read::Over
        } else {
            Read::Wait
        })
    }
}
