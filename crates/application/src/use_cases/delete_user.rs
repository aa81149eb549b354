//! DeleteUser: a user and everything it holds, gone in one transaction.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{AccessRefusal, Action, Caller, Event, EventKind, UserId};

use super::{Details, UserLookupError, authorized_user};
use crate::Failure;
use crate::ports::{Clock, DeleteUserError as StoreDeleteError, Unexpected, UserReader, UserWriter};
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
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<DeleteUserError> for Failure {
    fn from(error: DeleteUserError) -> Self {
        match error {
            DeleteUserError::Lookup(e) => e.into(),
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
    /// NOT_FOUND also when a concurrent deletion won); [`DeleteUserError::Unexpected`].
    async fn delete_user(&self, caller: &Caller, command: DeleteUserCommand) -> Result<Details, DeleteUserError>;
}

pub struct DeleteUserService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn UserWriter>,
    pub clock: Arc<dyn Clock>,
}

#[async_trait]
impl DeleteUser for DeleteUserService {
    #[tracing::instrument(name = "delete_user", skip_all, fields(actor = %caller.user_id, user_id = %command.user), err(level = "debug", Display))]
    async fn delete_user(&self, caller: &Caller, command: DeleteUserCommand) -> Result<Details, DeleteUserError> {
        let user =
            authorized_user(&self.context, self.users.as_ref(), caller, &command.scope, &command.user, Action::Delete)
                .await?;
        let event = Event {
            user: user.id.clone(),
            actor: caller.user_id.clone(),
            at: self.clock.now(),
            kind: EventKind::UserRemoved,
        };
        self.store.delete_user(&user.id, &event).await.map_err(|e| match e {
            StoreDeleteError::NotFound => DeleteUserError::Lookup(AccessRefusal::UserNotFound.into()),
            StoreDeleteError::Unexpected(e) => DeleteUserError::Unexpected(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::ports::MockUserWriter;
    use crate::use_cases::fixtures::*;
    use factors_domain::Permission;

    fn service(store: MockUserWriter) -> DeleteUserService {
        DeleteUserService {
            context: context(),
            users: users(vec![user("alice", "org-a")]),
            store: Arc::new(store),
            clock: clock(at(9)),
        }
    }

    fn command() -> DeleteUserCommand {
        DeleteUserCommand { scope: RequestScope::default(), user: user_id("alice") }
    }

    #[tokio::test]
    async fn a_caller_with_user_delete_removes_the_user_with_an_event() {
        let mut store = MockUserWriter::new();
        store
            .expect_delete_user()
            .withf(|id, event| {
                id.as_str() == "alice" && event.event_type() == "user.removed" && event.actor.as_str() == "admin"
            })
            .times(1)
            .returning(|_, _| {
                Ok(Details { id: user_id("alice"), created: at(0), changed: at(9), owner: org("org-a") })
            });
        let admin = caller("admin", &[(Permission::UserDelete, Some("org-a"))]);

        let details = service(store).delete_user(&admin, command()).await.expect("deleted");

        assert_eq!(details.changed, at(9));
    }

    #[tokio::test]
    async fn losing_to_a_concurrent_deletion_is_not_found() {
        let mut store = MockUserWriter::new();
        store.expect_delete_user().returning(|_, _| Err(StoreDeleteError::NotFound));
        let admin = caller("admin", &[(Permission::UserDelete, None)]);

        let failure = Failure::from(service(store).delete_user(&admin, command()).await.expect_err("gone"));

        assert_eq!((failure.kind, failure.id), (ErrorKind::NotFound, "USER-NotFound"));
    }

    #[tokio::test]
    async fn write_permission_alone_does_not_delete() {
        let mut store = MockUserWriter::new();
        store.expect_delete_user().never();

        let failure = Failure::from(service(store).delete_user(&org_admin(), command()).await.expect_err("denied"));

        assert_eq!(failure.kind, ErrorKind::PermissionDenied);
    }
}
