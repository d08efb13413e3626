//! bff: the one `/v1` API web and mobile apps talk to, plus the web pages' static files.
//!
//! It signs users in (through user-svc, the one owner of accounts and tokens), assembles each
//! screen from metadata-svc and user-svc in one round trip (calls run concurrently, each with a
//! timeout), decides who may watch what, and hands entitled viewers the playback URL of the
//! master playlist through the edge. A screen that is still useful without one service is
//! served with the missing part marked unavailable; one that is not answers 503 at once.
//!
//! - [`app`]: the router over an [`AppState`].
//! - [`start`]: binds `config.listen` (port 0 allowed) and serves; tests start bff with it.
//! - [`run`]: what `main` calls; also serves `/metrics` and `/healthz` on `metrics_listen`.

pub mod api;
pub mod cache;
pub mod config;
pub mod error;
pub mod extract;
pub mod middleware;
pub mod model;
pub mod openapi;
pub mod upstream;
pub mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use base64::Engine as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use error::Error;

use crate::cache::{Lookup, TtlCache};
use crate::middleware::RateLimiter;
use crate::model::{Creator, Reason};
use crate::upstream::{MetadataSvc, UpstreamError, UserSvc};
use service_clients::metadata::Video;

/// Builds URLs through the edge: posters at `{edge_url}/{key}`, playback at
/// `{edge_url}/p/{token}/{key}` with a token that opens that video's media only, for
/// `token_ttl` (see the `playback-token` crate).
#[derive(Debug, Clone)]
pub struct EdgeUrls {
    base: String,
    keys: playback_token::Keys,
    token_ttl: Duration,
}

impl EdgeUrls {
    pub fn new(base: &str, keys: playback_token::Keys, token_ttl: Duration) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            keys,
            token_ttl,
        }
    }

    /// An unsigned URL: the edge serves only posters this way.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{}", self.base, key.trim_start_matches('/'))
    }

    /// An image of a video: `<kind>/<id>/poster.jpg|png` is public at the edge (cards show
    /// it to everyone, and an unsigned URL stays in browser caches); any other key inside a
    /// video's folder is signed like its media.
    pub fn image(&self, key: &str) -> String {
        let key = key.trim_start_matches('/');
        let public = playback_token::media_prefix(key)
            .is_some_and(|prefix| matches!(&key[prefix.len()..], "poster.jpg" | "poster.png"));
        match self.signed(key) {
            Some((url, _)) if !public => url,
            _ => self.url(key),
        }
    }

    /// A signed URL for storage key `key` and when it stops working; `None` when the key is
    /// not inside a video's media folder (`<kind>/<id>/...`).
    pub fn signed(&self, key: &str) -> Option<(String, chrono::DateTime<chrono::Utc>)> {
        let exp = chrono::Utc::now() + self.token_ttl;
        let path = self
            .keys
            .signed_path(key.trim_start_matches('/'), exp.timestamp() as u64)?;
        Some((format!("{}/{path}", self.base), exp))
    }
}

