//! What a test reads back from the store ([`StoreInspection`]): whole event streams and
//! the outbox's depth. Built with the `inspection` feature only.

use async_trait::async_trait;
use factors_adapters_sql::{EventRow, policy_aggregate, unexpected};
use factors_application::ports::{RecordedEvent, StoreInspection, Unexpected};
use factors_domain::{Event, Scope, SessionEvent, SessionId, UserId};

use crate::{PgStore, sql};

#[async_trait]
impl StoreInspection for PgStore {
    async fn events_of(&self, user: &UserId) -> Result<Vec<RecordedEvent>, Unexpected> {
        self.events_of_aggregate(Event::AGGREGATE_TYPE, user.as_str()).await
    }

    async fn events_of_session(&self, session: &SessionId) -> Result<Vec<RecordedEvent>, Unexpected> {
        self.events_of_aggregate(SessionEvent::AGGREGATE_TYPE, session.as_str()).await
    }

    async fn events_of_policy(&self, scope: &Scope) -> Result<Vec<RecordedEvent>, Unexpected> {
        let (aggregate_type, aggregate_id) = policy_aggregate(scope, self.instance.as_str());
        self.events_of_aggregate(aggregate_type, aggregate_id).await
    }

    async fn pending_notices(&self) -> Result<u64, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let pending: i64 = sqlx::query_scalar(sql::PENDING_NOTICES)
            .bind(self.instance.as_str())
            .fetch_one(lease.connection())
            .await
            .map_err(unexpected("counting notices"))?;
        lease.settle();
        u64::try_from(pending).map_err(|e| Unexpected(anyhow::Error::new(e)))
    }
}

impl PgStore {
    async fn events_of_aggregate(&self, aggregate_type: &str, id: &str) -> Result<Vec<RecordedEvent>, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let rows = sqlx::query_as::<_, EventRow>(sql::EVENTS_OF)
            .bind(self.instance.as_str())
            .bind(aggregate_type)
            .bind(id)
            .fetch_all(lease.connection())
            .await
            .map_err(unexpected("reading the audit log"))?;
        lease.settle();
        rows.into_iter().map(RecordedEvent::try_from).collect()
    }
}
