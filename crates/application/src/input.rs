//! Wire input, checked once for every delivery: REST and gRPC move their messages' fields
//! into these raw forms, and the conversions here turn them into commands or name the
//! first thing wrong. Nothing here echoes the input back.

use std::collections::BTreeMap;

use chrono::TimeDelta;
use factors_domain::{
    EmailAddress, LoginPolicy, OrgId, PhoneNumber, PolicyError, SchemaId, Scope, UserData, UserId, Verification,
};

use crate::use_cases::create_user::CreateUserCommand;
use crate::use_cases::sessions::{self, SessionChange, UserCheck};
use crate::{Failure, InstanceSelector, InvalidInput, OrgSelector, RequestScope};

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
            user_id: self.user_id.map(UserId::new_addressable).transpose()?,
            schema_id: SchemaId::new(
                self.schema_id.filter(|s| !s.is_empty()).ok_or(InvalidInput::Missing("schemaId"))?,
            )?,
            data: UserData::new(self.data)?,
            email: self.email.map(|e| e.email("contact.email.address")).transpose()?,
            phone: self.phone.map(|p| p.phone("contact.phone.number")).transpose()?,
        })
    }
}

/// `checks.user` of a session request: which members of its `search` oneof were given.
/// (Protobuf cannot carry two; JSON can, and that is refused.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawUserCheck {
    pub user_id: Option<String>,
    pub login_name: Option<String>,
}

impl RawUserCheck {
    /// # Errors
    /// [`InvalidInput::OneOf`] for both members, [`InvalidInput::Missing`] for neither, or
    /// a bad user id.
    pub fn into_check(self) -> Result<UserCheck, InvalidInput> {
        match (self.user_id, self.login_name) {
            (Some(_), Some(_)) => Err(InvalidInput::OneOf("checks.user.userId and checks.user.loginName")),
            (Some(id), None) => Ok(UserCheck::UserId(UserId::new(id)?)),
            (None, Some(login_name)) => Ok(UserCheck::LoginName(login_name)),
            (None, None) => Err(InvalidInput::Missing("checks.user.userId or checks.user.loginName")),
        }
    }
}

/// The scope of a login policy request: an organization's when one is named, else the
/// instance default's.
///
/// # Errors
/// A bad organization id (`ORG-InvalidId`, as for the selectors).
pub fn policy_scope(organization_id: Option<String>) -> Result<Scope, InvalidInput> {
    Ok(match organization_id {
        Some(id) => Scope::Org(OrgId::new(id)?),
        None => Scope::Instance,
    })
}

/// A `LoginPolicy` message as both deliveries read it, a full replacement: absent fields
/// are proto3's defaults (off, and a zero age), which [`Default`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLoginPolicy {
    pub force_mfa: bool,
    /// `None` when the age was given but is no duration at all (not protobuf JSON's form,
    /// or `seconds` and `nanos` that make none): a bad age is the policy's error, the same
    /// on every delivery, rather than a shape error of one of them.
    pub self_removal_step_up_max_age: Option<TimeDelta>,
    pub notify_on_removal: bool,
}

impl Default for RawLoginPolicy {
    fn default() -> Self {
        Self { force_mfa: false, self_removal_step_up_max_age: Some(TimeDelta::zero()), notify_on_removal: false }
    }
}

impl RawLoginPolicy {
    /// # Errors
    /// [`InvalidInput::Policy`] for an age that is no duration, or one the domain refuses
    /// (negative, fractional, above 366 days).
    pub fn into_policy(self) -> Result<LoginPolicy, InvalidInput> {
        let age = self.self_removal_step_up_max_age.ok_or(PolicyError::StepUpAge)?;
        Ok(LoginPolicy::new(self.force_mfa, age, self.notify_on_removal)?)
    }
}

/// Which of the checks and challenges of ZITADEL's session API that factors does not
/// support a request holds. Each delivery says which are present; their names live here
/// once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnsupportedSessionInput {
    pub password: bool,
    pub web_auth_n: bool,
    pub idp_intent: bool,
    pub totp: bool,
    pub otp_email: bool,
    pub recovery_code: bool,
    pub challenge_web_auth_n: bool,
    pub challenge_otp_email: bool,
}

impl UnsupportedSessionInput {
    /// The present ones, named as JSON paths, in the proto's order.
    pub fn fields(self) -> Vec<&'static str> {
        [
            (self.password, "checks.password"),
            (self.web_auth_n, "checks.webAuthN"),
            (self.idp_intent, "checks.idpIntent"),
            (self.totp, "checks.totp"),
            (self.otp_email, "checks.otpEmail"),
            (self.recovery_code, "checks.recoveryCode"),
            (self.challenge_web_auth_n, "challenges.webAuthN"),
            (self.challenge_otp_email, "challenges.otpEmail"),
        ]
        .into_iter()
        .filter_map(|(present, field)| present.then_some(field))
        .collect()
    }
}

