//! Cuts a rung's packets into segments at keyframes on the segment-duration grid, writes
//! them (and a sidecar) to the spool folder and hands them to the uploader.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use ff::{codec, Packet};
use ffmpeg_next as ff;
use tokio::sync::mpsc::Sender as AsyncSender;

use super::{grid_next, SegmentReady, UploadJob};
use crate::av::{self, AvError};
use crate::codecs;
use crate::ladder::RungDesc;
use crate::lowlatency::{LlStream, Part};
use crate::spool::SpoolMeter;
use crate::{LiveConfig, SegmentFormat};

/// Cuts a rung's packets into segments at keyframes on the segment-duration grid.
pub(super) struct Segmenter {
    rung: usize,
    target_ms: i64,
    format: SegmentFormat,
    dir: PathBuf,
    pub(super) video_params: Option<codec::Parameters>,
    pub(super) video_codec: Option<String>,
    pub(super) audio_params: Option<codec::Parameters>,
    pub(super) audio_codec: Option<String>,
    start_ms: Option<i64>,
    video: Vec<Packet>,
    audio: VecDeque<Packet>,
    last_pts: i64,
    frame_ms: i64,
    sequence: u64,
    out: AsyncSender<UploadJob>,
    dropped_before_key: u64,
    origin: DateTime<Utc>,
    desc: RungDesc,
    meter: Arc<SpoolMeter>,
    /// Segments dropped since the last one written (spool full), or media skipped while
    /// waiting for a keyframe after a forced cut.
    lost: u64,
    /// A segment longer than this without a keyframe is cut, ms.
    max_ms: i64,
    /// Nor may it hold more video packets than this (timestamps that stand still).
    max_packets: usize,
    /// Low-latency HLS: the segment is cut into parts as it grows.
    parts: Option<Parts>,
}

/// A segment cut into parts (CMAF fragments) as it grows; the segment is their concatenation.
struct Parts {
    ll: Arc<LlStream>,
    part_ms: i64,
    /// Where the part in progress starts, ms.
    start_ms: Option<i64>,
    /// The parts of the segment in progress, concatenated.
    media: Vec<u8>,
    /// The init section the parts need: its name and bytes.
    init: Option<(String, Bytes)>,
    /// H.264 SPS and PPS of the latest keyframe (a part without a keyframe needs them too).
    parameter_sets: Option<Vec<u8>>,
    /// `mfhd` sequence number of the next fragment: one count per rung.
    fragments: u32,
}

/// What the spool keeps beside each finished segment (`seg_NNNNN.json`, written after the
/// `.ts`): enough to store and list it after a crash.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SpoolSidecar {
    pub rung: RungDesc,
    pub duration_ms: i64,
    pub program_date_time: DateTime<Utc>,
    pub size: u64,
    pub codecs: String,
    /// fMP4: the init section's file name, beside the segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
}

impl Segmenter {
    pub(super) fn new(
        rung: usize,
        cfg: &LiveConfig,
        dir: PathBuf,
        frame_ms: i64,
        out: AsyncSender<UploadJob>,
        origin: DateTime<Utc>,
        desc: RungDesc,
    ) -> Self {
        Self {
            rung,
            target_ms: cfg.segment_ms(),
            format: cfg.segment_format,
            dir,
            video_params: None,
            video_codec: None,
            audio_params: None,
            audio_codec: None,
            start_ms: None,
            video: Vec::new(),
            audio: VecDeque::new(),
            last_pts: 0,
            frame_ms: frame_ms.max(1),
            sequence: 0,
            out,
            dropped_before_key: 0,
            origin,
            desc,
            meter: crate::spool::meter(cfg),
            lost: 0,
            max_ms: (cfg.max_segment_secs * 1000.0) as i64,
            // 240 frames a second for the longest segment allowed
            max_packets: ((cfg.max_segment_secs * 240.0) as usize).max(64),
            parts: None,
        }
    }

    /// Cuts parts for `ll` (when given and the config asks for parts).
    pub(super) fn low_latency(mut self, ll: Option<Arc<LlStream>>) -> Self {
        self.parts = ll.map(|ll| Parts {
            part_ms: ll.settings().part_ms,
            ll,
            start_ms: None,
            media: Vec::new(),
            init: None,
            parameter_sets: None,
            fragments: 1,
        });
        self
    }

    /// Low latency: a part ends before the packet at `pts` when that packet would take it past
    /// the part target (so no part is longer than PART-TARGET, given steady frames).
    fn part_due(&self, pts: i64) -> bool {
        match &self.parts {
            Some(p) => p
                .start_ms
                .is_some_and(|s| !self.video.is_empty() && pts + self.frame_ms - s > p.part_ms),
            None => false,
        }
    }

