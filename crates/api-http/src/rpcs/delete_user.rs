//! DeleteUser (`zitadel.resources.user.v3alpha.ZITADELUsers`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::RequestScope;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::delete_user::DeleteUserCommand;
use factors_domain::UserId;

use super::shared::{Answer, DetailsResponse, ScopeQuery};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiPath, ApiQuery, Authenticated};

/// DeleteUser: the user with all its authenticators and pending codes.
#[utoipa::path(
    delete, path = "/resources/v3alpha/users/{id}", tag = "users", operation_id = "DeleteUser",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    responses(
        (status = 200, description = "Deleted", body = DetailsResponse),
        (status = 400, description = "Invalid input; or the user deleting itself while it holds a verified authenticator and its login policy forces MFA (OTPSMS-LastFactor, FAILED_PRECONDITION)", body = StatusBody),
        (status = 403, description = "No user.delete on the user's organization; or the user deleting itself without a second-factor sign-in as recent as its login policy asks (AUTHZ-StepUpRequired: re-authenticate, then retry)", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn delete_user(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Answer<DetailsResponse> {
    let command = DeleteUserCommand { scope: RequestScope::try_from(query)?, user: UserId::new(id)? };
    Ok(Json(use_cases.delete_user.delete_user(&caller, command).await?.into()))
}
