use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::MySqlPool;
use user_svc::config::PaymentMode;
use user_svc::payment::{
    ChargeRequest, LocalProvider, Outcome, PaymentProvider, ProviderError, RefundRequest,
};

use crate::common::{err_code, unique, TestApp, User};

fn body(creator: &User, video: &str, key: &str) -> Value {
    json!({"video_id": video, "creator_id": creator.id, "price_minor": 299, "currency": "EUR", "idempotency_key": key})
}

fn purchase_policy() -> Value {
    json!({"policy": "purchase", "price_minor": 299, "currency": "EUR"})
}

async fn buy(app: &TestApp, u: &User, b: Value) -> (StatusCode, Value) {
    app.post("/v1/purchases", Some(&u.token), b).await
}

#[sqlx::test(migrations = "./migrations")]
async fn purchase_completes_once(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let d = app
        .entitlement(Some(&u.id), &c.id, "vid-1", purchase_policy())
        .await;
    assert_eq!(d["reason"], "not_purchased");
    assert_eq!(
        d["offer"],
        json!({"kind": "purchase", "video_id": "vid-1", "creator_id": c.id, "price_minor": 299, "currency": "EUR"})
    );

    let (s, p) = buy(&app, &u, body(&c, "vid-1", "k1")).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["status"], "completed");
    assert_eq!(p["video_id"], "vid-1");
    assert_eq!(p["buyer_id"], u.id.as_str());

    let (s, again) = buy(&app, &u, body(&c, "vid-1", "k1")).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(again, p, "a replay answers the same purchase");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
    assert_eq!(app.approved_at_provider(), 1);
    app.assert_ledger_balanced().await;

    let d = app
        .entitlement(Some(&u.id), &c.id, "vid-1", purchase_policy())
        .await;
    assert_eq!(
        (d["allow"].as_bool(), d["reason"].as_str()),
        (Some(true), Some("purchased"))
    );
    let (_, list) = app.get("/v1/me/purchases", Some(&u.token)).await;
    assert_eq!(list["purchases"], json!([p]));
    let (_, tx) = app.get("/v1/me/transactions", Some(&c.token)).await;
    assert_eq!(tx["transactions"][0]["kind"], "purchase");
    assert_eq!(tx["transactions"][0]["account"], "earnings");
    assert_eq!(tx["transactions"][0]["amount_minor"], 270);
    assert_eq!(tx["transactions"][0]["reference_id"], p["id"]);

    // a new key for a video already owned is refused, not charged
    let (s, v) = buy(&app, &u, body(&c, "vid-1", "k2")).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::CONFLICT, "already_purchased")
    );
    assert_eq!(app.approved_at_provider(), 1);
}

#[sqlx::test(migrations = "./migrations")]
async fn idempotency_key_header_and_conflicts(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let mut b = body(&c, "vid-h", "ignored");
    b.as_object_mut().unwrap().remove("idempotency_key");
    let (s, v) = buy(&app, &u, b.clone()).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("idempotency_key"))
    );

    let (s, p) = app
        .request(
            Method::POST,
            "/v1/purchases",
            Some(&u.token),
            &[("idempotency-key", "hdr-1")],
            Some(b.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let (_, p2) = buy(&app, &u, body(&c, "vid-h", "hdr-1")).await;
    assert_eq!(p2, p, "header and body keys are the same key");

    // the same key for another request
    let mut other = body(&c, "vid-h", "hdr-1");
    other["price_minor"] = json!(1);
    let (s, v) = buy(&app, &u, other).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::CONFLICT, "idempotency_conflict")
    );
    // keys are per buyer
    let u2 = app.signup("buyer2").await;
    let (s, _) = buy(&app, &u2, body(&c, "vid-h", "hdr-1")).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[sqlx::test(migrations = "./migrations")]