/// What every handler shares (cheap to clone).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub users: UserSvc,
    pub catalog: MetadataSvc,
    pub edge: EdgeUrls,
    /// Creator id -> public profile.
    pub profiles: TtlCache<String, Creator>,
    /// `Authorization` header -> user id, never past the token's expiry.
    pub identities: TtlCache<String, String>,
    /// (viewer, video, policy) -> the reason access was granted.
    pub grants: TtlCache<(String, String, String), Reason>,
    /// Video id -> document, for the watch screen.
    pub videos: TtlCache<String, Arc<Video>>,
    pub auth_limiter: Arc<RateLimiter>,
    pub purchase_limiter: Arc<RateLimiter>,
    /// The OpenAPI document, rendered once.
    pub openapi: bytes::Bytes,
    /// Every ingest instance (`ingest_urls`): which one runs a broadcast, and its health.
    pub ingest: Vec<service_clients::ingest::IngestClient>,
    /// Resumable uploads; `None` when no job queue is configured.
    pub uploads: Option<Arc<api::uploads::Uploads>>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        Self::with_uploads(config, None)
    }

    pub fn with_uploads(
        config: Config,
        uploads: Option<Arc<api::uploads::Uploads>>,
    ) -> anyhow::Result<Self> {
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let users = UserSvc::new(upstream::transport(
            "user-svc",
            &config.user_svc_url,
            config.upstream_timeout(),
            config.upstream_write_timeout(),
        )?);
        let catalog = MetadataSvc::with(upstream::transport(
            "metadata-svc",
            &config.metadata_svc_url,
            config.upstream_timeout(),
            config.upstream_write_timeout(),
        )?);
        let rl = &config.rate_limit;
        let inner = Inner {
            users,
            catalog,
            edge: EdgeUrls::new(
                &config.edge_url,
                config.playback.keys().map_err(|e| anyhow::anyhow!(e))?,
                Duration::from_secs(config.playback.token_ttl_secs),
            ),
            profiles: TtlCache::new(Duration::from_millis(config.profile_cache_ms), 50_000),
            identities: TtlCache::new(Duration::from_millis(config.identity_cache_ms), 50_000),
            grants: TtlCache::new(Duration::from_millis(config.entitlement_cache_ms), 100_000),
            videos: TtlCache::new(Duration::from_millis(config.video_cache_ms), 10_000),
            auth_limiter: Arc::new(RateLimiter::new(
                "auth",
                rl.auth_burst,
                rl.auth_per_minute,
                rl.forwarded_hops,
            )),
            purchase_limiter: Arc::new(RateLimiter::new(
                "purchase",
                rl.purchase_burst,
                rl.purchase_per_minute,
                rl.forwarded_hops,
            )),
            openapi: openapi::document_json(),
            ingest: config
                .ingest_urls
                .iter()
                .map(|url| {
                    upstream::transport(
                        "ingest",
                        url,
                        config.upstream_timeout(),
                        config.upstream_timeout(),
                    )
                    .map(service_clients::ingest::IngestClient::with)
                })
                .collect::<Result<_, _>>()?,
            uploads,
            config,
        };
        Ok(AppState(Arc::new(inner)))
    }

    /// The signed-in user's id, asked of user-svc (`GET /v1/me` with the caller's header)
    /// and then reused until the token expires or `identity_cache_ms` passes.
    pub async fn user_id(&self, authorization: &str) -> Result<String, Error> {
        let key = authorization.to_string();
        match self.identities.lookup(&key) {
            Lookup::Hit(id) => return Ok(id),
            Lookup::Refresh(id) => {
                let st = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = st.ask_user_id(&key).await {
                        tracing::debug!(error = %e, "identity refresh failed");
                        if matches!(e, Error::Unauthorized) {
                            st.identities.remove(&key);
                        } else {
                            st.identities.refresh_failed(&key);
                        }
                    }
                });
                return Ok(id);
            }
            Lookup::Miss => {}
        }
        self.ask_user_id(authorization).await
    }

    async fn ask_user_id(&self, authorization: &str) -> Result<String, Error> {
        let me = self.users.me(authorization).await.map_err(|e| match e {
            UpstreamError::Api { status: 401, .. } => Error::Unauthorized,
            other => other.into(),
        })?;
        if let Some(until) = token_expiry(authorization) {
            self.identities
                .insert(authorization.to_string(), me.id.clone(), Some(until));
        }
        Ok(me.id)
    }

    /// Public profiles of `ids` (those that exist), from the cache or one batch call.
    pub async fn creators(&self, ids: &[&str]) -> Result<HashMap<String, Creator>, Error> {
        let mut found = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        let mut stale: Vec<String> = Vec::new();
        for id in ids {
            if found.contains_key(*id) || missing.iter().any(|m| m == id) {
                continue;
            }
            match self.profiles.lookup(&id.to_string()) {
                Lookup::Hit(c) => {
                    found.insert(id.to_string(), c);
                }
                Lookup::Refresh(c) => {
                    found.insert(id.to_string(), c);
                    stale.push(id.to_string());
                }
                Lookup::Miss => missing.push(id.to_string()),
            }
        }
        if !stale.is_empty() {
            let st = self.clone();
            tokio::spawn(async move {
                if st.fetch_profiles(&stale).await.is_err() {
                    for id in &stale {
                        st.profiles.refresh_failed(id);
                    }
                }
            });
        }
        if !missing.is_empty() {
            for c in self.fetch_profiles(&missing).await? {
                found.insert(c.id.clone(), c);
            }
        }
        Ok(found)
    }

    /// A video for the watch screen: from the cache (renewed in the background while in use)
    /// or metadata-svc. `None` when it does not exist.
    pub async fn video(&self, id: &str) -> Result<Option<Arc<Video>>, Error> {
        let key = id.to_string();
        match self.videos.lookup(&key) {
            Lookup::Hit(v) => return Ok(Some(v)),
            Lookup::Refresh(v) => {
                let st = self.clone();
                tokio::spawn(async move {
                    if st.fetch_video(&key).await.is_err() {
                        st.videos.refresh_failed(&key);
                    }
                });
                return Ok(Some(v));
            }
            Lookup::Miss => {}
        }
        self.fetch_video(id).await
    }

    async fn fetch_video(&self, id: &str) -> Result<Option<Arc<Video>>, Error> {
        match self.catalog.get_video(id).await? {
            Some(v) => {
                let v = Arc::new(v);
                self.videos.insert(id.to_string(), v.clone(), None);
                Ok(Some(v))
            }
            None => {
                self.videos.remove(&id.to_string());
                Ok(None)
            }
        }
    }

    async fn fetch_profiles(&self, ids: &[String]) -> Result<Vec<Creator>, Error> {
        let found = self.users.profiles(ids).await?;
        for c in &found {
            self.profiles.insert(c.id.clone(), c.clone(), None);
        }
        Ok(found)
    }
}

