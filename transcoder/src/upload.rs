//! The async side of a stream: stores segments, then the playlists that list them.
//! A segment is listed only after its object was stored; failed writes are retried with
//! backoff and counted. Files leave the spool folder only once stored.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use storage::{CachePolicy, DynStore, ObjectMeta};
use tokio::sync::mpsc::{Receiver, Sender};

use crate::pipeline::{RungDesc, UploadJob};
use crate::playlist::{render_master, MediaWindow, SegmentEntry, Variant};
use crate::{LiveConfig, LiveEvent, RenditionInfo};

struct RungState {
    desc: RungDesc,
    window: MediaWindow,
    codecs: Option<String>,
}

/// Latency of one stored segment: from the moment its closing frame reached the rung to
/// the moment the playlist listing it was stored.
#[derive(Debug, Clone)]
pub struct ListedSegment {
    pub rung: String,
    pub sequence: u64,
    pub listed_after: Duration,
}

/// What a finished stream left behind.
#[derive(Debug, Clone, Default)]
pub struct LiveSummary {
    pub duration_secs: f64,
    pub segments: u64,
    pub master_key: Option<String>,
    pub vod_master_key: Option<String>,
    pub renditions: Vec<RenditionInfo>,
    pub listed: Vec<ListedSegment>,
}

pub(crate) struct Uploader {
    pub store: DynStore,
    pub prefix: String,
    pub cfg: std::sync::Arc<LiveConfig>,
    pub events: Option<Sender<LiveEvent>>,
}

impl Uploader {
    fn key(&self, rel: &str) -> String {
        format!("{}/{}", self.prefix, rel)
    }

