//! The `/v1` JSON shapes: what apps in the field depend on. Each type is also its OpenAPI
//! schema. Shapes coming from user-svc are decoded into these same types, so a field user-svc
//! adds does not leak into `/v1` until it is added here, and one it drops fails loudly (502).
//!
//! Compatibility rule (see README, "Versioning"): within `/v1`, fields are only ever added.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use service_clients::metadata::{self as wire, AccessPolicy as WirePolicy};
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------------------
// errors

/// Every error answer: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code: `invalid_field`, `unauthorized`, `invalid_credentials`,
    /// `forbidden`, `not_found`, `method_not_allowed`, `conflict` codes (`email_taken`,
    /// `version_conflict`, `already_purchased`, `idempotency_conflict`, `not_for_sale`,
    /// `too_many_stream_keys`, ...), `payment_declined`, `payload_too_large`, `rate_limited`,
    /// `internal`, `upstream_error`, `unavailable`, `payment_unavailable`, `payment_timeout`.
    pub code: String,
    /// Human-readable explanation (not for parsing).
    pub message: String,
    /// The request field at fault, for `invalid_field`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// accounts

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Creator,
    Admin,
}

/// The signed-in user's own account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Tokens handed out at sign-up, log-in and refresh. Send `Authorization: Bearer
/// <access_token>`; when it expires, trade `refresh_token` for a new session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Session {
    pub user: User,
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

/// A browser session (`/v1/auth/web/*`): the refresh token is in an HttpOnly cookie, never
/// in the body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WebSession {
    pub user: User,
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Seconds until the session (the cookie) expires unless renewed.
    pub refresh_expires_in: u64,
    /// Also in the `caudal_csrf` cookie: send it as `X-CSRF-Token` to refresh or log out.
    pub csrf_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignupRequest {
    #[schema(
        min_length = 3,
        max_length = 200,
        pattern = r"^[^@\s\x00-\x1f\x7f-\x9f]+@[^@\s.\x00-\x1f\x7f-\x9f]([^@\s\x00-\x1f\x7f-\x9f]*[^@\s.\x00-\x1f\x7f-\x9f])?$"
    )]
    pub email: String,
    /// At least 8 characters.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// 1 to 64 printable characters.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^\s*[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[schema(max_length = 512)]
    pub refresh_token: String,
}

/// `PATCH /v1/me`: absent fields are left alone; `avatar_url: null` removes the avatar.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ProfileEdit {
    /// 1 to 64 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^\s*[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: Option<String>,
    /// An `http(s)://` image URL, or `null` to remove the avatar.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "double_option"
    )]
    #[schema(value_type = Option<String>, required = false, max_length = 512, pattern = r"^(https?://[^\s\x00-\x1f\x7f-\x9f]+)?$")]
    pub avatar_url: Option<Option<String>>,
}

/// An integer that may be written as an integral number (`3.0`), as JSON Schema allows.
fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => Ok(f as i64),
        _ => Err(serde::de::Error::custom(format!(
            "expected an integer, got {n}"
        ))),
    }
}

fn opt_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "integer")] i64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// Tells an absent field (`None`) from `null` (`Some(None)`).
fn double_option<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// What anyone may see about a creator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Creator {
    pub id: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// videos

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Live,
    Upload,
}

/// Live: `live` -> `ended` -> `recorded`. Upload: `created` -> `uploading` -> `processing` ->
/// `ready` (or `failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Created,
    Uploading,
    Processing,
    Ready,
    Failed,
    Live,
    Ended,
    Recorded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed on home and in search.
    Public,
    /// Watchable by anyone with the link, never listed.
    Unlisted,
    /// Only the owner sees it.
    Private,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Free,
    Subscribers,
    Purchase,
}

/// Who may watch: `free`, `subscribers` (of the creator's plan) or `purchase` (this video,
/// at `price_minor` in `currency`, both required then).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AccessPolicy {
    pub policy: PolicyKind,
    /// Price in minor units (cents), for `purchase`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_integer"
    )]
    #[schema(minimum = 1)]
    pub price_minor: Option<i64>,
    /// ISO 4217 code such as `EUR`, for `purchase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Counters {
    pub views: i64,
    pub likes: i64,
}

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rendition {
    /// e.g. `720p`, `source`.
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Peak bits per second.
    pub bandwidth: u64,
}

