//! The contract every part of ltsweep speaks.
//!
//! - [`pb`]: the gRPC protocol `ltsweep.v1` (messages, clients, servers), generated from
//!   `proto/ltsweep/v1/ltsweep.proto`.
//! - [`SweepSpec`]: the TOML sweep spec, validated, and its grid of [`JobSpec`]s.
//! - [`JobResult`]: what a finished job produced.
//! - [`convert`]: the wire messages ⇄ these types, checked at the boundary.
//! - [`roles`]: the role each RPC needs; [`token`]: tokens and the one check of a token file.
//! - [`client`]: the typed clients, over a channel or in-process; [`server`]: what the
//!   coordinator's gRPC and the page's HTTP server share to let a caller in.
//!
//! ```
//! use ltsweep_proto::{LossPlan, SweepSpec};
//!
//! let spec = SweepSpec::parse(
//!     "name = \"table1\"\nseeds = [0, 1, 2]\n[dataset]\nkind = \"cifar100\"\npath = \"cifar-100-binary\"",
//! )?;
//! let jobs = spec.jobs();
//! assert_eq!(jobs.len(), 27);
//! assert_eq!(jobs[26].plan.to_string(), "comp=tail,pc=head");
//! assert_eq!(jobs[0].plan, LossPlan::CE_ONLY);
//! # Ok::<(), ltsweep_proto::SpecError>(())
//! ```

pub mod backoff;
pub mod baseline;
pub mod checkpoint;
pub mod client;
pub mod convert;
mod grid;
pub mod job;
pub mod model;
pub mod paging;
pub mod remote;
pub mod result;
pub mod roles;
pub mod server;
pub mod spec;
pub mod stage2;
pub mod status;
pub mod time;
pub mod token;
pub mod workers;

pub use backoff::Backoff;
pub use baseline::{BaseKind, BaseLoss, Sampler};
pub use convert::ConvertError;
pub use job::{
    AxisValue, ClassScope, CompMode, DatasetConfig, DatasetKind, HeadSplit, JobId, JobSpec,
    JobState, LeaseId, ListConfig, ListPreset, LossConfig, LossPlan, LrSchedule, ModelConfig,
    Normalization, PRESETS, Stage2, SweepId, SyntheticConfig, TrainConfig, WorkerId,
};
pub use model::{Arch, Precision};
pub use remote::{ErrorKind, RemoteError};
pub use result::{
    ChosenEpoch, ClassGroup, ClassMetrics, EpochMetrics, GroupAccuracy, JobResult, PosthocAccuracy,
    Shot,
};
pub use spec::{SpecError, SubsetSeed, SweepSpec};
pub use stage2::{BnMode, NcmFeatures, Stage2Kind, Stage2Method, Stage2Sampler, TauBias};
pub use status::{JobStatus, SweepCounts, SweepEvent, SweepStatus, SweepSummary};
pub use workers::{SlurmPlacement, WORKER_COLUMNS, WorkerInfo};

/// The generated protocol: messages, `*_client` and `*_server` modules.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("ltsweep.v1");

    /// The encoded descriptors of the protocol, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/ltsweep_descriptor.bin"));
}

/// The protocol version this build speaks; a worker of another version is refused.
pub const PROTOCOL_VERSION: u32 = 2;

/// The gRPC metadata key a worker's calls carry its registration's secret in (see
/// `RegisterWorkerResponse.worker_secret`): the coordinator knows the caller by it.
pub const WORKER_SECRET_METADATA: &str = "ltsweep-worker-secret";
