//! The media side of a stream: one decode thread and one thread per rung.
//!
//! ```text
//! MediaInput --sync_channel--> decode thread --sync_channel--> rung thread (scale+x264+segment) --> upload jobs
//!                                   |  (AVCC packets)    \---> passthrough rung (segment only) --> upload jobs
//! ```
//! Every channel is bounded. Segments are written to the spool folder, and only the
//! file name travels to the uploader.

use std::collections::VecDeque;

use crate::early::EarlyBuffer;
use crate::spool::SpoolMeter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use ff::{codec, software::scaling, Packet, Rational};
use ffmpeg_next as ff;
use tokio::sync::mpsc::Sender as AsyncSender;

use crate::av::{self, AvError, X264Settings};
use crate::codecs;
use crate::ladder::{self, RungKind, RungPlan};
use crate::{LiveConfig, MediaInput, TakeFailure};

/// What the media threads tell the uploader.
#[derive(Debug)]
pub enum UploadJob {
    /// The ladder is known (after the first decoded picture).
    Ladder { rungs: Vec<RungDesc> },
    /// A finished segment waiting in the spool folder.
    Segment(SegmentReady),
    /// Every rung has flushed; nothing follows.
    End,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RungDesc {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// Nominal peak bits per second (video + audio), before anything was measured.
    pub nominal_bandwidth: u64,
    pub passthrough: bool,
}

#[derive(Debug)]
pub struct SegmentReady {
    pub rung: usize,
    pub path: PathBuf,
    pub duration_ms: i64,
    pub size: u64,
    /// The rung's segment before this one was dropped (spool full).
    pub discontinuity: bool,
    /// Wall-clock time of the segment's first frame.
    pub program_date_time: DateTime<Utc>,
    /// RFC 6381 codecs of this rung, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    /// When the segment's closing frame was handed to the rung (for latency figures).
    pub closed_at: Instant,
}

enum RungMsg {
    Frame {
        frame: ff::frame::Video,
        force_key: bool,
    },
    /// Passthrough only: a source packet (AVCC) in ms.
    Packet(Packet),
    /// Passthrough only: new stream parameters after a new sequence header.
    VideoParams(codec::Parameters, Option<String>),
    Audio(Packet),
    AudioParams(codec::Parameters, String),
}

struct Rung {
    tx: SyncSender<RungMsg>,
    thread: JoinHandle<()>,
    passthrough: bool,
}

fn grid_next(start_ms: i64, target_ms: i64) -> i64 {
    (start_ms.div_euclid(target_ms) + 1) * target_ms
}

/// Cuts a rung's packets into segments at keyframes on the segment-duration grid.
struct Segmenter {
    rung: usize,
    target_ms: i64,
    dir: PathBuf,
    video_params: Option<codec::Parameters>,
    video_codec: Option<String>,
    audio_params: Option<codec::Parameters>,
    audio_codec: Option<String>,
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
}

impl Segmenter {
    fn new(
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
        }
    }

    fn video(&mut self, pkt: Packet) -> Result<(), AvError> {
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
        if self.start_ms.is_none() {
            if !key {
                self.dropped_before_key += 1;
                metrics::counter!("caudal_video_dropped_total", "reason" => "no_keyframe")
                    .increment(1);
                return Ok(());
            }
            self.start_ms = Some(pts);
        }
        if pts > self.last_pts {
            self.last_pts = pts;
        }
        self.video.push(pkt);
        Ok(())
    }

    fn audio(&mut self, pkt: Packet) {
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
            return Ok(());
        }
        let path = self.dir.join(format!("seg_{:05}.ts", self.sequence));
        let size = av::write_ts_segment(&path, vparams, self.audio_params.as_ref(), video, audio)?;
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

    fn finish(&mut self) -> Result<(), AvError> {
        if !self.video.is_empty() {
            let end = self.last_pts + self.frame_ms;
            self.cut(end)?;
        }
        Ok(())
    }
}

