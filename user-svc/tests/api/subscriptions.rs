use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::MySqlPool;
use user_svc::config::PaymentMode;

use crate::common::{err_code, TestApp, User};

const SUBSCRIBERS: &str = r#"{"policy": "subscribers"}"#;

fn subscribers_policy() -> Value {
    serde_json::from_str(SUBSCRIBERS).unwrap()
}

async fn subscribe(
    app: &TestApp,
    u: &User,
    creator: &User,
    token: Option<&str>,
) -> (StatusCode, Value) {
    app.post(
        "/v1/subscriptions",
        Some(&u.token),
        json!({"creator_id": creator.id, "payment_token": token}),
    )
    .await
}

#[sqlx::test(migrations = "./migrations")]
async fn plans(db: MySqlPool) {
    let app = TestApp::new(db);
    let viewer = app.signup("v").await;
    let (s, v) = app
        .request(
            Method::PUT,
            "/v1/me/plan",
            Some(&viewer.token),
            &[],
            Some(json!({"price_minor": 500, "currency": "EUR"})),
        )
        .await;
    assert_eq!((s, err_code(&v)), (StatusCode::FORBIDDEN, "forbidden"));

    let c = app.creator("c").await;
    let (s, _) = app.get(&format!("/v1/creators/{}/plan", c.id), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = app
        .request(
            Method::PUT,
            "/v1/me/plan",
            Some(&c.token),
            &[],
            Some(json!({"price_minor": 0, "currency": "EUR"})),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("price_minor"))
    );
    let (s, v) = app
        .request(
            Method::PUT,
            "/v1/me/plan",
            Some(&c.token),
            &[],
            Some(json!({"price_minor": 499, "currency": "eur"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["price_minor"].as_i64(), v["currency"].as_str()),
        (Some(499), Some("EUR"))
    );
    let (s, v) = app.get(&format!("/v1/creators/{}/plan", c.id), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["creator_id"], c.id.as_str());
    let (_, mine) = app.get("/v1/me/plan", Some(&c.token)).await;
    assert_eq!(mine, v);
}

#[sqlx::test(migrations = "./migrations")]
async fn subscribe_charges_once_and_grants_access(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator_with_plan("creator", 500).await;
    let u = app.signup("fan").await;

    let d = app
        .entitlement(Some(&u.id), &c.id, "v1", subscribers_policy())
        .await;
    assert_eq!(d["allow"], false);
    assert_eq!(d["reason"], "not_subscribed");
    assert_eq!(
        d["offer"],
        json!({"kind": "subscription", "creator_id": c.id, "price_minor": 500, "currency": "EUR", "interval": "month"})
    );

    let (s, sub) = subscribe(&app, &u, &c, None).await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["has_access"], true);
    assert_eq!(sub["price_minor"], 500);

    let d = app
        .entitlement(Some(&u.id), &c.id, "v1", subscribers_policy())
        .await;
    assert_eq!(
        (d["allow"].as_bool(), d["reason"].as_str()),
        (Some(true), Some("subscribed"))
    );
    assert!(d["offer"].is_null());

    // subscribing again changes nothing and charges nothing
    let (s, again) = subscribe(&app, &u, &c, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again, sub);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
    assert_eq!(app.approved_at_provider(), 1);
    app.assert_ledger_balanced().await;

    let (_, mine) = app.get("/v1/me/subscriptions", Some(&u.token)).await;
    assert_eq!(mine["subscriptions"], json!([sub]));
    let (_, subs) = app.get("/v1/creators/me/subscribers", Some(&c.token)).await;
    let subs = subs["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["subscriber"]["id"], u.id.as_str());
    assert_eq!(subs[0]["subscriber"]["display_name"], "fan");

    // fee split: 10% platform, the rest to the creator; the fan's spend is -500
    let (_, bal) = app.get("/v1/me/balance", Some(&c.token)).await;
    assert_eq!(
        bal["balances"],
        json!([{"account": "earnings", "currency": "EUR", "amount_minor": 450}])
    );
    let (_, bal) = app.get("/v1/me/balance", Some(&u.token)).await;
    assert_eq!(
        bal["balances"],
        json!([{"account": "spend", "currency": "EUR", "amount_minor": -500}])
    );
    let (_, tx) = app.get("/v1/me/transactions", Some(&u.token)).await;
    assert_eq!(tx["transactions"][0]["kind"], "subscription");
    assert_eq!(tx["transactions"][0]["amount_minor"], -500);
}

#[sqlx::test(migrations = "./migrations")]
async fn subscribe_errors(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("noplan").await;
    let u = app.signup("fan").await;
    let (s, v) = subscribe(&app, &u, &c, None).await;
    assert_eq!((s, err_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (s, v) = subscribe(&app, &c, &c, None).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::BAD_REQUEST, "invalid_field")
    );
    let (s, v) = app
        .post(
            "/v1/subscriptions",
            Some(&u.token),
            json!({"creator_id": "nope"}),
        )
        .await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("creator_id"))
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn cancel_keeps_access_until_period_end(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator_with_plan("c", 300).await;
    let u = app.signup("u").await;
    let stranger = app.signup("s").await;
    let (_, sub) = subscribe(&app, &u, &c, None).await;
    let id = sub["id"].as_str().unwrap();

    let (s, _) = app
        .delete(&format!("/v1/subscriptions/{id}"), Some(&stranger.token))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    let (s, v) = app
        .delete(&format!("/v1/subscriptions/{id}"), Some(&u.token))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "canceled");
    assert_eq!(v["has_access"], true);
    assert_eq!(v["cancel_at_period_end"], true);
    assert_eq!(v["current_period_end"], sub["current_period_end"]);
    let (_, again) = app
        .delete(&format!("/v1/subscriptions/{id}"), Some(&u.token))
        .await;
    assert_eq!(again, v, "cancel is idempotent");

    let d = app
        .entitlement(Some(&u.id), &c.id, "v", subscribers_policy())
        .await;
    assert_eq!(d["allow"], true);

    // a canceled subscription is not renewed, even when due
    sqlx::query("UPDATE subscriptions SET current_period_end = NOW(6) + INTERVAL 1 HOUR")
        .execute(&app.db)
        .await
        .unwrap();
    let (_, r) = app
        .post("/internal/v1/subscriptions/renew", None, json!({}))
        .await;
    assert_eq!(r["renewed"], 0);

    // subscribing again undoes the cancellation without a charge
    let (s, v) = subscribe(&app, &u, &c, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "active");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn expiry_and_renewal(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator_with_plan("c", 1000).await;
    let u = app.signup("u").await;
    let (_, sub) = subscribe(&app, &u, &c, None).await;
    let id = sub["id"].as_str().unwrap().to_string();

    // due within renew_ahead: renewal charges the next month from the old period end
    sqlx::query("UPDATE subscriptions SET current_period_end = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR")
        .execute(&app.db)
        .await
        .unwrap();
    let end_before: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT current_period_end FROM subscriptions")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let (s, r) = app
        .post("/internal/v1/subscriptions/renew", None, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(
        r,
        json!({"renewed": 1, "declined": 0, "pending": 0, "skipped": 0})
    );
    let end_after: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT current_period_end FROM subscriptions")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        end_after,
        end_before
            .checked_add_months(chrono::Months::new(1))
            .unwrap()
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        2
    );

    // running again charges nothing more
    let (_, r) = app
        .post("/internal/v1/subscriptions/renew", None, json!({}))
        .await;
    assert_eq!(r["renewed"], 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM subscription_charges").await,
        2
    );

    // the period lapses (declined renewal): expired, no access
    app.set_mode(PaymentMode::Decline);
    sqlx::query("UPDATE subscriptions SET current_period_end = UTC_TIMESTAMP(6) + INTERVAL 1 HOUR")
        .execute(&app.db)
        .await
        .unwrap();
    let (_, r) = app
        .post("/internal/v1/subscriptions/renew", None, json!({}))
        .await;
    assert_eq!(r["declined"], 1);
    sqlx::query(
        "UPDATE subscriptions SET current_period_end = UTC_TIMESTAMP(6) - INTERVAL 1 SECOND",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let (_, mine) = app.get("/v1/me/subscriptions", Some(&u.token)).await;
    assert_eq!(mine["subscriptions"][0]["status"], "expired");
    assert_eq!(mine["subscriptions"][0]["has_access"], false);
    let d = app
        .entitlement(Some(&u.id), &c.id, "v", subscribers_policy())
        .await;
    assert_eq!(
        (d["allow"].as_bool(), d["reason"].as_str()),
        (Some(false), Some("not_subscribed"))
    );
    let (_, subs) = app.get("/v1/creators/me/subscribers", Some(&c.token)).await;
    assert!(subs["subscribers"].as_array().unwrap().is_empty());

    // subscribing again starts a new paid period on the same subscription
    app.set_mode(PaymentMode::Approve);
    let (s, v) = subscribe(&app, &u, &c, None).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["status"], "active");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        3
    );
    app.assert_ledger_balanced().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn lapsed_beyond_grace_is_not_renewed(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator_with_plan("c", 1000).await;
    let u = app.signup("u").await;
    subscribe(&app, &u, &c, None).await;
    sqlx::query("UPDATE subscriptions SET current_period_end = UTC_TIMESTAMP(6) - INTERVAL 30 DAY")
        .execute(&app.db)
        .await
        .unwrap();
    let (_, r) = app
        .post("/internal/v1/subscriptions/renew", None, json!({}))
        .await;
    assert_eq!(r["renewed"], 0);
    let (_, mine) = app.get("/v1/me/subscriptions", Some(&u.token)).await;
    assert_eq!(mine["subscriptions"][0]["status"], "expired");
}

#[sqlx::test(migrations = "./migrations")]
async fn declined_subscription_grants_nothing(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator_with_plan("c", 700).await;
    let u = app.signup("u").await;
    let (s, v) = subscribe(&app, &u, &c, Some("tok_decline")).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::PAYMENT_REQUIRED, "payment_declined")
    );
    let (_, mine) = app.get("/v1/me/subscriptions", Some(&u.token)).await;
    assert_eq!(mine["subscriptions"][0]["status"], "incomplete");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        0
    );
    let d = app
        .entitlement(Some(&u.id), &c.id, "v", subscribers_policy())
        .await;
    assert_eq!(d["allow"], false);
    // another card works
    let (s, _) = subscribe(&app, &u, &c, None).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[sqlx::test(migrations = "./migrations")]
