//! Fused job arrays: several jobs of the same shape trained as one model on one device, so that
//! a small network on a big GPU does N jobs' work per kernel launch instead of one.
//!
//! - [`resnet`]: N ResNets as one (grouped convolutions, per-member BatchNorm channels, a batched
//!   matmul classifier) and the lossless conversion to and from each member's own variables.
//! - [`trainer`]: the members' own batches, loss plans, PC centres and optimiser state around
//!   one fused forward and backward pass; each member's checkpoint and result are the ones the
//!   job would have trained alone, so a job may resume fused or alone.

pub mod resnet;
pub mod trainer;

pub use resnet::{FusedResNet, stack_inputs};
pub use trainer::{FusedTrainer, ShapeKey};
