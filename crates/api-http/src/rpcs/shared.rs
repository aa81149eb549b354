//! What several RPCs share: the handlers' [`Answer`], the timestamp format, the scope
//! selectors, `Details` answers, `SetPhone`, and the sessions' checks, challenges and
//! details.

use std::collections::BTreeMap;
use std::fmt;

use axum::Json;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use factors_application::input::{RawContact, RawSessionChange, RawUserCheck, UnsupportedSessionInput, parse_duration};
use factors_application::use_cases::sessions::SessionDetails;
use factors_application::{Details, InvalidInput, RequestScope};
use factors_domain::{PhoneNumber, Verification, VerificationCode, redacted};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// A handler's answer: its JSON message, or the contract's error.
pub type Answer<T> = Result<Json<T>, ApiError>;

/// A protobuf JSON timestamp: RFC 3339 in UTC with `Z`, and 0, 3, 6 or 9 fractional digits.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

// ----- selectors -------------------------------------------------------------------------

/// The `instance` and `organization` selectors, as query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    /// The instance's id; another instance answers NOT_FOUND. At most one of
    /// `instance.id` and `instance.domain`: both answer INVALID_ARGUMENT.
    #[serde(rename = "instance.id")]
    #[param(rename = "instance.id")]
    pub instance_id: Option<String>,
    /// One of the instance's domains.
    #[serde(rename = "instance.domain")]
    #[param(rename = "instance.domain")]
    pub instance_domain: Option<String>,
    /// The organization the user must be in (also `organization.org_id`). At most one of
    /// `organization.orgId` and `organization.orgDomain`: both answer INVALID_ARGUMENT.
    /// CreateUser needs one of them.
    #[serde(rename = "organization.orgId", alias = "organization.org_id")]
    #[param(rename = "organization.orgId")]
    pub org_id: Option<String>,
    /// A domain of that organization (also `organization.org_domain`).
    #[serde(rename = "organization.orgDomain", alias = "organization.org_domain")]
    #[param(rename = "organization.orgDomain")]
    pub org_domain: Option<String>,
}

impl TryFrom<ScopeQuery> for RequestScope {
    type Error = InvalidInput;

    fn try_from(query: ScopeQuery) -> Result<Self, InvalidInput> {
        RequestScope::from_selectors(query.instance_id, query.instance_domain, query.org_id, query.org_domain)
    }
}

// ----- shared output ---------------------------------------------------------------------

/// `zitadel.resources.object.v3alpha.Details`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "69629012906488334", "created": "2024-11-22T09:27:10.426Z",
    "changed": "2024-11-22T09:31:02.114Z", "owner": {"type": "OWNER_TYPE_ORG", "id": "69629023906488334"}}))]
pub struct DetailsJson {
    /// The user's id.
    pub id: String,
    /// When the user was created.
    pub created: String,
    /// When this change was committed.
    pub changed: String,
    pub owner: OwnerJson,
}

/// `zitadel.object.v3alpha.Owner`.
#[derive(Debug, Serialize, ToSchema)]
pub struct OwnerJson {
    #[serde(rename = "type")]
    #[schema(example = "OWNER_TYPE_ORG")]
    pub owner_type: &'static str,
    pub id: String,
}

impl From<Details> for DetailsJson {
    fn from(details: Details) -> Self {
        Self {
            id: details.id.into_string(),
            created: timestamp(details.created),
            changed: timestamp(details.changed),
            owner: OwnerJson { owner_type: "OWNER_TYPE_ORG", id: details.owner.into_string() },
        }
    }
}

/// Answers that hold only `details`: DeleteUser, VerifyOTPSMSRegistration, RemoveOTPSMSAuthenticator.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetailsResponse {
    pub details: DetailsJson,
}

impl From<Details> for DetailsResponse {
    fn from(details: Details) -> Self {
        Self { details: details.into() }
    }
}

// ----- verification oneof ----------------------------------------------------------------

/// An empty message (`SendPhoneVerificationCode`, `ReturnPhoneVerificationCode`, ...).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Empty {}

/// `SetPhone`: a number and how to prove it (at most one of the three).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"number": "+41 79 123 45 67", "returnCode": {}}))]
pub struct SetPhone {
    /// In international form; normalised to E.164.
    pub number: Option<String>,
    /// Send the code by SMS (the default).
    #[serde(alias = "send_code")]
    pub send_code: Option<Empty>,
    /// Return the code in the answer instead (needs write permission; never on oneself).
    #[serde(alias = "return_code")]
    pub return_code: Option<Empty>,
    /// Store the number as verified (needs write permission; never on oneself). Only `true`.
    #[serde(alias = "is_verified")]
    pub is_verified: Option<bool>,
}

