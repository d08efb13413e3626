//! user-svc: users, sessions, stream keys, creator plans, subscriptions, pay-per-view
//! purchases and the ledger, in MySQL/MariaDB.
//!
//! - [`app`] builds the router over an [`AppState`];
//! - [`start`] connects, migrates, seeds the demo creator and serves on `config.listen`
//!   (port 0 works), returning the bound address: what other crates' tests call;
//! - [`run`] is [`start`] plus the metrics endpoint, until the shutdown token fires.

pub mod auth;
pub mod broadcast_defaults;
pub mod config;
pub mod entitlements;
pub mod error;
pub mod http;
pub mod ledger;
pub mod model;
pub mod payment;
pub mod purchases;
pub mod replica;
pub mod state;
pub mod stream_keys;
pub mod subscriptions;
pub mod users;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sqlx::mysql::MySqlPoolOptions;
use sqlx::MySqlPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use config::Config;
pub use error::Error;
pub use http::app;
pub use state::AppState;

/// The schema. Other crates' tests can use it with
/// `#[sqlx::test(migrator = "user_svc::MIGRATOR")]`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Opens the connection pool; the error names the database without its password.
pub async fn connect(config: &Config) -> anyhow::Result<MySqlPool> {
    MySqlPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // no ping before every query (sqlx's default): it doubled the round trips of the hot
        // paths (entitlement checks, stream-key validation). A connection the server closed
        // fails its query once and is dropped from the pool.
        .test_before_acquire(false)
        .connect(&config.database_url)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot connect to the database {}: {e}",
                config::redact_url(&config.database_url)
            )
        })
}

/// Checks the config (the one place it is checked), connects, runs the migrations, seeds the demo creator (when enabled), starts the
/// background maintenance task and serves the API on `config.listen`. Returns the bound
/// address and a task that ends after `shutdown` is cancelled and everything stopped.
pub async fn start(
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    let db = connect(&config).await?;
    MIGRATOR
        .run(&db)
        .await
        .context("running database migrations")?;
    let (addr, task) = start_with_pool(config, db.clone(), shutdown).await?;
    let task = tokio::spawn(async move {
        let _ = task.await;
        db.close().await;
    });
    Ok((addr, task))
}

/// [`start`] over an existing, already migrated pool (e.g. a `#[sqlx::test]` one).
pub async fn start_with_pool(
    config: Config,
    db: MySqlPool,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let state = AppState::new(config, db).map_err(|e| anyhow::anyhow!("{e}"))?;
    if !state.config.shared_state_url.trim().is_empty() {
        let shared = service_kit::shared::Shared::connect(&state.config.shared_state_url, "")
            .await
            .with_context(|| {
                format!(
                    "shared state at {}",
                    service_kit::redact_url(&state.config.shared_state_url)
                )
            })?;
        state.login_limits.share(&shared);
        if let Some(r) = &state.replica {
            r.share(&shared, shutdown.clone());
        }
        info!("shared state (rate limits, read-your-writes marks) in redis");
    }
    users::seed_demo(&state)
        .await
        .map_err(|e| anyhow::anyhow!("seeding the demo creator: {e}"))?;
    let (addr, server) =
        service_kit::serve(state.config.listen, app(state.clone()), shutdown.clone()).await?;
    info!(%addr, "user-svc listening");
    let maintenance = tokio::spawn(maintenance_loop(state, shutdown));
    let task = tokio::spawn(async move {
        let _ = server.await;
        let _ = maintenance.await;
    });
    Ok((addr, task))
}

/// [`start`], plus `/metrics` on `config.metrics_listen`; returns once `shutdown` fired and
/// every task stopped.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics_listen = config.metrics_listen;
    service_kit::run_with_metrics(
        "user-svc",
        metrics_listen,
        shutdown.clone(),
        start(config, shutdown),
    )
    .await
}

/// What a reconciliation run settled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileReport {
    pub purchases_completed: u64,
    pub purchases_failed: u64,
    pub refunds_completed: u64,
    pub subscription_charges_completed: u64,
    pub subscription_charges_failed: u64,
    /// Payments the provider still did not answer; they are tried again next run.
    pub still_pending: u64,
}

/// Asks the provider again about every payment left pending (timed out, or interrupted by
/// a crash) whose lease lapsed, and records the answers. Safe to run concurrently and
/// repeatedly: providers are idempotent on our references and settlement is guarded.
pub async fn reconcile_pending(state: &AppState) -> error::Result<ReconcileReport> {
    let (pc, pf, rc, pp) = purchases::reconcile(state).await?;
    let (sc, sf, sp) = subscriptions::reconcile(state).await?;
    let report = ReconcileReport {
        purchases_completed: pc,
        purchases_failed: pf,
        refunds_completed: rc,
        subscription_charges_completed: sc,
        subscription_charges_failed: sf,
        still_pending: pp + sp,
    };
    // payments the provider has not answered, after this run: the reconcile backlog
    metrics::gauge!("user_svc_payments_pending").set((pp + sp) as f64);
    if report != ReconcileReport::default() {
        info!(
            purchases_completed = pc,
            purchases_failed = pf,
            refunds_completed = rc,
            subscription_charges_completed = sc,
            subscription_charges_failed = sf,
            still_pending = pp + sp,
            "reconciled pending payments"
        );
    }
    Ok(report)
}

/// Every `maintenance_interval_secs`: renew due subscriptions, settle pending payments.
async fn maintenance_loop(state: AppState, shutdown: CancellationToken) {
    let secs = state.config.maintenance_interval_secs;
    if secs == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = reconcile_pending(&state).await {
            warn!(error = %e, "reconciling pending payments failed");
        }
        if let Err(e) = subscriptions::renew_due(&state).await {
            warn!(error = %e, "renewing subscriptions failed");
        }
    }
}
