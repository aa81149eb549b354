//! Reading users and the audit log: one statement each (a search: two, in one snapshot).

use async_trait::async_trait;
use factors_application::ports::{
    AuditLog, FeedCursor, FeedEvent, RecordedEvent, Unexpected, UserPage, UserReader, UserSearch,
};
use factors_domain::{Event, OrgId, OtpSmsId, PendingCode, UserId, UserSnapshot};

use factors_adapters_sql::{
    EventRow, FeedRow, SnapshotCodeRow, SnapshotRow, feed_binds, search_arguments, snapshot, snapshot_with_code,
    unexpected, user_page,
};
use sqlx::{Connection, Postgres};

use crate::{PgStore, sql};

#[async_trait]
impl UserReader for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", user_id = %id), err(level = "debug", Display))]
    async fn load(&self, id: &UserId) -> Result<Option<UserSnapshot>, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let rows = sqlx::query_as::<_, SnapshotRow>(sql::LOAD_USER)
            .bind(self.instance.as_str())
            .bind(id.as_str())
            .persistent(lease.persistent())
            .fetch_all(lease.connection())
            .await
            .map_err(unexpected("reading a user"))?;
        lease.settle().await?;
        snapshot(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", user_id = %id, otp_sms_id = %otp_sms), err(level = "debug", Display))]
    async fn load_with_code(
        &self,
        id: &UserId,
        otp_sms: &OtpSmsId,
    ) -> Result<Option<(UserSnapshot, Option<PendingCode>)>, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let rows = sqlx::query_as::<_, SnapshotCodeRow>(sql::LOAD_USER_WITH_CODE)
            .bind(self.instance.as_str())
            .bind(id.as_str())
            .bind(otp_sms.as_str())
            .persistent(lease.persistent())
            .fetch_all(lease.connection())
            .await
            .map_err(unexpected("reading a user with a pending code"))?;
        lease.settle().await?;
        snapshot_with_code(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", user_id = %id), err(level = "debug", Display))]
    async fn last_sequence(&self, id: &UserId) -> Result<u64, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let last: i64 = sqlx::query_scalar(sql::LAST_SEQUENCE)
            .bind(self.instance.as_str())
            .bind(Event::AGGREGATE_TYPE)
            .bind(id.as_str())
            .persistent(lease.persistent())
            .fetch_one(lease.connection())
            .await
            .map_err(unexpected("reading a user id's last event"))?;
        lease.settle().await?;
        u64::try_from(last).map_err(|e| Unexpected(anyhow::Error::new(e).context("a negative event number")))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", offset = search.offset, limit = search.limit), err(level = "debug", Display))]
    async fn search(&self, search: &UserSearch) -> Result<UserPage, Unexpected> {
        let within = search.within.as_ref().map(|orgs| orgs.iter().map(OrgId::as_str).collect::<Vec<_>>());
        let arguments = |page| search_arguments::<Postgres, _>(self.instance.as_str(), search, within.clone(), page);
        let mut lease = self.connections.lease_for_transaction().await?;
        let persistent = lease.persistent();
        // One snapshot for the count and the page: they agree whatever is written meanwhile.
        let mut tx = lease
            .connection()
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(unexpected("starting a search"))?;
        let total = sqlx::query_scalar_with(sql::SEARCH_USERS_COUNT, arguments(false)?)
            .persistent(persistent)
            .fetch_one(&mut *tx)
            .await
            .map_err(unexpected("counting the users a search selects"))?;
        let ids = sqlx::query_scalar_with(sql::SEARCH_USERS_PAGE, arguments(true)?)
            .persistent(persistent)
            .fetch_all(&mut *tx)
            .await
            .map_err(unexpected("reading a page of the users a search selects"))?;
        tx.commit().await.map_err(unexpected("ending a search"))?;
        lease.settle().await?;
        user_page(total, ids)
    }
}

#[async_trait]
impl AuditLog for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", user_id = %user, after, limit), err(level = "debug", Display))]
    async fn events_page(&self, user: &UserId, after: u64, limit: u32) -> Result<Vec<RecordedEvent>, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let rows = sqlx::query_as::<_, EventRow>(sql::EVENTS_PAGE)
            .bind(self.instance.as_str())
            .bind(Event::AGGREGATE_TYPE)
            .bind(user.as_str())
            .bind(Event::REMOVED_TYPE)
            // No event is numbered above i64::MAX, so a larger `after` leaves the page empty.
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .persistent(lease.persistent())
            .fetch_all(lease.connection())
            .await
            .map_err(unexpected("reading a page of the audit log"))?;
        lease.settle().await?;
        rows.into_iter().map(RecordedEvent::try_from).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", limit), err(level = "debug", Display))]
    async fn feed_page(&self, after: FeedCursor, limit: u32) -> Result<Vec<FeedEvent>, Unexpected> {
        let (transaction, position) = feed_binds(after);
        let mut lease = self.connections.lease().await?;
        let rows = sqlx::query_as::<_, FeedRow>(sql::FEED_PAGE)
            .bind(self.instance.as_str())
            .bind(transaction)
            .bind(position)
            .bind(i64::from(limit))
            .persistent(lease.persistent())
            .fetch_all(lease.connection())
            .await
            .map_err(unexpected("reading a page of the event feed"))?;
        lease.settle().await?;
        rows.into_iter().map(FeedEvent::try_from).collect()
    }
}
