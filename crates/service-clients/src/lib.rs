//! Wire types and HTTP clients for calls between Caudal services.
//!
//! - [`users`]: what ingest and bff ask user-svc (stream-key validation, ...).
//! - [`metadata`]: the video document and the calls ingest/transcoder/bff make to metadata-svc.
//!
//! Every call has a timeout; errors say which service failed and how.

pub mod jobs;
pub mod metadata;
pub mod users;

use std::time::Duration;

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

pub(crate) fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client builds without TLS features")
}

/// Sends a request and decodes a JSON answer, mapping failures to [`ClientError`].
pub(crate) async fn send_json<T: serde::de::DeserializeOwned>(
    service: &'static str,
    req: reqwest::RequestBuilder,
) -> Result<T, ClientError> {
    let resp = req.send().await.map_err(|e| ClientError::Unavailable {
        service,
        detail: e.to_string(),
    })?;
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = resp.bytes().await.map_err(|e| ClientError::Unavailable {
        service,
        detail: e.to_string(),
    })?;
    if status.is_success() {
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            service,
            detail: e.to_string(),
        })
    } else if status.as_u16() == 502 || status.as_u16() == 503 || status.as_u16() == 504 {
        Err(ClientError::Unavailable {
            service,
            detail: format!("status {status}"),
        })
    } else {
        let (code, message, field) = match serde_json::from_slice::<Envelope>(&bytes) {
            Ok(env) => (env.error.code, env.error.message, env.error.field),
            Err(_) => (
                "unknown".into(),
                String::from_utf8_lossy(&bytes).chars().take(200).collect(),
                None,
            ),
        };
        Err(ClientError::Api {
            service,
            status: status.as_u16(),
            code,
            message,
            field,
            retry_after,
        })
    }
}
