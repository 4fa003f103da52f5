//! Training a fused array: each member is a whole [`Trainer`] (its job, data order and
//! augmentation, base loss, plan masks, PC centres, history and checkpoint format), except that
//! its forward and backward passes run in one [`FusedResNet`] and its SGD step is a slice of one
//! SGD step over the fused parameters.
//!
//! Why this gives each member exactly its own training: the fused model never mixes members
//! (see [`crate::fused::resnet`]), so the gradient of the sum of the members' losses is each
//! member's own gradient in its slice; and [`Sgd`] is elementwise (`d = g + wd * p`,
//! `buf = momentum * buf + d`, `p -= lr * buf`, the same weight decay on every parameter, no
//! per-parameter case), so one step over the fused buffer is each member's step as long as
//! `lr`, momentum and weight decay are equal, which the [`ShapeKey`] requires. The PC centres
//! are each member's own leaf, stepped by its own plain SGD. What remains are float32 rounding
//! differences between a grouped and a plain convolution kernel (and a batched and a plain
//! matmul), which the tests bound.

use std::collections::HashMap;

use ltsweep_domain::{
    ClassScope, CompMode, DatasetConfig, JobSpec, ModelConfig, Sampler, TrainConfig,
};
use tch::{Tensor, nn};

use super::resnet::{FusedResNet, stack_inputs};
use crate::cifar_resnet::HeadKind;
use crate::optim::{self, Sgd};
use crate::train::{
    EpochRun, Observer, Outcome, Quiet, TrainError, Trainer, divergence, with_seed,
};

/// What jobs must share to be trained as one fused array: the data, the network (its
/// classifier and a cosine classifier's scale included), the whole training schedule (batch size, epochs, learning rate, momentum, weight decay, evaluation and
/// checkpoint epochs) and the step structure, i.e. whether a batch takes the Complement Entropy
/// alternate second step. The sampler and post-hoc evaluation may differ (each member draws and
/// evaluates on its own); seeds, plans and loss weights of course do.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeKey {
    dataset: DatasetConfig,
    model: ModelConfig,
    train: TrainConfig,
    head: HeadKind,
    second_step: bool,
}

impl ShapeKey {
    pub fn of(job: &JobSpec) -> Self {
        let mut train = job.train.clone();
        train.sampler = Sampler::Instance;
        train.posthoc_tau.clear();
        Self {
            dataset: job.dataset.clone(),
            model: job.model.clone(),
            train,
            head: HeadKind::of(&job.losses.base),
            second_step: job.plan.comp != ClassScope::None
                && job.losses.comp_mode == CompMode::Alternate,
        }
    }
}

/// The fused model and optimiser of the current members.
struct Fused {
    vs: nn::VarStore,
    model: FusedResNet,
    sgd: Sgd,
}

impl Fused {
    /// Concatenates the members' variables and momentum buffers.
    fn new(members: &[Trainer]) -> Result<Self, TrainError> {
        let first = &members[0];
        let n = members.len() as i64;
        let mut vs = nn::VarStore::new(first.device());
        // Its random initialisation is replaced by the members' weights below, but it draws
        // from libtorch's global generator: under the lock, so that a job initialising in
        // another slot meanwhile keeps weights that are a function of its seed alone.
        let model = with_seed(0, || {
            FusedResNet::new(
                &vs.root(),
                n,
                first.job().model.depth,
                first.channels(),
                first.classes().num_classes() as i64,
                ShapeKey::of(first.job()).head,
            )
        });
        if first.kind() != tch::Kind::Float {
            vs.set_kind(first.kind());
        }
        let vars: Vec<Vec<(String, Tensor)>> = members
            .iter()
            .map(|m| m.vs.variables().into_iter().collect())
            .collect();
        FusedResNet::load_members(&vs, &vars).map_err(TrainError::NotFusable)?;
        let params = optim::trainable_in_name_order(&vs);
        let mut sgd = Sgd::new(
            params,
            first.job().train.momentum,
            first.job().train.weight_decay,
            first.job().train.decay_norm_and_bias,
        );
        let states: Vec<HashMap<String, Tensor>> = members
            .iter()
            .map(|m| m.sgd.state().into_iter().collect())
            .collect();
        let momentum = sgd
            .state()
            .into_iter()
            .map(|(name, _)| {
                let parts: Vec<&Tensor> = states.iter().map(|s| &s[&name]).collect();
                (name, Tensor::cat(&parts, 0))
            })
            .collect();
        sgd.load_state(momentum)?;
        Ok(Self { vs, model, sgd })
    }
}

