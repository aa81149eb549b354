//! GetUser: a user with its OTP SMS authenticators.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{Action, Caller, OtpSmsAuthenticator, User, UserId};

use super::{UserLookupError, authorized_user};
use crate::Failure;
use crate::ports::{OtpSmsReader, Unexpected, UserReader};
use crate::scope::{InstanceContext, RequestScope};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetUserCommand {
    pub scope: RequestScope,
    pub user: UserId,
}

/// A user as GetUser shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserView {
    pub user: User,
    pub otp_sms: Vec<OtpSmsAuthenticator>,
}

#[derive(Debug, thiserror::Error)]
pub enum GetUserError {
    #[error(transparent)]
    Lookup(#[from] UserLookupError),
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<GetUserError> for Failure {
    fn from(error: GetUserError) -> Self {
        match error {
            GetUserError::Lookup(e) => e.into(),
            GetUserError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// Reads a user.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait GetUser: Send + Sync {
    /// # Errors
    /// [`GetUserError::Lookup`] for the scope and access rules; [`GetUserError::Unexpected`].
    async fn get_user(&self, caller: &Caller, command: GetUserCommand) -> Result<UserView, GetUserError>;
}

pub struct GetUserService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    /// May be a cache: it must never return an authenticator after its removal returned.
    pub authenticators: Arc<dyn OtpSmsReader>,
}

#[async_trait]
impl GetUser for GetUserService {
    #[tracing::instrument(name = "get_user", skip_all, fields(actor = %caller.user_id, user_id = %command.user), err(level = "debug", Display))]
    async fn get_user(&self, caller: &Caller, command: GetUserCommand) -> Result<UserView, GetUserError> {
        let user =
            authorized_user(&self.context, self.users.as_ref(), caller, &command.scope, &command.user, Action::Read)
                .await?;
        let otp_sms = self.authenticators.list_otp_sms(&user).await?;
        Ok(UserView { user, otp_sms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::ports::MockOtpSmsReader;
    use crate::use_cases::fixtures::*;
    use factors_domain::Permission;

    fn service(reader: MockOtpSmsReader) -> GetUserService {
        GetUserService {
            context: context(),
            users: users(vec![user("alice", "org-a")]),
            authenticators: Arc::new(reader),
        }
    }

    fn command(id: &str) -> GetUserCommand {
        GetUserCommand { scope: RequestScope::default(), user: user_id(id) }
    }

    #[tokio::test]
    async fn a_reader_sees_the_user_with_its_authenticators() {
        let mut reader = MockOtpSmsReader::new();
        reader
            .expect_list_otp_sms()
            .withf(|user| user.id.as_str() == "alice" && user.sequence == 2)
            .times(1)
            .returning(|_| Ok(vec![authenticator("a1", "alice")]));
        let who = caller("reader", &[(Permission::UserRead, Some("org-a"))]);

        let view = service(reader).get_user(&who, command("alice")).await.expect("visible");

        assert_eq!((view.user.id.as_str(), view.otp_sms.len()), ("alice", 1));
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
            let mut reader = MockOtpSmsReader::new();
            reader.expect_list_otp_sms().returning(|_| Ok(vec![]));
            let result = service(reader).get_user(&who, command(id)).await;
            assert_eq!(result.err().map(|e| Failure::from(e).kind), expected, "{case}");
        }
    }
}
