//! Object storage for media: a small [`ObjectStore`] trait with two backends,
//! [`LocalStore`] (a folder; the single-machine default) and [`S3Store`] (aws-sdk-s3,
//! for AWS and any S3-compatible server). [`contract`] is the test suite both must pass.

pub mod contract;
mod local;
mod s3;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use local::LocalStore;
pub use s3::{S3Config, S3Store};

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    #[error("storage i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage backend error: {0}")]
    Backend(String),
}

/// HTTP headers stored with an object and served by the origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub content_type: String,
    pub cache_control: String,
}

/// What `head` reports about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub size: u64,
    pub meta: ObjectMeta,
}

/// How long caches may keep an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePolicy {
    /// Never changes once written (segments): cached for a year.
    Immutable,
    /// Rewritten every target duration (live playlists): at most one second.
    Live,
    /// Written once at the end but may be replaced (VOD playlists, master playlists).
    Short,
}

impl ObjectMeta {
    /// Content type from the key's extension, cache policy from the caller.
    pub fn for_key(key: &str, policy: CachePolicy) -> Self {
        let content_type = match key.rsplit('.').next().unwrap_or("") {
            "m3u8" => "application/vnd.apple.mpegurl",
            "ts" => "video/mp2t",
            "m4s" => "video/iso.segment",
            "mp4" => "video/mp4",
            "jpg" | "jpeg" => "image/jpeg",
            "png" => "image/png",
            "json" => "application/json",
            "vtt" => "text/vtt",
            _ => "application/octet-stream",
        }
        .to_string();
        let cache_control = match policy {
            CachePolicy::Immutable => "public, max-age=31536000, immutable",
            CachePolicy::Live => "public, max-age=1, stale-while-revalidate=2",
            CachePolicy::Short => "public, max-age=10",
        }
        .to_string();
        Self {
            content_type,
            cache_control,
        }
    }
}

/// A flat key/value object store. Keys are `/`-separated relative paths without `..`.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores `body` under `key`, replacing any previous object atomically
    /// (readers see the old or the new object, never a partial one).
    async fn put(&self, key: &str, body: Bytes, meta: &ObjectMeta) -> Result<(), StorageError>;
    async fn get(&self, key: &str) -> Result<Bytes, StorageError>;
    async fn head(&self, key: &str) -> Result<ObjectInfo, StorageError>;
    /// Deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Every key starting with `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// A short name for logs (`local`, `s3`).
    fn backend(&self) -> &'static str;

    /// `len` bytes of an object from `offset` (fewer at its end), to read large objects in
    /// bounded pieces.
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StorageError>;

    /// Starts writing a large object in parts; returns the write's id. Nothing is visible
    /// under `key` until [`ObjectStore::multipart_complete`].
    async fn multipart_start(&self, key: &str, meta: &ObjectMeta) -> Result<String, StorageError>;
    /// Stores part `number` (1-based; every part but the last at least
    /// [`MIN_PART_BYTES`]); returns its tag for `multipart_complete`. Storing the same number
    /// again replaces it.
    async fn multipart_put(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, StorageError>;
    /// Makes `key` the parts in order, atomically.
    async fn multipart_complete(
        &self,
        key: &str,
        upload: &str,
        parts: &[Part],
    ) -> Result<(), StorageError>;
    /// Drops a write and its parts.
    async fn multipart_abort(&self, key: &str, upload: &str) -> Result<(), StorageError>;
}

/// S3's smallest part but the last.
pub const MIN_PART_BYTES: usize = 5 << 20;

/// A stored part of a multipart write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub number: u32,
    pub tag: String,
    pub size: u64,
}

pub type DynStore = Arc<dyn ObjectStore>;

/// Checks a key: non-empty, relative, no `.`/`..` segments, no backslashes or NULs.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\\')
        || key.contains('\0')
        || key
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        Err(StorageError::InvalidKey(key.to_string()))
    } else {
        Ok(())
    }
}

/// Which backend to use, as it appears in service configs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum StoreConfig {
    /// A local folder.
    Local { root: std::path::PathBuf },
    /// S3 or an S3-compatible server.
    S3(S3Config),
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig::Local {
            root: ".caudal/media".into(),
        }
    }
}

impl StoreConfig {
    pub async fn open(&self) -> Result<DynStore, StorageError> {
        Ok(match self {
            StoreConfig::Local { root } => Arc::new(LocalStore::new(root)?),
            StoreConfig::S3(cfg) => Arc::new(S3Store::connect(cfg.clone()).await?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(validate_key("live/abc/720p/seg_00001.ts").is_ok());
        for bad in ["", "/abs", "a/../b", "a//b", "./a", "a\\b", "a/"] {
            assert!(validate_key(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn meta_from_extension_and_policy() {
        let m = ObjectMeta::for_key("x/seg_1.ts", CachePolicy::Immutable);
        assert_eq!(m.content_type, "video/mp2t");
        assert!(m.cache_control.contains("immutable"));
        let p = ObjectMeta::for_key("x/index.m3u8", CachePolicy::Live);
        assert_eq!(p.content_type, "application/vnd.apple.mpegurl");
        assert!(p.cache_control.contains("max-age=1"));
    }
}
