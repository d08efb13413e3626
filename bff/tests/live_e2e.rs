//! The whole way through real services and the real nginx edge: a creator sets "subscribers
//! only" as the default for new broadcasts, gets a stream key, ffmpeg publishes over RTMP, and
//! the broadcast is protected from its first second: anonymous and non-subscribed viewers get
//! no playback URL from bff and 403 from the edge (unsigned paths, another video's token, a
//! tampered or expired token), without the edge fetching anything from its origin. A viewer
//! subscribes, gets a signed URL, and ffprobe reads the stream through the edge. Revoking the
//! stream key ends the broadcast within 5 s; the recording plays the same way. Changing the
//! policy stops new URLs at once and the old one within one token lifetime; deleting the video
//! removes its media from storage.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{config, opens, start_bff};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use test_stack::{Edge, Publisher, Stack, StackOptions};
use tokio_util::sync::CancellationToken;
use transcoder::{LiveConfig, RungSpec};

/// ffprobe of a URL: the streams it found.
async fn ffprobe_url(url: &str) -> Value {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_type,width,height",
                "-of",
                "json",
            ])
            .arg(&url)
            .output()
            .expect("ffprobe runs");
        assert!(
            out.status.success(),
            "ffprobe failed on {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).expect("ffprobe json")
    })
    .await
    .unwrap()
}

fn has_video(probe: &Value, width: u64, height: u64) -> bool {
    probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["codec_type"] == "video" && s["width"] == width && s["height"] == height)
}