/// The body of a CreateSession or SetSession, as both deliveries read it. Its `Debug`
/// output leaves the code out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RawSessionChange {
    /// The checks and challenges present in the request that factors does not support,
    /// named as JSON paths (`checks.password`, `challenges.webAuthN`), in the proto's order.
    pub unsupported: Vec<&'static str>,
    /// `checks.user`, when present.
    pub check_user: Option<RawUserCheck>,
    /// `checks.otpSms.code`, when `checks.otpSms` is present.
    pub check_otp_sms: Option<String>,
    /// `challenges.otpSms.returnCode`, when `challenges.otpSms` is present.
    pub challenge_otp_sms: Option<bool>,
    pub metadata: BTreeMap<String, Vec<u8>>,
    pub lifetime: Option<TimeDelta>,
}

impl std::fmt::Debug for RawSessionChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { unsupported, check_user, check_otp_sms, challenge_otp_sms, metadata, lifetime } = self;
        let mut out = f.debug_struct("RawSessionChange");
        out.field("unsupported", unsupported);
        sessions::debug_change(&mut out, check_user, check_otp_sms.as_ref(), *challenge_otp_sms, metadata, *lifetime)
            .finish()
    }
}

impl RawSessionChange {
    /// # Errors
    /// INVALID_ARGUMENT naming the first unsupported check or challenge present
    /// ([`sessions::unsupported`]), else the first thing wrong with `checks.user`.
    pub fn into_change(self) -> Result<SessionChange, Failure> {
        if let Some(field) = self.unsupported.first() {
            return Err(sessions::unsupported(field));
        }
        Ok(SessionChange {
            check_user: self.check_user.map(RawUserCheck::into_check).transpose()?,
            check_otp_sms: self.check_otp_sms,
            challenge_otp_sms: self.challenge_otp_sms,
            metadata: self.metadata,
            lifetime: self.lifetime,
        })
    }
}

/// The longest `google.protobuf.Duration` either way: about 10,000 years.
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

/// A `google.protobuf.Duration` from its fields; `None` when they do not make one (out of
/// range, `nanos` of a whole second or more, or of another sign than `seconds`). A
/// negative duration is a duration: whether it is allowed is for the use case.
pub fn duration(seconds: i64, nanos: i32) -> Option<TimeDelta> {
    let signs_agree = !(seconds > 0 && nanos < 0 || seconds < 0 && nanos > 0);
    if seconds.unsigned_abs() > MAX_DURATION_SECONDS.unsigned_abs()
        || nanos.unsigned_abs() >= 1_000_000_000
        || !signs_agree
    {
        return None;
    }
    TimeDelta::try_seconds(seconds)?.checked_add(&TimeDelta::nanoseconds(nanos.into()))
}

