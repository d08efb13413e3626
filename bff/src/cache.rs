//! A small bounded map whose entries expire: creator profiles, token identities and granted
//! access decisions are reused for a few seconds instead of asking user-svc on every view.
//!
//! An entry is served for at most `ttl` after it was last confirmed. Past half to three
//! quarters of it (spread at random), the first reader is told to refresh it in the
//! background ([`Lookup::Refresh`]) while it and everyone else keep getting the cached
//! value: under steady traffic entries are renewed before they expire, so many viewers never
//! miss together and stampede user-svc.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Entry<V> {
    value: V,
    /// Past this, the first reader refreshes the entry.
    fresh_until: Instant,
    /// Past this, the entry is gone.
    expires: Instant,
    refreshing: bool,
}

pub enum Lookup<V> {
    Hit(V),
    /// A hit that this caller should refresh (in the background), then `insert` or
    /// `refresh_failed`.
    Refresh(V),
    Miss,
}

pub struct TtlCache<K, V> {
    ttl: Duration,
    capacity: usize,
    map: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    /// A `ttl` of zero turns the cache off.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn lookup(&self, k: &K) -> Lookup<V> {
        if !self.enabled() {
            return Lookup::Miss;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(k) {
            Some(e) if e.expires > now => {
                if e.fresh_until <= now && !e.refreshing {
                    e.refreshing = true;
                    Lookup::Refresh(e.value.clone())
                } else {
                    Lookup::Hit(e.value.clone())
                }
            }
            _ => Lookup::Miss,
        }
    }

    /// The value if present, without taking a refresh.
    pub fn get(&self, k: &K) -> Option<V> {
        if !self.enabled() {
            return None;
        }
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(k)
            .filter(|e| e.expires > Instant::now())
            .map(|e| e.value.clone())
    }

    /// Keeps `v` for the cache's ttl, or until `not_after` if that comes first.
    pub fn insert(&self, k: K, v: V, not_after: Option<Instant>) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut expires = now + self.ttl;
        if let Some(n) = not_after {
            expires = expires.min(n);
        }
        if expires <= now {
            return;
        }
        // refresh from half to three quarters of the ttl, so entries made together (a burst of
        // viewers) are not all refreshed together
        let fresh_until =
            (now + self.ttl.mul_f64(rand::random::<f64>().mul_add(0.25, 0.5))).min(expires);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity && !map.contains_key(&k) {
            map.retain(|_, e| e.expires > now);
            if map.len() >= self.capacity {
                // still full of live entries: start over rather than track recency
                map.clear();
            }
        }
        map.insert(
            k,
            Entry {
                value: v,
                fresh_until,
                expires,
                refreshing: false,
            },
        );
    }

    /// The background refresh did not get an answer: let a later reader try again.
    pub fn refresh_failed(&self, k: &K) {
        if let Some(e) = self
            .map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(k)
        {
            e.refreshing = false;
        }
    }

    pub fn remove(&self, k: &K) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_is_bounded() {
        let c = TtlCache::new(Duration::from_millis(50), 2);
        c.insert("a", 1, None);
        assert_eq!(c.get(&"a"), Some(1));
        c.insert("b", 2, Some(Instant::now()));
        assert_eq!(c.get(&"b"), None, "already past not_after");
        c.insert("c", 3, None);
        c.insert("d", 4, None);
        assert!(c.map.lock().unwrap().len() <= 2);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(c.get(&"d"), None);
        assert!(matches!(c.lookup(&"d"), Lookup::Miss));
        let off = TtlCache::new(Duration::ZERO, 10);
        off.insert("a", 1, None);
        assert_eq!(off.get(&"a"), None);
    }

    #[test]
    fn one_reader_refreshes_after_half_the_ttl() {
        // a whole second of ttl: the asserts after the sleep have 200 ms before it expires
        let c = TtlCache::new(Duration::from_secs(1), 10);
        c.insert("k", 1, None);
        assert!(matches!(c.lookup(&"k"), Lookup::Hit(1)));
        std::thread::sleep(Duration::from_millis(800));
        assert!(
            matches!(c.lookup(&"k"), Lookup::Refresh(1)),
            "first reader past 3/4 of the ttl refreshes"
        );
        assert!(
            matches!(c.lookup(&"k"), Lookup::Hit(1)),
            "the others are served meanwhile"
        );
        c.refresh_failed(&"k");
        assert!(
            matches!(c.lookup(&"k"), Lookup::Refresh(1)),
            "after a failure the next reader tries"
        );
        c.insert("k", 2, None);
        assert!(matches!(c.lookup(&"k"), Lookup::Hit(2)));
    }
}
