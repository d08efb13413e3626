//! The internal HTTP API under `/internal/v1` (callers: bff, ingest, transcoder).
//!
//! Bodies are read field by field so that a wrong field answers 400 `invalid_field` naming
//! it; every error uses the shared JSON shape of [`service_kit::error::ApiError`].

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use service_clients::metadata::{NewVideo, StatusChange, VideoKind, VideoStatus, Visibility};

use crate::cache::{Change, Space};
use crate::error::Error;
use crate::model::{self, StatusUpdate, VideoDoc, VideoPatch, VideoView};
use crate::repo::{CleanupTask, CounterKind, Cursor, ListFilter};
use crate::search::{self, ParsedQuery};
use crate::AppState;

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
const MAX_BODY_BYTES: usize = 256 * 1024;
const TRENDING_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The API router (without state).
pub fn router() -> Router<AppState> {
    let v1 = Router::new()
        .route("/videos", post(create_video).get(list_videos))
        .route("/videos/live", get(live_videos))
        .route("/videos/recent", get(recent_videos))
        .route("/videos/trending", get(trending))
        .route(
            "/videos/{id}",
            get(get_video).patch(patch_video).delete(delete_video),
        )
        .route("/videos/{id}/status", post(change_status))
        .route("/videos/{id}/views", post(add_view))
        .route("/videos/{id}/likes", post(add_like))
        .route("/creators/{owner}/videos", get(creator_videos))
        .route("/search", get(search_videos))
        .route("/cleanup", get(pending_cleanup))
        .route("/cleanup/{id}/done", post(complete_cleanup));
    Router::new()
        .nest("/internal/v1", v1)
        .route("/healthz", get(|| async { "ok" }))
        .fallback(service_kit::extract::no_route)
        .method_not_allowed_fallback(service_kit::extract::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            "metadata",
            service_kit::track_http,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

// ---------------------------------------------------------------------------------------------
// request and response helpers

type ApiResult = Result<Response, Error>;

fn json_bytes(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn encode<T: Serialize>(v: &T) -> Result<Bytes, Error> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| Error::Database(format!("encoding an answer: {e}")))
}

/// A JSON object body, taken apart one field at a time.
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(body: &[u8]) -> Result<Self, Error> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Fields(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(m)) => Ok(Fields(m)),
            Ok(_) => Err(Error::invalid("body", "must be a JSON object")),
            Err(e) => Err(Error::invalid("body", format!("is not valid JSON: {e}"))),
        }
    }

    /// Absent or `null` is `None`.
    fn opt<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, Error> {
        match self.0.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| Error::invalid(name, e.to_string())),
        }
    }

    fn req<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, Error> {
        self.opt(name)?
            .ok_or_else(|| Error::invalid(name, "is required"))
    }

    /// Absent is `None`, `null` is `Some(None)`.
    fn nullable<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<Option<T>>, Error> {
        match self.0.remove(name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => serde_json::from_value(v)
                .map(|t| Some(Some(t)))
                .map_err(|e| Error::invalid(name, e.to_string())),
        }
    }

    fn deny_others(self, what: &str) -> Result<(), Error> {
        match self.0.keys().next() {
            Some(k) => Err(Error::invalid(
                k.as_str(),
                format!("cannot be set by {what}"),
            )),
            None => Ok(()),
        }
    }
}

/// Query parameters, each at most once, none unknown.
struct Params(Vec<(String, String)>);

impl Params {
    fn new(q: Result<Query<Vec<(String, String)>>, QueryRejection>) -> Result<Self, Error> {
        let Query(pairs) = q.map_err(|e| Error::invalid("query", e.body_text()))?;
        Ok(Params(pairs))
    }

    fn take(&mut self, name: &str) -> Result<Option<String>, Error> {
        let mut found: Option<String> = None;
        let mut dup = false;
        self.0.retain(|(k, v)| {
            if k == name {
                dup |= found.is_some();
                found = Some(v.clone());
                false
            } else {
                true
            }
        });
        if dup {
            return Err(Error::invalid(name, "given more than once"));
        }
        Ok(found.filter(|v| !v.is_empty()))
    }

    fn take_enum<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>, Error> {
        self.take(name)?.map(|v| parse_enum(name, &v)).transpose()
    }

