//! ltsweep's worker: the trainer that runs one job with tch (libtorch), and the runtime that
//! pulls jobs from a coordinator.
//!
//! - The data sets and the JPEG pipeline are `ltsweep_data`'s, plain Rust without libtorch;
//!   [`loader`]: the threads that stream list data to the trainer in batches, as tensors.
//! - [`cifar_resnet`]: the CIFAR ResNet; [`imagenet`]: torchvision's ImageNet ResNets; [`network`]:
//!   the one a job names; [`pretrained`]: initial weights from a safetensors file;
//!   [`losses`]: CE, Complement Entropy, Prototype Conformity;
//!   [`baselines`]: the long-tail base losses (focal, class-balanced, logit-adjusted, LDAM-DRW)
//!   and the samplers;
//!   [`optim`]: momentum SGD with reachable state; [`augment`]: the on-device input pipeline.
//! - [`train`]: the training loop and exact resume; [`checkpoint_file`]: a checkpoint as
//!   bytes; [`metrics`]: test metrics; [`fused`]: several jobs of one shape trained as one
//!   model; [`stage2`]: a stage-1 model's classifier re-balanced (cRT, LWS, τ-norm, NCM,
//!   post-hoc adjustment); [`model_file`]: a job's final weights as safetensors.
//! - [`runtime`]: the worker process: pull jobs from a coordinator, train, report;
//!   [`preempt`]: stop signals and the shutdown they ask for; `placement`: the Slurm job a
//!   worker runs in, and its readiness file.
//!
//! ```no_run
//! use ltsweep_domain::SweepSpec;
//! use ltsweep_worker::train::{Outcome, Quiet, Trainer};
//!
//! let spec = SweepSpec::parse(
//!     "name = \"demo\"\nseeds = [0]\n[dataset]\nkind = \"synthetic\"\n[train]\nepochs = 2",
//! )?;
//! let job = &spec.jobs()[0];
//! let data = ltsweep_data::longtail::prepare(&job.dataset, std::path::Path::new("."))?;
//! let mut trainer = Trainer::new(job, &data, tch::Device::Cpu);
//! if let Outcome::Finished(result) = trainer.run(&mut Quiet, None)? {
//!     println!("top-1: {:?}", result.accuracy.acc_all);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod alloc;
pub mod augment;
mod backoff;
pub mod baselines;
pub mod checkpoint_file;
pub mod cifar_resnet;
pub mod fused;
pub mod imagenet;
pub mod loader;
pub mod losses;
pub mod metrics;
pub mod model_file;
pub mod network;
pub mod onednn;
pub mod optim;
pub mod pause;
mod placement;
pub mod preempt;
pub mod pretrained;
pub mod runtime;
pub mod stage2;
pub mod train;
