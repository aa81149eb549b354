//! The RPCs of `zitadel.resources.user.v3alpha.ZITADELUsers` as REST and gRPC both serve
//! them: the one table naming each RPC in the proto's order, with its REST mapping and
//! whether factors implements it.
//!
//! REST's 501 routes, the OpenAPI document's unimplemented operations and the gRPC
//! stubs' messages all come from the table; a test in the gRPC crate holds it to the
//! proto's descriptor.

/// The full name of the user service.
pub const USER_SERVICE: &str = "zitadel.resources.user.v3alpha.ZITADELUsers";

/// The HTTP methods of the REST mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// One RPC of the user service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rpc {
    /// The name in the proto, `AddOTPSMSAuthenticator` say.
    pub name: &'static str,
    /// The method of the REST mapping.
    pub verb: Verb,
    /// The path template of the REST mapping (grpc-gateway's), in the `{param}` syntax
    /// that axum and OpenAPI share.
    pub path: &'static str,
    /// Whether factors serves it; the others answer UNIMPLEMENTED on every protocol.
    pub implemented: bool,
}

const fn implemented(verb: Verb, path: &'static str, name: &'static str) -> Rpc {
    Rpc { name, verb, path, implemented: true }
}

const fn unimplemented(verb: Verb, path: &'static str, name: &'static str) -> Rpc {
    Rpc { name, verb, path, implemented: false }
}

use Verb::{Delete as DELETE, Get as GET, Patch as PATCH, Post as POST, Put as PUT};

/// Every RPC of the user service, in the proto's order.
pub const USER_SERVICE_RPCS: &[Rpc] = &[
    unimplemented(POST, "/resources/v3alpha/users/_search", "SearchUsers"),
    implemented(GET, "/resources/v3alpha/users/{id}", "GetUser"),
    implemented(POST, "/resources/v3alpha/users", "CreateUser"),
    unimplemented(PATCH, "/resources/v3alpha/users/{id}", "PatchUser"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/_deactivate", "DeactivateUser"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/_activate", "ActivateUser"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/_lock", "LockUser"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/_unlock", "UnlockUser"),
    implemented(DELETE, "/resources/v3alpha/users/{id}", "DeleteUser"),
    unimplemented(PUT, "/resources/v3alpha/users/{id}/email", "SetContactEmail"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/email/_verify", "VerifyContactEmail"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/email/_resend", "ResendContactEmailCode"),
    unimplemented(PUT, "/resources/v3alpha/users/{id}/phone", "SetContactPhone"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/phone/_verify", "VerifyContactPhone"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/phone/_resend", "ResendContactPhoneCode"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/username", "AddUsername"),
    unimplemented(DELETE, "/resources/v3alpha/users/{id}/username/{username_id}", "RemoveUsername"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/password", "SetPassword"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/password/_reset", "RequestPasswordReset"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/webauthn", "StartWebAuthNRegistration"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/webauthn/{web_auth_n_id}/_verify", "VerifyWebAuthNRegistration"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/webauthn/registration_link", "CreateWebAuthNRegistrationLink"),
    unimplemented(DELETE, "/resources/v3alpha/users/{id}/webauthn/{web_auth_n_id}", "RemoveWebAuthNAuthenticator"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/totp", "StartTOTPRegistration"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/totp/{totp_id}/_verify", "VerifyTOTPRegistration"),
    unimplemented(DELETE, "/resources/v3alpha/users/{id}/totp/{totp_id}", "RemoveTOTPAuthenticator"),
    implemented(POST, "/resources/v3alpha/users/{id}/otp_sms", "AddOTPSMSAuthenticator"),
    implemented(POST, "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}/_verify", "VerifyOTPSMSRegistration"),
    implemented(DELETE, "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}", "RemoveOTPSMSAuthenticator"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/otp_email", "AddOTPEmailAuthenticator"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/otp_email/{otp_email_id}/_verify", "VerifyOTPEmailRegistration"),
    unimplemented(DELETE, "/resources/v3alpha/users/{id}/otp_email/{otp_email_id}", "RemoveOTPEmailAuthenticator"),
    unimplemented(POST, "/resources/v3alpha/idp_intents", "StartIdentityProviderIntent"),
    unimplemented(GET, "/resources/v3alpha/idp_intents/{idp_intent_id}", "GetIdentityProviderIntent"),
    unimplemented(POST, "/resources/v3alpha/users/{id}/idps", "AddIDPAuthenticator"),
    unimplemented(DELETE, "/resources/v3alpha/users/{id}/idps/{idp_id}", "RemoveIDPAuthenticator"),
];

/// The RPC of the user service called `name`, if it declares one.
pub fn user_service_rpc(name: &str) -> Option<&'static Rpc> {
    USER_SERVICE_RPCS.iter().find(|rpc| rpc.name == name)
}

/// The RPCs of the user service that factors does not implement, in the proto's order.
pub fn unimplemented_rpcs() -> impl Iterator<Item = &'static Rpc> {
    USER_SERVICE_RPCS.iter().filter(|rpc| !rpc.implemented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rpc_is_named_once() {
        let mut names: Vec<_> = USER_SERVICE_RPCS.iter().map(|rpc| rpc.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), USER_SERVICE_RPCS.len());
    }

    #[test]
    fn no_two_rpcs_share_a_verb_and_path() {
        for (i, rpc) in USER_SERVICE_RPCS.iter().enumerate() {
            let clash =
                USER_SERVICE_RPCS[i + 1..].iter().find(|other| (other.verb, other.path) == (rpc.verb, rpc.path));
            assert!(clash.is_none(), "{} and {clash:?} share {:?} {}", rpc.name, rpc.verb, rpc.path);
        }
    }

    #[test]
    fn the_rpcs_are_found_by_their_proto_names_only() {
        assert_eq!(user_service_rpc("AddOTPSMSAuthenticator").map(|rpc| rpc.implemented), Some(true));
        assert_eq!(user_service_rpc("StartTOTPRegistration").map(|rpc| rpc.implemented), Some(false));
        assert_eq!(user_service_rpc("AddOtpsmsAuthenticator"), None);
    }
}
