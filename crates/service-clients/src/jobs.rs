//! Payloads of the jobs on the work queue (the `jobs` crate carries them).

use serde::{Deserialize, Serialize};

/// Transcode an uploaded original into the HLS ladder, with a poster and a storyboard.
/// Idempotent: running it again overwrites the same keys.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TranscodeJob {
    pub video_id: String,
    /// Storage key of the original (`uploads/{id}/source`).
    pub source_key: String,
}

impl TranscodeJob {
    /// The job kind on the queue (`<subject prefix>.transcode`).
    pub const KIND: &'static str = "transcode";
}

/// Make the poster and the storyboard of a finished broadcast's recording (queued by ingest
/// when a broadcast is recorded). Idempotent, and a recording that already has both is left
/// alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArtworkJob {
    pub video_id: String,
    /// Storage key of the recording's master playlist (`live/{id}/vod.m3u8`).
    pub playlist_key: String,
}

impl ArtworkJob {
    pub const KIND: &'static str = "artwork";
}
