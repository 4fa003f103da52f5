//! Session cookies: what the login form gives a browser instead of the token.
//!
//! A cookie is `NONCE.EXPIRY.MAC`: 16 random bytes naming the session, the unix second it
//! ends, and an HMAC-SHA256 of both and of the SHA-256 of the token it was made for, keyed by a
//! key drawn when the process starts. So a cookie is worth nothing after a restart or once its
//! token changes, and it is not the token: a stolen cookie opens the page for a while, never
//! gRPC. The page also keeps each live session's nonce; logging out forgets it, so the cookie
//! is dead even if a copy of it lives on.
//!
//! Each token holds at most `--max-sessions-per-credential` live sessions: a login past it
//! ends that token's own oldest session, never another token's, so no holder of one token can
//! log the holders of another out by logging in over and over. The table holds at most that
//! many for each token that may log in (the viewer's and the user's, or the one shared token).
//!
//! Under TLS the cookie is `__Host-ltsweep_session` and `Secure`: a browser sends it over
//! HTTPS only, for this host only, and no sibling domain can set one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ltsweep_domain::time::unix_ms_now;
use ltsweep_proto::server::{Access, Caller};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::WebError;

/// How long a session lasts.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);

const NONCE_BYTES: usize = 16;

/// The cookie's name: `__Host-` under TLS, which browsers accept only with `Secure`, `Path=/`
/// and no `Domain`.
pub(crate) fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-ltsweep_session"
    } else {
        "ltsweep_session"
    }
}

/// The `Set-Cookie` value of a new session.
pub(crate) fn set_cookie(secure: bool, value: &str) -> String {
    let secure_flag = if secure { "; Secure" } else { "" };
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure_flag}",
        cookie_name(secure),
        LIFETIME.as_secs()
    )
}

/// The `Set-Cookie` value that removes the cookie.
pub(crate) fn clear_cookie(secure: bool) -> String {
    let secure_flag = if secure { "; Secure" } else { "" };
    format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure_flag}",
        cookie_name(secure)
    )
}

#[derive(Clone, Copy, Debug)]
struct Session {
    credential: &'static str,
    expires: u64,
}

/// The page's sessions.
pub(crate) struct Sessions {
    key: hmac::Key,
    random: SystemRandom,
    /// Live sessions one credential may hold.
    per_credential: usize,
    live: Mutex<HashMap<[u8; NONCE_BYTES], Session>>,
}

fn now_secs() -> u64 {
    unix_ms_now() / 1000
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// What the MAC covers: the session, its end, and the token it was made for.
fn signed(nonce: &[u8], expires: u64, token_digest: &[u8; 32]) -> Vec<u8> {
    let mut message = b"ltsweep-session-v1".to_vec();
    message.extend_from_slice(nonce);
    message.extend_from_slice(&expires.to_be_bytes());
    message.extend_from_slice(token_digest);
    message
}

impl Sessions {
    /// A fresh key from the operating system's random source; at most `per_credential` live
    /// sessions a token.
    pub(crate) fn new(per_credential: usize) -> Result<Sessions, WebError> {
        let random = SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &random)
            .map_err(|_| WebError::Random("no random source to draw it from".into()))?;
        Ok(Sessions {
            key,
            random,
            per_credential: per_credential.max(1),
            live: Mutex::new(HashMap::new()),
        })
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; NONCE_BYTES], Session>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new session for `caller` (whose token is one of `access`'s): the cookie's value.
    pub(crate) fn open(&self, access: &Access, caller: Caller) -> String {
        self.open_at(access, caller, now_secs())
    }

    fn open_at(&self, access: &Access, caller: Caller, now: u64) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        // As for the key: no random source is a broken system, not a state to serve in.
        self.random
            .fill(&mut nonce)
            .expect("the operating system's random source");
        let expires = now + LIFETIME.as_secs();
        let digest = access.digest_of(caller.credential).unwrap_or_default();
        let mac = hmac::sign(&self.key, &signed(&nonce, expires, &digest));
        let mut live = self.live();
        let held = |live: &HashMap<_, Session>| {
            live.values()
                .filter(|s| s.credential == caller.credential)
                .count()
        };
        if held(&live) >= self.per_credential {
            live.retain(|_, session| session.expires > now);
            // Only this token's own sessions: the oldest (ending soonest) makes room.
            while held(&live) >= self.per_credential {
                let Some(oldest) = live
                    .iter()
                    .filter(|(_, s)| s.credential == caller.credential)
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(nonce, _)| *nonce)
                else {
                    break;
                };
                live.remove(&oldest);
            }
        }
        live.insert(
            nonce,
            Session {
                credential: caller.credential,
                expires,
            },
        );
        format!("{}.{expires}.{}", hex(&nonce), hex(mac.as_ref()))
    }

    /// The caller of a cookie: a live session's, whose MAC is right and whose end has not come.
    pub(crate) fn check(&self, access: &Access, value: &str) -> Option<Caller> {
        self.check_at(access, value, now_secs())
    }

    fn check_at(&self, access: &Access, value: &str, now: u64) -> Option<Caller> {
        let mut parts = value.split('.');
        let (Some(nonce), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let nonce = unhex::<NONCE_BYTES>(nonce)?;
        let expires: u64 = expires.parse().ok()?;
        let mac = unhex::<32>(mac)?;
        let session = *self.live().get(&nonce)?;
        if session.expires != expires || expires <= now {
            return None;
        }
        let digest = access.digest_of(session.credential)?;
        hmac::verify(&self.key, &signed(&nonce, expires, &digest), &mac).ok()?;
        access.caller_named(session.credential)
    }

    /// Ends the session a cookie names (logging out): its cookie is refused from now on.
    pub(crate) fn close(&self, value: &str) {
        if let Some(nonce) = value.split('.').next().and_then(unhex::<NONCE_BYTES>) {
            self.live().remove(&nonce);
        }
    }
}

