//! One module per RPC. Each exposes a trait (what delivery calls, mockable), a command,
//! an error enum mapping into [`Failure`], and the service implementing the trait.

use chrono::{DateTime, Utc};
use factors_domain::{AccessRefusal, Action, Caller, OrgId, User, UserId, authorize, may_look_up};

use crate::Failure;
use crate::ports::{Unexpected, UserReader};
use crate::scope::{InstanceContext, RequestScope, ScopeError};

pub mod add_otp_sms;
pub mod create_user;
pub mod delete_user;
pub mod get_user;
pub mod remove_otp_sms;
pub mod verify_otp_sms;

/// Every use case, as the deliveries (REST, gRPC) receive them from the composition root.
#[derive(Clone)]
pub struct UseCases {
    pub create_user: std::sync::Arc<dyn create_user::CreateUser>,
    pub get_user: std::sync::Arc<dyn get_user::GetUser>,
    pub delete_user: std::sync::Arc<dyn delete_user::DeleteUser>,
    pub add_otp_sms: std::sync::Arc<dyn add_otp_sms::AddOtpSms>,
    pub verify_otp_sms: std::sync::Arc<dyn verify_otp_sms::VerifyOtpSms>,
    pub remove_otp_sms: std::sync::Arc<dyn remove_otp_sms::RemoveOtpSms>,
}

/// The `details` of a user-scoped answer: the user's id, when it was created, when this
/// change was committed, and the organization owning it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Details {
    pub id: UserId,
    pub created: DateTime<Utc>,
    pub changed: DateTime<Utc>,
    pub owner: OrgId,
}

/// How a phone number or e-mail address is to be proven (the `verification` oneof of
/// `SetPhone` and `SetEmail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verification {
    /// Send the code (also when nothing is said).
    #[default]
    SendCode,
    /// Return the code to the caller instead of sending it.
    ReturnCode,
    /// Store it as verified at once.
    IsVerified,
}

/// Why a user could not be looked up for an operation.
#[derive(Debug, thiserror::Error)]
pub enum UserLookupError {
    #[error(transparent)]
    Scope(#[from] ScopeError),
    #[error(transparent)]
    Access(#[from] AccessRefusal),
    #[error(transparent)]
    Unexpected(#[from] Unexpected),
}

impl From<UserLookupError> for Failure {
    fn from(error: UserLookupError) -> Self {
        match error {
            UserLookupError::Scope(e) => e.into(),
            UserLookupError::Access(e) => e.into(),
            UserLookupError::Unexpected(e) => Failure::internal(e.0),
        }
    }
}

/// The common first steps of every operation on an existing user, in the order that
/// reveals nothing: check the request's selectors, refuse callers without any user
/// permission before the lookup, look the user up, then apply the access rules.
pub(crate) async fn authorized_user(
    context: &InstanceContext,
    users: &dyn UserReader,
    caller: &Caller,
    scope: &RequestScope,
    id: &UserId,
    action: Action,
) -> Result<User, UserLookupError> {
    let filter = context.resolve(scope)?;
    may_look_up(caller, id)?;
    let user = users.find_user(id).await?.filter(|u| filter.admits(u));
    Ok(authorize(caller, id, user.as_ref(), action)?.clone())
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Shared arrangements for the use-case tests.
    use std::collections::HashMap;
    use std::sync::Arc;

    use chrono::{DateTime, TimeZone, Utc};
    use factors_domain::{
        Caller, Contact, Grant, InstanceId, OrgId, OtpSmsAuthenticator, OtpSmsId, Permission, PhoneNumber, SchemaId,
        Scope, User, UserData, UserId, UserState,
    };

    use crate::ports::{MockClock, MockUserReader};
    use crate::scope::InstanceContext;

    pub fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 22, 9, minute, 0).single().expect("valid time")
    }

    pub fn context() -> Arc<InstanceContext> {
        Arc::new(InstanceContext {
            id: InstanceId::new("inst").expect("valid"),
            domains: vec!["auth.example.com".into()],
            org_domains: HashMap::new(),
        })
    }

    pub fn user_id(id: &str) -> UserId {
        UserId::new(id).expect("valid user id")
    }

    pub fn otp_id(id: &str) -> OtpSmsId {
        OtpSmsId::new(id).expect("valid otp sms id")
    }

    pub fn org(id: &str) -> OrgId {
        OrgId::new(id).expect("valid org id")
    }

    pub fn user(id: &str, in_org: &str) -> User {
        User {
            id: user_id(id),
            org: org(in_org),
            state: UserState::Active,
            schema_id: SchemaId::new("human").expect("valid"),
            data: UserData::default(),
            contact: Contact::default(),
            created: at(0),
            changed: at(1),
            sequence: 2,
        }
    }

    pub fn phone() -> PhoneNumber {
        PhoneNumber::parse("+41791234567").expect("valid phone")
    }

    pub fn authenticator(id: &str, of: &str) -> OtpSmsAuthenticator {
        OtpSmsAuthenticator { id: otp_id(id), user: user_id(of), phone: phone(), verified: true, created: at(1) }
    }

    pub fn caller(id: &str, grants: &[(Permission, Option<&str>)]) -> Caller {
        Caller {
            user_id: user_id(id),
            org: Some(org("org-a")),
            grants: grants
                .iter()
                .map(|(p, scope)| Grant {
                    permission: *p,
                    scope: scope.map_or(Scope::Instance, |o| Scope::Org(org(o))),
                })
                .collect(),
        }
    }

    pub fn org_admin() -> Caller {
        caller("admin", &[(Permission::UserRead, Some("org-a")), (Permission::UserWrite, Some("org-a"))])
    }

    pub fn clock(now: DateTime<Utc>) -> Arc<MockClock> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now);
        Arc::new(clock)
    }

    /// A user reader that knows exactly these users.
    pub fn users(known: Vec<User>) -> Arc<MockUserReader> {
        let mut users = MockUserReader::new();
        users.expect_find_user().returning(move |id| Ok(known.iter().find(|u| &u.id == id).cloned()));
        Arc::new(users)
    }

    /// A user reader that must not be called: the caller is refused before any lookup.
    pub fn no_lookup() -> Arc<MockUserReader> {
        let mut users = MockUserReader::new();
        users.expect_find_user().never();
        Arc::new(users)
    }
}
