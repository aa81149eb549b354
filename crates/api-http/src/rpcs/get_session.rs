//! GetSession (`zitadel.session.v2.SessionService`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::sessions::{SessionAccess, SessionView};
use factors_domain::{SessionId, redacted};
use serde::{Deserialize, Serialize};
// `IntoParams` is named by its path below: imported, it makes the handler's `params(...)`
// expansion trip `unused_qualifications`.
use utoipa::ToSchema;

use super::shared::{Answer, timestamp};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiPath, ApiQuery, Authenticated};

/// GetSession: the session with its checked factors.
#[utoipa::path(
    get, path = "/v2/sessions/{session_id}", tag = "sessions", operation_id = "GetSession",
    params(("session_id" = String, Path, description = "The session's id"), SessionTokenQuery),
    responses(
        (status = 200, description = "The session", body = GetSessionResponse),
        (status = 400, description = "Invalid input", body = StatusBody),
        (status = 403, description = "Neither session.read nor the session's current token", body = StatusBody),
        (status = 404, description = "No such session", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn get_session(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(session_id): ApiPath<String>,
    ApiQuery(query): ApiQuery<SessionTokenQuery>,
) -> Answer<GetSessionResponse> {
    let access = SessionAccess { session_id: SessionId::new(session_id)?, session_token: query.session_token };
    Ok(Json(use_cases.sessions.get_session(&caller, access).await?.into()))
}

/// The query of GetSession. Its `Debug` output leaves the token out.
#[derive(Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionTokenQuery {
    /// The session's current token, for a caller without `session.read` (also `session_token`).
    #[serde(rename = "sessionToken", alias = "session_token")]
    #[param(rename = "sessionToken")]
    pub session_token: Option<String>,
}

impl fmt::Debug for SessionTokenQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionTokenQuery").field("session_token", &redacted(self.session_token.as_ref())).finish()
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
