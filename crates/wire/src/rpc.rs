//! The RPCs of the services factors serves, `zitadel.resources.user.v3alpha.ZITADELUsers`,
//! `zitadel.session.v2.SessionService` and factors' own `factors.user.v1.UserEvents`,
//! `factors.policy.v1.LoginPolicies` and `factors.sms.v1.SmsGuard`, as REST and gRPC both
//! serve them: one table per service naming each RPC in the proto's order, with its REST
//! mapping, and [`SERVICES`] listing the services.
//!
//! The tables say what the protos declare, not what factors implements: each delivery
//! knows that from its own registration of handlers, and answers every other RPC of the
//! tables UNIMPLEMENTED ([`rpcs_other_than`]). REST's 501 routes, the OpenAPI document's
//! unimplemented operations and the gRPC stubs' messages all come from the tables; a test
//! in the gRPC crate holds them to the protos' descriptors, and an end-to-end test holds
//! REST and gRPC to the same set of implemented RPCs.

/// The full name of the user service.
pub const USER_SERVICE: &str = "zitadel.resources.user.v3alpha.ZITADELUsers";

/// The full name of the session service.
pub const SESSION_SERVICE: &str = "zitadel.session.v2.SessionService";

/// The full name of factors' own audit trail service (an extension of the user API).
pub const USER_EVENTS_SERVICE: &str = "factors.user.v1.UserEvents";

/// The full name of factors' own login policy service (an extension of the user API).
pub const LOGIN_POLICY_SERVICE: &str = "factors.policy.v1.LoginPolicies";

/// The full name of factors' own SMS guard service (an extension of the user API).
pub const SMS_GUARD_SERVICE: &str = "factors.sms.v1.SmsGuard";

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
    /// More REST mappings of the same RPC, at the same verb (grpc-gateway's
    /// `additional_bindings`); most RPCs have none.
    pub also: &'static [Binding],
}

/// A further REST mapping of an RPC: its path, and the OpenAPI operation id that names it
/// (an OpenAPI document needs one id per operation, and the RPC's name is the first
/// mapping's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub path: &'static str,
    pub operation_id: &'static str,
}

impl Rpc {
    /// Every REST mapping of the RPC as (path, OpenAPI operation id), its own first.
    pub fn bindings(&self) -> impl Iterator<Item = (&'static str, &'static str)> + use<> {
        let (first, also) = ((self.path, self.name), self.also);
        std::iter::once(first).chain(also.iter().map(|binding| (binding.path, binding.operation_id)))
    }

    /// The further mapping whose operation id is `operation_id`, if the RPC has one.
    pub fn binding(&self, operation_id: &str) -> Option<&'static Binding> {
        self.also.iter().find(|binding| binding.operation_id == operation_id)
    }

    /// The RPC with further REST mappings.
    const fn also(self, also: &'static [Binding]) -> Self {
        Self { also, ..self }
    }
}

const fn rpc(verb: Verb, path: &'static str, name: &'static str) -> Rpc {
    Rpc { name, verb, path, also: &[] }
}

use Verb::{Delete as DELETE, Get as GET, Patch as PATCH, Post as POST, Put as PUT};

