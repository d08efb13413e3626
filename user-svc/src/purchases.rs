//! Pay-per-view purchases: idempotent by (buyer, idempotency key), charged through the
//! provider, settled into the ledger exactly once, refundable.
//!
//! The pending row is committed before the provider is asked, so a crash or a timeout leaves
//! a record that [`crate::billing::reconcile`] (or a client retry) settles later. Whoever
//! holds the row's unexpired lease is the one talking to the provider; others wait for the
//! answer or, once the lease has lapsed, take it over. The provider is idempotent on the
//! purchase id, so taking over never charges twice.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::error::{is_unique_violation, Error, Result};
use crate::ledger::{self, Payment, TxKind};
use crate::model::{
    new_id, now, parse_id, validate_price, Purchase, PurchaseRow, PurchaseStatus, Role,
};
use crate::payment::{ChargeRequest, Outcome, RefundRequest};
use crate::state::{retry_tx, AppState};

const PURCHASE_COLUMNS: &str =
    "id, buyer_id, creator_id, video_id, price_minor, currency, request_hash, status, \
     provider_ref, lease_until, created_at, completed_at, refunded_at, refund_attempt";

/// `POST /v1/purchases`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct PurchaseInput {
    pub video_id: String,
    pub creator_id: String,
    pub price_minor: i64,
    pub currency: String,
    /// Required, here or in the `Idempotency-Key` header.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Card token for the provider (the local provider reads `tok_decline`, `tok_timeout`, ...).
    #[serde(default)]
    pub payment_token: Option<String>,
}

pub(crate) fn validate_video_id(raw: &str) -> Result<String> {
    let v = raw.trim();
    if v.is_empty() || v.len() > 128 || v.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::invalid(
            "video_id",
            "video_id must be 1 to 128 characters without spaces",
        ));
    }
    Ok(v.to_string())
}

fn validate_idempotency_key(raw: Option<&str>) -> Result<String> {
    match raw.map(str::trim) {
        Some(k) if !k.is_empty() && k.len() <= 128 && k.bytes().all(|b| b.is_ascii_graphic()) => Ok(k.to_string()),
        _ => Err(Error::invalid(
            "idempotency_key",
            "idempotency_key (or the Idempotency-Key header) must be 1 to 128 printable ASCII characters",
        )),
    }
}

pub(crate) async fn load(state: &AppState, id: &str) -> Result<Option<PurchaseRow>> {
    let sql = format!("SELECT {PURCHASE_COLUMNS} FROM purchases WHERE id = ?");
    Ok(sqlx::query_as::<_, PurchaseRow>(&sql)
        .bind(id)
        .fetch_optional(&state.db)
        .await?)
}

async fn load_by_key(state: &AppState, buyer_id: &str, key: &str) -> Result<Option<PurchaseRow>> {
    let sql = format!(
        "SELECT {PURCHASE_COLUMNS} FROM purchases WHERE buyer_id = ? AND idempotency_key = ?"
    );
    Ok(sqlx::query_as::<_, PurchaseRow>(&sql)
        .bind(buyer_id)
        .bind(key)
        .fetch_optional(&state.db)
        .await?)
}

/// Buys a video once. The same key always yields the same purchase and the same answer:
/// `Ok` when completed, `PaymentDeclined` when it failed, `PaymentTimeout` while pending.
pub async fn purchase(state: &AppState, buyer_id: &str, input: PurchaseInput) -> Result<Purchase> {
    let video_id = validate_video_id(&input.video_id)?;
    let creator_id = parse_id(&input.creator_id, "creator")
        .map_err(|_| Error::invalid("creator_id", "creator_id must be a user id"))?;
    let currency = validate_price(input.price_minor, &input.currency)?;
    let key = validate_idempotency_key(input.idempotency_key.as_deref())?;
    let request_hash = hex::encode(Sha256::digest(
        format!(
            "{video_id}\n{creator_id}\n{}\n{currency}",
            input.price_minor
        )
        .as_bytes(),
    ));

    if let Some(row) = load_by_key(state, buyer_id, &key).await? {
        return replay(state, row, &request_hash, input.payment_token).await;
    }
    if creator_id == buyer_id {
        return Err(Error::invalid("creator_id", "you own this video"));
    }
    match crate::users::find_by_id(state, &creator_id).await? {
        Some(c) if c.role.can_create() => {}
        _ => return Err(Error::NotFound("creator")),
    }

    let id = new_id();
    let t = now();
    let inserted = sqlx::query(
        "INSERT INTO purchases (id, buyer_id, creator_id, video_id, price_minor, currency, idempotency_key, \
         request_hash, status, lease_until, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
    )
    .bind(&id)
    .bind(buyer_id)
    .bind(&creator_id)
    .bind(&video_id)
    .bind(input.price_minor)
    .bind(&currency)
    .bind(&key)
    .bind(&request_hash)
    .bind(t + state.payment_lease())
    .bind(t)
    .bind(t)
    .execute(&state.db)
    .await;
    match inserted {
        Ok(_) => {
            info!(purchase_id = %id, buyer_id, creator_id = %creator_id, video_id = %video_id, "purchase started");
            let row = settle(state, &id, input.payment_token).await?;
            answer(row)
        }
        Err(e) if is_unique_violation(&e) => match load_by_key(state, buyer_id, &key).await? {
            // a concurrent request with the same key won the insert
            Some(row) => replay(state, row, &request_hash, input.payment_token).await,
            None => Err(Error::conflict(
                "already_purchased",
                "you already own or are buying this video",
            )),
        },
        Err(e) => Err(e.into()),
    }
}

