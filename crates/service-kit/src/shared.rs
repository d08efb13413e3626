//! State that the instances of one service must agree on, kept in Redis (`shared_state_url`
//! in each service's config): token buckets for rate limits ([`RateLimiter`]) and
//! cache-invalidation messages ([`Invalidations`]).
//!
//! Redis is the engine because ingest already keeps its key leases there, it is one small
//! Debian package, and both needs are what it does well: an atomic script per bucket, and
//! pub/sub fan-out in well under a millisecond. Neither is a store of record: a bucket lost
//! with Redis refills, a missed invalidation is bounded by the cache's TTL. So when Redis is
//! unreachable an instance keeps working on its own (local buckets; the read cache is emptied
//! when the subscription comes back), counts it in `caudal_shared_state_errors_total`, and
//! never fails a request because of it.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio_util::sync::CancellationToken;

/// A connection to the shared state, cheap to clone.
#[derive(Clone)]
pub struct Shared {
    client: redis::Client,
    con: ConnectionManager,
    /// This instance's name, so that it can tell its own messages from the others'.
    pub instance: String,
}

impl Shared {
    /// Connects (failing if Redis cannot be reached now: a misconfigured URL should stop
    /// start-up, not be discovered later). Later outages are survived.
    pub async fn connect(url: &str, instance: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(1);
        let con = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client.clone(), cfg),
        )
        .await
        .map_err(|_| anyhow::anyhow!("shared state: no answer from redis within 5 s"))??;
        let instance = if instance.is_empty() {
            random_instance()
        } else {
            instance.to_string()
        };
        Ok(Self {
            client,
            con,
            instance,
        })
    }
}

fn random_instance() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos:08x}", std::process::id())
}

fn shared_error(what: &'static str, e: &redis::RedisError) {
    metrics::counter!("caudal_shared_state_errors_total", "what" => what).increment(1);
    tracing::warn!(what, error = %e, "shared state (redis) unavailable: this instance goes on alone");
}

// ---------------------------------------------------------------------------------------------
// rate limits

/// One token bucket per key, refilled continuously. With [`RateLimiter::shared`], the bucket
/// lives in Redis and every instance draws from the same one (the clock is Redis's, so
/// instances with skewed clocks agree); without it, or while Redis is down, in this process.
pub struct RateLimiter {
    name: &'static str,
    burst: f64,
    per_sec: f64,
    local: Mutex<HashMap<String, (f64, Instant)>>,
    shared: OnceLock<(ConnectionManager, String)>,
}

/// Takes (ARGV[3] = 1) or looks at (0) a token of bucket KEYS[1]: returns 0 when there was
/// one, else the whole seconds until there will be.
const BUCKET: &str = r#"
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local take = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
local ok = tokens >= 1
if take == 1 then
  if ok then tokens = tokens - 1 end
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.6f', now))
  local ttl = 3600
  if rate > 0 then ttl = math.ceil((burst - tokens) / rate) + 1 end
  redis.call('EXPIRE', KEYS[1], ttl)
end
if ok then return 0 end
if rate <= 0 then return 60 end
return math.max(1, math.ceil((1 - tokens) / rate))
"#;

impl RateLimiter {
    /// `burst` tokens, refilled at `per_minute`. `name` names the limit in metrics and in
    /// the shared keys.
    pub fn new(name: &'static str, burst: u32, per_minute: u32) -> Self {
        Self {
            name,
            burst: burst.max(1) as f64,
            per_sec: per_minute as f64 / 60.0,
            local: Mutex::new(HashMap::new()),
            shared: OnceLock::new(),
        }
    }

