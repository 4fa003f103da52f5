//! The checkpoint chunk format, both ways (upload and download): one header chunk (lease,
//! epoch, size, SHA-256 of the whole checkpoint), then data chunks of at most [`CHUNK_BYTES`].
//! Kept models travel in the same chunks.
//! The receiving end checks the bytes against the header with a [`Verifier`] as they arrive,
//! so a sender that announces one size and sends more is stopped at the first byte too many.

use ltsweep_domain::{NotSha256, Sha256, Sha256Hasher};

use crate::pb;
use crate::pb::checkpoint_chunk::Part;
use crate::remote::RemoteError;

/// Bytes of checkpoint per data chunk: far below any gRPC message limit.
pub const CHUNK_BYTES: usize = 1 << 20;

/// What the header chunk announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointHeader {
    pub lease_id: String,
    /// Epochs finished when the checkpoint was taken (from 1).
    pub epoch: u32,
    pub size: u64,
    /// The SHA-256 of the whole checkpoint.
    pub sha256: Sha256,
}

impl CheckpointHeader {
    /// The header of these bytes.
    pub fn of(lease_id: &str, epoch: u32, bytes: &[u8]) -> Self {
        Self {
            lease_id: lease_id.to_owned(),
            epoch,
            size: bytes.len() as u64,
            sha256: Sha256::of(bytes),
        }
    }

    pub fn chunk(&self) -> pb::CheckpointChunk {
        pb::CheckpointChunk {
            part: Some(Part::Header(pb::CheckpointHeader {
                lease_id: self.lease_id.clone(),
                epoch: self.epoch,
                size: self.size,
                sha256: self.sha256.to_string(),
            })),
        }
    }

    /// A checker for the bytes this header announces.
    pub fn verifier(&self) -> Verifier {
        Verifier::new(self.size, self.sha256)
    }
}

/// The wire's header, its digest parsed: a header whose `sha256` is not 64 hex digits is
/// refused here, where it arrives.
impl TryFrom<pb::CheckpointHeader> for CheckpointHeader {
    type Error = NotSha256;

    fn try_from(h: pb::CheckpointHeader) -> Result<Self, NotSha256> {
        Ok(Self {
            lease_id: h.lease_id,
            epoch: h.epoch,
            size: h.size,
            sha256: h.sha256.parse()?,
        })
    }
}

/// One received chunk, read.
#[derive(Debug)]
pub enum Chunk {
    Header(CheckpointHeader),
    Data(Vec<u8>),
}

impl TryFrom<pb::CheckpointChunk> for Chunk {
    type Error = NotSha256;

    fn try_from(chunk: pb::CheckpointChunk) -> Result<Self, NotSha256> {
        Ok(match chunk.part {
            Some(Part::Header(h)) => Chunk::Header(h.try_into()?),
            Some(Part::Data(bytes)) => Chunk::Data(bytes),
            // An empty oneof: a chunk with no bytes.
            None => Chunk::Data(Vec::new()),
        })
    }
}

/// The data chunks of a checkpoint, each copied out as it is sent.
pub fn data_chunks<B: AsRef<[u8]>>(bytes: B) -> impl Iterator<Item = pb::CheckpointChunk> {
    let count = bytes.as_ref().len().div_ceil(CHUNK_BYTES);
    (0..count).map(move |i| {
        let bytes = bytes.as_ref();
        let end = ((i + 1) * CHUNK_BYTES).min(bytes.len());
        pb::CheckpointChunk {
            part: Some(Part::Data(bytes[i * CHUNK_BYTES..end].to_vec())),
        }
    })
}

/// A whole checkpoint as chunks: its header, then its data.
pub fn chunks<B: AsRef<[u8]>>(
    header: &CheckpointHeader,
    bytes: B,
) -> impl Iterator<Item = pb::CheckpointChunk> + use<B> {
    std::iter::once(header.chunk()).chain(data_chunks(bytes))
}

/// Where received bytes differ from their header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("the header announced {announced} bytes but more arrived")]
    Longer { announced: u64 },
    #[error("the header announced {announced} bytes but {got} arrived")]
    Shorter { announced: u64, got: u64 },
    #[error("its SHA-256 is {got}, the header says {announced}")]
    Digest { got: Sha256, announced: Sha256 },
}

/// Checks a checkpoint's bytes, chunk by chunk, against its header's size and SHA-256.
#[derive(Debug)]
pub struct Verifier {
    announced: u64,
    sha256: Sha256,
    got: u64,
    hasher: Sha256Hasher,
}

impl Verifier {
    pub fn new(size: u64, sha256: Sha256) -> Self {
        Self {
            announced: size,
            sha256,
            got: 0,
            hasher: Sha256Hasher::default(),
        }
    }

