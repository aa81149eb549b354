//! How errors reach the wire: every use-case error converts into one [`Failure`], a gRPC
//! code ([`ErrorKind`]) with a stable error id and a fixed message. REST and gRPC both
//! translate from a `Failure`; each conversion here is one exhaustive match, so a new
//! variant fails the build until someone decides its answer. The HTTP status and gRPC code
//! of each kind, and the failures of the delivery layers themselves, are the deliveries'
//! (`factors-wire`).

use std::borrow::Cow;
use std::time::Duration;

use crate::ports::{AuthError, LimitScope, RateLimited};
use factors_domain::{
    AccessRefusal, CodeFormatError, CountryNotAllowed, EmailError, IdError, IdKind, PhoneError, PolicyError,
    ProtectionRefusal, UserDataError,
};

/// The gRPC status codes factors answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidArgument,
    FailedPrecondition,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    AlreadyExists,
    Aborted,
    ResourceExhausted,
    Internal,
    Unimplemented,
    Unavailable,
    DeadlineExceeded,
}

/// An error as the wire sees it: kind, stable id (`OTPSMS-NotFound`) and message. The
/// `cause` of an internal failure is for the log only and never reaches a client.
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub id: &'static str,
    pub message: Cow<'static, str>,
    pub cause: Option<anyhow::Error>,
    /// For RESOURCE_EXHAUSTED: when the caller may try again.
    pub retry_after: Option<Duration>,
}

impl Failure {
    /// When a client may try again after the store was out of reach.
    pub const STORE_RETRY_AFTER: Duration = Duration::from_secs(1);

    pub fn new(kind: ErrorKind, id: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self { kind, id, message: message.into(), cause: None, retry_after: None }
    }

    /// An internal failure: the client sees a fixed text; `cause` goes to the log. A cause
    /// marked [`StoreUnreachable`](crate::ports::StoreUnreachable) answers UNAVAILABLE with
    /// a `Retry-After` of [`Self::STORE_RETRY_AFTER`], as trying again soon may succeed (a
    /// database restarting, a cluster electing its next leader).
    pub fn internal(cause: anyhow::Error) -> Self {
        if cause.downcast_ref::<crate::ports::StoreUnreachable>().is_some() {
            let failure = Self::new(ErrorKind::Unavailable, "STORE-Unavailable", "the store is unavailable; try again");
            return Self { cause: Some(cause), retry_after: Some(Self::STORE_RETRY_AFTER), ..failure };
        }
        Self { cause: Some(cause), ..Self::new(ErrorKind::Internal, "INTERNAL", "internal error") }
    }

    pub fn unauthenticated(id: &'static str, message: &'static str) -> Self {
        Self::new(ErrorKind::Unauthenticated, id, message)
    }

    /// An RPC of the service that factors does not implement.
    pub fn unimplemented(rpc: &str) -> Self {
        Self::new(ErrorKind::Unimplemented, "RPC-Unimplemented", format!("{rpc} is not implemented by factors"))
    }

    pub fn user_not_found() -> Self {
        Self::new(ErrorKind::NotFound, "USER-NotFound", "user not found")
    }

    /// When the caller may try again, in the whole seconds of `Retry-After`: rounded up, so
    /// that a client never comes back too early, and at least 1, since 0 would invite it
    /// to retry at once.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.retry_after.map(|after| (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1))
    }
}

impl From<AccessRefusal> for Failure {
    fn from(refusal: AccessRefusal) -> Self {
        match refusal {
            AccessRefusal::PermissionDenied => {
                Self::new(ErrorKind::PermissionDenied, "AUTHZ-PermissionDenied", "the caller may not do this")
            }
            AccessRefusal::UserNotFound => Self::user_not_found(),
        }
    }
}

/// One answer for every write that would weaken the caller's own account, whichever RPC it
/// is (removing or adding an authenticator, deleting oneself, loosening one's policy).
impl From<ProtectionRefusal> for Failure {
    fn from(refusal: ProtectionRefusal) -> Self {
        match refusal {
            ProtectionRefusal::LastFactor => Self::new(
                ErrorKind::FailedPrecondition,
                "OTPSMS-LastFactor",
                "the login policy forces MFA and this would leave you without a verified second factor: add another \
                 one first, or ask an administrator",
            ),
            ProtectionRefusal::StepUpRequired { max_age } => Self::new(
                ErrorKind::PermissionDenied,
                "AUTHZ-StepUpRequired",
                format!(
                    "re-authenticate: weakening the protection of your own account needs a token from a sign-in with \
                     a second factor (amr otp, sms, mfa, hwk or swk) within the last {} seconds",
                    max_age.num_seconds()
                ),
            ),
        }
    }
}

