//! Extractors whose rejections are bff's JSON errors.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::AppState;

/// A JSON object body. Anything else (an array, `null`, bad JSON, a wrong field) is a 400
/// `invalid_field` (field `body`), a body over `max_body_bytes` a 413 and a wrong content
/// type a 415.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = Error;
    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        if !value.is_object() {
            return Err(Error::invalid("body", "must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(AppJson)
            .map_err(|e| Error::invalid("body", e.to_string()))
    }
}

/// Query parameters answering a bad one with 400 `invalid_field`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct AppQuery<T>(pub T);

/// Path parameters; ones that cannot be parsed are simply not found.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct AppPath<T>(pub T);

/// The caller's `Authorization: Bearer <token>` header, as sent (forwarded to user-svc).
/// Missing or not a bearer token: 401.
#[derive(Debug, Clone)]
pub struct Bearer(pub String);

/// Like [`Bearer`], but absent for anonymous callers. A header that is present but not a
/// bearer token is still a 401.
#[derive(Debug, Clone)]
pub struct MaybeBearer(pub Option<String>);

fn bearer_of(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v.to_str().map_err(|_| Error::Unauthorized)?;
    let (scheme, token) = v.split_once(' ').ok_or(Error::Unauthorized)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.len() > 4096 {
        return Err(Error::Unauthorized);
    }
    Ok(Some(format!("Bearer {token}")))
}

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        bearer_of(&parts.headers)?
            .map(Bearer)
            .ok_or(Error::Unauthorized)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MaybeBearer {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        Ok(MaybeBearer(bearer_of(&parts.headers)?))
    }
}

/// The client's address: see [`service_kit::client_addr`] (`rate_limit.forwarded_hops`).
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

pub use service_kit::client_addr;

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(
            &parts.headers,
            &parts.extensions,
            st.config.rate_limit.forwarded_hops,
        )))
    }
}
