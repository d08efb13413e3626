//! A real file through the real pipeline: ffmpeg makes a 720p30 H.264/AAC MP4, the
//! transcoder turns it into a ladder in a local folder, ffprobe checks what was written.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use storage::{DynStore, LocalStore};
use transcoder::{file::transcode_file, LiveConfig, SegmentFormat};

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

/// The same ladder as CMAF: an init section per rung and `.m4s` media segments behind
/// EXT-X-MAP, playable from the VOD playlist alone, with decode times that continue from one
/// segment to the next (each segment is read after its init, as a player does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_becomes_a_cmaf_ladder() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), 7);
    let root = dir.path().join("media");
    let store: DynStore = Arc::new(LocalStore::new(&root).unwrap());
    let cfg = LiveConfig {
        x264_preset: "ultrafast".into(),
        spool_dir: dir.path().join("spool"),
        segment_format: SegmentFormat::Fmp4,
        rungs: vec![
            transcoder::RungSpec::new("480p", 480, 900),
            transcoder::RungSpec::new("240p", 240, 300),
        ],
        ..Default::default()
    };
    let summary = transcode_file(Arc::new(cfg), store.clone(), "vod/cmaf".into(), &src)
        .await
        .expect("transcode");
    assert!((summary.duration_secs - 7.0).abs() < 0.2, "{summary:?}");
    let mut starts: Vec<Vec<f64>> = Vec::new();
    for r in &summary.renditions {
        let text = String::from_utf8(
            store
                .get(&format!("vod/cmaf/{}/vod.m3u8", r.name))
                .await
                .unwrap()
                .to_vec(),
        )
        .unwrap();
        assert!(text.contains("#EXT-X-VERSION:7\n"), "{text}");
        // one map, before the first segment: every segment shares the init section
        assert_eq!(text.matches("#EXT-X-MAP:").count(), 1, "{text}");
        let pl = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(pl.segments.len(), 4, "7 s in 2 s segments: {text}");
        let init = pl.segments[0].map.as_ref().expect("EXT-X-MAP").uri.clone();
        assert!(
            init.starts_with("init_") && init.ends_with(".mp4"),
            "{init}"
        );
        assert!(pl.segments.iter().all(|s| s.uri.ends_with(".m4s")));
        let init_path = root.join(format!("vod/cmaf/{}/{init}", r.name));
        let init_bytes = std::fs::read(&init_path).unwrap();
        // the playlist as a whole: what ffmpeg's HLS reader makes of it
        let whole = probe(&root.join(format!("vod/cmaf/{}/vod.m3u8", r.name)));
        let d: f64 = whole["format"]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((d - 7.0).abs() < 0.3, "{whole}");
        let mut rung_starts = Vec::new();
        for s in &pl.segments {
            let mut joined = init_bytes.clone();
            joined.extend(
                std::fs::read(root.join(format!("vod/cmaf/{}/{}", r.name, s.uri))).unwrap(),
            );
            let path = dir.path().join("joined.mp4");
            std::fs::write(&path, &joined).unwrap();
            let p = probe(&path);
            let streams = p["streams"].as_array().unwrap();
            let video = streams.iter().find(|s| s["codec_type"] == "video").unwrap();
            assert_eq!(video["width"].as_u64().unwrap() as u32, r.width);
            assert!(streams.iter().any(|s| s["codec_type"] == "audio"), "{p}");
            rung_starts.push(
                p["format"]["start_time"]
                    .as_str()
                    .unwrap()
                    .parse::<f64>()
                    .unwrap(),
            );
        }
        // decode times continue: segment N starts N x 2 s after the first
        for (i, t) in rung_starts.iter().enumerate() {
            assert!(
                (t - rung_starts[0] - 2.0 * i as f64).abs() < 0.05,
                "{}: starts {rung_starts:?}",
                r.name
            );
        }
        starts.push(rung_starts);
    }
    assert_eq!(
        starts[0], starts[1],
        "segment N starts at the same time in every rung"
    );
    assert!(
        walk(&dir.path().join("spool"))
            .iter()
            .all(|p| p.extension().is_some_and(|e| e == "mp4")),
        "only init sections may stay in the spool"
    );
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

