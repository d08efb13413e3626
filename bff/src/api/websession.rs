//! Browser sessions: the same accounts as `/v1/auth/*`, with the refresh token kept where page
//! scripts cannot read it. Sign-up and log-in set two cookies and answer the access token
//! only:
//! - `caudal_rt`: the refresh token; `HttpOnly`, `SameSite=Strict`, `Path=/v1/auth/web`
//!   (sent to these routes and nowhere else), `Secure` when the request came over TLS
//!   (`X-Forwarded-Proto: https`) or `secure_cookies` is set.
//! - `caudal_csrf`: a random value the page reads and echoes in `X-CSRF-Token`
//!   (double-submit). Refresh and log-out, the routes the cookie authenticates, need both to
//!   match; a page of another site can neither read the cookie nor set the header.
//!
//! Sign-up and log-in take JSON bodies only, which another site's form cannot send, so a
//! visitor cannot be signed in to someone else's account either. The access token lives in
//! the page's memory (a few minutes); apps other than browsers use `/v1/auth/*`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;

use crate::error::{Error, Result};
use crate::extract::{AppJson, ClientAddr};
use crate::model::{
    ErrorEnvelope, LoginRequest, RefreshRequest, Session, SignupRequest, WebSession,
};
use crate::AppState;

pub const REFRESH_COOKIE: &str = "caudal_rt";
pub const CSRF_COOKIE: &str = "caudal_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
const COOKIE_PATH: &str = "/v1/auth/web";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

