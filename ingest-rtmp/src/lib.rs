//! RTMP ingest. Accepts publishers at `rtmp://HOST:PORT/<app>/<stream key>`, checks the key
//! with user-svc, refuses a second publisher on a key that is already live, feeds the live
//! transcoder, and records the broadcast in metadata-svc.
//!
//! It also deletes the media of deleted videos ([`cleanup`]): it holds the store's write key.
//!
//! rml_rtmp is sans-IO: one task per connection owns the socket, feeds bytes to the session
//! and acts on the events it raises ([`connection`]).

mod admission;
mod broadcast;
mod chunks;
mod cleanup;
mod cluster;
pub mod config;
mod connection;
pub mod flv;
pub mod health;
mod metadata;
mod origin;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{extract::State, routing::get, Json, Router};
use service_clients::{ingest::IngestClient, metadata::MetadataClient, users::UserClient};
use storage::DynStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// A broadcast in progress, as `/v1/streams` lists it (service-clients' wire type).
pub use service_clients::ingest::LiveEntry;

pub(crate) struct Shared {
    pub cfg: Config,
    pub transcode: Arc<transcoder::LiveConfig>,
    pub store: DynStore,
    pub users: UserClient,
    pub metadata: MetadataClient,
    /// Live and held broadcasts by stream-key id.
    pub registry: Mutex<broadcast::Registry>,
    /// State shared with other instances, when configured.
    pub cluster: Option<cluster::Cluster>,
    /// The job queue, once connected (recordings' poster and storyboard jobs).
    pub jobs: Arc<std::sync::OnceLock<jobs::Queue>>,
    /// Live edges of low-latency broadcasts, served over HTTP ([`origin`]).
    pub origins: Arc<origin::Origins>,
    /// Clients of the other instances, by live origin (cluster mode's `/v1/streams`).
    pub peers: Mutex<HashMap<String, IngestClient>>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

/// Addresses a started ingest listens on.
pub struct Running {
    pub rtmp_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    tasks: TaskTracker,
    http: tokio::task::JoinHandle<()>,
    metrics: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until every connection closed and every stream was finalised after shutdown.
    pub async fn wait(self) {
        self.tasks.close();
        self.tasks.wait().await;
        let _ = self.http.await;
        let _ = self.metrics.await;
    }
}

/// Binds every port and starts serving; returns once listening.
pub async fn start(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    cfg.transcode
        .check()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let store = cfg
        .storage
        .open()
        .await
        .map_err(|e| anyhow::anyhow!("opening storage: {e}"))?;
    let timeout = Duration::from_millis(cfg.service_timeout_ms);
    let cluster = if cfg.shared_state_url.is_empty() {
        None
    } else {
        let instance = if cfg.instance_id.is_empty() {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            cfg.instance_id.clone()
        };
        let c = cluster::Cluster::connect(
            &cfg.shared_state_url,
            instance,
            Duration::from_secs(cfg.lease_ttl_secs.max(1)),
        )
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the shared state: {e}"))?;
        tracing::info!(instance = %c.instance, "cluster mode: key leases and heartbeats in redis");
        Some(c)
    };
    let shared = Arc::new(Shared {
        transcode: Arc::new(cfg.transcode.clone()),
        store,
        users: UserClient::new(&cfg.user_svc_url, timeout)?,
        metadata: MetadataClient::new(&cfg.metadata_svc_url, timeout)?,
        registry: Mutex::new(broadcast::Registry::default()),
        cluster,
        jobs: Arc::new(std::sync::OnceLock::new()),
        origins: Arc::new(origin::Origins::default()),
        peers: Mutex::new(HashMap::new()),
        tasks: TaskTracker::new(),
        shutdown: shutdown.clone(),
        cfg,
    });
    let listener = TcpListener::bind(shared.cfg.rtmp_listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot listen for RTMP on {}: {e}", shared.cfg.rtmp_listen)
        })?;
    let rtmp_addr = listener.local_addr()?;
    let router = Router::new()
        .route("/v1/streams", get(list_streams))
        .route("/v1/streams/{video_id}", get(one_stream))
        .with_state(shared.clone())
        .merge(origin::router(
            &shared.cfg.media_prefix,
            shared.origins.clone(),
            shared.cluster.clone(),
            // a forwarded blocking request may be held three target durations
            Duration::from_secs_f64(shared.cfg.transcode.segment_secs.max(1.0) * 3.0 + 3.0),
        ))
        .merge(service_kit::health_router());
    let (http_addr, http) =
        service_kit::serve(shared.cfg.http_listen, router, shutdown.clone()).await?;
    if let Some(c) = &shared.cluster {
        let url = origin::advertised(&shared.cfg, http_addr);
        tracing::info!(origin = %url, "live origin advertised to the other instances");
        let _ = c.origin.set(url);
    }
    let (metrics_addr, metrics) =
        service_kit::serve_metrics(shared.cfg.metrics_listen, shutdown.clone()).await?;
    let tasks = shared.tasks.clone();
    broadcast::recover_all(shared.clone());
    if let Some(c) = shared.cluster.clone() {
        tasks.spawn(broadcast::reap(shared.clone(), c));
    }
    tasks.spawn(cleanup::run(shared.clone()));
    if !shared.cfg.jobs.url.is_empty() {
        tasks.spawn(connect_jobs(shared.clone()));
    }
    tasks.spawn(accept_loop(listener, shared));
    tracing::info!(%rtmp_addr, %http_addr, %metrics_addr, "ingest listening");
    Ok(Running {
        rtmp_addr,
        http_addr,
        metrics_addr,
        tasks,
        http,
        metrics,
    })
}

