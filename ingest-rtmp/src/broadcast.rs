//! Broadcasts, which outlive the connections that feed them.
//!
//! A broadcast is one video: its playlists, its recording and its metadata document. A
//! publishing connection feeds it one take. When the connection drops (no `deleteStream`),
//! the broadcast is held for `reconnect_window_secs`: a publish with the same key in that
//! time continues it as the same video (EXT-X-DISCONTINUITY in its playlists). A clean end,
//! a revoked key, shutdown or the window passing finish it.
//!
//! Each broadcast leaves a marker in its spool folder (`broadcast.json`) until it is finished
//! and its metadata delivered. A marker found at start-up is a broadcast this instance was
//! running when it died: [`recover_all`] finishes it from the spool and storage.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use service_clients::metadata::NewVideo;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use transcoder::{LiveBroadcast, LiveEvent};

use crate::cluster::Cluster;
use crate::metadata::{self, MetaOp};
use crate::{LiveEntry, Shared};

/// What a broadcast's marker holds: enough to finish it after a crash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub video: NewVideo,
    pub prefix: String,
    pub key_id: String,
}

const MARKER: &str = "broadcast.json";

/// A broadcast between takes, or fed by one.
pub(crate) struct Broadcast {
    pub entry: LiveEntry,
    pub key_id: String,
    pub inner: LiveBroadcast,
    pub meta: mpsc::Sender<MetaOp>,
    meta_task: JoinHandle<bool>,
    events_task: JoinHandle<()>,
    marker_dir: PathBuf,
    /// Stops the lease renewal and heartbeat (cluster mode).
    alive: CancellationToken,
    /// Closed once the renewal has stopped: no renewal may follow the release.
    renewal_stopped: Option<tokio::sync::oneshot::Receiver<()>>,
    shared: Arc<Shared>,
}

/// How a take ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TakeEnd {
    /// `deleteStream` / `closeStream`: the streamer stopped.
    Stopped,
    /// The connection closed or stalled without stopping: the streamer may come back.
    Dropped,
    /// The key was revoked, or ingest is shutting down.
    Final,
}

/// Live and held broadcasts, by stream-key id; one lock for both so a reconnecting
/// publisher always finds the broadcast in one of them.
#[derive(Default)]
pub(crate) struct Registry {
    pub live: HashMap<String, Live>,
    pub held: HashMap<String, Held>,
    generation: u64,
}

pub(crate) struct Live {
    pub entry: LiveEntry,
    /// Cancelled to make the connection give way to a newer publisher of the same key.
    pub kick: CancellationToken,
}

pub(crate) struct Held {
    pub broadcast: Broadcast,
    generation: u64,
}

impl Broadcast {
    /// Starts a new broadcast: its uploader, its metadata task (creating the document) and
    /// its marker.
    pub async fn start(
        shared: &Arc<Shared>,
        key_id: String,
        video: NewVideo,
        entry: LiveEntry,
        prefix: String,
    ) -> Result<Broadcast, transcoder::TranscodeError> {
        let (events_tx, mut events_rx) = mpsc::channel::<LiveEvent>(16);
        let inner = LiveBroadcast::start(
            shared.transcode.clone(),
            shared.store.clone(),
            prefix.clone(),
            Some(events_tx),
        )?;
        let marker_dir = inner.spool_dir().to_path_buf();
        if let Some(ll) = inner.low_latency() {
            shared.origins.add(inner.prefix(), ll);
        }
        let marker = Marker {
            video: video.clone(),
            prefix,
            key_id: key_id.clone(),
        };
        std::fs::write(
            marker_dir.join(MARKER),
            serde_json::to_vec_pretty(&marker).expect("marker serialises"),
        )?;
        let alive = CancellationToken::new();
        let mut renewal_stopped = None;
        if let Some(cluster) = shared.cluster.clone() {
            let (stopped, stopped_rx) = tokio::sync::oneshot::channel();
            renewal_stopped = Some(stopped_rx);
            shared.tasks.spawn(keep_alive(
                shared.clone(),
                cluster,
                marker,
                alive.clone(),
                stopped,
            ));
        }
        let (meta, meta_rx) = mpsc::channel::<MetaOp>(16);
        let _ = meta.send(MetaOp::Create(video)).await;
        let meta_task = tokio::spawn(metadata::run(
            shared.metadata.clone(),
            entry.video_id.clone(),
            meta_rx,
            shared.shutdown.clone(),
            shared.jobs.clone(),
        ));
        // pipeline events become metadata updates
        let meta_events = meta.clone();
        let low_latency = inner
            .low_latency()
            .map(|_| format!("{}/ll.m3u8", inner.prefix()));
        let events_task = tokio::spawn(async move {
            while let Some(ev) = events_rx.recv().await {
                let op = match ev {
                    LiveEvent::Started {
                        master_key,
                        renditions,
                    } => MetaOp::Playable {
                        master: master_key,
                        low_latency: low_latency.clone(),
                        renditions,
                    },
                    // nothing was stored: the broadcast stays `ended`, with no recording
                    LiveEvent::Finished { summary } if summary.segments == 0 => break,
                    LiveEvent::Finished { summary } => MetaOp::Recorded {
                        duration_secs: summary.duration_secs,
                        vod_master: summary.vod_master_key,
                        renditions: summary.renditions,
                    },
                };
                if meta_events.send(op).await.is_err() {
                    break;
                }
            }
        });
        Ok(Broadcast {
            entry,
            key_id,
            inner,
            meta,
            meta_task,
            events_task,
            marker_dir,
            alive,
            renewal_stopped,
            shared: shared.clone(),
        })
    }

