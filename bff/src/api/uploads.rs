//! Resumable uploads, tus 1.0 (core, creation, termination, expiration).
//!
//! `POST /v1/uploads` (`Upload-Length`, `Upload-Metadata: title <base64>,...`) makes an
//! upload video in metadata-svc and answers its URL, `/v1/uploads/{video id}`. `PATCH` sends
//! bytes from `Upload-Offset`; `HEAD` says how many are stored; `DELETE` drops the upload.
//!
//! The file goes to object storage as a multipart write of `uploads/{id}/source` and never
//! sits whole in memory: a PATCH body is read frame by frame into one buffer of at most
//! `part_bytes`, which is stored as a part whenever it fills. What is left when the body ends
//! (or the connection drops) is stored as `uploads/{id}/tail` and taken up by the next PATCH,
//! so a dropped connection resumes from the last byte received. The upload's state is a JSON
//! object beside it (`uploads/{id}/state.json`), so any bff instance can continue it.
//!
//! When the last byte is stored the parts become `uploads/{id}/source`, the video becomes
//! `processing` and a transcode job is queued (NATS JetStream). A sweeper queues jobs whose
//! enqueue failed and drops uploads untouched for `expire_secs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use service_clients::metadata::{
    MetadataClient, NewVideo, StatusChange, VideoKind, VideoStatus, Visibility,
};
use storage::{DynStore, ObjectMeta, Part};

use crate::config::UploadConfig;
use crate::error::{Error, Result};
use crate::extract::{AppPath, Bearer};
use crate::model::Role;
use crate::AppState;

use super::screens::valid_video_id;

const TUS_VERSION: &str = "1.0.0";
static TUS_RESUMABLE: HeaderName = HeaderName::from_static("tus-resumable");
static UPLOAD_OFFSET: HeaderName = HeaderName::from_static("upload-offset");
static UPLOAD_LENGTH: HeaderName = HeaderName::from_static("upload-length");
static UPLOAD_EXPIRES: HeaderName = HeaderName::from_static("upload-expires");

/// What a transcode worker is asked to do (the job's payload on the queue).
pub use service_clients::jobs::TranscodeJob;

/// Everything uploads need; absent when no job queue is configured.
pub struct Uploads {
    pub cfg: UploadConfig,
    pub store: DynStore,
    pub queue: tokio::sync::OnceCell<jobs::Queue>,
    pub catalog: MetadataClient,
    /// Uploads with a PATCH in progress in this instance.
    busy: Mutex<HashMap<String, ()>>,
}

/// `uploads/{id}/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadState {
    video_id: String,
    owner_id: String,
    length: u64,
    /// The multipart write of `uploads/{id}/source`.
    multipart: String,
    parts: Vec<Part>,
    /// Bytes in the tail object, after the parts.
    tail: u64,
    /// The tail object: `uploads/{id}/tail-<uuid>`, a new key for every write, so that a
    /// receiver working from an older state never overwrites the tail a newer state names
    /// (absent: `uploads/{id}/tail`, as first written).
    #[serde(default)]
    tail_object: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// `source` is whole.
    complete: bool,
    /// The transcode job is on the queue.
    queued: bool,
}

impl UploadState {
    fn offset(&self) -> u64 {
        self.parts.iter().map(|p| p.size).sum::<u64>() + self.tail
    }
}

fn state_key(id: &str) -> String {
    format!("uploads/{id}/state.json")
}
fn tail_key(id: &str) -> String {
    format!("uploads/{id}/tail")
}

impl UploadState {
    fn tail_object(&self) -> String {
        self.tail_object
            .clone()
            .unwrap_or_else(|| tail_key(&self.video_id))
    }
}
pub fn source_key(id: &str) -> String {
    format!("uploads/{id}/source")
}

fn private_meta(content_type: &str) -> ObjectMeta {
    ObjectMeta {
        content_type: content_type.into(),
        cache_control: "private, no-store".into(),
    }
}

impl Uploads {
    pub fn new(cfg: UploadConfig, store: DynStore, catalog: MetadataClient) -> Arc<Self> {
        Arc::new(Self {
            cfg,
            store,
            queue: tokio::sync::OnceCell::new(),
            catalog,
            busy: Mutex::new(HashMap::new()),
        })
    }

