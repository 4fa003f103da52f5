//! The trainer's tests, in one binary so that libtorch is linked once: fused arrays equal to
//! each job alone, the ImageNet networks against torchvision, the losses against their
//! reference vectors, preemption at a step boundary, and whole training runs.

mod fused;
mod imagenet;
mod loss_vectors;
mod preemption;
mod training;
