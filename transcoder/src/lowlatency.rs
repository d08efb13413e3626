//! Low-latency HLS (RFC 8216bis, sections 4.4.4.9, 4.4.5.2 and 6.2.5): a broadcast's live
//! edge held in memory, for a live origin to serve.
//!
//! Each rung's segmenter hands its CMAF fragments here as they are cut (parts, about half a
//! second each) and says when a segment is complete; a segment is the concatenation of its
//! parts, byte for byte the object the uploader stores for the recording. [`LlStream`]
//! renders the live media playlists with EXT-X-PART, EXT-X-PRELOAD-HINT, EXT-X-SERVER-CONTROL
//! and EXT-X-RENDITION-REPORT, answers blocking playlist reloads (`_HLS_msn`, `_HLS_part`),
//! delta updates (`_HLS_skip`) and blocking part requests, and keeps a window of segments (and
//! the parts of the newest of them) so nothing it lists is gone before a player can fetch it.
//!
//! The playlists are written by hand: m3u8-rs 6 has none of these tags, and the segment in
//! progress (parts with no URI line yet) is not a `MediaSegment` it can express.
//!
//! Names, relative to a rung's folder (`<prefix>/<rung>/`):
//! `ll.m3u8` (media playlist), `ll_<msn>.m4s` (segment), `ll_<msn>_<part>.m4s` (part),
//! `ll_<init>` (the init section, `init_<hash>.mp4` as stored); and `<prefix>/ll.m3u8`, the
//! master playlist over the rungs' `ll.m3u8`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::watch;

use crate::RenditionInfo;

/// Segments a live LL playlist lists (and the origin keeps), and how many of the newest keep
/// their parts listed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlSettings {
    /// Part Target Duration, ms.
    pub part_ms: i64,
    /// Target segment duration, s (EXT-X-TARGETDURATION).
    pub target_secs: u64,
    /// Segment duration the segmenter cuts at (the keyframe grid), ms.
    pub segment_ms: i64,
    /// Complete segments listed (and held) per rung.
    pub window: usize,
}

impl LlSettings {
    /// The Advance Part Limit (RFC 8216bis 6.2.5.2): how far past the newest part a blocking
    /// request may ask before it is refused.
    fn advance_part_limit(&self) -> usize {
        if self.part_ms < 1000 {
            (3000 / self.part_ms.max(1)) as usize
        } else {
            3
        }
    }

    /// How long a blocking request is held: three target durations.
    pub fn block_timeout(&self) -> Duration {
        Duration::from_secs(self.target_secs.max(1) * 3)
    }

    /// Segments not listed in a delta update are older than this from the playlist's end, s
    /// (CAN-SKIP-UNTIL: six target durations, the spec's minimum).
    fn skip_until_secs(&self) -> f64 {
        (self.target_secs.max(1) * 6) as f64
    }

    /// Whether a segment of this length is complete by the grid: the next part will start the
    /// next segment (parts of encoded rungs end exactly on it).
    fn full(&self, duration_ms: i64) -> bool {
        duration_ms + self.part_ms / 2 >= self.segment_ms
    }

    /// Segments from the end whose parts stay listed: those within three target durations.
    fn parts_listed(&self) -> usize {
        3
    }
}

/// A part: one CMAF fragment (`moof` + `mdat`).
#[derive(Debug, Clone)]
pub struct Part {
    pub bytes: Bytes,
    pub duration_ms: i64,
    /// It starts with a keyframe (INDEPENDENT=YES).
    pub independent: bool,
}

#[derive(Debug, Clone)]
struct Segment {
    msn: u64,
    program_date_time: DateTime<Utc>,
    discontinuity: bool,
    init: String,
    parts: Vec<Part>,
}

impl Segment {
    fn duration_ms(&self) -> i64 {
        self.parts.iter().map(|p| p.duration_ms).sum()
    }
}

#[derive(Debug)]
struct Rung {
    name: String,
    /// Complete segments, oldest first, with their bytes.
    done: VecDeque<(Segment, Bytes)>,
    /// The segment whose parts are being cut.
    current: Option<Segment>,
    next_msn: u64,
    /// The next segment starts a new take (or follows a gap).
    discontinuity_pending: bool,
    /// Discontinuities that slid out of the window.
    discontinuity_sequence: u64,
    /// Init sections by name (the newest few).
    inits: VecDeque<(String, Bytes)>,
}

