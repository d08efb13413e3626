//! State that must agree across ingest instances, in Redis (`shared_state_url`):
//!
//! - **Key leases.** One publisher per stream key across every instance: an instance holds
//!   `caudal:ingest:lease:<key id>` (value: its instance id, a TTL of `lease_ttl_secs`) while
//!   a broadcast of that key is live or held there, renewing it every third of the TTL. A
//!   publish on another instance finds it held and is refused. A crashed instance's leases
//!   lapse with their TTL.
//! - **Heartbeats and the reaper.** Every broadcast is in the sorted set
//!   `caudal:ingest:broadcasts` (score: its last heartbeat, ms) with its marker in
//!   `caudal:ingest:broadcast:<video id>`. A broadcast whose heartbeat is older than
//!   `reaper_timeout_secs` belongs to an instance that died and did not come back: any
//!   instance claims it (`caudal:ingest:reaping:<video id>`, NX) and finishes it from storage.
//!
//! - **Live origins.** The marker's hash also holds `origin`: the base URL of the instance's
//!   HTTP listener, where its low-latency broadcasts' live edge is served. An instance asked for
//!   a broadcast it does not run forwards the request there ([`crate::origin`]), so a balancer
//!   may send any request to any instance.
//!
//! Without `shared_state_url` an instance is alone: leases are its own registry, and its
//! own restart finishes what it left (the spool marker).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::broadcast::Marker;

const LEASE: &str = "caudal:ingest:lease:";
const BROADCASTS: &str = "caudal:ingest:broadcasts";
const BROADCAST: &str = "caudal:ingest:broadcast:";
const REAPING: &str = "caudal:ingest:reaping:";

