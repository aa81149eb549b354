//! `zitadel.resources.user.v3alpha.ZITADELUsers` over tonic: the same use cases as REST.
//! The RPCs factors does not implement answer UNIMPLEMENTED with the error detail, naming
//! the RPC as the application's RPC table does.

use std::sync::Arc;

use factors_application::ports::{AuthError, TokenVerifier};
use factors_application::use_cases::UseCases;
use factors_application::use_cases::add_otp_sms::AddOtpSmsCommand;
use factors_application::use_cases::delete_user::DeleteUserCommand;
use factors_application::use_cases::get_user::GetUserCommand;
use factors_application::use_cases::remove_otp_sms::RemoveOtpSmsCommand;
use factors_application::use_cases::search_users::{SearchFilter, SearchUsersCommand, SearchUsersError};
use factors_application::use_cases::user_state::UserStateCommand;
use factors_application::use_cases::verify_otp_sms::VerifyOtpSmsCommand;
use factors_application::{Failure, InvalidInput, RequestScope};
use factors_domain::{Caller, Origin, OtpSmsId, StateChange, UserId, VerificationCode};
use factors_wire::bearer_token;
use factors_wire::rpc::rpc_of_path;
use tonic::{GrpcMethod, Request, Response, Status};

use crate::convert;
use crate::error::status;
use crate::pb::zitadel::resources::user::v3alpha as pb;
use crate::pb::zitadel::resources::user::v3alpha::zitadel_users_server::ZitadelUsers;

/// What the gRPC service needs: the token verifier and the use cases.
#[derive(Clone)]
pub struct GrpcState {
    pub tokens: Arc<dyn TokenVerifier>,
    pub use_cases: UseCases,
}

pub struct UsersService {
    state: GrpcState,
}

impl UsersService {
    pub fn new(state: GrpcState) -> Self {
        Self { state }
    }

    /// The caller, from the `authorization` metadata.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        authenticate(self.state.tokens.as_ref(), request).await
    }
}

/// The caller of a call, from its `authorization` metadata (`Bearer <token>`), told where
/// the call came from (the [`Origin`] the port's shared layers left in its extensions).
///
/// # Errors
/// UNAUTHENTICATED when the token is missing or does not verify.
pub async fn authenticate<T>(tokens: &dyn TokenVerifier, request: &Request<T>) -> Result<Caller, Status> {
    let token = request
        .metadata()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token)
        .ok_or(AuthError::MissingToken)
        .map_err(status)?;
    let caller = tokens.verify(token).await.map_err(status)?;
    Ok(caller.with_origin(request.extensions().get::<Origin>().cloned().unwrap_or_default()))
}

fn user_id(id: String) -> Result<UserId, Status> {
    UserId::new(id).map_err(status)
}

fn otp_sms_id(id: String) -> Result<OtpSmsId, Status> {
    OtpSmsId::new(id).map_err(status)
}

fn scope(
    instance: Option<crate::pb::zitadel::object::v3alpha::Instance>,
    organization: Option<crate::pb::zitadel::object::v3alpha::Organization>,
) -> Result<RequestScope, Status> {
    convert::scope(instance, organization).map_err(status)
}

impl UsersService {
    async fn create(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let user = message.user.ok_or(InvalidInput::Missing("user")).map_err(status)?;
        let command =
            convert::create_user(user).into_command(scope(message.instance, message.organization)?).map_err(status)?;
        let output = self.state.use_cases.create_user.create_user(&caller, command).await.map_err(status)?;
        Ok(Response::new(pb::CreateUserResponse {
            details: Some(convert::details(output.details)),
            email_code: output.email_code.map(|c| c.expose().to_owned()),
            phone_code: output.phone_code.map(|c| c.expose().to_owned()),
        }))
    }

