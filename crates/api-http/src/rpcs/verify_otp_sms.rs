//! VerifyOTPSMSRegistration (`zitadel.resources.user.v3alpha.ZITADELUsers`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::verify_otp_sms::VerifyOtpSmsCommand;
use factors_application::{InvalidInput, RequestScope};
use factors_domain::{OtpSmsId, UserId, VerificationCode};
use serde::Deserialize;
use utoipa::ToSchema;

use super::shared::{Answer, DetailsResponse, ScopeQuery};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};

/// VerifyOTPSMSRegistration: proves the phone with the code it received.
#[utoipa::path(
    post, path = "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}/_verify", tag = "otp_sms",
    operation_id = "VerifyOTPSMSRegistration",
    params(("id" = String, Path, description = "The user's id"), ("otp_sms_id" = String, Path, description = "The authenticator's id"), ScopeQuery),
    request_body(content = String, content_type = "application/json", description = "The code, as a JSON string", example = json!("123456")),
    responses(
        (status = 200, description = "Verified", body = DetailsResponse),
        (status = 400, description = "Wrong, expired or exhausted code; malformed input; verified already", body = StatusBody),
        (status = 403, description = "Not allowed", body = StatusBody),
        (status = 404, description = "No such user or authenticator", body = StatusBody),
        (status = 429, description = "The user's budget of failed code checks is spent (USER-CodeChecksLocked); see Retry-After", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn verify_otp_sms(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath((id, otp_sms_id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
    ApiJson(body): ApiJson<CodeBody>,
) -> Answer<DetailsResponse> {
    let command = VerifyOtpSmsCommand {
        scope: RequestScope::try_from(query)?,
        user: UserId::new(id)?,
        otp_sms: OtpSmsId::new(otp_sms_id)?,
        code: body.try_into()?,
    };
    Ok(Json(use_cases.verify_otp_sms.verify_otp_sms(&caller, command).await?.into()))
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
