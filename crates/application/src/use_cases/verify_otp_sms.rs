//! VerifyOTPSMSRegistration: the user proves the phone by typing back the code.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{
    Action, Caller, CodeKey, CodePolicy, CodeRejection, Event, EventKind, OtpSmsId, UserId, VerificationCode,
};

use super::remove_otp_sms::otp_sms_not_found;
use super::{Details, UserLookupError, authorized_user};
use crate::ports::{self, Clock, OtpSmsWriter, UserReader, VerificationAttempt};
use crate::scope::{InstanceContext, RequestScope};
use crate::{ErrorKind, Failure};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOtpSmsCommand {
    pub scope: RequestScope,
    pub user: UserId,
    pub otp_sms: OtpSmsId,
    pub code: VerificationCode,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyOtpSmsError {
    #[error(transparent)]
    Lookup(#[from] UserLookupError),
    /// The outcome of the store's check, as [`ports::OtpSmsWriter::verify_otp_sms`] gives it.
    #[error(transparent)]
    Check(#[from] ports::VerifyOtpSmsError),
}

impl From<VerifyOtpSmsError> for Failure {
    fn from(error: VerifyOtpSmsError) -> Self {
        match error {
            VerifyOtpSmsError::Lookup(e) => e.into(),
            VerifyOtpSmsError::Check(ports::VerifyOtpSmsError::NotFound) => otp_sms_not_found(),
            VerifyOtpSmsError::Check(ports::VerifyOtpSmsError::AlreadyVerified) => Failure::new(
                ErrorKind::FailedPrecondition,
                "OTPSMS-AlreadyVerified",
                "the authenticator is verified already",
            ),
            VerifyOtpSmsError::Check(ports::VerifyOtpSmsError::NoPendingCode) => Failure::new(
                ErrorKind::FailedPrecondition,
                "OTPSMS-NoPendingCode",
                "no code is pending for the authenticator",
            ),
            VerifyOtpSmsError::Check(ports::VerifyOtpSmsError::Rejected(CodeRejection::Wrong { .. })) => {
                Failure::new(ErrorKind::InvalidArgument, "OTPSMS-CodeWrong", "the code is wrong")
            }
            VerifyOtpSmsError::Check(ports::VerifyOtpSmsError::Rejected(CodeRejection::Expired)) => Failure::new(
                ErrorKind::InvalidArgument,
                "OTPSMS-CodeExpired",
                "the code has expired; add the authenticator again",
            ),
            VerifyOtpSmsError::Check(ports::VerifyOtpSmsError::Rejected(CodeRejection::Exhausted)) => Failure::new(
                ErrorKind::FailedPrecondition,
                "OTPSMS-CodeExhausted",
                "too many wrong codes were tried; add the authenticator again",
            ),
            VerifyOtpSmsError::Check(ports::VerifyOtpSmsError::Unexpected(e)) => Failure::internal(e.0),
        }
    }
}

/// Verifies the registration of an OTP SMS authenticator.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait VerifyOtpSms: Send + Sync {
    /// # Errors
    /// [`VerifyOtpSmsError::Lookup`] for the scope and access rules, then the outcomes
    /// of the store's check ([`ports::OtpSmsWriter::verify_otp_sms`]).
    async fn verify_otp_sms(&self, caller: &Caller, command: VerifyOtpSmsCommand)
    -> Result<Details, VerifyOtpSmsError>;
}

pub struct VerifyOtpSmsService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn OtpSmsWriter>,
    pub code_key: CodeKey,
    pub code_policy: CodePolicy,
    pub clock: Arc<dyn Clock>,
    pub self_service: bool,
}

#[async_trait]
impl VerifyOtpSms for VerifyOtpSmsService {
    #[tracing::instrument(
        name = "verify_otp_sms",
        skip_all,
        fields(actor = %caller.user_id, user_id = %command.user, otp_sms_id = %command.otp_sms),
        err(level = "debug", Display)
    )]
    async fn verify_otp_sms(
        &self,
        caller: &Caller,
        command: VerifyOtpSmsCommand,
    ) -> Result<Details, VerifyOtpSmsError> {
        let action = Action::ManageCredentials { self_service: self.self_service };
        let user =
            authorized_user(&self.context, self.users.as_ref(), caller, &command.scope, &command.user, action).await?;
        let now = self.clock.now();
        let attempt = VerificationAttempt {
            user: user.id.clone(),
            authenticator: command.otp_sms.clone(),
            presented: self.code_key.hash(&command.otp_sms, &command.code),
            policy: self.code_policy,
            now,
            event: Event {
                user: user.id.clone(),
                actor: caller.user_id.clone(),
                at: now,
                kind: EventKind::OtpSmsVerified { authenticator: command.otp_sms.clone() },
            },
        };
        Ok(self.store.verify_otp_sms(&attempt).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::MockOtpSmsWriter;
    use crate::use_cases::fixtures::*;
    use factors_domain::Permission;

    fn command(code: &str) -> VerifyOtpSmsCommand {
        VerifyOtpSmsCommand {
            scope: RequestScope::default(),
            user: user_id("alice"),
            otp_sms: otp_id("a1"),
            code: VerificationCode::parse(code).expect("six digits"),
        }
    }

    fn service(store: MockOtpSmsWriter) -> VerifyOtpSmsService {
        VerifyOtpSmsService {
            context: context(),
            users: users(vec![user("alice", "org-a")]),
            store: Arc::new(store),
            code_key: CodeKey::new([3u8; 32]).expect("32 bytes"),
            code_policy: CodePolicy::default(),
            clock: clock(at(7)),
            self_service: true,
        }
    }

    #[tokio::test]
    async fn the_typed_code_reaches_the_store_only_as_its_keyed_hash() {
        let mut store = MockOtpSmsWriter::new();
        store
            .expect_verify_otp_sms()
            .withf(|attempt| {
                let key = CodeKey::new([3u8; 32]).expect("32 bytes");
                attempt.presented == key.hash(&otp_id("a1"), &VerificationCode::parse("123456").expect("digits"))
                    && attempt.now == at(7)
                    && attempt.event.event_type() == "user.human.mfa.otp.sms.verified"
            })
            .times(1)
            .returning(|_| Ok(Details { id: user_id("alice"), created: at(0), changed: at(7), owner: org("org-a") }));

        let details = service(store).verify_otp_sms(&caller("alice", &[]), command("123456")).await.expect("verified");

        assert_eq!(details.changed, at(7));
    }

    #[tokio::test]
    async fn each_outcome_of_the_check_has_its_own_answer() {
        let cases = [
            (
                ports::VerifyOtpSmsError::Rejected(CodeRejection::Wrong { void: false }),
                ErrorKind::InvalidArgument,
                "OTPSMS-CodeWrong",
            ),
            (
                ports::VerifyOtpSmsError::Rejected(CodeRejection::Expired),
                ErrorKind::InvalidArgument,
                "OTPSMS-CodeExpired",
            ),
            (
                ports::VerifyOtpSmsError::Rejected(CodeRejection::Exhausted),
                ErrorKind::FailedPrecondition,
                "OTPSMS-CodeExhausted",
            ),
            (ports::VerifyOtpSmsError::NotFound, ErrorKind::NotFound, "OTPSMS-NotFound"),
            (ports::VerifyOtpSmsError::AlreadyVerified, ErrorKind::FailedPrecondition, "OTPSMS-AlreadyVerified"),
            (ports::VerifyOtpSmsError::NoPendingCode, ErrorKind::FailedPrecondition, "OTPSMS-NoPendingCode"),
        ];
        for (outcome, kind, id) in cases {
            let outcome = std::sync::Mutex::new(Some(outcome));
            let mut store = MockOtpSmsWriter::new();
            store
                .expect_verify_otp_sms()
                .returning(move |_| Err(outcome.lock().expect("lock").take().expect("called once")));

            let failure = Failure::from(
                service(store).verify_otp_sms(&caller("alice", &[]), command("123456")).await.expect_err("refused"),
            );

            assert_eq!((failure.kind, failure.id), (kind, id));
        }
    }

    #[tokio::test]
    async fn a_read_only_caller_cannot_verify_for_someone_else() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_verify_otp_sms().never();
        let reader = caller("reader", &[(Permission::UserRead, Some("org-a"))]);

        let failure =
            Failure::from(service(store).verify_otp_sms(&reader, command("123456")).await.expect_err("denied"));

        assert_eq!(failure.kind, ErrorKind::PermissionDenied);
    }
}
