//! The user's state: LockUser and DeactivateUser, a user that cannot sign in until it is
//! unlocked or activated, and UnlockUser and ActivateUser, back.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{Caller, StateChange, StateRefusal, UserId, plan_state_change};

use super::{Ports, Rules};
use crate::ports::{Clock, SnapshotCache, UserReader, UserWriter};
use crate::scope::{InstanceContext, RequestScope};
use crate::write_pattern::{Details, Reads, UserLookupError, WriteFailure, landed, write_failure_conversions};
use crate::{ErrorKind, Failure};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStateCommand {
    pub scope: RequestScope,
    pub user: UserId,
    /// Lock (LockUser), unlock (UnlockUser), deactivate (DeactivateUser) or activate
    /// (ActivateUser).
    pub change: StateChange,
}

#[derive(Debug, thiserror::Error)]
pub enum UserStateError {
    /// The user is not in the state the change starts from.
    #[error(transparent)]
    NotInState(StateRefusal),
    /// The lookup, a user that kept changing under every decision, or the store.
    #[error(transparent)]
    Write(#[from] WriteFailure),
}

write_failure_conversions!(UserStateError);

impl From<StateRefusal> for UserStateError {
    fn from(refusal: StateRefusal) -> Self {
        match refusal {
            StateRefusal::Access(e) => Self::Write(e.into()),
            other => Self::NotInState(other),
        }
    }
}

impl From<UserStateError> for Failure {
    fn from(error: UserStateError) -> Self {
        match error {
            UserStateError::NotInState(StateRefusal::NotLocked) => {
                Failure::new(ErrorKind::FailedPrecondition, "USER-NotLocked", "the user is not locked")
            }
            UserStateError::NotInState(StateRefusal::NotActive) => {
                Failure::new(ErrorKind::FailedPrecondition, "USER-NotActive", "the user is not active")
            }
            UserStateError::NotInState(StateRefusal::NotInactive) => {
                Failure::new(ErrorKind::FailedPrecondition, "USER-NotInactive", "the user is not inactive")
            }
            // `From<StateRefusal>` files access refusals under `Write`; mapped the same here.
            UserStateError::NotInState(StateRefusal::Access(e)) => UserLookupError::from(e).into(),
            UserStateError::Write(e) => e.into(),
        }
    }
}

/// Locks, unlocks, deactivates and activates users.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait ChangeUserState: Send + Sync {
    /// # Errors
    /// [`UserStateError::Write`] for the scope and access rules (needs `user.write`);
    /// [`UserStateError::NotInState`] for a user that is not active (lock, deactivate), not
    /// locked (unlock) or not inactive (activate); [`UserStateError::Write`] also for a user
    /// that kept changing and for the store.
    async fn change_user_state(&self, caller: &Caller, command: UserStateCommand) -> Result<Details, UserStateError>;
}

pub struct UserStateService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn UserWriter>,
    /// When given, the first decision is made on the cached snapshot.
    pub cache: Option<Arc<dyn SnapshotCache>>,
    pub clock: Arc<dyn Clock>,
}

impl UserStateService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules) -> Self {
        Self {
            context: rules.context.clone(),
            users: ports.users.clone(),
            store: ports.writer.clone(),
            cache: ports.cache.clone(),
            clock: ports.clock.clone(),
        }
    }
}