/// A video in a list (home rows, search).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Card {
    pub id: String,
    pub title: String,
    pub kind: Kind,
    pub status: Status,
    #[schema(required = true)]
    pub duration_secs: Option<f64>,
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    /// Poster image URL through the edge.
    #[schema(required = true)]
    pub poster: Option<String>,
    /// Who may watch (a badge: free, subscribers, purchase).
    pub access: PolicyKind,
    /// `null` when unknown (see `creator_unavailable`).
    #[schema(required = true)]
    pub creator: Option<Creator>,
    /// True when the creator's profile could not be fetched (user-svc down); the video is
    /// still listed.
    pub creator_unavailable: bool,
}

/// `GET /v1/home`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Home {
    /// Public broadcasts on air now, latest started first.
    pub live: Vec<Card>,
    /// Public recorded broadcasts and ready uploads, newest first.
    pub recent: Vec<Card>,
    /// Most viewed public videos over the last day.
    pub trending: Vec<Card>,
    /// Sections that could not be fetched (`live`, `recent`, `trending`, `creators`); empty
    /// when the screen is complete.
    pub unavailable: Vec<String>,
}

/// A page of cards.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CardPage {
    pub items: Vec<Card>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// A creator's monthly plan as viewers see it: subscribers watch every `subscribers` video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatorPlan {
    pub price_minor: i64,
    pub currency: String,
    /// Always `month`.
    pub interval: String,
}

/// `GET /v1/creators/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatorPage {
    pub creator: Creator,
    /// `null` when the creator sells no subscription.
    #[schema(required = true)]
    pub plan: Option<CreatorPlan>,
    /// Public videos: live now, recorded broadcasts and ready uploads, newest first.
    pub videos: Vec<Card>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The video on the watch screen.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VideoInfo {
    pub id: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub kind: Kind,
    pub status: Status,
    #[schema(required = true)]
    pub duration_secs: Option<f64>,
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub poster: Option<String>,
    pub renditions: Vec<Rendition>,
    pub counters: Counters,
    pub access_policy: AccessPolicy,
}

/// Why the viewer may or may not watch. `unavailable`: the access service could not be
/// asked (user-svc down), so a protected video is not played.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Free,
    Owner,
    Subscribed,
    Purchased,
    NotSubscribed,
    NotPurchased,
    LoginRequired,
    Unavailable,
}

/// What would grant access: a monthly subscription to the creator, or buying the video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Offer {
    Subscription {
        creator_id: String,
        price_minor: i64,
        currency: String,
        interval: String,
    },
    Purchase {
        video_id: String,
        creator_id: String,
        price_minor: i64,
        currency: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Access {
    pub allowed: bool,
    pub reason: Reason,
    /// Present when denied and something can be bought; `null` otherwise.
    #[schema(required = true)]
    pub offer: Option<Offer>,
}

/// Where to play: the master playlist through the edge, with a playback token in its path
/// (`{edge}/p/{token}/{key}`) that opens this video's playlists and segments, and only
/// until `expires_at`. Players resolve relative URIs against the path, so every child request
/// carries it. Ask for the video again before then for a fresh URL (access is checked again);
/// a player can keep its position and swap the `/p/{token}/` part of its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Playback {
    pub url: String,
    /// True for a broadcast on air (a live playlist), false for video on demand.
    pub live: bool,
    /// A broadcast on air that cuts parts: its low-latency HLS master playlist (EXT-X-PART,
    /// blocking reloads; play it with hls.js `lowLatencyMode`), signed like `url`. `url` stays
    /// the standard playlist over the same segments for players without LL-HLS.
    #[schema(required = true)]
    pub low_latency_url: Option<String>,
    /// When the URL's token stops working.
    pub expires_at: DateTime<Utc>,
    /// The storyboard (scrubbing thumbnails) of a video on demand: a WebVTT track, signed like
    /// `url`, whose cues are `storyboard-N.jpg#xywh=x,y,w,h` relative to it.
    #[schema(required = true)]
    pub storyboard: Option<String>,
}

