//! Calls to the two services bff assembles screens from, over service-clients' one HTTP
//! stack ([`Transport`]): every call is bounded by a timeout (connect included), carries the
//! request id, is counted in `bff_upstream_*` ([`record`]), and fails as an [`UpstreamError`] that keeps
//! what the service said (code, field, Retry-After) so bff can pass it on.
//!
//! user-svc's `/v1` routes are called with the viewer's own `Authorization` header: user-svc
//! stays the one owner of authentication. Their JSON is decoded straight into the `/v1` types
//! of [`crate::model`]. The internal calls and their wire types (the entitlement check,
//! profiles, the whole catalog) are service-clients'.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::{Deserialize, Serialize};
use service_clients::users::{Decision, EntitlementCheck, UserClient};
use service_clients::{bearer, BadUrl, Budget, Transport};

use crate::model::{
    BroadcastDefaults, Creator, LoginRequest, NewStreamKeyRequest, Plan, PlanRequest, ProfileEdit,
    Purchase, RefreshRequest, Session, SignupRequest, StreamKeyList, SubscribeRequest,
    SubscriberList, Subscription, User,
};

/// How a call to user-svc or metadata-svc failed: service-clients' error, the one every
/// service uses.
pub use service_clients::ClientError as UpstreamError;

/// The catalog: service-clients' client, as ingest and the transcoder use it.
pub type MetadataSvc = service_clients::metadata::MetadataClient;

/// One service's transport with bff's two timeouts and metrics.
pub fn transport(
    service: &'static str,
    base: &str,
    read_timeout: Duration,
    write_timeout: Duration,
) -> Result<Transport, BadUrl> {
    Ok(Transport::new(service, base, read_timeout, write_timeout)?.with_metrics(record))
}

/// Every call bff makes: `bff_upstream_requests_total{service,outcome}` and its duration.
fn record(service: &'static str, outcome: &'static str, secs: f64) {
    metrics::histogram!("bff_upstream_request_duration_seconds", "service" => service).record(secs);
    metrics::counter!("bff_upstream_requests_total", "service" => service, "outcome" => outcome)
        .increment(1);
}

// ---------------------------------------------------------------------------------------------
// user-svc

/// A stream key as user-svc answers its creation (the OBS settings are added by bff).
#[derive(Debug, Clone, Deserialize)]
pub struct CreatedKey {
    pub id: String,
    pub masked: String,
    pub label: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub key: String,
}

/// `POST /v1/purchases` on user-svc.
#[derive(Debug, Clone, Serialize)]
pub struct PurchaseInput<'a> {
    pub video_id: &'a str,
    pub creator_id: &'a str,
    pub price_minor: i64,
    pub currency: &'a str,
    pub idempotency_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_token: Option<&'a str>,
}

#[derive(Deserialize)]
struct Subscriptions {
    subscriptions: Vec<Subscription>,
}

#[derive(Deserialize)]
struct Purchases {
    purchases: Vec<Purchase>,
}

#[derive(Clone)]
pub struct UserSvc {
    up: Transport,
    internal: UserClient,
}

impl UserSvc {
    pub fn new(up: Transport) -> Self {
        Self {
            internal: UserClient::with(up.clone()),
            up,
        }
    }

    fn post(&self, segments: &[&str]) -> RequestBuilder {
        self.up.request(Method::POST, segments)
    }

    fn get(&self, segments: &[&str]) -> RequestBuilder {
        self.up.request(Method::GET, segments)
    }

    pub async fn signup(
        &self,
        body: &SignupRequest,
        client: &str,
    ) -> Result<Session, UpstreamError> {
        let req = self
            .post(&["v1", "auth", "signup"])
            .header("x-forwarded-for", client)
            .json(body);
        self.up.json(req, Budget::Write).await
    }

    pub async fn login(&self, body: &LoginRequest, client: &str) -> Result<Session, UpstreamError> {
        let req = self
            .post(&["v1", "auth", "login"])
            .header("x-forwarded-for", client)
            .json(body);
        self.up.json(req, Budget::Write).await
    }

    pub async fn refresh(&self, body: &RefreshRequest) -> Result<Session, UpstreamError> {
        self.up
            .json(
                self.post(&["v1", "auth", "refresh"]).json(body),
                Budget::Write,
            )
            .await
    }

    pub async fn logout(&self, body: &RefreshRequest) -> Result<(), UpstreamError> {
        self.up
            .empty(
                self.post(&["v1", "auth", "logout"]).json(body),
                Budget::Write,
            )
            .await
    }

    pub async fn me(&self, auth: &str) -> Result<User, UpstreamError> {
        self.up
            .json(bearer(self.get(&["v1", "me"]), auth), Budget::Read)
            .await
    }

    pub async fn edit_me(&self, auth: &str, edit: &ProfileEdit) -> Result<User, UpstreamError> {
        let req = bearer(self.up.request(Method::PATCH, &["v1", "me"]), auth).json(edit);
        self.up.json(req, Budget::Read).await
    }

    pub async fn become_creator(&self, auth: &str) -> Result<User, UpstreamError> {
        self.up
            .json(
                bearer(self.post(&["v1", "me", "become-creator"]), auth),
                Budget::Read,
            )
            .await
    }

    pub async fn stream_keys(&self, auth: &str) -> Result<StreamKeyList, UpstreamError> {
        self.up
            .json(bearer(self.get(&["v1", "stream-keys"]), auth), Budget::Read)
            .await
    }

