//! Wire types and HTTP clients for calls between Caudal services.
//!
//! - [`users`]: what ingest and bff ask user-svc (stream-key validation, ...).
//! - [`metadata`]: the video document and the calls ingest/transcoder/bff make to metadata-svc.
//! - [`ingest`]: the broadcasts an ingest instance runs, and their input's health.
//! - [`transport`]: the one HTTP stack under them all (and under bff's calls to user-svc's `/v1`).
//!
//! Every call has a timeout; errors say which service failed and how.

pub mod ingest;
pub mod jobs;
pub mod metadata;
pub mod transport;
pub mod users;

pub use transport::{bearer, BadUrl, Budget, Recorder, Transport, REQUEST_ID};

/// How a call to another service failed: one type for every caller (bff, ingest, the
/// transcoder).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The service could not be reached or did not answer in time.
    #[error("{service} is unavailable: {detail}")]
    Unavailable {
        service: &'static str,
        detail: String,
    },
    /// The service answered with an error body.
    #[error("{service} answered {status}: {code}: {message}")]
    Api {
        service: &'static str,
        status: u16,
        code: String,
        message: String,
        /// The field the error is about, when the body names one.
        field: Option<String>,
        /// `Retry-After`, in seconds, when the service sent one.
        retry_after: Option<u64>,
    },
    #[error("{service} sent an unexpected response: {detail}")]
    Decode {
        service: &'static str,
        detail: String,
    },
}

impl ClientError {
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClientError::Unavailable { .. })
    }
}

#[derive(serde::Deserialize)]
struct Envelope {
    error: Body,
}
#[derive(serde::Deserialize)]
struct Body {
    code: String,
    message: String,
    #[serde(default)]
    field: Option<String>,
}

/// The error a non-2xx answer stands for. The one place a Caudal error body
/// (`{"error": {"code", "message", "field"?}}`) and `Retry-After` are read, for every caller.
///
/// 502, 503 and 504 mean the service (or the balancer in front of it) could not answer, so
/// they are [`ClientError::Unavailable`], except a `payment_*` error: that is user-svc
/// reporting its payment provider's failure, an answer the caller passes on.
pub fn error_from(
    service: &'static str,
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> ClientError {
    let env = serde_json::from_slice::<Envelope>(body).ok();
    let payment = env
        .as_ref()
        .is_some_and(|e| e.error.code.starts_with("payment_"));
    if matches!(status.as_u16(), 502..=504) && !payment {
        return ClientError::Unavailable {
            service,
            detail: format!("answered {status}"),
        };
    }
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    match env {
        Some(e) => ClientError::Api {
            service,
            status: status.as_u16(),
            code: e.error.code,
            message: e.error.message,
            field: e.error.field,
            retry_after,
        },
        None => ClientError::Api {
            service,
            status: status.as_u16(),
            code: if status.is_server_error() {
                "upstream_error".into()
            } else {
                "unknown".into()
            },
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
            field: None,
            retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use reqwest::StatusCode;

    fn err(status: u16, headers: &HeaderMap, body: &str) -> ClientError {
        error_from(
            "svc",
            StatusCode::from_u16(status).unwrap(),
            headers,
            body.as_bytes(),
        )
    }

    #[test]
    fn an_error_body_keeps_code_field_and_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        let e = err(
            429,
            &h,
            r#"{"error":{"code":"rate_limited","message":"slow down","field":"email"}}"#,
        );
        match e {
            ClientError::Api {
                status,
                code,
                message,
                field,
                retry_after,
                ..
            } => {
                assert_eq!(status, 429);
                assert_eq!(code, "rate_limited");
                assert_eq!(message, "slow down");
                assert_eq!(field.as_deref(), Some("email"));
                assert_eq!(retry_after, Some(7));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gateway_errors_are_unavailable_unless_a_payment_answer() {
        let h = HeaderMap::new();
        for s in [502, 503, 504] {
            assert!(
                err(s, &h, "<html>bad gateway</html>").is_unavailable(),
                "{s}"
            );
        }
        let e = err(
            502,
            &h,
            r#"{"error":{"code":"payment_failed","message":"declined"}}"#,
        );
        assert_eq!((e.status(), e.code()), (Some(502), Some("payment_failed")));
    }

    #[test]
    fn a_body_that_is_not_an_error_envelope_is_kept_short() {
        let h = HeaderMap::new();
        let e = err(500, &h, &"x".repeat(1000));
        assert_eq!(e.code(), Some("upstream_error"));
        match e {
            ClientError::Api { message, .. } => assert_eq!(message.len(), 200),
            other => panic!("{other:?}"),
        }
        assert_eq!(err(418, &h, "teapot").code(), Some("unknown"));
    }
}