/// Answers a repeated request from the stored purchase.
async fn replay(
    state: &AppState,
    row: PurchaseRow,
    request_hash: &str,
    token: Option<String>,
) -> Result<Purchase> {
    if row.request_hash != request_hash {
        return Err(Error::IdempotencyConflict);
    }
    if row.status == PurchaseStatus::Pending
        && row.lease_until <= now()
        && take_lease(state, &row.id, PurchaseStatus::Pending).await?
    {
        // nobody is settling it (an earlier attempt timed out): this retry does
        return answer(settle(state, &row.id, token).await?);
    }
    answer(wait(state, row).await?)
}

/// Waits while someone else holds the lease of a pending or refund-pending purchase.
async fn wait(state: &AppState, mut row: PurchaseRow) -> Result<PurchaseRow> {
    let status = row.status;
    let deadline = Instant::now() + state.payment_timeout() + Duration::from_secs(3);
    while row.status == status
        && matches!(
            status,
            PurchaseStatus::Pending | PurchaseStatus::RefundPending
        )
        && row.lease_until > now()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(15)).await;
        row = load(state, &row.id)
            .await?
            .ok_or(Error::NotFound("purchase"))?;
    }
    Ok(row)
}

fn answer(row: PurchaseRow) -> Result<Purchase> {
    match row.status {
        PurchaseStatus::Completed | PurchaseStatus::RefundPending | PurchaseStatus::Refunded => {
            Ok(row.into())
        }
        PurchaseStatus::Failed => Err(Error::PaymentDeclined),
        PurchaseStatus::Pending => Err(Error::PaymentTimeout),
    }
}

/// Takes the lease of a purchase in `status` whose lease has lapsed.
async fn take_lease(state: &AppState, id: &str, status: PurchaseStatus) -> Result<bool> {
    let t = now();
    let res = sqlx::query(
        "UPDATE purchases SET lease_until = ?, updated_at = ? WHERE id = ? AND status = ? AND lease_until <= ?",
    )
    .bind(t + state.payment_lease())
    .bind(t)
    .bind(id)
    .bind(status)
    .bind(t)
    .execute(&state.db)
    .await?;
    Ok(res.rows_affected() == 1)
}

/// Gives up the lease after a timeout, so a retry or the reconciler may go at once.
async fn release_lease(state: &AppState, id: &str, status: PurchaseStatus) -> Result<()> {
    sqlx::query("UPDATE purchases SET lease_until = ? WHERE id = ? AND status = ?")
        .bind(now())
        .bind(id)
        .bind(status)
        .execute(&state.db)
        .await?;
    Ok(())
}