    /// Ends the broadcast: `ended` now, the recording once every take has flushed; the
    /// marker goes once metadata-svc has everything.
    pub async fn finish(self) {
        let video_id = self.entry.video_id.clone();
        let _ = self.meta.send(MetaOp::Ended { at: Utc::now() }).await;
        if let Some(ll) = self.inner.low_latency() {
            // players polling the live edge see its ENDLIST for a while
            self.shared.origins.remove_later(
                self.inner.prefix().to_string(),
                ll,
                Duration::from_secs(60),
            );
        }
        match self.inner.finish().await {
            Ok(summary) => tracing::info!(
                video_id,
                segments = summary.segments,
                duration_secs = summary.duration_secs,
                "broadcast finalised"
            ),
            Err(e) => tracing::error!(video_id, error = %e, "broadcast could not be finalised"),
        }
        let _ = self.events_task.await;
        drop(self.meta);
        let delivered = self.meta_task.await.unwrap_or(false);
        self.alive.cancel();
        // a renewal already on its way would take the lease again after the release below
        if let Some(stopped) = self.renewal_stopped {
            let _ = stopped.await;
        }
        if delivered {
            let _ = tokio::fs::remove_dir_all(&self.marker_dir).await;
            if let Some(cluster) = &self.shared.cluster {
                if let Err(e) = cluster.forget(&video_id).await {
                    tracing::warn!(video_id, error = %e, "cannot forget the finished broadcast in the shared state");
                }
                // unless the key went live here again meanwhile
                let idle = {
                    let reg = self.shared.registry.lock().expect("registry lock");
                    !reg.live.contains_key(&self.key_id) && !reg.held.contains_key(&self.key_id)
                };
                if idle {
                    let _ = cluster.release(&self.key_id).await;
                }
            }
        } else {
            tracing::warn!(
                video_id,
                marker = %self.marker_dir.display(),
                "metadata-svc has not taken every update: the next start finishes this broadcast"
            );
        }
    }
}

impl Registry {
    /// Holds a dropped broadcast for `window`; a publish of the same key within it takes it
    /// back ([`Registry::resume`]). Otherwise it is finished when the window passes.
    pub fn hold(shared: &Arc<Shared>, broadcast: Broadcast, window: Duration) {
        let key_id = broadcast.key_id.clone();
        let video_id = broadcast.entry.video_id.clone();
        let generation = {
            let mut reg = shared.registry.lock().expect("registry lock");
            reg.generation += 1;
            let generation = reg.generation;
            reg.live.remove(&key_id);
            reg.held.insert(
                key_id.clone(),
                Held {
                    broadcast,
                    generation,
                },
            );
            generation
        };
        tracing::info!(
            video_id,
            window_secs = window.as_secs(),
            "publisher dropped: holding the broadcast for a reconnect"
        );
        metrics::gauge!("caudal_rtmp_held_broadcasts").increment(1.0);
        let shared2 = shared.clone();
        shared.tasks.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(window) => {}
                _ = shared2.shutdown.cancelled() => {}
            }
            let expired = {
                let mut reg = shared2.registry.lock().expect("registry lock");
                match reg.held.get(&key_id) {
                    Some(h) if h.generation == generation => reg.held.remove(&key_id),
                    _ => None,
                }
            };
            if let Some(h) = expired {
                metrics::gauge!("caudal_rtmp_held_broadcasts").decrement(1.0);
                tracing::info!(video_id, "no reconnect within the window: finishing");
                h.broadcast.finish().await;
            }
        });
    }

    /// Takes a held broadcast back for a reconnecting publisher.
    pub fn resume(&mut self, key_id: &str) -> Option<Broadcast> {
        let h = self.held.remove(key_id)?;
        metrics::gauge!("caudal_rtmp_held_broadcasts").decrement(1.0);
        Some(h.broadcast)
    }
}

/// Finishes every broadcast that a previous run of this instance left unfinished (its
/// marker is still in the spool): segments still spooled are stored first, then the
/// playlists are made final from what storage holds, then metadata-svc is told.
pub(crate) fn recover_all(shared: Arc<Shared>) {
    let spool = shared.transcode.spool_dir.clone();
    let Ok(rd) = std::fs::read_dir(&spool) else {
        return;
    };
    let dirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join(MARKER).is_file())
        .collect();
    for dir in dirs {
        let shared = shared.clone();
        shared.clone().tasks.spawn(async move {
            recover_one(&shared, &dir).await;
        });
    }
}

