//! The async side of a stream: stores segments, then the playlists that list them, doing
//! the writes [`crate::publish`] decides on.
//! A segment is listed only after its object was stored; failed writes are retried with
//! backoff and counted. Files leave the spool folder only once stored.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use storage::{CachePolicy, DynStore, ObjectMeta};
use tokio::sync::mpsc::{unbounded_channel, Receiver, Sender, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;

use crate::ladder::RungDesc;
use crate::pipeline::{SegmentReady, SpoolSidecar, UploadJob};
use crate::playlist::{parse_master_codecs, parse_media, SegmentEntry};
use crate::publish::{
    self, BroadcastPlaylists, JournalEntry, RungPlaylists, RungSummary, StoredSegment, Write,
};
use crate::spool::SpoolMeter;
use crate::{LiveConfig, LiveEvent, RenditionInfo, SegmentFormat};

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

/// Stores a broadcast's objects. Each rung has a task of its own ([`Uploader::rung_task`]),
/// so a slow write delays only that rung; one task ([`Uploader::run`]) hands segments to
/// them and stores what spans rungs (the master playlist, the journal).
#[derive(Clone)]
pub(crate) struct Uploader {
    pub store: DynStore,
    pub prefix: String,
    pub cfg: Arc<LiveConfig>,
    pub events: Option<Sender<LiveEvent>>,
    pub meter: Arc<SpoolMeter>,
    /// The live edge (low-latency HLS): told the renditions once the master is stored.
    pub ll: Option<Arc<crate::lowlatency::LlStream>>,
}

/// What a rung's task is given, in order.
enum ToRung {
    Segment(SegmentReady),
    /// A new take begins: its first segment does not continue the last one.
    Break,
}

/// What a rung's task reports for each segment it listed.
struct Listed {
    idx: usize,
    entry: SegmentEntry,
    summary: RungSummary,
    listed_after: Duration,
}

struct RungTask {
    name: String,
    tx: UnboundedSender<ToRung>,
    handle: JoinHandle<RungPlaylists>,
}

/// A broadcast rebuilt from storage (a recovery).
struct Recovered {
    rungs: Vec<RungPlaylists>,
    bc: BroadcastPlaylists,
    summary: LiveSummary,
}

impl Uploader {
    fn key(&self, rel: &str) -> String {
        format!("{}/{}", self.prefix, rel)
    }

    fn target_secs(&self) -> u64 {
        self.cfg.segment_secs.round().max(1.0) as u64
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

    async fn write(&self, w: &Write) -> bool {
        self.put(&self.key(&w.rel), w.body.clone(), w.policy).await
    }

    async fn emit(&self, ev: LiveEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(ev).await;
        }
    }

    /// Stores `body` as the rung's next segment, then the live playlist listing it. None when
    /// it could not be stored: the rung's next segment is then marked as a discontinuity.
    async fn store_segment(
        &self,
        rung: &mut RungPlaylists,
        body: Bytes,
        seg: StoredSegment,
        spool_dir: &std::path::Path,
    ) -> Option<SegmentEntry> {
        // fMP4: the init section first (once per rung and name), or the segment is useless
        if let Some(name) = seg.init.as_ref().filter(|n| !rung.stored_inits.contains(n)) {
            let init = match tokio::fs::read(spool_dir.join(name)).await {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::error!(rung = %rung.desc.name, init = %name, error = %e, "spooled init section unreadable");
                    metrics::counter!("caudal_segments_lost_total").increment(1);
                    rung.lost();
                    return None;
                }
            };
            if !self
                .put(
                    &self.key(&rung.init_key(name)),
                    init,
                    CachePolicy::Immutable,
                )
                .await
            {
                metrics::counter!("caudal_segments_lost_total").increment(1);
                rung.lost();
                return None;
            }
            rung.stored_inits.push(name.clone());
        }
        let key = self.key(&rung.next_segment(seg.format));
        if !self.put(&key, body, CachePolicy::Immutable).await {
            // kept in the spool folder; not listed, and the break is marked
            metrics::counter!("caudal_segments_lost_total").increment(1);
            rung.lost();
            return None;
        }
        let (entry, live) = rung.listed(seg);
        if let Some(w) = live {
            if self.write(&w).await {
                metrics::counter!("caudal_segments_listed_total").increment(1);
            }
        }
        Some(entry)
    }

    /// After rung `idx` listed `entry`: the journal and the master playlist, when due.
    async fn after_listing(
        &self,
        bc: &mut BroadcastPlaylists,
        summary: &mut LiveSummary,
        idx: usize,
        rung: RungSummary,
        entry: SegmentEntry,
    ) {
        let after = bc.listed(idx, rung, entry, &self.prefix);
        if let Some(w) = after.journal {
            if self.write(&w).await {
                bc.journal_stored();
            }
        }
        if let Some((w, infos)) = after.master {
            if self.write(&w).await {
                bc.master_stored();
                if let Some(ll) = &self.ll {
                    ll.set_renditions(infos.clone());
                }
                let key = self.key(&w.rel);
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

    async fn flush_journal(&self, bc: &mut BroadcastPlaylists) {
        if let Some(w) = bc.journal_write() {
            if self.write(&w).await {
                bc.journal_stored();
            }
        }
    }

    /// One rung's uploads, in order: each segment from the spool, then its live playlist.
    /// Returns the rung's playlists once its input ends.
    async fn rung_task(
        self,
        idx: usize,
        mut rung: RungPlaylists,
        mut rx: UnboundedReceiver<ToRung>,
        reports: UnboundedSender<Listed>,
    ) -> RungPlaylists {
        while let Some(msg) = rx.recv().await {
            let seg = match msg {
                ToRung::Break => {
                    rung.lost();
                    continue;
                }
                ToRung::Segment(seg) => seg,
            };
            if seg.discontinuity {
                rung.lost();
            }
            let body = match tokio::fs::read(&seg.path).await {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    tracing::error!(path = %seg.path.display(), error = %e, "spooled segment unreadable");
                    rung.lost();
                    continue;
                }
            };
            let stored = StoredSegment {
                duration_ms: seg.duration_ms,
                program_date_time: seg.program_date_time,
                size: seg.size,
                codecs: seg.codecs,
                format: SegmentFormat::of(&seg.path.to_string_lossy()),
                init: seg.init,
            };
            let dir = seg.path.parent().unwrap_or(std::path::Path::new("."));
            let Some(entry) = self.store_segment(&mut rung, body, stored, dir).await else {
                continue;
            };
            let listed_after = seg.closed_at.elapsed();
            metrics::histogram!("caudal_segment_listed_seconds").record(listed_after.as_secs_f64());
            remove_spooled(&seg.path).await;
            self.meter.sub(seg.size);
            let _ = reports.send(Listed {
                idx,
                entry,
                summary: rung.summary(),
                listed_after,
            });
        }
        rung
    }

    /// Stores the takes' segments: a take is drained to its end before the next one starts,
    /// each rung by its own task. Once no take follows, the playlists are made final.
    pub async fn run(self, mut takes: Receiver<Receiver<UploadJob>>) -> LiveSummary {
        let (reports_tx, mut reports) = unbounded_channel::<Listed>();
        let mut bc = BroadcastPlaylists::default();
        let mut summary = LiveSummary::default();
        let mut tasks: Vec<RungTask> = Vec::new();
        // the take being stored, and its rung index -> the broadcast's
        let mut take: Option<(Receiver<UploadJob>, Vec<Option<usize>>)> = None;
        let mut takes_open = true;
        while takes_open || take.is_some() {
            tokio::select! {
                biased;
                Some(r) = reports.recv() => {
                    summary.listed.push(ListedSegment {
                        rung: r.summary.desc.name.clone(),
                        sequence: r.entry.sequence,
                        listed_after: r.listed_after,
                    });
                    summary.segments += 1;
                    self.after_listing(&mut bc, &mut summary, r.idx, r.summary, r.entry).await;
                }
                job = next_job(&mut take), if take.is_some() => match job {
                    Some(UploadJob::Ladder { rungs: descs }) => {
                        let map = if tasks.is_empty() {
                            self.write(&publish::ladder(&descs)).await;
                            let rungs: Vec<RungPlaylists> = descs
                                .into_iter()
                                .map(|d| RungPlaylists::new(d, self.cfg.window, self.target_secs()))
                                .collect();
                            bc = BroadcastPlaylists::new(rungs.iter().map(|r| r.summary()).collect());
                            for (idx, rung) in rungs.into_iter().enumerate() {
                                let (tx, rx) = unbounded_channel();
                                tasks.push(RungTask {
                                    name: rung.desc.name.clone(),
                                    tx,
                                    handle: tokio::spawn(self.clone().rung_task(idx, rung, rx, reports_tx.clone())),
                                });
                            }
                            (0..tasks.len()).map(Some).collect()
                        } else {
                            // a later take continues the same rungs, after a break
                            for t in &tasks {
                                let _ = t.tx.send(ToRung::Break);
                            }
                            descs.iter().map(|d| tasks.iter().position(|t| t.name == d.name)).collect()
                        };
                        if let Some((_, m)) = take.as_mut() {
                            *m = map;
                        }
                    }
                    Some(UploadJob::Segment(seg)) => {
                        let idx = take.as_ref().and_then(|(_, m)| m.get(seg.rung).copied().flatten());
                        match idx.and_then(|i| tasks.get(i)) {
                            Some(t) => {
                                if let Err(e) = t.tx.send(ToRung::Segment(seg)) {
                                    let ToRung::Segment(seg) = e.0 else { continue };
                                    tracing::error!(rung = %t.name, path = %seg.path.display(), "the rung's upload task is gone: segment left in the spool");
                                }
                            }
                            None => {
                                // a rung the broadcast does not list
                                remove_spooled(&seg.path).await;
                                self.meter.sub(seg.size);
                            }
                        }
                    }
                    Some(UploadJob::End) | None => {
                        take = None;
                        self.flush_journal(&mut bc).await;
                    }
                },
                next = takes.recv(), if take.is_none() && takes_open => match next {
                    Some(rx) => take = Some((rx, Vec::new())),
                    None => takes_open = false,
                },
            }
        }
        // no segment follows: every rung's task stores what it was given, then ends
        drop(reports_tx);
        let handles: Vec<(String, JoinHandle<RungPlaylists>)> =
            tasks.into_iter().map(|t| (t.name, t.handle)).collect();
        while let Some(r) = reports.recv().await {
            summary.listed.push(ListedSegment {
                rung: r.summary.desc.name.clone(),
                sequence: r.entry.sequence,
                listed_after: r.listed_after,
            });
            summary.segments += 1;
            self.after_listing(&mut bc, &mut summary, r.idx, r.summary, r.entry)
                .await;
        }
        let mut rungs = Vec::with_capacity(handles.len());
        for (name, h) in handles {
            match h.await {
                Ok(r) => rungs.push(r),
                Err(e) => tracing::error!(rung = %name, error = %e, "a rung's upload task failed"),
            }
        }
        self.flush_journal(&mut bc).await;
        self.finalise(&rungs, bc.master_stored, summary).await
    }

    /// ENDLIST on every live playlist, a VOD playlist per rung (rungs in parallel) and a VOD
    /// master.
    async fn finalise(
        &self,
        rungs: &[RungPlaylists],
        master_stored: bool,
        mut summary: LiveSummary,
    ) -> LiveSummary {
        let end = publish::ending(rungs, &self.prefix, master_stored);
        let Some((vod, infos)) = end.vod_master else {
            self.emit(LiveEvent::Finished {
                summary: summary.clone(),
            })
            .await;
            return summary;
        };
        futures::future::join_all(end.rungs.iter().flatten().map(|w| self.write(w))).await;
        if self.write(&vod).await {
            summary.vod_master_key = Some(self.key(&vod.rel));
        }
        if let Some(w) = end.master {
            if self.write(&w).await {
                summary.master_key = Some(self.key(&w.rel));
            }
        }
        summary.duration_secs = end.duration_secs;
        summary.segments = end.segments;
        summary.renditions = infos;
        self.emit(LiveEvent::Finished {
            summary: summary.clone(),
        })
        .await;
        summary
    }

    /// Rebuilds a broadcast's state from what storage holds: the ladder, the journal and
    /// the live playlists.
    async fn load(&self) -> Recovered {
        let descs: Vec<RungDesc> = match self.store.get(&self.key("journal/ladder.json")).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::error!(prefix = %self.prefix, error = %e, "unreadable ladder in the journal");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        let mut rungs: Vec<RungPlaylists> = descs
            .into_iter()
            .map(|d| RungPlaylists::new(d, self.cfg.window, self.target_secs()))
            .collect();
        let mut summary = LiveSummary::default();
        if let Ok(b) = self.store.get(&self.key("master.m3u8")).await {
            summary.master_key = Some(self.key("master.m3u8"));
            for (name, codecs) in parse_master_codecs(&b).unwrap_or_default() {
                if let Some(r) = rungs.iter_mut().find(|r| r.desc.name == name) {
                    r.codecs = Some(codecs);
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
        for r in &rungs {
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
        for ((rung, _), seg) in found {
            if let Some(r) = rungs.iter_mut().find(|r| r.desc.name == rung) {
                r.restore(seg);
                summary.segments += 1;
            }
        }
        let mut bc = BroadcastPlaylists::new(rungs.iter().map(|r| r.summary()).collect());
        bc.master_stored = summary.master_key.is_some();
        bc.journal_chunks = chunks.len() as u64;
        Recovered { rungs, bc, summary }
    }

    /// Stores what a crashed process left in the spool, oldest take first, each take's
    /// first segment per rung marked as a discontinuity.
    async fn drain_spool(&self, st: &mut Recovered, spool: &std::path::Path) {
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
                    let ts = side.with_extension("ts");
                    let media = if ts.exists() {
                        ts
                    } else {
                        side.with_extension("m4s")
                    };
                    Some((meta, media))
                })
                .collect();
            segs.sort_by_key(|(m, p)| (m.program_date_time, p.clone()));
            let mut seen: Vec<String> = Vec::new();
            for (meta, media) in segs {
                let idx = match st.rungs.iter().position(|r| r.desc.name == meta.rung.name) {
                    Some(i) => i,
                    None => {
                        let rung = RungPlaylists::new(
                            meta.rung.clone(),
                            self.cfg.window,
                            self.target_secs(),
                        );
                        st.bc.rungs.push(rung.summary());
                        st.rungs.push(rung);
                        let descs: Vec<RungDesc> =
                            st.rungs.iter().map(|r| r.desc.clone()).collect();
                        self.write(&publish::ladder(&descs)).await;
                        st.rungs.len() - 1
                    }
                };
                if !seen.contains(&meta.rung.name) {
                    seen.push(meta.rung.name.clone());
                    if !st.rungs[idx].window.segments().is_empty() {
                        st.rungs[idx].lost();
                    }
                }
                let Ok(body) = tokio::fs::read(&media).await else {
                    continue;
                };
                let stored = StoredSegment {
                    duration_ms: meta.duration_ms,
                    program_date_time: meta.program_date_time,
                    size: meta.size,
                    codecs: meta.codecs,
                    format: SegmentFormat::of(&media.to_string_lossy()),
                    init: meta.init,
                };
                let dir = media.parent().unwrap_or(std::path::Path::new("."));
                let Some(entry) = self
                    .store_segment(&mut st.rungs[idx], Bytes::from(body), stored, dir)
                    .await
                else {
                    continue;
                };
                metrics::counter!("caudal_recovered_segments_total").increment(1);
                remove_spooled(&media).await;
                st.summary.segments += 1;
                let rung = st.rungs[idx].summary();
                self.after_listing(&mut st.bc, &mut st.summary, idx, rung, entry)
                    .await;
            }
        }
        self.flush_journal(&mut st.bc).await;
    }
}

async fn next_job(
    take: &mut Option<(Receiver<UploadJob>, Vec<Option<usize>>)>,
) -> Option<UploadJob> {
    match take {
        Some((rx, _)) => rx.recv().await,
        None => std::future::pending().await,
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
    cfg: Arc<LiveConfig>,
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
        ll: None,
    };
    let mut st = up.load().await;
    if let Some(dir) = spool {
        up.drain_spool(&mut st, dir).await;
    }
    up.finalise(&st.rungs, st.bc.master_stored, st.summary)
        .await
}

async fn remove_spooled(path: &std::path::Path) {
    let _ = tokio::fs::remove_file(path).await;
    let _ = tokio::fs::remove_file(path.with_extension("json")).await;
}
