//! The decode thread: decodes the source once, picks the ladder on its first picture, and
//! fans pictures (encoded rungs) and packets (passthrough rungs, audio) out to the rungs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use ff::codec;
use ffmpeg_next as ff;
use tokio::sync::mpsc::Sender as AsyncSender;

use super::segmenter::Segmenter;
use super::{grid_next, BroadcastShared, RungMsg, UploadJob};
use crate::av::{self, AvError};
use crate::codecs;
use crate::early::EarlyBuffer;
use crate::ladder;
use crate::{LiveConfig, MediaInput, TakeFailure};

/// A rung's thread and the channel feeding it.
struct RungThread {
    tx: SyncSender<RungMsg>,
    thread: JoinHandle<()>,
    passthrough: bool,
}

/// Starts the decode thread. Returns its input sender and join handle.
pub(crate) fn spawn(
    cfg: std::sync::Arc<LiveConfig>,
    spool: PathBuf,
    out: AsyncSender<UploadJob>,
    name: String,
    shared: BroadcastShared,
    queued: Arc<AtomicUsize>,
    failure: Arc<OnceLock<TakeFailure>>,
) -> std::io::Result<(SyncSender<MediaInput>, JoinHandle<()>)> {
    let (tx, rx) = sync_channel(cfg.input_queue.max(16));
    let handle = std::thread::Builder::new()
        .name(format!("decode-{name}"))
        .spawn(move || {
            let mut d = Decoder::new(cfg, spool, out, shared);
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
    rungs: Vec<RungThread>,
    started: bool,
    /// Passthrough packets and audio seen before the ladder exists (bounded).
    early: EarlyBuffer<RungMsg>,
    next_key_ms: i64,
    frame_rate: Option<f64>,
    origin: Option<DateTime<Utc>>,
    /// False once the ladder runs without an encoded rung: nothing needs pictures then.
    decode: bool,
    /// The broadcast's ladder (chosen by its first take, kept by the others) and live edge.
    shared: BroadcastShared,
}

impl Decoder {
    fn new(
        cfg: std::sync::Arc<LiveConfig>,
        spool: PathBuf,
        out: AsyncSender<UploadJob>,
        shared: BroadcastShared,
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
            shared,
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
        // this take's frame rate paces its encoders; the ladder (published) is the first take's
        let fps = self.frame_rate.unwrap_or(30.0);
        let descs = {
            let mut chosen = self.shared.ladder.lock().expect("ladder lock");
            chosen
                .get_or_insert_with(|| {
                    let src = ladder::Source {
                        width,
                        height,
                        frame_rate: fps,
                        audio: self.audio_params.is_some(),
                    };
                    ladder::select(&src, &self.cfg)
                })
                .clone()
        };
        let origin = self.origin.unwrap_or_else(Utc::now);
        for (i, desc) in descs.iter().enumerate() {
            let dir = self.spool.join(&desc.name);
            std::fs::create_dir_all(&dir)?;
            let (tx, rx) = sync_channel::<RungMsg>(self.cfg.frame_queue.max(2));
            let seg = Segmenter::new(
                i,
                &self.cfg,
                dir,
                (1000.0 / fps).round() as i64,
                self.out.clone(),
                origin,
                desc.clone(),
            )
            .low_latency(self.shared.ll.clone());
            let rung = desc.clone();
            let cfg = self.cfg.clone();
            let thread = std::thread::Builder::new()
                .name(format!("rung-{}", rung.name))
                .spawn(move || {
                    let name = rung.name.clone();
                    if let Err(e) = super::rung::rung_thread(rung, cfg, fps, seg, rx) {
                        tracing::error!(rung = %name, error = %e, "rung failed");
                        metrics::counter!("caudal_pipeline_failures_total").increment(1);
                    }
                })?;
            self.rungs.push(RungThread {
                tx,
                thread,
                passthrough: desc.passthrough,
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
