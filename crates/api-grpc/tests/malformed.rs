//! Input that never becomes a request message (bytes that are not protobuf, broken frames,
//! messages over the size limit) answers at once, on every protocol, in the contract's form:
//! INVALID_ARGUMENT or RESOURCE_EXHAUSTED with the `zitadel.v1.ErrorDetail`, never tonic's
//! own INTERNAL or OUT_OF_RANGE text without details.

mod common;

use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use factors_api_grpc::GrpcRoutes;
use factors_api_grpc::pb::google::rpc;
use factors_api_grpc::pb::zitadel::v1::ErrorDetail;
use factors_wire::MAX_BODY_BYTES;
use http_body_util::BodyExt;
use prost::Message;
use tonic::{Code, Status};
use tower::ServiceExt;

const REMOVE: &str = "/zitadel.resources.user.v3alpha.ZITADELUsers/RemoveOTPSMSAuthenticator";
const CREATE_SESSION: &str = "/zitadel.session.v2.SessionService/CreateSession";

/// The service untouched past delivery: nothing here becomes a request message.
fn routes() -> GrpcRoutes {
    common::untouched_routes()
}

/// A gRPC frame: the flag byte, the length announced, and the bytes that follow.
fn frame(flag: u8, announced: usize, bytes: &[u8]) -> Vec<u8> {
    let mut framed = vec![flag];
    framed.extend_from_slice(&u32::try_from(announced).expect("fits a frame").to_be_bytes());
    framed.extend_from_slice(bytes);
    framed
}

/// Bytes that are no protobuf message: a field tag announcing more bytes than follow.
const NOT_PROTOBUF: &[u8] = &[0x0a, 0xff, 0xff, 0x01];

/// What an answer says: the gRPC status with the error id of its details, from the headers
/// (a trailers-only answer) or the trailers, native or gRPC-web.
async fn answer(routes: &GrpcRoutes, request: http::Request<Body>) -> (Code, String) {
    let text = request.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v == "application/grpc-web-text");
    let response = tokio::time::timeout(Duration::from_secs(1), routes.router.clone().oneshot(request))
        .await
        .expect("answered at once")
        .expect("the router answers");
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.expect("the body is read");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let bytes = collected.to_bytes();
    let status = Status::from_header_map(&parts.headers)
        .or_else(|| Status::from_header_map(&trailers))
        .or_else(|| grpc_web_trailers(&if text { STANDARD.decode(&bytes).expect("base64") } else { bytes.to_vec() }))
        .expect("a gRPC status");
    (status.code(), error_id(&status))
}

/// The status in a gRPC-web trailer frame.
fn grpc_web_trailers(body: &[u8]) -> Option<Status> {
    let mut rest = body;
    while rest.len() >= 5 {
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let payload = &rest[5..5 + length];
        if rest[0] & 0x80 != 0 {
            let mut headers = http::HeaderMap::new();
            for line in String::from_utf8_lossy(payload).lines() {
                if let Some((name, value)) = line.split_once(':') {
                    headers.insert(
                        http::HeaderName::from_bytes(name.trim().as_bytes()).expect("a name"),
                        http::HeaderValue::from_str(value.trim()).expect("a value"),
                    );
                }
            }
            return Status::from_header_map(&headers);
        }
        rest = &rest[5 + length..];
    }
    None
}

fn error_id(status: &Status) -> String {
    let details = rpc::Status::decode(status.details())
        .unwrap_or_else(|_| panic!("no google.rpc.Status in the details: {status:?}"));
    assert_eq!(details.code, status.code() as i32, "{status:?}");
    let any = details.details.first().unwrap_or_else(|| panic!("no detail: {status:?}"));
    assert_eq!(any.type_url, "type.googleapis.com/zitadel.v1.ErrorDetail");
    let id = ErrorDetail::decode(any.value.as_slice()).expect("an ErrorDetail").id;
    assert!(status.message().ends_with(&format!("({id})")), "{status:?}");
    id
}

fn grpc(path: &str, content_type: &str, body: Vec<u8>) -> http::Request<Body> {
    let version = if content_type == "application/grpc" { http::Version::HTTP_2 } else { http::Version::HTTP_11 };
    http::Request::builder()
        .version(version)
        .method(http::Method::POST)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::TE, "trailers")
        .body(Body::from(body))
        .expect("a valid request")
}

