//! `zitadel.resources.user.v3alpha.ZITADELUsers` over tonic: the same use cases as REST.
//! The RPCs factors does not implement answer UNIMPLEMENTED with the error detail.

use std::sync::Arc;

use factors_application::input::bearer_token;
use factors_application::ports::{AuthError, TokenVerifier};
use factors_application::use_cases::UseCases;
use factors_application::use_cases::add_otp_sms::AddOtpSmsCommand;
use factors_application::use_cases::delete_user::DeleteUserCommand;
use factors_application::use_cases::get_user::GetUserCommand;
use factors_application::use_cases::remove_otp_sms::RemoveOtpSmsCommand;
use factors_application::use_cases::verify_otp_sms::VerifyOtpSmsCommand;
use factors_application::{Failure, InvalidInput, RequestScope};
use factors_domain::{Caller, OtpSmsId, UserId, VerificationCode};
use tonic::{Request, Response, Status};

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
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .ok_or(AuthError::MissingToken)
            .map_err(status)?;
        self.state.tokens.verify(token).await.map_err(status)
    }
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

/// Implements the service trait: the implemented RPCs delegate to the handlers above, the
/// others answer UNIMPLEMENTED with the contract's error detail (as REST's 501 does).
macro_rules! users_service {
    (
        implemented { $($method:ident($request:ident) -> $response:ident => $handler:ident;)* }
        unimplemented { $($stub:ident($stub_request:ident) -> $stub_response:ident = $rpc:literal;)* }
    ) => {
        #[tonic::async_trait]
        impl ZitadelUsers for UsersService {
            $(
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::$response>, Status> {
                    self.$handler(request).await
                }
            )*
            $(
                async fn $stub(&self, _request: Request<pb::$stub_request>) -> Result<Response<pb::$stub_response>, Status> {
                    Err(status(Failure::unimplemented($rpc)))
                }
            )*
        }
    };
}

users_service! {
    implemented {
        get_user(GetUserRequest) -> GetUserResponse => get;
        create_user(CreateUserRequest) -> CreateUserResponse => create;
        delete_user(DeleteUserRequest) -> DeleteUserResponse => delete;
        add_otpsms_authenticator(AddOtpsmsAuthenticatorRequest) -> AddOtpsmsAuthenticatorResponse => add_otp_sms;
        verify_otpsms_registration(VerifyOtpsmsRegistrationRequest) -> VerifyOtpsmsRegistrationResponse => verify_otp_sms;
        remove_otpsms_authenticator(RemoveOtpsmsAuthenticatorRequest) -> RemoveOtpsmsAuthenticatorResponse => remove_otp_sms;
    }
    unimplemented {
        search_users(SearchUsersRequest) -> SearchUsersResponse = "SearchUsers";
        patch_user(PatchUserRequest) -> PatchUserResponse = "PatchUser";
        deactivate_user(DeactivateUserRequest) -> DeactivateUserResponse = "DeactivateUser";
        activate_user(ActivateUserRequest) -> ActivateUserResponse = "ActivateUser";
        lock_user(LockUserRequest) -> LockUserResponse = "LockUser";
        unlock_user(UnlockUserRequest) -> UnlockUserResponse = "UnlockUser";
        set_contact_email(SetContactEmailRequest) -> SetContactEmailResponse = "SetContactEmail";
        verify_contact_email(VerifyContactEmailRequest) -> VerifyContactEmailResponse = "VerifyContactEmail";
        resend_contact_email_code(ResendContactEmailCodeRequest) -> ResendContactEmailCodeResponse = "ResendContactEmailCode";
        set_contact_phone(SetContactPhoneRequest) -> SetContactPhoneResponse = "SetContactPhone";
        verify_contact_phone(VerifyContactPhoneRequest) -> VerifyContactPhoneResponse = "VerifyContactPhone";
        resend_contact_phone_code(ResendContactPhoneCodeRequest) -> ResendContactPhoneCodeResponse = "ResendContactPhoneCode";
        add_username(AddUsernameRequest) -> AddUsernameResponse = "AddUsername";
        remove_username(RemoveUsernameRequest) -> RemoveUsernameResponse = "RemoveUsername";
        set_password(SetPasswordRequest) -> SetPasswordResponse = "SetPassword";
        request_password_reset(RequestPasswordResetRequest) -> RequestPasswordResetResponse = "RequestPasswordReset";
        start_web_auth_n_registration(StartWebAuthNRegistrationRequest) -> StartWebAuthNRegistrationResponse = "StartWebAuthNRegistration";
        verify_web_auth_n_registration(VerifyWebAuthNRegistrationRequest) -> VerifyWebAuthNRegistrationResponse = "VerifyWebAuthNRegistration";
        create_web_auth_n_registration_link(CreateWebAuthNRegistrationLinkRequest) -> CreateWebAuthNRegistrationLinkResponse = "CreateWebAuthNRegistrationLink";
        remove_web_auth_n_authenticator(RemoveWebAuthNAuthenticatorRequest) -> RemoveWebAuthNAuthenticatorResponse = "RemoveWebAuthNAuthenticator";
        start_totp_registration(StartTotpRegistrationRequest) -> StartTotpRegistrationResponse = "StartTOTPRegistration";
        verify_totp_registration(VerifyTotpRegistrationRequest) -> VerifyTotpRegistrationResponse = "VerifyTOTPRegistration";
        remove_totp_authenticator(RemoveTotpAuthenticatorRequest) -> RemoveTotpAuthenticatorResponse = "RemoveTOTPAuthenticator";
        add_otp_email_authenticator(AddOtpEmailAuthenticatorRequest) -> AddOtpEmailAuthenticatorResponse = "AddOTPEmailAuthenticator";
        verify_otp_email_registration(VerifyOtpEmailRegistrationRequest) -> VerifyOtpEmailRegistrationResponse = "VerifyOTPEmailRegistration";
        remove_otp_email_authenticator(RemoveOtpEmailAuthenticatorRequest) -> RemoveOtpEmailAuthenticatorResponse = "RemoveOTPEmailAuthenticator";
        start_identity_provider_intent(StartIdentityProviderIntentRequest) -> StartIdentityProviderIntentResponse = "StartIdentityProviderIntent";
        get_identity_provider_intent(GetIdentityProviderIntentRequest) -> GetIdentityProviderIntentResponse = "GetIdentityProviderIntent";
        add_idp_authenticator(AddIdpAuthenticatorRequest) -> AddIdpAuthenticatorResponse = "AddIDPAuthenticator";
        remove_idp_authenticator(RemoveIdpAuthenticatorRequest) -> RemoveIdpAuthenticatorResponse = "RemoveIDPAuthenticator";
    }
}