/// Asks the provider about a pending purchase (the caller holds its lease) and records the
/// answer. Returns the row as it is afterwards.
pub(crate) async fn settle(
    state: &AppState,
    id: &str,
    token: Option<String>,
) -> Result<PurchaseRow> {
    let row = load(state, id).await?.ok_or(Error::NotFound("purchase"))?;
    if row.status != PurchaseStatus::Pending {
        return Ok(row);
    }
    let req = ChargeRequest {
        reference: row.id.clone(),
        customer_id: row.buyer_id.clone(),
        amount_minor: row.price_minor,
        currency: row.currency.clone(),
        payment_token: token,
    };
    let outcome = tokio::time::timeout(state.payment_timeout(), state.payments.charge(&req)).await;
    match outcome {
        Ok(Ok(Outcome::Approved { provider_ref })) => {
            retry_tx!(async {
                let mut tx = state.db.begin().await?;
                let (status,): (PurchaseStatus,) =
                    sqlx::query_as("SELECT status FROM purchases WHERE id = ? FOR UPDATE").bind(id).fetch_one(&mut *tx).await?;
                if status == PurchaseStatus::Pending {
                    let t = now();
                    sqlx::query(
                        "UPDATE purchases SET status = 'completed', provider_ref = ?, completed_at = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(&provider_ref)
                    .bind(t)
                    .bind(t)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    ledger::record(
                        &mut tx,
                        ledger::Fee::Bps(state.config.payment.platform_fee_bps),
                        Payment {
                            kind: TxKind::Purchase,
                            reference_id: id,
                            payer_id: &row.buyer_id,
                            creator_id: &row.creator_id,
                            amount_minor: row.price_minor,
                            currency: &row.currency,
                        },
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, Error>(())
            }
            .await)?;
            metrics::counter!("user_svc_payments_total", "kind" => "purchase", "outcome" => "approved").increment(1);
            info!(purchase_id = id, "purchase completed");
        }
        Ok(Ok(Outcome::Declined { reason })) => {
            sqlx::query(
                "UPDATE purchases SET status = 'failed', failure_reason = ?, updated_at = ? WHERE id = ? AND status = 'pending'",
            )
            .bind(&reason)
            .bind(now())
            .bind(id)
            .execute(&state.db)
            .await?;
            metrics::counter!("user_svc_payments_total", "kind" => "purchase", "outcome" => "declined").increment(1);
            info!(purchase_id = id, reason = %reason, "purchase declined");
        }
        Ok(Err(e)) => {
            release_lease(state, id, PurchaseStatus::Pending).await?;
            metrics::counter!("user_svc_payments_total", "kind" => "purchase", "outcome" => "error").increment(1);
            warn!(purchase_id = id, error = %e, "payment provider failed; purchase left pending");
        }
        Err(_) => {
            release_lease(state, id, PurchaseStatus::Pending).await?;
            metrics::counter!("user_svc_payments_total", "kind" => "purchase", "outcome" => "timeout").increment(1);
            warn!(
                purchase_id = id,
                "payment provider timed out; purchase left pending"
            );
        }
    }
    load(state, id).await?.ok_or(Error::NotFound("purchase"))
}

/// Refunds a completed purchase. The creator who sold it (or an admin) may refund; refunding
/// a refunded purchase answers the same purchase again.
pub async fn refund(state: &AppState, actor_id: &str, purchase_id: &str) -> Result<Purchase> {
    let id = parse_id(purchase_id, "purchase")?;
    let row = load(state, &id).await?.ok_or(Error::NotFound("purchase"))?;
    let actor = crate::users::get(state, actor_id).await?;
    if actor.id != row.creator_id && actor.role != Role::Admin {
        if actor.id == row.buyer_id {
            return Err(Error::Forbidden(
                "refunds are issued by the creator who sold the video",
            ));
        }
        return Err(Error::NotFound("purchase"));
    }
    match row.status {
        PurchaseStatus::Refunded => Ok(row.into()),
        PurchaseStatus::Pending | PurchaseStatus::Failed => Err(Error::conflict(
            "not_refundable",
            "only completed purchases can be refunded",
        )),
        PurchaseStatus::RefundPending => {
            if row.lease_until <= now()
                && take_lease(state, &id, PurchaseStatus::RefundPending).await?
            {
                return refund_answer(settle_refund(state, &id).await?);
            }
            refund_answer(wait(state, row).await?)
        }
        PurchaseStatus::Completed => {
            let t = now();
            let res = sqlx::query(
                "UPDATE purchases SET status = 'refund_pending', refund_attempt = refund_attempt + 1, lease_until = ?, \
                 updated_at = ? WHERE id = ? AND status = 'completed'",
            )
            .bind(t + state.payment_lease())
            .bind(t)
            .bind(&id)
            .execute(&state.db)
            .await?;
            if res.rows_affected() == 0 {
                // someone else started the refund a moment ago
                let row = load(state, &id).await?.ok_or(Error::NotFound("purchase"))?;
                return refund_answer(wait(state, row).await?);
            }
            info!(purchase_id = %id, actor_id, "refund started");
            refund_answer(settle_refund(state, &id).await?)
        }
    }
}

fn refund_answer(row: PurchaseRow) -> Result<Purchase> {
    match row.status {
        PurchaseStatus::Refunded => Ok(row.into()),
        PurchaseStatus::RefundPending => Err(Error::PaymentTimeout),
        // the provider declined and the purchase went back to completed
        _ => Err(Error::PaymentDeclined),
    }
}

/// Asks the provider to refund a refund-pending purchase (the caller holds its lease).
pub(crate) async fn settle_refund(state: &AppState, id: &str) -> Result<PurchaseRow> {
    let row = load(state, id).await?.ok_or(Error::NotFound("purchase"))?;
    if row.status != PurchaseStatus::RefundPending {
        return Ok(row);
    }
    let req = RefundRequest {
        reference: format!("refund:{}:{}", row.id, row.refund_attempt),
        charge_ref: row.provider_ref.clone().unwrap_or_default(),
        amount_minor: row.price_minor,
        currency: row.currency.clone(),
    };
    match tokio::time::timeout(state.payment_timeout(), state.payments.refund(&req)).await {
        Ok(Ok(Outcome::Approved { .. })) => {
            retry_tx!(async {
                let mut tx = state.db.begin().await?;
                let (status,): (PurchaseStatus,) =
                    sqlx::query_as("SELECT status FROM purchases WHERE id = ? FOR UPDATE").bind(id).fetch_one(&mut *tx).await?;
                if status == PurchaseStatus::RefundPending {
                    // give back exactly the fee taken then, whatever the rate is now
                    let fee = ledger::purchase_fee(&mut tx, id).await?;
                    let t = now();
                    sqlx::query("UPDATE purchases SET status = 'refunded', refunded_at = ?, updated_at = ? WHERE id = ?")
                        .bind(t)
                        .bind(t)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    ledger::record(
                        &mut tx,
                        ledger::Fee::Exactly(fee),
                        Payment {
                            kind: TxKind::Refund,
                            reference_id: id,
                            payer_id: &row.buyer_id,
                            creator_id: &row.creator_id,
                            amount_minor: row.price_minor,
                            currency: &row.currency,
                        },
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok::<_, Error>(())
            }
            .await)?;
            metrics::counter!("user_svc_payments_total", "kind" => "refund", "outcome" => "approved").increment(1);
            info!(purchase_id = id, "purchase refunded");
        }
        Ok(Ok(Outcome::Declined { reason })) => {
            sqlx::query("UPDATE purchases SET status = 'completed', updated_at = ? WHERE id = ? AND status = 'refund_pending'")
                .bind(now())
                .bind(id)
                .execute(&state.db)
                .await?;
            metrics::counter!("user_svc_payments_total", "kind" => "refund", "outcome" => "declined").increment(1);
            info!(purchase_id = id, reason = %reason, "refund declined");
        }
        Ok(Err(_)) | Err(_) => {
            release_lease(state, id, PurchaseStatus::RefundPending).await?;
            metrics::counter!("user_svc_payments_total", "kind" => "refund", "outcome" => "timeout").increment(1);
            warn!(
                purchase_id = id,
                "payment provider did not confirm the refund; left pending"
            );
        }
    }
    load(state, id).await?.ok_or(Error::NotFound("purchase"))
}

/// Settles purchases and refunds left pending whose lease has lapsed. Returns
/// (completed, failed, refunded, still pending).
pub(crate) async fn reconcile(state: &AppState) -> Result<(u64, u64, u64, u64)> {
    let due: Vec<(String, PurchaseStatus)> = sqlx::query_as(
        "SELECT id, status FROM purchases WHERE status IN ('pending', 'refund_pending') AND lease_until <= ? \
         ORDER BY lease_until LIMIT 200",
    )
    .bind(now())
    .fetch_all(&state.db)
    .await?;
    let (mut completed, mut failed, mut refunded, mut pending) = (0, 0, 0, 0);
    for (id, status) in due {
        if !take_lease(state, &id, status).await? {
            continue;
        }
        let row = match status {
            PurchaseStatus::Pending => settle(state, &id, None).await?,
            _ => settle_refund(state, &id).await?,
        };
        match (status, row.status) {
            (_, PurchaseStatus::Pending | PurchaseStatus::RefundPending) => pending += 1,
            (PurchaseStatus::Pending, PurchaseStatus::Completed) => completed += 1,
            (_, PurchaseStatus::Failed) => failed += 1,
            (_, PurchaseStatus::Refunded) => refunded += 1,
            // refund declined, back to completed
            _ => failed += 1,
        }
    }
    Ok((completed, failed, refunded, pending))
}

pub async fn list_for_buyer(state: &AppState, buyer_id: &str, limit: u32) -> Result<Vec<Purchase>> {
    let sql = format!("SELECT {PURCHASE_COLUMNS} FROM purchases WHERE buyer_id = ? ORDER BY created_at DESC, id DESC LIMIT ?");
    let rows = sqlx::query_as::<_, PurchaseRow>(&sql)
        .bind(buyer_id)
        .bind(limit.clamp(1, 500))
        .fetch_all(&state.db)
        .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Whether `user_id` holds a completed purchase of `video_id` (a refund in flight still counts).
pub async fn owns(state: &AppState, user_id: &str, video_id: &str) -> Result<bool> {
    let row: Option<(i32,)> =
        sqlx::query_as("SELECT 1 FROM purchases WHERE buyer_id = ? AND video_id = ? AND status IN ('completed', 'refund_pending') LIMIT 1")
            .bind(user_id)
            .bind(video_id)
            .fetch_optional(&state.db)
            .await?;
    Ok(row.is_some())
}
