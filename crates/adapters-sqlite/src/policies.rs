//! Login policies and the notice outbox, on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_adapters_sql::{
    NoticeRow, PolicyRow, breaker_arguments, claimed_notices, policy_arguments, stored_policies, unexpected,
};
use factors_application::ports::{
    ClaimedNotice, HandClosing, Outbox, PolicyStore, StoredPolicies, Unexpected, WriteError,
};
use factors_domain::{BreakerEvent, OrgId, PolicyChange, PolicyEvent};
use sqlx::Sqlite;

use crate::SqliteStore;
use crate::writes::{Appended, commit};

/// The instance default (`?1` instance, aggregate type `?3`) and organization `?2`'s policy
/// (aggregate type `?4`; null: none asked).
pub(crate) const LOAD_POLICIES: &str = "SELECT aggregate_type, aggregate_id, force_mfa, step_up_max_age_seconds, \
     notify_on_removal, created_at, changed_at, sequence FROM login_policies WHERE instance_id = ?1 \
     AND ((aggregate_type = ?3 AND aggregate_id = ?1) OR (aggregate_type = ?4 AND aggregate_id = ?2))";

/// A scope's first policy: `?1` instance, `?2`, `?3` aggregate, `?4` force MFA, `?5` step-up
/// age, `?6` notify, `?7` created, `?8` changed, `?9` sequence. A scope that has one already
/// is left as it is.
pub(crate) const INSERT_POLICY: &str = "INSERT INTO login_policies (instance_id, aggregate_type, aggregate_id, force_mfa, \
     step_up_max_age_seconds, notify_on_removal, created_at, changed_at, sequence) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING";

/// A scope's next policy, only while it is at the version read (`?10`, `?11`); `?7` unused.
pub(crate) const UPDATE_POLICY: &str = "UPDATE login_policies SET force_mfa = ?4, step_up_max_age_seconds = ?5, \
     notify_on_removal = ?6, changed_at = ?8, sequence = ?9 \
     WHERE instance_id = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3 AND sequence = ?10 AND changed_at = ?11 \
     AND ?7 IS NOT NULL";

/// A region's SMS breaker event ([`factors_adapters_sql::breaker_arguments`]), numbered after
/// the region's last (the one writer makes the number safe).
pub(crate) const RECORD_BREAKER: &str = "INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, \
     event_type, payload, creator, created_at) SELECT ?1, ?2, ?3, COALESCE(MAX(sequence), 0) + 1, ?4, ?5, ?6, ?7 \
     FROM events WHERE instance_id = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3";

/// The last closing by hand of a region's breaker: `?1` instance, `?2`, `?3` the region's
/// aggregate, `?4` the closing's event type, `?5` the guard's own creator (not a hand).
pub(crate) const LAST_HAND_CLOSING: &str = "SELECT created_at, creator FROM events \
     WHERE instance_id = ?1 AND aggregate_type = ?2 AND aggregate_id = ?3 AND event_type = ?4 AND creator <> ?5 \
     ORDER BY sequence DESC LIMIT 1";

/// Claims up to `?4` notices due at `?2`, oldest first, until `?3`, counting a try each. The
/// single writer connection makes the claim atomic.
pub(crate) const CLAIM_NOTICES: &str = "UPDATE notice_outbox SET available_at = ?3, attempts = attempts + 1 \
     WHERE instance_id = ?1 AND id IN (SELECT id FROM notice_outbox WHERE instance_id = ?1 \
     AND julianday(available_at) <= julianday(?2) ORDER BY julianday(available_at), id LIMIT ?4) \
     RETURNING id, kind, user_id, phone, created_at, attempts";

pub(crate) const FINISH_NOTICE: &str = "DELETE FROM notice_outbox WHERE instance_id = ?1 AND id = ?2 AND attempts = ?3";

pub(crate) const RETRY_NOTICE: &str =
    "UPDATE notice_outbox SET available_at = ?4 WHERE instance_id = ?1 AND id = ?2 AND attempts = ?3";

/// When the oldest notice of instance `?1` still in the outbox was written.
pub(crate) const OLDEST_NOTICE: &str =
    "SELECT created_at FROM notice_outbox WHERE instance_id = ?1 ORDER BY julianday(created_at) LIMIT 1";

