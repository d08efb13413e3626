//! The one typed configuration of user-svc.
//!
//! Loaded by `service_kit::load_config::<Config>(file, "CAUDAL_USER_")`: defaults, then the TOML
//! file, then environment variables (`CAUDAL_USER_JWT_SECRET`, nested with `__`, e.g.
//! `CAUDAL_USER_DEMO__ENABLED=true`); secrets may come from `CAUDAL_USER_JWT_SECRET_FILE`.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// Environment prefix of every user-svc setting.
pub const ENV_PREFIX: &str = "CAUDAL_USER_";

#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address of the HTTP API (`/v1` for bff, `/internal/v1` for other services, `/healthz`).
    pub listen: SocketAddr,
    /// Address of the Prometheus `/metrics` endpoint.
    pub metrics_listen: SocketAddr,
    /// MySQL/MariaDB URL, e.g. `mysql://caudal:caudal@127.0.0.1:3306/caudal`. Required.
    pub database_url: String,
    /// Most database connections the service opens.
    pub database_max_connections: u32,
    /// A MariaDB replica of `database_url` for lag-tolerant public reads (plans shown to
    /// others, public profiles); empty: everything reads the primary. See `replica.rs`.
    pub replica_database_url: String,
    /// After a read failed on the replica, how long to read the primary before trying it again, s.
    pub replica_retry_secs: u64,
    /// After a write to a user's plan or profile, how long that user's rows are read from the
    /// primary (read your writes; bounds the replica lag that is tolerated), s.
    pub replica_read_after_write_secs: u64,
    /// Redis URL for state shared by user-svc instances (login and sign-up rate limits,
    /// read-your-writes marks); empty: this instance is alone.
    pub shared_state_url: String,
    /// HS256 key signing access tokens (at least 32 bytes). Required; give it through
    /// `CAUDAL_USER_JWT_SECRET` or `CAUDAL_USER_JWT_SECRET_FILE`.
    pub jwt_secret: String,
    /// Lifetime of an access token (JWT), in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Password hashing (argon2id) settings.
    pub password: PasswordConfig,
    /// Login rate limits.
    pub rate_limit: RateLimitConfig,
    /// Payment provider settings.
    pub payment: PaymentConfig,
    /// Subscription renewal settings.
    pub subscriptions: SubscriptionConfig,
    /// How often the background task renews due subscriptions and settles pending payments,
    /// in seconds; 0 turns it off (the internal endpoints still work).
    pub maintenance_interval_secs: u64,
    /// A demo creator seeded at start-up, for the local stack.
    pub demo: DemoConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8082)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9082)),
            database_url: String::new(),
            database_max_connections: 32,
            replica_database_url: String::new(),
            replica_retry_secs: 5,
            replica_read_after_write_secs: 10,
            shared_state_url: String::new(),
            jwt_secret: String::new(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            password: PasswordConfig::default(),
            rate_limit: RateLimitConfig::default(),
            payment: PaymentConfig::default(),
            subscriptions: SubscriptionConfig::default(),
            maintenance_interval_secs: 60,
            demo: DemoConfig::default(),
        }
    }
}

impl Config {
    /// A configuration for tests and in-process use by other crates' tests: listens on
    /// 127.0.0.1 port 0, a random JWT secret, cheap password hashing, fast payment timeouts,
    /// no background task.
    pub fn for_tests(database_url: &str) -> Self {
        use rand::Rng;
        let secret: String = rand::thread_rng()
            .sample_iter(&rand::distributions::Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_string(),
            database_max_connections: 5,
            jwt_secret: secret,
            password: PasswordConfig {
                memory_kib: 1024,
                iterations: 1,
                parallelism: 1,
                max_concurrent: 4,
            },
            payment: PaymentConfig {
                timeout_ms: 300,
                local_enabled: true,
                test_tokens: true,
                ..PaymentConfig::default()
            },
            maintenance_interval_secs: 0,
            // tests sign many users up from one address
            rate_limit: RateLimitConfig {
                signup_address_burst: 100_000,
                ..RateLimitConfig::default()
            },
            ..Self::default()
        }
    }

