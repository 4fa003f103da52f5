//! What `UploadCheckpoint` and `UploadModel` share: both send a header, then the file's bytes
//! in data chunks (the checkpoint chunk format of `ltsweep_proto::chunks`).

use futures::{Stream, StreamExt};
use ltsweep_domain::Sha256;
use ltsweep_proto::pb;
use tonic::{Status, Streaming};

use crate::error::CoordinatorError;
use crate::limits;
use crate::scheduler::LeaseId;
use crate::stored_files;

use pb::checkpoint_chunk::Part;

/// An upload's first chunk, its header, with the lease and SHA-256 it names read and bounded.
pub(super) struct Header {
    pub(super) header: pb::CheckpointHeader,
    pub(super) lease: LeaseId,
    pub(super) sha256: Sha256,
}

/// Reads the header of an upload of a `what` ("checkpoint", "model"); anything else first is
/// refused.
pub(super) async fn header(
    stream: &mut Streaming<pb::CheckpointChunk>,
    what: &str,
) -> Result<Header, Status> {
    let header = match stream.message().await?.and_then(|chunk| chunk.part) {
        Some(Part::Header(header)) => header,
        _ => {
            return Err(CoordinatorError::invalid(
                "header",
                format!("missing: the first chunk must be the {what} header"),
            )
            .into());
        }
    };
    let lease = LeaseId(limits::short_field(
        header.lease_id.clone(),
        "header.lease_id",
    )?);
    let sha256 = stored_files::parse_sha256(&header.sha256)?;
    Ok(Header {
        header,
        lease,
        sha256,
    })
}

/// The rest of an upload of a `what`: its data chunks' bytes, a second header or a broken
/// transport ending it with an error that says to upload it again.
pub(super) fn data(
    stream: Streaming<pb::CheckpointChunk>,
    what: &'static str,
) -> impl Stream<Item = Result<Vec<u8>, CoordinatorError>> {
    stream.map(move |chunk| match chunk.map(|c| c.part) {
        Ok(Some(Part::Data(bytes))) => Ok(bytes),
        Ok(Some(Part::Header(_))) => Err(CoordinatorError::invalid(
            "header",
            "sent twice: send one header, then data chunks",
        )),
        Ok(None) => Ok(Vec::new()),
        Err(source) => Err(CoordinatorError::UploadBroken {
            what,
            source: Box::new(source),
        }),
    })
}
