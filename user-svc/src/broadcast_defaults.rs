//! A creator's defaults for new broadcasts: visibility and access policy. Ingest receives
//! them with the stream-key check, so a broadcast starts protected from its first second.

use serde::{Deserialize, Serialize};
use tracing::info;

use service_clients::metadata::{AccessPolicy, Visibility};
use service_clients::users::BroadcastDefaults as WireDefaults;

use crate::error::{Error, Result};
use crate::model::{now, validate_price};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Free,
    Subscribers,
    Purchase,
}

/// An access policy as creators write it: flat, so a purchase without a price is answered
/// with a 400 naming `price_minor` (the wire's [`AccessPolicy`] is the checked form).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub policy: PolicyKind,
    /// Required for `purchase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl Policy {
    /// The wire form; `None` for a purchase without a price or currency.
    pub fn to_access(&self) -> Option<AccessPolicy> {
        Some(match self.policy {
            PolicyKind::Free => AccessPolicy::Free,
            PolicyKind::Subscribers => AccessPolicy::Subscribers,
            PolicyKind::Purchase => AccessPolicy::Purchase {
                price_minor: self.price_minor?,
                currency: self.currency.clone()?,
            },
        })
    }
}

fn visibility_str(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        Visibility::Unlisted => "unlisted",
        Visibility::Private => "private",
    }
}

fn parse_visibility(s: &str) -> Visibility {
    match s {
        "unlisted" => Visibility::Unlisted,
        "private" => Visibility::Private,
        _ => Visibility::Public,
    }
}

/// `GET/PUT /v1/me/broadcast-defaults`, and `defaults` in the stream-key check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastDefaults {
    pub visibility: Visibility,
    /// `{"policy": "free" | "subscribers" | "purchase", "price_minor"?, "currency"?}`, the
    /// shape of a video's access policy.
    pub access: Policy,
}

impl Default for BroadcastDefaults {
    fn default() -> Self {
        Self {
            visibility: Visibility::Public,
            access: Policy {
                policy: PolicyKind::Free,
                price_minor: None,
                currency: None,
            },
        }
    }
}

impl BroadcastDefaults {
    /// What ingest receives with the stream-key check; `None` if a purchase policy lacks its
    /// price (never stored so: [`set`] refuses it).
    pub fn to_wire(&self) -> Option<WireDefaults> {
        Some(WireDefaults {
            visibility: self.visibility,
            access: self.access.to_access()?,
        })
    }
}

/// The row's columns, as the stream-key check selects them too (`d.` prefixed).
pub type Row = (Option<String>, Option<String>, Option<i64>, Option<String>);

/// Defaults from a (possibly missing) row.
pub fn from_row((visibility, access, price, currency): Row) -> BroadcastDefaults {
    let (Some(visibility), Some(access)) = (visibility, access) else {
        return BroadcastDefaults::default();
    };
    let policy = match access.as_str() {
        "subscribers" => PolicyKind::Subscribers,
        "purchase" => PolicyKind::Purchase,
        _ => PolicyKind::Free,
    };
    BroadcastDefaults {
        visibility: parse_visibility(&visibility),
        access: Policy {
            policy,
            price_minor: price.filter(|_| policy == PolicyKind::Purchase),
            currency: currency.filter(|_| policy == PolicyKind::Purchase),
        },
    }
}

pub async fn get(state: &AppState, creator_id: &str) -> Result<BroadcastDefaults> {
    let row: Option<Row> = sqlx::query_as(
        "SELECT visibility, access, price_minor, currency FROM broadcast_defaults WHERE creator_id = ?",
    )
    .bind(creator_id)
    .fetch_optional(&state.db)
    .await?;
    Ok(row.map(from_row).unwrap_or_default())
}

/// Sets the defaults; creators only. A purchase policy needs a valid price.
pub async fn set(
    state: &AppState,
    creator_id: &str,
    d: BroadcastDefaults,
) -> Result<BroadcastDefaults> {
    let user = crate::users::get(state, creator_id).await?;
    if !user.role.can_create() {
        return Err(Error::Forbidden(
            "only creators broadcast; become a creator first",
        ));
    }
    let (price, currency) = match d.access.policy {
        PolicyKind::Purchase => {
            let price = d.access.price_minor.ok_or_else(|| {
                Error::invalid("price_minor", "a purchase policy needs price_minor")
            })?;
            let currency = validate_price(price, d.access.currency.as_deref().unwrap_or(""))?;
            (Some(price), Some(currency))
        }
        _ => (None, None),
    };
    let access = match d.access.policy {
        PolicyKind::Free => "free",
        PolicyKind::Subscribers => "subscribers",
        PolicyKind::Purchase => "purchase",
    };
    sqlx::query(
        "INSERT INTO broadcast_defaults (creator_id, visibility, access, price_minor, currency, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE visibility = VALUES(visibility), \
         access = VALUES(access), price_minor = VALUES(price_minor), currency = VALUES(currency), \
         updated_at = VALUES(updated_at)",
    )
    .bind(creator_id)
    .bind(visibility_str(d.visibility))
    .bind(access)
    .bind(price)
    .bind(&currency)
    .bind(now())
    .execute(&state.db)
    .await?;
    info!(
        creator_id,
        visibility = visibility_str(d.visibility),
        access,
        "broadcast defaults set"
    );
    Ok(BroadcastDefaults {
        visibility: d.visibility,
        access: Policy {
            policy: d.access.policy,
            price_minor: price,
            currency,
        },
    })
}
