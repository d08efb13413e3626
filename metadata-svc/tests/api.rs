//! The internal API over real HTTP against the MongoDB-compatible server at `CAUDAL_MONGO_URL`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::{error_of, ids, Svc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use service_clients::metadata::{
    NewVideo, PlaybackLocations, Rendition, StatusChange, VideoKind, VideoStatus, Visibility,
};

fn rendition(id: &str, name: &str, height: u32) -> Rendition {
    Rendition {
        name: name.into(),
        width: height * 16 / 9,
        height,
        bandwidth: height as u64 * 4_000,
        codecs: "avc1.64001f,mp4a.40.2".into(),
        frame_rate: 30.0,
        playlist: format!("live/{id}/{name}/index.m3u8"),
    }
}

fn status(s: VideoStatus) -> StatusChange {
    StatusChange {
        status: Some(s),
        ..Default::default()
    }
}

async fn set_status(svc: &Svc, id: &str, s: &str) -> (StatusCode, Value) {
    svc.post(
        &format!("/internal/v1/videos/{id}/status"),
        json!({"status": s}),
    )
    .await
}

#[tokio::test]
async fn live_broadcast_lifecycle_as_ingest_drives_it() {
    let svc = Svc::start().await;
    let id = format!("bc{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let started = Utc::now() - chrono::Duration::seconds(5);
    let started = chrono::DateTime::from_timestamp_millis(started.timestamp_millis()).unwrap();
    let new = NewVideo {
        id: Some(id.clone()),
        owner_id: "streamer-1".into(),
        kind: VideoKind::Live,
        title: "Friday night speedrun".into(),
        description: String::new(),
        tags: vec!["Speedrun".into()],
        visibility: Visibility::Public,
        access: Default::default(),
        status: Some(VideoStatus::Live),
        started_at: Some(started),
        renditions: vec![],
        playback: PlaybackLocations::default(),
    };
    let v = svc.client.create_video(&new).await.expect("create");
    assert_eq!(
        (v.id.as_str(), v.status, v.kind, v.version),
        (id.as_str(), VideoStatus::Live, VideoKind::Live, 1)
    );
    assert_eq!(v.started_at, Some(started));
    assert_eq!(
        v.published_at,
        Some(started),
        "a broadcast is published when it starts"
    );
    assert_eq!(v.tags, ["speedrun"]);
    // ingest retrying its create gets the same video back
    let again = svc
        .client
        .create_video(&new)
        .await
        .expect("a retried create succeeds");
    assert_eq!(again, v);

    let (_, live) = svc.get("/internal/v1/videos/live").await;
    assert!(ids(&live).contains(&id), "on air: listed as live");

    // the ladder becomes known: no status, just renditions and playback
    let ladder = vec![rendition(&id, "720p", 720), rendition(&id, "360p", 360)];
    let v = svc
        .client
        .change_status(
            &id,
            &StatusChange {
                renditions: Some(ladder.clone()),
                playback: Some(PlaybackLocations {
                    master: Some(format!("live/{id}/master.m3u8")),
                    vod_master: None,
                    low_latency: None,
                }),
                ..Default::default()
            },
        )
        .await
        .expect("renditions");
    assert_eq!((v.status, v.version), (VideoStatus::Live, 2));
    assert_eq!(v.renditions, ladder);

    // the broadcast ends: the live master stays, the recording's master is added
    let ended_at = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap();
    let v = svc
        .client
        .change_status(
            &id,
            &StatusChange {
                status: Some(VideoStatus::Ended),
                at: Some(ended_at),
                duration_secs: Some(5.2),
                playback: Some(PlaybackLocations {
                    master: None,
                    vod_master: Some(format!("vod/{id}/master.m3u8")),
                    low_latency: None,
                }),
                ..Default::default()
            },
        )
        .await
        .expect("ended");
    assert_eq!(v.status, VideoStatus::Ended);
    assert_eq!(v.ended_at, Some(ended_at));
    assert_eq!(v.duration_secs, Some(5.2));
    assert_eq!(
        v.playback.master.as_deref(),
        Some(format!("live/{id}/master.m3u8").as_str())
    );
    assert_eq!(
        v.playback.vod_master.as_deref(),
        Some(format!("vod/{id}/master.m3u8").as_str())
    );
    assert_eq!(v.renditions, ladder, "renditions are kept when not sent");
    let (_, live) = svc.get("/internal/v1/videos/live").await;
    assert!(!ids(&live).contains(&id), "ended: no longer live");

    let v = svc
        .client
        .change_status(&id, &status(VideoStatus::Recorded))
        .await
        .expect("recorded");
    assert_eq!((v.status, v.version), (VideoStatus::Recorded, 4));
    let got = svc.client.get_video(&id).await.unwrap().expect("found");
    assert_eq!(got, v, "GET answers what the last write answered");
    let (_, recent) = svc.get("/internal/v1/videos/recent").await;
    assert!(ids(&recent).contains(&id), "a recording is watchable");

    // no way back
    for (to, from) in [
        ("live", "recorded"),
        ("ended", "recorded"),
        ("ready", "recorded"),
        ("uploading", "recorded"),
    ] {
        let (s, body) = set_status(&svc, &id, to).await;
        assert_eq!(s, StatusCode::CONFLICT, "{from} -> {to}: {body}");
        assert_eq!(error_of(&body).0, "illegal_transition");
    }
    let err = svc
        .client
        .change_status(&id, &status(VideoStatus::Live))
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(409), Some("illegal_transition"))
    );
    assert!(
        svc.client
            .get_video("no-such-video")
            .await
            .unwrap()
            .is_none(),
        "404 is None for the client"
    );
}

