//! The async side of a stream: stores segments, then the playlists that list them.
//! A segment is listed only after its object was stored; failed writes are retried with
//! backoff and counted. Files leave the spool folder only once stored.

use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use storage::{CachePolicy, DynStore, ObjectMeta};
use tokio::sync::mpsc::{Receiver, Sender};

use crate::pipeline::SpoolSidecar;
use crate::pipeline::{RungDesc, UploadJob};
use crate::playlist::{parse_master, parse_media};
use crate::playlist::{render_master, MediaWindow, SegmentEntry, Variant};
use crate::spool::SpoolMeter;
use crate::{LiveConfig, LiveEvent, RenditionInfo};

pub(crate) struct RungState {
    pub desc: RungDesc,
    pub window: MediaWindow,
    pub codecs: Option<String>,
    /// Sequence number (and file name) of the rung's next stored segment.
    pub next_sequence: u64,
    /// The next segment does not continue the last one listed.
    pub discontinuity_next: bool,
}

impl RungState {
    pub fn new(desc: RungDesc, window: usize, target_secs: u64) -> Self {
        Self {
            desc,
            window: MediaWindow::new(window, target_secs),
            codecs: None,
            next_sequence: 0,
            discontinuity_next: false,
        }
    }
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
    pub meter: std::sync::Arc<SpoolMeter>,
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

    /// Stores the takes' segments in order: a take is drained to its end before the next
    /// one starts. Once no take follows, the playlists are made final.
    pub async fn run(self, mut takes: Receiver<Receiver<UploadJob>>) -> LiveSummary {
        let mut st = State::default();
        while let Some(mut rx) = takes.recv().await {
            // this take's rung index -> the broadcast's
            let mut map: Vec<Option<usize>> = Vec::new();
            while let Some(job) = rx.recv().await {
                match job {
                    UploadJob::Ladder { rungs: descs, .. } => {
                        let first = st.rungs.is_empty();
                        map = st.join_ladder(descs, &self.cfg);
                        if first {
                            self.store_ladder(&st).await;
                        }
                    }
                    UploadJob::Segment(seg) => {
                        let Some(idx) = map.get(seg.rung).copied().flatten() else {
                            // a rung the broadcast does not list
                            remove_spooled(&seg.path).await;
                            self.meter.sub(seg.size);
                            continue;
                        };
                        if seg.discontinuity {
                            st.rungs[idx].discontinuity_next = true;
                        }
                        let body = match tokio::fs::read(&seg.path).await {
                            Ok(b) => Bytes::from(b),
                            Err(e) => {
                                tracing::error!(path = %seg.path.display(), error = %e, "spooled segment unreadable");
                                st.rungs[idx].discontinuity_next = true;
                                continue;
                            }
                        };
                        let closed_at = seg.closed_at;
                        let stored = self
                            .store_segment(
                                &mut st,
                                idx,
                                body,
                                seg.duration_ms,
                                seg.program_date_time,
                                seg.codecs,
                            )
                            .await;
                        if let Some(listed_after) = stored.then(|| closed_at.elapsed()) {
                            metrics::histogram!("caudal_segment_listed_seconds")
                                .record(listed_after.as_secs_f64());
                            remove_spooled(&seg.path).await;
                            self.meter.sub(seg.size);
                            st.summary.listed.push(ListedSegment {
                                rung: st.rungs[idx].desc.name.clone(),
                                sequence: st.rungs[idx]
                                    .window
                                    .segments()
                                    .last()
                                    .map_or(0, |s| s.sequence),
                                listed_after,
                            });
                        }
                    }
                    UploadJob::End => break,
                }
            }
            self.flush_journal(&mut st).await;
        }
        self.finalise(st).await
    }

