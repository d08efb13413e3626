//! The HTTP API: routes, extractors and thin handlers over the domain modules.

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::json;
use tower_http::trace::TraceLayer;

use crate::config::PaymentMode;
use crate::entitlements::{self, EntitlementCheck};
use crate::error::{Error, Result};
use crate::model::{parse_id, Role};
use crate::purchases::{self, PurchaseInput};
use crate::state::AppState;
use crate::{ledger, stream_keys, subscriptions, users};

/// The user-svc router: `/v1` (called by bff on behalf of a signed-in user),
/// `/internal/v1` (called by services) and `/healthz`.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/auth/signup", post(signup))
        .route("/v1/auth/login", post(login))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(logout))
        .route("/v1/me", get(me).patch(patch_me))
        .route("/v1/me/become-creator", post(become_creator))
        .route("/v1/me/plan", put(put_plan).get(my_plan))
        .route(
            "/v1/me/broadcast-defaults",
            put(put_broadcast_defaults).get(broadcast_defaults),
        )
        .route("/v1/me/subscriptions", get(my_subscriptions))
        .route("/v1/me/purchases", get(my_purchases))
        .route("/v1/me/transactions", get(my_transactions))
        .route("/v1/me/balance", get(my_balance))
        .route("/v1/creators/me/subscribers", get(my_subscribers))
        .route("/v1/creators/{id}/plan", get(creator_plan))
        .route("/v1/stream-keys", post(create_key).get(list_keys))
        .route("/v1/stream-keys/{id}", delete(revoke_key))
        .route("/v1/stream-keys/{id}/rotate", post(rotate_key))
        .route("/v1/subscriptions", post(subscribe))
        .route("/v1/subscriptions/{id}", delete(cancel_subscription))
        .route("/v1/purchases", post(purchase))
        .route("/v1/purchases/{id}/refund", post(refund))
        .route("/internal/v1/stream-keys/validate", post(validate_key))
        .route("/internal/v1/entitlements/check", post(check_entitlement))
        .route("/internal/v1/users/batch", post(users_batch))
        .route("/internal/v1/users/{id}", get(user_profile))
        .route("/internal/v1/subscriptions/renew", post(renew))
        .route("/internal/v1/payments/reconcile", post(reconcile))
        .route(
            "/internal/v1/payment-provider/mode",
            put(set_payment_mode).get(payment_mode),
        )
        .route_layer(middleware::from_fn_with_state(
            "user_svc",
            service_kit::track_http,
        ))
        .fallback(service_kit::extract::no_route)
        .method_not_allowed_fallback(service_kit::extract::method_not_allowed)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
        .merge(service_kit::health_router())
}

pub use service_kit::extract::{ClientAddr, Json as AppJson, Query as AppQuery};

#[derive(Debug, Default, Deserialize)]
pub struct ListParams {
    pub limit: Option<u32>,
}

/// The signed-in user, from `Authorization: Bearer <access token>`.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: String,
    /// The role when the token was issued; checks that matter read the current one.
    pub role: Role,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::Unauthorized)?;
        let (scheme, token) = value.split_once(' ').ok_or(Error::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::Unauthorized);
        }
        let claims = state.jwt.verify(token.trim())?;
        Ok(AuthUser {
            id: claims.sub,
            role: claims.role,
        })
    }
}

impl service_kit::extract::ForwardedHops for AppState {
    fn forwarded_hops(&self) -> usize {
        self.config.rate_limit.forwarded_hops
    }
}

// ---- auth ----

#[derive(Deserialize)]
struct SignupBody {
    email: String,
    password: String,
    display_name: String,
}

async fn signup(
    State(st): State<AppState>,
    addr: ClientAddr,
    AppJson(b): AppJson<SignupBody>,
) -> Result<impl IntoResponse> {
    let session = users::signup(&st, &b.email, &b.password, &b.display_name, &addr.0).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

async fn login(
    State(st): State<AppState>,
    addr: ClientAddr,
    AppJson(b): AppJson<LoginBody>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        users::login(&st, &b.email, &b.password, &addr.0).await?,
    ))
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

async fn refresh(
    State(st): State<AppState>,
    AppJson(b): AppJson<RefreshBody>,
) -> Result<impl IntoResponse> {
    Ok(Json(users::refresh(&st, &b.refresh_token).await?))
}

