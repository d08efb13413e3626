//! The creator studio: my videos (every status), editing them, stream keys, the OBS settings,
//! my plan and my subscribers.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::error::{Error, Result};
use crate::extract::{AppJson, AppPath, AppQuery, Bearer};
use crate::model::{
    BroadcastDefaults, EncoderProfile, ErrorEnvelope, NewStreamKey, NewStreamKeyRequest,
    ObsSettings, Plan, PlanAnswer, PlanRequest, StreamKeyList, StudioVideo, StudioVideoPage,
    SubscriberList, VideoEdit,
};
use crate::upstream::CreatedKey;
use crate::AppState;
use service_clients::ingest::LiveEntry;

use super::screens::{page_limit, valid_video_id};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// My videos, every status and visibility, newest first.
#[utoipa::path(
    get, path = "/v1/studio/videos", tag = "studio",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "One page of my videos", body = StudioVideoPage),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn videos(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppQuery(p): AppQuery<PageParams>,
) -> Result<Json<StudioVideoPage>> {
    let limit = page_limit(p.limit, st.config.page_size)?;
    let me = st.user_id(&auth).await?;
    let page = st
        .catalog
        .creator_videos(&me, p.cursor.as_deref().filter(|c| !c.is_empty()), limit)
        .await?;
    Ok(Json(StudioVideoPage {
        items: page
            .items
            .iter()
            .map(|v| StudioVideo::from_wire(v, &st.edge))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Edits one of my videos: title, description, tags, visibility, access policy.
#[utoipa::path(
    patch, path = "/v1/studio/videos/{id}", tag = "studio",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Video id")),
    request_body = VideoEdit,
    responses(
        (status = 200, description = "The video as changed (with its new version)", body = StudioVideo),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such video of mine", body = ErrorEnvelope),
        (status = 409, description = "`version_conflict`: changed since `expected_version`; read it again", body = ErrorEnvelope),
    )
)]
pub async fn edit_video(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
    AppJson(edit): AppJson<VideoEdit>,
) -> Result<Json<StudioVideo>> {
    if !valid_video_id(&id) {
        return Err(Error::NotFound("video"));
    }
    let (me, video) = tokio::join!(st.user_id(&auth), st.catalog.get_video(&id));
    let me = me?;
    match video? {
        Some(v) if v.owner_id == me => {}
        _ => return Err(Error::NotFound("video")),
    }
    let mut body = Map::new();
    body.insert("expected_version".into(), json!(edit.expected_version));
    if let Some(t) = &edit.title {
        body.insert("title".into(), json!(t));
    }
    if let Some(d) = &edit.description {
        body.insert("description".into(), json!(d));
    }
    if let Some(t) = &edit.tags {
        body.insert("tags".into(), json!(t));
    }
    if let Some(v) = edit.visibility {
        body.insert("visibility".into(), json!(v));
    }
    if let Some(a) = &edit.access {
        body.insert(
            "access".into(),
            serde_json::to_value(a.to_wire()?).map_err(|e| Error::Internal(e.to_string()))?,
        );
    }
    if body.len() == 1 {
        return Err(Error::invalid(
            "body",
            "nothing to change: send title, description, tags, visibility or access",
        ));
    }
    let v = st.catalog.edit(&id, &Value::Object(body)).await;
    st.videos.remove(&id);
    let v = v?;
    tracing::info!(video_id = %id, version = v.version, "video edited in the studio");
    Ok(Json(StudioVideo::from_wire(&v, &st.edge)))
}

/// One of my videos as the studio shows it: its status and, while an upload is processed,
/// how far it has come (`progress`), or why it `failed` (`failure`). Poll it while processing.
#[utoipa::path(
    get, path = "/v1/studio/videos/{id}", tag = "studio",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Video id")),
    responses(
        (status = 200, description = "The video", body = StudioVideo),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such video of mine", body = ErrorEnvelope),
    )
)]
pub async fn studio_video(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
) -> Result<Json<StudioVideo>> {
    let v = my_video(&st, &auth, &id).await?;
    Ok(Json(StudioVideo::from_wire(&v, &st.edge)))
}

