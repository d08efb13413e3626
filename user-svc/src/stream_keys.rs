//! Stream keys: stored as sha256, shown whole only when created.

use service_clients::users::StreamKeyOwner;
use sqlx::MySqlConnection;
use tracing::{info, warn};

use crate::auth::{new_stream_key, sha256_hex};
use crate::broadcast_defaults;
use crate::error::{is_unique_violation, Error, Result};
use crate::model::{new_id, now, NewStreamKey, StreamKeyInfo, StreamKeyRow};
use crate::state::{retry_tx, AppState};

/// Most unrevoked keys one creator may hold.
pub const MAX_ACTIVE_KEYS: i64 = 20;

const KEY_COLUMNS: &str = "id, user_id, key_last4, label, created_at, revoked_at";

fn validate_label(label: Option<&str>) -> Result<Option<String>> {
    match label.map(str::trim) {
        None | Some("") => Ok(None),
        Some(l) if l.chars().count() <= 64 && !l.chars().any(char::is_control) => {
            Ok(Some(l.to_string()))
        }
        Some(_) => Err(Error::invalid(
            "label",
            "label must be at most 64 printable characters",
        )),
    }
}

fn last4(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

async fn require_creator(state: &AppState, user_id: &str) -> Result<()> {
    let user = crate::users::get(state, user_id).await?;
    if !user.role.can_create() {
        return Err(Error::Forbidden(
            "only creators have stream keys; become a creator first",
        ));
    }
    Ok(())
}

async fn insert_key(
    conn: &mut MySqlConnection,
    user_id: &str,
    key: &str,
    label: Option<&str>,
) -> Result<StreamKeyInfo> {
    let id = new_id();
    sqlx::query(
        "INSERT INTO stream_keys (id, user_id, key_hash, key_last4, label, created_at, revoked_at) \
         VALUES (?, ?, ?, ?, ?, ?, NULL)",
    )
    .bind(&id)
    .bind(user_id)
    .bind(sha256_hex(key))
    .bind(last4(key))
    .bind(label)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    let sql = format!("SELECT {KEY_COLUMNS} FROM stream_keys WHERE id = ?");
    Ok(sqlx::query_as::<_, StreamKeyRow>(&sql)
        .bind(&id)
        .fetch_one(&mut *conn)
        .await?
        .into())
}

pub async fn create(state: &AppState, user_id: &str, label: Option<&str>) -> Result<NewStreamKey> {
    let label = validate_label(label)?;
    require_creator(state, user_id).await?;
    let created = retry_tx!(
        async {
            let mut tx = state.db.begin().await?;
            // lock the user's row so two creates cannot both pass the limit
            sqlx::query("SELECT id FROM users WHERE id = ? FOR UPDATE")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            let (active,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM stream_keys WHERE user_id = ? AND revoked_at IS NULL",
            )
            .bind(user_id)
            .fetch_one(&mut *tx)
            .await?;
            if active >= MAX_ACTIVE_KEYS {
                return Err(Error::conflict(
                    "too_many_stream_keys",
                    format!("at most {MAX_ACTIVE_KEYS} active stream keys"),
                ));
            }
            let key = new_stream_key();
            let info = insert_key(&mut tx, user_id, &key, label.as_deref()).await?;
            tx.commit().await?;
            Ok::<_, Error>(NewStreamKey { info, key })
        }
        .await
    )?;
    info!(user_id, key_id = %created.info.id, "stream key created");
    Ok(created)
}

pub async fn list(state: &AppState, user_id: &str) -> Result<Vec<StreamKeyInfo>> {
    let sql =
        format!("SELECT {KEY_COLUMNS} FROM stream_keys WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at, id");
    let rows = sqlx::query_as::<_, StreamKeyRow>(&sql)
        .bind(user_id)
        .fetch_all(&state.db)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Revokes `key_id` and creates its replacement in one transaction.
pub async fn rotate(state: &AppState, user_id: &str, key_id: &str) -> Result<NewStreamKey> {
    let created = retry_tx!(
        async {
            let mut tx = state.db.begin().await?;
            let sql = format!(
                "SELECT {KEY_COLUMNS} FROM stream_keys WHERE id = ? AND user_id = ? FOR UPDATE"
            );
            let old = sqlx::query_as::<_, StreamKeyRow>(&sql)
                .bind(key_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(old) = old.filter(|k| k.revoked_at.is_none()) else {
                return Err(Error::NotFound("stream key"));
            };
            sqlx::query("UPDATE stream_keys SET revoked_at = ? WHERE id = ?")
                .bind(now())
                .bind(&old.id)
                .execute(&mut *tx)
                .await?;
            let key = new_stream_key();
            let info = insert_key(&mut tx, user_id, &key, old.label.as_deref()).await?;
            tx.commit().await?;
            Ok::<_, Error>(NewStreamKey { info, key })
        }
        .await
    )?;
    info!(user_id, old_key_id = key_id, key_id = %created.info.id, "stream key rotated");
    Ok(created)
}

/// Revokes a key. Revoking an already revoked key of one's own is fine; others' are not found.
pub async fn revoke(state: &AppState, user_id: &str, key_id: &str) -> Result<()> {
    let owned: Option<(String,)> =
        sqlx::query_as("SELECT id FROM stream_keys WHERE id = ? AND user_id = ?")
            .bind(key_id)
            .bind(user_id)
            .fetch_optional(&state.db)
            .await?;
    if owned.is_none() {
        return Err(Error::NotFound("stream key"));
    }
    let res =
        sqlx::query("UPDATE stream_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
            .bind(now())
            .bind(key_id)
            .execute(&state.db)
            .await?;
    if res.rows_affected() > 0 {
        info!(user_id, key_id, "stream key revoked");
    }
    Ok(())
}

/// The owner of an unrevoked key held by a creator, or [`Error::InvalidStreamKey`].
pub async fn validate(state: &AppState, key: &str) -> Result<StreamKeyOwner> {
    if key.is_empty() || key.len() > 256 {
        metrics::counter!("user_svc_stream_key_validations_total", "outcome" => "invalid")
            .increment(1);
        return Err(Error::InvalidStreamKey);
    }
    type OwnerRow = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<String>,
    );
    let owner = sqlx::query_as::<_, OwnerRow>(
        "SELECT u.id, u.display_name, k.id, CAST(d.visibility AS CHAR), CAST(d.access AS CHAR), \
         d.price_minor, d.currency \
         FROM stream_keys k JOIN users u ON u.id = k.user_id \
         LEFT JOIN broadcast_defaults d ON d.creator_id = u.id \
         WHERE k.key_hash = ? AND k.revoked_at IS NULL AND u.role IN ('creator', 'admin')",
    )
    .bind(sha256_hex(key))
    .fetch_optional(&state.db)
    .await?;
    match owner {
        Some((user_id, display_name, key_id, visibility, access, price, currency)) => {
            let defaults = broadcast_defaults::from_row((visibility, access, price, currency))
                .to_wire()
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "the broadcast defaults of creator {user_id} are a purchase without a price"
                    ))
                })?;
            let o = StreamKeyOwner {
                user_id,
                display_name,
                key_id,
                defaults,
            };
            metrics::counter!("user_svc_stream_key_validations_total", "outcome" => "valid")
                .increment(1);
            Ok(o)
        }
        None => {
            metrics::counter!("user_svc_stream_key_validations_total", "outcome" => "invalid")
                .increment(1);
            Err(Error::InvalidStreamKey)
        }
    }
}

