//! metadata-svc: the video catalog.
//!
//! Every live broadcast and uploaded video has one document (owner, title, tags, visibility,
//! access policy, lifecycle status, renditions, playback locations, counters, version) in
//! MongoDB. The service enforces the lifecycle and validation, and answers bff, ingest and the
//! transcoder over the internal HTTP API in [`api`].
//!
//! - [`app`]: the router over an [`AppState`] (tests drive it directly).
//! - [`start`]: connects, creates indexes, binds and serves (ingest's and bff's end-to-end
//!   tests start the catalog in-process with it).
//! - [`run`]: what `main` calls; also serves `/metrics` and `/healthz` on `metrics_listen`.

pub mod api;
pub mod cache;
pub mod config;
pub mod contract;
pub mod error;
pub mod model;
pub mod mongo;
pub mod repo;
pub mod search;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use error::Error;
pub use mongo::MongoRepo;
pub use repo::VideoRepo;
use service_kit::shared::{Invalidations, Shared};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub repo: Arc<dyn VideoRepo>,
    pub cache: Arc<cache::ReadCache>,
    /// Tells the other instances which videos changed (`shared_state_url`).
    pub peers: Arc<std::sync::OnceLock<Invalidations>>,
}

/// The channel on which instances announce catalog writes: `catalog <video id>`.
const INVALIDATIONS: &str = "caudal:metadata:invalidate";

impl AppState {
    pub fn new(repo: Arc<dyn VideoRepo>, config: &Config) -> Self {
        Self {
            repo,
            cache: Arc::new(cache::ReadCache::new(
                config.cache_ttl(),
                config.cache_stale(),
                config.cache_capacity,
            )),
            peers: Arc::default(),
        }
    }

    /// After a write to video `id`: drops it from this instance's read cache, and for a
    /// catalog change from the other instances' too. Counter changes (views) stay local: the
    /// other instances show them within their cache TTL.
    pub async fn changed(&self, id: &str, change: cache::Change) {
        self.cache.invalidate(id, change);
        if change == cache::Change::Catalog {
            if let Some(peers) = self.peers.get() {
                peers.publish(&format!("catalog {id}")).await;
            }
        }
    }

    /// Shares cache invalidation with the other instances over `shared`, until `shutdown`.
    pub fn share(&self, shared: &Shared, shutdown: CancellationToken) {
        let bus = Invalidations::new(shared, INVALIDATIONS);
        let (on_msg, on_resync) = (self.cache.clone(), self.cache.clone());
        bus.listen(
            move |msg| {
                if let Some(id) = msg.strip_prefix("catalog ") {
                    on_msg.invalidate(id, cache::Change::Catalog);
                }
            },
            move || on_resync.clear(),
            shutdown,
        );
        let _ = self.peers.set(bus);
    }
}

/// The HTTP API: `/internal/v1/...` and `/healthz`.
pub fn app(state: AppState) -> Router {
    api::router().with_state(state)
}

/// Connects to the database, creates the indexes, binds `config.listen` (port 0 allowed) and
/// serves until `shutdown` is cancelled. Returns the bound address and the serving task.
pub async fn start(
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let url = config::redact_url(&config.mongo_url);
    let repo = MongoRepo::connect(&config).await.with_context(|| {
        format!(
            "cannot use database {:?} at {url} (set mongo_url / CAUDAL_METADATA_MONGO_URL)",
            config.database
        )
    })?;
    let repo: Arc<dyn VideoRepo> = Arc::new(repo);
    let state = AppState::new(repo.clone(), &config);
    if !config.shared_state_url.trim().is_empty() {
        let shared = Shared::connect(&config.shared_state_url, "")
            .await
            .with_context(|| {
                format!(
                    "shared state at {}",
                    config::redact_url(&config.shared_state_url)
                )
            })?;
        state.share(&shared, shutdown.clone());
        tracing::info!("read-cache invalidation shared in redis");
    }
    let (addr, server) = service_kit::serve(config.listen, app(state), shutdown).await?;
    tracing::info!(%addr, database = %config.database, mongo = %url, "metadata-svc listening");
    let task = tokio::spawn(async move {
        let _ = server.await;
        // the server has drained: write what is still buffered
        if let Err(e) = repo.flush().await {
            tracing::warn!(error = %e, "buffered view counts not written at shutdown");
        }
    });
    Ok((addr, task))
}

/// Serves the API and the metrics port until `shutdown`, then waits for both to stop.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics_listen = config.metrics_listen;
    service_kit::run_with_metrics(
        "metadata-svc",
        metrics_listen,
        shutdown.clone(),
        start(config, shutdown),
    )
    .await
}
