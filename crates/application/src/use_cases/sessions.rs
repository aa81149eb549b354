//! The sessions of `zitadel.session.v2.SessionService` that sign a user in with an OTP SMS
//! authenticator: CreateSession, SetSession, GetSession and DeleteSession.
//!
//! A session collects checked factors: the user (`checks.user`), then the OTP SMS code
//! (`checks.otpSms`) sent by a challenge (`challenges.otpSms`). Every successful write
//! hands out a new session token and the previous one stops working.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use factors_domain::{
    Caller, ChallengeRequest, CheckBudget, CodeKey, CodePolicy, CodeRejection, CountryNotAllowed, NewSession, OrgId,
    Permission, PhoneNumber, Session, SessionDecision, SessionEventKind, SessionId, SessionPlan, SessionRefusal,
    SessionRequest, SessionToken, UserId, UserSnapshot, VerificationCode, latest_expiry, plan_session,
    plan_termination, redacted,
};

use super::{Ports, Rules};
use crate::code_checks::{code_checks_locked, locked_failure};
use crate::ports::{
    CheckCharge, Clock, CodeGenerator, CodeSms, IdGenerator, RateLimited, SecurityMetrics, SessionRead, SessionStore,
    SmsPurpose, SmsRateLimiter, SmsSender, TokenGenerator, TryTaken, Unexpected, UserReader,
};
use crate::scope::InstanceContext;
use crate::sms_guard::{CountryPaused, SmsGuard};
use crate::tasks::on_own_task;
use crate::write_pattern::{MAX_DECISIONS, landed};
use crate::{ErrorKind, Failure};

#[cfg(feature = "mocks")]
use mockall::automock;

/// Which user `checks.user` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCheck {
    UserId(UserId),
    /// Answers INVALID_ARGUMENT until users have login names.
    LoginName(String),
}

/// What a CreateSession or SetSession asks for. Delivery refuses the checks and challenges
/// factors does not support with [`unsupported`] before a command is made. Its `Debug`
/// output leaves the code out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SessionChange {
    /// `checks.user`.
    pub check_user: Option<UserCheck>,
    /// `checks.otpSms.code`, as typed.
    pub check_otp_sms: Option<String>,
    /// `challenges.otpSms`: `Some(return_code)`.
    pub challenge_otp_sms: Option<bool>,
    /// `metadata`: set each key; an empty value removes the key.
    pub metadata: BTreeMap<String, Vec<u8>>,
    /// `lifetime`: the session expires this long after this request.
    pub lifetime: Option<TimeDelta>,
}

/// SetSession and the session it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSessionCommand {
    pub session_id: SessionId,
    pub change: SessionChange,
}

/// GetSession and DeleteSession: the session, and its current token when the caller
/// presents one instead of holding `session.read` / `session.delete`. Its `Debug` output
/// leaves the token out.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionAccess {
    pub session_id: SessionId,
    pub session_token: Option<String>,
}

/// `zitadel.object.v2.Details` of a session write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDetails {
    /// The session's sequence after the write (its number of events).
    pub sequence: u64,
    pub change_date: DateTime<Utc>,
    pub creation_date: DateTime<Utc>,
    /// The instance: sessions belong to it, not to an organization.
    pub resource_owner: String,
}

/// The answer of CreateSession and SetSession. Its `Debug` output leaves the token out
/// (the code's own is redacted).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionWritten {
    pub details: SessionDetails,
    pub session_id: SessionId,
    /// The new token; the previous one no longer works.
    pub session_token: String,
    /// `challenges.otpSms`: the code, when `returnCode` asked for it.
    pub otp_sms_code: Option<VerificationCode>,
}

impl fmt::Debug for SessionChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { check_user, check_otp_sms, challenge_otp_sms, metadata, lifetime } = self;
        let mut out = f.debug_struct("SessionChange");
        debug_change(&mut out, check_user, check_otp_sms.as_ref(), *challenge_otp_sms, metadata, *lifetime).finish()
    }
}

/// Adds the fields of a session change to its `Debug` output, as the use case takes it
/// ([`SessionChange`]) or as delivery reads it
/// ([`RawSessionChange`](crate::input::RawSessionChange)): the typed code shows only
/// whether it is there.
pub(crate) fn debug_change<'s, 'a, 'b: 'a>(
    out: &'s mut fmt::DebugStruct<'a, 'b>,
    check_user: &dyn fmt::Debug,
    check_otp_sms: Option<&String>,
    challenge_otp_sms: Option<bool>,
    metadata: &BTreeMap<String, Vec<u8>>,
    lifetime: Option<TimeDelta>,
) -> &'s mut fmt::DebugStruct<'a, 'b> {
    out.field("check_user", check_user)
        .field("check_otp_sms", &redacted(check_otp_sms))
        .field("challenge_otp_sms", &challenge_otp_sms)
        .field("metadata", metadata)
        .field("lifetime", &lifetime)
}

impl fmt::Debug for SessionAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionAccess")
            .field("session_id", &self.session_id)
            .field("session_token", &redacted(self.session_token.as_ref()))
            .finish()
    }
}

impl fmt::Debug for SessionWritten {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWritten")
            .field("details", &self.details)
            .field("session_id", &self.session_id)
            .field("session_token", &"<redacted>")
            .field("otp_sms_code", &self.otp_sms_code)
            .finish()
    }
}

/// The checked user of a session (`factors.user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFactor {
    pub id: UserId,
    pub organization_id: OrgId,
    pub verified_at: DateTime<Utc>,
}

/// A session as GetSession shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: SessionId,
    pub creation_date: DateTime<Utc>,
    pub change_date: DateTime<Utc>,
    pub sequence: u64,
    pub user: Option<UserFactor>,
    /// `factors.otpSms.verifiedAt`.
    pub otp_sms_verified_at: Option<DateTime<Utc>>,
    pub metadata: BTreeMap<String, Vec<u8>>,
    pub expiration_date: Option<DateTime<Utc>>,
}