async fn edge_status(url: &str) -> u16 {
    reqwest::get(url)
        .await
        .expect("the edge answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_live_stream_is_protected_at_the_edge_from_its_first_second() {
    let transcode = LiveConfig {
        x264_preset: "ultrafast".into(),
        rungs: vec![RungSpec::new("360p", 360, 800)],
        ..Default::default()
    };
    let stack = Stack::start(StackOptions {
        transcode,
        storage: None,
        ..Default::default()
    })
    .await;
    let stop = CancellationToken::new();
    let media = stack.dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let keys_spec = format!("test={}", bff::config::TEST_PLAYBACK_SECRET);
    let edge = Edge::start(&media, &keys_spec).await;
    let ttl = 10;
    let mut cfg = config(&stack, &edge.url);
    cfg.playback.token_ttl_secs = ttl;
    let api = start_bff(cfg, &stop).await;
    let keys = playback_token::Keys::parse(&keys_spec, None).unwrap();

    // a creator with a plan, subscribers-only by default, and a stream key
    let (creator, creator_id) = api.creator("Alice", Some((500, "EUR"))).await;
    let defaults = api
        .send(
            Method::PUT,
            "/v1/studio/broadcast-defaults",
            Some(&creator),
            Some(json!({"visibility": "public", "access": {"policy": "subscribers"}})),
            &[],
        )
        .await
        .ok();
    assert_eq!(defaults["access"]["policy"], "subscribers");
    let created = api
        .post(
            "/v1/studio/stream-keys",
            Some(&creator),
            json!({"label": "test"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_string();
    let key_id = created.body["id"].as_str().unwrap().to_string();

    // long enough to outlive the test's live part: revoking the key ends it
    let publisher = Publisher {
        width: 640,
        height: 360,
        secs: 120,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&key));

    // the broadcast shows in "live now", subscribers-only from the start
    let t = Instant::now();
    let card = loop {
        let home = api.get("/v1/home", None).await.ok();
        if let Some(c) = home["live"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["creator"]["id"] == creator_id.as_str())
        {
            break c.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "not live within 15 s: {home}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let video_id = card["id"].as_str().unwrap().to_string();
    assert_eq!(card["status"], "live");
    assert_eq!(card["creator"]["display_name"], "Alice");
    assert_eq!(card["access"], "subscribers", "{card}");

    // the studio sees the input's health, measured by ingest (30 fps, a keyframe every 2 s)
    let health_path = format!("/v1/studio/videos/{video_id}/health");
    let t = Instant::now();
    let health = loop {
        let h = api.get(&health_path, Some(&creator)).await;
        assert_eq!(h.status, StatusCode::OK, "{}", h.body);
        if h.body["keyframe_interval_secs"].is_number() && h.body["frame_rate"].is_number() {
            break h.body;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no figures: {}",
            h.body
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(health["reconnecting"], false);
    let fps = health["frame_rate"].as_f64().unwrap();
    assert!((20.0..=40.0).contains(&fps), "{health}");
    assert!(health["input_kbps"].as_f64().unwrap() > 100.0, "{health}");
    let gop = health["keyframe_interval_secs"].as_f64().unwrap();
    assert!((1.5..=2.5).contains(&gop), "{health}");
    assert_eq!(health["advice"], json!([]), "a healthy input: {health}");

    // a second user is denied, with the offer that would grant access
    let (viewer, viewer_id) = api.signup("Bob").await;
    let not_mine = api.get(&health_path, Some(&viewer)).await;
    assert_eq!(not_mine.status, StatusCode::NOT_FOUND, "{}", not_mine.body);
    assert_eq!(
        api.get(&health_path, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let detail_path = format!("/v1/videos/{video_id}");
    let detail = api.get(&detail_path, Some(&viewer)).await.ok();
    assert_eq!(detail["video"]["status"], "live");
    assert_eq!(detail["access"]["allowed"], false);
    assert_eq!(detail["access"]["reason"], "not_subscribed");
    assert_eq!(
        detail["access"]["offer"],
        json!({"kind": "subscription", "creator_id": creator_id, "price_minor": 500, "currency": "EUR", "interval": "month"})
    );
    assert_eq!(detail["playback"], Value::Null);
    let anonymous = api.get(&detail_path, None).await.ok();
    assert_eq!(anonymous["access"]["reason"], "login_required");
    assert_eq!(anonymous["playback"], Value::Null);

    // the bytes are there, and the edge gives them to nobody without a token for this video
    let master = format!("live/{video_id}/master.m3u8");
    stack.wait_object(&master, Duration::from_secs(20)).await;
    let seg = stack
        .wait_object(
            &format!("live/{video_id}/360p/seg_00000.ts"),
            Duration::from_secs(10),
        )
        .await;
    assert!(!seg.is_empty());
    let fetched_before = edge.origin_fetches().len();
    let now = chrono::Utc::now().timestamp() as u64;
    let other = keys
        .signed_path("live/someothervideo/master.m3u8", now + 60)
        .unwrap()
        .replace("someothervideo", &video_id);
    let good = keys.signed_path(&master, now + 60).unwrap();
    let mut tampered = good.clone();
    let at = tampered.find("/live/").unwrap() - 1;
    let flipped = if &tampered[at..at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..at + 1, flipped);
    let expired = keys.signed_path(&master, now - 1).unwrap();
    for path in [
        master.clone(),
        format!("live/{video_id}/360p/index.m3u8"),
        format!("live/{video_id}/360p/seg_00000.ts"),
        other,
        tampered,
        expired,
    ] {
        assert_eq!(
            edge_status(&format!("{}/{path}", edge.url)).await,
            403,
            "{path}"
        );
    }
    assert_eq!(
        edge.origin_fetches().len(),
        fetched_before,
        "a refused request reached the origin"
    );

    // subscribes, then plays the live stream through the edge with the signed URL
    let sub = api
        .post(
            "/v1/subscriptions",
            Some(&viewer),
            json!({"creator_id": creator_id}),
        )
        .await;
    assert_eq!(sub.status, StatusCode::CREATED, "{}", sub.body);
    let t = Instant::now();
    let detail = loop {
        let detail = api.get(&detail_path, Some(&viewer)).await.ok();
        assert_eq!(
            detail["access"],
            json!({"allowed": true, "reason": "subscribed", "offer": null})
        );
        if detail["playback"].is_object() {
            break detail;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "no playback URL within 15 s: {detail}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let url = detail["playback"]["url"].as_str().unwrap().to_string();
    assert_eq!(opens(&detail["playback"]["url"], &edge.url), master);
    assert_eq!(detail["playback"]["live"], true);
    let expires: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(detail["playback"]["expires_at"].clone()).unwrap();
    let left = (expires - chrono::Utc::now()).num_seconds();
    assert!((ttl as i64 - 2..=ttl as i64).contains(&left), "{left}");
    let probe = ffprobe_url(&url).await;
    assert!(has_video(&probe, 640, 360), "{probe}");
    assert!(
        probe["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["codec_type"] == "audio"),
        "{probe}"
    );
    let subs = api.get("/v1/me/subscriptions", Some(&viewer)).await.ok();
    assert_eq!(subs["subscriptions"][0]["subscription"]["has_access"], true);
    let fans = api.get("/v1/studio/subscribers", Some(&creator)).await.ok();
    assert_eq!(
        fans["subscribers"][0]["subscriber"]["id"],
        viewer_id.as_str()
    );

    // revoking the stream key ends the broadcast within 5 s
    let revoked_at = Instant::now();
    let r = api
        .send(
            Method::DELETE,
            &format!("/v1/studio/stream-keys/{key_id}"),
            Some(&creator),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    loop {
        let live = stack.live_streams().await;
        if !live.iter().any(|s| s["video_id"] == video_id.as_str()) {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "still live 5 s after its key was revoked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "broadcast ended {:.1} s after its key was revoked",
        revoked_at.elapsed().as_secs_f64()
    );
    let (ok, _) = test_stack::wait_child(publisher, Duration::from_secs(10)).await;
    assert!(!ok, "the publisher was disconnected");

    // the recording plays the same way
    let t = Instant::now();
    let detail = loop {
        let d = api.get(&detail_path, Some(&viewer)).await.ok();
        if d["video"]["status"] == "recorded" {
            break d;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "not recorded within 60 s: {d}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(detail["playback"]["live"], false);
    assert_eq!(
        opens(&detail["playback"]["url"], &edge.url),
        format!("live/{video_id}/vod.m3u8")
    );
    let vod = detail["playback"]["url"].as_str().unwrap().to_string();
    assert_eq!(detail["video"]["renditions"][0]["height"], 360);
    let probe = ffprobe_url(&vod).await;
    assert!(has_video(&probe, 640, 360), "{probe}");

    // the subscription is cancelled (access lasts to the end of the paid month) and that month
    // ends: no new URL at once
    let sub_id = sub.body["id"].as_str().unwrap().to_string();
    let cancelled = api
        .send(
            Method::DELETE,
            &format!("/v1/subscriptions/{sub_id}"),
            Some(&viewer),
            None,
            &[],
        )
        .await
        .ok();
    assert_eq!(cancelled["status"], "canceled", "{cancelled}");
    assert_eq!(
        cancelled["has_access"], true,
        "paid to the end of the month: {cancelled}"
    );
    let d = api.get(&detail_path, Some(&viewer)).await.ok();
    assert_eq!(d["access"]["reason"], "subscribed", "{d}");
    let ended = stack
        .users_sql(&format!(
            "UPDATE subscriptions SET current_period_end = NOW(6) - INTERVAL 1 SECOND WHERE id = '{sub_id}'"
        ))
        .await;
    assert_eq!(ended, 1);
    let d = api.get(&detail_path, Some(&viewer)).await.ok();
    assert_eq!(d["access"]["reason"], "not_subscribed", "{d}");
    assert_eq!(
        d["playback"],
        Value::Null,
        "a URL after the paid period ended"
    );
    // subscribing again gives access back
    let again = api
        .post(
            "/v1/subscriptions",
            Some(&viewer),
            json!({"creator_id": creator_id}),
        )
        .await;
    assert!(again.status.is_success(), "{}", again.body);
    let detail = api.get(&detail_path, Some(&viewer)).await.ok();
    assert_eq!(detail["access"]["reason"], "subscribed", "{detail}");
    let vod = detail["playback"]["url"].as_str().unwrap().to_string();

    // a changed policy stops new URLs at once, and the one handed out within its lifetime
    let item = api.get("/v1/studio/videos", Some(&creator)).await.ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == video_id.as_str())
        .expect("in my videos")
        .clone();
    let edit = json!({"expected_version": item["version"], "access": {"policy": "purchase", "price_minor": 300, "currency": "EUR"}});
    api.send(
        Method::PATCH,
        &format!("/v1/studio/videos/{video_id}"),
        Some(&creator),
        Some(edit),
        &[],
    )
    .await
    .ok();
    let changed_at_utc = chrono::Utc::now();
    let d = api.get(&detail_path, Some(&viewer)).await.ok();
    assert_eq!(d["access"]["reason"], "not_purchased", "{d}");
    assert_eq!(d["playback"], Value::Null);
    let old_expiry: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(detail["playback"]["expires_at"].clone()).unwrap();
    if chrono::Utc::now() < old_expiry {
        assert_eq!(
            edge_status(&vod).await,
            200,
            "the token is good until it expires"
        );
    }
    let wait = (old_expiry - chrono::Utc::now()).num_milliseconds().max(0) as u64 + 1500;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_eq!(edge_status(&vod).await, 403, "the old URL still plays");
    // a URL handed out before the change plays at most `ttl` seconds after it
    assert!(
        old_expiry <= changed_at_utc + chrono::Duration::seconds(ttl as i64 + 1),
        "{old_expiry} vs {changed_at_utc}"
    );

    // deleting the video: gone from the catalog, its media removed from storage
    let r = api
        .send(
            Method::DELETE,
            &format!("/v1/studio/videos/{video_id}"),
            Some(&creator),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_eq!(
        api.get(&detail_path, Some(&creator)).await.status,
        StatusCode::NOT_FOUND
    );
    let folder = media.join("live").join(&video_id);
    let t = Instant::now();
    loop {
        let left = stack
            .store
            .list(&format!("live/{video_id}/"))
            .await
            .unwrap();
        if left.is_empty() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{} objects of the deleted video are still stored in {}",
            left.len(),
            folder.display()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    stop.cancel();
    stack.stop().await;
}
