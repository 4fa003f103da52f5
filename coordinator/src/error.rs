//! The crate's one error type and its one mapping to gRPC status codes.

use std::path::PathBuf;

use ltsweep_proto::{ConvertError, ErrorKind, SpecError};
use tonic::{Code, Status};

use crate::scheduler::{LeaseId, SchedulerError};

/// Everything that can go wrong in the coordinator, from a bad request to a full disk.
///
/// Messages are lowercase and end with what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The submitted sweep spec is not valid; the message names the key and its line.
    #[error("invalid sweep spec: {0}")]
    InvalidSpec(#[from] SpecError),
    /// A request field is missing or holds a value that cannot be used.
    #[error("{field}: {problem}")]
    InvalidArgument { field: String, problem: String },
    /// A sweep, worker or checkpoint the request names does not exist.
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
    /// The request cannot be done in the current state (deleting a sweep that still runs); the
    /// message says what to do first.
    #[error("{0}")]
    Precondition(String),
    /// An uploaded checkpoint whose bytes do not match its header's SHA-256.
    #[error("checkpoint corrupted: {0}; upload it again")]
    Corrupted(String),
    /// The state directory cannot be read or written (permissions, full disk, a broken file).
    #[error("state store {}: {message}", path.display())]
    Storage { path: PathBuf, message: String },
    /// A limit of the coordinator's (jobs in all, workers, checkpoint bytes, free disk) would be
    /// passed; the message names the limit and its flag.
    #[error("{0}")]
    Exhausted(String),
    /// Missing or wrong bearer token, or more than one.
    #[error(
        "missing or wrong token: send one `authorization: Bearer <token>` with a token of the coordinator's"
    )]
    Unauthenticated,
    /// A token without the role the call needs; the message names the role and its flag.
    #[error("{0}")]
    PermissionDenied(String),
    /// Settings that contradict each other; found before anything starts.
    #[error("invalid coordinator settings: {0}")]
    Config(String),
    /// The coordinator is stopping; the call may be made again once it is back.
    #[error("the coordinator is shutting down: try again once it is back")]
    ShuttingDown,
    /// The gRPC server could not start or stopped with an error.
    #[error("grpc server: {0}")]
    Transport(String),
    /// A broken promise inside the coordinator (a bug): nothing the caller did wrong.
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

impl CoordinatorError {
    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn storage(path: impl Into<PathBuf>, message: impl ToString) -> Self {
        Self::Storage {
            path: path.into(),
            message: message.to_string(),
        }
    }

    /// What the caller can do about this error, in the contract's terms: a client reads the
    /// same kind back from the code ([`ltsweep_proto::RemoteError`]), through one table.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidSpec(_) | Self::InvalidArgument { .. } | Self::Config(_) => {
                ErrorKind::InvalidArgument
            }
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::StaleLease { .. } | Self::VersionMismatch { .. } | Self::Precondition(_) => {
                ErrorKind::Precondition
            }
            Self::Corrupted(_) => ErrorKind::Corrupted,
            Self::Storage { .. } | Self::Transport(_) | Self::ShuttingDown => {
                ErrorKind::Unavailable
            }
            Self::Unauthenticated => ErrorKind::Unauthenticated,
            Self::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Self::Exhausted(_) => ErrorKind::Exhausted,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The gRPC status code a client sees for this error.
    pub fn code(&self) -> Code {
        self.kind().code()
    }
}

/// The one mapping from coordinator errors to what a gRPC client sees.
impl From<CoordinatorError> for Status {
    fn from(err: CoordinatorError) -> Status {
        Status::new(err.code(), err.to_string())
    }
}

/// A wire message that lacks a field: the field's name reaches the caller.
impl From<ConvertError> for CoordinatorError {
    fn from(err: ConvertError) -> Self {
        Self::invalid(err.field, err.problem)
    }
}

/// A refused plan: the same message, and the status code of the same kind of error.
impl From<SchedulerError> for CoordinatorError {
    fn from(err: SchedulerError) -> Self {
        match err {
            SchedulerError::InvalidSpec(err) => Self::InvalidSpec(err),
            SchedulerError::InvalidArgument { field, problem } => {
                Self::InvalidArgument { field, problem }
            }
            SchedulerError::NotFound { kind, id, hint } => Self::NotFound { kind, id, hint },
            SchedulerError::StaleLease { lease, reason } => Self::StaleLease { lease, reason },
            SchedulerError::VersionMismatch {
                worker,
                coordinator,
            } => Self::VersionMismatch {
                worker,
                coordinator,
            },
            SchedulerError::Precondition(message) => Self::Precondition(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use ltsweep_proto::RemoteError;

    use super::*;

    /// The coordinator's side of the contract's table: each error reaches a client as the kind
    /// the coordinator meant, with its message.
    #[test]
    fn every_error_reads_back_as_its_kind() {
        let errors = [
            CoordinatorError::invalid("sweep_id", "empty"),
            CoordinatorError::NotFound {
                kind: "sweep",
                id: "s".into(),
                hint: "submit it",
            },
            CoordinatorError::StaleLease {
                lease: LeaseId("l".into()),
                reason: "expired".into(),
            },
            CoordinatorError::VersionMismatch {
                worker: 2,
                coordinator: 1,
            },
            CoordinatorError::Precondition("still running".into()),
            CoordinatorError::Corrupted("sha".into()),
            CoordinatorError::storage("/state", "disk full"),
            CoordinatorError::Exhausted("--max-jobs".into()),
            CoordinatorError::Unauthenticated,
            CoordinatorError::PermissionDenied("the worker token may not".into()),
            CoordinatorError::Config("heartbeat".into()),
            CoordinatorError::ShuttingDown,
            CoordinatorError::Transport("bind".into()),
            CoordinatorError::Internal("bug".into()),
        ];
        for err in errors {
            let (kind, message) = (err.kind(), err.to_string());
            let back = RemoteError::from(Status::from(err));
            assert_eq!(back.kind(), Some(kind), "{message}");
            assert_eq!(back.message(), message);
        }
        // The ones a worker retries, and the ones it must not.
        assert!(ErrorKind::Unavailable.is_transient());
        assert!(!CoordinatorError::invalid("x", "y").kind().is_transient());
        assert!(
            !CoordinatorError::Exhausted("x".into())
                .kind()
                .is_transient()
        );
    }
}
