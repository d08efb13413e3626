//! Accounts and sessions: sign-up, log-in, refresh, log-out, profile changes.

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use sqlx::MySqlConnection;
use tracing::info;

use crate::auth::{random_token, sha256_hex};
use crate::error::{is_unique_violation, Error, Result};
use crate::model::{new_id, now, Me, PublicProfile, Role, UserRow};
use crate::state::AppState;

const USER_COLUMNS: &str =
    "id, email, display_name, avatar_url, password_hash, role, created_at, updated_at";

/// Tokens handed out at sign-up, log-in and refresh.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user: Me,
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

pub fn normalize_email(raw: &str) -> Result<String> {
    let e = raw.trim().to_lowercase();
    let bad = || Error::invalid("email", "email must look like name@example.com");
    if e.len() < 3 || e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(bad());
    }
    Ok(e)
}

pub fn validate_password(p: &str) -> Result<()> {
    if p.chars().count() < 8 {
        return Err(Error::invalid(
            "password",
            "password must be at least 8 characters",
        ));
    }
    if p.len() > 1024 {
        return Err(Error::invalid(
            "password",
            "password must be at most 1024 bytes",
        ));
    }
    Ok(())
}

pub fn validate_display_name(raw: &str) -> Result<String> {
    let n = raw.trim();
    let count = n.chars().count();
    if count == 0 || count > 64 || n.chars().any(char::is_control) {
        return Err(Error::invalid(
            "display_name",
            "display_name must be 1 to 64 printable characters",
        ));
    }
    Ok(n.to_string())
}

pub fn validate_avatar_url(raw: &str) -> Result<String> {
    let u = raw.trim();
    let ok = (u.starts_with("https://") || u.starts_with("http://"))
        && u.len() > 8
        && u.len() <= 512
        && !u.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Error::invalid(
            "avatar_url",
            "avatar_url must be an http(s) URL of at most 512 characters",
        ));
    }
    Ok(u.to_string())
}

pub async fn find_by_id(state: &AppState, id: &str) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
    Ok(sqlx::query_as::<_, UserRow>(&sql)
        .bind(id)
        .fetch_optional(&state.db)
        .await?)
}

pub async fn find_by_email(state: &AppState, email: &str) -> Result<Option<UserRow>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?");
    Ok(sqlx::query_as::<_, UserRow>(&sql)
        .bind(email)
        .fetch_optional(&state.db)
        .await?)
}

pub async fn get(state: &AppState, id: &str) -> Result<UserRow> {
    find_by_id(state, id).await?.ok_or(Error::NotFound("user"))
}

/// Inserts a user; a taken email is [`Error::EmailTaken`].
pub async fn create(
    state: &AppState,
    email: &str,
    password_hash: &str,
    display_name: &str,
    role: Role,
) -> Result<UserRow> {
    let id = new_id();
    let t = now();
    let res = sqlx::query(
        "INSERT INTO users (id, email, display_name, avatar_url, password_hash, role, created_at, updated_at) \
         VALUES (?, ?, ?, NULL, ?, ?, ?, ?)",
    )
    .bind(&id)
    .bind(email)
    .bind(display_name)
    .bind(password_hash)
    .bind(role)
    .bind(t)
    .bind(t)
    .execute(&state.db)
    .await;
    match res {
        Ok(_) => get(state, &id).await,
        Err(e) if is_unique_violation(&e) => Err(Error::EmailTaken),
        Err(e) => Err(e.into()),
    }
}

pub async fn signup(
    state: &AppState,
    email: &str,
    password: &str,
    display_name: &str,
    address: &str,
) -> Result<Session> {
    if let Err(e) = state.login_limits.check_signup(address).await {
        metrics::counter!("user_svc_signups_total", "outcome" => "rate_limited").increment(1);
        return Err(e);
    }
    let email = normalize_email(email)?;
    validate_password(password)?;
    let display_name = validate_display_name(display_name)?;
    if find_by_email(state, &email).await?.is_some() {
        return Err(Error::EmailTaken);
    }
    let hash = state.passwords.hash(password).await?;
    let user = create(state, &email, &hash, &display_name, Role::Viewer).await?;
    info!(user_id = %user.id, "user signed up");
    metrics::counter!("user_svc_signups_total").increment(1);
    let mut conn = state.db.acquire().await?;
    issue_session(state, &mut conn, user, &new_id()).await
}

