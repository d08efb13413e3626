//! Calls to user-svc.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metadata::{AccessPolicy, Visibility};
use crate::{send_json, ClientError};

/// `POST /internal/v1/stream-keys/validate` request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidateStreamKey {
    pub key: String,
}

/// The owner of a valid, unrevoked stream key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamKeyOwner {
    pub user_id: String,
    pub display_name: String,
    pub key_id: String,
    /// What a broadcast on this key starts with.
    #[serde(default)]
    pub defaults: BroadcastDefaults,
}

/// A creator's visibility and access policy for new broadcasts (public and free unless set).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BroadcastDefaults {
    pub visibility: Visibility,
    pub access: AccessPolicy,
}

#[derive(Clone)]
pub struct UserClient {
    base: String,
    http: reqwest::Client,
}

impl UserClient {
    /// `base` is user-svc's root URL, e.g. `http://127.0.0.1:8082`.
    pub fn new(base: impl Into<String>, timeout: Duration) -> Self {
        Self {
            base: base.into().trim_end_matches('/').to_string(),
            http: crate::http_client(timeout),
        }
    }

    /// `Ok(Some(owner))` for a valid key, `Ok(None)` for an unknown or revoked one.
    pub async fn validate_stream_key(
        &self,
        key: &str,
    ) -> Result<Option<StreamKeyOwner>, ClientError> {
        let req = self
            .http
            .post(format!("{}/internal/v1/stream-keys/validate", self.base))
            .json(&ValidateStreamKey {
                key: key.to_string(),
            });
        match send_json::<StreamKeyOwner>("user-svc", req).await {
            Ok(owner) => Ok(Some(owner)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }
}
