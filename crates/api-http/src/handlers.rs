//! The implemented RPCs of the REST mapping. Each handler turns wire input into a command
//! (the checks happen in those conversions), calls its use case, and turns the answer back;
//! [`routes`] puts each at the verb and path of the application's RPC tables, and
//! [`HandlersDoc`] gives their operations to the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use factors_application::RequestScope;
use factors_application::input::{RawCreateUser, RawLoginPolicy, RawSessionChange, policy_scope};
use factors_application::rpc::{LOGIN_POLICY_SERVICE, SESSION_SERVICE, USER_EVENTS_SERVICE, USER_SERVICE};
use factors_application::use_cases::UseCases;
use factors_application::use_cases::add_otp_sms::AddOtpSmsCommand;
use factors_application::use_cases::delete_user::DeleteUserCommand;
use factors_application::use_cases::get_user::GetUserCommand;
use factors_application::use_cases::list_user_events::{ListUserEventsCommand, PageRequest};
use factors_application::use_cases::remove_otp_sms::RemoveOtpSmsCommand;
use factors_application::use_cases::sessions::{SessionAccess, SetSessionCommand};
use factors_application::use_cases::verify_otp_sms::VerifyOtpSmsCommand;
use factors_domain::{OtpSmsId, SessionId, UserId};

use crate::AppState;
use crate::error::{ApiError, CommonFailures, StatusBody};
use crate::extract::{ApiJson, ApiJsonOrEmpty, ApiPath, ApiQuery, Authenticated};
use crate::routes::RouteRpc;
use crate::wire::{
    AddOtpSmsResponse, CodeBody, CreateSessionBody, CreateSessionResponse, CreateUserBody, CreateUserResponse,
    DeleteSessionBody, DeleteSessionResponse, DetailsResponse, EventsPageQuery, GetSessionResponse, GetUserResponse,
    ListUserEventsResponse, LoginPolicyResponse, ScopeQuery, SessionTokenQuery, SetLoginPolicyBody, SetPhone,
    SetSessionBody, SetSessionResponse, parse_phone,
};

type Answer<T> = Result<Json<T>, ApiError>;

/// The handlers' OpenAPI operations, which the document takes in whole.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    create_user,
    get_user,
    delete_user,
    add_otp_sms,
    verify_otp_sms,
    remove_otp_sms,
    list_user_events,
    get_login_policy,
    get_organization_login_policy,
    set_login_policy,
    set_organization_login_policy,
    get_session,
    create_session,
    set_session,
    delete_session
))]
pub struct HandlersDoc;

/// Routes each implemented RPC, named as in the RPC tables, to its handler.
pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router
        .route_rpc(USER_SERVICE, "GetUser", get_user)
        .route_rpc(USER_SERVICE, "CreateUser", create_user)
        .route_rpc(USER_SERVICE, "DeleteUser", delete_user)
        .route_rpc(USER_SERVICE, "AddOTPSMSAuthenticator", add_otp_sms)
        .route_rpc(USER_SERVICE, "VerifyOTPSMSRegistration", verify_otp_sms)
        .route_rpc(USER_SERVICE, "RemoveOTPSMSAuthenticator", remove_otp_sms)
        .route_rpc(USER_EVENTS_SERVICE, "ListUserEvents", list_user_events)
        .route_rpc(LOGIN_POLICY_SERVICE, "GetLoginPolicy", get_login_policy)
        .route_rpc_binding(
            LOGIN_POLICY_SERVICE,
            "GetLoginPolicy",
            "GetOrganizationLoginPolicy",
            get_organization_login_policy,
        )
        .route_rpc(LOGIN_POLICY_SERVICE, "SetLoginPolicy", set_login_policy)
        .route_rpc_binding(
            LOGIN_POLICY_SERVICE,
            "SetLoginPolicy",
            "SetOrganizationLoginPolicy",
            set_organization_login_policy,
        )
        .route_rpc(SESSION_SERVICE, "GetSession", get_session)
        .route_rpc(SESSION_SERVICE, "CreateSession", create_session)
        .route_rpc(SESSION_SERVICE, "SetSession", set_session)
        .route_rpc(SESSION_SERVICE, "DeleteSession", delete_session)
}