    fn limit(&mut self) -> Result<usize, Error> {
        match self.take("limit")? {
            None => Ok(DEFAULT_LIMIT),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(Error::invalid(
                    "limit",
                    format!("must be a number from 1 to {MAX_LIMIT}"),
                )),
            },
        }
    }

    fn cursor(&mut self) -> Result<Option<Cursor>, Error> {
        self.take("cursor")?.map(|c| Cursor::decode(&c)).transpose()
    }

    fn finish(self) -> Result<(), Error> {
        match self.0.first() {
            Some((k, _)) => Err(Error::invalid(
                k.as_str(),
                "is not a parameter of this route",
            )),
            None => Ok(()),
        }
    }
}

fn parse_enum<T: DeserializeOwned>(name: &str, v: &str) -> Result<T, Error> {
    serde_json::from_value(Value::String(v.to_string()))
        .map_err(|e| Error::invalid(name, e.to_string()))
}

#[derive(Serialize)]
struct ListAnswer {
    items: Vec<VideoView>,
    next_cursor: Option<String>,
}

fn view_of(doc: &VideoDoc) -> VideoView {
    doc.view()
}

// ---------------------------------------------------------------------------------------------
// videos

async fn create_video(State(st): State<AppState>, body: Bytes) -> ApiResult {
    let mut f = Fields::parse(&body)?;
    let new = NewVideo {
        id: f.opt("id")?,
        owner_id: f.req("owner_id")?,
        kind: f.req("kind")?,
        title: f.req("title")?,
        description: f.opt("description")?.unwrap_or_default(),
        tags: f.opt("tags")?.unwrap_or_default(),
        visibility: f.opt("visibility")?.unwrap_or_default(),
        access: f.opt("access")?.unwrap_or_default(),
        status: f.opt("status")?,
        started_at: f.opt("started_at")?,
        renditions: f.opt("renditions")?.unwrap_or_default(),
        playback: f.opt("playback")?.unwrap_or_default(),
    };
    let doc = model::new_document(&new, model::now())?;
    let created = st.repo.create(doc).await?;
    let v = &created.video;
    if created.inserted {
        st.changed(&v.id, Change::Catalog).await;
        tracing::info!(video_id = %v.id, owner_id = %v.owner_id, kind = model::kind_name(v.kind), "video created");
    } else {
        tracing::info!(video_id = %v.id, "video create repeated; answering the stored video");
    }
    let status = if created.inserted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_bytes(status, encode(&v.view())?))
}

async fn get_video(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let repo = st.repo.clone();
    let owned = id.clone();
    let body = st
        .cache
        .get_or_fetch(Space::Video, &id, move || async move {
            let doc = repo.get(&owned).await?.ok_or(Error::NotFound(owned))?;
            encode(&doc.view())
        })
        .await?;
    Ok(json_bytes(StatusCode::OK, body))
}

async fn change_status(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut f = Fields::parse(&body)?;
    let update = StatusUpdate {
        change: StatusChange {
            status: f.opt("status")?,
            at: f.opt("at")?,
            duration_secs: f.opt("duration_secs")?,
            renditions: f.opt("renditions")?,
            playback: f.opt("playback")?,
            failure: f.opt("failure")?,
            poster: None,
            storyboard: f.opt("storyboard")?,
            progress: f.opt("progress")?,
        },
        poster: f.opt("poster")?,
        thumbnails: f.opt("thumbnails")?,
    };
    update.validate()?;
    let result = st.repo.change_status(&id, &update, model::now()).await;
    st.changed(&id, Change::Catalog).await;
    let doc = result?;
    tracing::info!(
        video_id = %id,
        status = model::status_name(doc.status),
        version = doc.version,
        "video status updated"
    );
    Ok(json_bytes(StatusCode::OK, encode(&doc.view())?))
}