/// Deletes one of my videos: it is gone from the catalog and its playback tokens stop at
/// once; a cleanup worker deletes its media from storage, and the edge serves nothing new
/// for it (copies it cached expire: playlists within seconds, a segment only with a token).
#[utoipa::path(
    delete, path = "/v1/studio/videos/{id}", tag = "studio",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Video id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such video of mine", body = ErrorEnvelope),
        (status = 409, description = "`conflict`: the video is live; end the broadcast first", body = ErrorEnvelope),
    )
)]
pub async fn delete_video(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode> {
    let v = my_video(&st, &auth, &id).await?;
    if v.status == service_clients::metadata::VideoStatus::Live {
        return Err(Error::Conflict {
            code: "video_live",
            message: "the video is live: stop the broadcast (or revoke its stream key) first"
                .into(),
        });
    }
    let deleted = st.catalog.delete(&id).await;
    st.videos.remove(&id);
    if !deleted? {
        return Err(Error::NotFound("video"));
    }
    tracing::info!(video_id = %id, "video deleted in the studio");
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own video `id`; anything else (no such video, someone else's) is 404.
async fn my_video(st: &AppState, auth: &str, id: &str) -> Result<service_clients::metadata::Video> {
    if !valid_video_id(id) {
        return Err(Error::NotFound("video"));
    }
    let (me, video) = tokio::join!(st.user_id(auth), st.catalog.get_video(id));
    let me = me?;
    match video? {
        Some(v) if v.owner_id == me => Ok(v),
        _ => Err(Error::NotFound("video")),
    }
}

/// How a live input is doing, measured by ingest over the last 2 s.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BroadcastHealth {
    pub video_id: String,
    /// The publisher dropped; ingest waits for it to come back.
    pub reconnecting: bool,
    /// When the figures were measured (absent in the first seconds, or while reconnecting).
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Audio and video received, kbit/s.
    pub input_kbps: Option<f64>,
    /// Video frames a second received.
    pub frame_rate: Option<f64>,
    /// The frame rate the encoder announced.
    pub declared_frame_rate: Option<f64>,
    /// Seconds between the last two keyframes.
    pub keyframe_interval_secs: Option<f64>,
    /// Last audio timestamp minus last video timestamp, ms.
    pub av_drift_ms: Option<i64>,
    /// Media ingest dropped in this take.
    pub dropped: Option<u64>,
    /// What to change in OBS, in its settings' words; empty when all is well.
    pub advice: Vec<String>,
}

/// My live broadcast's input health, with OBS advice.
#[utoipa::path(
    get, path = "/v1/studio/videos/{id}/health", tag = "studio",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Video id")),
    responses(
        (status = 200, description = "The input's figures and advice", body = BroadcastHealth),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such video of mine", body = ErrorEnvelope),
        (status = 409, description = "`not_live`: the video is not live", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: no ingest instance answered", body = ErrorEnvelope),
    )
)]
pub async fn broadcast_health(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
) -> Result<Json<BroadcastHealth>> {
    let v = my_video(&st, &auth, &id).await?;
    if v.status != service_clients::metadata::VideoStatus::Live {
        return Err(Error::Conflict {
            code: "not_live",
            message: "the video is not live".into(),
        });
    }
    // the instance running it answers; the others say 404
    let asks = st.ingest.iter().map(|ingest| ingest.stream(&id));
    let answers: Vec<Option<Option<LiveEntry>>> = futures::future::join_all(asks)
        .await
        .into_iter()
        .map(|a| match a {
            Ok(entry) => Some(entry),
            Err(e) if e.is_unavailable() => None,
            // an instance that answers with an error does not run it
            Err(_) => Some(None),
        })
        .collect();
    if let Some(entry) = answers.iter().flatten().flatten().next() {
        let h = entry.health.as_ref();
        return Ok(Json(BroadcastHealth {
            video_id: id,
            reconnecting: entry.reconnecting,
            at: h.map(|h| h.at),
            input_kbps: h.map(|h| h.input_kbps),
            frame_rate: h.map(|h| h.frame_rate),
            declared_frame_rate: h.and_then(|h| h.declared_frame_rate),
            keyframe_interval_secs: h.and_then(|h| h.keyframe_interval_secs),
            av_drift_ms: h.and_then(|h| h.av_drift_ms),
            dropped: h.map(|h| h.dropped),
            advice: h.map(|h| h.advice.clone()).unwrap_or_default(),
        }));
    }
    if answers.iter().all(Option::is_none) {
        return Err(Error::Unavailable("ingest"));
    }
    // live in the catalog, but no instance runs it (it is ending)
    Err(Error::Conflict {
        code: "not_live",
        message: "the broadcast is ending".into(),
    })
}

/// What my new broadcasts start with: visibility and access policy.
#[utoipa::path(
    get, path = "/v1/studio/broadcast-defaults", tag = "studio",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "My defaults (public and free until set)", body = BroadcastDefaults),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn broadcast_defaults(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
) -> Result<Json<BroadcastDefaults>> {
    Ok(Json(st.users.broadcast_defaults(&auth).await?))
}

