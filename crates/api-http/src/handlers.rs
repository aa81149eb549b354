//! The implemented RPCs of the REST mapping. Each handler turns wire input into a command
//! (the checks happen in those conversions), calls its use case, and turns the answer back;
//! [`routes`] puts each at the verb and path of the application's RPC table, and
//! [`HandlersDoc`] gives their operations to the OpenAPI document.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use factors_application::RequestScope;
use factors_application::input::RawCreateUser;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::add_otp_sms::AddOtpSmsCommand;
use factors_application::use_cases::delete_user::DeleteUserCommand;
use factors_application::use_cases::get_user::GetUserCommand;
use factors_application::use_cases::remove_otp_sms::RemoveOtpSmsCommand;
use factors_application::use_cases::verify_otp_sms::VerifyOtpSmsCommand;
use factors_domain::{OtpSmsId, UserId};

use crate::AppState;
use crate::error::{ApiError, StatusBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Authenticated};
use crate::routes::RouteRpc;
use crate::wire::{
    AddOtpSmsResponse, CodeBody, CreateUserBody, CreateUserResponse, DetailsResponse, GetUserResponse, ScopeQuery,
    SetPhone, parse_phone,
};

type Answer<T> = Result<Json<T>, ApiError>;

/// The handlers' OpenAPI operations, which the document takes in whole.
#[derive(utoipa::OpenApi)]
#[openapi(paths(create_user, get_user, delete_user, add_otp_sms, verify_otp_sms, remove_otp_sms))]
pub struct HandlersDoc;

/// Routes each implemented RPC, named as in the RPC table, to its handler.
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route_rpc("GetUser", get_user)
        .route_rpc("CreateUser", create_user)
        .route_rpc("DeleteUser", delete_user)
        .route_rpc("AddOTPSMSAuthenticator", add_otp_sms)
        .route_rpc("VerifyOTPSMSRegistration", verify_otp_sms)
        .route_rpc("RemoveOTPSMSAuthenticator", remove_otp_sms)
}

