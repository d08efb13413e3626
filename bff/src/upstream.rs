//! Calls to the two services bff assembles screens from. Every call is bounded by a timeout
//! (connect included), carries the request id, is counted, and fails as an [`UpstreamError`]
//! that keeps what the service said (code, field, Retry-After) so bff can pass it on.
//!
//! user-svc's `/v1` routes are called with the viewer's own `Authorization` header: user-svc
//! stays the one owner of authentication. Its JSON is decoded straight into the `/v1` types of
//! [`crate::model`]. The catalog's wire types come from `service_clients::metadata`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Client, Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use service_clients::metadata::Video;

use crate::model::{
    AccessPolicy, BroadcastDefaults, Creator, LoginRequest, NewStreamKeyRequest, Offer, Plan,
    PlanRequest, ProfileEdit, Purchase, Reason, RefreshRequest, Session, SignupRequest,
    StreamKeyList, SubscribeRequest, SubscriberList, Subscription, User,
};

tokio::task_local! {
    /// The id of the request being served, sent along to the services as `x-request-id`.
    pub static REQUEST_ID: String;
}

/// How a call to user-svc or metadata-svc failed: service-clients' error, the one every
/// service uses.
pub use service_clients::ClientError as UpstreamError;

/// Which timeout bounds a call.
#[derive(Debug, Clone, Copy)]
pub enum Budget {
    /// Reads and cheap writes: `upstream_timeout_ms`.
    Read,
    /// Password hashing and payments: `upstream_write_timeout_ms`.
    Write,
}

#[derive(Deserialize)]
struct Envelope {
    error: EnvelopeBody,
}

#[derive(Deserialize)]
struct EnvelopeBody {
    code: String,
    message: String,
    #[serde(default)]
    field: Option<String>,
}

/// One service: its base URL, a pooled HTTP client and the two timeouts.
#[derive(Clone)]
pub struct Upstream {
    service: &'static str,
    base: Url,
    http: Client,
    read_timeout: Duration,
    write_timeout: Duration,
}

impl Upstream {
    pub fn new(
        service: &'static str,
        base: &str,
        read_timeout: Duration,
        write_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let base = Url::parse(base).map_err(|e| anyhow::anyhow!("{service} URL {base:?}: {e}"))?;
        if base.cannot_be_a_base() {
            anyhow::bail!("{service} URL {base} cannot be a base URL");
        }
        let http = Client::builder()
            .connect_timeout(read_timeout.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| anyhow::anyhow!("building the HTTP client: {e}"))?;
        Ok(Self {
            service,
            base,
            http,
            read_timeout,
            write_timeout,
        })
    }

