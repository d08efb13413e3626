//! What a broadcast stores, decided without touching storage: for each stored segment, which
//! playlists (and journal and master objects) to write, and what to write at the end. The
//! uploader ([`crate::upload`]) performs the writes and tells this module which succeeded.
//!
//! A rung's playlists ([`RungPlaylists`]) belong to that rung's upload task alone, so rungs
//! store in parallel; what spans rungs (the master playlist, the journal) is
//! [`BroadcastPlaylists`], kept by the task that coordinates them.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use storage::CachePolicy;

use crate::ladder::RungDesc;
use crate::playlist::{render_master, MediaWindow, SegmentEntry};
use crate::{RenditionInfo, SegmentFormat};

/// One object to store, its key relative to the broadcast's prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub rel: String,
    pub body: Bytes,
    pub policy: CachePolicy,
}

impl Write {
    fn new(rel: String, body: impl Into<Bytes>, policy: CachePolicy) -> Self {
        Self {
            rel,
            body: body.into(),
            policy,
        }
    }

    /// The body as text (playlists and journal objects are text).
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("")
    }
}

/// A segment the uploader has just stored as a rung's next.
#[derive(Debug, Clone)]
pub struct StoredSegment {
    pub duration_ms: i64,
    pub program_date_time: DateTime<Utc>,
    pub size: u64,
    /// RFC 6381 codecs of the rung, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    pub format: SegmentFormat,
    /// fMP4: the init section it needs (stored beside it, under this name).
    pub init: Option<String>,
}

/// A rung's playlists: its segments, and whether the next one continues the last.
#[derive(Debug, Clone)]
pub struct RungPlaylists {
    pub desc: RungDesc,
    pub window: MediaWindow,
    pub codecs: Option<String>,
    /// Sequence number (and file name) of the rung's next stored segment.
    pub next_sequence: u64,
    /// The next segment does not continue the last one listed.
    pub discontinuity_next: bool,
    /// fMP4 init sections already stored (by name).
    pub stored_inits: Vec<String>,
}

/// What a master playlist needs of a rung.
#[derive(Debug, Clone, PartialEq)]
pub struct RungSummary {
    pub desc: RungDesc,
    pub codecs: Option<String>,
    /// Peak and average bits per second of the stored segments.
    pub bandwidth: Option<(u64, u64)>,
    pub segments: usize,
}

impl RungPlaylists {
    /// `window`: segments a live playlist lists (0: an EVENT playlist); `target_secs`: the
    /// configured segment duration.
    pub fn new(desc: RungDesc, window: usize, target_secs: u64) -> Self {
        Self {
            desc,
            window: MediaWindow::new(window, target_secs),
            codecs: None,
            next_sequence: 0,
            discontinuity_next: false,
            stored_inits: Vec::new(),
        }
    }

    /// Where the rung's next segment is stored.
    pub fn next_segment(&self, format: SegmentFormat) -> String {
        format!(
            "{}/{}",
            self.desc.name,
            segment_uri(self.next_sequence, format)
        )
    }

    /// Where an init section the rung's segments need is stored.
    pub fn init_key(&self, name: &str) -> String {
        format!("{}/{name}", self.desc.name)
    }

    /// The segment at [`Self::next_segment`] was stored: it is listed. Returns its entry,
    /// and the live playlist to store when one is due.
    pub fn listed(&mut self, seg: StoredSegment) -> (SegmentEntry, Option<Write>) {
        self.codecs.get_or_insert(seg.codecs);
        let entry = SegmentEntry {
            sequence: self.next_sequence,
            uri: segment_uri(self.next_sequence, seg.format),
            duration_secs: seg.duration_ms as f64 / 1000.0,
            program_date_time: seg.program_date_time,
            size_bytes: seg.size,
            discontinuity: std::mem::take(&mut self.discontinuity_next),
            init: seg.init,
        };
        self.next_sequence += 1;
        self.window.push(entry.clone());
        let live = self.window.publish_now().then(|| {
            Write::new(
                format!("{}/index.m3u8", self.desc.name),
                self.window.render_live(),
                CachePolicy::Live,
            )
        });
        (entry, live)
    }

    /// The next segment does not continue the last listed (one was lost, or a new take
    /// begins): EXT-X-DISCONTINUITY.
    pub fn lost(&mut self) {
        self.discontinuity_next = true;
    }

