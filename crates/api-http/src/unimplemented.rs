//! The RPCs of `ZITADELUsers` that factors does not implement, as the application's RPC
//! table names them. Their REST routes exist so that clients get a clear UNIMPLEMENTED
//! (501, code 12) instead of a 404 or a hang.

use axum::Router;
use axum::routing::{MethodFilter, on};
use factors_application::Failure;
use factors_application::rpc::{Verb, unimplemented_rpcs};
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

/// Adds a 501 route for each unimplemented RPC.
pub fn add_routes<S: Clone + Send + Sync + 'static>(mut router: Router<S>) -> Router<S> {
    for rpc in unimplemented_rpcs() {
        let name = rpc.name;
        router = router.route(
            rpc.path,
            on(method_filter(rpc.verb), move || async move { ApiError(Failure::unimplemented(name)) }),
        );
    }
    router
}
