//! Who a request is, and whether it may: one credential per request (an `Authorization:
//! Bearer` header, or the session cookie the login form gives), found once by [`identify`] for
//! every route; each route's [`Guard`] then asks for the role of the RPC it stands for, from
//! the table gRPC reads. Without a configured token the page is open, as gRPC is.
//!
//! Wrong tokens (on the login form or in a header) count against the client's address in the
//! throttle the coordinator's gRPC shares, which never refuses a right one; a session cookie is
//! an HMAC no one can guess, so an unknown one is no attempt: it only gets the login form.
//! Successful logins, each a new session, are limited by address too (`--logins-per-minute`).

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use ltsweep_proto::ErrorKind;
use ltsweep_proto::roles::{Role, role_of, sweep_rpc};
use ltsweep_proto::server::{Caller, Refusal, authenticate, require};
use serde::Deserialize;

use crate::AppState;
use crate::html::page;
use crate::respond::{refusal_response, status_of};
use crate::session::{self, cookie_name};

/// The largest login form read: one token, with room to spare.
pub(crate) const LOGIN_FORM_BYTES: usize = 4096;

/// What a request carries to prove who it is.
enum Presented<'a> {
    Nothing,
    Bearer(&'a [u8]),
    Session(&'a str),
}

/// The one credential of a request; several (headers, session cookies, or one of each) are
/// refused, so that one request is one attempt.
fn presented<'a>(secure: bool, headers: &'a HeaderMap) -> Result<Presented<'a>, &'static str> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let bearer = match (authorization.next(), authorization.next()) {
        (None, _) => None,
        (Some(value), None) => Some(value.as_bytes()),
        (Some(_), Some(_)) => return Err("several Authorization headers: send one"),
    };
    let name = cookie_name(secure);
    let mut sessions = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='));
    let session = match (sessions.next(), sessions.next()) {
        (None, _) => None,
        (Some(value), None) => Some(value),
        (Some(_), Some(_)) => return Err("several session cookies: send one"),
    };
    match (bearer, session) {
        (None, None) => Ok(Presented::Nothing),
        (Some(bearer), None) => Ok(Presented::Bearer(bearer)),
        (None, Some(session)) => Ok(Presented::Session(session)),
        (Some(_), Some(_)) => Err("an Authorization header and a session cookie: send one"),
    }
}

/// Finds the caller of every request and puts it in the request's extensions; refuses a
/// request with several credentials, a wrong token (401; 429 past the address's budget).
/// A request without a credential goes on without a caller: the login form and the assets
/// need none, and each other route's guard refuses it.
pub(crate) async fn identify(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let caller = if state.access.is_open() {
        Some(Caller::NO_TOKEN)
    } else {
        match presented(state.secure, request.headers()) {
            Err(problem) => {
                return match state.throttle.wrong_token(remote, "the web page") {
                    Refusal::Unauthenticated => (StatusCode::BAD_REQUEST, problem).into_response(),
                    throttled => refusal_response(&throttled),
                };
            }
            Ok(Presented::Nothing) => None,
            Ok(Presented::Bearer(value)) => {
                match authenticate(
                    &state.access,
                    &state.throttle,
                    std::iter::once(value),
                    remote,
                    "the web page",
                ) {
                    Ok(caller) => Some(caller),
                    Err(err) => return refusal_response(&err),
                }
            }
            Ok(Presented::Session(value)) => state.sessions.check(&state.access, value),
        }
    };
    if let Some(caller) = caller {
        request.extensions_mut().insert(caller);
    }
    next.run(request).await
}

/// The role a route needs: that of the RPC it stands for. A page (rather than an API
/// endpoint) answers a request without a credential with the login form.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Guard {
    call: &'static str,
    /// `None`: the RPC is not in the role table, and no one may use the route.
    role: Option<Role>,
    page: bool,
}

impl Guard {
    pub(crate) fn of(method: &'static str, page: bool) -> Guard {
        Guard {
            call: method,
            role: role_of(&sweep_rpc(method)),
            page,
        }
    }
}

const UNAUTHENTICATED: &str =
    "the token is missing or wrong: log in on the page, or send `Authorization: Bearer <token>`";

pub(crate) async fn guard(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().copied() else {
        return if guard.page {
            (StatusCode::UNAUTHORIZED, login_form(None)).into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                UNAUTHENTICATED,
            )
                .into_response()
        };
    };
    let allowed = match guard.role {
        Some(role) => require(&caller, role, guard.call),
        None => Err(Refusal::PermissionDenied(format!(
            "no one may call {}: it is not in the role table",
            guard.call
        ))),
    };
    match allowed {
        Ok(()) => next.run(request).await,
        Err(err) => refusal_response(&err),
    }
}

/// Whether the request comes from a page of this server: its `Origin` names the host it was
/// sent to. Browsers send `Origin` with every POST, so a missing one is refused too.
pub(crate) fn same_origin(secure: bool, headers: &HeaderMap) -> bool {
    let scheme = if secure { "https://" } else { "http://" };
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    match (text(header::ORIGIN), text(header::HOST)) {
        (Some(origin), Some(host)) => origin.strip_prefix(scheme) == Some(host),
        _ => false,
    }
}

fn login_form(problem: Option<&str>) -> Html<String> {
    let problem = problem.map_or(String::new(), |p| {
        format!(
            r#"<p class="problem" role="alert">{}</p>"#,
            crate::html::escape(p)
        )
    });
    page(
        "ltsweep: log in",
        &format!(
            r#"<main class="login"><h1>ltsweep</h1>
<form id="login" method="post" action="/login">
<label for="token">A token of the coordinator's (the viewer's or the user's)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>{problem}
<p class="hint">The token is in the file the coordinator was given with <code>--viewer-token-file</code> or <code>--user-token-file</code> (or <code>--token-file</code>).</p></main>"#
        ),
        false,
    )
}

