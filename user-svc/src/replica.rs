//! Reads that tolerate replication lag, sent to a MariaDB replica (`replica_database_url`).
//!
//! Only public, lag-tolerant reads go there: a creator's plan as shown to others, public
//! profiles. Everything about money and access (purchases, subscriptions, entitlements,
//! stream keys, sessions) stays on the primary.
//!
//! - **Read your writes.** A write to a user's plan or profile marks that user as *recently
//!   written* for `replica_read_after_write_secs`: reads of that user's rows go to the primary
//!   meanwhile, whoever asks, so the writer (and everyone else) sees the write at once. The
//!   mark is shared with the other instances over the shared state's invalidation channel
//!   (`caudal:user:wrote`), so it holds whichever instance the next read reaches.
//! - **Losing the replica.** A read that fails there is retried on the primary (the caller
//!   sees no error), and the replica is left alone for `replica_retry_secs` before it is
//!   tried again. `user_svc_replica_reads_total{outcome}` counts where reads went.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use service_kit::shared::{Invalidations, Shared};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::MySqlPool;

use crate::config::Config;
use crate::error::Result;
use crate::state::AppState;

pub struct Replica {
    pool: MySqlPool,
    down_until: Mutex<Option<Instant>>,
    retry: Duration,
    window: Duration,
    /// User id -> until when their rows are read from the primary.
    recent: Mutex<HashMap<String, Instant>>,
    bus: OnceLock<Invalidations>,
}

impl Replica {
    /// A pool that connects when first used: a replica that is down at start-up is only
    /// a reason to read from the primary.
    pub fn open(config: &Config) -> anyhow::Result<Option<Self>> {
        if config.replica_database_url.trim().is_empty() {
            return Ok(None);
        }
        let pool = MySqlPoolOptions::new()
            .max_connections(config.database_max_connections)
            .acquire_timeout(Duration::from_secs(1))
            .test_before_acquire(false)
            .connect_lazy(&config.replica_database_url)
            .map_err(|e| {
                anyhow::anyhow!(
                    "replica_database_url {}: {e}",
                    service_kit::redact_url(&config.replica_database_url)
                )
            })?;
        Ok(Some(Self {
            pool,
            down_until: Mutex::new(None),
            retry: Duration::from_secs(config.replica_retry_secs.max(1)),
            window: Duration::from_secs(config.replica_read_after_write_secs),
            recent: Mutex::new(HashMap::new()),
            bus: OnceLock::new(),
        }))
    }

    /// Shares the read-your-writes marks with the other instances.
    pub fn share(
        self: &std::sync::Arc<Self>,
        shared: &Shared,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let bus = Invalidations::new(shared, "caudal:user:wrote");
        let me = self.clone();
        bus.listen(move |user| me.mark(user), || {}, shutdown);
        let _ = self.bus.set(bus);
    }

    fn mark(&self, user: &str) {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() > 10_000 {
            recent.retain(|_, until| *until > now);
        }
        recent.insert(user.to_string(), now + self.window);
    }

    /// Why these rows must be read from the primary now, if they must.
    fn primary_because(&self, owners: &[&str]) -> Option<&'static str> {
        let now = Instant::now();
        if matches!(*self.down_until.lock().unwrap_or_else(|p| p.into_inner()), Some(t) if t > now)
        {
            return Some("primary_replica_down");
        }
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        owners
            .iter()
            .any(|o| recent.get(*o).is_some_and(|until| *until > now))
            .then_some("primary_recent_write")
    }
}

/// After a write to `user`'s plan or profile (call it once the write committed).
pub async fn wrote(state: &AppState, user: &str) {
    if let Some(r) = &state.replica {
        r.mark(user);
        if let Some(bus) = r.bus.get() {
            bus.publish(user).await;
        }
    }
}

fn count(outcome: &'static str) {
    metrics::counter!("user_svc_replica_reads_total", "outcome" => outcome).increment(1);
}

/// Runs `read` on the replica when that is allowed for rows owned by `owners`, else (or when
/// it fails there) on the primary.
pub async fn read<T, F, Fut>(state: &AppState, owners: &[&str], read: F) -> Result<T>
where
    F: Fn(MySqlPool) -> Fut,
    Fut: Future<Output = std::result::Result<T, sqlx::Error>>,
{
    if let Some(r) = &state.replica {
        if let Some(because) = r.primary_because(owners) {
            count(because);
        } else {
            match read(r.pool.clone()).await {
                Ok(v) => {
                    count("replica");
                    return Ok(v);
                }
                Err(e) => {
                    count("fallback");
                    let connection = matches!(
                        e,
                        sqlx::Error::Io(_)
                            | sqlx::Error::PoolTimedOut
                            | sqlx::Error::PoolClosed
                            | sqlx::Error::Tls(_)
                            | sqlx::Error::Protocol(_)
                    );
                    if connection {
                        *r.down_until.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(Instant::now() + r.retry);
                    }
                    tracing::warn!(error = %e, connection, "replica read failed; reading from the primary");
                }
            }
        }
    }
    Ok(read(state.db.clone()).await?)
}
