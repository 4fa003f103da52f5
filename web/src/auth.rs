//! The token: given once on the login form and kept in a cookie, or sent as
//! `Authorization: Bearer`. Without a configured token the page is open, as gRPC is.

use axum::Form;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use ltsweep_coordinator::constant_time_eq;
use serde::Deserialize;

use crate::AppState;
use crate::html::page;

/// The cookie holding the token, hex-encoded (a token may hold bytes a cookie value may not).
const COOKIE: &str = "ltsweep_token";

/// How a request proved it may read: write actions from a browser (cookie, or no token at
/// all) must also come from the page's own origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Credential {
    /// The coordinator has no token.
    Open,
    Cookie,
    Bearer,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The request's credential, or `None` when it carries no right token.
pub(crate) fn credential(token: Option<&str>, headers: &HeaderMap) -> Option<Credential> {
    let Some(token) = token else {
        return Some(Credential::Open);
    };
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|value| value.as_bytes().strip_prefix(b"Bearer "))
        .any(|given| constant_time_eq(given, token.as_bytes()));
    if bearer {
        return Some(Credential::Bearer);
    }
    let expected = hex(token.as_bytes());
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()));
    cookie.then_some(Credential::Cookie)
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

const UNAUTHENTICATED: &str =
    "the token is missing or wrong: log in on the page, or send `Authorization: Bearer <token>`";

/// In front of the data and event endpoints: 401 without the token.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match credential(state.token.as_deref(), request.headers()) {
        Some(credential) => {
            request.extensions_mut().insert(credential);
            next.run(request).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            UNAUTHENTICATED,
        )
            .into_response(),
    }
}

/// In front of the pages: the login form, and nothing else, without the token.
pub(crate) async fn require_token_or_login(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if credential(state.token.as_deref(), request.headers()).is_some() {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, login_form(None)).into_response()
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
<label for="token">The coordinator's token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>{problem}
<p class="hint">The token is the coordinator's <code>--token-file</code> or <code>LTSWEEP_TOKEN</code>.</p></main>"#
        ),
        false,
    )
}

pub(crate) async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if credential(state.token.as_deref(), &headers).is_some() {
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
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    // Another site must not log a browser in with a token of its choosing.
    if !same_origin(state.secure, &headers) {
        return (StatusCode::FORBIDDEN, "log in from the page itself").into_response();
    }
    let Some(token) = &state.token else {
        return Redirect::to("/").into_response();
    };
    if !constant_time_eq(form.token.as_bytes(), token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            login_form(Some("That is not the coordinator's token.")),
        )
            .into_response();
    }
    let secure = if state.secure { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        hex(token.as_bytes())
    );
    see_other("/", cookie)
}

pub(crate) async fn logout(State(state): State<AppState>) -> Response {
    let secure = if state.secure { "; Secure" } else { "" };
    see_other(
        "/login",
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    )
}

fn see_other(location: &str, cookie: String) -> Response {
    let mut response = Redirect::to(location).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
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

    #[test]
    fn only_the_right_token_passes() {
        let token = Some("s3cret");
        let none = headers(&[]);
        assert_eq!(credential(token, &none), None);
        assert_eq!(credential(None, &none), Some(Credential::Open));
        let bearer = headers(&[(header::AUTHORIZATION, "Bearer s3cret")]);
        assert_eq!(credential(token, &bearer), Some(Credential::Bearer));
        let wrong = headers(&[(header::AUTHORIZATION, "Bearer s3cre")]);
        assert_eq!(credential(token, &wrong), None);
        let cookie = format!("theme=dark; {COOKIE}={}", hex(b"s3cret"));
        let cookie = headers(&[(header::COOKIE, &cookie)]);
        assert_eq!(credential(token, &cookie), Some(Credential::Cookie));
        // The raw token is not the cookie's value: only the login form sets it.
        let raw = headers(&[(header::COOKIE, &format!("{COOKIE}=s3cret"))]);
        assert_eq!(credential(token, &raw), None);
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
}
