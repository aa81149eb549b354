//! Protobuf messages to commands and answers back. Checks live in `application::input`;
//! this module only moves fields.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use factors_application::input::{RawContact, RawCreateUser, RawSessionChange, RawUserCheck, UnsupportedSessionInput};
use factors_application::use_cases::get_user::UserView;
use factors_application::use_cases::sessions::{SessionDetails, SessionView};
use factors_application::{Details, InvalidInput, RequestScope};
use factors_domain::{OtpSmsAuthenticator, UserState, VerificationCode};
use factors_wire::RequestError;
use prost_types::value::Kind;

use crate::pb::zitadel::object::v2 as object_v2;
use crate::pb::zitadel::object::v3alpha::{Instance, Organization, Owner, OwnerType, instance, organization};
use crate::pb::zitadel::resources::object::v3alpha as object;
use crate::pb::zitadel::resources::user::v3alpha as user;
use crate::pb::zitadel::session::v2 as session;

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(i32::MAX),
    }
}

pub fn details(details: Details) -> object::Details {
    object::Details {
        id: details.id.into_string(),
        created: Some(timestamp(details.created)),
        changed: Some(timestamp(details.changed)),
        owner: Some(Owner { r#type: OwnerType::Org.into(), id: details.owner.into_string() }),
    }
}

/// The `instance` and `organization` selectors of a request.
///
/// # Errors
/// A bad organization id.
pub fn scope(instance: Option<Instance>, organization: Option<Organization>) -> Result<RequestScope, InvalidInput> {
    let (instance_id, instance_domain) = match instance.and_then(|i| i.property) {
        Some(instance::Property::Id(id)) => (Some(id), None),
        Some(instance::Property::Domain(domain)) => (None, Some(domain)),
        None => (None, None),
    };
    let (org_id, org_domain) = match organization.and_then(|o| o.property) {
        Some(organization::Property::OrgId(id)) => (Some(id), None),
        Some(organization::Property::OrgDomain(domain)) => (None, Some(domain)),
        None => (None, None),
    };
    RequestScope::from_selectors(instance_id, instance_domain, org_id, org_domain)
}

pub fn set_phone(phone: user::SetPhone) -> RawContact {
    use user::set_phone::Verification;
    let verification = phone.verification;
    RawContact {
        value: Some(phone.number),
        send_code: matches!(verification, Some(Verification::SendCode(_))),
        return_code: matches!(verification, Some(Verification::ReturnCode(_))),
        is_verified: match verification {
            Some(Verification::IsVerified(verified)) => Some(verified),
            _ => None,
        },
    }
}

pub fn set_email(email: user::SetEmail) -> RawContact {
    use user::set_email::Verification;
    let verification = email.verification;
    RawContact {
        value: Some(email.address),
        send_code: matches!(verification, Some(Verification::SendCode(_))),
        return_code: matches!(verification, Some(Verification::ReturnCode(_))),
        is_verified: match verification {
            Some(Verification::IsVerified(verified)) => Some(verified),
            _ => None,
        },
    }
}

pub fn create_user(message: user::CreateUser) -> RawCreateUser {
    let contact = message.contact.unwrap_or_default();
    let authenticators_given = message.authenticators.is_some_and(|a| !a.usernames.is_empty() || a.password.is_some());
    RawCreateUser {
        user_id: message.user_id,
        schema_id: Some(message.schema_id),
        data: message.data.map_or(serde_json::Value::Null, |s| struct_to_json(&s)),
        email: contact.email.map(set_email),
        phone: contact.phone.map(set_phone),
        authenticators_given,
    }
}

// ----- google.protobuf.Struct <-> JSON ------------------------------------------------------

pub fn struct_to_json(value: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(value.fields.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect())
}

fn value_to_json(value: &prost_types::Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(*n).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::StructValue(s)) => struct_to_json(s),
        Some(Kind::ListValue(list)) => serde_json::Value::Array(list.values.iter().map(value_to_json).collect()),
    }
}

pub fn json_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct { fields: map.iter().map(|(k, v)| (k.clone(), json_to_value(v))).collect() }
}

fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => {
            Kind::ListValue(prost_types::ListValue { values: items.iter().map(json_to_value).collect() })
        }
        serde_json::Value::Object(map) => Kind::StructValue(json_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

// ----- GetUser ----------------------------------------------------------------------------

fn state(state: UserState) -> user::State {
    match state {
        UserState::Active => user::State::UserStateActive,
        UserState::Inactive => user::State::UserStateInactive,
        UserState::Deleted => user::State::UserStateDeleted,
        UserState::Locked => user::State::UserStateLocked,
    }
}

fn otp_sms(a: &OtpSmsAuthenticator) -> user::Otpsms {
    user::Otpsms { otp_sms_id: a.id.to_string(), phone: a.phone.as_e164().to_owned(), is_verified: a.verified }
}

pub fn get_user(view: UserView) -> user::GetUser {
    let u = view.user;
    user::GetUser {
        details: Some(details(Details::of(&u))),
        schema: Some(user::GetSchema { id: u.schema_id.to_string(), r#type: String::new(), revision: 0 }),
        data: Some(json_to_struct(u.data.as_map())),
        contact: Some(user::Contact {
            email: u
                .contact
                .email
                .map(|e| user::Email { address: e.address.as_str().to_owned(), is_verified: e.verified }),
            phone: u
                .contact
                .phone
                .map(|p| user::Phone { number: p.number.as_e164().to_owned(), is_verified: p.verified }),
        }),
        authenticators: Some(user::Authenticators {
            otp_sms: view.otp_sms.iter().map(otp_sms).collect(),
            ..user::Authenticators::default()
        }),
        state: state(u.state).into(),
    }
}

// ----- sessions ---------------------------------------------------------------------------

/// `zitadel.object.v2.Details` of a session.
pub fn session_details(details: SessionDetails) -> object_v2::Details {
    object_v2::Details {
        sequence: details.sequence,
        change_date: Some(timestamp(details.change_date)),
        resource_owner: details.resource_owner,
        creation_date: Some(timestamp(details.creation_date)),
    }
}

/// A `lifetime`.
///
/// # Errors
/// [`RequestError::InvalidProto`] when the fields do not make a `google.protobuf.Duration`.
pub fn lifetime(duration: prost_types::Duration) -> Result<TimeDelta, RequestError> {
    factors_application::input::duration(duration.seconds, duration.nanos).ok_or(RequestError::InvalidProto)
}

/// The checks and challenges present in a request that factors does not support, as JSON
/// paths, in the proto's order.
fn unsupported(checks: Option<&session::Checks>, challenges: Option<&session::RequestChallenges>) -> Vec<&'static str> {
    let present = |check: fn(&session::Checks) -> bool| checks.is_some_and(check);
    let challenged = |challenge: fn(&session::RequestChallenges) -> bool| challenges.is_some_and(challenge);
    UnsupportedSessionInput {
        password: present(|c| c.password.is_some()),
        web_auth_n: present(|c| c.web_auth_n.is_some()),
        idp_intent: present(|c| c.idp_intent.is_some()),
        totp: present(|c| c.totp.is_some()),
        otp_email: present(|c| c.otp_email.is_some()),
        recovery_code: present(|c| c.recovery_code.is_some()),
        challenge_web_auth_n: challenged(|c| c.web_auth_n.is_some()),
        challenge_otp_email: challenged(|c| c.otp_email.is_some()),
    }
    .fields()
}

/// The body of CreateSession or SetSession.
///
/// # Errors
/// [`RequestError::InvalidProto`] for a `lifetime` that is no duration.
pub fn session_change(
    checks: Option<session::Checks>,
    metadata: HashMap<String, Vec<u8>>,
    challenges: Option<session::RequestChallenges>,
    lifetime: Option<prost_types::Duration>,
) -> Result<RawSessionChange, RequestError> {
    use session::check_user::Search;
    let unsupported = unsupported(checks.as_ref(), challenges.as_ref());
    let checks = checks.unwrap_or_default();
    Ok(RawSessionChange {
        unsupported,
        check_user: checks.user.map(|user| match user.search {
            Some(Search::UserId(id)) => RawUserCheck { user_id: Some(id), login_name: None },
            Some(Search::LoginName(name)) => RawUserCheck { user_id: None, login_name: Some(name) },
            None => RawUserCheck::default(),
        }),
        check_otp_sms: checks.otp_sms.map(|otp| otp.code),
        challenge_otp_sms: challenges.and_then(|c| c.otp_sms).map(|otp| otp.return_code),
        metadata: metadata.into_iter().collect(),
        lifetime: lifetime.map(self::lifetime).transpose()?,
    })
}

/// The `challenges` of a write's answer: present when the request asked for a challenge,
/// as ZITADEL answers, with the OTP SMS code when `returnCode` asked for it.
pub fn challenges(requested: bool, otp_sms_code: Option<VerificationCode>) -> Option<session::Challenges> {
    (requested || otp_sms_code.is_some()).then(|| session::Challenges {
        otp_sms: otp_sms_code.map(|code| code.expose().to_owned()),
        ..session::Challenges::default()
    })
}

/// A session as GetSession shows it. factors keeps no user agent, login or display names.
pub fn session(view: SessionView) -> session::Session {
    session::Session {
        id: view.id.into_string(),
        creation_date: Some(timestamp(view.creation_date)),
        change_date: Some(timestamp(view.change_date)),
        sequence: view.sequence,
        factors: Some(session::Factors {
            user: view.user.map(|user| session::UserFactor {
                verified_at: Some(timestamp(user.verified_at)),
                id: user.id.into_string(),
                organization_id: user.organization_id.into_string(),
                ..session::UserFactor::default()
            }),
            otp_sms: view.otp_sms_verified_at.map(|at| session::OtpFactor { verified_at: Some(timestamp(at)) }),
            ..session::Factors::default()
        }),
        metadata: view.metadata.into_iter().collect(),
        user_agent: None,
        expiration_date: view.expiration_date.map(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unsupported_check_and_challenge_is_named_in_the_protos_order() {
        let checks = session::Checks {
            password: Some(session::CheckPassword::default()),
            web_auth_n: Some(session::CheckWebAuthN::default()),
            idp_intent: Some(session::CheckIdpIntent::default()),
            totp: Some(session::CheckTotp::default()),
            otp_email: Some(session::CheckOtp::default()),
            recovery_code: Some(session::CheckRecoveryCode::default()),
            user: Some(session::CheckUser::default()),
            otp_sms: Some(session::CheckOtp::default()),
        };
        let challenges = session::RequestChallenges {
            web_auth_n: Some(session::request_challenges::WebAuthN::default()),
            otp_sms: Some(session::request_challenges::Otpsms::default()),
            otp_email: Some(session::request_challenges::OtpEmail::default()),
        };
        assert_eq!(
            unsupported(Some(&checks), Some(&challenges)),
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
        let supported = session::Checks { user: checks.user, otp_sms: checks.otp_sms, ..session::Checks::default() };
        let otp_sms = session::RequestChallenges { otp_sms: challenges.otp_sms, ..Default::default() };
        assert!(unsupported(Some(&supported), Some(&otp_sms)).is_empty());
    }

    #[test]
    fn a_lifetime_must_be_a_duration_and_may_be_negative() {
        let lifetime = |seconds, nanos| lifetime(prost_types::Duration { seconds, nanos });
        assert_eq!(lifetime(300, 0), Ok(TimeDelta::seconds(300)));
        assert_eq!(lifetime(-1, 0), Ok(TimeDelta::seconds(-1)), "the use case refuses it");
        assert_eq!(lifetime(1, -1), Err(RequestError::InvalidProto));
    }

    #[test]
    fn user_data_survives_the_trip_through_struct() {
        let data = serde_json::json!({"name": "Ada", "age": 36.0, "tags": ["a", true, null], "nested": {"x": "y"}});
        let map = data.as_object().expect("object");
        assert_eq!(struct_to_json(&json_to_struct(map)), data);
    }

    #[test]
    fn timestamps_keep_their_nanoseconds() {
        let at = DateTime::parse_from_rfc3339("2024-11-22T09:31:02.114123Z").expect("valid").with_timezone(&Utc);
        assert_eq!(timestamp(at), prost_types::Timestamp { seconds: 1_732_267_862, nanos: 114_123_000 });
    }
}
