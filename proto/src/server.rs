//! What the coordinator's gRPC server and the web page's HTTP server share, so that both ask
//! for the same thing in the same way: who a token is and which roles it holds ([`Access`],
//! [`Caller`]), the one check of a presented credential ([`authenticate`]) and of a role
//! ([`require`]), the wrong-token budget of a client address ([`AuthThrottle`]), the caps on
//! connections ([`ConnectionCaps`]), the deadlines on every accepted connection ([`GuardedIo`])
//! and the TLS identity both serve with ([`TlsFiles`]).
//!
//! Which role each RPC needs is the contract's table, [`crate::roles::RPC_ROLES`]; the page
//! guards each of its routes with the role of the RPC it stands for.

mod access;
mod caps;
mod connection;
mod throttle;

use std::net::IpAddr;
use std::path::PathBuf;

pub use access::{Access, Caller, SameToken};
pub use caps::{ConnectionCaps, ConnectionPermit};
pub use connection::{ConnectionInfo, Deadlines, GuardedIo, InFlight, RequestGuard};
pub use throttle::{AddressRate, AuthThrottle};

use crate::remote::ErrorKind;
use crate::roles::Role;

/// The PEM files of a server's TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A call or request the gate turns away; its [`ErrorKind`] gives the gRPC code and the HTTP
/// status from the contract's one table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Missing or wrong bearer token, or more than one.
    #[error(
        "missing or wrong token: send one `authorization: Bearer <token>` with a token of the coordinator's"
    )]
    Unauthenticated,
    /// A token without the role the call needs; the message names the role and its flag.
    #[error("{0}")]
    PermissionDenied(String),
    /// A wrong token from an address that sent too many; the message names the budget's flag.
    #[error("{0}")]
    Throttled(String),
}

impl Refusal {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Unauthenticated => ErrorKind::Unauthenticated,
            Self::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Self::Throttled(_) => ErrorKind::Exhausted,
        }
    }
}

/// The caller a set of `authorization` values makes; `Err` for a call to refuse. `remote` is
/// the client's address, for the throttle; `what` says where (a call, the page), for its log.
///
/// Exactly one credential is tried: several values are refused, not tried in turn, and
/// counted as one wrong token. A right token is accepted whatever its address sent before;
/// only wrong ones meet the throttle.
pub fn authenticate<'a>(
    access: &Access,
    throttle: &AuthThrottle,
    mut values: impl Iterator<Item = &'a [u8]>,
    remote: Option<IpAddr>,
    what: &str,
) -> Result<Caller, Refusal> {
    if access.is_open() {
        return Ok(Caller::NO_TOKEN);
    }
    let value = match (values.next(), values.next()) {
        (Some(value), None) => value,
        (None, _) => return Err(Refusal::Unauthenticated),
        // Several tokens at once are guesses, counted as one wrong token.
        (Some(_), Some(_)) => return Err(throttle.wrong_token(remote, what)),
    };
    value
        .strip_prefix(b"Bearer ")
        .and_then(|token| access.caller(token))
        .ok_or_else(|| throttle.wrong_token(remote, what))
}

/// Refuses a caller without the role a call needs, naming the token that has it.
pub fn require(caller: &Caller, role: Role, call: &str) -> Result<(), Refusal> {
    if caller.roles.allows(role) {
        Ok(())
    } else {
        Err(Refusal::PermissionDenied(format!(
            "the {} may not call {call}: it needs the {role} role, which the token of the coordinator's {} holds",
            caller.credential,
            role.token_flag()
        )))
    }
}
