//! The transcode worker (`transcoder worker`): pulls jobs from the queue (NATS JetStream),
//! reads the uploaded original from object storage, refuses what is not a video it can
//! serve (with a reason a person can read), transcodes the same ladder as live into
//! `{output_prefix}/{video id}/`, and records the result in metadata-svc.
//!
//! Any number of workers may run on any machines. A job is delivered at least once: a
//! worker that dies loses its lease after `jobs.ack_wait_secs` and another takes the job; a
//! redelivered job writes the same keys again and a video that is already `ready` is left
//! alone. A file refused for its content fails at once (its video `failed`, the job a dead
//! letter); anything else (storage or metadata-svc down) is retried until the last attempt.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use service_clients::jobs::{ArtworkJob, TranscodeJob};
use service_clients::metadata::{
    MetadataClient, PlaybackLocations, Rendition, StatusChange, Video, VideoStatus,
};
use storage::{DynStore, StoreConfig};
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::{LiveConfig, RenditionInfo};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WorkerConfig {
    /// Prometheus `/metrics` and `/healthz`.
    pub metrics_listen: SocketAddr,
    /// Root URL of metadata-svc.
    pub metadata_svc_url: String,
    /// The store the originals are in and the ladder is written to.
    pub storage: StoreConfig,
    /// Output folder: a video's ladder goes under `{output_prefix}/{id}/`.
    pub output_prefix: String,
    pub jobs: jobs::JobsConfig,
    /// The ladder (the same settings as live; rungs taller than the source are skipped).
    pub transcode: LiveConfig,
    /// Where originals are copied for reading (one file per job, removed after).
    pub work_dir: PathBuf,
    /// Longest video accepted, s.
    pub max_duration_secs: f64,
    /// Wait between retries of a job that failed for a passing reason, s.
    pub retry_delay_secs: u64,
    /// Poster and storyboard (scrubbing thumbnails).
    pub artwork: crate::artwork::ArtworkConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9087)),
            metadata_svc_url: "http://127.0.0.1:8083".into(),
            storage: StoreConfig::default(),
            output_prefix: "vod".into(),
            jobs: jobs::JobsConfig::default(),
            transcode: LiveConfig {
                passthrough: false,
                // EVENT playlists: a viewer can start from the beginning while the rest is made
                window: 0,
                ..LiveConfig::default()
            },
            work_dir: std::env::temp_dir().join("caudal-worker"),
            max_duration_secs: 4.0 * 3600.0,
            retry_delay_secs: 10,
            artwork: Default::default(),
        }
    }
}

/// Metadata-svc's description of rungs, from what the transcoder stored.
pub fn renditions(list: &[RenditionInfo]) -> Vec<Rendition> {
    list.iter()
        .map(|r| Rendition {
            name: r.name.clone(),
            width: r.width,
            height: r.height,
            bandwidth: r.bandwidth,
            codecs: r.codecs.clone(),
            frame_rate: r.frame_rate,
            playlist: r.playlist.clone(),
        })
        .collect()
}

/// Why a job did not finish.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The file itself: retrying cannot help. The message is shown to the video's owner.
    #[error("{0}")]
    Refused(String),
    /// Storage, metadata-svc, the machine: worth another attempt.
    #[error("{0}")]
    Passing(String),
}

/// What a probe found in a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub width: u32,
    pub height: u32,
    pub duration_secs: f64,
    pub has_audio: bool,
}

