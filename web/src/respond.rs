//! The HTTP answers of a refusal or a failed call: the status comes from the contract's one
//! error table ([`ErrorKind::http_status`](ltsweep_proto::ErrorKind::http_status)), as the gRPC
//! code does.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ltsweep_proto::server::Refusal;
use ltsweep_proto::{ErrorKind, RemoteError};

/// The HTTP status of a kind of error, from the contract's table.
pub(crate) fn status_of(kind: Option<ErrorKind>) -> StatusCode {
    kind.and_then(|kind| StatusCode::from_u16(kind.http_status()).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A failed call to the coordinator, as the page shows it: the HTTP status of its kind, from
/// the contract's table.
pub(crate) fn remote_response(err: &RemoteError) -> Response {
    (status_of(err.kind()), err.message().to_owned()).into_response()
}

/// The page's own refusal (no or a wrong token, a role, a throttled address), from the same
/// table.
pub(crate) fn refusal_response(refusal: &Refusal) -> Response {
    (status_of(Some(refusal.kind())), refusal.to_string()).into_response()
}