#[async_trait]
impl PolicyStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client"), err(level = "debug", Display))]
    async fn load_policies<'a>(&self, org: Option<&'a OrgId>) -> Result<StoredPolicies, Unexpected> {
        let rows = sqlx::query_as::<_, PolicyRow>(LOAD_POLICIES)
            .bind(self.instance.as_str())
            .bind(org.map(OrgId::as_str))
            .bind(PolicyEvent::INSTANCE_AGGREGATE)
            .bind(PolicyEvent::ORG_AGGREGATE)
            .fetch_all(&self.readers)
            .await
            .map_err(unexpected("reading login policies"))?;
        stored_policies(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client"), err(level = "debug", Display))]
    async fn apply_policy(&self, change: &PolicyChange) -> Result<(), WriteError> {
        let (aggregate_type, aggregate_id) = PolicyEvent::aggregate_of(&change.scope, self.instance.as_str());
        let mut tx = self.write().await?;
        let statement = if change.from.is_none() { INSERT_POLICY } else { UPDATE_POLICY };
        let written = sqlx::query_with(statement, policy_arguments::<Sqlite>(self.instance.as_str(), change)?)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("setting a login policy"))?
            .rows_affected();
        if written == 0 {
            return Err(WriteError::Conflict);
        }
        let event = &change.event;
        let appended = Appended {
            aggregate_type,
            aggregate_id,
            sequence: change.to.sequence,
            event_type: event.event_type(),
            payload: event.payload(),
            creator: event.actor.as_str(),
            at: change.to.changed,
        };
        self.append(&mut tx, appended).await?;
        commit(tx).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client"), err(level = "debug", Display))]
    async fn record_breaker(&self, event: &BreakerEvent) -> Result<(), Unexpected> {
        sqlx::query_with(RECORD_BREAKER, breaker_arguments::<Sqlite>(self.instance.as_str(), event)?)
            .execute(&self.writer)
            .await
            .map_err(unexpected("recording a breaker event"))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client"), err(level = "debug", Display))]
    async fn last_hand_closing(&self, region: &str) -> Result<Option<HandClosing>, Unexpected> {
        let row: Option<(DateTime<Utc>, String)> = sqlx::query_as(LAST_HAND_CLOSING)
            .bind(self.instance.as_str())
            .bind(BreakerEvent::AGGREGATE_TYPE)
            .bind(region)
            .bind(BreakerEvent::CLOSED_TYPE)
            .bind(BreakerEvent::SYSTEM)
            .fetch_optional(&self.readers)
            .await
            .map_err(unexpected("reading a breaker's last closing by hand"))?;
        Ok(row.map(|(at, actor)| HandClosing { at, actor }))
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client"), err(level = "debug", Display))]
    async fn claim_notices(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedNotice>, Unexpected> {
        let rows = sqlx::query_as::<_, NoticeRow>(CLAIM_NOTICES)
            .bind(self.instance.as_str())
            .bind(now)
            .bind(until)
            .bind(i64::from(limit))
            .fetch_all(&self.writer)
            .await
            .map_err(unexpected("claiming notices"))?;
        claimed_notices(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client"), err(level = "debug", Display))]
    async fn finish_notice(&self, id: &str, attempt: u32) -> Result<(), Unexpected> {
        sqlx::query(FINISH_NOTICE)
            .bind(self.instance.as_str())
            .bind(id)
            .bind(i64::from(attempt))
            .execute(&self.writer)
            .await
            .map_err(unexpected("finishing a notice"))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client"), err(level = "debug", Display))]
    async fn retry_notice(&self, id: &str, attempt: u32, at: DateTime<Utc>) -> Result<(), Unexpected> {
        sqlx::query(RETRY_NOTICE)
            .bind(self.instance.as_str())
            .bind(id)
            .bind(i64::from(attempt))
            .bind(at)
            .execute(&self.writer)
            .await
            .map_err(unexpected("putting a notice back"))?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client"), err(level = "debug", Display))]
    async fn oldest_notice(&self) -> Result<Option<DateTime<Utc>>, Unexpected> {
        sqlx::query_scalar(OLDEST_NOTICE)
            .bind(self.instance.as_str())
            .fetch_optional(&self.readers)
            .await
            .map_err(unexpected("reading the outbox's oldest notice"))
    }
}
