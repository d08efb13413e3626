//! Caudal's transcoder: turns H.264/AAC input (a live RTMP stream, or a file) into an
//! adaptive HLS ladder in object storage.
//!
//! Decode once, scale per rung, encode each rung with libx264 with keyframes forced on one
//! segment grid (so segment N covers the same time in every encoded rung), copy the AAC
//! audio into every rung, cut MPEG-TS segments at those keyframes, store each segment and
//! then the m3u8-rs playlists listing it. CPU work runs on dedicated threads fed by bounded
//! channels; storage writes run on the async runtime.

pub mod artwork;
pub mod av;
pub mod codecs;
mod early;
pub mod file;
pub mod ladder;
pub mod lowlatency;
mod pipeline;
pub mod playlist;
pub mod publish;
mod spool;
mod upload;
pub mod worker;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use storage::DynStore;
use tokio::sync::mpsc;

pub use ladder::{RungDesc, RungSpec};
pub use upload::{recover, ListedSegment, LiveSummary};

/// Transcoding settings (one section of the ingest and transcoder configs).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LiveConfig {
    /// Target segment duration in seconds (keyframes are forced on this grid).
    pub segment_secs: f64,
    /// How segments are packaged: `ts` (MPEG-TS) or `fmp4` (CMAF: one init section per rung,
    /// `.m4s` media segments, EXT-X-MAP).
    pub segment_format: SegmentFormat,
    /// Segments listed in a live media playlist.
    pub window: usize,
    /// Low-latency HLS: cut each segment into parts of this length, s (RFC 8216bis: 0.33 to
    /// 1 is usual), served with blocking playlist reloads by the live origin in ingest. 0: off.
    /// Needs `segment_format = "fmp4"`.
    pub part_secs: f64,
    /// Segments a low-latency playlist lists (and the live origin holds in memory, per rung).
    pub ll_window: usize,
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
    /// Bytes of segments the spool may hold (all broadcasts of the process); past it, new
    /// segments are dropped and counted (`caudal_spool_full_total`) until it drains.
    pub max_spool_bytes: u64,
    /// Stop retrying a storage write after this many seconds (the file stays in the spool).
    pub upload_give_up_secs: u64,
    /// Bytes of media waiting for the decode thread, per take; past it, input is dropped
    /// and counted (`caudal_ingest_dropped_total{reason="queue_bytes"}`).
    pub max_queue_bytes: usize,
    /// Sources with more pixels than this are refused (4096x2160: DCI 4K).
    pub max_source_pixels: u64,
    /// Sources wider or taller than this are refused.
    pub max_source_dimension: u32,
    /// A segment that reaches this length without a keyframe (passthrough copies the
    /// source's) is cut; media is then skipped until a keyframe, and the gap marked, s.
    pub max_segment_secs: f64,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            segment_secs: 2.0,
            segment_format: SegmentFormat::Ts,
            window: 6,
            part_secs: 0.0,
            ll_window: 12,
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
            max_spool_bytes: 4 << 30,
            upload_give_up_secs: 600,
            max_queue_bytes: 64 << 20,
            max_source_pixels: 4096 * 2160,
            max_source_dimension: 4096,
            max_segment_secs: 30.0,
        }
    }
}

impl LiveConfig {
    pub fn segment_ms(&self) -> i64 {
        ((self.segment_secs * 1000.0).round() as i64).max(500)
    }

    /// The low-latency settings, when parts are cut (`part_secs` > 0 with fMP4 segments).
    pub fn low_latency(&self) -> Option<lowlatency::LlSettings> {
        if self.part_secs <= 0.0 || self.segment_format != SegmentFormat::Fmp4 {
            return None;
        }
        let part_ms = ((self.part_secs * 1000.0).round() as i64).clamp(100, self.segment_ms());
        Some(lowlatency::LlSettings {
            part_ms,
            target_secs: self.segment_secs.round().max(1.0) as u64,
            segment_ms: self.segment_ms(),
            window: self.ll_window.max(4),
        })
    }

    /// Settings that cannot work together, in words.
    pub fn check(&self) -> Result<(), String> {
        if self.part_secs > 0.0 && self.segment_format != SegmentFormat::Fmp4 {
            return Err(
                "transcode.part_secs (low-latency HLS) needs transcode.segment_format = \"fmp4\""
                    .into(),
            );
        }
        if self.part_secs > 0.0 && self.part_secs * 1000.0 > self.segment_ms() as f64 {
            return Err("transcode.part_secs must not exceed transcode.segment_secs".into());
        }
        Ok(())
    }
}

