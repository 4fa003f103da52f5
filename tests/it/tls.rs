//! TLS end to end: certificates made at test time by a CA of the test's own; the CLI trusts the
//! coordinator through --tls-ca, and is refused without the CA or in plaintext.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::cluster_support::{Process, listening_address};
use crate::harness::register;
use crate::support::{ltsweep, write};

register!(the_cli_needs_the_ca_and_tls);
fn the_cli_needs_the_ca_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let ca_pem = write(dir.path(), "ca.pem", &ca.pem());
    let cert = write(dir.path(), "cert.pem", &leaf.pem());
    let key = write(dir.path(), "key.pem", &leaf_key.serialize_pem());

    let mut command = ltsweep();
    command
        .args(["coordinator", "--listen", "127.0.0.1:0"])
        .args(["--state-dir", dir.path().join("state").to_str().unwrap()])
        .args([
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ])
        .env("LTSWEEP_TOKEN", crate::cluster_support::TOKEN);
    let coordinator = Process::spawn(command);
    let port = listening_address(&coordinator)
        .rsplit(':')
        .next()
        .expect("an address ends in its port")
        .to_owned();
    let sweeps = |url: &str, ca: Option<&std::path::Path>| {
        let mut command = ltsweep();
        command
            .args(["sweeps", "--coordinator", url])
            .env("LTSWEEP_TOKEN", crate::cluster_support::TOKEN);
        if let Some(ca) = ca {
            command.args(["--tls-ca", ca.to_str().unwrap()]);
        }
        command.output().unwrap()
    };
    let https = format!("https://localhost:{port}");
    let trusted = sweeps(&https, Some(&ca_pem));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let untrusted = sweeps(&https, None);
    assert!(
        !untrusted.status.success(),
        "a client without the CA was served"
    );
    let plaintext = sweeps(&format!("http://localhost:{port}"), None);
    assert!(!plaintext.status.success(), "a plaintext client was served");
}
