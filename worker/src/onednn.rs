//! libtorch's oneDNN on CPUs with AMX.
//!
//! libtorch 2.11's oneDNN runs bf16 convolutions on AMX tiles where the CPU has them. On a Xeon
//! with `amx_bf16` (this project's machine, 2026-12-07) a bf16 ResNet-10 step from fixed
//! weights and data gave NaN at random, from run to run and at any learning rate: the worker's
//! `imagenet::a_resnet10_job_from_pretrained_weights_trains_and_resumes_exactly` failed 5 runs
//! of 5 at a fifth of its rate; capped at AVX-512 BF16 it passed 4 of 4, with AVX2 3 of 3. fp32
//! never runs on AMX, so the cap costs fp32 nothing; bf16 on such a CPU runs on AVX-512 BF16
//! instead (GPUs are unaffected).

/// oneDNN's cap on the instruction sets it dispatches to, read once, at its first use.
pub const ISA_VARIABLE: &str = "ONEDNN_MAX_CPU_ISA";
/// The highest cap below AMX.
pub const ISA_CAP: &str = "AVX512_CORE_BF16";

/// Caps oneDNN below AMX, unless the environment already names a cap. Call first in `main`,
/// before any other thread starts and before libtorch's first operation.
pub fn cap_isa_below_amx() {
    if std::env::var_os(ISA_VARIABLE).is_none() {
        // SAFETY: called at the start of `main`, before any other thread exists, so nothing
        // reads or writes the environment at the same time.
        unsafe { std::env::set_var(ISA_VARIABLE, ISA_CAP) };
    }
}