/// Checks that `path` is a video this platform can serve. Blocking (libavformat).
pub fn probe(path: &Path, max_duration_secs: f64) -> Result<Probe, JobError> {
    use ffmpeg_next as ff;
    crate::av::init();
    let size = std::fs::metadata(path)
        .map_err(|e| JobError::Passing(format!("reading the copied original: {e}")))?
        .len();
    if size == 0 {
        return Err(JobError::Refused("the file is empty".into()));
    }
    let ictx = ff::format::input(&path).map_err(|_| {
        JobError::Refused(
            "the file is not a video Caudal can read, or it is damaged or incomplete".into(),
        )
    })?;
    let Some(video) = ictx.streams().best(ff::media::Type::Video) else {
        return Err(JobError::Refused(
            "the file has no video (an audio-only file?)".into(),
        ));
    };
    let params = video.parameters();
    if params.id() != ff::codec::Id::H264 {
        return Err(JobError::Refused(format!(
            "the video is {:?}; Caudal takes H.264 video (MP4, MOV, MKV or FLV)",
            params.id()
        )));
    }
    // Safety: reading plain fields of codec parameters owned by the open input.
    let (width, height) = unsafe {
        let p = params.as_ptr();
        ((*p).width.max(0) as u32, (*p).height.max(0) as u32)
    };
    if width == 0 || height == 0 {
        return Err(JobError::Refused(
            "the video has no picture size: the file is damaged".into(),
        ));
    }
    if width.max(height) > 4096 || u64::from(width) * u64::from(height) > 4096 * 2160 {
        return Err(JobError::Refused(format!(
            "the video is {width}x{height}; Caudal takes up to 4K (4096x2160)"
        )));
    }
    let duration_secs = if ictx.duration() > 0 {
        ictx.duration() as f64 / f64::from(ff::ffi::AV_TIME_BASE)
    } else {
        0.0
    };
    if duration_secs > max_duration_secs {
        return Err(JobError::Refused(format!(
            "the video lasts {:.0} min; the limit is {:.0} min",
            duration_secs / 60.0,
            max_duration_secs / 60.0
        )));
    }
    let has_audio = ictx.streams().best(ff::media::Type::Audio).is_some();
    Ok(Probe {
        width,
        height,
        duration_secs,
        has_audio,
    })
}

/// Copies an object to a local file in bounded pieces.
async fn download(store: &DynStore, key: &str, to: &Path) -> Result<u64, JobError> {
    const PIECE: u64 = 8 << 20;
    let size = match store.head(key).await {
        Ok(info) => info.size,
        Err(storage::StorageError::NotFound(_)) => {
            return Err(JobError::Refused(
                "the uploaded file is gone from storage".into(),
            ))
        }
        Err(e) => return Err(JobError::Passing(format!("reading {key}: {e}"))),
    };
    let mut f = tokio::fs::File::create(to)
        .await
        .map_err(|e| JobError::Passing(format!("creating {}: {e}", to.display())))?;
    let mut at = 0;
    while at < size {
        let piece = store
            .get_range(key, at, PIECE.min(size - at))
            .await
            .map_err(|e| JobError::Passing(format!("reading {key}: {e}")))?;
        if piece.is_empty() {
            return Err(JobError::Passing(format!(
                "{key} ended at {at} of {size} bytes"
            )));
        }
        f.write_all(&piece)
            .await
            .map_err(|e| JobError::Passing(format!("writing {}: {e}", to.display())))?;
        at += piece.len() as u64;
    }
    f.flush()
        .await
        .map_err(|e| JobError::Passing(e.to_string()))?;
    Ok(size)
}

/// Stops a background task when the job that started it ends, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct Worker {
    cfg: WorkerConfig,
    store: DynStore,
    catalog: MetadataClient,
    ladder: Arc<LiveConfig>,
}

impl Worker {
    pub async fn new(cfg: WorkerConfig) -> anyhow::Result<Self> {
        let store = cfg
            .storage
            .open()
            .await
            .map_err(|e| anyhow::anyhow!("storage: {e}"))?;
        tokio::fs::create_dir_all(&cfg.work_dir).await?;
        Ok(Self {
            catalog: MetadataClient::new(&cfg.metadata_svc_url, Duration::from_secs(10))?,
            ladder: Arc::new(cfg.transcode.clone()),
            store,
            cfg,
        })
    }

