//! The one error type of user-svc and its mapping to the shared JSON error body.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use service_kit::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is missing or wrong (400 `invalid_field`).
    #[error("invalid {field}: {message}")]
    InvalidField {
        field: &'static str,
        message: String,
    },
    #[error("the request body is not valid JSON for this endpoint: {0}")]
    InvalidBody(String),
    #[error("email is already registered")]
    EmailTaken,
    #[error("wrong email or password")]
    InvalidCredentials,
    /// Missing, expired or forged access token, or a refresh token that is not valid.
    #[error("authentication required")]
    Unauthorized,
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("unknown or revoked stream key")]
    InvalidStreamKey,
    #[error("too many attempts, retry in {retry_after_secs}s")]
    RateLimited { retry_after_secs: u64 },
    #[error("the payment was declined")]
    PaymentDeclined,
    /// The provider did not answer in time; the payment stays pending and is settled later.
    #[error("the payment provider did not answer in time; the payment is pending")]
    PaymentTimeout,
    #[error("the payment provider is unavailable; the payment is pending")]
    PaymentUnavailable,
    #[error("this idempotency key was used for a different request")]
    IdempotencyConflict,
    /// A state conflict with a stable code (`already_purchased`, `not_refundable`, ...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidField {
            field,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The status and stable code sent to clients.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::InvalidField { .. } | Error::InvalidBody(_) => {
                (StatusCode::BAD_REQUEST, "invalid_field")
            }
            Error::EmailTaken => (StatusCode::CONFLICT, "email_taken"),
            Error::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::InvalidStreamKey => (StatusCode::NOT_FOUND, "invalid_stream_key"),
            Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Error::PaymentDeclined => (StatusCode::PAYMENT_REQUIRED, "payment_declined"),
            Error::PaymentTimeout => (StatusCode::GATEWAY_TIMEOUT, "payment_timeout"),
            Error::PaymentUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "payment_unavailable"),
            Error::IdempotencyConflict => (StatusCode::CONFLICT, "idempotency_conflict"),
            Error::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Error::Database(_) | Error::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }

    /// The MySQL error number behind a database error, if any.
    pub fn mysql_number(&self) -> Option<u16> {
        match self {
            Error::Database(e) => mysql_number(e),
            _ => None,
        }
    }
}

pub(crate) fn mysql_number(e: &sqlx::Error) -> Option<u16> {
    e.as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(|m| m.number())
}

/// Is this a duplicate-key error?
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

impl From<JsonRejection> for Error {
    fn from(r: JsonRejection) -> Self {
        Error::InvalidBody(r.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(_: PathRejection) -> Self {
        Error::NotFound("resource")
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let api = match &self {
            // detail is logged by ApiError::internal, never sent
            Error::Database(e) => ApiError::internal(e),
            Error::Internal(e) => ApiError::internal(e),
            Error::InvalidField { field, message } => ApiError::invalid(field, message.clone()),
            Error::InvalidBody(message) => {
                ApiError::new(status, code, message.clone()).with_field("body")
            }
            other => ApiError::new(status, code, other.to_string()),
        };
        let mut resp = api.into_response();
        if let Error::RateLimited { retry_after_secs } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}
