//! A real file through the real pipeline: ffmpeg makes a 720p30 H.264/AAC MP4, the
//! transcoder turns it into a ladder in a local folder, ffprobe checks what was written.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use storage::{DynStore, LocalStore};
use transcoder::{file::transcode_file, LiveConfig};

fn make_source(dir: &Path, secs: u32) -> std::path::PathBuf {
    let out = dir.join("src.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=30",
        ])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "45",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-c:a", "aac", "-ac", "2", "-shortest"])
        .arg(&out)
        .status()
        .expect("ffmpeg must be installed (scripts/test.sh installs it)");
    assert!(status.success(), "ffmpeg could not make the source file");
    out
}

fn probe(path: &Path) -> serde_json::Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,width,height:format=start_time,duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success(), "ffprobe failed on {}", path.display());
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_becomes_an_aligned_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), 9);
    let root = dir.path().join("media");
    let local = Arc::new(LocalStore::new(&root).unwrap());
    let store: DynStore = local.clone();
    let cfg = LiveConfig {
        x264_preset: "ultrafast".into(),
        spool_dir: dir.path().join("spool"),
        ..Default::default()
    };
    let summary = transcode_file(Arc::new(cfg), store.clone(), "vod/test".into(), &src)
        .await
        .expect("transcode");
    let names: Vec<_> = summary.renditions.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["720p", "480p", "360p"]);
    assert!(
        (summary.duration_secs - 9.0).abs() < 0.2,
        "duration {}",
        summary.duration_secs
    );

    let master = String::from_utf8(store.get("vod/test/vod.m3u8").await.unwrap().to_vec()).unwrap();
    let master = m3u8_rs::parse_master_playlist_res(master.as_bytes()).expect("vod master parses");
    assert_eq!(master.variants.len(), 3);
    for v in &master.variants {
        // ultrafast encodes constrained baseline: the string must say so (read from the SPS)
        assert!(
            v.codecs.as_deref().unwrap().starts_with("avc1.42c0"),
            "{:?}",
            v.codecs
        );
        assert!(v.codecs.as_deref().unwrap().ends_with(",mp4a.40.2"));
        assert!(v.average_bandwidth.unwrap() <= v.bandwidth);
        assert_eq!(v.frame_rate, Some(30.0));
    }

    let mut starts: Vec<Vec<f64>> = Vec::new();
    for r in &summary.renditions {
        let pl_key = format!("vod/test/{}/vod.m3u8", r.name);
        let text = store.get(&pl_key).await.unwrap();
        let pl = m3u8_rs::parse_media_playlist_res(&text).expect("media playlist parses");
        assert!(pl.end_list);
        assert_eq!(pl.segments.len(), 5, "9 s in 2 s segments");
        for s in &pl.segments[..4] {
            assert!(
                (s.duration - 2.0).abs() < 0.05,
                "segment duration {}",
                s.duration
            );
        }
        let mut rung_starts = Vec::new();
        for s in &pl.segments {
            let path = root.join(format!("vod/test/{}/{}", r.name, s.uri));
            let p = probe(&path);
            let video = p["streams"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["codec_type"] == "video")
                .unwrap();
            assert_eq!(video["width"].as_u64().unwrap() as u32, r.width);
            assert_eq!(video["height"].as_u64().unwrap() as u32, r.height);
            assert!(p["streams"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["codec_type"] == "audio"));
            rung_starts.push(
                p["format"]["start_time"]
                    .as_str()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap(),
            );
        }
        starts.push(rung_starts);
    }
    for other in &starts[1..] {
        assert_eq!(
            other, &starts[0],
            "segment N starts at the same time in every rung"
        );
    }
    // nothing left in the spool once stored
    let left: Vec<_> = walk(&dir.path().join("spool"));
    assert!(left.is_empty(), "spool not emptied: {left:?}");
    let _ = local.root();
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_file_without_h264_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("bad.mp4");
    std::fs::write(&src, b"this is not a video file at all").unwrap();
    let store: DynStore = Arc::new(LocalStore::new(dir.path().join("m")).unwrap());
    let cfg = LiveConfig {
        spool_dir: dir.path().join("spool"),
        ..Default::default()
    };
    let err = transcode_file(Arc::new(cfg), store.clone(), "vod/bad".into(), &src)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("opening the input file"), "{err}");
    assert!(store.list("vod/bad").await.unwrap().is_empty());
}

/// The object store is down (nothing listens at its address) and stays down: segments that
/// cannot be stored wait in the spool, and once the spool holds `max_spool_bytes` new
/// segments are dropped and counted rather than filling the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_new_segments_instead_of_growing() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), 8);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = storage::S3Store::connect(storage::S3Config {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        bucket: "gone".into(),
        path_style: true,
        access_key_id: "caudal".into(),
        secret_access_key: "caudalsecret".into(),
        prefix: String::new(),
        create_bucket: false,
    })
    .await
    .expect("a client needs no server");
    let store: DynStore = Arc::new(down);
    let cfg = LiveConfig {
        spool_dir: dir.path().join("spool"),
        rungs: vec![transcoder::RungSpec::new("240p", 240, 400)],
        // the first segment fills it
        max_spool_bytes: 1,
        upload_give_up_secs: 1,
        ..Default::default()
    };
    let summary = transcode_file(Arc::new(cfg.clone()), store, "vod/down".into(), &src)
        .await
        .unwrap();
    assert_eq!(summary.segments, 0, "nothing could be stored");
    let spooled: Vec<_> = walk(&dir.path().join("spool"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ts"))
        .collect();
    assert_eq!(
        spooled.len(),
        1,
        "one segment kept for a later retry, the other three dropped: {spooled:?}"
    );
    let on_disk = std::fs::metadata(&spooled[0]).unwrap().len();
    assert_eq!(transcoder::spooled_bytes(&cfg), on_disk);
}