#[tokio::test]
async fn malformed_grpc_input_is_invalid_argument_with_the_error_detail() {
    let routes = routes();
    let cases = [
        (frame(0, NOT_PROTOBUF.len(), NOT_PROTOBUF), "bytes that are not the message"),
        (frame(7, 0, &[]), "an unknown frame flag"),
        (frame(1, 0, &[]), "a compressed frame without grpc-encoding"),
        (frame(0, 10, &[1, 2, 3]), "a frame cut short"),
        (vec![0, 0], "half a frame header"),
        (vec![], "no message at all"),
    ];
    for (path, what) in [(REMOVE, "user service"), (CREATE_SESSION, "session service")] {
        for (body, case) in &cases {
            for content_type in ["application/grpc", "application/grpc-web+proto", "application/grpc-web-text"] {
                let body =
                    if content_type.ends_with("text") { STANDARD.encode(body).into_bytes() } else { body.clone() };
                let answered = answer(&routes, grpc(path, content_type, body)).await;
                assert_eq!(
                    answered,
                    (Code::InvalidArgument, "REQ-InvalidProto".to_owned()),
                    "{what}, {content_type}: {case}"
                );
            }
        }
    }
    let not_base64 = grpc(REMOVE, "application/grpc-web-text", b"**not base64**".to_vec());
    assert_eq!(answer(&routes, not_base64).await, (Code::InvalidArgument, "REQ-InvalidProto".to_owned()));
}

#[tokio::test]
async fn a_grpc_message_over_the_size_limit_is_resource_exhausted_with_the_error_detail() {
    let routes = routes();
    let over = MAX_BODY_BYTES + 1;
    for content_type in ["application/grpc", "application/grpc-web+proto"] {
        // Announced in the frame only (no Content-Length, as HTTP/2 and chunked bodies go):
        // refused on the frame header, without waiting for the bytes.
        let announced = grpc(REMOVE, content_type, frame(0, over, &[]));
        assert_eq!(
            answer(&routes, announced).await,
            (Code::ResourceExhausted, "REQ-TooLarge".to_owned()),
            "{content_type}: a frame announcing {over} bytes"
        );
        // Announced in Content-Length: refused before any byte is read.
        let mut huge = grpc(REMOVE, content_type, Vec::new());
        huge.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("10000000000"));
        assert_eq!(
            answer(&routes, huge).await,
            (Code::ResourceExhausted, "REQ-TooLarge".to_owned()),
            "{content_type}: Content-Length of 10 GB"
        );
    }
}

/// A Connect call's status and error id.
async fn connect(
    routes: &GrpcRoutes,
    content_type: &str,
    length: Option<&'static str>,
    body: Vec<u8>,
) -> (u16, String) {
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(REMOVE)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("a valid request");
    if let Some(length) = length {
        request.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static(length));
    }
    let response = tokio::time::timeout(Duration::from_secs(1), routes.router.clone().oneshot(request))
        .await
        .expect("answered at once")
        .expect("the router answers");
    let status = response.status().as_u16();
    let body: serde_json::Value =
        serde_json::from_slice(&response.into_body().collect().await.expect("read").to_bytes()).expect("JSON");
    (status, body["details"][0]["debug"]["id"].as_str().unwrap_or("<no error id>").to_owned())
}

#[tokio::test]
async fn a_connect_body_over_the_size_limit_is_resource_exhausted_with_the_error_detail() {
    let routes = routes();
    let over = vec![b' '; MAX_BODY_BYTES + 1];
    assert_eq!(connect(&routes, "application/json", None, over.clone()).await, (429, "REQ-TooLarge".to_owned()));
    assert_eq!(connect(&routes, "application/proto", None, over).await, (429, "REQ-TooLarge".to_owned()));
    assert_eq!(
        connect(&routes, "application/proto", Some("10000000000"), Vec::new()).await,
        (429, "REQ-TooLarge".to_owned()),
        "Content-Length of 10 GB"
    );
    assert_eq!(
        connect(&routes, "application/proto", None, NOT_PROTOBUF.to_vec()).await,
        (400, "REQ-InvalidProto".to_owned())
    );
}
