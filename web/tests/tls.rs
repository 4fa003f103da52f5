//! The page over HTTPS with the coordinator's certificate: a client that trusts the CA gets
//! the login form (with HSTS) and a `Secure`, `__Host-` session cookie; a plaintext client gets
//! no page. None of that calls the coordinator: the page's client points at no one.

use std::sync::Arc;
use std::time::Duration;

use ltsweep_proto::client::Connection;
use ltsweep_proto::server::{Access, AuthThrottle, ConnectionCaps, TlsFiles};
use ltsweep_proto::token::Token;
use ltsweep_web::{Web, WebConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

async fn exchange(mut stream: impl AsyncRead + AsyncWrite + Unpin, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    // A refused or broken connection reads as the bytes that came before it.
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_page_speaks_https_with_the_coordinators_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let tls = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&tls.cert, leaf.pem()).unwrap();
    std::fs::write(&tls.key, leaf_key.serialize_pem()).unwrap();

    let token = Token::generate();
    // A lazy channel: it would connect on the first call, and none is made.
    let nowhere = Connection::new("http://127.0.0.1:9", None, None).unwrap();
    let web = Web::new(
        nowhere.sweep_api(),
        Arc::new(AuthThrottle::new(10)),
        ConnectionCaps::new(64, 64),
        WebConfig {
            access: Access::shared(&token),
            tls: Some(tls),
            hosts: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            logins_per_minute: 10,
            max_sessions_per_credential: 10,
        },
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(web.serve(listener, async {
        let _ = stopped.await;
    }));

    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(client));
    let connect = || async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        connector.connect(name, tcp).await.unwrap()
    };

    let page = exchange(
        connect().await,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 401"), "{page}");
    assert!(page.contains(r#"id="login""#), "{page}");
    assert!(
        page.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "HSTS under TLS: {page}"
    );

    let body = format!("token={}", token.as_str());
    let login = exchange(
        connect().await,
        &format!(
            "POST /login HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: https://localhost:{port}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("a cookie in {login}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(cookie.contains("__Host-ltsweep_session="), "{cookie}");
    assert!(
        !cookie.contains(token.as_str()),
        "the cookie is not the token: {cookie}"
    );

    let plain = exchange(
        TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        !plain.contains("HTTP/1.1"),
        "plaintext got an answer: {plain}"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