async fn patch_video(State(st): State<AppState>, Path(id): Path<String>, body: Bytes) -> ApiResult {
    let mut f = Fields::parse(&body)?;
    let expected_version: i64 = f.req("expected_version")?;
    let patch = VideoPatch {
        title: f.opt("title")?,
        description: f
            .nullable::<String>("description")?
            .map(Option::unwrap_or_default),
        tags: f
            .nullable::<Vec<String>>("tags")?
            .map(Option::unwrap_or_default),
        visibility: f.opt("visibility")?,
        access: f.opt("access")?,
        poster: f.nullable("poster")?,
        thumbnails: f
            .nullable::<Vec<String>>("thumbnails")?
            .map(Option::unwrap_or_default),
    };
    f.deny_others("an edit")?;
    if patch.is_empty() {
        return Err(Error::invalid("body", "nothing to change"));
    }
    let patch = patch.cleaned()?;
    let result = st
        .repo
        .update(&id, expected_version, &patch, model::now())
        .await;
    st.changed(&id, Change::Catalog).await;
    let doc = result?;
    tracing::info!(video_id = %id, version = doc.version, "video edited");
    Ok(json_bytes(StatusCode::OK, encode(&doc.view())?))
}

async fn delete_video(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let mut p = Params::new(q)?;
    let expected = p
        .take("expected_version")?
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| Error::invalid("expected_version", "must be an integer"))
        })
        .transpose()?;
    p.finish()?;
    let result = st.repo.soft_delete(&id, expected, model::now()).await;
    st.changed(&id, Change::Catalog).await;
    result?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn add_view(st: State<AppState>, id: Path<String>) -> ApiResult {
    increment(st, id, CounterKind::Views).await
}

async fn add_like(st: State<AppState>, id: Path<String>) -> ApiResult {
    increment(st, id, CounterKind::Likes).await
}

async fn increment(
    State(st): State<AppState>,
    Path(id): Path<String>,
    counter: CounterKind,
) -> ApiResult {
    let result = st.repo.increment(&id, counter, model::now()).await;
    st.changed(&id, Change::Counters).await;
    Ok(json_bytes(StatusCode::OK, encode(&result?)?))
}

// ---------------------------------------------------------------------------------------------
// lists

/// Serves one list page through the cache.
async fn list_page(
    st: &AppState,
    filter: ListFilter,
    cursor: Option<Cursor>,
    limit: usize,
) -> ApiResult {
    let key = format!(
        "list|{filter:?}|{}|{limit}",
        cursor.as_ref().map(Cursor::encode).unwrap_or_default()
    );
    let repo = st.repo.clone();
    let body = st
        .cache
        .get_or_fetch(Space::List, &key, move || async move {
            let page = repo
                .list(&filter, cursor.as_ref().map(Cursor::as_list), limit)
                .await?;
            encode(&ListAnswer {
                items: page.items.iter().map(view_of).collect(),
                next_cursor: page.next.as_ref().map(Cursor::encode),
            })
        })
        .await?;
    Ok(json_bytes(StatusCode::OK, body))
}

fn parse_statuses(v: &str) -> Result<Vec<VideoStatus>, Error> {
    let mut out: Vec<VideoStatus> = Vec::new();
    for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let st: VideoStatus = parse_enum("status", s)?;
        if !out.contains(&st) {
            out.push(st);
        }
    }
    Ok(out)
}

/// The filter parameters shared by `GET /videos` and `GET /creators/{owner}/videos`.
fn take_filter(p: &mut Params, owner: Option<String>) -> Result<ListFilter, Error> {
    let owner_id = match owner {
        Some(o) => Some(o),
        None => p.take("owner")?,
    };
    if let Some(o) = &owner_id {
        model::validate_owner("owner", o)?;
    }
    let statuses = p
        .take("status")?
        .map(|s| parse_statuses(&s))
        .transpose()?
        .unwrap_or_default();
    let kind: Option<VideoKind> = p.take_enum("kind")?;
    let tag = p
        .take("tag")?
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty());
    let visibility: Option<Visibility> = p.take_enum("visibility")?;
    Ok(ListFilter {
        owner_id,
        statuses,
        kind,
        tag,
        visibility,
    })
}

async fn list_videos(
    State(st): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let mut p = Params::new(q)?;
    let filter = take_filter(&mut p, None)?;
    let (limit, cursor) = (p.limit()?, p.cursor()?);
    p.finish()?;
    list_page(&st, filter, cursor, limit).await
}