/// Every RPC of the user service, in the proto's order.
pub const USER_SERVICE_RPCS: &[Rpc] = &[
    rpc(POST, "/resources/v3alpha/users/_search", "SearchUsers"),
    rpc(GET, "/resources/v3alpha/users/{id}", "GetUser"),
    rpc(POST, "/resources/v3alpha/users", "CreateUser"),
    rpc(PATCH, "/resources/v3alpha/users/{id}", "PatchUser"),
    rpc(POST, "/resources/v3alpha/users/{id}/_deactivate", "DeactivateUser"),
    rpc(POST, "/resources/v3alpha/users/{id}/_activate", "ActivateUser"),
    rpc(POST, "/resources/v3alpha/users/{id}/_lock", "LockUser"),
    rpc(POST, "/resources/v3alpha/users/{id}/_unlock", "UnlockUser"),
    rpc(DELETE, "/resources/v3alpha/users/{id}", "DeleteUser"),
    rpc(PUT, "/resources/v3alpha/users/{id}/email", "SetContactEmail"),
    rpc(POST, "/resources/v3alpha/users/{id}/email/_verify", "VerifyContactEmail"),
    rpc(POST, "/resources/v3alpha/users/{id}/email/_resend", "ResendContactEmailCode"),
    rpc(PUT, "/resources/v3alpha/users/{id}/phone", "SetContactPhone"),
    rpc(POST, "/resources/v3alpha/users/{id}/phone/_verify", "VerifyContactPhone"),
    rpc(POST, "/resources/v3alpha/users/{id}/phone/_resend", "ResendContactPhoneCode"),
    rpc(POST, "/resources/v3alpha/users/{id}/username", "AddUsername"),
    rpc(DELETE, "/resources/v3alpha/users/{id}/username/{username_id}", "RemoveUsername"),
    rpc(POST, "/resources/v3alpha/users/{id}/password", "SetPassword"),
    rpc(POST, "/resources/v3alpha/users/{id}/password/_reset", "RequestPasswordReset"),
    rpc(POST, "/resources/v3alpha/users/{id}/webauthn", "StartWebAuthNRegistration"),
    rpc(POST, "/resources/v3alpha/users/{id}/webauthn/{web_auth_n_id}/_verify", "VerifyWebAuthNRegistration"),
    rpc(POST, "/resources/v3alpha/users/{id}/webauthn/registration_link", "CreateWebAuthNRegistrationLink"),
    rpc(DELETE, "/resources/v3alpha/users/{id}/webauthn/{web_auth_n_id}", "RemoveWebAuthNAuthenticator"),
    rpc(POST, "/resources/v3alpha/users/{id}/totp", "StartTOTPRegistration"),
    rpc(POST, "/resources/v3alpha/users/{id}/totp/{totp_id}/_verify", "VerifyTOTPRegistration"),
    rpc(DELETE, "/resources/v3alpha/users/{id}/totp/{totp_id}", "RemoveTOTPAuthenticator"),
    rpc(POST, "/resources/v3alpha/users/{id}/otp_sms", "AddOTPSMSAuthenticator"),
    rpc(POST, "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}/_verify", "VerifyOTPSMSRegistration"),
    rpc(DELETE, "/resources/v3alpha/users/{id}/otp_sms/{otp_sms_id}", "RemoveOTPSMSAuthenticator"),
    rpc(POST, "/resources/v3alpha/users/{id}/otp_email", "AddOTPEmailAuthenticator"),
    rpc(POST, "/resources/v3alpha/users/{id}/otp_email/{otp_email_id}/_verify", "VerifyOTPEmailRegistration"),
    rpc(DELETE, "/resources/v3alpha/users/{id}/otp_email/{otp_email_id}", "RemoveOTPEmailAuthenticator"),
    rpc(POST, "/resources/v3alpha/idp_intents", "StartIdentityProviderIntent"),
    rpc(GET, "/resources/v3alpha/idp_intents/{idp_intent_id}", "GetIdentityProviderIntent"),
    rpc(POST, "/resources/v3alpha/users/{id}/idps", "AddIDPAuthenticator"),
    rpc(DELETE, "/resources/v3alpha/users/{id}/idps/{idp_id}", "RemoveIDPAuthenticator"),
];

/// Every RPC of the session service, in the proto's order.
pub const SESSION_SERVICE_RPCS: &[Rpc] = &[
    rpc(POST, "/v2/sessions/search", "ListSessions"),
    rpc(GET, "/v2/sessions/{session_id}", "GetSession"),
    rpc(POST, "/v2/sessions", "CreateSession"),
    rpc(PATCH, "/v2/sessions/{session_id}", "SetSession"),
    rpc(DELETE, "/v2/sessions/{session_id}", "DeleteSession"),
];

/// Every RPC of the audit trail service, in the proto's order. Its REST paths sit beside
/// the user service's: a chosen user id never starts with `_`, so `_events` names no user.
pub const USER_EVENTS_SERVICE_RPCS: &[Rpc] = &[
    rpc(GET, "/resources/v3alpha/users/{id}/_events", "ListUserEvents"),
    rpc(GET, "/resources/v3alpha/_events", "ListEvents"),
];

/// Where an organization's login policy lives in REST; the instance default's path has
/// no organization. One RPC serves both, as the gRPC request's `organization_id` is
/// optional.
const ORGANIZATION_LOGIN_POLICY: &str = "/resources/v3alpha/organizations/{organization_id}/policies/login";

/// Every RPC of the login policy service, in the proto's order.
pub const LOGIN_POLICY_SERVICE_RPCS: &[Rpc] = &[
    rpc(GET, "/resources/v3alpha/policies/login", "GetLoginPolicy")
        .also(&[Binding { path: ORGANIZATION_LOGIN_POLICY, operation_id: "GetOrganizationLoginPolicy" }]),
    rpc(PUT, "/resources/v3alpha/policies/login", "SetLoginPolicy")
        .also(&[Binding { path: ORGANIZATION_LOGIN_POLICY, operation_id: "SetOrganizationLoginPolicy" }]),
];