    /// Stores an object, retrying with exponential backoff (100 ms doubling to 5 s) for up to
    /// `upload_give_up_secs`. Returns false when it gave up.
    async fn put(&self, key: &str, body: Bytes, policy: CachePolicy) -> bool {
        let meta = ObjectMeta::for_key(key, policy);
        let started = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match self.store.put(key, body.clone(), &meta).await {
                Ok(()) => {
                    metrics::histogram!("caudal_object_put_seconds")
                        .record(started.elapsed().as_secs_f64());
                    return true;
                }
                Err(e) => {
                    metrics::counter!("caudal_upload_retries_total").increment(1);
                    if started.elapsed().as_secs() >= self.cfg.upload_give_up_secs {
                        metrics::counter!("caudal_upload_failures_total").increment(1);
                        tracing::error!(key, attempt, error = %e, "giving up storing an object");
                        return false;
                    }
                    tracing::warn!(key, attempt, error = %e, "storing an object failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn renditions(&self, rungs: &[RungState], vod: bool) -> Vec<(Variant, RenditionInfo)> {
        rungs
            .iter()
            .map(|r| {
                let (bandwidth, average) = match r.window.measured_bandwidth() {
                    Some((peak, avg)) if vod => (peak, Some(avg)),
                    Some((peak, avg)) => (peak.max(r.desc.nominal_bandwidth), Some(avg)),
                    None => (r.desc.nominal_bandwidth, None),
                };
                let codecs = r
                    .codecs
                    .clone()
                    .unwrap_or_else(|| "avc1.640028,mp4a.40.2".into());
                let file = if vod { "vod.m3u8" } else { "index.m3u8" };
                let uri = format!("{}/{}", r.desc.name, file);
                let v = Variant {
                    uri: uri.clone(),
                    bandwidth,
                    average_bandwidth: average,
                    codecs: codecs.clone(),
                    width: r.desc.width,
                    height: r.desc.height,
                    frame_rate: r.desc.frame_rate,
                };
                let info = RenditionInfo {
                    name: r.desc.name.clone(),
                    width: r.desc.width,
                    height: r.desc.height,
                    bandwidth,
                    codecs,
                    frame_rate: r.desc.frame_rate,
                    playlist: self.key(&uri),
                    passthrough: r.desc.passthrough,
                };
                (v, info)
            })
            .collect()
    }

    async fn emit(&self, ev: LiveEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(ev).await;
        }
    }

    pub async fn run(self, mut rx: Receiver<UploadJob>) -> LiveSummary {
        let mut rungs: Vec<RungState> = Vec::new();
        let mut origin: DateTime<Utc> = Utc::now();
        let mut summary = LiveSummary::default();
        let target_secs = self.cfg.segment_secs.round().max(1.0) as u64;
        while let Some(job) = rx.recv().await {
            match job {
                UploadJob::Ladder {
                    rungs: descs,
                    origin: o,
                } => {
                    origin = o;
                    rungs = descs
                        .into_iter()
                        .map(|desc| RungState {
                            desc,
                            window: MediaWindow::new(self.cfg.window, target_secs),
                            codecs: None,
                        })
                        .collect();
                }
                UploadJob::Segment(seg) => {
                    let Some(rung) = rungs.get_mut(seg.rung) else {
                        continue;
                    };
                    let rel = format!("{}/seg_{:05}.ts", rung.desc.name, seg.sequence);
                    let key = format!("{}/{}", self.prefix, rel);
                    let body = match tokio::fs::read(&seg.path).await {
                        Ok(b) => Bytes::from(b),
                        Err(e) => {
                            tracing::error!(path = %seg.path.display(), error = %e, "spooled segment unreadable");
                            continue;
                        }
                    };
                    if !self.put(&key, body, CachePolicy::Immutable).await {
                        // kept in the spool folder; not listed
                        continue;
                    }
                    let _ = tokio::fs::remove_file(&seg.path).await;
                    let rung = &mut rungs[seg.rung];
                    rung.codecs.get_or_insert(seg.codecs.clone());
                    rung.window.push(SegmentEntry {
                        sequence: seg.sequence,
                        uri: format!("seg_{:05}.ts", seg.sequence),
                        duration_secs: seg.duration_ms as f64 / 1000.0,
                        program_date_time: origin + chrono::Duration::milliseconds(seg.start_ms),
                        size_bytes: seg.size,
                    });
                    let live = Bytes::from(rung.window.render_live());
                    let pl_key = self.key(&format!("{}/index.m3u8", rung.desc.name));
                    let name = rung.desc.name.clone();
                    if self.put(&pl_key, live, CachePolicy::Live).await {
                        metrics::counter!("caudal_segments_listed_total").increment(1);
                        let listed_after = seg.closed_at.elapsed();
                        metrics::histogram!("caudal_segment_listed_seconds")
                            .record(listed_after.as_secs_f64());
                        summary.listed.push(ListedSegment {
                            rung: name,
                            sequence: seg.sequence,
                            listed_after,
                        });
                    }
                    summary.segments += 1;
                    if summary.master_key.is_none()
                        && rungs.iter().all(|r| !r.window.segments().is_empty())
                    {
                        let (variants, infos): (Vec<_>, Vec<_>) =
                            self.renditions(&rungs, false).into_iter().unzip();
                        let key = self.key("master.m3u8");
                        if self
                            .put(
                                &key,
                                Bytes::from(render_master(&variants)),
                                CachePolicy::Short,
                            )
                            .await
                        {
                            summary.master_key = Some(key.clone());
                            summary.renditions = infos.clone();
                            self.emit(LiveEvent::Started {
                                master_key: key,
                                renditions: infos,
                            })
                            .await;
                        }
                    }
                }
                UploadJob::End => break,
            }
        }
        // finalise: ENDLIST on every live playlist, a VOD playlist per rung and a VOD master
        let stored: Vec<&RungState> = rungs
            .iter()
            .filter(|r| !r.window.segments().is_empty())
            .collect();
        if stored.is_empty() {
            self.emit(LiveEvent::Finished {
                summary: summary.clone(),
            })
            .await;
            return summary;
        }
        for r in &stored {
            let name = &r.desc.name;
            self.put(
                &self.key(&format!("{name}/index.m3u8")),
                Bytes::from(r.window.render_ended()),
                CachePolicy::Short,
            )
            .await;
            self.put(
                &self.key(&format!("{name}/vod.m3u8")),
                Bytes::from(r.window.render_vod()),
                CachePolicy::Short,
            )
            .await;
        }
        let kept: Vec<RungState> = rungs
            .into_iter()
            .filter(|r| !r.window.segments().is_empty())
            .collect();
        let (variants, infos): (Vec<_>, Vec<_>) = self.renditions(&kept, true).into_iter().unzip();
        let vod_key = self.key("vod.m3u8");
        if self
            .put(
                &vod_key,
                Bytes::from(render_master(&variants)),
                CachePolicy::Short,
            )
            .await
        {
            summary.vod_master_key = Some(vod_key);
        }
        if summary.master_key.is_none() {
            let (live_variants, _): (Vec<_>, Vec<_>) =
                self.renditions(&kept, false).into_iter().unzip();
            let key = self.key("master.m3u8");
            if self
                .put(
                    &key,
                    Bytes::from(render_master(&live_variants)),
                    CachePolicy::Short,
                )
                .await
            {
                summary.master_key = Some(key);
            }
        }
        summary.duration_secs = kept
            .iter()
            .filter(|r| !r.desc.passthrough)
            .map(|r| r.window.total_duration_secs())
            .fold(None, |acc: Option<f64>, d| {
                Some(acc.map_or(d, |a| a.max(d)))
            })
            .unwrap_or_else(|| {
                kept.iter()
                    .map(|r| r.window.total_duration_secs())
                    .fold(0.0, f64::max)
            });
        summary.renditions = infos;
        self.emit(LiveEvent::Finished {
            summary: summary.clone(),
        })
        .await;
        summary
    }
}
