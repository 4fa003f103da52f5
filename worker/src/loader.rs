//! The streaming loader of list data: a pool of threads that read, decode, augment and
//! normalise images ([`FileData::make_image`]) into whole batches, a few batches ahead of the
//! trainer, in the epoch's order.
//!
//! Work is handed out an image at a time, so every thread works on the next batch until it is
//! complete, and at most [`AHEAD`] batches are in flight (each `[B, 3, C, C]` floats: 77 MB at
//! batch 128 and crop 224), their tensors allocated by the consumer as it takes a batch. Each image writes straight into its place in its batch's tensor; a
//! batch goes to the trainer once every image of it is there, in order, whatever the threads'
//! timing. On CUDA the finished batch is copied to pinned memory by the loader thread that
//! completed it, so the trainer's copy to the device is asynchronous.
//!
//! An image's augmentation comes from `(seed, epoch, position in the epoch)` alone, so a feed
//! started midway (a resumed epoch) yields exactly the batches the uninterrupted epoch would
//! have from there. An image that cannot be read stops the feed with an error naming the file
//! and the list line; the threads stop when the feed is dropped.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tch::{Device, Kind, Tensor};

use ltsweep_data::DataError;
use ltsweep_data::jpeg::transform::{Pipeline, Scratch};
use ltsweep_data::list::{FileData, Split};
use ltsweep_data::rng::{Rng, purpose};

/// Batches assembled ahead of the one the trainer takes.
pub const AHEAD: usize = 2;

/// Starts feeds of one data set.
pub struct Loader {
    data: Arc<FileData>,
    pipeline: Arc<Pipeline>,
    threads: usize,
    /// The CUDA device batches are pinned for; `None` on the CPU.
    pin: Option<Device>,
}

/// What a feed's images go through.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Train { seed: u64, epoch: u32 },
    Eval,
}

/// The positions a feed covers and how they are batched.
struct Plan {
    split: Split,
    /// Positions index this order; `None`: the split's own order.
    order: Option<Arc<Vec<i64>>>,
    start: usize,
    end: usize,
    batch: usize,
    batches: usize,
    mode: Mode,
}

impl Plan {
    fn batch_of(&self, position: usize) -> usize {
        (position - self.start) / self.batch
    }

    fn batch_range(&self, k: usize) -> (usize, usize) {
        let from = self.start + k * self.batch;
        (from, (from + self.batch).min(self.end))
    }
}

/// A batch being filled: its tensor and how many of its images are in.
struct Filling {
    images: Tensor,
    /// The address of the tensor's first float, for the threads' writes.
    address: usize,
    done: usize,
    len: usize,
}

struct State {
    next: usize,
    taken: usize,
    filling: HashMap<usize, Filling>,
    ready: HashMap<usize, (Tensor, Tensor)>,
    error: Option<DataError>,
    stop: bool,
}

struct Shared {
    data: Arc<FileData>,
    pipeline: Arc<Pipeline>,
    pin: Option<Device>,
    plan: Plan,
    state: Mutex<State>,
    changed: Condvar,
}

/// Batches `(images [B, 3, C, C] float, labels [B] int64)` on the CPU (pinned on CUDA), in
/// order; dropping it stops its threads.
pub struct Feed {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    finished: bool,
}

impl Loader {
    /// A loader of `threads` threads per feed (at least one).
    pub fn new(data: Arc<FileData>, threads: usize, device: Device) -> Loader {
        let config = &data.config;
        Loader {
            pipeline: Arc::new(
                Pipeline::new(config.crop_size, config.resize_size, config.color_jitter)
                    .with_normalization(&config.normalization)
                    .with_reduced_decode(config.reduced_decode),
            ),
            threads: threads.max(1),
            pin: device.is_cuda().then_some(device),
            data,
        }
    }

