-- Each user's budget of failed code checks, as on PostgreSQL (see its migration of the
-- same name), in SQLite's types.

CREATE TABLE code_check_failures (
    instance_id  TEXT    NOT NULL,
    user_id      TEXT    NOT NULL,
    window_start TEXT    NOT NULL,
    failures     INTEGER NOT NULL CHECK (failures >= 0),
    PRIMARY KEY (instance_id, user_id)
) WITHOUT ROWID;
