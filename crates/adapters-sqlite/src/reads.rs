//! Reading users and the audit log: one statement each, on the reader connections.

use async_trait::async_trait;
use factors_adapters_sql::{
    EventRow, SnapshotCodeRow, SnapshotRow, snapshot, snapshot_with_code, unexpected, user_columns,
};
use factors_application::ports::{AuditLog, RecordedEvent, Unexpected, UserReader};
use factors_domain::{Event, OtpSmsId, PendingCode, UserId, UserSnapshot};

use crate::SqliteStore;

/// The authenticators of `u`, by the index that lists a user's in order: named, so that
/// no statistics (or their absence) make the planner walk the instance's instead.
macro_rules! authenticators_of_user {
    () => {
        "LEFT JOIN otp_sms_authenticators a INDEXED BY otp_sms_authenticators_of_user \
         ON a.instance_id = u.instance_id AND a.user_id = u.id"
    };
}

/// The user and its authenticators, oldest first, one row per authenticator (one row with
/// empty authenticator columns when it holds none). `?1` instance, `?2` user.
pub const LOAD_USER: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", a.id AS otp_id, a.phone AS otp_phone, a.verified AS otp_verified, a.created_at AS otp_created_at \
     FROM users u ",
    authenticators_of_user!(),
    " \
     WHERE u.instance_id = ?1 AND u.id = ?2 \
     ORDER BY a.created_at, a.id"
);

/// As [`LOAD_USER`], with the code pending for authenticator `?3` on its row.
pub(crate) const LOAD_USER_WITH_CODE: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", a.id AS otp_id, a.phone AS otp_phone, a.verified AS otp_verified, a.created_at AS otp_created_at, \
     c.code_hash, c.expires_at, c.failed_attempts \
     FROM users u ",
    authenticators_of_user!(),
    " LEFT JOIN otp_sms_codes c ON c.instance_id = a.instance_id AND c.otp_sms_id = a.id AND a.id = ?3 \
     WHERE u.instance_id = ?1 AND u.id = ?2 \
     ORDER BY a.created_at, a.id"
);

/// The number of the last event of an aggregate over all its lives (0 when none).
pub(crate) const LAST_SEQUENCE: &str = "SELECT COALESCE(MAX(sequence), 0) FROM events \
     WHERE instance_id = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3";

/// One page of a user id's audit trail: the events of its current life (after the id's
/// last `?4` event, `user.removed`) numbered above `?5`, in order, at most `?6`.
pub(crate) const EVENTS_PAGE: &str = "SELECT sequence, event_type, creator, created_at, payload FROM events \
     WHERE instance_id = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3 \
     AND sequence > MAX(?5, COALESCE((SELECT MAX(sequence) FROM events \
         WHERE instance_id = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3 AND event_type = ?4), 0)) \
     ORDER BY sequence LIMIT ?6";

#[async_trait]
impl UserReader for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %id), err(level = "debug", Display))]
    async fn load(&self, id: &UserId) -> Result<Option<UserSnapshot>, Unexpected> {
        let rows = sqlx::query_as::<_, SnapshotRow>(LOAD_USER)
            .bind(self.instance.as_str())
            .bind(id.as_str())
            .fetch_all(&self.readers)
            .await
            .map_err(unexpected("reading a user"))?;
        snapshot(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %id, otp_sms_id = %otp_sms), err(level = "debug", Display))]
    async fn load_with_code(
        &self,
        id: &UserId,
        otp_sms: &OtpSmsId,
    ) -> Result<Option<(UserSnapshot, Option<PendingCode>)>, Unexpected> {
        let rows = sqlx::query_as::<_, SnapshotCodeRow>(LOAD_USER_WITH_CODE)
            .bind(self.instance.as_str())
            .bind(id.as_str())
            .bind(otp_sms.as_str())
            .fetch_all(&self.readers)
            .await
            .map_err(unexpected("reading a user with a pending code"))?;
        snapshot_with_code(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %id), err(level = "debug", Display))]
    async fn last_sequence(&self, id: &UserId) -> Result<u64, Unexpected> {
        let last: i64 = sqlx::query_scalar(LAST_SEQUENCE)
            .bind(self.instance.as_str())
            .bind(Event::AGGREGATE_TYPE)
            .bind(id.as_str())
            .fetch_one(&self.readers)
            .await
            .map_err(unexpected("reading a user id's last event"))?;
        u64::try_from(last).map_err(|e| Unexpected(anyhow::Error::new(e).context("a negative event number")))
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user, after, limit), err(level = "debug", Display))]
    async fn events_page(&self, user: &UserId, after: u64, limit: u32) -> Result<Vec<RecordedEvent>, Unexpected> {
        let rows = sqlx::query_as::<_, EventRow>(EVENTS_PAGE)
            .bind(self.instance.as_str())
            .bind(Event::AGGREGATE_TYPE)
            .bind(user.as_str())
            .bind(Event::REMOVED_TYPE)
            // No event is numbered above i64::MAX, so a larger `after` leaves the page empty.
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(unexpected("reading a page of the audit log"))?;
        rows.into_iter().map(RecordedEvent::try_from).collect()
    }
}
