use axum::http::{Method, StatusCode};
use serde_json::json;
use sqlx::MySqlPool;

use crate::common::{err_code, unique, TestApp};

#[sqlx::test(migrations = "./migrations")]
async fn signup_then_me(db: MySqlPool) {
    let app = TestApp::new(db);
    let email = format!("{}@Example.COM", unique("Alice"));
    let (s, v) = app
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": email, "password": "correct horse", "display_name": " Alice "}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["user"]["role"], "viewer");
    assert_eq!(v["user"]["display_name"], "Alice");
    assert_eq!(v["user"]["email"], email.to_lowercase());
    assert!(v["refresh_token"].as_str().unwrap().starts_with("rt_"));
    let token = v["access_token"].as_str().unwrap();

    let (s, me) = app.get("/v1/me", Some(token)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me, v["user"]);

    // argon2id, never the password; refresh token stored hashed
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains("correct horse"));
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_ne!(stored, v["refresh_token"].as_str().unwrap());
    assert_eq!(stored.len(), 64);
}

#[sqlx::test(migrations = "./migrations")]
async fn email_is_unique_case_insensitively(db: MySqlPool) {
    let app = TestApp::new(db);
    let u = app.signup("bob").await;
    let (s, v) = app
        .post(
            "/v1/auth/signup",
            None,
            json!({"email": u.email.to_uppercase(), "password": "another pass", "display_name": "Bob 2"}),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(err_code(&v), "email_taken");
}

#[sqlx::test(migrations = "./migrations")]
async fn signup_validates_fields(db: MySqlPool) {
    let app = TestApp::new(db);
    for (body, field) in [
        (
            json!({"email": "no-at-sign", "password": "correct horse", "display_name": "x"}),
            "email",
        ),
        (
            json!({"email": "a@b.c", "password": "short", "display_name": "x"}),
            "password",
        ),
        (
            json!({"email": "a@b.c", "password": "correct horse", "display_name": "  "}),
            "display_name",
        ),
    ] {
        let (s, v) = app.post("/v1/auth/signup", None, body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(err_code(&v), "invalid_field");
        assert_eq!(v["error"]["field"], field);
    }
    // a body that is not the expected JSON answers the same error shape
    let (s, v) = app.post("/v1/auth/signup", None, json!({"email": 3})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(err_code(&v), "invalid_field");
    assert_eq!(v["error"]["field"], "body");
}

#[sqlx::test(migrations = "./migrations")]
async fn login_checks_the_password(db: MySqlPool) {
    let app = TestApp::new(db);
    let u = app.signup("carol").await;
    let (s, v) = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": u.email, "password": "correct horse"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user"]["id"], u.id.as_str());
    assert!(v["access_token"].is_string());

    let (s, v) = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": u.email, "password": "wrong horse"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(err_code(&v), "invalid_credentials");

    let (s, v) = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": "nobody@example.com", "password": "whatever1"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        err_code(&v),
        "invalid_credentials",
        "unknown accounts look like wrong passwords"
    );
}