/// A `google.protobuf.Duration` in protobuf JSON: seconds with up to nine fractional
/// digits and the suffix `s` (`"300s"`, `"1.5s"`, `"-0.25s"`).
pub fn parse_duration(text: &str) -> Option<TimeDelta> {
    let number = text.strip_suffix('s')?;
    let (negative, number) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number),
    };
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (number, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f) || f.len() > 9) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let fraction = fraction.unwrap_or_default();
    let nanos: i32 = if fraction.is_empty() { 0 } else { format!("{fraction:0<9}").parse().ok()? };
    if negative { duration(-seconds, -nanos) } else { duration(seconds, nanos) }
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
    fn durations_are_read_as_protobuf_json_writes_them() {
        let cases = [
            ("300s", Some(TimeDelta::seconds(300))),
            ("1.5s", Some(TimeDelta::milliseconds(1500))),
            ("0.000000001s", Some(TimeDelta::nanoseconds(1))),
            ("-0.25s", Some(TimeDelta::milliseconds(-250))),
            ("-2s", Some(TimeDelta::seconds(-2))),
            ("0s", Some(TimeDelta::zero())),
            ("315576000000s", Some(TimeDelta::seconds(315_576_000_000))),
            ("315576000001s", None),
            ("300", None),
            ("5m", None),
            ("1.s", None),
            (".5s", None),
            ("+1s", None),
            ("1.0000000001s", None),
            ("- 1s", None),
            ("", None),
            ("s", None),
            ("99999999999999999999s", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), expected, "{text:?}");
        }
    }

    #[test]
    fn duration_fields_must_make_a_duration() {
        assert_eq!(duration(1, 500_000_000), Some(TimeDelta::milliseconds(1500)));
        assert_eq!(duration(-1, -500_000_000), Some(TimeDelta::milliseconds(-1500)));
        assert_eq!(duration(0, -5), Some(TimeDelta::nanoseconds(-5)));
        assert_eq!(duration(1, -1), None, "signs differ");
        assert_eq!(duration(0, 1_000_000_000), None, "a whole second of nanos");
        assert_eq!(duration(i64::MIN, 0), None);
        assert_eq!(duration(MAX_DURATION_SECONDS + 1, 0), None);
    }

    #[test]
    fn a_login_policy_takes_whole_seconds_up_to_366_days_and_every_bad_age_has_one_id() {
        let raw = |age: Option<TimeDelta>| RawLoginPolicy {
            force_mfa: true,
            self_removal_step_up_max_age: age,
            notify_on_removal: false,
        };
        let policy = raw(Some(TimeDelta::minutes(5))).into_policy().expect("valid");
        assert_eq!(
            (policy.force_mfa, policy.self_removal_step_up_max_age, policy.notify_on_removal),
            (true, TimeDelta::minutes(5), false)
        );
        assert_eq!(RawLoginPolicy::default().into_policy(), Ok(LoginPolicy::default()), "absent: all off");
        assert!(raw(Some(factors_domain::MAX_STEP_UP_AGE)).into_policy().is_ok());
        let bad = [
            None,
            Some(TimeDelta::milliseconds(1500)),
            Some(TimeDelta::seconds(-1)),
            Some(factors_domain::MAX_STEP_UP_AGE + TimeDelta::seconds(1)),
        ];
        for age in bad {
            let failure = Failure::from(raw(age).into_policy().expect_err("refused"));
            assert_eq!(failure.id, "POLICY-InvalidStepUpAge", "{age:?}");
            assert_eq!(failure.kind, crate::ErrorKind::InvalidArgument);
        }
    }

    #[test]
    fn a_policy_scope_is_the_instance_unless_an_organization_is_named() {
        assert_eq!(policy_scope(None), Ok(Scope::Instance));
        assert_eq!(policy_scope(Some("org-a".into())), Ok(Scope::Org(OrgId::new("org-a").expect("valid"))));
        let refused = Failure::from(policy_scope(Some("has space".into())).expect_err("refused"));
        assert_eq!(refused.id, "ORG-InvalidId");
    }

    #[test]
    fn debug_output_never_shows_the_code() {
        let raw = RawSessionChange { check_otp_sms: Some("424242".into()), ..RawSessionChange::default() };
        let shown = format!("{raw:?}");
        assert!(!shown.contains("424242") && shown.contains("Some(<redacted>)"), "{shown}");
    }

    #[test]
    fn unsupported_session_input_is_named_in_the_protos_order() {
        let all = UnsupportedSessionInput {
            password: true,
            web_auth_n: true,
            idp_intent: true,
            totp: true,
            otp_email: true,
            recovery_code: true,
            challenge_web_auth_n: true,
            challenge_otp_email: true,
        };
        assert_eq!(
            all.fields(),
            [
                "checks.password",
                "checks.webAuthN",
                "checks.idpIntent",
                "checks.totp",
                "checks.otpEmail",
                "checks.recoveryCode",
                "challenges.webAuthN",
                "challenges.otpEmail"
            ]
        );
        assert!(UnsupportedSessionInput { totp: false, ..UnsupportedSessionInput::default() }.fields().is_empty());
    }

    #[test]
    fn a_session_change_refuses_unsupported_fields_first_and_checks_the_user_oneof() {
        let unsupported = RawSessionChange {
            unsupported: vec!["checks.password", "challenges.webAuthN"],
            check_user: Some(RawUserCheck::default()),
            ..RawSessionChange::default()
        };
        let failure = unsupported.into_change().expect_err("refused");
        assert_eq!(failure.id, "SESSION-Unsupported");
        assert!(failure.message.starts_with("checks.password is not supported"), "{}", failure.message);

        let user = |user_id: Option<&str>, login_name: Option<&str>| {
            RawSessionChange {
                check_user: Some(RawUserCheck {
                    user_id: user_id.map(str::to_owned),
                    login_name: login_name.map(str::to_owned),
                }),
                ..RawSessionChange::default()
            }
            .into_change()
            .map(|change| change.check_user)
            .map_err(|failure| failure.id)
        };
        assert_eq!(user(Some("alice"), None), Ok(Some(UserCheck::UserId(UserId::new("alice").expect("valid")))));
        assert_eq!(user(None, Some("alice@example.com")), Ok(Some(UserCheck::LoginName("alice@example.com".into()))));
        assert_eq!(user(Some("a"), Some("b")), Err("REQ-OneOf"));
        assert_eq!(user(None, None), Err("REQ-MissingField"));
        assert_eq!(user(Some(""), None), Err("USER-InvalidId"));
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
