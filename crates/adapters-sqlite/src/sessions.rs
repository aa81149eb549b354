//! Sessions: reading one with its user, and applying session decisions, each in one
//! write transaction guarded by the session's version (and the user's, when the decision
//! holds it).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_adapters_sql::{
    SessionRow, SnapshotRow, metadata_to_db, session_columns, snapshot, stored, unexpected, user_session,
};
use factors_application::ports::{CheckCharge, SessionRead, SessionStore, TryTaken, Unexpected, WriteError};
use factors_domain::{
    ChallengeChange, PendingCode, SessionDecision, SessionEvent, SessionId, SessionTermination, UserId, UserSession,
};
use sqlx::SqliteConnection;

use crate::SqliteStore;
use crate::reads::LOAD_USER;
use crate::writes::{Appended, commit, conflict_or};

/// A session with its pending challenge. `?1` instance, `?2` session.
pub(crate) const LOAD_SESSION: &str = concat!(
    "SELECT ",
    session_columns!(),
    " FROM sessions s LEFT JOIN session_challenges c ON c.instance_id = s.instance_id AND c.session_id = s.id \
     WHERE s.instance_id = ?1 AND s.id = ?2"
);

/// Whether the user a decision holds is still at the version read, in the organization
/// read: `?1` instance, `?2` user, `?3` sequence, `?4` changed, `?5` organization.
pub const USER_AT: &str = "SELECT count(*) FROM users \
     WHERE instance_id = ?1 AND id = ?2 AND org_id = ?5 AND sequence = ?3 AND changed_at = ?4";

/// The session columns a decision writes, `?3` to `?13`, after instance `?1` and session `?2`.
pub const INSERT_SESSION: &str = "INSERT INTO sessions (instance_id, id, user_id, user_org_id, user_checked_at, otp_sms_id, \
     otp_sms_checked_at, token_hash, metadata, expires_at, created_at, changed_at, sequence) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT (instance_id, id) DO NOTHING";

/// As [`INSERT_SESSION`], only while the session is at the version read (`?14`, `?15`).
pub(crate) const UPDATE_SESSION: &str = "UPDATE sessions SET user_id = ?3, user_org_id = ?4, user_checked_at = ?5, \
     otp_sms_id = ?6, otp_sms_checked_at = ?7, token_hash = ?8, metadata = ?9, expires_at = ?10, created_at = ?11, \
     changed_at = ?12, sequence = ?13 WHERE instance_id = ?1 AND id = ?2 AND sequence = ?14 AND changed_at = ?15";

pub(crate) const CLEAR_CHALLENGE: &str = "DELETE FROM session_challenges WHERE instance_id = ?1 AND session_id = ?2";

pub(crate) const SET_CHALLENGE: &str = "INSERT INTO session_challenges (instance_id, session_id, otp_sms_id, code_hash, \
     expires_at, failed_attempts, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT (instance_id, session_id) DO UPDATE SET otp_sms_id = excluded.otp_sms_id, \
     code_hash = excluded.code_hash, expires_at = excluded.expires_at, failed_attempts = excluded.failed_attempts, \
     created_at = excluded.created_at";

pub(crate) const DELETE_SESSION: &str =
    "DELETE FROM sessions WHERE instance_id = ?1 AND id = ?2 AND sequence = ?3 AND changed_at = ?4";

/// The sessions user `?2` holds, with their versions, by the index of a user's sessions
/// (named: ordered by id, the primary key's instance prefix would otherwise look cheaper).
pub(crate) const SESSIONS_OF: &str = "SELECT id, sequence, changed_at FROM sessions INDEXED BY sessions_of_user \
     WHERE instance_id = ?1 AND user_id = ?2 ORDER BY id";

/// Whether user `?2` holds any session.
pub(crate) const ANY_SESSION_OF: &str = "SELECT EXISTS (SELECT 1 FROM sessions INDEXED BY sessions_of_user \
     WHERE instance_id = ?1 AND user_id = ?2)";

