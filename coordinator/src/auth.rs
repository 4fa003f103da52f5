//! The shared-token check in front of both ltsweep services (health and reflection stay open).

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::CoordinatorError;

/// Lets a call through when no token is set, or when it carries `authorization: Bearer <token>`.
#[derive(Clone)]
pub(crate) struct BearerAuth {
    /// The whole expected header value, `Bearer <token>`.
    expected: Option<Arc<[u8]>>,
}

/// Says whether a token is set, never the token.
impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("token", &self.expected.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl BearerAuth {
    pub(crate) fn new(token: Option<&str>) -> Self {
        Self {
            expected: token.map(|t| format!("Bearer {t}").into_bytes().into()),
        }
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, expected) {
            Ok(request)
        } else {
            Err(CoordinatorError::Unauthenticated.into())
        }
    }
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(auth: &mut BearerAuth, header: Option<&str>) -> Result<(), tonic::Code> {
        let mut request = Request::new(());
        if let Some(header) = header {
            request
                .metadata_mut()
                .insert("authorization", header.parse().unwrap());
        }
        auth.call(request).map(drop).map_err(|s| s.code())
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        let mut auth = BearerAuth::new(Some("s3cret"));
        assert_eq!(call(&mut auth, Some("Bearer s3cret")), Ok(()));
        assert_eq!(
            call(&mut auth, Some("Bearer s3cre")),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            call(&mut auth, Some("s3cret")),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(call(&mut auth, None), Err(tonic::Code::Unauthenticated));
        assert_eq!(call(&mut BearerAuth::new(None), None), Ok(()));
        let printed = format!("{auth:?}");
        assert!(!printed.contains("s3cret"), "{printed}");
    }
}
