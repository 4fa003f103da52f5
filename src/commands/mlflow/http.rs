//! A small JSON client over HTTP/1.1 for MLflow's REST API, on hyper (already in the tree
//! through tonic): a connection a call, a deadline on each, answers read up to a bound.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The most bytes of one answer read from the server: MLflow's answers to the calls made here
/// (a page of 1,000 runs with their tags at most) are far smaller.
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

/// How long one call may take, connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A tracking server: `http://host:port[/prefix]`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// The path the server is mounted under, without a trailing slash ("" at the root).
    prefix: String,
    /// `Authorization: Bearer` (MLFLOW_TRACKING_TOKEN), for a server behind a token.
    token: Option<String>,
}

impl Endpoint {
    pub fn parse(uri: &str, token: Option<String>) -> Result<Endpoint, String> {
        let parsed: hyper::Uri = uri
            .parse()
            .map_err(|e| format!("--tracking-uri {uri}: not a URI ({e})"))?;
        match parsed.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(format!(
                    "--tracking-uri {uri}: https is not supported; reach the server over http \
                     (on loopback, or through an SSH tunnel)"
                ));
            }
            _ => {
                return Err(format!(
                    "--tracking-uri {uri}: give the tracking server's address, http://host:port"
                ));
            }
        }
        let host = parsed
            .host()
            .ok_or_else(|| format!("--tracking-uri {uri}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Endpoint {
            host,
            port: parsed.port_u16().unwrap_or(80),
            prefix: parsed.path().trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// One call: `path` under the server's prefix (with its query), a body, and the answer's
    /// status and bytes.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        tokio::time::timeout(
            CALL_TIMEOUT,
            self.call_now(method, path, content_type, body),
        )
        .await
        .map_err(|_| {
            format!(
                "{path}: no answer from {}:{} within {} s",
                self.host,
                self.port,
                CALL_TIMEOUT.as_secs()
            )
        })?
    }

    async fn call_now(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes), String> {
        let address = (self.host.as_str(), self.port);
        let stream = TcpStream::connect(address).await.map_err(|e| {
            format!(
                "cannot reach the tracking server {}:{}: {e}",
                self.host, self.port
            )
        })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        // The connection is driven on its own until the answer is read, then dropped.
        let driver = tokio::spawn(connection);
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, content_type);
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("{path}: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| {
                format!(
                    "{path}: the answer could not be read (over {MAX_ANSWER_BYTES} bytes?): {e}"
                )
            })?
            .to_bytes();
        driver.abort();
        Ok((status, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_addresses_are_taken() {
        let endpoint = Endpoint::parse("http://127.0.0.1:5000/mlflow/", None).unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("127.0.0.1", 5000));
        assert_eq!(endpoint.prefix, "/mlflow");
        assert!(
            Endpoint::parse("https://mlflow.example.com", None)
                .unwrap_err()
                .contains("https is not supported")
        );
        assert!(Endpoint::parse("file:///tmp/mlruns", None).is_err());
    }
}
