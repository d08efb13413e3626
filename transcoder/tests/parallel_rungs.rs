//! Each rung is stored by a task of its own: a store that hangs on one rung's writes does
//! not hold back the other rungs' segments and playlists, and nothing is lost once it
//! comes back.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use storage::{DynStore, LocalStore, ObjectInfo, ObjectMeta, ObjectStore, Part, StorageError};
use tokio::sync::watch;
use transcoder::playlist::parse_media;
use transcoder::{file::transcode_file, LiveConfig, RungSpec};

/// Holds every write under `held` until the gate opens.
struct Gate {
    inner: LocalStore,
    held: String,
    open: watch::Receiver<bool>,
}

#[async_trait]
impl ObjectStore for Gate {
    async fn put(&self, key: &str, body: Bytes, meta: &ObjectMeta) -> Result<(), StorageError> {
        if key.starts_with(&self.held) {
            let mut open = self.open.clone();
            let _ = open.wait_for(|o| *o).await;
        }
        self.inner.put(key, body, meta).await
    }
    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        self.inner.get(key).await
    }
    async fn head(&self, key: &str) -> Result<ObjectInfo, StorageError> {
        self.inner.head(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        self.inner.list(prefix).await
    }
    fn backend(&self) -> &'static str {
        "gate"
    }
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        self.inner.get_range(key, offset, len).await
    }
    async fn multipart_start(&self, key: &str, meta: &ObjectMeta) -> Result<String, StorageError> {
        self.inner.multipart_start(key, meta).await
    }
    async fn multipart_put(
        &self,
        key: &str,
        upload: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, StorageError> {
        self.inner.multipart_put(key, upload, number, body).await
    }
    async fn multipart_complete(
        &self,
        key: &str,
        upload: &str,
        parts: &[Part],
    ) -> Result<(), StorageError> {
        self.inner.multipart_complete(key, upload, parts).await
    }
    async fn multipart_abort(&self, key: &str, upload: &str) -> Result<(), StorageError> {
        self.inner.multipart_abort(key, upload).await
    }
}

fn make_source(dir: &Path, secs: u32) -> std::path::PathBuf {
    let out = dir.join("src.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=640x360:rate=30")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &secs.to_string(), "-c:v", "libx264", "-preset"])
        .args(["ultrafast", "-g", "30", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-ac", "2", "-shortest"])
        .arg(&out)
        .status()
        .expect("ffmpeg must be installed (scripts/test.sh installs it)");
    assert!(status.success(), "ffmpeg could not make the source file");
    out
}

/// Segments listed so far by a live playlist (its window slides: the newest's sequence + 1).
async fn listed(store: &LocalStore, key: &str) -> u64 {
    match store.get(key).await {
        Ok(b) => parse_media(&b)
            .ok()
            .and_then(|s| s.last().map(|l| l.sequence + 1))
            .unwrap_or(0),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rung_whose_writes_hang_does_not_hold_back_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), 8);
    let root = dir.path().join("media");
    let (open_tx, open) = watch::channel(false);
    let store: DynStore = Arc::new(Gate {
        inner: LocalStore::new(&root).unwrap(),
        held: "vod/p/360p/".into(),
        open,
    });
    let view = LocalStore::new(&root).unwrap();
    let cfg = LiveConfig {
        x264_preset: "ultrafast".into(),
        spool_dir: dir.path().join("spool"),
        segment_secs: 1.0,
        rungs: vec![
            RungSpec::new("360p", 360, 600),
            RungSpec::new("240p", 240, 300),
        ],
        ..Default::default()
    };
    let (src2, store2) = (src.clone(), store.clone());
    let job =
        tokio::spawn(
            async move { transcode_file(Arc::new(cfg), store2, "vod/p".into(), &src2).await },
        );
    // 240p is stored and listed to its end while every 360p write hangs
    let t = Instant::now();
    while listed(&view, "vod/p/240p/index.m3u8").await < 8 {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "240p is held back by 360p: {} listed",
            listed(&view, "vod/p/240p/index.m3u8").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listed(&view, "vod/p/360p/index.m3u8").await, 0);
    assert!(view.head("vod/p/360p/seg_00000.ts").await.is_err());
    assert!(!job.is_finished(), "the broadcast waits for 360p");
    // the store comes back: 360p catches up, nothing lost
    open_tx.send(true).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(60), job)
        .await
        .expect("finishes once 360p is stored")
        .unwrap()
        .expect("transcode");
    let vod = |rung: &str| format!("vod/p/{rung}/vod.m3u8");
    let hi = parse_media(&view.get(&vod("360p")).await.unwrap()).unwrap();
    let lo = parse_media(&view.get(&vod("240p")).await.unwrap()).unwrap();
    assert_eq!(hi.len(), lo.len(), "{hi:?}");
    assert!(hi.len() >= 8);
    assert!(hi.iter().all(|s| !s.discontinuity), "nothing was lost");
    for s in &hi {
        assert!(view.head(&format!("vod/p/360p/{}", s.uri)).await.is_ok());
    }
    assert_eq!(summary.segments, 2 * hi.len() as u64);
    assert!(summary.vod_master_key.is_some());
}
