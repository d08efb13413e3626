//! bff against the real user-svc and metadata-svc (MariaDB, the MongoDB-compatible server):
//! purchases, the studio, degraded screens with a service down, and the API conventions.

mod common;

use std::time::{Duration, Instant};

use common::{catalog_video, closed_port, config, opens, start_bff};
use reqwest::{Method, StatusCode};
use serde_json::json;
use service_clients::metadata::{AccessPolicy, VideoStatus};
use test_stack::{Stack, StackOptions};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn buying_twice_with_one_key_charges_once() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let api = start_bff(config(&stack, "http://edge.test"), &stop).await;
    let (creator_token, creator_id) = api.creator("seller", None).await;
    let v = catalog_video(
        &stack,
        &creator_id,
        "Pay per view special",
        AccessPolicy::Purchase {
            price_minor: 499,
            currency: "EUR".into(),
        },
        VideoStatus::Ready,
    )
    .await;
    let (buyer, _) = api.signup("buyer").await;

    let detail = api
        .get(&format!("/v1/videos/{}", v.id), Some(&buyer))
        .await
        .ok();
    assert_eq!(detail["access"]["allowed"], false);
    assert_eq!(detail["access"]["reason"], "not_purchased");
    assert_eq!(detail["access"]["offer"]["kind"], "purchase");
    assert_eq!(detail["access"]["offer"]["price_minor"], 499);
    assert_eq!(detail["playback"], serde_json::Value::Null);

    // no key: refused before anything is charged
    let a = api
        .send(
            Method::POST,
            "/v1/purchases",
            Some(&buyer),
            Some(json!({"video_id": v.id})),
            &[],
        )
        .await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_field")
    );
    assert_eq!(a.body["error"]["field"], "Idempotency-Key");

    let key = [("Idempotency-Key", "buy-once-1")];
    let first = api
        .send(
            Method::POST,
            "/v1/purchases",
            Some(&buyer),
            Some(json!({"video_id": v.id})),
            &key,
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["status"], "completed");
    assert_eq!(first.body["price_minor"], 499);
    let again = api
        .send(
            Method::POST,
            "/v1/purchases",
            Some(&buyer),
            Some(json!({"video_id": v.id})),
            &key,
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(
        again.body["id"], first.body["id"],
        "same key, same purchase"
    );

    let mine = api.get("/v1/me/purchases", Some(&buyer)).await.ok();
    let list = mine["purchases"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{mine}");
    assert_eq!(list[0]["video"]["title"], "Pay per view special");
    assert_eq!(list[0]["video"]["creator"]["display_name"], "seller");

    // one spend in the buyer's ledger: charged once
    let tx: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{}/v1/me/transactions", stack.users_addr))
        .bearer_auth(&buyer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let spends: Vec<_> = tx["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["amount_minor"].as_i64() < Some(0))
        .collect();
    assert_eq!(spends.len(), 1, "{tx}");
    assert_eq!(spends[0]["amount_minor"], -499);

    // a new key for a video already owned is a conflict, not a second charge
    let other = api
        .send(
            Method::POST,
            "/v1/purchases",
            Some(&buyer),
            Some(json!({"video_id": v.id})),
            &[("Idempotency-Key", "buy-once-2")],
        )
        .await;
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (StatusCode::CONFLICT, "already_purchased")
    );

    let detail = api
        .get(&format!("/v1/videos/{}", v.id), Some(&buyer))
        .await
        .ok();
    assert_eq!(
        detail["access"],
        json!({"allowed": true, "reason": "purchased", "offer": null})
    );
    assert_eq!(
        opens(&detail["playback"]["url"], "http://edge.test"),
        format!("live/{}/master.m3u8", v.id)
    );
    assert_eq!(detail["playback"]["live"], false);

    // the owner always watches; a free video is not for sale
    let own = api
        .get(&format!("/v1/videos/{}", v.id), Some(&creator_token))
        .await
        .ok();
    assert_eq!(own["access"]["reason"], "owner");
    let free = catalog_video(
        &stack,
        &creator_id,
        "Free one",
        AccessPolicy::Free,
        VideoStatus::Ready,
    )
    .await;
    let a = api
        .send(
            Method::POST,
            "/v1/purchases",
            Some(&buyer),
            Some(json!({"video_id": free.id})),
            &[("Idempotency-Key", "k3")],
        )
        .await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::CONFLICT, "not_for_sale")
    );
    stop.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn studio_keys_obs_settings_and_edits() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let api = start_bff(config(&stack, "http://edge.test"), &stop).await;
    let (viewer, _) = api.signup("viewer").await;
    let a = api
        .post("/v1/studio/stream-keys", Some(&viewer), json!({}))
        .await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );

    let (token, me) = api.creator("studio", None).await;
    let obs = api.get("/v1/studio/obs", Some(&token)).await.ok();
    assert_eq!(obs["stream_key"], serde_json::Value::Null);
    assert_eq!(obs["server_url"], "rtmp://127.0.0.1:1935/live");

    let created = api
        .post(
            "/v1/studio/stream-keys",
            Some(&token),
            json!({"label": "home"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("live_"));
    assert_eq!(created.body["obs"]["stream_key"], key.as_str());
    assert_eq!(created.body["obs"]["stream_key_masked"], false);
    let profiles = created.body["obs"]["profiles"].as_array().unwrap();
    assert_eq!(profiles[0]["name"], "1080p30");
    assert_eq!(profiles[0]["video_bitrate_kbps"], 6000);
    assert_eq!(profiles[1]["name"], "720p30");
    assert_eq!(profiles[1]["keyframe_interval_secs"], 2);

    // afterwards the key is only ever shown masked
    let obs = api.get("/v1/studio/obs", Some(&token)).await.ok();
    assert_eq!(obs["stream_key_masked"], true);
    let masked = obs["stream_key"].as_str().unwrap();
    assert!(
        masked.contains("****") && masked.ends_with(&key[key.len() - 4..]),
        "{masked}"
    );
    assert!(!obs.to_string().contains(&key));
    let id = created.body["id"].as_str().unwrap();
    let rotated = api
        .post(
            &format!("/v1/studio/stream-keys/{id}/rotate"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{}", rotated.body);
    assert_ne!(rotated.body["key"], key.as_str());
    assert!(
        stack
            .users
            .validate_stream_key(&key)
            .await
            .unwrap()
            .is_none(),
        "the old key stops working"
    );
    let new_id = rotated.body["id"].as_str().unwrap();
    let del = api
        .send(
            Method::DELETE,
            &format!("/v1/studio/stream-keys/{new_id}"),
            Some(&token),
            None,
            &[],
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let keys = api.get("/v1/studio/stream-keys", Some(&token)).await.ok();
    assert_eq!(keys["stream_keys"].as_array().unwrap().len(), 0);

    // my videos, every status; edits need the current version
    let v = catalog_video(
        &stack,
        &me,
        "Draft upload",
        AccessPolicy::Free,
        VideoStatus::Created,
    )
    .await;
    let mine = api.get("/v1/studio/videos", Some(&token)).await.ok();
    let item = &mine["items"][0];
    assert_eq!(item["id"], v.id.as_str());
    assert_eq!(item["status"], "created");
    let version = item["version"].as_i64().unwrap();
    let path = format!("/v1/studio/videos/{}", v.id);
    let edit = json!({"expected_version": version, "title": "Final title", "tags": ["Rust", "live"],
        "visibility": "unlisted", "access": {"policy": "purchase", "price_minor": 300, "currency": "EUR"}});
    let edited = api
        .send(Method::PATCH, &path, Some(&token), Some(edit.clone()), &[])
        .await
        .ok();
    assert_eq!(edited["title"], "Final title");
    assert_eq!(edited["tags"], json!(["rust", "live"]));
    assert_eq!(edited["visibility"], "unlisted");
    assert_eq!(
        edited["access"],
        json!({"policy": "purchase", "price_minor": 300, "currency": "EUR"})
    );
    assert!(edited["version"].as_i64().unwrap() > version);
    let stale = api
        .send(Method::PATCH, &path, Some(&token), Some(edit), &[])
        .await;
    assert_eq!(
        (stale.status, stale.error_code().as_str()),
        (StatusCode::CONFLICT, "version_conflict")
    );
    let bad = api
        .send(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"expected_version": 99, "access": {"policy": "purchase"}})),
            &[],
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("access.price_minor"))
    );
    let bad = api
        .send(
            Method::PATCH,
            &path,
            Some(&token),
            Some(json!({"expected_version": 99, "title": " "})),
            &[],
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("title"))
    );
    // someone else's video is not found
    let not_mine = api
        .send(
            Method::PATCH,
            &path,
            Some(&viewer),
            Some(json!({"expected_version": 1, "title": "x"})),
            &[],
        )
        .await;
    assert_eq!(not_mine.status, StatusCode::NOT_FOUND);

    let plan = api.get("/v1/studio/plan", Some(&token)).await.ok();
    assert_eq!(plan["plan"], serde_json::Value::Null);
    let set = api
        .send(
            Method::PUT,
            "/v1/studio/plan",
            Some(&token),
            Some(json!({"price_minor": 500, "currency": "eur"})),
            &[],
        )
        .await
        .ok();
    assert_eq!(
        (set["price_minor"].as_i64(), set["currency"].as_str()),
        (Some(500), Some("EUR"))
    );
    let subs = api.get("/v1/studio/subscribers", Some(&token)).await.ok();
    assert_eq!(subs["subscribers"], json!([]));
    stop.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn home_lists_videos_when_user_svc_is_down() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let healthy = start_bff(config(&stack, "http://edge.test"), &stop).await;
    let (_, creator) = healthy.creator("creator", None).await;
    let live = catalog_video(
        &stack,
        &creator,
        "On air now",
        AccessPolicy::Free,
        VideoStatus::Live,
    )
    .await;
    let recorded = catalog_video(
        &stack,
        &creator,
        "Yesterday's show",
        AccessPolicy::Subscribers,
        VideoStatus::Recorded,
    )
    .await;

    let home = healthy.get("/v1/home", None).await.ok();
    assert_eq!(home["live"][0]["id"], live.id.as_str());
    assert_eq!(home["live"][0]["creator"]["display_name"], "creator");
    assert_eq!(home["live"][0]["creator_unavailable"], false);
    assert_eq!(home["recent"][0]["id"], recorded.id.as_str());
    assert_eq!(home["recent"][0]["access"], "subscribers");
    assert_eq!(home["unavailable"], json!([]));

    let mut cfg = config(&stack, "http://edge.test");
    cfg.user_svc_url = format!("http://{}", closed_port());
    let degraded = start_bff(cfg, &stop).await;
    let a = degraded.get("/v1/home", None).await;
    assert!(a.elapsed < Duration::from_secs(2), "{:?}", a.elapsed);
    let home = a.ok();
    let card = &home["live"][0];
    assert_eq!(card["id"], live.id.as_str());
    assert_eq!(card["title"], "On air now");
    assert_eq!(card["creator"], serde_json::Value::Null);
    assert_eq!(card["creator_unavailable"], true);
    assert_eq!(home["recent"][0]["creator_unavailable"], true);
    assert_eq!(home["unavailable"], json!(["creators"]));

    // the watch screen still plays a free video; a protected one says why it does not
    let detail = degraded
        .get(&format!("/v1/videos/{}", live.id), None)
        .await
        .ok();
    assert_eq!(detail["creator_unavailable"], true);
    assert_eq!(detail["access"]["reason"], "free");
    assert_eq!(detail["playback"]["live"], true);
    let detail = degraded
        .get(&format!("/v1/videos/{}", recorded.id), None)
        .await
        .ok();
    assert_eq!(
        detail["access"],
        json!({"allowed": false, "reason": "unavailable", "offer": null})
    );
    assert_eq!(detail["playback"], serde_json::Value::Null);
    // search needs only the catalog
    let found = degraded.get("/v1/search?q=yesterday", None).await.ok();
    assert_eq!(found["items"][0]["id"], recorded.id.as_str());
    // signing in cannot work: a clear 503
    let a = degraded
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "a@b.c", "password": "whatever123"}),
        )
        .await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    stop.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn video_detail_is_a_quick_503_when_the_catalog_is_down() {
    let stop = CancellationToken::new();
    // nothing listening
    let cfg = bff::Config::for_tests(
        &format!("http://{}", closed_port()),
        &format!("http://{}", closed_port()),
        "http://edge.test",
    );
    let api = start_bff(cfg, &stop).await;
    let a = api.get("/v1/videos/abc", None).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert!(a.elapsed < Duration::from_secs(1), "{:?}", a.elapsed);
    let a = api.get("/v1/home", None).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);

    // a catalog that accepts connections and never answers: bounded by upstream_timeout_ms
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            held.push(s);
        }
    });
    let mut cfg = bff::Config::for_tests(
        &format!("http://{}", closed_port()),
        &format!("http://{hung_addr}"),
        "http://edge.test",
    );
    cfg.upstream_timeout_ms = 300;
    let api = start_bff(cfg, &stop).await;
    let t = Instant::now();
    let a = api.get("/v1/videos/abc", None).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    holder.abort();
    stop.cancel();
}