/// How a rung's segments are packaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentFormat {
    /// MPEG-TS (`.ts`): every segment stands alone.
    #[default]
    Ts,
    /// Fragmented MP4 / CMAF (`.m4s`): media segments after an init section (`init_*.mp4`).
    Fmp4,
}

impl SegmentFormat {
    pub fn extension(self) -> &'static str {
        match self {
            SegmentFormat::Ts => "ts",
            SegmentFormat::Fmp4 => "m4s",
        }
    }

    /// The format of a segment file or URI, from its extension.
    pub fn of(path: &str) -> Self {
        if path.ends_with(".m4s") {
            SegmentFormat::Fmp4
        } else {
            SegmentFormat::Ts
        }
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

impl MediaInput {
    /// Bytes it holds (what it costs in a queue).
    pub fn size(&self) -> usize {
        match self {
            MediaInput::SourceInfo { .. } => 0,
            MediaInput::VideoConfig(b) | MediaInput::AudioConfig(b) => b.len(),
            MediaInput::Video { data, .. } | MediaInput::Audio { data, .. } => data.len(),
        }
    }
}

/// Why a take's media pipeline stopped before its input ended.
#[derive(Debug, Clone, PartialEq)]
pub enum TakeFailure {
    /// The source breaks a limit (larger than 4K, ...): the publisher should be refused.
    Refused(String),
    /// A fault in the pipeline.
    Failed(String),
}

/// A rendition as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenditionInfo {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Peak bits per second (EXT-X-STREAM-INF BANDWIDTH).
    pub bandwidth: u64,
    /// Average bits per second, once measured (AVERAGE-BANDWIDTH).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_bandwidth: Option<u64>,
    pub codecs: String,
    pub frame_rate: f64,
    /// Storage key of the media playlist (`<prefix>/<rung>/<file>`).
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

/// A broadcast: one recording and one set of playlists under a prefix, fed by one or more
/// takes ([`LiveTake`]). A publisher that reconnects starts a new take of the same
/// broadcast; its first segment in every rung is marked EXT-X-DISCONTINUITY. The playlists
/// are final once [`LiveBroadcast::finish`] was called and every take has flushed.
pub struct LiveBroadcast {
    cfg: Arc<LiveConfig>,
    prefix: String,
    spool: PathBuf,
    takes: Option<mpsc::Sender<mpsc::Receiver<pipeline::UploadJob>>>,
    uploader: tokio::task::JoinHandle<LiveSummary>,
    /// The ladder the first take chose (later takes encode the same rungs), and the live edge.
    shared: pipeline::BroadcastShared,
    take_count: u32,
}

impl LiveBroadcast {
    /// Starts the uploader (on the current tokio runtime). Objects are stored under `prefix`
    /// (e.g. `live/<video id>`); segments wait in [`LiveBroadcast::spool_dir`] until stored.
    pub fn start(
        cfg: Arc<LiveConfig>,
        store: DynStore,
        prefix: String,
        events: Option<mpsc::Sender<LiveEvent>>,
    ) -> Result<Self, TranscodeError> {
        av::init();
        let spool = spool_dir(&cfg, &prefix);
        std::fs::create_dir_all(&spool)?;
        let (takes_tx, takes_rx) = mpsc::channel(4);
        let ll = cfg
            .low_latency()
            .map(|s| Arc::new(lowlatency::LlStream::new(s)));
        let uploader = tokio::spawn(
            upload::Uploader {
                store,
                prefix: prefix.clone(),
                cfg: cfg.clone(),
                events,
                meter: spool::meter(&cfg),
                ll: ll.clone(),
            }
            .run(takes_rx),
        );
        Ok(Self {
            cfg,
            prefix,
            spool,
            takes: Some(takes_tx),
            uploader,
            shared: pipeline::BroadcastShared {
                ladder: Arc::new(Mutex::new(None)),
                ll,
            },
            take_count: 0,
        })
    }

    /// The live edge for low-latency HLS (parts, blocking reloads), when the config cuts parts.
    pub fn low_latency(&self) -> Option<Arc<lowlatency::LlStream>> {
        self.shared.ll.clone()
    }

    /// This broadcast's spool folder (one per prefix).
    pub fn spool_dir(&self) -> &std::path::Path {
        &self.spool
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many takes were started.
    pub fn takes(&self) -> u32 {
        self.take_count
    }

    /// Starts a take: media threads whose segments continue this broadcast's playlists.
    pub async fn take(&mut self) -> Result<LiveTake, TranscodeError> {
        let takes = self.takes.as_ref().ok_or(TranscodeError::Stopped)?;
        let spool = self.spool.join(format!("t{:03}", self.take_count));
        std::fs::create_dir_all(&spool)?;
        // a few thousand jobs: hours of segments; the messages are small (file names)
        let (up_tx, up_rx) = mpsc::channel(4096);
        takes
            .send(up_rx)
            .await
            .map_err(|_| TranscodeError::Stopped)?;
        let queued = Arc::new(AtomicUsize::new(0));
        let failure = Arc::new(OnceLock::new());
        if let (Some(ll), true) = (&self.shared.ll, self.take_count > 0) {
            ll.take_break();
        }
        let (tx, media) = pipeline::spawn(
            self.cfg.clone(),
            spool,
            up_tx,
            format!("{}#{}", self.prefix, self.take_count),
            self.shared.clone(),
            queued.clone(),
            failure.clone(),
        )?;
        self.take_count += 1;
        Ok(LiveTake {
            tx: Some(tx),
            media: Some(media),
            dropped: Arc::new(AtomicU64::new(0)),
            queued,
            max_queue_bytes: self.cfg.max_queue_bytes,
            failure,
        })
    }

    /// No take follows: once the takes started so far have flushed, every playlist is made
    /// final (ENDLIST, VOD playlists). Returns what was stored.
    pub async fn finish(mut self) -> Result<LiveSummary, TranscodeError> {
        // the takes have flushed: the live edge ends now, the stored playlists once stored
        if let Some(ll) = &self.shared.ll {
            ll.end();
        }
        drop(self.takes.take());
        (&mut self.uploader)
            .await
            .map_err(|_| TranscodeError::Stopped)
    }
}

/// Bytes of segments waiting in `cfg.spool_dir` to be stored (this process).
pub fn spooled_bytes(cfg: &LiveConfig) -> u64 {
    spool::meter(cfg).bytes()
}

fn spool_dir(cfg: &LiveConfig, prefix: &str) -> PathBuf {
    cfg.spool_dir.join(prefix.replace('/', "_"))
}

/// One publisher's media into a [`LiveBroadcast`]. Feed it with [`LiveTake::push`], end it
/// with [`LiveTake::finish`].
pub struct LiveTake {
    tx: Option<SyncSender<MediaInput>>,
    media: Option<std::thread::JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    /// Bytes handed over and not yet taken by the decode thread.
    queued: Arc<AtomicUsize>,
    max_queue_bytes: usize,
    failure: Arc<OnceLock<TakeFailure>>,
}

impl LiveTake {
    /// Hands media to the pipeline without ever blocking. Returns false (and counts the drop)
    /// when the pipeline is behind and its queue is full, or when it has stopped.
    pub fn push(&self, input: MediaInput) -> bool {
        let Some(tx) = &self.tx else { return false };
        let size = input.size();
        if self.queued.load(Ordering::Relaxed) + size > self.max_queue_bytes {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("caudal_ingest_dropped_total", "reason" => "queue_bytes")
                .increment(1);
            return false;
        }
        self.queued.fetch_add(size, Ordering::Relaxed);
        match tx.try_send(input) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let _ = self
                    .queued
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                        Some(q.saturating_sub(size))
                    });
                self.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("caudal_ingest_dropped_total", "reason" => "queue_full")
                    .increment(1);
                false
            }
        }
    }

    /// Set once the take's pipeline stopped on its own: the source was refused, or failed.
    pub fn failure(&self) -> Option<&TakeFailure> {
        self.failure.get()
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

    /// Ends the input and waits until every rung has cut its last segment (the uploader
    /// stores them afterwards, in order).
    pub async fn finish(mut self) -> Result<(), TranscodeError> {
        drop(self.tx.take());
        if let Some(h) = self.media.take() {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|_| TranscodeError::Stopped)?
                .ok();
        }
        Ok(())
    }
}

/// A broadcast of one take (a file, or a test): start, feed, finish.
pub struct LiveStream {
    broadcast: LiveBroadcast,
    take: LiveTake,
}

impl LiveStream {
    pub async fn start(
        cfg: Arc<LiveConfig>,
        store: DynStore,
        prefix: String,
        events: Option<mpsc::Sender<LiveEvent>>,
    ) -> Result<Self, TranscodeError> {
        let mut broadcast = LiveBroadcast::start(cfg, store, prefix, events)?;
        let take = broadcast.take().await?;
        Ok(Self { broadcast, take })
    }

    pub fn push(&self, input: MediaInput) -> bool {
        self.take.push(input)
    }

    pub fn sender(&self) -> Option<SyncSender<MediaInput>> {
        self.take.sender()
    }

    pub fn dropped(&self) -> u64 {
        self.take.dropped()
    }

    /// Ends the input, lets every rung flush its last segment, and waits until every
    /// playlist is final.
    pub async fn finish(self) -> Result<LiveSummary, TranscodeError> {
        self.take.finish().await?;
        self.broadcast.finish().await
    }
}
