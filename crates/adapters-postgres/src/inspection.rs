//! What a test reads back from the store ([`StoreInspection`]): whole event streams and
//! the outbox's depth. Built with the `inspection` feature only.

use async_trait::async_trait;
use factors_adapters_sql::{EventRow, unexpected};
use factors_application::ports::{EventStream, RecordedEvent, StoreInspection, Unexpected};

use crate::{PgStore, sql};

#[async_trait]
impl StoreInspection for PgStore {
    async fn events_of(&self, stream: EventStream<'_>) -> Result<Vec<RecordedEvent>, Unexpected> {
        let (aggregate_type, aggregate_id) = stream.aggregate(self.instance.as_str());
        let mut lease = self.connections.lease().await?;
        let rows = sqlx::query_as::<_, EventRow>(sql::EVENTS_OF)
            .bind(self.instance.as_str())
            .bind(aggregate_type)
            .bind(aggregate_id)
            .persistent(lease.persistent())
            .fetch_all(lease.connection())
            .await
            .map_err(unexpected("reading the audit log"))?;
        lease.settle().await?;
        rows.into_iter().map(RecordedEvent::try_from).collect()
    }

    async fn pending_notices(&self) -> Result<u64, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let pending: i64 = sqlx::query_scalar(sql::PENDING_NOTICES)
            .bind(self.instance.as_str())
            .persistent(lease.persistent())
            .fetch_one(lease.connection())
            .await
            .map_err(unexpected("counting notices"))?;
        lease.settle().await?;
        u64::try_from(pending).map_err(|e| Unexpected(anyhow::Error::new(e)))
    }
}
