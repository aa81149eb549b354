//! Applying decisions: each in one statement that changes the state and appends the
//! event together, guarded by the version the decision was made on (see [`crate::sql`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_application::ports::{CheckCharge, CreateError, NoticeKind, TryTaken, Unexpected, UserWriter, WriteError};
use factors_domain::{
    Change, Creation, Decision, Event, OtpSmsId, PendingCode, PolicyEvent, SessionEvent, SessionTermination, UserId,
};
use sqlx::Connection;
use sqlx::types::Json;

use factors_adapters_sql::{is_unique_violation, notice_kind_to_db, state_to_db, stored, tries_taken, unexpected};

use crate::{PgStore, sql};

/// A session a deletion ends, as `DELETE_USER` reads it: its version read and its event.
fn ended_session(termination: &SessionTermination) -> serde_json::Value {
    let (from, event) = (&termination.from, &termination.event);
    serde_json::json!({
        "id": termination.session.as_str(), "sequence": from.sequence, "changed": from.changed,
        "type": event.event_type(), "payload": event.payload(), "actor": event.actor.as_str(), "at": event.at,
    })
}

#[async_trait]
impl UserWriter for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", user_id = %creation.user.id), err(level = "debug", Display))]
    async fn create(&self, creation: &Creation) -> Result<(), CreateError> {
        let (user, event) = (&creation.user, &creation.event);
        let mut lease = self.connections.lease().await?;
        let inserted: i64 = sqlx::query_scalar(sql::CREATE_USER)
            .bind(self.instance.as_str())
            .bind(user.id.as_str())
            .bind(user.org.as_str())
            .bind(state_to_db(user.state))
            .bind(user.schema_id.as_str())
            .bind(user.data.to_value())
            .bind(user.contact.email.as_ref().map(|e| e.address.as_str()))
            .bind(user.contact.email.as_ref().is_some_and(|e| e.verified))
            .bind(user.contact.phone.as_ref().map(|p| p.number.as_e164()))
            .bind(user.contact.phone.as_ref().is_some_and(|p| p.verified))
            .bind(user.created)
            .bind(stored::<i64>(user.sequence)?)
            .bind(Event::AGGREGATE_TYPE)
            .bind(event.event_type())
            .bind(Json(event.stored_payload()))
            .bind(event.actor.as_str())
            .persistent(lease.persistent())
            .fetch_one(lease.connection())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) { CreateError::Conflict } else { unexpected("inserting a user")(e).into() }
            })?;
        lease.settle().await?;
        if inserted == 1 { Ok(()) } else { Err(CreateError::AlreadyExists) }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", user_id = %decision.transition.user), err(level = "debug", Display))]
    async fn apply(&self, decision: &Decision) -> Result<(), WriteError> {
        let (transition, event) = (&decision.transition, &decision.event);
        let statement = match &decision.change {
            Change::AddOtpSms { .. } => sql::ADD_OTP_SMS,
            Change::VerifyOtpSms { .. } => sql::VERIFY_OTP_SMS,
            Change::RemoveOtpSms { .. } => sql::REMOVE_OTP_SMS,
            Change::DeleteUser { .. } => sql::DELETE_USER,
            Change::SetState { .. } => sql::SET_STATE,
        };
        let query = sqlx::query_scalar::<_, i64>(statement)
            .bind(self.instance.as_str())
            .bind(transition.user.as_str())
            .bind(stored::<i64>(transition.from.sequence)?)
            .bind(transition.from.changed)
            .bind(stored::<i64>(transition.to.sequence)?)
            .bind(transition.to.changed)
            .bind(Event::AGGREGATE_TYPE)
            .bind(event.event_type())
            .bind(Json(event.stored_payload()))
            .bind(event.actor.as_str())
            .bind(transition.org.as_str());
        let query = match &decision.change {
            Change::AddOtpSms { authenticator, pending_code } => query
                .bind(authenticator.id.as_str())
                .bind(authenticator.phone.as_e164())
                .bind(authenticator.verified)
                .bind(authenticator.created)
                .bind(pending_code.as_ref().map(|c| c.hash.as_bytes().as_slice()))
                .bind(pending_code.as_ref().map(|c| c.expires_at))
                .bind(stored::<i32>(pending_code.as_ref().map_or(0, |c| u64::from(c.failed_attempts)))?),
            Change::VerifyOtpSms { authenticator } => query.bind(authenticator.as_str()),
            Change::SetState { state } => query.bind(state_to_db(*state)),
            Change::RemoveOtpSms { authenticator, guard, notice } => query
                .bind(authenticator.as_str())
                .bind(guard.is_some())
                .bind(stored::<i64>(guard.map_or(0, |g| g.org_sequence))?)
                .bind(stored::<i64>(guard.map_or(0, |g| g.instance_sequence))?)
                .bind(notice.as_ref().map(|n| n.id.as_str()))
                .bind(notice.as_ref().map(|n| n.to.as_e164()))
                .bind(PolicyEvent::ORG_AGGREGATE)
                .bind(PolicyEvent::INSTANCE_AGGREGATE)
                .bind(notice_kind_to_db(NoticeKind::OtpSmsRemoved)),
            Change::DeleteUser { guard, notices, sessions } => query
                .bind(guard.is_some())
                .bind(stored::<i64>(guard.map_or(0, |g| g.org_sequence))?)
                .bind(stored::<i64>(guard.map_or(0, |g| g.instance_sequence))?)
                .bind(Json(
                    notices
                        .iter()
                        .map(|n| serde_json::json!({"id": n.id, "phone": n.to.as_e164()}))
                        .collect::<Vec<_>>(),
                ))
                .bind(Json(sessions.iter().map(ended_session).collect::<Vec<_>>()))
                .bind(SessionEvent::AGGREGATE_TYPE)
                .bind(PolicyEvent::ORG_AGGREGATE)
                .bind(PolicyEvent::INSTANCE_AGGREGATE)
                .bind(notice_kind_to_db(NoticeKind::OtpSmsRemoved)),
        };
        // A unique violation means the state is not the one decided on after all (say, an
        // authenticator id or number that a write the guard did not see took meanwhile):
        // decide again rather than fail.
        let conflict_or_unexpected = |e: sqlx::Error| -> WriteError {
            if is_unique_violation(&e) { WriteError::Conflict } else { unexpected("applying a decision")(e).into() }
        };
        let mut lease = self.connections.lease().await?;
        let moved = if let Change::DeleteUser { .. } = &decision.change {
            // The user's row first, locked: a session being created for the user holds it
            // (its foreign key) until it commits, and any later one waits for this deletion
            // and then fails. The deletion's own statement, with a snapshot taken after the
            // lock, then sees every session it must end.
            // (Behind a transaction pooler the lease's transaction is open: this one nests.)
            let persistent = lease.persistent();
            let mut tx = lease.connection().begin().await.map_err(unexpected("beginning a deletion"))?;
            sqlx::query(sql::LOCK_USER)
                .bind(self.instance.as_str())
                .bind(transition.user.as_str())
                .persistent(persistent)
                .execute(&mut *tx)
                .await
                .map_err(unexpected("locking a user"))?;
            let moved = query.persistent(persistent).fetch_one(&mut *tx).await.map_err(conflict_or_unexpected)?;
            tx.commit().await.map_err(unexpected("committing a deletion"))?;
            moved
        } else {
            query.persistent(lease.persistent()).fetch_one(lease.connection()).await.map_err(conflict_or_unexpected)?
        };
        lease.settle().await?;
        if moved == 1 { Ok(()) } else { Err(WriteError::Conflict) }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", otp_sms_id = %otp_sms), err(level = "debug", Display))]
    async fn take_code_try<'a>(
        &self,
        otp_sms: &OtpSmsId,
        code: &PendingCode,
        max_tries: u32,
        charge: &CheckCharge<'a>,
    ) -> Result<TryTaken, Unexpected> {
        self.take_charged_try(sql::TAKE_CODE_TRY, otp_sms.as_str(), code, max_tries, charge).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "postgresql", otel.kind = "client", user_id = %user), err(level = "debug", Display))]
    async fn forgive_code_try(&self, user: &UserId, charged_at: DateTime<Utc>) -> Result<(), Unexpected> {
        self.forgive(user, charged_at).await
    }
}