    /// Checks what serde cannot; the message says what to set.
    pub fn validate(&self) -> Result<(), String> {
        if self.database_url.trim().is_empty() {
            return Err("database_url is not set: set CAUDAL_USER_DATABASE_URL (mysql://user:pass@host:port/db)".into());
        }
        if self.jwt_secret.len() < 32 {
            return Err(
                "jwt_secret must be at least 32 bytes: set CAUDAL_USER_JWT_SECRET or CAUDAL_USER_JWT_SECRET_FILE".into(),
            );
        }
        if self.access_token_ttl_secs == 0 || self.refresh_token_ttl_secs == 0 {
            return Err("access_token_ttl_secs and refresh_token_ttl_secs must be positive".into());
        }
        if self.database_max_connections == 0 {
            return Err("database_max_connections must be positive".into());
        }
        if self.payment.platform_fee_bps > 10_000 {
            return Err("payment.platform_fee_bps must be between 0 and 10000".into());
        }
        if self.payment.timeout_ms == 0 {
            return Err("payment.timeout_ms must be positive".into());
        }
        if self.payment.provider == ProviderKind::Local && !self.payment.local_enabled {
            return Err("payment.provider is `local`, which takes no real money: set CAUDAL_USER_PAYMENT__LOCAL_ENABLED=true for development, never in production".into());
        }
        if self.password.memory_kib < 8
            || self.password.iterations == 0
            || self.password.parallelism == 0
        {
            return Err(
                "password.memory_kib >= 8, password.iterations >= 1 and password.parallelism >= 1"
                    .into(),
            );
        }
        if self.demo.enabled {
            let d = &self.demo;
            if d.email.trim().is_empty() || d.password.len() < 8 || d.stream_key.trim().is_empty() {
                return Err(
                    "demo.enabled needs demo.email, demo.password (8+ characters) and demo.stream_key".into(),
                );
            }
        }
        Ok(())
    }
}

// Secrets never reach a log line through `{:?}`.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("metrics_listen", &self.metrics_listen)
            .field("database_url", &redact_url(&self.database_url))
            .field("database_max_connections", &self.database_max_connections)
            .field(
                "replica_database_url",
                &redact_url(&self.replica_database_url),
            )
            .field("replica_retry_secs", &self.replica_retry_secs)
            .field(
                "replica_read_after_write_secs",
                &self.replica_read_after_write_secs,
            )
            .field("shared_state_url", &redact_url(&self.shared_state_url))
            .field("jwt_secret", &"<redacted>")
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("password", &self.password)
            .field("rate_limit", &self.rate_limit)
            .field("payment", &self.payment)
            .field("subscriptions", &self.subscriptions)
            .field("maintenance_interval_secs", &self.maintenance_interval_secs)
            .field("demo", &self.demo)
            .finish()
    }
}

pub use service_kit::redact_url;

/// argon2id parameters for new hashes (existing hashes carry their own).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PasswordConfig {
    /// Memory cost in KiB (OWASP: 19456).
    pub memory_kib: u32,
    /// Time cost (passes).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
    /// Most hashes computed at once (each takes `memory_kib` of RAM and a core).
    pub max_concurrent: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 4,
        }
    }
}

/// Token buckets limiting log-ins and sign-ups. Every log-in attempt counts against its
/// client address; only failed ones count against the account (so nobody can lock an
/// account out by trying it with the right password, and a successful log-in costs the
/// account nothing).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Failed attempts one account may have at once.
    pub login_account_burst: u32,
    /// Failed attempts per minute one account regains.
    pub login_account_per_minute: u32,
    /// Attempts one client address may make at once.
    pub login_address_burst: u32,
    /// Attempts per minute one client address regains.
    pub login_address_per_minute: u32,
    /// Sign-ups one client address may make at once, and regains per minute.
    pub signup_address_burst: u32,
    pub signup_address_per_minute: u32,
    /// Proxies in front that append to `X-Forwarded-For` (bff sets it: 1); the client
    /// address is the entry that many from the right. 0 when clients reach user-svc
    /// directly.
    pub forwarded_hops: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login_account_burst: 5,
            login_account_per_minute: 5,
            login_address_burst: 20,
            login_address_per_minute: 20,
            signup_address_burst: 20,
            signup_address_per_minute: 10,
            forwarded_hops: 1,
        }
    }
}

