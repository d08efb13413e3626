//! End to end with real servers and a real ffmpeg publisher: RTMP in, HLS ladder out,
//! metadata recorded, misbehaving clients contained.

use std::time::{Duration, Instant};

use service_clients::metadata::VideoStatus;
use test_stack::{ffprobe_bytes, wait_child, Publisher, Stack, StackOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use transcoder::{LiveConfig, RungSpec};

/// The heavy tests take turns: each needs both cores for its real-time publisher.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn wait_status(
    stack: &Stack,
    video_id: &str,
    want: VideoStatus,
    within: Duration,
) -> service_clients::metadata::Video {
    let t = Instant::now();
    loop {
        if let Ok(Some(v)) = stack.metadata.get_video(video_id).await {
            if v.status == want {
                return v;
            }
        }
        assert!(
            t.elapsed() < within,
            "video {video_id} did not reach {want:?} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_live(stack: &Stack, within: Duration) -> String {
    let t = Instant::now();
    loop {
        let live = stack.live_streams().await;
        if let Some(v) = live.first() {
            return v["video_id"].as_str().unwrap().to_string();
        }
        assert!(
            t.elapsed() < within,
            "no stream went live within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn text(b: &bytes::Bytes) -> String {
    String::from_utf8(b.to_vec()).expect("utf-8 playlist")
}

/// Checks the stored broadcast: master attributes, playlists, segment durations, alignment
/// across encoded rungs (ffprobe), resolution of every segment, VOD duration.
async fn check_broadcast(
    stack: &Stack,
    video_id: &str,
    expect: &[(&str, u32, u32)],
    published_secs: f64,
    segment_secs: f64,
) {
    let prefix = format!("live/{video_id}");
    let master = text(
        &stack
            .store
            .get(&format!("{prefix}/master.m3u8"))
            .await
            .expect("master stored"),
    );
    let master = m3u8_rs::parse_master_playlist_res(master.as_bytes()).expect("master parses");
    let listed: Vec<_> = master
        .variants
        .iter()
        .map(|v| {
            let r = v.resolution.unwrap();
            (
                v.uri.split('/').next().unwrap().to_string(),
                r.width as u32,
                r.height as u32,
            )
        })
        .collect();
    let want: Vec<_> = expect
        .iter()
        .map(|(n, w, h)| (n.to_string(), *w, *h))
        .collect();
    assert_eq!(listed, want, "master playlist rungs");
    for v in &master.variants {
        let codecs = v.codecs.as_deref().expect("CODECS");
        assert!(
            codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"),
            "{codecs}"
        );
        assert!(v.bandwidth > 100_000, "BANDWIDTH {}", v.bandwidth);
        assert!(v.average_bandwidth.is_some(), "AVERAGE-BANDWIDTH");
        assert_eq!(v.frame_rate, Some(30.0), "FRAME-RATE");
    }
    let vod_master = text(
        &stack
            .store
            .get(&format!("{prefix}/vod.m3u8"))
            .await
            .expect("vod master stored"),
    );
    assert_eq!(
        m3u8_rs::parse_master_playlist_res(vod_master.as_bytes())
            .unwrap()
            .variants
            .len(),
        expect.len()
    );

    let probe_dir = tempfile::tempdir().unwrap();
    let mut encoded_starts: Vec<Vec<String>> = Vec::new();
    for (name, w, h) in expect {
        let live = stack
            .store
            .get(&format!("{prefix}/{name}/index.m3u8"))
            .await
            .unwrap();
        let live = m3u8_rs::parse_media_playlist_res(&live).expect("live playlist parses");
        assert!(live.end_list, "{name}: ENDLIST after the publisher stopped");
        let vod = stack
            .store
            .get(&format!("{prefix}/{name}/vod.m3u8"))
            .await
            .unwrap();
        let vod = m3u8_rs::parse_media_playlist_res(&vod).expect("vod playlist parses");
        assert!(vod.end_list);
        assert_eq!(vod.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
        assert_eq!(vod.media_sequence, 0);
        let total: f64 = vod.segments.iter().map(|s| s.duration as f64).sum();
        let passthrough = *name == "source";
        let tolerance = if passthrough { 9.0 } else { segment_secs };
        assert!(
            (total - published_secs).abs() <= tolerance,
            "{name}: VOD lasts {total:.2}s, published {published_secs}s"
        );
        for s in &vod.segments {
            assert!(
                s.program_date_time.is_some(),
                "PROGRAM-DATE-TIME on every segment"
            );
            assert!(
                (s.duration.round() as u64) <= vod.target_duration,
                "EXTINF within TARGETDURATION"
            );
        }
        if !passthrough {
            for s in &vod.segments[..vod.segments.len() - 1] {
                assert!(
                    (s.duration as f64 - segment_secs).abs() < 0.07,
                    "{name}: segment of {}s",
                    s.duration
                );
            }
        }
        let mut starts = Vec::new();
        for s in &vod.segments {
            let bytes = stack
                .store
                .get(&format!("{prefix}/{name}/{}", s.uri))
                .await
                .unwrap();
            let p = ffprobe_bytes(probe_dir.path(), &format!("{name}-{}", s.uri), &bytes);
            let streams = p["streams"].as_array().unwrap();
            let video = streams
                .iter()
                .find(|s| s["codec_type"] == "video")
                .expect("video stream");
            assert_eq!(
                (
                    video["width"].as_u64().unwrap() as u32,
                    video["height"].as_u64().unwrap() as u32
                ),
                (*w, *h)
            );
            assert_eq!(video["codec_name"], "h264");
            assert!(
                streams
                    .iter()
                    .any(|s| s["codec_type"] == "audio" && s["codec_name"] == "aac"),
                "audio in {}",
                s.uri
            );
            starts.push(p["format"]["start_time"].as_str().unwrap().to_string());
        }
        if !passthrough {
            encoded_starts.push(starts);
        }
    }
    for other in &encoded_starts[1..] {
        assert_eq!(
            other, &encoded_starts[0],
            "segment N starts at the same timestamp in every encoded rung"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_720p30_to_a_ladder_while_bad_clients_are_contained() {
    let _turn = HEAVY.lock().await;
    // with takeover off, a second publisher of a live key is refused
    let stack = Stack::start(StackOptions {
        ingest: Some(|c| c.takeover = false),
        ..Default::default()
    })
    .await;
    // long enough to still be on air after the bad clients' rounds, however busy the machine
    let publish_secs = 30;
    let publisher = Publisher {
        secs: publish_secs,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;
    let doc = wait_status(
        &stack,
        &video_id,
        VideoStatus::Live,
        Duration::from_secs(10),
    )
    .await;
    assert!(doc.started_at.is_some());

    // garbage bytes on the RTMP port: closed, nothing else disturbed
    let mut garbage = tokio::net::TcpStream::connect(stack.rtmp_addr)
        .await
        .unwrap();
    let junk: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let _ = garbage.write_all(&junk).await;
    let mut sink = [0u8; 8192];
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match garbage.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a connection sending garbage is closed");
    // a stalled socket (connects, sends nothing) is closed after the handshake timeout
    let mut stalled = tokio::net::TcpStream::connect(stack.rtmp_addr)
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(8), stalled.read(&mut sink)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a stalled connection is closed"
    );

    // a wrong key and a second publisher on the live key are refused
    let wrong = Publisher {
        secs: 5,
        width: 320,
        height: 240,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url("not-a-key"));
    let (ok, _) = wait_child(wrong, Duration::from_secs(15)).await;
    assert!(!ok, "a wrong stream key is refused");
    let second = Publisher {
        secs: 5,
        width: 320,
        height: 240,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let (ok, _) = wait_child(second, Duration::from_secs(15)).await;
    assert!(!ok, "a second publisher on a live key is refused");
    // an unsupported codec (Sorenson H.263 in FLV) is refused on a valid key's connection
    // without touching the running stream (this key is live, so use a second key check)
    assert_eq!(
        stack.live_streams().await.len(),
        1,
        "still exactly one live stream"
    );

    let (ok, err) = wait_child(publisher, Duration::from_secs(publish_secs as u64 + 20)).await;
    assert!(ok, "the main publisher ran to the end: {err}");
    let ended = wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(40),
    )
    .await;
    assert!(ended.ended_at.is_some(), "ended time recorded");
    assert!(ended.playback.vod_master.is_some());
    assert_eq!(ended.renditions.len(), 3);
    let d = ended.duration_secs.unwrap();
    assert!((d - publish_secs as f64).abs() <= 2.0, "duration {d}");
    assert!(stack.live_streams().await.is_empty());

    check_broadcast(
        &stack,
        &video_id,
        &[("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)],
        publish_secs as f64,
        2.0,
    )
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obs_like_1080p30_with_bframes_and_250_frame_gop_into_s3_with_passthrough() {
    let _turn = HEAVY.lock().await;
    let transcode = LiveConfig {
        passthrough: true,
        // both cores also run the 1080p publisher here: the fastest preset keeps up
        x264_preset: "ultrafast".into(),
        rungs: vec![
            RungSpec::new("1080p", 1080, 5000),
            RungSpec::new("720p", 720, 2800),
            RungSpec::new("360p", 360, 800),
        ],
        ..Default::default()
    };
    let stack = Stack::start(StackOptions {
        transcode,
        storage: Some(test_stack::s3_store_config()),
        ..Default::default()
    })
    .await;
    let secs = 15;
    let publisher = Publisher {
        width: 1920,
        height: 1080,
        secs,
        gop: 250,
        bframes: 2,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;
    let (ok, err) = wait_child(publisher, Duration::from_secs(secs as u64 + 25)).await;
    assert!(ok, "publisher ran to the end: {err}");
    wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(60),
    )
    .await;
    check_broadcast(
        &stack,
        &video_id,
        &[
            ("source", 1920, 1080),
            ("1080p", 1920, 1080),
            ("720p", 1280, 720),
            ("360p", 640, 360),
        ],
        secs as f64,
        2.0,
    )
    .await;
    // the passthrough rung can only cut at the source's keyframes: 250 frames = 8.33 s
    let vod = stack
        .store
        .get(&format!("live/{video_id}/source/vod.m3u8"))
        .await
        .unwrap();
    let vod = m3u8_rs::parse_media_playlist_res(&vod).unwrap();
    assert!(
        (vod.segments[0].duration - 8.333).abs() < 0.05,
        "first passthrough segment {}",
        vod.segments[0].duration
    );
    assert!(vod.target_duration >= 8);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_video_codec_is_refused_with_the_connection_closed() {
    // short, but it transcodes: not beside another test's broadcast on 2 cores
    let _turn = HEAVY.lock().await;
    let stack = Stack::start(StackOptions::default()).await;
    let p = Publisher {
        video_codec: "flv",
        width: 320,
        height: 240,
        secs: 5,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let (ok, _) = wait_child(p, Duration::from_secs(20)).await;
    assert!(!ok, "ffmpeg sees the connection closed");
    // the key is free again right away
    assert!(stack.live_streams().await.is_empty());
    stack.stop().await;
}

/// Issue 4 end to end: a key the creator revoked is refused by ingest; its fresh key works.
/// A second stream key for the demo user, made through user-svc's API.
struct NewKey {
    key: String,
    id: String,
    token: String,
}

async fn new_stream_key(stack: &Stack, label: &str) -> NewKey {
    let http = reqwest::Client::new();
    let base = format!("http://{}", stack.users_addr);
    let login: serde_json::Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": stack.demo_email, "password": stack.demo_password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"]
        .as_str()
        .expect("access token")
        .to_string();
    let created: serde_json::Value = http
        .post(format!("{base}/v1/stream-keys"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "label": label }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    NewKey {
        key: created["key"]
            .as_str()
            .expect("full key shown once")
            .to_string(),
        id: created["id"].as_str().expect("key id").to_string(),
        token,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_stream_key_is_refused_and_a_new_one_publishes() {
    // short, but it transcodes: not beside another test's broadcast on 2 cores
    let _turn = HEAVY.lock().await;
    let stack = Stack::start(StackOptions::default()).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", stack.users_addr);
    let NewKey { key, id, token } = new_stream_key(&stack, "second pc").await;
    let revoked = http
        .delete(format!("{base}/v1/stream-keys/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);

    let p = Publisher {
        secs: 4,
        width: 320,
        height: 240,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&key));
    let (ok, _) = wait_child(p, Duration::from_secs(15)).await;
    assert!(!ok, "a revoked key is refused");
    assert!(stack.live_streams().await.is_empty());

    // the demo key still publishes (short, small)
    let p = Publisher {
        secs: 3,
        width: 320,
        height: 240,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;
    let (ok, err) = wait_child(p, Duration::from_secs(20)).await;
    assert!(ok, "{err}");
    wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(30),
    )
    .await;
    stack.stop().await;
}

/// One squatter: connects from `ip`, sends the RTMP version byte and then one more byte every
/// second, never finishing the handshake. Returns how long the server kept it open.
async fn squat(ip: [u8; 4], server: std::net::SocketAddr) -> Option<Duration> {
    let sock = tokio::net::TcpSocket::new_v4().ok()?;
    sock.bind((std::net::Ipv4Addr::from(ip), 0).into()).ok()?;
    let mut s = sock.connect(server).await.ok()?;
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    let _ = s.write_all(&[3]).await;
    loop {
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => {}
            Err(_) => {
                if s.write_all(&[7]).await.is_err() {
                    return Some(t.elapsed());
                }
            }
        }
        if t.elapsed() > Duration::from_secs(30) {
            return None;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn squatting_connections_cannot_lock_out_a_publisher() {
    let _turn = HEAVY.lock().await;
    let stack = Stack::start(StackOptions::default()).await;
    // 520 connections (more than the 512 pending slots) from 65 addresses, each trickling a
    // byte a second: the attack that used to lock every streamer out
    let squatters: Vec<_> = (0..520u32)
        .map(|i| {
            let ip = [127, 0, 0, 2 + (i / 8) as u8];
            tokio::spawn(squat(ip, stack.rtmp_addr))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let publisher = Publisher {
        secs: 8,
        width: 320,
        height: 240,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(15)).await;
    let (ok, err) = wait_child(publisher, Duration::from_secs(30)).await;
    assert!(ok, "the publisher got through and ran to the end: {err}");
    wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(40),
    )
    .await;
    // every squatter was closed by the publish deadline (5 s here), trickling or not
    let mut longest = Duration::ZERO;
    for s in squatters {
        let open = s
            .await
            .unwrap()
            .expect("a squatter was kept open 30 s, or could not connect");
        longest = longest.max(open);
    }
    assert!(
        longest < Duration::from_secs(8),
        "a squatter stayed {longest:?} (publish deadline 5 s)"
    );
    stack.stop().await;
}

/// Waits until the media playlist at `key` lists at least `n` segments (and `also`, when
/// given); returns it.
async fn wait_listed(stack: &Stack, key: &str, n: usize, also: Option<&str>) -> String {
    let t = Instant::now();
    loop {
        if let Ok(b) = stack.store.get(key).await {
            let pl = text(&b);
            if pl.matches("#EXTINF").count() >= n && also.is_none_or(|a| pl.contains(a)) {
                return pl;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "{key} did not list {n} segments{} within 40 s",
            also.map(|a| format!(" with {a}")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first variant's folder in a stored master playlist (e.g. `240p`).
fn first_rung(master: &bytes::Bytes) -> String {
    let m = m3u8_rs::parse_master_playlist_res(master).expect("master parses");
    m.variants[0]
        .uri
        .split('/')
        .next()
        .expect("rung folder")
        .to_string()
}

/// The segment URIs of a media playlist, with whether each follows a discontinuity.
fn segments_of(pl: &str) -> Vec<(String, bool)> {
    let p = m3u8_rs::parse_media_playlist_res(pl.as_bytes()).expect("media playlist parses");
    p.segments
        .iter()
        .map(|s| (s.uri.clone(), s.discontinuity))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_drops_and_comes_back_continues_the_same_video() {
    let _turn = HEAVY.lock().await;
    let stack = Stack::start(StackOptions::default()).await;
    let small = |secs| Publisher {
        secs,
        width: 426,
        height: 240,
        ..Default::default()
    };
    let url = stack.rtmp_url(&stack.demo_key);

    // take 1 ends as a network drop does: the socket closes with no deleteStream
    let mut first = small(120).spawn(&url);
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;
    let master_key = format!("live/{video_id}/master.m3u8");
    let master = stack
        .wait_object(&master_key, Duration::from_secs(30))
        .await;
    let rung = first_rung(&master);
    let index_key = format!("live/{video_id}/{rung}/index.m3u8");
    wait_listed(&stack, &index_key, 3, None).await;
    first.kill().expect("kill ffmpeg");
    let _ = first.wait();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // held: still live for viewers, waiting for the publisher
    let live = stack.live_streams().await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["video_id"], video_id.as_str());
    assert_eq!(live[0]["reconnecting"], true);
    let held = text(&stack.store.get(&index_key).await.unwrap());
    assert!(!held.contains("ENDLIST"), "{held}");
    let doc = stack.metadata.get_video(&video_id).await.unwrap().unwrap();
    assert_eq!(doc.status, VideoStatus::Live);

    // take 2, the same key 3 s later: the same video goes on after a discontinuity
    let second = small(120).spawn(&url);
    let pl = wait_listed(&stack, &index_key, 3, Some("#EXT-X-DISCONTINUITY\n")).await;
    let live = stack.live_streams().await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["video_id"], video_id.as_str());
    assert_eq!(live[0]["reconnecting"], false);
    assert_eq!(
        stack.store.get(&master_key).await.unwrap(),
        master,
        "viewers keep the same master playlist"
    );
    assert!(!pl.contains("ENDLIST"));

    // take 3 arrives while take 2 is live (an encoder reconnecting before its old
    // connection timed out): it takes over, and stops cleanly
    let third = small(6).spawn(&url);
    let (second_ok, _) = wait_child(second, Duration::from_secs(20)).await;
    assert!(!second_ok, "the replaced publisher is disconnected");
    let (ok, err) = wait_child(third, Duration::from_secs(30)).await;
    assert!(ok, "the new publisher streams to its end: {err}");

    let doc = wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(30),
    )
    .await;
    // one video, one recording: nothing else was stored
    let keys = stack.store.list("live/").await.unwrap();
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&format!("live/{video_id}/"))),
        "only one broadcast: {keys:?}"
    );
    let vod = text(
        &stack
            .wait_object(
                &format!("live/{video_id}/{rung}/vod.m3u8"),
                Duration::from_secs(5),
            )
            .await,
    );
    assert!(vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
    let segs = segments_of(&vod);
    let breaks: Vec<usize> = segs
        .iter()
        .enumerate()
        .filter(|(_, (_, d))| *d)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(breaks.len(), 2, "a discontinuity per reconnect: {vod}");
    for (i, (uri, _)) in segs.iter().enumerate() {
        assert_eq!(
            uri,
            &format!("seg_{i:05}.ts"),
            "segments numbered without a hole"
        );
    }
    // each take's first segment is playable video on its own
    for i in breaks {
        let key = format!("live/{video_id}/{rung}/{}", segs[i].0);
        let probe = ffprobe_bytes(
            stack.dir.path(),
            &key,
            &stack.store.get(&key).await.unwrap(),
        );
        let streams = probe["streams"].as_array().unwrap();
        assert!(
            streams.iter().any(|s| s["codec_type"] == "video"),
            "{probe}"
        );
    }
    let total: f64 = doc.duration_secs.expect("recorded duration");
    assert!(total >= 12.0, "three takes recorded: {total} s");
    stack.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ingest-rtmp as its own process (so it can be killed with SIGKILL), on the stack's
/// services and media folder, with its own spool folder; `extra`: more environment.
fn spawn_ingest(
    stack: &Stack,
    ports: (u16, u16, u16),
    spool: &std::path::Path,
    extra: &[(&str, &str)],
) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stack.dir.path().join("ingest-child.log"))
        .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_ingest-rtmp"))
        .env(
            "CAUDAL_INGEST_RTMP_LISTEN",
            format!("127.0.0.1:{}", ports.0),
        )
        .env(
            "CAUDAL_INGEST_HTTP_LISTEN",
            format!("127.0.0.1:{}", ports.1),
        )
        .env(
            "CAUDAL_INGEST_METRICS_LISTEN",
            format!("127.0.0.1:{}", ports.2),
        )
        .env(
            "CAUDAL_INGEST_USER_SVC_URL",
            format!("http://{}", stack.users_addr),
        )
        .env(
            "CAUDAL_INGEST_METADATA_SVC_URL",
            format!("http://{}", stack.metadata_addr),
        )
        .env("CAUDAL_INGEST_STORAGE__BACKEND", "local")
        .env(
            "CAUDAL_INGEST_STORAGE__ROOT",
            stack.dir.path().join("media"),
        )
        .env("CAUDAL_INGEST_TRANSCODE__SPOOL_DIR", spool)
        .env("CAUDAL_INGEST_CLEANUP_INTERVAL_SECS", "0")
        .env("RUST_LOG", "info")
        .envs(extra.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start ingest-rtmp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_killed_mid_broadcast_finishes_the_recording_when_it_restarts() {
    let _turn = HEAVY.lock().await;
    let stack = Stack::start(StackOptions::default()).await;
    let ports = (free_port(), free_port(), free_port());
    let spool = stack.dir.path().join("child-spool");
    let mut ingest = spawn_ingest(&stack, ports, &spool, &[]);
    let streams = format!("http://127.0.0.1:{}/v1/streams", ports.1);
    let http = reqwest::Client::new();
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", ports.0)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "ingest did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut publisher = Publisher {
        secs: 120,
        width: 426,
        height: 240,
        ..Default::default()
    }
    .spawn(&format!(
        "rtmp://127.0.0.1:{}/live/{}",
        ports.0, stack.demo_key
    ));
    let video_id = loop {
        let live: serde_json::Value = match http.get(&streams).send().await {
            Ok(r) => r.json().await.unwrap(),
            Err(_) => serde_json::json!([]),
        };
        if let Some(id) = live[0]["video_id"].as_str() {
            break id.to_string();
        }
        assert!(t.elapsed() < Duration::from_secs(30), "never went live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let master = stack
        .wait_object(
            &format!("live/{video_id}/master.m3u8"),
            Duration::from_secs(30),
        )
        .await;
    let rung = first_rung(&master);
    let index_key = format!("live/{video_id}/{rung}/index.m3u8");
    // enough that the first segments have slid out of the live window
    let before = wait_listed(&stack, &index_key, 6, Some("seg_00007.ts")).await;
    let listed_before = segments_of(&before).last().unwrap().0.clone();

    ingest.kill().expect("SIGKILL ingest");
    let _ = ingest.wait();
    let _ = publisher.kill();
    let _ = publisher.wait();
    // nobody told metadata-svc: still live, no ENDLIST, the marker left in the spool
    let doc = stack.metadata.get_video(&video_id).await.unwrap().unwrap();
    assert_eq!(doc.status, VideoStatus::Live);
    assert!(!text(&stack.store.get(&index_key).await.unwrap()).contains("ENDLIST"));
    let marker = spool
        .join(format!("live_{video_id}"))
        .join("broadcast.json");
    assert!(marker.is_file(), "the broadcast's marker is in the spool");

    let restarted = Instant::now();
    let mut ingest = spawn_ingest(&stack, ports, &spool, &[]);
    let doc = wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(30),
    )
    .await;
    let took = restarted.elapsed();
    eprintln!(
        "figure: ingest restart to a finished recording: {} ms",
        took.as_millis()
    );
    let vod_key = format!("live/{video_id}/{rung}/vod.m3u8");
    let vod = text(&stack.wait_object(&vod_key, Duration::from_secs(5)).await);
    assert!(vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
    let segs = segments_of(&vod);
    for (i, (uri, _)) in segs.iter().enumerate() {
        assert_eq!(
            uri,
            &format!("seg_{i:05}.ts"),
            "every segment from the first: {vod}"
        );
    }
    assert!(
        segs.iter().any(|(u, _)| *u == listed_before),
        "the recording has everything listed before the crash ({listed_before}): {vod}"
    );
    let ended = text(&stack.store.get(&index_key).await.unwrap());
    assert!(ended.ends_with("#EXT-X-ENDLIST\n"), "{ended}");
    assert!(
        stack
            .store
            .get(&format!("live/{video_id}/vod.m3u8"))
            .await
            .is_ok(),
        "a VOD master"
    );
    let secs = doc.duration_secs.expect("duration");
    assert!(secs >= 14.0, "recorded {secs} s");
    assert_eq!(
        doc.playback.vod_master.as_deref(),
        Some(format!("live/{video_id}/vod.m3u8").as_str())
    );
    // the marker goes once metadata-svc has it all
    let t = Instant::now();
    while marker.exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "marker left behind");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // the restarted ingest serves publishers as before
    assert!(http
        .get(&streams)
        .send()
        .await
        .unwrap()
        .status()
        .is_success());
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &ingest.id().to_string()])
        .status();
    let _ = ingest.wait();
    stack.stop().await;
}

/// An s3s-fs process of this test's own (so it can be stopped), on a fixed port and folder.
fn spawn_s3(port: u16, dir: &std::path::Path) -> std::process::Child {
    std::fs::create_dir_all(dir).unwrap();
    let child = std::process::Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "caudal", "--secret-key", "caudalsecret"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("s3s-fs must be installed (scripts/test.sh installs it)");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "s3s-fs did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// A store config on a test's own s3s-fs ([`spawn_s3`]).
fn own_s3_store(port: u16, bucket: &str) -> storage::StoreConfig {
    storage::StoreConfig::S3(storage::S3Config {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".into(),
        bucket: bucket.into(),
        path_style: true,
        access_key_id: "caudal".into(),
        secret_access_key: "caudalsecret".into(),
        prefix: String::new(),
        create_bucket: true,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_seconds_of_object_store_outage_lose_no_segment() {
    let _turn = HEAVY.lock().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut s3 = spawn_s3(port, data.path());
    let storage = own_s3_store(port, "outage");
    let stack = Stack::start(StackOptions {
        storage: Some(storage),
        ..Default::default()
    })
    .await;
    let publish_secs = 50;
    let publisher = Publisher {
        secs: publish_secs,
        width: 426,
        height: 240,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;
    let master = stack
        .wait_object(
            &format!("live/{video_id}/master.m3u8"),
            Duration::from_secs(30),
        )
        .await;
    let rung = first_rung(&master);
    let index_key = format!("live/{video_id}/{rung}/index.m3u8");
    wait_listed(&stack, &index_key, 3, None).await;

    // the store goes away for 30 s mid-broadcast
    s3.kill().expect("stop s3s-fs");
    let _ = s3.wait();
    let down = Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let spooled = transcoder::spooled_bytes(&LiveConfig {
        spool_dir: stack.dir.path().join("spool"),
        ..Default::default()
    });
    assert!(
        spooled > 0,
        "segments wait in the spool while the store is down"
    );
    assert_eq!(stack.live_streams().await.len(), 1, "still live");
    let mut s3 = spawn_s3(port, data.path());
    eprintln!(
        "figure: store down {:.1} s, {spooled} bytes spooled meanwhile",
        down.elapsed().as_secs_f64()
    );

    let (ok, err) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(ok, "the publisher never noticed: {err}");
    let doc = wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(60),
    )
    .await;
    let vod = text(
        &stack
            .wait_object(
                &format!("live/{video_id}/{rung}/vod.m3u8"),
                Duration::from_secs(5),
            )
            .await,
    );
    assert!(vod.ends_with("#EXT-X-ENDLIST\n"));
    assert!(
        !vod.contains("DISCONTINUITY"),
        "nothing lost, nothing to mark: {vod}"
    );
    let segs = segments_of(&vod);
    for (i, (uri, _)) in segs.iter().enumerate() {
        assert_eq!(uri, &format!("seg_{i:05}.ts"), "in order, no hole: {vod}");
        stack
            .store
            .head(&format!("live/{video_id}/{rung}/{uri}"))
            .await
            .expect("every listed segment is stored");
    }
    let secs = doc.duration_secs.unwrap();
    eprintln!(
        "figure: outage test: {} segments, {secs:.1} s recorded of {publish_secs} s published, 0 lost",
        segs.len()
    );
    assert!(
        secs >= publish_secs as f64 - 3.0,
        "the whole broadcast is recorded: {secs} s of {publish_secs} s"
    );
    assert_eq!(
        transcoder::spooled_bytes(&LiveConfig {
            spool_dir: stack.dir.path().join("spool"),
            ..Default::default()
        }),
        0,
        "the spool drained"
    );
    stack.stop().await;
    let _ = s3.kill();
    let _ = s3.wait();
}

fn shared_state(c: &mut ingest_rtmp::Config) {
    c.shared_state_url = test_stack::env("CAUDAL_TEST_REDIS_URL");
    c.reaper_interval_secs = 1;
    c.reaper_timeout_secs = 3;
}

/// Waits until ingest's HTTP API at `streams` lists a live broadcast; its video id.
async fn wait_listed_at(streams: &str, within: Duration) -> String {
    let http = reqwest::Client::new();
    let t = Instant::now();
    loop {
        if let Ok(r) = http.get(streams).send().await {
            let live: serde_json::Value = r.json().await.unwrap_or_default();
            if let Some(id) = live[0]["video_id"].as_str() {
                return id.to_string();
            }
        }
        assert!(t.elapsed() < within, "nothing went live at {streams}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_instances_let_one_publisher_per_key_go_live() {
    let _turn = HEAVY.lock().await;
    let stack = Stack::start(StackOptions {
        ingest: Some(shared_state),
        // low-latency HLS, so that the other instance's live origin is asked for it too
        transcode: LiveConfig {
            segment_format: transcoder::SegmentFormat::Fmp4,
            part_secs: 0.5,
            x264_preset: "ultrafast".into(),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    // a second instance on the same services, store and shared state
    let mut cfg = ingest_rtmp::Config {
        rtmp_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        user_svc_url: format!("http://{}", stack.users_addr),
        metadata_svc_url: format!("http://{}", stack.metadata_addr),
        storage: storage::StoreConfig::Local {
            root: stack.dir.path().join("media"),
        },
        transcode: LiveConfig {
            spool_dir: stack.dir.path().join("spool-b"),
            ..Default::default()
        },
        cleanup_interval_secs: 0,
        ..Default::default()
    };
    shared_state(&mut cfg);
    let stop_b = tokio_util::sync::CancellationToken::new();
    let b = ingest_rtmp::start(cfg, stop_b.clone()).await.unwrap();
    let at_b = format!("rtmp://{}/live/{}", b.rtmp_addr, stack.demo_key);
    let small = |secs| Publisher {
        secs,
        width: 320,
        height: 240,
        ..Default::default()
    };

    let first = small(12).spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;
    // the same key at the other instance, while live at the first: refused
    let (ok, _) = wait_child(small(4).spawn(&at_b), Duration::from_secs(15)).await;
    assert!(
        !ok,
        "a second publisher of a live key is refused at another instance"
    );
    let streams_b = format!("http://{}/v1/streams", b.http_addr);
    let get_json = |url: String| async move {
        reqwest::get(&url)
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    // B runs nothing itself, yet lists the broadcast A runs (asked of A), once
    assert_eq!(
        get_json(format!("{streams_b}?scope=local")).await,
        serde_json::json!([])
    );
    let listed = get_json(streams_b.clone()).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["video_id"].as_str())
        .collect();
    assert_eq!(ids, [video_id.as_str()], "{listed}");
    // and answers for it by id (asked of A), but not with scope=local
    let one = get_json(format!("{streams_b}/{video_id}")).await;
    assert_eq!(one["video_id"], video_id.as_str(), "{one}");
    let here = reqwest::get(format!("{streams_b}/{video_id}?scope=local"))
        .await
        .unwrap();
    assert_eq!(here.status(), reqwest::StatusCode::NOT_FOUND);
    // its live edge, asked of the other instance (a balancer may send any request anywhere):
    // forwarded to the instance that runs the broadcast, blocking reloads included
    let http = reqwest::Client::new();
    let at =
        |host: std::net::SocketAddr, path: &str| format!("http://{host}/live/{video_id}/{path}");
    let t = Instant::now();
    let master = loop {
        let (status, body, _) = timed_get(&http, &at(b.http_addr, "ll.m3u8")).await;
        if status == 200 {
            break text(&body);
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no low-latency master through the other instance: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rung = master
        .lines()
        .find(|l| l.ends_with("/ll.m3u8"))
        .expect("a rung")
        .to_string();
    let (status, body, _) = timed_get(&http, &at(stack.ingest_http, &rung)).await;
    assert_eq!(status, 200);
    let (msn, part) = newest_part(&text(&body));
    let (status, body, _) = timed_get(
        &http,
        &at(
            b.http_addr,
            &format!("{rung}?_HLS_msn={msn}&_HLS_part={}", part + 1),
        ),
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
    assert!(newest_part(&text(&body)) > (msn, part), "{}", text(&body));
    let (status, _, _) = timed_get(
        &http,
        &at(b.http_addr, &format!("{rung}?_HLS_msn={}", msn + 5)),
    )
    .await;
    assert_eq!(status, 400, "the owner's 400 comes back as it is");
    let (status, _, _) =
        timed_get(&http, &format!("http://{}/live/nope/ll.m3u8", b.http_addr)).await;
    assert_eq!(status, 404);
    let (ok, err) = wait_child(first, Duration::from_secs(30)).await;
    assert!(ok, "{err}");
    wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(30),
    )
    .await;
    // finished and released: the key goes live at the other instance now
    tokio::time::sleep(Duration::from_secs(1)).await;
    let third = small(4).spawn(&at_b);
    let other = wait_listed_at(&streams_b, Duration::from_secs(10)).await;
    assert_ne!(other, video_id);
    let (ok, err) = wait_child(third, Duration::from_secs(20)).await;
    assert!(ok, "{err}");
    stop_b.cancel();
    b.wait().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_whose_instance_never_comes_back_is_finished_by_another() {
    let _turn = HEAVY.lock().await;
    // the stack's own ingest is the survivor
    let stack = Stack::start(StackOptions {
        ingest: Some(shared_state),
        ..Default::default()
    })
    .await;
    let ports = (free_port(), free_port(), free_port());
    let redis = test_stack::env("CAUDAL_TEST_REDIS_URL");
    let mut doomed = spawn_ingest(
        &stack,
        ports,
        &stack.dir.path().join("doomed-spool"),
        &[
            ("CAUDAL_INGEST_SHARED_STATE_URL", redis.as_str()),
            ("CAUDAL_INGEST_LEASE_TTL_SECS", "3"),
        ],
    );
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", ports.0)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "ingest did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut publisher = Publisher {
        secs: 120,
        width: 426,
        height: 240,
        ..Default::default()
    }
    .spawn(&format!(
        "rtmp://127.0.0.1:{}/live/{}",
        ports.0, stack.demo_key
    ));
    let video_id = wait_listed_at(
        &format!("http://127.0.0.1:{}/v1/streams", ports.1),
        Duration::from_secs(20),
    )
    .await;
    let master = stack
        .wait_object(
            &format!("live/{video_id}/master.m3u8"),
            Duration::from_secs(30),
        )
        .await;
    let rung = first_rung(&master);
    wait_listed(
        &stack,
        &format!("live/{video_id}/{rung}/index.m3u8"),
        4,
        None,
    )
    .await;

    doomed.kill().expect("SIGKILL ingest");
    let _ = doomed.wait();
    let killed = Instant::now();
    let _ = publisher.kill();
    let _ = publisher.wait();
    let doc = wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(40),
    )
    .await;
    eprintln!(
        "figure: instance killed to recording finished by another instance: {} ms (heartbeat timeout 3 s)",
        killed.elapsed().as_millis()
    );
    let vod = text(
        &stack
            .wait_object(
                &format!("live/{video_id}/{rung}/vod.m3u8"),
                Duration::from_secs(5),
            )
            .await,
    );
    assert!(vod.ends_with("#EXT-X-ENDLIST\n"), "{vod}");
    assert!(segments_of(&vod).len() >= 4, "{vod}");
    assert!(doc.duration_secs.unwrap() >= 7.0);
    // the dead instance's lease lapsed: the key goes live at the survivor
    let (ok, err) = wait_child(
        Publisher {
            secs: 3,
            width: 320,
            height: 240,
            ..Default::default()
        }
        .spawn(&stack.rtmp_url(&stack.demo_key)),
        Duration::from_secs(20),
    )
    .await;
    assert!(ok, "{err}");
    stack.stop().await;
}

/// A counter of ingest's Prometheus endpoint (0 when absent), summed over label sets that
/// contain `label`.
async fn metric(addr: std::net::SocketAddr, name: &str, label: &str) -> f64 {
    let body = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_larger_than_4k_is_refused_with_the_connection_closed() {
    let _turn = HEAVY.lock().await;
    let stack = Stack::start(StackOptions::default()).await;
    let before = metric(
        stack.ingest.metrics_addr,
        "caudal_rtmp_rejected_total",
        "source_refused",
    )
    .await;
    // wider than 4096 (cheap to encode: only 240 lines)
    let wide = Publisher {
        secs: 20,
        width: 4200,
        height: 240,
        fps: 10,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let t = Instant::now();
    let (ok, _) = wait_child(wide, Duration::from_secs(15)).await;
    assert!(!ok, "the publisher is disconnected");
    assert!(t.elapsed() < Duration::from_secs(15));
    let after = metric(
        stack.ingest.metrics_addr,
        "caudal_rtmp_rejected_total",
        "source_refused",
    )
    .await;
    assert!(after > before, "counted: {before} -> {after}");
    // refused for good (no reconnect hold), and nothing was recorded
    let t = Instant::now();
    while !stack.live_streams().await.is_empty() {
        assert!(t.elapsed() < Duration::from_secs(5), "still listed as live");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stack
        .store
        .list("live/")
        .await
        .unwrap()
        .iter()
        .all(|k| !k.ends_with(".ts")));
    // a source within limits still publishes
    let (ok, err) = wait_child(
        Publisher {
            secs: 3,
            width: 320,
            height: 240,
            ..Default::default()
        }
        .spawn(&stack.rtmp_url(&stack.demo_key)),
        Duration::from_secs(20),
    )
    .await;
    assert!(ok, "{err}");
    stack.stop().await;
}

/// xorshift64*: a small seeded generator (runs are repeatable from the seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A few random edits: flipped or extreme bytes, inserted noise, deleted or repeated ranges,
/// truncation.
fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(6) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(7) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = [0x00, 0xff, 0x7f, 0x80][rng.below(4)],
            2 => {
                let n = 1 + rng.below(16);
                let noise: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, noise);
            }
            3 => {
                let end = (at + 1 + rng.below(64)).min(b.len());
                b.drain(at..end);
            }
            4 => {
                let end = (at + 1 + rng.below(256)).min(b.len());
                let dup = b[at..end].to_vec();
                b.splice(at..at, dup);
            }
            5 => b.truncate(at),
            _ => {
                // a big-endian length or timestamp field blown up
                for i in at..(at + 3).min(b.len()) {
                    b[i] = 0xff;
                }
            }
        }
    }
    b
}

/// Records what a real ffmpeg publisher sends after the handshake (through a proxy).
async fn record_publisher(ingest: std::net::SocketAddr, key: &str) -> Vec<u8> {
    use tokio::net::{TcpListener, TcpStream};
    let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = proxy.local_addr().unwrap();
    let recorder = tokio::spawn(async move {
        let (mut client, _) = proxy.accept().await.unwrap();
        let mut server = TcpStream::connect(ingest).await.unwrap();
        let (mut cr, mut cw) = client.split();
        let (mut sr, mut sw) = server.split();
        let mut sent = Vec::new();
        let up = async {
            let mut buf = [0u8; 16384];
            loop {
                match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        sent.extend_from_slice(&buf[..n]);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sw.shutdown().await;
        };
        let down = tokio::io::copy(&mut sr, &mut cw);
        let _ = tokio::join!(up, down);
        sent
    });
    let (ok, err) = wait_child(
        Publisher {
            secs: 3,
            width: 320,
            height: 240,
            fps: 15,
            ..Default::default()
        }
        .spawn(&format!("rtmp://{addr}/live/{key}")),
        Duration::from_secs(20),
    )
    .await;
    assert!(ok, "recording publisher: {err}");
    let sent = recorder.await.unwrap();
    // C0 + C1 + C2
    assert!(sent.len() > 3073 + 10_000, "{} bytes", sent.len());
    sent[3073..].to_vec()
}

/// One fuzz session: a real handshake (or, one time in ten, a mutated one), then `body`,
/// then end of input; reads what the server answers until it closes.
async fn fuzz_session(server: std::net::SocketAddr, body: Vec<u8>, raw: bool) {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    let Ok(mut s) = tokio::net::TcpStream::connect(server).await else {
        return;
    };
    let mut hs = Handshake::new(PeerType::Client);
    let c0c1 = hs.generate_outbound_p0_and_p1().unwrap();
    let mut buf = vec![0u8; 8192];
    if raw {
        let _ = s.write_all(&[&c0c1[..], &body[..]].concat()).await;
    } else {
        if s.write_all(&c0c1).await.is_err() {
            return;
        }
        loop {
            let n = match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return,
            };
            match hs.process_bytes(&buf[..n]) {
                Ok(HandshakeProcessResult::InProgress { response_bytes }) => {
                    if s.write_all(&response_bytes).await.is_err() {
                        return;
                    }
                }
                Ok(HandshakeProcessResult::Completed { response_bytes, .. }) => {
                    if s.write_all(&response_bytes).await.is_err() {
                        return;
                    }
                    break;
                }
                Err(_) => return,
            }
        }
        let _ = s.write_all(&body).await;
    }
    let _ = s.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mutated_sessions_while_a_real_broadcast_runs() {
    let _turn = HEAVY.lock().await;
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        default_hook(info);
    }));
    let stack = Stack::start(StackOptions::default()).await;
    // the fuzzer's own key: its sessions that survive mutation publish (and take each
    // other over) without touching the real broadcast
    let http = reqwest::Client::new();
    let base = format!("http://{}", stack.users_addr);
    let login: serde_json::Value = http
        .post(format!("{base}/v1/auth/login"))
        .json(&serde_json::json!({"email": stack.demo_email, "password": stack.demo_password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_string();
    let created: serde_json::Value = http
        .post(format!("{base}/v1/stream-keys"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"label": "fuzzer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fuzz_key = created["key"].as_str().unwrap().to_string();
    let transcript = record_publisher(stack.rtmp_addr, &fuzz_key).await;
    // the same bytes with the key made invalid (same length, so AMF lengths still hold)
    let bad_key: String = "z".repeat(fuzz_key.len());
    let invalid = {
        let mut t = transcript.clone();
        let k = fuzz_key.as_bytes();
        let mut i = 0;
        while i + k.len() <= t.len() {
            if &t[i..i + k.len()] == k {
                t[i..i + k.len()].copy_from_slice(bad_key.as_bytes());
                i += k.len();
            } else {
                i += 1;
            }
        }
        t
    };
    assert_ne!(invalid, transcript, "the key is in the transcript");

    let publish_secs = 40;
    let real = Publisher {
        secs: publish_secs,
        width: 426,
        height: 240,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;

    let caught_before = metric(
        stack.ingest.metrics_addr,
        "caudal_rtmp_rejected_total",
        "parser_panic",
    )
    .await;
    let panics_before = PANICS.load(std::sync::atomic::Ordering::SeqCst);
    let sessions = 10_000usize;
    let started = Instant::now();
    let server = stack.rtmp_addr;
    let mut rng = Rng(0x00C0_FFEE_D15C_0BA1);
    let jobs: Vec<(Vec<u8>, bool)> = (0..sessions)
        .map(|i| {
            // one in twenty keeps a valid key (media reaches the parsers and the pipeline)
            let base = if i % 20 == 0 { &transcript } else { &invalid };
            let raw = i % 10 == 5;
            (mutate(&mut rng, base.clone()), raw)
        })
        .collect();
    use futures::StreamExt;
    futures::stream::iter(jobs)
        .for_each_concurrent(32, |(body, raw)| fuzz_session(server, body, raw))
        .await;
    let fuzz_secs = started.elapsed().as_secs_f64();

    let (ok, err) = wait_child(real, Duration::from_secs(90)).await;
    assert!(ok, "the real publisher streamed to its end: {err}");
    let doc = wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(60),
    )
    .await;
    let master = stack
        .wait_object(
            &format!("live/{video_id}/master.m3u8"),
            Duration::from_secs(5),
        )
        .await;
    let rung = first_rung(&master);
    let vod = text(
        &stack
            .wait_object(
                &format!("live/{video_id}/{rung}/vod.m3u8"),
                Duration::from_secs(5),
            )
            .await,
    );
    assert!(!vod.contains("DISCONTINUITY"), "{vod}");
    let segs = segments_of(&vod);
    for (i, (uri, _)) in segs.iter().enumerate() {
        assert_eq!(uri, &format!("seg_{i:05}.ts"), "no missing segment: {vod}");
    }
    let secs = doc.duration_secs.unwrap();
    let panics = PANICS.load(std::sync::atomic::Ordering::SeqCst) - panics_before;
    let caught = metric(
        stack.ingest.metrics_addr,
        "caudal_rtmp_rejected_total",
        "parser_panic",
    )
    .await
        - caught_before;
    eprintln!(
        "figure: network fuzzer: {sessions} sessions in {fuzz_secs:.1} s; {panics} panics inside rml_rtmp's parser, {caught} caught (connection closed), 0 crashes; the real broadcast: {} segments, {secs:.1} s of {publish_secs} s",
        segs.len()
    );
    // every panic was one of the parser's, caught and turned into a closed connection
    assert_eq!(panics as f64, caught, "a panic escaped the guard");
    assert!(secs >= publish_secs as f64 - 3.0, "{secs}");
    // ingest still takes publishers
    let (ok, err) = wait_child(
        Publisher {
            secs: 3,
            width: 320,
            height: 240,
            ..Default::default()
        }
        .spawn(&stack.rtmp_url(&stack.demo_key)),
        Duration::from_secs(20),
    )
    .await;
    assert!(ok, "{err}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_keyframes_is_cut_anyway_and_memory_stays_bounded() {
    let _turn = HEAVY.lock().await;
    let stack = Stack::start(StackOptions {
        transcode: LiveConfig {
            passthrough: true,
            rungs: vec![RungSpec::new("180p", 180, 300)],
            max_segment_secs: 3.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let before = metric(stack.ingest.metrics_addr, "caudal_forced_cuts_total", "").await;
    // one keyframe at the start, then none (a broken encoder)
    let publisher = Publisher {
        secs: 12,
        width: 320,
        height: 240,
        gop: 100_000,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;
    let (ok, err) = wait_child(publisher, Duration::from_secs(30)).await;
    assert!(ok, "{err}");
    wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(30),
    )
    .await;
    let after = metric(stack.ingest.metrics_addr, "caudal_forced_cuts_total", "").await;
    assert!(
        after > before,
        "a forced cut was counted: {before} -> {after}"
    );
    let master = text(
        &stack
            .wait_object(&format!("live/{video_id}/vod.m3u8"), Duration::from_secs(5))
            .await,
    );
    let source = master
        .lines()
        .find(|l| !l.starts_with('#') && !l.contains("180p"))
        .expect("the passthrough rung")
        .to_string();
    let copied = text(
        &stack
            .store
            .get(&format!("live/{video_id}/{source}"))
            .await
            .unwrap(),
    );
    let p = m3u8_rs::parse_media_playlist_res(copied.as_bytes()).unwrap();
    // cut at the limit instead of growing for 12 s; nothing after (no keyframe came)
    assert_eq!(p.segments.len(), 1, "{copied}");
    assert!(p.segments[0].duration <= 3.2, "{copied}");
    // the encoded rung forces its own keyframes: the whole broadcast
    let encoded = text(
        &stack
            .store
            .get(&format!("live/{video_id}/180p/vod.m3u8"))
            .await
            .unwrap(),
    );
    let e = m3u8_rs::parse_media_playlist_res(encoded.as_bytes()).unwrap();
    let total: f32 = e.segments.iter().map(|s| s.duration).sum();
    assert!(total >= 11.0, "{encoded}");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_given_up_during_an_outage_are_marked_not_skipped_silently() {
    let _turn = HEAVY.lock().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut s3 = spawn_s3(port, data.path());
    let storage = own_s3_store(port, "giveup");
    let stack = Stack::start(StackOptions {
        storage: Some(storage),
        // give up on a segment after 1 s (the default is 10 minutes)
        transcode: LiveConfig {
            upload_give_up_secs: 1,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let lost_before = metric(stack.ingest.metrics_addr, "caudal_segments_lost_total", "").await;
    let publisher = Publisher {
        secs: 24,
        width: 426,
        height: 240,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;
    let master = stack
        .wait_object(
            &format!("live/{video_id}/master.m3u8"),
            Duration::from_secs(30),
        )
        .await;
    let rung = first_rung(&master);
    wait_listed(
        &stack,
        &format!("live/{video_id}/{rung}/index.m3u8"),
        3,
        None,
    )
    .await;
    s3.kill().expect("stop s3s-fs");
    let _ = s3.wait();
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut s3 = spawn_s3(port, data.path());
    let (ok, err) = wait_child(publisher, Duration::from_secs(60)).await;
    assert!(ok, "{err}");
    let doc = wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(60),
    )
    .await;
    let lost =
        metric(stack.ingest.metrics_addr, "caudal_segments_lost_total", "").await - lost_before;
    assert!(lost >= 1.0, "segments were given up: {lost}");
    let vod = text(
        &stack
            .wait_object(
                &format!("live/{video_id}/{rung}/vod.m3u8"),
                Duration::from_secs(5),
            )
            .await,
    );
    let segs = segments_of(&vod);
    assert!(
        segs.iter().any(|(_, d)| *d),
        "the hole is marked with a discontinuity: {vod}"
    );
    for (i, (uri, _)) in segs.iter().enumerate() {
        assert_eq!(
            uri,
            &format!("seg_{i:05}.ts"),
            "numbering stays contiguous: {vod}"
        );
    }
    let secs = doc.duration_secs.unwrap();
    assert!(secs < 23.0, "the lost time is not in the recording: {secs}");
    eprintln!(
        "figure: give-up test: {lost} segment(s) given up, marked; {secs:.1} s recorded of 24 s"
    );
    stack.stop().await;
    let _ = s3.kill();
    let _ = s3.wait();
}

/// A client that completes the handshake, `connect` and `publish` (rml_rtmp's own client
/// session), then returns the socket for hand-made chunks. Fails the test if not accepted.
async fn published_socket(server: std::net::SocketAddr, key: &str) -> tokio::net::TcpStream {
    use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
        PublishRequestType,
    };
    let mut s = tokio::net::TcpStream::connect(server).await.unwrap();
    let mut hs = Handshake::new(PeerType::Client);
    s.write_all(&hs.generate_outbound_p0_and_p1().unwrap())
        .await
        .unwrap();
    let mut buf = vec![0u8; 65536];
    let rest = loop {
        let n = s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed during the handshake");
        match hs.process_bytes(&buf[..n]).unwrap() {
            HandshakeProcessResult::InProgress { response_bytes } => {
                s.write_all(&response_bytes).await.unwrap()
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                s.write_all(&response_bytes).await.unwrap();
                break remaining_bytes;
            }
        }
    };
    let (mut session, _) = ClientSession::new(ClientSessionConfig::new()).unwrap();
    let mut pending = vec![session.request_connection("live".into()).unwrap()];
    let mut input = rest;
    let mut published = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !published {
        assert!(Instant::now() < deadline, "publish was not accepted");
        let mut results = std::mem::take(&mut pending);
        if !input.is_empty() {
            results.extend(session.handle_input(&input).unwrap());
        }
        for r in results {
            match r {
                ClientSessionResult::OutboundResponse(p) => s.write_all(&p.bytes).await.unwrap(),
                ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                    pending.push(
                        session
                            .request_publishing(key.to_string(), PublishRequestType::Live)
                            .unwrap(),
                    )
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted) => {
                    published = true
                }
                _ => {}
            }
        }
        if published || !pending.is_empty() {
            continue;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("server answer")
            .unwrap();
        assert!(n > 0, "closed before publish was accepted");
        input = buf[..n].to_vec();
    }
    s
}

/// Writes `body` in pieces until the server closes; returns the bytes it took and whether
/// it closed within `within`.
async fn send_until_closed(
    s: &mut tokio::net::TcpStream,
    body: &[u8],
    within: Duration,
) -> (usize, bool) {
    let mut sent = 0;
    let mut sink = [0u8; 4096];
    let end = Instant::now() + within;
    while Instant::now() < end {
        if sent < body.len() {
            let piece = &body[sent..(sent + 65536).min(body.len())];
            match tokio::time::timeout(Duration::from_millis(200), s.write_all(piece)).await {
                Ok(Ok(())) => sent += piece.len(),
                Ok(Err(_)) => return (sent, true),
                Err(_) => {}
            }
        }
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (sent, true),
            _ => {}
        }
    }
    (sent, false)
}

/// After `publish`, rml_rtmp buffers a message as its chunk headers announce it (up to
/// 16 MiB) and appends chunks of other chunk streams to the message in progress, so an
/// accepted publisher could make ingest hold memory of its choosing. Both are refused from
/// the chunk header, before the payload is buffered; the running broadcast is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_overrunning_rtmp_messages_are_refused_from_their_headers() {
    let _turn = HEAVY.lock().await;
    let stack = Stack::start(StackOptions::default()).await;
    let metrics = stack.ingest.metrics_addr;
    let publisher = Publisher {
        secs: 12,
        width: 320,
        height: 240,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let video_id = wait_live(&stack, Duration::from_secs(10)).await;
    // a second key, so that the hostile publisher is accepted without taking over
    let second_key = new_stream_key(&stack, "hostile").await.key;

    // a video message announcing 16 MiB - 1 on chunk stream 6, then its payload
    let before = metric(metrics, "caudal_rtmp_rejected_total", "message_too_large").await;
    let mut s = published_socket(stack.rtmp_addr, &second_key).await;
    let mut body = vec![0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0];
    body.extend(std::iter::repeat_n(0x17u8, 16 << 20));
    let (sent, closed) = send_until_closed(&mut s, &body, Duration::from_secs(10)).await;
    assert!(closed, "the connection was closed");
    assert!(
        sent < 16 << 20,
        "closed before the payload arrived ({sent} bytes taken)"
    );
    let after = metric(metrics, "caudal_rtmp_rejected_total", "message_too_large").await;
    assert_eq!(after, before + 1.0, "counted as message_too_large");

    // chunks of a second stream appended to a message in progress: refused when one would
    // run past its message (else the message grows for as long as the peer sends)
    let before = metric(metrics, "caudal_rtmp_rejected_total", "bad_chunk").await;
    let mut s = published_socket(stack.rtmp_addr, &second_key).await;
    let mut body = vec![0x06, 0, 0, 0, 0, 0x03, 0xE8, 9, 1, 0, 0, 0];
    body.extend_from_slice(&[0x17; 128]);
    for _ in 0..20_000 {
        body.extend_from_slice(&[0x07, 0, 0, 0, 0, 0, 100, 8, 1, 0, 0, 0]);
        body.extend_from_slice(&[0xAF; 100]);
    }
    let (_, closed) = send_until_closed(&mut s, &body, Duration::from_secs(10)).await;
    assert!(closed, "the connection was closed");
    let after = metric(metrics, "caudal_rtmp_rejected_total", "bad_chunk").await;
    assert_eq!(after, before + 1.0, "counted as bad_chunk");

    // the real broadcast ran on, to its end
    let (ok, err) = wait_child(publisher, Duration::from_secs(40)).await;
    assert!(ok, "{err}");
    let doc = wait_status(
        &stack,
        &video_id,
        VideoStatus::Recorded,
        Duration::from_secs(30),
    )
    .await;
    let d = doc.duration_secs.unwrap();
    assert!((d - 12.0).abs() <= 2.0, "duration {d}");
    stack.stop().await;
}

/// The queue of the recording-artwork test: a fixed name (a `fn` cannot capture), used by no
/// other test.
fn recording_jobs() -> jobs::JobsConfig {
    jobs::JobsConfig {
        url: test_stack::env("CAUDAL_TEST_NATS_URL"),
        stream: "REC_ARTWORK_TEST".into(),
        subject_prefix: "recartwork.jobs".into(),
        consumer: "workers".into(),
        dead_letter_subject: "recartwork.dead".into(),
        ack_wait_secs: 10,
        max_deliver: 3,
        ..jobs::JobsConfig::default()
    }
}

fn queue_recording_jobs(c: &mut ingest_rtmp::Config) {
    c.jobs = recording_jobs();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_broadcast_gets_a_poster_and_a_storyboard_from_a_worker() {
    poster_and_storyboard(transcoder::SegmentFormat::Ts).await;
}

/// The same with CMAF segments: the worker reads each segment after its init section.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cmaf_broadcast_gets_a_poster_and_a_storyboard_from_a_worker() {
    poster_and_storyboard(transcoder::SegmentFormat::Fmp4).await;
}

async fn poster_and_storyboard(format: transcoder::SegmentFormat) {
    let _heavy = HEAVY.lock().await;
    let stack = Stack::start(StackOptions {
        transcode: LiveConfig {
            rungs: vec![
                RungSpec::new("480p", 480, 900),
                RungSpec::new("240p", 240, 300),
            ],
            x264_preset: "ultrafast".into(),
            segment_format: format,
            ..Default::default()
        },
        ingest: Some(queue_recording_jobs),
        ..Default::default()
    })
    .await;
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = transcoder::worker::WorkerConfig {
        metadata_svc_url: format!("http://{}", stack.metadata_addr),
        storage: storage::StoreConfig::Local {
            root: stack.dir.path().join("media"),
        },
        jobs: recording_jobs(),
        work_dir: stack.dir.path().join("work"),
        artwork: transcoder::artwork::ArtworkConfig {
            interval_secs: 2.0,
            ..Default::default()
        },
        retry_delay_secs: 1,
        ..Default::default()
    };
    let w_stop = stop.clone();
    tokio::spawn(async move { transcoder::worker::run(worker, w_stop).await });

    let p = Publisher {
        width: 854,
        height: 480,
        // long enough that the broadcast is still on air when the live poster comes, however
        // busy the machine; it is stopped (SIGINT, as a streamer stops) once the poster is seen
        secs: 90,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let id = wait_live(&stack, Duration::from_secs(30)).await;
    // on air, once playable, a poster from the live stream (its card gets a picture)
    let t = Instant::now();
    let live_poster = loop {
        let v = stack.metadata.get_video(&id).await.unwrap().unwrap();
        if let Some(poster) = &v.poster {
            assert_eq!(v.status, VideoStatus::Live, "the poster came late: {v:?}");
            assert_eq!(v.storyboard, None, "a live broadcast has no storyboard");
            // its own name: the edge keeps posters for a year, the recording's is another URL
            assert_eq!(poster, &format!("live/{id}-live/poster.jpg"));
            let jpeg = stack.store.get(poster).await.unwrap();
            assert_eq!(&jpeg[..2], &[0xff, 0xd8], "a JPEG");
            // the live playlist the poster came from is in the format asked for
            let live = text(
                &stack
                    .store
                    .get(&format!("live/{id}/480p/index.m3u8"))
                    .await
                    .unwrap(),
            );
            let ext = format!(".{}\n", format.extension());
            assert!(live.contains(&ext), "{live}");
            assert_eq!(
                live.contains("#EXT-X-MAP:URI=\"init_"),
                format == transcoder::SegmentFormat::Fmp4,
                "{live}"
            );
            break poster.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "no poster while live: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // the streamer stops: ffmpeg ends the stream cleanly on SIGINT (and exits 255)
    let sent = std::process::Command::new("kill")
        .args(["-INT", &p.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let (_, log) = wait_child(p, Duration::from_secs(30)).await;
    assert!(!log.contains("killed after timeout"), "{log}");
    wait_status(&stack, &id, VideoStatus::Recorded, Duration::from_secs(60)).await;
    // the worker answers the job ingest queued at the end
    let t = Instant::now();
    let v = loop {
        let v = stack.metadata.get_video(&id).await.unwrap().unwrap();
        if v.poster.is_some() && v.storyboard.is_some() {
            break v;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no poster and storyboard: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(v.status, VideoStatus::Recorded);
    let poster = v.poster.unwrap();
    assert_eq!(poster, format!("live/{id}/poster.jpg"));
    // the live frame it replaced is gone from storage
    assert!(
        stack.store.get(&live_poster).await.is_err(),
        "{live_poster} left behind"
    );
    let jpeg = stack.store.get(&poster).await.unwrap();
    assert_eq!(&jpeg[..3], &[0xff, 0xd8, 0xff]);
    let probe = ffprobe_bytes(stack.dir.path(), "poster.jpg", &jpeg);
    assert_eq!(probe["streams"][0]["codec_name"], "mjpeg", "{probe}");
    let vtt = text(&stack.store.get(&v.storyboard.unwrap()).await.unwrap());
    let cues = vtt.lines().filter(|l| l.contains("#xywh=")).count();
    let d = v.duration_secs.unwrap();
    assert_eq!(cues, (d / 2.0).ceil() as usize, "{d} s: {vtt}");
    assert!(stack
        .store
        .head(&format!("live/{id}/storyboard-0.jpg"))
        .await
        .is_ok());
    stop.cancel();
    stack.stop().await;
}

/// GETs `url`: status, body and the time it took.
async fn timed_get(http: &reqwest::Client, url: &str) -> (u16, bytes::Bytes, Duration) {
    let t = Instant::now();
    let r = http.get(url).send().await.expect("the live origin answers");
    let status = r.status().as_u16();
    let body = r.bytes().await.expect("body");
    (status, body, t.elapsed())
}

/// The newest msn and part a low-latency playlist lists.
fn newest_part(pl: &str) -> (u64, usize) {
    let uri = pl
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PART:"))
        .and_then(|l| l.split("URI=\"ll_").nth(1))
        .and_then(|r| r.split(".m4s").next())
        .expect("a part is listed")
        .to_string();
    let (msn, part) = uri.split_once('_').expect("msn_part");
    (msn.parse().unwrap(), part.parse().unwrap())
}

/// Low-latency HLS from a real publisher: ingest's live origin serves parts about half a
/// second apart, holds a blocking reload until the part it asks for exists, refuses one too
/// far ahead at once, and ends the playlist when the streamer stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_broadcast_is_served_as_low_latency_hls_with_blocking_reloads() {
    let _heavy = HEAVY.lock().await;
    let stack = Stack::start(StackOptions {
        transcode: LiveConfig {
            rungs: vec![
                RungSpec::new("480p", 480, 900),
                RungSpec::new("240p", 240, 300),
            ],
            x264_preset: "ultrafast".into(),
            segment_format: transcoder::SegmentFormat::Fmp4,
            part_secs: 0.5,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let p = Publisher {
        width: 854,
        height: 480,
        secs: 90,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&stack.demo_key));
    let id = wait_live(&stack, Duration::from_secs(30)).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}/live/{id}", stack.ingest_http);
    // the master, once every rung has a stored segment
    let t = Instant::now();
    let master = loop {
        let (status, body, _) = timed_get(&http, &format!("{base}/ll.m3u8")).await;
        if status == 200 {
            break text(&body);
        }
        assert_eq!(status, 404);
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "no low-latency master"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let pl = m3u8_rs::parse_master_playlist_res(master.as_bytes()).expect("a master playlist");
    let rungs: Vec<String> = pl.variants.iter().map(|v| v.uri.clone()).collect();
    assert_eq!(rungs, ["480p/ll.m3u8", "240p/ll.m3u8"], "{master}");
    // the video names its low-latency master (bff hands it out, signed, beside the standard one)
    let t = Instant::now();
    loop {
        let v = stack.metadata.get_video(&id).await.unwrap().unwrap();
        if v.playback.low_latency.is_some() {
            assert_eq!(v.playback.low_latency, Some(format!("live/{id}/ll.m3u8")));
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no low-latency master recorded: {v:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = format!("{base}/480p/ll.m3u8");
    let (status, body, _) = timed_get(&http, &url).await;
    assert_eq!(status, 200);
    let now = text(&body);
    assert!(
        now.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES"),
        "{now}"
    );
    assert!(
        now.contains("#EXT-X-RENDITION-REPORT:URI=\"../240p/ll.m3u8\""),
        "{now}"
    );
    // a blocking reload for the part after the newest is held until that part exists
    let (msn, part) = newest_part(&now);
    let (status, body, _) = timed_get(
        &http,
        &format!("{url}?_HLS_msn={msn}&_HLS_part={}", part + 1),
    )
    .await;
    assert_eq!(status, 200, "{}", text(&body));
    let next = text(&body);
    let after = newest_part(&next);
    assert!(after > (msn, part), "{next}");
    // the next few parts, each waited for: they come at the pace of the media
    let mut waits = Vec::new();
    let mut at = after;
    for _ in 0..6 {
        let (status, body, took) = timed_get(
            &http,
            &format!("{url}?_HLS_msn={}&_HLS_part={}", at.0, at.1 + 1),
        )
        .await;
        assert_eq!(status, 200);
        let pl = text(&body);
        at = newest_part(&pl);
        waits.push(took.as_secs_f64());
    }
    // held, not answered at once: parts come about every half second, so six requests for
    // the next one wait a few seconds in all (not a speed figure: it checks they block)
    let held: f64 = waits.iter().sum();
    assert!(
        held > 1.0,
        "blocking reloads answered without waiting: {waits:?}"
    );
    // too far ahead: 400 at once, no connection held
    let (status, _, _) = timed_get(&http, &format!("{url}?_HLS_msn={}", at.0 + 3)).await;
    assert_eq!(status, 400);
    let (status, _, _) = timed_get(&http, &format!("{url}?_HLS_part=1")).await;
    assert_eq!(status, 400);
    let (status, _, _) = timed_get(&http, &format!("{url}?_HLS_msn=x")).await;
    assert_eq!(status, 400);
    // the newest part after the init section decodes: a part is real media
    let pl = text(&timed_get(&http, &url).await.1);
    let init_uri = pl
        .split("#EXT-X-MAP:URI=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let (status, init, _) = timed_get(&http, &format!("{base}/480p/{init_uri}")).await;
    assert_eq!(status, 200);
    let first_of_segment = pl
        .lines()
        .rfind(|l| l.starts_with("#EXT-X-PART:") && l.ends_with("INDEPENDENT=YES"))
        .and_then(|l| l.split("URI=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .expect("an independent part")
        .to_string();
    let (status, part_bytes, _) =
        timed_get(&http, &format!("{base}/480p/{first_of_segment}")).await;
    assert_eq!(status, 200);
    let probed = ffprobe_bytes(
        stack.dir.path(),
        "part.mp4",
        &[init.to_vec(), part_bytes.to_vec()].concat(),
    );
    let video = probed["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .cloned()
        .expect("a video stream");
    assert_eq!(video["height"], 480, "{probed}");
    // a complete segment from the live edge is the object the recording stores
    let seg = pl
        .lines()
        .find(|l| l.starts_with("ll_") && l.ends_with(".m4s"))
        .unwrap()
        .to_string();
    let msn: u64 = seg[3..8].parse().unwrap();
    let (status, from_edge, _) = timed_get(&http, &format!("{base}/480p/{seg}")).await;
    assert_eq!(status, 200);
    let stored = stack
        .wait_object(
            &format!("live/{id}/480p/seg_{msn:05}.m4s"),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(stored, from_edge, "the live edge and the recording differ");
    // an unknown stream, rung or file: 404
    for path in [
        "nope/480p/ll.m3u8",
        "{id}/1080p/ll.m3u8",
        "{id}/480p/seg_00000.m4s",
    ] {
        let (status, _, _) = timed_get(
            &http,
            &format!(
                "http://{}/live/{}",
                stack.ingest_http,
                path.replace("{id}", &id)
            ),
        )
        .await;
        assert_eq!(status, 404, "{path}");
    }
    // the streamer stops: the playlist ends, blocked players are answered
    let sent = std::process::Command::new("kill")
        .args(["-INT", &p.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let (_, log) = wait_child(p, Duration::from_secs(30)).await;
    assert!(!log.contains("killed after timeout"), "{log}");
    let t = Instant::now();
    loop {
        let pl = text(&timed_get(&http, &url).await.1);
        if pl.ends_with("#EXT-X-ENDLIST\n") {
            assert!(!pl.contains("PRELOAD-HINT"), "{pl}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "no ENDLIST: {pl}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_status(&stack, &id, VideoStatus::Recorded, Duration::from_secs(60)).await;
}
