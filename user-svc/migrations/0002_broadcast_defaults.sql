-- What a creator's new broadcasts start with (ingest reads it with the stream key). A creator
-- without a row gets public and free.
CREATE TABLE broadcast_defaults (
    creator_id CHAR(36) CHARACTER SET ascii NOT NULL,
    visibility ENUM('public', 'unlisted', 'private') NOT NULL,
    access ENUM('free', 'subscribers', 'purchase') NOT NULL,
    -- only for access = 'purchase'
    price_minor BIGINT NULL,
    currency CHAR(3) CHARACTER SET ascii NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (creator_id),
    CONSTRAINT fk_broadcast_defaults_creator FOREIGN KEY (creator_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
