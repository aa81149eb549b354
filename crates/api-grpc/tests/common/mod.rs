//! Arrangements shared by the gRPC suites.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use factors_api_grpc::{GrpcOptions, GrpcRoutes, GrpcState, router};
use factors_application::ports::{AuthError, MockReadinessProbe, MockTokenVerifier, Readiness};
use factors_application::use_cases::{MockUseCases, UseCases};
use factors_domain::{Caller, UserId};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The service with use cases and a token verifier that fail the test if they are called:
/// for requests that must be answered before any of them is reached.
#[allow(dead_code)] // Not every suite asks for it.
pub fn untouched_routes() -> GrpcRoutes {
    let use_cases = MockUseCases::default().into_use_cases();
    let mut readiness = MockReadinessProbe::new();
    readiness.expect_readiness().returning(Readiness::default);
    let state = GrpcState { tokens: Arc::new(MockTokenVerifier::new()), use_cases };
    let options = GrpcOptions { cors_origins: vec![], request_timeout: Duration::from_secs(30) };
    router(state, Arc::new(readiness), &options).expect("the routes build")
}

/// The routes over `use_cases`, for a bearer token `good` that stands for caller `id`
/// (without grants: the mocked use cases decide), any other token refused.
#[allow(dead_code)] // Not every suite asks for it.
pub fn routes_for(use_cases: UseCases, id: &'static str) -> GrpcRoutes {
    let mut tokens = MockTokenVerifier::new();
    tokens.expect_verify().returning(move |token| {
        let caller = Caller {
            user_id: UserId::new(id).expect("valid"),
            org: None,
            grants: vec![],
            authentication: Default::default(),
            origin: Default::default(),
        };
        if token == "good" { Ok(caller) } else { Err(AuthError::Invalid) }
    });
    let mut readiness = MockReadinessProbe::new();
    readiness.expect_readiness().returning(Readiness::default);
    let state = GrpcState { tokens: Arc::new(tokens), use_cases };
    let options = GrpcOptions { cors_origins: vec![], request_timeout: Duration::from_secs(5) };
    router(state, Arc::new(readiness), &options).expect("the routes build")
}

/// A Connect unary call of `service`'s `method` with a JSON `body` and the token `good`:
/// the HTTP status and the JSON answer.
#[allow(dead_code)] // Not every suite asks for it.
pub async fn connect_json(routes: &GrpcRoutes, service: &str, method: &str, body: &Value) -> (http::StatusCode, Value) {
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(format!("/{service}/{method}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("connect-protocol-version", "1")
        .header(http::header::AUTHORIZATION, "Bearer good")
        .body(Body::from(body.to_string()))
        .expect("a valid request");
    let response = routes.router.clone().oneshot(request).await.expect("the router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("the body is read").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("a JSON answer"))
}