pub async fn login(
    state: &AppState,
    email: &str,
    password: &str,
    address: &str,
) -> Result<Session> {
    let account = email.trim().to_lowercase();
    if let Err(e) = state.login_limits.check(&account, address).await {
        metrics::counter!("user_svc_logins_total", "outcome" => "rate_limited").increment(1);
        return Err(e);
    }
    let user = match normalize_email(&account) {
        Ok(e) => find_by_email(state, &e).await?,
        Err(_) => None,
    };
    let Some(user) = user else {
        state.passwords.verify_dummy(password).await?;
        state.login_limits.failed(&account).await;
        metrics::counter!("user_svc_logins_total", "outcome" => "invalid").increment(1);
        return Err(Error::InvalidCredentials);
    };
    if password.len() > 1024
        || !state
            .passwords
            .verify(password, &user.password_hash)
            .await?
    {
        state.login_limits.failed(&account).await;
        metrics::counter!("user_svc_logins_total", "outcome" => "invalid").increment(1);
        info!(user_id = %user.id, "login refused: wrong password");
        return Err(Error::InvalidCredentials);
    }
    metrics::counter!("user_svc_logins_total", "outcome" => "ok").increment(1);
    info!(user_id = %user.id, "user logged in");
    let mut conn = state.db.acquire().await?;
    issue_session(state, &mut conn, user, &new_id()).await
}

/// Signs an access token and stores a new refresh token (hashed) of `family` on `conn`.
async fn issue_session(
    state: &AppState,
    conn: &mut MySqlConnection,
    user: UserRow,
    family: &str,
) -> Result<Session> {
    let access_token = state.jwt.issue(&user.id, user.role)?;
    let refresh_token = random_token("rt_", 32);
    let ttl = state.config.refresh_token_ttl_secs;
    let t = now();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at, revoked_at) \
         VALUES (?, ?, ?, ?, ?, ?, NULL)",
    )
    .bind(new_id())
    .bind(&user.id)
    .bind(family)
    .bind(sha256_hex(&refresh_token))
    .bind(t)
    .bind(t + TimeDelta::seconds(ttl as i64))
    .execute(&mut *conn)
    .await?;
    Ok(Session {
        user: user.into(),
        access_token,
        token_type: "Bearer".into(),
        expires_in: state.jwt.ttl().as_secs(),
        refresh_token,
        refresh_expires_in: ttl,
    })
}