async fn purchase_validation(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let viewer = app.signup("not-a-creator").await;
    let u = app.signup("buyer").await;
    let (s, v) = buy(&app, &c, body(&c, "v", "k")).await;
    assert_eq!(
        (s, v["error"]["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("creator_id"))
    );
    let (s, _) = buy(&app, &u, body(&viewer, "v", "k")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let mut b = body(&c, "v", "k");
    b["currency"] = json!("EURO");
    let (s, v) = buy(&app, &u, b).await;
    assert_eq!(v["error"]["field"], "currency", "{s}");
    let mut b = body(&c, "", "k");
    b["video_id"] = json!("");
    let (_, v) = buy(&app, &u, b).await;
    assert_eq!(v["error"]["field"], "video_id");
    let (s, _) = app.post("/v1/purchases", None, body(&c, "v", "k")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "./migrations")]
async fn hundred_concurrent_duplicates_make_one_transaction(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let key = unique("idem");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (app, u, b) = (app.clone(), u.clone(), body(&c, "vid-race", &key));
        tasks.push(tokio::spawn(async move { buy(&app, &u, b).await }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let first = answers[0].clone();
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    assert!(
        answers.iter().all(|a| *a == first),
        "every duplicate gets the same answer"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM purchases").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
    assert_eq!(app.approved_at_provider(), 1, "charged once");
    app.assert_ledger_balanced().await;
}

/// Approves after a delay and counts every call, so duplicates really overlap the charge.
struct SlowProvider {
    calls: AtomicUsize,
    inner: LocalProvider,
}

#[async_trait::async_trait]
impl PaymentProvider for SlowProvider {
    async fn charge(&self, req: &ChargeRequest) -> Result<Outcome, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(150)).await;
        self.inner.charge(req).await
    }
    async fn refund(&self, req: &RefundRequest) -> Result<Outcome, ProviderError> {
        self.inner.refund(req).await
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn duplicates_during_a_slow_charge_wait_for_it(db: MySqlPool) {
    let provider = Arc::new(SlowProvider {
        calls: AtomicUsize::new(0),
        inner: LocalProvider::new(PaymentMode::Approve, true),
    });
    let app = TestApp::with_provider(db, provider.clone());
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (app, u, b) = (app.clone(), u.clone(), body(&c, "vid-slow", "k-slow"));
        tasks.push(tokio::spawn(async move {
            // spread the arrivals over the charge
            tokio::time::sleep(Duration::from_millis(i % 10 * 15)).await;
            buy(&app, &u, b).await
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert_eq!(answers[0].0, StatusCode::CREATED, "{}", answers[0].1);
    assert!(answers.iter().all(|a| *a == answers[0]));
    assert_eq!(
        provider.calls.load(Ordering::SeqCst),
        1,
        "the provider was asked once"
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
    app.assert_ledger_balanced().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn declined_purchase(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let mut b = body(&c, "vid-d", "k-d");
    b["payment_token"] = json!("tok_decline");
    let (s, v) = buy(&app, &u, b.clone()).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::PAYMENT_REQUIRED, "payment_declined")
    );
    let (s2, v2) = buy(&app, &u, b).await;
    assert_eq!((s2, &v2), (s, &v), "the replay is declined too");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        0
    );
    let (_, list) = app.get("/v1/me/purchases", Some(&u.token)).await;
    assert_eq!(list["purchases"][0]["status"], "failed");
    let d = app
        .entitlement(Some(&u.id), &c.id, "vid-d", purchase_policy())
        .await;
    assert_eq!(d["allow"], false);

    // the provider mode declines as well
    app.set_mode(PaymentMode::Decline);
    let (s, _) = buy(&app, &u, body(&c, "vid-d", "k-d2")).await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED);
    // a failed purchase does not block a new attempt with a new key
    app.set_mode(PaymentMode::Approve);
    let (s, _) = buy(&app, &u, body(&c, "vid-d", "k-d3")).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[sqlx::test(migrations = "./migrations")]
async fn timed_out_purchase_stays_pending_and_is_reconciled(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    app.set_mode(PaymentMode::Timeout);
    let (s, v) = buy(&app, &u, body(&c, "vid-t", "k-t")).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::GATEWAY_TIMEOUT, "payment_timeout")
    );
    let (_, list) = app.get("/v1/me/purchases", Some(&u.token)).await;
    assert_eq!(list["purchases"][0]["status"], "pending");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        0
    );
    let d = app
        .entitlement(Some(&u.id), &c.id, "vid-t", purchase_policy())
        .await;
    assert_eq!(d["allow"], false);

    // still no answer: stays pending
    let (_, r) = app
        .post("/internal/v1/payments/reconcile", None, json!({}))
        .await;
    assert_eq!(r["still_pending"], 1, "{r}");

    app.set_mode(PaymentMode::Approve);
    let (_, r) = app
        .post("/internal/v1/payments/reconcile", None, json!({}))
        .await;
    assert_eq!(r["purchases_completed"], 1, "{r}");
    let (s, p) = buy(&app, &u, body(&c, "vid-t", "k-t")).await;
    assert_eq!(
        (s, p["status"].as_str()),
        (StatusCode::CREATED, Some("completed"))
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
    app.assert_ledger_balanced().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn client_retry_settles_a_timed_out_purchase(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let mut b = body(&c, "vid-r", "k-r");
    b["payment_token"] = json!("tok_timeout");
    let (s, _) = buy(&app, &u, b).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
    // the client retries with the same key (and a card that answers)
    let (s, p) = buy(&app, &u, body(&c, "vid-r", "k-r")).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["status"], "completed");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn lost_reply_is_never_charged_twice(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let mut b = body(&c, "vid-l", "k-l");
    b["payment_token"] = json!("tok_lost_reply");
    let (s, _) = buy(&app, &u, b).await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(app.approved_at_provider(), 1, "the provider took the money");
    // even with the provider now declining new charges, the retry finds the first charge
    app.set_mode(PaymentMode::Decline);
    let (_, r) = app
        .post("/internal/v1/payments/reconcile", None, json!({}))
        .await;
    assert_eq!(r["purchases_completed"], 1, "{r}");
    assert_eq!(app.approved_at_provider(), 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        1
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn refunds(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let stranger = app.creator("stranger").await;
    let (_, p) = buy(&app, &u, body(&c, "vid-f", "k-f")).await;
    let path = format!("/v1/purchases/{}/refund", p["id"].as_str().unwrap());

    let (s, v) = app.post(&path, Some(&u.token), json!({})).await;
    assert_eq!((s, err_code(&v)), (StatusCode::FORBIDDEN, "forbidden"));
    let (s, _) = app.post(&path, Some(&stranger.token), json!({})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // declined: stays completed
    app.set_mode(PaymentMode::Decline);
    let (s, v) = app.post(&path, Some(&c.token), json!({})).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::PAYMENT_REQUIRED, "payment_declined")
    );
    let (_, list) = app.get("/v1/me/purchases", Some(&u.token)).await;
    assert_eq!(list["purchases"][0]["status"], "completed");

    // timed out: refund pending, access kept, then reconciled
    app.set_mode(PaymentMode::Timeout);
    let (s, v) = app.post(&path, Some(&c.token), json!({})).await;
    assert_eq!(
        (s, err_code(&v)),
        (StatusCode::GATEWAY_TIMEOUT, "payment_timeout")
    );
    let (_, list) = app.get("/v1/me/purchases", Some(&u.token)).await;
    assert_eq!(list["purchases"][0]["status"], "refund_pending");
    let d = app
        .entitlement(Some(&u.id), &c.id, "vid-f", purchase_policy())
        .await;
    assert_eq!(d["allow"], true);

    app.set_mode(PaymentMode::Approve);
    let (_, r) = app
        .post("/internal/v1/payments/reconcile", None, json!({}))
        .await;
    assert_eq!(r["refunds_completed"], 1, "{r}");
    let (s, v) = app.post(&path, Some(&c.token), json!({})).await;
    assert_eq!(
        s,
        StatusCode::OK,
        "refunding again answers the refunded purchase"
    );
    assert_eq!(v["status"], "refunded");
    assert!(v["refunded_at"].is_string());

    let d = app
        .entitlement(Some(&u.id), &c.id, "vid-f", purchase_policy())
        .await;
    assert_eq!(
        (d["allow"].as_bool(), d["reason"].as_str()),
        (Some(false), Some("not_purchased"))
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        2
    );
    app.assert_ledger_balanced().await;
    for who in [&u, &c] {
        let (_, bal) = app.get("/v1/me/balance", Some(&who.token)).await;
        assert!(
            bal["balances"]
                .as_array()
                .unwrap()
                .iter()
                .all(|b| b["amount_minor"] == 0),
            "{bal}"
        );
    }
    // a refunded video can be bought again
    let (s, _) = buy(&app, &u, body(&c, "vid-f", "k-f2")).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[sqlx::test(migrations = "./migrations")]
async fn immediate_refund(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let (_, p) = buy(&app, &u, body(&c, "vid-i", "k-i")).await;
    let (s, v) = app
        .post(
            &format!("/v1/purchases/{}/refund", p["id"].as_str().unwrap()),
            Some(&c.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "refunded");
    let (s, _) = app
        .post(
            "/v1/purchases/00000000-0000-0000-0000-000000000000/refund",
            Some(&c.token),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, tx) = app.get("/v1/me/transactions", Some(&u.token)).await;
    let kinds: Vec<&str> = tx["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2);
    assert!(kinds.contains(&"purchase") && kinds.contains(&"refund"));
}

#[sqlx::test(migrations = "./migrations")]
async fn concurrent_duplicates_of_a_timed_out_purchase_agree(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let mut b = body(&c, "vid-tt", "k-tt");
    b["payment_token"] = json!("tok_timeout");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, u, b) = (app.clone(), u.clone(), b.clone());
        tasks.push(tokio::spawn(async move { buy(&app, &u, b).await }));
    }
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(
            (s, err_code(&v)),
            (StatusCode::GATEWAY_TIMEOUT, "payment_timeout")
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM purchases WHERE status = 'pending'")
            .await,
        1
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions").await,
        0
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn concurrent_refunds_refund_once(db: MySqlPool) {
    let app = TestApp::new(db);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let (_, p) = buy(&app, &u, body(&c, "vid-cr", "k-cr")).await;
    let path = format!("/v1/purchases/{}/refund", p["id"].as_str().unwrap());
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (app, c, path) = (app.clone(), c.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            app.post(&path, Some(&c.token), json!({})).await
        }));
    }
    for t in tasks {
        let (s, v) = t.await.unwrap();
        assert_eq!(
            (s, v["status"].as_str()),
            (StatusCode::OK, Some("refunded")),
            "{v}"
        );
    }
    assert_eq!(
        app.count("SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'refund'")
            .await,
        1
    );
    app.assert_ledger_balanced().await;
}

#[sqlx::test(migrations = "./migrations")]
async fn a_refund_gives_back_the_fee_charged_even_after_the_rate_changed(db: MySqlPool) {
    // bought at a 10 % fee ...
    let app = TestApp::with_config(db.clone(), |c| c.payment.platform_fee_bps = 1_000);
    let c = app.creator("seller").await;
    let u = app.signup("buyer").await;
    let (s, p) = buy(&app, &u, body(&c, "vid-fee", "k-fee")).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let platform = "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS SIGNED) FROM ledger_entries WHERE account = 'platform'";
    let earned = "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS SIGNED) FROM ledger_entries WHERE account = 'earnings'";
    assert!(app.count(platform).await > 0, "a fee was taken");
    // ... refunded after the platform moved to 25 %
    let secret = app.state.config.jwt_secret.clone();
    let later = TestApp::with_config(db, |c| {
        c.payment.platform_fee_bps = 2_500;
        c.jwt_secret = secret; // the same service, restarted with a new rate
    });
    let path = format!("/v1/purchases/{}/refund", p["id"].as_str().unwrap());
    let (s, v) = later.post(&path, Some(&c.token), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "refunded");
    assert_eq!(
        later.count(platform).await,
        0,
        "the fee taken was given back, no more, no less"
    );
    assert_eq!(
        later.count(earned).await,
        0,
        "the creator's earnings were reversed exactly"
    );
    later.assert_ledger_balanced().await;
}