    pub async fn create_stream_key(
        &self,
        auth: &str,
        body: &NewStreamKeyRequest,
    ) -> Result<CreatedKey, UpstreamError> {
        self.up
            .json(
                bearer(self.post(&["v1", "stream-keys"]), auth).json(body),
                Budget::Read,
            )
            .await
    }

    pub async fn rotate_stream_key(
        &self,
        auth: &str,
        id: &str,
    ) -> Result<CreatedKey, UpstreamError> {
        self.up
            .json(
                bearer(self.post(&["v1", "stream-keys", id, "rotate"]), auth),
                Budget::Read,
            )
            .await
    }

    pub async fn revoke_stream_key(&self, auth: &str, id: &str) -> Result<(), UpstreamError> {
        self.up
            .empty(
                bearer(
                    self.up.request(Method::DELETE, &["v1", "stream-keys", id]),
                    auth,
                ),
                Budget::Read,
            )
            .await
    }

    /// `None` when the creator has no plan.
    pub async fn my_plan(&self, auth: &str) -> Result<Option<Plan>, UpstreamError> {
        match self
            .up
            .json(bearer(self.get(&["v1", "me", "plan"]), auth), Budget::Read)
            .await
        {
            Ok(p) => Ok(Some(p)),
            Err(UpstreamError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A creator's plan as anyone may see it; `None` when the creator has none.
    pub async fn creator_plan(&self, creator_id: &str) -> Result<Option<Plan>, UpstreamError> {
        match self
            .up
            .json(
                self.get(&["v1", "creators", creator_id, "plan"]),
                Budget::Read,
            )
            .await
        {
            Ok(p) => Ok(Some(p)),
            Err(UpstreamError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn set_plan(&self, auth: &str, body: &PlanRequest) -> Result<Plan, UpstreamError> {
        self.up
            .json(
                bearer(self.up.request(Method::PUT, &["v1", "me", "plan"]), auth).json(body),
                Budget::Read,
            )
            .await
    }

    pub async fn broadcast_defaults(&self, auth: &str) -> Result<BroadcastDefaults, UpstreamError> {
        self.up
            .json(
                bearer(self.get(&["v1", "me", "broadcast-defaults"]), auth),
                Budget::Read,
            )
            .await
    }

    pub async fn set_broadcast_defaults(
        &self,
        auth: &str,
        body: &BroadcastDefaults,
    ) -> Result<BroadcastDefaults, UpstreamError> {
        self.up
            .json(
                bearer(
                    self.up
                        .request(Method::PUT, &["v1", "me", "broadcast-defaults"]),
                    auth,
                )
                .json(body),
                Budget::Read,
            )
            .await
    }

    pub async fn subscribers(&self, auth: &str) -> Result<SubscriberList, UpstreamError> {
        self.up
            .json(
                bearer(self.get(&["v1", "creators", "me", "subscribers"]), auth),
                Budget::Read,
            )
            .await
    }

    /// The subscription and whether a month was charged now (201) or it already existed (200).
    pub async fn subscribe(
        &self,
        auth: &str,
        body: &SubscribeRequest,
    ) -> Result<(bool, Subscription), UpstreamError> {
        let (status, s) = self
            .up
            .json_status(
                bearer(self.post(&["v1", "subscriptions"]), auth).json(body),
                Budget::Write,
            )
            .await?;
        Ok((status == StatusCode::CREATED, s))
    }

    pub async fn cancel_subscription(
        &self,
        auth: &str,
        id: &str,
    ) -> Result<Subscription, UpstreamError> {
        let req = bearer(
            self.up
                .request(Method::DELETE, &["v1", "subscriptions", id]),
            auth,
        );
        self.up.json(req, Budget::Write).await
    }

    pub async fn my_subscriptions(&self, auth: &str) -> Result<Vec<Subscription>, UpstreamError> {
        let s: Subscriptions = self
            .up
            .json(
                bearer(self.get(&["v1", "me", "subscriptions"]), auth),
                Budget::Read,
            )
            .await?;
        Ok(s.subscriptions)
    }

    pub async fn purchase(
        &self,
        auth: &str,
        input: &PurchaseInput<'_>,
    ) -> Result<Purchase, UpstreamError> {
        let req = bearer(self.post(&["v1", "purchases"]), auth)
            .header("idempotency-key", input.idempotency_key)
            .json(input);
        self.up.json(req, Budget::Write).await
    }

    pub async fn my_purchases(
        &self,
        auth: &str,
        limit: u32,
    ) -> Result<Vec<Purchase>, UpstreamError> {
        let req = bearer(self.get(&["v1", "me", "purchases"]), auth).query(&[("limit", limit)]);
        let p: Purchases = self.up.json(req, Budget::Read).await?;
        Ok(p.purchases)
    }

    pub async fn check(&self, req: &EntitlementCheck) -> Result<Decision, UpstreamError> {
        self.internal.check_entitlement(req).await
    }

    /// Public profiles of the ids that exist.
    pub async fn profiles(&self, ids: &[String]) -> Result<Vec<Creator>, UpstreamError> {
        let profiles = self.internal.profiles(ids).await?;
        Ok(profiles
            .into_iter()
            .map(|p| Creator {
                id: p.id,
                display_name: p.display_name,
                avatar_url: p.avatar_url,
            })
            .collect())
    }
}