pub(crate) async fn login_page(request: Request) -> Response {
    if request.extensions().get::<Caller>().is_some() {
        Redirect::to("/").into_response()
    } else {
        login_form(None).into_response()
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // Another site must not log a browser in with a token of its choosing.
    if !same_origin(state.secure, &headers) {
        return (StatusCode::FORBIDDEN, "log in from the page itself").into_response();
    }
    if state.access.is_open() {
        return Redirect::to("/").into_response();
    }
    let remote = Some(remote.ip());
    let Some(caller) = state.access.caller(form.token.as_bytes()) else {
        let refusal = state.throttle.wrong_token(remote, "the login form");
        let problem = match refusal {
            Refusal::Unauthenticated => "That is not a token of the coordinator's.".to_owned(),
            ref throttled => throttled.to_string(),
        };
        return (status_of(Some(refusal.kind())), login_form(Some(&problem))).into_response();
    };
    if !caller.roles.allows(Role::Viewer) {
        return (
            StatusCode::FORBIDDEN,
            login_form(Some(&format!(
                "That is the {}, which cannot read the page: log in with the viewer's or the user's token.",
                caller.credential
            ))),
        )
            .into_response();
    }
    // Each login is a session held in memory: a right token logging in over and over is
    // slowed, not the page's other users.
    if !state.logins.take(remote) {
        let problem = format!(
            "Too many logins from this address: at most {} a minute (--logins-per-minute). Wait a minute, then log in again.",
            state.logins.per_minute()
        );
        let status = status_of(Some(ErrorKind::Exhausted));
        return (status, login_form(Some(&problem))).into_response();
    }
    let value = state.sessions.open(&state.access, caller);
    see_other("/", &session::set_cookie(state.secure, &value))
}

pub(crate) async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    // Another site must not log a browser out either.
    if !same_origin(state.secure, &headers) {
        return (StatusCode::FORBIDDEN, "log out from the page itself").into_response();
    }
    if let Ok(Presented::Session(value)) = presented(state.secure, &headers) {
        state.sessions.close(value);
    }
    see_other("/login", &session::clear_cookie(state.secure))
}

fn see_other(location: &str, cookie: &str) -> Response {
    let mut response = Redirect::to(location).into_response();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn kind(secure: bool, pairs: &[(header::HeaderName, &str)]) -> Result<&'static str, ()> {
        match presented(secure, &headers(pairs)) {
            Ok(Presented::Nothing) => Ok("nothing"),
            Ok(Presented::Bearer(_)) => Ok("bearer"),
            Ok(Presented::Session(_)) => Ok("session"),
            Err(_) => Err(()),
        }
    }

    #[test]
    fn exactly_one_credential_is_taken() {
        let auth = header::AUTHORIZATION;
        let cookie = header::COOKIE;
        assert_eq!(kind(false, &[]), Ok("nothing"));
        assert_eq!(kind(false, &[(auth.clone(), "Bearer a")]), Ok("bearer"));
        assert_eq!(
            kind(false, &[(cookie.clone(), "theme=dark; ltsweep_session=x")]),
            Ok("session")
        );
        assert_eq!(
            kind(
                false,
                &[(auth.clone(), "Bearer a"), (auth.clone(), "Bearer b")]
            ),
            Err(())
        );
        assert_eq!(
            kind(
                false,
                &[(cookie.clone(), "ltsweep_session=x; ltsweep_session=y")]
            ),
            Err(())
        );
        assert_eq!(
            kind(
                false,
                &[
                    (cookie.clone(), "ltsweep_session=x"),
                    (cookie.clone(), "ltsweep_session=y")
                ]
            ),
            Err(())
        );
        assert_eq!(
            kind(
                false,
                &[
                    (auth.clone(), "Bearer a"),
                    (cookie.clone(), "ltsweep_session=x")
                ]
            ),
            Err(())
        );
        // Under TLS only the `__Host-` cookie counts.
        assert_eq!(
            kind(true, &[(cookie.clone(), "ltsweep_session=x")]),
            Ok("nothing")
        );
        assert_eq!(
            kind(true, &[(cookie, "__Host-ltsweep_session=x")]),
            Ok("session")
        );
    }

    #[test]
    fn writes_need_the_pages_own_origin() {
        let host = (header::HOST, "head:8080");
        let own = headers(&[host.clone(), (header::ORIGIN, "http://head:8080")]);
        assert!(same_origin(false, &own));
        assert!(!same_origin(true, &own), "https page, http origin");
        let other = headers(&[host.clone(), (header::ORIGIN, "http://evil.example")]);
        assert!(!same_origin(false, &other));
        let prefix = headers(&[host.clone(), (header::ORIGIN, "http://head:8080.evil")]);
        assert!(!same_origin(false, &prefix));
        assert!(!same_origin(false, &headers(&[host])), "no Origin");
    }

    #[test]
    fn every_route_of_the_page_has_a_role() {
        for method in [
            "ListSweeps",
            "GetSweep",
            "ListWorkers",
            "WatchSweep",
            "GetResults",
            "CancelSweep",
            "RetryFailed",
        ] {
            assert!(Guard::of(method, false).role.is_some(), "{method}");
        }
        assert_eq!(Guard::of("CancelSweep", false).role, Some(Role::User));
        assert_eq!(Guard::of("WatchSweep", false).role, Some(Role::Viewer));
    }
}
