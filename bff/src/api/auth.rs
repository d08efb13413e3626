//! Accounts: sign-up, log-in, refresh, log-out and the signed-in user's own account.
//! user-svc owns them; bff passes the caller's `Authorization` header and address on.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;

use crate::error::Result;
use crate::extract::{AppJson, Bearer, ClientAddr};
use crate::model::{
    ErrorEnvelope, LoginRequest, ProfileEdit, RefreshRequest, Session, SignupRequest, User,
};
use crate::AppState;

/// Creates an account and signs it in.
#[utoipa::path(
    post, path = "/v1/auth/signup", tag = "auth",
    request_body = SignupRequest,
    responses(
        (status = 201, description = "Account created; the session to use", body = Session),
        (status = 409, description = "`email_taken`", body = ErrorEnvelope),
        (status = 429, description = "`rate_limited`", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn signup(
    State(st): State<AppState>,
    addr: ClientAddr,
    AppJson(body): AppJson<SignupRequest>,
) -> Result<impl IntoResponse> {
    let session = st.users.signup(&body, &addr.0).await?;
    tracing::info!(user_id = %session.user.id, "signed up");
    Ok((StatusCode::CREATED, Json(session)))
}

/// Signs in with email and password.
#[utoipa::path(
    post, path = "/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = Session),
        (status = 401, description = "`invalid_credentials`", body = ErrorEnvelope),
        (status = 429, description = "`rate_limited` (per address here, per account and address in user-svc)", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login(
    State(st): State<AppState>,
    addr: ClientAddr,
    AppJson(body): AppJson<LoginRequest>,
) -> Result<Json<Session>> {
    Ok(Json(st.users.login(&body, &addr.0).await?))
}

/// Trades a refresh token for a new session; the old refresh token stops working.
#[utoipa::path(
    post, path = "/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new session", body = Session),
        (status = 401, description = "`unauthorized`: unknown, used or expired refresh token", body = ErrorEnvelope),
        (status = 429, description = "`rate_limited`", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn refresh(
    State(st): State<AppState>,
    AppJson(body): AppJson<RefreshRequest>,
) -> Result<Json<Session>> {
    Ok(Json(st.users.refresh(&body).await?))
}

/// Ends the session of this refresh token (the access token lapses on its own).
#[utoipa::path(
    post, path = "/v1/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Signed out"),
        (status = 429, description = "`rate_limited`", body = ErrorEnvelope,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn logout(
    State(st): State<AppState>,
    AppJson(body): AppJson<RefreshRequest>,
) -> Result<StatusCode> {
    st.users.logout(&body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user's account.
#[utoipa::path(
    get, path = "/v1/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = User),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn me(State(st): State<AppState>, Bearer(auth): Bearer) -> Result<Json<User>> {
    Ok(Json(st.users.me(&auth).await?))
}

/// Changes the display name or avatar.
#[utoipa::path(
    patch, path = "/v1/me", tag = "auth",
    security(("bearer" = [])),
    request_body = ProfileEdit,
    responses(
        (status = 200, description = "The account as changed", body = User),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn edit_me(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
    AppJson(edit): AppJson<ProfileEdit>,
) -> Result<Json<User>> {
    let user = st.users.edit_me(&auth, &edit).await?;
    st.profiles.remove(&user.id);
    Ok(Json(user))
}

/// Turns the account into a creator account (stream keys, plan, studio). Idempotent.
#[utoipa::path(
    post, path = "/v1/me/become-creator", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account, now a creator", body = User),
        (status = 401, description = "`unauthorized`", body = ErrorEnvelope),
    )
)]
pub async fn become_creator(
    State(st): State<AppState>,
    Bearer(auth): Bearer,
) -> Result<Json<User>> {
    let user = st.users.become_creator(&auth).await?;
    tracing::info!(user_id = %user.id, "became a creator");
    Ok(Json(user))
}