    /// The base URL with `segments` appended, each percent-encoded (ids cannot escape).
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty();
            p.extend(segments);
        }
        u
    }

    pub fn request(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        self.http.request(method, self.url(segments))
    }

    /// Sends the request within the budget; a non-2xx answer becomes an error.
    async fn raw(
        &self,
        req: RequestBuilder,
        budget: Budget,
    ) -> Result<(StatusCode, Bytes), UpstreamError> {
        let service = self.service;
        let timeout = match budget {
            Budget::Read => self.read_timeout,
            Budget::Write => self.write_timeout,
        };
        let req = match REQUEST_ID.try_with(Clone::clone) {
            Ok(id) => req.header("x-request-id", id),
            Err(_) => req,
        };
        let started = Instant::now();
        let res = tokio::time::timeout(timeout, async {
            let resp = req.send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        })
        .await;
        metrics::histogram!("bff_upstream_request_duration_seconds", "service" => service)
            .record(started.elapsed().as_secs_f64());
        let outcome = match &res {
            Err(_) => "timeout",
            Ok(Err(_)) => "unreachable",
            Ok(Ok((s, _, _))) if s.is_success() => "ok",
            Ok(Ok((s, _, _))) if s.is_client_error() => "client_error",
            Ok(Ok(_)) => "server_error",
        };
        metrics::counter!("bff_upstream_requests_total", "service" => service, "outcome" => outcome).increment(1);
        match res {
            Err(_) => Err(UpstreamError::Unavailable {
                service,
                detail: format!("no answer within {timeout:?}"),
            }),
            Ok(Err(e)) => Err(UpstreamError::Unavailable {
                service,
                detail: e.to_string(),
            }),
            Ok(Ok((status, _, body))) if status.is_success() => Ok((status, body)),
            Ok(Ok((status, headers, body))) => Err(self.api_error(status, &headers, &body)),
        }
    }

    fn api_error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> UpstreamError {
        let service = self.service;
        let env = serde_json::from_slice::<Envelope>(body).ok();
        let payment = env
            .as_ref()
            .is_some_and(|e| e.error.code.starts_with("payment_"));
        if matches!(status.as_u16(), 502..=504) && !payment {
            return UpstreamError::Unavailable {
                service,
                detail: format!("answered {status}"),
            };
        }
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        match env {
            Some(e) => UpstreamError::Api {
                service,
                status: status.as_u16(),
                code: e.error.code,
                message: e.error.message,
                field: e.error.field,
                retry_after,
            },
            None => UpstreamError::Api {
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

    /// Sends and decodes a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
        budget: Budget,
    ) -> Result<T, UpstreamError> {
        self.json_status(req, budget).await.map(|(_, t)| t)
    }

    pub async fn json_status<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
        budget: Budget,
    ) -> Result<(StatusCode, T), UpstreamError> {
        let (status, body) = self.raw(req, budget).await?;
        let t = serde_json::from_slice(&body).map_err(|e| UpstreamError::Decode {
            service: self.service,
            detail: e.to_string(),
        })?;
        Ok((status, t))
    }

    /// Sends and ignores the body of a successful answer (204).
    pub async fn empty(&self, req: RequestBuilder, budget: Budget) -> Result<(), UpstreamError> {
        self.raw(req, budget).await.map(|_| ())
    }
}

fn bearer(req: RequestBuilder, authorization: &str) -> RequestBuilder {
    req.header(AUTHORIZATION, authorization)
}

// ---------------------------------------------------------------------------------------------
// user-svc

/// `POST /internal/v1/entitlements/check`.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRequest<'a> {
    pub user_id: Option<&'a str>,
    pub owner_id: &'a str,
    pub video_id: &'a str,
    pub policy: AccessPolicy,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Decision {
    pub allow: bool,
    pub reason: Reason,
    pub offer: Option<Offer>,
}

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
struct Users {
    users: Vec<Creator>,
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
    up: Upstream,
}

impl UserSvc {
    pub fn new(up: Upstream) -> Self {
        Self { up }
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

    pub async fn check(&self, req: &CheckRequest<'_>) -> Result<Decision, UpstreamError> {
        self.up
            .json(
                self.post(&["internal", "v1", "entitlements", "check"])
                    .json(req),
                Budget::Read,
            )
            .await
    }

    /// Public profiles of the ids that exist.
    pub async fn profiles(&self, ids: &[String]) -> Result<Vec<Creator>, UpstreamError> {
        #[derive(Serialize)]
        struct Batch<'a> {
            ids: &'a [String],
        }
        let u: Users = self
            .up
            .json(
                self.post(&["internal", "v1", "users", "batch"])
                    .json(&Batch { ids }),
                Budget::Read,
            )
            .await?;
        Ok(u.users)
    }
}

// ---------------------------------------------------------------------------------------------
// metadata-svc

/// One page of a catalog list.
#[derive(Debug, Clone, Deserialize)]
pub struct VideoPage {
    pub items: Vec<Video>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Trending {
    items: Vec<TrendingItem>,
}

#[derive(Deserialize)]
struct TrendingItem {
    video: Video,
}

#[derive(Clone)]
pub struct MetadataSvc {
    up: Upstream,
}

impl MetadataSvc {
    pub fn new(up: Upstream) -> Self {
        Self { up }
    }

    fn get(&self, segments: &[&str]) -> RequestBuilder {
        self.up.request(Method::GET, segments)
    }

