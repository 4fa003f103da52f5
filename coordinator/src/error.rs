//! The crate's one error type and its one mapping to gRPC status codes.

use std::path::PathBuf;

use ltsweep_domain::SpecError;
use ltsweep_proto::server::{Refusal, SameToken};
use ltsweep_proto::{ConvertError, ErrorKind};
use tonic::{Code, Status};

use crate::scheduler::SchedulerError;

/// Everything that can go wrong in the coordinator, from a bad request to a full disk.
///
/// Messages are lowercase and end with what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// A refused request, as the scheduler refuses one: a bad spec or field, an unknown sweep,
    /// worker or checkpoint, a stale lease, another protocol version, a step out of order. The
    /// coordinator's own checks of a request (field bounds, a checkpoint not on disk) refuse
    /// with it too, so that each kind of refusal is written once.
    #[error(transparent)]
    Refused(#[from] SchedulerError),
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
    /// A caller the gate turns away: no or a wrong token, a role it lacks, an address that
    /// sent too many wrong tokens.
    #[error(transparent)]
    Gate(#[from] Refusal),
    /// Settings that contradict each other; found before anything starts.
    #[error("invalid coordinator settings: {0}")]
    Config(String),
    /// The coordinator is stopping; the call may be made again once it is back.
    #[error("the coordinator is shutting down: try again once it is back")]
    ShuttingDown,
    /// The gRPC server stopped with an error.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The listening socket the server was handed cannot be used.
    #[error("grpc server's listener: {0}")]
    Listener(#[source] std::io::Error),
    /// An upload's stream ended in an error before its last chunk.
    #[error("the upload broke off ({}): upload the {what} again", source.message())]
    UploadBroken {
        what: &'static str,
        /// Boxed: a status is large, and every result of the crate carries this enum.
        #[source]
        source: Box<Status>,
    },
    /// A broken promise inside the coordinator (a bug): nothing the caller did wrong.
    #[error("internal error: {0}; please report it")]
    Internal(String),
}

impl CoordinatorError {
    pub(crate) fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        SchedulerError::invalid(field, problem).into()
    }

    /// An unknown sweep, worker, checkpoint or model; `hint` says what to do.
    pub(crate) fn not_found(kind: &'static str, id: impl Into<String>, hint: &'static str) -> Self {
        SchedulerError::NotFound {
            kind,
            id: id.into(),
            hint,
        }
        .into()
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
            Self::Refused(err) => err.kind(),
            Self::Config(_) => ErrorKind::InvalidArgument,
            Self::Corrupted(_) => ErrorKind::Corrupted,
            Self::Storage { .. }
            | Self::Transport(_)
            | Self::Listener(_)
            | Self::UploadBroken { .. }
            | Self::ShuttingDown => ErrorKind::Unavailable,
            Self::Gate(refusal) => refusal.kind(),
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

/// A spec that does not parse is refused as the scheduler refuses an invalid one.
impl From<SpecError> for CoordinatorError {
    fn from(err: SpecError) -> Self {
        SchedulerError::InvalidSpec(err).into()
    }
}

/// Two roles given one token: settings that contradict each other.
impl From<SameToken> for CoordinatorError {
    fn from(err: SameToken) -> Self {
        Self::Config(err.to_string())
    }
}

/// A wire message that lacks a field: the field's name reaches the caller.
impl From<ConvertError> for CoordinatorError {
    fn from(err: ConvertError) -> Self {
        Self::invalid(err.field, err.problem)
    }
}

#[cfg(test)]
mod tests {
    use ltsweep_proto::RemoteError;

    use super::*;
    use crate::scheduler::LeaseId;

    /// The coordinator's side of the contract's table: each error reaches a client as the kind
    /// the coordinator meant, with its message.
    #[test]
    fn every_error_reads_back_as_its_kind() {
        let errors = [
            CoordinatorError::invalid("sweep_id", "empty"),
            CoordinatorError::not_found("sweep", "s", "submit it"),
            SchedulerError::StaleLease {
                lease: LeaseId("l".into()),
                reason: "expired".into(),
            }
            .into(),
            SchedulerError::VersionMismatch {
                worker: 2,
                coordinator: 1,
            }
            .into(),
            SchedulerError::Precondition("still running".into()).into(),
            CoordinatorError::Corrupted("sha".into()),
            CoordinatorError::storage("/state", "disk full"),
            CoordinatorError::Exhausted("--max-jobs".into()),
            Refusal::Unauthenticated.into(),
            Refusal::PermissionDenied("the worker token may not".into()).into(),
            CoordinatorError::Config("heartbeat".into()),
            CoordinatorError::ShuttingDown,
            CoordinatorError::Listener(std::io::Error::other("bind")),
            CoordinatorError::UploadBroken {
                what: "checkpoint",
                source: Box::new(Status::cancelled("reset")),
            },
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

    #[test]
    fn server_and_upload_errors_keep_their_sources() {
        use std::error::Error as _;
        let listener = CoordinatorError::Listener(std::io::Error::other("bad descriptor"));
        assert_eq!(
            listener.source().map(ToString::to_string).as_deref(),
            Some("bad descriptor")
        );
        let broken = CoordinatorError::UploadBroken {
            what: "model",
            source: Box::new(Status::cancelled("connection reset")),
        };
        assert_eq!(
            broken.to_string(),
            "the upload broke off (connection reset): upload the model again"
        );
        let status = broken
            .source()
            .and_then(|source| source.downcast_ref::<Box<Status>>())
            .expect("the stream's status is the source");
        assert_eq!(status.code(), Code::Cancelled);
    }
}
