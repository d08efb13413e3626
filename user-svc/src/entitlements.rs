//! Who may watch what: `POST /internal/v1/entitlements/check`, asked by bff for every
//! protected video.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{now, parse_id, validate_price};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Free,
    Subscribers,
    Purchase,
}

/// The video's access policy, as stored by metadata-svc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub policy: PolicyKind,
    /// Required for `purchase`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckRequest {
    /// The viewer; absent or null for anonymous viewers.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The video's creator.
    pub owner_id: String,
    pub video_id: String,
    pub policy: Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Free,
    Owner,
    Subscribed,
    Purchased,
    NotSubscribed,
    NotPurchased,
    LoginRequired,
}

/// What the viewer could do to get access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub allow: bool,
    pub reason: Reason,
    /// Present when access is denied and something can be bought (null otherwise).
    pub offer: Option<Offer>,
}

fn allow(reason: Reason) -> Decision {
    Decision {
        allow: true,
        reason,
        offer: None,
    }
}

pub async fn check(state: &AppState, req: CheckRequest) -> Result<Decision> {
    let decision = decide(state, req).await?;
    let reason = match decision.reason {
        Reason::Free => "free",
        Reason::Owner => "owner",
        Reason::Subscribed => "subscribed",
        Reason::Purchased => "purchased",
        Reason::NotSubscribed => "not_subscribed",
        Reason::NotPurchased => "not_purchased",
        Reason::LoginRequired => "login_required",
    };
    metrics::counter!("user_svc_entitlement_checks_total", "reason" => reason).increment(1);
    Ok(decision)
}

async fn decide(state: &AppState, req: CheckRequest) -> Result<Decision> {
    let owner_id = parse_id(&req.owner_id, "owner")
        .map_err(|_| Error::invalid("owner_id", "owner_id must be a user id"))?;
    let video_id = crate::purchases::validate_video_id(&req.video_id)?;
    let user_id = match req.user_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) => Some(
            parse_id(u, "user")
                .map_err(|_| Error::invalid("user_id", "user_id must be a user id"))?,
        ),
    };
    if req.policy.policy == PolicyKind::Free {
        return Ok(allow(Reason::Free));
    }
    if user_id.as_deref() == Some(owner_id.as_str()) {
        return Ok(allow(Reason::Owner));
    }
    match req.policy.policy {
        PolicyKind::Free => Ok(allow(Reason::Free)),
        PolicyKind::Subscribers => {
            // one round trip: is there a paid period, and what plan could be offered
            let (subscribed, price, currency): (bool, Option<i64>, Option<String>) = sqlx::query_as(
                "SELECT EXISTS(SELECT 1 FROM subscriptions WHERE subscriber_id = ? AND creator_id = ? \
                 AND current_period_end > ?) AS subscribed, p.price_minor, p.currency \
                 FROM (SELECT 1) one LEFT JOIN plans p ON p.creator_id = ? AND p.active = 1",
            )
            .bind(user_id.as_deref().unwrap_or(""))
            .bind(&owner_id)
            .bind(now())
            .bind(&owner_id)
            .fetch_one(&state.db)
            .await?;
            if subscribed {
                return Ok(allow(Reason::Subscribed));
            }
            let offer = price
                .zip(currency)
                .map(|(price_minor, currency)| Offer::Subscription {
                    creator_id: owner_id.clone(),
                    price_minor,
                    currency,
                    interval: "month".into(),
                });
            let reason = if user_id.is_some() {
                Reason::NotSubscribed
            } else {
                Reason::LoginRequired
            };
            Ok(Decision {
                allow: false,
                reason,
                offer,
            })
        }
        PolicyKind::Purchase => {
            let price = req.policy.price_minor.ok_or_else(|| {
                Error::invalid("price_minor", "a purchase policy needs price_minor")
            })?;
            let currency = validate_price(price, req.policy.currency.as_deref().unwrap_or(""))?;
            if let Some(u) = &user_id {
                if crate::purchases::owns(state, u, &video_id).await? {
                    return Ok(allow(Reason::Purchased));
                }
            }
            let offer = Some(Offer::Purchase {
                video_id,
                creator_id: owner_id,
                price_minor: price,
                currency,
            });
            let reason = if user_id.is_some() {
                Reason::NotPurchased
            } else {
                Reason::LoginRequired
            };
            Ok(Decision {
                allow: false,
                reason,
                offer,
            })
        }
    }
}