    async fn get(&self, request: Request<pb::GetUserRequest>) -> Result<Response<pb::GetUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let command = GetUserCommand { scope: scope(message.instance, None)?, user: user_id(message.id)? };
        let view = self.state.use_cases.get_user.get_user(&caller, command).await.map_err(status)?;
        Ok(Response::new(pb::GetUserResponse { user: Some(convert::get_user(view)) }))
    }

    async fn search(
        &self,
        request: Request<pb::SearchUsersRequest>,
    ) -> Result<Response<pb::SearchUsersResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let query = message.query.unwrap_or_default();
        let command = SearchUsersCommand {
            scope: scope(message.instance, None)?,
            offset: query.offset,
            limit: query.limit,
            descending: query.desc,
            sorting_column: message.sorting_column,
            filters: message.filters.into_iter().map(search_filter).collect::<Result<_, _>>().map_err(status)?,
        };
        let page = self.state.use_cases.search_users.search_users(&caller, command).await.map_err(status)?;
        Ok(Response::new(pb::SearchUsersResponse {
            details: Some(crate::pb::zitadel::resources::object::v3alpha::ListDetails {
                applied_limit: page.applied_limit.into(),
                total_result: page.total,
                timestamp: Some(convert::timestamp(page.at)),
            }),
            result: page.users.into_iter().map(convert::get_user).collect(),
        }))
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let command =
            DeleteUserCommand { scope: scope(message.instance, message.organization)?, user: user_id(message.id)? };
        let details = self.state.use_cases.delete_user.delete_user(&caller, command).await.map_err(status)?;
        Ok(Response::new(pb::DeleteUserResponse { details: Some(convert::details(details)) }))
    }

    async fn lock(&self, request: Request<pb::LockUserRequest>) -> Result<Response<pb::LockUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let details =
            self.change_state(&caller, message.instance, message.organization, message.id, StateChange::Lock).await?;
        Ok(Response::new(pb::LockUserResponse { details: Some(details) }))
    }

    async fn unlock(
        &self,
        request: Request<pb::UnlockUserRequest>,
    ) -> Result<Response<pb::UnlockUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let details =
            self.change_state(&caller, message.instance, message.organization, message.id, StateChange::Unlock).await?;
        Ok(Response::new(pb::UnlockUserResponse { details: Some(details) }))
    }

    async fn deactivate(
        &self,
        request: Request<pb::DeactivateUserRequest>,
    ) -> Result<Response<pb::DeactivateUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let details = self
            .change_state(&caller, message.instance, message.organization, message.id, StateChange::Deactivate)
            .await?;
        Ok(Response::new(pb::DeactivateUserResponse { details: Some(details) }))
    }

    async fn activate(
        &self,
        request: Request<pb::ActivateUserRequest>,
    ) -> Result<Response<pb::ActivateUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let details = self
            .change_state(&caller, message.instance, message.organization, message.id, StateChange::Activate)
            .await?;
        Ok(Response::new(pb::ActivateUserResponse { details: Some(details) }))
    }

    /// The state RPCs' common part: the command, the use case, the details.
    async fn change_state(
        &self,
        caller: &Caller,
        instance: Option<crate::pb::zitadel::object::v3alpha::Instance>,
        organization: Option<crate::pb::zitadel::object::v3alpha::Organization>,
        id: String,
        change: StateChange,
    ) -> Result<crate::pb::zitadel::resources::object::v3alpha::Details, Status> {
        let command = UserStateCommand { scope: scope(instance, organization)?, user: user_id(id)?, change };
        let details = self.state.use_cases.user_state.change_user_state(caller, command).await.map_err(status)?;
        Ok(convert::details(details))
    }

    async fn add_otp_sms(
        &self,
        request: Request<pb::AddOtpsmsAuthenticatorRequest>,
    ) -> Result<Response<pb::AddOtpsmsAuthenticatorResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let user = user_id(message.id)?;
        let phone = message.phone.ok_or(InvalidInput::Missing("phone")).map_err(status)?;
        let (phone, verification) = convert::set_phone(phone).phone("phone.number").map_err(status)?;
        let command =
            AddOtpSmsCommand { scope: scope(message.instance, message.organization)?, user, phone, verification };
        let output = self.state.use_cases.add_otp_sms.add_otp_sms(&caller, command).await.map_err(status)?;
        Ok(Response::new(pb::AddOtpsmsAuthenticatorResponse {
            details: Some(convert::details(output.details)),
            otp_sms_id: output.otp_sms_id.into_string(),
            verification_code: output.verification_code.map(|c| c.expose().to_owned()),
        }))
    }

    async fn verify_otp_sms(
        &self,
        request: Request<pb::VerifyOtpsmsRegistrationRequest>,
    ) -> Result<Response<pb::VerifyOtpsmsRegistrationResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let command = VerifyOtpSmsCommand {
            scope: scope(message.instance, message.organization)?,
            user: user_id(message.id)?,
            otp_sms: otp_sms_id(message.otp_sms_id)?,
            code: VerificationCode::parse(&message.code).map_err(|e| status(InvalidInput::from(e)))?,
        };
        let details = self.state.use_cases.verify_otp_sms.verify_otp_sms(&caller, command).await.map_err(status)?;
        Ok(Response::new(pb::VerifyOtpsmsRegistrationResponse { details: Some(convert::details(details)) }))
    }

    async fn remove_otp_sms(
        &self,
        request: Request<pb::RemoveOtpsmsAuthenticatorRequest>,
    ) -> Result<Response<pb::RemoveOtpsmsAuthenticatorResponse>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let command = RemoveOtpSmsCommand {
            scope: scope(message.instance, message.organization)?,
            user: user_id(message.id)?,
            otp_sms: otp_sms_id(message.otp_sms_id)?,
        };
        let details = self.state.use_cases.remove_otp_sms.remove_otp_sms(&caller, command).await.map_err(status)?;
        Ok(Response::new(pb::RemoveOtpsmsAuthenticatorResponse { details: Some(convert::details(details)) }))
    }
}

