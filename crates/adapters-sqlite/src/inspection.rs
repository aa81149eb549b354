//! What a test reads back from the store ([`StoreInspection`]): whole event streams and
//! the outbox's depth. Built with the `inspection` feature only.

use async_trait::async_trait;
use factors_adapters_sql::{EventRow, unexpected};
use factors_application::ports::{EventStream, RecordedEvent, StoreInspection, Unexpected};

use crate::SqliteStore;

/// The events of an aggregate over all its lives, in order.
pub(crate) const EVENTS_OF: &str = "SELECT sequence, event_type, creator, created_at, payload FROM events \
     WHERE instance_id = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3 ORDER BY sequence";

pub(crate) const PENDING_NOTICES: &str = "SELECT count(*) FROM notice_outbox WHERE instance_id = ?1";

#[async_trait]
impl StoreInspection for SqliteStore {
    async fn events_of(&self, stream: EventStream<'_>) -> Result<Vec<RecordedEvent>, Unexpected> {
        let (aggregate_type, aggregate_id) = stream.aggregate(self.instance.as_str());
        let rows = sqlx::query_as::<_, EventRow>(EVENTS_OF)
            .bind(self.instance.as_str())
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(&self.readers)
            .await
            .map_err(unexpected("reading the audit log"))?;
        rows.into_iter().map(RecordedEvent::try_from).collect()
    }

    async fn pending_notices(&self) -> Result<u64, Unexpected> {
        let pending: i64 = sqlx::query_scalar(PENDING_NOTICES)
            .bind(self.instance.as_str())
            .fetch_one(&self.readers)
            .await
            .map_err(unexpected("counting notices"))?;
        u64::try_from(pending).map_err(|e| Unexpected(anyhow::Error::new(e)))
    }
}
