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

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub repo: Arc<dyn VideoRepo>,
    pub cache: Arc<cache::ReadCache>,
}

impl AppState {
    pub fn new(repo: Arc<dyn VideoRepo>, config: &Config) -> Self {
        Self {
            repo,
            cache: Arc::new(cache::ReadCache::new(
                config.cache_ttl(),
                config.cache_stale(),
                config.cache_capacity,
            )),
        }
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
