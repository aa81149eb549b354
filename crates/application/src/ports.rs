//! Ports: what the use cases need from the outside world, split by capability. Adapters
//! implement them (Postgres, Redis, JWT, SMS providers); tests use the mockall mocks that
//! the `mocks` feature exposes.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use factors_domain::{
    Caller, CodeHash, CodePolicy, CodeRejection, Event, OtpSmsAuthenticator, OtpSmsId, PendingCode, PhoneNumber,
    Removal, User, UserId, VerificationCode,
};

use crate::Details;

#[cfg(feature = "mocks")]
use mockall::automock;

/// An unexpected infrastructure failure (connection lost, timeout, ...). Its cause is
/// for the log; the caller answers INTERNAL or UNAVAILABLE.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Unexpected(#[from] pub anyhow::Error);

/// The current time, truncated to what the store keeps (microseconds).
#[cfg_attr(feature = "mocks", automock)]
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// New, unique ids for users and authenticators.
#[cfg_attr(feature = "mocks", automock)]
pub trait IdGenerator: Send + Sync {
    fn next_id(&self) -> String;
}

/// New verification codes, uniformly random from a CSPRNG.
#[cfg_attr(feature = "mocks", automock)]
pub trait CodeGenerator: Send + Sync {
    fn generate(&self) -> VerificationCode;
}

/// Reads users.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait UserReader: Send + Sync {
    /// The user with this id in this deployment's instance, or `None`.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn find_user(&self, id: &UserId) -> Result<Option<User>, Unexpected>;
}

/// Reads the OTP SMS authenticators of a user: the lookup a cache may serve.
///
/// It takes the user as just read from the store: `user.sequence` moves with every write
/// to the user or its authenticators, in the same transaction, so a cache may key its
/// entries by it and can never serve an answer older than the user it is asked about.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait OtpSmsReader: Send + Sync {
    /// The user's authenticators, oldest first.
    ///
    /// # Errors
    /// [`Unexpected`] when the store cannot answer.
    async fn list_otp_sms(&self, user: &User) -> Result<Vec<OtpSmsAuthenticator>, Unexpected>;
}

#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    #[error("a user with this id exists")]
    AlreadyExists,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

#[derive(Debug, thiserror::Error)]
pub enum DeleteUserError {
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// Writes users. Each method is one transaction that also appends its event.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait UserWriter: Send + Sync {
    /// Stores a new user and appends `event` (`user.human.added`).
    ///
    /// # Errors
    /// [`InsertUserError::AlreadyExists`] when the id is taken; [`InsertUserError::Unexpected`].
    async fn insert_user(&self, user: &User, event: &Event) -> Result<(), InsertUserError>;

    /// Deletes the user with everything it holds (authenticators, pending codes) and
    /// appends `event` (`user.removed`).
    ///
    /// # Errors
    /// [`DeleteUserError::NotFound`] when no such user exists (any more); [`DeleteUserError::Unexpected`].
    async fn delete_user(&self, user: &UserId, event: &Event) -> Result<Details, DeleteUserError>;
}