impl Rung {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            done: VecDeque::new(),
            current: None,
            next_msn: 0,
            discontinuity_pending: false,
            discontinuity_sequence: 0,
            inits: VecDeque::new(),
        }
    }

    /// The newest msn and the number of its parts (None: nothing yet).
    fn last(&self) -> Option<(u64, usize)> {
        match &self.current {
            Some(c) if !c.parts.is_empty() => Some((c.msn, c.parts.len())),
            _ => self.done.back().map(|(s, _)| (s.msn, s.parts.len())),
        }
    }

    fn last_complete(&self) -> Option<u64> {
        self.done.back().map(|(s, _)| s.msn)
    }

    fn segment(&self, msn: u64) -> Option<&(Segment, Bytes)> {
        let first = self.done.front()?.0.msn;
        self.done.get(msn.checked_sub(first)? as usize)
    }

    /// Whether the playlist already holds segment `msn` (complete), or with `part`, that part
    /// (a part index past the segment's last part means the next segment's first part).
    fn holds(&self, msn: u64, part: Option<usize>) -> bool {
        let complete = self.last_complete().is_some_and(|c| c >= msn);
        match part {
            None => complete,
            Some(p) => {
                if let Some(c) = &self.current {
                    if c.msn == msn && p < c.parts.len() {
                        return true;
                    }
                    if c.msn == msn + 1 && !c.parts.is_empty() {
                        return true;
                    }
                }
                match self.segment(msn) {
                    Some((s, _)) => p < s.parts.len() || self.last_complete() > Some(msn),
                    // older than the window, or complete and gone: nothing to wait for
                    None => complete,
                }
            }
        }
    }
}

#[derive(Debug)]
struct State {
    rungs: Vec<Rung>,
    renditions: Vec<RenditionInfo>,
    ended: bool,
}

/// Why a blocking request was not answered with a playlist or a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlError {
    /// No such rung, segment or part (or not any more).
    NotFound,
    /// `_HLS_part` without `_HLS_msn`, or a request too far ahead (RFC 8216bis 6.2.5.2): 400.
    BadRequest(&'static str),
    /// Not there within three target durations: 503.
    Timeout,
}

/// A blocking playlist request (`_HLS_msn`, `_HLS_part`, `_HLS_skip`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reload {
    pub msn: Option<u64>,
    pub part: Option<usize>,
    /// `_HLS_skip=YES`: a delta update.
    pub skip: bool,
}

/// One broadcast's live edge.
pub struct LlStream {
    settings: LlSettings,
    state: Mutex<State>,
    /// Bumped on every change; blocking requests wait on it.
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for LlStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlStream")
            .field("settings", &self.settings)
            .finish()
    }
}

impl LlStream {
    pub fn new(settings: LlSettings) -> Self {
        Self {
            settings,
            state: Mutex::new(State {
                rungs: Vec::new(),
                renditions: Vec::new(),
                ended: false,
            }),
            changed: watch::channel(0).0,
        }
    }

