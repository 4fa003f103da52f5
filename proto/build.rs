//! Compiles `ltsweep/v1/*.proto` with protox, a protobuf compiler in pure Rust, so that no
//! `protoc` is needed on the machine.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "ltsweep/v1/ltsweep.proto";
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([file], ["."])?;
    // Server reflection serves the encoded descriptors.
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("ltsweep_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