    async fn load(&self, id: &str) -> Result<Option<UploadState>> {
        match self.store.get(&state_key(id)).await {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Internal(format!("upload state of {id}: {e}"))),
            Err(storage::StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(storage_unavailable(e)),
        }
    }

    async fn save(&self, st: &mut UploadState) -> Result<()> {
        st.updated_at = Utc::now();
        let body = serde_json::to_vec(st).map_err(|e| Error::Internal(e.to_string()))?;
        self.store
            .put(
                &state_key(&st.video_id),
                Bytes::from(body),
                &private_meta("application/json"),
            )
            .await
            .map_err(storage_unavailable)
    }

    fn expires(&self, st: &UploadState) -> DateTime<Utc> {
        st.updated_at + chrono::Duration::seconds(self.cfg.expire_secs as i64)
    }

    /// Marks the video `processing` and queues the transcode job of a complete upload
    /// (again, if it was queued before: the job id dedups, and `processing` may repeat), so a
    /// worker never meets a video still `uploading`.
    async fn enqueue(&self, st: &mut UploadState) -> Result<()> {
        let Some(queue) = self.queue.get() else {
            return Err(Error::Unavailable("job queue"));
        };
        self.catalog
            .change_status(
                &st.video_id,
                &StatusChange {
                    status: Some(VideoStatus::Processing),
                    at: Some(Utc::now()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                tracing::warn!(video_id = %st.video_id, error = %e, "status processing not recorded");
                Error::Unavailable("metadata-svc")
            })?;
        let job = TranscodeJob {
            video_id: st.video_id.clone(),
            source_key: source_key(&st.video_id),
        };
        queue
            .enqueue(TranscodeJob::KIND, &st.video_id, &job)
            .await
            .map_err(|e| {
                tracing::warn!(video_id = %st.video_id, error = %e, "transcode job not queued yet");
                Error::Unavailable("job queue")
            })?;
        st.queued = true;
        self.save(st).await
    }

    /// Deletes every tail object of upload `id` (current and left over).
    async fn delete_tails(&self, id: &str) {
        if let Ok(keys) = self.store.list(&format!("uploads/{id}/tail")).await {
            for k in keys {
                let _ = self.store.delete(&k).await;
            }
        }
    }

    /// Makes `source` of the parts, then marks the video `processing` and queues the job.
    /// Once `source` is whole the upload is complete whatever happens next: the sweeper
    /// queues a job that could not be queued now.
    async fn finish(&self, st: &mut UploadState) -> Result<()> {
        let id = st.video_id.clone();
        match self
            .store
            .multipart_complete(&source_key(&id), &st.multipart, &st.parts)
            .await
        {
            Ok(()) => {}
            // completed before, its state not saved (a crash, a failed save): `source` is there
            Err(storage::StorageError::NotFound(e)) => {
                let whole = self
                    .store
                    .head(&source_key(&id))
                    .await
                    .is_ok_and(|i| i.size == st.length);
                if !whole {
                    tracing::warn!(video_id = %id, error = %e, "multipart write gone and no whole source");
                    return Err(Error::Unavailable("object storage"));
                }
            }
            Err(e) => return Err(storage_unavailable(e)),
        }
        st.complete = true;
        self.save(st).await?;
        self.delete_tails(&id).await;
        metrics::counter!("caudal_uploads_completed_total").increment(1);
        if let Err(e) = self.enqueue(st).await {
            tracing::warn!(video_id = %id, error = %e, "the sweeper will queue this upload");
        }
        Ok(())
    }

    /// Drops an upload: its parts, tail and state; the video becomes `failed`.
    async fn drop_upload(&self, st: &UploadState, why: &str) -> Result<()> {
        let id = &st.video_id;
        if !st.complete {
            let _ = self
                .store
                .multipart_abort(&source_key(id), &st.multipart)
                .await;
        }
        self.delete_tails(id).await;
        self.store
            .delete(&state_key(id))
            .await
            .map_err(storage_unavailable)?;
        let _ = self
            .catalog
            .change_status(
                id,
                &StatusChange {
                    status: Some(VideoStatus::Failed),
                    at: Some(Utc::now()),
                    failure: Some(why.to_string()),
                    ..Default::default()
                },
            )
            .await;
        Ok(())
    }

    /// One pass of the sweeper: queue what was not queued, drop what was abandoned.
    pub async fn sweep(&self) -> std::result::Result<(), String> {
        let keys = self
            .store
            .list("uploads/")
            .await
            .map_err(|e| e.to_string())?;
        for key in keys.iter().filter(|k| k.ends_with("/state.json")) {
            let Some(id) = key.split('/').nth(1) else {
                continue;
            };
            let Ok(Some(mut st)) = self.load(id).await else {
                continue;
            };
            if st.complete && !st.queued {
                let _ = self.enqueue(&mut st).await;
            } else if !st.complete && st.offset() == st.length {
                // every byte stored, the completion interrupted (storage or a crash)
                tracing::info!(video_id = %id, "completing an upload whose last byte is stored");
                let _ = self.finish(&mut st).await;
            } else if !st.complete && Utc::now() > self.expires(&st) {
                tracing::info!(video_id = %id, "abandoned upload dropped");
                metrics::counter!("caudal_uploads_expired_total").increment(1);
                let _ = self
                    .drop_upload(&st, "the upload was abandoned before its last byte")
                    .await;
            }
        }
        Ok(())
    }
}

/// Runs the sweeper and connects the job queue (retrying until it answers).
pub fn spawn_background(up: Arc<Uploads>, shutdown: tokio_util::sync::CancellationToken) {
    let u = up.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            match jobs::Queue::connect(&u.cfg.jobs).await {
                Ok(q) => {
                    let _ = u.queue.set(q);
                    tracing::info!("job queue connected");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "job queue not reachable; retrying"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
    tokio::spawn(async move {
        let every = Duration::from_secs(up.cfg.sweep_interval_secs.max(1));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = up.sweep().await {
                tracing::warn!(error = %e, "upload sweep failed");
            }
        }
    });
}

fn storage_unavailable(e: storage::StorageError) -> Error {
    tracing::warn!(error = %e, "object storage call failed");
    Error::Unavailable("object storage")
}

fn uploads(st: &AppState) -> Result<&Arc<Uploads>> {
    st.uploads.as_ref().ok_or(Error::Unavailable("uploads"))
}

fn tus_headers(h: &mut HeaderMap) {
    h.insert(TUS_RESUMABLE.clone(), HeaderValue::from_static(TUS_VERSION));
}

fn check_version(h: &HeaderMap) -> Result<()> {
    match h.get(&TUS_RESUMABLE).and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        // tus 1.0: a missing or other version is 412 Precondition Failed
        _ => Err(Error::PreconditionFailed(format!(
            "this server speaks tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}"
        ))),
    }
}

fn number_header(h: &HeaderMap, name: &HeaderName) -> Result<u64> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| Error::Invalid {
            field: name.to_string(),
            message: format!("{name} must be a non-negative integer"),
        })
}

