//! Creator plans and subscriptions.
//!
//! One `subscriptions` row per (subscriber, creator); each paid period is a
//! `subscription_charges` row, unique per (subscription, period start), so a period is never
//! charged twice however often renewal runs. Access lasts while `current_period_end > now`;
//! a subscription whose period lapsed without renewal is expired. Lock order is always the
//! subscription row, then its charges.

use std::time::{Duration, Instant};

use chrono::{DateTime, Months, TimeDelta, Utc};
use serde::Serialize;
use tracing::{info, warn};

use crate::error::{is_unique_violation, Error, Result};
use crate::ledger::{self, Payment, TxKind};
use crate::model::{
    new_id, now, parse_id, validate_price, ChargeKind, ChargeRow, ChargeStatus, Plan,
    PublicProfile, Subscription, SubscriptionRow,
};
use crate::payment::{ChargeRequest, Outcome};
use crate::state::{retry_tx, AppState};

const SUB_COLUMNS: &str =
    "id, subscriber_id, creator_id, current_period_start, current_period_end, \
     cancel_at_period_end, canceled_at, price_minor, currency, created_at";
const CHARGE_COLUMNS: &str =
    "id, subscription_id, kind, period_start, period_end, amount_minor, currency, status";

fn one_month_after(t: DateTime<Utc>) -> DateTime<Utc> {
    t.checked_add_months(Months::new(1))
        .unwrap_or(t + TimeDelta::days(30))
}

pub async fn set_plan(
    state: &AppState,
    creator_id: &str,
    price_minor: i64,
    currency: &str,
) -> Result<Plan> {
    let currency = validate_price(price_minor, currency)?;
    let user = crate::users::get(state, creator_id).await?;
    if !user.role.can_create() {
        return Err(Error::Forbidden(
            "only creators offer plans; become a creator first",
        ));
    }
    let t = now();
    sqlx::query(
        "INSERT INTO plans (creator_id, price_minor, currency, active, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?) \
         ON DUPLICATE KEY UPDATE price_minor = VALUES(price_minor), currency = VALUES(currency), active = 1, \
         updated_at = VALUES(updated_at)",
    )
    .bind(creator_id)
    .bind(price_minor)
    .bind(&currency)
    .bind(t)
    .bind(t)
    .execute(&state.db)
    .await?;
    info!(creator_id, price_minor, currency = %currency, "plan set");
    get_plan(state, creator_id)
        .await?
        .ok_or(Error::NotFound("plan"))
}

/// The creator's active plan.
/// A creator's active plan as shown to others: lag-tolerant, so it may come from the replica
/// ([`crate::replica`]); charging always reads [`get_plan`].
pub async fn public_plan(state: &AppState, creator_id: &str) -> Result<Option<Plan>> {
    crate::replica::read(state, &[creator_id], |db| async move {
        sqlx::query_as::<_, Plan>(PLAN_SQL)
            .bind(creator_id)
            .fetch_optional(&db)
            .await
    })
    .await
}

const PLAN_SQL: &str = "SELECT creator_id, price_minor, currency, active, updated_at FROM plans WHERE creator_id = ? AND active = 1";

pub async fn get_plan(state: &AppState, creator_id: &str) -> Result<Option<Plan>> {
    Ok(sqlx::query_as::<_, Plan>(PLAN_SQL)
        .bind(creator_id)
        .fetch_optional(&state.db)
        .await?)
}

async fn load_sub(state: &AppState, id: &str) -> Result<SubscriptionRow> {
    let sql = format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ?");
    sqlx::query_as::<_, SubscriptionRow>(&sql)
        .bind(id)
        .fetch_optional(&state.db)
        .await?
        .ok_or(Error::NotFound("subscription"))
}

async fn load_charge(state: &AppState, id: &str) -> Result<(ChargeRow, DateTime<Utc>)> {
    let sql =
        format!("SELECT {CHARGE_COLUMNS}, lease_until FROM subscription_charges WHERE id = ?");
    let row = sqlx::query_as::<_, ChargeWithLease>(&sql)
        .bind(id)
        .fetch_optional(&state.db)
        .await?;
    let row = row.ok_or(Error::NotFound("subscription charge"))?;
    Ok((row.charge, row.lease_until))
}

#[derive(sqlx::FromRow)]
struct ChargeWithLease {
    #[sqlx(flatten)]
    charge: ChargeRow,
    lease_until: DateTime<Utc>,
}