    /// Transcodes one upload; `Ok(false)` when there was nothing to do (deleted or done).
    pub async fn process(&self, job: &TranscodeJob) -> Result<bool, JobError> {
        let id = &job.video_id;
        let passing = |e: service_clients::ClientError| JobError::Passing(e.to_string());
        let Some(video) = self.catalog.get_video(id).await.map_err(passing)? else {
            tracing::info!(video_id = %id, "video deleted: nothing to transcode");
            return Ok(false);
        };
        if video.status == VideoStatus::Uploading {
            // bff marks `processing` before it queues; a stale read, or another bff racing
            return Err(JobError::Passing(
                "the video is still uploading in metadata-svc".into(),
            ));
        }
        if video.status != VideoStatus::Processing {
            tracing::info!(video_id = %id, status = ?video.status, "not processing: left alone");
            return Ok(false);
        }
        let path = self
            .cfg
            .work_dir
            .join(format!("{id}-{}", uuid::Uuid::new_v4().simple()));
        let _cleanup = RemoveOnDrop(path.clone());
        let bytes = download(&self.store, &job.source_key, &path).await?;
        let p = path.clone();
        let max = self.cfg.max_duration_secs;
        let probe = tokio::task::spawn_blocking(move || probe(&p, max))
            .await
            .map_err(|e| JobError::Passing(format!("probe: {e}")))??;
        tracing::info!(video_id = %id, bytes, width = probe.width, height = probe.height,
            duration_secs = probe.duration_secs, "transcoding an upload");
        let prefix = format!("{}/{id}", self.cfg.output_prefix);
        let started = std::time::Instant::now();
        let fed_ms = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let reporter = AbortOnDrop(self.report_progress(id, probe.duration_secs, fed_ms.clone()));
        let (events, playable) = tokio::sync::mpsc::channel(4);
        let early = AbortOnDrop(self.announce_playable(id, playable));
        let summary = crate::file::transcode_file_counting(
            self.ladder.clone(),
            self.store.clone(),
            prefix.clone(),
            &path,
            fed_ms,
            Some(events),
        )
        .await
        .map_err(|e| match e {
            // probed fine but could not be read through: a damaged file
            crate::TranscodeError::Media(e) => {
                JobError::Refused(format!("the file could not be decoded: {e}"))
            }
            other => JobError::Passing(other.to_string()),
        })?;
        drop(reporter);
        drop(early);
        metrics::histogram!("caudal_worker_transcode_seconds")
            .record(started.elapsed().as_secs_f64());
        if summary.segments == 0 {
            return Err(JobError::Refused(
                "no picture could be decoded from the file".into(),
            ));
        }
        let master = summary
            .vod_master_key
            .clone()
            .or(summary.master_key.clone());
        let art = self.artwork(&path, &prefix, summary.duration_secs).await?;
        self.catalog
            .change_status(
                id,
                &StatusChange {
                    status: Some(VideoStatus::Ready),
                    at: Some(Utc::now()),
                    duration_secs: Some(summary.duration_secs),
                    renditions: Some(renditions(&summary.renditions)),
                    playback: Some(PlaybackLocations {
                        master: master.clone(),
                        vod_master: master,
                        low_latency: None,
                    }),
                    poster: art.as_ref().map(|a| a.0.clone()),
                    storyboard: art.map(|a| a.1),
                    ..Default::default()
                },
            )
            .await
            .map_err(passing)?;
        tracing::info!(video_id = %id, secs = started.elapsed().as_secs_f64(),
            duration_secs = summary.duration_secs, "upload ready");
        Ok(true)
    }