#[derive(Debug, thiserror::Error)]
#[error("shared state (redis): {0}")]
pub struct ClusterError(#[from] redis::RedisError);

#[derive(Clone)]
pub struct Cluster {
    con: ConnectionManager,
    pub instance: String,
    lease_ttl: Duration,
    /// Where other instances reach this one's live origin (`http://host:port`), set once the
    /// HTTP listener is bound.
    pub origin: std::sync::Arc<std::sync::OnceLock<String>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Cluster {
    pub async fn connect(
        url: &str,
        instance: String,
        lease_ttl: Duration,
    ) -> Result<Self, ClusterError> {
        let client = redis::Client::open(url)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(2);
        let con = ConnectionManager::new_with_config(client, cfg).await?;
        Ok(Self {
            con,
            instance,
            lease_ttl,
            origin: Default::default(),
        })
    }

    /// The live origin of the instance running broadcast `video_id`, if another one does.
    pub async fn origin_of(&self, video_id: &str) -> Result<Option<String>, ClusterError> {
        let origin: Option<String> = redis::cmd("HGET")
            .arg(format!("{BROADCAST}{video_id}"))
            .arg("origin")
            .query_async(&mut self.con.clone())
            .await?;
        let mine = self.origin.get().map(String::as_str).unwrap_or("");
        Ok(origin.filter(|o| !o.is_empty() && o != mine))
    }

    /// Takes the key's lease for this instance, or renews it if this instance holds it.
    /// False: another instance holds it.
    pub async fn acquire(&self, key_id: &str) -> Result<bool, ClusterError> {
        let script = Script::new(
            r"local cur = redis.call('GET', KEYS[1])
              if cur == false or cur == ARGV[1] then
                redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
                return 1
              end
              return 0",
        );
        let got: i32 = script
            .key(format!("{LEASE}{key_id}"))
            .arg(&self.instance)
            .arg(self.lease_ttl.as_millis() as u64)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(got == 1)
    }

    /// Gives the lease up if this instance holds it.
    pub async fn release(&self, key_id: &str) -> Result<(), ClusterError> {
        let script = Script::new(
            r"if redis.call('GET', KEYS[1]) == ARGV[1] then
                return redis.call('DEL', KEYS[1])
              end
              return 0",
        );
        let _: i32 = script
            .key(format!("{LEASE}{key_id}"))
            .arg(&self.instance)
            .invoke_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// Records (or refreshes) a broadcast this instance runs.
    pub async fn heartbeat(
        &self,
        video_id: &str,
        marker: Option<&Marker>,
    ) -> Result<(), ClusterError> {
        let mut pipe = redis::pipe();
        if let Some(m) = marker {
            pipe.cmd("HSET")
                .arg(format!("{BROADCAST}{video_id}"))
                .arg("marker")
                .arg(serde_json::to_string(m).expect("marker serialises"))
                .arg("instance")
                .arg(&self.instance)
                .arg("origin")
                .arg(self.origin.get().map(String::as_str).unwrap_or(""))
                .ignore();
        }
        pipe.cmd("ZADD")
            .arg(BROADCASTS)
            .arg(now_ms())
            .arg(video_id)
            .ignore();
        let () = pipe.query_async(&mut self.con.clone()).await?;
        Ok(())
    }

    /// The broadcast is finished and metadata-svc has it: forget it.
    pub async fn forget(&self, video_id: &str) -> Result<(), ClusterError> {
        let () = redis::pipe()
            .cmd("ZREM")
            .arg(BROADCASTS)
            .arg(video_id)
            .ignore()
            .cmd("DEL")
            .arg(format!("{BROADCAST}{video_id}"))
            .arg(format!("{REAPING}{video_id}"))
            .ignore()
            .query_async(&mut self.con.clone())
            .await?;
        Ok(())
    }

    /// The live origins of the other instances that heartbeat a broadcast within `within`:
    /// where to ask for the broadcasts this instance does not run.
    pub async fn other_origins(&self, within: Duration) -> Result<Vec<String>, ClusterError> {
        let mut con = self.con.clone();
        let recent: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(BROADCASTS)
            .arg(now_ms() - within.as_millis() as i64)
            .arg("+inf")
            .query_async(&mut con)
            .await?;
        if recent.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for video_id in &recent {
            pipe.cmd("HGET")
                .arg(format!("{BROADCAST}{video_id}"))
                .arg("origin");
        }
        let origins: Vec<Option<String>> = pipe.query_async(&mut con).await?;
        let mine = self.origin.get().map(String::as_str).unwrap_or("");
        let mut out: Vec<String> = origins
            .into_iter()
            .flatten()
            .filter(|o| !o.is_empty() && o != mine)
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Broadcasts whose heartbeat is older than `timeout`, claimed for this instance to
    /// finish (each is claimed by one instance at a time), with their markers.
    pub async fn claim_orphans(
        &self,
        timeout: Duration,
        claim_for: Duration,
    ) -> Result<Vec<Marker>, ClusterError> {
        let mut con = self.con.clone();
        let stale: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(BROADCASTS)
            .arg("-inf")
            .arg(now_ms() - timeout.as_millis() as i64)
            .arg("LIMIT")
            .arg(0)
            .arg(20)
            .query_async(&mut con)
            .await?;
        let mut out = Vec::new();
        for video_id in stale {
            let claimed: Option<String> = redis::cmd("SET")
                .arg(format!("{REAPING}{video_id}"))
                .arg(&self.instance)
                .arg("NX")
                .arg("PX")
                .arg(claim_for.as_millis() as u64)
                .query_async(&mut con)
                .await?;
            if claimed.is_none() {
                continue;
            }
            let marker: Option<String> = redis::cmd("HGET")
                .arg(format!("{BROADCAST}{video_id}"))
                .arg("marker")
                .query_async(&mut con)
                .await?;
            match marker.and_then(|m| serde_json::from_str::<Marker>(&m).ok()) {
                Some(m) => out.push(m),
                None => {
                    tracing::error!(
                        video_id,
                        "orphaned broadcast without a readable marker; forgotten"
                    );
                    self.forget(&video_id).await?;
                }
            }
        }
        Ok(out)
    }
}
