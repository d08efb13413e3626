-- user-svc schema: users, sessions, stream keys, plans, subscriptions, purchases, ledger.
-- Ids are UUIDs as CHAR(36) text; times are DATETIME(6) in UTC; money is BIGINT minor units.

CREATE TABLE users (
    id CHAR(36) CHARACTER SET ascii NOT NULL,
    -- stored trimmed and lowercased; the case-insensitive collation makes the key doubly so
    email VARCHAR(254) NOT NULL,
    display_name VARCHAR(64) NOT NULL,
    avatar_url VARCHAR(512) NULL,
    password_hash VARCHAR(255) CHARACTER SET ascii NOT NULL,
    role ENUM('viewer', 'creator', 'admin') NOT NULL DEFAULT 'viewer',
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_users_email (email)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE refresh_tokens (
    id CHAR(36) CHARACTER SET ascii NOT NULL,
    user_id CHAR(36) CHARACTER SET ascii NOT NULL,
    -- sha256 of the opaque token; the token itself is never stored
    token_hash CHAR(64) CHARACTER SET ascii NOT NULL,
    created_at DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    revoked_at DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_refresh_tokens_hash (token_hash),
    KEY ix_refresh_tokens_user (user_id),
    CONSTRAINT fk_refresh_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE stream_keys (
    id CHAR(36) CHARACTER SET ascii NOT NULL,
    user_id CHAR(36) CHARACTER SET ascii NOT NULL,
    -- sha256 of the key; the full key is shown once, when it is created
    key_hash CHAR(64) CHARACTER SET ascii NOT NULL,
    -- the last four characters, for the masked form in listings
    key_last4 VARCHAR(4) NOT NULL,
    label VARCHAR(64) NULL,
    created_at DATETIME(6) NOT NULL,
    revoked_at DATETIME(6) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_stream_keys_hash (key_hash),
    KEY ix_stream_keys_user (user_id, revoked_at),
    CONSTRAINT fk_stream_keys_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- one monthly plan per creator
CREATE TABLE plans (
    creator_id CHAR(36) CHARACTER SET ascii NOT NULL,
    price_minor BIGINT NOT NULL,
    currency CHAR(3) CHARACTER SET ascii NOT NULL,
    active TINYINT(1) NOT NULL DEFAULT 1,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (creator_id),
    CONSTRAINT fk_plans_creator FOREIGN KEY (creator_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- one row per (subscriber, creator); each paid period is a subscription_charges row
CREATE TABLE subscriptions (
    id CHAR(36) CHARACTER SET ascii NOT NULL,
    subscriber_id CHAR(36) CHARACTER SET ascii NOT NULL,
    creator_id CHAR(36) CHARACTER SET ascii NOT NULL,
    -- the latest paid period; access lasts while current_period_end > now
    current_period_start DATETIME(6) NULL,
    current_period_end DATETIME(6) NULL,
    cancel_at_period_end TINYINT(1) NOT NULL DEFAULT 0,
    canceled_at DATETIME(6) NULL,
    price_minor BIGINT NOT NULL,
    currency CHAR(3) CHARACTER SET ascii NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_subscriptions_pair (subscriber_id, creator_id),
    KEY ix_subscriptions_creator (creator_id, current_period_end),
    KEY ix_subscriptions_period_end (current_period_end),
    CONSTRAINT fk_subscriptions_subscriber FOREIGN KEY (subscriber_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_subscriptions_creator FOREIGN KEY (creator_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE subscription_charges (
    id CHAR(36) CHARACTER SET ascii NOT NULL,
    subscription_id CHAR(36) CHARACTER SET ascii NOT NULL,
    kind ENUM('initial', 'renewal') NOT NULL,
    -- the period this charge pays for
    period_start DATETIME(6) NOT NULL,
    period_end DATETIME(6) NOT NULL,
    amount_minor BIGINT NOT NULL,
    currency CHAR(3) CHARACTER SET ascii NOT NULL,
    status ENUM('pending', 'completed', 'failed') NOT NULL,
    provider_ref VARCHAR(128) NULL,
    failure_reason VARCHAR(128) NULL,
    -- whoever holds an unexpired lease is talking to the provider about this charge
    lease_until DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    -- a period is charged at most once (renewals are idempotent)
    UNIQUE KEY uq_subscription_charges_period (subscription_id, period_start),
    KEY ix_subscription_charges_status (status, lease_until),
    CONSTRAINT fk_subscription_charges_sub FOREIGN KEY (subscription_id) REFERENCES subscriptions (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE purchases (
    id CHAR(36) CHARACTER SET ascii NOT NULL,
    buyer_id CHAR(36) CHARACTER SET ascii NOT NULL,
    creator_id CHAR(36) CHARACTER SET ascii NOT NULL,
    video_id VARCHAR(128) NOT NULL,
    price_minor BIGINT NOT NULL,
    currency CHAR(3) CHARACTER SET ascii NOT NULL,
    idempotency_key VARCHAR(128) NOT NULL,
    -- sha256 of what was asked, so a reused key with another request is refused
    request_hash CHAR(64) CHARACTER SET ascii NOT NULL,
    status ENUM('pending', 'completed', 'failed', 'refund_pending', 'refunded') NOT NULL,
    provider_ref VARCHAR(128) NULL,
    failure_reason VARCHAR(128) NULL,
    lease_until DATETIME(6) NOT NULL,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    completed_at DATETIME(6) NULL,
    refunded_at DATETIME(6) NULL,
    -- each refund attempt has its own provider reference (a declined one is final there)
    refund_attempt INT NOT NULL DEFAULT 0,
    -- the video while this purchase holds (or may hold) it; NULL lets failed and refunded
    -- purchases repeat, the unique key below stops two live purchases of one video
    live_video_id VARCHAR(128) AS (IF(status IN ('pending', 'completed', 'refund_pending'), video_id, NULL)) PERSISTENT,
    PRIMARY KEY (id),
    UNIQUE KEY uq_purchases_idempotency (buyer_id, idempotency_key),
    UNIQUE KEY uq_purchases_live_video (buyer_id, live_video_id),
    KEY ix_purchases_buyer_video (buyer_id, video_id, status),
    KEY ix_purchases_creator (creator_id, created_at),
    KEY ix_purchases_status (status, lease_until),
    CONSTRAINT fk_purchases_buyer FOREIGN KEY (buyer_id) REFERENCES users (id),
    CONSTRAINT fk_purchases_creator FOREIGN KEY (creator_id) REFERENCES users (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- double-entry ledger: the entries of one transaction sum to zero per currency
CREATE TABLE ledger_transactions (
    id CHAR(36) CHARACTER SET ascii NOT NULL,
    kind ENUM('purchase', 'refund', 'subscription') NOT NULL,
    -- purchase id (purchase, refund) or subscription charge id (subscription)
    reference_id CHAR(36) CHARACTER SET ascii NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    -- one transaction per settled payment, whatever retries happen
    UNIQUE KEY uq_ledger_transactions_ref (kind, reference_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE ledger_entries (
    id BIGINT NOT NULL AUTO_INCREMENT,
    transaction_id CHAR(36) CHARACTER SET ascii NOT NULL,
    -- spend: what a user paid (negative); earnings: what a creator earned; platform: fees
    account ENUM('spend', 'earnings', 'platform') NOT NULL,
    user_id CHAR(36) CHARACTER SET ascii NULL,
    amount_minor BIGINT NOT NULL,
    currency CHAR(3) CHARACTER SET ascii NOT NULL,
    PRIMARY KEY (id),
    KEY ix_ledger_entries_tx (transaction_id),
    KEY ix_ledger_entries_user (user_id, account, currency),
    CONSTRAINT fk_ledger_entries_tx FOREIGN KEY (transaction_id) REFERENCES ledger_transactions (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