/// Sets what my new broadcasts start with. With `subscribers` or `purchase` a broadcast is
/// protected from its first second; videos that exist keep their own policy.
#[utoipa::path(
    put, path = "/v1/studio/broadcast-defaults", tag = "studio",
    security(("bearer" = [])),
    request_body = BroadcastDefaults,
    responses(
        (status = 200, description = "The defaults", body = BroadcastDefaults),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: become a creator first", body = ErrorEnvelope),
    )
)]
pub async fn set_broadcast_defaults(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppJson(body): AppJson<BroadcastDefaults>,
) -> Result<Json<BroadcastDefaults>> {
    // the same rule as a video's policy: purchase needs a price and a currency
    body.access.to_wire()?;
    Ok(Json(st.users.set_broadcast_defaults(&auth, &body).await?))
}

/// My active stream keys, masked.
#[utoipa::path(
    get, path = "/v1/studio/stream-keys", tag = "studio",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Active keys", body = StreamKeyList),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn stream_keys(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
) -> Result<Json<StreamKeyList>> {
    Ok(Json(st.users.stream_keys(&auth).await?))
}

fn new_key_answer(st: &AppState, k: CreatedKey) -> NewStreamKey {
    let obs = obs(st, Some((&k.id, &k.key)), false);
    NewStreamKey {
        id: k.id,
        masked: k.masked,
        label: k.label,
        created_at: k.created_at,
        key: k.key,
        obs,
    }
}

