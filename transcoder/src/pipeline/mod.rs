//! The media side of a stream: one decode thread and one thread per rung.
//!
//! ```text
//! MediaInput --sync_channel--> decode thread --sync_channel--> rung thread (scale+x264+segment) --> upload jobs
//!                                   |  (AVCC packets)    \---> passthrough rung (segment only) --> upload jobs
//! ```
//! Every channel is bounded. Segments are written to the spool folder, and only the
//! file name travels to the uploader.
//!
//! - [`decode`]: the decode thread: parses nothing (ingest hands it parsed media), decodes
//!   once, picks the ladder on the first picture and fans pictures and packets out.
//! - [`rung`]: a rung's thread: scales and encodes pictures (or copies packets).
//! - [`segmenter`]: cuts a rung's packets into segments on the keyframe grid and spools them.

mod decode;
mod rung;
mod segmenter;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use ff::{codec, Packet};
use ffmpeg_next as ff;

use crate::ladder::RungDesc;
use crate::lowlatency::LlStream;

pub(crate) use decode::spawn;
pub use segmenter::SpoolSidecar;

/// What every take of a broadcast shares.
#[derive(Clone, Default)]
pub(crate) struct BroadcastShared {
    /// The ladder the first take chose; later takes encode the same rungs.
    pub ladder: Arc<Mutex<Option<Vec<RungDesc>>>>,
    /// The live edge, when parts are cut for low-latency HLS.
    pub ll: Option<Arc<LlStream>>,
}

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
    /// fMP4: the file name of the init section the segment needs, in the same folder.
    pub init: Option<String>,
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

/// The first grid point after `start_ms`: where the next segment may start.
pub(crate) fn grid_next(start_ms: i64, target_ms: i64) -> i64 {
    (start_ms.div_euclid(target_ms) + 1) * target_ms
}
