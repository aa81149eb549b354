//! DeleteUser: a user and everything it holds, gone in one guarded write.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{Caller, Change, DeletionRefusal, ProtectionRefusal, UserId, plan_deletion};
use tokio::sync::Notify;

use super::login_policy::PoliciesInForce;
use super::{Ports, Rules};
use crate::Failure;
use crate::ports::{Clock, SessionStore, SnapshotCache, UserReader, UserWriter};
use crate::scope::{InstanceContext, RequestScope};
use crate::write_pattern::{Details, Reads, WriteFailure, landed, write_failure_conversions};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteUserCommand {
    pub scope: RequestScope,
    pub user: UserId,
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteUserError {
    /// The caller deleting itself while it holds a verified authenticator, which the login
    /// policy protects as it protects a removal.
    #[error(transparent)]
    Protection(#[from] ProtectionRefusal),
    /// The lookup, a user that kept changing under every decision, or the store.
    #[error(transparent)]
    Write(#[from] WriteFailure),
}

write_failure_conversions!(DeleteUserError);

impl From<DeletionRefusal> for DeleteUserError {
    fn from(refusal: DeletionRefusal) -> Self {
        match refusal {
            DeletionRefusal::Access(e) => Self::Write(e.into()),
            DeletionRefusal::Protection(e) => Self::Protection(e),
        }
    }
}

impl From<DeleteUserError> for Failure {
    fn from(error: DeleteUserError) -> Self {
        match error {
            DeleteUserError::Protection(e) => e.into(),
            DeleteUserError::Write(e) => e.into(),
        }
    }
}

/// Deletes users.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait DeleteUser: Send + Sync {
    /// # Errors
    /// [`DeleteUserError::Write`] for the scope and access rules (needs `user.delete`;
    /// NOT_FOUND also when a concurrent deletion won); [`DeleteUserError::Protection`] for
    /// a caller deleting itself; [`DeleteUserError::Write`] also for a user that kept
    /// changing and for the store.
    async fn delete_user(&self, caller: &Caller, command: DeleteUserCommand) -> Result<Details, DeleteUserError>;
}

pub struct DeleteUserService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn UserWriter>,
    /// Lists the sessions the user holds: the deletion ends each, with its event.
    pub sessions: Arc<dyn SessionStore>,
    /// When given, the first decision is made on the cached snapshot.
    pub cache: Option<Arc<dyn SnapshotCache>>,
    pub clock: Arc<dyn Clock>,
    /// The login policies in force: a user deleting itself is held to them, and a
    /// deletion under `notifyOnRemoval` notifies the numbers it removes.
    pub login_policies: Arc<PoliciesInForce>,
    /// Woken when a deletion left notices in the outbox.
    pub notices: Arc<Notify>,
}

impl DeleteUserService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules, login_policies: Arc<PoliciesInForce>) -> Self {
        Self {
            context: rules.context.clone(),
            users: ports.users.clone(),
            store: ports.writer.clone(),
            sessions: ports.sessions.clone(),
            cache: ports.cache.clone(),
            clock: ports.clock.clone(),
            login_policies,
            notices: ports.notices.clone(),
        }
    }
}