#[tokio::test]
async fn conventions_request_id_cors_limits_deprecation_and_openapi() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let mut cfg = config(&stack, "http://edge.test");
    cfg.rate_limit.auth_burst = 3;
    cfg.rate_limit.auth_per_minute = 1;
    let api = start_bff(cfg, &stop).await;

    // request ids: generated, or the caller's kept
    let a = api.get("/v1/videos/nope", None).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(!a.headers["x-request-id"].to_str().unwrap().is_empty());
    let a = api
        .send(
            Method::GET,
            "/v1/home",
            None,
            None,
            &[("x-request-id", "trace-me-42")],
        )
        .await;
    assert_eq!(a.headers["x-request-id"], "trace-me-42");
    let a = api.get("/v1/no/such/route", None).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert!(a.headers.contains_key("x-request-id"));
    let a = api.send(Method::DELETE, "/v1/home", None, None, &[]).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );

    // CORS for the configured origins only
    let pre = api
        .send(
            Method::OPTIONS,
            "/v1/purchases",
            None,
            None,
            &[
                ("Origin", "http://localhost:8080"),
                ("Access-Control-Request-Method", "POST"),
                (
                    "Access-Control-Request-Headers",
                    "authorization,content-type,idempotency-key",
                ),
            ],
        )
        .await;
    assert!(pre.status.is_success(), "{}", pre.status);
    assert_eq!(
        pre.headers["access-control-allow-origin"],
        "http://localhost:8080"
    );
    let allowed = pre.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("idempotency-key"), "{allowed}");
    let other = api
        .send(
            Method::GET,
            "/v1/home",
            None,
            None,
            &[("Origin", "http://evil.example")],
        )
        .await;
    assert!(!other.headers.contains_key("access-control-allow-origin"));

    // bodies over max_body_bytes: 413 with the error shape
    let big = json!({"email": "x".repeat(70 * 1024), "password": "p"});
    let a = api.post("/v1/auth/login", None, big).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    // a body that is not JSON
    let a = api
        .send(
            Method::POST,
            "/v1/auth/login",
            None,
            None,
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = api.post("/v1/auth/login", None, json!({"email": 5})).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_field")
    );
    let a = api
        .post("/v1/auth/login", None, json!(["a@b.c", "password"]))
        .await;
    assert_eq!(
        (a.status, a.body["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("body"))
    );

    // auth is rate limited per address: 429 with Retry-After
    let mut limited = None;
    for _ in 0..6 {
        let a = api
            .post(
                "/v1/auth/login",
                None,
                json!({"email": "nobody@example.com", "password": "wrong-password"}),
            )
            .await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(a);
            break;
        }
        assert_eq!(a.error_code(), "invalid_credentials");
    }
    let limited = limited.expect("rate limited within 6 attempts");
    assert_eq!(limited.error_code(), "rate_limited");
    assert!(
        limited.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );

    // the deprecated alias names its successor
    let (_, creator) = demo_creator(&stack).await;
    let v = catalog_video(
        &stack,
        &creator,
        "Old clients",
        AccessPolicy::Free,
        VideoStatus::Live,
    )
    .await;
    let a = api
        .get(&format!("/v1/videos/{}/playback", v.id), None)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(
        opens(&a.body["playback"]["url"], "http://edge.test"),
        format!("live/{}/master.m3u8", v.id)
    );
    assert!(a.headers["deprecation"].to_str().unwrap().starts_with('@'));
    assert!(a.headers["sunset"].to_str().unwrap().ends_with("GMT"));
    assert_eq!(
        a.headers["link"],
        format!("</v1/videos/{}>; rel=\"successor-version\"", v.id).as_str()
    );
    let current = api.get(&format!("/v1/videos/{}", v.id), None).await;
    assert!(!current.headers.contains_key("deprecation"));
    assert_eq!(
        opens(&current.body["playback"]["url"], "http://edge.test"),
        opens(&a.body["playback"]["url"], "http://edge.test")
    );
    assert_eq!(current.body["playback"]["live"], a.body["playback"]["live"]);

    // the OpenAPI document covers every /v1 route
    let doc = api.get("/v1/openapi.json", None).await.ok();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/auth/signup",
        "/v1/home",
        "/v1/videos/{id}",
        "/v1/search",
        "/v1/studio/obs",
        "/v1/purchases",
        "/v1/me/subscriptions",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert_eq!(
        doc["paths"]["/v1/videos/{id}/playback"]["get"]["deprecated"],
        true
    );
    stop.cancel();
    stack.stop().await;
}

