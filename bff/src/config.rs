//! The one configuration struct of bff.
//!
//! Loaded by `main` with [`service_kit::load_config`] from an optional TOML file
//! (`--config PATH` or `CAUDAL_BFF_CONFIG`) and `CAUDAL_BFF_*` environment variables, nested
//! with `__` (`CAUDAL_BFF_RATE_LIMIT__AUTH_BURST=10`). Lists take TOML syntax in the
//! environment: `CAUDAL_BFF_CORS_ORIGINS='["https://caudal.example"]'`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// The public API (`/v1/...`) and the web pages. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Prometheus `/metrics` and `/healthz`, kept apart from the public API.
    pub metrics_listen: SocketAddr,
    /// Root URL of user-svc (accounts, stream keys, plans, subscriptions, purchases).
    pub user_svc_url: String,
    /// Root URL of metadata-svc (the video catalog).
    pub metadata_svc_url: String,
    /// Root URL of the edge cache; the playback URL of storage key `K` is `{edge_url}/{K}`.
    pub edge_url: String,
    /// The RTMP URL creators put in OBS ("Server"), shown on the studio's OBS settings.
    pub rtmp_url: String,
    /// HTTP roots of the ingest instances (the studio's broadcast health asks each).
    pub ingest_urls: Vec<String>,
    /// Folder of the web pages: `index.html`, `watch.html` and `static/`.
    pub web_dir: PathBuf,
    /// The hls.js build served at `/vendor/hls.min.js`.
    pub hls_js_path: PathBuf,
    /// Mark the browser session's cookies `Secure` even when no `X-Forwarded-Proto: https`
    /// says the request came over TLS (set when bff is served over HTTPS directly).
    pub secure_cookies: bool,
    /// Browser origins allowed to call the API cross-origin (CORS). Same-origin pages need none.
    pub cors_origins: Vec<String>,
    /// Upper bound on one read call to user-svc or metadata-svc (connect included); past it
    /// the part is marked unavailable or the request fails with 503.
    pub upstream_timeout_ms: u64,
    /// Upper bound on calls that hash passwords or move money (auth, subscribe, purchase):
    /// user-svc waits up to its own payment timeout for the provider.
    pub upstream_write_timeout_ms: u64,
    /// Largest request body accepted; larger ones are refused with 413.
    pub max_body_bytes: usize,
    /// Videos per row of the home screen and per page of lists.
    pub page_size: usize,
    /// How long a creator's public profile (display name, avatar) is reused. 0 = always ask.
    pub profile_cache_ms: u64,
    /// How long an access token's user id is reused (never past the token's expiry). 0 = always ask.
    pub identity_cache_ms: u64,
    /// How long a granted access decision is reused (denials are never cached). 0 = always ask.
    pub entitlement_cache_ms: u64,
    /// How long the watch screen reuses a video document (status, playback locations): a
    /// broadcast that ends shows as ended at most this late. Studio edits through bff are seen
    /// at once. 0 = always ask metadata-svc.
    pub video_cache_ms: u64,
    pub rate_limit: RateLimitConfig,
    /// Redis URL for state shared by bff instances (the rate limits' buckets); empty: this
    /// instance counts alone.
    pub shared_state_url: String,
    pub playback: PlaybackConfig,
    pub uploads: UploadConfig,
}

/// Resumable uploads (tus 1.0 at `/v1/uploads`). Off while `jobs.url` is empty: the routes
/// answer 503.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct UploadConfig {
    /// Where originals are written (`uploads/{id}/source`), the store the workers read.
    pub storage: storage::StoreConfig,
    /// The transcode job queue (NATS JetStream).
    pub jobs: jobs::JobsConfig,
    /// Largest file accepted; a larger `Upload-Length` is refused (413) before any byte.
    pub max_bytes: u64,
    /// Bytes held per upload before they are stored as a part (at least 5 MiB, S3's minimum):
    /// the memory one upload takes.
    pub part_bytes: usize,
    /// An upload not touched for this long is dropped (its video becomes `failed`), s.
    pub expire_secs: u64,
    /// How often abandoned uploads and unqueued jobs are looked for, s.
    pub sweep_interval_secs: u64,
    /// A PATCH that sends nothing for this long is ended (what came is kept), s.
    pub idle_timeout_secs: u64,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self {
            storage: storage::StoreConfig::default(),
            jobs: jobs::JobsConfig {
                url: String::new(),
                ..jobs::JobsConfig::default()
            },
            max_bytes: 20 << 30,
            part_bytes: 8 << 20,
            expire_secs: 86_400,
            sweep_interval_secs: 300,
            idle_timeout_secs: 60,
        }
    }
}

