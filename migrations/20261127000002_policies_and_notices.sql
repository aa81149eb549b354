-- Login policies (per organization, with an instance default) and the outbox of notices
-- that writes leave for the notice worker to send once they have committed.

-- One row per scope: the instance default (aggregate `instance`, id = the instance id) or
-- one organization's policy (aggregate `org`, id = the organization id), as ZITADEL names
-- the aggregates of its login policy events. Its events go to `events` with the same
-- aggregate, numbered by `sequence`.
CREATE TABLE login_policies (
    instance_id                  TEXT        NOT NULL,
    aggregate_type               TEXT        NOT NULL CHECK (aggregate_type IN ('instance', 'org')),
    aggregate_id                 TEXT        NOT NULL,
    force_mfa                    BOOLEAN     NOT NULL,
    -- 0: no step-up asked.
    step_up_max_age_seconds      BIGINT      NOT NULL CHECK (step_up_max_age_seconds >= 0),
    notify_on_removal            BOOLEAN     NOT NULL,
    created_at                   TIMESTAMPTZ NOT NULL,
    changed_at                   TIMESTAMPTZ NOT NULL,
    sequence                     BIGINT      NOT NULL,
    PRIMARY KEY (instance_id, aggregate_type, aggregate_id)
);

-- SMS to send after a write commits, written by that write: a crash between the commit and
-- the send leaves the row, and the worker sends it later. A row is claimed for a lease
-- (`available_at` moves past the lease) before it is sent, and deleted once sent, so the
-- full number is kept no longer than it takes to send. No foreign key: the notice outlives
-- the authenticator (and the user) it tells about.
CREATE TABLE notice_outbox (
    instance_id  TEXT        NOT NULL,
    -- The same on every try: the provider's idempotency key.
    id           TEXT        NOT NULL,
    kind         TEXT        NOT NULL,
    user_id      TEXT        NOT NULL,
    -- E.164; personal data, deleted with the row once sent.
    phone        TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    available_at TIMESTAMPTZ NOT NULL,
    attempts     INTEGER     NOT NULL DEFAULT 0,
    PRIMARY KEY (instance_id, id)
);

CREATE INDEX notice_outbox_due ON notice_outbox (instance_id, available_at);
