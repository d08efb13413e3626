//! The web pages' static files: `/` (index.html), `/watch/{id}` (watch.html; the page reads
//! the id from its URL), `/upload` (upload.html), `/signin` and `/signup` (signin.html),
//! `/search` (search.html), `/creators/{id}` (creator.html), `/account` (account.html),
//! `/studio` (studio.html), `/static/*` (web_dir/static) and `/vendor/hls.min.js`. A missing file
//! is a 404 with the JSON error, never a panic.

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::error::Error;
use crate::extract::AppPath;
use crate::AppState;

async fn serve(path: PathBuf, req: Request, content_type: Option<&'static str>) -> Response {
    // a folder would make ServeFile send headers and then fail reading the body
    if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
        tracing::debug!(path = %path.display(), "static file missing");
        return Error::NotFound("file").into_response();
    }
    // ServeFile answers conditional and range requests; its error type is Infallible
    let resp = match ServeFile::new(&path).oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if resp.status() == StatusCode::NOT_FOUND {
        tracing::debug!(path = %path.display(), "static file missing");
        return Error::NotFound("file").into_response();
    }
    let mut resp = resp.map(Body::new);
    if let Some(ct) = content_type {
        if resp.status().is_success() {
            resp.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
    }
    resp
}

pub async fn index(State(st): State<AppState>, req: Request) -> Response {
    serve(st.config.web_dir.join("index.html"), req, None).await
}

pub async fn watch(State(st): State<AppState>, req: Request) -> Response {
    serve(st.config.web_dir.join("watch.html"), req, None).await
}

/// The creators' upload page (sign in, pick a file, tus upload, processing progress).
pub async fn upload(State(st): State<AppState>, req: Request) -> Response {
    serve(st.config.web_dir.join("upload.html"), req, None).await
}

/// Sign-in and sign-up (one page; `/signup` opens it on the sign-up form).
pub async fn signin(State(st): State<AppState>, req: Request) -> Response {
    serve(st.config.web_dir.join("signin.html"), req, None).await
}

/// Search results (`/search?q=...`).
pub async fn search(State(st): State<AppState>, req: Request) -> Response {
    serve(st.config.web_dir.join("search.html"), req, None).await
}

/// A creator's page (`/creators/{id}`; the page reads the id from its URL).
pub async fn creator(State(st): State<AppState>, req: Request) -> Response {
    serve(st.config.web_dir.join("creator.html"), req, None).await
}

/// The signed-in viewer's account: subscriptions and purchases.
pub async fn account(State(st): State<AppState>, req: Request) -> Response {
    serve(st.config.web_dir.join("account.html"), req, None).await
}

/// The creator studio.
pub async fn studio(State(st): State<AppState>, req: Request) -> Response {
    serve(st.config.web_dir.join("studio.html"), req, None).await
}

pub async fn hls_js(State(st): State<AppState>, req: Request) -> Response {
    serve(
        st.config.hls_js_path.clone(),
        req,
        Some("application/javascript"),
    )
    .await
}

/// A relative path of plain names only (no `..`, no root, no hidden files).
fn safe_relative(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) if !n.to_string_lossy().starts_with('.') => out.push(n),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

pub async fn static_file(
    State(st): State<AppState>,
    AppPath(rest): AppPath<String>,
    req: Request,
) -> Response {
    match safe_relative(&rest) {
        Some(rel) => serve(st.config.web_dir.join("static").join(rel), req, None).await,
        None => Error::NotFound("file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths() {
        assert_eq!(safe_relative("app.js"), Some(PathBuf::from("app.js")));
        assert_eq!(
            safe_relative("css/site.css"),
            Some(PathBuf::from("css/site.css"))
        );
        assert_eq!(safe_relative("../secret"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_relative("a/../../b"), None);
        assert_eq!(safe_relative(".env"), None);
        assert_eq!(safe_relative(""), None);
    }
}
