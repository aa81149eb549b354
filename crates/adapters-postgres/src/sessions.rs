//! Sessions: reading one with its user, and applying session decisions, each in one
//! guarded statement (see [`crate::sql::CREATE_SESSION`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_adapters_sql::{
    SessionRow, SnapshotRow, events_json, is_unique_violation, metadata_to_db, snapshot, stored, unexpected,
    user_session,
};
use factors_application::ports::{CheckCharge, SessionRead, SessionStore, TryTaken, Unexpected, WriteError};
use factors_domain::{
    ChallengeChange, PendingCode, SessionDecision, SessionEvent, SessionId, SessionTermination, UserId, UserSession,
};

use crate::{PgStore, sql};

#[async_trait]
impl SessionStore for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", session_id = %id), err(level = "debug", Display))]
    async fn load_session(&self, id: &SessionId) -> Result<Option<SessionRead>, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let row = sqlx::query_as::<_, SessionRow>(sql::LOAD_SESSION)
            .bind(self.instance.as_str())
            .bind(id.as_str())
            .persistent(lease.persistent())
            .fetch_optional(lease.connection())
            .await
            .map_err(unexpected("reading a session"))?;
        let Some(row) = row else {
            lease.settle().await?;
            return Ok(None);
        };
        let session = factors_domain::Session::try_from(row)?;
        let user = match &session.user {
            Some(checked) => {
                let rows = sqlx::query_as::<_, SnapshotRow>(sql::LOAD_USER)
                    .bind(self.instance.as_str())
                    .bind(checked.id.as_str())
                    .persistent(lease.persistent())
                    .fetch_all(lease.connection())
                    .await
                    .map_err(unexpected("reading a session's user"))?;
                snapshot(rows)?
            }
            None => None,
        };
        lease.settle().await?;
        Ok(Some(SessionRead { session, user }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", session_id = %decision.session), err(level = "debug", Display))]
    async fn apply_session(&self, decision: &SessionDecision) -> Result<(), WriteError> {
        let after = &decision.after;
        let to = after.version();
        let statement = if decision.from.is_some() { sql::UPDATE_SESSION } else { sql::CREATE_SESSION };
        let challenge_op = match decision.challenge {
            ChallengeChange::Keep => "keep",
            ChallengeChange::Replace => "set",
            ChallengeChange::Clear => "clear",
        };
        let challenge = after.challenge.as_ref();
        let held = decision.holds.as_ref();
        let query = sqlx::query_scalar::<_, i64>(statement)
            .bind(self.instance.as_str())
            .bind(decision.session.as_str())
            .bind(decision.from.map(|v| stored::<i64>(v.sequence)).transpose()?)
            .bind(decision.from.map(|v| v.changed))
            .bind(stored::<i64>(to.sequence)?)
            .bind(to.changed)
            .bind(after.user.as_ref().map(|u| u.id.as_str()))
            .bind(after.user.as_ref().map(|u| u.org.as_str()))
            .bind(after.user.as_ref().map(|u| u.checked_at))
            .bind(after.otp_sms.as_ref().map(|o| o.authenticator.as_str()))
            .bind(after.otp_sms.as_ref().map(|o| o.checked_at))
            .bind(after.token.as_bytes().as_slice())
            .bind(metadata_to_db(&after.metadata))
            .bind(after.expires_at)
            .bind(after.created)
            .bind(challenge_op)
            .bind(challenge.map(|c| c.authenticator.as_str()))
            .bind(challenge.map(|c| c.code.hash.as_bytes().as_slice()))
            .bind(challenge.map(|c| c.code.expires_at))
            .bind(challenge.map(|c| stored::<i32>(u64::from(c.code.failed_attempts))).transpose()?)
            .bind(challenge.map(|c| c.created))
            .bind(held.map(|h| h.id.as_str()))
            .bind(held.map(|h| h.org.as_str()))
            .bind(held.map(|h| stored::<i64>(h.version.sequence)).transpose()?)
            .bind(held.map(|h| h.version.changed))
            .bind(SessionEvent::AGGREGATE_TYPE)
            .bind(events_json(&decision.events))
            .bind(decision.events.first().map(|e| e.actor.as_str()));
        let mut lease = self.connections.lease().await?;
        let written = query.persistent(lease.persistent()).fetch_one(lease.connection()).await.map_err(|e| {
            // An event number taken means the session moved under the guard.
            if is_unique_violation(&e) { WriteError::Conflict } else { unexpected("writing a session")(e).into() }
        })?;
        lease.settle().await?;
        if written == 1 { Ok(()) } else { Err(WriteError::Conflict) }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", session_id = %termination.session), err(level = "debug", Display))]
    async fn end_session(&self, termination: &SessionTermination) -> Result<(), WriteError> {
        let (from, event) = (&termination.from, &termination.event);
        let mut lease = self.connections.lease().await?;
        let ended: i64 = sqlx::query_scalar(sql::DELETE_SESSION)
            .bind(self.instance.as_str())
            .bind(termination.session.as_str())
            .bind(stored::<i64>(from.sequence)?)
            .bind(from.changed)
            .bind(event.at)
            .bind(SessionEvent::AGGREGATE_TYPE)
            .bind(events_json(std::slice::from_ref(event)))
            .bind(event.actor.as_str())
            .persistent(lease.persistent())
            .fetch_one(lease.connection())
            .await
            .map_err(unexpected("ending a session"))?;
        lease.settle().await?;
        if ended == 1 { Ok(()) } else { Err(WriteError::Conflict) }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", user_id = %user), err(level = "debug", Display))]
    async fn sessions_of(&self, user: &UserId) -> Result<Vec<UserSession>, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let rows: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(sql::SESSIONS_OF)
            .bind(self.instance.as_str())
            .bind(user.as_str())
            .persistent(lease.persistent())
            .fetch_all(lease.connection())
            .await
            .map_err(unexpected("reading a user's sessions"))?;
        lease.settle().await?;
        rows.into_iter().map(user_session).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", session_id = %session), err(level = "debug", Display))]
    async fn take_sign_in_try<'a>(
        &self,
        session: &SessionId,
        code: &PendingCode,
        max_tries: u32,
        charge: &CheckCharge<'a>,
    ) -> Result<TryTaken, Unexpected> {
        self.take_charged_try(sql::TAKE_SIGN_IN_TRY, session.as_str(), code, max_tries, charge).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", user_id = %user), err(level = "debug", Display))]
    async fn forgive_sign_in_try(&self, user: &UserId, charged_at: DateTime<Utc>) -> Result<(), Unexpected> {
        self.forgive(user, charged_at).await
    }
}