    /// Stores one segment as the rung's next, then the live playlist listing it (and the
    /// master playlist once every rung has a segment). False when it could not be stored:
    /// the next segment of the rung is then marked as a discontinuity.
    pub(crate) async fn store_segment(
        &self,
        st: &mut State,
        idx: usize,
        body: Bytes,
        duration_ms: i64,
        program_date_time: DateTime<Utc>,
        codecs: String,
    ) -> bool {
        let rung = &st.rungs[idx];
        let sequence = rung.next_sequence;
        let uri = format!("seg_{sequence:05}.ts");
        let key = self.key(&format!("{}/{uri}", rung.desc.name));
        let size = body.len() as u64;
        if !self.put(&key, body, CachePolicy::Immutable).await {
            // kept in the spool folder; not listed, and the break is marked
            metrics::counter!("caudal_segments_lost_total").increment(1);
            st.rungs[idx].discontinuity_next = true;
            return false;
        }
        let rung = &mut st.rungs[idx];
        rung.codecs.get_or_insert(codecs);
        let entry = SegmentEntry {
            sequence,
            uri,
            duration_secs: duration_ms as f64 / 1000.0,
            program_date_time,
            size_bytes: size,
            discontinuity: std::mem::take(&mut rung.discontinuity_next),
        };
        rung.next_sequence += 1;
        rung.window.push(entry.clone());
        st.journal.push(JournalEntry {
            rung: rung.desc.name.clone(),
            segment: entry,
        });
        if rung.window.publish_now() {
            let live = Bytes::from(rung.window.render_live());
            let pl_key = self.key(&format!("{}/index.m3u8", rung.desc.name));
            if self.put(&pl_key, live, CachePolicy::Live).await {
                metrics::counter!("caudal_segments_listed_total").increment(1);
            }
        }
        st.summary.segments += 1;
        if st.journal.len() >= JOURNAL_EVERY * st.rungs.len().max(1) {
            self.flush_journal(st).await;
        }
        if st.summary.master_key.is_none()
            && st.rungs.iter().all(|r| !r.window.segments().is_empty())
        {
            let (variants, infos): (Vec<_>, Vec<_>) =
                self.renditions(&st.rungs, false).into_iter().unzip();
            let key = self.key("master.m3u8");
            if self
                .put(
                    &key,
                    Bytes::from(render_master(&variants)),
                    CachePolicy::Short,
                )
                .await
            {
                st.summary.master_key = Some(key.clone());
                st.summary.renditions = infos.clone();
                self.emit(LiveEvent::Started {
                    master_key: key,
                    renditions: infos,
                })
                .await;
            }
        }
        true
    }

    /// Stores the segments listed since the last flush as the next journal object
    /// (`<prefix>/journal/NNNNNN.json`): with the live playlists, what a recovery needs to
    /// list every stored segment after a crash.
    async fn flush_journal(&self, st: &mut State) {
        if st.journal.is_empty() {
            return;
        }
        let key = self.key(&format!("journal/{:06}.json", st.journal_chunks));
        let body = serde_json::to_vec(&st.journal).expect("journal serialises");
        if self.put(&key, Bytes::from(body), CachePolicy::Short).await {
            st.journal.clear();
            st.journal_chunks += 1;
        }
    }

    /// ENDLIST on every live playlist, a VOD playlist per rung and a VOD master.
    pub(crate) async fn finalise(&self, st: State) -> LiveSummary {
        let State {
            rungs, mut summary, ..
        } = st;
        let kept: Vec<RungState> = rungs
            .into_iter()
            .filter(|r| !r.window.segments().is_empty())
            .collect();
        if kept.is_empty() {
            self.emit(LiveEvent::Finished {
                summary: summary.clone(),
            })
            .await;
            return summary;
        }
        for r in &kept {
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
        summary.segments = kept.iter().map(|r| r.window.segments().len() as u64).sum();
        summary.renditions = infos;
        self.emit(LiveEvent::Finished {
            summary: summary.clone(),
        })
        .await;
        summary
    }
}

impl Uploader {
    /// The broadcast's rungs, for a recovery (`<prefix>/journal/ladder.json`).
    async fn store_ladder(&self, st: &State) {
        let descs: Vec<&RungDesc> = st.rungs.iter().map(|r| &r.desc).collect();
        let body = serde_json::to_vec(&descs).expect("ladder serialises");
        self.put(
            &self.key("journal/ladder.json"),
            Bytes::from(body),
            CachePolicy::Short,
        )
        .await;
    }

