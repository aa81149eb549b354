//! AddOTPSMSAuthenticator: register a phone as a second factor, to be proven by a code.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{
    Action, Caller, CodeKey, CodePolicy, Event, EventKind, OtpSmsAuthenticator, OtpSmsId, PendingCode, PhoneNumber,
    Removal, UserId, VerificationCode,
};
use tracing::Instrument;

use super::{Details, UserLookupError, Verification, authorized_user};
use crate::ports::{
    self, Clock, CodeGenerator, IdGenerator, NewOtpSms, OtpSmsWriter, RateLimited, SmsPurpose, SmsRateLimiter,
    SmsSender, Unexpected, UserReader,
};
use crate::scope::{InstanceContext, RequestScope};
use crate::{ErrorKind, Failure};

#[cfg(feature = "mocks")]
use mockall::automock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOtpSmsCommand {
    pub scope: RequestScope,
    pub user: UserId,
    pub phone: PhoneNumber,
    pub verification: Verification,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOtpSmsOutput {
    pub details: Details,
    pub otp_sms_id: OtpSmsId,
    /// The code, when the caller asked for it with `returnCode`.
    pub verification_code: Option<VerificationCode>,
}

#[derive(Debug, thiserror::Error)]
pub enum AddOtpSmsError {
    #[error(transparent)]
    Lookup(#[from] UserLookupError),
    #[error("the user already has an OTP SMS authenticator on this number")]
    PhoneTaken,
    #[error("the SMS could not be sent")]
    SmsFailed(#[source] anyhow::Error),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<AddOtpSmsError> for Failure {
    fn from(error: AddOtpSmsError) -> Self {
        match error {
            AddOtpSmsError::Lookup(e) => e.into(),
            AddOtpSmsError::PhoneTaken => Failure::new(
                ErrorKind::AlreadyExists,
                "OTPSMS-AlreadyExists",
                "the user already has an OTP SMS authenticator on this number",
            ),
            AddOtpSmsError::SmsFailed(cause) => Failure {
                cause: Some(cause),
                ..Failure::new(
                    ErrorKind::Unavailable,
                    "SMS-SendFailed",
                    "the verification SMS could not be sent; the authenticator was not added",
                )
            },
            AddOtpSmsError::RateLimited(limited) => limited.into(),
            AddOtpSmsError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// Adds an OTP SMS authenticator to a user.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait AddOtpSms: Send + Sync {
    /// # Errors
    /// [`AddOtpSmsError::Lookup`] for the scope and access rules (`returnCode` and
    /// `isVerified` need write permission and are refused to a caller acting on itself),
    /// [`AddOtpSmsError::PhoneTaken`], [`AddOtpSmsError::SmsFailed`] (the authenticator
    /// is removed again), [`AddOtpSmsError::RateLimited`] (nothing stored or sent),
    /// [`AddOtpSmsError::Unexpected`].
    async fn add_otp_sms(&self, caller: &Caller, command: AddOtpSmsCommand) -> Result<AddOtpSmsOutput, AddOtpSmsError>;
}

#[derive(Clone)]
pub struct AddOtpSmsService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn OtpSmsWriter>,
    pub sms: Arc<dyn SmsSender>,
    /// Counts sends per user and per number; over a limit, nothing is stored or sent.
    pub rate_limiter: Arc<dyn SmsRateLimiter>,
    pub ids: Arc<dyn IdGenerator>,
    pub codes: Arc<dyn CodeGenerator>,
    pub code_key: CodeKey,
    pub code_policy: CodePolicy,
    pub clock: Arc<dyn Clock>,
    pub self_service: bool,
}

#[async_trait]
impl AddOtpSms for AddOtpSmsService {
    /// Runs on a task of its own: storing, sending and taking back on a failed send must
    /// not be cut apart by a caller that goes away or by a request deadline.
    async fn add_otp_sms(&self, caller: &Caller, command: AddOtpSmsCommand) -> Result<AddOtpSmsOutput, AddOtpSmsError> {
        let (this, caller) = (self.clone(), caller.clone());
        let work = async move { this.add(&caller, command).await }.in_current_span();
        tokio::spawn(work)
            .await
            .map_err(|e| AddOtpSmsError::Unexpected(Unexpected(anyhow::Error::new(e).context("the add task failed"))))?
    }
}

impl AddOtpSmsService {
    #[tracing::instrument(
        name = "add_otp_sms",
        skip_all,
        fields(actor = %caller.user_id, user_id = %command.user, phone = %command.phone.masked(), otp_sms_id),
        err(level = "debug", Display)
    )]
    async fn add(&self, caller: &Caller, command: AddOtpSmsCommand) -> Result<AddOtpSmsOutput, AddOtpSmsError> {
        let action = match command.verification {
            Verification::SendCode => Action::ManageCredentials { self_service: self.self_service },
            Verification::ReturnCode | Verification::IsVerified => Action::SkipPhoneProof,
        };
        let user =
            authorized_user(&self.context, self.users.as_ref(), caller, &command.scope, &command.user, action).await?;
        let permit = match command.verification {
            Verification::SendCode => Some(self.rate_limiter.try_acquire(&user.id, &command.phone).await?),
            Verification::ReturnCode | Verification::IsVerified => None,
        };
        let now = self.clock.now();
        let id = OtpSmsId::new(self.ids.next_id())
            .map_err(|e| Unexpected(anyhow::Error::new(e).context("minting an id")))?;
        tracing::Span::current().record("otp_sms_id", id.as_str());
        let verified = command.verification == Verification::IsVerified;
        let code = (!verified).then(|| self.codes.generate());
        let authenticator =
            OtpSmsAuthenticator { id: id.clone(), user: user.id.clone(), phone: command.phone, verified, created: now };
        let new = NewOtpSms {
            pending_code: code.as_ref().map(|c| PendingCode::issue(self.code_key.hash(&id, c), now, &self.code_policy)),
            event: Event {
                user: user.id.clone(),
                actor: caller.user_id.clone(),
                at: now,
                kind: EventKind::OtpSmsAdded {
                    authenticator: id.clone(),
                    masked_phone: authenticator.phone.masked(),
                    verified,
                },
            },
            authenticator,
        };
        let stored = self.store.add_otp_sms(&new).await;
        if let (Err(_), Some(permit)) = (&stored, &permit) {
            self.rate_limiter.release(&user.id, &new.authenticator.phone, permit.clone()).await;
        }
        let details = stored.map_err(|e| match e {
            ports::AddOtpSmsError::UserNotFound => {
                AddOtpSmsError::Lookup(UserLookupError::Access(factors_domain::AccessRefusal::UserNotFound))
            }
            ports::AddOtpSmsError::PhoneTaken => AddOtpSmsError::PhoneTaken,
            ports::AddOtpSmsError::Unexpected(e) => AddOtpSmsError::Unexpected(e),
        })?;
        let verification_code = match (command.verification, code) {
            (Verification::SendCode, Some(code)) => {
                if let Err(e) = self.send_or_take_back(caller, &new.authenticator, &code).await {
                    if let Some(permit) = permit {
                        self.rate_limiter.release(&user.id, &new.authenticator.phone, permit).await;
                    }
                    return Err(e);
                }
                None
            }
            (_, code) => code,
        };
        Ok(AddOtpSmsOutput { details, otp_sms_id: id, verification_code })
    }

    /// Sends the code; when that fails, removes the authenticator again (with its own
    /// event), so the user can simply retry instead of meeting ALREADY_EXISTS.
    async fn send_or_take_back(
        &self,
        caller: &Caller,
        authenticator: &OtpSmsAuthenticator,
        code: &VerificationCode,
    ) -> Result<(), AddOtpSmsError> {
        let Err(send_error) = self.sms.send_code(&authenticator.phone, code, SmsPurpose::OtpSmsRegistration).await
        else {
            return Ok(());
        };
        let removal = Removal {
            user: authenticator.user.clone(),
            authenticator: authenticator.id.clone(),
            event: Event {
                user: authenticator.user.clone(),
                actor: caller.user_id.clone(),
                at: self.clock.now(),
                kind: EventKind::OtpSmsRemoved {
                    authenticator: authenticator.id.clone(),
                    masked_phone: authenticator.phone.masked(),
                },
            },
        };
        if let Err(e) = self.store.remove_otp_sms(&removal).await {
            tracing::error!(error = %e, "could not take back an authenticator whose SMS failed");
        }
        Err(AddOtpSmsError::SmsFailed(send_error.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{
        LimitScope, MockCodeGenerator, MockIdGenerator, MockOtpSmsWriter, MockSmsRateLimiter, MockSmsSender, SmsError,
        SmsPermit,
    };
    use crate::use_cases::fixtures::*;
    use factors_domain::Permission;

    fn command(verification: Verification) -> AddOtpSmsCommand {
        AddOtpSmsCommand { scope: RequestScope::default(), user: user_id("alice"), phone: phone(), verification }
    }

    fn details() -> Details {
        Details { id: user_id("alice"), created: at(0), changed: at(5), owner: org("org-a") }
    }

    fn unlimited() -> Arc<MockSmsRateLimiter> {
        let mut limiter = MockSmsRateLimiter::new();
        limiter.expect_try_acquire().returning(|_, _| Ok(SmsPermit("p".into())));
        limiter.expect_release().returning(|_, _, _| ());
        Arc::new(limiter)
    }

    fn service(store: MockOtpSmsWriter, sms: MockSmsSender) -> AddOtpSmsService {
        service_limited(store, sms, unlimited())
    }

    fn service_limited(
        store: MockOtpSmsWriter,
        sms: MockSmsSender,
        rate_limiter: Arc<MockSmsRateLimiter>,
    ) -> AddOtpSmsService {
        let mut ids = MockIdGenerator::new();
        ids.expect_next_id().return_const("123".to_owned());
        let mut codes = MockCodeGenerator::new();
        codes.expect_generate().returning(|| VerificationCode::from_number(424_242));
        AddOtpSmsService {
            context: context(),
            users: users(vec![user("alice", "org-a")]),
            store: Arc::new(store),
            sms: Arc::new(sms),
            rate_limiter,
            ids: Arc::new(ids),
            codes: Arc::new(codes),
            code_key: CodeKey::new([1u8; 32]).expect("32 bytes"),
            code_policy: CodePolicy::default(),
            clock: clock(at(5)),
            self_service: true,
        }
    }

    fn key() -> CodeKey {
        CodeKey::new([1u8; 32]).expect("32 bytes")
    }

    #[tokio::test]
    async fn by_default_the_code_is_stored_hashed_and_sent_by_sms_not_returned() {
        let mut store = MockOtpSmsWriter::new();
        store
            .expect_add_otp_sms()
            .withf(|new| {
                let expected = key().hash(&otp_id("123"), &VerificationCode::from_number(424_242));
                !new.authenticator.verified
                    && new.pending_code.as_ref().is_some_and(|p| p.hash == expected && p.expires_at == at(15))
                    && new.event.event_type() == "user.human.mfa.otp.sms.added"
            })
            .times(1)
            .returning(|_| Ok(details()));
        let mut sms = MockSmsSender::new();
        sms.expect_send_code()
            .withf(|to, code, purpose| {
                to == &phone() && code.expose() == "424242" && *purpose == SmsPurpose::OtpSmsRegistration
            })
            .times(1)
            .returning(|_, _, _| Ok(()));

        let output = service(store, sms).add_otp_sms(&caller("alice", &[]), command(Verification::SendCode)).await;

        let output = output.expect("added");
        assert_eq!((output.otp_sms_id.as_str(), output.verification_code), ("123", None));
        assert_eq!(output.details, details());
    }

    #[tokio::test]
    async fn an_admin_may_ask_for_the_code_instead_of_an_sms() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_add_otp_sms().times(1).returning(|_| Ok(details()));
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().never();

        let output = service(store, sms).add_otp_sms(&org_admin(), command(Verification::ReturnCode)).await;

        assert_eq!(output.expect("added").verification_code.map(|c| c.expose().to_owned()), Some("424242".into()));
    }

    #[tokio::test]
    async fn an_admin_may_store_the_number_as_verified_without_any_code() {
        let mut store = MockOtpSmsWriter::new();
        store
            .expect_add_otp_sms()
            .withf(|new| new.authenticator.verified && new.pending_code.is_none())
            .times(1)
            .returning(|_| Ok(details()));

        let output =
            service(store, MockSmsSender::new()).add_otp_sms(&org_admin(), command(Verification::IsVerified)).await;

        assert_eq!(output.expect("added").verification_code, None);
    }

    #[tokio::test]
    async fn a_user_may_not_skip_the_proof_on_itself() {
        for verification in [Verification::ReturnCode, Verification::IsVerified] {
            let mut store = MockOtpSmsWriter::new();
            store.expect_add_otp_sms().never();
            let self_admin = caller("alice", &[(Permission::UserWrite, None)]);

            let failure = Failure::from(
                service(store, MockSmsSender::new())
                    .add_otp_sms(&self_admin, command(verification))
                    .await
                    .expect_err("denied"),
            );

            assert_eq!(failure.kind, ErrorKind::PermissionDenied, "{verification:?}");
        }
    }

    #[tokio::test]
    async fn the_same_number_twice_is_already_exists() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_add_otp_sms().returning(|_| Err(ports::AddOtpSmsError::PhoneTaken));
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().never();

        let failure = Failure::from(
            service(store, sms)
                .add_otp_sms(&caller("alice", &[]), command(Verification::SendCode))
                .await
                .expect_err("taken"),
        );

        assert_eq!((failure.kind, failure.id), (ErrorKind::AlreadyExists, "OTPSMS-AlreadyExists"));
    }

    #[tokio::test]
    async fn when_the_sms_fails_the_authenticator_is_taken_back() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_add_otp_sms().times(1).returning(|_| Ok(details()));
        store
            .expect_remove_otp_sms()
            .withf(|removal| removal.authenticator.as_str() == "123")
            .times(1)
            .returning(|_| Ok(details()));
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().returning(|_, _, _| Err(SmsError(anyhow::anyhow!("provider down"))));

        let failure = Failure::from(
            service(store, sms)
                .add_otp_sms(&caller("alice", &[]), command(Verification::SendCode))
                .await
                .expect_err("fails"),
        );

        assert_eq!((failure.kind, failure.id), (ErrorKind::Unavailable, "SMS-SendFailed"));
    }

    #[tokio::test]
    async fn over_the_sms_limit_nothing_is_stored_or_sent_and_the_answer_says_when_to_retry() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_add_otp_sms().never();
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().never();
        let mut limiter = MockSmsRateLimiter::new();
        limiter.expect_try_acquire().withf(|user, to| user.as_str() == "alice" && to == &phone()).times(1).returning(
            |_, _| Err(RateLimited { scope: LimitScope::Phone, retry_after: std::time::Duration::from_secs(42) }),
        );

        let result = service_limited(store, sms, Arc::new(limiter))
            .add_otp_sms(&caller("alice", &[]), command(Verification::SendCode))
            .await;

        let failure = Failure::from(result.expect_err("limited"));
        assert_eq!((failure.kind, failure.id), (ErrorKind::ResourceExhausted, "SMS-RateLimitedPhone"));
        assert_eq!(failure.retry_after, Some(std::time::Duration::from_secs(42)));
    }

    #[tokio::test]
    async fn a_send_that_did_not_happen_gives_its_permit_back() {
        for (store_fails, case) in [(true, "the number was taken"), (false, "the provider failed")] {
            let mut store = MockOtpSmsWriter::new();
            store
                .expect_add_otp_sms()
                .returning(move |_| if store_fails { Err(ports::AddOtpSmsError::PhoneTaken) } else { Ok(details()) });
            store.expect_remove_otp_sms().returning(|_| Ok(details()));
            let mut sms = MockSmsSender::new();
            sms.expect_send_code().returning(|_, _, _| Err(SmsError(anyhow::anyhow!("provider down"))));
            let mut limiter = MockSmsRateLimiter::new();
            limiter.expect_try_acquire().times(1).returning(|_, _| Ok(SmsPermit("p1".into())));
            limiter.expect_release().withf(|_, _, permit| permit.0 == "p1").times(1).returning(|_, _, _| ());

            let result = service_limited(store, sms, Arc::new(limiter))
                .add_otp_sms(&caller("alice", &[]), command(Verification::SendCode))
                .await;

            assert!(result.is_err(), "{case}");
        }
    }

    #[tokio::test]
    async fn adding_without_sending_does_not_count_against_the_sms_limit() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_add_otp_sms().times(1).returning(|_| Ok(details()));
        let mut limiter = MockSmsRateLimiter::new();
        limiter.expect_try_acquire().never();

        let output = service_limited(store, MockSmsSender::new(), Arc::new(limiter))
            .add_otp_sms(&org_admin(), command(Verification::ReturnCode))
            .await;

        assert!(output.is_ok());
    }

    /// A provider that takes its time, and says when it is done.
    struct SlowSms(Arc<std::sync::atomic::AtomicBool>);

    #[async_trait]
    impl SmsSender for SlowSms {
        async fn send_code(&self, _: &PhoneNumber, _: &VerificationCode, _: SmsPurpose) -> Result<(), SmsError> {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_add_whose_caller_goes_away_still_sends_its_sms() {
        let mut store = MockOtpSmsWriter::new();
        store.expect_add_otp_sms().times(1).returning(|_| Ok(details()));
        let sent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let service = AddOtpSmsService { sms: Arc::new(SlowSms(sent.clone())), ..service(store, MockSmsSender::new()) };

        let gave_up = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            service.add_otp_sms(&caller("alice", &[]), command(Verification::SendCode)),
        )
        .await;

        assert!(gave_up.is_err(), "the caller stopped waiting");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(sent.load(std::sync::atomic::Ordering::SeqCst), "the add went on to send its SMS");
    }
}
