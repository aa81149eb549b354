//! The REST routes of the services' RPCs, each at the verb and path the application's RPC
//! tables give it: the handlers of the implemented RPCs, and a 501 for the others so that
//! clients get a clear UNIMPLEMENTED (code 12) instead of a 404 or a hang.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};
use factors_application::Failure;
use factors_wire::rpc::{RpcName, Verb, rpcs_other_than, service_rpc};
use utoipa::openapi::path::HttpMethod;

use crate::error::ApiError;

/// The axum method filter of a verb of the REST mapping.
pub fn method_filter(verb: Verb) -> MethodFilter {
    match verb {
        Verb::Get => MethodFilter::GET,
        Verb::Post => MethodFilter::POST,
        Verb::Put => MethodFilter::PUT,
        Verb::Patch => MethodFilter::PATCH,
        Verb::Delete => MethodFilter::DELETE,
    }
}

/// The OpenAPI method of a verb of the REST mapping.
pub fn openapi_method(verb: Verb) -> HttpMethod {
    match verb {
        Verb::Get => HttpMethod::Get,
        Verb::Post => HttpMethod::Post,
        Verb::Put => HttpMethod::Put,
        Verb::Patch => HttpMethod::Patch,
        Verb::Delete => HttpMethod::Delete,
    }
}

/// Routing an RPC by its service's and its own name in the RPC tables.
pub trait RouteRpc<S> {
    /// Routes `rpc` of `service` to `handler` at the RPC's verb: at its own path, or with
    /// `binding`, at the further REST mapping that operation id names (each mapping has a
    /// handler of its own, as their path parameters differ).
    #[must_use]
    fn route_operation<H, T>(self, service: &str, rpc: &str, binding: Option<&str>, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static;
}

impl<S: Clone + Send + Sync + 'static> RouteRpc<S> for Router<S> {
    fn route_operation<H, T>(self, service: &str, rpc: &str, binding: Option<&str>, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let mapping = service_rpc(service, rpc).and_then(|rpc| {
            let path = match binding {
                Some(operation_id) => rpc.binding(operation_id)?.path,
                None => rpc.path,
            };
            Some((rpc.verb, path))
        });
        match mapping {
            Some((verb, path)) => self.route(path, on(method_filter(verb), handler)),
            // A name the table lacks leaves its RPC unrouted, which the router tests catch.
            None => self,
        }
    }
}

/// Adds a 501 route for each RPC of the tables but those `served` names.
pub fn add_unimplemented<S: Clone + Send + Sync + 'static>(mut router: Router<S>, served: &[RpcName]) -> Router<S> {
    for rpc in rpcs_other_than(served) {
        let name = rpc.name;
        router = router.route(
            rpc.path,
            on(method_filter(rpc.verb), move || async move { ApiError(Failure::unimplemented(name)) }),
        );
    }
    router
}