async fn creator_videos(
    State(st): State<AppState>,
    Path(owner): Path<String>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    model::validate_owner("owner", &owner)?;
    let mut p = Params::new(q)?;
    let filter = take_filter(&mut p, Some(owner))?;
    let (limit, cursor) = (p.limit()?, p.cursor()?);
    p.finish()?;
    list_page(&st, filter, cursor, limit).await
}

/// Public broadcasts on air now, latest started first.
async fn live_videos(
    State(st): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let mut p = Params::new(q)?;
    let (limit, cursor) = (p.limit()?, p.cursor()?);
    p.finish()?;
    let filter = ListFilter {
        statuses: vec![VideoStatus::Live],
        kind: Some(VideoKind::Live),
        visibility: Some(Visibility::Public),
        ..Default::default()
    };
    list_page(&st, filter, cursor, limit).await
}

/// Public watchable videos, latest published first.
async fn recent_videos(
    State(st): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let mut p = Params::new(q)?;
    let (limit, cursor) = (p.limit()?, p.cursor()?);
    p.finish()?;
    let filter = ListFilter {
        statuses: model::WATCHABLE.to_vec(),
        visibility: Some(Visibility::Public),
        ..Default::default()
    };
    list_page(&st, filter, cursor, limit).await
}

async fn search_videos(
    State(st): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let mut p = Params::new(q)?;
    let text = p
        .take("q")?
        .ok_or_else(|| Error::invalid("q", "is required"))?;
    let (limit, cursor) = (p.limit()?, p.cursor()?);
    p.finish()?;
    let query = ParsedQuery::parse(&text)?;
    let key = format!(
        "search|{:?}|{}|{limit}",
        query.keywords,
        cursor.as_ref().map(Cursor::encode).unwrap_or_default()
    );
    let repo = st.repo.clone();
    let body = st
        .cache
        .get_or_fetch(Space::List, &key, move || async move {
            let candidates = repo
                .search_candidates(&query.keywords, search::MAX_CANDIDATES)
                .await?;
            let (items, next) = search::rank(&query, candidates, cursor.as_ref(), limit);
            encode(&ListAnswer {
                items: items.iter().map(view_of).collect(),
                next_cursor: next.as_ref().map(Cursor::encode),
            })
        })
        .await?;
    Ok(json_bytes(StatusCode::OK, body))
}

#[derive(Serialize)]
struct TrendingItem {
    video: VideoView,
    views: i64,
    likes: i64,
}

#[derive(Serialize)]
struct TrendingAnswer {
    window_hours: u64,
    items: Vec<TrendingItem>,
}

/// Most viewed public videos over the last 24 hours (hourly buckets).
async fn trending(
    State(st): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let mut p = Params::new(q)?;
    let limit = p.limit()?;
    p.finish()?;
    let key = format!("trending|{limit}");
    let repo = st.repo.clone();
    let body = st
        .cache
        .get_or_fetch(Space::List, &key, move || async move {
            let since = mongodb::bson::DateTime::from_millis(
                model::now().timestamp_millis() - TRENDING_WINDOW.as_millis() as i64,
            );
            let entries = repo.trending(since, limit).await?;
            encode(&TrendingAnswer {
                window_hours: TRENDING_WINDOW.as_secs() / 3600,
                items: entries
                    .into_iter()
                    .map(|e| TrendingItem {
                        video: e.video.view(),
                        views: e.views,
                        likes: e.likes,
                    })
                    .collect(),
            })
        })
        .await?;
    Ok(json_bytes(StatusCode::OK, body))
}

// ---------------------------------------------------------------------------------------------
// storage cleanup of deleted videos (for the object cleanup job)

#[derive(Serialize)]
struct CleanupAnswer {
    items: Vec<CleanupTask>,
}

async fn pending_cleanup(
    State(st): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ApiResult {
    let mut p = Params::new(q)?;
    let limit = p.limit()?;
    p.finish()?;
    let items = st.repo.pending_cleanup(limit).await?;
    Ok(json_bytes(
        StatusCode::OK,
        encode(&CleanupAnswer { items })?,
    ))
}

async fn complete_cleanup(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult {
    if st.repo.complete_cleanup(&id).await? {
        tracing::info!(video_id = %id, "storage cleanup done");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::NotFound(id))
    }
}
