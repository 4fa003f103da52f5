//! The wire between ltsweep's parts: the gRPC protocol and what speaks it. The types it
//! carries are `ltsweep-domain`'s; this crate converts them at the boundary.
//!
//! - [`pb`]: the gRPC protocol `ltsweep.v1` (messages, clients, servers), generated from
//!   `proto/ltsweep/v1/ltsweep.proto`.
//! - [`convert`]: the wire messages ⇄ the domain types, checked at the boundary.
//! - [`chunks`]: a checkpoint as a header chunk and data chunks.
//! - [`remote`]: what a failed call means ([`ErrorKind`], [`RemoteError`]).
//! - [`roles`]: the role each RPC needs; [`token`]: tokens and the one check of a token file.
//! - [`client`]: the typed clients, over a channel or in-process; [`paging`]: a paged answer
//!   read whole; [`server`]: what the coordinator's gRPC and the page's HTTP server share to let
//!   a caller in.

pub mod backoff;
pub mod chunks;
pub mod client;
pub mod convert;
pub mod paging;
pub mod remote;
pub mod roles;
pub mod server;
pub mod token;

pub use backoff::Backoff;
pub use convert::ConvertError;
pub use remote::{ErrorKind, RemoteError};

/// The generated protocol: messages, `*_client` and `*_server` modules.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("ltsweep.v1");

    /// The encoded descriptors of the protocol, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ltsweep_descriptor.bin"));
}

/// The protocol version this build speaks; a worker of another version is refused. 3: a lease
/// may stop at a search's rung (`Lease.stop_after_epoch`), which a worker must honour.
pub const PROTOCOL_VERSION: u32 = 3;

/// The gRPC metadata key a worker's calls carry its registration's secret in (see
/// `RegisterWorkerResponse.worker_secret`): the coordinator knows the caller by it.
pub const WORKER_SECRET_METADATA: &str = "ltsweep-worker-secret";
