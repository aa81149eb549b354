//! The RPCs of `ZITADELUsers` that factors does not implement. Their REST routes exist so
//! that clients get a clear UNIMPLEMENTED (501, code 12) instead of a 404 or a hang.

use axum::Router;
use axum::routing::{MethodFilter, on};
use factors_application::Failure;
use utoipa::openapi::path::HttpMethod;

use crate::error::ApiError;

/// The HTTP methods of the REST mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    pub fn method_filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Put => MethodFilter::PUT,
            Self::Patch => MethodFilter::PATCH,
            Self::Delete => MethodFilter::DELETE,
        }
    }

    pub fn openapi(self) -> HttpMethod {
        match self {
            Self::Get => HttpMethod::Get,
            Self::Post => HttpMethod::Post,
            Self::Put => HttpMethod::Put,
            Self::Patch => HttpMethod::Patch,
            Self::Delete => HttpMethod::Delete,
        }
    }
}

use Verb::{Delete as DELETE, Get as GET, Patch as PATCH, Post as POST, Put as PUT};

/// Method, path (grpc-gateway template, axum syntax) and RPC name, in the service's order.
pub const UNIMPLEMENTED_RPCS: &[(Verb, &str, &str)] = &[
    (POST, "/resources/v3alpha/users/_search", "SearchUsers"),
    (PATCH, "/resources/v3alpha/users/{id}", "PatchUser"),
    (POST, "/resources/v3alpha/users/{id}/_deactivate", "DeactivateUser"),
    (POST, "/resources/v3alpha/users/{id}/_activate", "ActivateUser"),
    (POST, "/resources/v3alpha/users/{id}/_lock", "LockUser"),
    (POST, "/resources/v3alpha/users/{id}/_unlock", "UnlockUser"),
    (PUT, "/resources/v3alpha/users/{id}/email", "SetContactEmail"),
    (POST, "/resources/v3alpha/users/{id}/email/_verify", "VerifyContactEmail"),
    (POST, "/resources/v3alpha/users/{id}/email/_resend", "ResendContactEmailCode"),
    (PUT, "/resources/v3alpha/users/{id}/phone", "SetContactPhone"),
    (POST, "/resources/v3alpha/users/{id}/phone/_verify", "VerifyContactPhone"),
    (POST, "/resources/v3alpha/users/{id}/phone/_resend", "ResendContactPhoneCode"),
    (POST, "/resources/v3alpha/users/{id}/username", "AddUsername"),
    (DELETE, "/resources/v3alpha/users/{id}/username/{username_id}", "RemoveUsername"),
    (POST, "/resources/v3alpha/users/{id}/password", "SetPassword"),
    (POST, "/resources/v3alpha/users/{id}/password/_reset", "RequestPasswordReset"),
    (POST, "/resources/v3alpha/users/{id}/webauthn", "StartWebAuthNRegistration"),
    (POST, "/resources/v3alpha/users/{id}/webauthn/{web_auth_n_id}/_verify", "VerifyWebAuthNRegistration"),
    (POST, "/resources/v3alpha/users/{id}/webauthn/registration_link", "CreateWebAuthNRegistrationLink"),
    (DELETE, "/resources/v3alpha/users/{id}/webauthn/{web_auth_n_id}", "RemoveWebAuthNAuthenticator"),
    (POST, "/resources/v3alpha/users/{id}/totp", "StartTOTPRegistration"),
    (POST, "/resources/v3alpha/users/{id}/totp/{totp_id}/_verify", "VerifyTOTPRegistration"),
    (DELETE, "/resources/v3alpha/users/{id}/totp/{totp_id}", "RemoveTOTPAuthenticator"),
    (POST, "/resources/v3alpha/users/{id}/otp_email", "AddOTPEmailAuthenticator"),
    (POST, "/resources/v3alpha/users/{id}/otp_email/{otp_email_id}/_verify", "VerifyOTPEmailRegistration"),
    (DELETE, "/resources/v3alpha/users/{id}/otp_email/{otp_email_id}", "RemoveOTPEmailAuthenticator"),
    (POST, "/resources/v3alpha/idp_intents", "StartIdentityProviderIntent"),
    (GET, "/resources/v3alpha/idp_intents/{idp_intent_id}", "GetIdentityProviderIntent"),
    (POST, "/resources/v3alpha/users/{id}/idps", "AddIDPAuthenticator"),
    (DELETE, "/resources/v3alpha/users/{id}/idps/{idp_id}", "RemoveIDPAuthenticator"),
];

/// The RPCs of `ZITADELUsers` that factors implements.
pub const IMPLEMENTED_RPCS: [&str; 6] = [
    "GetUser",
    "CreateUser",
    "DeleteUser",
    "AddOTPSMSAuthenticator",
    "VerifyOTPSMSRegistration",
    "RemoveOTPSMSAuthenticator",
];

/// Whether `name` is an RPC the user service declares.
pub fn is_user_service_rpc(name: &str) -> bool {
    IMPLEMENTED_RPCS.contains(&name) || UNIMPLEMENTED_RPCS.iter().any(|(_, _, rpc)| *rpc == name)
}

/// Adds a 501 route for each unimplemented RPC.
pub fn add_routes<S: Clone + Send + Sync + 'static>(mut router: Router<S>) -> Router<S> {
    for &(method, path, rpc) in UNIMPLEMENTED_RPCS {
        router = router
            .route(path, on(method.method_filter(), move || async move { ApiError(Failure::unimplemented(rpc)) }));
    }
    router
}