    /// Muxes the packets so far (audio up to `end_ms`) as the next part and hands it to the
    /// live edge.
    fn cut_part(&mut self, end_ms: i64) -> Result<(), AvError> {
        let Some(vparams) = self.video_params.as_ref() else {
            return Err(AvError::Other("part without video parameters".into()));
        };
        let Some(parts) = self.parts.as_mut() else {
            return Ok(());
        };
        let Some(start) = parts.start_ms else {
            return Ok(());
        };
        if self.video.is_empty() {
            return Ok(());
        }
        let video = std::mem::take(&mut self.video);
        let mut audio = Vec::new();
        while self
            .audio
            .front()
            .is_some_and(|p| p.pts().unwrap_or(0) < end_ms)
        {
            audio.extend(self.audio.pop_front());
        }
        let independent = video.first().is_some_and(|p| p.is_key());
        let scratch = self.dir.join(format!("part_{:05}.tmp.mp4", self.sequence));
        let mut frag = av::fmp4_fragment(
            &scratch,
            vparams,
            self.audio_params.as_ref(),
            parts.parameter_sets.as_deref(),
            video,
            audio,
        )?;
        parts.fragments = av::renumber_fragments(&mut frag.media, parts.fragments);
        if parts
            .init
            .as_ref()
            .is_none_or(|(_, b)| b[..] != frag.init[..])
        {
            let name = format!("init_{:016x}.mp4", fnv1a(&frag.init));
            parts.init = Some((name, Bytes::from(frag.init)));
        }
        let (name, init) = parts.init.as_ref().expect("set above");
        parts.media.extend_from_slice(&frag.media);
        parts.ll.part(
            &self.desc.name,
            (name, init),
            self.origin + chrono::Duration::milliseconds(self.start_ms.unwrap_or(start)),
            Part {
                bytes: Bytes::from(frag.media),
                duration_ms: (end_ms - start).max(1),
                independent,
            },
        );
        parts.start_ms = Some(end_ms);
        Ok(())
    }

    pub(super) fn video(&mut self, pkt: Packet) -> Result<(), AvError> {
        let pts = pkt.pts().or(pkt.dts()).unwrap_or(self.last_pts);
        let key = pkt.is_key();
        if let Some(start) = self.start_ms {
            // no keyframe on the grid for too long (a broken encoder), or timestamps that
            // never reach the grid: cut here so memory stays bounded; without a keyframe,
            // media is dropped until one comes, and the gap is marked
            let too_long = pts - start >= self.max_ms;
            let too_many = self.video.len() >= self.max_packets;
            if (too_long || too_many) && !self.video.is_empty() {
                tracing::warn!(
                    rung = %self.desc.name,
                    after_ms = pts - start,
                    packets = self.video.len(),
                    "segment limit reached: forcing a cut"
                );
                metrics::counter!("caudal_forced_cuts_total").increment(1);
                let end = pts.max(self.last_pts + 1);
                self.cut(end)?;
                if !key {
                    self.start_ms = None;
                    self.lost += 1;
                    if let Some(parts) = self.parts.as_mut() {
                        parts.start_ms = None;
                        parts.ll.gap(&self.desc.name);
                    }
                }
            }
        }
        if key {
            if let Some(start) = self.start_ms {
                if pts >= grid_next(start, self.target_ms) && !self.video.is_empty() {
                    self.cut(pts)?;
                }
            }
            if self.video_codec.is_none() {
                self.video_codec = pkt.data().and_then(codecs::avc1_from_annexb);
            }
        }
        if self.part_due(pts) {
            self.cut_part(pts)?;
        }
        if self.start_ms.is_none() {
            if !key {
                self.dropped_before_key += 1;
                metrics::counter!("caudal_video_dropped_total", "reason" => "no_keyframe")
                    .increment(1);
                return Ok(());
            }
            self.start_ms = Some(pts);
        }
        if let Some(parts) = self.parts.as_mut() {
            if parts.start_ms.is_none() {
                parts.start_ms = Some(pts);
            }
            if key {
                if let Some(sets) = pkt.data().and_then(av::annexb_parameter_sets) {
                    parts.parameter_sets = Some(sets);
                }
            }
        }
        if pts > self.last_pts {
            self.last_pts = pts;
        }
        self.video.push(pkt);
        Ok(())
    }

    pub(super) fn audio(&mut self, pkt: Packet) {
        self.audio.push_back(pkt);
        // audio with no video to go with (video stalled): keep a bounded backlog
        while self.audio.len() > 2000 {
            self.audio.pop_front();
        }
    }

