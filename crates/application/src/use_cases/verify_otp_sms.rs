//! VerifyOTPSMSRegistration: the user proves the phone by typing back the code.

use std::sync::Arc;

use async_trait::async_trait;
use factors_domain::{
    Caller, CheckBudget, CodeCheck, CodeKey, CodePolicy, CodeRejection, OtpSmsId, UserId, VerificationCode,
    VerificationRefusal, plan_verification,
};

use super::remove_otp_sms::otp_sms_not_found;
use super::{Ports, Rules};
use crate::code_checks::{code_checks_locked, locked_failure};
use crate::ports::{CheckCharge, Clock, SecurityMetrics, SmsPurpose, SnapshotCache, TryTaken, UserReader, UserWriter};
use crate::scope::{InstanceContext, RequestScope};
use crate::sms_guard::SmsGuard;
use crate::tasks::keep_after;
use crate::write_pattern::{Details, Reads, WriteFailure, landed, write_failure_conversions};
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
    /// What the rules refused before the code was compared: the access rules on the user
    /// as read, no such authenticator, one verified already, no code pending, a void code.
    #[error(transparent)]
    Refused(#[from] VerificationRefusal),
    /// A wrong code, counted.
    #[error(transparent)]
    Rejected(CodeRejection),
    /// The user's budget of failed code checks is spent: the code was not compared.
    #[error("the user's code checks are locked for {retry_after:?}")]
    Locked { retry_after: std::time::Duration },
    /// The lookup, a user that kept changing under every decision, or the store.
    #[error(transparent)]
    Write(#[from] WriteFailure),
}

write_failure_conversions!(VerifyOtpSmsError);

impl From<VerifyOtpSmsError> for Failure {
    fn from(error: VerifyOtpSmsError) -> Self {
        match error {
            VerifyOtpSmsError::Refused(refusal) => match refusal {
                VerificationRefusal::Access(e) => e.into(),
                VerificationRefusal::NotFound => otp_sms_not_found(),
                VerificationRefusal::AlreadyVerified => Failure::new(
                    ErrorKind::FailedPrecondition,
                    "OTPSMS-AlreadyVerified",
                    "the authenticator is verified already",
                ),
                VerificationRefusal::NoPendingCode => Failure::new(
                    ErrorKind::FailedPrecondition,
                    "OTPSMS-NoPendingCode",
                    "no code is pending for the authenticator",
                ),
                VerificationRefusal::Void(rejection) => rejected(rejection),
            },
            VerifyOtpSmsError::Rejected(rejection) => rejected(rejection),
            VerifyOtpSmsError::Locked { retry_after } => locked_failure(retry_after),
            VerifyOtpSmsError::Write(e) => e.into(),
        }
    }
}

/// The answer to a code that was compared and found wrong, or that is void.
fn rejected(rejection: CodeRejection) -> Failure {
    match rejection {
        CodeRejection::Wrong { .. } => {
            Failure::new(ErrorKind::InvalidArgument, "OTPSMS-CodeWrong", "the code is wrong")
        }
        CodeRejection::Expired => Failure::new(
            ErrorKind::InvalidArgument,
            "OTPSMS-CodeExpired",
            "the code has expired; add the authenticator again",
        ),
        CodeRejection::Exhausted => Failure::new(
            ErrorKind::FailedPrecondition,
            "OTPSMS-CodeExhausted",
            "too many wrong codes were tried; add the authenticator again",
        ),
    }
}

/// Verifies the registration of an OTP SMS authenticator.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait VerifyOtpSms: Send + Sync {
    /// # Errors
    /// [`VerifyOtpSmsError::Write`] for the scope and access rules, then
    /// [`VerifyOtpSmsError::Refused`] for what the code check
    /// ([`factors_domain::plan_verification`]) refuses; a wrong code is counted before
    /// [`VerifyOtpSmsError::Rejected`] answers; [`VerifyOtpSmsError::Locked`] when the
    /// user's budget of failed checks is spent; [`VerifyOtpSmsError::Write`] also for a user
    /// that kept changing and for the store.
    async fn verify_otp_sms(&self, caller: &Caller, command: VerifyOtpSmsCommand)
    -> Result<Details, VerifyOtpSmsError>;
}

