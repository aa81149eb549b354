//! The application's RPC tables held to the protos: each names its service's methods in
//! the proto's order, and each RPC answers over the in-process service, either as an
//! implemented RPC does or UNIMPLEMENTED in the contract's form. That REST implements the
//! same ones is held end to end (`tests/e2e/grpc.rs`).

mod common;

use axum::body::Body;
use factors_api_grpc::{FILE_DESCRIPTOR_SET, GrpcRoutes};
use factors_wire::rpc::SERVICES;
use http_body_util::BodyExt;
use prost_reflect::DescriptorPool;
use tonic::{Code, Status};
use tower::ServiceExt;

/// The service untouched past delivery: no call here gets past the missing token.
fn routes() -> GrpcRoutes {
    common::untouched_routes()
}

/// Calls `rpc` of `service` with an empty request message and no token, as a gRPC client would.
async fn call(routes: &GrpcRoutes, service: &str, rpc: &str) -> Status {
    let empty_message = vec![0_u8; 5];
    let request = http::Request::builder()
        .version(http::Version::HTTP_2)
        .method(http::Method::POST)
        .uri(format!("/{service}/{rpc}"))
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
fn the_rpc_tables_name_the_services_methods_in_the_protos_order() {
    let pool = DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("the descriptor set decodes");
    for service in SERVICES {
        let descriptor = pool.get_service_by_name(service.name).expect("the descriptors hold the service");
        let proto: Vec<String> = descriptor.methods().map(|method| method.name().to_owned()).collect();
        let table: Vec<&str> = service.rpcs.iter().map(|rpc| rpc.name).collect();
        assert_eq!(table, proto, "{}", service.name);
    }
    let mut declared: Vec<String> =
        pool.services().map(|s| s.full_name().to_owned()).filter(|name| !name.starts_with("google.")).collect();
    declared.sort_unstable();
    let mut served: Vec<String> = SERVICES.iter().map(|service| service.name.to_owned()).collect();
    served.sort_unstable();
    assert_eq!(served, declared, "every service the protos declare has its table");
}

#[tokio::test]
async fn each_rpc_answers_over_grpc_as_implemented_or_unimplemented_in_the_contracts_form() {
    let routes = routes();
    let mut implemented = Vec::new();
    for service in SERVICES {
        for rpc in service.rpcs {
            let status = call(&routes, service.name, rpc.name).await;
            if status.code() == Code::Unimplemented {
                let message = format!("{} is not implemented by factors (RPC-Unimplemented)", rpc.name);
                assert_eq!(status.message(), message);
            } else {
                assert_eq!(status.code(), Code::Unauthenticated, "{}: {status:?}", rpc.name);
                assert_eq!(status.message(), "no bearer token was presented (AUTH-MissingToken)", "{}", rpc.name);
                implemented.push(rpc.name);
            }
        }
    }
    for rpc in ["GetUser", "RemoveOTPSMSAuthenticator", "CreateSession", "ListUserEvents", "SetLoginPolicy"] {
        assert!(implemented.contains(&rpc), "{rpc} is implemented: {implemented:?}");
    }
}
