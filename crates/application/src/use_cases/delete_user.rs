//! DeleteUser: a user and everything it holds, gone in one guarded write.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{Caller, UserId, plan_deletion};

use super::{Details, Reads, UserLookupError, contended, landed};
use crate::Failure;
use crate::ports::{Clock, SnapshotCache, Unexpected, UserReader, UserWriter};
use crate::scope::{InstanceContext, RequestScope};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteUserCommand {
    pub scope: RequestScope,
    pub user: UserId,
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteUserError {
    #[error(transparent)]
    Lookup(#[from] UserLookupError),
    #[error("the user kept changing under every decision")]
    Contended,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<DeleteUserError> for Failure {
    fn from(error: DeleteUserError) -> Self {
        match error {
            DeleteUserError::Lookup(e) => e.into(),
            DeleteUserError::Contended => contended(),
            DeleteUserError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// Deletes users.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait DeleteUser: Send + Sync {
    /// # Errors
    /// [`DeleteUserError::Lookup`] for the scope and access rules (needs `user.delete`;
    /// NOT_FOUND also when a concurrent deletion won); [`DeleteUserError::Contended`];
    /// [`DeleteUserError::Unexpected`].
    async fn delete_user(&self, caller: &Caller, command: DeleteUserCommand) -> Result<Details, DeleteUserError>;
}

pub struct DeleteUserService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn UserWriter>,
    /// When given, the first decision is made on the cached snapshot.
    pub cache: Option<Arc<dyn SnapshotCache>>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl DeleteUser for DeleteUserService {
    #[tracing::instrument(name = "delete_user", level = "debug", skip_all, fields(actor = %caller.user_id, user_id = %command.user), err(level = "debug", Display))]
    async fn delete_user(&self, caller: &Caller, command: DeleteUserCommand) -> Result<Details, DeleteUserError> {
        let cache = self.cache.as_deref();
        let mut reads =
            Reads::start(&self.context, self.users.as_ref(), cache, caller, &command.scope, &command.user).await?;
        while let Some(read) = reads.next().await? {
            let planned = plan_deletion(caller, &command.user, read.snapshot.as_ref(), self.clock.now());
            let Some(decision) = read.decided(planned).map_err(UserLookupError::from)? else { continue };
            // The rules allow nothing on a user that was not read.
            let Some(snapshot) = read.snapshot else { continue };
            if landed(self.store.apply(&decision).await)? {
                return Ok(Details::of_write(&snapshot.user, &decision.transition));
            }
        }
        Err(DeleteUserError::Contended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::ports::{MockUserReader, MockUserWriter, WriteError};
    use crate::use_cases::fixtures::*;
    use factors_domain::{Change, Permission};

    fn service(users: Arc<MockUserReader>, store: MockUserWriter) -> DeleteUserService {
        DeleteUserService { context: context(), users, store: Arc::new(store), cache: None, clock: clock(at(9)) }
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
                    && decision.change == Change::DeleteUser
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
}