    /// Takes the next chunk; refuses it when it goes past the announced size.
    pub fn update(&mut self, chunk: &[u8]) -> Result<(), ChunkError> {
        self.got += chunk.len() as u64;
        if self.got > self.announced {
            return Err(ChunkError::Longer {
                announced: self.announced,
            });
        }
        self.hasher.update(chunk);
        Ok(())
    }

    /// Checks that every announced byte arrived and that they hash as announced.
    pub fn finish(self) -> Result<(), ChunkError> {
        if self.got != self.announced {
            return Err(ChunkError::Shorter {
                announced: self.announced,
                got: self.got,
            });
        }
        let got = self.hasher.finish();
        if got != self.sha256 {
            return Err(ChunkError::Digest {
                got,
                announced: self.sha256,
            });
        }
        Ok(())
    }
}

/// Reads a whole stream of chunks (a header, then data), checking the bytes against the
/// header's size and SHA-256 as they arrive; answers the header and the bytes.
pub async fn receive(
    mut stream: tonic::Streaming<pb::CheckpointChunk>,
) -> Result<(CheckpointHeader, Vec<u8>), RemoteError> {
    let mut header: Option<CheckpointHeader> = None;
    let mut verifier = None;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        let chunk = Chunk::try_from(chunk)
            .map_err(|e| RemoteError::Malformed(format!("the checkpoint's header: {e}")))?;
        match chunk {
            Chunk::Header(h) if header.is_none() => {
                verifier = Some(h.verifier());
                header = Some(h);
            }
            Chunk::Header(_) => {
                return Err(RemoteError::Malformed(
                    "the stream of chunks has two headers".to_owned(),
                ));
            }
            Chunk::Data(data) => {
                let verifier = verifier.as_mut().ok_or_else(|| {
                    RemoteError::Malformed(
                        "the stream of chunks starts without its header".to_owned(),
                    )
                })?;
                verifier
                    .update(&data)
                    .map_err(|e| RemoteError::Damaged(e.to_string()))?;
                bytes.extend_from_slice(&data);
            }
        }
    }
    let (Some(header), Some(verifier)) = (header, verifier) else {
        return Err(RemoteError::Malformed(
            "the stream of chunks has no header".to_owned(),
        ));
    };
    verifier
        .finish()
        .map_err(|e| RemoteError::Damaged(e.to_string()))?;
    Ok((header, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(chunks: impl Iterator<Item = pb::CheckpointChunk>) -> Result<Vec<u8>, ChunkError> {
        let mut verifier = None;
        let mut bytes = Vec::new();
        for chunk in chunks {
            match Chunk::try_from(chunk).unwrap() {
                Chunk::Header(h) => verifier = Some(h.verifier()),
                Chunk::Data(data) => {
                    verifier.as_mut().unwrap().update(&data)?;
                    bytes.extend(data);
                }
            }
        }
        verifier.unwrap().finish()?;
        Ok(bytes)
    }

    #[test]
    fn a_checkpoint_goes_through_whole_in_chunks() {
        let bytes: Vec<u8> = (0..CHUNK_BYTES * 2 + 7).map(|i| (i % 251) as u8).collect();
        let header = CheckpointHeader::of("lease-1", 3, &bytes);
        let sent: Vec<_> = chunks(&header, &bytes).collect();
        assert_eq!(sent.len(), 4, "a header and three data chunks");
        assert_eq!(received(sent.into_iter()).unwrap(), bytes);
    }

    #[test]
    fn size_and_digest_are_checked() {
        let header = CheckpointHeader::of("lease-1", 3, b"hello world");
        let longer = received(chunks(&header, b"hello world!"));
        assert_eq!(longer, Err(ChunkError::Longer { announced: 11 }));
        let shorter = received(chunks(&header, b"hello"));
        assert_eq!(
            shorter,
            Err(ChunkError::Shorter {
                announced: 11,
                got: 5
            })
        );
        let other = received(chunks(&header, b"hello there"));
        assert!(matches!(other, Err(ChunkError::Digest { .. })), "{other:?}");
    }

    #[test]
    fn a_header_whose_digest_is_not_one_is_refused_where_it_arrives() {
        let header = |sha256: &str| pb::CheckpointHeader {
            lease_id: "lease-1".into(),
            epoch: 1,
            size: 0,
            sha256: sha256.into(),
        };
        assert_eq!(CheckpointHeader::try_from(header("xyz")), Err(NotSha256));
        let upper = CheckpointHeader::try_from(header(&"AB".repeat(32))).unwrap();
        assert_eq!(upper.sha256.to_string(), "ab".repeat(32));
    }
}
