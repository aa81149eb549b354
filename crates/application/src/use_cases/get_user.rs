//! GetUser: a user with its OTP SMS authenticators.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{Action, Caller, UserId, UserSnapshot};

use super::{Ports, Rules};
use crate::ports::{SnapshotCache, UserReader};
use crate::scope::{InstanceContext, RequestScope};
use crate::tasks::share;
use crate::write_pattern::{UserLookupError, authorized_snapshot};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetUserCommand {
    pub scope: RequestScope,
    pub user: UserId,
}

/// A user as GetUser shows it: the user with its OTP SMS authenticators.
pub type UserView = UserSnapshot;

/// GetUser fails only as a lookup does: the selectors, the access rules, the store.
pub type GetUserError = UserLookupError;

/// Reads a user.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait GetUser: Send + Sync {
    /// # Errors
    /// [`UserLookupError`] for the scope and access rules, and when the store fails.
    async fn get_user(&self, caller: &Caller, command: GetUserCommand) -> Result<UserView, GetUserError>;
}

pub struct GetUserService {
    pub context: Arc<InstanceContext>,
    /// Always the store, in one round trip: an answer is never shown from a cache.
    pub users: Arc<dyn UserReader>,
    /// When given, receives what was read, so that a removal that follows the read (as a
    /// UI's does) decides on it without reading the store first.
    pub warm: Option<Arc<dyn SnapshotCache>>,
}

impl GetUserService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules) -> Self {
        Self { context: rules.context.clone(), users: ports.users.clone(), warm: ports.cache.clone() }
    }
}

#[async_trait]
impl GetUser for GetUserService {
    #[tracing::instrument(name = "get_user", level = "debug", skip_all, fields(actor = %caller.user_id, user_id = %command.user), err(level = "debug", Display))]
    async fn get_user(&self, caller: &Caller, command: GetUserCommand) -> Result<UserView, GetUserError> {
        let snapshot = authorized_snapshot(
            &self.context,
            self.users.as_ref(),
            caller,
            &command.scope,
            &command.user,
            Action::Read,
        )
        .await?;
        if let Some(cache) = &self.warm {
            share(cache.clone(), snapshot.clone());
        }
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::Failure;
    use crate::use_cases::fixtures::*;
    use factors_domain::Permission;

    fn service() -> GetUserService {
        GetUserService {
            context: context(),
            users: users(vec![alice_holding(vec![authenticator("a1", "alice")])]),
            warm: None,
        }
    }

    fn command(id: &str) -> GetUserCommand {
        GetUserCommand { scope: RequestScope::default(), user: user_id(id) }
    }

    #[tokio::test]
    async fn a_reader_sees_the_user_with_its_authenticators() {
        let who = caller("reader", &[(Permission::UserRead, Some("org-a"))]);

        let view = service().get_user(&who, command("alice")).await.expect("visible");

        assert_eq!((view.user.id.as_str(), view.otp_sms.len()), ("alice", 1));
    }

    #[tokio::test]
    async fn what_was_read_warms_the_cache_for_the_decisions_that_follow() {
        let cache = RecordingCache::holding(alice_holding(vec![]));
        let service = GetUserService { warm: Some(cache.clone()), ..service() };

        let view = service.get_user(&caller("alice", &[]), command("alice")).await.expect("visible");

        assert_eq!(view.otp_sms.len(), 1, "answered from the store, not from the cache");
        assert_eq!(cache.kept.lock().expect("lock").last(), Some(&view), "shared before the answer");
    }

    #[tokio::test]
    async fn selectors_are_answered_only_to_callers_that_hold_user_permissions() {
        let other_instance =
            RequestScope { instance: Some(crate::InstanceSelector::Id("inst-2".into())), organization: None };
        let unknown_domain =
            RequestScope { instance: None, organization: Some(crate::OrgSelector::Domain("nope.example.com".into())) };
        let cases = [
            (caller("bob", &[]), other_instance.clone(), "AUTHZ-PermissionDenied", "plain user, other instance"),
            (caller("bob", &[]), unknown_domain.clone(), "AUTHZ-PermissionDenied", "plain user, unknown domain"),
            (caller("alice", &[]), other_instance.clone(), "AUTHZ-PermissionDenied", "self, other instance"),
            (caller("alice", &[]), unknown_domain.clone(), "AUTHZ-PermissionDenied", "self, unknown domain"),
            (org_admin(), other_instance, "INSTANCE-NotFound", "admin, other instance"),
            (org_admin(), unknown_domain, "ORG-NotFound", "admin, unknown domain"),
        ];
        for (who, scope, expected, case) in cases {
            let service = GetUserService { users: no_lookup(), ..service() };
            let failure = Failure::from(
                service.get_user(&who, GetUserCommand { scope, user: user_id("alice") }).await.expect_err("refused"),
            );
            assert_eq!(failure.id, expected, "{case}");
        }
    }

    #[tokio::test]
    async fn visibility_follows_the_contract() {
        let cases = [
            (caller("alice", &[]), "alice", None, "self"),
            (caller("bob", &[]), "alice", Some(ErrorKind::PermissionDenied), "plain user on someone else"),
            (
                caller("other", &[(Permission::UserRead, Some("org-b"))]),
                "alice",
                Some(ErrorKind::NotFound),
                "other org",
            ),
            (org_admin(), "ghost", Some(ErrorKind::NotFound), "missing user"),
        ];
        for (who, id, expected, case) in cases {
            let result = service().get_user(&who, command(id)).await;
            assert_eq!(result.err().map(|e| Failure::from(e).kind), expected, "{case}");
        }
    }
}
