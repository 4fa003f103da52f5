//! What a failed call to a coordinator means, read from its gRPC status in this one place.
//!
//! The coordinator maps each of its errors to an [`ErrorKind`] and sends that kind's code
//! ([`ErrorKind::code`]); a client turns the code back into the kind ([`ErrorKind::of_code`]).
//! Both directions go through the one table [`KINDS`], so the two sides cannot drift apart:
//! the coordinator's tests check that every one of its errors comes back as the kind it meant.
//! The same table holds the HTTP status the coordinator's web page answers with.

use tonic::{Code, Status};

/// The errors of the contract: what a coordinator answers, by what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A request field is missing or holds a value that cannot be used (a limit included).
    InvalidArgument,
    /// A sweep, worker, lease or checkpoint the request names does not exist.
    NotFound,
    /// The call cannot be made in the current state: a superseded lease (fencing), another
    /// protocol version, a sweep that still runs.
    Precondition,
    /// Bytes that do not match their SHA-256 (an upload damaged in transit, a damaged file).
    Corrupted,
    /// The coordinator cannot answer now (its store, a restart) or cannot be reached.
    Unavailable,
    /// A missing or wrong token.
    Unauthenticated,
    /// A token without the role the call needs (a worker's token submitting a sweep).
    PermissionDenied,
    /// A limit of the coordinator's would be passed; the message names it and its flag.
    Exhausted,
    /// A bug on the other side.
    Internal,
}

/// The one table between the kinds, the codes on the wire and the web page's HTTP statuses.
pub const KINDS: [(ErrorKind, Code, u16); 9] = [
    (ErrorKind::InvalidArgument, Code::InvalidArgument, 400),
    (ErrorKind::NotFound, Code::NotFound, 404),
    (ErrorKind::Precondition, Code::FailedPrecondition, 409),
    (ErrorKind::Corrupted, Code::DataLoss, 422),
    (ErrorKind::Unavailable, Code::Unavailable, 503),
    (ErrorKind::Unauthenticated, Code::Unauthenticated, 401),
    (ErrorKind::PermissionDenied, Code::PermissionDenied, 403),
    (ErrorKind::Exhausted, Code::ResourceExhausted, 429),
    (ErrorKind::Internal, Code::Internal, 500),
];

impl ErrorKind {
    /// The code this kind travels as.
    pub fn code(self) -> Code {
        self.row().1
    }

    /// The HTTP status the web page answers this kind with.
    pub fn http_status(self) -> u16 {
        self.row().2
    }

    fn row(self) -> (ErrorKind, Code, u16) {
        *KINDS
            .iter()
            .find(|(kind, _, _)| *kind == self)
            .expect("every kind is in the table")
    }

    /// The kind a code stands for; `None` for a code outside the contract.
    pub fn of_code(code: Code) -> Option<Self> {
        KINDS
            .iter()
            .find(|(_, c, _)| *c == code)
            .map(|&(kind, _, _)| kind)
    }

    /// Whether the same call may succeed later without anything changed: the coordinator
    /// was busy or away, or bytes were damaged on the way.
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable | Self::Corrupted)
    }
}

/// A call to a coordinator that did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteError {
    /// The coordinator (or, for [`ErrorKind::Unavailable`], the channel to it) answered one of
    /// the contract's errors; the message is the coordinator's own.
    #[error("{message}")]
    Answered { kind: ErrorKind, message: String },
    /// The call broke off or got an answer outside the contract: a deadline passed, the
    /// connection was reset, a proxy answered.
    #[error("the call to the coordinator broke off ({code:?}): {message}")]
    Broken { code: Code, message: String },
    /// The coordinator's answer lacks a field or holds one this build cannot read.
    #[error("the coordinator's answer is malformed: {0}")]
    Malformed(String),
    /// A checkpoint whose bytes do not match the size or SHA-256 its header announced.
    #[error("the checkpoint arrived damaged: {0}")]
    Damaged(String),
}