/// A new authenticator with its first code, if a code is to be proven.
#[derive(Debug, Clone)]
pub struct NewOtpSms {
    pub authenticator: OtpSmsAuthenticator,
    pub pending_code: Option<PendingCode>,
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum AddOtpSmsError {
    #[error("no such user")]
    UserNotFound,
    #[error("the user already has an OTP SMS authenticator on this number")]
    PhoneTaken,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// One try at typing the registration code of an authenticator.
#[derive(Debug, Clone)]
pub struct VerificationAttempt {
    pub user: UserId,
    pub authenticator: OtpSmsId,
    pub presented: CodeHash,
    pub policy: CodePolicy,
    pub now: DateTime<Utc>,
    /// Appended when the code is accepted (`user.human.mfa.otp.sms.verified`).
    pub event: Event,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyOtpSmsError {
    #[error("the user has no such OTP SMS authenticator")]
    NotFound,
    #[error("the authenticator is verified already")]
    AlreadyVerified,
    #[error("no code is pending for the authenticator")]
    NoPendingCode,
    #[error(transparent)]
    Rejected(CodeRejection),
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveOtpSmsError {
    #[error("the user has no such OTP SMS authenticator (any more)")]
    NotFound,
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

/// Writes OTP SMS authenticators. Each method is one transaction that also moves the
/// user's `changed` and `sequence` and appends the event.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait OtpSmsWriter: Send + Sync {
    /// Stores the authenticator and its pending code.
    ///
    /// # Errors
    /// [`AddOtpSmsError::UserNotFound`], [`AddOtpSmsError::PhoneTaken`] (same number on
    /// the same user), [`AddOtpSmsError::Unexpected`].
    async fn add_otp_sms(&self, new: &NewOtpSms) -> Result<Details, AddOtpSmsError>;

    /// Checks the code with [`factors_domain::check_code`] against the pending code, read
    /// with a row lock, and applies the outcome in the same transaction: on success the
    /// code is used up and the authenticator verified; a wrong code counts a failed try
    /// (committed, although the call answers an error).
    ///
    /// # Errors
    /// [`VerifyOtpSmsError::NotFound`], [`VerifyOtpSmsError::AlreadyVerified`],
    /// [`VerifyOtpSmsError::NoPendingCode`], [`VerifyOtpSmsError::Rejected`],
    /// [`VerifyOtpSmsError::Unexpected`].
    async fn verify_otp_sms(&self, attempt: &VerificationAttempt) -> Result<Details, VerifyOtpSmsError>;

    /// Deletes the authenticator only if it still belongs to the user, voids its pending
    /// codes and appends the removal event. Of concurrent removals of one authenticator,
    /// exactly one succeeds.
    ///
    /// # Errors
    /// [`RemoveOtpSmsError::NotFound`] when zero rows were removed; [`RemoveOtpSmsError::Unexpected`].
    async fn remove_otp_sms(&self, removal: &Removal) -> Result<Details, RemoveOtpSmsError>;
}

/// An SMS that may not be sent yet: a limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many SMS for this {scope:?}; retry after {retry_after:?}")]
pub struct RateLimited {
    pub scope: LimitScope,
    pub retry_after: std::time::Duration,
}

/// What a rate limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    User,
    Phone,
}

/// One counted SMS, to give back if it was not sent after all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsPermit(pub String);

/// Limits how many verification SMS go out, per user and per phone number.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait SmsRateLimiter: Send + Sync {
    /// Counts one SMS for `user` to `to` when both are under their limits; counts nothing
    /// otherwise. Never fails for infrastructure reasons: a limiter that cannot reach its
    /// shared store falls back to counting in process.
    ///
    /// # Errors
    /// [`RateLimited`] naming the limit reached and when to retry.
    async fn try_acquire(&self, user: &UserId, to: &PhoneNumber) -> Result<SmsPermit, RateLimited>;

    /// Gives back a permit whose SMS was not sent (nothing stored, or the provider
    /// failed), so that it does not use up the allowance. Best effort.
    async fn release(&self, user: &UserId, to: &PhoneNumber, permit: SmsPermit);
}

/// Why an SMS was not handed over for delivery.
#[derive(Debug, thiserror::Error)]
#[error("the SMS could not be sent")]
pub struct SmsError(#[source] pub anyhow::Error);

/// What a verification SMS is for; the sender renders the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsPurpose {
    /// Proving the phone of a new OTP SMS authenticator.
    OtpSmsRegistration,
    /// Proving the contact phone of a user.
    ContactPhone,
}

/// Sends SMS. Implementations must never log the code or the full number.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Hands `code` for `to` to the provider.
    ///
    /// # Errors
    /// [`SmsError`] when the provider refuses or cannot be reached.
    async fn send_code(&self, to: &PhoneNumber, code: &VerificationCode, purpose: SmsPurpose) -> Result<(), SmsError>;
}

/// Why a bearer token was refused. Each maps to UNAUTHENTICATED with its own error id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token was presented")]
    MissingToken,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid")]
    Invalid,
}

/// Verifies bearer tokens and tells who the caller is.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The caller a token stands for, its role grants mapped to permissions.
    ///
    /// # Errors
    /// [`AuthError::Expired`] or [`AuthError::Invalid`] (bad signature, wrong issuer or
    /// audience, not yet valid, unsupported or confused algorithm, malformed claims).
    async fn verify(&self, token: &str) -> Result<Caller, AuthError>;
}

/// The state of one dependency, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DependencyState {
    Up,
    /// Not working, but the service still answers without it (a cache, say).
    Degraded,
    Down,
}

impl DependencyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

/// Whether the service can do its work: ready unless a dependency it needs is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub dependencies: Vec<(&'static str, DependencyState)>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.dependencies.iter().all(|(_, state)| *state != DependencyState::Down)
    }
}

/// Checks the dependencies, for `/readyz` and the gRPC health service.
#[cfg_attr(feature = "mocks", automock)]
#[async_trait]
pub trait ReadinessProbe: Send + Sync {
    async fn readiness(&self) -> Readiness;
}
