//! The application's RPC table held to the proto: it names the user service's methods in
//! the proto's order, and each RPC answers over the in-process service as the table says.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use factors_api_grpc::{FILE_DESCRIPTOR_SET, GrpcOptions, GrpcRoutes, GrpcState, SERVICE, router};
use factors_application::ports::{MockReadinessProbe, MockTokenVerifier, Readiness};
use factors_application::rpc::USER_SERVICE_RPCS;
use factors_application::use_cases::UseCases;
use factors_application::use_cases::add_otp_sms::MockAddOtpSms;
use factors_application::use_cases::create_user::MockCreateUser;
use factors_application::use_cases::delete_user::MockDeleteUser;
use factors_application::use_cases::get_user::MockGetUser;
use factors_application::use_cases::remove_otp_sms::MockRemoveOtpSms;
use factors_application::use_cases::sessions::MockSessions;
use factors_application::use_cases::verify_otp_sms::MockVerifyOtpSms;
use http_body_util::BodyExt;
use prost_reflect::DescriptorPool;
use tonic::{Code, Status};
use tower::ServiceExt;

/// The service with use cases and a token verifier that fail the test if they are called:
/// no call here gets past the missing token.
fn routes() -> GrpcRoutes {
    let use_cases = UseCases {
        create_user: Arc::new(MockCreateUser::new()),
        get_user: Arc::new(MockGetUser::new()),
        delete_user: Arc::new(MockDeleteUser::new()),
        add_otp_sms: Arc::new(MockAddOtpSms::new()),
        verify_otp_sms: Arc::new(MockVerifyOtpSms::new()),
        remove_otp_sms: Arc::new(MockRemoveOtpSms::new()),
        sessions: Arc::new(MockSessions::new()),
    };
    let mut readiness = MockReadinessProbe::new();
    readiness.expect_readiness().returning(|| Readiness { dependencies: vec![] });
    let state = GrpcState { tokens: Arc::new(MockTokenVerifier::new()), use_cases };
    let options = GrpcOptions { cors_origins: vec![], request_timeout: Duration::from_secs(5) };
    router(state, Arc::new(readiness), &options).expect("the routes build")
}

/// Calls `rpc` with an empty request message and no token, as a gRPC client would.
async fn call(routes: &GrpcRoutes, rpc: &str) -> Status {
    let empty_message = vec![0_u8; 5];
    let request = http::Request::builder()
        .version(http::Version::HTTP_2)
        .method(http::Method::POST)
        .uri(format!("/{SERVICE}/{rpc}"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Body::from(empty_message))
        .expect("a valid request");
    let response = routes.router.clone().oneshot(request).await.expect("the router answers");
    let (parts, body) = response.into_parts();
    let trailers = body.collect().await.expect("the body is read").trailers().cloned().unwrap_or_default();
    Status::from_header_map(&parts.headers)
        .or_else(|| Status::from_header_map(&trailers))
        .unwrap_or_else(|| panic!("{rpc} answered without a gRPC status"))
}

#[test]
fn the_rpc_table_names_the_services_methods_in_the_protos_order() {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("the descriptor set decodes");
    let service = pool.get_service_by_name(SERVICE).expect("the descriptors hold the user service");
    let proto: Vec<String> = service.methods().map(|method| method.name().to_owned()).collect();
    let table: Vec<&str> = USER_SERVICE_RPCS.iter().map(|rpc| rpc.name).collect();
    assert_eq!(table, proto);
}

#[tokio::test]
async fn each_rpc_answers_over_grpc_as_the_table_says_it_is_implemented_or_not() {
    let routes = routes();
    for rpc in USER_SERVICE_RPCS {
        let status = call(&routes, rpc.name).await;
        if rpc.implemented {
            assert_eq!(status.code(), Code::Unauthenticated, "{}: {status:?}", rpc.name);
            assert_eq!(status.message(), "no bearer token was presented (AUTH-MissingToken)", "{}", rpc.name);
        } else {
            assert_eq!(status.code(), Code::Unimplemented, "{}: {status:?}", rpc.name);
            let message = format!("{} is not implemented by factors (RPC-Unimplemented)", rpc.name);
            assert_eq!(status.message(), message);
        }
    }
}