#[async_trait]
impl DeleteUser for DeleteUserService {
    #[tracing::instrument(name = "delete_user", level = "debug", skip_all, fields(actor = %caller.user_id, user_id = %command.user), err(level = "debug", Display))]
    async fn delete_user(&self, caller: &Caller, command: DeleteUserCommand) -> Result<Details, DeleteUserError> {
        let cache = self.cache.as_deref();
        let mut reads =
            Reads::start(&self.context, self.users.as_ref(), cache, caller, &command.scope, &command.user).await?;
        while let Some(read) = reads.next().await? {
            let (login, policy_fresh) = self.login_policies.for_decision(read.snapshot.as_ref(), read.first).await?;
            // Read only for a user that was found: the rules allow nothing on one that was not.
            let sessions = match &read.snapshot {
                Some(_) => self.sessions.sessions_of(&command.user).await?,
                None => Vec::new(),
            };
            let planned =
                plan_deletion(caller, &command.user, read.snapshot.as_ref(), &sessions, &login, self.clock.now());
            let Some((snapshot, decision)) = read.decided(planned, policy_fresh)? else { continue };
            if landed(self.store.apply(&decision).await)? {
                if matches!(&decision.change, Change::DeleteUser { notices, .. } if !notices.is_empty()) {
                    self.notices.notify_one();
                }
                return Ok(Details::of_write(&snapshot.user, &decision.transition));
            }
        }
        Err(WriteFailure::Contended.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::ports::{MockUserReader, MockUserWriter, StoredPolicies, WriteError};
    use crate::use_cases::fixtures::*;
    use chrono::TimeDelta;
    use factors_domain::{LoginPolicy, Permission, PolicyGuard, SessionId, UserSession, Version};

    fn service(users: Arc<MockUserReader>, store: MockUserWriter) -> DeleteUserService {
        under(users, store, StoredPolicies::default())
    }

    fn under(users: Arc<MockUserReader>, store: MockUserWriter, stored: StoredPolicies) -> DeleteUserService {
        DeleteUserService {
            context: context(),
            users,
            store: Arc::new(store),
            sessions: sessions_held(vec![]),
            cache: None,
            clock: clock(at(9)),
            login_policies: policies_in_force(stored),
            notices: Arc::new(Notify::new()),
        }
    }

    fn command() -> DeleteUserCommand {
        DeleteUserCommand { scope: RequestScope::default(), user: user_id("alice") }
    }

    #[tokio::test]
    async fn a_caller_with_user_delete_removes_the_user_with_an_event_on_the_version_read() {
        let version = alice_holding(vec![]).user.version();
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(move |decision| {
                decision.transition.from == version
                    && decision.change
                        == Change::DeleteUser { guard: Some(PolicyGuard::default()), notices: vec![], sessions: vec![] }
                    && decision.event.event_type() == "user.removed"
                    && decision.event.actor.as_str() == "admin"
            })
            .times(1)
            .returning(|_| Ok(()));
        let admin = caller("admin", &[(Permission::UserDelete, Some("org-a"))]);

        let details =
            service(users(vec![alice_holding(vec![])]), store).delete_user(&admin, command()).await.expect("deleted");

        assert_eq!(details, Details { id: user_id("alice"), created: at(0), changed: at(9), owner: org("org-a") });
    }

    #[tokio::test]
    async fn the_deletion_ends_every_session_the_user_holds_as_read_for_each_decision() {
        let held =
            UserSession { id: SessionId::new("s1").expect("valid"), version: Version { sequence: 4, changed: at(3) } };
        let mut store = MockUserWriter::new();
        let ended = held.clone();
        store
            .expect_apply()
            .withf(move |decision| match &decision.change {
                Change::DeleteUser { sessions, .. } => {
                    sessions.len() == 1
                        && sessions[0].session == ended.id
                        && sessions[0].from == ended.version
                        && sessions[0].event.event_type() == "session.terminated"
                        && sessions[0].event.actor.as_str() == "admin"
                }
                _ => false,
            })
            .times(1)
            .returning(|_| Ok(()));
        let admin = caller("admin", &[(Permission::UserDelete, Some("org-a"))]);
        let service = DeleteUserService {
            sessions: sessions_held(vec![held]),
            ..service(users(vec![alice_holding(vec![])]), store)
        };

        service.delete_user(&admin, command()).await.expect("deleted");
    }

    #[tokio::test]
    async fn losing_to_a_concurrent_deletion_is_not_found() {
        let mut users = MockUserReader::new();
        let mut reads = mockall::Sequence::new();
        users.expect_load().times(1).in_sequence(&mut reads).returning(|_| Ok(Some(alice_holding(vec![]))));
        users.expect_load().times(1).in_sequence(&mut reads).returning(|_| Ok(None));
        let mut store = MockUserWriter::new();
        store.expect_apply().times(1).returning(|_| Err(WriteError::Conflict));
        let admin = caller("admin", &[(Permission::UserDelete, None)]);

        let failure =
            Failure::from(service(Arc::new(users), store).delete_user(&admin, command()).await.expect_err("gone"));

        assert_eq!((failure.kind, failure.id), (ErrorKind::NotFound, "USER-NotFound"));
    }

    #[tokio::test]
    async fn write_permission_alone_does_not_delete() {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();

        let failure = Failure::from(
            service(users(vec![alice_holding(vec![])]), store)
                .delete_user(&org_admin(), command())
                .await
                .expect_err("denied"),
        );

        assert_eq!((failure.kind, failure.id), (ErrorKind::PermissionDenied, "AUTHZ-PermissionDenied"));
    }

    #[tokio::test]
    async fn a_user_manager_deleting_itself_is_held_to_its_policy_and_nothing_is_written() {
        let holding = alice_holding(vec![authenticator("a1", "alice")]);
        let alice_manager = caller("alice", &[(Permission::UserDelete, Some("org-a"))]);
        let step_up = LoginPolicy::new(false, TimeDelta::minutes(5), false).expect("valid");
        for (policy, id) in [
            (LoginPolicy { force_mfa: true, ..LoginPolicy::default() }, "OTPSMS-LastFactor"),
            (step_up, "AUTHZ-StepUpRequired"),
        ] {
            let mut store = MockUserWriter::new();
            store.expect_apply().never();
            let service = under(users(vec![holding.clone()]), store, instance_default(policy));

            let failure = Failure::from(service.delete_user(&alice_manager, command()).await.expect_err("refused"));

            assert_eq!(failure.id, id, "{policy:?}");
        }
    }

    #[tokio::test]
    async fn a_deletion_under_notify_on_removal_wakes_the_notice_worker() {
        let holding = alice_holding(vec![authenticator("a1", "alice")]);
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(|decision| matches!(&decision.change, Change::DeleteUser { notices, .. } if notices.len() == 1))
            .times(1)
            .returning(|_| Ok(()));
        let notify = LoginPolicy { notify_on_removal: true, ..LoginPolicy::default() };
        let service = under(users(vec![holding]), store, instance_default(notify));
        let woken = service.notices.clone();
        let admin = caller("admin", &[(Permission::UserDelete, None)]);

        service.delete_user(&admin, command()).await.expect("deleted");

        tokio::time::timeout(std::time::Duration::from_secs(1), woken.notified()).await.expect("woken");
    }
}