    /// `None` for an unknown (or deleted) video.
    pub async fn video(&self, id: &str) -> Result<Option<Video>, UpstreamError> {
        match self
            .up
            .json(self.get(&["internal", "v1", "videos", id]), Budget::Read)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(UpstreamError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn live(&self, limit: usize) -> Result<VideoPage, UpstreamError> {
        let req = self
            .get(&["internal", "v1", "videos", "live"])
            .query(&[("limit", limit)]);
        self.up.json(req, Budget::Read).await
    }

    /// Public recorded broadcasts and ready uploads, newest first.
    pub async fn recent(&self, limit: usize) -> Result<VideoPage, UpstreamError> {
        let req = self.get(&["internal", "v1", "videos"]).query(&[
            ("status", "recorded,ready"),
            ("visibility", "public"),
            ("limit", &limit.to_string()),
        ]);
        self.up.json(req, Budget::Read).await
    }

    pub async fn trending(&self, limit: usize) -> Result<Vec<Video>, UpstreamError> {
        let req = self
            .get(&["internal", "v1", "videos", "trending"])
            .query(&[("limit", limit)]);
        let t: Trending = self.up.json(req, Budget::Read).await?;
        Ok(t.items.into_iter().map(|i| i.video).collect())
    }

    pub async fn search(
        &self,
        q: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<VideoPage, UpstreamError> {
        let mut query = vec![("q", q.to_string()), ("limit", limit.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        self.up
            .json(
                self.get(&["internal", "v1", "search"]).query(&query),
                Budget::Read,
            )
            .await
    }

    /// Every video of `owner`, any status and visibility, newest first.
    pub async fn creator_videos(
        &self,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<VideoPage, UpstreamError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        let req = self
            .get(&["internal", "v1", "creators", owner, "videos"])
            .query(&query);
        self.up.json(req, Budget::Read).await
    }

    /// `owner`'s public videos a viewer can watch or wait for (live, recorded, ready),
    /// newest first.
    pub async fn creator_public_videos(
        &self,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<VideoPage, UpstreamError> {
        let mut query = vec![
            ("limit", limit.to_string()),
            ("visibility", "public".to_string()),
            ("status", "live,recorded,ready".to_string()),
        ];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        let req = self
            .get(&["internal", "v1", "creators", owner, "videos"])
            .query(&query);
        self.up.json(req, Budget::Read).await
    }

    /// Counts one view (`POST /internal/v1/videos/{id}/views`); trending ranks by these.
    pub async fn add_view(&self, id: &str) -> Result<(), UpstreamError> {
        let req = self
            .up
            .request(Method::POST, &["internal", "v1", "videos", id, "views"]);
        self.up.empty(req, Budget::Read).await
    }

    /// `DELETE /internal/v1/videos/{id}`: soft delete; the catalog records the video's storage
    /// for the cleanup worker. `false` when there was no such video.
    pub async fn delete(&self, id: &str) -> Result<bool, UpstreamError> {
        let req = self
            .up
            .request(Method::DELETE, &["internal", "v1", "videos", id]);
        match self.up.empty(req, Budget::Read).await {
            Ok(()) => Ok(true),
            Err(UpstreamError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `PATCH /internal/v1/videos/{id}` with `expected_version` and the fields to change.
    pub async fn edit(&self, id: &str, body: &serde_json::Value) -> Result<Video, UpstreamError> {
        let req = self
            .up
            .request(Method::PATCH, &["internal", "v1", "videos", id])
            .json(body);
        self.up.json(req, Budget::Read).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_encoded_into_one_segment() {
        let up = Upstream::new(
            "x",
            "http://127.0.0.1:1/",
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            up.url(&["internal", "v1", "videos", "a/../b?c"]).as_str(),
            "http://127.0.0.1:1/internal/v1/videos/a%2F..%2Fb%3Fc"
        );
        let up = Upstream::new(
            "x",
            "http://h/prefix",
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(up.url(&["v1", "me"]).as_str(), "http://h/prefix/v1/me");
    }
}
