//! The scheduler's one error type: why a plan was refused, and its kind in the contract's terms.
//! It knows nothing of gRPC; the coordinator's error holds it, and that error's one mapping
//! gives the status code a client sees.

use ltsweep_domain::SpecError;
use ltsweep_proto::ErrorKind;

use super::LeaseId;

/// Why an operation was refused. Messages are lowercase and end with what the caller can do
/// about it, as the coordinator's own.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SchedulerError {
    /// The submitted sweep spec is not valid; the message names the key and its line.
    #[error("invalid sweep spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// A request field holds a value that cannot be used.
    #[error("{field}: {problem}")]
    InvalidArgument { field: String, problem: String },
    /// A sweep or worker the request names does not exist.
    #[error("unknown {kind} `{id}`: {hint}")]
    NotFound {
        kind: &'static str,
        id: String,
        hint: &'static str,
    },
    /// A call with a lease that is not the job's current one: it changes nothing (fencing).
    #[error("stale lease `{lease}`: {reason}; drop the job, it is no longer yours")]
    StaleLease { lease: LeaseId, reason: String },
    /// A worker that speaks another protocol version.
    #[error(
        "worker speaks protocol {worker}, this coordinator speaks {coordinator}: run the same ltsweep version on both"
    )]
    VersionMismatch { worker: u32, coordinator: u32 },
    /// The operation cannot be done in the current state; the message says what to do first.
    #[error("{0}")]
    Precondition(String),
}

impl SchedulerError {
    /// What the caller can do about it, in the contract's terms.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidSpec(_) | Self::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::StaleLease { .. } | Self::VersionMismatch { .. } | Self::Precondition(_) => {
                ErrorKind::Precondition
            }
        }
    }

    /// The one refusal of a lease that is not the caller's live lease: another worker's,
    /// superseded, expired, or never issued all read the same, so that it is no oracle.
    pub fn lease_not_yours(lease: &LeaseId) -> Self {
        Self::StaleLease {
            lease: lease.clone(),
            reason: "it is not a live lease of this worker".to_owned(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            problem: problem.into(),
        }
    }
}
