//! The JSON messages of the REST mapping, apart from the domain: protobuf JSON names
//! (lowerCamelCase out; lowerCamelCase or the original snake_case in; unknown fields
//! ignored) and their conversions into commands, which is where input gets checked.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use factors_application::input::{
    RawContact, RawCreateUser, RawLoginPolicy, RawSessionChange, RawUserCheck, UnsupportedSessionInput, parse_duration,
};
use factors_application::use_cases::add_otp_sms::AddOtpSmsOutput;
use factors_application::use_cases::create_user::CreateUserOutput;
use factors_application::use_cases::get_user::UserView;
use factors_application::use_cases::list_user_events::{EventCursor, EventsPage};
use factors_application::use_cases::login_policy::{PolicyOwner, PolicyView};
use factors_application::use_cases::sessions::{SessionDetails, SessionView, SessionWritten};
use factors_application::{Details, InvalidInput, RequestScope};
use factors_domain::{
    LoginPolicy, OtpSmsAuthenticator, PhoneNumber, PolicySource, UserState, Verification, VerificationCode, redacted,
};
use serde::{Deserialize, Deserializer, Serialize};
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
    /// The user schema the data follows; stored as given. Required: without it the
    /// request answers INVALID_ARGUMENT.
    #[serde(alias = "schema_id")]
    #[schema(required = true, nullable = false, value_type = String)]
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

// ----- sessions: input -------------------------------------------------------------------

/// A `google.protobuf.Duration` in protobuf JSON (`"300s"`, `"1.5s"`); `null` is unset.
/// Anything else is not of the request's shape.
fn duration_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<TimeDelta>, D::Error> {
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
fn metadata_in<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
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
fn session_change(
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

/// `CreateSessionRequest`, the body of CreateSession. `userAgent` is accepted and ignored:
/// factors keeps no user agents.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"checks": {"user": {"userId": "69629012906488334"}},
    "challenges": {"otpSms": {"returnCode": false}}, "metadata": {"device": "bGFwdG9w"}, "lifetime": "18000s"}))]
pub struct CreateSessionBody {
    pub checks: Option<ChecksJson>,
    /// Keys and base64 values to set; an empty value removes the key.
    #[serde(default, deserialize_with = "metadata_in")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub metadata: BTreeMap<String, Vec<u8>>,
    pub challenges: Option<RequestChallengesJson>,
    /// Accepted and ignored.
    #[serde(alias = "user_agent")]
    #[schema(value_type = Option<Object>)]
    pub user_agent: Option<serde_json::Value>,
    /// The session expires this long after the request (`"300s"`, `"1.5s"`).
    #[serde(default, deserialize_with = "duration_in")]
    #[schema(value_type = Option<String>, example = "18000s")]
    pub lifetime: Option<TimeDelta>,
}

impl From<CreateSessionBody> for RawSessionChange {
    fn from(body: CreateSessionBody) -> Self {
        session_change(body.checks, body.challenges, body.metadata, body.lifetime)
    }
}

/// `SetSessionRequest`, the body of SetSession; the session is the one of the path. Its
/// `Debug` output leaves the token out.
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"checks": {"otpSms": {"code": "123456"}}}))]
pub struct SetSessionBody {
    /// Deprecated upstream, and ignored.
    #[serde(alias = "session_token")]
    pub session_token: Option<String>,
    pub checks: Option<ChecksJson>,
    /// Keys and base64 values to set; an empty value removes the key.
    #[serde(default, deserialize_with = "metadata_in")]
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub metadata: BTreeMap<String, Vec<u8>>,
    pub challenges: Option<RequestChallengesJson>,
    /// The session expires this long after the request (`"300s"`, `"1.5s"`).
    #[serde(default, deserialize_with = "duration_in")]
    #[schema(value_type = Option<String>, example = "18000s")]
    pub lifetime: Option<TimeDelta>,
}

impl From<SetSessionBody> for RawSessionChange {
    fn from(body: SetSessionBody) -> Self {
        session_change(body.checks, body.challenges, body.metadata, body.lifetime)
    }
}

/// The body of DeleteSession, which may be absent. Its `Debug` output leaves the token out.
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteSessionBody {
    /// The session's current token, for a caller without `session.delete`.
    #[serde(alias = "session_token")]
    pub session_token: Option<String>,
}

/// The query of GetSession. Its `Debug` output leaves the token out.
#[derive(Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionTokenQuery {
    /// The session's current token, for a caller without `session.read` (also `session_token`).
    #[serde(rename = "sessionToken", alias = "session_token")]
    #[param(rename = "sessionToken")]
    pub session_token: Option<String>,
}

impl fmt::Debug for CheckOtpJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckOtpJson").field("code", &redacted(self.code.as_ref())).finish()
    }
}