#[sqlx::test(migrations = "./migrations")]
async fn refresh_rotates_and_logout_revokes(db: MySqlPool) {
    let app = TestApp::new(db);
    let u = app.signup("dave").await;
    let (s, v) = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": u.refresh}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let second = v["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(second, u.refresh);
    let (s, _) = app.get("/v1/me", v["access_token"].as_str()).await;
    assert_eq!(s, StatusCode::OK);

    // a refresh token works once
    let (s, v) = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": u.refresh}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(err_code(&v), "unauthorized");

    let (s, _) = app
        .post("/v1/auth/logout", None, json!({"refresh_token": second}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app
        .post("/v1/auth/logout", None, json!({"refresh_token": second}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "log-out is idempotent");
    let (s, _) = app
        .post("/v1/auth/refresh", None, json!({"refresh_token": second}))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "./migrations")]
async fn expired_refresh_token_is_refused(db: MySqlPool) {
    let app = TestApp::new(db);
    let u = app.signup("erin").await;
    sqlx::query("UPDATE refresh_tokens SET expires_at = NOW(6) - INTERVAL 1 SECOND")
        .execute(&app.db)
        .await
        .unwrap();
    let (s, _) = app
        .post(
            "/v1/auth/refresh",
            None,
            json!({"refresh_token": u.refresh}),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrations = "./migrations")]
async fn authenticated_routes_need_a_valid_token(db: MySqlPool) {
    let app = TestApp::new(db.clone());
    let (s, v) = app.get("/v1/me", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(err_code(&v), "unauthorized");
    let (s, _) = app.get("/v1/me", Some("not-a-jwt")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // a token signed with another secret
    let other = TestApp::new(db);
    let u = other.signup("frank").await;
    let (s, _) = app.get("/v1/me", Some(&u.token)).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = other.get("/v1/me", Some(&u.token)).await;
    assert_eq!(s, StatusCode::OK);
}

#[sqlx::test(migrations = "./migrations")]
async fn patch_me_and_become_creator(db: MySqlPool) {
    let app = TestApp::new(db);
    let u = app.signup("gina").await;
    let t = Some(u.token.as_str());
    let (s, v) = app
        .request(
            Method::PATCH,
            "/v1/me",
            t,
            &[],
            Some(json!({"display_name": "Gina G", "avatar_url": "https://img.example.com/g.png"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["display_name"], "Gina G");
    assert_eq!(v["avatar_url"], "https://img.example.com/g.png");

    // absent leaves it, null clears it
    let (_, v) = app
        .request(
            Method::PATCH,
            "/v1/me",
            t,
            &[],
            Some(json!({"display_name": "Gina"})),
        )
        .await;
    assert_eq!(v["avatar_url"], "https://img.example.com/g.png");
    let (_, v) = app
        .request(
            Method::PATCH,
            "/v1/me",
            t,
            &[],
            Some(json!({"avatar_url": null})),
        )
        .await;
    assert!(v["avatar_url"].is_null());
    assert_eq!(v["display_name"], "Gina");

    let (s, v) = app
        .request(
            Method::PATCH,
            "/v1/me",
            t,
            &[],
            Some(json!({"avatar_url": "javascript:alert(1)"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["error"]["field"], "avatar_url");

    let (s, v) = app.post("/v1/me/become-creator", t, json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["role"], "creator");
    let (_, v) = app.post("/v1/me/become-creator", t, json!({})).await;
    assert_eq!(v["role"], "creator", "idempotent");
}

#[sqlx::test(migrations = "./migrations")]
async fn login_is_rate_limited_per_account(db: MySqlPool) {
    let app = TestApp::with_config(db, |c| {
        c.rate_limit.login_account_burst = 3;
        c.rate_limit.login_account_per_minute = 1;
    });
    let u = app.signup("hank").await;
    for i in 0..3 {
        // every attempt from a different address: only the account bucket applies
        let addr = format!("10.0.0.{i}");
        let (s, _) = app
            .request(
                Method::POST,
                "/v1/auth/login",
                None,
                &[("x-forwarded-for", &addr)],
                Some(json!({"email": u.email, "password": "wrong horse"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, v) = app
        .request(
            Method::POST,
            "/v1/auth/login",
            None,
            &[("x-forwarded-for", "10.0.0.99")],
            Some(json!({"email": u.email.to_uppercase(), "password": "correct horse"})),
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(err_code(&v), "rate_limited");
}

#[sqlx::test(migrations = "./migrations")]
async fn only_failed_logins_count_against_an_account(db: MySqlPool) {
    let app = TestApp::with_config(db, |c| {
        c.rate_limit.login_account_burst = 2;
        c.rate_limit.login_account_per_minute = 0;
    });
    let u = app.signup("ivy").await;
    for i in 0..6 {
        let addr = format!("10.0.1.{i}");
        let (s, v) = app
            .request(
                Method::POST,
                "/v1/auth/login",
                None,
                &[("x-forwarded-for", &addr)],
                Some(json!({"email": u.email, "password": "correct horse"})),
            )
            .await;
        assert_eq!(
            s,
            StatusCode::OK,
            "successful log-in {i} costs nothing: {v}"
        );
    }
    for expect in [
        StatusCode::UNAUTHORIZED,
        StatusCode::UNAUTHORIZED,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let (s, _) = app
            .post(
                "/v1/auth/login",
                None,
                json!({"email": u.email, "password": "wrong horse"}),
            )
            .await;
        assert_eq!(s, expect);
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn signups_are_limited_per_address(db: MySqlPool) {
    let app = TestApp::with_config(db, |c| {
        c.rate_limit.signup_address_burst = 2;
        c.rate_limit.signup_address_per_minute = 0;
    });
    let signup = |i: u32, addr: &'static str| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/v1/auth/signup",
                None,
                &[("x-forwarded-for", addr)],
                Some(json!({"email": format!("s{i}@example.com"), "password": "correct horse", "display_name": "S"})),
            )
            .await
        }
    };
    assert_eq!(
        signup(1, "6.6.6.1, 198.51.100.1").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        signup(2, "6.6.6.2, 198.51.100.1").await.0,
        StatusCode::CREATED
    );
    // a forged entry on the left changes nothing
    let (s, v) = signup(3, "6.6.6.3, 198.51.100.1").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(signup(4, "198.51.100.2").await.0, StatusCode::CREATED);
}

#[sqlx::test(migrations = "./migrations")]
async fn a_reused_refresh_token_revokes_its_family(db: MySqlPool) {
    let app = TestApp::new(db);
    let u = app.signup("jack").await;
    // a second log-in: another family, untouched by what happens to the first
    let (s, other) = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": u.email, "password": "correct horse"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let refresh = |t: String| {
        let app = &app;
        async move {
            app.post("/v1/auth/refresh", None, json!({"refresh_token": t}))
                .await
        }
    };
    let (s, v) = refresh(u.refresh.clone()).await;
    assert_eq!(s, StatusCode::OK);
    let second = v["refresh_token"].as_str().unwrap().to_string();
    let (s, v) = refresh(second.clone()).await;
    assert_eq!(s, StatusCode::OK);
    let third = v["refresh_token"].as_str().unwrap().to_string();
    // the first token again (a stolen copy): refused, and the family with it
    let (s, _) = refresh(u.refresh.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = refresh(third).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "the family's newest token is revoked too"
    );
    let (s, _) = refresh(other["refresh_token"].as_str().unwrap().to_string()).await;
    assert_eq!(s, StatusCode::OK, "another log-in is not affected");
}

#[sqlx::test(migrations = "./migrations")]
async fn login_is_rate_limited_per_address(db: MySqlPool) {
    let app = TestApp::with_config(db, |c| {
        c.rate_limit.login_address_burst = 4;
        c.rate_limit.login_address_per_minute = 1;
    });
    for i in 0..4 {
        let (s, _) = app
            .request(
                Method::POST,
                "/v1/auth/login",
                None,
                // whatever the client writes on the left, bff's entry is the last
                &[("x-forwarded-for", &format!("203.0.113.{i}, 192.0.2.7"))],
                Some(json!({"email": format!("user{i}@example.com"), "password": "whatever1"})),
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let req = app
        .router
        .clone()
        .oneshot_login(
            "192.0.2.7",
            json!({"email": "user9@example.com", "password": "whatever1"}),
        )
        .await;
    assert_eq!(req.0, StatusCode::TOO_MANY_REQUESTS);
    assert!(req.1.is_some(), "Retry-After is set");
    // another address is not limited
    let (s, _) = app
        .request(
            Method::POST,
            "/v1/auth/login",
            None,
            &[("x-forwarded-for", "192.0.2.8")],
            Some(json!({"email": "user9@example.com", "password": "whatever1"})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

trait OneshotLogin {
    async fn oneshot_login(
        self,
        addr: &str,
        body: serde_json::Value,
    ) -> (StatusCode, Option<String>);
}

impl OneshotLogin for axum::Router {
    async fn oneshot_login(
        self,
        addr: &str,
        body: serde_json::Value,
    ) -> (StatusCode, Option<String>) {
        use tower::ServiceExt as _;
        let req = axum::http::Request::post("/v1/auth/login")
            .header("content-type", "application/json")
            .header("x-forwarded-for", addr)
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let resp = self.oneshot(req).await.unwrap();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        (resp.status(), retry)
    }
}

#[sqlx::test(migrations = "./migrations")]
async fn unknown_routes_answer_json(db: MySqlPool) {
    let app = TestApp::new(db);
    let (s, v) = app.get("/v1/nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(err_code(&v), "not_found");
    let (s, v) = app.get("/v1/auth/login", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(err_code(&v), "method_not_allowed");
    let (s, v) = app.get("/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, "ok");
}
