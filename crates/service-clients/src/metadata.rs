//! The video document as it crosses the wire, and calls to metadata-svc.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::transport::{BadUrl, Budget, Transport};
use crate::ClientError;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum VideoKind {
    Live,
    Upload,
}

/// Lifecycle. Upload: created -> uploading -> processing -> ready | failed.
/// Live: live -> ended -> recorded (the recording is playable as VOD).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum VideoStatus {
    Created,
    Uploading,
    Processing,
    Ready,
    Failed,
    Live,
    Ended,
    Recorded,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    #[default]
    Public,
    Unlisted,
    Private,
}

/// Who may watch. `price_minor` and `currency` only for `purchase`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(tag = "policy", rename_all = "snake_case")]
pub enum AccessPolicy {
    #[default]
    Free,
    Subscribers,
    Purchase {
        price_minor: i64,
        currency: String,
    },
}

/// One rung of the ladder as published in the master playlist.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Rendition {
    /// e.g. `720p`, `source`.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Peak bits per second.
    pub bandwidth: u64,
    pub codecs: String,
    pub frame_rate: f64,
    /// Storage key of the rung's media playlist.
    pub playlist: String,
}

/// Storage keys of the playlists (relative to the media root the edge serves).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct PlaybackLocations {
    /// Master playlist of the live stream (or of the upload).
    pub master: Option<String>,
    /// Master playlist of the whole recorded broadcast, once ended.
    pub vod_master: Option<String>,
    /// Master playlist of the low-latency HLS edge of a broadcast on air (parts and blocking
    /// reloads, served by ingest's live origin through the edge), when it cuts parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_latency: Option<String>,
}

/// `POST /internal/v1/videos`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewVideo {
    /// Chosen by the caller (ingest names storage paths before metadata answers); the
    /// service generates one when absent.
    #[serde(default)]
    pub id: Option<String>,
    pub owner_id: String,
    pub kind: VideoKind,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub access: AccessPolicy,
    /// Initial status: `live` for broadcasts, `created` for uploads (the default).
    #[serde(default)]
    pub status: Option<VideoStatus>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
    #[serde(default)]
    pub playback: PlaybackLocations,
}

/// `POST /internal/v1/videos/{id}/status`: a lifecycle transition plus what became known.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct StatusChange {
    pub status: Option<VideoStatus>,
    #[serde(default)]
    pub at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration_secs: Option<f64>,
    #[serde(default)]
    pub renditions: Option<Vec<Rendition>>,
    #[serde(default)]
    pub playback: Option<PlaybackLocations>,
    /// Why the video is `failed`, in words for its owner.
    #[serde(default)]
    pub failure: Option<String>,
    /// Storage key of the poster image.
    #[serde(default)]
    pub poster: Option<String>,
    /// Storage key of the storyboard's WebVTT track (scrubbing thumbnails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storyboard: Option<String>,
    /// How far processing has come, percent (0-100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Counters {
    pub views: i64,
    pub likes: i64,
}

/// A video document as metadata-svc returns it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Video {
    pub id: String,
    pub owner_id: String,
    pub kind: VideoKind,
    pub status: VideoStatus,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub visibility: Visibility,
    pub access: AccessPolicy,
    #[serde(default)]
    pub duration_secs: Option<f64>,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
    #[serde(default)]
    pub playback: PlaybackLocations,
    #[serde(default)]
    pub poster: Option<String>,
    /// Storage key of the storyboard's WebVTT track; its cues name sprite sheets beside it.
    #[serde(default)]
    pub storyboard: Option<String>,
    /// How far processing has come, percent (0-100), while `processing`.
    #[serde(default)]
    pub progress: Option<f64>,
    /// Why the video is `failed` (a file that is not a video, ...), for its owner.
    #[serde(default)]
    pub failure: Option<String>,
    #[serde(default)]
    pub counters: Counters,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub published_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Optimistic-concurrency version; bumped on every write.
    pub version: i64,
}

/// A deleted video whose media is still in storage (`GET /internal/v1/cleanup`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CleanupTask {
    pub video_id: String,
    pub owner_id: String,
    /// Folders holding only this video's objects (`live/{id}/`).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Single objects outside such folders.
    #[serde(default)]
    pub keys: Vec<String>,
    pub deleted_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct CleanupPage {
    items: Vec<CleanupTask>,
}

/// One page of a catalog list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VideoPage {
    pub items: Vec<Video>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Trending {
    items: Vec<TrendingItem>,
}

#[derive(Deserialize)]
struct TrendingItem {
    video: Video,
}

/// metadata-svc's API: every call ingest, the transcoder and bff make to the catalog.
#[derive(Clone)]
pub struct MetadataClient {
    t: Transport,
}

