//! Shared state of the service and small database helpers.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;

use crate::auth::{Jwt, LoginLimits, Passwords};
use crate::config::{Config, ProviderKind};
use crate::error::{Error, Result};
use crate::payment::{LocalProvider, PaymentProvider};

/// Cheap to clone; every handler gets one.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

pub struct Inner {
    pub db: MySqlPool,
    pub config: Config,
    pub jwt: Jwt,
    pub passwords: Passwords,
    pub login_limits: LoginLimits,
    pub payments: Arc<dyn PaymentProvider>,
    /// Set when the provider is the local one, so its mode can be changed at run time.
    pub local_provider: Option<Arc<LocalProvider>>,
    /// The read replica, when configured.
    pub replica: Option<Arc<crate::replica::Replica>>,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl AppState {
    /// State over an already migrated pool, with the provider the config names.
    pub fn new(config: Config, db: MySqlPool) -> Result<Self> {
        match config.payment.provider {
            ProviderKind::Local => {
                let local = Arc::new(LocalProvider::new(
                    config.payment.mode,
                    config.payment.test_tokens,
                ));
                Self::build(config, db, local.clone(), Some(local))
            }
        }
    }

    /// State with another payment provider (a real one, or a test double).
    pub fn with_provider(
        config: Config,
        db: MySqlPool,
        provider: Arc<dyn PaymentProvider>,
    ) -> Result<Self> {
        Self::build(config, db, provider, None)
    }

    fn build(
        config: Config,
        db: MySqlPool,
        payments: Arc<dyn PaymentProvider>,
        local_provider: Option<Arc<LocalProvider>>,
    ) -> Result<Self> {
        let jwt = Jwt::new(
            &config.jwt_secret,
            Duration::from_secs(config.access_token_ttl_secs),
        );
        let passwords = Passwords::new(&config.password)?;
        let login_limits = LoginLimits::new(&config.rate_limit);
        let replica = crate::replica::Replica::open(&config)
            .map_err(|e| Error::Internal(e.to_string()))?
            .map(Arc::new);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                config,
                jwt,
                passwords,
                login_limits,
                payments,
                local_provider,
                replica,
            }),
        })
    }

    pub fn payment_timeout(&self) -> Duration {
        Duration::from_millis(self.config.payment.timeout_ms)
    }

    /// How long a payment stays leased to whoever is asking the provider about it.
    pub fn payment_lease(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::milliseconds(self.config.payment.timeout_ms as i64 + 2_000)
    }
}

/// Whether a failed statement is worth retrying (deadlock, lock wait timeout).
pub(crate) fn retryable(e: &Error, attempt: u32) -> bool {
    attempt < 6 && matches!(e.mysql_number(), Some(1213 | 1205))
}

pub(crate) async fn backoff(attempt: u32) {
    use rand::Rng;
    let ms = rand::thread_rng().gen_range(2..10u64) * u64::from(attempt);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Runs a transaction body again when the database picks it as a deadlock victim:
/// `retry_tx!(async { ... }.await)`.
macro_rules! retry_tx {
    ($body:expr) => {{
        let mut attempt = 0u32;
        loop {
            match $body {
                Err(e) if $crate::state::retryable(&e, attempt) => {
                    attempt += 1;
                    tracing::debug!(attempt, "transaction retried after a deadlock");
                    $crate::state::backoff(attempt).await;
                }
                r => break r,
            }
        }
    }};
}
pub(crate) use retry_tx;