    /// Rebuilds a broadcast's state from what storage holds: the ladder, the journal and
    /// the live playlists.
    async fn load(&self) -> State {
        let mut st = State::default();
        let descs: Vec<RungDesc> = match self.store.get(&self.key("journal/ladder.json")).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::error!(prefix = %self.prefix, error = %e, "unreadable ladder in the journal");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        let target_secs = self.cfg.segment_secs.round().max(1.0) as u64;
        st.rungs = descs
            .into_iter()
            .map(|d| RungState::new(d, self.cfg.window, target_secs))
            .collect();
        if let Ok(b) = self.store.get(&self.key("master.m3u8")).await {
            st.summary.master_key = Some(self.key("master.m3u8"));
            for v in parse_master(&b).unwrap_or_default() {
                let name = v.uri.split('/').next().unwrap_or_default();
                if let Some(r) = st.rungs.iter_mut().find(|r| r.desc.name == name) {
                    r.codecs = Some(v.codecs.clone());
                }
            }
        }
        // every stored segment: the journal, then the live playlists for the newest
        let mut found: std::collections::BTreeMap<(String, u64), SegmentEntry> = Default::default();
        let mut chunks: Vec<String> = self
            .store
            .list(&self.key("journal/"))
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|k| k.ends_with(".json") && !k.ends_with("/ladder.json"))
            .collect();
        chunks.sort();
        st.journal_chunks = chunks.len() as u64;
        for key in &chunks {
            let Ok(b) = self.store.get(key).await else {
                tracing::error!(key, "journal object unreadable");
                continue;
            };
            match serde_json::from_slice::<Vec<JournalEntry>>(&b) {
                Ok(list) => {
                    for e in list {
                        found.insert((e.rung, e.segment.sequence), e.segment);
                    }
                }
                Err(e) => tracing::error!(key, error = %e, "journal object unparsable"),
            }
        }
        for r in &st.rungs {
            let name = r.desc.name.clone();
            if let Ok(b) = self
                .store
                .get(&self.key(&format!("{name}/index.m3u8")))
                .await
            {
                for seg in parse_media(&b).unwrap_or_default() {
                    found.entry((name.clone(), seg.sequence)).or_insert(seg);
                }
            }
        }
        for ((rung, _), mut seg) in found {
            let Some(r) = st.rungs.iter_mut().find(|r| r.desc.name == rung) else {
                continue;
            };
            if let Some(last) = r.window.segments().last() {
                // a hole: something listed once was lost; mark the break
                if seg.sequence != last.sequence + 1 {
                    seg.discontinuity = true;
                }
            }
            r.next_sequence = seg.sequence + 1;
            r.window.push(seg);
            st.summary.segments += 1;
        }
        st
    }

