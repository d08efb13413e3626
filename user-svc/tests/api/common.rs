//! Drives the real router (and the real database of each `#[sqlx::test]`) in process.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use sqlx::MySqlPool;
use tower::ServiceExt as _;
use user_svc::config::PaymentMode;
use user_svc::{AppState, Config};

pub const DB_URL_UNUSED: &str = "mysql://unused-the-pool-comes-from-sqlx-test/x";

#[derive(Clone)]
pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub db: MySqlPool,
}

/// A signed-up user and their tokens.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub email: String,
    pub token: String,
    pub refresh: String,
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    pub fn new(db: MySqlPool) -> Self {
        Self::with_config(db, |_| {})
    }

    pub fn with_config(db: MySqlPool, f: impl FnOnce(&mut Config)) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            // RUST_LOG=debug cargo test ... shows the service's logs
            service_kit::init_tracing();
        }
        let mut config = Config::for_tests(DB_URL_UNUSED);
        f(&mut config);
        let state = AppState::new(config, db.clone()).expect("state builds");
        Self {
            router: user_svc::app(state.clone()),
            state,
            db,
        }
    }

    /// An app whose payments go to `provider` instead of the local one.
    pub fn with_provider(
        db: MySqlPool,
        provider: std::sync::Arc<dyn user_svc::payment::PaymentProvider>,
    ) -> Self {
        let state = AppState::with_provider(Config::for_tests(DB_URL_UNUSED), db.clone(), provider)
            .expect("state builds");
        Self {
            router: user_svc::app(state.clone()),
            state,
            db,
        }
    }

    pub fn set_mode(&self, mode: PaymentMode) {
        self.state
            .local_provider
            .as_ref()
            .expect("local provider")
            .set_mode(mode);
    }

    pub fn approved_at_provider(&self) -> usize {
        self.state
            .local_provider
            .as_ref()
            .expect("local provider")
            .approved_count()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::GET, path, token, &[], None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, token, &[], Some(body))
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, token, &[], Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, token, &[], None).await
    }

    pub async fn signup(&self, name: &str) -> User {
        let email = format!("{}@example.com", unique(name));
        let (s, v) = self
            .post(
                "/v1/auth/signup",
                None,
                json!({"email": email, "password": "correct horse", "display_name": name}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        User {
            id: v["user"]["id"].as_str().unwrap().into(),
            email,
            token: v["access_token"].as_str().unwrap().into(),
            refresh: v["refresh_token"].as_str().unwrap().into(),
        }
    }

    pub async fn creator(&self, name: &str) -> User {
        let u = self.signup(name).await;
        let (s, v) = self
            .post("/v1/me/become-creator", Some(&u.token), json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["role"], "creator");
        u
    }

    /// A creator with a monthly plan at `price` EUR cents.
    pub async fn creator_with_plan(&self, name: &str, price: i64) -> User {
        let c = self.creator(name).await;
        let (s, v) = self
            .request(
                Method::PUT,
                "/v1/me/plan",
                Some(&c.token),
                &[],
                Some(json!({"price_minor": price, "currency": "EUR"})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        c
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// Every ledger transaction sums to zero.
    pub async fn assert_ledger_balanced(&self) {
        let bad = user_svc::ledger::unbalanced_transactions(&self.db)
            .await
            .unwrap();
        assert!(bad.is_empty(), "unbalanced ledger transactions: {bad:?}");
        let total = self
            .count("SELECT CAST(COALESCE(SUM(amount_minor), 0) AS SIGNED) FROM ledger_entries")
            .await;
        assert_eq!(total, 0);
    }

    pub async fn entitlement(
        &self,
        user: Option<&str>,
        owner: &str,
        video: &str,
        policy: Value,
    ) -> Value {
        let (s, v) = self
            .post(
                "/internal/v1/entitlements/check",
                None,
                json!({"user_id": user, "owner_id": owner, "video_id": video, "policy": policy}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }
}

pub fn err_code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}