    /// An entry found in storage (a recovery): listed as it was, after the ones before.
    /// A gap in sequence numbers marks a discontinuity.
    pub fn restore(&mut self, mut seg: SegmentEntry) {
        if let Some(last) = self.window.segments().last() {
            if seg.sequence != last.sequence + 1 {
                seg.discontinuity = true;
            }
        }
        self.next_sequence = seg.sequence + 1;
        self.window.push(seg);
    }

    pub fn summary(&self) -> RungSummary {
        RungSummary {
            desc: self.desc.clone(),
            codecs: self.codecs.clone(),
            bandwidth: self.window.measured_bandwidth(),
            segments: self.window.segments().len(),
        }
    }

    /// At the end: the live playlist with EXT-X-ENDLIST, and the VOD playlist.
    pub fn ended(&self) -> [Write; 2] {
        let name = &self.desc.name;
        [
            Write::new(
                format!("{name}/index.m3u8"),
                self.window.render_ended(),
                CachePolicy::Short,
            ),
            Write::new(
                format!("{name}/vod.m3u8"),
                self.window.render_vod(),
                CachePolicy::Short,
            ),
        ]
    }
}

fn segment_uri(sequence: u64, format: SegmentFormat) -> String {
    format!("seg_{sequence:05}.{}", format.extension())
}

/// A master playlist over `rungs`, in their order: the live one (`master.m3u8`, each rung's
/// `index.m3u8`, BANDWIDTH never below the rung's nominal figure while it is being measured)
/// or the VOD one (`vod.m3u8`, each rung's `vod.m3u8`, measured figures). With the renditions
/// it publishes (playlist keys under `prefix`).
pub fn master(rungs: &[RungSummary], prefix: &str, vod: bool) -> (Write, Vec<RenditionInfo>) {
    let infos: Vec<RenditionInfo> = rungs
        .iter()
        .map(|r| {
            let (bandwidth, average_bandwidth) = match r.bandwidth {
                Some((peak, avg)) if vod => (peak, Some(avg)),
                Some((peak, avg)) => (peak.max(r.desc.nominal_bandwidth), Some(avg)),
                None => (r.desc.nominal_bandwidth, None),
            };
            RenditionInfo {
                name: r.desc.name.clone(),
                width: r.desc.width,
                height: r.desc.height,
                bandwidth,
                average_bandwidth,
                codecs: r
                    .codecs
                    .clone()
                    .unwrap_or_else(|| "avc1.640028,mp4a.40.2".into()),
                frame_rate: r.desc.frame_rate,
                playlist: format!(
                    "{prefix}/{}/{}",
                    r.desc.name,
                    if vod { "vod.m3u8" } else { "index.m3u8" }
                ),
                passthrough: r.desc.passthrough,
            }
        })
        .collect();
    let rel = if vod { "vod.m3u8" } else { "master.m3u8" };
    (
        Write::new(rel.into(), render_master(&infos), CachePolicy::Short),
        infos,
    )
}

/// The broadcast's rungs, stored once so a recovery knows them (`journal/ladder.json`).
pub fn ladder(descs: &[RungDesc]) -> Write {
    let body = serde_json::to_vec(descs).expect("ladder serialises");
    Write::new("journal/ladder.json".into(), body, CachePolicy::Short)
}

/// One stored segment, as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub rung: String,
    #[serde(flatten)]
    pub segment: SegmentEntry,
}

/// Segments per rung between two journal objects. The live playlists list the last
/// `window` (at least 3) segments, so a journal flushed this often leaves none uncovered.
const JOURNAL_EVERY: usize = 2;

/// What spans the rungs of a broadcast: the master playlist (stored once every rung has a
/// segment) and the journal (`journal/NNNNNN.json`: with the live playlists, what a recovery
/// needs to list every stored segment after a crash).
#[derive(Debug, Default)]
pub struct BroadcastPlaylists {
    pub rungs: Vec<RungSummary>,
    pub master_stored: bool,
    /// Listed since the last journal object.
    pub journal: Vec<JournalEntry>,
    pub journal_chunks: u64,
}

/// What to store after a segment was listed.
#[derive(Debug, Default)]
pub struct AfterListing {
    /// The next journal object, when one is due: confirm with [`BroadcastPlaylists::journal_stored`].
    pub journal: Option<Write>,
    /// The master playlist, once every rung has a segment: confirm with
    /// [`BroadcastPlaylists::master_stored`].
    pub master: Option<(Write, Vec<RenditionInfo>)>,
}

