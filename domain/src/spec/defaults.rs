//! The value of each setting a spec leaves out.

use super::Axis;
use crate::baseline::{BaseKind, Choice, Sampler};
use crate::job::CompMode;
use crate::stage2::Stage2Kind;

pub fn base() -> Choice<BaseKind> {
    Choice::one(BaseKind::Ce)
}
pub fn sampler() -> Choice<Sampler> {
    Choice::one(Sampler::Instance)
}
pub fn focal_gamma() -> Axis<f64> {
    Axis::One(1.0)
}
pub fn cb_beta() -> Axis<f64> {
    Axis::One(0.9999)
}
pub fn ldam_max_margin() -> Axis<f64> {
    Axis::One(0.5)
}
pub fn ldam_s() -> Axis<f64> {
    Axis::One(30.0)
}

pub fn zero() -> Axis<u32> {
    Axis::One(0)
}
pub fn depth() -> Axis<u32> {
    Axis::One(20)
}
pub fn epochs() -> Axis<u32> {
    Axis::One(200)
}
pub fn batch_size() -> Axis<u32> {
    Axis::One(128)
}
pub fn lr() -> Axis<f64> {
    Axis::One(0.1)
}
pub fn momentum() -> Axis<f64> {
    Axis::One(0.9)
}
pub fn weight_decay() -> Axis<f64> {
    Axis::One(2e-4)
}
pub fn lr_decay_factor() -> Axis<f64> {
    Axis::One(0.01)
}
pub fn checkpoint_every() -> Axis<u32> {
    Axis::One(10)
}
pub fn yes() -> bool {
    true
}
pub fn one() -> Axis<f64> {
    Axis::One(1.0)
}
pub fn comp_mode() -> CompMode {
    CompMode::Alternate
}
pub fn pc_weight() -> Axis<f64> {
    Axis::One(0.01)
}
pub fn pc_push_weight() -> Axis<f64> {
    Axis::One(1e-4)
}
pub fn pc_center_lr() -> Axis<f64> {
    Axis::One(0.5)
}
pub fn stage2() -> Choice<Stage2Kind> {
    Choice::one(Stage2Kind::None)
}
pub fn stage2_epochs() -> Axis<u32> {
    Axis::One(10)
}
/// A stage-2 option at its default (Kang et al.'s).
pub fn first<T: Copy + Default>() -> Choice<T> {
    Choice::one(T::default())
}
pub fn max_attempts() -> u32 {
    3
}
