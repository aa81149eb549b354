//! CreateSession (`zitadel.session.v2.SessionService`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::TimeDelta;
use factors_application::input::RawSessionChange;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::sessions::SessionWritten;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::shared::{
    ChallengesJson, ChecksJson, RequestChallengesJson, SessionDetailsJson, duration_in, metadata_in, session_change,
};
use crate::error::{ApiError, CommonFailures, StatusBody};
use crate::extract::{ApiJsonOrEmpty, Authenticated};

/// CreateSession: a new session, with its first checks and challenges.
#[utoipa::path(
    post, path = "/v2/sessions", tag = "sessions", operation_id = "CreateSession",
    request_body = CreateSessionBody,
    responses(
        (status = 201, description = "Created", body = CreateSessionResponse),
        (status = 400, description = "Invalid input; an unsupported check or challenge; a wrong, expired or exhausted code; no OTP SMS to challenge", body = StatusBody),
        (status = 403, description = "No session.write", body = StatusBody),
        (status = 404, description = "The checked user does not exist", body = StatusBody),
        (status = 409, description = "The session changed concurrently; try again", body = StatusBody),
        (status = 429, description = "Too many SMS were sent; see Retry-After", body = StatusBody),
        (status = 503, description = "The SMS could not be sent", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn create_session(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<CreateSessionBody>,
) -> Result<(StatusCode, Json<CreateSessionResponse>), ApiError> {
    let raw = RawSessionChange::from(body);
    let challenge_requested = raw.challenge_otp_sms.is_some();
    let written = use_cases.sessions.create_session(&caller, raw.into_change()?).await?;
    Ok((StatusCode::CREATED, Json(CreateSessionResponse::new(written, challenge_requested))))
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

#[cfg(test)]
mod tests {
    use super::*;
    use factors_application::input::RawUserCheck;

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
}