impl fmt::Debug for SetSessionBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetSessionBody")
            .field("session_token", &redacted(self.session_token.as_ref()))
            .field("checks", &self.checks)
            .field("metadata", &self.metadata)
            .field("challenges", &self.challenges)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl fmt::Debug for DeleteSessionBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteSessionBody").field("session_token", &redacted(self.session_token.as_ref())).finish()
    }
}

impl fmt::Debug for SessionTokenQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTokenQuery").field("session_token", &redacted(self.session_token.as_ref())).finish()
    }
}

// ----- ListUserEvents (factors' own) ------------------------------------------------------

/// The paging of ListUserEvents, as query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsPageQuery {
    /// Events per page (also `page_size`): 0 or absent means 100; at most 1000, more
    /// answers INVALID_ARGUMENT.
    #[serde(rename = "pageSize", alias = "page_size")]
    #[param(rename = "pageSize", maximum = 1000)]
    pub page_size: Option<u32>,
    /// The `nextCursor` of the previous page; absent or empty for the first page. One this
    /// service did not give out answers INVALID_ARGUMENT.
    pub cursor: Option<String>,
}

/// One event of a user's audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"sequence": "3", "type": "user.human.mfa.otp.sms.removed", "actor": "admin",
    "creationDate": "2024-11-22T09:31:02.114Z", "payload": {"actor": "admin", "userId": "alice",
    "otpSmsId": "153716", "phone": "+41******567", "at": "2024-11-22T09:31:02.114Z"}}))]
pub struct UserEventJson {
    /// Its number among the events of the user id, a string (a 64-bit integer in protobuf JSON).
    pub sequence: String,
    /// ZITADEL's event type name.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The user id of the caller that did it.
    pub actor: String,
    pub creation_date: String,
    /// Self-contained; phone numbers masked; never codes or tokens.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// `ListUserEventsResponse`: one page, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListUserEventsResponse {
    pub events: Vec<UserEventJson>,
    /// Where the next page starts; present only when more events may follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl From<EventsPage> for ListUserEventsResponse {
    fn from(page: EventsPage) -> Self {
        Self {
            events: page
                .events
                .into_iter()
                .map(|event| UserEventJson {
                    sequence: event.sequence.to_string(),
                    event_type: event.event_type,
                    actor: event.creator,
                    creation_date: timestamp(event.created_at),
                    payload: event.payload,
                })
                .collect(),
            next_cursor: page.next_cursor.map(EventCursor::encode),
        }
    }
}

// ----- login policies (factors' own) ------------------------------------------------------

/// `LoginPolicy`, the body of SetLoginPolicy: the whole policy, absent (or `null`) fields
/// being proto3's defaults (off, `"0s"`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true}))]
pub struct SetLoginPolicyBody {
    /// Users must keep a verified second factor: a user may not remove its last one.
    #[serde(alias = "force_mfa")]
    #[schema(value_type = bool)]
    pub force_mfa: Option<bool>,
    /// How recent a second-factor sign-in a user needs to remove one of its own verified
    /// authenticators, as a protobuf JSON duration in whole seconds (`"300s"`), from
    /// `"0s"` (none asked) to 366 days. Anything else (another form, a fraction, a
    /// negative or longer age) answers INVALID_ARGUMENT `POLICY-InvalidStepUpAge`.
    #[serde(alias = "self_removal_step_up_max_age")]
    #[schema(value_type = String, example = "300s")]
    pub self_removal_step_up_max_age: Option<serde_json::Value>,
    /// Send an SMS to the number of a removed verified authenticator.
    #[serde(alias = "notify_on_removal")]
    #[schema(value_type = bool)]
    pub notify_on_removal: Option<bool>,
}

impl From<SetLoginPolicyBody> for RawLoginPolicy {
    fn from(body: SetLoginPolicyBody) -> Self {
        // Taken as any JSON value, so that a number or an object is the policy's error,
        // as a malformed string is, rather than a shape error.
        let age = match body.self_removal_step_up_max_age {
            None => Some(TimeDelta::zero()),
            Some(serde_json::Value::String(text)) => parse_duration(&text),
            Some(_) => None,
        };
        Self {
            force_mfa: body.force_mfa.unwrap_or_default(),
            self_removal_step_up_max_age: age,
            notify_on_removal: body.notify_on_removal.unwrap_or_default(),
        }
    }
}

/// `LoginPolicy` as answered.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginPolicyJson {
    pub force_mfa: bool,
    /// Whole seconds, as protobuf JSON writes a duration: `"300s"`, `"0s"` when off.
    #[schema(example = "300s")]
    pub self_removal_step_up_max_age: String,
    pub notify_on_removal: bool,
}