/// CreateUser: a new user in the organization named by `organization.*` (else the caller's).
#[utoipa::path(
    post, path = "/resources/v3alpha/users", tag = "users", operation_id = "CreateUser",
    params(ScopeQuery), request_body = CreateUserBody,
    responses(
        (status = 201, description = "Created", body = CreateUserResponse),
        (status = 400, description = "Invalid input", body = StatusBody),
        (status = 401, description = "No valid token", body = StatusBody),
        (status = 403, description = "No user.write on the organization", body = StatusBody),
        (status = 404, description = "Unknown instance or organization domain", body = StatusBody),
        (status = 409, description = "The user id is taken", body = StatusBody),
        (status = 500, description = "Internal error", body = StatusBody),
        (status = 504, description = "The request took longer than server.request_timeout", body = StatusBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_user(
    State(use_cases): State<UseCases>,
    Authenticated(caller): Authenticated,
    ApiQuery(query): ApiQuery<ScopeQuery>,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<(StatusCode, Json<CreateUserResponse>), ApiError> {
    let command = RawCreateUser::from(body).into_command(RequestScope::try_from(query)?)?;
    let output = use_cases.create_user.create_user(&caller, command).await?;
    Ok((StatusCode::CREATED, Json(output.into())))
}

/// GetUser: the user with its OTP SMS authenticators.
#[utoipa::path(
    get, path = "/resources/v3alpha/users/{id}", tag = "users", operation_id = "GetUser",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    responses(
        (status = 200, description = "The user", body = GetUserResponse),
        (status = 400, description = "Invalid input", body = StatusBody),
        (status = 401, description = "No valid token", body = StatusBody),
        (status = 403, description = "The caller holds no user permission and is not the user", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        (status = 500, description = "Internal error", body = StatusBody),
        (status = 504, description = "The request took longer than server.request_timeout", body = StatusBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_user(
    State(use_cases): State<UseCases>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Answer<GetUserResponse> {
    let command = GetUserCommand { scope: RequestScope::try_from(query)?, user: UserId::new(id)? };
    Ok(Json(use_cases.get_user.get_user(&caller, command).await?.into()))
}

/// DeleteUser: the user with all its authenticators and pending codes.
#[utoipa::path(
    delete, path = "/resources/v3alpha/users/{id}", tag = "users", operation_id = "DeleteUser",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    responses(
        (status = 200, description = "Deleted", body = DetailsResponse),
        (status = 400, description = "Invalid input", body = StatusBody),
        (status = 401, description = "No valid token", body = StatusBody),
        (status = 403, description = "No user.delete on the user's organization", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        (status = 500, description = "Internal error", body = StatusBody),
        (status = 504, description = "The request took longer than server.request_timeout", body = StatusBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_user(
    State(use_cases): State<UseCases>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ScopeQuery>,
) -> Answer<DetailsResponse> {
    let command = DeleteUserCommand { scope: RequestScope::try_from(query)?, user: UserId::new(id)? };
    Ok(Json(use_cases.delete_user.delete_user(&caller, command).await?.into()))
}

/// AddOTPSMSAuthenticator: registers a phone; the code is sent by SMS unless asked otherwise.
#[utoipa::path(
    post, path = "/resources/v3alpha/users/{id}/otp_sms", tag = "otp_sms", operation_id = "AddOTPSMSAuthenticator",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery),
    request_body = SetPhone,
    responses(
        (status = 200, description = "Added", body = AddOtpSmsResponse),
        (status = 400, description = "Invalid input (phone number, verification oneof)", body = StatusBody),
        (status = 401, description = "No valid token", body = StatusBody),
        (status = 403, description = "Not allowed (returnCode and isVerified need write permission, never on oneself)", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        (status = 409, description = "The user has this number already", body = StatusBody),
        (status = 500, description = "Internal error", body = StatusBody),
        (status = 503, description = "The SMS could not be sent; the authenticator was not added", body = StatusBody),
        (status = 504, description = "The request took longer than server.request_timeout", body = StatusBody),
    ),
    security(("bearer" = []))
)]
pub async fn add_otp_sms(
    State(use_cases): State<UseCases>,
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

/// VerifyOTPSMSRegistration: proves the phone with the code it received.
#[utoipa::path(
    post, path = "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}/_verify", tag = "otp_sms",
    operation_id = "VerifyOTPSMSRegistration",
    params(("id" = String, Path, description = "The user's id"), ("otp_sms_id" = String, Path, description = "The authenticator's id"), ScopeQuery),
    request_body(content = String, content_type = "application/json", description = "The code, as a JSON string", example = json!("123456")),
    responses(
        (status = 200, description = "Verified", body = DetailsResponse),
        (status = 400, description = "Wrong, expired or exhausted code; malformed input; verified already", body = StatusBody),
        (status = 401, description = "No valid token", body = StatusBody),
        (status = 403, description = "Not allowed", body = StatusBody),
        (status = 404, description = "No such user or authenticator", body = StatusBody),
        (status = 500, description = "Internal error", body = StatusBody),
        (status = 504, description = "The request took longer than server.request_timeout", body = StatusBody),
    ),
    security(("bearer" = []))
)]
pub async fn verify_otp_sms(
    State(use_cases): State<UseCases>,
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

/// RemoveOTPSMSAuthenticator: removes the authenticator for good, with its pending codes.
#[utoipa::path(
    delete, path = "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}", tag = "otp_sms",
    operation_id = "RemoveOTPSMSAuthenticator",
    params(("id" = String, Path, description = "The user's id"), ("otp_sms_id" = String, Path, description = "The authenticator's id"), ScopeQuery),
    responses(
        (status = 200, description = "Removed", body = DetailsResponse),
        (status = 400, description = "Invalid input", body = StatusBody),
        (status = 401, description = "No valid token", body = StatusBody),
        (status = 403, description = "Not allowed", body = StatusBody),
        (status = 404, description = "No such user or authenticator (also: removed already)", body = StatusBody),
        (status = 500, description = "Internal error", body = StatusBody),
        (status = 504, description = "The request took longer than server.request_timeout", body = StatusBody),
    ),
    security(("bearer" = []))
)]
pub async fn remove_otp_sms(
    State(use_cases): State<UseCases>,
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
