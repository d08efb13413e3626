//! The viewer's screens: home, search and the watch screen (video detail, access decision,
//! playback URL). Each is one answer assembled from both services.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use service_clients::metadata::{
    AccessPolicy as WirePolicy, Video, VideoKind, VideoStatus, Visibility as WireVisibility,
};
use service_clients::users::EntitlementCheck;
use utoipa::IntoParams;

use crate::cache::Lookup;
use crate::error::{Error, Result};
use crate::extract::{AppPath, AppQuery, MaybeBearer};
use crate::model::{
    policy_kind, Access, Card, CardPage, Creator, CreatorPage, CreatorPlan, ErrorEnvelope, Home,
    Offer, Playback, PlaybackAnswer, Reason, VideoDetail, VideoInfo,
};
use crate::upstream::UpstreamError;
use crate::{AppState, EdgeUrls};

/// Creator profiles for a list of videos: `Ok(map)`, or `Err(())` when user-svc could not
/// be asked (the cards then say `creator_unavailable`).
pub async fn creators_of(
    st: &AppState,
    videos: &[&Video],
) -> std::result::Result<HashMap<String, Creator>, ()> {
    let ids: Vec<&str> = videos.iter().map(|v| v.owner_id.as_str()).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    st.creators(&ids).await.map_err(|e| {
        tracing::warn!(error = %e, "creator profiles unavailable");
    })
}

pub fn card(
    v: &Video,
    edge: &EdgeUrls,
    creators: &std::result::Result<HashMap<String, Creator>, ()>,
) -> Card {
    let (creator, creator_unavailable) = match creators {
        Ok(m) => (m.get(&v.owner_id).cloned(), false),
        Err(()) => (None, true),
    };
    Card {
        id: v.id.clone(),
        title: v.title.clone(),
        kind: v.kind.into(),
        status: v.status.into(),
        duration_secs: v.duration_secs,
        started_at: v.started_at,
        poster: v.poster.as_deref().map(|k| edge.image(k)),
        access: policy_kind(&v.access),
        creator,
        creator_unavailable,
    }
}