    /// From now on keeps the buckets in Redis under `caudal:<service>:rl:<name>:<key>`
    /// (once: a second call changes nothing).
    pub fn share(&self, shared: &Shared, service: &str) {
        let _ = self.shared.set((
            shared.con.clone(),
            format!("caudal:{service}:rl:{}:", self.name),
        ));
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Takes a token for `key`, or says in how many seconds one will be there.
    pub async fn check(&self, key: &str) -> Result<(), u64> {
        self.bucket(key, true).await
    }

    /// Whether `key` has a token, without taking it.
    pub async fn peek(&self, key: &str) -> Result<(), u64> {
        self.bucket(key, false).await
    }

    async fn bucket(&self, key: &str, take: bool) -> Result<(), u64> {
        if let Some((con, prefix)) = self.shared.get() {
            let mut con = con.clone();
            let answer: Result<u64, _> = Script::new(BUCKET)
                .key(format!("{prefix}{key}"))
                .arg(self.burst)
                .arg(self.per_sec)
                .arg(u8::from(take))
                .invoke_async(&mut con)
                .await;
            match answer {
                Ok(0) => return Ok(()),
                Ok(wait) => return Err(wait),
                Err(e) => shared_error("rate_limit", &e),
            }
        }
        self.local_bucket(key, take)
    }

    fn local_bucket(&self, key: &str, take: bool) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            // forget full buckets: they behave like new ones
            let (burst, per_sec) = (self.burst, self.per_sec);
            map.retain(|_, (t, at)| *t + now.duration_since(*at).as_secs_f64() * per_sec < burst);
        }
        let refill = |(tokens, at): (f64, Instant)| {
            (tokens + now.duration_since(at).as_secs_f64() * self.per_sec).min(self.burst)
        };
        let tokens = if take {
            let entry = map.entry(key.to_string()).or_insert((self.burst, now));
            let mut tokens = refill(*entry);
            if tokens >= 1.0 {
                tokens -= 1.0;
                *entry = (tokens, now);
                return Ok(());
            }
            *entry = (tokens, now);
            tokens
        } else {
            match map.get(key) {
                None => return Ok(()),
                Some(e) if refill(*e) >= 1.0 => return Ok(()),
                Some(e) => refill(*e),
            }
        };
        if self.per_sec <= 0.0 {
            Err(60)
        } else {
            Err(((1.0 - tokens) / self.per_sec).ceil().max(1.0) as u64)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// cache invalidation

/// Cache-invalidation messages between the instances of a service over one Redis pub/sub
/// channel. A message is `<instance> <payload>`; an instance ignores its own.
#[derive(Clone)]
pub struct Invalidations {
    shared: Shared,
    channel: String,
}

impl Invalidations {
    pub fn new(shared: &Shared, channel: &str) -> Self {
        Self {
            shared: shared.clone(),
            channel: channel.to_string(),
        }
    }

    /// Tells the other instances; an unreachable Redis is counted and logged, not returned
    /// (the other instances' caches then expire by their TTL).
    pub async fn publish(&self, payload: &str) {
        let mut con = self.shared.con.clone();
        let msg = format!("{} {payload}", self.shared.instance);
        let sent: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(msg)
            .query_async(&mut con)
            .await;
        match sent {
            Ok(_) => metrics::counter!("caudal_invalidations_sent_total").increment(1),
            Err(e) => shared_error("invalidation_publish", &e),
        }
    }

    /// Listens until `shutdown`: `on_message` gets each other instance's payload; `resync`
    /// runs whenever the subscription (re)starts, since messages may have been missed while
    /// it was down (a cache drops everything there).
    pub fn listen(
        &self,
        on_message: impl Fn(&str) + Send + Sync + 'static,
        resync: impl Fn() + Send + Sync + 'static,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        use futures::StreamExt;
        let client = self.shared.client.clone();
        let channel = self.channel.clone();
        let me = format!("{} ", self.shared.instance);
        tokio::spawn(async move {
            let mut logged_down = false;
            while !shutdown.is_cancelled() {
                let subscribed = async {
                    let mut ps = client.get_async_pubsub().await?;
                    ps.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(ps)
                };
                let mut ps = match tokio::time::timeout(Duration::from_secs(3), subscribed).await {
                    Ok(Ok(ps)) => ps,
                    Ok(Err(e)) => {
                        if !logged_down {
                            shared_error("invalidation_subscribe", &e);
                            logged_down = true;
                        }
                        pause(&shutdown).await;
                        continue;
                    }
                    Err(_) => {
                        pause(&shutdown).await;
                        continue;
                    }
                };
                logged_down = false;
                tracing::info!(channel = %channel, "listening for cache invalidations");
                resync();
                let mut messages = ps.on_message();
                loop {
                    let msg = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    let Ok(text) = msg.get_payload::<String>() else {
                        continue;
                    };
                    if text.starts_with(&me) {
                        continue; // our own
                    }
                    let payload = text.split_once(' ').map_or("", |(_, p)| p);
                    metrics::counter!("caudal_invalidations_received_total").increment(1);
                    on_message(payload);
                }
                metrics::counter!("caudal_shared_state_errors_total", "what" => "invalidation_subscription_lost")
                    .increment(1);
                tracing::warn!(channel = %channel, "cache invalidations: subscription lost; resubscribing");
                resync();
                pause(&shutdown).await;
            }
        })
    }
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_local_bucket_allows_its_burst_then_says_when() {
        let rl = RateLimiter::new("t", 3, 60);
        for _ in 0..3 {
            assert_eq!(rl.check("a").await, Ok(()));
        }
        assert_eq!(rl.check("a").await, Err(1));
        assert_eq!(rl.peek("a").await, Err(1));
        // other keys have their own bucket; peeking an unknown key takes nothing
        assert_eq!(rl.peek("b").await, Ok(()));
        assert_eq!(rl.check("b").await, Ok(()));
    }

    #[tokio::test]
    async fn no_refill_waits_a_minute() {
        let rl = RateLimiter::new("t", 1, 0);
        assert_eq!(rl.check("a").await, Ok(()));
        assert_eq!(rl.check("a").await, Err(60));
    }
}
