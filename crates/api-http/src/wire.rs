//! The JSON messages of the REST mapping, apart from the domain: protobuf JSON names
//! (lowerCamelCase out; lowerCamelCase or the original snake_case in; unknown fields
//! ignored) and their conversions into commands, which is where input gets checked.

use chrono::{DateTime, SecondsFormat, Utc};
use factors_application::input::{RawContact, RawCreateUser};
use factors_application::use_cases::Verification;
use factors_application::use_cases::add_otp_sms::AddOtpSmsOutput;
use factors_application::use_cases::create_user::CreateUserOutput;
use factors_application::use_cases::get_user::UserView;
use factors_application::{Details, InvalidInput, RequestScope};
use factors_domain::{OtpSmsAuthenticator, PhoneNumber, UserState, VerificationCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A protobuf JSON timestamp: RFC 3339 in UTC with `Z`, and 0, 3, 6 or 9 fractional digits.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

// ----- selectors -------------------------------------------------------------------------

/// The `instance` and `organization` selectors, as query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScopeQuery {
    /// The instance's id; another instance answers NOT_FOUND.
    #[serde(rename = "instance.id")]
    #[param(rename = "instance.id")]
    pub instance_id: Option<String>,
    /// One of the instance's domains.
    #[serde(rename = "instance.domain")]
    #[param(rename = "instance.domain")]
    pub instance_domain: Option<String>,
    /// The organization the user must be in (also `organization.org_id`).
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

/// `SendEmailVerificationCode`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendEmailCode {
    #[serde(alias = "url_template")]
    pub url_template: Option<String>,
}

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

/// `SetEmail`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetEmail {
    pub address: Option<String>,
    #[serde(alias = "send_code")]
    pub send_code: Option<SendEmailCode>,
    #[serde(alias = "return_code")]
    pub return_code: Option<Empty>,
    #[serde(alias = "is_verified")]
    pub is_verified: Option<bool>,
}

impl From<SetEmail> for RawContact {
    fn from(email: SetEmail) -> Self {
        Self {
            value: email.address,
            send_code: email.send_code.is_some(),
            return_code: email.return_code.is_some(),
            is_verified: email.is_verified,
        }
    }
}

// ----- CreateUser ------------------------------------------------------------------------

/// `SetContact`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct SetContact {
    pub email: Option<SetEmail>,
    pub phone: Option<SetPhone>,
}

/// `CreateUser`, the body of CreateUser.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"schemaId": "human", "data": {"givenName": "Ada"}, "contact": {"email": {"address": "ada@example.com", "returnCode": {}}}}))]
pub struct CreateUserBody {
    /// The user schema the data follows; stored as given.
    #[serde(alias = "schema_id")]
    pub schema_id: Option<String>,
    /// Free-form user data (a JSON object).
    #[schema(value_type = Object)]
    pub data: Option<serde_json::Value>,
    pub contact: Option<SetContact>,
    /// Usernames and passwords: not supported; anything given answers INVALID_ARGUMENT.
    #[schema(value_type = Object)]
    pub authenticators: Option<serde_json::Value>,
    /// The id to give the user; minted when absent.
    #[serde(alias = "user_id")]
    pub user_id: Option<String>,
}

/// Whether a JSON value says anything: `null`, `{}`, `[]` and objects of those do not.
fn says_something(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Object(members) => members.values().any(says_something),
        _ => true,
    }
}

impl From<CreateUserBody> for RawCreateUser {
    fn from(body: CreateUserBody) -> Self {
        let contact = body.contact.unwrap_or_default();
        Self {
            user_id: body.user_id,
            schema_id: body.schema_id,
            data: body.data.unwrap_or_default(),
            email: contact.email.map(RawContact::from),
            phone: contact.phone.map(RawContact::from),
            authenticators_given: body.authenticators.as_ref().is_some_and(says_something),
        }
    }
}

/// `CreateUserResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserResponse {
    pub details: DetailsJson,
    /// The e-mail code, when `returnCode` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_code: Option<String>,
    /// The phone code, when `returnCode` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_code: Option<String>,
}

impl From<CreateUserOutput> for CreateUserResponse {
    fn from(output: CreateUserOutput) -> Self {
        Self {
            details: output.details.into(),
            email_code: output.email_code.map(|c| c.expose().to_owned()),
            phone_code: output.phone_code.map(|c| c.expose().to_owned()),
        }
    }
}

// ----- AddOTPSMSAuthenticator / VerifyOTPSMSRegistration -----------------------------------

pub fn parse_phone(body: SetPhone) -> Result<(PhoneNumber, Verification), InvalidInput> {
    RawContact::from(body).phone("number")
}

/// `AddOTPSMSAuthenticatorResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AddOtpSmsResponse {
    pub details: DetailsJson,
    #[schema(example = "69629026806489455")]
    pub otp_sms_id: String,
    /// The code, when `returnCode` was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_code: Option<String>,
}