/// Registers a given key for `user_id` unless it already is, reactivating it if revoked.
/// Returns the key id. Used by demo seeding.
pub async fn ensure_key(
    state: &AppState,
    user_id: &str,
    key: &str,
    label: Option<&str>,
) -> Result<String> {
    if key.is_empty() || key.len() > 256 {
        return Err(Error::invalid(
            "stream_key",
            "stream key must be 1 to 256 characters",
        ));
    }
    let hash = sha256_hex(key);
    let find = || {
        sqlx::query_as::<_, (String, String)>(
            "SELECT id, user_id FROM stream_keys WHERE key_hash = ?",
        )
        .bind(hash.clone())
        .fetch_optional(&state.db)
    };
    let existing = match find().await? {
        Some(e) => e,
        None => {
            let mut conn = state.db.acquire().await?;
            match insert_key(&mut conn, user_id, key, label).await {
                Ok(info) => return Ok(info.id),
                Err(Error::Database(e)) if is_unique_violation(&e) => {
                    find().await?.ok_or(Error::NotFound("stream key"))?
                }
                Err(e) => return Err(e),
            }
        }
    };
    let (key_id, owner) = existing;
    if owner != user_id {
        warn!(key_id = %key_id, "the configured stream key belongs to another user; left as it is");
        return Err(Error::conflict(
            "stream_key_taken",
            "the stream key is registered to another user",
        ));
    }
    sqlx::query("UPDATE stream_keys SET revoked_at = NULL WHERE id = ?")
        .bind(&key_id)
        .execute(&state.db)
        .await?;
    Ok(key_id)
}
