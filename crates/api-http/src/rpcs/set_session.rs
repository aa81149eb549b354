//! SetSession (`zitadel.session.v2.SessionService`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::TimeDelta;
use factors_application::input::RawSessionChange;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::sessions::{SessionWritten, SetSessionCommand};
use factors_domain::{SessionId, redacted};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::shared::{
    Answer, ChallengesJson, ChecksJson, RequestChallengesJson, SessionDetailsJson, duration_in, metadata_in,
    session_change,
};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiJsonOrEmpty, ApiPath, Authenticated};

/// SetSession: more checks, challenges, metadata or another lifetime for a session.
#[utoipa::path(
    patch, path = "/v2/sessions/{session_id}", tag = "sessions", operation_id = "SetSession",
    params(("session_id" = String, Path, description = "The session's id")),
    request_body = SetSessionBody,
    responses(
        (status = 200, description = "Changed; the answer holds the new token", body = SetSessionResponse),
        (status = 400, description = "Invalid input; an unsupported check or challenge; a wrong, expired or exhausted code; no challenge pending; an expired session", body = StatusBody),
        (status = 403, description = "No session.write", body = StatusBody),
        (status = 404, description = "No such session, or the checked user does not exist", body = StatusBody),
        (status = 409, description = "The session changed concurrently; try again", body = StatusBody),
        (status = 429, description = "Too many SMS were sent, or the user's budget of failed code checks is spent (USER-CodeChecksLocked); see Retry-After", body = StatusBody),
        (status = 503, description = "The SMS could not be sent", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn set_session(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(session_id): ApiPath<String>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<SetSessionBody>,
) -> Answer<SetSessionResponse> {
    let session_id = SessionId::new(session_id)?;
    let raw = RawSessionChange::from(body);
    let challenge_requested = raw.challenge_otp_sms.is_some();
    let command = SetSessionCommand { session_id, change: raw.into_change()? };
    let written = use_cases.sessions.set_session(&caller, command).await?;
    Ok(Json(SetSessionResponse::new(written, challenge_requested)))
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
