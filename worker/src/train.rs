//! One training job, start to finish: the paper's recipe on a long-tailed data set.
//!
//! Each epoch: a shuffle and augmentation draws derived from `(seed, epoch)`; batches gathered,
//! cropped, flipped and normalised on the device; a cross-entropy step (plus PC, plus Comp. when
//! summed) and, in the alternating mode, a Complement Entropy step on the same batch; momentum
//! SGD for the network, plain SGD for the PC centres. The first `pretrain_ce_epochs` epochs are
//! cross entropy alone. The test set (and the validation set, for a job that holds one out) is
//! evaluated at the chosen epochs and at the end.
//!
//! The batches come from one of two sources behind the same steps: a data set held on the
//! device as one uint8 tensor (CIFAR, MNIST-style, synthetic), cropped and flipped there in
//! batched ops ([`crate::augment`]); or list data streamed from JPEG files by loader threads
//! ([`crate::loader`]), decoded, augmented and normalised on the CPU. Both draw an epoch's order
//! from `(seed, epoch)` and each image's augmentation from the seed too, so both resume exactly.
//!
//! # Against PyTorch's CIFAR ResNet recipe
//!
//! The recipe of LDAM-DRW's code (Cao et al. 2019), which the long-tail literature reuses, item
//! by item:
//! - the same: Kaiming-normal convolution and linear weights, PyTorch's linear bias init,
//!   BatchNorm scale 1 / shift 0 / momentum 0.1 / eps 1e-5 (see [`crate::cifar_resnet`]); SGD with
//!   momentum 0.9, dampening 0, no Nesterov, weight decay 2e-4 on every parameter (BatchNorm and
//!   biases included, as `SGD(model.parameters(), weight_decay=...)` does); the learning rate's
//!   linear warm-up `lr * e / 5` over the first 5 epochs (1-based e) and its ×0.01 steps after
//!   epochs 160 and 180 of 200 (scaled to the epoch count); a zero-padded random crop and a
//!   horizontal flip; a fresh shuffle every epoch; the test set in evaluation mode.
//! - different, on purpose: normalisation uses the long-tailed training set's own per-channel
//!   mean and standard deviation, not CIFAR-10's constants (the same for CIFAR, and right for
//!   the other data sets); the crop pads by an eighth of the image side (4 pixels at 32, 3 at
//!   Fashion-MNIST's 28); a last batch of a single image is skipped (BatchNorm cannot train on
//!   it); the random draws come from the job's seed (`ltsweep_data::rng`), not from PyTorch's
//!   generator, so the same seed does not give PyTorch's exact numbers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ltsweep_domain::{
    BaseKind, ClassScope, EpochMetrics, GroupAccuracy, JobResult, JobSpec, PosthocAccuracy,
};
use ltsweep_proto::client::Retry;
use tch::{Device, Kind, Tensor, nn};

use crate::augment::{Augment, BatchMix, EpochDraws, ExtraDraws, Extras, Normalize};
use crate::baselines::BaseObjective;
use crate::checkpoint_file::{self, CheckpointError, CheckpointMeta, PartialEpoch};
use crate::cifar_resnet::HeadKind;
use crate::loader::{Feed, Loader};
use crate::metrics::Confusion;
use crate::model_file;
use crate::network::Network;
use crate::optim::{self, Sgd};
use crate::pretrained::{self, InitError};
use ltsweep_data::{ClassInfo, DataError, FileData, ImageSet, LongTailData};

mod epoch;
mod evaluate;
mod stage2_input;

/// libtorch's generator is global: initialising two models at once in one process would
/// interleave their draws. Holding this lock while seeding and initialising keeps each job's
/// initial weights a function of its seed alone.
static INIT: Mutex<()> = Mutex::new(());

/// Runs `draw` with libtorch's global generator seeded with `seed`, holding `INIT`: what
/// `draw` initialises is a function of the seed alone, whatever else the process draws (a
/// test that makes a network of its own seeds it here too).
pub fn with_seed<T>(seed: i64, draw: impl FnOnce() -> T) -> T {
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed);
    draw()
}

