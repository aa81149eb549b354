//! Wire input, checked once for every delivery: REST and gRPC move their messages' fields
//! into these raw forms, and the conversions here turn them into commands or name the
//! first thing wrong. Nothing here echoes the input back.

use factors_domain::{EmailAddress, OrgId, PhoneNumber, SchemaId, UserData, UserId};

use crate::use_cases::Verification;
use crate::use_cases::create_user::CreateUserCommand;
use crate::{InstanceSelector, InvalidInput, OrgSelector, RequestScope};

/// The `verification` oneof of `SetPhone` and `SetEmail`: which members were given.
/// (Protobuf cannot carry two; JSON can, and that is refused.)
///
/// # Errors
/// [`InvalidInput::OneOf`] for more than one member, [`InvalidInput::IsVerifiedFalse`]
/// for `isVerified: false` (ZITADEL's validation accepts only `true`).
pub fn verification(
    send_code: bool,
    return_code: bool,
    is_verified: Option<bool>,
) -> Result<Verification, InvalidInput> {
    match (send_code, return_code, is_verified) {
        (_, false, None) => Ok(Verification::SendCode),
        (false, true, None) => Ok(Verification::ReturnCode),
        (false, false, Some(true)) => Ok(Verification::IsVerified),
        (false, false, Some(false)) => Err(InvalidInput::IsVerifiedFalse),
        _ => Err(InvalidInput::OneOf("sendCode, returnCode and isVerified")),
    }
}

/// A phone number or e-mail address with its `verification` members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawContact {
    pub value: Option<String>,
    pub send_code: bool,
    pub return_code: bool,
    pub is_verified: Option<bool>,
}

impl RawContact {
    /// # Errors
    /// [`InvalidInput::Missing`] naming `field`, a bad number, or a bad verification oneof.
    pub fn phone(self, field: &'static str) -> Result<(PhoneNumber, Verification), InvalidInput> {
        let number = self.value.filter(|v| !v.is_empty()).ok_or(InvalidInput::Missing(field))?;
        let verification = verification(self.send_code, self.return_code, self.is_verified)?;
        Ok((PhoneNumber::parse(&number)?, verification))
    }

    /// # Errors
    /// [`InvalidInput::Missing`] naming `field`, a bad address, or a bad verification oneof.
    pub fn email(self, field: &'static str) -> Result<(EmailAddress, Verification), InvalidInput> {
        let address = self.value.filter(|v| !v.is_empty()).ok_or(InvalidInput::Missing(field))?;
        let verification = verification(self.send_code, self.return_code, self.is_verified)?;
        Ok((EmailAddress::parse(&address)?, verification))
    }
}

impl RequestScope {
    /// The `instance` and `organization` selectors; each is a oneof of two members.
    ///
    /// # Errors
    /// [`InvalidInput::OneOf`] when both members of a selector are given, or a bad org id.
    pub fn from_selectors(
        instance_id: Option<String>,
        instance_domain: Option<String>,
        org_id: Option<String>,
        org_domain: Option<String>,
    ) -> Result<Self, InvalidInput> {
        let instance = match (instance_id, instance_domain) {
            (Some(_), Some(_)) => return Err(InvalidInput::OneOf("instance.id and instance.domain")),
            (Some(id), None) => Some(InstanceSelector::Id(id)),
            (None, Some(domain)) => Some(InstanceSelector::Domain(domain)),
            (None, None) => None,
        };
        let organization = match (org_id, org_domain) {
            (Some(_), Some(_)) => return Err(InvalidInput::OneOf("organization.orgId and organization.orgDomain")),
            (Some(id), None) => Some(OrgSelector::Id(OrgId::new(id)?)),
            (None, Some(domain)) => Some(OrgSelector::Domain(domain)),
            (None, None) => None,
        };
        Ok(Self { instance, organization })
    }
}

/// The `CreateUser` message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawCreateUser {
    pub user_id: Option<String>,
    pub schema_id: Option<String>,
    pub data: serde_json::Value,
    pub email: Option<RawContact>,
    pub phone: Option<RawContact>,
    /// Whether usernames or a password were given (not supported).
    pub authenticators_given: bool,
}

impl RawCreateUser {
    /// # Errors
    /// The first thing wrong with the message, as [`InvalidInput`].
    pub fn into_command(self, scope: RequestScope) -> Result<CreateUserCommand, InvalidInput> {
        if self.authenticators_given {
            return Err(InvalidInput::AuthenticatorsNotSupported);
        }
        Ok(CreateUserCommand {
            scope,
            user_id: self.user_id.map(UserId::new).transpose()?,
            schema_id: SchemaId::new(
                self.schema_id.filter(|s| !s.is_empty()).ok_or(InvalidInput::Missing("schemaId"))?,
            )?,
            data: UserData::new(self.data)?,
            email: self.email.map(|e| e.email("contact.email.address")).transpose()?,
            phone: self.phone.map(|p| p.phone("contact.phone.number")).transpose()?,
        })
    }
}

/// The token of an `Authorization` value (`Bearer <token>`, the scheme in any case), as
/// REST headers and gRPC metadata carry it.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verification_oneof_takes_at_most_one_member() {
        assert_eq!(verification(false, false, None), Ok(Verification::SendCode));
        assert_eq!(verification(true, false, None), Ok(Verification::SendCode));
        assert_eq!(verification(false, true, None), Ok(Verification::ReturnCode));
        assert_eq!(verification(false, false, Some(true)), Ok(Verification::IsVerified));
        assert_eq!(verification(false, false, Some(false)), Err(InvalidInput::IsVerifiedFalse));
        assert!(matches!(verification(true, true, None), Err(InvalidInput::OneOf(_))));
        assert!(matches!(verification(false, true, Some(true)), Err(InvalidInput::OneOf(_))));
    }

    #[test]
    fn bearer_tokens_are_read_from_authorization_values() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn selectors_are_oneofs() {
        assert_eq!(
            RequestScope::from_selectors(Some("a".into()), Some("b".into()), None, None),
            Err(InvalidInput::OneOf("instance.id and instance.domain"))
        );
        assert_eq!(
            RequestScope::from_selectors(None, None, Some("o".into()), Some("d".into())),
            Err(InvalidInput::OneOf("organization.orgId and organization.orgDomain"))
        );
        let scope =
            RequestScope::from_selectors(None, Some("auth.example.com".into()), Some("o".into()), None).expect("valid");
        assert_eq!(scope.instance, Some(InstanceSelector::Domain("auth.example.com".into())));
    }

    #[test]
    fn a_create_user_message_is_checked_field_by_field() {
        let raw = |f: fn(&mut RawCreateUser)| {
            let mut raw = RawCreateUser { schema_id: Some("human".into()), ..RawCreateUser::default() };
            f(&mut raw);
            raw.into_command(RequestScope::default()).map(|_| ())
        };
        assert_eq!(raw(|_| {}), Ok(()));
        assert_eq!(raw(|r| r.schema_id = None), Err(InvalidInput::Missing("schemaId")));
        assert_eq!(raw(|r| r.authenticators_given = true), Err(InvalidInput::AuthenticatorsNotSupported));
        assert!(matches!(raw(|r| r.data = serde_json::json!([1])), Err(InvalidInput::UserData(_))));
        assert!(matches!(
            raw(|r| r.phone = Some(RawContact { value: Some("123".into()), ..RawContact::default() })),
            Err(InvalidInput::Phone(_))
        ));
    }
}