/// Starts the decode thread. Returns its input sender and join handle.
pub(crate) fn spawn(
    cfg: std::sync::Arc<LiveConfig>,
    spool: PathBuf,
    out: AsyncSender<UploadJob>,
    name: String,
    ladder: Arc<Mutex<Option<Vec<RungPlan>>>>,
    queued: Arc<AtomicUsize>,
    failure: Arc<OnceLock<TakeFailure>>,
) -> std::io::Result<(SyncSender<MediaInput>, JoinHandle<()>)> {
    let (tx, rx) = sync_channel(cfg.input_queue.max(16));
    let handle = std::thread::Builder::new()
        .name(format!("decode-{name}"))
        .spawn(move || {
            let mut d = Decoder::new(cfg, spool, out, ladder);
            match d.run(rx, &queued) {
                Ok(()) => {}
                Err(AvError::Refused(why)) => {
                    tracing::warn!(stream = %name, reason = %why, "source refused");
                    let _ = failure.set(TakeFailure::Refused(why));
                }
                Err(e) => {
                    tracing::error!(stream = %name, error = %e, "media pipeline failed");
                    metrics::counter!("caudal_pipeline_failures_total").increment(1);
                    let _ = failure.set(TakeFailure::Failed(e.to_string()));
                }
            }
            d.shutdown();
        })?;
    Ok((tx, handle))
}

struct Decoder {
    cfg: std::sync::Arc<LiveConfig>,
    spool: PathBuf,
    out: AsyncSender<UploadJob>,
    decoder: Option<ff::decoder::Video>,
    video_params: Option<(codec::Parameters, Option<String>)>,
    audio_params: Option<(codec::Parameters, String)>,
    rungs: Vec<Rung>,
    started: bool,
    /// Passthrough packets and audio seen before the ladder exists (bounded).
    early: EarlyBuffer<RungMsg>,
    next_key_ms: i64,
    frame_rate: Option<f64>,
    origin: Option<DateTime<Utc>>,
    /// False once the ladder runs without an encoded rung: nothing needs pictures then.
    decode: bool,
    /// The broadcast's ladder: chosen by its first take, kept by the others.
    ladder: Arc<Mutex<Option<Vec<RungPlan>>>>,
}

impl Decoder {
    fn new(
        cfg: std::sync::Arc<LiveConfig>,
        spool: PathBuf,
        out: AsyncSender<UploadJob>,
        ladder: Arc<Mutex<Option<Vec<RungPlan>>>>,
    ) -> Self {
        let early = EarlyBuffer::new(cfg.max_early_bytes);
        Self {
            cfg,
            spool,
            out,
            decoder: None,
            video_params: None,
            audio_params: None,
            rungs: Vec::new(),
            started: false,
            early,
            next_key_ms: 0,
            frame_rate: None,
            origin: None,
            decode: true,
            ladder,
        }
    }