/// Jobs of one [`ShapeKey`], at the same point of their training, trained as one model.
pub struct FusedTrainer {
    members: Vec<Trainer>,
    /// Each member's place among the trainers given to [`FusedTrainer::new`].
    ids: Vec<usize>,
    /// `None` once every member has ended.
    fused: Option<Fused>,
}

impl FusedTrainer {
    /// Fuses trainers (fresh, or resumed from their checkpoints) of jobs of one shape that have
    /// trained equally far; refuses others, naming the first that differs.
    pub fn new(members: Vec<Trainer>) -> Result<Self, TrainError> {
        let Some(first) = members.first() else {
            return Err(TrainError::NotFusable("no jobs to fuse".to_owned()));
        };
        // The fused model is N CIFAR ResNets; an ImageNet network of this size leaves no GPU
        // idle on its own, and N of them would not fit one.
        if let Some(member) = members.iter().find(|m| !m.job().model.arch.is_cifar()) {
            return Err(TrainError::NotFusable(format!(
                "job {} trains a {}: fused arrays hold CIFAR ResNets only",
                member.job().id,
                member.job().model.arch
            )));
        }
        if let Some(streaming) = members.iter().find(|m| m.is_streaming()) {
            return Err(TrainError::NotFusable(format!(
                "job {} streams list data; such a job trains alone",
                streaming.job().id
            )));
        }
        if let Some(mixing) = members
            .iter()
            .find(|m| !m.job().train.augmentation.mix.is_none())
        {
            return Err(TrainError::NotFusable(format!(
                "job {} mixes its batches; such a job trains alone",
                mixing.job().id
            )));
        }
        let key = ShapeKey::of(first.job());
        for member in &members[1..] {
            if ShapeKey::of(member.job()) != key {
                return Err(TrainError::NotFusable(format!(
                    "job {} differs in shape (data, model, training schedule or step structure) from job {}",
                    member.job().id,
                    first.job().id
                )));
            }
            if member.kind() != first.kind() {
                return Err(TrainError::NotFusable(format!(
                    "job {} trains in {:?} and job {} in {:?}",
                    member.job().id,
                    member.kind(),
                    first.job().id,
                    first.kind()
                )));
            }
            if member.position() != first.position() {
                return Err(TrainError::NotFusable(format!(
                    "job {} is at epoch {} step {:?} and job {} at {:?}",
                    member.job().id,
                    member.position().0,
                    member.position(),
                    first.job().id,
                    first.position()
                )));
            }
        }
        let fused = Fused::new(&members)?;
        Ok(Self {
            ids: (0..members.len()).collect(),
            members,
            fused: Some(fused),
        })
    }