#[tokio::test]
async fn upload_lifecycle_and_refused_transitions() {
    let svc = Svc::start().await;
    let v = svc
        .create(json!({"owner_id": "creator-2", "kind": "upload", "title": "My first vlog"}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["status"], "created");
    assert_eq!(v["published_at"], Value::Null);
    assert_eq!(v["visibility"], "public");
    assert_eq!(v["access"], json!({"policy": "free"}));

    let (s, body) = set_status(&svc, &id, "ready").await;
    assert_eq!(
        (s, error_of(&body).0.as_str()),
        (StatusCode::CONFLICT, "illegal_transition"),
        "created -> ready skips steps"
    );
    let (s, body) = set_status(&svc, &id, "live").await;
    assert_eq!(
        (s, error_of(&body).0.as_str()),
        (StatusCode::CONFLICT, "illegal_transition"),
        "an upload never goes live"
    );

    assert_eq!(
        set_status(&svc, &id, "uploading").await.1["status"],
        "uploading"
    );
    assert_eq!(
        set_status(&svc, &id, "processing").await.1["status"],
        "processing"
    );
    let (s, v) = svc
        .post(
            &format!("/internal/v1/videos/{id}/status"),
            json!({
                "status": "ready",
                "duration_secs": 61.5,
                "renditions": [rendition(&id, "1080p", 1080)],
                "playback": {"master": format!("vod/{id}/master.m3u8")},
                "poster": format!("vod/{id}/poster.jpg"),
                "thumbnails": [format!("vod/{id}/thumbs/0001.jpg")],
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ready");
    assert!(v["published_at"].is_string(), "ready publishes the upload");
    assert_eq!(v["duration_secs"], 61.5);
    assert_eq!(v["poster"], format!("vod/{id}/poster.jpg"));
    assert_eq!(
        v["thumbnails"],
        json!([format!("vod/{id}/thumbs/0001.jpg")])
    );
    assert_eq!(v["version"], 4);
    // a retried transition changes nothing
    let (s, again) = set_status(&svc, &id, "ready").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["published_at"], v["published_at"]);
    for bad in ["failed", "processing", "created", "ended"] {
        let (s, body) = set_status(&svc, &id, bad).await;
        assert_eq!(
            (s, error_of(&body).0.as_str()),
            (StatusCode::CONFLICT, "illegal_transition"),
            "ready -> {bad}"
        );
    }

    // failure is final
    let f = svc
        .create(json!({"owner_id": "creator-2", "kind": "upload", "title": "Broken file"}))
        .await;
    let fid = f["id"].as_str().unwrap();
    assert_eq!(
        set_status(&svc, fid, "uploading").await.1["status"],
        "uploading"
    );
    assert_eq!(set_status(&svc, fid, "failed").await.1["status"], "failed");
    let (s, _) = set_status(&svc, fid, "processing").await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, body) = set_status(&svc, "missing-video", "ready").await;
    assert_eq!(
        (s, error_of(&body).0.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn a_thousand_concurrent_views_count_exactly_and_feed_trending() {
    let svc = Svc::start().await;
    let a = svc
        .create(json!({"owner_id": "c3", "kind": "live", "title": "Busy stream"}))
        .await;
    let b = svc
        .create(json!({"owner_id": "c3", "kind": "live", "title": "Quiet stream"}))
        .await;
    let (a, b) = (
        a["id"].as_str().unwrap().to_string(),
        b["id"].as_str().unwrap().to_string(),
    );
    let hidden = svc
        .create(
            json!({"owner_id": "c3", "kind": "live", "title": "Private", "visibility": "private"}),
        )
        .await;
    let hidden = hidden["id"].as_str().unwrap().to_string();

    let started = Instant::now();
    let view_path = format!("/internal/v1/videos/{a}/views");
    let views = futures::future::join_all((0..1000).map(|_| svc.post(&view_path, json!({})))).await;
    let failed: Vec<&(StatusCode, Value)> =
        views.iter().filter(|(s, _)| *s != StatusCode::OK).collect();
    assert!(
        failed.is_empty(),
        "every increment answers 200; {} did not, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    let mut seen: Vec<i64> = views
        .iter()
        .map(|(_, v)| v["views"].as_i64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=1000).collect::<Vec<_>>(),
        "each increment saw its own count"
    );
    eprintln!("1000 concurrent views in {:?}", started.elapsed());

    let (_, v) = svc.get(&format!("/internal/v1/videos/{a}")).await;
    assert_eq!(v["counters"], json!({"views": 1000, "likes": 0}));
    assert_eq!(v["version"], 1, "counters do not bump the version");
    for _ in 0..3 {
        svc.post(&format!("/internal/v1/videos/{b}/views"), json!({}))
            .await;
        svc.post(&format!("/internal/v1/videos/{hidden}/views"), json!({}))
            .await;
    }
    let (s, c) = svc
        .post(&format!("/internal/v1/videos/{b}/likes"), json!({}))
        .await;
    assert_eq!((s, c), (StatusCode::OK, json!({"views": 3, "likes": 1})));

    let (s, t) = svc.get("/internal/v1/videos/trending?limit=5").await;
    assert_eq!(s, StatusCode::OK, "{t}");
    let ranked: Vec<(&str, i64)> = t["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["video"]["id"].as_str().unwrap(),
                e["views"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        ranked,
        [(a.as_str(), 1000), (b.as_str(), 3)],
        "most viewed first; private videos left out"
    );
    assert_eq!(t["window_hours"], 24);

    // the hourly buckets hold the counts
    let stats = svc
        .db
        .database()
        .await
        .collection::<mongodb::bson::Document>("video_stats");
    let bucket = stats
        .find_one(mongodb::bson::doc! {"video_id": &a})
        .await
        .unwrap()
        .expect("bucket");
    assert_eq!(bucket.get_i64("views").unwrap(), 1000);

    let (s, body) = svc
        .post("/internal/v1/videos/missing/views", json!({}))
        .await;
    assert_eq!(
        (s, error_of(&body).0.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn pagination_returns_every_video_once_while_videos_arrive() {
    let svc = Svc::start().await;
    let owner = "pager";
    let mut existing = HashSet::new();
    for i in 0..25 {
        let kind = if i % 3 == 0 { "upload" } else { "live" };
        let v = svc.create(json!({"owner_id": owner, "kind": kind, "title": format!("Video {i}"), "tags": ["paging"]})).await;
        existing.insert(v["id"].as_str().unwrap().to_string());
    }
    for (path, expected) in [
        (format!("/internal/v1/videos?owner={owner}&limit=7"), 25),
        (
            "/internal/v1/videos?tag=Paging&kind=live&limit=4".into(),
            16,
        ),
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut arrived = 0;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}&cursor={c}"),
                None => path.clone(),
            };
            let (s, page) = svc.get(&url).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            seen.extend(ids(&page));
            // newer videos arrive between pages
            for _ in 0..2 {
                svc.create(json!({"owner_id": owner, "kind": "live", "title": "Late arrival", "tags": ["paging"]})).await;
                arrived += 1;
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(
            unique.len(),
            seen.len(),
            "no video is returned twice ({path})"
        );
        let old: Vec<&String> = seen.iter().filter(|id| existing.contains(*id)).collect();
        assert_eq!(
            old.len(),
            expected,
            "every video that existed is returned once ({path})"
        );
        assert!(arrived > 0);
        existing.extend(seen);
    }
    // newest first: by publish time, unpublished uploads by creation time
    let (_, page) = svc
        .get(&format!("/internal/v1/creators/{owner}/videos?limit=100"))
        .await;
    let times: Vec<chrono::DateTime<Utc>> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["published_at"]
                .as_str()
                .or(v["created_at"].as_str())
                .unwrap()
        })
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .with_timezone(&Utc)
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
}

#[tokio::test]
async fn concurrent_edits_with_stale_versions_are_refused_not_lost() {
    let svc = Svc::start().await;
    let v = svc
        .create(json!({"owner_id": "editor", "kind": "upload", "title": "Draft"}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let path = format!("/internal/v1/videos/{id}");

    // ten editors all read version 1
    let edits = futures::future::join_all((0..10).map(|i| {
        svc.patch(&path, json!({"expected_version": 1, "title": format!("Title from editor {i}"), "tags": [format!("e{i}")]}))
    }))
    .await;
    let winners: Vec<&Value> = edits
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one edit of version 1 is applied");
    for (s, body) in edits.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*s, StatusCode::CONFLICT);
        assert_eq!(error_of(body).0, "version_conflict");
    }
    let winner = winners[0].clone();
    assert_eq!(winner["version"], 2);
    let (_, stored) = svc.get(&path).await;
    assert_eq!(
        stored["title"], winner["title"],
        "the stored title is the winner's, not a silent last write"
    );
    assert_eq!(stored["tags"], winner["tags"]);

    // a loser re-reads and retries
    let (s, v) = svc
        .patch(&path, json!({"expected_version": 2, "description": "now with notes", "visibility": "unlisted",
            "access": {"policy": "purchase", "price_minor": 499, "currency": "EUR"}, "poster": format!("posters/{id}.jpg")}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["version"].as_i64(), v["title"].clone()),
        (Some(3), winner["title"].clone()),
        "other fields kept"
    );
    assert_eq!(
        v["access"],
        json!({"policy": "purchase", "price_minor": 499, "currency": "EUR"})
    );
    assert_eq!(v["visibility"], "unlisted");
    let (s, body) = svc
        .patch(&path, json!({"expected_version": 2, "title": "Too late"}))
        .await;
    assert_eq!(
        (s, error_of(&body).0.as_str()),
        (StatusCode::CONFLICT, "version_conflict")
    );
    // a status change also moves the version on
    set_status(&svc, &id, "uploading").await;
    let (s, _) = svc
        .patch(
            &path,
            json!({"expected_version": 3, "title": "Stale again"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = svc
        .patch(&path, json!({"expected_version": 4, "poster": null}))
        .await;
    assert_eq!(
        (s, v["poster"].clone()),
        (StatusCode::OK, Value::Null),
        "null removes the poster"
    );
    let (s, body) = svc
        .patch(
            "/internal/v1/videos/missing",
            json!({"expected_version": 1, "title": "x"}),
        )
        .await;
    assert_eq!(
        (s, error_of(&body).0.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn search_by_title_words_tags_and_typed_prefix_ranks_title_first() {
    let svc = Svc::start().await;
    let mk = |title: &str, tags: Value, kind: &str| json!({"owner_id": "s1", "kind": kind, "title": title, "tags": tags});
    // created oldest first: B is newer than A, so only ranking can put A first
    let a = svc
        .create(mk("Rust game engine devlog", json!(["gamedev"]), "live"))
        .await;
    let b = svc
        .create(mk("Weekly stream", json!(["Rust", "game"]), "live"))
        .await;
    let c = svc
        .create(mk(
            "Crème brûlée at home",
            json!(["cooking", "dessert"]),
            "live",
        ))
        .await;
    let private = svc.create(json!({"owner_id": "s1", "kind": "live", "title": "Rust secret", "visibility": "private"})).await;
    let processing = svc
        .create(mk("Rust game upload", json!([]), "upload"))
        .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();
    let svc = &svc;
    let search = |q: &str| {
        let url = format!("/internal/v1/search?q={}", urlencode(q));
        async move {
            let (s, page) = svc.get(&url).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            ids(&page)
        }
    };

    assert_eq!(
        search("rust game").await,
        [id(&a), id(&b)],
        "title matches rank above tag matches"
    );
    assert_eq!(
        search("RUST ga").await,
        [id(&a), id(&b)],
        "the last word is a prefix while typing"
    );
    assert_eq!(search("devl").await, [id(&a)]);
    assert_eq!(search("gamedev ").await, [id(&a)], "a tag, finished word");
    assert_eq!(
        search("weekly ru").await,
        [id(&b)],
        "title word and tag prefix together"
    );
    assert_eq!(search("creme brulee").await, [id(&c)], "accents are folded");
    assert_eq!(search("dessert").await, [id(&c)]);
    assert!(
        search("rust game zzz").await.is_empty(),
        "every word must match"
    );
    let all_rust = search("rust").await;
    assert!(
        !all_rust.contains(&id(&private)) && !all_rust.contains(&id(&processing)),
        "only public watchable videos"
    );

    // pages through the ranking
    let (_, p1) = svc.get("/internal/v1/search?q=rust&limit=1").await;
    assert_eq!(ids(&p1), [id(&a)]);
    let cursor = p1["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    svc.create(mk("Rust news", json!([]), "live")).await; // arrives between pages, ranks before the cursor
    let (_, p2) = svc
        .get(&format!(
            "/internal/v1/search?q=rust&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(ids(&p2), [id(&b)]);
    assert_eq!(p2["next_cursor"], Value::Null);

    // edits are searchable at once
    let (s, _) = svc
        .patch(
            &format!("/internal/v1/videos/{}", id(&c)),
            json!({"expected_version": 1, "title": "Perfect custard"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(search("creme").await.is_empty());
    assert_eq!(search("custa").await, [id(&c)]);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let svc = Svc::start().await;
    let base = json!({"owner_id": "v1", "kind": "upload", "title": "Fine"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (with("title", json!("   ")), "title"),
        (with("title", json!("x".repeat(201))), "title"),
        (
            with(
                "tags",
                json!((0..21).map(|i| format!("t{i}")).collect::<Vec<_>>()),
            ),
            "tags",
        ),
        (with("tags", json!(["ok", "y".repeat(41)])), "tags[1]"),
        (
            with(
                "access",
                json!({"policy": "purchase", "price_minor": 0, "currency": "EUR"}),
            ),
            "access.price_minor",
        ),
        (
            with(
                "access",
                json!({"policy": "purchase", "price_minor": -5, "currency": "EUR"}),
            ),
            "access.price_minor",
        ),
        (
            with(
                "access",
                json!({"policy": "purchase", "price_minor": 100, "currency": "euros"}),
            ),
            "access.currency",
        ),
        (with("visibility", json!("everyone")), "visibility"),
        (with("kind", json!("podcast")), "kind"),
        (with("id", json!("../../etc")), "id"),
        (with("status", json!("ready")), "status"),
        (with("description", json!("d".repeat(5001))), "description"),
        (json!({"kind": "upload", "title": "No owner"}), "owner_id"),
        (json!({"owner_id": "v1", "kind": "upload"}), "title"),
        (
            with("playback", json!({"master": "../outside.m3u8"})),
            "playback.master",
        ),
    ];
    for (body, field) in cases {
        let (s, resp) = svc.post("/internal/v1/videos", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {resp}");
        assert_eq!(
            error_of(&resp),
            ("invalid_field".to_string(), Some(field.to_string())),
            "{body}"
        );
    }
    let resp = svc
        .http
        .post(format!("{}/internal/v1/videos", svc.base))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of(&resp.json().await.unwrap()).1.as_deref(),
        Some("body")
    );
    // 200 characters (not bytes) is fine
    svc.create(with("title", json!("é".repeat(200)))).await;

    let v = svc.create(base.clone()).await;
    let path = format!("/internal/v1/videos/{}", v["id"].as_str().unwrap());
    for (body, field) in [
        (json!({"title": "x"}), "expected_version"),
        (json!({"expected_version": 1, "status": "ready"}), "status"),
        (
            json!({"expected_version": 1, "owner_id": "thief"}),
            "owner_id",
        ),
        (json!({"expected_version": 1}), "body"),
        (json!({"expected_version": 1, "title": ""}), "title"),
        (
            json!({"expected_version": 1, "tags": vec!["a"; 21]}),
            "tags",
        ),
        (
            json!({"expected_version": 1, "access": {"policy": "purchase", "price_minor": 0, "currency": "EUR"}}),
            "access.price_minor",
        ),
        (
            json!({"expected_version": 1, "poster": "/abs.jpg"}),
            "poster",
        ),
        (
            json!({"expected_version": "one", "title": "x"}),
            "expected_version",
        ),
    ] {
        let (s, resp) = svc.patch(&path, body.clone()).await;
        assert_eq!(
            (s, error_of(&resp).1),
            (StatusCode::BAD_REQUEST, Some(field.to_string())),
            "{body} -> {resp}"
        );
    }
    let status_path = format!("{path}/status");
    for (body, field) in [
        (json!({"status": "sideways"}), "status"),
        (json!({"duration_secs": -1.0}), "duration_secs"),
        (
            json!({"renditions": [{"name": "", "width": 1, "height": 1, "bandwidth": 1, "codecs": "", "frame_rate": 30.0, "playlist": "a/b.m3u8"}]}),
            "renditions[0].name",
        ),
        (
            json!({"playback": {"vod_master": "a//b"}}),
            "playback.vod_master",
        ),
        (json!({"at": "yesterday"}), "at"),
    ] {
        let (s, resp) = svc.post(&status_path, body.clone()).await;
        assert_eq!(
            (s, error_of(&resp).1),
            (StatusCode::BAD_REQUEST, Some(field.to_string())),
            "{body} -> {resp}"
        );
    }
    for (query, field) in [
        ("/internal/v1/videos?limit=0", "limit"),
        ("/internal/v1/videos?limit=101", "limit"),
        ("/internal/v1/videos?status=bogus", "status"),
        ("/internal/v1/videos?kind=vod", "kind"),
        ("/internal/v1/videos?visibility=friends", "visibility"),
        ("/internal/v1/videos?owner_id=x", "owner_id"),
        ("/internal/v1/videos?cursor=garbage", "cursor"),
        ("/internal/v1/search", "q"),
        ("/internal/v1/search?q=%21%21", "q"),
        ("/internal/v1/videos/trending?limit=x", "limit"),
    ] {
        let (s, resp) = svc.get(query).await;
        assert_eq!(
            (s, error_of(&resp).1),
            (StatusCode::BAD_REQUEST, Some(field.to_string())),
            "{query} -> {resp}"
        );
    }
    let (s, resp) = svc.get("/internal/v1/nothing-here").await;
    assert_eq!(
        (s, error_of(&resp).0.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn soft_delete_hides_the_video_and_records_cleanup() {
    let svc = Svc::start().await;
    let v = svc
        .create(json!({"owner_id": "d1", "kind": "live", "title": "Soon gone", "tags": ["doomed"]}))
        .await;
    let keep = svc
        .create(json!({"owner_id": "d1", "kind": "live", "title": "Stays", "tags": ["doomed"]}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let path = format!("/internal/v1/videos/{id}");
    let (_, v) = svc
        .post(&format!("{path}/status"), json!({"playback": {"master": format!("live/{id}/master.m3u8"), "vod_master": format!("vod/{id}/master.m3u8")},
            "renditions": [rendition(&id, "720p", 720)], "poster": format!("posters/{id}.jpg")}))
        .await;
    assert_eq!(v["version"], 2);

    let (s, body) = svc.delete(&format!("{path}?expected_version=1")).await;
    assert_eq!(
        (s, error_of(&body).0.as_str()),
        (StatusCode::CONFLICT, "version_conflict")
    );
    let (s, _) = svc.get(&path).await;
    assert_eq!(s, StatusCode::OK, "a refused delete leaves the video");

    let (s, body) = svc.delete(&format!("{path}?expected_version=2")).await;
    assert_eq!((s, body), (StatusCode::NO_CONTENT, Value::Null));
    let (s, body) = svc.get(&path).await;
    assert_eq!(
        (s, error_of(&body).0.as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(svc.client.get_video(&id).await.unwrap().is_none());
    for list in [
        "/internal/v1/videos?owner=d1",
        "/internal/v1/videos?tag=doomed",
        "/internal/v1/videos/live",
        "/internal/v1/videos/recent",
        "/internal/v1/creators/d1/videos",
        "/internal/v1/search?q=doomed",
    ] {
        let (_, page) = svc.get(list).await;
        let listed = ids(&page);
        assert!(!listed.contains(&id), "{list} hides the deleted video");
        assert!(
            listed.contains(&keep["id"].as_str().unwrap().to_string()),
            "{list} still lists the others"
        );
    }
    let (s, _) = svc.post(&format!("{path}/views"), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = svc
        .patch(&path, json!({"expected_version": 3, "title": "Back?"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = set_status(&svc, &id, "ended").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // the document is kept, marked, and its storage is queued for cleanup
    let raw = svc
        .db
        .database()
        .await
        .collection::<mongodb::bson::Document>("videos")
        .find_one(mongodb::bson::doc! {"_id": &id})
        .await
        .unwrap()
        .expect("soft: still stored");
    assert_eq!(raw.get_bool("deleted"), Ok(true));
    assert!(raw.get_datetime("deleted_at").is_ok());
    let (s, cleanup) = svc.get("/internal/v1/cleanup").await;
    assert_eq!(s, StatusCode::OK);
    let items = cleanup["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{cleanup}");
    assert_eq!(items[0]["video_id"], id.as_str());
    assert_eq!(
        items[0]["prefixes"],
        json!([format!("live/{id}/"), format!("vod/{id}/")])
    );
    assert_eq!(items[0]["keys"], json!([format!("posters/{id}.jpg")]));

    // deleting again is harmless; a missing video is 404
    let (s, _) = svc.delete(&path).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        svc.get("/internal/v1/cleanup").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (s, _) = svc.delete("/internal/v1/videos/never-was").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = svc
        .post(&format!("/internal/v1/cleanup/{id}/done"), json!({}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(svc.get("/internal/v1/cleanup").await.1["items"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn list_filters_and_special_lists() {
    let svc = Svc::start().await;
    let live = svc
        .create(json!({"owner_id": "f1", "kind": "live", "title": "On air", "tags": ["music"]}))
        .await;
    let unlisted = svc.create(json!({"owner_id": "f1", "kind": "live", "title": "Unlisted", "visibility": "unlisted"})).await;
    let up = svc
        .create(json!({"owner_id": "f2", "kind": "upload", "title": "Upload", "tags": ["music"]}))
        .await;
    let id = |v: &Value| v["id"].as_str().unwrap().to_string();

    let svc = &svc;
    let q = |p: &'static str| async move { ids(&svc.get(p).await.1) };
    assert_eq!(
        q("/internal/v1/videos/live").await,
        [id(&live)],
        "public broadcasts only"
    );
    assert_eq!(q("/internal/v1/videos?kind=upload").await, [id(&up)]);
    assert_eq!(q("/internal/v1/videos?status=created").await, [id(&up)]);
    assert_eq!(
        q("/internal/v1/videos?status=live,created&tag=music").await,
        [id(&up), id(&live)]
    );
    assert_eq!(
        q("/internal/v1/videos?visibility=unlisted").await,
        [id(&unlisted)]
    );
    assert_eq!(
        q("/internal/v1/creators/f1/videos").await,
        [id(&unlisted), id(&live)]
    );
    assert_eq!(
        q("/internal/v1/creators/f1/videos?visibility=public").await,
        [id(&live)]
    );
    assert!(
        !q("/internal/v1/videos/recent").await.contains(&id(&up)),
        "unpublished uploads are not recent"
    );

    // an edit shows in lists at once (the read cache is invalidated by writes)
    let (s, _) = svc
        .patch(
            &format!("/internal/v1/videos/{}", id(&unlisted)),
            json!({"expected_version": 1, "visibility": "public"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        q("/internal/v1/videos/live").await,
        [id(&unlisted), id(&live)]
    );
    let health = svc
        .http
        .get(format!("{}/healthz", svc.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_unreachable_database_answers_503_quickly() {
    use tower::ServiceExt;
    let db = common::TestDb::new();
    let mut config = db.config();
    config.mongo_url = "mongodb://127.0.0.1:9/?directConnection=true".into();
    config.connect_timeout_ms = 500;

    let started = Instant::now();
    let err = metadata_svc::start(config.clone(), tokio_util::sync::CancellationToken::new())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "start-up gives up quickly"
    );
    let msg = format!("{err:#}");
    assert!(
        msg.contains("mongodb://127.0.0.1:9"),
        "says which database: {msg}"
    );

    let repo = metadata_svc::MongoRepo::open(&config)
        .await
        .expect("opening needs no server");
    let app = metadata_svc::app(metadata_svc::AppState::new(
        std::sync::Arc::new(repo),
        &config,
    ));
    let started = Instant::now();
    let req = axum::http::Request::get("/internal/v1/videos/abc")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no hang: {:?}",
        started.elapsed()
    );
    let body = axum::body::to_bytes(resp.into_body(), 10_000)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(error_of(&body).0, "unavailable");
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no driver text reaches the client: {body}"
    );
}
