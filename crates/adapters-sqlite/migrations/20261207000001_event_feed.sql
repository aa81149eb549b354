-- The instance's event feed (AuditLog::feed_page): the events of an instance by position.
-- One writer commits in turn, so positions follow commits.
CREATE INDEX events_feed ON events (instance_id, position);