impl From<LoginPolicy> for LoginPolicyJson {
    fn from(policy: LoginPolicy) -> Self {
        Self {
            force_mfa: policy.force_mfa,
            self_removal_step_up_max_age: format!("{}s", policy.self_removal_step_up_max_age.num_seconds()),
            notify_on_removal: policy.notify_on_removal,
        }
    }
}

/// `PolicyDetails`: the stored version of the policy shown.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"sequence": "3", "created": "2024-11-22T09:27:10.426Z",
    "changed": "2024-11-22T09:31:02.114Z", "owner": {"type": "OWNER_TYPE_ORG", "id": "69629023906488334"}}))]
pub struct PolicyDetailsJson {
    /// Its number among the versions of its owner's policy, a string (a 64-bit integer in
    /// protobuf JSON).
    pub sequence: String,
    /// When the owner first set a policy.
    pub created: String,
    /// When this version was set.
    pub changed: String,
    /// `OWNER_TYPE_ORG` with the organization's id for its own policy; `OWNER_TYPE_INSTANCE`
    /// with the instance's id for the instance default, also when an organization inherits it.
    pub owner: OwnerJson,
}

/// `LoginPolicyResponse`: the policy in force, where it comes from, and its stored version.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"policy": {"forceMfa": true, "selfRemovalStepUpMaxAge": "300s", "notifyOnRemoval": true},
    "source": "POLICY_SOURCE_INSTANCE", "details": {"sequence": "2", "created": "2024-11-22T09:27:10.426Z",
    "changed": "2024-11-22T09:31:02.114Z", "owner": {"type": "OWNER_TYPE_INSTANCE", "id": "factors"}}}))]
pub struct LoginPolicyResponse {
    pub policy: LoginPolicyJson,
    /// `POLICY_SOURCE_ORGANIZATION` (the organization's own), `POLICY_SOURCE_INSTANCE` (the
    /// instance default) or `POLICY_SOURCE_BUILT_IN` (nothing stored: everything off).
    #[schema(example = "POLICY_SOURCE_ORGANIZATION")]
    pub source: &'static str,
    /// Absent for the built-in default, which is not stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<PolicyDetailsJson>,
}

impl From<PolicyView> for LoginPolicyResponse {
    fn from(view: PolicyView) -> Self {
        let source = match view.source {
            PolicySource::Organization => "POLICY_SOURCE_ORGANIZATION",
            PolicySource::Instance => "POLICY_SOURCE_INSTANCE",
            PolicySource::BuiltIn => "POLICY_SOURCE_BUILT_IN",
        };
        let details = view.stored.map(|stored| {
            let (owner_type, id) = match stored.owner {
                PolicyOwner::Instance(id) => ("OWNER_TYPE_INSTANCE", id.into_string()),
                PolicyOwner::Org(id) => ("OWNER_TYPE_ORG", id.into_string()),
            };
            PolicyDetailsJson {
                sequence: stored.sequence.to_string(),
                created: timestamp(stored.created),
                changed: timestamp(stored.changed),
                owner: OwnerJson { owner_type, id },
            }
        });
        Self { policy: view.policy.into(), source, details }
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

/// `CreateSessionResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSessionResponse {
    pub details: SessionDetailsJson,
    #[schema(example = "222430354126975533")]
    pub session_id: String,
    /// The session's token; each write hands out a new one and the previous one stops working.
    pub session_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenges: Option<ChallengesJson>,
}

impl CreateSessionResponse {
    pub fn new(written: SessionWritten, challenge_requested: bool) -> Self {
        Self {
            details: written.details.into(),
            session_id: written.session_id.into_string(),
            session_token: written.session_token,
            challenges: ChallengesJson::of(challenge_requested, written.otp_sms_code),
        }
    }
}

/// `SetSessionResponse`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetSessionResponse {
    pub details: SessionDetailsJson,
    /// The new token; the previous one no longer works.
    pub session_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenges: Option<ChallengesJson>,
}

impl SetSessionResponse {
    pub fn new(written: SessionWritten, challenge_requested: bool) -> Self {
        Self {
            details: written.details.into(),
            session_token: written.session_token,
            challenges: ChallengesJson::of(challenge_requested, written.otp_sms_code),
        }
    }
}

/// `DeleteSessionResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteSessionResponse {
    pub details: SessionDetailsJson,
}

impl From<SessionDetails> for DeleteSessionResponse {
    fn from(details: SessionDetails) -> Self {
        Self { details: details.into() }
    }
}

/// `UserFactor`. Users have no login or display names in factors, so `loginName` and
/// `displayName` are empty and, as protobuf JSON does with empty strings, left out.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserFactorJson {
    pub verified_at: String,
    pub id: String,
    pub organization_id: String,
}