    /// The training batches of an epoch from position `from` of `order` (indices of training
    /// images): `batch` images each, the last one dropped when it would hold a single image
    /// (BatchNorm cannot train on it). Augmented from `(seed, epoch)`, or, without, resized and
    /// centre-cropped as for evaluation.
    pub fn train(
        &self,
        order: Arc<Vec<i64>>,
        augment: Option<(u64, u32)>,
        from: usize,
        batch: usize,
    ) -> Feed {
        let end = order.len();
        let mode = match augment {
            Some((seed, epoch)) => Mode::Train { seed, epoch },
            None => Mode::Eval,
        };
        self.start(plan(Split::Train, Some(order), from, end, batch, 2, mode))
    }

    /// Whether the data set has this split (a validation list is optional).
    pub fn has(&self, split: Split) -> bool {
        self.data.split(split).is_some()
    }

    /// A split's images in the list's order, resized and centre-cropped, in batches of `batch`.
    pub fn eval(&self, split: Split, batch: usize) -> Feed {
        let end = self.data.split(split).map_or(0, |s| s.len());
        self.start(plan(split, None, 0, end, batch, 1, Mode::Eval))
    }

    fn start(&self, plan: Plan) -> Feed {
        let shared = Arc::new(Shared {
            data: Arc::clone(&self.data),
            pipeline: Arc::clone(&self.pipeline),
            pin: self.pin,
            state: Mutex::new(State {
                next: plan.start,
                taken: 0,
                filling: HashMap::new(),
                ready: HashMap::new(),
                error: None,
                stop: false,
            }),
            changed: Condvar::new(),
            plan,
        });
        {
            let mut state = shared.lock();
            for k in 0..AHEAD {
                shared.allocate(&mut state, k);
            }
        }
        let threads = (0..self.threads)
            .map(|i| {
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name(format!("loader-{i}"))
                    .spawn(move || shared.work())
                    .expect("the system can start a loader thread")
            })
            .collect();
        Feed {
            shared,
            threads,
            finished: false,
        }
    }
}

/// The plan of a feed over positions `start..end`; a last batch under `min_batch` images is
/// left out.
fn plan(
    split: Split,
    order: Option<Arc<Vec<i64>>>,
    start: usize,
    end: usize,
    batch: usize,
    min_batch: usize,
    mode: Mode,
) -> Plan {
    let batch = batch.max(1);
    let start = start.min(end);
    let full = (end - start) / batch;
    let rest = (end - start) % batch;
    let batches = full + usize::from(rest >= min_batch);
    let end = (start + batches * batch).min(end);
    Plan {
        split,
        order,
        start,
        end,
        batch,
        batches,
        mode,
    }
}