    /// A recording's poster and storyboard. Never fails the video: a recording without
    /// pictures plays all the same.
    async fn handle_artwork(&self, job: jobs::Job) {
        let work: ArtworkJob = match job.decode() {
            Ok(w) => w,
            Err(e) => {
                let _ = job.dead(&format!("unreadable job: {e}")).await;
                return;
            }
        };
        let settled = match self.recording_artwork(&work).await {
            Ok(_) => {
                metrics::counter!("caudal_worker_jobs_total", "outcome" => "done").increment(1);
                job.done().await
            }
            Err(JobError::Passing(why)) if !job.last_attempt() => {
                tracing::warn!(video_id = %work.video_id, reason = %why, "artwork job will be retried");
                metrics::counter!("caudal_worker_jobs_total", "outcome" => "retried").increment(1);
                job.retry(Duration::from_secs(self.cfg.retry_delay_secs))
                    .await
            }
            Err(JobError::Passing(why) | JobError::Refused(why)) => {
                tracing::warn!(video_id = %work.video_id, reason = %why, "no poster for this recording");
                metrics::counter!("caudal_worker_jobs_total", "outcome" => "refused").increment(1);
                job.dead(&why).await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "job not settled");
        }
    }

    /// Makes a recording's pictures from the segments of one rung (about 480p: enough for a
    /// poster, cheap to read): only the segments the storyboard's times fall in are fetched,
    /// joined into one MPEG-TS file (their timestamps stay the broadcast's) and read like an
    /// upload. A broadcast still on air gets its poster only ([`Self::live_poster`]).
    /// `Ok(false)`: nothing to do (deleted, not recorded, pictures already made).
    pub async fn recording_artwork(&self, job: &ArtworkJob) -> Result<bool, JobError> {
        let id = &job.video_id;
        let passing = |e: service_clients::ClientError| JobError::Passing(e.to_string());
        let Some(video) = self.catalog.get_video(id).await.map_err(passing)? else {
            return Ok(false);
        };
        if video.status == VideoStatus::Live {
            return self.live_poster(job, &video).await;
        }
        if video.status != VideoStatus::Recorded
            || (video.poster.is_some() && video.storyboard.is_some())
        {
            return Ok(false);
        }
        let (folder, rung_dir, media) = self.rung_playlist(&job.playlist_key).await?;
        // the segment each storyboard time falls in, each fetched once, in order
        let mut starts = Vec::with_capacity(media.segments.len());
        let mut at = 0.0f64;
        for seg in &media.segments {
            starts.push(at);
            at += f64::from(seg.duration);
        }
        let duration = at;
        if media.segments.is_empty() || duration <= 0.0 {
            return Err(JobError::Refused("the recording has no segments".into()));
        }
        let interval = self.cfg.artwork.interval_secs.max(0.5);
        let mut wanted: Vec<usize> = (0..crate::artwork::cue_count(duration, interval))
            .map(|i| {
                let t = i as f64 * interval;
                starts.partition_point(|s| *s <= t).saturating_sub(1)
            })
            .collect();
        wanted.dedup();
        // fMP4: the init section first, then segments that share it
        let inits = init_sections(&media);
        let init = wanted.first().and_then(|i| inits[*i].clone());
        let ext = if init.is_some() { "mp4" } else { "ts" };
        let path = self
            .cfg
            .work_dir
            .join(format!("{id}-rec-{}.{ext}", uuid::Uuid::new_v4().simple()));
        let _cleanup = RemoveOnDrop(path.clone());
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(|e| JobError::Passing(format!("creating {}: {e}", path.display())))?;
        if let Some(init) = &init {
            let bytes = self.stored(format!("{rung_dir}/{init}")).await?;
            out.write_all(&bytes)
                .await
                .map_err(|e| JobError::Passing(e.to_string()))?;
        }
        for i in wanted.into_iter().filter(|i| inits[*i] == init) {
            let bytes = self
                .stored(format!("{rung_dir}/{}", media.segments[i].uri))
                .await?;
            out.write_all(&bytes)
                .await
                .map_err(|e| JobError::Passing(e.to_string()))?;
        }
        out.flush()
            .await
            .map_err(|e| JobError::Passing(e.to_string()))?;
        drop(out);
        let Some((poster, storyboard)) = self.artwork(&path, &folder, duration).await? else {
            return Err(JobError::Refused("no picture could be made".into()));
        };
        self.catalog
            .change_status(
                id,
                &StatusChange {
                    status: Some(VideoStatus::Recorded),
                    poster: Some(poster.clone()),
                    storyboard: Some(storyboard),
                    ..Default::default()
                },
            )
            .await
            .map_err(passing)?;
        // the live frame it replaces (its own key) is not needed any more
        if let Some(old) = video.poster.as_deref().filter(|k| *k != poster.as_str()) {
            if let Err(e) = self.store.delete(old).await {
                tracing::warn!(video_id = %id, key = old, error = %e, "live poster not deleted");
            }
        }
        tracing::info!(video_id = %id, duration, "recording has a poster and a storyboard");
        Ok(true)
    }