/// Runs until `shutdown` is cancelled, then finalises every stream.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let running = start(cfg, shutdown).await?;
    running.wait().await;
    Ok(())
}

/// Connects the job queue, retrying every 2 s until it answers or ingest stops.
async fn connect_jobs(shared: Arc<Shared>) {
    loop {
        match jobs::Queue::connect(&shared.cfg.jobs).await {
            Ok(q) => {
                let _ = shared.jobs.set(q);
                tracing::info!("job queue connected (recordings get posters and storyboards)");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "job queue not reachable; retrying"),
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let admission = admission::Admission::new(admission::Limits {
        max_pending: shared.cfg.max_pending_connections,
        max_pending_per_ip: shared.cfg.max_pending_per_ip,
        max_publishers: shared.cfg.max_publishers,
    });
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = admission.admit(peer.ip());
        metrics::counter!("caudal_rtmp_connections_total").increment(1);
        shared
            .tasks
            .spawn(connection::handle(socket, peer, shared.clone(), slot));
    }
}

/// One broadcast by video id (the studio's health panel). In cluster mode a broadcast another
/// instance runs is asked of that instance (its live origin is in Redis), so a balancer may
/// send this to any instance; `?scope=local` answers for this instance only. 404: no
/// instance runs it; 503: the instance that runs it did not answer.
async fn one_stream(
    State(shared): State<Arc<Shared>>,
    axum::extract::Path(video_id): axum::extract::Path<String>,
    service_kit::extract::Query(q): service_kit::extract::Query<StreamsQuery>,
) -> Result<Json<LiveEntry>, axum::http::StatusCode> {
    use axum::http::StatusCode;
    if let Some(e) = local_streams(&shared)
        .into_iter()
        .find(|e| e.video_id == video_id)
    {
        return Ok(Json(e));
    }
    let (Scope::All, Some(cluster)) = (q.scope, &shared.cluster) else {
        return Err(StatusCode::NOT_FOUND);
    };
    let origin = match cluster.origin_of(&video_id).await {
        Ok(Some(o)) => o,
        Ok(None) => return Err(StatusCode::NOT_FOUND),
        Err(e) => {
            tracing::warn!(%video_id, error = %e, "cannot tell which instance runs the broadcast");
            return Err(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let peer = shared.peer(&origin).map_err(|e| {
        tracing::warn!(%origin, error = %e, "an instance's origin is not a URL");
        StatusCode::SERVICE_UNAVAILABLE
    })?;
    match peer.stream_here(&video_id).await {
        Ok(Some(e)) => Ok(Json(e)),
        Ok(None) => Err(StatusCode::NOT_FOUND),
        Err(e) => {
            tracing::warn!(%origin, %video_id, error = %e, "the instance running the broadcast did not answer");
            Err(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

impl Shared {
    /// The client of the instance at `origin`, made once.
    fn peer(&self, origin: &str) -> Result<IngestClient, service_clients::BadUrl> {
        let mut peers = self.peers.lock().expect("peers lock");
        if let Some(p) = peers.get(origin) {
            return Ok(p.clone());
        }
        if peers.len() >= 64 {
            // instances came and went (new ports): start over rather than grow
            peers.clear();
        }
        let p = IngestClient::new(origin, Duration::from_millis(self.cfg.service_timeout_ms))?;
        peers.insert(origin.to_string(), p.clone());
        Ok(p)
    }
}

/// Which broadcasts `GET /v1/streams` (and `/v1/streams/{id}`) answers for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Scope {
    /// Every instance's (cluster mode asks the others; alone it is this one's).
    #[default]
    All,
    /// This instance's only (what the others ask).
    Local,
}

#[derive(Debug, Default, serde::Deserialize)]
struct StreamsQuery {
    #[serde(default)]
    scope: Scope,
}

fn local_streams(shared: &Shared) -> Vec<LiveEntry> {
    let reg = shared.registry.lock().expect("registry lock");
    let mut v: Vec<LiveEntry> = reg.live.values().map(|l| l.entry.clone()).collect();
    v.extend(reg.held.values().map(|h| LiveEntry {
        reconnecting: true,
        ..h.broadcast.entry.clone()
    }));
    v
}

/// The broadcasts in progress, oldest first. In cluster mode, those of every instance that
/// heartbeats one: a balancer may send this to any instance and the answer is the same. An
/// instance that does not answer is left out (and logged), never failing the list.
async fn list_streams(
    State(shared): State<Arc<Shared>>,
    service_kit::extract::Query(q): service_kit::extract::Query<StreamsQuery>,
) -> Json<Vec<LiveEntry>> {
    let mut v = local_streams(&shared);
    if let (Scope::All, Some(cluster)) = (q.scope, &shared.cluster) {
        let within = Duration::from_secs(shared.cfg.reaper_timeout_secs.max(1));
        match cluster.other_origins(within).await {
            Ok(origins) => {
                let asks = origins.iter().map(|o| {
                    let peer = shared.peer(o);
                    async move {
                        match peer {
                            Ok(p) => p.streams_here().await.map_err(|e| e.to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                });
                for (origin, answer) in origins.iter().zip(futures::future::join_all(asks).await) {
                    match answer {
                        Ok(entries) => {
                            for e in entries {
                                if !v.iter().any(|mine| mine.video_id == e.video_id) {
                                    v.push(e);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%origin, error = %e, "an instance's broadcasts are left out of the list")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "the other instances' broadcasts are left out of the list")
            }
        }
    }
    v.sort_by_key(|e| e.started_at);
    Json(v)
}