async fn logout(
    State(st): State<AppState>,
    AppJson(b): AppJson<RefreshBody>,
) -> Result<StatusCode> {
    users::logout(&st, &b.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- me ----

async fn me(State(st): State<AppState>, user: AuthUser) -> Result<impl IntoResponse> {
    let row = users::find_by_id(&st, &user.id)
        .await?
        .ok_or(Error::Unauthorized)?;
    Ok(Json(crate::model::Me::from(row)))
}

/// Distinguishes an absent field (`None`) from `null` (`Some(None)`).
fn double_option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> std::result::Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct PatchMe {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    avatar_url: Option<Option<String>>,
}

async fn patch_me(
    State(st): State<AppState>,
    user: AuthUser,
    AppJson(b): AppJson<PatchMe>,
) -> Result<impl IntoResponse> {
    let avatar = b.avatar_url.as_ref().map(|o| o.as_deref());
    let me = users::update_profile(&st, &user.id, b.display_name.as_deref(), avatar).await?;
    crate::replica::wrote(&st, &user.id).await;
    Ok(Json(me))
}

async fn become_creator(State(st): State<AppState>, user: AuthUser) -> Result<impl IntoResponse> {
    let me = users::become_creator(&st, &user.id).await?;
    crate::replica::wrote(&st, &user.id).await;
    Ok(Json(me))
}

#[derive(Deserialize)]
struct PlanBody {
    price_minor: i64,
    currency: String,
}

async fn put_plan(
    State(st): State<AppState>,
    user: AuthUser,
    AppJson(b): AppJson<PlanBody>,
) -> Result<impl IntoResponse> {
    let plan = subscriptions::set_plan(&st, &user.id, b.price_minor, &b.currency).await?;
    crate::replica::wrote(&st, &user.id).await;
    Ok(Json(plan))
}

async fn broadcast_defaults(
    State(st): State<AppState>,
    user: AuthUser,
) -> Result<impl IntoResponse> {
    Ok(Json(crate::broadcast_defaults::get(&st, &user.id).await?))
}

async fn put_broadcast_defaults(
    State(st): State<AppState>,
    user: AuthUser,
    AppJson(b): AppJson<crate::broadcast_defaults::BroadcastDefaults>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        crate::broadcast_defaults::set(&st, &user.id, b).await?,
    ))
}

async fn my_plan(State(st): State<AppState>, user: AuthUser) -> Result<impl IntoResponse> {
    Ok(Json(
        subscriptions::get_plan(&st, &user.id)
            .await?
            .ok_or(Error::NotFound("plan"))?,
    ))
}

async fn creator_plan(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let id = parse_id(&id, "plan")?;
    Ok(Json(
        subscriptions::public_plan(&st, &id)
            .await?
            .ok_or(Error::NotFound("plan"))?,
    ))
}

async fn my_subscriptions(State(st): State<AppState>, user: AuthUser) -> Result<impl IntoResponse> {
    Ok(Json(
        json!({ "subscriptions": subscriptions::list_for_subscriber(&st, &user.id).await? }),
    ))
}

async fn my_subscribers(State(st): State<AppState>, user: AuthUser) -> Result<impl IntoResponse> {
    Ok(Json(
        json!({ "subscribers": subscriptions::list_subscribers(&st, &user.id).await? }),
    ))
}

async fn my_purchases(
    State(st): State<AppState>,
    user: AuthUser,
    AppQuery(q): AppQuery<ListParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        json!({ "purchases": purchases::list_for_buyer(&st, &user.id, q.limit.unwrap_or(100)).await? }),
    ))
}

async fn my_transactions(
    State(st): State<AppState>,
    user: AuthUser,
    AppQuery(q): AppQuery<ListParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        json!({ "transactions": ledger::history(&st, &user.id, q.limit.unwrap_or(100)).await? }),
    ))
}

async fn my_balance(State(st): State<AppState>, user: AuthUser) -> Result<impl IntoResponse> {
    Ok(Json(
        json!({ "balances": ledger::balances(&st, &user.id).await? }),
    ))
}

// ---- stream keys ----

#[derive(Deserialize, Default)]
struct NewKeyBody {
    #[serde(default)]
    label: Option<String>,
}

