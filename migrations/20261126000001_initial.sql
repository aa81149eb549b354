-- The state of factors: users, their OTP SMS authenticators, pending verification codes,
-- and the append-only audit log. Every table is keyed by instance, so one database could
-- serve several instances; a deployment serves one.

CREATE TABLE users (
    instance_id    TEXT        NOT NULL,
    id             TEXT        NOT NULL,
    org_id         TEXT        NOT NULL,
    -- ZITADEL's State enum: 1 active, 2 inactive, 3 deleted, 4 locked.
    state          SMALLINT    NOT NULL CHECK (state BETWEEN 1 AND 4),
    schema_id      TEXT        NOT NULL,
    data           JSONB       NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(data) = 'object'),
    email          TEXT,
    email_verified BOOLEAN     NOT NULL DEFAULT FALSE,
    -- E.164; personal data, never copied into events or logs.
    phone          TEXT,
    phone_verified BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL,
    changed_at     TIMESTAMPTZ NOT NULL,
    -- Sequence of the user's last event; every write moves it by one.
    sequence       BIGINT      NOT NULL,
    PRIMARY KEY (instance_id, id)
);

CREATE TABLE otp_sms_authenticators (
    instance_id TEXT        NOT NULL,
    id          TEXT        NOT NULL,
    user_id     TEXT        NOT NULL,
    phone       TEXT        NOT NULL,
    verified    BOOLEAN     NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance_id, id),
    -- One number once per user; this also serves "authenticators of user X".
    UNIQUE (instance_id, user_id, phone),
    FOREIGN KEY (instance_id, user_id) REFERENCES users (instance_id, id) ON DELETE CASCADE
);

-- The code waiting to prove an authenticator's phone: only its keyed hash is kept.
CREATE TABLE otp_sms_codes (
    instance_id     TEXT        NOT NULL,
    otp_sms_id      TEXT        NOT NULL,
    code_hash       BYTEA       NOT NULL CHECK (length(code_hash) = 32),
    expires_at      TIMESTAMPTZ NOT NULL,
    failed_attempts INTEGER     NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance_id, otp_sms_id),
    FOREIGN KEY (instance_id, otp_sms_id) REFERENCES otp_sms_authenticators (instance_id, id) ON DELETE CASCADE
);

-- The audit log, ZITADEL-like: one row per event, numbered per aggregate.
CREATE TABLE events (
    position       BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id    TEXT        NOT NULL,
    aggregate_type TEXT        NOT NULL,
    aggregate_id   TEXT        NOT NULL,
    sequence       BIGINT      NOT NULL,
    event_type     TEXT        NOT NULL,
    payload        JSONB       NOT NULL,
    creator        TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (instance_id, aggregate_type, aggregate_id, sequence)
);

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END
$$;

CREATE TRIGGER events_are_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

-- Every process that mints ids takes a node number from here at start-up, so replicas
-- never mint the same id.
CREATE SEQUENCE id_nodes AS BIGINT MINVALUE 0 START WITH 0 CYCLE;