/// Test images per forward pass when evaluating.
const EVAL_BATCH: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("checkpoint of job {found} cannot resume job {expected}")]
    WrongCheckpoint { expected: String, found: String },
    #[error("checkpoint does not match the model: {0}")]
    CheckpointMismatch(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("cannot fuse these jobs: {0}")]
    NotFusable(String),
    /// Momentum buffers (a checkpoint's, or a fused array's members') that do not match the
    /// parameters.
    #[error("momentum does not match the model: {0}")]
    Momentum(#[from] optim::MomentumError),
    /// An observer could not keep a checkpoint (its file cannot be written, the task that
    /// uploads it has ended); training goes on without it.
    #[error("the checkpoint was not kept: {0}")]
    CheckpointNotKept(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An image of list data that cannot be used (or read); the message names the file and
    /// its list line.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The job's `model.init` weights cannot be loaded; another attempt would fail the same.
    #[error(transparent)]
    Init(#[from] InitError),
    #[error("model file: {0}")]
    ModelFile(#[from] model_file::ModelFileError),
    /// A stage-2 method that cannot act on this job's network; another attempt would fail the
    /// same.
    #[error("{0}")]
    Unsupported(String),
}

impl TrainError {
    /// Whether another attempt could succeed: not for data that is broken (a bad image, a bad
    /// list), since every attempt reads the same.
    pub fn retry(&self) -> Retry {
        match self {
            TrainError::Data(DataError::Io { .. }) => Retry::Transient,
            TrainError::Data(_) | TrainError::Init(_) | TrainError::Unsupported(_) => Retry::Never,
            _ => Retry::Transient,
        }
    }
}

/// How a call to [`Trainer::run`] ended.
#[derive(Debug)]
pub enum Outcome {
    Finished(Box<JobResult>),
    /// Stopped on request after this many epochs, with a checkpoint written.
    Stopped {
        epoch: u32,
    },
    /// The cancel flag was raised; the epoch in progress was abandoned.
    Cancelled {
        epoch: u32,
    },
    /// Preempted: stopped at a step boundary after `epoch` whole epochs, and the checkpoint
    /// (holding the epoch in progress) went to the observer; none when no epoch had finished,
    /// since checkpoints count finished epochs from 1.
    Preempted {
        epoch: u32,
    },
    /// A loss became NaN or infinite during the given (1-based) epoch.
    Diverged {
        epoch: u32,
        reason: String,
    },
}

/// What the caller hears while a job trains.
pub trait Observer {
    /// After every epoch, with the test metrics at evaluation epochs.
    fn epoch(&mut self, _metrics: &EpochMetrics) {}
    /// Every `checkpoint_every` epochs; a failure is logged and training goes on.
    fn checkpoint(&mut self, _epoch: u32, _bytes: Vec<u8>) -> Result<(), TrainError> {
        Ok(())
    }
    /// Checked between batches.
    fn cancelled(&self) -> bool {
        false
    }
    /// Checked between batches: stop at this step boundary, with a checkpoint.
    fn preempted(&self) -> bool {
        false
    }
    /// Whether the job's final weights are wanted (a stage-2 job needs them, or its sweep
    /// keeps models): they then go to [`Observer::model`] before the job finishes.
    fn wants_model(&self) -> bool {
        false
    }
    /// The finished job's final weights, as a safetensors file (see [`crate::model_file`]).
    fn model(&mut self, _bytes: Vec<u8>) {}
}

/// How an epoch's training ended.
enum EpochEnd {
    /// Boxed: an epoch's metrics are large beside the other outcomes.
    Done(Box<EpochMetrics>),
    Cancelled,
    /// Stopped between two steps; the trainer's `partial` holds how far it got.
    Preempted,
}

/// An observer that does nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// The tensors of a split on the device.
pub(crate) struct DeviceSet {
    images: Tensor,
    labels: Tensor,
}

/// Where a trainer's batches come from.
pub(crate) enum Source {
    /// The whole data set on the device, augmented there.
    Memory(Box<Memory>),
    /// List data, streamed by loader threads; the job's policy and Cutout, if any, applied to
    /// its batches on the device.
    Stream(Loader, Option<Box<StreamExtras>>),
}

/// A list-data job's `[augment]` on the device: the policy needs the batches' uint8 values
/// back from the loader's normalised floats, and normalises them again after.
pub(crate) struct StreamExtras {
    extras: Extras,
    normalize: Normalize,
}

/// A data set held on the device.
pub(crate) struct Memory {
    train: DeviceSet,
    /// Evaluated with the test set, at the same epochs only: the training step never waits
    /// for it.
    val: Option<DeviceSet>,
    test: DeviceSet,
    normalize: Normalize,
    augment: Option<Augment>,
    /// The job's policy and Cutout, if any.
    extras: Option<Extras>,
}

/// An epoch's input, from the trainer's source.
enum EpochInput {
    /// The epoch's order and augmentation draws on the device.
    Memory {
        order: Tensor,
        draws: Option<EpochDraws>,
        extra_draws: Option<ExtraDraws>,
    },
    /// The loader's batches from the epoch's position on, and the epoch's policy and Cutout
    /// draws when the job has them.
    Stream(Feed, Option<ExtraDraws>),
}

impl DeviceSet {
    fn new(set: &ImageSet, device: Device) -> Self {
        let shape = [
            set.len() as i64,
            set.channels as i64,
            set.height as i64,
            set.width as i64,
        ];
        Self {
            images: Tensor::from_slice(&set.pixels)
                .view(shape)
                .to_device(device),
            labels: Tensor::from_slice(&set.labels).to_device(device),
        }
    }

    pub(crate) fn len(&self) -> i64 {
        self.labels.size()[0]
    }
}

/// Loss sums of an epoch, kept on the device so that no batch waits for a host read.
pub(crate) struct LossSums {
    ce: Tensor,
    comp: Tensor,
    pc: Tensor,
    batches: u32,
}

/// An epoch in progress: its order and draws, how far it got, its loss sums.
pub(crate) struct EpochRun {
    /// 0-based.
    pub(crate) epoch: u32,
    pub(crate) use_pc: bool,
    pub(crate) use_comp: bool,
    input: EpochInput,
    sums: LossSums,
    /// The next batch's first position in the order.
    pub(crate) from: i64,
    seen: i64,
    earlier_seconds: f64,
    start: Instant,
}

/// One job's training. The fused trainer (`crate::fused`) and stage 2 (`crate::stage2`) work on
/// its network directly: the weights (`vs`, `model`), the optimiser's state (`sgd`) and the PC
/// centres (`centers`) are theirs to read and, for the fused trainer, to gather and scatter;
/// everything else they read through its methods.
pub struct Trainer {
    job: JobSpec,
    device: Device,
    pub(crate) vs: nn::VarStore,
    pub(crate) model: Network,
    pub(crate) sgd: Sgd,
    pub(crate) centers: Tensor,
    source: Source,
    /// The training labels on the host, for the sampler.
    train_labels: Vec<i64>,
    /// Input channels of the network.
    channels: i64,
    base: BaseObjective,
    /// The job's batch mixing, if any.
    mix: Option<BatchMix>,
    comp_classes: Tensor,
    pc_classes: Tensor,
    classes: ClassInfo,
    /// Epochs finished.
    epoch: u32,
    history: Vec<EpochMetrics>,
    train_seconds: f64,
    /// The epoch in progress, stopped by a preemption (and saved) or read from a checkpoint
    /// (and continued by the next epoch trained).
    partial: Option<PartialEpoch>,
    /// The kind of the network and its inputs.
    kind: Kind,
}

impl Trainer {
    /// The job's trainer with freshly drawn weights; [`Trainer::start`] also loads the job's
    /// `model.init` weights.
    pub fn new(job: &JobSpec, data: &LongTailData, device: Device) -> Self {
        Self::new_in_kind(job, data, device, Kind::Float)
    }

    /// The job's trainer as a worker starts it: fresh weights, then the job's `model.init`
    /// file (relative to `data_root`) loaded over them, if it names one.
    pub fn start(
        job: &JobSpec,
        data: &LongTailData,
        device: Device,
        data_root: &Path,
    ) -> Result<Self, TrainError> {
        let trainer = Self::new(job, data, device);
        trainer.load_init(data_root)?;
        Ok(trainer)
    }

    /// Loads the job's `model.init` weights (relative to `data_root`) over the fresh ones, if
    /// it names a file; a resumed job needs none, its checkpoint replaces every variable.
    pub fn load_init(&self, data_root: &Path) -> Result<(), TrainError> {
        let Some(init) = &self.job.model.init else {
            return Ok(());
        };
        let root = ltsweep_data::DataRoot::new(data_root);
        let loaded = pretrained::load(&self.vs, &root, init, &self.job.model.init_skip)?;
        tracing::info!(
            job = %self.job.id,
            file = %data_root.join(init).display(),
            loaded = loaded.loaded,
            skipped = ?loaded.skipped,
            "initial weights loaded; the skipped variables keep the seed's draw"
        );
        Ok(())
    }

    /// [`Trainer::new`] with the network, the PC centres and the inputs in `kind` (float32 is
    /// the trainer's; float64 is for tests, where it separates what a computation does from
    /// float32 rounding, as the fused arrays' equality tests need). The initial weights are
    /// float32's, converted.
    pub fn new_in_kind(job: &JobSpec, data: &LongTailData, device: Device, kind: Kind) -> Self {
        let train_set = &data.train;
        let source = Source::Memory(Box::new(Memory {
            train: DeviceSet::new(train_set, device),
            val: data.val.as_ref().map(|val| DeviceSet::new(val, device)),
            test: DeviceSet::new(&data.test, device),
            normalize: Normalize::fit(
                &train_set.pixels,
                train_set.channels,
                train_set.height * train_set.width,
                device,
            ),
            augment: job
                .train
                .augment
                .then(|| Augment::new(train_set.height as i64, train_set.width as i64, device)),
            extras: Extras::new(
                &job.train.augmentation,
                train_set.height as i64,
                train_set.width as i64,
                device,
            ),
        }));
        Self::build(
            job,
            source,
            train_set.labels.clone(),
            train_set.channels as i64,
            &data.classes,
            device,
            kind,
        )
    }

    /// A trainer of list data: batches streamed from the files by `loader_threads` threads.
    pub fn streaming(
        job: &JobSpec,
        data: Arc<FileData>,
        device: Device,
        loader_threads: usize,
    ) -> Self {
        let labels = data.train.labels();
        let classes = data.classes.clone();
        let crop = i64::from(data.config.crop_size);
        let extras = Extras::new(&job.train.augmentation, crop, crop, device).map(|extras| {
            Box::new(StreamExtras {
                extras,
                normalize: Normalize::with(&data.config.normalization, device),
            })
        });
        let source = Source::Stream(Loader::new(data, loader_threads, device), extras);
        Self::build(job, source, labels, 3, &classes, device, Kind::Float)
    }

    fn build(
        job: &JobSpec,
        source: Source,
        train_labels: Vec<i64>,
        channels: i64,
        class_info: &ClassInfo,
        device: Device,
        kind: Kind,
    ) -> Self {
        let classes = class_info.num_classes() as i64;
        let mut vs = nn::VarStore::new(device);
        let (model, centers) = with_seed(job.seed as i64, || {
            let model = Network::new(&vs.root(), job, channels, classes);
            let centers = Tensor::randn([classes, model.features()], (Kind::Float, device))
                .set_requires_grad(true);
            (model, centers)
        });
        // Before the optimiser takes the parameters into its buffer.
        let centers = if kind == Kind::Float {
            centers
        } else {
            vs.set_kind(kind);
            centers.detach().to_kind(kind).set_requires_grad(true)
        };
        let params = optim::trainable_in_name_order(&vs);
        let sgd = Sgd::new(
            params,
            job.train.momentum,
            job.train.weight_decay,
            job.train.decay_norm_and_bias,
        );
        let scope_mask = |scope: ClassScope| {
            let mask: Vec<bool> = (0..class_info.num_classes())
                .map(|c| scope.includes(class_info.is_head(c)))
                .collect();
            Tensor::from_slice(&mask).to_device(device)
        };
        Self {
            job: job.clone(),
            device,
            model,
            sgd,
            centers,
            source,
            train_labels,
            channels,
            base: BaseObjective::new(job.losses.base, &class_info.train_counts, device),
            mix: BatchMix::new(job.train.augmentation.mix, &class_info.train_counts),
            comp_classes: scope_mask(job.plan.comp),
            pc_classes: scope_mask(job.plan.pc),
            classes: class_info.clone(),
            epoch: 0,
            history: Vec::new(),
            train_seconds: 0.0,
            partial: None,
            kind,
            vs,
        }
    }

    /// Epochs finished so far.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Epochs finished and images of the next one already trained (a checkpoint taken midway).
    pub fn position(&self) -> (u32, i64) {
        (self.epoch, self.partial.as_ref().map_or(0, |p| p.from))
    }

    /// The job this trainer trains.
    pub fn job(&self) -> &JobSpec {
        &self.job
    }

    /// The device it trains on.
    pub(crate) fn device(&self) -> Device {
        self.device
    }

    /// The kind of the network and its inputs (float32, or float64 in gradient checks).
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// The classes and their groups.
    pub(crate) fn classes(&self) -> &ClassInfo {
        &self.classes
    }

    /// Input channels of the network.
    pub(crate) fn channels(&self) -> i64 {
        self.channels
    }

    /// The training labels on the host, in the data set's order.
    pub(crate) fn train_labels(&self) -> &[i64] {
        &self.train_labels
    }

    /// Training images an epoch steps through.
    pub(crate) fn train_len(&self) -> i64 {
        self.train_labels.len() as i64
    }

    /// Whether the batches are streamed from files (such a job trains alone, never fused).
    pub fn is_streaming(&self) -> bool {
        matches!(self.source, Source::Stream(..))
    }

    /// Continues from a checkpoint of this job.
    pub fn resume(&mut self, bytes: &[u8]) -> Result<(), TrainError> {
        let (meta, tensors) = checkpoint_file::decode(bytes, self.device)?;
        if meta.job_id != self.job.id.as_str() {
            return Err(TrainError::WrongCheckpoint {
                expected: self.job.id.to_string(),
                found: meta.job_id,
            });
        }
        let mut model = HashMap::new();
        let mut momentum = HashMap::new();
        let mut centers = None;
        for (name, tensor) in tensors {
            if let Some(rest) = name.strip_prefix("model/") {
                model.insert(rest.to_owned(), tensor);
            } else if let Some(rest) = name.strip_prefix("momentum/") {
                momentum.insert(rest.to_owned(), tensor);
            } else if name == "pc_centers" {
                centers = Some(tensor);
            }
        }
        tch::no_grad(|| -> Result<(), TrainError> {
            for (name, mut variable) in self.vs.variables() {
                let saved = model.remove(&name).ok_or_else(|| {
                    TrainError::CheckpointMismatch(format!("no weights for {name}"))
                })?;
                variable.f_copy_(&saved)?;
            }
            let saved = centers
                .ok_or_else(|| TrainError::CheckpointMismatch("no PC centres".to_owned()))?;
            self.centers.f_copy_(&saved)?;
            Ok(())
        })?;
        self.sgd.load_state(momentum)?;
        self.epoch = meta.epoch;
        self.history = meta.history;
        self.train_seconds = meta.train_seconds;
        self.partial = meta.partial;
        Ok(())
    }

    /// The whole training state as bytes.
    pub fn checkpoint(&self) -> Result<Vec<u8>, TrainError> {
        let mut tensors: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(name, t)| (format!("model/{name}"), t))
            .collect();
        tensors.extend(
            self.sgd
                .state()
                .into_iter()
                .map(|(name, t)| (format!("momentum/{name}"), t)),
        );
        tensors.push(("pc_centers".to_owned(), self.centers.shallow_clone()));
        let meta = CheckpointMeta {
            job_id: self.job.id.to_string(),
            epoch: self.epoch,
            history: self.history.clone(),
            train_seconds: self.train_seconds,
            partial: self.partial.clone(),
        };
        Ok(checkpoint_file::encode(&meta, &tensors)?)
    }

    /// Trains until the last epoch, `stop_after` epochs, a cancel or a divergence.
    pub fn run(
        &mut self,
        observer: &mut dyn Observer,
        stop_after: Option<u32>,
    ) -> Result<Outcome, TrainError> {
        let epochs = self.job.train.epochs;
        while self.epoch < epochs {
            let cancelled = || observer.cancelled();
            let preempted = || observer.preempted();
            let metrics = match self.train_epoch_until(&cancelled, &preempted)? {
                EpochEnd::Done(metrics) => *metrics,
                EpochEnd::Cancelled => return Ok(Outcome::Cancelled { epoch: self.epoch }),
                EpochEnd::Preempted => {
                    if self.epoch > 0 {
                        let bytes = self.checkpoint()?;
                        if let Err(error) = observer.checkpoint(self.epoch, bytes) {
                            tracing::warn!(job = %self.job.id, epoch = self.epoch, %error, "checkpoint not kept");
                        }
                    }
                    return Ok(Outcome::Preempted { epoch: self.epoch });
                }
            };
            if let Some(reason) = divergence(self.job.losses.base.kind(), &metrics) {
                return Ok(Outcome::Diverged {
                    epoch: metrics.epoch,
                    reason,
                });
            }
            let stop_here = stop_after == Some(self.epoch);
            let due = self.epoch.is_multiple_of(self.job.train.checkpoint_every);
            // The checkpoint goes out before the epoch's progress, so that whoever tracks
            // progress never hears of an epoch later than the checkpoints it could have.
            if self.epoch < epochs && (due || stop_here) {
                let bytes = self.checkpoint()?;
                if let Err(error) = observer.checkpoint(self.epoch, bytes) {
                    tracing::warn!(job = %self.job.id, epoch = self.epoch, %error, "checkpoint not kept");
                }
            }
            observer.epoch(&metrics);
            if stop_here && self.epoch < epochs {
                return Ok(Outcome::Stopped { epoch: self.epoch });
            }
        }
        if observer.wants_model() {
            observer.model(self.model_bytes()?);
        }
        Ok(Outcome::Finished(Box::new(self.result()?)))
    }

    /// The network's weights and BatchNorm statistics as a safetensors file, named as its
    /// variables, with the classifier in the metadata.
    pub fn model_bytes(&self) -> Result<Vec<u8>, TrainError> {
        let mut tensors: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let mut metadata = HashMap::from([(model_file::JOB.to_owned(), self.job.id.to_string())]);
        match HeadKind::of(&self.job.losses.base) {
            HeadKind::Linear => {
                metadata.insert(model_file::CLASSIFIER.to_owned(), "linear".to_owned());
            }
            HeadKind::Cosine { scale } => {
                metadata.insert(model_file::CLASSIFIER.to_owned(), "cosine".to_owned());
                metadata.insert(model_file::SCALE.to_owned(), scale.to_string());
            }
        }
        model_file::encode(&tensors, metadata).map_err(TrainError::ModelFile)
    }

    /// Takes a finished job's weights (from [`Trainer::model_bytes`] of a job with this
    /// network) as its own: every variable must be there, in its shape.
    pub fn load_model(&mut self, bytes: &[u8]) -> Result<(), TrainError> {
        let (tensors, _) = model_file::decode(bytes).map_err(TrainError::ModelFile)?;
        let mut saved: HashMap<String, Tensor> = tensors.into_iter().collect();
        tch::no_grad(|| -> Result<(), TrainError> {
            for (name, mut variable) in self.vs.variables() {
                let tensor = saved.remove(&name).ok_or_else(|| {
                    TrainError::CheckpointMismatch(format!("the model has no tensor {name}"))
                })?;
                if tensor.size() != variable.size() {
                    return Err(TrainError::CheckpointMismatch(format!(
                        "the model's {name} is {:?}, the network's {:?}",
                        tensor.size(),
                        variable.size()
                    )));
                }
                variable.f_copy_(&tensor)?;
            }
            Ok(())
        })?;
        if let Some(name) = saved.keys().next() {
            return Err(TrainError::CheckpointMismatch(format!(
                "the model has a tensor the network lacks: {name}"
            )));
        }
        Ok(())
    }

    pub(crate) fn result(&self) -> Result<JobResult, TrainError> {
        let taus = &self.job.train.posthoc_tau;
        let all: Vec<f64> = std::iter::once(0.0).chain(taus.iter().copied()).collect();
        let mut confusions = self.evaluate_adjusted(&all)?;
        let confusion = confusions.remove(0);
        let val = self.evaluate_val(&all)?;
        let val_at = |i: usize| val.as_ref().map(|val| val[i].clone());
        let mut result = self.result_of(
            confusion,
            val_at(0),
            self.history.clone(),
            self.train_seconds,
        );
        // The post-hoc taus of a job of an earlier version (`[eval] posthoc_tau`, now the
        // stage-2 method `posthoc_la`).
        result.posthoc = taus
            .iter()
            .zip(confusions)
            .enumerate()
            .map(|(i, (&tau, confusion))| PosthocAccuracy {
                tau,
                accuracy: confusion.group_accuracy(&self.classes),
                val_accuracy: val_at(i + 1),
            })
            .collect();
        Ok(result)
    }

    /// The job's result with this test-set confusion matrix, validation accuracy, epochs and
    /// training time.
    pub(crate) fn result_of(
        &self,
        confusion: Confusion,
        val_accuracy: Option<GroupAccuracy>,
        epochs: Vec<EpochMetrics>,
        train_seconds: f64,
    ) -> JobResult {
        JobResult {
            job_id: self.job.id.clone(),
            sweep_id: self.job.sweep.clone(),
            spec: self.job.clone(),
            accuracy: confusion.group_accuracy(&self.classes),
            per_class: confusion.per_class(&self.classes),
            epochs,
            num_classes: self.classes.num_classes() as u32,
            train_images: self.train_len() as u32,
            confusion: confusion.counts,
            train_seconds,
            device: device_name(self.device),
            worker_id: None,
            attempts: 0,
            epochs_retrained: 0,
            posthoc: Vec::new(),
            val_accuracy,
        }
    }
}

/// Why an epoch's losses show the run diverged, if they do; the base loss by its name.
pub(crate) fn divergence(base: BaseKind, metrics: &EpochMetrics) -> Option<String> {
    let base = format!("{base} base");
    [
        (base.as_str(), metrics.loss_base),
        ("Complement Entropy", metrics.loss_comp),
        ("Prototype Conformity", metrics.loss_pc),
    ]
    .into_iter()
    .find(|(_, value)| !value.is_finite())
    .map(|(name, value)| {
        format!(
            "the {name} loss became {value} in epoch {} (learning rate {})",
            metrics.epoch, metrics.lr
        )
    })
}

/// `cpu` or `cuda:N`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        Device::Mps => "mps".to_owned(),
        Device::Vulkan => "vulkan".to_owned(),
        Device::Cpu => "cpu".to_owned(),
    }
}

/// Parses `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(text: &str) -> Result<Device, String> {
    match text {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => text
            .strip_prefix("cuda:")
            .and_then(|i| i.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("`{text}` is not a device (cpu, cuda or cuda:N)")),
    }
}