impl From<SetPhone> for RawContact {
    fn from(phone: SetPhone) -> Self {
        Self {
            value: phone.number,
            send_code: phone.send_code.is_some(),
            return_code: phone.return_code.is_some(),
            is_verified: phone.is_verified,
        }
    }
}

pub fn parse_phone(body: SetPhone) -> Result<(PhoneNumber, Verification), InvalidInput> {
    RawContact::from(body).phone("number")
}

// ----- sessions: checks and challenges ----------------------------------------------------
//
// Sessions sign a user in: `checks.user` (by id), then `checks.otpSms` with the code that
// `challenges.otpSms` sent. Each write answers a new session token. Who may do what to a
// session is the use cases' decision; the bodies of the `body: "*"` mappings may be empty.

/// A `google.protobuf.Duration` in protobuf JSON (`"300s"`, `"1.5s"`); `null` is unset.
/// Anything else is not of the request's shape.
pub(super) fn duration_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<TimeDelta>, D::Error> {
    let text: Option<String> = Option::deserialize(deserializer)?;
    text.map(|text| parse_duration(&text).ok_or_else(|| serde::de::Error::custom("not a protobuf JSON duration")))
        .transpose()
}

/// Bytes in protobuf JSON: base64, standard or URL-safe, padded or not.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::alphabet::{STANDARD as STANDARD_ALPHABET, URL_SAFE};
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const LENIENT: GeneralPurpose = GeneralPurpose::new(&STANDARD_ALPHABET, CONFIG);
    const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&URL_SAFE, CONFIG);
    LENIENT.decode(text).or_else(|_| LENIENT_URL_SAFE.decode(text)).ok()
}

/// A `map<string, bytes>` in protobuf JSON: base64 values; `null` is empty.
pub(super) fn metadata_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
    let encoded: Option<BTreeMap<String, String>> = Option::deserialize(deserializer)?;
    encoded
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| match base64_decode(&value) {
            Some(bytes) => Ok((key, bytes)),
            None => Err(serde::de::Error::custom("a metadata value is not base64")),
        })
        .collect()
}

/// `CheckUser`: the user by id (`loginName` answers INVALID_ARGUMENT: users have none).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"userId": "69629012906488334"}))]
pub struct CheckUserJson {
    #[serde(alias = "user_id")]
    pub user_id: Option<String>,
    #[serde(alias = "login_name")]
    pub login_name: Option<String>,
}

/// `CheckOTP`. Its `Debug` output leaves the code out.
#[derive(Default, Deserialize, ToSchema)]
pub struct CheckOtpJson {
    /// The code the SMS carried.
    #[schema(example = "123456")]
    pub code: Option<String>,
}

/// `Checks`: factors checks `user` and `otpSms`; any other check present answers
/// INVALID_ARGUMENT (`SESSION-Unsupported`) naming it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChecksJson {
    pub user: Option<CheckUserJson>,
    /// Not supported.
    #[schema(value_type = Option<Object>)]
    pub password: Option<serde_json::Value>,
    /// Not supported.
    #[serde(rename = "webAuthN", alias = "web_auth_n")]
    #[schema(value_type = Option<Object>)]
    pub web_auth_n: Option<serde_json::Value>,
    /// Not supported.
    #[serde(alias = "idp_intent")]
    #[schema(value_type = Option<Object>)]
    pub idp_intent: Option<serde_json::Value>,
    /// Not supported.
    #[schema(value_type = Option<Object>)]
    pub totp: Option<serde_json::Value>,
    #[serde(alias = "otp_sms")]
    pub otp_sms: Option<CheckOtpJson>,
    /// Not supported.
    #[serde(alias = "otp_email")]
    #[schema(value_type = Option<Object>)]
    pub otp_email: Option<serde_json::Value>,
    /// Not supported.
    #[serde(alias = "recovery_code")]
    #[schema(value_type = Option<Object>)]
    pub recovery_code: Option<serde_json::Value>,
}

/// `RequestChallenges.OTPSMS`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtpSmsChallengeJson {
    /// Answer the code in `challenges.otpSms` instead of sending the SMS.
    #[serde(alias = "return_code")]
    pub return_code: Option<bool>,
}

/// `RequestChallenges`: factors supports `otpSms`; any other challenge present answers
/// INVALID_ARGUMENT (`SESSION-Unsupported`) naming it.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestChallengesJson {
    /// Not supported.
    #[serde(rename = "webAuthN", alias = "web_auth_n")]
    #[schema(value_type = Option<Object>)]
    pub web_auth_n: Option<serde_json::Value>,
    #[serde(alias = "otp_sms")]
    pub otp_sms: Option<OtpSmsChallengeJson>,
    /// Not supported.
    #[serde(alias = "otp_email")]
    #[schema(value_type = Option<Object>)]
    pub otp_email: Option<serde_json::Value>,
}

