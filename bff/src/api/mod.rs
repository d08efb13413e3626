//! The router: `/v1/...` (JSON), the web pages, and the layers every answer goes through.

pub mod auth;
pub mod screens;
pub mod studio;
pub mod uploads;
pub mod viewer;
pub mod websession;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderName, Method};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use chrono::TimeZone;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::middleware::{self as mw, Deprecation};
use crate::{web, AppState};

/// `GET /v1/videos/{id}/playback`: deprecated 2026-01-01, answers until 2026-12-31.
pub fn playback_deprecation() -> Deprecation {
    Deprecation {
        since: chrono::Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("valid date"),
        sunset: chrono::Utc
            .with_ymd_and_hms(2026, 12, 31, 0, 0, 0)
            .single()
            .expect("valid date"),
        successor: "/v1/videos/{id}",
    }
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<_> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::HEAD,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-csrf-token"),
            // tus uploads (tus-js-client, Uppy)
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-metadata"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            HeaderName::from_static("deprecation"),
            HeaderName::from_static("sunset"),
            header::LINK,
            header::LOCATION,
            HeaderName::from_static("tus-resumable"),
            HeaderName::from_static("tus-version"),
            HeaderName::from_static("tus-max-size"),
            HeaderName::from_static("tus-extension"),
            HeaderName::from_static("upload-offset"),
            HeaderName::from_static("upload-length"),
            HeaderName::from_static("upload-expires"),
        ])
        .max_age(Duration::from_secs(600))
}

async fn openapi_json(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        st.openapi.clone(),
    )
        .into_response()
}

#[allow(deprecated)] // routes the deprecated playback alias
pub fn router(state: AppState) -> Router {
    let auth_rl = from_fn_with_state(state.auth_limiter.clone(), mw::rate_limit);
    let money_rl = from_fn_with_state(state.purchase_limiter.clone(), mw::rate_limit);
    let max_body = state.config.max_body_bytes;
    Router::new()
        .route("/v1/auth/signup", post(auth::signup).layer(auth_rl.clone()))
        .route("/v1/auth/login", post(auth::login).layer(auth_rl.clone()))
        .route(
            "/v1/auth/refresh",
            post(auth::refresh).layer(auth_rl.clone()),
        )
        .route("/v1/auth/logout", post(auth::logout).layer(auth_rl.clone()))
        .route(
            "/v1/auth/web/signup",
            post(websession::signup).layer(auth_rl.clone()),
        )
        .route(
            "/v1/auth/web/login",
            post(websession::login).layer(auth_rl.clone()),
        )
        .route(
            "/v1/auth/web/refresh",
            post(websession::refresh).layer(auth_rl.clone()),
        )
        .route(
            "/v1/auth/web/logout",
            post(websession::logout).layer(auth_rl),
        )
        .route("/v1/me", get(auth::me).patch(auth::edit_me))
        .route("/v1/me/become-creator", post(auth::become_creator))
        .route("/v1/home", get(screens::home))
        .route("/v1/search", get(screens::search))
        .route("/v1/videos/{id}", get(screens::video_detail))
        .route("/v1/creators/{id}", get(screens::creator_page))
        .route("/v1/videos/{id}/views", post(screens::record_view))
        .route(
            "/v1/videos/{id}/playback",
            get(screens::playback).layer(from_fn_with_state(
                Arc::new(playback_deprecation()),
                mw::deprecated,
            )),
        )
        .route("/v1/studio/videos", get(studio::videos))
        .route(
            "/v1/studio/videos/{id}",
            get(studio::studio_video)
                .patch(studio::edit_video)
                .delete(studio::delete_video),
        )
        .route(
            "/v1/studio/videos/{id}/health",
            get(studio::broadcast_health),
        )
        .route(
            "/v1/studio/broadcast-defaults",
            get(studio::broadcast_defaults).put(studio::set_broadcast_defaults),
        )
        .route(
            "/v1/studio/stream-keys",
            get(studio::stream_keys).post(studio::create_stream_key),
        )
        .route(
            "/v1/studio/stream-keys/{id}",
            delete(studio::revoke_stream_key),
        )
        .route(
            "/v1/studio/stream-keys/{id}/rotate",
            post(studio::rotate_stream_key),
        )
        .route("/v1/studio/obs", get(studio::obs_settings))
        .route("/v1/studio/plan", get(studio::plan).put(studio::set_plan))
        .route("/v1/studio/subscribers", get(studio::subscribers))
        .route(
            "/v1/subscriptions",
            post(viewer::subscribe).layer(money_rl.clone()),
        )
        .route("/v1/subscriptions/{id}", delete(viewer::cancel))
        .route("/v1/me/subscriptions", get(viewer::my_subscriptions))
        .route("/v1/purchases", post(viewer::purchase).layer(money_rl))
        .route("/v1/me/purchases", get(viewer::my_purchases))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/", get(web::index))
        .route("/watch/{id}", get(web::watch))
        .route("/upload", get(web::upload))
        .route("/signin", get(web::signin))
        .route("/signup", get(web::signin))
        .route("/search", get(web::search))
        .route("/creators/{id}", get(web::creator))
        .route("/account", get(web::account))
        .route("/studio", get(web::studio))
        .route("/static/{*path}", get(web::static_file))
        .route("/vendor/hls.min.js", get(web::hls_js))
        .route("/healthz", get(|| async { "ok" }))
        .route_layer(from_fn_with_state("bff", service_kit::track_http))
        .fallback(service_kit::extract::no_route)
        .method_not_allowed_fallback(service_kit::extract::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(from_fn_with_state(max_body, mw::body_limit))
        // upload bodies are streamed and bounded by Upload-Length, not by max_body_bytes
        .merge(
            Router::new()
                .route(
                    "/v1/uploads",
                    post(uploads::create).options(uploads::options),
                )
                .route(
                    "/v1/uploads/{id}",
                    axum::routing::head(uploads::head)
                        .patch(uploads::patch)
                        .delete(uploads::terminate),
                )
                .route_layer(from_fn_with_state("bff", service_kit::track_http))
                .layer(DefaultBodyLimit::disable()),
        )
        .layer(cors(&state.config.cors_origins))
        .layer(from_fn(mw::request_context))
        .with_state(state)
}
