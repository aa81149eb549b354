-- The instance's event feed (AuditLog::feed_page). A reader resumes after the last event
-- it read, so the feed's order must never put a newly committed event before one already
-- read: each event records the transaction that wrote it, and the feed orders by it and
-- answers only events whose transaction is older than every transaction still open.
ALTER TABLE events ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX events_feed ON events (instance_id, tx, position);
