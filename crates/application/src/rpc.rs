//! The RPCs of the services factors serves, `zitadel.resources.user.v3alpha.ZITADELUsers`,
//! `zitadel.session.v2.SessionService` and factors' own `factors.user.v1.UserEvents`, as
//! REST and gRPC both serve them: one table per
//! service naming each RPC in the proto's order, with its REST mapping and whether factors
//! implements it, and [`SERVICES`] listing the services.
//!
//! REST's 501 routes, the OpenAPI document's unimplemented operations and the gRPC
//! stubs' messages all come from the tables; a test in the gRPC crate holds them to the
//! protos' descriptors.

/// The full name of the user service.
pub const USER_SERVICE: &str = "zitadel.resources.user.v3alpha.ZITADELUsers";

/// The full name of the session service.
pub const SESSION_SERVICE: &str = "zitadel.session.v2.SessionService";

/// The full name of factors' own audit trail service (an extension of the user API).
pub const USER_EVENTS_SERVICE: &str = "factors.user.v1.UserEvents";

/// The HTTP methods of the REST mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// One RPC of a service.
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

/// Every RPC of the session service, in the proto's order.
pub const SESSION_SERVICE_RPCS: &[Rpc] = &[
    unimplemented(POST, "/v2/sessions/search", "ListSessions"),
    implemented(GET, "/v2/sessions/{session_id}", "GetSession"),
    implemented(POST, "/v2/sessions", "CreateSession"),
    implemented(PATCH, "/v2/sessions/{session_id}", "SetSession"),
    implemented(DELETE, "/v2/sessions/{session_id}", "DeleteSession"),
];

/// Every RPC of the audit trail service, in the proto's order. Its REST path sits beside
/// the user service's: a chosen user id never starts with `_`, so `_events` names no user.
pub const USER_EVENTS_SERVICE_RPCS: &[Rpc] =
    &[implemented(GET, "/resources/v3alpha/users/{id}/_events", "ListUserEvents")];

/// A service factors serves, and its RPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// The full name in the proto, `zitadel.session.v2.SessionService` say.
    pub name: &'static str,
    /// Every RPC it declares, in the proto's order.
    pub rpcs: &'static [Rpc],
}

impl Service {
    /// The RPC of this service called `name`, if it declares one.
    pub fn rpc(&self, name: &str) -> Option<&'static Rpc> {
        self.rpcs.iter().find(|rpc| rpc.name == name)
    }
}

/// Every service factors serves.
pub const SERVICES: &[Service] = &[
    Service { name: USER_SERVICE, rpcs: USER_SERVICE_RPCS },
    Service { name: SESSION_SERVICE, rpcs: SESSION_SERVICE_RPCS },
    Service { name: USER_EVENTS_SERVICE, rpcs: USER_EVENTS_SERVICE_RPCS },
];

/// The service called `name` (its full name), if factors serves it.
pub fn service(name: &str) -> Option<&'static Service> {
    SERVICES.iter().find(|service| service.name == name)
}

/// The RPC `name` of the service called `service`, if both exist.
pub fn service_rpc(service: &str, name: &str) -> Option<&'static Rpc> {
    self::service(service).and_then(|service| service.rpc(name))
}

/// The RPC of the user service called `name`, if it declares one.
pub fn user_service_rpc(name: &str) -> Option<&'static Rpc> {
    service_rpc(USER_SERVICE, name)
}

/// The service and RPC a gRPC path (`/<service>/<method>`) names, if factors serves both.
pub fn rpc_of_path(path: &str) -> Option<(&'static Service, &'static Rpc)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    let service = self::service(service)?;
    Some((service, service.rpc(method)?))
}

/// The RPCs of every service that factors does not implement, service by service in the
/// proto's order.
pub fn unimplemented_rpcs() -> impl Iterator<Item = &'static Rpc> {
    SERVICES.iter().flat_map(|service| service.rpcs).filter(|rpc| !rpc.implemented)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_rpcs() -> Vec<&'static Rpc> {
        SERVICES.iter().flat_map(|service| service.rpcs).collect()
    }

    #[test]
    fn every_rpc_is_named_once_across_the_services() {
        // REST routes by name across the services, so a name must not be declared twice.
        let mut names: Vec<_> = all_rpcs().iter().map(|rpc| rpc.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all_rpcs().len());
    }

    #[test]
    fn no_two_rpcs_share_a_verb_and_path() {
        let rpcs = all_rpcs();
        for (i, rpc) in rpcs.iter().enumerate() {
            let clash = rpcs[i + 1..].iter().find(|other| (other.verb, other.path) == (rpc.verb, rpc.path));
            assert!(clash.is_none(), "{} and {clash:?} share {:?} {}", rpc.name, rpc.verb, rpc.path);
        }
    }

    #[test]
    fn services_and_their_rpcs_are_found_by_their_proto_names() {
        assert_eq!(service(SESSION_SERVICE).map(|s| s.rpcs.len()), Some(5));
        assert_eq!(service_rpc(SESSION_SERVICE, "ListSessions").map(|rpc| rpc.implemented), Some(false));
        assert_eq!(service_rpc(SESSION_SERVICE, "CreateSession").map(|rpc| rpc.implemented), Some(true));
        assert_eq!(service_rpc(SESSION_SERVICE, "GetUser"), None, "an RPC of another service");
        assert_eq!(service_rpc(USER_EVENTS_SERVICE, "ListUserEvents").map(|rpc| rpc.implemented), Some(true));
        assert_eq!(service("zitadel.session.v2beta.SessionService"), None);
    }

    #[test]
    fn grpc_paths_name_a_service_and_one_of_its_rpcs() {
        let named = |path: &str| rpc_of_path(path).map(|(service, rpc)| (service.name, rpc.name));
        assert_eq!(named("/zitadel.session.v2.SessionService/SetSession"), Some((SESSION_SERVICE, "SetSession")));
        assert_eq!(named(&format!("/{USER_SERVICE}/GetUser")), Some((USER_SERVICE, "GetUser")));
        assert_eq!(named("/zitadel.session.v2.SessionService/GetUser"), None);
        assert_eq!(named("/zitadel.session.v2.SessionService/SetSession/more"), None);
        assert_eq!(named("zitadel.session.v2.SessionService/SetSession"), None);
    }

    #[test]
    fn unimplemented_rpcs_cover_every_service() {
        let names: Vec<_> = unimplemented_rpcs().map(|rpc| rpc.name).collect();
        assert!(names.contains(&"SearchUsers") && names.contains(&"ListSessions"), "{names:?}");
        assert!(!names.contains(&"CreateSession"));
    }

    #[test]
    fn the_rpcs_are_found_by_their_proto_names_only() {
        assert_eq!(user_service_rpc("AddOTPSMSAuthenticator").map(|rpc| rpc.implemented), Some(true));
        assert_eq!(user_service_rpc("StartTOTPRegistration").map(|rpc| rpc.implemented), Some(false));
        assert_eq!(user_service_rpc("AddOtpsmsAuthenticator"), None);
    }
}
