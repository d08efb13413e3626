//! The storage role of the catalog: [`VideoRepo`], and the queries it answers.
//!
//! [`crate::mongo::MongoRepo`] is the implementation; [`crate::contract::run`] is the behaviour
//! every implementation must have.

use async_trait::async_trait;
use base64::Engine;
use mongodb::bson;
use serde::{Deserialize, Serialize};
use service_clients::metadata::{Counters, VideoKind, VideoStatus, Visibility};

use crate::error::Error;
use crate::model::{StatusUpdate, StorageLocations, VideoDoc, VideoPatch};

/// Which videos a list shows. Empty fields do not filter. Deleted videos never appear.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    pub owner_id: Option<String>,
    /// Any of these statuses.
    pub statuses: Vec<VideoStatus>,
    pub kind: Option<VideoKind>,
    /// A normalised (lowercase, trimmed) tag.
    pub tag: Option<String>,
    pub visibility: Option<Visibility>,
}

/// The position after the last item of a page: lists run newest first on `(list_at, id)`,
/// a total order, so a page starting strictly after it neither repeats nor skips a video
/// however many videos are published meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor<'a> {
    pub list_at: bson::DateTime,
    pub id: &'a str,
}

/// An owned [`ListCursor`], decoded from the opaque string clients send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub list_at: bson::DateTime,
    pub id: String,
    /// Search only: the rank tier of the last item (0 = every word in the title).
    pub tier: u32,
}

impl Cursor {
    pub fn after(doc: &VideoDoc, tier: u32) -> Self {
        Self {
            list_at: doc.list_at,
            id: doc.id.clone(),
            tier,
        }
    }

    pub fn as_list(&self) -> ListCursor<'_> {
        ListCursor {
            list_at: self.list_at,
            id: &self.id,
        }
    }

    /// URL-safe base64 of `1|tier|millis|id`.
    pub fn encode(&self) -> String {
        let raw = format!(
            "1|{}|{}|{}",
            self.tier,
            self.list_at.timestamp_millis(),
            self.id
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Result<Self, Error> {
        let bad = || Error::invalid("cursor", "is not a cursor this service handed out");
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.splitn(4, '|');
        if parts.next() != Some("1") {
            return Err(bad());
        }
        let tier = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let millis: i64 = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let id = parts.next().filter(|id| !id.is_empty()).ok_or_else(bad)?;
        Ok(Self {
            list_at: bson::DateTime::from_millis(millis),
            id: id.to_string(),
            tier,
        })
    }
}

/// One page of a list, newest first, and the cursor of the next page when there may be one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<VideoDoc>,
    pub next: Option<Cursor>,
}

/// What a search asks the repository for: public watchable videos whose keywords hold every
/// word of `words` and, when `prefix` is set, a keyword starting with it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeywordQuery {
    pub words: Vec<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterKind {
    Views,
    Likes,
}

impl CounterKind {
    pub fn field(self) -> &'static str {
        match self {
            CounterKind::Views => "views",
            CounterKind::Likes => "likes",
        }
    }
}

/// A video's activity in the trending window.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendingEntry {
    pub video: VideoDoc,
    pub views: i64,
    pub likes: i64,
}

/// A deleted video's storage, waiting for the object cleanup job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanupTask {
    pub video_id: String,
    pub owner_id: String,
    #[serde(flatten)]
    pub locations: StorageLocations,
    pub deleted_at: chrono::DateTime<chrono::Utc>,
}

/// Whether `create` inserted the video or found the same one already there (a retried call).
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub video: VideoDoc,
    pub inserted: bool,
}

#[async_trait]
pub trait VideoRepo: Send + Sync + 'static {
    /// Inserts a checked document (see [`crate::model::new_document`]). An existing video with
    /// the same id, owner and kind is returned as is (`inserted: false`), so a caller may retry;
    /// any other existing id is [`Error::AlreadyExists`].
    async fn create(&self, doc: VideoDoc) -> Result<Created, Error>;

    /// A video that is not deleted.
    async fn get(&self, id: &str) -> Result<Option<VideoDoc>, Error>;

    /// Applies a lifecycle transition atomically: the transition is checked against the stored
    /// status and written only if nothing changed the video since it was read.
    async fn change_status(
        &self,
        id: &str,
        update: &StatusUpdate,
        now: bson::DateTime,
    ) -> Result<VideoDoc, Error>;

    /// Applies a checked patch if the stored version is `expected_version`, else
    /// [`Error::VersionConflict`].
    async fn update(
        &self,
        id: &str,
        expected_version: i64,
        patch: &VideoPatch,
        now: bson::DateTime,
    ) -> Result<VideoDoc, Error>;

    /// Marks the video deleted and records its storage for cleanup. Deleting a deleted video
    /// succeeds again (and makes sure the cleanup record exists).
    async fn soft_delete(
        &self,
        id: &str,
        expected_version: Option<i64>,
        now: bson::DateTime,
    ) -> Result<(), Error>;

    /// Videos matching `filter`, newest first, strictly after `after`.
    async fn list(
        &self,
        filter: &ListFilter,
        after: Option<ListCursor<'_>>,
        limit: usize,
    ) -> Result<Page, Error>;

    /// Up to `max` public watchable videos matching `query`, newest first.
    async fn search_candidates(
        &self,
        query: &KeywordQuery,
        max: usize,
    ) -> Result<Vec<VideoDoc>, Error>;

    /// Adds one to a counter atomically and returns the counters; the hourly bucket used by
    /// [`Self::trending`] may be written a little later (see [`Self::flush`]).
    async fn increment(
        &self,
        id: &str,
        counter: CounterKind,
        now: bson::DateTime,
    ) -> Result<Counters, Error>;

    /// Public watchable videos with the most views (then likes) in buckets after `since`.
    async fn trending(
        &self,
        since: bson::DateTime,
        limit: usize,
    ) -> Result<Vec<TrendingEntry>, Error>;

    /// Cleanup records not yet done, oldest deletion first.
    async fn pending_cleanup(&self, limit: usize) -> Result<Vec<CleanupTask>, Error>;

    /// Marks a cleanup record done; false when there was none pending.
    async fn complete_cleanup(&self, video_id: &str) -> Result<bool, Error>;

    /// Writes anything buffered (hourly buckets). Called at shutdown.
    async fn flush(&self) -> Result<(), Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let c = Cursor {
            list_at: bson::DateTime::from_millis(1_700_000_000_123),
            id: "a|b".into(),
            tier: 2,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "!!",
            "MXx4",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("2|0|1|x"),
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(Error::Invalid { ref field, .. }) if field == "cursor"),
                "{bad}"
            );
        }
    }
}