fn secure(st: &AppState, headers: &HeaderMap) -> bool {
    st.config.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
    http_only: bool,
    secure: bool,
) -> HeaderValue {
    let mut c = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Strict");
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are token characters")
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The answer that starts (or renews) a browser session: the cookies and the access token.
fn started(st: &AppState, headers: &HeaderMap, status: StatusCode, s: Session) -> Response {
    let secure = secure(st, headers);
    let csrf = random_hex(16);
    let mut resp = (
        status,
        Json(WebSession {
            user: s.user,
            access_token: s.access_token,
            token_type: s.token_type,
            expires_in: s.expires_in,
            refresh_expires_in: s.refresh_expires_in,
            csrf_token: csrf.clone(),
        }),
    )
        .into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            REFRESH_COOKIE,
            &s.refresh_token,
            COOKIE_PATH,
            s.refresh_expires_in,
            true,
            secure,
        ),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(CSRF_COOKIE, &csrf, "/", s.refresh_expires_in, false, secure),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Cookies that end the session in this browser.
fn cleared(st: &AppState, headers: &HeaderMap, mut resp: Response) -> Response {
    let secure = secure(st, headers);
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(REFRESH_COOKIE, "", COOKIE_PATH, 0, true, secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(CSRF_COOKIE, "", "/", 0, false, secure),
    );
    resp
}

/// The refresh token of a request whose CSRF header matches its CSRF cookie.
fn cookie_session(headers: &HeaderMap) -> Result<String> {
    let (Some(cookie_csrf), Some(header_csrf)) = (
        cookie(headers, CSRF_COOKIE),
        headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
    ) else {
        return Err(Error::Forbidden(
            "send the caudal_csrf cookie's value in X-CSRF-Token".into(),
        ));
    };
    if !constant_time_eq(cookie_csrf.as_bytes(), header_csrf.as_bytes()) {
        return Err(Error::Forbidden("X-CSRF-Token does not match".into()));
    }
    cookie(headers, REFRESH_COOKIE)
        .map(str::to_string)
        .ok_or(Error::Unauthorized)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Creates an account and starts a browser session (cookies + access token).
#[utoipa::path(
    post, path = "/v1/auth/web/signup", tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created; sets the `caudal_rt` (HttpOnly) and `caudal_csrf` cookies", body = WebSession),
        (status = 409, description = "`email_taken`", body = ErrorEnvelope),
        (status = 429, description = "`rate_limited`", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn signup(
    State(st): State<AppState>,
    headers: HeaderMap,
    addr: ClientAddr,
    AppJson(body): AppJson<SignupRequest>,
) -> Result<Response> {
    let session = st.users.signup(&body, &addr.0).await?;
    tracing::info!(user_id = %session.user.id, "signed up (browser)");
    Ok(started(&st, &headers, StatusCode::CREATED, session))
}

/// Signs in with email and password and starts a browser session.
#[utoipa::path(
    post, path = "/v1/auth/web/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; sets the `caudal_rt` (HttpOnly) and `caudal_csrf` cookies", body = WebSession),
        (status = 401, description = "`invalid_credentials`", body = ErrorEnvelope),
        (status = 429, description = "`rate_limited`", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    addr: ClientAddr,
    AppJson(body): AppJson<LoginRequest>,
) -> Result<Response> {
    let session = st.users.login(&body, &addr.0).await?;
    Ok(started(&st, &headers, StatusCode::OK, session))
}

/// A new access token for the browser session in the cookies (the refresh token rotates).
#[utoipa::path(
    post, path = "/v1/auth/web/refresh", tag = "auth",
    params(("X-CSRF-Token" = String, Header, description = "The `caudal_csrf` cookie's value")),
    responses(
        (status = 200, description = "The session renewed; new cookies", body = WebSession),
        (status = 401, description = "`unauthorized`: no session, or it ended (the cookies are cleared)", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the CSRF header is missing or does not match", body = ErrorEnvelope),
        (status = 429, description = "`rate_limited`", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn refresh(State(st): State<AppState>, headers: HeaderMap) -> Result<Response> {
    let refresh_token = cookie_session(&headers)?;
    match st.users.refresh(&RefreshRequest { refresh_token }).await {
        Ok(session) => Ok(started(&st, &headers, StatusCode::OK, session)),
        Err(e) => {
            let resp = Error::from(e).into_response();
            // an ended session: forget it in this browser too
            if resp.status() == StatusCode::UNAUTHORIZED {
                return Ok(cleared(&st, &headers, resp));
            }
            Ok(resp)
        }
    }
}

/// Ends the browser session: the refresh token is revoked and the cookies cleared.
#[utoipa::path(
    post, path = "/v1/auth/web/logout", tag = "auth",
    params(("X-CSRF-Token" = String, Header, description = "The `caudal_csrf` cookie's value")),
    responses(
        (status = 204, description = "Signed out (also when there was no session)"),
        (status = 503, description = "`unavailable`: the cookies are cleared, but the session could not be revoked", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the CSRF header is missing or does not match", body = ErrorEnvelope),
        (status = 429, description = "`rate_limited`", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn logout(State(st): State<AppState>, headers: HeaderMap) -> Result<Response> {
    match cookie_session(&headers) {
        Ok(refresh_token) => {
            // the cookies go whatever user-svc says: this browser is signed out either way,
            // and the error tells the page the session itself may outlive it
            if let Err(e) = st.users.logout(&RefreshRequest { refresh_token }).await {
                tracing::warn!(error = %e, "log-out not recorded by user-svc");
                return Ok(cleared(&st, &headers, Error::from(e).into_response()));
            }
        }
        Err(Error::Unauthorized) => {}
        Err(e) => return Err(e),
    }
    Ok(cleared(
        &st,
        &headers,
        StatusCode::NO_CONTENT.into_response(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; caudal_rt=abc; b=2"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("caudal_csrf=\"xyz\""),
        );
        assert_eq!(cookie(&h, "caudal_rt"), Some("abc"));
        assert_eq!(cookie(&h, "caudal_csrf"), Some("xyz"));
        assert_eq!(cookie(&h, "caudal"), None);
    }

    #[test]
    fn refresh_needs_a_matching_csrf_header() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("caudal_rt=r; caudal_csrf=c1"),
        );
        assert!(matches!(cookie_session(&h), Err(Error::Forbidden(_))));
        h.insert(CSRF_HEADER, HeaderValue::from_static("c2"));
        assert!(matches!(cookie_session(&h), Err(Error::Forbidden(_))));
        h.insert(CSRF_HEADER, HeaderValue::from_static("c1"));
        assert_eq!(cookie_session(&h).unwrap(), "r");
        h.insert(header::COOKIE, HeaderValue::from_static("caudal_csrf=c1"));
        assert!(matches!(cookie_session(&h), Err(Error::Unauthorized)));
    }
}
