//! Calls to user-svc.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metadata::{AccessPolicy, Visibility};
use crate::transport::{BadUrl, Budget, Transport};
use crate::ClientError;

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

/// `POST /internal/v1/entitlements/check`: may this viewer watch this video? bff asks for
/// every protected video; user-svc answers from the primary database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EntitlementCheck {
    /// The viewer; absent or null for anonymous viewers.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The video's creator.
    pub owner_id: String,
    pub video_id: String,
    /// The video's policy, as metadata-svc stores it.
    pub policy: AccessPolicy,
}

/// Why access was given or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Free,
    Owner,
    Subscribed,
    Purchased,
    NotSubscribed,
    NotPurchased,
    LoginRequired,
}

impl Reason {
    /// The wire name (`not_subscribed`, ...), also used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Free => "free",
            Reason::Owner => "owner",
            Reason::Subscribed => "subscribed",
            Reason::Purchased => "purchased",
            Reason::NotSubscribed => "not_subscribed",
            Reason::NotPurchased => "not_purchased",
            Reason::LoginRequired => "login_required",
        }
    }
}

/// What the viewer could buy to get access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Offer {
    Subscription {
        creator_id: String,
        price_minor: i64,
        currency: String,
        interval: String,
    },
    Purchase {
        video_id: String,
        creator_id: String,
        price_minor: i64,
        currency: String,
    },
}

/// user-svc's answer to an [`EntitlementCheck`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub allow: bool,
    pub reason: Reason,
    /// Present when access is refused and something can be bought (null otherwise).
    pub offer: Option<Offer>,
}

impl Decision {
    pub fn allow(reason: Reason) -> Self {
        Self {
            allow: true,
            reason,
            offer: None,
        }
    }

    pub fn deny(reason: Reason, offer: Option<Offer>) -> Self {
        Self {
            allow: false,
            reason,
            offer,
        }
    }
}

/// What anyone may see about a user (`POST /internal/v1/users/batch`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Profile {
    pub id: String,
    pub display_name: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

#[derive(Deserialize)]
struct Profiles {
    users: Vec<Profile>,
}

/// user-svc's internal API. Its `/v1` routes, called with the viewer's own token, are bff's
/// to call over [`UserClient::transport`].
#[derive(Clone)]
pub struct UserClient {
    t: Transport,
}

impl UserClient {
    /// `base` is user-svc's root URL, e.g. `http://127.0.0.1:8082`; one timeout for every call.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, BadUrl> {
        Ok(Self::with(Transport::new(
            "user-svc", base, timeout, timeout,
        )?))
    }

    pub fn with(t: Transport) -> Self {
        Self { t }
    }

    pub fn transport(&self) -> &Transport {
        &self.t
    }

    /// `Ok(Some(owner))` for a valid key, `Ok(None)` for an unknown or revoked one.
    pub async fn validate_stream_key(
        &self,
        key: &str,
    ) -> Result<Option<StreamKeyOwner>, ClientError> {
        let req = self
            .t
            .post(&["internal", "v1", "stream-keys", "validate"])
            .json(&ValidateStreamKey {
                key: key.to_string(),
            });
        self.t.json_or_none(req, Budget::Read).await
    }

    /// May this viewer watch this video?
    pub async fn check_entitlement(
        &self,
        check: &EntitlementCheck,
    ) -> Result<Decision, ClientError> {
        let req = self
            .t
            .post(&["internal", "v1", "entitlements", "check"])
            .json(check);
        self.t.json(req, Budget::Read).await
    }

    /// Public profiles of the ids that exist.
    pub async fn profiles(&self, ids: &[String]) -> Result<Vec<Profile>, ClientError> {
        #[derive(Serialize)]
        struct Batch<'a> {
            ids: &'a [String],
        }
        let req = self
            .t
            .post(&["internal", "v1", "users", "batch"])
            .json(&Batch { ids });
        let p: Profiles = self.t.json(req, Budget::Read).await?;
        Ok(p.users)
    }
}
