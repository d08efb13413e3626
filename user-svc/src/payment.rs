//! Payment providers: the [`PaymentProvider`] trait and the in-process [`LocalProvider`].
//!
//! Every charge and refund carries our own `reference` (the purchase or subscription charge
//! id). Providers must be idempotent on it: asking again with the same reference returns
//! the first outcome and never moves money twice. That is what makes a timed-out payment
//! safe to retry later (see `billing::reconcile`).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::config::PaymentMode;

#[derive(Debug, Clone)]
pub struct ChargeRequest {
    /// Our id for this payment; the idempotency key at the provider.
    pub reference: String,
    pub customer_id: String,
    pub amount_minor: i64,
    pub currency: String,
    /// A client-side payment token (card token). The local provider reads the test values
    /// `tok_approve`, `tok_decline`, `tok_timeout` and `tok_lost_reply`.
    pub payment_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RefundRequest {
    /// Our id for this refund attempt (`refund:<purchase id>:<attempt>`).
    pub reference: String,
    /// The provider's reference of the charge being refunded.
    pub charge_ref: String,
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Approved { provider_ref: String },
    Declined { reason: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// No answer in time: the money may or may not have moved.
    #[error("the payment provider did not answer in time")]
    Timeout,
    #[error("the payment provider is unavailable: {0}")]
    Unavailable(String),
}

/// Something that moves money. Implementations must be idempotent on `reference`.
/// Callers bound every call with their own timeout.
#[async_trait]
pub trait PaymentProvider: Send + Sync {
    async fn charge(&self, req: &ChargeRequest) -> Result<Outcome, ProviderError>;
    async fn refund(&self, req: &RefundRequest) -> Result<Outcome, ProviderError>;
}

/// An in-memory provider for the local stack and tests. No money moves; it can be told to
/// approve, decline, time out, or take the money and lose the answer.
pub struct LocalProvider {
    mode: Mutex<PaymentMode>,
    /// Tests only: `payment_token` picks the outcome.
    test_tokens: bool,
    /// Outcomes by reference, so repeats are idempotent.
    seen: Mutex<HashMap<String, Outcome>>,
}

impl LocalProvider {
    /// With `test_tokens` the client's `payment_token` (`tok_decline`, ...) picks the outcome:
    /// for tests only.
    pub fn new(mode: PaymentMode, test_tokens: bool) -> Self {
        Self {
            mode: Mutex::new(mode),
            test_tokens,
            seen: Mutex::new(HashMap::new()),
        }
    }

    pub fn mode(&self) -> PaymentMode {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_mode(&self, mode: PaymentMode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    /// How many charges and refunds were approved (each reference counts once).
    pub fn approved_count(&self) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.values()
            .filter(|o| matches!(o, Outcome::Approved { .. }))
            .count()
    }

    fn mode_for(&self, token: Option<&str>) -> PaymentMode {
        if !self.test_tokens {
            return self.mode();
        }
        match token {
            Some("tok_approve") => PaymentMode::Approve,
            Some("tok_decline") => PaymentMode::Decline,
            Some("tok_timeout") => PaymentMode::Timeout,
            Some("tok_lost_reply") => PaymentMode::LostReply,
            _ => self.mode(),
        }
    }

    async fn settle(&self, reference: &str, mode: PaymentMode) -> Result<Outcome, ProviderError> {
        if let Some(done) = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(reference)
        {
            return Ok(done.clone());
        }
        let outcome = match mode {
            PaymentMode::Approve | PaymentMode::LostReply => Outcome::Approved {
                provider_ref: format!("local_{}", uuid::Uuid::new_v4().simple()),
            },
            PaymentMode::Decline => Outcome::Declined {
                reason: "card_declined".into(),
            },
            PaymentMode::Timeout => std::future::pending().await,
        };
        // first answer wins if two calls race on one reference
        let outcome = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reference.to_string())
            .or_insert(outcome)
            .clone();
        if mode == PaymentMode::LostReply {
            std::future::pending::<()>().await;
        }
        Ok(outcome)
    }
}

#[async_trait]
impl PaymentProvider for LocalProvider {
    async fn charge(&self, req: &ChargeRequest) -> Result<Outcome, ProviderError> {
        self.settle(&req.reference, self.mode_for(req.payment_token.as_deref()))
            .await
    }

    async fn refund(&self, req: &RefundRequest) -> Result<Outcome, ProviderError> {
        self.settle(&req.reference, self.mode()).await
    }
}

#[cfg(test)]
pub(crate) mod contract {
    //! The contract every [`PaymentProvider`] must meet. `approving` and `declining` are two
    //! handles of the implementation under test, set to approve and to decline.
    use super::*;

    fn charge(reference: &str, token: Option<&str>) -> ChargeRequest {
        ChargeRequest {
            reference: reference.into(),
            customer_id: "c".into(),
            amount_minor: 100,
            currency: "EUR".into(),
            payment_token: token.map(Into::into),
        }
    }

    pub async fn charges_are_idempotent_by_reference(p: &dyn PaymentProvider) {
        let a = p.charge(&charge("r1", None)).await.unwrap();
        let b = p.charge(&charge("r1", None)).await.unwrap();
        assert!(matches!(a, Outcome::Approved { .. }));
        assert_eq!(a, b, "a repeated reference returns the first outcome");
        let c = p.charge(&charge("r2", None)).await.unwrap();
        assert_ne!(a, c, "another reference is another charge");
    }

    pub async fn refunds_are_idempotent_by_reference(p: &dyn PaymentProvider) {
        let Outcome::Approved { provider_ref } = p.charge(&charge("r3", None)).await.unwrap()
        else {
            panic!()
        };
        let req = RefundRequest {
            reference: "refund:r3".into(),
            charge_ref: provider_ref,
            amount_minor: 100,
            currency: "EUR".into(),
        };
        let a = p.refund(&req).await.unwrap();
        assert_eq!(a, p.refund(&req).await.unwrap());
    }

    #[tokio::test]
    async fn local_provider_meets_the_contract() {
        let p = LocalProvider::new(PaymentMode::Approve, false);
        charges_are_idempotent_by_reference(&p).await;
        refunds_are_idempotent_by_reference(&p).await;
    }

    #[tokio::test]
    async fn without_test_tokens_a_client_cannot_pick_the_outcome() {
        let p = LocalProvider::new(PaymentMode::Decline, false);
        for token in ["tok_approve", "tok_lost_reply"] {
            assert!(matches!(
                p.charge(&charge(token, Some(token))).await.unwrap(),
                Outcome::Declined { .. }
            ));
        }
        let p = LocalProvider::new(PaymentMode::Approve, false);
        assert!(matches!(
            p.charge(&charge("d", Some("tok_decline"))).await.unwrap(),
            Outcome::Approved { .. }
        ));
    }

    #[tokio::test]
    async fn local_provider_modes_and_tokens() {
        let p = LocalProvider::new(PaymentMode::Decline, true);
        assert!(matches!(
            p.charge(&charge("d", None)).await.unwrap(),
            Outcome::Declined { .. }
        ));
        assert!(matches!(
            p.charge(&charge("a", Some("tok_approve"))).await.unwrap(),
            Outcome::Approved { .. }
        ));
        let req = charge("t", Some("tok_timeout"));
        let t = tokio::time::timeout(std::time::Duration::from_millis(50), p.charge(&req));
        assert!(t.await.is_err(), "timeout mode never answers");
        // the lost reply took the money: a retry returns the recorded approval, no new charge
        let req = charge("l", Some("tok_lost_reply"));
        let l = tokio::time::timeout(std::time::Duration::from_millis(50), p.charge(&req));
        assert!(l.await.is_err());
        let before = p.approved_count();
        assert!(matches!(
            p.charge(&charge("l", None)).await.unwrap(),
            Outcome::Approved { .. }
        ));
        assert_eq!(p.approved_count(), before);
        // timeout recorded nothing: a retry is decided by the current mode
        p.set_mode(PaymentMode::Approve);
        assert!(matches!(
            p.charge(&charge("t", None)).await.unwrap(),
            Outcome::Approved { .. }
        ));
    }
}