    pub fn settings(&self) -> LlSettings {
        self.settings
    }

    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.state.lock().expect("ll state lock"));
        self.changed.send_modify(|v| *v += 1);
        r
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().expect("ll state lock"))
    }

    /// A part of `rung`'s segment in progress (the first part starts the segment, at
    /// `program_date_time`), needing the init section `init` (its bytes kept by name).
    pub fn part(
        &self,
        rung: &str,
        init: (&str, &Bytes),
        program_date_time: DateTime<Utc>,
        part: Part,
    ) {
        self.update(|st| {
            let r = match st.rungs.iter().position(|r| r.name == rung) {
                Some(i) => &mut st.rungs[i],
                None => {
                    st.rungs.push(Rung::new(rung));
                    st.rungs.last_mut().expect("just pushed")
                }
            };
            if !r.inits.iter().any(|(n, _)| n == init.0) {
                r.inits.push_back((init.0.to_string(), init.1.clone()));
                while r.inits.len() > 4 {
                    r.inits.pop_front();
                }
            }
            let msn = r.next_msn;
            let discontinuity = r.discontinuity_pending;
            let cur = r.current.get_or_insert_with(|| Segment {
                msn,
                program_date_time,
                discontinuity,
                init: init.0.to_string(),
                parts: Vec::new(),
            });
            cur.parts.push(part);
        });
        metrics::counter!("caudal_ll_parts_total").increment(1);
    }

    /// `rung`'s segment in progress is complete.
    pub fn segment_end(&self, rung: &str) {
        let window = self.settings.window.max(1);
        self.update(|st| {
            let Some(r) = st.rungs.iter_mut().find(|r| r.name == rung) else {
                return;
            };
            let Some(mut seg) = r.current.take() else {
                return;
            };
            let mut bytes = BytesMut::with_capacity(seg.parts.iter().map(|p| p.bytes.len()).sum());
            for p in &seg.parts {
                bytes.extend_from_slice(&p.bytes);
            }
            let bytes = bytes.freeze();
            // the parts become views of the segment: its window holds every byte once
            let mut at = 0;
            for p in &mut seg.parts {
                let len = p.bytes.len();
                p.bytes = bytes.slice(at..at + len);
                at += len;
            }
            r.next_msn = seg.msn + 1;
            r.discontinuity_pending = false;
            r.done.push_back((seg, bytes));
            while r.done.len() > window {
                if let Some((old, _)) = r.done.pop_front() {
                    if old.discontinuity {
                        r.discontinuity_sequence += 1;
                    }
                }
            }
        });
    }

    /// Media of `rung` was skipped: its next segment does not continue the last one.
    pub fn gap(&self, rung: &str) {
        self.update(|st| {
            if let Some(r) = st.rungs.iter_mut().find(|r| r.name == rung) {
                r.current = None;
                r.discontinuity_pending = true;
            }
        });
    }

    /// A new take begins (the publisher reconnected): segments in progress are dropped, the
    /// next segment of every rung is a discontinuity, and the rungs continue from one msn.
    pub fn take_break(&self) {
        self.update(|st| {
            let next = st.rungs.iter().map(|r| r.next_msn).max().unwrap_or(0);
            for r in &mut st.rungs {
                r.current = None;
                r.next_msn = next;
                r.discontinuity_pending = !r.done.is_empty();
            }
        });
    }

    /// The renditions the master playlist lists (once the live master is stored).
    pub fn set_renditions(&self, renditions: Vec<RenditionInfo>) {
        self.update(|st| st.renditions = renditions);
    }

    /// No part follows: the playlists end (EXT-X-ENDLIST), blocked requests are answered.
    pub fn end(&self) {
        self.update(|st| {
            st.ended = true;
            for r in &mut st.rungs {
                r.current = None;
            }
        });
    }

    pub fn ended(&self) -> bool {
        self.read(|st| st.ended)
    }

    /// The master playlist over every rung's `ll.m3u8`; None until the renditions are known.
    pub fn master(&self) -> Option<String> {
        self.read(|st| {
            if st.renditions.is_empty() {
                return None;
            }
            let infos: Vec<RenditionInfo> = st
                .renditions
                .iter()
                .map(|r| RenditionInfo {
                    playlist: format!("{}/ll.m3u8", r.name),
                    ..r.clone()
                })
                .collect();
            Some(crate::playlist::render_master(&infos))
        })
    }

    /// The media playlist of `rung` as it is now.
    pub fn playlist(&self, rung: &str, skip: bool) -> Result<String, LlError> {
        self.read(|st| render(st, &self.settings, rung, skip))
    }

    /// Checks a blocking request against the playlist as it is: Ok(true) when it can be
    /// answered now.
    fn reachable(
        &self,
        st: &State,
        rung: &str,
        msn: u64,
        part: Option<usize>,
    ) -> Result<bool, LlError> {
        let r = st
            .rungs
            .iter()
            .find(|r| r.name == rung)
            .ok_or(LlError::NotFound)?;
        if st.ended || r.holds(msn, part) {
            return Ok(true);
        }
        let (last_msn, last_parts) = r.last().unwrap_or((0, 0));
        if msn > last_msn + 2 {
            return Err(LlError::BadRequest(
                "_HLS_msn is more than two segments ahead",
            ));
        }
        if let Some(p) = part {
            let ahead = if msn == last_msn {
                p.saturating_sub(last_parts.saturating_sub(1))
            } else {
                // parts of later segments count after the newest part
                let per_segment = (self.settings.target_secs as i64 * 1000
                    / self.settings.part_ms.max(1)) as usize;
                (msn - last_msn) as usize * per_segment.max(1) + p + 1 - last_parts.min(per_segment)
            };
            if ahead > self.settings.advance_part_limit() {
                return Err(LlError::BadRequest(
                    "_HLS_part is past the Advance Part Limit",
                ));
            }
        }
        Ok(false)
    }

    /// Waits until `rung`'s playlist holds what `reload` asks for (at most three target
    /// durations), then renders it.
    pub async fn blocking_playlist(&self, rung: &str, reload: Reload) -> Result<String, LlError> {
        let Some(msn) = reload.msn else {
            if reload.part.is_some() {
                return Err(LlError::BadRequest("_HLS_part without _HLS_msn"));
            }
            return self.playlist(rung, reload.skip);
        };
        self.wait(|st| self.reachable(st, rung, msn, reload.part))
            .await?;
        self.playlist(rung, reload.skip)
    }

    async fn wait(&self, ready: impl Fn(&State) -> Result<bool, LlError>) -> Result<(), LlError> {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + self.settings.block_timeout();
        loop {
            rx.borrow_and_update();
            if self.read(&ready)? {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) | Err(_) => return Err(LlError::Timeout),
            }
        }
    }

    /// A complete segment's bytes.
    pub fn segment(&self, rung: &str, msn: u64) -> Result<Bytes, LlError> {
        self.read(|st| {
            let r = st
                .rungs
                .iter()
                .find(|r| r.name == rung)
                .ok_or(LlError::NotFound)?;
            r.segment(msn)
                .map(|(_, b)| b.clone())
                .ok_or(LlError::NotFound)
        })
    }

    /// A part, if it exists; Ok(None) for the part a preload hint names (the next one of the
    /// segment in progress, or the first of the next segment), which is worth waiting for.
    fn part_now(
        st: &State,
        settings: &LlSettings,
        rung: &str,
        msn: u64,
        part: usize,
    ) -> Result<Option<Bytes>, LlError> {
        let r = st
            .rungs
            .iter()
            .find(|r| r.name == rung)
            .ok_or(LlError::NotFound)?;
        if let Some(c) = r.current.as_ref().filter(|c| c.msn == msn) {
            return match c.parts.get(part) {
                Some(p) => Ok(Some(p.bytes.clone())),
                None if part == c.parts.len() && !st.ended => Ok(None),
                None => Err(LlError::NotFound),
            };
        }
        // the first part of the segment after one complete by the grid (what the hint names)
        if let Some(c) = r.current.as_ref() {
            if c.msn + 1 == msn && part == 0 && settings.full(c.duration_ms()) && !st.ended {
                return Ok(None);
            }
        }
        if let Some((s, _)) = r.segment(msn) {
            return s
                .parts
                .get(part)
                .map(|p| Some(p.bytes.clone()))
                .ok_or(LlError::NotFound);
        }
        if msn == r.next_msn && r.current.is_none() && part == 0 && !st.ended {
            return Ok(None);
        }
        Err(LlError::NotFound)
    }

    /// A part's bytes. The part a preload hint names is held for until it exists (at most
    /// three target durations); any other part that does not exist is not found at once.
    pub async fn part_bytes(&self, rung: &str, msn: u64, part: usize) -> Result<Bytes, LlError> {
        let s = &self.settings;
        self.wait(|st| Ok(Self::part_now(st, s, rung, msn, part)?.is_some()))
            .await?;
        self.read(|st| Self::part_now(st, s, rung, msn, part))?
            .ok_or(LlError::NotFound)
    }

    /// An init section a playlist names.
    pub fn init(&self, rung: &str, name: &str) -> Result<Bytes, LlError> {
        self.read(|st| {
            let r = st
                .rungs
                .iter()
                .find(|r| r.name == rung)
                .ok_or(LlError::NotFound)?;
            r.inits
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.clone())
                .ok_or(LlError::NotFound)
        })
    }
}