    fn run(&mut self, rx: Receiver<MediaInput>, queued: &AtomicUsize) -> Result<(), AvError> {
        while let Ok(input) = rx.recv() {
            let size = input.size();
            let _ = queued.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(size))
            });
            if self.origin.is_none() {
                self.origin = Some(Utc::now());
            }
            match input {
                MediaInput::SourceInfo { frame_rate } => {
                    if let Some(fps) = frame_rate.filter(|f| *f > 1.0 && *f < 241.0) {
                        self.frame_rate = Some(fps);
                    }
                }
                MediaInput::VideoConfig(avcc) => self.video_config(avcc)?,
                MediaInput::Video {
                    dts_ms,
                    cts_ms,
                    keyframe,
                    data,
                } => self.video(dts_ms, dts_ms + cts_ms as i64, keyframe, data)?,
                MediaInput::AudioConfig(asc) => match av::aac_parameters(&asc) {
                    Ok(p) => {
                        let c = codecs::mp4a_from_asc(&asc).unwrap_or_else(|| "mp4a.40.2".into());
                        self.audio_params = Some((p.clone(), c.clone()));
                        self.broadcast(|| RungMsg::AudioParams(p.clone(), c.clone()), true);
                    }
                    Err(e) => tracing::warn!(error = %e, "ignoring an invalid AAC sequence header"),
                },
                MediaInput::Audio { pts_ms, data } => {
                    if self.audio_params.is_none() {
                        continue;
                    }
                    let mut p = av::packet(&data, pts_ms, pts_ms, true);
                    if let Some((params, _)) = &self.audio_params {
                        // Safety: reading a plain field of parameters we own.
                        let sr = unsafe { (*params.as_ptr()).sample_rate }.max(1) as i64;
                        p.set_duration(1024 * 1000 / sr);
                    }
                    self.broadcast(|| RungMsg::Audio(p.clone()), true);
                }
            }
        }
        // publisher gone: drain the decoder
        if let Some(dec) = self.decoder.as_mut() {
            let _ = dec.send_eof();
        }
        self.drain_frames()?;
        Ok(())
    }

    /// Keeps media until the ladder exists, within `max_early_bytes`.
    fn keep_early(&mut self, msg: RungMsg) {
        let size = match &msg {
            RungMsg::Packet(p) | RungMsg::Audio(p) => Some(p.size()),
            _ => None,
        };
        let dropped = self.early.push(msg, size);
        if dropped > 0 {
            metrics::counter!("caudal_ingest_dropped_total", "reason" => "no_picture_yet")
                .increment(dropped as u64);
            if self.early.dropped() == dropped as u64 {
                tracing::warn!(
                    max_bytes = self.cfg.max_early_bytes,
                    "no picture yet: dropping the oldest buffered media (audio-only or undecodable video?)"
                );
            }
        }
    }

    /// Sends a message to every rung, or keeps it until the ladder exists.
    fn broadcast<F: Fn() -> RungMsg>(&mut self, make: F, keep_early: bool) {
        if !self.started {
            if keep_early {
                self.keep_early(make());
            }
            return;
        }
        for r in &self.rungs {
            // a rung that died has logged why; the others carry on
            let _ = r.tx.send(make());
        }
    }

    fn video_config(&mut self, avcc: Bytes) -> Result<(), AvError> {
        // drain pictures of the previous configuration first
        if let Some(dec) = self.decoder.as_mut() {
            let _ = dec.send_eof();
            self.drain_frames()?;
        }
        let dec = av::open_h264_decoder(&avcc)?;
        let params = codec::Parameters::from(&dec);
        let name = codecs::avc1_from_avcc(&avcc);
        self.video_params = Some((params.clone(), name.clone()));
        self.decoder = Some(dec);
        if self.started {
            for r in self.rungs.iter().filter(|r| r.passthrough) {
                let _ =
                    r.tx.send(RungMsg::VideoParams(params.clone(), name.clone()));
            }
        }
        Ok(())
    }

    fn video(&mut self, dts: i64, pts: i64, key: bool, data: Bytes) -> Result<(), AvError> {
        if self.decoder.is_none() {
            metrics::counter!("caudal_video_dropped_total", "reason" => "no_sequence_header")
                .increment(1);
            return Ok(());
        }
        let pkt = av::packet(&data, pts, dts, key);
        if self.cfg.passthrough {
            if self.started {
                for r in self.rungs.iter().filter(|r| r.passthrough) {
                    let _ = r.tx.send(RungMsg::Packet(pkt.clone()));
                }
            } else {
                self.keep_early(RungMsg::Packet(pkt.clone()));
            }
        }
        if !self.decode {
            // a passthrough-only ladder copies packets; decoding would only discard pictures
            return Ok(());
        }
        let dec = self.decoder.as_mut().expect("checked above");
        if let Err(e) = dec.send_packet(&pkt) {
            // a damaged access unit: skip it, the decoder recovers at the next keyframe
            tracing::debug!(error = %e, "decoder refused a packet");
            metrics::counter!("caudal_video_dropped_total", "reason" => "undecodable").increment(1);
        }
        self.drain_frames()
    }

    fn drain_frames(&mut self) -> Result<(), AvError> {
        loop {
            let mut frame = ff::frame::Video::empty();
            let Some(dec) = self.decoder.as_mut() else {
                return Ok(());
            };
            if dec.receive_frame(&mut frame).is_err() {
                return Ok(());
            }
            let pts = frame.timestamp().or(frame.pts()).unwrap_or(0);
            frame.set_pts(Some(pts));
            let (w, h) = (frame.width(), frame.height());
            if w.max(h) > self.cfg.max_source_dimension
                || w as u64 * h as u64 > self.cfg.max_source_pixels
            {
                return Err(AvError::Refused(format!(
                    "{w}x{h} is larger than this server takes ({} pixels, {} per side)",
                    self.cfg.max_source_pixels, self.cfg.max_source_dimension
                )));
            }
            if !self.started {
                self.start_ladder(frame.width(), frame.height())?;
            }
            let force_key = pts >= self.next_key_ms;
            if force_key {
                self.next_key_ms = grid_next(pts, self.cfg.segment_ms());
            }
            for r in self.rungs.iter().filter(|r| !r.passthrough) {
                let _ = r.tx.send(RungMsg::Frame {
                    frame: av::frame_ref(&frame),
                    force_key,
                });
            }
        }
    }

    fn start_ladder(&mut self, width: u32, height: u32) -> Result<(), AvError> {
        let plans = {
            let mut chosen = self.ladder.lock().expect("ladder lock");
            chosen
                .get_or_insert_with(|| {
                    ladder::select(width, height, &self.cfg.rungs, self.cfg.passthrough)
                })
                .clone()
        };
        let origin = self.origin.unwrap_or_else(Utc::now);
        let fps = self.frame_rate.unwrap_or(30.0);
        let audio_bps = if self.audio_params.is_some() {
            self.cfg.audio_kbps as u64 * 1000
        } else {
            0
        };
        let mut descs = Vec::new();
        for (i, plan) in plans.iter().enumerate() {
            let dir = self.spool.join(&plan.name);
            std::fs::create_dir_all(&dir)?;
            let video_bps = match plan.kind {
                RungKind::Encoded { video_kbps } => video_kbps as u64 * 1200,
                RungKind::Passthrough => self.cfg.passthrough_kbps_hint as u64 * 1200,
            };
            let desc = RungDesc {
                name: plan.name.clone(),
                width: plan.width,
                height: plan.height,
                frame_rate: fps,
                nominal_bandwidth: video_bps + audio_bps,
                passthrough: plan.is_passthrough(),
            };
            descs.push(desc.clone());
            let (tx, rx) = sync_channel::<RungMsg>(self.cfg.frame_queue.max(2));
            let seg = Segmenter::new(
                i,
                &self.cfg,
                dir,
                (1000.0 / fps).round() as i64,
                self.out.clone(),
                origin,
                desc,
            );
            let plan = plan.clone();
            let cfg = self.cfg.clone();
            let thread = std::thread::Builder::new()
                .name(format!("rung-{}", plan.name))
                .spawn(move || {
                    if let Err(e) = rung_thread(plan.clone(), cfg, fps, seg, rx) {
                        tracing::error!(rung = %plan.name, error = %e, "rung failed");
                        metrics::counter!("caudal_pipeline_failures_total").increment(1);
                    }
                })?;
            self.rungs.push(Rung {
                tx,
                thread,
                passthrough: plans[i].is_passthrough(),
            });
        }
        if self
            .out
            .blocking_send(UploadJob::Ladder { rungs: descs })
            .is_err()
        {
            return Err(AvError::Other("uploader is gone".into()));
        }
        self.started = true;
        // the first picture gave the source size; only encoded rungs need more pictures
        self.decode = self.rungs.iter().any(|r| !r.passthrough);
        // hand every rung the stream state it joined late for
        if let Some((p, c)) = &self.audio_params {
            for r in &self.rungs {
                let _ = r.tx.send(RungMsg::AudioParams(p.clone(), c.clone()));
            }
        }
        if let Some((p, n)) = &self.video_params {
            for r in self.rungs.iter().filter(|r| r.passthrough) {
                let _ = r.tx.send(RungMsg::VideoParams(p.clone(), n.clone()));
            }
        }
        for msg in self.early.take() {
            match msg {
                RungMsg::Packet(p) => {
                    for r in self.rungs.iter().filter(|r| r.passthrough) {
                        let _ = r.tx.send(RungMsg::Packet(p.clone()));
                    }
                }
                RungMsg::Audio(p) => {
                    for r in &self.rungs {
                        let _ = r.tx.send(RungMsg::Audio(p.clone()));
                    }
                }
                _ => {}
            }
        }
        tracing::info!(width, height, rungs = self.rungs.len(), "ladder started");
        Ok(())
    }

    fn shutdown(&mut self) {
        for r in self.rungs.drain(..) {
            drop(r.tx);
            let _ = r.thread.join();
        }
        let _ = self.out.blocking_send(UploadJob::End);
    }
}

