use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use service_clients::metadata::{AccessPolicy, Visibility};
use service_clients::users::{BroadcastDefaults, StreamKeyOwner, UserClient};
use sqlx::MySqlPool;
use tokio_util::sync::CancellationToken;
use user_svc::Config;

use crate::common::{err_code, TestApp, DB_URL_UNUSED};

#[sqlx::test(migrations = "./migrations")]
async fn viewers_have_no_stream_keys(db: MySqlPool) {
    let app = TestApp::new(db);
    let u = app.signup("viewer").await;
    let (s, v) = app.post("/v1/stream-keys", Some(&u.token), json!({})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(err_code(&v), "forbidden");
}

#[sqlx::test(migrations = "./migrations")]
async fn create_list_validate(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("Streamer").await;
    let (s, v) = app
        .post("/v1/stream-keys", Some(&c.token), json!({"label": "OBS"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    let key_id = v["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("live_") && key.len() > 30);
    assert_eq!(v["masked"], format!("live_****{}", &key[key.len() - 4..]));
    assert_eq!(v["label"], "OBS");

    // the listing never shows the key, and the database holds only its hash
    let (s, list) = app.get("/v1/stream-keys", Some(&c.token)).await;
    assert_eq!(s, StatusCode::OK);
    let keys = list["stream_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], key_id.as_str());
    assert!(keys[0].get("key").is_none());
    assert!(!list.to_string().contains(&key));
    let stored: String = sqlx::query_scalar("SELECT key_hash FROM stream_keys")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_ne!(stored, key);

    // the body is optional
    let (s, _) = app
        .request(
            axum::http::Method::POST,
            "/v1/stream-keys",
            Some(&c.token),
            &[],
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, v) = app
        .post(
            "/internal/v1/stream-keys/validate",
            None,
            json!({"key": key}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let owner: StreamKeyOwner = serde_json::from_value(v).expect("the wire type ingest decodes");
    assert_eq!(
        owner,
        StreamKeyOwner {
            user_id: c.id.clone(),
            display_name: "Streamer".into(),
            key_id: key_id.clone(),
            defaults: Default::default(),
        }
    );

    // a creator's broadcast defaults travel with the key
    let (s, v) = app
        .put(
            "/v1/me/broadcast-defaults",
            Some(&c.token),
            json!({"visibility": "unlisted", "access": {"policy": "subscribers"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app
        .post(
            "/internal/v1/stream-keys/validate",
            None,
            json!({"key": key}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let owner: StreamKeyOwner = serde_json::from_value(v).unwrap();
    assert_eq!(
        owner.defaults,
        BroadcastDefaults {
            visibility: Visibility::Unlisted,
            access: AccessPolicy::Subscribers
        }
    );
    let (s, v) = app
        .put(
            "/v1/me/broadcast-defaults",
            Some(&c.token),
            json!({"visibility": "public", "access": {"policy": "purchase", "price_minor": 299, "currency": "eur"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["access"]["currency"], "EUR");
    let (_, v) = app
        .post(
            "/internal/v1/stream-keys/validate",
            None,
            json!({"key": key}),
        )
        .await;
    let owner: StreamKeyOwner = serde_json::from_value(v).unwrap();
    assert_eq!(
        owner.defaults.access,
        AccessPolicy::Purchase {
            price_minor: 299,
            currency: "EUR".into()
        }
    );
    let (s, v) = app.get("/v1/me/broadcast-defaults", Some(&c.token)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["access"]["policy"], "purchase");
    // a purchase default needs a price
    let (s, v) = app
        .put(
            "/v1/me/broadcast-defaults",
            Some(&c.token),
            json!({"visibility": "public", "access": {"policy": "purchase"}}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err_code(&v), "invalid_field");

    let (s, v) = app
        .post(
            "/internal/v1/stream-keys/validate",
            None,
            json!({"key": "live_nope"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(err_code(&v), "invalid_stream_key");
}

#[sqlx::test(migrations = "./migrations")]
async fn rotate_replaces_the_key(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("rot").await;
    let (_, v) = app
        .post("/v1/stream-keys", Some(&c.token), json!({"label": "main"}))
        .await;
    let (old_key, old_id) = (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    );

    let (s, v) = app
        .post(
            &format!("/v1/stream-keys/{old_id}/rotate"),
            Some(&c.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let new_key = v["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, old_key);
    assert_eq!(v["label"], "main");

    let (s, v) = app
        .post(
            "/internal/v1/stream-keys/validate",
            None,
            json!({"key": old_key}),
        )
        .await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::NOT_FOUND, "invalid_stream_key")
    );
    let (s, _) = app
        .post(
            "/internal/v1/stream-keys/validate",
            None,
            json!({"key": new_key}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (_, list) = app.get("/v1/stream-keys", Some(&c.token)).await;
    assert_eq!(list["stream_keys"].as_array().unwrap().len(), 1);
    // a revoked key cannot be rotated again
    let (s, _) = app
        .post(
            &format!("/v1/stream-keys/{old_id}/rotate"),
            Some(&c.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrations = "./migrations")]
async fn revoke_invalidates_and_is_private(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("rev").await;
    let other = app.creator("other").await;
    let (_, v) = app.post("/v1/stream-keys", Some(&c.token), json!({})).await;
    let (key, id) = (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    );

    let (s, _) = app
        .delete(&format!("/v1/stream-keys/{id}"), Some(&other.token))
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another creator's key is not found"
    );
    let (s, _) = app
        .post(
            "/internal/v1/stream-keys/validate",
            None,
            json!({"key": key}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, _) = app
        .delete(&format!("/v1/stream-keys/{id}"), Some(&c.token))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app
        .post(
            "/internal/v1/stream-keys/validate",
            None,
            json!({"key": key}),
        )
        .await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::NOT_FOUND, "invalid_stream_key")
    );
    let (s, _) = app
        .delete(&format!("/v1/stream-keys/{id}"), Some(&c.token))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "revoking twice is fine");
    let (s, _) = app
        .delete("/v1/stream-keys/not-a-uuid", Some(&c.token))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/v1/stream-keys", Some(&c.token)).await;
    assert!(list["stream_keys"].as_array().unwrap().is_empty());
}

#[sqlx::test(migrations = "./migrations")]
async fn active_keys_are_limited(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("many").await;
    for _ in 0..user_svc::stream_keys::MAX_ACTIVE_KEYS {
        let (s, _) = app.post("/v1/stream-keys", Some(&c.token), json!({})).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (s, v) = app.post("/v1/stream-keys", Some(&c.token), json!({})).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::CONFLICT, "too_many_stream_keys")
    );
}

/// Ingest's own client against user-svc served on a real port, as ingest's tests do.
#[sqlx::test(migrations = "./migrations")]
async fn ingest_client_over_http(db: MySqlPool) {
    let shutdown = CancellationToken::new();
    let config = Config::for_tests(DB_URL_UNUSED);
    let (addr, task) = user_svc::start_with_pool(config.clone(), db.clone(), shutdown.clone())
        .await
        .unwrap();
    let app = TestApp::with_config(db, |c| c.jwt_secret = config.jwt_secret.clone());
    let c = app.creator("Live").await;
    let (_, v) = app.post("/v1/stream-keys", Some(&c.token), json!({})).await;
    let key = v["key"].as_str().unwrap().to_string();

    let client = UserClient::new(&format!("http://{addr}"), Duration::from_secs(5)).unwrap();
    let owner = client
        .validate_stream_key(&key)
        .await
        .unwrap()
        .expect("valid key");
    assert_eq!(owner.user_id, c.id);
    assert_eq!(owner.display_name, "Live");
    assert_eq!(owner.key_id, v["id"].as_str().unwrap());
    assert_eq!(
        client.validate_stream_key("live_unknown").await.unwrap(),
        None
    );

    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("stops on shutdown")
        .unwrap();
}