/// What CreateSession and SetSession share, in the raw form both deliveries check.
pub(super) fn session_change(
    checks: Option<ChecksJson>,
    challenges: Option<RequestChallengesJson>,
    metadata: BTreeMap<String, Vec<u8>>,
    lifetime: Option<TimeDelta>,
) -> RawSessionChange {
    let checks = checks.unwrap_or_default();
    let challenges = challenges.unwrap_or_default();
    let unsupported = UnsupportedSessionInput {
        password: checks.password.is_some(),
        web_auth_n: checks.web_auth_n.is_some(),
        idp_intent: checks.idp_intent.is_some(),
        totp: checks.totp.is_some(),
        otp_email: checks.otp_email.is_some(),
        recovery_code: checks.recovery_code.is_some(),
        challenge_web_auth_n: challenges.web_auth_n.is_some(),
        challenge_otp_email: challenges.otp_email.is_some(),
    };
    RawSessionChange {
        unsupported: unsupported.fields(),
        check_user: checks.user.map(|user| RawUserCheck { user_id: user.user_id, login_name: user.login_name }),
        check_otp_sms: checks.otp_sms.map(|otp| otp.code.unwrap_or_default()),
        challenge_otp_sms: challenges.otp_sms.map(|otp| otp.return_code.unwrap_or_default()),
        metadata,
        lifetime,
    }
}

impl fmt::Debug for CheckOtpJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckOtpJson").field("code", &redacted(self.code.as_ref())).finish()
    }
}

// ----- sessions: output ------------------------------------------------------------------

/// `zitadel.object.v2.Details`. `sequence` is a string, as protobuf JSON writes 64-bit
/// integers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SessionDetails, example = json!({"sequence": "2", "changeDate": "2024-11-22T09:31:02.114Z",
    "resourceOwner": "69629023906488334", "creationDate": "2024-11-22T09:27:10.426Z"}))]
pub struct SessionDetailsJson {
    pub sequence: String,
    pub change_date: String,
    /// The instance the session belongs to.
    pub resource_owner: String,
    pub creation_date: String,
}

impl From<SessionDetails> for SessionDetailsJson {
    fn from(details: SessionDetails) -> Self {
        Self {
            sequence: details.sequence.to_string(),
            change_date: timestamp(details.change_date),
            resource_owner: details.resource_owner,
            creation_date: timestamp(details.creation_date),
        }
    }
}

/// `Challenges`: present when the request asked for a challenge.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChallengesJson {
    /// The OTP SMS code, when `returnCode` asked for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "123456")]
    pub otp_sms: Option<String>,
}

impl ChallengesJson {
    /// The `challenges` of a write's answer: present when the request asked for a
    /// challenge, as ZITADEL answers.
    pub fn of(requested: bool, otp_sms_code: Option<VerificationCode>) -> Option<Self> {
        (requested || otp_sms_code.is_some())
            .then(|| Self { otp_sms: otp_sms_code.map(|code| code.expose().to_owned()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_rfc3339_utc_with_0_3_6_or_9_digits() {
        let base = Utc.with_ymd_and_hms(2024, 11, 22, 9, 27, 10).single().expect("valid");
        let cases = [
            (0, "2024-11-22T09:27:10Z"),
            (426_000_000, "2024-11-22T09:27:10.426Z"),
            (426_100_000, "2024-11-22T09:27:10.426100Z"),
            (426_100_001, "2024-11-22T09:27:10.426100001Z"),
        ];
        for (nanos, expected) in cases {
            assert_eq!(timestamp(base + TimeDelta::nanoseconds(nanos)), expected);
        }
    }

    #[test]
    fn set_phone_accepts_camel_and_snake_case_and_at_most_one_verification() {
        let parse = |json: &str| {
            serde_json::from_str::<SetPhone>(json)
                .map_err(|_| ())
                .and_then(|p| parse_phone(p).map(|(_, v)| v).map_err(|_| ()))
        };
        assert_eq!(parse(r#"{"number": "+41791234567"}"#), Ok(Verification::SendCode));
        assert_eq!(parse(r#"{"number": "+41791234567", "return_code": {}}"#), Ok(Verification::ReturnCode));
        assert_eq!(
            parse(r#"{"number": "+41791234567", "isVerified": true, "extra": 1}"#),
            Ok(Verification::IsVerified)
        );
        assert_eq!(parse(r#"{"number": "+41791234567", "sendCode": {}, "returnCode": {}}"#), Err(()));
        assert_eq!(parse(r#"{"number": "+41791234567", "isVerified": false}"#), Err(()));
    }
}