fn rung_thread(
    plan: RungPlan,
    cfg: std::sync::Arc<LiveConfig>,
    fps: f64,
    mut seg: Segmenter,
    rx: Receiver<RungMsg>,
) -> Result<(), AvError> {
    let mut encoder: Option<ff::encoder::Video> = None;
    let mut scaler: Option<(ff::format::Pixel, u32, u32, scaling::Context)> = None;
    let fps_rational = Rational(((fps * 1000.0).round() as i32).max(1000), 1000);
    let segment_frames = ((cfg.segment_secs * fps).ceil() as u32).max(1);
    let drain = |enc: &mut ff::encoder::Video, seg: &mut Segmenter| -> Result<(), AvError> {
        loop {
            let mut pkt = Packet::empty();
            if enc.receive_packet(&mut pkt).is_err() {
                return Ok(());
            }
            seg.video(pkt)?;
        }
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            RungMsg::AudioParams(p, c) => {
                seg.audio_params = Some(p);
                seg.audio_codec = Some(c);
            }
            RungMsg::Audio(p) => seg.audio(p),
            RungMsg::VideoParams(p, name) => {
                seg.video_params = Some(p);
                if name.is_some() {
                    seg.video_codec = name;
                }
            }
            RungMsg::Packet(p) => seg.video(p)?,
            RungMsg::Frame { frame, force_key } => {
                let needs_scale = frame.width() != plan.width
                    || frame.height() != plan.height
                    || frame.format() != ff::format::Pixel::YUV420P;
                let mut picture = if needs_scale {
                    let stale = scaler.as_ref().is_none_or(|(f, w, h, _)| {
                        (*f, *w, *h) != (frame.format(), frame.width(), frame.height())
                    });
                    if stale {
                        let ctx = scaling::Context::get(
                            frame.format(),
                            frame.width(),
                            frame.height(),
                            ff::format::Pixel::YUV420P,
                            plan.width,
                            plan.height,
                            scaling::Flags::BILINEAR,
                        )
                        .map_err(|source| AvError::Ffmpeg {
                            what: "creating the scaler",
                            source,
                        })?;
                        scaler = Some((frame.format(), frame.width(), frame.height(), ctx));
                    }
                    let (_, _, _, ctx) = scaler.as_mut().expect("scaler was just created");
                    let mut out =
                        ff::frame::Video::new(ff::format::Pixel::YUV420P, plan.width, plan.height);
                    ctx.run(&frame, &mut out)
                        .map_err(|source| AvError::Ffmpeg {
                            what: "scaling",
                            source,
                        })?;
                    out.set_pts(frame.pts());
                    out
                } else {
                    frame
                };
                if encoder.is_none() {
                    let RungKind::Encoded { video_kbps } = plan.kind else {
                        continue;
                    };
                    let enc = av::open_x264(&X264Settings {
                        width: plan.width,
                        height: plan.height,
                        kbps: video_kbps,
                        frame_rate: fps_rational,
                        keyint: segment_frames * 2,
                        preset: cfg.x264_preset.clone(),
                        tune: cfg.x264_tune.clone().filter(|t| !t.is_empty()),
                        threads: cfg.x264_threads,
                    })?;
                    seg.video_params = Some(codec::Parameters::from(&enc));
                    encoder = Some(enc);
                }
                let enc = encoder.as_mut().expect("encoder was just opened");
                picture.set_kind(if force_key {
                    ff::picture::Type::I
                } else {
                    ff::picture::Type::None
                });
                enc.send_frame(&picture).map_err(|source| AvError::Ffmpeg {
                    what: "encoding",
                    source,
                })?;
                drain(enc, &mut seg)?;
            }
        }
    }
    if let Some(enc) = encoder.as_mut() {
        let _ = enc.send_eof();
        drain(enc, &mut seg)?;
    }
    seg.finish()
}