/// Every RPC of the SMS guard service, in the proto's order.
pub const SMS_GUARD_SERVICE_RPCS: &[Rpc] = &[
    rpc(GET, "/resources/v3alpha/sms_guard", "GetSmsGuard"),
    rpc(POST, "/resources/v3alpha/sms_guard/breakers/{region}/_close", "CloseSmsBreaker"),
];

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
    Service { name: LOGIN_POLICY_SERVICE, rpcs: LOGIN_POLICY_SERVICE_RPCS },
    Service { name: SMS_GUARD_SERVICE, rpcs: SMS_GUARD_SERVICE_RPCS },
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

/// An RPC named by its service's full name and its own: what a delivery registers a
/// handler for.
pub type RpcName = (&'static str, &'static str);

/// The RPCs of every service but those `served` names, service by service in the proto's
/// order: what a delivery that serves `served` answers UNIMPLEMENTED.
pub fn rpcs_other_than(served: &[RpcName]) -> impl Iterator<Item = &'static Rpc> + use<'_> {
    SERVICES
        .iter()
        .flat_map(move |service| service.rpcs.iter().filter(move |rpc| !served.contains(&(service.name, rpc.name))))
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
    fn no_two_rpcs_share_a_verb_and_path_and_no_two_mappings_an_operation_id() {
        let mappings: Vec<_> = all_rpcs()
            .into_iter()
            .flat_map(|rpc| rpc.bindings().map(move |(path, operation)| (rpc.verb, path, operation)))
            .collect();
        for (i, (verb, path, operation)) in mappings.iter().enumerate() {
            let clash = mappings[i + 1..].iter().find(|other| (other.0, other.1) == (*verb, *path));
            assert!(clash.is_none(), "{operation} and {clash:?} share {verb:?} {path}");
            let twin = mappings[i + 1..].iter().find(|other| other.2 == *operation);
            assert!(twin.is_none(), "{operation} names two mappings: {path} and {twin:?}");
        }
    }

    #[test]
    fn the_login_policy_rpcs_are_mapped_for_the_instance_and_for_an_organization() {
        let get = service_rpc(LOGIN_POLICY_SERVICE, "GetLoginPolicy").expect("declared");
        let mappings: Vec<_> = get.bindings().collect();
        assert_eq!(
            mappings,
            [
                ("/resources/v3alpha/policies/login", "GetLoginPolicy"),
                ("/resources/v3alpha/organizations/{organization_id}/policies/login", "GetOrganizationLoginPolicy"),
            ]
        );
        assert_eq!(get.binding("GetOrganizationLoginPolicy").map(|b| b.path), Some(mappings[1].0));
        assert_eq!(get.binding("GetLoginPolicy"), None, "the first mapping is the RPC's own");
        let set = service_rpc(LOGIN_POLICY_SERVICE, "SetLoginPolicy").expect("declared");
        assert_eq!((set.verb, set.also.len()), (Verb::Put, 1));
    }

    #[test]
    fn services_and_their_rpcs_are_found_by_their_proto_names() {
        assert_eq!(service(SESSION_SERVICE).map(|s| s.rpcs.len()), Some(5));
        assert_eq!(service_rpc(SESSION_SERVICE, "CreateSession").map(|rpc| rpc.path), Some("/v2/sessions"));
        assert_eq!(service_rpc(SESSION_SERVICE, "GetUser"), None, "an RPC of another service");
        assert_eq!(service_rpc(USER_EVENTS_SERVICE, "ListUserEvents").map(|rpc| rpc.verb), Some(Verb::Get));
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
    fn the_rpcs_other_than_those_served_cover_every_service() {
        let served = [(SESSION_SERVICE, "CreateSession"), (USER_SERVICE, "GetUser"), (USER_SERVICE, "ListSessions")];
        let names: Vec<_> = rpcs_other_than(&served).map(|rpc| rpc.name).collect();
        assert_eq!(names.len(), all_rpcs().len() - 2, "ListSessions is the session service's");
        assert!(names.contains(&"SearchUsers") && names.contains(&"ListSessions"), "{names:?}");
        assert!(!names.contains(&"CreateSession"));
    }

    #[test]
    fn the_rpcs_are_found_by_their_proto_names_only() {
        assert_eq!(user_service_rpc("AddOTPSMSAuthenticator").map(|rpc| rpc.verb), Some(Verb::Post));
        assert_eq!(user_service_rpc("AddOtpsmsAuthenticator"), None);
    }
}