    /// Reads `key` from storage: a missing object refuses the job, anything else passes.
    async fn stored(&self, key: String) -> Result<bytes::Bytes, JobError> {
        match self.store.get(&key).await {
            Ok(b) => Ok(b),
            Err(storage::StorageError::NotFound(_)) => {
                Err(JobError::Refused(format!("{key} is not in storage")))
            }
            Err(e) => Err(JobError::Passing(format!("reading {key}: {e}"))),
        }
    }

    /// The media playlist of the rung pictures are made from (about 480p: enough for a
    /// poster, cheap to read), from a master (or media) playlist's key: (the master's folder,
    /// the rung's folder, the playlist).
    async fn rung_playlist(
        &self,
        playlist_key: &str,
    ) -> Result<(String, String, m3u8_rs::MediaPlaylist), JobError> {
        let folder = match playlist_key.rsplit_once('/') {
            Some((dir, _)) => dir.to_string(),
            None => return Err(JobError::Refused("a playlist key without a folder".into())),
        };
        let master = self.stored(playlist_key.to_string()).await?;
        let rung = match m3u8_rs::parse_playlist_res(&master) {
            Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
                let mut variants: Vec<_> = m.variants.iter().filter(|v| !v.is_i_frame).collect();
                variants.sort_by_key(|v| v.resolution.map(|r| r.height).unwrap_or(0));
                variants
                    .iter()
                    .find(|v| v.resolution.is_some_and(|r| r.height >= 432))
                    .or(variants.last())
                    .map(|v| v.uri.clone())
                    .ok_or_else(|| JobError::Refused("a master playlist without rungs".into()))?
            }
            Ok(m3u8_rs::Playlist::MediaPlaylist(_)) => playlist_key
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string(),
            Err(_) => return Err(JobError::Refused("an unreadable master playlist".into())),
        };
        let media_key = format!("{folder}/{rung}");
        let media = self.stored(media_key.clone()).await?;
        let media = m3u8_rs::parse_media_playlist_res(&media)
            .map_err(|_| JobError::Refused(format!("{media_key}: an unreadable playlist")))?;
        let rung_dir = media_key
            .rsplit_once('/')
            .map(|(d, _)| d.to_string())
            .unwrap_or_else(|| folder.clone());
        Ok((folder, rung_dir, media))
    }

    /// A broadcast on air gets a poster from its newest segment, so its card has a picture
    /// while it is live (the recording's own poster replaces it later). `Ok(false)`: it has
    /// one already.
    async fn live_poster(&self, job: &ArtworkJob, video: &Video) -> Result<bool, JobError> {
        if video.poster.is_some() {
            return Ok(false);
        }
        let id = &job.video_id;
        let (folder, rung_dir, media) = self.rung_playlist(&job.playlist_key).await?;
        let Some(seg) = media.segments.last() else {
            return Err(JobError::Passing(
                "the live playlist has no segment yet".into(),
            ));
        };
        let mut bytes = Vec::new();
        // fMP4: the segment needs its init section in front
        let init = init_sections(&media).pop().flatten();
        if let Some(init) = &init {
            bytes.extend_from_slice(&self.stored(format!("{rung_dir}/{init}")).await?);
        }
        bytes.extend_from_slice(&self.stored(format!("{rung_dir}/{}", seg.uri)).await?);
        let ext = if init.is_some() { "mp4" } else { "ts" };
        let path = self
            .cfg
            .work_dir
            .join(format!("{id}-live-{}.{ext}", uuid::Uuid::new_v4().simple()));
        let _cleanup = RemoveOnDrop(path.clone());
        tokio::fs::write(&path, &bytes)
            .await
            .map_err(|e| JobError::Passing(format!("writing {}: {e}", path.display())))?;
        let cfg = self.cfg.artwork.clone();
        let duration = f64::from(seg.duration).max(0.1);
        let p = path.clone();
        let made = tokio::task::spawn_blocking(move || {
            crate::artwork::make(&p, duration, &cfg, |i| format!("storyboard-{i}.jpg"))
        })
        .await
        .map_err(|e| JobError::Passing(format!("artwork: {e}")))?
        .map_err(|e| JobError::Refused(format!("no picture from the live segment: {e}")))?;
        // not the recording's `poster.jpg`: the edge keeps posters for a year, so the live
        // frame has a name of its own (`live/{id}-live/poster.jpg`, still a public poster at
        // the edge) and the recording's poster is a new URL when it replaces it
        let key = format!("{}-live/poster.jpg", folder.trim_end_matches('/'));
        let meta = storage::ObjectMeta::for_key(&key, storage::CachePolicy::Short);
        self.store
            .put(&key, bytes::Bytes::from(made.poster), &meta)
            .await
            .map_err(|e| JobError::Passing(format!("storing {key}: {e}")))?;
        let passing = |e: service_clients::ClientError| JobError::Passing(e.to_string());
        // the recording's pictures may have come meanwhile: they win
        let now = self.catalog.get_video(id).await.map_err(passing)?;
        if now
            .as_ref()
            .is_none_or(|v| v.status != VideoStatus::Live || v.poster.is_some())
        {
            let _ = self.store.delete(&key).await;
            return Ok(false);
        }
        // no status in the change: a broadcast that ended meanwhile stays ended
        self.catalog
            .change_status(
                id,
                &StatusChange {
                    poster: Some(key),
                    ..Default::default()
                },
            )
            .await
            .map_err(passing)?;
        tracing::info!(video_id = %id, "live broadcast has a poster");
        Ok(true)
    }

    /// Once every rung has its first segments and the master playlist is stored, the video
    /// (still `processing`) gets its playlist and renditions: its owner can start watching
    /// from the beginning (EVENT playlists) while the rest is transcoded.
    fn announce_playable(
        &self,
        id: &str,
        mut events: tokio::sync::mpsc::Receiver<crate::LiveEvent>,
    ) -> tokio::task::JoinHandle<()> {
        let catalog = self.catalog.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let crate::LiveEvent::Started {
                    master_key,
                    renditions: r,
                } = ev
                else {
                    continue;
                };
                let change = StatusChange {
                    status: Some(VideoStatus::Processing),
                    renditions: Some(renditions(&r)),
                    playback: Some(PlaybackLocations {
                        master: Some(master_key),
                        vod_master: None,
                        low_latency: None,
                    }),
                    ..Default::default()
                };
                match catalog.change_status(&id, &change).await {
                    Ok(_) => tracing::info!(video_id = %id, "playable while processing"),
                    Err(e) => {
                        tracing::warn!(video_id = %id, error = %e, "early playlist not recorded")
                    }
                }
            }
        })
    }

    /// Every 2 s, how far the transcode has read into the source, as `progress` (up to 95 %;
    /// the pictures and the final status make the rest). Stopped with `abort`.
    fn report_progress(
        &self,
        id: &str,
        duration_secs: f64,
        fed_ms: Arc<std::sync::atomic::AtomicI64>,
    ) -> tokio::task::JoinHandle<()> {
        let catalog = self.catalog.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut last = -1.0;
            loop {
                let at = fed_ms.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0;
                let pct = if duration_secs > 0.0 {
                    (at / duration_secs * 95.0).clamp(0.0, 95.0).floor()
                } else {
                    0.0
                };
                if pct != last {
                    let change = StatusChange {
                        status: Some(VideoStatus::Processing),
                        progress: Some(pct),
                        ..Default::default()
                    };
                    match catalog.change_status(&id, &change).await {
                        Ok(_) => last = pct,
                        Err(e) => {
                            tracing::debug!(video_id = %id, error = %e, "progress not recorded")
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        })
    }

    /// Makes and stores the poster and the storyboard of the file at `path`; returns their
    /// keys. A file whose pictures cannot be made still becomes a video (without them).
    async fn artwork(
        &self,
        path: &Path,
        prefix: &str,
        duration_secs: f64,
    ) -> Result<Option<(String, String)>, JobError> {
        let p = path.to_path_buf();
        let cfg = self.cfg.artwork.clone();
        let started = std::time::Instant::now();
        let made = tokio::task::spawn_blocking(move || {
            crate::artwork::make(&p, duration_secs, &cfg, |i| format!("storyboard-{i}.jpg"))
        })
        .await
        .map_err(|e| JobError::Passing(format!("artwork: {e}")))?;
        let art = match made {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(prefix, error = %e, "no poster or storyboard for this video");
                return Ok(None);
            }
        };
        let put = |key: String, body: Vec<u8>, policy| async move {
            let meta = storage::ObjectMeta::for_key(&key, policy);
            self.store
                .put(&key, bytes::Bytes::from(body), &meta)
                .await
                .map_err(|e| JobError::Passing(format!("storing {key}: {e}")))
        };
        // sheets first, the track that names them after: a reader never meets a missing sheet
        for (i, sheet) in art.sheets.into_iter().enumerate() {
            put(
                format!("{prefix}/storyboard-{i}.jpg"),
                sheet,
                storage::CachePolicy::Short,
            )
            .await?;
        }
        let vtt = format!("{prefix}/storyboard.vtt");
        put(
            vtt.clone(),
            art.vtt.into_bytes(),
            storage::CachePolicy::Short,
        )
        .await?;
        let poster = format!("{prefix}/poster.jpg");
        put(poster.clone(), art.poster, storage::CachePolicy::Short).await?;
        metrics::histogram!("caudal_worker_artwork_seconds")
            .record(started.elapsed().as_secs_f64());
        tracing::info!(
            prefix,
            cues = art.cues,
            secs = started.elapsed().as_secs_f64(),
            "poster and storyboard stored"
        );
        Ok(Some((poster, vtt)))
    }

    async fn fail(&self, video_id: &str, why: &str) {
        let change = StatusChange {
            status: Some(VideoStatus::Failed),
            at: Some(Utc::now()),
            failure: Some(why.to_string()),
            ..Default::default()
        };
        if let Err(e) = self.catalog.change_status(video_id, &change).await {
            tracing::warn!(video_id, error = %e, "status failed not recorded");
        }
    }

    /// Runs one delivered job to its end: done, retried, or dead with the video failed.
    pub async fn handle(&self, job: jobs::Job) {
        let _alive = job.keep_alive();
        if job.kind() == ArtworkJob::KIND {
            return self.handle_artwork(job).await;
        }
        let work: TranscodeJob = match job.decode() {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "unreadable job");
                let _ = job.dead(&format!("unreadable job: {e}")).await;
                return;
            }
        };
        let outcome = self.process(&work).await;
        let settled = match outcome {
            Ok(_) => {
                metrics::counter!("caudal_worker_jobs_total", "outcome" => "done").increment(1);
                job.done().await
            }
            Err(JobError::Refused(why)) => {
                tracing::info!(video_id = %work.video_id, reason = %why, "upload refused");
                metrics::counter!("caudal_worker_jobs_total", "outcome" => "refused").increment(1);
                self.fail(&work.video_id, &why).await;
                job.dead(&why).await
            }
            Err(JobError::Passing(why)) if job.last_attempt() => {
                tracing::error!(video_id = %work.video_id, reason = %why, "giving up after the last attempt");
                metrics::counter!("caudal_worker_jobs_total", "outcome" => "given_up").increment(1);
                self.fail(
                    &work.video_id,
                    "processing failed several times; try uploading again",
                )
                .await;
                job.dead(&why).await
            }
            Err(JobError::Passing(why)) => {
                tracing::warn!(video_id = %work.video_id, reason = %why, attempt = job.attempt(), "job will be retried");
                metrics::counter!("caudal_worker_jobs_total", "outcome" => "retried").increment(1);
                job.retry(Duration::from_secs(self.cfg.retry_delay_secs))
                    .await
            }
        };
        if let Err(e) = settled {
            // the lease runs out and the job comes back: nothing is lost
            tracing::warn!(error = %e, "job not settled");
        }
    }
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Pulls and runs jobs one at a time until `shutdown`. Also marks `failed` the videos whose
/// job no worker finished on any attempt (a worker dying each time).
pub async fn run(cfg: WorkerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let worker = Arc::new(Worker::new(cfg.clone()).await?);
    let queue = loop {
        match jobs::Queue::connect(&cfg.jobs).await {
            Ok(q) => break q,
            Err(e) => tracing::warn!(error = %e, "job queue not reachable; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    };
    tracing::info!(url = %cfg.jobs.url, "worker pulling jobs");
    let mut exhausted = Box::pin(queue.watch_exhausted().await?);
    let w = worker.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                d = exhausted.next() => match d {
                    Some(d) if d.kind == TranscodeJob::KIND => {
                        tracing::error!(video_id = %d.id, "no worker finished this job");
                        w.fail(&d.id, "processing stopped on every attempt; try uploading again").await;
                    }
                    Some(_) => {}
                    None => return,
                },
            }
        }
    });
    loop {
        let next = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            n = queue.next(Duration::from_secs(5)) => n,
        };
        match next {
            Ok(Some(job)) => worker.handle(job).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "pulling a job failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The init section (EXT-X-MAP URI) each segment of a playlist needs: a map applies to every
/// segment after it. None for MPEG-TS.
fn init_sections(media: &m3u8_rs::MediaPlaylist) -> Vec<Option<String>> {
    let mut current = None;
    media
        .segments
        .iter()
        .map(|s| {
            if let Some(m) = &s.map {
                current = Some(m.uri.clone());
            }
            current.clone()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_empty_files_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.mp4");
        std::fs::write(&text, "these are my notes, not a video\n".repeat(100)).unwrap();
        match probe(&text, 3600.0) {
            Err(JobError::Refused(why)) => assert!(why.contains("not a video"), "{why}"),
            other => panic!("{other:?}"),
        }
        let empty = dir.path().join("empty.mp4");
        std::fs::write(&empty, b"").unwrap();
        match probe(&empty, 3600.0) {
            Err(JobError::Refused(why)) => assert!(why.contains("empty"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_segment_gets_the_init_section_mapped_before_it() {
        let text = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-MAP:URI=\"init_a.mp4\"\n#EXTINF:2.0,\nseg_00000.m4s\n#EXTINF:2.0,\nseg_00001.m4s\n\
#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init_b.mp4\"\n#EXTINF:2.0,\nseg_00002.m4s\n";
        let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(
            super::init_sections(&pl),
            [
                Some("init_a.mp4".to_string()),
                Some("init_a.mp4".to_string()),
                Some("init_b.mp4".to_string())
            ]
        );
        let ts = m3u8_rs::parse_media_playlist_res(
            b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg_00000.ts\n",
        )
        .unwrap();
        assert_eq!(super::init_sections(&ts), [None]);
    }
}
