//! A read cache of encoded `GET` answers (one video; list, search and trending pages).
//!
//! The catalog is read far more than it is written, and a read that reaches the database
//! costs a round trip (and on a slow server much more). Per answer:
//!
//! - **fresh** for `ttl`: served from memory;
//! - then **stale** for up to `stale`: still served at once, while one background fetch
//!   refreshes it (also keeps answering for that long while the database is unreachable);
//! - concurrent misses of one key share one database read (single flight).
//!
//! Writes made through this process invalidate at once: a write to a video drops its entry
//! (and every list page unless only counters changed), forgets fetches already in flight for
//! them, and bumps a generation so that a fetch that began before the write does not put its
//! answer back. A caller therefore always reads its own writes; the TTL bounds staleness only
//! for writes made through other replicas, and for counters shown in list pages.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};

use crate::error::Error;

/// What a write touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Anything shown in lists (title, status, visibility, deletion, ...).
    Catalog,
    /// Only the counters.
    Counters,
}

/// Which kind of answer a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// One video, keyed by its id.
    Video,
    /// A page of a list, search or trending, keyed by its normalised query.
    List,
}

impl Space {
    fn label(self) -> &'static str {
        match self {
            Space::Video => "video",
            Space::List => "list",
        }
    }
}

type Fetch = Shared<BoxFuture<'static, Result<Bytes, Error>>>;

struct Entry {
    fresh_until: Instant,
    stale_until: Instant,
    body: Bytes,
}

