//! Passwords (argon2id, off the async threads), access tokens (HS256 JWT), opaque secrets
//! (refresh tokens, stream keys: random, stored as sha256) and login rate limits.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{OnceCell, Semaphore};

use crate::config::{PasswordConfig, RateLimitConfig};
use crate::error::{Error, Result};
use crate::model::Role;

/// Hashes and verifies passwords with argon2id on the blocking pool, at most
/// `max_concurrent` at a time (each hash takes `memory_kib` of RAM).
pub struct Passwords {
    params: Params,
    permits: Semaphore,
    /// A hash of a random password, verified when the account does not exist so that
    /// unknown and known emails take the same time.
    dummy: OnceCell<String>,
}

impl Passwords {
    pub fn new(cfg: &PasswordConfig) -> Result<Self> {
        let params = Params::new(cfg.memory_kib, cfg.iterations, cfg.parallelism, None)
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        Ok(Self {
            params,
            permits: Semaphore::new(cfg.max_concurrent.max(1)),
            dummy: OnceCell::new(),
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let params = self.params.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(format!("hashing a password: {e}")))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// `Ok(true)` when `password` matches `hash`.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        let password = password.to_string();
        let hash = hash.to_string();
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash)
                .map_err(|e| Error::Internal(format!("stored hash: {e}")))?;
            Ok(Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// Burns the time of one verification (for unknown accounts).
    pub async fn verify_dummy(&self, password: &str) -> Result<()> {
        let dummy = self
            .dummy
            .get_or_try_init(|| async { self.hash(&random_token("", 16)).await })
            .await?;
        let _ = self.verify(password, dummy).await?;
        Ok(())
    }
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The role when the token was issued (authorisation reads the current role from the DB).
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

const ISSUER: &str = "caudal-user-svc";

/// Signs and checks HS256 access tokens.
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl Jwt {
    pub fn new(secret: &str, ttl: Duration) -> Self {
        let mut validation = Validation::new(JwtAlgorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: &str, role: Role) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            iss: ISSUER.to_string(),
        };
        jsonwebtoken::encode(&Header::new(JwtAlgorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing a token: {e}")))
    }

    pub fn verify(&self, token: &str) -> Result<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|d| d.claims)
            .map_err(|_| Error::Unauthorized)
    }
}

/// `prefix` + 32 url-safe characters from `bytes` random bytes.
pub fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
    )
}

/// A stream key: `live_` followed by 32 letters and digits (URL- and RTMP-safe).
pub fn new_stream_key() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    format!(
        "live_{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
    )
}

/// Hex sha256, how opaque secrets are stored (they are random, so no salt or stretching).
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

use service_kit::shared::RateLimiter;

/// The login limits (failed attempts per account, attempts per client address) and the
/// sign-up limit per client address.
#[derive(Clone)]
pub struct LoginLimits {
    pub account: Arc<RateLimiter>,
    pub address: Arc<RateLimiter>,
    pub signup: Arc<RateLimiter>,
}

impl LoginLimits {
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            account: Arc::new(RateLimiter::new(
                "login_account",
                cfg.login_account_burst,
                cfg.login_account_per_minute,
            )),
            address: Arc::new(RateLimiter::new(
                "login_address",
                cfg.login_address_burst,
                cfg.login_address_per_minute,
            )),
            signup: Arc::new(RateLimiter::new(
                "signup_address",
                cfg.signup_address_burst,
                cfg.signup_address_per_minute,
            )),
        }
    }

    /// Before an attempt: the address bucket is charged; the account's is only looked at
    /// (failed attempts fill it, [`LoginLimits::failed`]). Guessing one account from many
    /// addresses, or many accounts from one address, is limited either way.
    pub async fn check(&self, account: &str, address: &str) -> Result<()> {
        let a = self.address.check(address).await;
        let b = self.account.peek(account).await;
        match (a, b) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(x), Ok(())) | (Ok(()), Err(x)) => Err(Error::RateLimited {
                retry_after_secs: x,
            }),
            (Err(x), Err(y)) => Err(Error::RateLimited {
                retry_after_secs: x.max(y),
            }),
        }
    }

    /// A failed attempt on `account`.
    pub async fn failed(&self, account: &str) {
        let _ = self.account.check(account).await;
    }

    /// Keeps the buckets in the shared state, so that every instance counts together.
    pub fn share(&self, shared: &service_kit::shared::Shared) {
        for limit in [&self.account, &self.address, &self.signup] {
            limit.share(shared, "user");
        }
    }

    pub async fn check_signup(&self, address: &str) -> Result<()> {
        self.signup
            .check(address)
            .await
            .map_err(|retry_after_secs| Error::RateLimited { retry_after_secs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_round_trip_and_forgery() {
        let jwt = Jwt::new(&"k".repeat(32), Duration::from_secs(60));
        let t = jwt.issue("u1", Role::Creator).unwrap();
        let c = jwt.verify(&t).unwrap();
        assert_eq!(c.sub, "u1");
        assert_eq!(c.role, Role::Creator);
        let other = Jwt::new(&"z".repeat(32), Duration::from_secs(60));
        assert!(other.verify(&t).is_err());
        assert!(jwt.verify("not.a.jwt").is_err());
    }

    #[test]
    fn stream_keys_are_random_and_prefixed() {
        let a = new_stream_key();
        assert!(a.starts_with("live_") && a.len() == 37);
        assert_ne!(a, new_stream_key());
        assert_eq!(sha256_hex("abc").len(), 64);
    }

    #[tokio::test]
    async fn password_hash_verifies() {
        let p = Passwords::new(&PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 2,
        })
        .unwrap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(p.verify("correct horse", &h).await.unwrap());
        assert!(!p.verify("wrong horse", &h).await.unwrap());
    }
}
