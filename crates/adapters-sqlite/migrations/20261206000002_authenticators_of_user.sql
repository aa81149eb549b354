-- A user's authenticators in the order they are listed (oldest first): what every read of
-- a user joins on. Without statistics, SQLite's planner served that join from the primary
-- key's instance_id prefix, a walk over every authenticator of the instance for each user
-- read; the statements name this index (INDEXED BY), so no statistics can lead it astray.
CREATE INDEX otp_sms_authenticators_of_user ON otp_sms_authenticators (instance_id, user_id, created_at, id);
