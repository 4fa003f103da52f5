//! Connecting to a coordinator: the channel (plaintext or TLS) and the bearer token every call
//! carries; and the typed clients over it, [`WorkerApi`] and [`SweepApi`], which take and answer
//! the domain types and turn every failure into one [`RemoteError`](crate::RemoteError).
//!
//! A [`SweepApi`] also runs over the coordinator's service in the same process
//! ([`SweepApi::in_process`]), as the web page calls it: the same messages, the same paging and
//! the same errors as over the network, without a socket.

mod user;
mod worker;

pub use user::{Submitted, SweepApi, Watch, Which};
pub use worker::{
    Failure, Lease, Polled, Progress, Registered, Registration, Retry, StageOneModel, WorkerApi,
};

use std::path::Path;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use crate::pb::sweep_service_client::SweepServiceClient;
use crate::pb::worker_service_client::WorkerServiceClient;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{0}` is not a coordinator address (e.g. http://head:7070)")]
    BadAddress(String),
    #[error("cannot read the CA certificate {path}: {source}")]
    Ca {
        path: String,
        source: std::io::Error,
    },
    #[error("the token has characters a gRPC header cannot carry")]
    BadToken,
    #[error("the worker secret has characters a gRPC header cannot carry")]
    BadSecret,
    #[error("TLS: {0}")]
    Tls(tonic::transport::Error),
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone, Debug)]
pub struct Auth {
    token: Option<MetadataValue<Ascii>>,
    /// A worker registration's secret, on the raw clients of tests that act as a worker.
    worker_secret: Option<MetadataValue<Ascii>>,
}

impl Auth {
    fn new(token: Option<&str>) -> Result<Self, ClientError> {
        let Some(token) = token else {
            return Ok(Auth {
                token: None,
                worker_secret: None,
            });
        };
        let mut value: MetadataValue<Ascii> = format!("Bearer {token}")
            .parse()
            .map_err(|_| ClientError::BadToken)?;
        // Debug prints (of the client, of a request) then leave the token out.
        value.set_sensitive(true);
        Ok(Auth {
            token: Some(value),
            worker_secret: None,
        })
    }
}

impl Interceptor for Auth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        if let Some(secret) = &self.worker_secret {
            request
                .metadata_mut()
                .insert(crate::WORKER_SECRET_METADATA, secret.clone());
        }
        Ok(request)
    }
}

pub type WorkerClient = WorkerServiceClient<InterceptedService<Channel, Auth>>;
pub type SweepClient = SweepServiceClient<InterceptedService<Channel, Auth>>;

/// The most bytes of one message either way: a sweep's results with per-class metrics of every
/// evaluation, a checkpoint's chunk.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// What a typed client's calls travel over: a channel to a coordinator, or a coordinator's
/// service in this process (which never fails as a service). The error is the channel's, a
/// concrete type: with a boxed `dyn Error` the compiler cannot prove a handler's future `Send`.
type Transport = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    tonic::transport::Error,
>;

/// How to reach a coordinator.
#[derive(Clone, Debug)]
pub struct Connection {
    channel: Channel,
    auth: Auth,
}

impl Connection {
    /// A lazy channel: it connects on first use and reconnects by itself after a failure, so a
    /// coordinator that is down or restarting is retried, not fatal.
    pub fn new(
        address: &str,
        token: Option<&str>,
        tls_ca: Option<&Path>,
    ) -> Result<Self, ClientError> {
        let mut endpoint = Endpoint::from_shared(address.to_owned())
            .map_err(|_| ClientError::BadAddress(address.to_owned()))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if let Some(ca) = tls_ca {
            let pem = std::fs::read(ca).map_err(|source| ClientError::Ca {
                path: ca.display().to_string(),
                source,
            })?;
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(ClientError::Tls)?;
        }
        Ok(Self {
            auth: Auth::new(token)?,
            channel: endpoint.connect_lazy(),
        })
    }

    /// The worker's typed client.
    pub fn worker_api(&self) -> WorkerApi {
        WorkerApi::new(self.worker())
    }

    /// The user's typed client.
    pub fn sweep_api(&self) -> SweepApi {
        let channel = InterceptedService::new(self.channel.clone(), self.auth.clone());
        SweepApi::over(BoxCloneSyncService::new(
            channel.map_response(|response| response.map(tonic::body::Body::new)),
        ))
    }

    /// The generated client, for tests that send what the typed one never would.
    pub fn worker(&self) -> WorkerClient {
        WorkerServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// The generated client acting as the worker a registration answered `secret` to, for
    /// tests that send what the typed one never would.
    pub fn worker_as(&self, secret: &str) -> Result<WorkerClient, ClientError> {
        let mut secret: MetadataValue<Ascii> =
            secret.parse().map_err(|_| ClientError::BadSecret)?;
        secret.set_sensitive(true);
        let auth = Auth {
            worker_secret: Some(secret),
            ..self.auth.clone()
        };
        Ok(
            WorkerServiceClient::with_interceptor(self.channel.clone(), auth)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
    }

    /// The generated client, for tests that send what the typed one never would.
    pub fn sweeps(&self) -> SweepClient {
        SweepServiceClient::with_interceptor(self.channel.clone(), self.auth.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_not_in_a_debug_print() {
        let auth = Auth::new(Some("s3cret-token")).unwrap();
        let printed = format!("{auth:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(Auth::new(Some("two\nlines")).is_err());
    }
}