pub struct VerifyOtpSmsService {
    pub context: Arc<InstanceContext>,
    /// Code checks always read the store, never a cache.
    pub users: Arc<dyn UserReader>,
    pub store: Arc<dyn UserWriter>,
    /// Receives the state a verification left, for later decisions.
    pub cache: Option<Arc<dyn SnapshotCache>>,
    pub code_key: CodeKey,
    pub code_policy: CodePolicy,
    pub clock: Arc<dyn Clock>,
    pub self_service: bool,
    /// Failed checks a user may make across its codes, kept in the store.
    pub check_budget: CheckBudget,
    pub metrics: Arc<dyn SecurityMetrics>,
    /// Told of every verified code, for its region's breaker.
    pub guard: Arc<SmsGuard>,
}

impl VerifyOtpSmsService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules, guard: Arc<SmsGuard>) -> Self {
        Self {
            context: rules.context.clone(),
            users: ports.users.clone(),
            store: ports.writer.clone(),
            cache: ports.cache.clone(),
            code_key: rules.code_key.clone(),
            code_policy: rules.code_policy,
            clock: ports.clock.clone(),
            self_service: rules.self_service,
            check_budget: rules.check_budget,
            metrics: ports.metrics.clone(),
            guard,
        }
    }
}

#[async_trait]
impl VerifyOtpSms for VerifyOtpSmsService {
    #[tracing::instrument(
        name = "verify_otp_sms",
        level = "debug",
        skip_all,
        fields(actor = %caller.user_id, user_id = %command.user, otp_sms_id = %command.otp_sms),
        err(level = "debug", Display)
    )]
    async fn verify_otp_sms(
        &self,
        caller: &Caller,
        command: VerifyOtpSmsCommand,
    ) -> Result<Details, VerifyOtpSmsError> {
        // Refuses callers without any user permission before anything is read; the code
        // and its authenticator are then read from the store, never from the cache.
        let mut reads =
            Reads::start(&self.context, self.users.as_ref(), None, caller, &command.scope, &command.user).await?;
        let presented = self.code_key.hash(&command.otp_sms, &command.code);
        while reads.next_turn() {
            let (snapshot, pending) = match self.users.load_with_code(&command.user, &command.otp_sms).await? {
                Some((snapshot, pending)) if reads.admits(&snapshot) => (Some(snapshot), pending),
                _ => (None, None),
            };
            let check = plan_verification(
                caller,
                &command.user,
                snapshot.as_ref(),
                &command.otp_sms,
                pending.as_ref(),
                &presented,
                self.self_service,
                &self.code_policy,
                self.clock.now(),
            )?;
            let (Some(snapshot), Some(code)) = (snapshot, pending) else { continue };
            // The outcome counts only if the guess gets one of the code's tries and a unit
            // of the user's budget, taken atomically, so concurrent guesses get no more
            // answers than sequential ones.
            let now = self.clock.now();
            let charge = CheckCharge { user: &command.user, budget: self.check_budget, now };
            let max_tries = self.code_policy.max_attempts;
            let taken = match self.store.take_code_try(&command.otp_sms, &code, max_tries, &charge).await? {
                TryTaken::Taken(taken) => taken,
                // Other guesses took the tries left, or the code was used: read again.
                TryTaken::Gone => continue,
                TryTaken::Locked { since } => {
                    let purpose = SmsPurpose::OtpSmsRegistration;
                    let user = &command.user;
                    let retry_after =
                        code_checks_locked(self.metrics.as_ref(), &self.check_budget, user, purpose, since, now);
                    return Err(VerifyOtpSmsError::Locked { retry_after });
                }
            };
            match check {
                CodeCheck::Verified(decision) => {
                    // The right code is no failure: its unit goes back.
                    self.store.forgive_code_try(&command.user, now).await?;
                    if landed(self.store.apply(&decision).await)? {
                        keep_after(self.cache.as_ref(), &snapshot, &decision);
                        if let Some(verified) = snapshot.otp_sms(&command.otp_sms) {
                            self.guard.verified(&verified.phone).await;
                        }
                        return Ok(Details::of_write(&snapshot.user, &decision.transition));
                    }
                }
                CodeCheck::Wrong { .. } => {
                    let void = self.code_policy.is_last_try(taken);
                    return Err(VerifyOtpSmsError::Rejected(CodeRejection::Wrong { void }));
                }
            }
        }
        Err(WriteFailure::Contended.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{MockUserReader, MockUserWriter};
    use crate::use_cases::fixtures::*;
    use factors_domain::{Change, OtpSmsAuthenticator, PendingCode, Permission};

    fn command(code: &str) -> VerifyOtpSmsCommand {
        VerifyOtpSmsCommand {
            scope: RequestScope::default(),
            user: user_id("alice"),
            otp_sms: otp_id("a1"),
            code: VerificationCode::parse(code).expect("six digits"),
        }
    }

    fn key() -> CodeKey {
        CodeKey::new([3u8; 32]).expect("32 bytes")
    }

    fn unverified() -> OtpSmsAuthenticator {
        OtpSmsAuthenticator { verified: false, ..authenticator("a1", "alice") }
    }

    /// The code 123456 sent for a1, with `failed_attempts` wrong tries so far.
    fn pending(failed_attempts: u32) -> PendingCode {
        let hash = key().hash(&otp_id("a1"), &VerificationCode::parse("123456").expect("digits"));
        PendingCode { failed_attempts, ..PendingCode::issue(hash, at(5), &CodePolicy::default()) }
    }

    /// A reader holding alice with `held`, and `code` pending for a1.
    fn reading(held: Vec<OtpSmsAuthenticator>, code: Option<PendingCode>) -> Arc<MockUserReader> {
        let mut users = MockUserReader::new();
        let snapshot = alice_holding(held);
        users.expect_load().never();
        users.expect_load_with_code().returning(move |_, _| Ok(Some((snapshot.clone(), code.clone()))));
        Arc::new(users)
    }

    fn service(users: Arc<MockUserReader>, store: MockUserWriter) -> VerifyOtpSmsService {
        VerifyOtpSmsService {
            context: context(),
            users,
            store: Arc::new(store),
            cache: None,
            code_key: key(),
            code_policy: CodePolicy::default(),
            clock: clock(at(7)),
            self_service: true,
            check_budget: CheckBudget::default(),
            metrics: no_metrics(),
            guard: unguarded(),
        }
    }

    #[tokio::test]
    async fn the_right_code_verifies_the_authenticator_on_the_version_read() {
        let alice = alice_holding(vec![unverified()]);
        let version = alice.user.version();
        let mut store = MockUserWriter::new();
        store
            .expect_apply()
            .withf(move |decision| {
                decision.transition.from == version
                    && decision.change == Change::VerifyOtpSms { authenticator: otp_id("a1") }
                    && decision.event.event_type() == "user.human.mfa.otp.sms.verified"
            })
            .times(1)
            .returning(|_| Ok(()));
        store
            .expect_take_code_try()
            .withf(|_, _, _, charge| charge.user.as_str() == "alice" && charge.now == at(7))
            .times(1)
            .returning(|_, _, _, _| Ok(TryTaken::Taken(1)));
        store
            .expect_forgive_code_try()
            .withf(|user, charged_at| user.as_str() == "alice" && *charged_at == at(7))
            .times(1)
            .returning(|_, _| Ok(()));

        let details = service(reading(vec![unverified()], Some(pending(0))), store)
            .verify_otp_sms(&caller("alice", &[]), command("123456"))
            .await
            .expect("verified");

        assert_eq!(details.changed, at(7), "and the right code's unit went back");
    }

    #[tokio::test]
    async fn a_user_whose_budget_is_spent_gets_no_comparison_and_is_told_when_to_retry() {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
        store.expect_forgive_code_try().never();
        store.expect_take_code_try().times(1).returning(|_, _, _, _| Ok(TryTaken::Locked { since: at(1) }));
        let mut metrics = crate::ports::MockSecurityMetrics::new();
        metrics.expect_code_checks_locked().withf(|p| *p == SmsPurpose::OtpSmsRegistration).times(1).return_const(());
        let service = VerifyOtpSmsService {
            metrics: Arc::new(metrics),
            ..service(reading(vec![unverified()], Some(pending(0))), store)
        };

        let failure = Failure::from(
            service.verify_otp_sms(&caller("alice", &[]), command("123456")).await.expect_err("locked, right or not"),
        );

        assert_eq!((failure.kind, failure.id), (ErrorKind::ResourceExhausted, "USER-CodeChecksLocked"));
        // The window started at minute 1 and lasts 15: at minute 7, 9 minutes remain.
        assert_eq!(failure.retry_after_seconds(), Some(9 * 60));
    }

    #[tokio::test]
    async fn a_wrong_code_answers_once_it_got_a_try_and_the_fifth_voids_the_code() {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
        store
            .expect_take_code_try()
            .withf(|otp, code, max, _| otp.as_str() == "a1" && code == &pending(4) && *max == 5)
            .times(1)
            .returning(|_, _, _, _| Ok(TryTaken::Taken(5)));
        store.expect_forgive_code_try().never();

        let result = service(reading(vec![unverified()], Some(pending(4))), store)
            .verify_otp_sms(&caller("alice", &[]), command("654321"))
            .await;

        assert!(
            matches!(result, Err(VerifyOtpSmsError::Rejected(CodeRejection::Wrong { void: true }))),
            "the fifth wrong try voids the code: {result:?}"
        );
    }

    #[tokio::test]
    async fn a_guess_that_finds_no_try_left_is_never_compared() {
        let mut users = MockUserReader::new();
        let mut reads = mockall::Sequence::new();
        for failed in [1, 5] {
            let snapshot = alice_holding(vec![unverified()]);
            users
                .expect_load_with_code()
                .times(1)
                .in_sequence(&mut reads)
                .returning(move |_, _| Ok(Some((snapshot.clone(), Some(pending(failed))))));
        }
        let mut store = MockUserWriter::new();
        // Concurrent guesses took the last tries between the read and this one's turn.
        store.expect_take_code_try().times(1).returning(|_, _, _, _| Ok(TryTaken::Gone));
        store.expect_apply().never();

        let result = service(Arc::new(users), store).verify_otp_sms(&caller("alice", &[]), command("123456")).await;

        assert!(
            matches!(result, Err(VerifyOtpSmsError::Refused(VerificationRefusal::Void(CodeRejection::Exhausted)))),
            "even the right code: {result:?}"
        );
    }

    #[tokio::test]
    async fn each_outcome_of_the_check_has_its_own_answer_and_writes_nothing() {
        let expired = PendingCode { expires_at: at(7), ..pending(0) };
        let cases: [(Vec<OtpSmsAuthenticator>, Option<PendingCode>, ErrorKind, &str); 5] = [
            (vec![unverified()], Some(expired), ErrorKind::InvalidArgument, "OTPSMS-CodeExpired"),
            (vec![unverified()], Some(pending(5)), ErrorKind::FailedPrecondition, "OTPSMS-CodeExhausted"),
            (vec![], None, ErrorKind::NotFound, "OTPSMS-NotFound"),
            (vec![authenticator("a1", "alice")], None, ErrorKind::FailedPrecondition, "OTPSMS-AlreadyVerified"),
            (vec![unverified()], None, ErrorKind::FailedPrecondition, "OTPSMS-NoPendingCode"),
        ];
        for (held, code, kind, id) in cases {
            let mut store = MockUserWriter::new();
            store.expect_apply().never();
            store.expect_take_code_try().never();

            let failure = Failure::from(
                service(reading(held, code), store)
                    .verify_otp_sms(&caller("alice", &[]), command("123456"))
                    .await
                    .expect_err("refused"),
            );

            assert_eq!((failure.kind, failure.id), (kind, id));
        }
    }

    #[tokio::test]
    async fn a_read_only_caller_cannot_verify_for_someone_else() {
        let mut store = MockUserWriter::new();
        store.expect_apply().never();
        let reader = caller("reader", &[(Permission::UserRead, Some("org-a"))]);

        let failure = Failure::from(
            service(reading(vec![unverified()], Some(pending(0))), store)
                .verify_otp_sms(&reader, command("123456"))
                .await
                .expect_err("denied"),
        );

        assert_eq!((failure.kind, failure.id), (ErrorKind::PermissionDenied, "AUTHZ-PermissionDenied"));
    }
}