    /// Stores what a crashed process left in the spool, oldest take first, each take's
    /// first segment per rung marked as a discontinuity.
    async fn drain_spool(&self, st: &mut State, spool: &std::path::Path) {
        let mut takes: Vec<std::path::PathBuf> = dir_entries(spool)
            .into_iter()
            .filter(|p| p.is_dir())
            .collect();
        takes.sort();
        for take in takes {
            let mut files: Vec<std::path::PathBuf> = Vec::new();
            for rung_dir in dir_entries(&take).into_iter().filter(|p| p.is_dir()) {
                files.extend(
                    dir_entries(&rung_dir)
                        .into_iter()
                        .filter(|p| p.extension().is_some_and(|e| e == "json")),
                );
            }
            // by time, so rungs interleave as they were cut
            let mut segs: Vec<(SpoolSidecar, std::path::PathBuf)> = files
                .into_iter()
                .filter_map(|side| {
                    let meta: SpoolSidecar =
                        serde_json::from_slice(&std::fs::read(&side).ok()?).ok()?;
                    Some((meta, side.with_extension("ts")))
                })
                .collect();
            segs.sort_by_key(|(m, p)| (m.program_date_time, p.clone()));
            let mut seen: Vec<String> = Vec::new();
            for (meta, ts) in segs {
                let idx = match st.rungs.iter().position(|r| r.desc.name == meta.rung.name) {
                    Some(i) => i,
                    None => {
                        let target_secs = self.cfg.segment_secs.round().max(1.0) as u64;
                        st.rungs.push(RungState::new(
                            meta.rung.clone(),
                            self.cfg.window,
                            target_secs,
                        ));
                        if st.rungs.len() == 1 {
                            self.store_ladder(st).await;
                        }
                        st.rungs.len() - 1
                    }
                };
                if !seen.contains(&meta.rung.name) {
                    seen.push(meta.rung.name.clone());
                    if !st.rungs[idx].window.segments().is_empty() {
                        st.rungs[idx].discontinuity_next = true;
                    }
                }
                let Ok(body) = tokio::fs::read(&ts).await else {
                    continue;
                };
                if self
                    .store_segment(
                        st,
                        idx,
                        Bytes::from(body),
                        meta.duration_ms,
                        meta.program_date_time,
                        meta.codecs,
                    )
                    .await
                {
                    metrics::counter!("caudal_recovered_segments_total").increment(1);
                    remove_spooled(&ts).await;
                }
            }
        }
        self.flush_journal(st).await;
    }
}

fn dir_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

/// Finishes a broadcast whose process stopped without finishing it (a crash): stores the
/// segments still waiting in `spool` (when this machine has it), then makes every playlist
/// final from what storage holds. Safe to run again on a broadcast already finished.
pub async fn recover(
    cfg: std::sync::Arc<LiveConfig>,
    store: DynStore,
    prefix: String,
    spool: Option<&std::path::Path>,
) -> LiveSummary {
    let up = Uploader {
        store,
        prefix,
        meter: crate::spool::meter(&cfg),
        cfg,
        events: None,
    };
    let mut st = up.load().await;
    if let Some(dir) = spool {
        up.drain_spool(&mut st, dir).await;
    }
    up.finalise(st).await
}

/// Segments per rung between two journal objects. The live playlists list the last
/// `window` (at least 3) segments, so a journal flushed this often leaves none uncovered.
const JOURNAL_EVERY: usize = 2;

async fn remove_spooled(path: &std::path::Path) {
    let _ = tokio::fs::remove_file(path).await;
    let _ = tokio::fs::remove_file(path.with_extension("json")).await;
}

/// One stored segment, as the journal keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    pub rung: String,
    #[serde(flatten)]
    pub segment: SegmentEntry,
}

/// The uploader's state: the broadcast's rungs and what was stored.
#[derive(Default)]
pub(crate) struct State {
    pub rungs: Vec<RungState>,
    pub summary: LiveSummary,
    /// Listed since the last journal object.
    pub journal: Vec<JournalEntry>,
    pub journal_chunks: u64,
}

impl State {
    /// A take's ladder: the first one makes the broadcast's rungs; a later one continues them
    /// (same names), each rung's next segment marked as a discontinuity. Returns the take's
    /// rung index -> the broadcast's.
    fn join_ladder(&mut self, descs: Vec<RungDesc>, cfg: &LiveConfig) -> Vec<Option<usize>> {
        let target_secs = cfg.segment_secs.round().max(1.0) as u64;
        if self.rungs.is_empty() {
            self.rungs = descs
                .into_iter()
                .map(|desc| RungState::new(desc, cfg.window, target_secs))
                .collect();
            return (0..self.rungs.len()).map(Some).collect();
        }
        for r in &mut self.rungs {
            r.discontinuity_next = true;
        }
        descs
            .iter()
            .map(|d| self.rungs.iter().position(|r| r.desc.name == d.name))
            .collect()
    }
}