/// Low-latency HLS: each segment is cut into parts as it grows; the live edge serves the
/// parts and the segments they make, and the recording stores those very bytes.
#[tokio::test]
async fn parts_make_the_segments_the_recording_stores() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_source(dir.path(), 7);
    let root = dir.path().join("media");
    let store: DynStore = Arc::new(LocalStore::new(&root).unwrap());
    let cfg = LiveConfig {
        x264_preset: "ultrafast".into(),
        spool_dir: dir.path().join("spool"),
        segment_format: SegmentFormat::Fmp4,
        part_secs: 0.5,
        rungs: vec![
            transcoder::RungSpec::new("480p", 480, 900),
            transcoder::RungSpec::new("240p", 240, 300),
        ],
        ..Default::default()
    };
    let mut bc =
        transcoder::LiveBroadcast::start(Arc::new(cfg), store.clone(), "live/ll".into(), None)
            .expect("broadcast starts");
    let ll = bc
        .low_latency()
        .expect("part_secs > 0 with fmp4: a live edge");
    let take = bc.take().await.unwrap();
    let tx = take.sender().unwrap();
    let path = src.clone();
    tokio::task::spawn_blocking(move || transcoder::file::feed(&path, &tx))
        .await
        .unwrap()
        .expect("the file feeds");
    take.finish().await.unwrap();
    for rung in ["480p", "240p"] {
        let text = ll.playlist(rung, false).unwrap();
        assert!(
            text.contains("#EXT-X-PART-INF:PART-TARGET=0.500\n"),
            "{text}"
        );
        assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART"), "{text}");
        assert!(
            text.contains(&format!(
                "#EXT-X-RENDITION-REPORT:URI=\"../{}/ll.m3u8\"",
                if rung == "480p" { "240p" } else { "480p" }
            )),
            "{text}"
        );
        let init_name = text
            .split("#EXT-X-MAP:URI=\"ll_")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("EXT-X-MAP")
            .to_string();
        let init = ll.init(rung, &init_name).unwrap();
        // every complete segment of the 7 s file: 3 of 2 s, and the last second
        for msn in 0..4u64 {
            let seg = ll.segment(rung, msn).expect("the segment is held");
            let mut parts = Vec::new();
            for n in 0.. {
                match ll.part_bytes(rung, msn, n).await {
                    Ok(b) => parts.push(b),
                    Err(_) => break,
                }
            }
            assert!(
                parts.len() >= 2 && parts.len() <= 5,
                "msn {msn}: {} parts",
                parts.len()
            );
            assert_eq!(parts.concat(), seg.to_vec(), "a segment is its parts");
            // the same bytes the recording stored
            let stored = store
                .get(&format!("live/ll/{rung}/seg_{msn:05}.m4s"))
                .await
                .expect("stored");
            assert_eq!(stored.to_vec(), seg.to_vec(), "{rung} msn {msn}");
            // a part is playable after the init section: the first of a segment has the
            // keyframe, so init + part decodes on its own
            let first = dir.path().join(format!("{rung}_{msn}_0.mp4"));
            std::fs::write(&first, [init.to_vec(), parts[0].to_vec()].concat()).unwrap();
            let p = probe(&first);
            let num = |k: &str| -> f64 { p["format"][k].as_str().unwrap().parse().unwrap() };
            // the MP4 reader counts a fragment's duration from 0, so its end is start + length
            let (start, end) = (num("start_time"), num("duration"));
            assert!((start - msn as f64 * 2.0).abs() < 0.1, "{p}");
            assert!(
                end - start > 0.3 && end - start <= 0.56,
                "part 0 of msn {msn}: {p}"
            );
        }
        // every part listed is at most the part target, and those opening a segment are
        // independent
        for line in text.lines().filter(|l| l.starts_with("#EXT-X-PART:")) {
            let d: f64 = line["#EXT-X-PART:DURATION=".len()..]
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(d <= 0.5, "{line}");
            if line.contains("_0.m4s") {
                assert!(line.ends_with(",INDEPENDENT=YES"), "{line}");
            }
        }
    }
    let summary = bc.finish().await.unwrap();
    assert_eq!(summary.renditions.len(), 2);
    let done = ll.playlist("480p", false).unwrap();
    assert!(done.ends_with("#EXT-X-ENDLIST\n"), "{done}");
    assert!(ll.master().unwrap().contains("480p/ll.m3u8"));
}
