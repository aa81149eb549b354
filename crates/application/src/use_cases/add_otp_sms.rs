//! AddOTPSMSAuthenticator: register a phone as a second factor, to be proven by a code.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{
    Caller, CodeKey, CodePolicy, CountryNotAllowed, Decision, NewOtpSms, OtpSmsId, PhoneNumber, ProtectionRefusal,
    RegistrationRefusal, UserId, UserSnapshot, Verification, VerificationCode, plan_registration, removal,
};

use super::login_policy::PoliciesInForce;
use super::{Ports, Rules};
use crate::ports::{
    Clock, CodeGenerator, CodeSms, IdGenerator, RateLimited, SmsPermit, SmsPurpose, SmsRateLimiter, SmsSender,
    SnapshotCache, Unexpected, UserReader, UserWriter,
};
use crate::scope::{InstanceContext, RequestScope};
use crate::sms_guard::{CountryPaused, SmsGuard};
use crate::tasks::{keep_after, on_own_task};
use crate::write_pattern::{Details, Reads, WriteFailure, landed, write_failure_conversions};
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
    /// The caller enrolling a phone of its own while it holds a verified authenticator,
    /// without the step-up the login policy asks.
    #[error(transparent)]
    Protection(#[from] ProtectionRefusal),
    #[error("the user already has an OTP SMS authenticator on this number")]
    PhoneTaken,
    /// The number's region is not one codes go to (`sms.countries`).
    #[error(transparent)]
    CountryNotAllowed(#[from] CountryNotAllowed),
    /// The region's breaker is open: too few of its codes were verified lately.
    #[error(transparent)]
    CountryPaused(#[from] CountryPaused),
    #[error("the SMS could not be sent")]
    SmsFailed(#[source] anyhow::Error),
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The lookup, a user that kept changing under every decision, or the store.
    #[error(transparent)]
    Write(#[from] WriteFailure),
}

write_failure_conversions!(AddOtpSmsError);

impl From<RegistrationRefusal> for AddOtpSmsError {
    fn from(refusal: RegistrationRefusal) -> Self {
        match refusal {
            RegistrationRefusal::Access(e) => Self::Write(e.into()),
            RegistrationRefusal::Protection(e) => Self::Protection(e),
            RegistrationRefusal::PhoneTaken => Self::PhoneTaken,
        }
    }
}

impl From<AddOtpSmsError> for Failure {
    fn from(error: AddOtpSmsError) -> Self {
        match error {
            AddOtpSmsError::Protection(e) => e.into(),
            AddOtpSmsError::PhoneTaken => Failure::new(
                ErrorKind::AlreadyExists,
                "OTPSMS-AlreadyExists",
                "the user already has an OTP SMS authenticator on this number",
            ),
            AddOtpSmsError::CountryNotAllowed(refused) => refused.into(),
            AddOtpSmsError::CountryPaused(paused) => paused.into(),
            AddOtpSmsError::SmsFailed(cause) => Failure {
                cause: Some(cause),
                ..Failure::new(
                    ErrorKind::Unavailable,
                    "SMS-SendFailed",
                    "the verification SMS could not be sent; the authenticator was not added",
                )
            },
            AddOtpSmsError::RateLimited(limited) => limited.into(),
            AddOtpSmsError::Write(e) => e.into(),
        }
    }
}

/// Adds an OTP SMS authenticator to a user.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait AddOtpSms: Send + Sync {
    /// # Errors
    /// [`AddOtpSmsError::Write`] for the scope and access rules (`returnCode` and
    /// `isVerified` need write permission and are refused to a caller acting on itself),
    /// [`AddOtpSmsError::Protection`] for a caller enrolling a phone of its own while it
    /// holds a verified authenticator, without the step-up the login policy asks,
    /// [`AddOtpSmsError::CountryNotAllowed`] (before anything is read, stored or sent),
    /// [`AddOtpSmsError::PhoneTaken`], [`AddOtpSmsError::SmsFailed`] (the authenticator
    /// is removed again), [`AddOtpSmsError::RateLimited`] (nothing stored or sent),
    /// and [`AddOtpSmsError::Write`] also for a user that kept changing and for the store.
    async fn add_otp_sms(&self, caller: &Caller, command: AddOtpSmsCommand) -> Result<AddOtpSmsOutput, AddOtpSmsError>;
}

#[derive(Clone)]
pub struct AddOtpSmsService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn UserWriter>,
    /// When given, the first decision is made on the cached snapshot.
    pub cache: Option<Arc<dyn SnapshotCache>>,
    pub sms: Arc<dyn SmsSender>,
    /// Counts sends per user and per number; over a limit, nothing is stored or sent.
    pub rate_limiter: Arc<dyn SmsRateLimiter>,
    pub ids: Arc<dyn IdGenerator>,
    pub codes: Arc<dyn CodeGenerator>,
    pub code_key: CodeKey,
    pub code_policy: CodePolicy,
    pub clock: Arc<dyn Clock>,
    pub self_service: bool,
    /// The login policies in force, for a caller enrolling a phone of its own.
    pub login_policies: Arc<PoliciesInForce>,
    /// The regions codes go to (an authenticator no code could reach is refused, whether
    /// or not this add sends one) and their breakers, asked before a code goes out and
    /// told when it went.
    pub guard: Arc<SmsGuard>,
}

impl AddOtpSmsService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules, login_policies: Arc<PoliciesInForce>, guard: Arc<SmsGuard>) -> Self {
        Self {
            context: rules.context.clone(),
            users: ports.users.clone(),
            store: ports.writer.clone(),
            cache: ports.cache.clone(),
            sms: ports.sms.clone(),
            rate_limiter: ports.rate_limiter.clone(),
            ids: ports.ids.clone(),
            codes: ports.codes.clone(),
            code_key: rules.code_key.clone(),
            code_policy: rules.code_policy,
            clock: ports.clock.clone(),
            self_service: rules.self_service,
            login_policies,
            guard,
        }
    }
}