/// A `SearchFilter` as the use case reads it; one that sets none of its oneof is refused.
fn search_filter(filter: pb::SearchFilter) -> Result<SearchFilter, SearchUsersError> {
    use pb::search_filter::Filter;
    Ok(match filter.filter {
        None => return Err(SearchUsersError::Invalid("a filter sets none of its fields".into())),
        Some(Filter::UserIdFilter(f)) => SearchFilter::UserId { id: f.id, method: f.method },
        Some(Filter::OrganizationIdFilter(f)) => SearchFilter::OrganizationId { id: f.id, method: f.method },
        Some(Filter::StateFilter(f)) => SearchFilter::State { state: f.state },
        Some(Filter::AndFilter(f)) => {
            SearchFilter::And(f.queries.into_iter().map(search_filter).collect::<Result<_, _>>()?)
        }
        Some(Filter::OrFilter(_)) => SearchFilter::Other("orFilter"),
        Some(Filter::NotFilter(_)) => SearchFilter::Other("notFilter"),
        Some(Filter::UsernameFilter(_)) => SearchFilter::Other("usernameFilter"),
        Some(Filter::EmailFilter(_)) => SearchFilter::Other("emailFilter"),
        Some(Filter::PhoneFilter(_)) => SearchFilter::Other("phoneFilter"),
        Some(Filter::SchemaIdFilter(_)) => SearchFilter::Other("schemaIdFilter"),
        Some(Filter::SchemaTypeFilter(_)) => SearchFilter::Other("schemaTypeFilter"),
    })
}

/// Names the RPC a call is for in a [`GrpcMethod`] extension, taken from the path and the
/// RPC tables (of whichever service the path names). tonic's clients set one but its
/// server does not, and the stubs of the unimplemented RPCs read it rather than keep a
/// list of names of their own.
pub fn name_the_rpc<B>(mut request: http::Request<B>) -> http::Request<B> {
    if let Some((service, rpc)) = rpc_of_path(request.uri().path()) {
        request.extensions_mut().insert(GrpcMethod::new(service.name, rpc.name));
    }
    request
}

/// UNIMPLEMENTED for the RPC the call names.
pub(crate) fn unimplemented<T>(request: &Request<T>) -> Status {
    // Only a call that bypassed `name_the_rpc` lacks the name; it still gets its answer.
    let rpc = request.extensions().get::<GrpcMethod<'static>>().map_or("this RPC", GrpcMethod::method);
    status(Failure::unimplemented(rpc))
}

/// Implements the service trait: the implemented RPCs delegate to the handlers above, the
/// others answer UNIMPLEMENTED with the contract's error detail (as REST's 501 does).
macro_rules! users_service {
    (
        implemented { $($method:ident($request:ident) -> $response:ident => $handler:ident;)* }
        unimplemented { $($stub:ident($stub_request:ident) -> $stub_response:ident;)* }
    ) => {
        #[tonic::async_trait]
        impl ZitadelUsers for UsersService {
            $(
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::$response>, Status> {
                    self.$handler(request).await
                }
            )*
            $(
                async fn $stub(&self, request: Request<pb::$stub_request>) -> Result<Response<pb::$stub_response>, Status> {
                    Err(unimplemented(&request))
                }
            )*
        }
    };
}