    /// Members still training.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Trains every member until it ends: the last epoch, `stop_after` epochs, its cancel or
    /// preemption (each member's observer is asked on its own, at every step boundary) or its
    /// divergence. `observers[i]` is member i's; the outcomes come in the same order. A member
    /// that ends leaves the array and the rest go on.
    pub fn run(
        &mut self,
        observers: &mut [&mut dyn Observer],
        stop_after: Option<u32>,
    ) -> Result<Vec<Outcome>, TrainError> {
        assert_eq!(observers.len(), self.ids.len(), "one observer per member");
        let mut outcomes: Vec<Option<Outcome>> = (0..observers.len()).map(|_| None).collect();
        while !self.members.is_empty() {
            let epochs = self.members[0].job().train.epochs;
            if self.members[0].epoch() >= epochs {
                self.sync_out()?;
                for (member, id) in self.members.drain(..).zip(self.ids.drain(..)) {
                    if observers[id].wants_model() {
                        observers[id].model(member.model_bytes()?);
                    }
                    outcomes[id] = Some(Outcome::Finished(Box::new(member.result()?)));
                }
                self.fused = None;
                break;
            }
            self.epoch(observers, stop_after, &mut outcomes)?;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("every member ends with an outcome"))
            .collect())
    }

    /// Trains one epoch of every member with no observer and no stop, as a benchmark times it.
    pub fn train_epoch(&mut self) -> Result<(), TrainError> {
        let slots = self.ids.iter().max().map_or(0, |&id| id + 1);
        let mut quiet: Vec<Quiet> = (0..slots).map(|_| Quiet).collect();
        let mut observers: Vec<&mut dyn Observer> =
            quiet.iter_mut().map(|o| o as &mut dyn Observer).collect();
        let mut outcomes: Vec<Option<Outcome>> = (0..slots).map(|_| None).collect();
        self.epoch(&mut observers, None, &mut outcomes)
    }

    /// Trains the current epoch of every member, dropping those that stop on the way.
    fn epoch(
        &mut self,
        observers: &mut [&mut dyn Observer],
        stop_after: Option<u32>,
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), TrainError> {
        let mut runs: Vec<EpochRun> = self.members.iter_mut().map(Trainer::begin_epoch).collect();
        let n = self.members[0].train_len();
        while !self.members.is_empty() && runs[0].from < n {
            self.stop_members(observers, &mut runs, outcomes)?;
            if self.members.is_empty() {
                return Ok(());
            }
            let batches: Option<Vec<(Tensor, Tensor)>> = self
                .members
                .iter()
                .zip(&mut runs)
                .map(|(member, run)| member.next_batch(run))
                .collect::<Result<_, _>>()?;
            // Every member has the same number of images and batch size.
            let Some(batches) = batches else { break };
            self.step(&mut runs, &batches);
        }
        if self.members.is_empty() {
            return Ok(());
        }
        self.end_epoch(runs, observers, stop_after, outcomes)
    }

    /// Drops the members whose observer cancels or preempts them at this step boundary; a
    /// preempted member's checkpoint (with its epoch in progress) goes to its observer first.
    fn stop_members(
        &mut self,
        observers: &mut [&mut dyn Observer],
        runs: &mut Vec<EpochRun>,
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), TrainError> {
        let cancelled: Vec<bool> = self
            .ids
            .iter()
            .map(|&id| observers[id].cancelled())
            .collect();
        let preempted: Vec<bool> = self
            .ids
            .iter()
            .zip(&cancelled)
            .map(|(&id, &c)| !c && observers[id].preempted())
            .collect();
        if !cancelled.iter().chain(&preempted).any(|&s| s) {
            return Ok(());
        }
        self.sync_out()?;
        for k in (0..self.members.len()).rev() {
            if !(cancelled[k] || preempted[k]) {
                continue;
            }
            let run = runs.remove(k);
            let mut member = self.members.remove(k);
            let id = self.ids.remove(k);
            let epoch = member.epoch();
            outcomes[id] = Some(if cancelled[k] {
                Outcome::Cancelled { epoch }
            } else {
                member.pause_epoch(run);
                if epoch > 0 {
                    let bytes = member.checkpoint()?;
                    if let Err(error) = observers[id].checkpoint(epoch, bytes) {
                        tracing::warn!(job = %member.job().id, epoch, %error, "checkpoint not kept");
                    }
                }
                Outcome::Preempted { epoch }
            });
        }
        self.refuse()
    }

    /// One fused step (two in the alternating Comp. mode) on the members' own batches.
    fn step(&mut self, runs: &mut [EpochRun], batches: &[(Tensor, Tensor)]) {
        let fused = self
            .fused
            .as_mut()
            .expect("a fused model while members train");
        let lr = self.members[0].job().train.lr_at(runs[0].epoch);
        let inputs: Vec<Tensor> = batches.iter().map(|(x, _)| x.shallow_clone()).collect();
        let x = stack_inputs(&inputs);
        let (logits, features) = fused.model.forward_t(&x, true);
        let loss = members_loss(&self.members, runs, batches, |i, member, run, y| {
            member.first_loss(&logits.get(i), &features.get(i), y, run)
        });
        let with_pc: Vec<usize> = (0..self.members.len())
            .filter(|&k| runs[k].use_pc)
            .collect();
        let centers: Vec<&Tensor> = with_pc.iter().map(|&k| &self.members[k].centers).collect();
        let grads = fused.sgd.backward_step_with(&loss, lr, &centers);
        for (k, grad) in with_pc.into_iter().zip(grads) {
            self.members[k].step_centers(&grad);
        }
        // The shape key makes this the same for every member.
        if self.members[0].alternates(&runs[0]) {
            let (logits, _) = fused.model.forward_t(&x, true);
            let loss = members_loss(&self.members, runs, batches, |i, member, run, y| {
                member.second_loss(&logits.get(i), y, run)
            });
            fused.sgd.backward_step_with(&loss, lr, &[]);
        }
    }

    /// Closes the epoch of every member: metrics (and evaluation) on the member's own model,
    /// divergence, checkpoints and progress as [`Trainer::run`] does them.
    fn end_epoch(
        &mut self,
        runs: Vec<EpochRun>,
        observers: &mut [&mut dyn Observer],
        stop_after: Option<u32>,
        outcomes: &mut [Option<Outcome>],
    ) -> Result<(), TrainError> {
        self.sync_out()?;
        let mut ended = Vec::new();
        for (k, run) in runs.into_iter().enumerate() {
            let member = &mut self.members[k];
            let id = self.ids[k];
            let metrics = member.end_epoch(run)?;
            if let Some(reason) = divergence(member.job().losses.base.kind(), &metrics) {
                outcomes[id] = Some(Outcome::Diverged {
                    epoch: metrics.epoch,
                    reason,
                });
                ended.push(k);
                continue;
            }
            let epochs = member.job().train.epochs;
            let epoch = member.epoch();
            let stop_here = stop_after == Some(epoch);
            let due = epoch.is_multiple_of(member.job().train.checkpoint_every);
            if epoch < epochs && (due || stop_here) {
                let bytes = member.checkpoint()?;
                if let Err(error) = observers[id].checkpoint(epoch, bytes) {
                    tracing::warn!(job = %member.job().id, epoch, %error, "checkpoint not kept");
                }
            }
            observers[id].epoch(&metrics);
            if stop_here && epoch < epochs {
                outcomes[id] = Some(Outcome::Stopped { epoch });
                ended.push(k);
            }
        }
        if ended.is_empty() {
            return Ok(());
        }
        for &k in ended.iter().rev() {
            self.members.remove(k);
            self.ids.remove(k);
        }
        self.refuse()
    }

    /// Rebuilds the fused model from the members left, after some left the array.
    ///
    /// Re-fusing rather than masking the departed out: a masked member would still cost its
    /// share of every kernel for the rest of the run, and its slice would keep moving under
    /// momentum and weight decay; re-fusing is a copy of the parameters, once per departure,
    /// and exact, since the members hold their latest state after [`FusedTrainer::sync_out`].
    fn refuse(&mut self) -> Result<(), TrainError> {
        self.fused = if self.members.is_empty() {
            None
        } else {
            Some(Fused::new(&self.members)?)
        };
        Ok(())
    }

    /// Copies the fused variables and momentum buffers into each member's own model and
    /// optimiser, so that its evaluation, checkpoint and result are those of a job trained
    /// alone.
    fn sync_out(&mut self) -> Result<(), TrainError> {
        let Some(fused) = &self.fused else {
            return Ok(());
        };
        let n = self.members.len() as i64;
        let fused_vars: Vec<(String, Tensor)> = fused.vs.variables().into_iter().collect();
        let fused_momentum = fused.sgd.state();
        for (i, member) in self.members.iter_mut().enumerate() {
            let i = i as i64;
            let own = member.vs.variables();
            tch::no_grad(|| -> Result<(), TrainError> {
                for (name, slice) in FusedResNet::member_slices(&fused_vars, n, i) {
                    let mut variable = own[&name].shallow_clone();
                    variable.f_copy_(&slice)?;
                }
                Ok(())
            })?;
            let momentum = FusedResNet::member_slices(&fused_momentum, n, i)
                .into_iter()
                .collect();
            member.sgd.load_state(momentum)?;
        }
        Ok(())
    }
}

/// The sum of the members' losses, member `i`'s computed by `loss` on its own slice `i` of the
/// fused output: the sum's gradient in that slice is member `i`'s own.
fn members_loss(
    members: &[Trainer],
    runs: &mut [EpochRun],
    batches: &[(Tensor, Tensor)],
    mut loss: impl FnMut(i64, &Trainer, &mut EpochRun, &Tensor) -> Tensor,
) -> Tensor {
    members
        .iter()
        .zip(runs.iter_mut())
        .zip(batches)
        .enumerate()
        .map(|(i, ((member, run), (_, y)))| loss(i as i64, member, run, y))
        .reduce(|a, b| a + b)
        .expect("a fused model has members")
}