#[async_trait]
impl AddOtpSms for AddOtpSmsService {
    /// Runs on a task of its own: storing, sending and taking back on a failed send must
    /// not be cut apart by a caller that goes away or by a request deadline.
    async fn add_otp_sms(&self, caller: &Caller, command: AddOtpSmsCommand) -> Result<AddOtpSmsOutput, AddOtpSmsError> {
        let (this, caller) = (self.clone(), caller.clone());
        on_own_task(async move { this.add(&caller, command).await }).await
    }
}

impl AddOtpSmsService {
    #[tracing::instrument(
        name = "add_otp_sms",
        level = "debug",
        skip_all,
        fields(actor = %caller.user_id, user_id = %command.user, otp_sms_id),
        err(level = "debug", Display)
    )]
    async fn add(&self, caller: &Caller, command: AddOtpSmsCommand) -> Result<AddOtpSmsOutput, AddOtpSmsError> {
        self.guard.allows_region(&command.phone)?;
        if command.verification == Verification::SendCode {
            self.guard.may_send(&command.phone).await?;
        }
        let cache = self.cache.as_deref();
        let mut reads =
            Reads::start(&self.context, self.users.as_ref(), cache, caller, &command.scope, &command.user).await?;
        let id = OtpSmsId::new(self.ids.next_id())
            .map_err(|e| Unexpected(anyhow::Error::new(e).context("minting an id")))?;
        tracing::Span::current().record("otp_sms_id", id.as_str());
        let code = (command.verification != Verification::IsVerified).then(|| self.codes.generate());
        let new = NewOtpSms {
            id: id.clone(),
            phone: command.phone.clone(),
            verification: command.verification,
            code: code.as_ref().map(|c| self.code_key.hash(&id, c)),
        };

        let mut permit = None;
        let (snapshot, decision) = match self.store_new(caller, &command, &new, &mut reads, &mut permit).await {
            Ok(stored) => stored,
            Err(e) => {
                self.give_back(&command, permit).await;
                return Err(e);
            }
        };
        let details = Details::of_write(&snapshot.user, &decision.transition);
        let Some(after) = snapshot.after(&decision) else { return Err(no_user_after_add()) };
        keep_after(self.cache.as_ref(), &snapshot, &decision);
        let verification_code = match (command.verification, code) {
            (Verification::SendCode, Some(code)) => {
                if let Err(e) = self.send_or_take_back(caller, after, &command.phone, &id, &code).await {
                    self.give_back(&command, permit).await;
                    return Err(e);
                }
                self.guard.sent(&command.phone).await;
                None
            }
            (_, code) => code,
        };
        Ok(AddOtpSmsOutput { details, otp_sms_id: id, verification_code })
    }

    /// Decides on the user as read and writes the new authenticator; takes an SMS permit
    /// once the rules allow the add, before anything is stored, and keeps it over a lost
    /// race. Returns the state decided on and the decision applied.
    async fn store_new(
        &self,
        caller: &Caller,
        command: &AddOtpSmsCommand,
        new: &NewOtpSms,
        reads: &mut Reads<'_>,
        permit: &mut Option<SmsPermit>,
    ) -> Result<(UserSnapshot, Decision), AddOtpSmsError> {
        while let Some(read) = reads.next().await? {
            // The login policy matters only to a caller enrolling a phone of its own, and is
            // then read afresh: unlike a removal's, an add's write is not guarded by the
            // policy's version, so a policy kept in this process (and changed through
            // another replica since) must not decide it.
            let own = read.snapshot.as_ref().filter(|s| caller.bears_id_of(&s.user));
            let (login, policy_fresh) = self.login_policies.for_decision(own, false).await?;
            let planned = plan_registration(
                caller,
                &command.user,
                read.snapshot.as_ref(),
                new.clone(),
                self.self_service,
                &login.policy,
                &self.code_policy,
                self.clock.now(),
            );
            let Some((snapshot, decision)) = read.decided(planned, policy_fresh)? else { continue };
            if permit.is_none() && command.verification == Verification::SendCode {
                *permit = Some(self.rate_limiter.try_acquire(&snapshot.user.id, &command.phone).await?);
            }
            if landed(self.store.apply(&decision).await)? {
                return Ok((snapshot, decision));
            }
        }
        Err(WriteFailure::Contended.into())
    }

    /// Gives back a permit whose SMS was not sent.
    async fn give_back(&self, command: &AddOtpSmsCommand, permit: Option<SmsPermit>) {
        if let Some(permit) = permit {
            self.rate_limiter.release(&command.user, &command.phone, permit).await;
        }
    }

    /// Sends the code; when that fails, removes the authenticator again (with its own
    /// event), so the user can simply retry instead of meeting ALREADY_EXISTS.
    async fn send_or_take_back(
        &self,
        caller: &Caller,
        after: UserSnapshot,
        phone: &PhoneNumber,
        id: &OtpSmsId,
        code: &VerificationCode,
    ) -> Result<(), AddOtpSmsError> {
        let sms = CodeSms {
            to: phone.clone(),
            code: code.clone(),
            purpose: SmsPurpose::OtpSmsRegistration,
            user: after.user.id.clone(),
        };
        let Err(send_error) = self.sms.send_code(&sms).await else {
            return Ok(());
        };
        let user = after.user.id.clone();
        if let Err(e) = self.take_back(caller, after, id).await {
            tracing::error!(
                error = %e,
                user_id = %user,
                otp_sms_id = %id,
                "could not take back an authenticator whose SMS failed"
            );
        }
        Err(AddOtpSmsError::SmsFailed(send_error.into()))
    }

    /// Removes authenticator `id`, starting from `after`, the state the add left.
    async fn take_back(&self, caller: &Caller, after: UserSnapshot, id: &OtpSmsId) -> Result<(), Unexpected> {
        let mut reads = Reads::continuing(self.users.as_ref(), after);
        while let Some(read) = reads.next().await? {
            // Gone with its user, or removed by someone else meanwhile: nothing to take back.
            let Some(snapshot) = read.snapshot else { return Ok(()) };
            let Some(decision) = removal(&snapshot, id, caller, self.clock.now()) else { return Ok(()) };
            if landed(self.store.apply(&decision).await)? {
                keep_after(self.cache.as_ref(), &snapshot, &decision);
                return Ok(());
            }
        }
        Err(Unexpected(anyhow::anyhow!("the user kept changing under every try to take the authenticator back")))
    }
}

