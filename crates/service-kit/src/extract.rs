//! Request extractors shared by the HTTP services, whose rejections are the shared JSON error
//! ([`ApiError`]), and the fallbacks for unknown routes and methods.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body. Anything else (an array, `null`, bad JSON, a wrong field) is a 400
/// `invalid_field` (field `body`), a body over the router's limit a 413 `payload_too_large`
/// and a wrong content type a 415 `unsupported_media_type`.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state)
            .await
            .map_err(json_rejection)?;
        if !value.is_object() {
            return Err(ApiError::invalid("body", "must be a JSON object"));
        }
        serde_json::from_value(value)
            .map(Json)
            .map_err(|e| ApiError::invalid("body", e.to_string()))
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
        .with_field("body"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON (Content-Type: application/json)",
        ),
        _ => ApiError::invalid("body", r.body_text()),
    }
}

/// Query parameters; a bad one is a 400 `invalid_field` (field `query`).
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::invalid("query", e.body_text()))
    }
}

/// How many proxies in front of the service append to `X-Forwarded-For` (its config's
/// `rate_limit.forwarded_hops`): what [`ClientAddr`] needs of a service's state.
pub trait ForwardedHops {
    fn forwarded_hops(&self) -> usize;
}

/// The client's address, as [`crate::client_addr`] finds it.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

impl<S: ForwardedHops + Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(crate::client_addr(
            &parts.headers,
            &parts.extensions,
            state.forwarded_hops(),
        )))
    }
}

/// The answer to a path no route matches: 404 `not_found`.
pub async fn no_route() -> ApiError {
    ApiError::not_found("route")
}

/// The answer to a method the route does not take: 405 `method_not_allowed`.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}