/// The stack's demo creator, signed in straight at user-svc (a bff's auth bucket may be spent).
async fn demo_creator(stack: &Stack) -> (String, String) {
    let s: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{}/v1/auth/login", stack.users_addr))
        .json(&json!({"email": stack.demo_email, "password": stack.demo_password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        s["access_token"].as_str().unwrap().to_string(),
        s["user"]["id"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn web_pages_are_served_and_missing_files_are_json_404s() {
    let web = tempfile::tempdir().unwrap();
    std::fs::write(web.path().join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(web.path().join("watch.html"), "<h1>watch</h1>").unwrap();
    for name in ["signin", "search", "creator", "account", "studio", "upload"] {
        std::fs::write(web.path().join(format!("{name}.html")), name).unwrap();
    }
    std::fs::create_dir_all(web.path().join("static/css")).unwrap();
    std::fs::write(web.path().join("static/app.js"), "console.log(1)").unwrap();
    std::fs::write(web.path().join("static/css/site.css"), "body{}").unwrap();
    let hls = web.path().join("hls.min.js");
    std::fs::write(&hls, "/* hls */").unwrap();
    let stop = CancellationToken::new();
    let mut cfg = bff::Config::for_tests(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "http://edge.test",
    );
    cfg.web_dir = web.path().to_path_buf();
    cfg.hls_js_path = hls;
    let api = start_bff(cfg, &stop).await;
    let page = |path: &'static str| {
        let api = api.clone();
        async move {
            let r = api.http.get(api.url(path)).send().await.unwrap();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (r.status(), ct, r.text().await.unwrap())
        }
    };
    let (s, ct, body) = page("/").await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "<h1>home</h1>"));
    assert!(ct.starts_with("text/html"), "{ct}");
    assert_eq!(page("/watch/abc123").await.2, "<h1>watch</h1>");
    for (path, file) in [
        ("/signin", "signin"),
        ("/signup", "signin"),
        ("/search?q=boats", "search"),
        ("/creators/0190a6e0-0000-7000-8000-000000000000", "creator"),
        ("/account", "account"),
        ("/studio", "studio"),
        ("/upload", "upload"),
    ] {
        assert_eq!(page(path).await.2, file, "{path}");
    }
    let (s, ct, _) = page("/static/app.js").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.contains("javascript"), "{ct}");
    assert_eq!(page("/static/css/site.css").await.2, "body{}");
    let (s, ct, body) = page("/vendor/hls.min.js").await;
    assert_eq!(
        (s, ct.as_str(), body.as_str()),
        (StatusCode::OK, "application/javascript", "/* hls */")
    );
    for missing in [
        "/static/nope.js",
        "/static/..%2Findex.html",
        "/static/css",
        "/static/.hidden",
    ] {
        let (s, ct, body) = page(missing).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{missing}");
        assert!(ct.starts_with("application/json"), "{missing}: {ct}");
        assert!(body.contains("not_found"), "{missing}: {body}");
    }
    // web_dir without the pages: JSON 404s, no panic
    let mut cfg = bff::Config::for_tests(
        "http://127.0.0.1:1",
        "http://127.0.0.1:1",
        "http://edge.test",
    );
    cfg.web_dir = web.path().join("absent");
    cfg.hls_js_path = web.path().join("absent.js");
    let api = start_bff(cfg, &stop).await;
    for path in [
        "/",
        "/watch/x",
        "/studio",
        "/signin",
        "/vendor/hls.min.js",
        "/static/app.js",
    ] {
        let a = api.get(path, None).await;
        assert_eq!(
            (a.status, a.error_code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{path}"
        );
    }
    stop.cancel();
}

#[tokio::test]
async fn views_count_only_for_viewers_who_may_watch_and_rank_trending() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let api = start_bff(config(&stack, "http://edge.test"), &stop).await;
    let (_, creator) = api.creator("counted", None).await;
    let popular = catalog_video(
        &stack,
        &creator,
        "Popular replay",
        AccessPolicy::Free,
        VideoStatus::Recorded,
    )
    .await;
    let quiet = catalog_video(
        &stack,
        &creator,
        "Quiet replay",
        AccessPolicy::Free,
        VideoStatus::Recorded,
    )
    .await;
    let members = catalog_video(
        &stack,
        &creator,
        "Members replay",
        AccessPolicy::Subscribers,
        VideoStatus::Recorded,
    )
    .await;
    let view = |id: String| {
        let api = &api;
        async move {
            api.send(
                Method::POST,
                &format!("/v1/videos/{id}/views"),
                None,
                None,
                &[],
            )
            .await
        }
    };
    for _ in 0..3 {
        let a = view(popular.id.clone()).await;
        assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.body);
    }
    assert_eq!(view(quiet.id.clone()).await.status, StatusCode::NO_CONTENT);
    // an anonymous viewer may not watch a subscribers-only video: not counted
    let a = view(members.id.clone()).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let a = view("no-such-video".into()).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    let counted = |id: String| {
        let stack = &stack;
        async move {
            stack
                .metadata
                .get_video(&id)
                .await
                .expect("metadata answers")
                .expect("video exists")
                .counters
                .views
        }
    };
    assert_eq!(counted(popular.id.clone()).await, 3);
    assert_eq!(counted(quiet.id.clone()).await, 1);
    assert_eq!(counted(members.id.clone()).await, 0);
    let home = api.get("/v1/home", None).await.ok();
    let trending: Vec<&str> = home["trending"]
        .as_array()
        .expect("trending list")
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        trending.first().copied(),
        Some(popular.id.as_str()),
        "{home}"
    );
    assert!(trending.contains(&quiet.id.as_str()), "{home}");
    stop.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn nothing_is_sold_that_the_buyer_could_not_watch() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let api = start_bff(config(&stack, "http://edge.test"), &stop).await;
    let (creator_token, creator) = api.creator("Seller", None).await;
    let (buyer, _) = api.signup("Buyer").await;
    let price = AccessPolicy::Purchase {
        price_minor: 300,
        currency: "EUR".into(),
    };
    let buy = |id: String, key: &'static str| {
        let api = api.clone();
        let buyer = buyer.clone();
        async move {
            api.send(
                Method::POST,
                "/v1/purchases",
                Some(&buyer),
                Some(json!({"video_id": id})),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };

    // ended without a recording: nothing to watch, nothing sold
    let ended = catalog_video(&stack, &creator, "Ended", price.clone(), VideoStatus::Ended).await;
    let a = buy(ended.id.clone(), "k-ended").await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::CONFLICT, "not_watchable")
    );

    // private: the buyer cannot even see it
    let private = catalog_video(
        &stack,
        &creator,
        "Private",
        price.clone(),
        VideoStatus::Recorded,
    )
    .await;
    api.send(
        Method::PATCH,
        &format!("/v1/studio/videos/{}", private.id),
        Some(&creator_token),
        Some(json!({"expected_version": private.version, "visibility": "private"})),
        &[],
    )
    .await
    .ok();
    let a = buy(private.id.clone(), "k-private").await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );

    // no charge was made for either
    let mine = api.get("/v1/me/purchases", Some(&buyer)).await.ok();
    assert_eq!(mine["purchases"], json!([]), "{mine}");

    // a watchable one sells, and its playback URL opens only that video
    let rec = catalog_video(&stack, &creator, "On sale", price, VideoStatus::Recorded).await;
    let a = buy(rec.id.clone(), "k-rec").await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let d = api
        .get(&format!("/v1/videos/{}", rec.id), Some(&buyer))
        .await
        .ok();
    assert_eq!(
        opens(&d["playback"]["url"], "http://edge.test"),
        format!("live/{}/vod.m3u8", rec.id)
    );
    stop.cancel();
    stack.stop().await;
}