impl BroadcastPlaylists {
    pub fn new(rungs: Vec<RungSummary>) -> Self {
        Self {
            rungs,
            ..Default::default()
        }
    }

    /// Rung `idx` listed `entry`; `summary` is the rung as it is now.
    pub fn listed(
        &mut self,
        idx: usize,
        summary: RungSummary,
        entry: SegmentEntry,
        prefix: &str,
    ) -> AfterListing {
        self.journal.push(JournalEntry {
            rung: summary.desc.name.clone(),
            segment: entry,
        });
        if let Some(r) = self.rungs.get_mut(idx) {
            *r = summary;
        }
        let journal = (self.journal.len() >= JOURNAL_EVERY * self.rungs.len().max(1))
            .then(|| self.journal_write())
            .flatten();
        let master = (!self.master_stored && self.rungs.iter().all(|r| r.segments > 0))
            .then(|| master(&self.rungs, prefix, false));
        AfterListing { journal, master }
    }

    /// The next journal object with what was listed since the last one (none when nothing was).
    pub fn journal_write(&self) -> Option<Write> {
        if self.journal.is_empty() {
            return None;
        }
        let body = serde_json::to_vec(&self.journal).expect("journal serialises");
        Some(Write::new(
            format!("journal/{:06}.json", self.journal_chunks),
            body,
            CachePolicy::Short,
        ))
    }

    /// The journal object from [`Self::journal_write`] was stored.
    pub fn journal_stored(&mut self) {
        self.journal.clear();
        self.journal_chunks += 1;
    }

    /// The master playlist was stored.
    pub fn master_stored(&mut self) {
        self.master_stored = true;
    }
}

/// What the end of a broadcast stores.
#[derive(Debug)]
pub struct Ending {
    /// Per rung with segments: its ended live playlist and its VOD playlist.
    pub rungs: Vec<[Write; 2]>,
    /// The VOD master playlist (none when no rung has a segment).
    pub vod_master: Option<(Write, Vec<RenditionInfo>)>,
    /// The live master, when it was never stored (a broadcast whose rungs never all had a
    /// segment, or a recovery).
    pub master: Option<Write>,
    /// Seconds recorded: the longest encoded rung (passthrough rungs when there is none).
    pub duration_secs: f64,
    pub segments: u64,
}

