//! The trainer's tests, in one binary so that libtorch is linked once: fused arrays equal to
//! each job alone, the ImageNet networks against torchvision, the JPEG pipeline against Pillow
//! and torchvision, list data (counts, bad input, exact streamed resume), the losses against
//! their reference vectors, preemption at a step boundary, whole training runs, weight
//! balancing's loss and MaxNorm against theirs, and MiSLAS's label-aware smoothing against
//! theirs.
//!
//! The runner is the root's (`tests/it/runner.rs`), so that this binary too ends by naming its
//! slowest tests: a test is a plain `fn name()` registered right above it with [`register!`].

mod augmented;
mod fused;
mod imagenet;
mod jpeg_pipeline;
mod list_data;
mod loss_vectors;
mod mislas;
mod mixed_vectors;
mod photos;
mod policy_ops;
mod preemption;
#[path = "../../../tests/it/runner.rs"]
mod runner;
mod support;
mod training;
mod weight_balancing;

use libtest_mimic::Trial;

/// One test: its name (`module::function`) and its body.
pub struct Test {
    pub name: &'static str,
    pub run: fn(),
}

inventory::collect!(Test);

/// Registers `fn $name()` as a test.
macro_rules! register {
    ($name:ident) => {
        inventory::submit! {
            $crate::Test {
                name: concat!(module_path!(), "::", stringify!($name)),
                run: $name,
            }
        }
    };
}
pub(crate) use register;

fn main() -> std::process::ExitCode {
    let trials = inventory::iter::<Test>
        .into_iter()
        .map(|test| {
            let name = test.name.strip_prefix("it::").unwrap_or(test.name);
            Trial::test(name, move || {
                runner::timed(name, test.run);
                Ok(())
            })
        })
        .collect();
    runner::main(trials)
}
