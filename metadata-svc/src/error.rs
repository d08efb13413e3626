//! The one error type of metadata-svc and its HTTP mapping.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mongodb::error::{ErrorKind, WriteFailure};
use service_clients::metadata::VideoStatus;
use service_kit::error::ApiError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A request field is missing or wrong; `field` names it (`title`, `tags[2]`, `access.price_minor`).
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    #[error("video {0} not found")]
    NotFound(String),
    #[error("a {from} video cannot become {to}")]
    IllegalTransition {
        from: &'static str,
        to: &'static str,
    },
    /// The caller's `expected_version` is not the stored one.
    #[error("video was changed meanwhile: version {current} is current, {expected} was expected")]
    VersionConflict { expected: i64, current: i64 },
    #[error("a different video with id {0} already exists")]
    AlreadyExists(String),
    /// The database cannot be reached or did not answer in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else the database or the driver reported.
    #[error("database error: {0}")]
    Database(String),
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn illegal(from: VideoStatus, to: VideoStatus) -> Self {
        Error::IllegalTransition {
            from: crate::model::status_name(from),
            to: crate::model::status_name(to),
        }
    }

    /// The stable `code` of the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid_field",
            Error::NotFound(_) => "not_found",
            Error::IllegalTransition { .. } => "illegal_transition",
            Error::VersionConflict { .. } => "version_conflict",
            Error::AlreadyExists(_) => "already_exists",
            Error::Unavailable(_) => "unavailable",
            Error::Database(_) => "internal",
        }
    }

    /// True for E11000 (duplicate key), however the driver wraps it.
    pub(crate) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
        match e.kind.as_ref() {
            ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
            ErrorKind::Command(c) => c.code == 11000,
            _ => false,
        }
    }
}

impl From<mongodb::error::Error> for Error {
    fn from(e: mongodb::error::Error) -> Self {
        match e.kind.as_ref() {
            ErrorKind::ServerSelection { .. }
            | ErrorKind::Io(_)
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::DnsResolve { .. }
            | ErrorKind::Shutdown => Error::Unavailable(e.to_string()),
            _ => Error::Database(e.to_string()),
        }
    }
}

impl From<mongodb::bson::ser::Error> for Error {
    fn from(e: mongodb::bson::ser::Error) -> Self {
        Error::Database(format!("encoding a document: {e}"))
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = e.code();
        match e {
            Error::Invalid { field, message } => ApiError::invalid(&field, message),
            Error::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, code, e.to_string()),
            Error::IllegalTransition { .. }
            | Error::VersionConflict { .. }
            | Error::AlreadyExists(_) => ApiError::new(StatusCode::CONFLICT, code, e.to_string()),
            Error::Unavailable(detail) => {
                // the driver's text stays in the log, never in the answer
                tracing::warn!(error = %detail, "catalog database unavailable");
                ApiError::unavailable("the catalog database")
            }
            Error::Database(detail) => ApiError::internal(detail),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}
