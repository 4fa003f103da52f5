//! Who the coordinator (and its page) lets in: its tokens and the roles each holds.
//!
//! A coordinator has no token (everyone holds every role: a laptop, loopback only unless told
//! otherwise), one shared token holding every role (`--token-file`), or a token per role
//! (`--worker-token-file`, `--user-token-file`, `--viewer-token-file`). A presented token is
//! compared with every configured one by the SHA-256 of each, in constant time: the comparison
//! reveals neither which byte differs nor a token's length.

use sha2::{Digest, Sha256};

use crate::roles::Roles;
use crate::token::Token;

/// Who made a call, as the gate (gRPC) or the web page found it; carried in the request's
/// extensions. `credential` names the token (never holds it): streams are counted by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub credential: &'static str,
    pub roles: Roles,
}

impl Caller {
    /// A call from inside this process (the embedded coordinator of `ltsweep run`, a test).
    pub const IN_PROCESS: Caller = Caller {
        credential: "in-process",
        roles: Roles::ALL,
    };
    /// Anyone, on a coordinator without a token.
    pub const NO_TOKEN: Caller = Caller {
        credential: "no token",
        roles: Roles::ALL,
    };
}

#[derive(Clone, PartialEq, Eq)]
struct Credential {
    name: &'static str,
    digest: [u8; 32],
    roles: Roles,
}

/// The coordinator's tokens. Its `Debug` print names them, never their values.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Access {
    credentials: Vec<Credential>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(&str, Roles)> =
            self.credentials.iter().map(|c| (c.name, c.roles)).collect();
        f.debug_struct("Access").field("tokens", &names).finish()
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Access {
    /// No token: every caller holds every role.
    pub fn open() -> Access {
        Access::default()
    }

    /// One token holding every role (`--token-file`, `LTSWEEP_TOKEN`).
    pub fn shared(token: &Token) -> Access {
        Access {
            credentials: vec![Credential {
                name: "token",
                digest: digest(token.as_str().as_bytes()),
                roles: Roles::ALL,
            }],
        }
    }

    /// A token per role; the ones not given are nobody's. Two roles with the same token are
    /// refused: that token would hold both, which is what separate tokens are for.
    pub fn by_role(
        worker: Option<&Token>,
        user: Option<&Token>,
        viewer: Option<&Token>,
    ) -> Result<Access, SameToken> {
        let mut credentials: Vec<Credential> = Vec::new();
        for (name, token, roles) in [
            ("worker token", worker, Roles::WORKER),
            ("user token", user, Roles::USER),
            ("viewer token", viewer, Roles::VIEWER),
        ] {
            let Some(token) = token else { continue };
            let digest = digest(token.as_str().as_bytes());
            if let Some(same) = credentials.iter().find(|c| c.digest == digest) {
                return Err(SameToken {
                    first: same.name,
                    second: name,
                });
            }
            credentials.push(Credential {
                name,
                digest,
                roles,
            });
        }
        Ok(Access { credentials })
    }

    /// Whether no token is set: everyone holds every role.
    pub fn is_open(&self) -> bool {
        self.credentials.is_empty()
    }

    /// Whether one token holds every role (a laptop's or a single user's set-up).
    pub fn is_shared(&self) -> bool {
        self.credentials.iter().any(|c| c.roles == Roles::ALL)
    }

    /// The caller a presented token makes, if it is one of the coordinator's. Every
    /// configured token is compared, whichever matches.
    pub fn caller(&self, presented: &[u8]) -> Option<Caller> {
        let presented = digest(presented);
        let mut found = None;
        for credential in &self.credentials {
            if constant_time_eq(&presented, &credential.digest) {
                found = Some(Caller {
                    credential: credential.name,
                    roles: credential.roles,
                });
            }
        }
        found
    }

    /// The caller the token named `credential` makes (for a session made with it).
    pub fn caller_named(&self, credential: &str) -> Option<Caller> {
        self.credentials
            .iter()
            .find(|c| c.name == credential)
            .map(|c| Caller {
                credential: c.name,
                roles: c.roles,
            })
    }

    /// The SHA-256 of the token named `credential`: what the web page's session cookies are
    /// derived from, so that a session ends with its token.
    pub fn digest_of(&self, credential: &str) -> Option<[u8; 32]> {
        self.credentials
            .iter()
            .find(|c| c.name == credential)
            .map(|c| c.digest)
    }

    /// The names of the tokens set, for the start-up log.
    pub fn names(&self) -> Vec<&'static str> {
        self.credentials.iter().map(|c| c.name).collect()
    }
}

/// Two roles given the same token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {first} and the {second} are the same token: give each role its own")]
pub struct SameToken {
    pub first: &'static str,
    pub second: &'static str,
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use crate::roles::Role;

    use super::*;

    fn token(fill: char) -> Token {
        Token::parse(&fill.to_string().repeat(40), "test").unwrap()
    }

    #[test]
    fn each_token_holds_its_roles_only() {
        let (w, u, v) = (token('w'), token('u'), token('v'));
        let access = Access::by_role(Some(&w), Some(&u), Some(&v)).unwrap();
        let roles = |t: &Token| access.caller(t.as_str().as_bytes()).unwrap().roles;
        assert!(roles(&w).allows(Role::Worker) && !roles(&w).allows(Role::User));
        assert!(roles(&u).allows(Role::User) && roles(&u).allows(Role::Viewer));
        assert!(!roles(&u).allows(Role::Worker));
        assert!(roles(&v).allows(Role::Viewer) && !roles(&v).allows(Role::User));
        assert_eq!(access.caller(b"wwww"), None);
        assert_eq!(
            access.caller(w.as_str().as_bytes()).unwrap().credential,
            "worker token"
        );
        let printed = format!("{access:?}");
        assert!(!printed.contains("wwww"), "{printed}");
        assert!(!access.is_open() && !access.is_shared());
    }

    #[test]
    fn one_token_for_two_roles_is_refused() {
        let same = token('s');
        let err = Access::by_role(Some(&same), Some(&same), None).unwrap_err();
        assert!(
            err.to_string().contains("worker token and the user token"),
            "{err}"
        );
        let shared = Access::shared(&same);
        assert!(shared.is_shared());
        assert_eq!(
            shared.caller(same.as_str().as_bytes()).unwrap().roles,
            Roles::ALL
        );
        assert!(Access::open().is_open());
    }
}