/// Which payment provider answers charges.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// The in-process test provider (no real money); its mode can be changed at
    /// `PUT /internal/v1/payment-provider/mode`.
    Local,
}

/// What the local provider answers.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMode {
    /// Every charge and refund succeeds.
    Approve,
    /// Every charge and refund is declined.
    Decline,
    /// The provider never answers and records nothing.
    Timeout,
    /// The provider takes the money but its answer is lost (the caller times out).
    LostReply,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentConfig {
    /// The provider implementation.
    pub provider: ProviderKind,
    /// Initial mode of the local provider.
    pub mode: PaymentMode,
    /// The local provider takes no real money: user-svc refuses to start with it unless this
    /// is set (development and tests: `CAUDAL_USER_PAYMENT__LOCAL_ENABLED=true`).
    pub local_enabled: bool,
    /// Tests only: the local provider reads the outcome from the client's `payment_token`
    /// (`tok_approve`, `tok_decline`, `tok_timeout`, `tok_lost_reply`). Otherwise a client
    /// cannot choose what its payment does.
    pub test_tokens: bool,
    /// How long a provider call may take before the payment is left pending, in ms.
    pub timeout_ms: u64,
    /// Platform fee taken from every payment, in basis points (1000 = 10%).
    pub platform_fee_bps: u32,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::Local,
            mode: PaymentMode::Approve,
            local_enabled: false,
            test_tokens: false,
            timeout_ms: 5_000,
            platform_fee_bps: 1_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscriptionConfig {
    /// A subscription is renewed once its period ends within this many seconds.
    pub renew_ahead_secs: u64,
    /// A lapsed subscription is still renewed (from its old period end) within this many
    /// seconds; later it stays expired until the subscriber subscribes again.
    pub renewal_grace_secs: u64,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        Self {
            renew_ahead_secs: 24 * 3600,
            renewal_grace_secs: 3 * 24 * 3600,
        }
    }
}

/// A demo creator ensured at start-up (idempotent across restarts).
#[derive(Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct DemoConfig {
    /// Seed the demo creator.
    pub enabled: bool,
    /// Its email.
    pub email: String,
    /// Its password (used only when the user is first created).
    pub password: String,
    /// Its display name.
    pub display_name: String,
    /// A stream key registered for it (secret: give it as `CAUDAL_USER_DEMO__STREAM_KEY`).
    pub stream_key: String,
}

impl fmt::Debug for DemoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoConfig")
            .field("enabled", &self.enabled)
            .field("email", &self.email)
            .field("password", &"<redacted>")
            .field("display_name", &self.display_name)
            .field("stream_key", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_database_password() {
        assert_eq!(
            redact_url("mysql://caudal:s3cret@127.0.0.1:3306/caudal"),
            "mysql://caudal:***@127.0.0.1:3306/caudal"
        );
        let c = Config {
            jwt_secret: "x".repeat(40),
            database_url: "mysql://u:pw@h/d".into(),
            ..Config::default()
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("pw@") && !dbg.contains(&"x".repeat(40)));
    }

    #[test]
    fn validate_names_what_to_set() {
        let err = Config::default().validate().unwrap_err();
        assert!(err.contains("CAUDAL_USER_DATABASE_URL"));
        let c = Config {
            database_url: "mysql://u:p@h/d".into(),
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().contains("CAUDAL_USER_JWT_SECRET"));
        assert!(Config::for_tests("mysql://u:p@h/d").validate().is_ok());
        // the local provider takes no money: never by default
        let mut c = Config::for_tests("mysql://u:p@h/d");
        c.payment.local_enabled = false;
        assert!(c
            .validate()
            .unwrap_err()
            .contains("CAUDAL_USER_PAYMENT__LOCAL_ENABLED"));
        assert!(!PaymentConfig::default().test_tokens);
    }
}
