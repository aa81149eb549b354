//! Reading users and the audit log: one statement each (a search: two, in one read
//! transaction), on the reader connections.

use async_trait::async_trait;
use factors_adapters_sql::{
    EventRow, FeedRow, SnapshotCodeRow, SnapshotRow, feed_binds, search_arguments, snapshot, snapshot_with_code,
    unexpected, user_columns, user_page,
};
use factors_application::ports::{
    AuditLog, FeedCursor, FeedEvent, RecordedEvent, Unexpected, UserPage, UserReader, UserSearch,
};
use factors_domain::{Event, OrgId, OtpSmsId, PendingCode, UserId, UserSnapshot};

use sqlx::Sqlite;

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

/// A page of the instance's event feed: events of instance `?1` after position `?3` (`?2`,
/// the cursor's transaction, is always 0 here), in order, at most `?4`. One writer commits
/// in turn, so an event committed later always has a higher position.
pub(crate) const FEED_PAGE: &str = "SELECT 0 AS tx, position, aggregate_type, aggregate_id, \
     sequence, event_type, creator, created_at, payload FROM events \
     WHERE instance_id = ?1 AND ?2 = 0 AND position > ?3 ORDER BY position LIMIT ?4";

/// The users a search selects: of instance `?1`, and of each condition not null: `?2`
/// organizations (a JSON array of ids) the user's is among, `?3` its organization, `?4`
/// its id, `?5` its state. [`SEARCH_USERS_COUNT`] and [`SEARCH_USERS_PAGE`] select the
/// same users.
macro_rules! searched_users {
    () => {
        "FROM users u WHERE u.instance_id = ?1 \
         AND (?2 IS NULL OR u.org_id IN (SELECT value FROM json_each(?2))) AND (?3 IS NULL OR u.org_id = ?3) \
         AND (?4 IS NULL OR u.id = ?4) AND (?5 IS NULL OR u.state = ?5)"
    };
}

/// How many users a search selects in all (see [`searched_users!`] for `?1` to `?5`).
pub(crate) const SEARCH_USERS_COUNT: &str = concat!("SELECT count(*) ", searched_users!());

/// The ids of one page of the users a search selects (see [`searched_users!`] for `?1` to
/// `?5`): sorted by `?6` (`id`, `created`, `changed` or `state`) and then by id, both
/// descending when `?7`; the first `?9` skipped, at most `?8`. Each sort key is a `CASE` that
/// is null (and so sorts nothing) unless `?6` and `?7` pick it, so the statement is one
/// for every order. Times are sqlx's RFC 3339 text, all at `+00:00`, which sorts as time
/// does (a shorter fraction ends in `+`, which sorts below every digit and the `.`).
pub(crate) const SEARCH_USERS_PAGE: &str = concat!(
    "SELECT u.id ",
    searched_users!(),
    " ORDER BY CASE WHEN ?6 = 'created' AND NOT ?7 THEN u.created_at END ASC, \
     CASE WHEN ?6 = 'created' AND ?7 THEN u.created_at END DESC, \
     CASE WHEN ?6 = 'changed' AND NOT ?7 THEN u.changed_at END ASC, \
     CASE WHEN ?6 = 'changed' AND ?7 THEN u.changed_at END DESC, \
     CASE WHEN ?6 = 'state' AND NOT ?7 THEN u.state END ASC, \
     CASE WHEN ?6 = 'state' AND ?7 THEN u.state END DESC, \
     CASE WHEN NOT ?7 THEN u.id END ASC, CASE WHEN ?7 THEN u.id END DESC \
     LIMIT ?8 OFFSET ?9"
);

#[async_trait]
impl UserReader for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", user_id = %id), err(level = "debug", Display))]
    async fn load(&self, id: &UserId) -> Result<Option<UserSnapshot>, Unexpected> {
        let rows = sqlx::query_as::<_, SnapshotRow>(LOAD_USER)
            .bind(self.instance.as_str())
            .bind(id.as_str())
            .fetch_all(&self.readers)
            .await
            .map_err(unexpected("reading a user"))?;
        snapshot(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", user_id = %id, otp_sms_id = %otp_sms), err(level = "debug", Display))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", user_id = %id), err(level = "debug", Display))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", offset = search.offset, limit = search.limit), err(level = "debug", Display))]
    async fn search(&self, search: &UserSearch) -> Result<UserPage, Unexpected> {
        // The organizations as a JSON array, which the statement reads with `json_each`.
        let within = search
            .within
            .as_ref()
            .map(|orgs| serde_json::Value::from(orgs.iter().map(OrgId::as_str).collect::<Vec<_>>()).to_string());
        let arguments = |page| search_arguments::<Sqlite, _>(self.instance.as_str(), search, within.clone(), page);
        // One read transaction, so the count and the page are one state of the file.
        let mut tx = self.readers.begin().await.map_err(unexpected("starting a read"))?;
        let total = sqlx::query_scalar_with(SEARCH_USERS_COUNT, arguments(false)?)
            .fetch_one(&mut *tx)
            .await
            .map_err(unexpected("counting the users a search selects"))?;
        let ids = sqlx::query_scalar_with(SEARCH_USERS_PAGE, arguments(true)?)
            .fetch_all(&mut *tx)
            .await
            .map_err(unexpected("reading a page of the users a search selects"))?;
        tx.commit().await.map_err(unexpected("ending a read"))?;
        user_page(total, ids)
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", user_id = %user, after, limit), err(level = "debug", Display))]
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

    /// One writer commits in turn, so positions follow commits: the cursor's transaction is
    /// always 0.
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", limit), err(level = "debug", Display))]
    async fn feed_page(&self, after: FeedCursor, limit: u32) -> Result<Vec<FeedEvent>, Unexpected> {
        let (transaction, position) = feed_binds(after);
        let rows = sqlx::query_as::<_, FeedRow>(FEED_PAGE)
            .bind(self.instance.as_str())
            .bind(transaction)
            .bind(position)
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await
            .map_err(unexpected("reading a page of the event feed"))?;
        rows.into_iter().map(FeedEvent::try_from).collect()
    }
}