#[derive(sqlx::FromRow)]
struct RefreshRow {
    id: String,
    user_id: String,
    family_id: String,
    expires_at: chrono::DateTime<chrono::Utc>,
    revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Trades a refresh token for a new session of the same family; the old refresh token is
/// revoked in the same transaction, so a token works once. A token presented again after
/// it was rotated or revoked was copied (by a thief, or the owner's stale copy): every
/// token of its family is revoked, which signs that log-in out everywhere.
pub async fn refresh(state: &AppState, token: &str) -> Result<Session> {
    if token.is_empty() || token.len() > 256 {
        return Err(Error::Unauthorized);
    }
    let hash = sha256_hex(token);
    let mut tx = state.db.begin().await?;
    let row = sqlx::query_as::<_, RefreshRow>(
        "SELECT id, user_id, family_id, expires_at, revoked_at FROM refresh_tokens WHERE token_hash = ? FOR UPDATE",
    )
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let t = now();
    let Some(row) = row else {
        return Err(Error::Unauthorized);
    };
    if row.revoked_at.is_some() {
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
        )
        .bind(t)
        .bind(&row.family_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        metrics::counter!("user_svc_refresh_reuse_total").increment(1);
        tracing::warn!(
            user_id = %row.user_id,
            family = %row.family_id,
            revoked,
            "a rotated refresh token was used again: its family is revoked"
        );
        return Err(Error::Unauthorized);
    }
    if row.expires_at <= t {
        return Err(Error::Unauthorized);
    }
    sqlx::query("UPDATE refresh_tokens SET revoked_at = ? WHERE id = ?")
        .bind(t)
        .bind(&row.id)
        .execute(&mut *tx)
        .await?;
    let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?");
    let user = sqlx::query_as::<_, UserRow>(&sql)
        .bind(&row.user_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(user) = user else {
        return Err(Error::Unauthorized);
    };
    let session = issue_session(state, &mut tx, user, &row.family_id).await?;
    tx.commit().await?;
    Ok(session)
}

/// Revokes a refresh token and its family (the log-in it belongs to). Unknown or already
/// revoked tokens are fine (log-out is idempotent).
pub async fn logout(state: &AppState, token: &str) -> Result<()> {
    let family: Option<String> =
        sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = ?")
            .bind(sha256_hex(token))
            .fetch_optional(&state.db)
            .await?;
    let Some(family) = family else {
        return Ok(());
    };
    let res = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
    )
    .bind(now())
    .bind(&family)
    .execute(&state.db)
    .await?;
    if res.rows_affected() > 0 {
        info!("refresh token revoked");
    }
    Ok(())
}

/// `PATCH /v1/me`: `avatar_url: None` leaves it, `Some(None)` clears it.
pub async fn update_profile(
    state: &AppState,
    user_id: &str,
    display_name: Option<&str>,
    avatar_url: Option<Option<&str>>,
) -> Result<Me> {
    let display_name = display_name.map(validate_display_name).transpose()?;
    let avatar_url = match avatar_url {
        None => None,
        Some(None) => Some(None),
        Some(Some(u)) if u.trim().is_empty() => Some(None),
        Some(Some(u)) => Some(Some(validate_avatar_url(u)?)),
    };
    let user = get(state, user_id).await?;
    let display_name = display_name.unwrap_or(user.display_name);
    let avatar_url = avatar_url.unwrap_or(user.avatar_url);
    sqlx::query("UPDATE users SET display_name = ?, avatar_url = ?, updated_at = ? WHERE id = ?")
        .bind(&display_name)
        .bind(&avatar_url)
        .bind(now())
        .bind(user_id)
        .execute(&state.db)
        .await?;
    Ok(get(state, user_id).await?.into())
}

pub async fn become_creator(state: &AppState, user_id: &str) -> Result<Me> {
    let res = sqlx::query(
        "UPDATE users SET role = 'creator', updated_at = ? WHERE id = ? AND role = 'viewer'",
    )
    .bind(now())
    .bind(user_id)
    .execute(&state.db)
    .await?;
    if res.rows_affected() > 0 {
        info!(user_id, "user became a creator");
    }
    Ok(get(state, user_id).await?.into())
}

/// A public profile: lag-tolerant, so it may come from the replica ([`crate::replica`]).
pub async fn profile(state: &AppState, id: &str) -> Result<PublicProfile> {
    crate::replica::read(state, &[id], |db| async move {
        sqlx::query_as::<_, PublicProfile>(
            "SELECT id, display_name, avatar_url, role FROM users WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&db)
        .await
    })
    .await?
    .ok_or(Error::NotFound("user"))
}

/// Profiles of the given ids that exist, in the order asked.
pub async fn profiles(state: &AppState, ids: &[String]) -> Result<Vec<PublicProfile>> {
    if ids.len() > 500 {
        return Err(Error::invalid("ids", "at most 500 ids per request"));
    }
    let ids: Vec<&String> = ids
        .iter()
        .filter(|i| uuid::Uuid::parse_str(i).is_ok())
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let owners: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
    let found: Vec<PublicProfile> = crate::replica::read(state, &owners, |db| {
        let ids = &ids;
        async move {
            let mut qb = sqlx::QueryBuilder::new(
                "SELECT id, display_name, avatar_url, role FROM users WHERE id IN (",
            );
            let mut sep = qb.separated(", ");
            for id in ids {
                sep.push_bind(id.as_str());
            }
            qb.push(")");
            qb.build_query_as().fetch_all(&db).await
        }
    })
    .await?;
    let mut out = Vec::with_capacity(found.len());
    for id in ids {
        if let Some(p) = found.iter().find(|p| &p.id == id) {
            if !out.iter().any(|o: &PublicProfile| &o.id == id) {
                out.push(p.clone());
            }
        }
    }
    Ok(out)
}

/// Makes sure the demo creator and its stream key exist (idempotent).
pub async fn seed_demo(state: &AppState) -> Result<()> {
    let demo = &state.config.demo;
    if !demo.enabled {
        return Ok(());
    }
    let email = normalize_email(&demo.email)?;
    let user = match find_by_email(state, &email).await? {
        Some(u) => u,
        None => {
            let name = validate_display_name(if demo.display_name.trim().is_empty() {
                "Demo"
            } else {
                &demo.display_name
            })?;
            let hash = state.passwords.hash(&demo.password).await?;
            match create(state, &email, &hash, &name, Role::Creator).await {
                Ok(u) => u,
                // another replica seeded it at the same moment
                Err(Error::EmailTaken) => find_by_email(state, &email)
                    .await?
                    .ok_or(Error::NotFound("user"))?,
                Err(e) => return Err(e),
            }
        }
    };
    if !user.role.can_create() {
        become_creator(state, &user.id).await?;
    }
    let key_id =
        crate::stream_keys::ensure_key(state, &user.id, demo.stream_key.trim(), Some("demo"))
            .await?;
    info!(user_id = %user.id, key_id = %key_id, "demo creator ready");
    Ok(())
}