impl PgStore {
    /// Runs a [`sql::TAKE_CODE_TRY`]-shaped `statement` for the code of `owner` (an
    /// authenticator or a session).
    pub(crate) async fn take_charged_try(
        &self,
        statement: &'static str,
        owner: &str,
        code: &PendingCode,
        max_tries: u32,
        charge: &CheckCharge<'_>,
    ) -> Result<TryTaken, Unexpected> {
        let mut lease = self.connections.lease().await?;
        let (taken, charged, locked_since, window_start) = sqlx::query_as(statement)
            .bind(self.instance.as_str())
            .bind(owner)
            .bind(code.hash.as_bytes().as_slice())
            .bind(stored::<i32>(u64::from(max_tries))?)
            .bind(charge.user.as_str())
            .bind(stored::<i32>(u64::from(charge.budget.max_failures))?)
            .bind(charge.budget.cutoff(charge.now))
            .bind(charge.now)
            .persistent(lease.persistent())
            .fetch_one(lease.connection())
            .await
            .map_err(unexpected("taking a code try"))?;
        lease.settle().await?;
        ChargedTry { taken, charged, locked_since, window_start }.outcome(charge.now)
    }

    /// Gives back the unit of `user`'s budget of failed checks charged at `charged_at`.
    pub(crate) async fn forgive(&self, user: &UserId, charged_at: DateTime<Utc>) -> Result<(), Unexpected> {
        let mut lease = self.connections.lease().await?;
        sqlx::query(sql::FORGIVE_CODE_TRY)
            .bind(self.instance.as_str())
            .bind(user.as_str())
            .bind(charged_at)
            .persistent(lease.persistent())
            .execute(lease.connection())
            .await
            .map_err(unexpected("giving back a code try"))?;
        lease.settle().await?;
        Ok(())
    }
}

/// A charged try as its statement answered it: the code's tries taken (`None`: none),
/// whether the user's budget was charged, the window's start when the budget was found
/// spent, and the window's start as found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChargedTry {
    taken: Option<i32>,
    charged: bool,
    locked_since: Option<DateTime<Utc>>,
    window_start: Option<DateTime<Utc>>,
}

impl ChargedTry {
    /// What the try came to at `now`. A try taken without a charge lost the budget's last
    /// unit to a concurrent check: locked too.
    ///
    /// # Errors
    /// [`Unexpected`] for a negative try count.
    fn outcome(self, now: DateTime<Utc>) -> Result<TryTaken, Unexpected> {
        Ok(match (self.taken, self.charged, self.locked_since) {
            (Some(taken), true, _) => TryTaken::Taken(tries_taken(taken)?),
            (Some(_), false, _) => TryTaken::Locked { since: self.window_start.unwrap_or(now) },
            (None, _, Some(since)) => TryTaken::Locked { since },
            (None, _, None) => TryTaken::Gone,
        })
    }
}
