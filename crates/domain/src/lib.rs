//! The domain of factors: identifiers, phone numbers, users, OTP SMS authenticators,
//! verification codes, audit events and the rules of who may do what.
//!
//! Everything here is pure: no I/O, no async, no clock. Values that can be wrong are
//! newtypes with fallible constructors, so a function taking a [`PhoneNumber`] never
//! re-checks it, and rules take `now` as an argument.

pub mod access;
pub mod code;
pub mod conversion;
pub mod event;
pub mod ids;
pub mod lifecycle;
pub mod origin;
pub mod otp_sms;
pub mod phone;
pub mod policy;
pub mod protection;
pub mod rate_limit;
pub mod registration;
pub mod removal;
pub mod secret;
pub mod session;
pub mod sms_countries;
pub mod snapshot;
pub mod user;

pub use access::{
    AccessRefusal, Action, Authentication, Caller, Grant, Permission, PermissionParseError, Scope, authorize,
    may_create_user_in, may_create_users, may_look_up,
};
pub use code::{
    CheckBudget, CodeFormatError, CodeHash, CodeKey, CodeKeyError, CodePolicy, CodeRejection, PendingCode,
    VerificationCode, check_code,
};
pub use conversion::{BreakerChange, BreakerEvent, BreakerRule, BreakerState, Conversion};
pub use event::{Event, EventKind};
pub use ids::{IdError, IdKind, InstanceId, OrgId, OtpSmsId, SchemaId, SessionId, UserId, compose_flake_id};
pub use lifecycle::{Creation, DeletionRefusal, StateChange, StateRefusal, plan_deletion, plan_state_change};
pub use origin::Origin;
pub use otp_sms::OtpSmsAuthenticator;
pub use phone::{PhoneError, PhoneNumber};
pub use policy::{
    LoginPolicy, MAX_STEP_UP_AGE, PolicyChange, PolicyError, PolicyEvent, PolicyGuard, PolicyInForce, PolicyRead,
    PolicyRefusal, PolicySource, StoredPolicy, may_read_policy, may_write_policy, plan_policy_change,
};
pub use protection::{LOOSENING_STEP_UP_MAX_AGE, ProtectionRefusal, Weakening, protect_own_account};
pub use rate_limit::{RateLimit, SmsBudgets};
pub use registration::{
    CodeCheck, NewOtpSms, RegistrationRefusal, Verification, VerificationRefusal, plan_registration, plan_verification,
};
pub use removal::{Notice, RemovalPolicy, RemovalRefusal, plan_removal, removal};
pub use secret::redacted;
pub use session::{
    ChallengeChange, ChallengeRequest, CheckedOtpSms, CheckedUser, HeldUser, NewSession, OtpSmsChallenge, Session,
    SessionDecision, SessionEvent, SessionEventKind, SessionPlan, SessionRefusal, SessionRequest, SessionTermination,
    SessionToken, TokenHash, UserSession, latest_expiry, plan_session, plan_termination,
};
pub use sms_countries::{CountryNotAllowed, SmsCountries};
pub use snapshot::{Change, Decision, Transition, UserSnapshot, Version, next_change};
pub use user::{
    Contact, ContactEmail, ContactPhone, EmailAddress, EmailError, User, UserData, UserDataError, UserState,
};