impl Feed {
    /// The next batch; `None` after the last (or after an error was returned).
    pub fn next_batch(&mut self) -> Option<Result<(Tensor, Tensor), DataError>> {
        if self.finished {
            return None;
        }
        let shared = &self.shared;
        let mut state = shared.lock();
        loop {
            if let Some(error) = state.error.take() {
                state.stop = true;
                self.finished = true;
                shared.changed.notify_all();
                return Some(Err(error));
            }
            if state.taken == shared.plan.batches {
                self.finished = true;
                return None;
            }
            let k = state.taken;
            if let Some(batch) = state.ready.remove(&k) {
                state.taken += 1;
                shared.allocate(&mut state, k + AHEAD);
                shared.changed.notify_all();
                return Some(Ok(batch));
            }
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Allocates batch `k`'s tensor, unless the plan has no such batch or it exists. Called
    /// by the consumer (the feed's owner), never by a loader thread: a batch is tens of
    /// megabytes, which glibc serves a loader thread with a fresh mapping each time (its
    /// arena's heaps are smaller), so every batch was faulted in and zeroed page by page, about
    /// a sixth of the loader's CPU time (`perf`). The main thread's heap keeps freed batches
    /// (`alloc::keep_freed_memory`) and hands them back without either.
    fn allocate(&self, state: &mut State, k: usize) {
        if k >= self.plan.batches || k < state.taken || state.filling.contains_key(&k) {
            return;
        }
        let (from, to) = self.plan.batch_range(k);
        let len = to - from;
        let c = i64::from(self.pipeline.crop);
        let images = Tensor::empty([len as i64, 3, c, c], (Kind::Float, Device::Cpu));
        state.filling.insert(
            k,
            Filling {
                address: images.data_ptr() as usize,
                images,
                done: 0,
                len,
            },
        );
    }

    /// A loader thread: claim the next image, make it, put it in its batch; until the plan is
    /// done, the feed stops or an image fails.
    fn work(&self) {
        let mut scratch = Scratch::new(self.pipeline.crop);
        let image_len = self.pipeline.image_len();
        loop {
            let (position, batch, address) = {
                let mut state = self.lock();
                loop {
                    if state.stop || state.error.is_some() || state.next >= self.plan.end {
                        return;
                    }
                    let k = self.plan.batch_of(state.next);
                    if k < state.taken + AHEAD {
                        break;
                    }
                    state = self
                        .changed
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                let position = state.next;
                state.next += 1;
                let k = self.plan.batch_of(position);
                let filling = state
                    .filling
                    .get(&k)
                    .expect("the consumer allocated every batch within AHEAD of the one it took");
                (position, k, filling.address)
            };
            let (from, _) = self.plan.batch_range(batch);
            // SAFETY: `address` is the first float of a contiguous `[len, 3, C, C]` float tensor
            // held in `filling` until all `len` images are in; the image at `position - from`
            // was claimed by this thread alone under the lock, so no other thread writes (or
            // reads) these floats, and the tensor leaves `filling` only once this thread has
            // counted its image in, under the same lock.
            let out = unsafe {
                std::slice::from_raw_parts_mut(
                    (address as *mut f32).add((position - from) * image_len),
                    image_len,
                )
            };
            let made = self.make(position, &mut scratch, out);
            let mut state = self.lock();
            if let Err(error) = made {
                if state.error.is_none() {
                    state.error = Some(error);
                }
                self.changed.notify_all();
                return;
            }
            let filling = state
                .filling
                .get_mut(&batch)
                .expect("a batch stays while its images are made");
            filling.done += 1;
            if filling.done == filling.len {
                let filling = state.filling.remove(&batch).expect("present");
                drop(state);
                let (images, labels) = match self.pin {
                    Some(device) => (
                        filling.images.pin_memory(device),
                        self.labels(batch).pin_memory(device),
                    ),
                    None => (filling.images, self.labels(batch)),
                };
                let mut state = self.lock();
                state.ready.insert(batch, (images, labels));
                self.changed.notify_all();
            }
        }
    }

    /// The index into the split of the image at `position`.
    fn index(&self, position: usize) -> usize {
        match &self.plan.order {
            Some(order) => order[position] as usize,
            None => position,
        }
    }

    fn labels(&self, batch: usize) -> Tensor {
        let (from, to) = self.plan.batch_range(batch);
        let split = self
            .data
            .split(self.plan.split)
            .expect("a feed's split exists");
        let labels: Vec<i64> = (from..to)
            .map(|p| i64::from(split.entries[self.index(p)].label))
            .collect();
        Tensor::from_slice(&labels)
    }

    /// Reads, decodes and transforms the image at `position` into `out`.
    fn make(
        &self,
        position: usize,
        scratch: &mut Scratch,
        out: &mut [f32],
    ) -> Result<(), DataError> {
        let mut rng = match self.plan.mode {
            Mode::Train { seed, epoch } => Some(Rng::derive(
                seed,
                &[purpose::LIST_AUGMENT, u64::from(epoch), position as u64],
            )),
            Mode::Eval => None,
        };
        self.data.make_image(
            self.plan.split,
            self.index(position),
            &self.pipeline,
            rng.as_mut(),
            scratch,
            out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_drop_a_last_batch_too_small() {
        let p = plan(Split::Train, None, 0, 10, 4, 2, Mode::Eval);
        assert_eq!((p.batches, p.end), (3, 10));
        let p = plan(Split::Train, None, 0, 9, 4, 2, Mode::Eval);
        assert_eq!((p.batches, p.end), (2, 8));
        let p = plan(Split::Train, None, 5, 9, 4, 1, Mode::Eval);
        assert_eq!((p.batches, p.batch_range(0)), (1, (5, 9)));
        let p = plan(Split::Test, None, 0, 9, 4, 1, Mode::Eval);
        assert_eq!((p.batches, p.batch_range(2)), (3, (8, 9)));
    }
}
