//! The double-entry ledger. Every settled payment writes one transaction whose entries sum to
//! zero: the payer's `spend` account goes down by the price, the creator's `earnings` and the
//! `platform` fee account go up. A refund writes the mirror image. Balances and history are
//! sums over entries; nothing else stores money.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::MySqlConnection;

use crate::error::Result;
use crate::model::{new_id, now, text_enum};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Encode, sqlx::Decode)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum TxKind {
    Purchase,
    Refund,
    Subscription,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Encode, sqlx::Decode)]
#[serde(rename_all = "snake_case")]
#[sqlx(rename_all = "snake_case")]
pub enum Account {
    /// What a user paid (negative balance = money spent).
    Spend,
    /// What a creator earned.
    Earnings,
    /// Platform fees.
    Platform,
}

text_enum!(TxKind, Account);

/// A payment from `payer_id` to `creator_id`.
pub struct Payment<'a> {
    pub kind: TxKind,
    pub reference_id: &'a str,
    pub payer_id: &'a str,
    pub creator_id: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
}

/// The platform's share of `amount` at `fee_bps` basis points (rounded down).
pub fn platform_fee(amount_minor: i64, fee_bps: u32) -> i64 {
    (i128::from(amount_minor) * i128::from(fee_bps) / 10_000) as i64
}

/// The platform's fee on a payment.
#[derive(Debug, Clone, Copy)]
pub enum Fee {
    /// The configured rate, for a new payment.
    Bps(u32),
    /// The fee recorded when the payment was made, for its reversal: a refund gives back
    /// exactly what was taken, whatever the rate is now.
    Exactly(i64),
}

/// The platform fee recorded for purchase `purchase_id` (0 when none was).
pub async fn purchase_fee(conn: &mut MySqlConnection, purchase_id: &str) -> Result<i64> {
    let (fee,): (i64,) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(e.amount_minor), 0) AS SIGNED) FROM ledger_entries e \
         JOIN ledger_transactions t ON t.id = e.transaction_id \
         WHERE t.kind = 'purchase' AND t.reference_id = ? AND e.account = 'platform'",
    )
    .bind(purchase_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(fee)
}

/// Writes the transaction for a payment (or, with `TxKind::Refund`, its reversal) inside the
/// caller's database transaction. The unique (kind, reference) key makes a second write for
/// the same payment fail instead of double counting.
pub async fn record(conn: &mut MySqlConnection, fee: Fee, p: Payment<'_>) -> Result<String> {
    let tx_id = new_id();
    sqlx::query(
        "INSERT INTO ledger_transactions (id, kind, reference_id, created_at) VALUES (?, ?, ?, ?)",
    )
    .bind(&tx_id)
    .bind(p.kind)
    .bind(p.reference_id)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    let fee = match fee {
        Fee::Bps(bps) => platform_fee(p.amount_minor, bps),
        Fee::Exactly(f) => f.clamp(0, p.amount_minor),
    };
    let sign = if p.kind == TxKind::Refund { -1 } else { 1 };
    let entries = [
        (Account::Spend, Some(p.payer_id), -p.amount_minor * sign),
        (
            Account::Earnings,
            Some(p.creator_id),
            (p.amount_minor - fee) * sign,
        ),
        (Account::Platform, None, fee * sign),
    ];
    let mut qb = sqlx::QueryBuilder::new(
        "INSERT INTO ledger_entries (transaction_id, account, user_id, amount_minor, currency) ",
    );
    qb.push_values(
        entries.iter().filter(|e| e.2 != 0),
        |mut b, (account, user, amount)| {
            b.push_bind(&tx_id)
                .push_bind(*account)
                .push_bind(*user)
                .push_bind(*amount)
                .push_bind(p.currency);
        },
    );
    qb.build().execute(&mut *conn).await?;
    metrics::counter!("user_svc_ledger_transactions_total", "kind" => kind_label(p.kind))
        .increment(1);
    Ok(tx_id)
}

fn kind_label(k: TxKind) -> &'static str {
    match k {
        TxKind::Purchase => "purchase",
        TxKind::Refund => "refund",
        TxKind::Subscription => "subscription",
    }
}

/// One of the caller's entries with its transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, sqlx::FromRow)]
pub struct Entry {
    pub transaction_id: String,
    pub kind: TxKind,
    pub reference_id: String,
    pub account: Account,
    /// Signed: negative leaves the account, positive enters it.
    pub amount_minor: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

pub async fn history(state: &AppState, user_id: &str, limit: u32) -> Result<Vec<Entry>> {
    Ok(sqlx::query_as::<_, Entry>(
        "SELECT e.transaction_id, t.kind, t.reference_id, e.account, e.amount_minor, e.currency, t.created_at \
         FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id \
         WHERE e.user_id = ? ORDER BY t.created_at DESC, e.id DESC LIMIT ?",
    )
    .bind(user_id)
    .bind(limit.clamp(1, 500))
    .fetch_all(&state.db)
    .await?)
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, sqlx::FromRow)]
pub struct Balance {
    pub account: Account,
    pub currency: String,
    pub amount_minor: i64,
}

/// The caller's balance per account and currency, summed from the entries.
pub async fn balances(state: &AppState, user_id: &str) -> Result<Vec<Balance>> {
    Ok(sqlx::query_as::<_, Balance>(
        "SELECT account, currency, CAST(SUM(amount_minor) AS SIGNED) AS amount_minor FROM ledger_entries \
         WHERE user_id = ? GROUP BY account, currency ORDER BY account, currency",
    )
    .bind(user_id)
    .fetch_all(&state.db)
    .await?)
}

/// Transactions whose entries do not sum to zero per currency (must always be empty).
pub async fn unbalanced_transactions(db: &sqlx::MySqlPool) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT t.id FROM ledger_transactions t LEFT JOIN ledger_entries e ON e.transaction_id = t.id \
         GROUP BY t.id, e.currency HAVING COALESCE(SUM(e.amount_minor), 0) <> 0 OR COUNT(e.id) < 2",
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn fee_rounds_down_and_never_exceeds_amount() {
        assert_eq!(super::platform_fee(999, 1000), 99);
        assert_eq!(super::platform_fee(1, 1000), 0);
        assert_eq!(super::platform_fee(500, 10_000), 500);
    }
}
