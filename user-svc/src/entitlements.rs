//! Who may watch what: `POST /internal/v1/entitlements/check`, asked by bff for every
//! protected video. The wire types are service-clients' (`users::EntitlementCheck`,
//! `users::Decision`), the ones bff sends and reads.

use service_clients::metadata::AccessPolicy;
pub use service_clients::users::{Decision, EntitlementCheck, Offer, Reason};

use crate::error::{Error, Result};
use crate::model::{now, parse_id, validate_price};
use crate::state::AppState;

pub async fn check(state: &AppState, req: EntitlementCheck) -> Result<Decision> {
    let decision = decide(state, req).await?;
    metrics::counter!("user_svc_entitlement_checks_total", "reason" => decision.reason.as_str())
        .increment(1);
    Ok(decision)
}

async fn decide(state: &AppState, req: EntitlementCheck) -> Result<Decision> {
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
    if req.policy == AccessPolicy::Free {
        return Ok(Decision::allow(Reason::Free));
    }
    if user_id.as_deref() == Some(owner_id.as_str()) {
        return Ok(Decision::allow(Reason::Owner));
    }
    match req.policy {
        AccessPolicy::Free => Ok(Decision::allow(Reason::Free)),
        AccessPolicy::Subscribers => {
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
                return Ok(Decision::allow(Reason::Subscribed));
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
            Ok(Decision::deny(reason, offer))
        }
        AccessPolicy::Purchase {
            price_minor: price,
            currency,
        } => {
            let currency = validate_price(price, &currency)?;
            if let Some(u) = &user_id {
                if crate::purchases::owns(state, u, &video_id).await? {
                    return Ok(Decision::allow(Reason::Purchased));
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
            Ok(Decision::deny(reason, offer))
        }
    }
}