/// Takes one try of session `?2`'s challenge, only while it is the one read (hash `?3`)
/// and fewer than `?4` tries were taken; answers the tries taken.
pub(crate) const TAKE_SIGN_IN_TRY: &str = "UPDATE session_challenges SET failed_attempts = failed_attempts + 1 \
     WHERE instance_id = ?1 AND session_id = ?2 AND code_hash = ?3 AND failed_attempts < ?4 RETURNING failed_attempts";

#[async_trait]
impl SessionStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", session_id = %id), err(level = "debug", Display))]
    async fn load_session(&self, id: &SessionId) -> Result<Option<SessionRead>, Unexpected> {
        // One read transaction, so the session and its user are one state of the file.
        let mut tx = self.readers.begin().await.map_err(unexpected("starting a read"))?;
        let row = sqlx::query_as::<_, SessionRow>(LOAD_SESSION)
            .bind(self.instance.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(unexpected("reading a session"))?;
        let Some(row) = row else { return Ok(None) };
        let session = factors_domain::Session::try_from(row)?;
        let user = match &session.user {
            Some(checked) => {
                let rows = sqlx::query_as::<_, SnapshotRow>(LOAD_USER)
                    .bind(self.instance.as_str())
                    .bind(checked.id.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(unexpected("reading a session's user"))?;
                snapshot(rows)?
            }
            None => None,
        };
        Ok(Some(SessionRead { session, user }))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", session_id = %decision.session), err(level = "debug", Display))]
    async fn apply_session(&self, decision: &SessionDecision) -> Result<(), WriteError> {
        let after = &decision.after;
        let to = after.version();
        let instance = self.instance.as_str();
        let mut tx = self.write().await?;
        if let Some(held) = &decision.holds {
            // The write lock is held from here to the commit: a removal or deletion of the
            // user either committed before (and this is refused) or runs after.
            let at: i64 = sqlx::query_scalar(USER_AT)
                .bind(instance)
                .bind(held.id.as_str())
                .bind(stored::<i64>(held.version.sequence)?)
                .bind(held.version.changed)
                .bind(held.org.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(unexpected("checking a session's user"))?;
            if at == 0 {
                return Err(WriteError::Conflict);
            }
        }
        let statement = if decision.from.is_some() { UPDATE_SESSION } else { INSERT_SESSION };
        let mut write = sqlx::query(statement)
            .bind(instance)
            .bind(decision.session.as_str())
            .bind(after.user.as_ref().map(|u| u.id.as_str()))
            .bind(after.user.as_ref().map(|u| u.org.as_str()))
            .bind(after.user.as_ref().map(|u| u.checked_at))
            .bind(after.otp_sms.as_ref().map(|o| o.authenticator.as_str()))
            .bind(after.otp_sms.as_ref().map(|o| o.checked_at))
            .bind(after.token.as_bytes().as_slice())
            .bind(metadata_to_db(&after.metadata))
            .bind(after.expires_at)
            .bind(after.created)
            .bind(to.changed)
            .bind(stored::<i64>(to.sequence)?);
        if let Some(from) = decision.from {
            write = write.bind(stored::<i64>(from.sequence)?).bind(from.changed);
        }
        let written = write.execute(&mut *tx).await.map_err(conflict_or("writing a session"))?.rows_affected();
        if written == 0 {
            return Err(WriteError::Conflict);
        }
        self.write_challenge(&mut tx, decision).await?;
        let first = decision.from.map_or(0, |v| v.sequence);
        for (n, event) in (1..).zip(&decision.events) {
            let appended = Appended {
                aggregate_type: SessionEvent::AGGREGATE_TYPE,
                aggregate_id: decision.session.as_str(),
                sequence: first + n,
                event_type: event.event_type(),
                payload: event.payload(),
                creator: event.actor.as_str(),
                at: to.changed,
            };
            self.append(&mut tx, appended).await?;
        }
        commit(tx).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", session_id = %termination.session), err(level = "debug", Display))]
    async fn end_session(&self, termination: &SessionTermination) -> Result<(), WriteError> {
        let mut tx = self.write().await?;
        self.end_in(&mut tx, termination).await?;
        commit(tx).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", user_id = %user), err(level = "debug", Display))]
    async fn sessions_of(&self, user: &UserId) -> Result<Vec<UserSession>, Unexpected> {
        let rows: Vec<(String, i64, DateTime<Utc>)> = sqlx::query_as(SESSIONS_OF)
            .bind(self.instance.as_str())
            .bind(user.as_str())
            .fetch_all(&self.readers)
            .await
            .map_err(unexpected("reading a user's sessions"))?;
        rows.into_iter().map(user_session).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", session_id = %session), err(level = "debug", Display))]
    async fn take_sign_in_try<'a>(
        &self,
        session: &SessionId,
        code: &PendingCode,
        max_tries: u32,
        charge: &CheckCharge<'a>,
    ) -> Result<TryTaken, Unexpected> {
        self.take_charged_try(TAKE_SIGN_IN_TRY, session.as_str(), code, max_tries, charge).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", user_id = %user), err(level = "debug", Display))]
    async fn forgive_sign_in_try(&self, user: &UserId, charged_at: DateTime<Utc>) -> Result<(), Unexpected> {
        self.forgive(user, charged_at).await
    }
}

impl SqliteStore {
    /// Ends a session inside `tx`: deleted only while it is at `termination.from`, with
    /// its event.
    pub(crate) async fn end_in(
        &self,
        tx: &mut SqliteConnection,
        termination: &SessionTermination,
    ) -> Result<(), WriteError> {
        let (from, event) = (&termination.from, &termination.event);
        let ended = sqlx::query(DELETE_SESSION)
            .bind(self.instance.as_str())
            .bind(termination.session.as_str())
            .bind(stored::<i64>(from.sequence)?)
            .bind(from.changed)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("ending a session"))?
            .rows_affected();
        if ended == 0 {
            return Err(WriteError::Conflict);
        }
        let appended = Appended {
            aggregate_type: SessionEvent::AGGREGATE_TYPE,
            aggregate_id: termination.session.as_str(),
            sequence: from.sequence + 1,
            event_type: event.event_type(),
            payload: event.payload(),
            creator: event.actor.as_str(),
            at: event.at,
        };
        self.append(tx, appended).await
    }

    /// Writes the decision's change to the session's pending challenge inside `tx`.
    async fn write_challenge(&self, tx: &mut SqliteConnection, decision: &SessionDecision) -> Result<(), WriteError> {
        let instance = self.instance.as_str();
        let after = &decision.after;
        match decision.challenge {
            ChallengeChange::Keep => {}
            ChallengeChange::Clear => {
                sqlx::query(CLEAR_CHALLENGE)
                    .bind(instance)
                    .bind(decision.session.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(unexpected("clearing a challenge"))?;
            }
            ChallengeChange::Replace => {
                let challenge = after
                    .challenge
                    .as_ref()
                    .ok_or_else(|| Unexpected(anyhow::anyhow!("a challenge to set is missing")))?;
                sqlx::query(SET_CHALLENGE)
                    .bind(instance)
                    .bind(decision.session.as_str())
                    .bind(challenge.authenticator.as_str())
                    .bind(challenge.code.hash.as_bytes().as_slice())
                    .bind(challenge.code.expires_at)
                    .bind(stored::<i32>(u64::from(challenge.code.failed_attempts))?)
                    .bind(challenge.created)
                    .execute(&mut *tx)
                    .await
                    // The authenticator is gone (a foreign key): decide again.
                    .map_err(|e| match e {
                        sqlx::Error::Database(d) if d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation => {
                            WriteError::Conflict
                        }
                        other => conflict_or("setting a challenge")(other),
                    })?;
            }
        }
        Ok(())
    }

    /// Ends `sessions`, each only while at the version read and with its event, and then
    /// only while `user` holds no other session: a deletion must end every one it takes.
    pub(crate) async fn end_sessions_of(
        &self,
        tx: &mut SqliteConnection,
        user: &str,
        sessions: &[SessionTermination],
    ) -> Result<(), WriteError> {
        for termination in sessions {
            self.end_in(tx, termination).await?;
        }
        let left: bool = sqlx::query_scalar(ANY_SESSION_OF)
            .bind(self.instance.as_str())
            .bind(user)
            .fetch_one(&mut *tx)
            .await
            .map_err(unexpected("reading a user's sessions"))?;
        if left { Err(WriteError::Conflict) } else { Ok(()) }
    }
}