users_service! {
    implemented {
        search_users(SearchUsersRequest) -> SearchUsersResponse => search;
        get_user(GetUserRequest) -> GetUserResponse => get;
        create_user(CreateUserRequest) -> CreateUserResponse => create;
        delete_user(DeleteUserRequest) -> DeleteUserResponse => delete;
        lock_user(LockUserRequest) -> LockUserResponse => lock;
        unlock_user(UnlockUserRequest) -> UnlockUserResponse => unlock;
        deactivate_user(DeactivateUserRequest) -> DeactivateUserResponse => deactivate;
        activate_user(ActivateUserRequest) -> ActivateUserResponse => activate;
        add_otpsms_authenticator(AddOtpsmsAuthenticatorRequest) -> AddOtpsmsAuthenticatorResponse => add_otp_sms;
        verify_otpsms_registration(VerifyOtpsmsRegistrationRequest) -> VerifyOtpsmsRegistrationResponse => verify_otp_sms;
        remove_otpsms_authenticator(RemoveOtpsmsAuthenticatorRequest) -> RemoveOtpsmsAuthenticatorResponse => remove_otp_sms;
    }
    unimplemented {
        patch_user(PatchUserRequest) -> PatchUserResponse;
        set_contact_email(SetContactEmailRequest) -> SetContactEmailResponse;
        verify_contact_email(VerifyContactEmailRequest) -> VerifyContactEmailResponse;
        resend_contact_email_code(ResendContactEmailCodeRequest) -> ResendContactEmailCodeResponse;
        set_contact_phone(SetContactPhoneRequest) -> SetContactPhoneResponse;
        verify_contact_phone(VerifyContactPhoneRequest) -> VerifyContactPhoneResponse;
        resend_contact_phone_code(ResendContactPhoneCodeRequest) -> ResendContactPhoneCodeResponse;
        add_username(AddUsernameRequest) -> AddUsernameResponse;
        remove_username(RemoveUsernameRequest) -> RemoveUsernameResponse;
        set_password(SetPasswordRequest) -> SetPasswordResponse;
        request_password_reset(RequestPasswordResetRequest) -> RequestPasswordResetResponse;
        start_web_auth_n_registration(StartWebAuthNRegistrationRequest) -> StartWebAuthNRegistrationResponse;
        verify_web_auth_n_registration(VerifyWebAuthNRegistrationRequest) -> VerifyWebAuthNRegistrationResponse;
        create_web_auth_n_registration_link(CreateWebAuthNRegistrationLinkRequest) -> CreateWebAuthNRegistrationLinkResponse;
        remove_web_auth_n_authenticator(RemoveWebAuthNAuthenticatorRequest) -> RemoveWebAuthNAuthenticatorResponse;
        start_totp_registration(StartTotpRegistrationRequest) -> StartTotpRegistrationResponse;
        verify_totp_registration(VerifyTotpRegistrationRequest) -> VerifyTotpRegistrationResponse;
        remove_totp_authenticator(RemoveTotpAuthenticatorRequest) -> RemoveTotpAuthenticatorResponse;
        add_otp_email_authenticator(AddOtpEmailAuthenticatorRequest) -> AddOtpEmailAuthenticatorResponse;
        verify_otp_email_registration(VerifyOtpEmailRegistrationRequest) -> VerifyOtpEmailRegistrationResponse;
        remove_otp_email_authenticator(RemoveOtpEmailAuthenticatorRequest) -> RemoveOtpEmailAuthenticatorResponse;
        start_identity_provider_intent(StartIdentityProviderIntentRequest) -> StartIdentityProviderIntentResponse;
        get_identity_provider_intent(GetIdentityProviderIntentRequest) -> GetIdentityProviderIntentResponse;
        add_idp_authenticator(AddIdpAuthenticatorRequest) -> AddIdpAuthenticatorResponse;
        remove_idp_authenticator(RemoveIdpAuthenticatorRequest) -> RemoveIdpAuthenticatorResponse;
    }
}
