//! The viewer's money: subscribe and cancel, buy a video (idempotent), and the lists of
//! both with their creators and videos.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use futures::StreamExt;
use service_clients::metadata::{AccessPolicy as WirePolicy, Video, VideoStatus, Visibility};

use crate::error::{Error, Result};
use crate::extract::{AppJson, AppPath, Bearer};
use crate::model::{
    ErrorEnvelope, MyPurchase, MyPurchases, MySubscription, MySubscriptions, Purchase,
    PurchaseRequest, SubscribeRequest, Subscription,
};
use crate::upstream::PurchaseInput;
use crate::AppState;

use super::screens::{card, creators_of, valid_video_id};

/// Subscribes to a creator's monthly plan (charged now). Repeating it while subscribed
/// charges nothing and answers 200.
#[utoipa::path(
    post, path = "/v1/subscriptions", tag = "viewer",
    security(("bearer" = [])),
    request_body = SubscribeRequest,
    responses(
        (status = 201, description = "Subscribed; the first month was charged", body = Subscription),
        (status = 200, description = "Already subscribed; nothing charged", body = Subscription),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 402, description = "`payment_declined`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such creator or plan", body = ErrorEnvelope),
        (status = 409, description = "a conflict, e.g. subscribing to yourself", body = ErrorEnvelope),
        (status = 429, description = "`rate_limited`", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "`payment_timeout`: pending; retrying is safe", body = ErrorEnvelope),
    )
)]
pub async fn subscribe(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppJson(body): AppJson<SubscribeRequest>,
) -> Result<impl IntoResponse> {
    let (charged, sub) = st.users.subscribe(&auth, &body).await?;
    tracing::info!(subscription_id = %sub.id, creator_id = %sub.creator_id, charged, "subscribed");
    Ok((
        if charged {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(sub),
    ))
}

/// Cancels a subscription: access lasts until the paid period ends, then it does not renew.
#[utoipa::path(
    delete, path = "/v1/subscriptions/{id}", tag = "viewer",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 200, description = "The subscription, canceled", body = Subscription),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`", body = ErrorEnvelope),
    )
)]
pub async fn cancel(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppPath(id): AppPath<String>,
) -> Result<Json<Subscription>> {
    Ok(Json(st.users.cancel_subscription(&auth, &id).await?))
}

/// My subscriptions, each with its creator.
#[utoipa::path(
    get, path = "/v1/me/subscriptions", tag = "viewer",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "My subscriptions", body = MySubscriptions),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn my_subscriptions(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
) -> Result<Json<MySubscriptions>> {
    let subs = st.users.my_subscriptions(&auth).await?;
    let ids: Vec<&str> = subs.iter().map(|s| s.creator_id.as_str()).collect();
    let creators = if ids.is_empty() {
        Ok(HashMap::new())
    } else {
        st.creators(&ids).await.map_err(|_| ())
    };
    Ok(Json(MySubscriptions {
        subscriptions: subs
            .into_iter()
            .map(|s| MySubscription {
                creator: creators
                    .as_ref()
                    .ok()
                    .and_then(|m| m.get(&s.creator_id).cloned()),
                creator_unavailable: creators.is_err(),
                subscription: s,
            })
            .collect(),
    }))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String> {
    let bad = || {
        Error::invalid("Idempotency-Key", "send an Idempotency-Key header of 1 to 128 printable ASCII characters, and reuse it when retrying")
    };
    let v = headers
        .get("idempotency-key")
        .ok_or_else(bad)?
        .to_str()
        .map_err(|_| bad())?
        .trim();
    if v.is_empty() || v.len() > 128 || !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad());
    }
    Ok(v.to_string())
}

/// Buys a video at the price its creator set. Idempotent on the `Idempotency-Key` header:
/// the same key always yields the same purchase, charged once.
#[utoipa::path(
    post, path = "/v1/purchases", tag = "viewer",
    security(("bearer" = [])),
    params(("Idempotency-Key" = String, Header, pattern = "^[!-~]{1,128}$", description = "Unique per purchase attempt (1 to 128 printable ASCII characters); reuse it when retrying")),
    request_body = PurchaseRequest,
    responses(
        (status = 201, description = "Bought (or the earlier answer for this key)", body = Purchase),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
        (status = 402, description = "`payment_declined`", body = ErrorEnvelope),
        (status = 404, description = "`not_found`: no such video", body = ErrorEnvelope),
        (status = 409, description = "`not_for_sale`, `not_watchable`, `already_purchased` or `idempotency_conflict`", body = ErrorEnvelope),
        (status = 429, description = "`rate_limited`", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 504, description = "`payment_timeout`: pending; retrying with the same key is safe", body = ErrorEnvelope),
    )
)]
pub async fn purchase(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    headers: HeaderMap,
    AppJson(body): AppJson<PurchaseRequest>,
) -> Result<impl IntoResponse> {
    let key = idempotency_key(&headers)?;
    if !valid_video_id(&body.video_id) {
        return Err(Error::NotFound("video"));
    }
    let (buyer, v) = tokio::join!(st.user_id(&auth), st.catalog.get_video(&body.video_id));
    let buyer = buyer?;
    let v = v?.ok_or(Error::NotFound("video"))?;
    // nothing is charged for a video the buyer could not watch: a private one is not even
    // shown to them, and one that is not playable (ended without a recording, processing,
    // failed) waits until it is
    if v.visibility == Visibility::Private && v.owner_id != buyer {
        return Err(Error::NotFound("video"));
    }
    if !matches!(
        v.status,
        VideoStatus::Live | VideoStatus::Recorded | VideoStatus::Ready
    ) {
        return Err(Error::Conflict {
            code: "not_watchable",
            message: "this video cannot be watched at the moment, so it is not sold".into(),
        });
    }
    let WirePolicy::Purchase {
        price_minor,
        currency,
    } = &v.access
    else {
        return Err(Error::Conflict {
            code: "not_for_sale",
            message: "this video is not sold one by one".into(),
        });
    };
    let input = PurchaseInput {
        video_id: &v.id,
        creator_id: &v.owner_id,
        price_minor: *price_minor,
        currency,
        idempotency_key: &key,
        payment_token: body.payment_token.as_deref(),
    };
    let p = st.users.purchase(&auth, &input).await?;
    tracing::info!(purchase_id = %p.id, video_id = %v.id, status = ?p.status, "purchase answered");
    Ok((StatusCode::CREATED, Json(p)))
}

/// My purchases, newest first, each with its video.
#[utoipa::path(
    get, path = "/v1/me/purchases", tag = "viewer",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "My purchases", body = MyPurchases),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn my_purchases(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
) -> Result<Json<MyPurchases>> {
    let purchases = st.users.my_purchases(&auth, 100).await?;
    let mut ids: Vec<String> = purchases.iter().map(|p| p.video_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    // the catalog has no batch read; a few concurrent reads of its cached documents
    let catalog = &st.catalog;
    let videos: HashMap<String, Video> = futures::stream::iter(ids)
        .map(|id: String| async move { catalog.get_video(&id).await.ok().flatten() })
        .buffer_unordered(8)
        .filter_map(|v| async move { v.map(|v| (v.id.clone(), v)) })
        .collect()
        .await;
    let refs: Vec<&Video> = videos.values().collect();
    let creators = creators_of(&st, &refs).await;
    Ok(Json(MyPurchases {
        purchases: purchases
            .into_iter()
            .map(|p| MyPurchase {
                video: videos
                    .get(&p.video_id)
                    .map(|v| card(v, &st.edge, &creators)),
                purchase: p,
            })
            .collect(),
    }))
}
