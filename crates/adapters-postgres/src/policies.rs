//! Login policies and the notice outbox: one statement each.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_adapters_sql::{
    NoticeRow, PolicyRow, breaker_arguments, claimed_notices, policy_arguments, stored, stored_policies, unexpected,
};
use factors_application::ports::{
    ClaimedNotice, HandClosing, Outbox, PolicyStore, StoredPolicies, Unexpected, WriteError,
};
use factors_domain::{BreakerEvent, OrgId, PolicyChange, PolicyEvent};

use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Postgres};

use crate::{PgStore, sql};

#[async_trait]
impl PolicyStore for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client"), err(level = "debug", Display))]
    async fn load_policies<'a>(&self, org: Option<&'a OrgId>) -> Result<StoredPolicies, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let rows = sqlx::query_as::<_, PolicyRow>(sql::LOAD_POLICIES)
            .bind(self.instance.as_str())
            .bind(org.map(OrgId::as_str))
            .bind(PolicyEvent::INSTANCE_AGGREGATE)
            .bind(PolicyEvent::ORG_AGGREGATE)
            .persistent(lease.persistent())
            .fetch_all(lease.connection())
            .await
            .map_err(unexpected("reading login policies"))?;
        lease.settle().await?;
        stored_policies(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client"), err(level = "debug", Display))]
    async fn apply_policy(&self, change: &PolicyChange) -> Result<(), WriteError> {
        let mut arguments = policy_arguments::<Postgres>(self.instance.as_str(), change)?;
        let event = &change.event;
        add_event(&mut arguments, event.event_type(), event.payload(), event.actor.as_str())?;
        let query = sqlx::query_scalar_with::<_, i64, _>(sql::APPLY_POLICY, arguments);
        let mut lease = self.connections.lease().await?;
        let written = query.persistent(lease.persistent()).fetch_one(lease.connection()).await.map_err(|e| {
            // An event number taken: the policy moved under the guard.
            if factors_adapters_sql::is_unique_violation(&e) {
                WriteError::Conflict
            } else {
                unexpected("setting a login policy")(e).into()
            }
        })?;
        lease.settle().await?;
        if written == 1 { Ok(()) } else { Err(WriteError::Conflict) }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client"), err(level = "debug", Display))]
    async fn record_breaker(&self, event: &BreakerEvent) -> Result<(), Unexpected> {
        // Replicas number a region's events without a lock: the one that loses the number
        // takes the next, and each round one of them wins.
        for _ in 0..8 {
            if self.try_record_breaker(event).await? {
                return Ok(());
            }
        }
        Err(Unexpected(anyhow::anyhow!("recording a breaker event: its number was taken eight times running")))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client"), err(level = "debug", Display))]
    async fn last_hand_closing(&self, region: &str) -> Result<Option<HandClosing>, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let row: Option<(DateTime<Utc>, String)> = sqlx::query_as(sql::LAST_HAND_CLOSING)
            .bind(self.instance.as_str())
            .bind(BreakerEvent::AGGREGATE_TYPE)
            .bind(region)
            .bind(BreakerEvent::CLOSED_TYPE)
            .bind(BreakerEvent::SYSTEM)
            .persistent(lease.persistent())
            .fetch_optional(lease.connection())
            .await
            .map_err(unexpected("reading a breaker's last closing by hand"))?;
        lease.settle().await?;
        Ok(row.map(|(at, actor)| HandClosing { at, actor }))
    }
}

impl PgStore {
    /// Appends `event` numbered after its region's last; `false` when another replica took
    /// that number first.
    async fn try_record_breaker(&self, event: &BreakerEvent) -> Result<bool, Unexpected> {
        let arguments = breaker_arguments::<Postgres>(self.instance.as_str(), event)?;
        let mut lease = self.connections.lease().await?;
        let written = sqlx::query_with(sql::RECORD_BREAKER, arguments)
            .persistent(lease.persistent())
            .execute(lease.connection())
            .await
            .map_err(unexpected("recording a breaker event"))?
            .rows_affected();
        lease.settle().await?;
        Ok(written == 1)
    }
}

#[async_trait]
impl Outbox for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client"), err(level = "debug", Display))]
    async fn claim_notices(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedNotice>, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let rows = sqlx::query_as::<_, NoticeRow>(sql::CLAIM_NOTICES)
            .bind(self.instance.as_str())
            .bind(now)
            .bind(until)
            .bind(i64::from(limit))
            .persistent(lease.persistent())
            .fetch_all(lease.connection())
            .await
            .map_err(unexpected("claiming notices"))?;
        lease.settle().await?;
        claimed_notices(rows)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client"), err(level = "debug", Display))]
    async fn finish_notice(&self, id: &str, attempt: u32) -> Result<(), Unexpected> {
        let mut lease = self.connections.lease().await?;
        sqlx::query(sql::FINISH_NOTICE)
            .bind(self.instance.as_str())
            .bind(id)
            .bind(stored::<i32>(u64::from(attempt))?)
            .persistent(lease.persistent())
            .execute(lease.connection())
            .await
            .map_err(unexpected("finishing a notice"))?;
        lease.settle().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client"), err(level = "debug", Display))]
    async fn retry_notice(&self, id: &str, attempt: u32, at: DateTime<Utc>) -> Result<(), Unexpected> {
        let mut lease = self.connections.lease().await?;
        sqlx::query(sql::RETRY_NOTICE)
            .bind(self.instance.as_str())
            .bind(id)
            .bind(stored::<i32>(u64::from(attempt))?)
            .bind(at)
            .persistent(lease.persistent())
            .execute(lease.connection())
            .await
            .map_err(unexpected("putting a notice back"))?;
        lease.settle().await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client"), err(level = "debug", Display))]
    async fn oldest_notice(&self) -> Result<Option<DateTime<Utc>>, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let oldest = sqlx::query_scalar(sql::OLDEST_NOTICE)
            .bind(self.instance.as_str())
            .persistent(lease.persistent())
            .fetch_one(lease.connection())
            .await
            .map_err(unexpected("reading the outbox's oldest notice"))?;
        lease.settle().await?;
        Ok(oldest)
    }
}

/// Adds [`sql::APPLY_POLICY`]'s event (`12` type, `13` payload, `14` actor) after the
/// policy's own parameters.
fn add_event(
    arguments: &mut PgArguments,
    event_type: &'static str,
    payload: serde_json::Value,
    actor: &str,
) -> Result<(), Unexpected> {
    let encoding = |e: sqlx::error::BoxDynError| Unexpected(anyhow::anyhow!("encoding a policy's event: {e}"));
    arguments.add(event_type).map_err(encoding)?;
    arguments.add(payload).map_err(encoding)?;
    arguments.add(actor).map_err(encoding)
}
