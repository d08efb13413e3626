//! Extractors whose rejections are bff's JSON errors.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::error::Error;
use crate::AppState;

pub use service_kit::extract::{ClientAddr, Json as AppJson, Query as AppQuery};

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

pub use service_kit::client_addr;

impl service_kit::extract::ForwardedHops for AppState {
    fn forwarded_hops(&self) -> usize {
        self.config.rate_limit.forwarded_hops
    }
}