#[tokio::test]
async fn broadcast_defaults_are_for_creators() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let api = start_bff(config(&stack, "http://edge.test"), &stop).await;
    let (viewer, _) = api.signup("Viewer").await;
    let a = api
        .send(
            Method::PUT,
            "/v1/studio/broadcast-defaults",
            Some(&viewer),
            Some(json!({"visibility": "public", "access": {"policy": "subscribers"}})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    let (creator, _) = api.creator("Maker", None).await;
    let d = api
        .get("/v1/studio/broadcast-defaults", Some(&creator))
        .await
        .ok();
    assert_eq!(
        d,
        json!({"visibility": "public", "access": {"policy": "free"}})
    );
    let a = api
        .send(
            Method::PUT,
            "/v1/studio/broadcast-defaults",
            Some(&creator),
            Some(json!({"visibility": "unlisted", "access": {"policy": "purchase"}})),
            &[],
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.body);
    let d = api
        .send(
            Method::PUT,
            "/v1/studio/broadcast-defaults",
            Some(&creator),
            Some(json!({"visibility": "unlisted", "access": {"policy": "purchase", "price_minor": 250, "currency": "USD"}})),
            &[],
        )
        .await
        .ok();
    assert_eq!(d["visibility"], "unlisted");
    assert_eq!(d["access"]["price_minor"], 250);
    let again = api
        .get("/v1/studio/broadcast-defaults", Some(&creator))
        .await
        .ok();
    assert_eq!(again, d);
    stop.cancel();
    stack.stop().await;
}

/// The `Set-Cookie` of `name` in an answer, whole.
fn set_cookie(a: &common::Answer, name: &str) -> String {
    a.headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", a.headers))
        .to_string()
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string()
}

#[tokio::test]
async fn browser_sessions_keep_the_refresh_token_in_an_httponly_cookie_behind_csrf() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let api = start_bff(config(&stack, "http://edge.test"), &stop).await;
    let email = format!("{}@example.com", test_stack::random_name("web"));
    let password = "correct horse battery staple";
    let a = api
        .post(
            "/v1/auth/web/signup",
            None,
            json!({"email": email, "password": password, "display_name": "Web"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    // the body has the access token and no refresh token
    assert!(a.body["access_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert!(a.body.get("refresh_token").is_none(), "{}", a.body);
    let rt = set_cookie(&a, "caudal_rt");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/v1/auth/web"] {
        assert!(rt.contains(attr), "{rt}");
    }
    assert!(!rt.contains("Secure"), "plain HTTP: {rt}");
    let csrf_cookie = set_cookie(&a, "caudal_csrf");
    assert!(
        !csrf_cookie.contains("HttpOnly"),
        "pages read it: {csrf_cookie}"
    );
    let csrf = cookie_value(&csrf_cookie);
    assert_eq!(a.body["csrf_token"], csrf.as_str());
    let me = api
        .get("/v1/me", a.body["access_token"].as_str())
        .await
        .ok();
    assert_eq!(me["email"], email.as_str());

    let cookies = format!("caudal_rt={}; caudal_csrf={csrf}", cookie_value(&rt));
    let refresh = |headers: Vec<(&'static str, String)>| {
        let api = api.clone();
        async move {
            let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            api.send(Method::POST, "/v1/auth/web/refresh", None, None, &h)
                .await
        }
    };
    // no CSRF header, or a wrong one: 403, and the session is not used up
    let a = refresh(vec![("cookie", cookies.clone())]).await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    let a = refresh(vec![
        ("cookie", cookies.clone()),
        ("x-csrf-token", "guess".into()),
    ])
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // with it: a new access token and a rotated refresh cookie
    let a = refresh(vec![
        ("cookie", cookies.clone()),
        ("x-csrf-token", csrf.clone()),
    ])
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body["access_token"].as_str().is_some());
    let rt2 = cookie_value(&set_cookie(&a, "caudal_rt"));
    assert_ne!(rt2, cookie_value(&rt));
    let csrf2 = cookie_value(&set_cookie(&a, "caudal_csrf"));
    // over TLS (a proxy says so) the cookies are Secure
    let cookies2 = format!("caudal_rt={rt2}; caudal_csrf={csrf2}");
    let a = refresh(vec![
        ("cookie", cookies2),
        ("x-csrf-token", csrf2.clone()),
        ("x-forwarded-proto", "https".into()),
    ])
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(set_cookie(&a, "caudal_rt").contains("Secure"));
    let rt3 = cookie_value(&set_cookie(&a, "caudal_rt"));
    let csrf3 = cookie_value(&set_cookie(&a, "caudal_csrf"));

    // log-out revokes it and clears the cookies; the old token no longer refreshes
    let cookies3 = format!("caudal_rt={rt3}; caudal_csrf={csrf3}");
    let a = api
        .send(
            Method::POST,
            "/v1/auth/web/logout",
            None,
            None,
            &[("cookie", &cookies3), ("x-csrf-token", &csrf3)],
        )
        .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(set_cookie(&a, "caudal_rt").contains("Max-Age=0"));
    let a = refresh(vec![("cookie", cookies3), ("x-csrf-token", csrf3)]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
    assert!(set_cookie(&a, "caudal_rt").contains("Max-Age=0"));

    // wrong password through the web route: the same 401 code as /v1/auth/login
    let a = api
        .post(
            "/v1/auth/web/login",
            None,
            json!({"email": email, "password": "not it at all"}),
        )
        .await;
    assert_eq!(
        (a.status, a.error_code().as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_credentials")
    );
    // a form post from another site cannot sign anyone in: JSON only
    let a = api
        .send(
            Method::POST,
            "/v1/auth/web/login",
            None,
            None,
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.body);
    stop.cancel();
}

#[tokio::test]
async fn a_creator_page_has_the_plan_and_only_public_watchable_videos() {
    let stack = Stack::start(StackOptions::default()).await;
    let stop = CancellationToken::new();
    let api = start_bff(config(&stack, "http://edge.test"), &stop).await;
    let (_, creator) = api.creator("pagecreator", Some((499, "EUR"))).await;
    let public = catalog_video(
        &stack,
        &creator,
        "recorded",
        AccessPolicy::Free,
        VideoStatus::Recorded,
    )
    .await
    .id;
    let live = catalog_video(
        &stack,
        &creator,
        "on air",
        AccessPolicy::Free,
        VideoStatus::Live,
    )
    .await
    .id;
    // created, not yet uploaded: nothing to watch, not on the page
    let hidden = catalog_video(
        &stack,
        &creator,
        "not yet",
        AccessPolicy::Free,
        VideoStatus::Created,
    )
    .await
    .id;
    let page = api.get(&format!("/v1/creators/{creator}"), None).await.ok();
    assert_eq!(page["creator"]["id"], creator.as_str());
    assert_eq!(page["creator"]["display_name"], "pagecreator");
    assert_eq!(page["plan"]["price_minor"], 499);
    assert_eq!(page["plan"]["currency"], "EUR");
    assert_eq!(page["plan"]["interval"], "month");
    let ids: Vec<&str> = page["videos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&public.as_str()) && ids.contains(&live.as_str()),
        "{ids:?}"
    );
    assert!(!ids.contains(&hidden.as_str()), "{ids:?}");

    // a viewer without a plan: a page with no plan and no videos
    let (_, viewer) = api.signup("noplan").await;
    let page = api.get(&format!("/v1/creators/{viewer}"), None).await.ok();
    assert_eq!(page["plan"], serde_json::Value::Null);
    assert_eq!(page["videos"], json!([]));
    // unknown and malformed ids are 404s
    let a = api
        .get("/v1/creators/00000000-0000-0000-0000-000000000000", None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = api.get("/v1/creators/not-an-id", None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    stop.cancel();
}
