//! The gate in front of every gRPC call: it finds the caller's role from its token and lets the
//! call through only when [`ltsweep_proto::roles::RPC_ROLES`] gives that role the call. Health
//! and reflection stay open (probes and `grpcurl` need no token); an `ltsweep.v1` RPC missing
//! from the table is refused to everyone.
//!
//! Exactly one credential is tried per call: several `authorization` values are refused, not
//! tried in turn. Wrong tokens past an address's budget are refused as throttled; a right one
//! always passes (see [`AuthThrottle`]).
//!
//! The gate also tells the connection about its requests: each is in flight until its
//! response's body ends, and only one the gate let through with a caller lifts the
//! connection's first-request deadline (see [`GuardedIo`](ltsweep_proto::server::GuardedIo)).
//! Health checks and refused calls keep no connection open.

use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::HeaderMap;
use ltsweep_proto::roles::{Role, role_of};
use ltsweep_proto::server::{
    Access, AuthThrottle, Caller, ConnectionInfo, InFlight, Refusal, authenticate, require,
};
use tonic::Status;
use tonic::transport::server::TlsConnectInfo;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::CoordinatorError;

/// Services anyone may call: the standard health and reflection services.
const OPEN_SERVICES: [&str; 2] = ["/grpc.health.v1.Health/", "/grpc.reflection.v1."];
/// The protocol's own services, each RPC of which must be in the role table.
const PROTOCOL: &str = "/ltsweep.v1.";

/// What the gate checks against.
#[derive(Debug)]
pub(crate) struct Gate {
    pub(crate) access: Access,
    pub(crate) throttle: Arc<AuthThrottle>,
}

impl Gate {
    /// `Ok(None)` lets an open call through without a caller.
    fn admit(
        &self,
        path: &str,
        headers: &HeaderMap,
        remote: Option<IpAddr>,
    ) -> Result<Option<Caller>, Refusal> {
        if OPEN_SERVICES.iter().any(|open| path.starts_with(open)) {
            return Ok(None);
        }
        let role = match role_of(path) {
            Some(role) => role,
            None if path.starts_with(PROTOCOL) => {
                return Err(Refusal::PermissionDenied(format!(
                    "no one may call {path}: it is not in this coordinator's role table"
                )));
            }
            // Not ours: the router answers UNIMPLEMENTED, to a caller with a token.
            None => Role::Viewer,
        };
        let values = headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes());
        let caller = authenticate(&self.access, &self.throttle, values, remote, path)?;
        let call = path.rsplit('/').next().unwrap_or(path);
        require(&caller, role, call)?;
        Ok(Some(caller))
    }
}

/// The [`Gate`] as a layer of tonic's server.
#[derive(Clone, Debug)]
pub(crate) struct GateLayer(pub(crate) Arc<Gate>);

impl<S> Layer<S> for GateLayer {
    type Service = GateService<S>;

    fn layer(&self, inner: S) -> GateService<S> {
        GateService {
            gate: Arc::clone(&self.0),
            inner,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct GateService<S> {
    gate: Arc<Gate>,
    inner: S,
}

/// The connection a request came on: plain, or under TLS.
fn connection_of<B>(request: &http::Request<B>) -> Option<&ConnectionInfo> {
    let extensions = request.extensions();
    extensions.get::<ConnectionInfo>().or_else(|| {
        extensions
            .get::<TlsConnectInfo<ConnectionInfo>>()
            .map(TlsConnectInfo::get_ref)
    })
}

impl<S, B> Service<http::Request<B>> for GateService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let connection = connection_of(&request).cloned();
        let remote = connection.as_ref().and_then(|c| c.remote).map(|a| a.ip());
        let in_flight = connection.as_ref().map(ConnectionInfo::request_started);
        match self
            .gate
            .admit(request.uri().path(), request.headers(), remote)
        {
            Ok(caller) => {
                if let Some(caller) = caller {
                    if let Some(connection) = &connection {
                        connection.authenticated();
                    }
                    request.extensions_mut().insert(caller);
                }
                let call = self.inner.call(request);
                Box::pin(async move {
                    let response = call.await?;
                    Ok(response.map(|body| tonic::body::Body::new(InFlight::new(body, in_flight))))
                })
            }
            Err(err) => {
                let response = Status::from(CoordinatorError::from(err)).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ltsweep_proto::roles::{RPC_ROLES, Roles};
    use ltsweep_proto::token::Token;

    use super::*;

    fn token(fill: char) -> Token {
        Token::parse(&fill.to_string().repeat(40), "test").unwrap()
    }

    fn gate(access: Access) -> Gate {
        Gate {
            access,
            throttle: Arc::new(AuthThrottle::new(100)),
        }
    }

    fn headers(values: &[String]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(http::header::AUTHORIZATION, value.parse().unwrap());
        }
        map
    }

    fn code(gate: &Gate, path: &str, values: &[String]) -> Result<(), tonic::Code> {
        gate.admit(path, &headers(values), None)
            .map(drop)
            .map_err(|e| e.kind().code())
    }

    #[test]
    fn every_rpc_takes_its_role_and_nothing_else() {
        let (w, u, v) = (token('w'), token('u'), token('v'));
        let gate = gate(Access::by_role(Some(&w), Some(&u), Some(&v)).unwrap());
        let bearer = |t: &Token| vec![format!("Bearer {}", t.as_str())];
        for (path, role) in RPC_ROLES {
            for (held, roles) in [(&w, Roles::WORKER), (&u, Roles::USER), (&v, Roles::VIEWER)] {
                let expected = if roles.allows(role) {
                    Ok(())
                } else {
                    Err(tonic::Code::PermissionDenied)
                };
                assert_eq!(
                    code(&gate, path, &bearer(held)),
                    expected,
                    "{path} {roles:?}"
                );
            }
            assert_eq!(code(&gate, path, &[]), Err(tonic::Code::Unauthenticated));
        }
        let refused = gate
            .admit(
                "/ltsweep.v1.SweepService/DeleteSweep",
                &headers(&bearer(&w)),
                None,
            )
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("DeleteSweep") && refused.contains("worker token"),
            "{refused}"
        );
        assert!(refused.contains("--user-token-file"), "{refused}");
    }

    #[test]
    fn one_credential_per_call_and_open_services_stay_open() {
        let u = token('u');
        let only_users = gate(Access::by_role(None, Some(&u), None).unwrap());
        let right = format!("Bearer {}", u.as_str());
        let wrong = format!("Bearer {}", "x".repeat(40));
        let path = "/ltsweep.v1.SweepService/ListSweeps";
        assert_eq!(
            code(&only_users, path, std::slice::from_ref(&right)),
            Ok(())
        );
        assert_eq!(
            code(&only_users, path, &[wrong.clone(), right.clone()]),
            Err(tonic::Code::Unauthenticated),
            "several credentials are refused, not tried in turn"
        );
        assert_eq!(
            code(&only_users, path, &[u.as_str().to_owned()]),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            code(&only_users, "/grpc.health.v1.Health/Check", &[]),
            Ok(())
        );
        assert_eq!(
            code(
                &only_users,
                "/ltsweep.v1.SweepService/NewCall",
                std::slice::from_ref(&right)
            ),
            Err(tonic::Code::PermissionDenied),
            "an RPC outside the table is no one's"
        );
        let open = gate(Access::open());
        assert_eq!(code(&open, path, &[]), Ok(()));
        assert_eq!(
            code(&open, "/ltsweep.v1.SweepService/NewCall", &[]),
            Err(tonic::Code::PermissionDenied)
        );
    }
}
