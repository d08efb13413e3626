//! What ingest says about the broadcasts it runs (`GET /v1/streams`, `/v1/streams/{id}`), and
//! the call bff's studio makes for a broadcast's health.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::transport::{BadUrl, Budget, Transport};
use crate::ClientError;

/// A broadcast in progress on one ingest instance.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LiveEntry {
    pub video_id: String,
    pub owner_id: String,
    pub started_at: DateTime<Utc>,
    pub master_playlist: String,
    /// The publisher dropped; the broadcast waits for it to reconnect.
    pub reconnecting: bool,
    /// The input's figures and advice, refreshed every 2 s while a publisher sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// What the creator's studio shows about a live input, measured over the last seconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    /// When it was measured.
    pub at: DateTime<Utc>,
    /// Audio and video received, kbit/s.
    pub input_kbps: f64,
    /// Video frames per second received.
    pub frame_rate: f64,
    /// Seconds between the last two keyframes (None: fewer than two seen yet).
    pub keyframe_interval_secs: Option<f64>,
    /// Last audio timestamp minus last video timestamp, ms (None: no audio or no video).
    pub av_drift_ms: Option<i64>,
    /// Media the server dropped in this take (queue full, oversize, ...).
    pub dropped: u64,
    /// The frame rate the encoder announced (onMetaData), if any.
    pub declared_frame_rate: Option<f64>,
    /// What to change in OBS, in its words.
    #[serde(default)]
    pub advice: Vec<String>,
}

/// One ingest instance's HTTP API.
#[derive(Clone)]
pub struct IngestClient {
    t: Transport,
}

impl IngestClient {
    /// `base` is the instance's HTTP root, e.g. `http://127.0.0.1:8081`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, BadUrl> {
        Ok(Self::with(Transport::new(
            "ingest", base, timeout, timeout,
        )?))
    }

    pub fn with(t: Transport) -> Self {
        Self { t }
    }

    /// The broadcasts this instance runs (live or waiting for their publisher), oldest first.
    pub async fn streams(&self) -> Result<Vec<LiveEntry>, ClientError> {
        self.t
            .json(self.t.get(&["v1", "streams"]), Budget::Read)
            .await
    }

    /// The broadcasts this instance runs itself (`?scope=local`): what one instance asks the
    /// others to list a cluster's broadcasts.
    pub async fn streams_here(&self) -> Result<Vec<LiveEntry>, ClientError> {
        let req = self.t.get(&["v1", "streams"]).query(&[("scope", "local")]);
        self.t.json(req, Budget::Read).await
    }

    /// The broadcast of `video_id` if it runs (in cluster mode, on any instance); `None` if
    /// it does not.
    pub async fn stream(&self, video_id: &str) -> Result<Option<LiveEntry>, ClientError> {
        self.t
            .json_or_none(self.t.get(&["v1", "streams", video_id]), Budget::Read)
            .await
    }

    /// The broadcast of `video_id` if this instance runs it itself (`?scope=local`): what
    /// one instance asks the instance that runs it.
    pub async fn stream_here(&self, video_id: &str) -> Result<Option<LiveEntry>, ClientError> {
        let req = self
            .t
            .get(&["v1", "streams", video_id])
            .query(&[("scope", "local")]);
        self.t.json_or_none(req, Budget::Read).await
    }
}
