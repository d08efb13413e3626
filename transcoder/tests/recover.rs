//! Recovery of a broadcast whose process died: from the journal, the live playlists and the
//! spool it left, into final playlists. Objects are laid out as the uploader writes them.

use std::sync::Arc;

use bytes::Bytes;
use storage::{CachePolicy, DynStore, LocalStore, ObjectMeta};
use transcoder::playlist::{parse_media, render_master, MediaWindow, SegmentEntry};
use transcoder::{recover, LiveConfig};

const PREFIX: &str = "live/v1";

fn seg(i: u64) -> SegmentEntry {
    SegmentEntry {
        sequence: i,
        uri: format!("seg_{i:05}.ts"),
        duration_secs: 2.0,
        program_date_time: "2026-11-30T12:00:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            + chrono::Duration::seconds(2 * i as i64),
        size_bytes: 1000,
        discontinuity: false,
        init: None,
    }
}

fn desc() -> serde_json::Value {
    serde_json::json!({"name": "240p", "width": 426, "height": 240, "frame_rate": 30.0,
        "nominal_bandwidth": 600000, "passthrough": false})
}

async fn put(store: &DynStore, rel: &str, body: Vec<u8>) {
    let key = format!("{PREFIX}/{rel}");
    store
        .put(
            &key,
            Bytes::from(body),
            &ObjectMeta::for_key(&key, CachePolicy::Short),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_crashed_broadcast_is_finished_from_journal_live_playlist_and_spool() {
    let dir = tempfile::tempdir().unwrap();
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("media")).unwrap());
    let cfg = Arc::new(LiveConfig {
        spool_dir: dir.path().join("spool"),
        window: 4,
        ..Default::default()
    });
    // stored before the crash: segments 0..=5; the journal has 0..=3, the live playlist 2..=5
    for i in 0..6 {
        put(&store, &format!("240p/seg_{i:05}.ts"), vec![b'x'; 1000]).await;
    }
    put(
        &store,
        "journal/ladder.json",
        serde_json::to_vec(&[desc()]).unwrap(),
    )
    .await;
    let journal: Vec<serde_json::Value> = (0..4)
        .map(|i| {
            let mut v = serde_json::to_value(seg(i)).unwrap();
            v["rung"] = "240p".into();
            v
        })
        .collect();
    put(
        &store,
        "journal/000000.json",
        serde_json::to_vec(&journal).unwrap(),
    )
    .await;
    let mut w = MediaWindow::new(4, 2);
    for i in 0..6 {
        w.push(seg(i));
    }
    put(&store, "240p/index.m3u8", w.render_live().into_bytes()).await;
    put(
        &store,
        "master.m3u8",
        render_master(&[transcoder::RenditionInfo {
            name: "240p".into(),
            playlist: format!("{PREFIX}/240p/index.m3u8"),
            bandwidth: 700_000,
            average_bandwidth: None,
            codecs: "avc1.64001e,mp4a.40.2".into(),
            width: 426,
            height: 240,
            frame_rate: 30.0,
            passthrough: false,
        }])
        .into_bytes(),
    )
    .await;
    // cut but not stored: one segment of a second take waits in the spool
    let spool = cfg.spool_dir.join("live_v1");
    let rung_dir = spool.join("t001").join("240p");
    std::fs::create_dir_all(&rung_dir).unwrap();
    std::fs::write(rung_dir.join("seg_00000.ts"), b"spooled").unwrap();
    std::fs::write(
        rung_dir.join("seg_00000.json"),
        serde_json::to_vec(&serde_json::json!({"rung": desc(), "duration_ms": 1500,
            "program_date_time": "2026-11-30T12:00:20Z", "size": 7, "codecs": "avc1.64001e,mp4a.40.2"}))
        .unwrap(),
    )
    .unwrap();
    // a segment still being written when the process died has no sidecar: left alone
    std::fs::write(rung_dir.join("seg_00001.ts"), b"partial").unwrap();

    let summary = recover(cfg.clone(), store.clone(), PREFIX.into(), Some(&spool)).await;
    assert_eq!(summary.segments, 7);
    assert!(
        (summary.duration_secs - 13.5).abs() < 1e-6,
        "{}",
        summary.duration_secs
    );
    assert_eq!(summary.vod_master_key.as_deref(), Some("live/v1/vod.m3u8"));
    let vod = store.get("live/v1/240p/vod.m3u8").await.unwrap();
    let vod_text = String::from_utf8(vod.to_vec()).unwrap();
    assert!(vod_text.ends_with("#EXT-X-ENDLIST\n"), "{vod_text}");
    let listed = parse_media(&vod).unwrap();
    assert_eq!(
        listed.iter().map(|s| s.uri.as_str()).collect::<Vec<_>>(),
        (0..7).map(|i| format!("seg_{i:05}.ts")).collect::<Vec<_>>()
    );
    assert_eq!(
        listed.iter().map(|s| s.discontinuity).collect::<Vec<_>>(),
        vec![false, false, false, false, false, false, true],
        "the spooled take starts after a discontinuity"
    );
    assert_eq!(
        store.get("live/v1/240p/seg_00006.ts").await.unwrap(),
        Bytes::from_static(b"spooled")
    );
    assert!(
        !rung_dir.join("seg_00000.ts").exists(),
        "stored, so gone from the spool"
    );
    assert!(rung_dir.join("seg_00001.ts").exists());
    let ended = store.get("live/v1/240p/index.m3u8").await.unwrap();
    assert!(String::from_utf8_lossy(&ended).ends_with("#EXT-X-ENDLIST\n"));
    let master = String::from_utf8(store.get("live/v1/vod.m3u8").await.unwrap().to_vec()).unwrap();
    assert!(master.contains("240p/vod.m3u8"), "{master}");
    assert!(master.contains("avc1.64001e,mp4a.40.2"), "{master}");

    // again (a second crash during recovery): the same result
    let again = recover(cfg, store.clone(), PREFIX.into(), Some(&spool)).await;
    assert_eq!(again.segments, 7);
    assert_eq!(store.get("live/v1/240p/vod.m3u8").await.unwrap(), vod);
}