/// Why a session RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The caller lacks `session.write` (Create/Set), or `session.read` / `session.delete`
    /// and the session's current token (Get/Delete).
    #[error("the caller may not do this to sessions")]
    PermissionDenied,
    #[error("the session does not exist")]
    NotFound,
    #[error("the session has expired")]
    Expired,
    #[error("checks.user names a user that does not exist")]
    UserNotFound,
    #[error("the user is not active")]
    UserInactive,
    #[error("the session is checked for another user")]
    UserChanged,
    #[error("checks.user.loginName is not supported: users have no login names yet")]
    LoginNameUnsupported,
    #[error("no user is checked on the session")]
    UserNotChecked,
    #[error("the user has no verified OTP SMS authenticator")]
    NoOtpSms,
    #[error("no OTP SMS challenge is pending on the session")]
    NoChallenge,
    #[error("the code is not six digits")]
    CodeFormat,
    /// A wrong code: the try counts; `void` says it was the last one allowed.
    #[error("the code is wrong")]
    CodeWrong { void: bool },
    #[error("the code has expired")]
    CodeExpired,
    #[error("too many wrong codes were tried")]
    CodeExhausted,
    /// The user's budget of failed code checks is spent: the code was not compared.
    #[error("the user's code checks are locked for {retry_after:?}")]
    Locked { retry_after: std::time::Duration },
    #[error("lifetime must not be negative, nor end the session after 9999-12-31T23:59:59Z")]
    LifetimeInvalid,
    #[error("metadata keys must be 1 to 200 characters, none of them a control character")]
    MetadataInvalid,
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The authenticator's number is of a region codes do not go to (`sms.countries`).
    #[error(transparent)]
    CountryNotAllowed(#[from] CountryNotAllowed),
    #[error(transparent)]
    CountryPaused(#[from] CountryPaused),
    #[error("the SMS could not be sent")]
    SmsFailed(#[source] anyhow::Error),
    #[error("the session kept changing under every decision")]
    Contended,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<SessionError> for Failure {
    fn from(error: SessionError) -> Self {
        use ErrorKind::{FailedPrecondition, InvalidArgument, NotFound, PermissionDenied};
        match error {
            SessionError::PermissionDenied => {
                Failure::new(PermissionDenied, "SESSION-PermissionDenied", "the caller may not do this to the session")
            }
            SessionError::NotFound => Failure::new(NotFound, "SESSION-NotFound", "session not found"),
            SessionError::Expired => Failure::new(FailedPrecondition, "SESSION-Expired", "the session has expired"),
            SessionError::UserNotFound => Failure::user_not_found(),
            SessionError::UserInactive => {
                Failure::new(FailedPrecondition, "SESSION-UserInactive", "the user is not active")
            }
            SessionError::UserChanged => Failure::new(
                FailedPrecondition,
                "SESSION-UserChanged",
                "the session is checked for another user; a session's user cannot change",
            ),
            SessionError::LoginNameUnsupported => Failure::new(
                InvalidArgument,
                "SESSION-LoginNameUnsupported",
                "checks.user.loginName is not supported: users have no login names; use checks.user.userId",
            ),
            SessionError::UserNotChecked => Failure::new(
                FailedPrecondition,
                "SESSION-UserNotChecked",
                "the session has no checked user: check the user first (checks.user)",
            ),
            SessionError::NoOtpSms => {
                Failure::new(FailedPrecondition, "SESSION-NoOtpSms", "the user has no verified OTP SMS authenticator")
            }
            SessionError::NoChallenge => Failure::new(
                FailedPrecondition,
                "SESSION-NoOtpSmsChallenge",
                "no OTP SMS challenge is pending: request one first (challenges.otpSms)",
            ),
            SessionError::CodeFormat => {
                Failure::new(InvalidArgument, "SESSION-CodeInvalid", "checks.otpSms.code must be six digits")
            }
            SessionError::CodeWrong { void: false } => {
                Failure::new(InvalidArgument, "SESSION-CodeWrong", "the code is wrong")
            }
            SessionError::CodeWrong { void: true } => Failure::new(
                InvalidArgument,
                "SESSION-CodeWrong",
                "the code is wrong; that was the last try, request a new challenge",
            ),
            SessionError::CodeExpired => {
                Failure::new(InvalidArgument, "SESSION-CodeExpired", "the code has expired; request a new challenge")
            }
            SessionError::CodeExhausted => Failure::new(
                InvalidArgument,
                "SESSION-CodeExhausted",
                "too many wrong codes were tried; request a new challenge",
            ),
            SessionError::Locked { retry_after } => locked_failure(retry_after),
            SessionError::LifetimeInvalid => Failure::new(
                InvalidArgument,
                "SESSION-LifetimeInvalid",
                "lifetime must not be negative, nor end the session after 9999-12-31T23:59:59Z",
            ),
            SessionError::MetadataInvalid => Failure::new(
                InvalidArgument,
                "SESSION-MetadataInvalid",
                "metadata keys must be 1 to 200 characters, none of them a control character",
            ),
            SessionError::RateLimited(limited) => limited.into(),
            SessionError::CountryNotAllowed(refused) => refused.into(),
            SessionError::CountryPaused(paused) => paused.into(),
            SessionError::SmsFailed(cause) => Failure {
                cause: Some(cause),
                ..Failure::new(
                    ErrorKind::Unavailable,
                    "SMS-SendFailed",
                    "the SMS with the code could not be sent; the session is unchanged",
                )
            },
            SessionError::Contended => {
                Failure::new(ErrorKind::Aborted, "SESSION-Contended", "the session changed concurrently; try again")
            }
            SessionError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// A check or challenge of ZITADEL's session API that factors does not support: INVALID_ARGUMENT
/// naming the field (`checks.password`, `challenges.webAuthN`, ...).
pub fn unsupported(field: &'static str) -> Failure {
    Failure::new(
        ErrorKind::InvalidArgument,
        "SESSION-Unsupported",
        format!("{field} is not supported by factors (supported: checks.user, checks.otpSms, challenges.otpSms)"),
    )
}

/// The session RPCs.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait Sessions: Send + Sync {
    /// CreateSession; needs `session.write`.
    ///
    /// # Errors
    /// [`SessionError`]: permission, the user check, the challenge and the SMS limits.
    async fn create_session(&self, caller: &Caller, change: SessionChange) -> Result<SessionWritten, SessionError>;

    /// SetSession; needs `session.write`.
    ///
    /// # Errors
    /// [`SessionError`]: permission, a missing or expired session, the checks, the
    /// challenge and the SMS limits.
    async fn set_session(&self, caller: &Caller, command: SetSessionCommand) -> Result<SessionWritten, SessionError>;

    /// GetSession; needs `session.read` or the session's current token.
    ///
    /// # Errors
    /// [`SessionError::PermissionDenied`], [`SessionError::NotFound`], [`SessionError::Unexpected`].
    async fn get_session(&self, caller: &Caller, access: SessionAccess) -> Result<SessionView, SessionError>;

    /// DeleteSession; needs `session.delete` or the session's current token.
    ///
    /// # Errors
    /// [`SessionError::PermissionDenied`], [`SessionError::NotFound`], [`SessionError::Unexpected`].
    async fn delete_session(&self, caller: &Caller, access: SessionAccess) -> Result<SessionDetails, SessionError>;
}

impl From<SessionRefusal> for SessionError {
    fn from(refusal: SessionRefusal) -> Self {
        match refusal {
            SessionRefusal::Expired => Self::Expired,
            SessionRefusal::LifetimeTooLong => Self::LifetimeInvalid,
            SessionRefusal::UserNotFound => Self::UserNotFound,
            SessionRefusal::UserInactive => Self::UserInactive,
            SessionRefusal::UserChanged => Self::UserChanged,
            SessionRefusal::UserNotChecked => Self::UserNotChecked,
            SessionRefusal::NoOtpSms => Self::NoOtpSms,
            SessionRefusal::NoChallenge => Self::NoChallenge,
            SessionRefusal::Void(CodeRejection::Expired) => Self::CodeExpired,
            SessionRefusal::Void(CodeRejection::Exhausted) => Self::CodeExhausted,
            SessionRefusal::Void(CodeRejection::Wrong { void }) => Self::CodeWrong { void },
        }
    }
}

/// The longest metadata key accepted.
const MAX_METADATA_KEY: usize = 200;

/// The session use cases.
#[derive(Clone)]
pub struct SessionsService {
    pub context: Arc<InstanceContext>,
    pub users: Arc<dyn UserReader>,
    pub sessions: Arc<dyn SessionStore>,
    pub sms: Arc<dyn SmsSender>,
    /// Counts sign-in SMS per user and per number, with the registration SMS.
    pub rate_limiter: Arc<dyn SmsRateLimiter>,
    pub ids: Arc<dyn IdGenerator>,
    pub codes: Arc<dyn CodeGenerator>,
    pub tokens: Arc<dyn TokenGenerator>,
    pub code_key: CodeKey,
    pub clock: Arc<dyn Clock>,
    /// `policy.revoke_sessions_on_removal`: a removed authenticator's checks stop counting.
    pub revoke_on_removal: bool,
    /// Failed checks a user may make across its codes, kept in the store.
    pub check_budget: CheckBudget,
    pub metrics: Arc<dyn SecurityMetrics>,
    /// The regions sign-in codes go to by SMS, and their breakers: asked before a code
    /// goes out, told when it went and when it was verified.
    pub guard: Arc<SmsGuard>,
}

impl SessionsService {
    /// The use case on `ports` under `rules`.
    pub fn new(ports: &Ports, rules: &Rules, guard: Arc<SmsGuard>) -> Self {
        Self {
            context: rules.context.clone(),
            users: ports.users.clone(),
            sessions: ports.sessions.clone(),
            sms: ports.sms.clone(),
            rate_limiter: ports.rate_limiter.clone(),
            ids: ports.ids.clone(),
            codes: ports.codes.clone(),
            tokens: ports.tokens.clone(),
            code_key: rules.code_key.clone(),
            clock: ports.clock.clone(),
            revoke_on_removal: rules.revoke_sessions_on_removal,
            check_budget: rules.check_budget,
            metrics: ports.metrics.clone(),
            guard,
        }
    }
}

/// What taking a try of the pending challenge came to, for the decision that follows.
enum Turn {
    /// Nothing to take (no challenge, or one the rules refuse as it stands).
    Untaken,
    /// A try was taken and charged to this user's budget at this time.
    Charged(UserId, DateTime<Utc>),
    /// The challenge moved meanwhile: read again.
    Moved,
}

/// A request checked, with the code and token it hands out.
struct Prepared {
    request: SessionRequest,
    token: SessionToken,
    code: Option<VerificationCode>,
    return_code: bool,
}

#[async_trait]
impl Sessions for SessionsService {
    async fn create_session(&self, caller: &Caller, change: SessionChange) -> Result<SessionWritten, SessionError> {
        let (this, caller) = (self.clone(), caller.clone());
        on_own_task(async move { this.create(&caller, change).await }).await
    }

    async fn set_session(&self, caller: &Caller, command: SetSessionCommand) -> Result<SessionWritten, SessionError> {
        let (this, caller) = (self.clone(), caller.clone());
        on_own_task(async move { this.set(&caller, command).await }).await
    }

    #[tracing::instrument(name = "get_session", level = "debug", skip_all, fields(session_id = %access.session_id), err(level = "debug", Display))]
    async fn get_session(&self, caller: &Caller, access: SessionAccess) -> Result<SessionView, SessionError> {
        let read = self.accessible(caller, &access, Permission::SessionRead).await?;
        let session = read.session;
        Ok(SessionView {
            otp_sms_verified_at: session.otp_sms_verified_at(read.user.as_ref(), self.revoke_on_removal),
            user: session.user.as_ref().map(|u| UserFactor {
                id: u.id.clone(),
                organization_id: u.org.clone(),
                verified_at: u.checked_at,
            }),
            id: session.id,
            creation_date: session.created,
            change_date: session.changed,
            sequence: session.sequence,
            metadata: session.metadata,
            expiration_date: session.expires_at,
        })
    }

    #[tracing::instrument(name = "delete_session", level = "debug", skip_all, fields(session_id = %access.session_id), err(level = "debug", Display))]
    async fn delete_session(&self, caller: &Caller, access: SessionAccess) -> Result<SessionDetails, SessionError> {
        for _ in 0..MAX_DECISIONS {
            // Read (again, after a lost race): a token a concurrent write replaced no longer
            // ends the session.
            let read = self.accessible(caller, &access, Permission::SessionDelete).await?;
            let termination = plan_termination(&read.session, caller, self.clock.now());
            if landed(self.sessions.end_session(&termination).await)? {
                let to = termination.to();
                return Ok(self.details(to.sequence, to.changed, read.session.created));
            }
        }
        Err(SessionError::Contended)
    }
}

impl SessionsService {
    #[tracing::instrument(name = "create_session", level = "debug", skip_all, fields(actor = %caller.user_id, session_id), err(level = "debug", Display))]
    async fn create(&self, caller: &Caller, change: SessionChange) -> Result<SessionWritten, SessionError> {
        may_write(caller)?;
        let prepared = self.prepare(change)?;
        let new = NewSession {
            id: SessionId::new(self.ids.next_id())
                .map_err(|e| Unexpected(anyhow::Error::new(e).context("minting a session id")))?,
        };
        tracing::Span::current().record("session_id", new.id.as_str());
        let mut sent_to = None;
        for _ in 0..MAX_DECISIONS {
            let user = match &prepared.request.check_user {
                Some(id) => self.users.load(id).await?,
                None => None,
            };
            let plan = self.plan(Err(&new), user.as_ref(), &prepared, caller)?;
            // A new session has no challenge, so a code check on it is refused as such by the
            // rules; it never gets as far as a wrong code.
            let SessionPlan::Write(decision) = plan else { return Err(SessionError::NoChallenge) };
            if let Some(written) = self.write(&decision, &prepared, &mut sent_to).await? {
                return Ok(written);
            }
        }
        Err(SessionError::Contended)
    }

    #[tracing::instrument(name = "set_session", level = "debug", skip_all, fields(actor = %caller.user_id, session_id = %command.session_id), err(level = "debug", Display))]
    async fn set(&self, caller: &Caller, command: SetSessionCommand) -> Result<SessionWritten, SessionError> {
        may_write(caller)?;
        let prepared = self.prepare(command.change)?;
        let mut sent_to = None;
        for _ in 0..MAX_DECISIONS {
            let mut read = self.sessions.load_session(&command.session_id).await?.ok_or(SessionError::NotFound)?;
            let charged = match prepared.request.check_code {
                Some(_) => match self.take_try(&mut read).await? {
                    Turn::Moved => continue,
                    Turn::Charged(user, at) => Some((user, at)),
                    Turn::Untaken => None,
                },
                None => None,
            };
            let user = match (&prepared.request.check_user, read.user) {
                (Some(checked), Some(user)) if &user.user.id == checked => Some(user),
                (Some(checked), _) => self.users.load(checked).await?,
                (None, user) => user,
            };
            let plan = self.plan(Ok(&read.session), user.as_ref(), &prepared, caller);
            // Only a wrong code is a failed check: a right one, or one the rules refused
            // before comparing it, gives its unit back.
            if let Some((user, at)) = charged.filter(|_| !matches!(plan, Ok(SessionPlan::WrongCode { .. }))) {
                self.sessions.forgive_sign_in_try(&user, at).await?;
            }
            match plan? {
                SessionPlan::WrongCode { void } => return Err(SessionError::CodeWrong { void }),
                SessionPlan::Write(decision) => {
                    if let Some(written) = self.write(&decision, &prepared, &mut sent_to).await? {
                        self.tell_the_guard_of_a_checked_code(&decision, user.as_ref()).await;
                        return Ok(written);
                    }
                }
            }
        }
        Err(SessionError::Contended)
    }

    /// A sign-in code checked by `decision` was verified: its region's breaker hears of it.
    async fn tell_the_guard_of_a_checked_code(&self, decision: &SessionDecision, user: Option<&UserSnapshot>) {
        for event in &decision.events {
            if let SessionEventKind::OtpSmsChecked { authenticator } = &event.kind
                && let Some(checked) = user.and_then(|u| u.otp_sms(authenticator))
            {
                self.guard.verified(&checked.phone).await;
            }
        }
    }

    /// What the rules decide on `session` as read (or the new one) and its `user` as read,
    /// for `prepared`, under the sign-in code policy, now.
    fn plan(
        &self,
        session: Result<&Session, &NewSession>,
        user: Option<&UserSnapshot>,
        prepared: &Prepared,
        caller: &Caller,
    ) -> Result<SessionPlan, SessionRefusal> {
        let now = self.clock.now();
        plan_session(session, user, &prepared.request, &self.code_key, &CodePolicy::SIGN_IN, caller, now)
    }

    /// Takes a try of the challenge `read` holds, charged to the budget of the session's
    /// user, before its code is compared, and notes it on `read`. A challenge that is
    /// expired or exhausted as read takes no try: the rules refuse it as it stands.
    ///
    /// # Errors
    /// [`SessionError::Locked`] when the user's budget of failed checks is spent.
    async fn take_try(&self, read: &mut SessionRead) -> Result<Turn, SessionError> {
        let policy = CodePolicy::SIGN_IN;
        let now = self.clock.now();
        let Some(user) = read.session.user.as_ref().map(|u| u.id.clone()) else { return Ok(Turn::Untaken) };
        let Some(challenge) = read.session.challenge.as_mut() else { return Ok(Turn::Untaken) };
        if !challenge.code.is_open(now, &policy) {
            return Ok(Turn::Untaken);
        }
        let charge = CheckCharge { user: &user, budget: self.check_budget, now };
        match self.sessions.take_sign_in_try(&read.session.id, &challenge.code, policy.max_attempts, &charge).await? {
            TryTaken::Taken(taken) => {
                // The rules compare against the tries taken before this one.
                challenge.code.failed_attempts = taken.saturating_sub(1);
                Ok(Turn::Charged(user, now))
            }
            TryTaken::Gone => Ok(Turn::Moved),
            TryTaken::Locked { since } => {
                let metrics = self.metrics.as_ref();
                let retry_after =
                    code_checks_locked(metrics, &self.check_budget, &user, SmsPurpose::SignIn, since, now);
                Err(SessionError::Locked { retry_after })
            }
        }
    }

    /// Checks the request's input, and draws the token and the code it hands out.
    fn prepare(&self, change: SessionChange) -> Result<Prepared, SessionError> {
        let check_user = match change.check_user {
            Some(UserCheck::UserId(id)) => Some(id),
            Some(UserCheck::LoginName(_)) => return Err(SessionError::LoginNameUnsupported),
            None => None,
        };
        let check_code = change
            .check_otp_sms
            .map(|typed| VerificationCode::parse(&typed).map_err(|_| SessionError::CodeFormat))
            .transpose()?;
        // Refused before anything is read or compared (the rules refuse an expiry past the
        // last timestamp too, but only after a code check, whose outcome must not be told
        // by a refusal that uses nothing up).
        let too_late = |l: TimeDelta| self.clock.now().checked_add_signed(l).is_none_or(|e| e > latest_expiry());
        if change.lifetime.is_some_and(|l| l < TimeDelta::zero() || too_late(l)) {
            return Err(SessionError::LifetimeInvalid);
        }
        // A control character (NUL above all) has no place in a key, and PostgreSQL's jsonb
        // cannot hold a NUL at all: refused on every store alike.
        let key_invalid =
            |k: &String| k.is_empty() || k.chars().count() > MAX_METADATA_KEY || k.chars().any(char::is_control);
        if change.metadata.keys().any(key_invalid) {
            return Err(SessionError::MetadataInvalid);
        }
        let code = change.challenge_otp_sms.map(|_| self.codes.generate());
        let return_code = change.challenge_otp_sms.unwrap_or(false);
        let token = self.tokens.generate();
        let request = SessionRequest {
            check_user,
            check_code,
            challenge: code.clone().map(|code| ChallengeRequest { code, return_code }),
            metadata: change.metadata,
            lifetime: change.lifetime,
            token: token.hash(),
        };
        Ok(Prepared { request, token, code, return_code })
    }

    /// Sends the challenge's SMS (once per number over the retries) and applies `decision`:
    /// the answer, or `None` when the session or its user moved and the caller must decide
    /// again. The SMS goes out before the write, so a failed send leaves the session (and
    /// the token the client holds) unchanged.
    async fn write(
        &self,
        decision: &SessionDecision,
        prepared: &Prepared,
        sent_to: &mut Option<PhoneNumber>,
    ) -> Result<Option<SessionWritten>, SessionError> {
        if let (Some(to), Some(code), Some(held)) = (&decision.sms, &prepared.code, &decision.holds)
            && sent_to.as_ref() != Some(to)
        {
            // Before the limiter counts it and before anything is written.
            self.guard.allows_region(to)?;
            self.guard.may_send(to).await?;
            let permit = self.rate_limiter.try_acquire(&held.id, to).await?;
            let sms =
                CodeSms { to: to.clone(), code: code.clone(), purpose: SmsPurpose::SignIn, user: held.id.clone() };
            if let Err(e) = self.sms.send_code(&sms).await {
                self.rate_limiter.release(&held.id, to, permit).await;
                return Err(SessionError::SmsFailed(e.into()));
            }
            self.guard.sent(to).await;
            *sent_to = Some(to.clone());
        }
        if !landed(self.sessions.apply_session(decision).await)? {
            return Ok(None);
        }
        let after = &decision.after;
        Ok(Some(SessionWritten {
            details: self.details(after.sequence, after.changed, after.created),
            session_id: after.id.clone(),
            session_token: prepared.token.expose().to_owned(),
            otp_sms_code: prepared.code.clone().filter(|_| prepared.return_code && decision.sms.is_none()),
        }))
    }

    /// The session of `access` when the caller holds `permission` instance-wide or presents
    /// its current token. A caller with neither learns nothing, not even whether it exists.
    async fn accessible(
        &self,
        caller: &Caller,
        access: &SessionAccess,
        permission: Permission,
    ) -> Result<SessionRead, SessionError> {
        let privileged = caller.has_instance_wide(permission);
        if !privileged && access.session_token.is_none() {
            return Err(SessionError::PermissionDenied);
        }
        let read = self.sessions.load_session(&access.session_id).await?;
        match read {
            Some(read) if privileged => Ok(read),
            Some(read)
                if access
                    .session_token
                    .as_ref()
                    .is_some_and(|t| read.session.token.admits(&SessionToken::new(t.as_str()))) =>
            {
                Ok(read)
            }
            None if privileged => Err(SessionError::NotFound),
            _ => Err(SessionError::PermissionDenied),
        }
    }

    fn details(&self, sequence: u64, change_date: DateTime<Utc>, creation_date: DateTime<Utc>) -> SessionDetails {
        SessionDetails { sequence, change_date, creation_date, resource_owner: self.context.id.to_string() }
    }
}

/// CreateSession and SetSession need `session.write`, instance-wide.
fn may_write(caller: &Caller) -> Result<(), SessionError> {
    if caller.has_instance_wide(Permission::SessionWrite) { Ok(()) } else { Err(SessionError::PermissionDenied) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{
        MockCodeGenerator, MockIdGenerator, MockSessionStore, MockSmsRateLimiter, MockSmsSender, MockTokenGenerator,
        SmsError, SmsPermit, WriteError,
    };
    use crate::use_cases::fixtures::*;

    fn login_ui() -> Caller {
        caller("login-ui", &[(Permission::SessionWrite, None), (Permission::SessionRead, None)])
    }

    fn code() -> VerificationCode {
        VerificationCode::parse("424242").expect("six digits")
    }

    struct Parts {
        sessions: MockSessionStore,
        sms: MockSmsSender,
        limiter: MockSmsRateLimiter,
        users: Vec<UserSnapshot>,
        revoke_on_removal: bool,
        guard: Arc<SmsGuard>,
    }

    impl Parts {
        fn new() -> Self {
            Self {
                sessions: MockSessionStore::new(),
                sms: MockSmsSender::new(),
                limiter: MockSmsRateLimiter::new(),
                users: vec![alice_holding(vec![authenticator("a1", "alice")])],
                revoke_on_removal: false,
                guard: unguarded(),
            }
        }

        fn service(self) -> SessionsService {
            let mut ids = MockIdGenerator::new();
            ids.expect_next_id().returning(|| "s1".to_owned());
            let mut codes = MockCodeGenerator::new();
            codes.expect_generate().returning(code);
            let mut tokens = MockTokenGenerator::new();
            tokens.expect_generate().returning(|| SessionToken::new("new-token"));
            SessionsService {
                context: context(),
                users: users(self.users),
                sessions: Arc::new(self.sessions),
                sms: Arc::new(self.sms),
                rate_limiter: Arc::new(self.limiter),
                ids: Arc::new(ids),
                codes: Arc::new(codes),
                tokens: Arc::new(tokens),
                code_key: CodeKey::new([3u8; 32]).expect("32 bytes"),
                clock: clock(at(10)),
                revoke_on_removal: self.revoke_on_removal,
                check_budget: CheckBudget::default(),
                metrics: no_metrics(),
                guard: self.guard,
            }
        }
    }

    fn sign_in(return_code: bool) -> SessionChange {
        SessionChange {
            check_user: Some(UserCheck::UserId(user_id("alice"))),
            challenge_otp_sms: Some(return_code),
            ..SessionChange::default()
        }
    }

    /// Alice's session `s1` with a challenge for a1 (code 424242) as the service wrote it.
    async fn challenged() -> Session {
        let mut parts = Parts::new();
        let written = Arc::new(std::sync::Mutex::new(None));
        let keep = written.clone();
        parts.sessions.expect_apply_session().returning(move |d| {
            *keep.lock().expect("lock") = Some(d.after.clone());
            Ok(())
        });
        parts.service().create_session(&login_ui(), sign_in(true)).await.expect("created");
        written.lock().expect("lock").clone().expect("written")
    }

    #[tokio::test]
    async fn a_sign_in_challenge_is_sent_by_sms_under_the_limits_before_it_is_stored() {
        let mut parts = Parts::new();
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (sent, stored) = (order.clone(), order.clone());
        parts.limiter.expect_try_acquire().times(1).returning(|_, _| Ok(SmsPermit("p".into())));
        parts.sms.expect_send_code().times(1).returning(move |sms| {
            assert_eq!((sms.purpose, sms.user.as_str(), sms.code.expose()), (SmsPurpose::SignIn, "alice", "424242"));
            sent.lock().expect("lock").push("sent");
            Ok(())
        });
        parts.sessions.expect_apply_session().times(1).returning(move |decision| {
            assert_eq!(decision.from, None);
            assert!(decision.holds.as_ref().is_some_and(|h| h.id.as_str() == "alice"));
            stored.lock().expect("lock").push("stored");
            Ok(())
        });

        let written = parts.service().create_session(&login_ui(), sign_in(false)).await.expect("created");

        assert_eq!(*order.lock().expect("lock"), ["sent", "stored"]);
        assert_eq!((written.session_id.as_str(), written.session_token.as_str()), ("s1", "new-token"));
        assert_eq!(written.otp_sms_code, None, "sent, not returned");
        assert_eq!(written.details.resource_owner, "inst");
        assert_eq!(written.details.sequence, 4);
    }

    #[tokio::test]
    async fn return_code_answers_the_code_and_sends_nothing() {
        let mut parts = Parts::new();
        parts.sms.expect_send_code().never();
        parts.limiter.expect_try_acquire().never();
        parts.sessions.expect_apply_session().times(1).returning(|_| Ok(()));

        let written = parts.service().create_session(&login_ui(), sign_in(true)).await.expect("created");

        assert_eq!(written.otp_sms_code, Some(code()));
    }

    #[tokio::test]
    async fn a_sign_in_code_sent_counts_for_its_region_and_a_paused_region_gets_no_more() {
        let rule = factors_domain::BreakerRule {
            threshold: 1.0,
            min_sends: 1,
            window: TimeDelta::hours(1),
            cool_down: TimeDelta::minutes(10),
            probes: 1,
        };
        let settings = crate::sms_guard::GuardSettings {
            countries: factors_domain::SmsCountries::default(),
            budgets: factors_domain::SmsBudgets::OFF,
            breaker: Some((rule, crate::sms_guard::BreakerMode::Enforce)),
        };
        let mut events = crate::ports::MockPolicyStore::new();
        events
            .expect_record_breaker()
            .withf(|e| {
                let opened = (e.region.as_str(), e.change, e.sent, e.verified);
                opened == ("CH", factors_domain::BreakerChange::Opened, 1, 0)
            })
            .times(1)
            .returning(|_| Ok(()));
        events.expect_last_hand_closing().returning(|_| Ok(None));
        let guard = Arc::new(SmsGuard::new(settings, Arc::new(events), "test#1".into(), clock(at(10)), no_metrics()));
        let mut parts = Parts::new();
        parts.limiter.expect_try_acquire().times(1).returning(|_, _| Ok(SmsPermit("p".into())));
        parts.sms.expect_send_code().times(1).returning(|_| Ok(()));
        parts.sessions.expect_apply_session().times(1).returning(|_| Ok(()));
        let service = SessionsService { guard, ..parts.service() };

        service.create_session(&login_ui(), sign_in(false)).await.expect("the first code goes");
        // One sent, none verified, and every one must be: the region pauses.
        let error = service.create_session(&login_ui(), sign_in(false)).await.expect_err("paused");

        let failure = Failure::from(error);
        assert_eq!((failure.kind, failure.id), (ErrorKind::Unavailable, "SMS-CountryPaused"));
        assert_eq!(failure.retry_after_seconds(), Some(600));
    }

    #[tokio::test]
    async fn a_challenge_to_a_region_codes_do_not_go_to_counts_sends_and_stores_nothing() {
        let mut parts = Parts::new();
        parts.guard = guarded(factors_domain::SmsCountries::new(&[], &["CH".into()]).expect("valid"));
        parts.limiter.expect_try_acquire().never();
        parts.sms.expect_send_code().never();
        parts.sessions.expect_apply_session().never();

        let error = parts.service().create_session(&login_ui(), sign_in(false)).await.expect_err("refused");

        let failure = Failure::from(error);
        assert_eq!((failure.kind, failure.id), (ErrorKind::InvalidArgument, "SMS-CountryNotAllowed"));
        assert!(!failure.message.contains("79123"), "no number in: {}", failure.message);
    }

    #[tokio::test]
    async fn a_failed_send_stores_nothing_and_gives_the_permit_back() {
        let mut parts = Parts::new();
        parts.limiter.expect_try_acquire().returning(|_, _| Ok(SmsPermit("p".into())));
        parts.limiter.expect_release().times(1).returning(|_, _, _| ());
        parts.sms.expect_send_code().returning(|_| Err(SmsError(anyhow::anyhow!("provider down"))));
        parts.sessions.expect_apply_session().never();

        let error = parts.service().create_session(&login_ui(), sign_in(false)).await.expect_err("failed");

        assert_eq!(Failure::from(error).id, "SMS-SendFailed");
    }

    #[tokio::test]
    async fn every_typed_code_takes_a_try_first_the_right_one_checks_the_factor() {
        let session = challenged().await;
        for (typed, expected) in [("424242", None), ("000000", Some("SESSION-CodeWrong"))] {
            let mut parts = Parts::new();
            let alice = parts.users[0].clone();
            let read = SessionRead { session: session.clone(), user: Some(alice) };
            parts.sessions.expect_load_session().returning(move |_| Ok(Some(read.clone())));
            parts.sessions.expect_take_sign_in_try().times(1).returning(|_, code, max, charge| {
                assert_eq!((code.failed_attempts, max), (0, 5), "the try is taken on the code as read");
                assert_eq!(charge.user.as_str(), "alice", "charged to the session's user");
                Ok(TryTaken::Taken(1))
            });
            // Only the right code's unit goes back.
            let forgiven = if expected.is_none() { 1 } else { 0 };
            parts.sessions.expect_forgive_sign_in_try().times(forgiven).returning(|_, _| Ok(()));
            if expected.is_none() {
                parts.sessions.expect_apply_session().times(1).returning(|d| {
                    assert!(d.after.otp_sms.is_some() && d.after.challenge.is_none());
                    Ok(())
                });
            } else {
                parts.sessions.expect_apply_session().never();
            }
            let command = SetSessionCommand {
                session_id: session.id.clone(),
                change: SessionChange { check_otp_sms: Some(typed.to_owned()), ..SessionChange::default() },
            };
            let answer = parts.service().set_session(&login_ui(), command).await;
            assert_eq!(answer.map(|_| ()).map_err(|e| Failure::from(e).id), expected.map_or(Ok(()), Err), "{typed}");
        }
    }

    #[tokio::test]
    async fn a_check_that_loses_a_race_to_a_removal_reads_again_and_finds_no_challenge() {
        let session = challenged().await;
        let mut parts = Parts::new();
        let before = SessionRead { session: session.clone(), user: Some(parts.users[0].clone()) };
        let mut after_removal = before.clone();
        after_removal.session.challenge = None;
        if let Some(user) = after_removal.user.as_mut() {
            user.otp_sms.clear();
            user.user.sequence += 1;
        }
        let mut reads = vec![after_removal, before];
        parts.sessions.expect_load_session().times(2).returning(move |_| Ok(reads.pop()));
        parts.sessions.expect_take_sign_in_try().times(1).returning(|_, _, _, _| Ok(TryTaken::Taken(1)));
        parts.sessions.expect_forgive_sign_in_try().times(1).returning(|_, _| Ok(()));
        parts.sessions.expect_apply_session().times(1).returning(|_| Err(WriteError::Conflict));
        let command = SetSessionCommand {
            session_id: session.id.clone(),
            change: SessionChange { check_otp_sms: Some("424242".to_owned()), ..SessionChange::default() },
        };

        let error = parts.service().set_session(&login_ui(), command).await.expect_err("refused");

        assert_eq!(Failure::from(error).id, "SESSION-NoOtpSmsChallenge");
    }

    #[tokio::test]
    async fn a_guess_that_finds_no_try_left_is_never_compared() {
        let session = challenged().await;
        let mut parts = Parts::new();
        let open = SessionRead { session: session.clone(), user: Some(parts.users[0].clone()) };
        let mut exhausted = open.clone();
        if let Some(challenge) = exhausted.session.challenge.as_mut() {
            challenge.code.failed_attempts = CodePolicy::SIGN_IN.max_attempts;
        }
        let mut reads = vec![exhausted, open];
        parts.sessions.expect_load_session().times(2).returning(move |_| Ok(reads.pop()));
        // Concurrent guesses took the last try between the read and this one's turn.
        parts.sessions.expect_take_sign_in_try().times(1).returning(|_, _, _, _| Ok(TryTaken::Gone));
        parts.sessions.expect_apply_session().never();
        let command = SetSessionCommand {
            session_id: session.id.clone(),
            change: SessionChange { check_otp_sms: Some("424242".to_owned()), ..SessionChange::default() },
        };

        let error = parts.service().set_session(&login_ui(), command).await.expect_err("refused");

        assert_eq!(Failure::from(error).id, "SESSION-CodeExhausted", "even the right code");
    }

    #[tokio::test]
    async fn a_user_whose_budget_is_spent_gets_no_comparison_and_no_write() {
        let session = challenged().await;
        let mut parts = Parts::new();
        let read = SessionRead { session: session.clone(), user: Some(parts.users[0].clone()) };
        parts.sessions.expect_load_session().returning(move |_| Ok(Some(read.clone())));
        parts.sessions.expect_take_sign_in_try().times(1).returning(|_, _, _, _| Ok(TryTaken::Locked { since: at(5) }));
        parts.sessions.expect_forgive_sign_in_try().never();
        parts.sessions.expect_apply_session().never();
        let command = SetSessionCommand {
            session_id: session.id.clone(),
            change: SessionChange { check_otp_sms: Some("424242".to_owned()), ..SessionChange::default() },
        };

        let failure = Failure::from(parts.service().set_session(&login_ui(), command).await.expect_err("locked"));

        assert_eq!((failure.kind, failure.id), (ErrorKind::ResourceExhausted, "USER-CodeChecksLocked"));
        assert_eq!(failure.retry_after_seconds(), Some(10 * 60), "the window from minute 5 ends at minute 20");
    }

    #[tokio::test]
    async fn sessions_need_session_permissions_or_the_current_token() {
        let session = challenged().await;
        let user_admin = caller("admin", &[(Permission::UserWrite, None), (Permission::UserRead, None)]);
        let error = Parts::new().service().create_session(&user_admin, sign_in(true)).await.expect_err("denied");
        assert_eq!(Failure::from(error).id, "SESSION-PermissionDenied");

        let cases = [
            (None, Some("SESSION-PermissionDenied"), "no token, no permission"),
            (Some("stolen"), Some("SESSION-PermissionDenied"), "another token"),
            (Some("new-token"), None, "its current token"),
        ];
        for (token, expected, case) in cases {
            let mut parts = Parts::new();
            let read = SessionRead { session: session.clone(), user: Some(parts.users[0].clone()) };
            parts.sessions.expect_load_session().returning(move |_| Ok(Some(read.clone())));
            let access = SessionAccess { session_id: session.id.clone(), session_token: token.map(str::to_owned) };
            let answer = parts.service().get_session(&user_admin, access).await;
            assert_eq!(answer.map(|_| ()).map_err(|e| Failure::from(e).id), expected.map_or(Ok(()), Err), "{case}");
        }

        let mut parts = Parts::new();
        parts.sessions.expect_load_session().returning(|_| Ok(None));
        let access = SessionAccess { session_id: session.id.clone(), session_token: Some("any".to_owned()) };
        let error = parts.service().get_session(&user_admin, access.clone()).await.expect_err("hidden");
        assert_eq!(Failure::from(error).id, "SESSION-PermissionDenied", "a token holder learns nothing");
        let mut parts = Parts::new();
        parts.sessions.expect_load_session().returning(|_| Ok(None));
        let error = parts.service().get_session(&login_ui(), access).await.expect_err("missing");
        assert_eq!(Failure::from(error).id, "SESSION-NotFound");
    }

    #[tokio::test]
    async fn with_revocation_a_removed_authenticator_no_longer_verifies_the_session() {
        let mut session = challenged().await;
        session.otp_sms = Some(factors_domain::CheckedOtpSms { authenticator: otp_id("a1"), checked_at: at(10) });
        for (revoke, expected) in [(false, Some(at(10))), (true, None)] {
            let mut parts = Parts::new();
            parts.revoke_on_removal = revoke;
            let read = SessionRead { session: session.clone(), user: Some(alice_holding(vec![])) };
            parts.sessions.expect_load_session().returning(move |_| Ok(Some(read.clone())));
            let access = SessionAccess { session_id: session.id.clone(), session_token: None };
            let view = parts.service().get_session(&login_ui(), access).await.expect("read");
            assert_eq!(view.otp_sms_verified_at, expected, "revoke_sessions_on_removal = {revoke}");
        }
    }

    #[test]
    fn debug_output_never_shows_a_code_or_a_token() {
        let change = SessionChange { check_otp_sms: Some("424242".into()), ..SessionChange::default() };
        let access =
            SessionAccess { session_id: SessionId::new("s1").expect("id"), session_token: Some("tok-secret".into()) };
        let written = SessionWritten {
            details: SessionDetails {
                sequence: 1,
                change_date: at(1),
                creation_date: at(1),
                resource_owner: "i".into(),
            },
            session_id: SessionId::new("s1").expect("id"),
            session_token: "tok-secret".into(),
            otp_sms_code: Some(code()),
        };
        let shown = format!("{change:?} {access:?} {written:?}");
        assert!(!shown.contains("424242") && !shown.contains("tok-secret"), "{shown}");
        assert!(shown.contains("Some(<redacted>)"), "says that a secret was there: {shown}");
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_anything_is_read() {
        let cases = [
            (SessionChange { check_otp_sms: Some("12345".into()), ..SessionChange::default() }, "SESSION-CodeInvalid"),
            (
                SessionChange { lifetime: Some(TimeDelta::seconds(-1)), ..SessionChange::default() },
                "SESSION-LifetimeInvalid",
            ),
            (
                SessionChange { lifetime: Some(TimeDelta::days(365 * 10_000)), ..SessionChange::default() },
                "SESSION-LifetimeInvalid",
            ),
            (
                SessionChange { metadata: BTreeMap::from([(String::new(), vec![1])]), ..SessionChange::default() },
                "SESSION-MetadataInvalid",
            ),
            (
                SessionChange { metadata: BTreeMap::from([("a\0b".into(), vec![1])]), ..SessionChange::default() },
                "SESSION-MetadataInvalid",
            ),
            (
                SessionChange { metadata: BTreeMap::from([("tab\t".into(), vec![1])]), ..SessionChange::default() },
                "SESSION-MetadataInvalid",
            ),
            (
                SessionChange { check_user: Some(UserCheck::LoginName("ada".into())), ..SessionChange::default() },
                "SESSION-LoginNameUnsupported",
            ),
        ];
        for (change, expected) in cases {
            let mut parts = Parts::new();
            parts.sessions.expect_load_session().never();
            parts.sessions.expect_apply_session().never();
            let error = parts.service().create_session(&login_ui(), change).await.expect_err("refused");
            assert_eq!(Failure::from(error).id, expected);
        }
    }
}