impl MetadataClient {
    /// `base` is metadata-svc's root URL, e.g. `http://127.0.0.1:8083`; one timeout for every
    /// call.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, BadUrl> {
        Ok(Self::with(Transport::new(
            "metadata-svc",
            base,
            timeout,
            timeout,
        )?))
    }

    pub fn with(t: Transport) -> Self {
        Self { t }
    }

    pub fn transport(&self) -> &Transport {
        &self.t
    }

    fn get(&self, segments: &[&str]) -> reqwest::RequestBuilder {
        self.t.get(segments)
    }

    pub async fn create_video(&self, v: &NewVideo) -> Result<Video, ClientError> {
        let req = self.t.post(&["internal", "v1", "videos"]).json(v);
        self.t.json(req, Budget::Write).await
    }

    pub async fn change_status(
        &self,
        id: &str,
        change: &StatusChange,
    ) -> Result<Video, ClientError> {
        let req = self
            .t
            .post(&["internal", "v1", "videos", id, "status"])
            .json(change);
        self.t.json(req, Budget::Write).await
    }

    /// `None` for an unknown (or deleted) video.
    pub async fn get_video(&self, id: &str) -> Result<Option<Video>, ClientError> {
        self.t
            .json_or_none(self.get(&["internal", "v1", "videos", id]), Budget::Read)
            .await
    }

    /// Deleted videos whose storage is not cleaned up yet, oldest first.
    pub async fn pending_cleanup(&self, limit: usize) -> Result<Vec<CleanupTask>, ClientError> {
        let req = self
            .get(&["internal", "v1", "cleanup"])
            .query(&[("limit", limit)]);
        let page: CleanupPage = self.t.json(req, Budget::Read).await?;
        Ok(page.items)
    }

    /// Marks a video's storage as cleaned up. `Ok(false)`: it was not pending (done already).
    pub async fn complete_cleanup(&self, video_id: &str) -> Result<bool, ClientError> {
        let req = self
            .t
            .post(&["internal", "v1", "cleanup", video_id, "done"]);
        match self.t.empty(req, Budget::Write).await {
            Ok(()) => Ok(true),
            Err(ClientError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Broadcasts on air, newest first.
    pub async fn live(&self, limit: usize) -> Result<VideoPage, ClientError> {
        let req = self
            .get(&["internal", "v1", "videos", "live"])
            .query(&[("limit", limit)]);
        self.t.json(req, Budget::Read).await
    }

    /// Public recorded broadcasts and ready uploads, newest first.
    pub async fn recent(&self, limit: usize) -> Result<VideoPage, ClientError> {
        let req = self.get(&["internal", "v1", "videos"]).query(&[
            ("status", "recorded,ready"),
            ("visibility", "public"),
            ("limit", &limit.to_string()),
        ]);
        self.t.json(req, Budget::Read).await
    }

    /// The most viewed public videos of the last days.
    pub async fn trending(&self, limit: usize) -> Result<Vec<Video>, ClientError> {
        let req = self
            .get(&["internal", "v1", "videos", "trending"])
            .query(&[("limit", limit)]);
        let t: Trending = self.t.json(req, Budget::Read).await?;
        Ok(t.items.into_iter().map(|i| i.video).collect())
    }

    pub async fn search(
        &self,
        q: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<VideoPage, ClientError> {
        let mut query = vec![("q", q.to_string()), ("limit", limit.to_string())];
        if let Some(c) = cursor {
            query.push(("cursor", c.to_string()));
        }
        let req = self.get(&["internal", "v1", "search"]).query(&query);
        self.t.json(req, Budget::Read).await
    }

    /// Every video of `owner`, any status and visibility, newest first.
    pub async fn creator_videos(
        &self,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<VideoPage, ClientError> {
        self.creator_page(owner, cursor, limit, &[]).await
    }

    /// `owner`'s public videos a viewer can watch or wait for (live, recorded, ready),
    /// newest first.
    pub async fn creator_public_videos(
        &self,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<VideoPage, ClientError> {
        let only = [("visibility", "public"), ("status", "live,recorded,ready")];
        self.creator_page(owner, cursor, limit, &only).await
    }

    /// One page of `GET /internal/v1/creators/{owner}/videos`, narrowed by `filters`.
    async fn creator_page(
        &self,
        owner: &str,
        cursor: Option<&str>,
        limit: usize,
        filters: &[(&str, &str)],
    ) -> Result<VideoPage, ClientError> {
        let limit = limit.to_string();
        let mut query: Vec<(&str, &str)> = vec![("limit", &limit)];
        query.extend_from_slice(filters);
        if let Some(c) = cursor {
            query.push(("cursor", c));
        }
        let req = self
            .get(&["internal", "v1", "creators", owner, "videos"])
            .query(&query);
        self.t.json(req, Budget::Read).await
    }

    /// Counts one view (`POST /internal/v1/videos/{id}/views`); trending ranks by these.
    pub async fn add_view(&self, id: &str) -> Result<(), ClientError> {
        let req = self.t.post(&["internal", "v1", "videos", id, "views"]);
        self.t.empty(req, Budget::Read).await
    }

    /// `DELETE /internal/v1/videos/{id}`: soft delete; the catalog records the video's storage
    /// for the cleanup worker. `false` when there was no such video.
    pub async fn delete(&self, id: &str) -> Result<bool, ClientError> {
        let req = self
            .t
            .request(reqwest::Method::DELETE, &["internal", "v1", "videos", id]);
        match self.t.empty(req, Budget::Read).await {
            Ok(()) => Ok(true),
            Err(ClientError::Api { status: 404, .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `PATCH /internal/v1/videos/{id}` with `expected_version` and the fields to change.
    pub async fn edit(&self, id: &str, body: &serde_json::Value) -> Result<Video, ClientError> {
        let req = self
            .t
            .request(reqwest::Method::PATCH, &["internal", "v1", "videos", id])
            .json(body);
        self.t.json(req, Budget::Read).await
    }
}
