//! Database rows and the JSON shapes of the API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Maps a Rust enum to a MySQL `ENUM` column through its text form. (sqlx's derived
/// `Type` insists on the exact column flags, which MariaDB reports differently.)
macro_rules! text_enum {
    ($($t:ty),* $(,)?) => {$(
        impl sqlx::Type<sqlx::MySql> for $t {
            fn type_info() -> sqlx::mysql::MySqlTypeInfo {
                <str as sqlx::Type<sqlx::MySql>>::type_info()
            }
            fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
                <str as sqlx::Type<sqlx::MySql>>::compatible(ty)
            }
        }
    )*};
}
pub(crate) use text_enum;

text_enum!(Role, ChargeStatus, ChargeKind, PurchaseStatus);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Encode, sqlx::Decode)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Creator,
    Admin,
}

impl Role {
    pub fn can_create(self) -> bool {
        matches!(self, Role::Creator | Role::Admin)
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The signed-in user's own view of their account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Me {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for Me {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            avatar_url: u.avatar_url,
            role: u.role,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// What other services may show about any user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, sqlx::FromRow)]
pub struct PublicProfile {
    pub id: String,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub role: Role,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StreamKeyRow {
    pub id: String,
    pub user_id: String,
    pub key_last4: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A stream key as listed: never the key itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamKeyInfo {
    pub id: String,
    /// e.g. `live_****abcd`
    pub masked: String,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<StreamKeyRow> for StreamKeyInfo {
    fn from(k: StreamKeyRow) -> Self {
        Self {
            id: k.id,
            masked: format!("live_****{}", k.key_last4),
            label: k.label,
            created_at: k.created_at,
        }
    }
}

/// A stream key just created: the only time the full key is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewStreamKey {
    #[serde(flatten)]
    pub info: StreamKeyInfo,
    pub key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, sqlx::FromRow)]
pub struct Plan {
    pub creator_id: String,
    pub price_minor: i64,
    pub currency: String,
    pub active: bool,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionRow {
    pub id: String,
    pub subscriber_id: String,
    pub creator_id: String,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<DateTime<Utc>>,
    pub price_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// No period paid yet (first charge pending or declined).
    Incomplete,
    /// Paid and renewing.
    Active,
    /// Paid, access until the period ends, will not renew.
    Canceled,
    /// The period lapsed without renewal.
    Expired,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub subscriber_id: String,
    pub creator_id: String,
    pub status: SubscriptionStatus,
    /// Whether the subscriber can watch subscriber-only videos now.
    pub has_access: bool,
    pub current_period_start: Option<DateTime<Utc>>,
    pub current_period_end: Option<DateTime<Utc>>,
    pub cancel_at_period_end: bool,
    pub canceled_at: Option<DateTime<Utc>>,
    pub price_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

impl SubscriptionRow {
    pub fn view(self, now: DateTime<Utc>) -> Subscription {
        let has_access = self.current_period_end.is_some_and(|e| e > now);
        let status = match self.current_period_end {
            None => SubscriptionStatus::Incomplete,
            Some(_) if !has_access => SubscriptionStatus::Expired,
            Some(_) if self.cancel_at_period_end => SubscriptionStatus::Canceled,
            Some(_) => SubscriptionStatus::Active,
        };
        Subscription {
            id: self.id,
            subscriber_id: self.subscriber_id,
            creator_id: self.creator_id,
            status,
            has_access,
            current_period_start: self.current_period_start,
            current_period_end: self.current_period_end,
            cancel_at_period_end: self.cancel_at_period_end,
            canceled_at: self.canceled_at,
            price_minor: self.price_minor,
            currency: self.currency,
            created_at: self.created_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Encode, sqlx::Decode)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum ChargeStatus {
    Pending,
    Completed,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Encode, sqlx::Decode)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum ChargeKind {
    Initial,
    Renewal,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ChargeRow {
    pub id: String,
    pub subscription_id: String,
    pub kind: ChargeKind,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub amount_minor: i64,
    pub currency: String,
    pub status: ChargeStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Encode, sqlx::Decode)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum PurchaseStatus {
    Pending,
    Completed,
    Failed,
    RefundPending,
    Refunded,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PurchaseRow {
    pub id: String,
    pub buyer_id: String,
    pub creator_id: String,
    pub video_id: String,
    pub price_minor: i64,
    pub currency: String,
    pub request_hash: String,
    pub status: PurchaseStatus,
    pub provider_ref: Option<String>,
    pub lease_until: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
    pub refund_attempt: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

impl From<PurchaseRow> for Purchase {
    fn from(p: PurchaseRow) -> Self {
        Self {
            id: p.id,
            buyer_id: p.buyer_id,
            creator_id: p.creator_id,
            video_id: p.video_id,
            price_minor: p.price_minor,
            currency: p.currency,
            status: p.status,
            created_at: p.created_at,
            completed_at: p.completed_at,
            refunded_at: p.refunded_at,
        }
    }
}

/// Checks a price: positive minor units and an ISO-4217-shaped currency (`EUR`).
pub fn validate_price(price_minor: i64, currency: &str) -> Result<String> {
    if price_minor <= 0 || price_minor > 100_000_000 {
        return Err(Error::invalid(
            "price_minor",
            "price_minor must be between 1 and 100000000",
        ));
    }
    let c = currency.trim().to_ascii_uppercase();
    if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::invalid(
            "currency",
            "currency must be a three-letter code such as EUR",
        ));
    }
    Ok(c)
}

/// Parses an id from the URL or a body; anything that is not a UUID is simply not found.
pub fn parse_id(raw: &str, what: &'static str) -> Result<String> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| Error::NotFound(what))
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// Now, truncated to the microsecond precision of DATETIME(6), so values read back compare equal.
pub fn now() -> DateTime<Utc> {
    use chrono::DurationRound;
    let n = Utc::now();
    n.duration_trunc(chrono::TimeDelta::microseconds(1))
        .unwrap_or(n)
}
