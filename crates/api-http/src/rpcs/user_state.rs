//! The RPCs of the user's state (`zitadel.resources.user.v3alpha.ZITADELUsers`): LockUser,
//! UnlockUser, DeactivateUser and ActivateUser.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use factors_application::RequestScope;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::user_state::UserStateCommand;
use factors_domain::{Caller, StateChange, UserId};

use super::shared::{Answer, DetailsResponse, ScopeQuery};
use crate::error::{CommonFailures, StatusBody};
use crate::extract::{ApiPath, ApiQuery, Authenticated};

/// LockUser: the user cannot sign in (CreateSession and SetSession refuse it) until it is
/// unlocked; its authenticators stay.
#[utoipa::path(
    post, path = "/resources/v3alpha/users/{id}/_lock", tag = "users", operation_id = "LockUser",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    responses(
        (status = 200, description = "Locked", body = DetailsResponse),
        (status = 400, description = "Invalid input; or the user is not active (USER-NotActive, FAILED_PRECONDITION)", body = StatusBody),
        (status = 403, description = "No user.write on the user's organization", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn lock_user(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Answer<DetailsResponse> {
    change(&use_cases, &caller, id, query, StateChange::Lock).await
}

/// UnlockUser: a locked user can sign in again.
#[utoipa::path(
    post, path = "/resources/v3alpha/users/{id}/_unlock", tag = "users", operation_id = "UnlockUser",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    responses(
        (status = 200, description = "Unlocked", body = DetailsResponse),
        (status = 400, description = "Invalid input; or the user is not locked (USER-NotLocked, FAILED_PRECONDITION)", body = StatusBody),
        (status = 403, description = "No user.write on the user's organization", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn unlock_user(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Answer<DetailsResponse> {
    change(&use_cases, &caller, id, query, StateChange::Unlock).await
}

/// DeactivateUser: the user cannot sign in (CreateSession and SetSession refuse it) until
/// it is activated; its data and authenticators stay.
#[utoipa::path(
    post, path = "/resources/v3alpha/users/{id}/_deactivate", tag = "users", operation_id = "DeactivateUser",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    responses(
        (status = 200, description = "Deactivated", body = DetailsResponse),
        (status = 400, description = "Invalid input; or the user is not active (USER-NotActive, FAILED_PRECONDITION)", body = StatusBody),
        (status = 403, description = "No user.write on the user's organization", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn deactivate_user(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Answer<DetailsResponse> {
    change(&use_cases, &caller, id, query, StateChange::Deactivate).await
}

/// ActivateUser: a deactivated user can sign in again.
#[utoipa::path(
    post, path = "/resources/v3alpha/users/{id}/_activate", tag = "users", operation_id = "ActivateUser",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    responses(
        (status = 200, description = "Activated", body = DetailsResponse),
        (status = 400, description = "Invalid input; or the user is not inactive (USER-NotInactive, FAILED_PRECONDITION)", body = StatusBody),
        (status = 403, description = "No user.write on the user's organization", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn activate_user(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Answer<DetailsResponse> {
    change(&use_cases, &caller, id, query, StateChange::Activate).await
}

/// The state RPCs' common part: the command, the use case, the details.
async fn change(
    use_cases: &UseCases,
    caller: &Caller,
    id: String,
    query: ScopeQuery,
    change: StateChange,
) -> Answer<DetailsResponse> {
    let command = UserStateCommand { scope: RequestScope::try_from(query)?, user: UserId::new(id)?, change };
    Ok(Json(use_cases.user_state.change_user_state(caller, command).await?.into()))
}