#[derive(Default)]
struct Store {
    gen: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
    /// Fetches in flight, with a serial so a finished fetch removes only itself.
    inflight: Mutex<HashMap<String, (u64, Fetch)>>,
    serial: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct ReadCache {
    ttl: Duration,
    stale: Duration,
    capacity: usize,
    videos: Store,
    lists: Store,
}

enum Found {
    Fresh(Bytes),
    Stale(Bytes),
    Missing,
}

impl ReadCache {
    /// `ttl` zero disables the cache.
    pub fn new(ttl: Duration, stale: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            stale,
            capacity: capacity.max(1),
            videos: Store::default(),
            lists: Store::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn store(&self, space: Space) -> &Store {
        match space {
            Space::Video => &self.videos,
            Space::List => &self.lists,
        }
    }

    fn find(&self, space: Space, key: &str) -> Found {
        let now = Instant::now();
        match lock(&self.store(space).entries).get(key) {
            Some(e) if e.fresh_until > now => Found::Fresh(e.body.clone()),
            Some(e) if e.stale_until > now => Found::Stale(e.body.clone()),
            _ => Found::Missing,
        }
    }

    /// The answer for `key`: from memory when fresh; when stale, from memory while `fetch`
    /// refreshes it in the background; else from `fetch` (shared with concurrent callers).
    pub async fn get_or_fetch<Fut>(
        self: &Arc<Self>,
        space: Space,
        key: &str,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Bytes, Error>
    where
        Fut: Future<Output = Result<Bytes, Error>> + Send + 'static,
    {
        if !self.enabled() {
            return fetch().await;
        }
        let found = self.find(space, key);
        let outcome = match found {
            Found::Fresh(_) => "fresh",
            Found::Stale(_) => "stale",
            Found::Missing => "miss",
        };
        metrics::counter!("metadata_cache_lookups_total", "cache" => space.label(), "outcome" => outcome).increment(1);
        match found {
            Found::Fresh(body) => Ok(body),
            Found::Stale(body) => {
                let (refresh, started) = self.join_or_start(space, key, fetch);
                if started {
                    tokio::spawn(async move {
                        let _ = refresh.await;
                    });
                }
                Ok(body)
            }
            Found::Missing => self.join_or_start(space, key, fetch).0.await,
        }
    }

    /// The fetch in flight for `key`, or a new one (`true`) that stores its answer when done.
    fn join_or_start<Fut>(
        self: &Arc<Self>,
        space: Space,
        key: &str,
        fetch: impl FnOnce() -> Fut,
    ) -> (Fetch, bool)
    where
        Fut: Future<Output = Result<Bytes, Error>> + Send + 'static,
    {
        let store = self.store(space);
        let mut inflight = lock(&store.inflight);
        if let Some((_, f)) = inflight.get(key) {
            return (f.clone(), false);
        }
        // taken before the read starts: a write finishing meanwhile makes the answer unstorable
        let ticket = store.gen.load(Ordering::Acquire);
        let serial = store.serial.fetch_add(1, Ordering::Relaxed);
        let (this, owned_key, fut) = (self.clone(), key.to_string(), fetch());
        let shared = async move {
            let result = fut.await;
            if let Ok(body) = &result {
                this.put(space, &owned_key, body.clone(), ticket);
            }
            let store = this.store(space);
            let mut inflight = lock(&store.inflight);
            if inflight.get(&owned_key).is_some_and(|(s, _)| *s == serial) {
                inflight.remove(&owned_key);
            }
            result
        }
        .boxed()
        .shared();
        inflight.insert(key.to_string(), (serial, shared.clone()));
        (shared, true)
    }

    fn put(&self, space: Space, key: &str, body: Bytes, ticket: u64) {
        let store = self.store(space);
        let mut entries = lock(&store.entries);
        // checked under the lock: an invalidation bumps the generation before taking it
        if store.gen.load(Ordering::Acquire) != ticket {
            return;
        }
        let now = Instant::now();
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            entries.retain(|_, e| e.stale_until > now);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        let fresh_until = now + self.ttl;
        entries.insert(
            key.to_string(),
            Entry {
                fresh_until,
                stale_until: fresh_until + self.stale,
                body,
            },
        );
    }

    /// Forgets everything (the invalidation channel was down: writes elsewhere may be missed).
    pub fn clear(&self) {
        for store in [&self.videos, &self.lists] {
            store.gen.fetch_add(1, Ordering::AcqRel);
            lock(&store.entries).clear();
            lock(&store.inflight).clear();
        }
    }

    /// Call after a write to video `id` succeeded (or may have).
    pub fn invalidate(&self, id: &str, change: Change) {
        let v = &self.videos;
        v.gen.fetch_add(1, Ordering::AcqRel);
        lock(&v.entries).remove(id);
        lock(&v.inflight).remove(id);
        if change == Change::Catalog {
            let l = &self.lists;
            l.gen.fetch_add(1, Ordering::AcqRel);
            lock(&l.entries).clear();
            lock(&l.inflight).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn cache(ttl_ms: u64, stale_ms: u64, cap: usize) -> Arc<ReadCache> {
        Arc::new(ReadCache::new(
            Duration::from_millis(ttl_ms),
            Duration::from_millis(stale_ms),
            cap,
        ))
    }

    async fn get(
        c: &Arc<ReadCache>,
        space: Space,
        key: &str,
        value: &'static str,
        calls: &Arc<AtomicUsize>,
    ) -> Bytes {
        let calls = calls.clone();
        c.get_or_fetch(space, key, move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(Bytes::from_static(value.as_bytes()))
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch_and_hits_skip_it() {
        let c = cache(60_000, 0, 10);
        let calls = Arc::new(AtomicUsize::new(0));
        let answers =
            futures::future::join_all((0..20).map(|_| get(&c, Space::Video, "a", "v1", &calls)))
                .await;
        assert!(answers.iter().all(|a| a == "v1"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one database read for 20 concurrent misses"
        );
        assert_eq!(get(&c, Space::Video, "a", "v2", &calls).await, "v1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn writes_invalidate_and_a_read_begun_before_a_write_is_not_stored() {
        let c = cache(60_000, 0, 10);
        let calls = Arc::new(AtomicUsize::new(0));
        // a slow read starts, a write lands while it is in flight
        let slow = {
            let c = c.clone();
            let calls = calls.clone();
            tokio::spawn(async move { get(&c, Space::Video, "a", "old", &calls).await })
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        c.invalidate("a", Change::Counters);
        assert_eq!(
            slow.await.unwrap(),
            "old",
            "the earlier reader gets what it read"
        );
        assert_eq!(
            get(&c, Space::Video, "a", "new", &calls).await,
            "new",
            "a later reader does not get the old answer"
        );

        assert_eq!(get(&c, Space::List, "q", "page1", &calls).await, "page1");
        c.invalidate("a", Change::Counters);
        assert_eq!(
            get(&c, Space::List, "q", "page2", &calls).await,
            "page1",
            "counters leave list pages"
        );
        c.invalidate("a", Change::Catalog);
        assert_eq!(get(&c, Space::List, "q", "page3", &calls).await, "page3");
    }

    #[tokio::test]
    async fn stale_answers_are_served_while_refreshing() {
        let c = cache(30, 10_000, 10);
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(get(&c, Space::Video, "a", "v1", &calls).await, "v1");
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(
            get(&c, Space::Video, "a", "v2", &calls).await,
            "v1",
            "stale: served at once"
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert_eq!(
            get(&c, Space::Video, "a", "v3", &calls).await,
            "v2",
            "refreshed in the background"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn disabled_and_bounded() {
        let off = cache(0, 0, 10);
        let calls = Arc::new(AtomicUsize::new(0));
        get(&off, Space::Video, "a", "x", &calls).await;
        get(&off, Space::Video, "a", "x", &calls).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let small = cache(60_000, 0, 2);
        for k in ["a", "b", "c"] {
            get(&small, Space::Video, k, "x", &calls).await;
        }
        assert!(lock(&small.videos.entries).len() <= 2);
    }
}
