//! The whole way through real services: a creator signs up, gets a stream key, ffmpeg
//! publishes over RTMP, the broadcast shows in "live now", a second user is denied the
//! subscribers-only stream with the offer, subscribes, gets the playback URL, and ffprobe
//! reads the master playlist through the edge (a static file server over the ingest store,
//! standing in for nginx); after the broadcast the recording plays the same way.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{config, edge_server, start_bff};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use test_stack::{wait_child, Publisher, Stack, StackOptions};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_watches_a_live_stream_through_the_edge() {
    let transcode = LiveConfig {
        x264_preset: "ultrafast".into(),
        rungs: vec![RungSpec::new("360p", 360, 800)],
        ..Default::default()
    };
    let stack = Stack::start(StackOptions {
        transcode,
        storage: None,
    })
    .await;
    let stop = CancellationToken::new();
    let media = stack.dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    let edge = format!("http://{}", edge_server(&media, &stop).await);
    let api = start_bff(config(&stack, &edge), &stop).await;

    // a creator with a plan and a stream key
    let (creator, creator_id) = api.creator("Alice", Some((500, "EUR"))).await;
    let created = api
        .post(
            "/v1/studio/stream-keys",
            Some(&creator),
            json!({"label": "test"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_string();

    let secs = 12;
    let publisher = Publisher {
        width: 640,
        height: 360,
        secs,
        ..Default::default()
    }
    .spawn(&stack.rtmp_url(&key));

    // the broadcast shows in "live now" with its creator
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
    assert_eq!(card["kind"], "live");
    assert_eq!(card["status"], "live");
    assert_eq!(card["creator"]["display_name"], "Alice");
    assert_eq!(card["creator_unavailable"], false);
    assert_eq!(card["title"], "Alice is live");

    // the creator makes it subscribers-only in the studio
    let mine = api.get("/v1/studio/videos", Some(&creator)).await.ok();
    let item = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == video_id.as_str())
        .expect("in my videos")
        .clone();
    let edit = json!({"expected_version": item["version"], "title": "Alice live: subscribers only", "access": {"policy": "subscribers"}});
    let edited = api
        .send(
            Method::PATCH,
            &format!("/v1/studio/videos/{video_id}"),
            Some(&creator),
            Some(edit),
            &[],
        )
        .await
        .ok();
    assert_eq!(edited["access"]["policy"], "subscribers");

    // a second user is denied, with the offer that would grant access
    let (viewer, viewer_id) = api.signup("Bob").await;
    let detail_path = format!("/v1/videos/{video_id}");
    let detail = api.get(&detail_path, Some(&viewer)).await.ok();
    assert_eq!(detail["video"]["title"], "Alice live: subscribers only");
    assert_eq!(detail["video"]["status"], "live");
    assert_eq!(detail["creator"]["display_name"], "Alice");
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

    // subscribes, then gets the live master playlist through the edge
    let sub = api
        .post(
            "/v1/subscriptions",
            Some(&viewer),
            json!({"creator_id": creator_id}),
        )
        .await;
    assert_eq!(sub.status, StatusCode::CREATED, "{}", sub.body);
    assert_eq!(sub.body["status"], "active");
    // the URL is handed out once ingest has stored the master playlist and its rungs
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
    assert_eq!(url, format!("{edge}/live/{video_id}/master.m3u8"));
    assert_eq!(detail["playback"]["live"], true);
    stack
        .wait_object(
            &format!("live/{video_id}/master.m3u8"),
            Duration::from_secs(15),
        )
        .await;
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

    // both sides of the subscription are listed with the other party
    let subs = api.get("/v1/me/subscriptions", Some(&viewer)).await.ok();
    assert_eq!(subs["subscriptions"][0]["creator"]["display_name"], "Alice");
    assert_eq!(subs["subscriptions"][0]["subscription"]["has_access"], true);
    let fans = api.get("/v1/studio/subscribers", Some(&creator)).await.ok();
    assert_eq!(
        fans["subscribers"][0]["subscriber"]["id"],
        viewer_id.as_str()
    );

    // after the broadcast the recording plays as video on demand
    let (ok, err) = wait_child(publisher, Duration::from_secs(secs as u64 + 25)).await;
    assert!(ok, "publisher ran to the end: {err}");
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
    let vod = detail["playback"]["url"].as_str().unwrap();
    assert!(
        vod.starts_with(&format!("{edge}/live/{video_id}/")) && vod.ends_with(".m3u8"),
        "{vod}"
    );
    assert!(
        detail["video"]["duration_secs"].as_f64().unwrap() > secs as f64 - 4.0,
        "{detail}"
    );
    assert_eq!(detail["video"]["renditions"][0]["height"], 360);
    let probe = ffprobe_url(vod).await;
    assert!(has_video(&probe, 640, 360), "{probe}");
    let home = api.get("/v1/home", None).await.ok();
    assert!(
        home["recent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == video_id.as_str()),
        "{home}"
    );
    assert!(!home["live"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == video_id.as_str()));
    stop.cancel();
    stack.stop().await;
}