enum Next {
    /// Nothing to charge; here is the subscription.
    Done,
    /// A charge for it is already in flight.
    Wait(String),
    /// We created this charge and hold its lease.
    Charge(String),
}

/// Subscribes `user_id` to `creator_id`'s plan. Subscribing while subscribed changes nothing
/// (and undoes a cancellation); otherwise the first month is charged. Returns the
/// subscription and whether a new period was paid for.
pub async fn subscribe(
    state: &AppState,
    user_id: &str,
    creator_id: &str,
    token: Option<String>,
) -> Result<(Subscription, bool)> {
    let creator_id = parse_id(creator_id, "creator")
        .map_err(|_| Error::invalid("creator_id", "creator_id must be a user id"))?;
    if creator_id == user_id {
        return Err(Error::invalid(
            "creator_id",
            "you cannot subscribe to yourself",
        ));
    }
    let plan = get_plan(state, &creator_id)
        .await?
        .ok_or(Error::NotFound("plan"))?;
    let t = now();
    let inserted = sqlx::query(
        "INSERT INTO subscriptions (id, subscriber_id, creator_id, current_period_start, current_period_end, \
         cancel_at_period_end, canceled_at, price_minor, currency, created_at, updated_at) \
         VALUES (?, ?, ?, NULL, NULL, 0, NULL, ?, ?, ?, ?)",
    )
    .bind(new_id())
    .bind(user_id)
    .bind(&creator_id)
    .bind(plan.price_minor)
    .bind(&plan.currency)
    .bind(t)
    .bind(t)
    .execute(&state.db)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(e.into()),
    }

    let (sub_id, next) = retry_tx!(async {
        let mut tx = state.db.begin().await?;
        let sql = format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE subscriber_id = ? AND creator_id = ? FOR UPDATE");
        let sub = sqlx::query_as::<_, SubscriptionRow>(&sql).bind(user_id).bind(&creator_id).fetch_one(&mut *tx).await?;
        let t = now();
        if sub.current_period_end.is_some_and(|end| end > t) {
            if sub.cancel_at_period_end {
                sqlx::query("UPDATE subscriptions SET cancel_at_period_end = 0, canceled_at = NULL, updated_at = ? WHERE id = ?")
                    .bind(t)
                    .bind(&sub.id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            return Ok::<_, Error>((sub.id, Next::Done));
        }
        let pending: Option<(String,)> = sqlx::query_as(
            "SELECT id FROM subscription_charges WHERE subscription_id = ? AND status = 'pending' LIMIT 1 FOR UPDATE",
        )
        .bind(&sub.id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((charge_id,)) = pending {
            // undo a cancellation made while the first charge was in flight
            sqlx::query("UPDATE subscriptions SET cancel_at_period_end = 0, canceled_at = NULL, updated_at = ? WHERE id = ?")
                .bind(t)
                .bind(&sub.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok((sub.id, Next::Wait(charge_id)));
        }
        let charge_id = new_id();
        sqlx::query(
            "INSERT INTO subscription_charges (id, subscription_id, kind, period_start, period_end, amount_minor, currency, \
             status, lease_until, created_at, updated_at) VALUES (?, ?, 'initial', ?, ?, ?, ?, 'pending', ?, ?, ?)",
        )
        .bind(&charge_id)
        .bind(&sub.id)
        .bind(t)
        .bind(one_month_after(t))
        .bind(plan.price_minor)
        .bind(&plan.currency)
        .bind(t + state.payment_lease())
        .bind(t)
        .bind(t)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE subscriptions SET cancel_at_period_end = 0, canceled_at = NULL, updated_at = ? WHERE id = ?")
            .bind(t)
            .bind(&sub.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((sub.id, Next::Charge(charge_id)))
    }
    .await)?;

    let charge = match next {
        Next::Done => return Ok((load_sub(state, &sub_id).await?.view(now()), false)),
        Next::Charge(charge_id) => {
            info!(subscription_id = %sub_id, charge_id = %charge_id, "subscription charge started");
            settle_charge(state, &charge_id, token).await?
        }
        Next::Wait(charge_id) => {
            let (charge, lease) = load_charge(state, &charge_id).await?;
            if charge.status == ChargeStatus::Pending
                && lease <= now()
                && take_lease(state, &charge_id).await?
            {
                settle_charge(state, &charge_id, token).await?
            } else {
                wait_charge(state, &charge_id).await?
            }
        }
    };
    match charge.status {
        ChargeStatus::Completed => Ok((load_sub(state, &sub_id).await?.view(now()), true)),
        ChargeStatus::Failed => Err(Error::PaymentDeclined),
        ChargeStatus::Pending => Err(Error::PaymentTimeout),
    }
}

async fn wait_charge(state: &AppState, id: &str) -> Result<ChargeRow> {
    let deadline = Instant::now() + state.payment_timeout() + Duration::from_secs(3);
    loop {
        let (charge, lease) = load_charge(state, id).await?;
        if charge.status != ChargeStatus::Pending || lease <= now() || Instant::now() >= deadline {
            return Ok(charge);
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

async fn take_lease(state: &AppState, id: &str) -> Result<bool> {
    let t = now();
    let res = sqlx::query(
        "UPDATE subscription_charges SET lease_until = ?, updated_at = ? WHERE id = ? AND status = 'pending' AND lease_until <= ?",
    )
    .bind(t + state.payment_lease())
    .bind(t)
    .bind(id)
    .bind(t)
    .execute(&state.db)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Asks the provider about a pending charge (the caller holds its lease) and records the
/// answer: on approval the subscription's period moves to the charge's period and the
/// ledger gets one transaction.
pub(crate) async fn settle_charge(
    state: &AppState,
    charge_id: &str,
    token: Option<String>,
) -> Result<ChargeRow> {
    let (charge, _) = load_charge(state, charge_id).await?;
    if charge.status != ChargeStatus::Pending {
        return Ok(charge);
    }
    let sub = load_sub(state, &charge.subscription_id).await?;
    let req = ChargeRequest {
        reference: charge.id.clone(),
        customer_id: sub.subscriber_id.clone(),
        amount_minor: charge.amount_minor,
        currency: charge.currency.clone(),
        payment_token: token,
    };
    let kind = match charge.kind {
        ChargeKind::Initial => "subscription",
        ChargeKind::Renewal => "renewal",
    };
    match tokio::time::timeout(state.payment_timeout(), state.payments.charge(&req)).await {
        Ok(Ok(Outcome::Approved { provider_ref })) => {
            retry_tx!(async {
                let mut tx = state.db.begin().await?;
                sqlx::query("SELECT id FROM subscriptions WHERE id = ? FOR UPDATE").bind(&sub.id).execute(&mut *tx).await?;
                let (status,): (ChargeStatus,) =
                    sqlx::query_as("SELECT status FROM subscription_charges WHERE id = ? FOR UPDATE")
                        .bind(charge_id)
                        .fetch_one(&mut *tx)
                        .await?;
                if status == ChargeStatus::Pending {
                    let t = now();
                    sqlx::query(
                        "UPDATE subscription_charges SET status = 'completed', provider_ref = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(&provider_ref)
                    .bind(t)
                    .bind(charge_id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE subscriptions SET current_period_start = ?, \
                         current_period_end = GREATEST(COALESCE(current_period_end, ?), ?), \
                         price_minor = ?, currency = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(charge.period_start)
                    .bind(charge.period_end)
                    .bind(charge.period_end)
                    .bind(charge.amount_minor)
                    .bind(&charge.currency)
                    .bind(t)
                    .bind(&sub.id)
                    .execute(&mut *tx)
                    .await?;
                    ledger::record(
                        &mut tx,
                        ledger::Fee::Bps(state.config.payment.platform_fee_bps),
                        Payment {
                            kind: TxKind::Subscription,
                            reference_id: charge_id,
                            payer_id: &sub.subscriber_id,
                            creator_id: &sub.creator_id,
                            amount_minor: charge.amount_minor,
                            currency: &charge.currency,
                        },
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, Error>(())
            }
            .await)?;
            metrics::counter!("user_svc_payments_total", "kind" => kind, "outcome" => "approved")
                .increment(1);
            info!(subscription_id = %sub.id, charge_id, "subscription charge completed");
        }
        Ok(Ok(Outcome::Declined { reason })) => {
            sqlx::query(
                "UPDATE subscription_charges SET status = 'failed', failure_reason = ?, updated_at = ? \
                 WHERE id = ? AND status = 'pending'",
            )
            .bind(&reason)
            .bind(now())
            .bind(charge_id)
            .execute(&state.db)
            .await?;
            metrics::counter!("user_svc_payments_total", "kind" => kind, "outcome" => "declined")
                .increment(1);
            info!(subscription_id = %sub.id, charge_id, reason = %reason, "subscription charge declined");
        }
        Ok(Err(_)) | Err(_) => {
            sqlx::query("UPDATE subscription_charges SET lease_until = ? WHERE id = ? AND status = 'pending'")
                .bind(now())
                .bind(charge_id)
                .execute(&state.db)
                .await?;
            metrics::counter!("user_svc_payments_total", "kind" => kind, "outcome" => "timeout")
                .increment(1);
            warn!(subscription_id = %sub.id, charge_id, "payment provider did not answer; charge left pending");
        }
    }
    Ok(load_charge(state, charge_id).await?.0)
}

/// Cancels renewal; access continues until the period ends. Idempotent.
pub async fn cancel(
    state: &AppState,
    user_id: &str,
    subscription_id: &str,
) -> Result<Subscription> {
    let id = parse_id(subscription_id, "subscription")?;
    let changed = retry_tx!(async {
        let mut tx = state.db.begin().await?;
        let sql = format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ? FOR UPDATE");
        let sub = sqlx::query_as::<_, SubscriptionRow>(&sql).bind(&id).fetch_optional(&mut *tx).await?;
        let Some(sub) = sub.filter(|s| s.subscriber_id == user_id) else {
            return Err(Error::NotFound("subscription"));
        };
        let changed = !sub.cancel_at_period_end;
        if changed {
            let t = now();
            sqlx::query("UPDATE subscriptions SET cancel_at_period_end = 1, canceled_at = ?, updated_at = ? WHERE id = ?")
                .bind(t)
                .bind(t)
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok::<_, Error>(changed)
    }
    .await)?;
    if changed {
        info!(subscription_id = %id, user_id, "subscription canceled");
    }
    Ok(load_sub(state, &id).await?.view(now()))
}

pub async fn list_for_subscriber(state: &AppState, user_id: &str) -> Result<Vec<Subscription>> {
    let sql = format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE subscriber_id = ? ORDER BY created_at DESC, id");
    let rows = sqlx::query_as::<_, SubscriptionRow>(&sql)
        .bind(user_id)
        .fetch_all(&state.db)
        .await?;
    let t = now();
    Ok(rows.into_iter().map(|r| r.view(t)).collect())
}

/// A subscriber as the creator sees them.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Subscriber {
    pub subscriber: PublicProfile,
    pub subscription: Subscription,
}

/// The creator's subscribers with access now.
pub async fn list_subscribers(state: &AppState, creator_id: &str) -> Result<Vec<Subscriber>> {
    let t = now();
    let sql = format!(
        "SELECT {SUB_COLUMNS} FROM subscriptions WHERE creator_id = ? AND current_period_end > ? \
         ORDER BY created_at DESC, id LIMIT 1000"
    );
    let rows = sqlx::query_as::<_, SubscriptionRow>(&sql)
        .bind(creator_id)
        .bind(t)
        .fetch_all(&state.db)
        .await?;
    let ids: Vec<String> = rows.iter().map(|r| r.subscriber_id.clone()).collect();
    let profiles = crate::users::profiles(state, &ids).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let p = profiles.iter().find(|p| p.id == r.subscriber_id)?.clone();
            Some(Subscriber {
                subscriber: p,
                subscription: r.view(t),
            })
        })
        .collect())
}

/// Whether `user_id` has a paid, unexpired subscription to `creator_id`.
pub async fn is_subscribed(state: &AppState, user_id: &str, creator_id: &str) -> Result<bool> {
    let row: Option<(i32,)> = sqlx::query_as(
        "SELECT 1 FROM subscriptions WHERE subscriber_id = ? AND creator_id = ? AND current_period_end > ?",
    )
    .bind(user_id)
    .bind(creator_id)
    .bind(now())
    .fetch_optional(&state.db)
    .await?;
    Ok(row.is_some())
}

/// What a renewal run did.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct RenewReport {
    pub renewed: u64,
    pub declined: u64,
    pub pending: u64,
    pub skipped: u64,
}

/// Charges the next period of every renewing subscription whose period ends within
/// `renew_ahead_secs` (or lapsed less than `renewal_grace_secs` ago). A declined renewal is
/// not retried: the subscription expires when its period ends.
pub async fn renew_due(state: &AppState) -> Result<RenewReport> {
    let t = now();
    let ahead = TimeDelta::seconds(state.config.subscriptions.renew_ahead_secs as i64);
    let grace = TimeDelta::seconds(state.config.subscriptions.renewal_grace_secs as i64);
    let due: Vec<(String,)> = sqlx::query_as(
        "SELECT s.id FROM subscriptions s JOIN plans p ON p.creator_id = s.creator_id AND p.active = 1 \
         WHERE s.cancel_at_period_end = 0 AND s.current_period_end IS NOT NULL \
         AND s.current_period_end <= ? AND s.current_period_end > ? ORDER BY s.current_period_end LIMIT 500",
    )
    .bind(t + ahead)
    .bind(t - grace)
    .fetch_all(&state.db)
    .await?;
    let mut report = RenewReport::default();
    for (sub_id,) in due {
        let charge_id = retry_tx!(async {
            let mut tx = state.db.begin().await?;
            let sql = format!("SELECT {SUB_COLUMNS} FROM subscriptions WHERE id = ? FOR UPDATE");
            let sub = sqlx::query_as::<_, SubscriptionRow>(&sql).bind(&sub_id).fetch_one(&mut *tx).await?;
            let Some(end) = sub.current_period_end.filter(|e| *e <= t + ahead && *e > t - grace) else {
                return Ok::<_, Error>(None);
            };
            if sub.cancel_at_period_end {
                return Ok(None);
            }
            let plan: Option<(i64, String)> =
                sqlx::query_as("SELECT price_minor, currency FROM plans WHERE creator_id = ? AND active = 1")
                    .bind(&sub.creator_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((price, currency)) = plan else { return Ok(None) };
            let busy: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM subscription_charges WHERE subscription_id = ? AND (status = 'pending' OR period_start = ?) \
                 LIMIT 1 FOR UPDATE",
            )
            .bind(&sub.id)
            .bind(end)
            .fetch_optional(&mut *tx)
            .await?;
            if busy.is_some() {
                // in flight (the reconciler settles it) or this period was already tried
                return Ok(None);
            }
            let charge_id = new_id();
            let res = sqlx::query(
                "INSERT INTO subscription_charges (id, subscription_id, kind, period_start, period_end, amount_minor, \
                 currency, status, lease_until, created_at, updated_at) VALUES (?, ?, 'renewal', ?, ?, ?, ?, 'pending', ?, ?, ?)",
            )
            .bind(&charge_id)
            .bind(&sub.id)
            .bind(end)
            .bind(one_month_after(end))
            .bind(price)
            .bind(&currency)
            .bind(now() + state.payment_lease())
            .bind(t)
            .bind(t)
            .execute(&mut *tx)
            .await;
            match res {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            tx.commit().await?;
            Ok(Some(charge_id))
        }
        .await)?;
        let Some(charge_id) = charge_id else {
            report.skipped += 1;
            continue;
        };
        match settle_charge(state, &charge_id, None).await?.status {
            ChargeStatus::Completed => report.renewed += 1,
            ChargeStatus::Failed => report.declined += 1,
            ChargeStatus::Pending => report.pending += 1,
        }
    }
    if report != RenewReport::default() {
        info!(
            renewed = report.renewed,
            declined = report.declined,
            pending = report.pending,
            "renewal run"
        );
    }
    Ok(report)
}

/// Settles subscription charges left pending whose lease lapsed. Returns (completed, failed, pending).
pub(crate) async fn reconcile(state: &AppState) -> Result<(u64, u64, u64)> {
    let due: Vec<(String,)> = sqlx::query_as(
        "SELECT id FROM subscription_charges WHERE status = 'pending' AND lease_until <= ? ORDER BY lease_until LIMIT 200",
    )
    .bind(now())
    .fetch_all(&state.db)
    .await?;
    let (mut completed, mut failed, mut pending) = (0, 0, 0);
    for (id,) in due {
        if !take_lease(state, &id).await? {
            continue;
        }
        match settle_charge(state, &id, None).await?.status {
            ChargeStatus::Completed => completed += 1,
            ChargeStatus::Failed => failed += 1,
            ChargeStatus::Pending => pending += 1,
        }
    }
    Ok((completed, failed, pending))
}