/// When a JWT access token expires (its `exp` claim), read without verifying: it only bounds
/// how long user-svc's verdict on that token is reused.
fn token_expiry(authorization: &str) -> Option<Instant> {
    #[derive(serde::Deserialize)]
    struct Claims {
        exp: i64,
    }
    let token = authorization.strip_prefix("Bearer ")?;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    let left = claims.exp - chrono::Utc::now().timestamp();
    (left > 0).then(|| Instant::now() + Duration::from_secs(left as u64))
}

/// The whole router: `/v1/...`, the web pages and `/healthz`.
pub fn app(state: AppState) -> Router {
    api::router(state)
}

/// Checks the config, binds `config.listen` (port 0 allowed) and serves until `shutdown`.
/// Returns the bound address and the serving task.
pub async fn start(
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listen = config.listen;
    let (user_svc, metadata_svc) = (config.user_svc_url.clone(), config.metadata_svc_url.clone());
    let uploads = if config.uploads.enabled() {
        let store = config
            .uploads
            .storage
            .open()
            .await
            .map_err(|e| anyhow::anyhow!("upload storage: {e}"))?;
        let catalog = service_clients::metadata::MetadataClient::new(
            &config.metadata_svc_url,
            config.upstream_write_timeout(),
        )?;
        let up = api::uploads::Uploads::new(config.uploads.clone(), store, catalog);
        api::uploads::spawn_background(up.clone(), shutdown.clone());
        Some(up)
    } else {
        tracing::info!("uploads off: no job queue configured (uploads.jobs.url)");
        None
    };
    let state = AppState::with_uploads(config, uploads)?;
    if !state.config.shared_state_url.trim().is_empty() {
        let url = service_kit::redact_url(&state.config.shared_state_url);
        let shared = service_kit::shared::Shared::connect(&state.config.shared_state_url, "")
            .await
            .map_err(|e| anyhow::anyhow!("shared state at {url}: {e}"))?;
        state.auth_limiter.buckets.share(&shared, "bff");
        state.purchase_limiter.buckets.share(&shared, "bff");
        tracing::info!(redis = %url, "rate limits shared in redis");
    }
    let (addr, task) = service_kit::serve(listen, app(state), shutdown).await?;
    tracing::info!(%addr, user_svc, metadata_svc, "bff listening");
    Ok((addr, task))
}

/// Serves the API and the metrics port until `shutdown`, then waits for both to stop.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics_listen = config.metrics_listen;
    service_kit::run_with_metrics(
        "bff",
        metrics_listen,
        shutdown.clone(),
        start(config, shutdown),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_urls() {
        let keys =
            playback_token::Keys::parse(&format!("k1={}", config::TEST_PLAYBACK_SECRET), None)
                .unwrap();
        let e = EdgeUrls::new("http://edge:8090/", keys.clone(), Duration::from_secs(60));
        assert_eq!(
            e.url("live/abc/poster.jpg"),
            "http://edge:8090/live/abc/poster.jpg"
        );
        let (url, exp) = e.signed("live/abc/master.m3u8").unwrap();
        let left = (exp - chrono::Utc::now()).num_seconds();
        assert!((58..=60).contains(&left), "{left}");
        let path = url.strip_prefix("http://edge:8090").unwrap();
        assert!(path.starts_with("/p/k1."), "{path}");
        let now = chrono::Utc::now().timestamp() as u64;
        assert_eq!(keys.verify_path(path, now), Ok("live/abc/master.m3u8"));
        assert!(e.signed("master.m3u8").is_none());
        assert_eq!(
            e.image("live/abc/poster.jpg"),
            "http://edge:8090/live/abc/poster.jpg"
        );
        assert!(e
            .image("live/abc/thumbs/0001.jpg")
            .starts_with("http://edge:8090/p/k1."));
    }

    #[test]
    fn expiry_is_read_from_the_token() {
        let exp = chrono::Utc::now().timestamp() + 600;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!("{{\"sub\":\"u\",\"exp\":{exp}}}"));
        let until = token_expiry(&format!("Bearer h.{payload}.s")).unwrap();
        let left = until.duration_since(Instant::now()).as_secs();
        assert!((590..=600).contains(&left), "{left}");
        assert!(token_expiry("Bearer opaque").is_none());
        let old = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{\"exp\":1}");
        assert!(token_expiry(&format!("Bearer h.{old}.s")).is_none());
    }
}