fn secs(ms: i64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

fn date(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn part_line(out: &mut String, msn: u64, i: usize, p: &Part) {
    let _ = write!(
        out,
        "#EXT-X-PART:DURATION={},URI=\"ll_{msn:05}_{i}.m4s\"",
        secs(p.duration_ms)
    );
    if p.independent {
        out.push_str(",INDEPENDENT=YES");
    }
    out.push('\n');
}

fn render(st: &State, s: &LlSettings, rung: &str, skip: bool) -> Result<String, LlError> {
    let r = st
        .rungs
        .iter()
        .find(|r| r.name == rung)
        .ok_or(LlError::NotFound)?;
    let target = r
        .done
        .iter()
        .map(|(seg, _)| ((seg.duration_ms() + 999) / 1000) as u64)
        .max()
        .unwrap_or(0)
        .max(s.target_secs);
    let part_target = secs(s.part_ms);
    let mut out = String::new();
    out.push_str("#EXTM3U\n#EXT-X-VERSION:9\n");
    let _ = writeln!(out, "#EXT-X-TARGETDURATION:{target}");
    let _ = writeln!(
        out,
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={:.1},PART-HOLD-BACK={}",
        s.skip_until_secs(),
        secs(s.part_ms * 3)
    );
    let _ = writeln!(out, "#EXT-X-PART-INF:PART-TARGET={part_target}");
    let first_msn = r
        .done
        .front()
        .map(|(seg, _)| seg.msn)
        .or(r.current.as_ref().map(|c| c.msn))
        .unwrap_or(r.next_msn);
    let _ = writeln!(out, "#EXT-X-MEDIA-SEQUENCE:{first_msn}");
    let mut disc_seq = r.discontinuity_sequence;
    // a delta update leaves out the oldest segments that end more than CAN-SKIP-UNTIL before
    // the playlist's end
    let mut skipped = 0usize;
    if skip {
        let total: i64 = r.done.iter().map(|(seg, _)| seg.duration_ms()).sum::<i64>()
            + r.current.as_ref().map_or(0, |c| c.duration_ms());
        let mut after = total;
        for (seg, _) in &r.done {
            after -= seg.duration_ms();
            if (after as f64) < s.skip_until_secs() * 1000.0 {
                break;
            }
            skipped += 1;
        }
    }
    if skipped > 0 {
        // the discontinuities skipped still count
        disc_seq += r
            .done
            .iter()
            .take(skipped)
            .filter(|(seg, _)| seg.discontinuity)
            .count() as u64;
    }
    if disc_seq > 0 {
        let _ = writeln!(out, "#EXT-X-DISCONTINUITY-SEQUENCE:{disc_seq}");
    }
    if skipped > 0 {
        let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
    }
    let with_parts_from = r.done.len().saturating_sub(s.parts_listed());
    let mut map: Option<&str> = None;
    for (i, (seg, _)) in r.done.iter().enumerate().skip(skipped) {
        segment_head(&mut out, seg, &mut map);
        if i >= with_parts_from {
            for (n, p) in seg.parts.iter().enumerate() {
                part_line(&mut out, seg.msn, n, p);
            }
        }
        let _ = writeln!(
            out,
            "#EXTINF:{},\nll_{:05}.m4s",
            secs(seg.duration_ms()),
            seg.msn
        );
    }
    if st.ended {
        out.push_str("#EXT-X-ENDLIST\n");
        return Ok(out);
    }
    let (hint_msn, hint_part) = match &r.current {
        Some(cur) => {
            segment_head(&mut out, cur, &mut map);
            for (n, p) in cur.parts.iter().enumerate() {
                part_line(&mut out, cur.msn, n, p);
            }
            if s.full(cur.duration_ms()) {
                // the segment ends at the grid: the next part is the next segment's first
                (cur.msn + 1, 0)
            } else {
                (cur.msn, cur.parts.len())
            }
        }
        None => (r.next_msn, 0),
    };
    let _ = writeln!(
        out,
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ll_{hint_msn:05}_{hint_part}.m4s\""
    );
    for other in st.rungs.iter().filter(|o| o.name != r.name) {
        if let Some((msn, parts)) = other.last() {
            let _ = writeln!(
                out,
                "#EXT-X-RENDITION-REPORT:URI=\"../{}/ll.m3u8\",LAST-MSN={msn},LAST-PART={}",
                other.name,
                parts.saturating_sub(1)
            );
        }
    }
    Ok(out)
}

/// A segment's tags before its parts: EXT-X-DISCONTINUITY, EXT-X-MAP where the init section
/// changes, EXT-X-PROGRAM-DATE-TIME.
fn segment_head<'a>(out: &mut String, seg: &'a Segment, map: &mut Option<&'a str>) {
    if seg.discontinuity {
        out.push_str("#EXT-X-DISCONTINUITY\n");
    }
    if *map != Some(seg.init.as_str()) {
        let _ = writeln!(out, "#EXT-X-MAP:URI=\"ll_{}\"", seg.init);
        *map = Some(seg.init.as_str());
    }
    let _ = writeln!(
        out,
        "#EXT-X-PROGRAM-DATE-TIME:{}",
        date(&seg.program_date_time)
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use chrono::TimeZone;

    const SETTINGS: LlSettings = LlSettings {
        part_ms: 500,
        target_secs: 2,
        segment_ms: 2000,
        window: 3,
    };

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    fn init() -> Bytes {
        Bytes::from_static(b"init")
    }

    /// `n` parts of 500 ms into `rung`, the first independent when it starts a segment.
    fn parts(ll: &LlStream, rung: &str, at_ms: &mut i64, n: usize) {
        for _ in 0..n {
            let independent = *at_ms % 2000 == 0;
            ll.part(
                rung,
                ("init_a.mp4", &init()),
                t0() + chrono::Duration::milliseconds(*at_ms),
                Part {
                    bytes: Bytes::from(format!("{rung}@{at_ms}")),
                    duration_ms: 500,
                    independent,
                },
            );
            *at_ms += 500;
        }
    }

    /// Whole segments of 4 parts each.
    fn segments(ll: &LlStream, rung: &str, at_ms: &mut i64, n: usize) {
        for _ in 0..n {
            parts(ll, rung, at_ms, 4);
            ll.segment_end(rung);
        }
    }

    #[test]
    fn a_playlist_lists_parts_a_preload_hint_and_the_other_rungs() {
        let ll = LlStream::new(SETTINGS);
        let (mut a, mut b) = (0, 0);
        segments(&ll, "720p", &mut a, 4);
        parts(&ll, "720p", &mut a, 2);
        segments(&ll, "360p", &mut b, 4);
        parts(&ll, "360p", &mut b, 1);
        let text = ll.playlist("720p", false).unwrap();
        let mut expected = String::from(
            "#EXTM3U\n\
             #EXT-X-VERSION:9\n\
             #EXT-X-TARGETDURATION:2\n\
             #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.0,PART-HOLD-BACK=1.500\n\
             #EXT-X-PART-INF:PART-TARGET=0.500\n\
             #EXT-X-MEDIA-SEQUENCE:1\n\
             #EXT-X-MAP:URI=\"ll_init_a.mp4\"\n",
        );
        // window 3: segments 1..=3, every one within three target durations keeps its parts
        for msn in 1..=3u64 {
            let start = msn as i64 * 2000;
            expected.push_str(&format!(
                "#EXT-X-PROGRAM-DATE-TIME:{}\n",
                date(&(t0() + chrono::Duration::milliseconds(start)))
            ));
            for p in 0..4 {
                expected.push_str(&format!(
                    "#EXT-X-PART:DURATION=0.500,URI=\"ll_{msn:05}_{p}.m4s\"{}\n",
                    if p == 0 { ",INDEPENDENT=YES" } else { "" }
                ));
            }
            expected.push_str(&format!("#EXTINF:2.000,\nll_{msn:05}.m4s\n"));
        }
        expected.push_str(
            "#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:08.000Z\n\
             #EXT-X-PART:DURATION=0.500,URI=\"ll_00004_0.m4s\",INDEPENDENT=YES\n\
             #EXT-X-PART:DURATION=0.500,URI=\"ll_00004_1.m4s\"\n\
             #EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ll_00004_2.m4s\"\n\
             #EXT-X-RENDITION-REPORT:URI=\"../360p/ll.m3u8\",LAST-MSN=4,LAST-PART=0\n",
        );
        assert_eq!(text, expected);
        // m3u8-rs reads it as a media playlist (the LL tags as tags it does not know)
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).expect("parses");
        assert_eq!(parsed.media_sequence, 1);
        assert_eq!(parsed.segments.len(), 3);
        // a segment is its parts, byte for byte
        assert_eq!(
            ll.segment("720p", 3).unwrap(),
            Bytes::from("720p@6000720p@6500720p@7000720p@7500")
        );
        assert_eq!(ll.segment("720p", 0), Err(LlError::NotFound));
        assert_eq!(ll.segment("720p", 4), Err(LlError::NotFound));
        assert_eq!(ll.init("720p", "init_a.mp4").unwrap(), init());
        assert_eq!(ll.playlist("1080p", false), Err(LlError::NotFound));
    }

    #[test]
    fn older_segments_drop_their_parts_and_a_delta_update_skips_them() {
        let ll = LlStream::new(LlSettings {
            window: 10,
            ..SETTINGS
        });
        let mut at = 0;
        segments(&ll, "720p", &mut at, 10);
        parts(&ll, "720p", &mut at, 1);
        let full = ll.playlist("720p", false).unwrap();
        assert!(full.contains("#EXT-X-MEDIA-SEQUENCE:0\n"), "{full}");
        assert_eq!(full.matches("#EXTINF:").count(), 10);
        // parts for the last three complete segments and the one in progress only
        assert_eq!(full.matches("#EXT-X-PART:").count(), 3 * 4 + 1, "{full}");
        assert!(!full.contains("ll_00006_0.m4s"));
        assert!(full.contains("ll_00007_0.m4s"));
        let delta = ll.playlist("720p", true).unwrap();
        // 20.5 s listed; segments 0..=3 end 12.5 s or more before the end: skipped
        assert!(
            delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=4\n"),
            "{delta}"
        );
        assert!(delta.contains("#EXT-X-MEDIA-SEQUENCE:0\n"));
        assert_eq!(delta.matches("#EXTINF:").count(), 6);
        assert!(!delta.contains("ll_00003.m4s") && delta.contains("ll_00004.m4s"));
        // the first segment listed still has its init section
        assert!(delta.contains("#EXT-X-MAP:URI=\"ll_init_a.mp4\"\n"));
    }

    #[tokio::test]
    async fn a_blocking_reload_returns_once_the_part_exists() {
        let ll = Arc::new(LlStream::new(SETTINGS));
        let mut at = 0;
        segments(&ll, "720p", &mut at, 1);
        parts(&ll, "720p", &mut at, 1);
        // the part after the newest: held
        let waiting = tokio::spawn({
            let ll = ll.clone();
            async move {
                ll.blocking_playlist(
                    "720p",
                    Reload {
                        msn: Some(1),
                        part: Some(1),
                        skip: false,
                    },
                )
                .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "answered before the part existed");
        parts(&ll, "720p", &mut at, 1);
        let text = waiting.await.unwrap().unwrap();
        assert!(text.contains("URI=\"ll_00001_1.m4s\""), "{text}");
        assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ll_00001_2.m4s\"\n"));
        // what exists already is answered at once; a part past a complete segment's last
        // means the next segment's first
        let now = Reload {
            msn: Some(0),
            part: Some(9),
            skip: false,
        };
        let early = tokio::time::timeout(
            Duration::from_millis(100),
            ll.blocking_playlist("720p", now),
        );
        assert!(early.await.expect("answered at once").is_ok());
    }

    #[tokio::test]
    async fn requests_too_far_ahead_are_refused_at_once_and_the_rest_time_out() {
        let ll = LlStream::new(SETTINGS);
        let mut at = 0;
        segments(&ll, "720p", &mut at, 2);
        parts(&ll, "720p", &mut at, 1);
        let ask = |msn: Option<u64>, part: Option<usize>| Reload {
            msn,
            part,
            skip: false,
        };
        // the newest is msn 2: msn 5 is more than two ahead
        assert!(matches!(
            ll.blocking_playlist("720p", ask(Some(5), None)).await,
            Err(LlError::BadRequest(_))
        ));
        // the Advance Part Limit is 3 / 0.5 = 6 parts past the newest (part 0)
        assert!(matches!(
            ll.blocking_playlist("720p", ask(Some(2), Some(7))).await,
            Err(LlError::BadRequest(_))
        ));
        assert!(matches!(
            ll.blocking_playlist("720p", ask(None, Some(1))).await,
            Err(LlError::BadRequest(_))
        ));
        // within the limit but never made: 503 after three target durations
        tokio::time::pause();
        let started = tokio::time::Instant::now();
        assert_eq!(
            ll.blocking_playlist("720p", ask(Some(2), Some(6))).await,
            Err(LlError::Timeout)
        );
        // (virtual time: the clock is paused, so this is the timeout itself, not a measurement)
        let held = started.elapsed();
        assert!(
            held >= Duration::from_secs(6) && held < Duration::from_secs(7),
            "{held:?}"
        );
    }

    #[tokio::test]
    async fn the_hinted_part_is_held_for_and_others_are_not_found() {
        let ll = Arc::new(LlStream::new(SETTINGS));
        let mut at = 0;
        parts(&ll, "720p", &mut at, 2);
        assert_eq!(
            ll.part_bytes("720p", 0, 1).await.unwrap(),
            Bytes::from("720p@500")
        );
        assert_eq!(ll.part_bytes("720p", 0, 3).await, Err(LlError::NotFound));
        assert_eq!(ll.part_bytes("720p", 1, 0).await, Err(LlError::NotFound));
        let hinted = tokio::spawn({
            let ll = ll.clone();
            async move { ll.part_bytes("720p", 0, 2).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!hinted.is_finished());
        parts(&ll, "720p", &mut at, 1);
        assert_eq!(hinted.await.unwrap().unwrap(), Bytes::from("720p@1000"));
        // the segment ends after 3 parts: a request for its part 3 is not found, and part 0 of
        // the next is what the hint names
        let late = tokio::spawn({
            let ll = ll.clone();
            async move { ll.part_bytes("720p", 0, 3).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        ll.segment_end("720p");
        assert_eq!(late.await.unwrap(), Err(LlError::NotFound));
        let text = ll.playlist("720p", false).unwrap();
        assert!(
            text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ll_00001_0.m4s\"\n"),
            "{text}"
        );
    }

    #[test]
    fn a_new_take_is_a_discontinuity_on_one_msn_and_the_end_is_final() {
        let ll = LlStream::new(SETTINGS);
        let (mut a, mut b) = (0, 0);
        segments(&ll, "720p", &mut a, 2);
        parts(&ll, "720p", &mut a, 2);
        segments(&ll, "360p", &mut b, 1);
        ll.take_break();
        // both rungs go on at msn 2; the parts in progress are gone
        let mut at = 10_000;
        segments(&ll, "720p", &mut at, 1);
        let mut at = 10_000;
        segments(&ll, "360p", &mut at, 1);
        let text = ll.playlist("360p", false).unwrap();
        assert!(
            text.contains(
                "#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:2026-12-01T12:00:10.000Z\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("ll_00002.m4s") && !text.contains("ll_00001.m4s"),
            "{text}"
        );
        assert!(ll
            .playlist("720p", false)
            .unwrap()
            .contains("\nll_00002.m4s\n"));
        ll.end();
        let done = ll.playlist("720p", false).unwrap();
        assert!(done.ends_with("ll_00002.m4s\n#EXT-X-ENDLIST\n"), "{done}");
        assert!(!done.contains("PRELOAD-HINT") && !done.contains("RENDITION-REPORT"));
    }

    #[test]
    fn the_master_lists_every_rungs_ll_playlist_once_known() {
        let ll = LlStream::new(SETTINGS);
        assert_eq!(ll.master(), None);
        ll.set_renditions(vec![RenditionInfo {
            name: "720p".into(),
            width: 1280,
            height: 720,
            bandwidth: 3_000_000,
            average_bandwidth: None,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            frame_rate: 30.0,
            playlist: "live/v1/720p/index.m3u8".into(),
            passthrough: false,
        }]);
        let master = ll.master().unwrap();
        assert!(master.contains("\n720p/ll.m3u8\n"), "{master}");
        assert!(!master.contains("index.m3u8"));
    }
}
