//! Applying decisions: each in one write transaction that moves the user from the version
//! decided on (or refuses), makes the change and appends the event (see the crate docs).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_adapters_sql::{is_unique_violation, notice_kind_to_db, state_to_db, stored, tries_taken, unexpected};
use factors_application::ports::{CheckCharge, CreateError, NoticeKind, TryTaken, Unexpected, UserWriter, WriteError};
use factors_domain::{
    Change, Creation, Decision, Event, Notice, OtpSmsId, PendingCode, PolicyEvent, PolicyGuard, UserId,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

use crate::SqliteStore;

pub(crate) const INSERT_USER: &str = "INSERT INTO users (instance_id, id, org_id, state, schema_id, data, email, email_verified, \
     phone, phone_verified, created_at, changed_at, sequence) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12) \
     ON CONFLICT (instance_id, id) DO NOTHING";

pub const APPEND_EVENT: &str = "INSERT INTO events (instance_id, aggregate_type, aggregate_id, sequence, event_type, \
     payload, creator, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

/// The guard every user write shares: user `?2` of organization `?7` in instance `?1`, at
/// the version read (`?3` sequence, `?4` changed).
macro_rules! user_at_version {
    () => {
        " WHERE instance_id = ?1 AND id = ?2 AND org_id = ?7 AND sequence = ?3 AND changed_at = ?4"
    };
}

/// The guard: moves user `?2` of organization `?7` from the version read (`?3`, `?4`) to
/// the next (`?5`, `?6`).
pub const MOVE_USER: &str = concat!("UPDATE users SET sequence = ?5, changed_at = ?6", user_at_version!());

/// As [`MOVE_USER`], putting the user in state `?8` (locks, unlocks, deactivates or activates it).
pub(crate) const MOVE_USER_TO_STATE: &str =
    concat!("UPDATE users SET sequence = ?5, changed_at = ?6, state = ?8", user_at_version!());

/// The guard of a deletion: deletes user `?2` of organization `?7` at the version read
/// (`?3`, `?4`; `?5`, `?6` are bound as for [`MOVE_USER`] and unused); what it holds goes
/// with it (`ON DELETE CASCADE`).
pub(crate) const DELETE_USER: &str = concat!("DELETE FROM users", user_at_version!());

pub(crate) const ADD_AUTHENTICATOR: &str = "INSERT INTO otp_sms_authenticators (instance_id, id, user_id, phone, verified, \
     created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub(crate) const ADD_CODE: &str = "INSERT INTO otp_sms_codes (instance_id, otp_sms_id, code_hash, expires_at, failed_attempts, \
     created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub const DELETE_CODE: &str = "DELETE FROM otp_sms_codes WHERE instance_id = ?1 AND otp_sms_id = ?2";

pub(crate) const MARK_VERIFIED: &str =
    "UPDATE otp_sms_authenticators SET verified = 1 WHERE instance_id = ?1 AND user_id = ?2 AND id = ?3";

pub const REMOVE_AUTHENTICATOR: &str =
    "DELETE FROM otp_sms_authenticators WHERE instance_id = ?1 AND user_id = ?2 AND id = ?3";

/// The versions of organization `?2`'s login policy (aggregate type `?3`) and of the
/// instance default (aggregate type `?4`); 0: none.
pub const POLICY_VERSIONS: &str = "SELECT \
     COALESCE((SELECT sequence FROM login_policies WHERE instance_id = ?1 AND aggregate_type = ?3 \
     AND aggregate_id = ?2), 0), \
     COALESCE((SELECT sequence FROM login_policies WHERE instance_id = ?1 AND aggregate_type = ?4 \
     AND aggregate_id = ?1), 0)";

/// A notice for the outbox, due at once: `?1` instance, `?2` id, `?3` kind, `?4` user, `?5`
/// number, `?6` created.
pub(crate) const INSERT_NOTICE: &str = "INSERT INTO notice_outbox (instance_id, id, kind, user_id, phone, created_at, \
     available_at, attempts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0)";

/// Takes one try of the code pending for authenticator `?2`, only while it is the one read
/// (hash `?3`) and fewer than `?4` tries were taken; answers the tries taken.
pub(crate) const TAKE_CODE_TRY: &str = "UPDATE otp_sms_codes SET failed_attempts = failed_attempts + 1 \
     WHERE instance_id = ?1 AND otp_sms_id = ?2 AND code_hash = ?3 AND failed_attempts < ?4 RETURNING failed_attempts";

/// User `?2`'s budget of failed checks: how many were charged in the window that started
/// when.
pub(crate) const BUDGET: &str =
    "SELECT failures, window_start FROM code_check_failures WHERE instance_id = ?1 AND user_id = ?2";

/// Charges one unit to user `?2`'s budget at `?3` (now); a window that started at or
/// before `?4` has passed, and a new one starts, as it does when no unit is outstanding.
pub(crate) const CHARGE: &str = "INSERT INTO code_check_failures (instance_id, user_id, window_start, failures) \
     VALUES (?1, ?2, ?3, 1) ON CONFLICT (instance_id, user_id) DO UPDATE SET \
     failures = CASE WHEN window_start <= ?4 OR failures = 0 THEN 1 ELSE failures + 1 END, \
     window_start = CASE WHEN window_start <= ?4 OR failures = 0 THEN ?3 ELSE window_start END";

/// Gives back one unit of user `?2`'s budget (a check of the right code, charged at `?3`),
/// unless a window that started after the charge holds the count now.
pub(crate) const FORGIVE: &str = "UPDATE code_check_failures SET failures = failures - 1 \
     WHERE instance_id = ?1 AND user_id = ?2 AND failures > 0 AND window_start <= ?3";

/// An event to append, as stored.
pub(crate) struct Appended<'a> {
    pub(crate) aggregate_type: &'static str,
    pub(crate) aggregate_id: &'a str,
    pub(crate) sequence: u64,
    pub(crate) event_type: &'a str,
    pub(crate) payload: serde_json::Value,
    pub(crate) creator: &'a str,
    pub(crate) at: DateTime<Utc>,
}

impl SqliteStore {
    /// Appends one event; an event number taken is a conflict (the aggregate moved under
    /// the guard, or another life of the id holds it).
    pub(crate) async fn append(&self, tx: &mut SqliteConnection, event: Appended<'_>) -> Result<(), WriteError> {
        sqlx::query(APPEND_EVENT)
            .bind(self.instance.as_str())
            .bind(event.aggregate_type)
            .bind(event.aggregate_id)
            .bind(stored::<i64>(event.sequence)?)
            .bind(event.event_type)
            .bind(event.payload)
            .bind(event.creator)
            .bind(event.at)
            .execute(tx)
            .await
            .map_err(conflict_or("appending an event"))?;
        Ok(())
    }
}

/// A unique violation as a conflict (decide again), anything else as unexpected.
pub(crate) fn conflict_or(doing: &'static str) -> impl FnOnce(sqlx::Error) -> WriteError {
    move |e| if is_unique_violation(&e) { WriteError::Conflict } else { unexpected(doing)(e).into() }
}

/// Commits what the transaction wrote.
pub(crate) async fn commit(tx: Transaction<'static, Sqlite>) -> Result<(), Unexpected> {
    tx.commit().await.map_err(unexpected("committing a write"))
}

#[async_trait]
impl UserWriter for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", user_id = %creation.user.id), err(level = "debug", Display))]
    async fn create(&self, creation: &Creation) -> Result<(), CreateError> {
        let (user, event) = (&creation.user, &creation.event);
        let mut tx = self.write().await?;
        let inserted = sqlx::query(INSERT_USER)
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
            .execute(&mut *tx)
            .await
            .map_err(unexpected("inserting a user"))?
            .rows_affected();
        if inserted == 0 {
            return Err(CreateError::AlreadyExists);
        }
        let appended = Appended {
            aggregate_type: Event::AGGREGATE_TYPE,
            aggregate_id: user.id.as_str(),
            sequence: user.sequence,
            event_type: event.event_type(),
            payload: event.payload(),
            creator: event.actor.as_str(),
            at: user.created,
        };
        match self.append(&mut tx, appended).await {
            Ok(()) => {}
            Err(WriteError::Conflict) => return Err(CreateError::Conflict),
            Err(WriteError::Unexpected(e)) => return Err(e.into()),
        }
        commit(tx).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", user_id = %decision.transition.user), err(level = "debug", Display))]
    async fn apply(&self, decision: &Decision) -> Result<(), WriteError> {
        let (transition, event) = (&decision.transition, &decision.event);
        let (instance, user) = (self.instance.as_str(), transition.user.as_str());
        let mut tx = self.write().await?;
        if let Change::DeleteUser { sessions, .. } = &decision.change {
            // Before the user's row, whose deletion would take its sessions without events.
            self.end_sessions_of(&mut tx, user, sessions).await?;
        }
        let guard = match &decision.change {
            Change::DeleteUser { .. } => sqlx::query(DELETE_USER),
            Change::SetState { .. } => sqlx::query(MOVE_USER_TO_STATE),
            _ => sqlx::query(MOVE_USER),
        };
        let guard = guard
            .bind(instance)
            .bind(user)
            .bind(stored::<i64>(transition.from.sequence)?)
            .bind(transition.from.changed)
            .bind(stored::<i64>(transition.to.sequence)?)
            .bind(transition.to.changed)
            .bind(transition.org.as_str());
        let guard = match &decision.change {
            Change::SetState { state } => guard.bind(state_to_db(*state)),
            _ => guard,
        };
        let moved = guard.execute(&mut *tx).await.map_err(unexpected("moving a user"))?.rows_affected();
        if moved == 0 {
            // Dropping the transaction rolls it back.
            return Err(WriteError::Conflict);
        }
        self.apply_change(&mut tx, decision).await?;
        let appended = Appended {
            aggregate_type: Event::AGGREGATE_TYPE,
            aggregate_id: user,
            sequence: transition.to.sequence,
            event_type: event.event_type(),
            payload: event.payload(),
            creator: event.actor.as_str(),
            at: transition.to.changed,
        };
        self.append(&mut tx, appended).await?;
        commit(tx).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", otp_sms_id = %otp_sms), err(level = "debug", Display))]
    async fn take_code_try<'a>(
        &self,
        otp_sms: &OtpSmsId,
        code: &PendingCode,
        max_tries: u32,
        charge: &CheckCharge<'a>,
    ) -> Result<TryTaken, Unexpected> {
        self.take_charged_try(TAKE_CODE_TRY, otp_sms.as_str(), code, max_tries, charge).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(db.system.name = "sqlite", otel.kind = "client", user_id = %user), err(level = "debug", Display))]
    async fn forgive_code_try(&self, user: &UserId, charged_at: DateTime<Utc>) -> Result<(), Unexpected> {
        self.forgive(user, charged_at).await
    }
}