/// `GET /v1/videos/{id}`: the watch screen in one answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VideoDetail {
    pub video: VideoInfo,
    #[schema(required = true)]
    pub creator: Option<Creator>,
    pub creator_unavailable: bool,
    pub access: Access,
    /// Present only when access is allowed and there is something to play.
    #[schema(required = true)]
    pub playback: Option<Playback>,
}

/// `GET /v1/videos/{id}/playback` (deprecated): the access decision and the playback URL.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlaybackAnswer {
    pub access: Access,
    #[schema(required = true)]
    pub playback: Option<Playback>,
}

// ---------------------------------------------------------------------------------------------
// studio

/// One of the creator's own videos, whatever its status, with what the editor needs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StudioVideo {
    pub id: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub kind: Kind,
    pub status: Status,
    pub visibility: Visibility,
    pub access: AccessPolicy,
    #[schema(required = true)]
    pub duration_secs: Option<f64>,
    #[schema(required = true)]
    pub poster: Option<String>,
    /// Processing progress of an upload, percent (100 once `ready`).
    #[schema(required = true)]
    pub progress: Option<f64>,
    /// Why the video is `failed`, in words for its owner.
    #[schema(required = true)]
    pub failure: Option<String>,
    pub counters: Counters,
    pub created_at: DateTime<Utc>,
    #[schema(required = true)]
    pub published_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub started_at: Option<DateTime<Utc>>,
    #[schema(required = true)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Send back as `expected_version` when editing.
    pub version: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StudioVideoPage {
    pub items: Vec<StudioVideo>,
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// `PATCH /v1/studio/videos/{id}`: absent fields are left alone. Fails with 409
/// `version_conflict` when the video changed since `expected_version` was read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VideoEdit {
    /// The `version` read with the video.
    #[serde(deserialize_with = "integer")]
    #[schema(minimum = 1)]
    pub expected_version: i64,
    /// 1 to 200 characters once trimmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^\s*[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// At most 20 tags of 1 to 40 characters; stored lowercased, each once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 20)]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessPolicy>,
}