/// The writes that make a broadcast's playlists final: rungs without a segment are left out.
pub fn ending(rungs: &[RungPlaylists], prefix: &str, master_stored: bool) -> Ending {
    let kept: Vec<&RungPlaylists> = rungs
        .iter()
        .filter(|r| !r.window.segments().is_empty())
        .collect();
    if kept.is_empty() {
        return Ending {
            rungs: Vec::new(),
            vod_master: None,
            master: None,
            duration_secs: 0.0,
            segments: 0,
        };
    }
    let summaries: Vec<RungSummary> = kept.iter().map(|r| r.summary()).collect();
    let longest = |passthrough: Option<bool>| {
        kept.iter()
            .filter(|r| passthrough.is_none_or(|p| r.desc.passthrough == p))
            .map(|r| r.window.total_duration_secs())
            .fold(None, |acc: Option<f64>, d| {
                Some(acc.map_or(d, |a| a.max(d)))
            })
    };
    Ending {
        rungs: kept.iter().map(|r| r.ended()).collect(),
        vod_master: Some(master(&summaries, prefix, true)),
        master: (!master_stored).then(|| master(&summaries, prefix, false).0),
        duration_secs: longest(Some(false)).or(longest(None)).unwrap_or(0.0),
        segments: kept.iter().map(|r| r.window.segments().len() as u64).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn desc(name: &str, height: u32, nominal: u64) -> RungDesc {
        RungDesc {
            name: name.into(),
            width: height * 16 / 9,
            height,
            frame_rate: 30.0,
            nominal_bandwidth: nominal,
            passthrough: false,
            video_kbps: (nominal / 1200) as u32,
        }
    }

    fn stored(i: i64, ms: i64, size: u64) -> StoredSegment {
        StoredSegment {
            duration_ms: ms,
            program_date_time: Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap()
                + chrono::Duration::milliseconds(i * 2000),
            size,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            format: SegmentFormat::Ts,
            init: None,
        }
    }

    fn rels(writes: &[Write]) -> Vec<&str> {
        writes.iter().map(|w| w.rel.as_str()).collect()
    }

    #[test]
    fn each_segment_is_stored_under_its_sequence_then_listed_in_the_live_playlist() {
        let mut r = RungPlaylists::new(desc("720p", 720, 3_000_000), 3, 2);
        assert_eq!(r.next_segment(SegmentFormat::Ts), "720p/seg_00000.ts");
        let (entry, live) = r.listed(stored(0, 2000, 500_000));
        assert_eq!(entry.sequence, 0);
        assert_eq!(entry.uri, "seg_00000.ts");
        assert_eq!(r.next_segment(SegmentFormat::Ts), "720p/seg_00001.ts");
        let live = live.expect("a sliding window is stored after every segment");
        assert_eq!(live.rel, "720p/index.m3u8");
        assert_eq!(live.policy, CachePolicy::Live);
        assert_eq!(
            live.text(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:00.000Z\n#EXTINF:2.000,\nseg_00000.ts\n"
        );
        // a lost segment: the next one listed is marked, and only that one
        r.lost();
        let (entry, live) = r.listed(stored(2, 1500, 400_000));
        assert!(entry.discontinuity);
        assert_eq!(entry.sequence, 1, "sequence numbers count stored segments");
        assert_eq!(
            live.unwrap().text(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-TARGETDURATION:2\n\
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:00.000Z\n#EXTINF:2.000,\nseg_00000.ts\n\
#EXT-X-DISCONTINUITY\n\
#EXT-X-PROGRAM-DATE-TIME:2026-12-01T10:00:04.000Z\n#EXTINF:1.500,\nseg_00001.ts\n"
        );
        let (entry, _) = r.listed(stored(3, 2000, 500_000));
        assert!(!entry.discontinuity);
    }

    #[test]
    fn the_master_is_stored_once_every_rung_has_a_segment() {
        let mut hi = RungPlaylists::new(desc("720p", 720, 3_000_000), 6, 2);
        let mut lo = RungPlaylists::new(desc("360p", 360, 1_000_000), 6, 2);
        let mut b = BroadcastPlaylists::new(vec![hi.summary(), lo.summary()]);
        let (e, _) = hi.listed(stored(0, 2000, 500_000));
        let after = b.listed(0, hi.summary(), e, "live/v1");
        assert!(after.master.is_none(), "360p has nothing yet");
        assert!(after.journal.is_none());
        let (e, _) = lo.listed(stored(0, 2000, 125_000));
        let after = b.listed(1, lo.summary(), e, "live/v1");
        let (w, infos) = after.master.expect("every rung has a segment");
        assert_eq!(w.rel, "master.m3u8");
        // live: measured 2 Mbit/s stays at the 3 Mbit/s nominal floor; 500 kbit/s at 1 Mbit/s
        assert_eq!(
            w.text(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30\n720p/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=1000000,AVERAGE-BANDWIDTH=500000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=30\n360p/index.m3u8\n"
        );
        assert_eq!(infos[1].playlist, "live/v1/360p/index.m3u8");
        assert_eq!(infos[0].bandwidth, 3_000_000);
        assert!(after.journal.is_none(), "one segment per rung so far");
        b.master_stored();
        let (e, _) = hi.listed(stored(1, 2000, 500_000));
        let after = b.listed(0, hi.summary(), e, "live/v1");
        assert!(after.master.is_none(), "stored: not asked for again");
        assert!(after.journal.is_none());
        // two segments per rung: the journal is due, with every entry in listing order
        let (e, _) = lo.listed(stored(1, 2000, 125_000));
        let j = b
            .listed(1, lo.summary(), e, "live/v1")
            .journal
            .expect("journal due");
        assert_eq!(j.rel, "journal/000000.json");
        let back: Vec<JournalEntry> = serde_json::from_slice(&j.body).unwrap();
        assert_eq!(
            back.iter()
                .map(|e| (e.rung.as_str(), e.segment.sequence))
                .collect::<Vec<_>>(),
            [("720p", 0), ("360p", 0), ("720p", 1), ("360p", 1)]
        );
        b.journal_stored();
        let (e, _) = hi.listed(stored(2, 2000, 500_000));
        let after = b.listed(0, hi.summary(), e, "live/v1");
        assert!(after.master.is_none() && after.journal.is_none());
        assert_eq!(b.journal_write().unwrap().rel, "journal/000001.json");
    }

    #[test]
    fn a_master_not_stored_is_asked_for_again() {
        let mut r = RungPlaylists::new(desc("240p", 240, 600_000), 6, 2);
        let mut b = BroadcastPlaylists::new(vec![r.summary()]);
        let (e, _) = r.listed(stored(0, 2000, 100_000));
        assert!(b.listed(0, r.summary(), e, "p").master.is_some());
        let (e, _) = r.listed(stored(1, 2000, 100_000));
        assert!(
            b.listed(0, r.summary(), e, "p").master.is_some(),
            "the write failed: still due"
        );
    }

    #[test]
    fn the_end_writes_final_playlists_a_vod_master_and_the_recording_length() {
        let mut hi = RungPlaylists::new(desc("720p", 720, 3_000_000), 3, 2);
        let lo = RungPlaylists::new(desc("360p", 360, 1_000_000), 3, 2);
        for i in 0..4 {
            hi.listed(stored(i, 2000, 1_000_000));
        }
        hi.listed(stored(4, 967, 100_000));
        let end = ending(&[hi, lo], "live/v1", true);
        // the rung with no segment is left out
        assert_eq!(end.rungs.len(), 1);
        assert_eq!(rels(&end.rungs[0]), ["720p/index.m3u8", "720p/vod.m3u8"]);
        let ended = end.rungs[0][0].text();
        assert!(ended.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{ended}");
        assert!(ended.ends_with("#EXTINF:0.967,\nseg_00004.ts\n#EXT-X-ENDLIST\n"));
        let vod = end.rungs[0][1].text();
        assert!(vod.contains("#EXT-X-PLAYLIST-TYPE:VOD\n") && vod.contains("seg_00000.ts"));
        let (w, infos) = end.vod_master.unwrap();
        // VOD: measured figures (peak 4 Mbit/s, average 8.8 Mbit / 8.967 s)
        assert_eq!(
            w.text(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
#EXT-X-STREAM-INF:BANDWIDTH=4000000,AVERAGE-BANDWIDTH=3657857,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=30\n720p/vod.m3u8\n"
        );
        assert_eq!(infos[0].playlist, "live/v1/720p/vod.m3u8");
        assert!(end.master.is_none(), "stored while live");
        assert!((end.duration_secs - 8.967).abs() < 1e-9);
        assert_eq!(end.segments, 5);
    }

    #[test]
    fn an_ending_with_nothing_stored_writes_nothing_and_a_missing_master_is_written() {
        let none = ending(
            &[RungPlaylists::new(desc("720p", 720, 1), 3, 2)],
            "p",
            false,
        );
        assert!(none.rungs.is_empty() && none.vod_master.is_none() && none.master.is_none());
        let mut r = RungPlaylists::new(desc("720p", 720, 3_000_000), 3, 2);
        r.listed(stored(0, 2000, 100));
        let end = ending(&[r], "p", false);
        assert_eq!(end.master.unwrap().rel, "master.m3u8");
    }

    #[test]
    fn passthrough_rungs_count_for_the_length_only_without_encoded_ones() {
        let mut src = RungPlaylists::new(
            RungDesc {
                passthrough: true,
                ..desc("source", 1080, 5_000_000)
            },
            3,
            2,
        );
        let mut enc = RungPlaylists::new(desc("360p", 360, 1_000_000), 3, 2);
        src.listed(stored(0, 4000, 100));
        enc.listed(stored(0, 2000, 100));
        let both = ending(&[src.clone(), enc], "p", true);
        assert!((both.duration_secs - 2.0).abs() < 1e-9);
        let alone = ending(&[src], "p", true);
        assert!((alone.duration_secs - 4.0).abs() < 1e-9);
    }

    #[test]
    fn restored_entries_continue_the_sequence_and_mark_gaps() {
        let mut r = RungPlaylists::new(desc("240p", 240, 1), 6, 2);
        let (mut e, _) = r.clone().listed(stored(0, 2000, 1));
        r.restore(e.clone());
        e.sequence = 3;
        r.restore(e);
        assert_eq!(r.next_segment(SegmentFormat::Ts), "240p/seg_00004.ts");
        assert!(r.window.segments()[1].discontinuity);
    }
}