impl SqliteStore {
    /// Takes one try of a code with `take` (a statement shaped as [`TAKE_CODE_TRY`], for
    /// the code of `owner`, an authenticator or a session) and charges it to the budget of
    /// `charge.user`, in one write transaction: the single writer orders concurrent
    /// checks, so the budget's last unit goes to one of them. A spent budget takes no try.
    pub(crate) async fn take_charged_try(
        &self,
        take: &'static str,
        owner: &str,
        code: &PendingCode,
        max_tries: u32,
        charge: &CheckCharge<'_>,
    ) -> Result<TryTaken, Unexpected> {
        let (instance, user) = (self.instance.as_str(), charge.user.as_str());
        let cutoff = charge.budget.cutoff(charge.now);
        let mut tx = self.write().await?;
        let budget: Option<(i64, DateTime<Utc>)> = sqlx::query_as(BUDGET)
            .bind(instance)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unexpected("reading a user's budget of code checks"))?;
        if let Some((failures, since)) = budget
            && failures >= i64::from(charge.budget.max_failures)
            && since > cutoff
        {
            return Ok(TryTaken::Locked { since });
        }
        let taken: Option<i32> = sqlx::query_scalar(take)
            .bind(instance)
            .bind(owner)
            .bind(code.hash.as_bytes().as_slice())
            .bind(stored::<i32>(u64::from(max_tries))?)
            .fetch_optional(&mut *tx)
            .await
            .map_err(unexpected("taking a code try"))?;
        // None left, or the code moved: nothing charged (the transaction rolls back).
        let Some(taken) = taken else { return Ok(TryTaken::Gone) };
        sqlx::query(CHARGE)
            .bind(instance)
            .bind(user)
            .bind(charge.now)
            .bind(cutoff)
            .execute(&mut *tx)
            .await
            .map_err(unexpected("charging a code check"))?;
        commit(tx).await?;
        Ok(TryTaken::Taken(tries_taken(taken)?))
    }

    /// Gives back the unit of `user`'s budget of failed checks charged at `charged_at`.
    pub(crate) async fn forgive(&self, user: &UserId, charged_at: DateTime<Utc>) -> Result<(), Unexpected> {
        sqlx::query(FORGIVE)
            .bind(self.instance.as_str())
            .bind(user.as_str())
            .bind(charged_at)
            .execute(&self.writer)
            .await
            .map_err(unexpected("giving back a code try"))?;
        Ok(())
    }

    /// With a `guard`, a conflict unless the login policies of organization `org` and the
    /// instance are still at the versions it names (a policy decided on changed since:
    /// the caller rolls back and decides again).
    /// Writes what `decision` changes besides the user's version and its event, inside
    /// `tx`, after the guard moved the user.
    async fn apply_change(&self, tx: &mut SqliteConnection, decision: &Decision) -> Result<(), WriteError> {
        let (instance, user, transition) =
            (self.instance.as_str(), decision.transition.user.as_str(), &decision.transition);
        match &decision.change {
            Change::AddOtpSms { authenticator, pending_code } => {
                sqlx::query(ADD_AUTHENTICATOR)
                    .bind(instance)
                    .bind(authenticator.id.as_str())
                    .bind(user)
                    .bind(authenticator.phone.as_e164())
                    .bind(authenticator.verified)
                    .bind(authenticator.created)
                    .execute(&mut *tx)
                    .await
                    // An id or number a write the guard did not see took meanwhile: decide again.
                    .map_err(conflict_or("adding an authenticator"))?;
                if let Some(code) = pending_code {
                    sqlx::query(ADD_CODE)
                        .bind(instance)
                        .bind(authenticator.id.as_str())
                        .bind(code.hash.as_bytes().as_slice())
                        .bind(code.expires_at)
                        .bind(stored::<i32>(u64::from(code.failed_attempts))?)
                        .bind(authenticator.created)
                        .execute(&mut *tx)
                        .await
                        .map_err(conflict_or("storing a pending code"))?;
                }
            }
            Change::VerifyOtpSms { authenticator } => {
                self.run(tx, DELETE_CODE, &[authenticator.as_str()], "using up a code").await?;
                self.run(tx, MARK_VERIFIED, &[user, authenticator.as_str()], "verifying an authenticator").await?;
            }
            Change::RemoveOtpSms { authenticator, guard, notice } => {
                self.hold_policies(tx, transition.org.as_str(), guard.as_ref()).await?;
                self.run(tx, DELETE_CODE, &[authenticator.as_str()], "voiding a code").await?;
                self.run(tx, REMOVE_AUTHENTICATOR, &[user, authenticator.as_str()], "removing an authenticator")
                    .await?;
                if let Some(notice) = notice {
                    self.write_notice(tx, notice).await?;
                }
            }
            Change::DeleteUser { guard, notices, .. } => {
                self.hold_policies(tx, transition.org.as_str(), guard.as_ref()).await?;
                for notice in notices {
                    self.write_notice(tx, notice).await?;
                }
            }
            // The state moved with the user.
            Change::SetState { .. } => {}
        }
        Ok(())
    }

    async fn hold_policies(
        &self,
        tx: &mut SqliteConnection,
        org: &str,
        guard: Option<&PolicyGuard>,
    ) -> Result<(), WriteError> {
        let Some(guard) = guard else { return Ok(()) };
        let (org_sequence, instance_sequence): (i64, i64) = sqlx::query_as(POLICY_VERSIONS)
            .bind(self.instance.as_str())
            .bind(org)
            .bind(PolicyEvent::ORG_AGGREGATE)
            .bind(PolicyEvent::INSTANCE_AGGREGATE)
            .fetch_one(&mut *tx)
            .await
            .map_err(unexpected("reading the policies' versions"))?;
        if (org_sequence, instance_sequence)
            != (stored::<i64>(guard.org_sequence)?, stored::<i64>(guard.instance_sequence)?)
        {
            return Err(WriteError::Conflict);
        }
        Ok(())
    }

    /// Writes `notice` into the outbox, due at once.
    async fn write_notice(&self, tx: &mut SqliteConnection, notice: &Notice) -> Result<(), WriteError> {
        sqlx::query(INSERT_NOTICE)
            .bind(self.instance.as_str())
            .bind(notice.id.as_str())
            .bind(notice_kind_to_db(NoticeKind::OtpSmsRemoved))
            .bind(notice.user.as_str())
            .bind(notice.to.as_e164())
            .bind(notice.created)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or("writing a notice to the outbox"))?;
        Ok(())
    }

    /// Runs a statement of the instance (`?1`) with text parameters `?2`, `?3`, ….
    async fn run(
        &self,
        tx: &mut SqliteConnection,
        statement: &'static str,
        parameters: &[&str],
        doing: &'static str,
    ) -> Result<(), WriteError> {
        let mut query = sqlx::query(statement).bind(self.instance.as_str());
        for parameter in parameters {
            query = query.bind(*parameter);
        }
        query.execute(tx).await.map_err(conflict_or(doing))?;
        Ok(())
    }
}