impl From<AddOtpSmsOutput> for AddOtpSmsResponse {
    fn from(output: AddOtpSmsOutput) -> Self {
        Self {
            details: output.details.into(),
            otp_sms_id: output.otp_sms_id.into_string(),
            verification_code: output.verification_code.map(|c| c.expose().to_owned()),
        }
    }
}

/// The body of VerifyOTPSMSRegistration: the code as a JSON string (`"123456"`); an
/// object `{"code": "123456"}` is accepted too.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum CodeBody {
    Code(String),
    Object { code: String },
}

impl TryFrom<CodeBody> for VerificationCode {
    type Error = InvalidInput;

    fn try_from(body: CodeBody) -> Result<Self, InvalidInput> {
        let (CodeBody::Code(code) | CodeBody::Object { code }) = body;
        Ok(VerificationCode::parse(&code)?)
    }
}

// ----- GetUser ---------------------------------------------------------------------------

/// `GetUserResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetUserResponse {
    pub user: UserJson,
}

/// `GetUser`. Unset fields are emitted as protobuf JSON does with `EmitUnpopulated`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserJson {
    pub details: DetailsJson,
    pub schema: SchemaJson,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub contact: ContactJson,
    pub authenticators: AuthenticatorsJson,
    #[schema(example = "USER_STATE_ACTIVE")]
    pub state: &'static str,
}

/// `GetSchema`: factors stores the schema's id only.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaJson {
    pub id: String,
    #[serde(rename = "type")]
    pub schema_type: String,
    pub revision: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactJson {
    pub email: Option<EmailJson>,
    pub phone: Option<PhoneJson>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailJson {
    pub address: String,
    pub is_verified: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhoneJson {
    pub number: String,
    pub is_verified: bool,
}

/// `Authenticators`: factors manages OTP SMS; the other kinds are always empty.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticatorsJson {
    #[schema(value_type = Vec<Object>)]
    pub usernames: Vec<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub password: Option<serde_json::Value>,
    #[serde(rename = "webAuthN")]
    #[schema(value_type = Vec<Object>)]
    pub web_auth_n: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub totps: Vec<serde_json::Value>,
    pub otp_sms: Vec<OtpSmsJson>,
    #[schema(value_type = Vec<Object>)]
    pub otp_email: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub authentication_keys: Vec<serde_json::Value>,
    #[schema(value_type = Vec<Object>)]
    pub identity_providers: Vec<serde_json::Value>,
}

/// `OTPSMS`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtpSmsJson {
    pub otp_sms_id: String,
    /// E.164.
    pub phone: String,
    pub is_verified: bool,
}

impl From<&OtpSmsAuthenticator> for OtpSmsJson {
    fn from(a: &OtpSmsAuthenticator) -> Self {
        Self { otp_sms_id: a.id.to_string(), phone: a.phone.as_e164().to_owned(), is_verified: a.verified }
    }
}

pub fn state_name(state: UserState) -> &'static str {
    match state {
        UserState::Active => "USER_STATE_ACTIVE",
        UserState::Inactive => "USER_STATE_INACTIVE",
        UserState::Deleted => "USER_STATE_DELETED",
        UserState::Locked => "USER_STATE_LOCKED",
    }
}

impl From<UserView> for GetUserResponse {
    fn from(view: UserView) -> Self {
        let user = view.user;
        Self {
            user: UserJson {
                details: Details::of(&user).into(),
                schema: SchemaJson { id: user.schema_id.to_string(), schema_type: String::new(), revision: 0 },
                data: user.data.to_value(),
                contact: ContactJson {
                    email: user
                        .contact
                        .email
                        .map(|e| EmailJson { address: e.address.as_str().to_owned(), is_verified: e.verified }),
                    phone: user
                        .contact
                        .phone
                        .map(|p| PhoneJson { number: p.number.as_e164().to_owned(), is_verified: p.verified }),
                },
                authenticators: AuthenticatorsJson {
                    usernames: vec![],
                    password: None,
                    web_auth_n: vec![],
                    totps: vec![],
                    otp_sms: view.otp_sms.iter().map(OtpSmsJson::from).collect(),
                    otp_email: vec![],
                    authentication_keys: vec![],
                    identity_providers: vec![],
                },
                state: state_name(user.state),
            },
        }
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
            assert_eq!(timestamp(base + chrono::TimeDelta::nanoseconds(nanos)), expected);
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

    #[test]
    fn empty_authenticators_are_not_a_request_for_them() {
        assert!(!says_something(&serde_json::json!({"usernames": [], "password": null})));
        assert!(says_something(&serde_json::json!({"usernames": [{"username": "ada"}]})));
    }
}
