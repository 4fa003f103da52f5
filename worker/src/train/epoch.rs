//! An epoch of training: its order and draws, its batches from either source, the steps on
//! them, and its close (metrics, and the evaluation at an evaluation epoch).

use std::sync::Arc;
use std::time::Instant;

use ltsweep_domain::{ClassScope, CompMode, EpochMetrics};
use tch::{Kind, Tensor};

use super::{
    EpochEnd, EpochInput, EpochRun, LossSums, Memory, Source, TrainError, Trainer, divergence,
};
use crate::augment::{self, EpochDraws, Mixed};
use crate::checkpoint_file::PartialEpoch;
use crate::{baselines, losses, optim};

impl Trainer {
    /// Trains one epoch and evaluates if it is an evaluation epoch; `None` if cancelled.
    pub fn train_epoch(
        &mut self,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Option<EpochMetrics>, TrainError> {
        Ok(match self.train_epoch_until(cancelled, &|| false)? {
            EpochEnd::Done(metrics) => Some(*metrics),
            EpochEnd::Cancelled | EpochEnd::Preempted => None,
        })
    }

    /// Trains the rest of the current epoch (all of it unless a checkpoint stopped it midway)
    /// until it ends, a cancel, or a preemption (which leaves how far it got in `partial`).
    pub(super) fn train_epoch_until(
        &mut self,
        cancelled: &dyn Fn() -> bool,
        preempted: &dyn Fn() -> bool,
    ) -> Result<EpochEnd, TrainError> {
        let mut run = self.begin_epoch();
        while run.from < self.train_len() {
            if cancelled() {
                return Ok(EpochEnd::Cancelled);
            }
            if preempted() {
                self.pause_epoch(run);
                return Ok(EpochEnd::Preempted);
            }
            let Some((x, y)) = self.next_batch(&mut run)? else {
                break;
            };
            self.step(&x, &y, &mut run);
        }
        Ok(EpochEnd::Done(Box::new(self.end_epoch(run)?)))
    }

    /// Starts (or continues, after a checkpoint taken midway) the current epoch: its order,
    /// its augmentation draws and its loss sums. The pieces from here to [`Trainer::end_epoch`]
    /// are the fused trainer's too, so that a job trains on the same batches and losses alone
    /// or in a fused array.
    pub(crate) fn begin_epoch(&mut self) -> EpochRun {
        let epoch = self.epoch;
        let plan_on = epoch >= self.job.train.pretrain_ce_epochs;
        let start = Instant::now();
        let order = baselines::epoch_order(
            &self.train_labels,
            self.classes.num_classes(),
            self.job.train.sampler,
            self.job.seed,
            epoch,
        );
        let resumed = self.partial.take();
        let from = resumed.as_ref().map_or(0, |p| p.from);
        let input = match &self.source {
            Source::Memory(memory) => EpochInput::Memory {
                order: Tensor::from_slice(&order).to_device(self.device),
                draws: memory
                    .augment
                    .as_ref()
                    .map(|a| a.draw(order.len(), self.job.seed, epoch, self.device)),
                extra_draws: memory
                    .extras
                    .as_ref()
                    .map(|e| e.draw(order.len(), self.job.seed, epoch, self.device)),
            },
            Source::Stream(loader, extras) => {
                let draws = extras.as_ref().map(|e| {
                    e.extras
                        .draw(order.len(), self.job.seed, epoch, self.device)
                });
                let feed = loader.train(
                    Arc::new(order),
                    self.job.train.augment.then_some((self.job.seed, epoch)),
                    from as usize,
                    self.job.train.batch_size as usize,
                );
                EpochInput::Stream(feed, draws)
            }
        };
        let sum = |value: f64| Tensor::full([], value, (Kind::Float, self.device));
        EpochRun {
            epoch,
            use_pc: plan_on && self.job.plan.pc != ClassScope::None,
            use_comp: plan_on && self.job.plan.comp != ClassScope::None,
            input,
            sums: LossSums {
                ce: sum(resumed.as_ref().map_or(0.0, |p| p.ce)),
                comp: sum(resumed.as_ref().map_or(0.0, |p| p.comp)),
                pc: sum(resumed.as_ref().map_or(0.0, |p| p.pc)),
                batches: resumed.as_ref().map_or(0, |p| p.batches),
            },
            from,
            seen: from,
            earlier_seconds: resumed.as_ref().map_or(0.0, |p| p.seconds),
            start,
        }
    }

    /// The epoch's next batch (normalised images and labels), and the run moved past it; `None`
    /// at the end of the epoch.
    pub(crate) fn next_batch(
        &self,
        run: &mut EpochRun,
    ) -> Result<Option<(Tensor, Tensor)>, TrainError> {
        let batch = i64::from(self.job.train.batch_size);
        let len = batch.min(self.train_len() - run.from);
        // Batch norm cannot train on a single image.
        if len < 2 {
            return Ok(None);
        }
        let (x, y) = match (&self.source, &mut run.input) {
            (
                Source::Memory(memory),
                EpochInput::Memory {
                    order,
                    draws,
                    extra_draws,
                },
            ) => {
                let index = order.narrow(0, run.from, len);
                let x = match (&memory.extras, extra_draws) {
                    (Some(extras), Some(extra_draws)) => {
                        let images = self.cropped(memory, &index, draws.as_ref(), run.from, len);
                        let images = extras.before_normalising(&images, extra_draws, run.from, len);
                        let x = memory.normalize.apply(&images);
                        self.in_kind(extras.after_normalising(&x, extra_draws, run.from, len))
                    }
                    _ => self.batch_images(memory, &index, draws.as_ref(), run.from, len),
                };
                (x, memory.train.labels.index_select(0, &index))
            }
            (Source::Stream(_, extras), EpochInput::Stream(feed, extra_draws)) => {
                let Some(batch) = feed.next_batch() else {
                    return Ok(None);
                };
                let (x, y) = self.streamed(batch?);
                // The batch's images are the epoch's positions from..from + len.
                let x = match (extras, extra_draws) {
                    (Some(e), Some(draws)) => {
                        let images = e.normalize.to_u8(&x);
                        let images = e.extras.before_normalising(&images, draws, run.from, len);
                        let x = e.normalize.apply(&images);
                        self.in_kind(e.extras.after_normalising(&x, draws, run.from, len))
                    }
                    _ => x,
                };
                (x, y)
            }
            (Source::Memory(_), EpochInput::Stream(..)) => {
                unreachable!("an in-memory trainer's epochs are not streamed")
            }
            (Source::Stream(..), EpochInput::Memory { .. }) => {
                unreachable!("a streaming trainer's epochs are streamed")
            }
        };
        run.seen += len;
        run.from += len;
        Ok(Some((x, y)))
    }

    /// Stops the epoch between two steps; `partial` holds how far it got.
    pub(crate) fn pause_epoch(&mut self, run: EpochRun) {
        let sums = &run.sums;
        self.partial = Some(PartialEpoch {
            from: run.from,
            batches: sums.batches,
            ce: sums.ce.double_value(&[]),
            comp: sums.comp.double_value(&[]),
            pc: sums.pc.double_value(&[]),
            seconds: run.earlier_seconds + run.start.elapsed().as_secs_f64(),
        });
    }

    /// Closes the epoch: its metrics, and the test set's at an evaluation epoch.
    pub(crate) fn end_epoch(&mut self, run: EpochRun) -> Result<EpochMetrics, TrainError> {
        let sums = run.sums;
        let batches = f64::from(sums.batches.max(1));
        let mut metrics = EpochMetrics {
            epoch: run.epoch + 1,
            lr: self.job.train.lr_at(run.epoch),
            // Reading the sums waits for the device, so the time below is the real one.
            loss_base: sums.ce.double_value(&[]) / batches,
            loss_comp: sums.comp.double_value(&[]) / batches,
            loss_pc: sums.pc.double_value(&[]) / batches,
            images_per_second: 0.0,
            seconds: 0.0,
            accuracy: None,
            per_class: Vec::new(),
            val_accuracy: None,
        };
        let seconds = run.earlier_seconds + run.start.elapsed().as_secs_f64();
        metrics.seconds = seconds;
        metrics.images_per_second = run.seen as f64 / seconds.max(1e-9);
        self.train_seconds += seconds;
        self.epoch += 1;
        if divergence(self.job.losses.base.kind(), &metrics).is_none()
            && self.job.train.evaluates_after(self.epoch)
        {
            let confusion = self.evaluate()?;
            metrics.accuracy = Some(confusion.group_accuracy(&self.classes));
            metrics.per_class = confusion.per_class(&self.classes);
            metrics.val_accuracy = self
                .evaluate_val(&[0.0])?
                .map(|mut accuracies| accuracies.remove(0));
        }
        self.history.push(metrics.clone());
        Ok(metrics)
    }

    /// The normalised batch of the epoch's samples `from..from + len` (at `index`), cropped
    /// and flipped where the job augments.
    pub(super) fn batch_images(
        &self,
        memory: &Memory,
        index: &Tensor,
        draws: Option<&EpochDraws>,
        from: i64,
        len: i64,
    ) -> Tensor {
        let images = self.cropped(memory, index, draws, from, len);
        self.in_kind(memory.normalize.apply(&images))
    }

    /// The same batch in uint8, before normalisation.
    fn cropped(
        &self,
        memory: &Memory,
        index: &Tensor,
        draws: Option<&EpochDraws>,
        from: i64,
        len: i64,
    ) -> Tensor {
        let images = memory.train.images.index_select(0, index);
        match (&memory.augment, draws) {
            (Some(augment), Some(d)) => augment.apply(
                &images,
                &d.offset_y.narrow(0, from, len),
                &d.offset_x.narrow(0, from, len),
                &d.flip.narrow(0, from, len),
            ),
            _ => images,
        }
    }

    /// A streamed batch on the device, its images in the network's kind. From pinned memory
    /// on CUDA: the copies overlap the previous step.
    pub(super) fn streamed(&self, (x, y): (Tensor, Tensor)) -> (Tensor, Tensor) {
        (
            self.in_kind(x.to_device_(self.device, Kind::Float, true, false)),
            y.to_device_(self.device, Kind::Int64, true, false),
        )
    }

    /// Normalised images in the network's kind.
    pub(super) fn in_kind(&self, images: Tensor) -> Tensor {
        if self.kind == Kind::Float {
            images
        } else {
            images.to_kind(self.kind)
        }
    }

    /// One optimisation step on a batch (two in the alternating Comp. mode), mixed first if
    /// the job mixes.
    fn step(&mut self, x: &Tensor, y: &Tensor, run: &mut EpochRun) {
        let lr = self.job.train.lr_at(run.epoch);
        // `next_batch` has moved `from` past this batch.
        let first = run.from - x.size()[0];
        let mixed = self
            .mix
            .as_ref()
            .and_then(|mix| mix.apply(x, y, self.job.seed, run.epoch, first));
        let x = mixed.as_ref().map_or(x, |m| &m.images);
        let (logits, features) = self.model.forward_t(x, true);
        let loss = match &mixed {
            Some(mixed) => self.mixed_loss(&logits, y, mixed, run),
            None => self.first_loss(&logits, &features, y, run),
        };
        let centre_grad = self
            .sgd
            .backward_step(&loss, lr, run.use_pc.then_some(&self.centers));
        if let Some(grad) = centre_grad {
            self.step_centers(&grad);
        }
        if self.alternates(run) {
            // Complement Objective Training's reference code: a second forward pass and step
            // on the same batch with the complement loss alone.
            let (logits, _) = self.model.forward_t(x, true);
            let loss = self.second_loss(&logits, y, run);
            self.sgd.backward_step(&loss, lr, None);
        }
    }

    /// The loss of a batch's first step, added to the epoch's sums. The base loss (cross
    /// entropy unless the job names another) takes cross entropy's place in every plan, in the
    /// CE-only epochs too; its value is reported as `loss_base`.
    pub(crate) fn first_loss(
        &self,
        logits: &Tensor,
        features: &Tensor,
        y: &Tensor,
        run: &mut EpochRun,
    ) -> Tensor {
        let losses_cfg = &self.job.losses;
        let sums = &mut run.sums;
        let ce = self.base.loss(logits, y, run.epoch);
        sums.ce += ce.detach();
        sums.batches += 1;
        let mut loss = ce;
        if run.use_pc {
            let mask = losses::sample_mask(&self.pc_classes, y, Kind::Float);
            let pc = losses::prototype_conformity(
                features,
                &self.centers,
                y,
                &mask,
                losses_cfg.pc_push_weight,
            );
            sums.pc += pc.detach();
            loss += &pc * losses_cfg.pc_weight;
        }
        if run.use_comp && losses_cfg.comp_mode != CompMode::Alternate {
            let comp = self.complement(logits, y);
            sums.comp += comp.detach();
            loss += &comp * losses_cfg.comp_weight;
        }
        loss
    }

    /// The loss of a mixed batch, `λ·L(y_a) + (1 − λ)·L(y_b)` of the base loss (per sample
    /// for Remix), added to the epoch's sums. The spec refuses mixing with the plans' terms.
    fn mixed_loss(&self, logits: &Tensor, y: &Tensor, mixed: &Mixed, run: &mut EpochRun) -> Tensor {
        let loss = augment::mixed_loss(
            &mixed.weight,
            y,
            &mixed.partner,
            &|labels| self.base.loss(logits, labels, run.epoch),
            &|labels| self.base.per_sample(logits, labels),
        );
        run.sums.ce += loss.detach();
        run.sums.batches += 1;
        loss
    }

    /// Whether this epoch's batches take a second step (the alternating Comp. mode).
    pub(crate) fn alternates(&self, run: &EpochRun) -> bool {
        run.use_comp && self.job.losses.comp_mode == CompMode::Alternate
    }

    /// The loss of the second step: the complement loss alone, added to the epoch's sums.
    pub(crate) fn second_loss(&self, logits: &Tensor, y: &Tensor, run: &mut EpochRun) -> Tensor {
        let comp = self.complement(logits, y);
        run.sums.comp += comp.detach();
        comp * self.job.losses.comp_weight
    }

    /// One plain SGD step of the PC centres with their gradient.
    pub(crate) fn step_centers(&mut self, grad: &Tensor) {
        let losses_cfg = &self.job.losses;
        optim::step_centers(
            &mut self.centers,
            grad,
            losses_cfg.pc_center_lr,
            losses_cfg.pc_weight,
        );
    }

    fn complement(&self, logits: &Tensor, y: &Tensor) -> Tensor {
        let mask = losses::sample_mask(&self.comp_classes, y, Kind::Float);
        losses::complement_entropy(logits, y, &mask)
    }
}