#[cfg(test)]
mod tests {
    use ltsweep_proto::token::Token;

    use super::*;

    #[test]
    fn a_cookie_is_good_until_it_expires_or_its_session_is_closed() {
        let (user, viewer) = (Token::generate(), Token::generate());
        let access = Access::by_role(None, Some(&user), Some(&viewer)).unwrap();
        let caller = access.caller(user.as_str().as_bytes()).unwrap();
        let sessions = Sessions::new(10).unwrap();
        let now = 1_700_000_000;
        let cookie = sessions.open_at(&access, caller, now);
        assert!(
            !cookie.contains(user.as_str()),
            "the cookie is not the token"
        );
        assert_eq!(sessions.check_at(&access, &cookie, now + 60), Some(caller));
        let end = now + LIFETIME.as_secs();
        assert_eq!(sessions.check_at(&access, &cookie, end), None, "expired");

        // A forged MAC, a moved expiry, another process's key: all refused.
        let mut forged = cookie.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        assert_eq!(sessions.check_at(&access, &forged, now), None);
        let (nonce, rest) = cookie.split_once('.').unwrap();
        let mac = rest.split_once('.').unwrap().1;
        let later = format!("{nonce}.{}.{mac}", end + 3600);
        assert_eq!(sessions.check_at(&access, &later, now), None);
        assert_eq!(
            Sessions::new(10).unwrap().check_at(&access, &cookie, now),
            None
        );
        // The same sessions with the token changed (a restart with a new file).
        let other = Access::by_role(None, Some(&Token::generate()), Some(&viewer)).unwrap();
        assert_eq!(sessions.check_at(&other, &cookie, now), None);

        sessions.close(&cookie);
        assert_eq!(sessions.check_at(&access, &cookie, now), None, "logged out");
        for junk in ["", "a.b.c", "..", "zz.1.zz", &format!("{cookie}.x")] {
            assert_eq!(sessions.check_at(&access, junk, now), None, "{junk}");
        }
    }

    #[test]
    fn one_tokens_logins_never_end_another_tokens_session() {
        let (user, viewer) = (Token::generate(), Token::generate());
        let access = Access::by_role(None, Some(&user), Some(&viewer)).unwrap();
        let as_user = access.caller(user.as_str().as_bytes()).unwrap();
        let as_viewer = access.caller(viewer.as_str().as_bytes()).unwrap();
        let sessions = Sessions::new(3).unwrap();
        let now = 1_700_000_000;
        let viewers = sessions.open_at(&access, as_viewer, now);
        // The user token logs in 50 times, a second apart: it keeps its own newest three.
        let users: Vec<String> = (0..50)
            .map(|i| sessions.open_at(&access, as_user, now + 1 + i))
            .collect();
        let later = now + 100;
        assert_eq!(
            sessions.check_at(&access, &viewers, later),
            Some(as_viewer),
            "another token's logins ended the viewer's session"
        );
        for (i, cookie) in users.iter().enumerate() {
            let live = sessions.check_at(&access, cookie, later).is_some();
            assert_eq!(live, i >= 47, "the user's session {i}");
        }
        assert_eq!(sessions.live().len(), 4);
    }

    #[test]
    fn cookies_are_secure_and_host_only_under_tls() {
        let set = set_cookie(true, "v");
        assert!(set.starts_with("__Host-ltsweep_session=v; Path=/"), "{set}");
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(set.ends_with("; Secure"), "{set}");
        assert!(!set_cookie(false, "v").contains("Secure"));
        assert!(clear_cookie(true).contains("Max-Age=0"));
    }
}
