//! RemoveOTPSMSAuthenticator (`zitadel.resources.user.v3alpha.ZITADELUsers`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::RequestScope;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::remove_otp_sms::RemoveOtpSmsCommand;
use factors_domain::{OtpSmsId, UserId};

use super::shared::{Answer, DetailsResponse, ScopeQuery};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiPath, ApiQuery, Authenticated};

/// RemoveOTPSMSAuthenticator: removes the authenticator for good, with its pending codes.
#[utoipa::path(
    delete, path = "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}", tag = "otp_sms",
    operation_id = "RemoveOTPSMSAuthenticator",
    params(("id" = String, Path, description = "The user's id"), ("otp_sms_id" = String, Path, description = "The authenticator's id"), ScopeQuery),
    responses(
        (status = 200, description = "Removed", body = DetailsResponse),
        (status = 400, description = "Invalid input; or the user's own removal of its last verified authenticator while its organization's login policy forces MFA (OTPSMS-LastFactor, FAILED_PRECONDITION)", body = StatusBody),
        (status = 403, description = "Not allowed; or the user's own removal of a verified authenticator without a second-factor sign-in as recent as the login policy asks (AUTHZ-StepUpRequired: re-authenticate, then retry)", body = StatusBody),
        (status = 404, description = "No such user or authenticator (also: removed already)", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn remove_otp_sms(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath((id, otp_sms_id)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Answer<DetailsResponse> {
    let command = RemoveOtpSmsCommand {
        scope: RequestScope::try_from(query)?,
        user: UserId::new(id)?,
        otp_sms: OtpSmsId::new(otp_sms_id)?,
    };
    Ok(Json(use_cases.remove_otp_sms.remove_otp_sms(&caller, command).await?.into()))
}
