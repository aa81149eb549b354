//! RemoveOTPSMSAuthenticator: the headline operation.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{Action, Caller, OtpSmsId, RemovalPolicy, RemovalRefusal, UserId, plan_removal};

use super::{Details, UserLookupError, authorized_user};
use crate::ports::{self, Clock, OtpSmsReader, OtpSmsWriter, Unexpected, UserReader};
use crate::scope::{InstanceContext, RequestScope};
use crate::{ErrorKind, Failure};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveOtpSmsCommand {
    pub scope: RequestScope,
    pub user: UserId,
    pub otp_sms: OtpSmsId,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveOtpSmsError {
    #[error(transparent)]
    Lookup(#[from] UserLookupError),
    #[error("the user has no such OTP SMS authenticator")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<RemoveOtpSmsError> for Failure {
    fn from(error: RemoveOtpSmsError) -> Self {
        match error {
            RemoveOtpSmsError::Lookup(e) => e.into(),
            RemoveOtpSmsError::NotFound => otp_sms_not_found(),
            RemoveOtpSmsError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

pub(crate) fn otp_sms_not_found() -> Failure {
    Failure::new(ErrorKind::NotFound, "OTPSMS-NotFound", "OTP SMS authenticator not found")
}

/// Removes an OTP SMS authenticator from a user, for good.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait RemoveOtpSms: Send + Sync {
    /// # Errors
    /// [`RemoveOtpSmsError::Lookup`] for the scope and access rules,
    /// [`RemoveOtpSmsError::NotFound`] when the user holds no such authenticator (also
    /// when a concurrent removal won), [`RemoveOtpSmsError::Unexpected`].
    async fn remove_otp_sms(&self, caller: &Caller, command: RemoveOtpSmsCommand)
    -> Result<Details, RemoveOtpSmsError>;
}

pub struct RemoveOtpSmsService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    /// Must read the store itself, not a cache: the decision is about to be written.
    pub authenticators: Arc<dyn OtpSmsReader>,
    pub store: Arc<dyn OtpSmsWriter>,
    pub clock: Arc<dyn Clock>,
    pub policy: RemovalPolicy,
}

#[async_trait]
impl RemoveOtpSms for RemoveOtpSmsService {
    #[tracing::instrument(
        name = "remove_otp_sms",
        skip_all,
        fields(actor = %caller.user_id, user_id = %command.user, otp_sms_id = %command.otp_sms),
        err(level = "debug", Display)
    )]
    async fn remove_otp_sms(
        &self,
        caller: &Caller,
        command: RemoveOtpSmsCommand,
    ) -> Result<Details, RemoveOtpSmsError> {
        let action = Action::ManageCredentials { self_service: self.policy.self_service };
        let user =
            authorized_user(&self.context, self.users.as_ref(), caller, &command.scope, &command.user, action).await?;
        let held = self.authenticators.list_otp_sms(&user).await?;
        let removal =
            plan_removal(caller, &user.id, Some(&user), &held, &command.otp_sms, &self.policy, self.clock.now())
                .map_err(|refusal| match refusal {
                    RemovalRefusal::Access(e) => RemoveOtpSmsError::Lookup(e.into()),
                    RemovalRefusal::AuthenticatorNotFound => RemoveOtpSmsError::NotFound,
                })?;
        self.store.remove_otp_sms(&removal).await.map_err(|e| match e {
            ports::RemoveOtpSmsError::NotFound => RemoveOtpSmsError::NotFound,
            ports::RemoveOtpSmsError::Unexpected(e) => RemoveOtpSmsError::Unexpected(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockOtpSmsReader, MockOtpSmsWriter, MockUserReader};
    use crate::use_cases::fixtures::*;
    use factors_domain::{AccessRefusal, EventKind, Permission};
    use mockall::predicate::always;

    fn command(user: &str, otp: &str) -> RemoveOtpSmsCommand {
        RemoveOtpSmsCommand { scope: RequestScope::default(), user: user_id(user), otp_sms: otp_id(otp) }
    }

    fn held(list: Vec<factors_domain::OtpSmsAuthenticator>) -> Arc<MockOtpSmsReader> {
        let mut reader = MockOtpSmsReader::new();
        reader.expect_list_otp_sms().returning(move |_| Ok(list.clone()));
        Arc::new(reader)
    }

    fn service(
        users: Arc<MockUserReader>,
        reader: Arc<MockOtpSmsReader>,
        store: MockOtpSmsWriter,
    ) -> RemoveOtpSmsService {
        RemoveOtpSmsService {
            context: context(),
            users,
            authenticators: reader,
            store: Arc::new(store),
            clock: clock(at(31)),
            policy: RemovalPolicy::default(),
        }
    }

    fn details() -> Details {
        Details { id: user_id("alice"), created: at(0), changed: at(31), owner: org("org-a") }
    }

    #[tokio::test]
    async fn removing_its_own_authenticator_writes_one_removal_with_its_event() {
        let mut store = MockOtpSmsWriter::new();
        store
            .expect_remove_otp_sms()
            .withf(|removal| {
                removal.authenticator.as_str() == "a1"
                    && removal.event.actor.as_str() == "alice"
                    && removal.event.at == at(31)
                    && matches!(&removal.event.kind, EventKind::OtpSmsRemoved { masked_phone, .. } if masked_phone == "+41******567")
            })
            .times(1)
            .returning(|_| Ok(details()));
        let service = service(users(vec![user("alice", "org-a")]), held(vec![authenticator("a1", "alice")]), store);

        let result = service.remove_otp_sms(&caller("alice", &[]), command("alice", "a1")).await;

        assert_eq!(result.expect("removed"), details());
    }

    #[tokio::test]
    async fn a_plain_user_acting_on_someone_else_is_denied_before_any_lookup() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_remove_otp_sms().never();
        let mut reader = MockOtpSmsReader::new();
        reader.expect_list_otp_sms().never();
        let service = service(no_lookup(), Arc::new(reader), store);

        let result = service.remove_otp_sms(&caller("bob", &[]), command("alice", "a1")).await;

        assert!(matches!(
            result,
            Err(RemoveOtpSmsError::Lookup(UserLookupError::Access(AccessRefusal::PermissionDenied)))
        ));
    }

    #[tokio::test]
    async fn refusals_follow_the_contract_and_write_nothing() {
        let cases: Vec<(Caller, &str, &str, ErrorKind, &str)> = vec![
            (org_admin(), "ghost", "a1", ErrorKind::NotFound, "USER-NotFound"),
            (
                caller("other", &[(Permission::UserWrite, Some("org-b"))]),
                "alice",
                "a1",
                ErrorKind::NotFound,
                "USER-NotFound",
            ),
            (
                caller("reader", &[(Permission::UserRead, Some("org-a"))]),
                "alice",
                "a1",
                ErrorKind::PermissionDenied,
                "AUTHZ-PermissionDenied",
            ),
            (org_admin(), "alice", "a2", ErrorKind::NotFound, "OTPSMS-NotFound"),
            (caller("alice", &[]), "alice", "a9", ErrorKind::NotFound, "OTPSMS-NotFound"),
        ];
        for (who, user_arg, otp, kind, id) in cases {
            let mut store = MockOtpSmsWriter::new();
            store.expect_remove_otp_sms().never();
            let service = service(users(vec![user("alice", "org-a")]), held(vec![authenticator("a1", "alice")]), store);

            let failure =
                Failure::from(service.remove_otp_sms(&who, command(user_arg, otp)).await.expect_err("refused"));

            assert_eq!((failure.kind, failure.id), (kind, id), "{} on {user_arg}/{otp}", who.user_id);
        }
    }

    #[tokio::test]
    async fn an_organization_selector_the_user_is_not_in_answers_not_found() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_remove_otp_sms().never();
        let service = service(users(vec![user("alice", "org-a")]), held(vec![authenticator("a1", "alice")]), store);
        let mut cmd = command("alice", "a1");
        cmd.scope.organization = Some(crate::OrgSelector::Id(org("org-b")));

        let failure = Failure::from(service.remove_otp_sms(&org_admin(), cmd).await.expect_err("refused"));

        assert_eq!(failure.id, "USER-NotFound");
    }

    #[tokio::test]
    async fn losing_a_race_to_a_concurrent_removal_answers_not_found() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_remove_otp_sms().with(always()).times(1).returning(|_| Err(ports::RemoveOtpSmsError::NotFound));
        let service = service(users(vec![user("alice", "org-a")]), held(vec![authenticator("a1", "alice")]), store);

        let result = service.remove_otp_sms(&org_admin(), command("alice", "a1")).await;

        assert!(matches!(result, Err(RemoveOtpSmsError::NotFound)));
    }

    #[tokio::test]
    async fn a_store_failure_is_internal_and_keeps_its_cause_out_of_the_message() {
        let mut store = MockOtpSmsWriter::new();
        store
            .expect_remove_otp_sms()
            .returning(|_| Err(ports::RemoveOtpSmsError::Unexpected(Unexpected(anyhow::anyhow!("connection reset")))));
        let service = service(users(vec![user("alice", "org-a")]), held(vec![authenticator("a1", "alice")]), store);

        let failure =
            Failure::from(service.remove_otp_sms(&org_admin(), command("alice", "a1")).await.expect_err("fails"));

        assert_eq!((failure.kind, failure.message.as_ref()), (ErrorKind::Internal, "internal error"));
        assert!(failure.cause.is_some_and(|c| c.to_string().contains("connection reset")));
    }
}
