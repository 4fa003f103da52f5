//! Stage 2's input, from either source: an epoch's training batches in an order stage 2 draws
//! (class-balanced), augmented from stage 2's own seed, and one pass over the training images
//! with the evaluation transform (NCM's features).
//!
//! In memory, the batches are gathered, cropped and flipped on the device as stage 1's are. List
//! data streams through stage 1's loader ([`crate::loader::Loader::train`]): each image's crop,
//! flip and jitter come from `(seed, epoch, position in the order)`, so a stage-2 epoch is a
//! function of its seed as stage 1's are. The feature pass reads the training list in its own
//! order with `Resize` and `CenterCrop` and no augmentation ([`crate::loader::Loader::eval`]),
//! as Kang et al.'s `train_plain` split (their `data/dataloader.py` gives it the `test`
//! transform).

use std::sync::Arc;

use tch::{Kind, Tensor};

use super::{EVAL_BATCH, Memory, Source, TrainError, Trainer};
use crate::augment::EpochDraws;
use crate::loader::Feed;
use ltsweep_data::list::Split;

/// An epoch of stage 2's training batches: normalised images in the trainer's kind and their
/// labels, on its device, `train.batch_size` images each. A last batch of a single image is
/// left out, as stage 1 leaves it (BatchNorm cannot train on one image; the classifier could).
pub(crate) struct Stage2Batches<'a> {
    trainer: &'a Trainer,
    input: Input<'a>,
}

enum Input<'a> {
    Memory {
        memory: &'a Memory,
        /// The order on the device.
        order: Tensor,
        draws: Option<EpochDraws>,
        /// The next batch's first position in the order.
        from: i64,
    },
    Stream(Feed),
}

impl Trainer {
    /// The training batches of `order` (indices of training images, of any length: a sampler
    /// may draw an image more than once), augmented (where the job augments) from
    /// `(seed, epoch)`.
    pub(crate) fn stage2_batches(
        &self,
        order: Vec<i64>,
        seed: u64,
        epoch: u32,
    ) -> Stage2Batches<'_> {
        let input = match &self.source {
            Source::Memory(memory) => Input::Memory {
                memory,
                draws: memory
                    .augment
                    .as_ref()
                    .map(|a| a.draw(order.len(), seed, epoch, self.device)),
                order: Tensor::from_slice(&order).to_device(self.device),
                from: 0,
            },
            Source::Stream(loader, _) => Input::Stream(loader.train(
                Arc::new(order),
                self.job.train.augment.then_some((seed, epoch)),
                0,
                self.job.train.batch_size as usize,
            )),
        };
        Stage2Batches {
            trainer: self,
            input,
        }
    }

    /// The pooled features (float32) of every training image as evaluation sees it (in memory:
    /// as it is; list data: resized and centre-cropped), of the network in evaluation mode, and
    /// their labels `[N]`, on the device.
    pub(crate) fn training_features(&self) -> Result<(Tensor, Tensor), TrainError> {
        tch::no_grad(|| {
            let features_of = |x: &Tensor| self.model.features_t(x, false).to_kind(Kind::Float);
            let mut features = Vec::new();
            let labels = match &self.source {
                Source::Memory(memory) => {
                    let n = memory.train.len();
                    let mut from = 0;
                    while from < n {
                        let len = EVAL_BATCH.min(n - from);
                        let images = memory.train.images.narrow(0, from, len);
                        features.push(features_of(&self.in_kind(memory.normalize.apply(&images))));
                        from += len;
                    }
                    memory.train.labels.shallow_clone()
                }
                Source::Stream(loader, _) => {
                    let mut feed = loader.eval(Split::Train, self.job.train.batch_size as usize);
                    let mut labels = Vec::new();
                    while let Some(batch) = feed.next_batch() {
                        let (x, y) = self.streamed(batch?);
                        features.push(features_of(&x));
                        labels.push(y);
                    }
                    Tensor::cat(&labels, 0)
                }
            };
            Ok((Tensor::cat(&features, 0), labels))
        })
    }
}

impl Iterator for Stage2Batches<'_> {
    type Item = Result<(Tensor, Tensor), TrainError>;

    fn next(&mut self) -> Option<Self::Item> {
        let trainer = self.trainer;
        match &mut self.input {
            Input::Memory {
                memory,
                order,
                draws,
                from,
            } => {
                let batch = i64::from(trainer.job.train.batch_size);
                let len = batch.min(order.size()[0] - *from);
                if len < 2 {
                    return None;
                }
                let index = order.narrow(0, *from, len);
                let x = trainer.batch_images(memory, &index, draws.as_ref(), *from, len);
                *from += len;
                Some(Ok((x, memory.train.labels.index_select(0, &index))))
            }
            Input::Stream(feed) => {
                let batch = feed.next_batch()?;
                Some(batch.map(|b| trainer.streamed(b)).map_err(TrainError::from))
            }
        }
    }
}