async fn recover_one(shared: &Arc<Shared>, dir: &Path) {
    let marker: Marker = match std::fs::read(dir.join(MARKER))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(dir = %dir.display(), error = %e, "unreadable broadcast marker; left in place");
            return;
        }
    };
    tracing::info!(
        video_id = marker.video.id.as_deref().unwrap_or_default(),
        "finishing a broadcast left unfinished by the last run"
    );
    if finish_from_storage(shared, &marker, Some(dir)).await {
        let _ = tokio::fs::remove_dir_all(dir).await;
    }
}

/// Stores what `spool` holds (when given), makes the playlists final from storage and
/// tells metadata-svc (create if missing, ended, recorded). True once metadata-svc has it
/// all; the shared state then forgets the broadcast.
async fn finish_from_storage(shared: &Arc<Shared>, marker: &Marker, spool: Option<&Path>) -> bool {
    let video_id = marker.video.id.clone().unwrap_or_default();
    let started = std::time::Instant::now();
    let summary = transcoder::recover(
        shared.transcode.clone(),
        shared.store.clone(),
        marker.prefix.clone(),
        spool,
    )
    .await;
    let (meta, rx) = mpsc::channel::<MetaOp>(4);
    let task = tokio::spawn(metadata::run(
        shared.metadata.clone(),
        video_id.clone(),
        rx,
        shared.shutdown.clone(),
        shared.jobs.clone(),
    ));
    let _ = meta.send(MetaOp::Create(marker.video.clone())).await;
    let _ = meta.send(MetaOp::Ended { at: Utc::now() }).await;
    if summary.segments > 0 {
        let _ = meta
            .send(MetaOp::Recorded {
                duration_secs: summary.duration_secs,
                vod_master: summary.vod_master_key.clone(),
                renditions: summary.renditions.clone(),
            })
            .await;
    }
    drop(meta);
    if !task.await.unwrap_or(false) {
        return false;
    }
    if let Some(cluster) = &shared.cluster {
        if let Err(e) = cluster.forget(&video_id).await {
            tracing::warn!(video_id, error = %e, "cannot forget the recovered broadcast in the shared state");
        }
    }
    metrics::counter!("caudal_broadcasts_recovered_total").increment(1);
    tracing::info!(
        video_id,
        segments = summary.segments,
        duration_secs = summary.duration_secs,
        took_ms = started.elapsed().as_millis() as u64,
        "recovered broadcast finished"
    );
    true
}

/// Renews the key's lease and the broadcast's heartbeat every third of the lease TTL until
/// the broadcast is finished.
async fn keep_alive(
    shared: Arc<Shared>,
    cluster: Cluster,
    marker: Marker,
    alive: CancellationToken,
    // dropped when this returns: tells `finish` no renewal follows
    _stopped: tokio::sync::oneshot::Sender<()>,
) {
    let video_id = marker.video.id.clone().unwrap_or_default();
    let every = Duration::from_millis((shared.cfg.lease_ttl_secs.max(1) * 1000 / 3).max(200));
    while !alive.is_cancelled() {
        match cluster.acquire(&marker.key_id).await {
            Ok(true) => {}
            Ok(false) => {
                metrics::counter!("caudal_ingest_lease_lost_total").increment(1);
                tracing::error!(video_id, "another ingest instance took this key's lease");
            }
            Err(e) => tracing::warn!(video_id, error = %e, "cannot renew the key lease"),
        }
        if let Err(e) = cluster.heartbeat(&video_id, Some(&marker)).await {
            tracing::warn!(video_id, error = %e, "cannot record the broadcast's heartbeat");
        }
        tokio::select! {
            _ = alive.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Every `reaper_interval_secs`: finishes broadcasts whose instance stopped sending
/// heartbeats `reaper_timeout_secs` ago and did not come back (cluster mode).
pub(crate) async fn reap(shared: Arc<Shared>, cluster: Cluster) {
    let every = Duration::from_secs(shared.cfg.reaper_interval_secs.max(1));
    let timeout = Duration::from_secs(shared.cfg.reaper_timeout_secs.max(1));
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let orphans = match cluster
            .claim_orphans(timeout, Duration::from_secs(120))
            .await
        {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "reaper cannot read the shared state");
                continue;
            }
        };
        for marker in orphans {
            let local = shared
                .transcode
                .spool_dir
                .join(marker.prefix.replace('/', "_"))
                .join(MARKER);
            if local.is_file() {
                // this instance's own, from before a restart: its recovery runs
                continue;
            }
            tracing::warn!(
                video_id = marker.video.id.as_deref().unwrap_or_default(),
                "broadcast of an instance that stopped: finishing it from storage"
            );
            metrics::counter!("caudal_broadcasts_reaped_total").increment(1);
            finish_from_storage(&shared, &marker, None).await;
        }
    }
}
