//! The C allocator's policy for a training process.
//!
//! Each training step allocates and frees activation and gradient buffers of megabytes. By
//! default glibc serves such sizes with fresh mappings (or trims the heap as soon as they are
//! freed), so every step faults its memory back in page by page and the kernel zeroes it: a
//! tenth of the CPU time of a ResNet-20 step on two cores, measured with `perf`. Keeping freed
//! memory in the heap lets the next step reuse it.

/// Allocations up to this size come from the heap rather than a fresh mapping.
const MMAP_THRESHOLD: i32 = 256 << 20;
/// Free memory kept at the top of the heap before any is returned to the system.
const TRIM_THRESHOLD: i32 = 1 << 30;

/// Keeps freed tensor memory for reuse. Call once, early, before training.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation thresholds; it is safe to call at any
    // time, and a refusal (it returns 0) leaves the defaults in place.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