/// Creates a stream key. The answer is the only one that shows the full key.
#[utoipa::path(
    post, path = "/v1/studio/stream-keys", tag = "studio",
    security(("bearer" = [])),
    request_body(content = Option<NewStreamKeyRequest>, description = "Optional label"),
    responses(
        (status = 201, description = "The new key, in full, with the OBS settings", body = NewStreamKey),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: become a creator first", body = ErrorEnvelope),
        (status = 409, description = "`too_many_stream_keys`", body = ErrorEnvelope),
    )
)]
pub async fn create_stream_key(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse> {
    // the body is optional: none, `null` or `{}` all mean no label
    let req: NewStreamKeyRequest = if body.iter().all(u8::is_ascii_whitespace) {
        NewStreamKeyRequest::default()
    } else {
        match serde_json::from_slice::<Value>(&body)
            .map_err(|e| Error::invalid("body", e.to_string()))?
        {
            Value::Null => NewStreamKeyRequest::default(),
            v @ Value::Object(_) => {
                serde_json::from_value(v).map_err(|e| Error::invalid("body", e.to_string()))?
            }
            _ => return Err(Error::invalid("body", "must be a JSON object")),
        }
    };
    let k = st.users.create_stream_key(&auth, &req).await?;
    Ok((StatusCode::CREATED, Json(new_key_answer(&st, k))))
}

/// Replaces a key with a new one (the old one stops working at once).
#[utoipa::path(
    post, path = "/v1/studio/stream-keys/{id}/rotate", tag = "studio",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Stream key id")),
    responses(
        (status = 201, description = "The replacement key, in full", body = NewStreamKey),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`", body = ErrorEnvelope),
    )
)]
pub async fn rotate_stream_key(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
) -> Result<impl IntoResponse> {
    let k = st.users.rotate_stream_key(&auth, &id).await?;
    Ok((StatusCode::CREATED, Json(new_key_answer(&st, k))))
}

/// Revokes a key: publishing with it is refused from now on.
#[utoipa::path(
    delete, path = "/v1/studio/stream-keys/{id}", tag = "studio",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Stream key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`", body = ErrorEnvelope),
    )
)]
pub async fn revoke_stream_key(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode> {
    st.users.revoke_stream_key(&auth, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The recommended OBS encoder profiles: x264, CBR, keyframe every 2 s, AAC 160 kbit/s at
/// 48 kHz; 1080p30 at 6000 kbit/s when the upload allows, else 720p30 at 3500 kbit/s.
pub fn encoder_profiles() -> Vec<EncoderProfile> {
    let p = |name: &str, width, height, kbps, min_upload| EncoderProfile {
        name: name.into(),
        encoder: "x264".into(),
        rate_control: "CBR".into(),
        video_bitrate_kbps: kbps,
        keyframe_interval_secs: 2,
        width,
        height,
        fps: 30,
        audio_codec: "AAC".into(),
        audio_bitrate_kbps: 160,
        audio_sample_rate_hz: 48_000,
        min_upload_kbps: min_upload,
    };
    vec![
        p("1080p30", 1920, 1080, 6000, 8000),
        p("720p30", 1280, 720, 3500, 5000),
    ]
}

fn obs(st: &AppState, key: Option<(&str, &str)>, masked: bool) -> ObsSettings {
    ObsSettings {
        server_url: st.config.rtmp_url.clone(),
        stream_key: key.map(|(_, k)| k.to_string()),
        stream_key_masked: masked && key.is_some(),
        stream_key_id: key.map(|(id, _)| id.to_string()),
        profiles: encoder_profiles(),
    }
}

/// What to type in OBS: server URL, my newest stream key (masked: the full key is shown
/// only when created or rotated) and the recommended encoder settings.
#[utoipa::path(
    get, path = "/v1/studio/obs", tag = "studio",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "OBS settings", body = ObsSettings),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn obs_settings(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
) -> Result<Json<ObsSettings>> {
    let keys = st.users.stream_keys(&auth).await?;
    let newest = keys.stream_keys.iter().max_by_key(|k| k.created_at);
    Ok(Json(obs(
        &st,
        newest.map(|k| (k.id.as_str(), k.masked.as_str())),
        true,
    )))
}

/// My monthly plan (`null` until set).
#[utoipa::path(
    get, path = "/v1/studio/plan", tag = "studio",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "My plan", body = PlanAnswer),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn plan(State(st): State<AppState>, Bearer(auth): Bearer) -> Result<Json<PlanAnswer>> {
    Ok(Json(PlanAnswer {
        plan: st.users.my_plan(&auth).await?,
    }))
}

/// Sets my monthly plan's price (subscribers watch every `subscribers` video).
#[utoipa::path(
    put, path = "/v1/studio/plan", tag = "studio",
    security(("bearer" = [])),
    request_body = PlanRequest,
    responses(
        (status = 200, description = "The plan", body = Plan),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: become a creator first", body = ErrorEnvelope),
    )
)]
pub async fn set_plan(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppJson(body): AppJson<PlanRequest>,
) -> Result<Json<Plan>> {
    Ok(Json(st.users.set_plan(&auth, &body).await?))
}

/// My subscribers with access now.
#[utoipa::path(
    get, path = "/v1/studio/subscribers", tag = "studio",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Subscribers", body = SubscriberList),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn subscribers(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
) -> Result<Json<SubscriberList>> {
    Ok(Json(st.users.subscribers(&auth).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recommended_profiles() {
        let p = encoder_profiles();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].width, p[0].height, p[0].fps, p[0].video_bitrate_kbps),
            (1920, 1080, 30, 6000)
        );
        assert_eq!(
            (p[1].width, p[1].height, p[1].fps, p[1].video_bitrate_kbps),
            (1280, 720, 30, 3500)
        );
        for x in &p {
            assert_eq!(
                (
                    x.encoder.as_str(),
                    x.rate_control.as_str(),
                    x.keyframe_interval_secs
                ),
                ("x264", "CBR", 2)
            );
            assert_eq!(
                (
                    x.audio_codec.as_str(),
                    x.audio_bitrate_kbps,
                    x.audio_sample_rate_hz
                ),
                ("AAC", 160, 48_000)
            );
        }
    }
}
