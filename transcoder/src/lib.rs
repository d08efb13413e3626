//! Caudal's transcoder: turns H.264/AAC input (a live RTMP stream, or a file) into an
//! adaptive HLS ladder in object storage.
//!
//! Decode once, scale per rung, encode each rung with libx264 with keyframes forced on one
//! segment grid (so segment N covers the same time in every encoded rung), copy the AAC
//! audio into every rung, cut MPEG-TS segments at those keyframes, store each segment and
//! then the m3u8-rs playlists listing it. CPU work runs on dedicated threads fed by bounded
//! channels; storage writes run on the async runtime.

pub mod av;
pub mod codecs;
mod early;
pub mod file;
pub mod flv;
pub mod ladder;
mod pipeline;
pub mod playlist;
mod upload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use storage::DynStore;
use tokio::sync::mpsc;

pub use ladder::{RungKind, RungPlan, RungSpec};
pub use upload::{ListedSegment, LiveSummary};

/// Transcoding settings (one section of the ingest and transcoder configs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LiveConfig {
    /// Target segment duration in seconds (keyframes are forced on this grid).
    pub segment_secs: f64,
    /// Segments listed in a live media playlist.
    pub window: usize,
    /// Encoded rungs; those taller than the source are skipped.
    pub rungs: Vec<RungSpec>,
    /// Also offer the source H.264 copied without re-encoding (cuts at source keyframes).
    pub passthrough: bool,
    /// Bitrate assumed for the passthrough rung before one is measured, kbit/s.
    pub passthrough_kbps_hint: u32,
    /// Audio bitrate assumed in BANDWIDTH before one is measured, kbit/s.
    pub audio_kbps: u32,
    /// libx264 preset.
    pub x264_preset: String,
    /// libx264 tune; `zerolatency` keeps encoding delay to one frame. Empty for none.
    pub x264_tune: Option<String>,
    /// libx264 threads per rung (0 = automatic).
    pub x264_threads: u32,
    /// RTMP tags buffered ahead of the decoder; beyond this, tags are dropped and counted.
    pub input_queue: usize,
    /// Pictures buffered ahead of each rung's encoder.
    pub frame_queue: usize,
    /// Media held before the first picture (the ladder is chosen on it), bytes; past this the
    /// oldest is dropped and counted (`caudal_ingest_dropped_total{reason="no_picture_yet"}`).
    pub max_early_bytes: usize,
    /// Where finished segments wait until they are stored.
    pub spool_dir: PathBuf,
    /// Stop retrying a storage write after this many seconds (the file stays in the spool).
    pub upload_give_up_secs: u64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            segment_secs: 2.0,
            window: 6,
            rungs: ladder::default_rungs(),
            passthrough: false,
            passthrough_kbps_hint: 4000,
            audio_kbps: 160,
            x264_preset: "veryfast".into(),
            x264_tune: Some("zerolatency".into()),
            x264_threads: 0,
            input_queue: 1024,
            frame_queue: 8,
            max_early_bytes: 8 << 20,
            spool_dir: ".caudal/spool".into(),
            upload_give_up_secs: 600,
        }
    }
}

impl LiveConfig {
    pub fn segment_ms(&self) -> i64 {
        ((self.segment_secs * 1000.0).round() as i64).max(500)
    }
}

/// Media handed to a stream, already parsed from FLV, timestamps in ms from stream start.
#[derive(Debug, Clone)]
pub enum MediaInput {
    /// Publisher metadata (onMetaData).
    SourceInfo { frame_rate: Option<f64> },
    /// AVCDecoderConfigurationRecord.
    VideoConfig(Bytes),
    /// An access unit of length-prefixed NAL units.
    Video {
        dts_ms: i64,
        cts_ms: i32,
        keyframe: bool,
        data: Bytes,
    },
    /// AudioSpecificConfig.
    AudioConfig(Bytes),
    /// One raw AAC frame.
    Audio { pts_ms: i64, data: Bytes },
}

/// A rendition as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionInfo {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bandwidth: u64,
    pub codecs: String,
    pub frame_rate: f64,
    /// Storage key of the media playlist.
    pub playlist: String,
    pub passthrough: bool,
}

/// What a stream reports while it runs.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// The master playlist is stored: viewers can start watching.
    Started {
        master_key: String,
        renditions: Vec<RenditionInfo>,
    },
    /// Every playlist is final and the VOD playlists are stored.
    Finished { summary: LiveSummary },
}

#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("could not start the media threads: {0}")]
    Spawn(#[from] std::io::Error),
    #[error("media pipeline: {0}")]
    Media(#[from] av::AvError),
    #[error("the media pipeline stopped")]
    Stopped,
}

/// A running stream. Feed it with [`LiveStream::push`], end it with [`LiveStream::finish`].
pub struct LiveStream {
    tx: Option<SyncSender<MediaInput>>,
    media: Option<std::thread::JoinHandle<()>>,
    uploader: tokio::task::JoinHandle<LiveSummary>,
    dropped: Arc<AtomicU64>,
}

impl LiveStream {
    /// Starts the threads and the uploader (on the current tokio runtime). Objects are
    /// stored under `prefix` (e.g. `live/<video id>`).
    pub fn start(
        cfg: Arc<LiveConfig>,
        store: DynStore,
        prefix: String,
        events: Option<mpsc::Sender<LiveEvent>>,
    ) -> Result<Self, TranscodeError> {
        av::init();
        let spool = cfg.spool_dir.join(prefix.replace('/', "_"));
        std::fs::create_dir_all(&spool)?;
        // a few thousand jobs: hours of segments; the messages are small (file names)
        let (up_tx, up_rx) = mpsc::channel(4096);
        let (tx, media) = pipeline::spawn(cfg.clone(), spool, up_tx, prefix.clone())?;
        let uploader = tokio::spawn(
            upload::Uploader {
                store,
                prefix,
                cfg,
                events,
            }
            .run(up_rx),
        );
        Ok(Self {
            tx: Some(tx),
            media: Some(media),
            uploader,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Hands media to the pipeline without ever blocking. Returns false (and counts the drop)
    /// when the pipeline is behind and its queue is full, or when it has stopped.
    pub fn push(&self, input: MediaInput) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(input) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("caudal_ingest_dropped_total").increment(1);
                false
            }
        }
    }

    /// Hands media to the pipeline, waiting for room (for file input, from a blocking thread).
    pub fn push_blocking(&self, input: MediaInput) -> Result<(), TranscodeError> {
        let tx = self.tx.as_ref().ok_or(TranscodeError::Stopped)?;
        tx.send(input).map_err(|_| TranscodeError::Stopped)
    }

    /// A sender usable from a blocking thread (file input).
    pub fn sender(&self) -> Option<SyncSender<MediaInput>> {
        self.tx.clone()
    }

    /// How many inputs were dropped because the pipeline was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Ends the input, lets every rung flush its last segment, and waits until every
    /// playlist is final.
    pub async fn finish(mut self) -> Result<LiveSummary, TranscodeError> {
        drop(self.tx.take());
        if let Some(h) = self.media.take() {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|_| TranscodeError::Stopped)?
                .ok();
        }
        (&mut self.uploader)
            .await
            .map_err(|_| TranscodeError::Stopped)
    }
}