    fn cut(&mut self, end_ms: i64) -> Result<(), AvError> {
        let Some(start) = self.start_ms else {
            return Ok(());
        };
        if self.parts.is_some() {
            self.cut_part(end_ms)?;
        }
        let Some(vparams) = self.video_params.as_ref() else {
            return Err(AvError::Other("segment without video parameters".into()));
        };
        let mut audio = Vec::new();
        while self
            .audio
            .front()
            .is_some_and(|p| p.pts().unwrap_or(0) < end_ms)
        {
            audio.extend(self.audio.pop_front());
        }
        let video = std::mem::take(&mut self.video);
        if self.meter.full() {
            // the store has been away long enough to fill the spool: drop, count, mark
            if self.lost == 0 {
                tracing::warn!(
                    rung = %self.desc.name,
                    spooled_bytes = self.meter.bytes(),
                    "spool full (the object store is not keeping up): dropping segments until it drains"
                );
            }
            self.lost += 1;
            metrics::counter!("caudal_spool_full_total").increment(1);
            self.sequence += 1;
            self.start_ms = Some(end_ms);
            if let Some(parts) = self.parts.as_mut() {
                // the live edge still has it; only the recording loses it
                parts.media.clear();
                parts.ll.segment_end(&self.desc.name);
            }
            return Ok(());
        }
        let format = self.format;
        let path = self
            .dir
            .join(format!("seg_{:05}.{}", self.sequence, format.extension()));
        let (size, init) = match format {
            SegmentFormat::Ts => (
                av::write_ts_segment(&path, vparams, self.audio_params.as_ref(), video, audio)?,
                None,
            ),
            SegmentFormat::Fmp4 if self.parts.is_some() => {
                let parts = self.parts.as_mut().expect("checked");
                let media = std::mem::take(&mut parts.media);
                let Some((name, init_bytes)) = parts.init.clone() else {
                    return Err(AvError::Other("segment without a part".into()));
                };
                std::fs::write(&path, &media)?;
                let init = self.dir.join(&name);
                if !init.exists() {
                    std::fs::write(&init, &init_bytes)?;
                }
                parts.ll.segment_end(&self.desc.name);
                (media.len() as u64, Some(name))
            }
            SegmentFormat::Fmp4 => {
                let scratch = path.with_extension("tmp.mp4");
                let seg =
                    av::fmp4_segment(&scratch, vparams, self.audio_params.as_ref(), video, audio)?;
                std::fs::write(&path, &seg.media)?;
                // named by content: the same init for every segment until the codec changes
                let name = format!("init_{:016x}.mp4", fnv1a(&seg.init));
                let init = self.dir.join(&name);
                if !init.exists() {
                    std::fs::write(&init, &seg.init)?;
                }
                (seg.media.len() as u64, Some(name))
            }
        };
        self.meter.add(size);
        let codecs = match (&self.video_codec, &self.audio_codec, &self.audio_params) {
            (Some(v), Some(a), Some(_)) => format!("{v},{a}"),
            (Some(v), _, _) => v.clone(),
            (None, Some(a), Some(_)) => format!("avc1.640028,{a}"),
            (None, _, _) => "avc1.640028".into(),
        };
        let program_date_time = self.origin + chrono::Duration::milliseconds(start);
        let duration_ms = (end_ms - start).max(1);
        let sidecar = SpoolSidecar {
            rung: self.desc.clone(),
            duration_ms,
            program_date_time,
            size,
            codecs: codecs.clone(),
            init: init.clone(),
        };
        let side = serde_json::to_vec(&sidecar).expect("sidecar serialises");
        if let Err(e) = std::fs::write(path.with_extension("json"), side) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the segment's sidecar");
        }
        let job = UploadJob::Segment(SegmentReady {
            rung: self.rung,
            path,
            duration_ms,
            size,
            discontinuity: std::mem::take(&mut self.lost) > 0,
            program_date_time,
            codecs,
            init,
            closed_at: Instant::now(),
        });
        if self.out.blocking_send(job).is_err() {
            return Err(AvError::Other("uploader is gone".into()));
        }
        metrics::counter!("caudal_segments_written_total").increment(1);
        self.sequence += 1;
        self.start_ms = Some(end_ms);
        Ok(())
    }

    pub(super) fn finish(&mut self) -> Result<(), AvError> {
        if !self.video.is_empty() {
            let end = self.last_pts + self.frame_ms;
            self.cut(end)?;
        }
        Ok(())
    }
}

/// FNV-1a, 64 bits: names an init section by its bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