/// An add that was applied always leaves its user standing; this is the answer if not.
fn no_user_after_add() -> AddOtpSmsError {
    AddOtpSmsError::Write(WriteFailure::Unexpected(Unexpected(anyhow::anyhow!("an applied add left no user"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::StoredPolicies;
    use crate::ports::{
        LimitScope, MockCodeGenerator, MockIdGenerator, MockSmsRateLimiter, MockSmsSender, MockUserWriter, SmsError,
        WriteError,
    };
    use crate::use_cases::fixtures::*;
    use factors_domain::{Change, LoginPolicy, PendingCode, Permission};

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

    fn service(store: MockUserWriter, sms: MockSmsSender) -> AddOtpSmsService {
        service_limited(store, sms, unlimited())
    }

    fn service_limited(
        store: MockUserWriter,
        sms: MockSmsSender,
        rate_limiter: Arc<MockSmsRateLimiter>,
    ) -> AddOtpSmsService {
        let mut ids = MockIdGenerator::new();
        ids.expect_next_id().return_const("123".to_owned());
        let mut codes = MockCodeGenerator::new();
        codes.expect_generate().returning(|| VerificationCode::from_number(424_242));
        AddOtpSmsService {
            context: context(),
            users: users(vec![alice_holding(vec![])]),
            store: Arc::new(store),
            cache: None,
            sms: Arc::new(sms),
            rate_limiter,
            ids: Arc::new(ids),
            codes: Arc::new(codes),
            code_key: key(),
            code_policy: CodePolicy::default(),
            clock: clock(at(5)),
            self_service: true,
            login_policies: policies_in_force(StoredPolicies::default()),
            guard: unguarded(),
        }
    }

    fn key() -> CodeKey {
        CodeKey::new([1u8; 32]).expect("32 bytes")
    }

    fn adds(decision: &Decision) -> bool {
        matches!(&decision.change, Change::AddOtpSms { .. })
    }

    fn removes_123(decision: &Decision) -> bool {
        matches!(&decision.change, Change::RemoveOtpSms { authenticator, guard: None, notice: None } if *authenticator == otp_id("123"))
    }

    #[tokio::test]
    async fn by_default_the_code_is_stored_hashed_and_sent_by_sms_not_returned() {
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(|decision| {
                let expected = key().hash(&otp_id("123"), &VerificationCode::from_number(424_242));
                matches!(&decision.change, Change::AddOtpSms { authenticator, pending_code: Some(PendingCode { hash, expires_at, .. }) }
                    if !authenticator.verified && *hash == expected && *expires_at == at(15))
                    && decision.event.event_type() == "user.human.mfa.otp.sms.added"
            })
            .times(1)
            .returning(|_| Ok(()));
        let mut sms = MockSmsSender::new();
        sms.expect_send_code()
            .withf(|sms| {
                sms.to == phone()
                    && sms.code.expose() == "424242"
                    && sms.purpose == SmsPurpose::OtpSmsRegistration
                    && sms.user.as_str() == "alice"
            })
            .times(1)
            .returning(|_| Ok(()));

        let output = service(store, sms).add_otp_sms(&caller("alice", &[]), command(Verification::SendCode)).await;

        let output = output.expect("added");
        assert_eq!((output.otp_sms_id.as_str(), output.verification_code), ("123", None));
        assert_eq!(output.details, details());
    }

    #[tokio::test]
    async fn an_admin_may_ask_for_the_code_instead_of_an_sms() {
        let mut store = MockUserWriter::new();
        store.expect_apply().times(1).returning(|_| Ok(()));
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().never();

        let output = service(store, sms).add_otp_sms(&org_admin(), command(Verification::ReturnCode)).await;

        assert_eq!(output.expect("added").verification_code.map(|c| c.expose().to_owned()), Some("424242".into()));
    }

    #[tokio::test]
    async fn an_admin_may_store_the_number_as_verified_without_any_code() {
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(|decision| {
                matches!(&decision.change, Change::AddOtpSms { authenticator, pending_code: None } if authenticator.verified)
            })
            .times(1)
            .returning(|_| Ok(()));

        let output =
            service(store, MockSmsSender::new()).add_otp_sms(&org_admin(), command(Verification::IsVerified)).await;

        assert_eq!(output.expect("added").verification_code, None);
    }

    #[tokio::test]
    async fn a_user_may_not_skip_the_proof_on_itself() {
        for verification in [Verification::ReturnCode, Verification::IsVerified] {
            let mut store = MockUserWriter::new();
            store.expect_apply().never();
            let self_admin = caller("alice", &[(Permission::UserWrite, None)]);

            let failure = Failure::from(
                service(store, MockSmsSender::new())
                    .add_otp_sms(&self_admin, command(verification))
                    .await
                    .expect_err("denied"),
            );

            assert_eq!(
                (failure.kind, failure.id),
                (ErrorKind::PermissionDenied, "AUTHZ-PermissionDenied"),
                "{verification:?}"
            );
        }
    }

    /// A service holding alice with one verified authenticator, that must store, send and
    /// count nothing: the add is refused.
    fn refusing() -> AddOtpSmsService {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().never();
        let mut limiter = MockSmsRateLimiter::new();
        limiter.expect_try_acquire().never();
        AddOtpSmsService {
            users: users(vec![alice_holding(vec![authenticator("a1", "alice")])]),
            ..service_limited(store, sms, Arc::new(limiter))
        }
    }

    #[tokio::test]
    async fn a_number_of_a_region_codes_do_not_go_to_is_refused_before_anything_is_read_stored_or_sent() {
        let only_germany = factors_domain::SmsCountries::new(&["DE".into()], &[]).expect("valid");
        let service = AddOtpSmsService { users: no_lookup(), guard: guarded(only_germany), ..refusing() };
        // Whether or not this add would send a code: no code could ever reach the number.
        for verification in [Verification::SendCode, Verification::ReturnCode, Verification::IsVerified] {
            let command = AddOtpSmsCommand { verification, ..another_phone() };
            let error = service.add_otp_sms(&org_admin(), command).await.expect_err("refused");
            let failure = Failure::from(error);
            assert_eq!((failure.kind, failure.id), (ErrorKind::InvalidArgument, "SMS-CountryNotAllowed"));
            assert!(failure.message.contains("CH"), "{}", failure.message);
        }
    }

    /// Alice adding another number than a1's.
    fn another_phone() -> AddOtpSmsCommand {
        AddOtpSmsCommand {
            phone: PhoneNumber::parse("+41791234568").expect("valid"),
            ..command(Verification::SendCode)
        }
    }

    #[tokio::test]
    async fn the_same_number_twice_is_already_exists_and_takes_no_sms_permit() {
        let service = refusing();

        let failure = Failure::from(
            service.add_otp_sms(&caller("alice", &[]), command(Verification::SendCode)).await.expect_err("taken"),
        );

        assert_eq!((failure.kind, failure.id), (ErrorKind::AlreadyExists, "OTPSMS-AlreadyExists"));
    }

    #[tokio::test]
    async fn enrolling_another_phone_of_ones_own_needs_the_step_up_and_refused_sends_and_stores_nothing() {
        let step_up = LoginPolicy::new(false, chrono::TimeDelta::minutes(5), false).expect("valid");
        let service = AddOtpSmsService { login_policies: policies_in_force(instance_default(step_up)), ..refusing() };

        let failure =
            Failure::from(service.add_otp_sms(&caller("alice", &[]), another_phone()).await.expect_err("step-up"));

        assert_eq!((failure.kind, failure.id), (ErrorKind::PermissionDenied, "AUTHZ-StepUpRequired"));
    }

    #[tokio::test]
    async fn an_add_of_ones_own_is_decided_on_the_policy_as_stored_not_as_this_process_kept_it() {
        // This process kept the policy before another replica turned the step-up on.
        let mut policies = crate::ports::MockPolicyStore::new();
        let mut reads = mockall::Sequence::new();
        policies.expect_load_policies().times(1).in_sequence(&mut reads).returning(|_| Ok(StoredPolicies::default()));
        let step_up = LoginPolicy::new(false, chrono::TimeDelta::minutes(5), false).expect("valid");
        policies
            .expect_load_policies()
            .times(1)
            .in_sequence(&mut reads)
            .returning(move |_| Ok(instance_default(step_up)));
        let in_force = Arc::new(PoliciesInForce::new(Arc::new(policies)));
        in_force.kept_or_read(&org("org-a")).await.expect("kept");
        let service = AddOtpSmsService { login_policies: in_force, ..refusing() };

        let failure =
            Failure::from(service.add_otp_sms(&caller("alice", &[]), another_phone()).await.expect_err("step-up"));

        assert_eq!(failure.id, "AUTHZ-StepUpRequired");
    }

    #[tokio::test]
    async fn when_the_sms_fails_the_authenticator_is_taken_back_from_the_state_the_add_left() {
        let alice = alice_holding(vec![]);
        let added_version = alice.user.sequence + 1;
        let mut store = MockUserWriter::new();
        store.expect_apply().withf(adds).times(1).returning(|_| Ok(()));
        store
            .expect_apply()
            .withf(move |decision| removes_123(decision) && decision.transition.from.sequence == added_version)
            .times(1)
            .returning(|_| Ok(()));
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().returning(|_| Err(SmsError(anyhow::anyhow!("provider down"))));

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
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
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

    /// Arranges what the store answers.
    type StoreArrangement = fn(&mut MockUserWriter);

    #[tokio::test]
    async fn a_send_that_did_not_happen_gives_its_permit_back() {
        let cases: [(StoreArrangement, &str, ErrorKind); 2] = [
            (
                |store| {
                    store
                        .expect_apply()
                        .returning(|_| Err(WriteError::Unexpected(Unexpected(anyhow::anyhow!("down")))));
                },
                "nothing was stored",
                ErrorKind::Internal,
            ),
            (
                |store| {
                    store.expect_apply().returning(|_| Ok(()));
                },
                "the provider failed",
                ErrorKind::Unavailable,
            ),
        ];
        for (arrange, case, kind) in cases {
            let mut store = MockUserWriter::new();
            arrange(&mut store);
            let mut sms = MockSmsSender::new();
            sms.expect_send_code().returning(|_| Err(SmsError(anyhow::anyhow!("provider down"))));
            let mut limiter = MockSmsRateLimiter::new();
            limiter.expect_try_acquire().times(1).returning(|_, _| Ok(SmsPermit("p1".into())));
            limiter.expect_release().withf(|_, _, permit| permit.0 == "p1").times(1).returning(|_, _, _| ());

            let result = service_limited(store, sms, Arc::new(limiter))
                .add_otp_sms(&caller("alice", &[]), command(Verification::SendCode))
                .await;

            assert_eq!(result.map_err(|e| Failure::from(e).kind).err(), Some(kind), "{case}");
        }
    }

    #[tokio::test]
    async fn a_lost_race_keeps_the_one_permit_taken_and_decides_again() {
        let mut store = MockUserWriter::new();
        let mut writes = mockall::Sequence::new();
        store.expect_apply().times(1).in_sequence(&mut writes).returning(|_| Err(WriteError::Conflict));
        store.expect_apply().times(1).in_sequence(&mut writes).returning(|_| Ok(()));
        let mut sms = MockSmsSender::new();
        sms.expect_send_code().times(1).returning(|_| Ok(()));
        let mut limiter = MockSmsRateLimiter::new();
        limiter.expect_try_acquire().times(1).returning(|_, _| Ok(SmsPermit("p1".into())));
        limiter.expect_release().never();

        let output = service_limited(store, sms, Arc::new(limiter))
            .add_otp_sms(&caller("alice", &[]), command(Verification::SendCode))
            .await;

        assert_eq!(output.expect("added").otp_sms_id.as_str(), "123");
    }

    #[tokio::test]
    async fn adding_without_sending_does_not_count_against_the_sms_limit() {
        let mut store = MockUserWriter::new();
        store.expect_apply().times(1).returning(|_| Ok(()));
        let mut limiter = MockSmsRateLimiter::new();
        limiter.expect_try_acquire().never();

        let output = service_limited(store, MockSmsSender::new(), Arc::new(limiter))
            .add_otp_sms(&org_admin(), command(Verification::ReturnCode))
            .await;

        assert_eq!(output.expect("added").otp_sms_id.as_str(), "123");
    }

    /// A provider that takes its time, and says when it is done.
    struct SlowSms(Arc<std::sync::atomic::AtomicBool>);

    #[async_trait]
    impl SmsSender for SlowSms {
        async fn send_code(&self, _: &CodeSms) -> Result<(), SmsError> {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        }

        async fn send_notice(&self, _: &crate::ports::NoticeSms) -> Result<(), SmsError> {
            unreachable!("adding an authenticator sends no notice")
        }
    }

    #[tokio::test]
    async fn an_add_whose_caller_goes_away_still_sends_its_sms() {
        let mut store = MockUserWriter::new();
        store.expect_apply().times(1).returning(|_| Ok(()));
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