/// The home screen: live now, recent and trending, each card with its creator.
///
/// Needs the catalog (503 when every row fails); with user-svc down the videos are listed
/// with `creator: null, creator_unavailable: true`.
#[utoipa::path(
    get, path = "/v1/home", tag = "screens",
    responses(
        (status = 200, description = "The home screen; `unavailable` names the parts missing", body = Home),
        (status = 503, description = "`unavailable`: the catalog cannot be reached", body = ErrorEnvelope),
    )
)]
pub async fn home(State(st): State<AppState>) -> Result<Json<Home>> {
    let n = st.config.page_size;
    let (live, recent, trending) = tokio::join!(
        st.catalog.live(n),
        st.catalog.recent(n),
        st.catalog.trending(n)
    );
    let mut unavailable = Vec::new();
    let mut first_err: Option<UpstreamError> = None;
    let mut take = |name: &str, r: std::result::Result<Vec<Video>, UpstreamError>| match r {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(section = name, error = %e, "home section unavailable");
            unavailable.push(name.to_string());
            first_err.get_or_insert(e);
            Vec::new()
        }
    };
    let live = take("live", live.map(|p| p.items));
    let recent = take("recent", recent.map(|p| p.items));
    let trending = take("trending", trending);
    if unavailable.len() == 3 {
        return Err(first_err
            .map(Error::from)
            .unwrap_or(Error::Unavailable("metadata-svc")));
    }
    let all: Vec<&Video> = live.iter().chain(&recent).chain(&trending).collect();
    let creators = creators_of(&st, &all).await;
    if creators.is_err() {
        unavailable.push("creators".into());
    }
    let cards = |vs: &[Video]| {
        vs.iter()
            .map(|v| card(v, &st.edge, &creators))
            .collect::<Vec<_>>()
    };
    Ok(Json(Home {
        live: cards(&live),
        recent: cards(&recent),
        trending: cards(&trending),
        unavailable,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words of the title or tags (at most 8, at least one letter or digit); the last word
    /// also matches as a prefix while typing. Required.
    #[param(min_length = 1, max_length = 200)]
    pub q: String,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
    /// Results per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// Searches public videos by title and tag words, best matches first, a page at a time.
#[utoipa::path(
    get, path = "/v1/search", tag = "screens",
    params(SearchParams),
    responses(
        (status = 200, description = "One page of results", body = CardPage),
        (status = 503, description = "`unavailable`: the catalog cannot be reached", body = ErrorEnvelope),
    )
)]
pub async fn search(
    State(st): State<AppState>,
    AppQuery(p): AppQuery<SearchParams>,
) -> Result<Json<CardPage>> {
    let q = p.q.trim();
    if q.is_empty() {
        return Err(Error::invalid("q", "is required"));
    }
    if q.chars().count() > 200 {
        return Err(Error::invalid("q", "must be at most 200 characters"));
    }
    let limit = page_limit(p.limit, st.config.page_size)?;
    let cursor = p.cursor.as_deref().filter(|c| !c.is_empty());
    let page = st.catalog.search(q, cursor, limit).await?;
    let refs: Vec<&Video> = page.items.iter().collect();
    let creators = creators_of(&st, &refs).await;
    Ok(Json(CardPage {
        items: page
            .items
            .iter()
            .map(|v| card(v, &st.edge, &creators))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreatorParams {
    /// `next_cursor` of the previous page of videos.
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
    /// Videos per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// A user id as user-svc makes them (a UUID).
fn valid_user_id(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}

/// A creator's page: the profile, the monthly plan when there is one, and the public videos
/// (live, recorded, ready), newest first.
#[utoipa::path(
    get, path = "/v1/creators/{id}", tag = "screens",
    params(("id" = String, Path, description = "The creator's user id"), CreatorParams),
    responses(
        (status = 200, description = "The creator's page", body = CreatorPage),
        (status = 404, description = "`not_found`: no such user", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: user-svc or the catalog cannot be reached", body = ErrorEnvelope),
    )
)]
pub async fn creator_page(
    State(st): State<AppState>,
    AppPath(id): AppPath<String>,
    AppQuery(p): AppQuery<CreatorParams>,
) -> Result<Json<CreatorPage>> {
    if !valid_user_id(&id) {
        return Err(Error::NotFound("creator"));
    }
    let limit = page_limit(p.limit, st.config.page_size)?;
    let cursor = p.cursor.as_deref().filter(|c| !c.is_empty());
    let ids = [id.as_str()];
    let (profiles, plan, page) = tokio::join!(
        st.creators(&ids),
        st.users.creator_plan(&id),
        st.catalog.creator_public_videos(&id, cursor, limit),
    );
    let profiles = profiles?;
    let creator = profiles
        .get(&id)
        .cloned()
        .ok_or(Error::NotFound("creator"))?;
    let page = page?;
    let creators = Ok(profiles);
    Ok(Json(CreatorPage {
        creator,
        plan: plan?.filter(|p| p.active).map(|p| CreatorPlan {
            price_minor: p.price_minor,
            currency: p.currency,
            interval: "month".into(),
        }),
        videos: page
            .items
            .iter()
            .map(|v| card(v, &st.edge, &creators))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

pub fn page_limit(limit: Option<usize>, default: usize) -> Result<usize> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err(Error::invalid("limit", "must be from 1 to 100")),
    }
}

/// Catalog ids: 1 to 64 of `[A-Za-z0-9_-]`; anything else cannot name a video.
pub fn valid_video_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The playback URL for a viewer allowed to watch, when there is something to play.
/// A broadcast's master playlist is known from its first second but only stored once every
/// rung has a segment (ingest then records the renditions): until then there is no URL, so a
/// client never fetches (and an edge never caches) a playlist that is not there yet.
pub fn playback_of(v: &Video, edge: &EdgeUrls) -> Option<Playback> {
    let (key, live) = match v.status {
        VideoStatus::Live if v.renditions.is_empty() => return None,
        VideoStatus::Live => (v.playback.master.as_deref()?, true),
        // an upload being transcoded: its EVENT playlists grow from the first segment on
        VideoStatus::Processing if v.kind == VideoKind::Upload && !v.renditions.is_empty() => {
            (v.playback.master.as_deref()?, false)
        }
        VideoStatus::Recorded | VideoStatus::Ready => {
            let key = match v.kind {
                VideoKind::Upload => v
                    .playback
                    .vod_master
                    .as_deref()
                    .or(v.playback.master.as_deref()),
                VideoKind::Live => v.playback.vod_master.as_deref(),
            };
            (key?, false)
        }
        _ => return None,
    };
    let Some((url, expires_at)) = edge.signed(key) else {
        tracing::warn!(video_id = %v.id, key, "playlist key outside a media folder: not playable");
        return None;
    };
    // under the same folder as the playlist, so the same token covers the sheets it names
    let storyboard = match (live, v.storyboard.as_deref()) {
        (false, Some(k)) => edge.signed(k).map(|(u, _)| u),
        _ => None,
    };
    let low_latency_url = match (live, v.playback.low_latency.as_deref()) {
        (true, Some(k)) => edge.signed(k).map(|(u, _)| u),
        _ => None,
    };
    Some(Playback {
        url,
        live,
        low_latency_url,
        expires_at,
        storyboard,
    })
}

fn allowed(reason: Reason) -> Access {
    Access {
        allowed: true,
        reason,
        offer: None,
    }
}

/// Who may watch: free and owner are decided here; anything else is asked of user-svc.
/// With `fresh` (every answer that hands out a playback token) user-svc is always asked, so
/// a refund, an expired subscription or a changed policy stops new tokens at once. Otherwise
/// granted answers are reused for up to `entitlement_cache_ms` (renewed in the background
/// while in use); denials never are. With user-svc down a protected video is denied with
/// reason `unavailable`.
pub async fn decide(st: &AppState, viewer: Option<&str>, v: &Video, fresh: bool) -> Access {
    if matches!(v.access, WirePolicy::Free) {
        return allowed(Reason::Free);
    }
    if viewer == Some(v.owner_id.as_str()) {
        return allowed(Reason::Owner);
    }
    let cache_key = viewer.map(|u| (u.to_string(), v.id.clone(), format!("{:?}", v.access)));
    if let Some(k) = cache_key.as_ref().filter(|_| !fresh) {
        match st.grants.lookup(k) {
            Lookup::Hit(reason) => return allowed(reason),
            Lookup::Refresh(reason) => {
                let (st, k, v) = (st.clone(), k.clone(), Arc::new(v.clone()));
                tokio::spawn(async move {
                    if let Some(access) = ask(&st, Some(&k.0), &v, Some(&k)).await {
                        if !access.allowed {
                            st.grants.remove(&k);
                        }
                    } else {
                        st.grants.refresh_failed(&k);
                    }
                });
                return allowed(reason);
            }
            Lookup::Miss => {}
        }
    }
    ask(st, viewer, v, cache_key.as_ref())
        .await
        .unwrap_or(Access {
            allowed: false,
            reason: Reason::Unavailable,
            offer: None,
        })
}

/// Asks user-svc; `None` when it cannot answer.
async fn ask(
    st: &AppState,
    viewer: Option<&str>,
    v: &Video,
    cache_key: Option<&(String, String, String)>,
) -> Option<Access> {
    let req = EntitlementCheck {
        user_id: viewer.map(str::to_string),
        owner_id: v.owner_id.clone(),
        video_id: v.id.clone(),
        policy: v.access.clone(),
    };
    match st.users.check(&req).await {
        Ok(d) => {
            let reason = Reason::from(d.reason);
            if d.allow {
                if let Some(k) = cache_key {
                    st.grants.insert(k.clone(), reason, None);
                }
            }
            Some(Access {
                allowed: d.allow,
                reason,
                offer: if d.allow {
                    None
                } else {
                    d.offer.map(Offer::from)
                },
            })
        }
        Err(e) => {
            tracing::warn!(video_id = %v.id, error = %e, "access cannot be decided");
            None
        }
    }
}

/// The viewer behind the optional token: `Ok(None)` for anonymous callers and, with the
/// flag set, when user-svc cannot say (the screen degrades). A token user-svc rejects is 401.
async fn viewer_of(st: &AppState, auth: &Option<String>) -> Result<(Option<String>, bool)> {
    let Some(auth) = auth else {
        return Ok((None, false));
    };
    match st.user_id(auth).await {
        Ok(id) => Ok((Some(id), false)),
        Err(e) if e.is_unavailable() => Ok((None, true)),
        Err(e) => Err(e),
    }
}

/// The video and, for its owner, private ones too; anything else is not found.
async fn load_for_viewer(
    st: &AppState,
    id: &str,
    auth: &Option<String>,
) -> Result<(Arc<Video>, Option<String>)> {
    if !valid_video_id(id) {
        return Err(Error::NotFound("video"));
    }
    let (video, viewer) = tokio::join!(st.video(id), viewer_of(st, auth));
    let video = video?.ok_or(Error::NotFound("video"))?;
    let (viewer, _) = viewer?;
    if video.visibility == WireVisibility::Private
        && viewer.as_deref() != Some(video.owner_id.as_str())
    {
        return Err(Error::NotFound("video"));
    }
    Ok((video, viewer))
}

/// The watch screen: the video, its creator, the viewer's access (with the offer that would
/// grant it when denied) and, when allowed and there is something to play, the playback URL
/// of the master playlist through the edge.
#[utoipa::path(
    get, path = "/v1/videos/{id}", tag = "screens",
    params(("id" = String, Path, description = "Video id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The watch screen", body = VideoDetail),
        (status = 401, description = "`unauthorized`: the token given is not valid (send none to watch anonymously)", body = ErrorEnvelope),
        (status = 404, description = "`not_found`", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: the catalog cannot be reached", body = ErrorEnvelope),
    )
)]
pub async fn video_detail(
    State(st): State<AppState>,
    AppPath(id): AppPath<String>,
    MaybeBearer(auth): MaybeBearer,
) -> Result<Json<VideoDetail>> {
    let (v, viewer) = load_for_viewer(&st, &id, &auth).await?;
    let owner = [v.as_ref()];
    let (creators, access) = tokio::join!(
        creators_of(&st, &owner),
        decide(&st, viewer.as_deref(), &v, true)
    );
    let creator_unavailable = creators.is_err();
    let creator = creators.ok().and_then(|mut m| m.remove(&v.owner_id));
    let playback = if access.allowed {
        playback_of(&v, &st.edge)
    } else {
        None
    };
    Ok(Json(VideoDetail {
        video: VideoInfo {
            id: v.id.clone(),
            title: v.title.clone(),
            description: v.description.clone(),
            tags: v.tags.clone(),
            kind: v.kind.into(),
            status: v.status.into(),
            duration_secs: v.duration_secs,
            started_at: v.started_at,
            ended_at: v.ended_at,
            poster: v.poster.as_deref().map(|k| st.edge.image(k)),
            renditions: v.renditions.iter().map(Into::into).collect(),
            counters: (&v.counters).into(),
            access_policy: (&v.access).into(),
        },
        creator,
        creator_unavailable,
        access,
        playback,
    }))
}

/// Counts one view of a video the caller may watch. The watch page sends it once per page
/// load, when playback starts; trending on the home screen ranks by these counts.
#[utoipa::path(
    post, path = "/v1/videos/{id}/views", tag = "screens",
    params(("id" = String, Path, description = "Video id")),
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Counted"),
        (status = 401, description = "`unauthorized`: the token given is not valid", body = ErrorEnvelope),
        (status = 403, description = "`forbidden`: the caller may not watch this video", body = ErrorEnvelope),
        (status = 404, description = "`not_found`", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`: the catalog or the access check cannot be reached", body = ErrorEnvelope),
    )
)]
pub async fn record_view(
    State(st): State<AppState>,
    AppPath(id): AppPath<String>,
    MaybeBearer(auth): MaybeBearer,
) -> Result<StatusCode> {
    let (v, viewer) = load_for_viewer(&st, &id, &auth).await?;
    let access = decide(&st, viewer.as_deref(), &v, false).await;
    if !access.allowed {
        if access.reason == Reason::Unavailable {
            return Err(Error::Unavailable("user-svc"));
        }
        return Err(Error::Forbidden(
            "a view is counted only for a viewer who may watch the video".into(),
        ));
    }
    match st.catalog.add_view(&v.id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(UpstreamError::Api { status: 404, .. }) => Err(Error::NotFound("video")),
        Err(e) => Err(e.into()),
    }
}

/// Deprecated: use `GET /v1/videos/{id}`, whose `access` and `playback` say the same.
/// Answers carry `Deprecation`, `Sunset` and `Link: <...>; rel="successor-version"`.
#[utoipa::path(
    get, path = "/v1/videos/{id}/playback", tag = "screens",
    params(("id" = String, Path, description = "Video id")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Access and playback URL", body = PlaybackAnswer,
            headers(
                ("Deprecation" = String, description = "When this endpoint was deprecated (`@<unix time>`)"),
                ("Sunset" = String, description = "When it stops answering (HTTP date)"),
                ("Link" = String, description = "`</v1/videos/{id}>; rel=\"successor-version\"`"),
            )),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`", body = ErrorEnvelope),
        (status = 503, description = "`unavailable`", body = ErrorEnvelope),
    )
)]
#[deprecated = "use GET /v1/videos/{id}"]
pub async fn playback(
    State(st): State<AppState>,
    AppPath(id): AppPath<String>,
    MaybeBearer(auth): MaybeBearer,
) -> Result<Json<PlaybackAnswer>> {
    let (v, viewer) = load_for_viewer(&st, &id, &auth).await?;
    let access = decide(&st, viewer.as_deref(), &v, true).await;
    let playback = if access.allowed {
        playback_of(&v, &st.edge)
    } else {
        None
    };
    Ok(Json(PlaybackAnswer { access, playback }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use service_clients::metadata::{Counters, PlaybackLocations, Visibility};

    fn video(
        kind: VideoKind,
        status: VideoStatus,
        master: Option<&str>,
        vod: Option<&str>,
    ) -> Video {
        Video {
            id: "v1".into(),
            owner_id: "o".into(),
            kind,
            status,
            title: "t".into(),
            description: String::new(),
            tags: vec![],
            visibility: Visibility::Public,
            access: WirePolicy::Free,
            duration_secs: None,
            renditions: vec![],
            playback: PlaybackLocations {
                master: master.map(Into::into),
                vod_master: vod.map(Into::into),
                low_latency: None,
            },
            poster: None,
            storyboard: None,
            progress: None,
            failure: None,
            counters: Counters::default(),
            created_at: chrono::Utc::now(),
            updated_at: None,
            published_at: None,
            started_at: None,
            ended_at: None,
            version: 1,
        }
    }

    fn edge() -> EdgeUrls {
        let keys = playback_token::Keys::parse(
            &format!("k1={}", crate::config::TEST_PLAYBACK_SECRET),
            None,
        )
        .unwrap();
        EdgeUrls::new("http://edge", keys, std::time::Duration::from_secs(60))
    }

    /// The storage key a playback URL opens, after checking its token.
    fn opens(p: &Playback) -> String {
        let keys = playback_token::Keys::parse(
            &format!("k1={}", crate::config::TEST_PLAYBACK_SECRET),
            None,
        )
        .unwrap();
        let path = p.url.strip_prefix("http://edge").unwrap();
        let now = chrono::Utc::now().timestamp() as u64;
        assert!(p.expires_at > chrono::Utc::now());
        keys.verify_path(path, now).unwrap().to_string()
    }

    #[test]
    fn what_plays() {
        let e = edge();
        let mut live = video(
            VideoKind::Live,
            VideoStatus::Live,
            Some("live/v1/master.m3u8"),
            None,
        );
        // not playable until ingest has stored the master playlist and recorded the rungs
        assert_eq!(playback_of(&live, &e), None);
        live.renditions.push(service_clients::metadata::Rendition {
            name: "720p".into(),
            width: 1280,
            height: 720,
            bandwidth: 3_000_000,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            frame_rate: 30.0,
            playlist: "live/v1/720p/index.m3u8".into(),
        });
        let p = playback_of(&live, &e).unwrap();
        assert!(p.live);
        assert!(p.url.starts_with("http://edge/p/k1."), "{}", p.url);
        assert_eq!(opens(&p), "live/v1/master.m3u8");
        assert_eq!(p.low_latency_url, None, "no parts cut: standard HLS only");
        // a broadcast that cuts parts also has its low-latency master, signed the same way
        live.playback.low_latency = Some("live/v1/ll.m3u8".into());
        let p = playback_of(&live, &e).unwrap();
        let ll = Playback {
            url: p.low_latency_url.clone().expect("a low-latency URL"),
            ..p.clone()
        };
        assert_eq!(opens(&ll), "live/v1/ll.m3u8");
        assert_eq!(opens(&p), "live/v1/master.m3u8");
        let ended = video(
            VideoKind::Live,
            VideoStatus::Ended,
            Some("live/v1/master.m3u8"),
            None,
        );
        assert_eq!(
            playback_of(&ended, &e),
            None,
            "ended, not yet recorded: offline"
        );
        let mut rec = video(
            VideoKind::Live,
            VideoStatus::Recorded,
            Some("live/v1/master.m3u8"),
            Some("live/v1/vod.m3u8"),
        );
        // the live edge is gone once recorded
        rec.playback.low_latency = Some("live/v1/ll.m3u8".into());
        let p = playback_of(&rec, &e).unwrap();
        assert!(!p.live);
        assert_eq!(opens(&p), "live/v1/vod.m3u8");
        assert_eq!(p.low_latency_url, None);
        let rec_no_vod = video(
            VideoKind::Live,
            VideoStatus::Recorded,
            Some("live/v1/master.m3u8"),
            None,
        );
        assert_eq!(playback_of(&rec_no_vod, &e), None);
        let up = video(
            VideoKind::Upload,
            VideoStatus::Ready,
            Some("up/v1/master.m3u8"),
            None,
        );
        assert_eq!(opens(&playback_of(&up, &e).unwrap()), "up/v1/master.m3u8");
        let processing = video(
            VideoKind::Upload,
            VideoStatus::Processing,
            Some("up/v1/master.m3u8"),
            None,
        );
        assert_eq!(playback_of(&processing, &e), None);
        // a key outside a video's folder cannot carry a token: nothing to play
        let odd = video(
            VideoKind::Upload,
            VideoStatus::Ready,
            Some("master.m3u8"),
            None,
        );
        assert_eq!(playback_of(&odd, &e), None);
    }

    #[test]
    fn ids_and_limits() {
        assert!(valid_video_id("0190abc_-Z"));
        assert!(!valid_video_id("a/b"));
        assert!(!valid_video_id(""));
        assert!(!valid_video_id(&"a".repeat(65)));
        assert_eq!(page_limit(None, 20).unwrap(), 20);
        assert!(page_limit(Some(0), 20).is_err());
        assert!(page_limit(Some(101), 20).is_err());
    }
}
