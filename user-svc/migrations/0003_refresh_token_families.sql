-- Refresh tokens rotate within a family (one per log-in). A token used twice means it was
-- copied: the whole family is revoked. Tokens issued before this migration are each their
-- own family.
ALTER TABLE refresh_tokens
    ADD COLUMN family_id CHAR(36) CHARACTER SET ascii NULL AFTER user_id;
UPDATE refresh_tokens SET family_id = id WHERE family_id IS NULL;
ALTER TABLE refresh_tokens
    MODIFY family_id CHAR(36) CHARACTER SET ascii NOT NULL,
    ADD KEY ix_refresh_tokens_family (family_id);
