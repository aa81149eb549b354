//! AddOTPSMSAuthenticator (`zitadel.resources.user.v3alpha.ZITADELUsers`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::RequestScope;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::add_otp_sms::{AddOtpSmsCommand, AddOtpSmsOutput};
use factors_domain::UserId;
use serde::Serialize;
use utoipa::ToSchema;

use super::shared::{Answer, DetailsJson, ScopeQuery, SetPhone, parse_phone};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};

/// AddOTPSMSAuthenticator: registers a phone; the code is sent by SMS unless asked otherwise.
#[utoipa::path(
    post, path = "/resources/v3alpha/users/{id}/otp_sms", tag = "otp_sms", operation_id = "AddOTPSMSAuthenticator",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    request_body = SetPhone,
    responses(
        (status = 200, description = "Added", body = AddOtpSmsResponse),
        (status = 400, description = "Invalid input (phone number, verification oneof)", body = StatusBody),
        (status = 403, description = "Not allowed (returnCode and isVerified need write permission, never on oneself); or a user enrolling another phone while it holds a verified authenticator, without a second-factor sign-in as recent as its login policy asks (AUTHZ-StepUpRequired)", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        (status = 409, description = "The user has this number already", body = StatusBody),
        (status = 503, description = "The SMS could not be sent; the authenticator was not added", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn add_otp_sms(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
    ApiJson(body): ApiJson<SetPhone>,
) -> Answer<AddOtpSmsResponse> {
    let user = UserId::new(id)?;
    let (phone, verification) = parse_phone(body)?;
    let command = AddOtpSmsCommand { scope: RequestScope::try_from(query)?, user, phone, verification };
    Ok(Json(use_cases.add_otp_sms.add_otp_sms(&caller, command).await?.into()))
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