impl RemoteError {
    /// The contract's kind of this error, if it is one.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Answered { kind, .. } => Some(*kind),
            Self::Damaged(_) => Some(ErrorKind::Corrupted),
            Self::Broken { .. } | Self::Malformed(_) => None,
        }
    }

    /// Whether retrying the same call (after a pause) can succeed: an unreachable or busy
    /// coordinator, a call that broke off, damaged bytes. A refusal (a bad argument, a lost
    /// lease, a wrong token, a limit) is permanent: the call would be refused again.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Answered { kind, .. } => kind.is_transient(),
            Self::Broken { code, .. } => matches!(
                code,
                Code::DeadlineExceeded | Code::Cancelled | Code::Aborted | Code::Unknown
            ),
            Self::Damaged(_) => true,
            Self::Malformed(_) => false,
        }
    }

    /// A limit of the coordinator's was reached (a full worker table, its streams, wrong tokens
    /// from this address): not transient, as the same call may be refused for a while, but not
    /// final either. A worker waits and tries again rather than stop: its token is right, and
    /// room comes back.
    pub fn is_exhausted(&self) -> bool {
        self.kind() == Some(ErrorKind::Exhausted)
    }

    /// The coordinator no longer holds this lease for this worker (it expired and the job
    /// went elsewhere, or the coordinator forgot it): the job is not the caller's any more.
    pub fn is_lost_lease(&self) -> bool {
        matches!(
            self.kind(),
            Some(ErrorKind::Precondition | ErrorKind::NotFound)
        )
    }

    /// The message without the framing of this type's `Display`.
    pub fn message(&self) -> &str {
        match self {
            Self::Answered { message, .. }
            | Self::Broken { message, .. }
            | Self::Malformed(message)
            | Self::Damaged(message) => message,
        }
    }
}

impl From<Status> for RemoteError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match ErrorKind::of_code(status.code()) {
            Some(kind) => Self::Answered { kind, message },
            None => Self::Broken {
                code: status.code(),
                message,
            },
        }
    }
}

impl From<crate::ConvertError> for RemoteError {
    fn from(err: crate::ConvertError) -> Self {
        Self::Malformed(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_the_same_both_ways() {
        for (kind, code, http) in KINDS {
            assert_eq!(kind.code(), code);
            assert_eq!(kind.http_status(), http);
            assert_eq!(ErrorKind::of_code(code), Some(kind));
            let back = RemoteError::from(Status::new(code, "why"));
            assert_eq!(back.kind(), Some(kind));
            assert_eq!(back.message(), "why");
        }
        let codes: std::collections::HashSet<_> = KINDS.iter().map(|(_, c, _)| *c).collect();
        assert_eq!(codes.len(), KINDS.len(), "two kinds share a code");
        let statuses: std::collections::HashSet<_> = KINDS.iter().map(|(_, _, h)| *h).collect();
        assert_eq!(
            statuses.len(),
            KINDS.len(),
            "two kinds share an HTTP status"
        );
    }

    #[test]
    fn outages_are_transient_and_refusals_are_not() {
        let status = |code| RemoteError::from(Status::new(code, ""));
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::Aborted,
            Code::Unknown,
            Code::DataLoss,
        ] {
            assert!(status(code).is_transient(), "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
            Code::NotFound,
            Code::ResourceExhausted,
            Code::Internal,
            Code::Unimplemented,
        ] {
            assert!(!status(code).is_transient(), "{code:?}");
        }
        assert!(RemoteError::Damaged("size".into()).is_transient());
        assert!(!RemoteError::Malformed("lease.job".into()).is_transient());
    }

    #[test]
    fn only_a_limit_is_exhausted() {
        for (kind, code, _) in KINDS {
            let err = RemoteError::from(Status::new(code, ""));
            assert_eq!(err.is_exhausted(), kind == ErrorKind::Exhausted, "{code:?}");
        }
        assert!(!RemoteError::Malformed("x".into()).is_exhausted());
    }

    #[test]
    fn a_lost_lease_is_a_precondition_or_an_unknown_lease() {
        assert!(RemoteError::from(Status::failed_precondition("stale")).is_lost_lease());
        assert!(RemoteError::from(Status::not_found("lease")).is_lost_lease());
        assert!(!RemoteError::from(Status::unavailable("down")).is_lost_lease());
    }
}
