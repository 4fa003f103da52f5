//! A small JSON client over HTTP/1.1 for MLflow's REST API, on hyper (already in the tree
//! through tonic): a connection a call, a deadline on each, answers read up to a bound. Over
//! https with rustls and the system's root certificates; a token never goes over plain http
//! to a host other than loopback unless asked to (`--insecure`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The most bytes of one answer read from the server: MLflow's answers to the calls made here
/// (a page of 1,000 runs with their tags at most) are far smaller.
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

/// How long one call may take, connection included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A tracking server: `http[s]://host[:port][/prefix]`.
#[derive(Clone)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// The path the server is mounted under, without a trailing slash ("" at the root).
    prefix: String,
    /// `Authorization: Bearer` (MLFLOW_TRACKING_TOKEN), for a server behind a token.
    token: Option<String>,
    /// Set for https: every connection is TLS, checked against these roots.
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Endpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("prefix", &self.prefix)
            .field("https", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The server at `uri`, https checked against the system's root certificates (and
    /// `SSL_CERT_FILE`). A token over plain http is refused unless the host is loopback or
    /// `insecure` is given.
    pub fn parse(uri: &str, token: Option<String>, insecure: bool) -> Result<Endpoint, String> {
        Self::parse_with_roots(uri, token, insecure, system_roots)
    }

    /// [`Endpoint::parse`] with the roots of https given by `roots` (read only for https).
    fn parse_with_roots(
        uri: &str,
        token: Option<String>,
        insecure: bool,
        roots: impl FnOnce() -> Result<RootCertStore, String>,
    ) -> Result<Endpoint, String> {
        let parsed: hyper::Uri = uri
            .parse()
            .map_err(|e| format!("--tracking-uri {uri}: not a URI ({e})"))?;
        let https = match parsed.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => {
                return Err(format!(
                    "--tracking-uri {uri}: give the tracking server's address, https://host[:port] (or http:// on loopback)"
                ));
            }
        };
        let host = parsed
            .host()
            .ok_or_else(|| format!("--tracking-uri {uri}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !https && token.is_some() && !insecure && !is_loopback(&host) {
            return Err(format!(
                "--tracking-uri {uri}: MLFLOW_TRACKING_TOKEN would travel unencrypted over http to {host}, which is not loopback; use https://, or give --insecure to send it anyway"
            ));
        }
        let tls = if https {
            let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("--tracking-uri {uri}: {e}"))?
                .with_root_certificates(roots()?)
                .with_no_client_auth();
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Endpoint {
            host,
            port: parsed.port_u16().unwrap_or(if https { 443 } else { 80 }),
            prefix: parsed.path().trim_end_matches('/').to_owned(),
            token,
            tls,
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
        match &self.tls {
            None => exchange(stream, request, path).await,
            Some(connector) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("--tracking-uri: {}: {e}", self.host))?;
                let stream = connector.connect(name, stream).await.map_err(|e| {
                    format!(
                        "no TLS connection to the tracking server {}:{}: {e}",
                        self.host, self.port
                    )
                })?;
                exchange(stream, request, path).await
            }
        }
    }
}

/// Sends one request on a fresh connection and reads the answer up to [`MAX_ANSWER_BYTES`].
async fn exchange<Io>(
    io: Io,
    request: Request<Full<Bytes>>,
    path: &str,
) -> Result<(StatusCode, Bytes), String>
where
    Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    // The connection is driven on its own until the answer is read, then dropped.
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| {
            format!("{path}: the answer could not be read (over {MAX_ANSWER_BYTES} bytes?): {e}")
        })?
        .to_bytes();
    driver.abort();
    Ok((status, bytes))
}

/// Whether a host is this machine: `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The system's root certificates (with `SSL_CERT_FILE` and `SSL_CERT_DIR` honoured).
fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!(
            "--tracking-uri: no root certificate found to check the server's with ({:?}): install the system's CA certificates, or point SSL_CERT_FILE at a bundle",
            found.errors
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_roots() -> Result<RootCertStore, String> {
        Ok(RootCertStore::empty())
    }

    #[test]
    fn http_and_https_addresses_are_taken() {
        let endpoint = Endpoint::parse("http://127.0.0.1:5000/mlflow/", None, false).unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("127.0.0.1", 5000));
        assert_eq!(endpoint.prefix, "/mlflow");
        assert!(endpoint.tls.is_none());
        let endpoint = Endpoint::parse_with_roots(
            "https://mlflow.example.com/team",
            Some("secret".into()),
            false,
            no_roots,
        )
        .unwrap();
        assert_eq!(
            (
                endpoint.host.as_str(),
                endpoint.port,
                endpoint.prefix.as_str()
            ),
            ("mlflow.example.com", 443, "/team")
        );
        assert!(endpoint.tls.is_some(), "https connects over TLS");
        assert!(Endpoint::parse("file:///tmp/mlruns", None, false).is_err());
    }

    /// A one-call https server with a certificate for `localhost`: answers `{}` and hands
    /// back the request head it read.
    async fn https_server() -> (
        u16,
        tokio_rustls::rustls::pki_types::CertificateDer<'static>,
        tokio::task::JoinHandle<String>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls::ServerConfig;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                tls.read_exact(&mut byte).await.unwrap();
                head.push(byte[0]);
            }
            tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                .await
                .unwrap();
            tls.shutdown().await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (port, cert, served)
    }

    #[tokio::test]
    async fn https_carries_the_call_and_its_token_over_tls() {
        let (port, cert, served) = https_server().await;
        let endpoint = Endpoint::parse_with_roots(
            &format!("https://localhost:{port}/mlflow"),
            Some("secret".into()),
            false,
            || {
                let mut roots = RootCertStore::empty();
                roots.add(cert).unwrap();
                Ok(roots)
            },
        )
        .unwrap();
        let (status, body) = endpoint
            .call(
                Method::GET,
                "/api/2.0/mlflow/experiments/search",
                "application/json",
                Bytes::new(),
            )
            .await
            .unwrap();
        assert_eq!((status, body.as_ref()), (StatusCode::OK, b"{}".as_ref()));
        let head = served.await.unwrap();
        assert!(
            head.starts_with("GET /mlflow/api/2.0/mlflow/experiments/search HTTP/1.1"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer secret"),
            "{head}"
        );
    }

    #[test]
    fn a_token_goes_over_plain_http_only_to_loopback_or_with_insecure() {
        let token = || Some("secret".to_owned());
        let refused =
            Endpoint::parse("http://mlflow.example.com:5000", token(), false).unwrap_err();
        assert!(refused.contains("MLFLOW_TRACKING_TOKEN"), "{refused}");
        assert!(refused.contains("--insecure"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
        assert!(Endpoint::parse("http://10.0.0.5:5000", token(), false).is_err());
        for local in [
            "http://127.0.0.1:5000",
            "http://localhost:5000",
            "http://[::1]:5000",
        ] {
            Endpoint::parse(local, token(), false).unwrap();
        }
        Endpoint::parse("http://mlflow.example.com:5000", token(), true).unwrap();
        // Without a token there is nothing to leak.
        Endpoint::parse("http://mlflow.example.com:5000", None, false).unwrap();
    }
}