#[async_trait]
impl ChangeUserState for UserStateService {
    #[tracing::instrument(name = "change_user_state", level = "debug", skip_all, fields(actor = %caller.user_id, user_id = %command.user, change = ?command.change), err(level = "debug", Display))]
    async fn change_user_state(&self, caller: &Caller, command: UserStateCommand) -> Result<Details, UserStateError> {
        let cache = self.cache.as_deref();
        let mut reads =
            Reads::start(&self.context, self.users.as_ref(), cache, caller, &command.scope, &command.user).await?;
        while let Some(read) = reads.next().await? {
            let planned =
                plan_state_change(caller, &command.user, read.snapshot.as_ref(), command.change, self.clock.now());
            // No login policy takes part: the state read is all the decision rests on.
            let Some((snapshot, decision)) = read.decided(planned, true)? else { continue };
            if landed(self.store.apply(&decision).await)? {
                return Ok(Details::of_write(&snapshot.user, &decision.transition));
            }
        }
        Err(WriteFailure::Contended.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockUserReader, MockUserWriter, WriteError};
    use crate::use_cases::fixtures::*;
    use factors_domain::{Change, Permission, UserSnapshot, UserState};

    fn service(users: MockUserReader, store: MockUserWriter) -> UserStateService {
        UserStateService {
            context: context(),
            users: Arc::new(users),
            store: Arc::new(store),
            cache: None,
            clock: clock(at(9)),
        }
    }

    fn reading(state: UserState) -> MockUserReader {
        let mut users = MockUserReader::new();
        users.expect_load().returning(move |_| {
            let mut alice = user("alice", "org-a");
            alice.state = state;
            Ok(Some(UserSnapshot { user: alice, otp_sms: vec![] }))
        });
        users
    }

    fn command(change: StateChange) -> UserStateCommand {
        UserStateCommand { scope: RequestScope::default(), user: user_id("alice"), change }
    }

    #[tokio::test]
    async fn a_lock_writes_the_locked_state_and_answers_the_details_of_the_write() {
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(|decision| decision.change == Change::SetState { state: UserState::Locked })
            .times(1)
            .returning(|_| Ok(()));

        let details = service(reading(UserState::Active), store)
            .change_user_state(&org_admin(), command(StateChange::Lock))
            .await
            .expect("locked");

        assert_eq!((details.id, details.changed), (user_id("alice"), at(9)));
    }

    #[tokio::test]
    async fn unlocking_a_user_that_is_not_locked_is_a_failed_precondition_and_writes_nothing() {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();

        let error = service(reading(UserState::Active), store)
            .change_user_state(&org_admin(), command(StateChange::Unlock))
            .await
            .expect_err("refused");

        let failure = Failure::from(error);
        assert_eq!((failure.kind, failure.id), (ErrorKind::FailedPrecondition, "USER-NotLocked"));
    }

    #[tokio::test]
    async fn deactivating_writes_the_inactive_state_and_activating_an_active_user_is_refused() {
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(|decision| decision.change == Change::SetState { state: UserState::Inactive })
            .times(1)
            .returning(|_| Ok(()));
        let service = service(reading(UserState::Active), store);

        let details =
            service.change_user_state(&org_admin(), command(StateChange::Deactivate)).await.expect("deactivated");
        let error = service.change_user_state(&org_admin(), command(StateChange::Activate)).await.expect_err("active");

        assert_eq!(details.changed, at(9));
        let failure = Failure::from(error);
        assert_eq!((failure.kind, failure.id), (ErrorKind::FailedPrecondition, "USER-NotInactive"));
    }

    #[tokio::test]
    async fn locking_without_user_write_is_permission_denied_and_writes_nothing() {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
        let reader = caller("bob", &[(Permission::UserRead, Some("org-a"))]);

        let error = service(reading(UserState::Active), store)
            .change_user_state(&reader, command(StateChange::Lock))
            .await
            .expect_err("refused");

        assert_eq!(Failure::from(error).kind, ErrorKind::PermissionDenied);
    }

    #[tokio::test]
    async fn a_lock_that_loses_every_race_is_contended() {
        let mut store = MockUserWriter::new();
        store.expect_apply().returning(|_| Err(WriteError::Conflict));

        let error = service(reading(UserState::Active), store)
            .change_user_state(&org_admin(), command(StateChange::Lock))
            .await
            .expect_err("contended");

        assert!(matches!(error, UserStateError::Write(WriteFailure::Contended)), "{error:?}");
    }
}
