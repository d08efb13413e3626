//! How many bytes of finished segments wait in a spool folder to be stored, counted for the
//! whole process (every broadcast using the folder). Past `max_spool_bytes`, new segments
//! are not written: they are dropped, counted (`caudal_spool_full_total`) and logged, and the
//! rung's next stored segment is marked as a discontinuity. Memory and disk stay bounded
//! however long the object store is away.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::LiveConfig;

pub(crate) struct SpoolMeter {
    bytes: AtomicU64,
    max: u64,
}

static METERS: OnceLock<Mutex<HashMap<PathBuf, Arc<SpoolMeter>>>> = OnceLock::new();

/// The meter of `cfg.spool_dir` (one per folder in a process).
pub(crate) fn meter(cfg: &LiveConfig) -> Arc<SpoolMeter> {
    let mut all = METERS
        .get_or_init(Default::default)
        .lock()
        .expect("spool meters lock");
    all.entry(cfg.spool_dir.clone())
        .or_insert_with(|| {
            metrics::gauge!("caudal_spool_max_bytes").set(cfg.max_spool_bytes as f64);
            Arc::new(SpoolMeter {
                bytes: AtomicU64::new(0),
                max: cfg.max_spool_bytes,
            })
        })
        .clone()
}

impl SpoolMeter {
    /// True when no more segments may be written.
    pub fn full(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) >= self.max
    }

    pub fn add(&self, n: u64) {
        let now = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        metrics::gauge!("caudal_spool_bytes").set(now as f64);
    }

    pub fn sub(&self, n: u64) {
        let before = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            })
            .unwrap_or(0);
        metrics::gauge!("caudal_spool_bytes").set(before.saturating_sub(n) as f64);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}
