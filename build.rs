// A build without the trainer (no `train` feature) links no libtorch at all.
#[cfg(feature = "train")]
include!("build/link_libtorch.rs");

fn main() {
    #[cfg(feature = "train")]
    link_libtorch();
}
