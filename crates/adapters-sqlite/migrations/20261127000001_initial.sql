-- The state of factors on SQLite: the same tables, columns and rules as on PostgreSQL
-- (users, OTP SMS authenticators, pending codes, sessions and their challenges, the
-- append-only audit log), in SQLite's types. Times are RFC 3339 text in UTC, which sorts
-- as time does; JSON is text; hashes are blobs. Foreign keys are enforced (the store
-- turns them on for every connection).

CREATE TABLE users (
    instance_id    TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    org_id         TEXT    NOT NULL,
    -- ZITADEL's State enum: 1 active, 2 inactive, 3 deleted, 4 locked.
    state          INTEGER NOT NULL CHECK (state BETWEEN 1 AND 4),
    schema_id      TEXT    NOT NULL,
    data           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data) AND json_type(data) = 'object'),
    email          TEXT,
    email_verified INTEGER NOT NULL DEFAULT 0,
    -- E.164; personal data, never copied into events or logs.
    phone          TEXT,
    phone_verified INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT    NOT NULL,
    changed_at     TEXT    NOT NULL,
    -- Sequence of the user's last event; every write moves it by one.
    sequence       INTEGER NOT NULL,
    PRIMARY KEY (instance_id, id)
) WITHOUT ROWID;

CREATE TABLE otp_sms_authenticators (
    instance_id TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    phone       TEXT    NOT NULL,
    verified    INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    PRIMARY KEY (instance_id, id),
    -- One number once per user; this also serves "authenticators of user X".
    UNIQUE (instance_id, user_id, phone),
    FOREIGN KEY (instance_id, user_id) REFERENCES users (instance_id, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- The code waiting to prove an authenticator's phone: only its keyed hash is kept.
CREATE TABLE otp_sms_codes (
    instance_id     TEXT    NOT NULL,
    otp_sms_id      TEXT    NOT NULL,
    code_hash       BLOB    NOT NULL CHECK (length(code_hash) = 32),
    expires_at      TEXT    NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL,
    PRIMARY KEY (instance_id, otp_sms_id),
    FOREIGN KEY (instance_id, otp_sms_id) REFERENCES otp_sms_authenticators (instance_id, id) ON DELETE CASCADE
) WITHOUT ROWID;

-- The audit log: one row per event, numbered per aggregate.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id    TEXT    NOT NULL,
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    sequence       INTEGER NOT NULL,
    event_type     TEXT    NOT NULL,
    payload        TEXT    NOT NULL CHECK (json_valid(payload)),
    creator        TEXT    NOT NULL,
    created_at     TEXT    NOT NULL,
    UNIQUE (instance_id, aggregate_type, aggregate_id, sequence)
);

CREATE TRIGGER events_are_not_updated BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_are_not_deleted BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- Sign-in sessions: the factors checked so far, the hash of the current token, and the
-- pending OTP SMS challenge.
CREATE TABLE sessions (
    instance_id        TEXT    NOT NULL,
    id                 TEXT    NOT NULL,
    user_id            TEXT,
    user_org_id        TEXT,
    user_checked_at    TEXT,
    otp_sms_id         TEXT,
    otp_sms_checked_at TEXT,
    -- SHA-256 of the current session token; the token itself is never stored.
    token_hash         BLOB    NOT NULL CHECK (length(token_hash) = 32),
    -- Keys to base64 values.
    metadata           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata) AND json_type(metadata) = 'object'),
    expires_at         TEXT,
    created_at         TEXT    NOT NULL,
    changed_at         TEXT    NOT NULL,
    sequence           INTEGER NOT NULL,
    PRIMARY KEY (instance_id, id),
    FOREIGN KEY (instance_id, user_id) REFERENCES users (instance_id, id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX sessions_of_user ON sessions (instance_id, user_id);

-- The sign-in code a session waits for: only its keyed hash. Removing the authenticator
-- (or its user) voids it in the removal's own transaction.
CREATE TABLE session_challenges (
    instance_id     TEXT    NOT NULL,
    session_id      TEXT    NOT NULL,
    otp_sms_id      TEXT    NOT NULL,
    code_hash       BLOB    NOT NULL CHECK (length(code_hash) = 32),
    expires_at      TEXT    NOT NULL,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL,
    PRIMARY KEY (instance_id, session_id),
    FOREIGN KEY (instance_id, session_id) REFERENCES sessions (instance_id, id) ON DELETE CASCADE,
    FOREIGN KEY (instance_id, otp_sms_id) REFERENCES otp_sms_authenticators (instance_id, id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX session_challenges_of_authenticator ON session_challenges (instance_id, otp_sms_id);

-- The node number of the last process that started on this file; each start takes the
-- next, so processes sharing the file never mint the same id.
CREATE TABLE id_nodes (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    last     INTEGER NOT NULL
);
INSERT INTO id_nodes (only_row, last) VALUES (1, -1);