async fn create_key(
    State(st): State<AppState>,
    user: AuthUser,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse> {
    // the body is optional
    let b: NewKeyBody = if body.iter().all(u8::is_ascii_whitespace) {
        NewKeyBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| Error::InvalidBody(e.to_string()))?
    };
    Ok((
        StatusCode::CREATED,
        Json(stream_keys::create(&st, &user.id, b.label.as_deref()).await?),
    ))
}

async fn list_keys(State(st): State<AppState>, user: AuthUser) -> Result<impl IntoResponse> {
    Ok(Json(
        json!({ "stream_keys": stream_keys::list(&st, &user.id).await? }),
    ))
}

async fn rotate_key(
    State(st): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let id = parse_id(&id, "stream key")?;
    Ok((
        StatusCode::CREATED,
        Json(stream_keys::rotate(&st, &user.id, &id).await?),
    ))
}

async fn revoke_key(
    State(st): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = parse_id(&id, "stream key")?;
    stream_keys::revoke(&st, &user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct ValidateBody {
    key: String,
}

async fn validate_key(
    State(st): State<AppState>,
    AppJson(b): AppJson<ValidateBody>,
) -> Result<impl IntoResponse> {
    Ok(Json(stream_keys::validate(&st, &b.key).await?))
}

// ---- subscriptions ----

#[derive(Deserialize)]
struct SubscribeBody {
    creator_id: String,
    #[serde(default)]
    payment_token: Option<String>,
}

async fn subscribe(
    State(st): State<AppState>,
    user: AuthUser,
    AppJson(b): AppJson<SubscribeBody>,
) -> Result<impl IntoResponse> {
    let (sub, charged) =
        subscriptions::subscribe(&st, &user.id, &b.creator_id, b.payment_token).await?;
    Ok((
        if charged {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(sub),
    ))
}

async fn cancel_subscription(
    State(st): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    Ok(Json(subscriptions::cancel(&st, &user.id, &id).await?))
}

// ---- purchases ----

async fn purchase(
    State(st): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    AppJson(mut b): AppJson<PurchaseInput>,
) -> Result<impl IntoResponse> {
    if let Some(h) = headers.get("idempotency-key") {
        let h = h
            .to_str()
            .map_err(|_| Error::invalid("idempotency_key", "Idempotency-Key must be ASCII"))?
            .to_string();
        match &b.idempotency_key {
            Some(k) if k != &h => {
                return Err(Error::invalid(
                    "idempotency_key",
                    "the body and the Idempotency-Key header disagree",
                ));
            }
            _ => b.idempotency_key = Some(h),
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(purchases::purchase(&st, &user.id, b).await?),
    ))
}

async fn refund(
    State(st): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    Ok(Json(purchases::refund(&st, &user.id, &id).await?))
}

// ---- internal ----

async fn check_entitlement(
    State(st): State<AppState>,
    AppJson(b): AppJson<EntitlementCheck>,
) -> Result<impl IntoResponse> {
    Ok(Json(entitlements::check(&st, b).await?))
}

async fn user_profile(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let id = parse_id(&id, "user")?;
    Ok(Json(users::profile(&st, &id).await?))
}

#[derive(Deserialize)]
struct BatchBody {
    ids: Vec<String>,
}

async fn users_batch(
    State(st): State<AppState>,
    AppJson(b): AppJson<BatchBody>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        json!({ "users": users::profiles(&st, &b.ids).await? }),
    ))
}

async fn renew(State(st): State<AppState>) -> Result<impl IntoResponse> {
    Ok(Json(subscriptions::renew_due(&st).await?))
}

async fn reconcile(State(st): State<AppState>) -> Result<impl IntoResponse> {
    Ok(Json(crate::reconcile_pending(&st).await?))
}

#[derive(Serialize, Deserialize)]
struct ModeBody {
    mode: PaymentMode,
}

async fn set_payment_mode(
    State(st): State<AppState>,
    AppJson(b): AppJson<ModeBody>,
) -> Result<impl IntoResponse> {
    let local = st
        .local_provider
        .as_ref()
        .ok_or(Error::NotFound("local payment provider"))?;
    local.set_mode(b.mode);
    tracing::info!(mode = ?b.mode, "local payment provider mode changed");
    Ok(Json(ModeBody { mode: local.mode() }))
}

async fn payment_mode(State(st): State<AppState>) -> Result<impl IntoResponse> {
    let local = st
        .local_provider
        .as_ref()
        .ok_or(Error::NotFound("local payment provider"))?;
    Ok(Json(ModeBody { mode: local.mode() }))
}