/// CreateUser: a new user in the organization named by `organization.*` (else the caller's).
#[utoipa::path(
    post, path = "/resources/v3alpha/users", tag = "users", operation_id = "CreateUser",
    params(ScopeQuery), request_body = CreateUserBody,
    responses(
        (status = 201, description = "Created", body = CreateUserResponse),
        (status = 400, description = "Invalid input", body = StatusBody),
        (status = 403, description = "No user.write on the organization", body = StatusBody),
        (status = 404, description = "Unknown instance or organization domain", body = StatusBody),
        (status = 409, description = "The user id is taken", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn create_user(
    State(use_cases): State<Arc<UseCases>>,
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
        (status = 403, description = "The caller holds no user permission and is not the user", body = StatusBody),
        (status = 404, description = "No such user visible to the caller", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn get_user(
    State(use_cases): State<Arc<UseCases>>,
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

// ----- factors.user.v1.UserEvents -----------------------------------------------------------

/// ListUserEvents (factors' own): the audit trail of a user that exists now, oldest first,
/// page by page.
#[utoipa::path(
    get, path = "/resources/v3alpha/users/{id}/_events", tag = "events", operation_id = "ListUserEvents",
    params(("id" = String, Path, description = "The user's id"), ScopeQuery, EventsPageQuery),
    responses(
        (status = 200, description = "One page of the trail", body = ListUserEventsResponse),
        (status = 400, description = "Invalid input: a page size above 1000, a cursor this service did not give out", body = StatusBody),
        (status = 403, description = "No user.read on the user's organization (the user itself needs it too)", body = StatusBody),
        (status = 404, description = "No such user visible to the caller (also: deleted)", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn list_user_events(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiQuery(scope): ApiQuery<ScopeQuery>,
    ApiQuery(page): ApiQuery<EventsPageQuery>,
) -> Answer<ListUserEventsResponse> {
    let command = ListUserEventsCommand {
        scope: RequestScope::try_from(scope)?,
        user: UserId::new(id)?,
        page: PageRequest::parse(page.page_size, page.cursor.as_deref())?,
    };
    Ok(Json(use_cases.list_user_events.list_user_events(&caller, command).await?.into()))
}

// ----- factors.policy.v1.LoginPolicies ----------------------------------------------------
//
// One RPC each for reading and setting, mapped twice: without an organization in the path
// for the instance default, with one for that organization. The use case decides who may.

/// GetLoginPolicy (factors' own) of the instance default.
#[utoipa::path(
    get, path = "/resources/v3alpha/policies/login", tag = "policies", operation_id = "GetLoginPolicy",
    responses(
        (status = 200, description = "The instance default: stored (POLICY_SOURCE_INSTANCE) or built in", body = LoginPolicyResponse),
        (status = 403, description = "No policy.read instance-wide", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn get_login_policy(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
) -> Answer<LoginPolicyResponse> {
    let scope = policy_scope(None)?;
    Ok(Json(use_cases.login_policies.get_login_policy(&caller, scope).await?.into()))
}

/// GetLoginPolicy (factors' own) of an organization: the policy in force for it, its own
/// or else the one it inherits.
#[utoipa::path(
    get, path = "/resources/v3alpha/organizations/{organization_id}/policies/login", tag = "policies",
    operation_id = "GetOrganizationLoginPolicy",
    params(("organization_id" = String, Path, description = "The organization's id")),
    responses(
        (status = 200, description = "The policy in force: the organization's own, else the instance default, else the built-in one", body = LoginPolicyResponse),
        (status = 400, description = "Invalid organization id", body = StatusBody),
        (status = 403, description = "No policy.read on the organization or instance-wide", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn get_organization_login_policy(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(organization_id): ApiPath<String>,
) -> Answer<LoginPolicyResponse> {
    let scope = policy_scope(Some(organization_id))?;
    Ok(Json(use_cases.login_policies.get_login_policy(&caller, scope).await?.into()))
}

/// SetLoginPolicy (factors' own) of the instance default, as a whole.
#[utoipa::path(
    put, path = "/resources/v3alpha/policies/login", tag = "policies", operation_id = "SetLoginPolicy",
    request_body = SetLoginPolicyBody,
    responses(
        (status = 200, description = "The instance default as stored now", body = LoginPolicyResponse),
        (status = 400, description = "Invalid input: a step-up age that is not whole seconds from 0s to 366 days (POLICY-InvalidStepUpAge), a body that is not the policy", body = StatusBody),
        (status = 403, description = "No policy.write instance-wide; or a loosening of the policy the caller's own account is under without a second-factor sign-in (AUTHZ-StepUpRequired)", body = StatusBody),
        (status = 409, description = "The policy kept changing concurrently (POLICY-Contended); try again", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn set_login_policy(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiJson(body): ApiJson<SetLoginPolicyBody>,
) -> Answer<LoginPolicyResponse> {
    let scope = policy_scope(None)?;
    let policy = RawLoginPolicy::from(body).into_policy()?;
    Ok(Json(use_cases.login_policies.set_login_policy(&caller, scope, policy).await?.into()))
}

/// SetLoginPolicy (factors' own) of an organization: its own policy, as a whole.
#[utoipa::path(
    put, path = "/resources/v3alpha/organizations/{organization_id}/policies/login", tag = "policies",
    operation_id = "SetOrganizationLoginPolicy",
    params(("organization_id" = String, Path, description = "The organization's id")),
    request_body = SetLoginPolicyBody,
    responses(
        (status = 200, description = "The organization's own policy as stored now (POLICY_SOURCE_ORGANIZATION)", body = LoginPolicyResponse),
        (status = 400, description = "Invalid input: an invalid organization id, a step-up age that is not whole seconds from 0s to 366 days (POLICY-InvalidStepUpAge), a body that is not the policy", body = StatusBody),
        (status = 403, description = "No policy.write on the organization or instance-wide; or a loosening of the policy the caller's own account is under without a second-factor sign-in (AUTHZ-StepUpRequired)", body = StatusBody),
        (status = 409, description = "The policy kept changing concurrently (POLICY-Contended); try again", body = StatusBody),
        CommonFailures,
    ),
    security(("bearer" = []))
)]
pub async fn set_organization_login_policy(
    State(use_cases): State<Arc<UseCases>>,
    Authenticated(caller): Authenticated,
    ApiPath(organization_id): ApiPath<String>,
    ApiJson(body): ApiJson<SetLoginPolicyBody>,
) -> Answer<LoginPolicyResponse> {
    let scope = policy_scope(Some(organization_id))?;
    let policy = RawLoginPolicy::from(body).into_policy()?;
    Ok(Json(use_cases.login_policies.set_login_policy(&caller, scope, policy).await?.into()))
}

// ----- zitadel.session.v2.SessionService ---------------------------------------------------
//
// Sessions sign a user in: `checks.user` (by id), then `checks.otpSms` with the code that
// `challenges.otpSms` sent. Each write answers a new session token. Who may do what to a
// session is the use cases' decision; the bodies of the `body: "*"` mappings may be empty.

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
