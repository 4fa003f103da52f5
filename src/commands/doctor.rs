//! `ltsweep doctor`: what this machine offers the trainer.

use tch::Cuda;

pub fn run() -> anyhow::Result<()> {
    println!("ltsweep {}", env!("CARGO_PKG_VERSION"));
    println!(
        "libtorch: {} ({})",
        env!("LTSWEEP_LIBTORCH_VERSION"),
        env!("LTSWEEP_LIBTORCH_LIB")
    );
    let cuda_linked = libtorch_cuda_loaded();
    if Cuda::is_available() {
        println!("CUDA: available, {} GPU(s)", Cuda::device_count());
        println!(
            "cuDNN: {}",
            if Cuda::cudnn_is_available() {
                "available"
            } else {
                "not available"
            }
        );
    } else {
        let why = if cuda_linked {
            "libtorch_cuda is loaded, but no GPU or driver answered"
        } else {
            "this libtorch has no CUDA"
        };
        println!("CUDA: not available ({why}), 0 GPUs");
    }
    println!("threads: {} (libtorch intra-op)", tch::get_num_threads());
    Ok(())
}

/// Whether the process mapped libtorch_cuda: without it, CUDA stays off even on a GPU machine.
fn libtorch_cuda_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps").is_ok_and(|maps| maps.contains("libtorch_cuda"))
}
