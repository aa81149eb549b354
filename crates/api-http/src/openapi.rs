//! The OpenAPI 3 document of the REST API, generated from the annotations of the handlers
//! (which list themselves in [`rpcs::HandlersDoc`]) and the operations endpoints, plus
//! the RPCs of the tables that [`rpcs::SERVED`] does not name (501).

use factors_wire::rpc::rpcs_other_than;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorDetail, StatusBody};
use crate::routes::openapi_method;
use crate::rpcs;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "factors",
        description = "OTP SMS authenticators behind the ZITADEL v3alpha user API (zitadel.resources.user.v3alpha.ZITADELUsers), \
                       and sign-in with them through the ZITADEL v2 session API (zitadel.session.v2.SessionService). \
                       A user's audit trail (factors.user.v1.UserEvents), login policies (factors.policy.v1.LoginPolicies) \
                       and the SMS guard against toll fraud (factors.sms.v1.SmsGuard) are factors' own extensions. \
                       Every error is a google.rpc.Status with a zitadel.v1.ErrorDetail."
    ),
    paths(
        crate::healthz,
        crate::readyz,
        crate::openapi_json,
        crate::metrics::render,
    ),
    components(schemas(StatusBody, ErrorDetail, rpcs::shared::DetailsJson, rpcs::shared::OwnerJson, rpcs::verify_otp_sms::CodeBody)),
    modifiers(&Handlers, &BearerAuth, &Unimplemented),
    tags(
        (name = "users", description = "Users"),
        (name = "otp_sms", description = "OTP SMS authenticators"),
        (name = "sessions", description = "Sessions: sign-in with the user check and an OTP SMS code"),
        (name = "events", description = "factors' own extension: a user's audit trail (factors.user.v1.UserEvents)"),
        (name = "policies", description = "factors' own extension: login policies of the instance and of organizations (factors.policy.v1.LoginPolicies)"),
        (name = "sms_guard", description = "factors' own extension: the SMS guard against toll fraud, its settings and each region's breaker (factors.sms.v1.SmsGuard)"),
        (name = "operations", description = "Health, readiness, metrics and this document"),
        (name = "unimplemented", description = "RPCs of ZITADELUsers and SessionService that factors declares but does not implement: 501"),
    )
)]
pub struct ApiDoc;

struct Handlers;

impl Modify for Handlers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.merge(rpcs::HandlersDoc::openapi());
    }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

struct Unimplemented;

impl Modify for Unimplemented {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for rpc in rpcs_other_than(rpcs::SERVED) {
            let response = ResponseBuilder::new()
                .description("Not implemented by factors")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("Status"))).build(),
                )
                .build();
            // Every `{name}` of the path is a required parameter, or the document is invalid.
            let parameters =
                rpc.path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).map(|name| {
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build()
                });
            let operation = OperationBuilder::new()
                .operation_id(Some(rpc.name))
                .tag("unimplemented")
                .parameters(Some(parameters))
                .response("501", response)
                .build();
            openapi.paths.add_path_operation(rpc.path, vec![openapi_method(rpc.verb)], operation);
        }
    }
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::path::ParameterIn;

    /// A path template whose operation does not declare each of its `{name}`s is an invalid
    /// document: fuzzers and client generators refuse it.
    #[test]
    fn every_operation_declares_the_parameters_of_its_path() {
        let document = &*crate::OPENAPI;
        let mut checked = 0;
        for (path, item) in &document.paths.paths {
            let names: Vec<&str> =
                path.split('/').filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}')).collect();
            let operations = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
            for operation in operations.into_iter().flatten() {
                let declared: Vec<&str> = operation
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == ParameterIn::Path)
                    .map(|p| p.name.as_str())
                    .collect();
                for name in &names {
                    assert!(declared.contains(name), "{path}: {:?} lacks {name}", operation.operation_id);
                }
                checked += 1;
            }
        }
        assert!(checked > 40, "every operation was looked at ({checked})");
    }
}
