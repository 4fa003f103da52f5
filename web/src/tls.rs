//! HTTPS with the coordinator's certificate and key, on the TLS stack tonic uses for gRPC.
//! Each handshake runs in its connection's own task, within `--header-read-timeout` (see
//! `serve`), so a client that stalls its handshake holds up no other connection.

use std::sync::Arc;

use ltsweep_proto::server::TlsFiles;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::WebError;

/// Reads the PEM files into an acceptor; a file that cannot be read or parsed is named.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, WebError> {
    let bad = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        WebError::Tls(format!("the TLS {what} {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad("certificate", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(bad("certificate", &files.cert, &"holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad("key", &files.key, &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| bad("certificate and key", &files.cert, &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