/// `GET/PUT /v1/studio/broadcast-defaults`: what my new broadcasts start with. A broadcast
/// is protected from its first second when the default access is `subscribers` or
/// `purchase`. Until set: public and free.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BroadcastDefaults {
    pub visibility: Visibility,
    pub access: AccessPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamKey {
    pub id: String,
    /// e.g. `live_****abcd`; the full key is shown only when created or rotated.
    pub masked: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamKeyList {
    pub stream_keys: Vec<StreamKey>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NewStreamKeyRequest {
    /// A name to tell keys apart (`OBS at home`), at most 64 printable characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$")]
    pub label: Option<String>,
}

/// A key just created or rotated: the only answer that carries the full key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewStreamKey {
    pub id: String,
    pub masked: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The full stream key. Store it now: it is never shown again.
    pub key: String,
    /// The OBS settings with this key in full.
    pub obs: ObsSettings,
}

/// What to type in OBS (Settings > Stream > Service: Custom; Settings > Output > Advanced).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ObsSettings {
    /// "Server".
    pub server_url: String,
    /// "Stream Key": in full right after creation, otherwise masked (`live_****abcd`);
    /// `null` when the creator has no key yet.
    #[schema(required = true)]
    pub stream_key: Option<String>,
    pub stream_key_masked: bool,
    /// Id of that key, to rotate or revoke it.
    #[schema(required = true)]
    pub stream_key_id: Option<String>,
    /// Recommended encoder profiles, best first; pick the one your upload sustains.
    pub profiles: Vec<EncoderProfile>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EncoderProfile {
    /// e.g. `1080p30`.
    pub name: String,
    /// `x264`.
    pub encoder: String,
    /// `CBR`.
    pub rate_control: String,
    pub video_bitrate_kbps: u32,
    pub keyframe_interval_secs: u32,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// `AAC`.
    pub audio_codec: String,
    pub audio_bitrate_kbps: u32,
    pub audio_sample_rate_hz: u32,
    /// Minimum upload bandwidth to use this profile, kbit/s.
    pub min_upload_kbps: u32,
}

/// A creator's monthly plan: subscribers watch every `subscribers` video.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    pub creator_id: String,
    pub price_minor: i64,
    pub currency: String,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanAnswer {
    /// `null` when the creator has no plan yet.
    #[schema(required = true)]
    pub plan: Option<Plan>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PlanRequest {
    /// Monthly price in minor units (cents), 1 to 100000000.
    #[serde(deserialize_with = "integer")]
    #[schema(minimum = 1, maximum = 100000000)]
    pub price_minor: i64,
    /// ISO 4217 code such as `EUR`.
    #[schema(pattern = "^[A-Za-z]{3}$")]
    pub currency: String,
}

/// A subscriber as the creator sees them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Subscriber {
    pub subscriber: Creator,
    pub subscription: Subscription,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscriberList {
    pub subscribers: Vec<Subscriber>,
}

// ---------------------------------------------------------------------------------------------
// viewer

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Incomplete,
    Active,
    Canceled,
    Expired,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Subscription {
    pub id: String,
    pub subscriber_id: String,
    pub creator_id: String,
    pub status: SubscriptionStatus,
    /// Whether subscriber-only videos can be watched now.
    pub has_access: bool,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<DateTime<Utc>>,
    pub price_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubscribeRequest {
    /// The creator's user id (not your own).
    #[schema(
        pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    pub creator_id: String,
    /// Card token for the payment provider (the local provider understands `tok_approve`,
    /// `tok_decline`, `tok_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_token: Option<String>,
}

/// One of my subscriptions with its creator.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MySubscription {
    pub subscription: Subscription,
    #[schema(required = true)]
    pub creator: Option<Creator>,
    pub creator_unavailable: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MySubscriptions {
    pub subscriptions: Vec<MySubscription>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseStatus {
    Pending,
    Completed,
    Failed,
    RefundPending,
    Refunded,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Purchase {
    pub id: String,
    pub buyer_id: String,
    pub creator_id: String,
    pub video_id: String,
    pub price_minor: i64,
    pub currency: String,
    pub status: PurchaseStatus,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
}

/// `POST /v1/purchases`: the price is the video's, read by bff; send an `Idempotency-Key`
/// header and reuse it when retrying.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PurchaseRequest {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub video_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_token: Option<String>,
}

/// One of my purchases with the video it bought.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MyPurchase {
    pub purchase: Purchase,
    /// `null` when the video is gone or the catalog could not be asked.
    #[schema(required = true)]
    pub video: Option<Card>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MyPurchases {
    pub purchases: Vec<MyPurchase>,
}

// ---------------------------------------------------------------------------------------------
// conversions from the catalog's wire types

impl From<wire::VideoKind> for Kind {
    fn from(k: wire::VideoKind) -> Self {
        match k {
            wire::VideoKind::Live => Kind::Live,
            wire::VideoKind::Upload => Kind::Upload,
        }
    }
}

impl From<wire::VideoStatus> for Status {
    fn from(s: wire::VideoStatus) -> Self {
        use wire::VideoStatus as W;
        match s {
            W::Created => Status::Created,
            W::Uploading => Status::Uploading,
            W::Processing => Status::Processing,
            W::Ready => Status::Ready,
            W::Failed => Status::Failed,
            W::Live => Status::Live,
            W::Ended => Status::Ended,
            W::Recorded => Status::Recorded,
        }
    }
}

impl From<wire::Visibility> for Visibility {
    fn from(v: wire::Visibility) -> Self {
        match v {
            wire::Visibility::Public => Visibility::Public,
            wire::Visibility::Unlisted => Visibility::Unlisted,
            wire::Visibility::Private => Visibility::Private,
        }
    }
}

impl From<Visibility> for wire::Visibility {
    fn from(v: Visibility) -> Self {
        match v {
            Visibility::Public => wire::Visibility::Public,
            Visibility::Unlisted => wire::Visibility::Unlisted,
            Visibility::Private => wire::Visibility::Private,
        }
    }
}

impl From<&WirePolicy> for AccessPolicy {
    fn from(p: &WirePolicy) -> Self {
        match p {
            WirePolicy::Free => AccessPolicy {
                policy: PolicyKind::Free,
                price_minor: None,
                currency: None,
            },
            WirePolicy::Subscribers => AccessPolicy {
                policy: PolicyKind::Subscribers,
                price_minor: None,
                currency: None,
            },
            WirePolicy::Purchase {
                price_minor,
                currency,
            } => AccessPolicy {
                policy: PolicyKind::Purchase,
                price_minor: Some(*price_minor),
                currency: Some(currency.clone()),
            },
        }
    }
}

impl From<service_clients::users::Reason> for Reason {
    fn from(r: service_clients::users::Reason) -> Self {
        use service_clients::users::Reason as R;
        match r {
            R::Free => Reason::Free,
            R::Owner => Reason::Owner,
            R::Subscribed => Reason::Subscribed,
            R::Purchased => Reason::Purchased,
            R::NotSubscribed => Reason::NotSubscribed,
            R::NotPurchased => Reason::NotPurchased,
            R::LoginRequired => Reason::LoginRequired,
        }
    }
}

impl From<service_clients::users::Offer> for Offer {
    fn from(o: service_clients::users::Offer) -> Self {
        use service_clients::users::Offer as O;
        match o {
            O::Subscription {
                creator_id,
                price_minor,
                currency,
                interval,
            } => Offer::Subscription {
                creator_id,
                price_minor,
                currency,
                interval,
            },
            O::Purchase {
                video_id,
                creator_id,
                price_minor,
                currency,
            } => Offer::Purchase {
                video_id,
                creator_id,
                price_minor,
                currency,
            },
        }
    }
}

pub fn policy_kind(p: &WirePolicy) -> PolicyKind {
    match p {
        WirePolicy::Free => PolicyKind::Free,
        WirePolicy::Subscribers => PolicyKind::Subscribers,
        WirePolicy::Purchase { .. } => PolicyKind::Purchase,
    }
}

impl AccessPolicy {
    /// The catalog's form; `purchase` needs both price and currency.
    pub fn to_wire(&self) -> Result<WirePolicy, crate::error::Error> {
        use crate::error::Error;
        Ok(match self.policy {
            PolicyKind::Free => WirePolicy::Free,
            PolicyKind::Subscribers => WirePolicy::Subscribers,
            PolicyKind::Purchase => WirePolicy::Purchase {
                price_minor: self.price_minor.ok_or_else(|| {
                    Error::invalid("access.price_minor", "is required for a purchase policy")
                })?,
                currency: self.currency.clone().ok_or_else(|| {
                    Error::invalid("access.currency", "is required for a purchase policy")
                })?,
            },
        })
    }
}

impl From<&wire::Counters> for Counters {
    fn from(c: &wire::Counters) -> Self {
        Counters {
            views: c.views,
            likes: c.likes,
        }
    }
}

impl From<&wire::Rendition> for Rendition {
    fn from(r: &wire::Rendition) -> Self {
        Rendition {
            name: r.name.clone(),
            width: r.width,
            height: r.height,
            bandwidth: r.bandwidth,
        }
    }
}

impl StudioVideo {
    pub fn from_wire(v: &wire::Video, edge: &crate::EdgeUrls) -> Self {
        StudioVideo {
            id: v.id.clone(),
            title: v.title.clone(),
            description: v.description.clone(),
            tags: v.tags.clone(),
            kind: v.kind.into(),
            status: v.status.into(),
            visibility: v.visibility.into(),
            access: (&v.access).into(),
            duration_secs: v.duration_secs,
            poster: v.poster.as_deref().map(|k| edge.image(k)),
            progress: v.progress,
            failure: v.failure.clone(),
            counters: (&v.counters).into(),
            created_at: v.created_at,
            published_at: v.published_at,
            started_at: v.started_at,
            ended_at: v.ended_at,
            version: v.version,
        }
    }
}