impl UploadConfig {
    pub fn enabled(&self) -> bool {
        !self.jobs.url.is_empty()
    }
}

/// Signed playback URLs: `{edge_url}/p/{token}/{key}` (see the `playback-token` crate). The
/// edge accepts every key listed here; bff signs with one of them.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PlaybackConfig {
    /// `kid=secret[,kid2=secret2]`, the same list the edge has (`CAUDAL_PLAYBACK_KEYS`).
    /// Required. A secret: give it as `CAUDAL_BFF_PLAYBACK__KEYS_FILE`.
    pub keys: String,
    /// The key id bff signs with; empty: the first listed. Rotation: list the new key on the
    /// edge and here, switch this to it, and drop the old key one token lifetime later.
    pub signing_key_id: String,
    /// How long a playback token opens the video, s. The watch page renews it through bff
    /// (which checks access again) before it runs out, so revoked access stops playback
    /// within this time.
    pub token_ttl_secs: u64,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            keys: String::new(),
            signing_key_id: String::new(),
            token_ttl_secs: 300,
        }
    }
}

// Key ids only: the secrets never reach a log line.
impl std::fmt::Debug for PlaybackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self
            .keys
            .split(',')
            .filter_map(|k| k.split_once('=').map(|(kid, _)| kid.trim()))
            .collect();
        f.debug_struct("PlaybackConfig")
            .field("keys", &kids)
            .field("signing_key_id", &self.signing_key_id)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .finish()
    }
}

impl PlaybackConfig {
    pub fn keys(&self) -> Result<playback_token::Keys, String> {
        let signer = Some(self.signing_key_id.as_str()).filter(|s| !s.is_empty());
        playback_token::Keys::parse(&self.keys, signer).map_err(|e| {
            format!(
                "playback.keys: {e} (CAUDAL_BFF_PLAYBACK__KEYS or CAUDAL_BFF_PLAYBACK__KEYS_FILE)"
            )
        })
    }
}

/// Token buckets per client address. A refused request answers 429 `rate_limited` with
/// `Retry-After`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Sign-up, log-in, refresh and log-out: requests allowed at once per address ...
    pub auth_burst: u32,
    /// ... and refilled per minute.
    pub auth_per_minute: u32,
    /// Purchases and subscriptions: burst and refill per minute, per address.
    pub purchase_burst: u32,
    pub purchase_per_minute: u32,
    /// Proxies in front of bff that append to `X-Forwarded-For` (2 behind CloudFront and
    /// the ALB); the client address is the entry that many from the right, never one the
    /// client wrote. 0: the peer address.
    pub forwarded_hops: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            auth_burst: 20,
            auth_per_minute: 30,
            purchase_burst: 10,
            purchase_per_minute: 20,
            forwarded_hops: 0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9080)),
            user_svc_url: "http://127.0.0.1:8082".into(),
            metadata_svc_url: "http://127.0.0.1:8083".into(),
            edge_url: "http://127.0.0.1:8090".into(),
            rtmp_url: "rtmp://127.0.0.1:1935/live".into(),
            ingest_urls: vec!["http://127.0.0.1:8081".into()],
            web_dir: "web/public".into(),
            hls_js_path: "web/node_modules/hls.js/dist/hls.min.js".into(),
            secure_cookies: false,
            cors_origins: vec![
                "http://127.0.0.1:8080".into(),
                "http://localhost:8080".into(),
            ],
            upstream_timeout_ms: 1_500,
            upstream_write_timeout_ms: 10_000,
            max_body_bytes: 64 * 1024,
            page_size: 20,
            profile_cache_ms: 10_000,
            identity_cache_ms: 60_000,
            entitlement_cache_ms: 5_000,
            video_cache_ms: 1_000,
            rate_limit: RateLimitConfig::default(),
            shared_state_url: String::new(),
            playback: PlaybackConfig::default(),
            uploads: UploadConfig::default(),
        }
    }
}

