//! user-svc against a real MariaDB: every `#[sqlx::test]` gets its own database
//! (`DATABASE_URL` must point at the server; the tests fail without it).

mod auth;
mod binary;
mod common;
mod internal;
mod purchases;
mod stream_keys;
mod subscriptions;
