//! The one error type of bff and its mapping to the shared JSON error body
//! (`{"error": {"code", "message", "field"?}}`).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use service_kit::error::ApiError;

use crate::upstream::UpstreamError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or wrong (400 `invalid_field`, naming it).
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// Missing, expired or forged access token.
    #[error("authentication required: send Authorization: Bearer <access token>")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A state conflict with a stable code (`not_for_sale`, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("too many requests, retry in {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    /// A protocol version the server does not speak (tus: `Tus-Resumable`): 412.
    #[error("{0}")]
    PreconditionFailed(String),
    /// A service this answer needs cannot be reached or did not answer in time.
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    /// What a service answered, passed on (its own 4xx codes) or mapped (its failures).
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// True when the error says a service is down (the caller may degrade instead of failing).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::Upstream(UpstreamError::Unavailable { .. })
        )
    }

    pub fn to_api(&self) -> (ApiError, Option<u64>) {
        let api = match self {
            Error::Invalid { field, message } => ApiError::invalid(field, message.clone()),
            Error::Unauthorized => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", self.to_string())
            }
            Error::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m.clone()),
            Error::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", self.to_string())
            }
            Error::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message.clone())
            }
            Error::RateLimited { retry_after_secs } => {
                return (
                    ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        self.to_string(),
                    ),
                    Some(*retry_after_secs),
                )
            }
            Error::PayloadTooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                self.to_string(),
            )
            .with_field("body"),
            Error::UnsupportedMediaType => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                self.to_string(),
            ),
            Error::PreconditionFailed(msg) => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                msg.clone(),
            ),
            Error::Unavailable(what) => ApiError::unavailable(what),
            Error::Upstream(u) => return upstream_to_api(u),
            Error::Internal(detail) => ApiError::internal(detail),
        };
        (api, None)
    }
}

fn upstream_to_api(u: &UpstreamError) -> (ApiError, Option<u64>) {
    match u {
        UpstreamError::Unavailable { service, detail } => {
            tracing::warn!(service, error = %detail, "upstream unavailable");
            (ApiError::unavailable(service), None)
        }
        UpstreamError::Decode { service, detail } => {
            tracing::warn!(service, error = %detail, "upstream answer not understood");
            (
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    format!("{service} sent an answer bff does not understand"),
                ),
                None,
            )
        }
        UpstreamError::Api {
            service,
            status,
            code,
            message,
            field,
            retry_after,
        } => {
            let passthrough = (400..500).contains(status)
                || matches!(code.as_str(), "payment_unavailable" | "payment_timeout");
            if !passthrough {
                tracing::warn!(service, status, code = %code, message = %message, "upstream failed");
                return (
                    ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream_error",
                        format!("{service} failed"),
                    ),
                    None,
                );
            }
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            let mut api = ApiError::new(status, code, message.clone());
            if let Some(f) = field {
                api = api.with_field(f);
            }
            (api, *retry_after)
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (api, retry_after) = self.to_api();
        let mut resp = api.into_response();
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        match r.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Error::UnsupportedMediaType,
            _ => Error::invalid("body", r.body_text()),
        }
    }
}

impl From<QueryRejection> for Error {
    fn from(r: QueryRejection) -> Self {
        Error::invalid("query", r.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(_: PathRejection) -> Self {
        Error::NotFound("resource")
    }
}
