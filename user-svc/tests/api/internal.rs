use axum::http::StatusCode;
use serde_json::json;
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;
use user_svc::Config;

use crate::common::{err_code, TestApp, DB_URL_UNUSED};

#[sqlx::test(migrations = "./migrations")]
async fn entitlement_decisions(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator_with_plan("creator", 400).await;
    let u = app.signup("viewer").await;
    let subs = json!({"policy": "subscribers"});
    let paid = json!({"policy": "purchase", "price_minor": 150, "currency": "USD"});

    let d = app
        .entitlement(None, &c.id, "v", json!({"policy": "free"}))
        .await;
    assert_eq!(d, json!({"allow": true, "reason": "free", "offer": null}));
    let d = app.entitlement(Some(&c.id), &c.id, "v", subs.clone()).await;
    assert_eq!(d, json!({"allow": true, "reason": "owner", "offer": null}));
    let d = app.entitlement(Some(&c.id), &c.id, "v", paid.clone()).await;
    assert_eq!(d["reason"], "owner");

    let d = app.entitlement(None, &c.id, "v", subs.clone()).await;
    assert_eq!(
        (d["allow"].as_bool(), d["reason"].as_str()),
        (Some(false), Some("login_required"))
    );
    assert_eq!(d["offer"]["kind"], "subscription");
    assert_eq!(d["offer"]["price_minor"], 400);
    let d = app.entitlement(None, &c.id, "v", paid.clone()).await;
    assert_eq!(d["reason"], "login_required");
    assert_eq!(
        d["offer"],
        json!({"kind": "purchase", "video_id": "v", "creator_id": c.id, "price_minor": 150, "currency": "USD"})
    );
    let d = app.entitlement(Some(&u.id), &c.id, "v", paid.clone()).await;
    assert_eq!(d["reason"], "not_purchased");

    // a creator without a plan: denied, nothing to offer
    let bare = app.creator("bare").await;
    let d = app
        .entitlement(Some(&u.id), &bare.id, "v", subs.clone())
        .await;
    assert_eq!(
        d,
        json!({"allow": false, "reason": "not_subscribed", "offer": null})
    );

    // a subscription does not unlock a pay-per-view video
    app.post(
        "/v1/subscriptions",
        Some(&u.token),
        json!({"creator_id": c.id}),
    )
    .await;
    assert_eq!(
        app.entitlement(Some(&u.id), &c.id, "v", subs).await["reason"],
        "subscribed"
    );
    assert_eq!(
        app.entitlement(Some(&u.id), &c.id, "v", paid).await["reason"],
        "not_purchased"
    );

    // bad requests
    for (body, field) in [
        (
            json!({"owner_id": c.id, "video_id": "v", "policy": {"policy": "purchase"}}),
            "body",
        ),
        (
            json!({"owner_id": c.id, "video_id": "v", "policy": {"policy": "purchase", "price_minor": -1, "currency": "USD"}}),
            "price_minor",
        ),
        (
            json!({"owner_id": "x", "video_id": "v", "policy": {"policy": "free"}}),
            "owner_id",
        ),
        (
            json!({"user_id": "x", "owner_id": c.id, "video_id": "v", "policy": {"policy": "free"}}),
            "user_id",
        ),
        (
            json!({"owner_id": c.id, "video_id": "v", "policy": {"policy": "gold"}}),
            "body",
        ),
    ] {
        let (s, v) = app
            .post("/internal/v1/entitlements/check", None, body)
            .await;
        assert_eq!(
            (s, err_code(&v)),
            (StatusCode::BAD_REQUEST, "invalid_field"),
            "{v}"
        );
        assert_eq!(v["error"]["field"], field);
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn public_profiles(db: MySqlPool) {
    let app = TestApp::new(db);
    let a = app.signup("Ann").await;
    let b = app.creator("Ben").await;
    let (s, v) = app.get(&format!("/internal/v1/users/{}", b.id), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!({"id": b.id, "display_name": "Ben", "avatar_url": null, "role": "creator"})
    );
    assert!(v.get("email").is_none());
    let (s, v) = app
        .get(
            "/internal/v1/users/00000000-0000-0000-0000-000000000000",
            None,
        )
        .await;
    assert_eq!((s, err_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, _) = app.get("/internal/v1/users/garbage", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let unknown = "00000000-0000-0000-0000-000000000001";
    let (s, v) = app
        .post(
            "/internal/v1/users/batch",
            None,
            json!({"ids": [b.id, unknown, a.id, "junk", b.id]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![b.id.as_str(), a.id.as_str()],
        "in the order asked, unknown left out, no duplicates"
    );
    let (_, v) = app
        .post("/internal/v1/users/batch", None, json!({"ids": []}))
        .await;
    assert_eq!(v, json!({"users": []}));
}

#[sqlx::test(migrations = "./migrations")]
async fn payment_mode_endpoint(db: MySqlPool) {
    let app = TestApp::new(db);
    let (s, v) = app.get("/internal/v1/payment-provider/mode", None).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"mode": "approve"})));
    let (s, v) = app
        .request(
            axum::http::Method::PUT,
            "/internal/v1/payment-provider/mode",
            None,
            &[],
            Some(json!({"mode": "decline"})),
        )
        .await;
    assert_eq!((s, v), (StatusCode::OK, json!({"mode": "decline"})));
    let c = app.creator("c").await;
    let u = app.signup("u").await;
    let (s, _) = app
        .post(
            "/v1/purchases",
            Some(&u.token),
            json!({"video_id": "v", "creator_id": c.id, "price_minor": 5, "currency": "EUR", "idempotency_key": "k"}),
        )
        .await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED);
}

fn demo_config() -> Config {
    let mut config = Config::for_tests(DB_URL_UNUSED);
    config.demo.enabled = true;
    config.demo.email = "Demo@Caudal.local".into();
    config.demo.password = "demo-password".into();
    config.demo.display_name = "Demo Creator".into();
    config.demo.stream_key = "demo-stream-key-123".into();
    config
}

#[sqlx::test(migrations = "./migrations")]
async fn demo_seeding_is_idempotent(db: MySqlPool) {
    for round in 0..3 {
        let shutdown = CancellationToken::new();
        let (addr, task) = user_svc::start_with_pool(demo_config(), db.clone(), shutdown.clone())
            .await
            .unwrap();
        let client = service_clients::users::UserClient::new(
            &format!("http://{addr}"),
            std::time::Duration::from_secs(5),
        )
        .unwrap();
        let owner = client
            .validate_stream_key("demo-stream-key-123")
            .await
            .unwrap()
            .expect("demo key valid");
        assert_eq!(owner.display_name, "Demo Creator");
        if round == 1 {
            // someone revoked it: the next start registers it again
            sqlx::query("UPDATE stream_keys SET revoked_at = NOW(6)")
                .execute(&db)
                .await
                .unwrap();
        }
        shutdown.cancel();
        task.await.unwrap();
    }
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    assert_eq!(count("SELECT COUNT(*) FROM users").await, 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM users WHERE role = 'creator' AND email = 'demo@caudal.local'")
            .await,
        1
    );
    assert_eq!(count("SELECT COUNT(*) FROM stream_keys").await, 1);

    // the demo creator can log in with the configured password
    let app = TestApp::new(db);
    let (s, v) = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "demo@caudal.local", "password": "demo-password"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["role"], "creator");
}

#[sqlx::test(migrations = "./migrations")]
async fn demo_upgrades_an_existing_viewer(db: MySqlPool) {
    let app = TestApp::new(db.clone());
    let (s, _) = app
        .post("/v1/auth/signup", None, json!({"email": "demo@caudal.local", "password": "their-own-pass", "display_name": "Me"}))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let shutdown = CancellationToken::new();
    let (_, task) = user_svc::start_with_pool(demo_config(), db, shutdown.clone())
        .await
        .unwrap();
    shutdown.cancel();
    task.await.unwrap();
    let (s, v) = app
        .post(
            "/internal/v1/stream-keys/validate",
            None,
            json!({"key": "demo-stream-key-123"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["display_name"], "Me");
    // the existing password is kept
    let (s, _) = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "demo@caudal.local", "password": "their-own-pass"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}
