-- Sign-in sessions (ZITADEL's session API): the factors checked so far, the hash of the
-- current token, and the pending OTP SMS challenge. Session events go to `events` with
-- aggregate type 'session'.

CREATE TABLE sessions (
    instance_id        TEXT        NOT NULL,
    id                 TEXT        NOT NULL,
    -- The checked user; the session goes with it when the user is deleted.
    user_id            TEXT,
    user_org_id        TEXT,
    user_checked_at    TIMESTAMPTZ,
    -- The checked OTP SMS factor and the authenticator whose code passed.
    otp_sms_id         TEXT,
    otp_sms_checked_at TIMESTAMPTZ,
    -- SHA-256 of the current session token; the token itself is never stored.
    token_hash         BYTEA       NOT NULL CHECK (length(token_hash) = 32),
    -- Keys to base64 values.
    metadata           JSONB       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    expires_at         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    changed_at         TIMESTAMPTZ NOT NULL,
    -- Sequence of the session's last event.
    sequence           BIGINT      NOT NULL,
    PRIMARY KEY (instance_id, id),
    FOREIGN KEY (instance_id, user_id) REFERENCES users (instance_id, id) ON DELETE CASCADE
);

CREATE INDEX sessions_of_user ON sessions (instance_id, user_id);

-- The sign-in code a session waits for: only its keyed hash. It references the
-- authenticator it was sent to, so removing the authenticator (or its user) voids it in
-- the removal's own transaction.
CREATE TABLE session_challenges (
    instance_id     TEXT        NOT NULL,
    session_id      TEXT        NOT NULL,
    otp_sms_id      TEXT        NOT NULL,
    code_hash       BYTEA       NOT NULL CHECK (length(code_hash) = 32),
    expires_at      TIMESTAMPTZ NOT NULL,
    failed_attempts INTEGER     NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance_id, session_id),
    FOREIGN KEY (instance_id, session_id) REFERENCES sessions (instance_id, id) ON DELETE CASCADE,
    FOREIGN KEY (instance_id, otp_sms_id) REFERENCES otp_sms_authenticators (instance_id, id) ON DELETE CASCADE
);

CREATE INDEX session_challenges_of_authenticator ON session_challenges (instance_id, otp_sms_id);
