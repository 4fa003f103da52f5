//! Checkpoints: everything a job needs to continue exactly where it stopped, as one byte
//! string (to write to a file or stream to the coordinator).
//!
//! Layout: `LTSWCKPT`, a little-endian u32 format version, a u64 length and that many bytes of
//! JSON metadata (job id, epochs finished, epoch metrics so far, training seconds, and the
//! epoch in progress when a preemption stopped the job mid-epoch), then the
//! named tensors in libtorch's own serialisation: network weights and batch-norm statistics,
//! momentum buffers, PC centres.

use std::io::Cursor;

use ltsweep_domain::EpochMetrics;
use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};

const MAGIC: &[u8; 8] = b"LTSWCKPT";
const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub job_id: String,
    /// Epochs finished.
    pub epoch: u32,
    pub history: Vec<EpochMetrics>,
    pub train_seconds: f64,
    /// The epoch in progress, when a preemption stopped the job between two of its steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<PartialEpoch>,
}

/// How far the epoch in progress got: with it, a resumed job continues at the next step as if
/// it had never stopped (the epoch's shuffle and augmentation draws derive from the seed and
/// the epoch alone).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// Training images of the epoch already stepped on (in the epoch's order).
    pub from: i64,
    pub batches: u32,
    /// The epoch's loss sums so far: single-precision on the device, so exact as `f64`.
    pub ce: f64,
    pub comp: f64,
    pub pc: f64,
    /// Training seconds of the epoch so far.
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("not an ltsweep checkpoint (no LTSWCKPT header)")]
    NotACheckpoint,
    #[error("checkpoint format version {0}; this build reads version {VERSION}")]
    Version(u32),
    #[error("truncated checkpoint")]
    Truncated,
    #[error("checkpoint metadata: {0}")]
    Meta(#[from] serde_json::Error),
    #[error("checkpoint tensors: {0}")]
    Tensors(#[from] tch::TchError),
}

pub fn encode(
    meta: &CheckpointMeta,
    tensors: &[(String, Tensor)],
) -> Result<Vec<u8>, CheckpointError> {
    let json = serde_json::to_vec(meta)?;
    let mut bytes = Vec::with_capacity(64 + json.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    // Tensors are saved from the CPU so that a checkpoint moves between devices.
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(name, t)| (name.clone(), t.to_device(Device::Cpu)))
        .collect();
    Tensor::save_multi_to_stream(&cpu, &mut bytes)?;
    Ok(bytes)
}

pub fn decode(
    bytes: &[u8],
    device: Device,
) -> Result<(CheckpointMeta, Vec<(String, Tensor)>), CheckpointError> {
    if bytes.len() < 20 || &bytes[..8] != MAGIC {
        return Err(CheckpointError::NotACheckpoint);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(CheckpointError::Version(version));
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes")) as usize;
    let json = bytes.get(20..20 + len).ok_or(CheckpointError::Truncated)?;
    let meta: CheckpointMeta = serde_json::from_slice(json)?;
    let tensors =
        Tensor::load_multi_from_stream_with_device(Cursor::new(&bytes[20 + len..]), device)?;
    Ok((meta, tensors))
}
