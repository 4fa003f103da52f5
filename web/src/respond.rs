//! The HTTP answers of a refusal or a failed call: the status comes from the contract's one
//! error table ([`ErrorKind::http_status`](ltsweep_proto::ErrorKind::http_status)), as the gRPC
//! code does.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ltsweep_coordinator::CoordinatorError;
use ltsweep_proto::RemoteError;

/// A failed call to the coordinator, as the page shows it: the HTTP status of its kind, from
/// the contract's table.
pub(crate) fn status_response(status: tonic::Status) -> Response {
    let err = RemoteError::from(status);
    let code = err
        .kind()
        .and_then(|kind| StatusCode::from_u16(kind.http_status()).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, err.message().to_owned()).into_response()
}

/// A refusal of the coordinator's (a role, a limit), as the page shows it.
pub(crate) fn error_response(err: &CoordinatorError) -> Response {
    let code =
        StatusCode::from_u16(err.kind().http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, err.to_string()).into_response()
}

/// Now, in milliseconds since the Unix epoch (the contract's timestamps).
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
