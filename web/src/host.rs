//! The `Host` a request names must be one this page serves, so that a web site cannot reach
//! the page through a name of its own (DNS rebinding: the site's name made to resolve to this
//! machine, its script then reading the page as the site's own, a coordinator without a token
//! on loopback included).
//!
//! Accepted: an IP address the page listens on (any, when it listens on every address: an
//! address in `Host` cannot be a site's name), `localhost` when the page listens on loopback
//! or every address, and the names given with `--http-host`. The port is not compared: a
//! proxy or a port-forward may put another one in front.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The hosts the page answers to.
#[derive(Debug)]
pub(crate) struct Hosts {
    listening: IpAddr,
    names: Vec<String>,
}

impl Hosts {
    pub(crate) fn new(listening: SocketAddr, names: &[String]) -> Hosts {
        Hosts {
            listening: listening.ip(),
            names: names.iter().map(|name| normalise(name)).collect(),
        }
    }

    /// Whether `host` (a `Host` header's value) names this page.
    fn serves(&self, host: &str) -> bool {
        let name = strip_port(host);
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.listening.is_unspecified() || ip == self.listening;
        }
        let name = normalise(name);
        if name == "localhost" {
            return self.listening.is_loopback() || self.listening.is_unspecified();
        }
        self.names.contains(&name)
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `host:port` → `host`; `[v6]:port` and `[v6]` → `v6`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Refuses a request whose `Host` this page does not serve (421), or that names none.
pub(crate) async fn check_host(
    State(hosts): State<Arc<Hosts>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match host {
        Some(host) if hosts.serves(&host) => next.run(request).await,
        Some(host) => (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "`{host}` is not a name this page serves: open it by an address it listens on or localhost, or give the coordinator `--http-host {}`",
                strip_port(&host)
            ),
        )
            .into_response(),
        None => (StatusCode::BAD_REQUEST, "a request needs a Host header").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_addresses_served_and_the_names_given_pass() {
        let loopback = Hosts::new("127.0.0.1:8080".parse().unwrap(), &[]);
        for host in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "localhost:8080",
            "LOCALHOST.",
        ] {
            assert!(loopback.serves(host), "{host}");
        }
        for host in [
            "evil.example:8080",
            "evil.example",
            "127.0.0.2:8080",
            "localhost.evil.example",
            "[::1]:8080",
            "",
        ] {
            assert!(!loopback.serves(host), "{host}");
        }
        let everywhere = Hosts::new(
            "0.0.0.0:8080".parse().unwrap(),
            &["Sweeps.Example.org".to_owned()],
        );
        for host in [
            "10.1.2.3:8080",
            "[fd00::1]:8080",
            "localhost",
            "sweeps.example.org",
            "sweeps.example.org.:443",
        ] {
            assert!(everywhere.serves(host), "{host}");
        }
        assert!(!everywhere.serves("other.example.org"));
        let one = Hosts::new("10.1.2.3:8080".parse().unwrap(), &[]);
        assert!(one.serves("10.1.2.3") && !one.serves("10.1.2.4") && !one.serves("localhost"));
    }
}
