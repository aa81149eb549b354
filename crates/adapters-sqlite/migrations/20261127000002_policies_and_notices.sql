-- Login policies and the notice outbox, as on PostgreSQL (see its migration of the same
-- name), in SQLite's types.

CREATE TABLE login_policies (
    instance_id             TEXT    NOT NULL,
    aggregate_type          TEXT    NOT NULL CHECK (aggregate_type IN ('instance', 'org')),
    aggregate_id            TEXT    NOT NULL,
    force_mfa               INTEGER NOT NULL,
    step_up_max_age_seconds INTEGER NOT NULL CHECK (step_up_max_age_seconds >= 0),
    notify_on_removal       INTEGER NOT NULL,
    created_at              TEXT    NOT NULL,
    changed_at              TEXT    NOT NULL,
    sequence                INTEGER NOT NULL,
    PRIMARY KEY (instance_id, aggregate_type, aggregate_id)
) WITHOUT ROWID;

CREATE TABLE notice_outbox (
    instance_id  TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    phone        TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    available_at TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (instance_id, id)
) WITHOUT ROWID;

CREATE INDEX notice_outbox_due ON notice_outbox (instance_id, available_at);