/// Input that is not of the contract's form. Delivery crates produce these while turning
/// wire types into domain values; the messages never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error(transparent)]
    Email(#[from] EmailError),
    #[error(transparent)]
    Code(#[from] CodeFormatError),
    #[error(transparent)]
    UserData(#[from] UserDataError),
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("at most one of {0} may be given")]
    OneOf(&'static str),
    #[error("isVerified may only be true")]
    IsVerifiedFalse,
    #[error("authenticators are not supported when creating a user")]
    AuthenticatorsNotSupported,
    /// A page size above the largest page (named in the message).
    #[error("pageSize may be at most {0}")]
    PageSize(u32),
    /// A cursor this service did not give out.
    #[error("the cursor is not one a previous page gave")]
    Cursor,
    /// A login policy the domain refuses as given.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl From<InvalidInput> for Failure {
    fn from(input: InvalidInput) -> Self {
        let message = input.to_string();
        let id = match input {
            InvalidInput::Id(e) => match e.kind() {
                IdKind::User => "USER-InvalidId",
                IdKind::Org => "ORG-InvalidId",
                IdKind::Instance => "INSTANCE-InvalidId",
                IdKind::OtpSms => "OTPSMS-InvalidId",
                IdKind::Schema => "SCHEMA-InvalidId",
                IdKind::Session => "SESSION-InvalidId",
            },
            InvalidInput::Phone(e) => match e {
                PhoneError::Empty => "PHONE-Empty",
                PhoneError::TooLong => "PHONE-TooLong",
                PhoneError::Unparseable => "PHONE-NotInternational",
                PhoneError::NotValid => "PHONE-NotValid",
            },
            InvalidInput::Email(e) => match e {
                EmailError::Malformed => "EMAIL-Malformed",
                EmailError::TooLong => "EMAIL-TooLong",
            },
            InvalidInput::Code(CodeFormatError) => "OTPSMS-CodeFormat",
            InvalidInput::UserData(UserDataError::NotAnObject) => "USER-DataNotObject",
            InvalidInput::UserData(UserDataError::NulCharacter) => "USER-DataNulCharacter",
            InvalidInput::Missing(_) => "REQ-MissingField",
            InvalidInput::OneOf(_) => "REQ-OneOf",
            InvalidInput::IsVerifiedFalse => "REQ-IsVerifiedFalse",
            InvalidInput::AuthenticatorsNotSupported => "USER-AuthenticatorsNotSupported",
            InvalidInput::PageSize(_) => "EVENTS-InvalidPageSize",
            InvalidInput::Cursor => "EVENTS-InvalidCursor",
            InvalidInput::Policy(PolicyError::StepUpAge) => "POLICY-InvalidStepUpAge",
        };
        Self::new(ErrorKind::InvalidArgument, id, message)
    }
}

impl From<AuthError> for Failure {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::MissingToken => Self::unauthenticated("AUTH-MissingToken", "no bearer token was presented"),
            AuthError::Expired => Self::unauthenticated("AUTH-TokenExpired", "the token has expired"),
            AuthError::Invalid => Self::unauthenticated("AUTH-InvalidToken", "the token is invalid"),
        }
    }
}

/// One answer for a code to a region `sms.countries` keeps codes from, whichever RPC would
/// have sent it (an enrolment, a sign-in challenge).
impl From<CountryNotAllowed> for Failure {
    fn from(refused: CountryNotAllowed) -> Self {
        Self::new(
            ErrorKind::InvalidArgument,
            "SMS-CountryNotAllowed",
            format!("codes are not sent by SMS to numbers of region {} here", refused.region),
        )
    }
}

impl From<RateLimited> for Failure {
    fn from(limited: RateLimited) -> Self {
        let id = match limited.scope {
            LimitScope::User => "SMS-RateLimitedUser",
            LimitScope::Phone => "SMS-RateLimitedPhone",
            LimitScope::Country => "SMS-RateLimitedCountry",
            LimitScope::Prefix => "SMS-RateLimitedPrefix",
        };
        Self {
            retry_after: Some(limited.retry_after),
            ..Self::new(ErrorKind::ResourceExhausted, id, "too many verification SMS were sent; try again later")
        }
    }
}

impl From<IdError> for Failure {
    fn from(error: IdError) -> Self {
        InvalidInput::Id(error).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_kind_has_its_own_error_id() {
        let ids: Vec<_> = [
            IdError::Empty(IdKind::User),
            IdError::Empty(IdKind::Org),
            IdError::Empty(IdKind::Instance),
            IdError::Empty(IdKind::OtpSms),
            IdError::Empty(IdKind::Schema),
            IdError::Empty(IdKind::Session),
        ]
        .into_iter()
        .map(|e| Failure::from(InvalidInput::Id(e)).id)
        .collect();
        assert_eq!(
            ids,
            [
                "USER-InvalidId",
                "ORG-InvalidId",
                "INSTANCE-InvalidId",
                "OTPSMS-InvalidId",
                "SCHEMA-InvalidId",
                "SESSION-InvalidId"
            ]
        );
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        let seconds = |millis: u64| {
            let limited = RateLimited { scope: LimitScope::User, retry_after: Duration::from_millis(millis) };
            Failure::from(limited).retry_after_seconds()
        };
        assert_eq!([seconds(0), seconds(1), seconds(1000), seconds(1001)], [Some(1), Some(1), Some(1), Some(2)]);
        assert_eq!(Failure::user_not_found().retry_after_seconds(), None);
    }

    #[test]
    fn a_store_out_of_reach_is_unavailable_not_internal_and_its_cause_stays_in_the_log() {
        let cause = anyhow::anyhow!("Connection refused (os error 111)")
            .context("reading a user")
            .context(crate::ports::StoreUnreachable);
        let failure = Failure::internal(cause);
        assert_eq!(
            (failure.kind, failure.id, failure.message.as_ref()),
            (ErrorKind::Unavailable, "STORE-Unavailable", "the store is unavailable; try again")
        );
        assert_eq!(failure.retry_after_seconds(), Some(1), "Retry-After: 1");
        assert!(format!("{:#}", failure.cause.expect("kept")).contains("Connection refused"));
    }

    #[test]
    fn internal_failures_hide_their_cause_from_the_message() {
        let failure = Failure::internal(anyhow::anyhow!("relation \"users\" does not exist"));
        assert_eq!(
            (failure.kind, failure.id, failure.message.as_ref()),
            (ErrorKind::Internal, "INTERNAL", "internal error")
        );
    }
}