/// `OTPFactor`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtpFactorJson {
    pub verified_at: String,
}

/// `Factors`: the checked ones; factors checks the user and OTP SMS only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FactorsJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserFactorJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otp_sms: Option<OtpFactorJson>,
}

/// `Session`. Unset fields are left out, as protobuf JSON does (and Connect answers);
/// factors keeps no `userAgent`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionJson {
    pub id: String,
    pub creation_date: String,
    pub change_date: String,
    /// The session's number of events, as a string (a 64-bit integer in protobuf JSON).
    #[schema(example = "3")]
    pub sequence: String,
    pub factors: FactorsJson,
    /// Keys and base64 values.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
}

/// `GetSessionResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct GetSessionResponse {
    pub session: SessionJson,
}

impl From<SessionView> for GetSessionResponse {
    fn from(view: SessionView) -> Self {
        Self {
            session: SessionJson {
                id: view.id.into_string(),
                creation_date: timestamp(view.creation_date),
                change_date: timestamp(view.change_date),
                sequence: view.sequence.to_string(),
                factors: FactorsJson {
                    user: view.user.map(|user| UserFactorJson {
                        verified_at: timestamp(user.verified_at),
                        id: user.id.into_string(),
                        organization_id: user.organization_id.into_string(),
                    }),
                    otp_sms: view.otp_sms_verified_at.map(|at| OtpFactorJson { verified_at: timestamp(at) }),
                },
                metadata: view.metadata.into_iter().map(|(key, value)| (key, STANDARD.encode(value))).collect(),
                expiration_date: view.expiration_date.map(timestamp),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn session_bodies_never_show_a_code_or_a_token_in_debug_output() {
        let set: SetSessionBody =
            serde_json::from_str(r#"{"sessionToken":"tok-secret","checks":{"otpSms":{"code":"424242"}}}"#)
                .expect("a body");
        let delete: DeleteSessionBody = serde_json::from_str(r#"{"sessionToken":"tok-secret"}"#).expect("a body");
        let query = SessionTokenQuery { session_token: Some("tok-secret".into()) };
        let shown = format!("{set:?} {delete:?} {query:?}");
        assert!(!shown.contains("424242") && !shown.contains("tok-secret"), "{shown}");
    }

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

    #[test]
    fn session_bodies_read_protobuf_json_in_either_case_and_name_what_is_unsupported() {
        let raw = |json: &str| serde_json::from_str::<CreateSessionBody>(json).map(RawSessionChange::from);
        let body = r#"{"checks": {"user": {"user_id": "u1"}, "otp_sms": {"code": "1"}, "password": null},
            "challenges": {"otpSms": {}}, "metadata": {"a": "aGk=", "b": "aGk", "c": "-_8", "d": ""},
            "lifetime": "1.5s", "user_agent": {"ip": "1.2.3.4"}, "unknown": 1}"#;
        let change = raw(body).expect("a valid body");
        assert_eq!(change.check_user, Some(RawUserCheck { user_id: Some("u1".into()), login_name: None }));
        assert_eq!(change.check_otp_sms.as_deref(), Some("1"));
        assert_eq!(change.challenge_otp_sms, Some(false));
        assert!(change.unsupported.is_empty(), "null is unset");
        let metadata: Vec<_> = change.metadata.into_iter().collect();
        assert_eq!(
            metadata,
            [
                ("a".into(), b"hi".to_vec()),
                ("b".into(), b"hi".to_vec()),
                ("c".into(), vec![0xfb, 0xff]),
                ("d".into(), vec![])
            ]
        );
        assert_eq!(change.lifetime, Some(TimeDelta::milliseconds(1500)));

        let everything = r#"{"checks": {"password": {}, "web_auth_n": {}, "idpIntent": {}, "totp": {"code": "1"},
            "otpEmail": {}, "recovery_code": {}}, "challenges": {"webAuthN": {}, "otp_email": {}}}"#;
        assert_eq!(
            raw(everything).expect("valid").unsupported,
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
        for bad in [r#"{"lifetime": "5m"}"#, r#"{"lifetime": 300}"#, r#"{"metadata": {"a": "not base64!"}}"#] {
            assert!(raw(bad).is_err(), "{bad}");
        }
        assert!(raw(r#"{"lifetime": null, "metadata": null}"#).is_ok_and(|c| c.lifetime.is_none()));
    }

    #[test]
    fn empty_authenticators_are_not_a_request_for_them() {
        assert!(!says_something(&serde_json::json!({"usernames": [], "password": null})));
        assert!(says_something(&serde_json::json!({"usernames": [{"username": "ada"}]})));
    }
}
