//! The trainer's tests, in one binary so that libtorch is linked once: fused arrays equal to
//! each job alone, the ImageNet networks against torchvision, the JPEG pipeline against Pillow
//! and torchvision, list data (counts, bad input, exact streamed resume), the losses against
//! their reference vectors, preemption at a step boundary, and whole training runs.

mod fused;
mod imagenet;
mod jpeg_pipeline;
mod list_data;
mod loss_vectors;
mod photos;
mod preemption;
mod support;
mod training;
