//! The one configuration struct of metadata-svc.
//!
//! Loaded by `main` with [`service_kit::load_config`] from an optional TOML file
//! (`--config PATH` or `CAUDAL_METADATA_CONFIG`) and `CAUDAL_METADATA_*` environment variables,
//! e.g. `CAUDAL_METADATA_MONGO_URL`, or `CAUDAL_METADATA_MONGO_URL_FILE` naming a file that holds
//! the URL (it may carry credentials).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// Address of the internal HTTP API (`/internal/v1/...`) that bff, ingest and the
    /// transcoder call. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Address serving Prometheus `/metrics` and `/healthz`, kept apart from the API.
    pub metrics_listen: SocketAddr,
    /// MongoDB connection string. Secrets: prefer `CAUDAL_METADATA_MONGO_URL_FILE`.
    pub mongo_url: String,
    /// Database holding the `videos`, `video_stats` and `cleanup` collections.
    pub database: String,
    /// How long finding a server or opening a connection may take before a request fails
    /// with 503 `unavailable` (also bounds start-up when the database is down).
    pub connect_timeout_ms: u64,
    /// Upper bound on one database operation; past it the request fails with 503.
    pub op_timeout_ms: u64,
    /// Most connections to the database this process opens.
    pub max_pool_size: u32,
    /// How long a `GET` answer (one video; a list, search or trending page) is served from
    /// this process's memory before it is read again. Writes through this process invalidate
    /// at once, so this bounds staleness only for writes made through other replicas (run
    /// several replicas? keep it short) and for counters shown in lists. 0 turns the cache off.
    pub cache_ttl_ms: u64,
    /// How much longer an expired answer may still be served while one background read
    /// refreshes it (or while the database is unreachable).
    pub cache_stale_ms: u64,
    /// Most entries each read cache keeps (videos; list pages).
    pub cache_capacity: usize,
    /// Redis URL over which instances tell each other which videos changed, so that a write
    /// through one is not served stale by another's read cache; empty: this instance is alone.
    pub shared_state_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8083)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9083)),
            mongo_url: "mongodb://127.0.0.1:27017/?directConnection=true".into(),
            database: "caudal".into(),
            connect_timeout_ms: 2_000,
            op_timeout_ms: 5_000,
            max_pool_size: 32,
            cache_ttl_ms: 30_000,
            cache_stale_ms: 30_000,
            cache_capacity: 50_000,
            shared_state_url: String::new(),
        }
    }
}

impl Config {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }
    pub fn op_timeout(&self) -> Duration {
        Duration::from_millis(self.op_timeout_ms.max(1))
    }
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_millis(self.cache_ttl_ms)
    }
    pub fn cache_stale(&self) -> Duration {
        Duration::from_millis(self.cache_stale_ms)
    }
}

pub use service_kit::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_url("mongodb://u:secret@db:27017/x"),
            "mongodb://u:***@db:27017/x"
        );
        assert_eq!(redact_url("mongodb://db:27017"), "mongodb://db:27017");
    }

    #[test]
    fn defaults() {
        let c = Config::default();
        assert_eq!(c.listen.port(), 8083);
        assert_eq!(c.metrics_listen.port(), 9083);
        assert_eq!(c.database, "caudal");
    }
}