fn http_date(t: DateTime<Utc>) -> HeaderValue {
    HeaderValue::from_str(&t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Upload-Metadata`: `key base64value,key2 base64value2`.
fn metadata(h: &HeaderMap) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    let Some(raw) = h.get("upload-metadata") else {
        return Ok(out);
    };
    let raw = raw.to_str().map_err(|_| bad_metadata())?;
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once(' ').unwrap_or((pair, ""));
        let v = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| bad_metadata())?;
        out.insert(
            k.to_string(),
            String::from_utf8(v).map_err(|_| bad_metadata())?,
        );
    }
    Ok(out)
}

fn bad_metadata() -> Error {
    Error::Invalid {
        field: "Upload-Metadata".into(),
        message: "Upload-Metadata is `key base64,key2 base64` with UTF-8 values".into(),
    }
}

/// `OPTIONS /v1/uploads`: what this server supports.
pub async fn options(State(st): State<AppState>) -> Response {
    let mut h = HeaderMap::new();
    tus_headers(&mut h);
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert(
        "tus-extension",
        HeaderValue::from_static("creation,termination,expiration"),
    );
    if let Some(up) = &st.uploads {
        h.insert("tus-max-size", HeaderValue::from(up.cfg.max_bytes));
    }
    (StatusCode::NO_CONTENT, h).into_response()
}

/// `POST /v1/uploads`: a new upload video owned by the caller (a creator).
pub async fn create(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    headers: HeaderMap,
) -> Result<Response> {
    let up = uploads(&st)?;
    check_version(&headers)?;
    if headers.contains_key("upload-defer-length") {
        return Err(Error::Invalid {
            field: "Upload-Defer-Length".into(),
            message: "give Upload-Length: deferred lengths are not supported".into(),
        });
    }
    let length = number_header(&headers, &UPLOAD_LENGTH)?;
    // refused before anything is stored
    if length > up.cfg.max_bytes {
        return Err(Error::PayloadTooLarge);
    }
    if length == 0 {
        return Err(Error::Invalid {
            field: "Upload-Length".into(),
            message: "the file is empty".into(),
        });
    }
    let meta = metadata(&headers)?;
    let me = st.users.me(&auth).await?;
    if !matches!(me.role, Role::Creator | Role::Admin) {
        return Err(Error::Forbidden(
            "only creators upload videos: become a creator first".into(),
        ));
    }
    let title = meta
        .get("title")
        .or_else(|| meta.get("filename"))
        .map(|t| t.trim().chars().take(200).collect::<String>())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Untitled upload".into());
    let id = uuid::Uuid::new_v4().simple().to_string();
    let video = up
        .catalog
        .create_video(&NewVideo {
            id: Some(id.clone()),
            owner_id: me.id.clone(),
            kind: VideoKind::Upload,
            title,
            description: meta.get("description").cloned().unwrap_or_default(),
            tags: Vec::new(),
            visibility: Visibility::Private,
            access: Default::default(),
            status: Some(VideoStatus::Created),
            started_at: None,
            renditions: Vec::new(),
            playback: Default::default(),
        })
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "upload video not created");
            Error::Unavailable("metadata-svc")
        })?;
    // created -> uploading is the upload lifecycle's first step in metadata-svc
    let video = up
        .catalog
        .change_status(
            &video.id,
            &StatusChange {
                status: Some(VideoStatus::Uploading),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, video_id = %video.id, "upload video not moved to uploading");
            Error::Unavailable("metadata-svc")
        })?;
    let content_type = meta
        .get("filetype")
        .filter(|t| t.starts_with("video/"))
        .cloned()
        .unwrap_or_else(|| "application/octet-stream".into());
    let multipart = up
        .store
        .multipart_start(&source_key(&video.id), &private_meta(&content_type))
        .await
        .map_err(storage_unavailable)?;
    let now = Utc::now();
    let mut state = UploadState {
        video_id: video.id.clone(),
        owner_id: me.id,
        length,
        multipart,
        parts: Vec::new(),
        tail: 0,
        tail_object: None,
        created_at: now,
        updated_at: now,
        complete: false,
        queued: false,
    };
    up.save(&mut state).await?;
    metrics::counter!("caudal_uploads_created_total").increment(1);
    tracing::info!(video_id = %video.id, length, "upload created");
    let mut h = HeaderMap::new();
    tus_headers(&mut h);
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/uploads/{}", video.id))
            .map_err(|e| Error::Internal(e.to_string()))?,
    );
    h.insert(UPLOAD_EXPIRES.clone(), http_date(up.expires(&state)));
    Ok((StatusCode::CREATED, h).into_response())
}

/// The caller's upload `id` (404 for anyone else's, as for videos).
async fn my_upload(st: &AppState, up: &Uploads, auth: &str, id: &str) -> Result<UploadState> {
    if !valid_video_id(id) {
        return Err(Error::NotFound("upload"));
    }
    let (me, state) = tokio::join!(st.user_id(auth), up.load(id));
    let me = me?;
    match state? {
        Some(s) if s.owner_id == me => Ok(s),
        _ => Err(Error::NotFound("upload")),
    }
}

fn offset_headers(up: &Uploads, s: &UploadState) -> HeaderMap {
    let mut h = HeaderMap::new();
    tus_headers(&mut h);
    h.insert(UPLOAD_OFFSET.clone(), HeaderValue::from(s.offset()));
    h.insert(UPLOAD_LENGTH.clone(), HeaderValue::from(s.length));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if !s.complete {
        h.insert(UPLOAD_EXPIRES.clone(), http_date(up.expires(s)));
    }
    h
}

/// `HEAD /v1/uploads/{id}`: bytes stored so far.
pub async fn head(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
) -> Result<Response> {
    let up = uploads(&st)?;
    let s = my_upload(&st, up, &auth, &id).await?;
    Ok((StatusCode::OK, offset_headers(up, &s)).into_response())
}

/// Marks an upload busy in this instance for the life of one PATCH (or DELETE).
struct Busy(Arc<Uploads>, String);

impl Busy {
    /// Upload `id` for this request alone; 409 `upload_busy` (saying `why`) when taken.
    fn take(up: &Arc<Uploads>, id: &str, why: &str) -> Result<Self> {
        let mut b = up
            .busy
            .lock()
            .map_err(|_| Error::Internal("upload lock".into()))?;
        if b.insert(id.to_string(), ()).is_some() {
            return Err(Error::Conflict {
                code: "upload_busy",
                message: why.into(),
            });
        }
        Ok(Busy(up.clone(), id.to_string()))
    }
}
impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut b) = self.0.busy.lock() {
            b.remove(&self.1);
        }
    }
}

/// `PATCH /v1/uploads/{id}`: the next bytes, from `Upload-Offset`.
pub async fn patch(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let up = uploads(&st)?;
    check_version(&headers)?;
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/offset+octet-stream")
    {
        return Err(Error::UnsupportedMediaType);
    }
    let offset = number_header(&headers, &UPLOAD_OFFSET)?;
    // taken before the state is read: a PATCH never works from a state another one changes
    let busy = Busy::take(up, &id, "another request is sending bytes to this upload")?;
    let s = my_upload(&st, up, &auth, &id).await?;
    // hyper drops this handler when the client goes away; the bytes that did arrive are
    // still kept, because a task of its own receives them
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let task = tokio::spawn(receive(busy, s, offset, declared, body));
    task.await
        .map_err(|e| Error::Internal(format!("upload receiver: {e}")))?
}

/// Appends one PATCH body to the upload `s`: full parts go to the multipart write, the rest
/// waits in `tail`; the state is saved before answering.
async fn receive(
    busy: Busy,
    mut s: UploadState,
    offset: u64,
    declared: Option<u64>,
    body: Body,
) -> Result<Response> {
    let up = &*busy.0.clone();
    let id = busy.1.clone();
    if s.complete {
        return Ok((StatusCode::NO_CONTENT, offset_headers(up, &s)).into_response());
    }
    if offset != s.offset() {
        return Err(Error::Conflict {
            code: "offset_mismatch",
            message: format!(
                "Upload-Offset is {offset} but {} bytes are stored: HEAD the upload and resume from there",
                s.offset()
            ),
        });
    }
    if declared.is_some_and(|n| n > s.length - offset) {
        return Err(Error::PayloadTooLarge);
    }
    let part_bytes = up.cfg.part_bytes.max(storage::MIN_PART_BYTES);
    // the tail of the previous PATCH starts this one's buffer
    let mut buf = BytesMut::with_capacity(part_bytes.min(s.length as usize));
    if s.tail > 0 {
        let tail = up
            .store
            .get(&s.tail_object())
            .await
            .map_err(storage_unavailable)?;
        // a tail written just before a crash may run past what the state recorded: its first
        // `s.tail` bytes are the recorded ones
        if (tail.len() as u64) < s.tail {
            return Err(Error::Internal(format!(
                "upload {id}: tail holds {} bytes, state says {}",
                tail.len(),
                s.tail
            )));
        }
        buf.extend_from_slice(&tail[..s.tail as usize]);
    }
    let mut stream = body.into_data_stream();
    let idle = Duration::from_secs(up.cfg.idle_timeout_secs.max(1));
    let mut broken: Option<Error> = None;
    loop {
        let frame = match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(Ok(f))) => f,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::info!(video_id = %id, error = %e, "upload body cut short; keeping what came");
                broken = Some(Error::Invalid {
                    field: "body".into(),
                    message: "the request body ended early".into(),
                });
                break;
            }
            Err(_) => {
                broken = Some(Error::Invalid {
                    field: "body".into(),
                    message: format!("no bytes for {} s", idle.as_secs()),
                });
                break;
            }
        };
        let stored = s.parts.iter().map(|p| p.size).sum::<u64>();
        if stored + (buf.len() + frame.len()) as u64 > s.length {
            broken = Some(Error::PayloadTooLarge);
            let room = (s.length - stored) as usize - buf.len();
            buf.extend_from_slice(&frame[..room]);
            break;
        }
        let mut rest = &frame[..];
        while !rest.is_empty() || buf.len() >= part_bytes {
            // (a tail saved under a larger part_bytes can start the buffer over the size)
            let take = part_bytes.saturating_sub(buf.len()).min(rest.len());
            buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if buf.len() >= part_bytes {
                store_part(up, &mut s, buf.split_to(part_bytes).freeze()).await?;
            }
        }
    }
    metrics::counter!("caudal_upload_bytes_total").increment(s.offset().saturating_sub(offset));
    let stored = s.parts.iter().map(|p| p.size).sum::<u64>();
    if stored + buf.len() as u64 == s.length {
        if !buf.is_empty() {
            store_part(up, &mut s, buf.split().freeze()).await?;
        }
        s.tail = 0;
        up.finish(&mut s).await?;
        tracing::info!(video_id = %id, length = s.length, "upload complete");
    } else if buf.len() as u64 != s.tail || broken.is_some() {
        // the bytes that do not fill a part wait in a tail object for the next PATCH: a new
        // key, named by the state saved after it; the one it replaces goes after that
        let tail = buf.freeze();
        let key = format!("uploads/{id}/tail-{}", uuid::Uuid::new_v4().simple());
        up.store
            .put(
                &key,
                tail.clone(),
                &private_meta("application/octet-stream"),
            )
            .await
            .map_err(storage_unavailable)?;
        let old = (s.tail > 0).then(|| s.tail_object());
        s.tail = tail.len() as u64;
        s.tail_object = Some(key);
        up.save(&mut s).await?;
        if let Some(old) = old {
            let _ = up.store.delete(&old).await;
        }
    }
    if let Some(e) = broken {
        return Err(e);
    }
    Ok((StatusCode::NO_CONTENT, offset_headers(up, &s)).into_response())
}

async fn store_part(up: &Uploads, s: &mut UploadState, bytes: Bytes) -> Result<()> {
    let number = s.parts.len() as u32 + 1;
    let size = bytes.len() as u64;
    let tag = up
        .store
        .multipart_put(&source_key(&s.video_id), &s.multipart, number, bytes)
        .await
        .map_err(storage_unavailable)?;
    s.parts.push(Part { number, tag, size });
    // the bytes are in the part now, not in the tail
    s.tail = 0;
    up.save(s).await
}

/// `DELETE /v1/uploads/{id}`: stops an upload; the video becomes `failed` ("cancelled").
pub async fn terminate(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
) -> Result<Response> {
    let up = uploads(&st)?;
    // not while a PATCH of this instance writes to it (its tail and state would come back)
    let _busy = Busy::take(
        up,
        &id,
        "bytes are being sent to this upload: stop that request first",
    )?;
    let s = my_upload(&st, up, &auth, &id).await?;
    if s.complete {
        return Err(Error::Conflict {
            code: "upload_complete",
            message: "the upload is complete: delete the video instead".into(),
        });
    }
    up.drop_upload(&s, "the upload was cancelled").await?;
    let mut h = HeaderMap::new();
    tus_headers(&mut h);
    Ok((StatusCode::NO_CONTENT, h).into_response())
}
