//! The sessions of `zitadel.session.v2.SessionService` that sign a user in with an OTP SMS
//! authenticator: CreateSession, SetSession, GetSession and DeleteSession.
//!
//! A session collects checked factors: the user (`checks.user`), then the OTP SMS code
//! (`checks.otpSms`) sent by a challenge (`challenges.otpSms`). Every successful write
//! hands out a new session token and the previous one stops working.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use factors_domain::{Caller, OrgId, SessionId, UserId, VerificationCode};

use crate::ports::{RateLimited, Unexpected};
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
/// factors does not support with [`unsupported`] before a command is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
/// presents one instead of holding `session.read` / `session.delete`.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The answer of CreateSession and SetSession.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWritten {
    pub details: SessionDetails,
    pub session_id: SessionId,
    /// The new token; the previous one no longer works.
    pub session_token: String,
    /// `challenges.otpSms`: the code, when `returnCode` asked for it.
    pub otp_sms_code: Option<VerificationCode>,
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
    #[error("lifetime must not be negative")]
    LifetimeInvalid,
    #[error("metadata keys must be 1 to 200 characters")]
    MetadataInvalid,
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
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
            SessionError::LifetimeInvalid => {
                Failure::new(InvalidArgument, "SESSION-LifetimeInvalid", "lifetime must not be negative")
            }
            SessionError::MetadataInvalid => {
                Failure::new(InvalidArgument, "SESSION-MetadataInvalid", "metadata keys must be 1 to 200 characters")
            }
            SessionError::RateLimited(limited) => limited.into(),
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