async fn subscription_timeout_is_reconciled(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator_with_plan("c", 700).await;
    let u = app.signup("u").await;
    let (s, v) = subscribe(&app, &u, &c, Some("tok_timeout")).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::GATEWAY_TIMEOUT, "payment_timeout")
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM subscription_charges WHERE status = 'pending'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        0
    );

    let (s, r) = app
        .post("/internal/v1/payments/reconcile", None, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["subscription_charges_completed"], 1, "{r}");
    let (_, mine) = app.get("/v1/me/subscriptions", Some(&u.token)).await;
    assert_eq!(mine["subscriptions"][0]["status"], "active");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
    let (_, r) = app
        .post("/internal/v1/payments/reconcile", None, json!({}))
        .await;
    assert_eq!(
        r["subscription_charges_completed"], 0,
        "nothing left to settle"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn concurrent_subscribe_and_cancel_stay_consistent(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator_with_plan("c", 250).await;
    let u = app.signup("u").await;

    // 20 first subscriptions at once: one charge
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, u, c) = (app.clone(), u.clone(), c.clone());
        tasks.push(tokio::spawn(
            async move { subscribe(&app, &u, &c, None).await },
        ));
    }
    let mut sub_id = None;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert!(s == StatusCode::CREATED || s == StatusCode::OK, "{s} {v}");
        assert_eq!(*sub_id.get_or_insert(v["id"].clone()), v["id"]);
    }
    let sub_id = sub_id.unwrap().as_str().unwrap().to_string();
    assert_eq!(
        app.count("SELECT COUNT(*) FROM subscription_charges").await,
        1
    );

    // subscribe and cancel interleaved
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (app, u, c, sub_id) = (app.clone(), u.clone(), c.clone(), sub_id.clone());
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                subscribe(&app, &u, &c, None).await
            } else {
                app.delete(&format!("/v1/subscriptions/{sub_id}"), Some(&u.token))
                    .await
            }
        }));
    }
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (flag, canceled_at, end): (
        bool,
        Option<chrono::DateTime<chrono::Utc>>,
        Option<chrono::DateTime<chrono::Utc>>,
    ) = sqlx::query_as(
        "SELECT cancel_at_period_end, canceled_at, current_period_end FROM subscriptions",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        flag,
        canceled_at.is_some(),
        "the cancel flag and its time agree"
    );
    assert!(end.unwrap() > chrono::Utc::now(), "still paid");
    assert_eq!(app.count("SELECT COUNT(*) FROM subscriptions").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM subscription_charges").await,
        1,
        "never charged twice"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
    app.assert_ledger_balanced().await;
    let (_, mine) = app.get("/v1/me/subscriptions", Some(&u.token)).await;
    let status = mine["subscriptions"][0]["status"].as_str().unwrap();
    assert_eq!(status, if flag { "canceled" } else { "active" });
}
