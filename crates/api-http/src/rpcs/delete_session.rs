//! DeleteSession (`zitadel.session.v2.SessionService`).

use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::sessions::{SessionAccess, SessionDetails};
use factors_domain::{SessionId, redacted};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::shared::{Answer, SessionDetailsJson};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiJsonOrEmpty, ApiPath, Authenticated};

/// DeleteSession: ends the session; its token stops working.
#[utoipa::path(
    delete, path = "/v2/sessions/{session_id}", tag = "sessions", operation_id = "DeleteSession",
    params(("session_id" = String, Path, description = "The session's id")),
    request_body(content = DeleteSessionBody, description = "May be absent"),
    responses(
        (status = 200, description = "Deleted", body = DeleteSessionResponse),
        (status = 400, description = "Invalid input", body = StatusBody),
        (status = 403, description = "Neither session.delete nor the session's current token", body = StatusBody),
        (status = 404, description = "No such session", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn delete_session(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(session_id): ApiPath<String>,
    ApiJsonOrEmpty(body): ApiJsonOrEmpty<DeleteSessionBody>,
) -> Answer<DeleteSessionResponse> {
    let access = SessionAccess { session_id: SessionId::new(session_id)?, session_token: body.session_token };
    Ok(Json(use_cases.sessions.delete_session(&caller, access).await?.into()))
}

/// The body of DeleteSession, which may be absent. Its `Debug` output leaves the token out.
#[derive(Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeleteSessionBody {
    /// The session's current token, for a caller without `session.delete`.
    #[serde(alias = "session_token")]
    pub session_token: Option<String>,
}

impl fmt::Debug for DeleteSessionBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeleteSessionBody").field("session_token", &redacted(self.session_token.as_ref())).finish()
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