impl Config {
    /// Checks what serde cannot; the message says what to set.
    pub fn validate(&self) -> Result<(), String> {
        for (name, url) in [
            ("user_svc_url", &self.user_svc_url),
            ("metadata_svc_url", &self.metadata_svc_url),
            ("edge_url", &self.edge_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "{name} must be an http:// or https:// URL (got {url:?})"
                ));
            }
        }
        if !self.rtmp_url.starts_with("rtmp://") && !self.rtmp_url.starts_with("rtmps://") {
            return Err(format!(
                "rtmp_url must be an rtmp:// URL (got {:?})",
                self.rtmp_url
            ));
        }
        for o in &self.cors_origins {
            if axum::http::HeaderValue::from_str(o).is_err() || !o.contains("://") {
                return Err(format!(
                    "cors_origins: {o:?} is not an origin such as https://caudal.example"
                ));
            }
        }
        if self.upstream_timeout_ms == 0 || self.upstream_write_timeout_ms == 0 {
            return Err(
                "upstream_timeout_ms and upstream_write_timeout_ms must be greater than 0".into(),
            );
        }
        if self.max_body_bytes < 1024 {
            return Err("max_body_bytes must be at least 1024".into());
        }
        if !(1..=100).contains(&self.page_size) {
            return Err("page_size must be from 1 to 100".into());
        }
        self.playback.keys()?;
        if self.uploads.part_bytes < storage::MIN_PART_BYTES || self.uploads.part_bytes > 1 << 30 {
            return Err("uploads.part_bytes must be from 5 MiB to 1 GiB".into());
        }
        if !(10..=86_400).contains(&self.playback.token_ttl_secs) {
            return Err("playback.token_ttl_secs must be from 10 to 86400".into());
        }
        Ok(())
    }

    pub fn upstream_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_timeout_ms)
    }

    pub fn upstream_write_timeout(&self) -> Duration {
        Duration::from_millis(self.upstream_write_timeout_ms)
    }

    /// For tests: every port picked free, the services at the given addresses.
    pub fn for_tests(user_svc_url: &str, metadata_svc_url: &str, edge_url: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            user_svc_url: user_svc_url.into(),
            metadata_svc_url: metadata_svc_url.into(),
            edge_url: edge_url.into(),
            playback: PlaybackConfig {
                keys: format!("test={TEST_PLAYBACK_SECRET}"),
                ..PlaybackConfig::default()
            },
            ..Self::default()
        }
    }
}

/// The playback key of [`Config::for_tests`] (key id `test`).
pub const TEST_PLAYBACK_SECRET: &str = "caudal-test-playback-secret-0123456789";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_once_playback_keys_are_given() {
        let mut c = Config::default();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.metrics_listen.port(), 9080);
        assert_eq!(c.max_body_bytes, 65_536);
        assert!(c.validate().unwrap_err().contains("playback.keys"));
        c.playback.keys = format!("k1={TEST_PLAYBACK_SECRET}");
        assert!(c.validate().is_ok());
        let shown = format!("{c:?}");
        assert!(!shown.contains(TEST_PLAYBACK_SECRET), "{shown}");
        assert!(shown.contains("k1"));
    }

    #[test]
    fn bad_values_are_named() {
        let c = Config {
            edge_url: "edge:8090".into(),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().contains("edge_url"));
        let c = Config {
            cors_origins: vec!["*bad\n".into()],
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().contains("cors_origins"));
    }
}
