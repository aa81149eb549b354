//! The Connect protocol's unary calls (`POST /<service>/<method>` with `application/proto`
//! or `application/json`), bridged onto the gRPC service in process: the request is framed
//! as gRPC, served by the very same tonic service, and the answer (or the status with its
//! details) turned back into Connect's form. Protobuf JSON goes through `prost-reflect`
//! and the descriptor set the service is built from, so no field is mapped by hand.
//!
//! No crate implements Connect for tonic 0.14 / prost 0.14 at the time of writing, hence
//! this thin layer of ours.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use factors_application::Failure;
use factors_wire::{MAX_BODY_BYTES, RequestError};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MethodDescriptor, SerializeOptions, ServiceDescriptor,
};
use tonic::Code;
use tower::ServiceExt;

use crate::error::status;
use crate::pb::google::rpc;
use crate::pb::zitadel::v1::ErrorDetail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Proto,
    Json,
}

impl Codec {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/proto" => Some(Self::Proto),
            "application/json" => Some(Self::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Proto => "application/proto",
            Self::Json => "application/json",
        }
    }
}

/// Whether a request is a Connect unary call (by its content type).
pub fn is_connect(headers: &HeaderMap) -> bool {
    Codec::of(headers).is_some()
}

/// The bridge: the gRPC routes to call and the service's descriptors.
pub struct Connect {
    grpc: axum::Router,
    service: ServiceDescriptor,
}

impl Connect {
    /// The gRPC routes the bridge calls.
    pub fn grpc(&self) -> &axum::Router {
        &self.grpc
    }

    /// # Errors
    /// When the descriptor set does not decode or lacks the service.
    pub fn new(grpc: axum::Router, descriptors: &[u8], service: &str) -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(descriptors)?;
        let service =
            pool.get_service_by_name(service).ok_or_else(|| anyhow::anyhow!("{service} is not in the descriptors"))?;
        Ok(Self { grpc, service })
    }
}

/// Connect's name and HTTP status of each gRPC code.
fn connect_code(code: Code) -> (&'static str, StatusCode) {
    match code {
        Code::Ok => ("ok", StatusCode::OK),
        Code::Cancelled => ("canceled", StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)),
        Code::Unknown => ("unknown", StatusCode::INTERNAL_SERVER_ERROR),
        Code::InvalidArgument => ("invalid_argument", StatusCode::BAD_REQUEST),
        Code::DeadlineExceeded => ("deadline_exceeded", StatusCode::GATEWAY_TIMEOUT),
        Code::NotFound => ("not_found", StatusCode::NOT_FOUND),
        Code::AlreadyExists => ("already_exists", StatusCode::CONFLICT),
        Code::PermissionDenied => ("permission_denied", StatusCode::FORBIDDEN),
        Code::ResourceExhausted => ("resource_exhausted", StatusCode::TOO_MANY_REQUESTS),
        Code::FailedPrecondition => ("failed_precondition", StatusCode::BAD_REQUEST),
        Code::Aborted => ("aborted", StatusCode::CONFLICT),
        Code::OutOfRange => ("out_of_range", StatusCode::BAD_REQUEST),
        Code::Unimplemented => ("unimplemented", StatusCode::NOT_IMPLEMENTED),
        Code::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
        Code::Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        Code::DataLoss => ("data_loss", StatusCode::INTERNAL_SERVER_ERROR),
        Code::Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED),
    }
}

/// A Connect error answer: JSON whatever the request's codec, as the protocol says.
fn error(status: &tonic::Status, extra: Option<&HeaderMap>) -> Response {
    let (code, http) = connect_code(status.code());
    let details: Vec<serde_json::Value> = rpc::Status::decode(status.details())
        .map(|s| s.details)
        .unwrap_or_default()
        .into_iter()
        .map(|any| {
            let kind = any.type_url.rsplit('/').next().unwrap_or_default().to_owned();
            let mut detail = serde_json::json!({"type": kind, "value": STANDARD_NO_PAD.encode(&any.value)});
            if kind == "zitadel.v1.ErrorDetail"
                && let Ok(decoded) = ErrorDetail::decode(any.value.as_slice())
            {
                detail["debug"] = serde_json::json!({"id": decoded.id, "message": decoded.message});
            }
            detail
        })
        .collect();
    let body = serde_json::json!({"code": code, "message": status.message(), "details": details});
    let mut response = (http, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    // A trailers-only answer carries its metadata in the status; a full one in the trailers.
    let retry_after = status
        .metadata()
        .get("retry-after")
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        .or_else(|| extra.and_then(|h| h.get(header::RETRY_AFTER)).cloned());
    if let Some(retry_after) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, retry_after);
    }
    response
}

/// A Connect error answer for a status made outside the bridge (a deadline, say).
pub fn error_response(status: &tonic::Status) -> Response {
    error(status, None)
}

/// A failure of the bridge itself, in the contract's form like every other error.
fn refuse(refusal: RequestError) -> Response {
    error(&status(refusal), None)
}

/// Serves one Connect unary call.
pub async fn serve(connect: &Connect, method: &str, request: Request) -> Response {
    let Some(codec) = Codec::of(request.headers()) else {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "use application/proto or application/json").into_response();
    };
    if request.method() != Method::POST {
        return refuse(RequestError::ConnectNotPost);
    }
    if request.headers().get(header::CONTENT_ENCODING).is_some_and(|e| e != "identity") {
        return refuse(RequestError::Compressed);
    }
    let Some(method) = connect.service.methods().find(|m| m.name() == method) else {
        let mut response = refuse(RequestError::UnknownMethod);
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    };
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => return refuse(RequestError::TooLarge),
        Err(_) => return refuse(RequestError::BodyUnreadable),
    };
    let payload = match codec {
        // Decoded here first, so a malformed message is the caller's error, not tonic's INTERNAL.
        Codec::Proto if DynamicMessage::decode(method.input(), body.as_ref()).is_ok() => body.to_vec(),
        Codec::Proto => {
            return refuse(RequestError::InvalidProto);
        }
        Codec::Json => match json_to_proto(&method, &body) {
            Some(payload) => payload,
            None => return refuse(RequestError::InvalidProtoJson),
        },
    };
    let answer = call_grpc(connect, &method, &parts, payload).await;
    match answer {
        Ok(message) => {
            let body = match codec {
                Codec::Proto => message,
                Codec::Json => match proto_to_json(&method, &message) {
                    Some(json) => json,
                    None => {
                        return error(
                            &status(Failure::internal(anyhow::anyhow!("transcoding an answer to JSON"))),
                            None,
                        );
                    }
                },
            };
            ([(header::CONTENT_TYPE, codec.content_type())], body).into_response()
        }
        Err((status, trailers)) => error(&status, Some(&trailers)),
    }
}

fn json_to_proto(method: &MethodDescriptor, body: &[u8]) -> Option<Vec<u8>> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    // Unknown fields are ignored, as the contract's JSON rules and Connect's own servers do.
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let message = DynamicMessage::deserialize_with_options(method.input(), &mut deserializer, &options).ok()?;
    deserializer.end().ok()?;
    Some(message.encode_to_vec())
}

fn proto_to_json(method: &MethodDescriptor, bytes: &[u8]) -> Option<Vec<u8>> {
    let message = DynamicMessage::decode(method.output(), bytes).ok()?;
    let mut serializer = serde_json::Serializer::new(Vec::new());
    message.serialize_with_options(&mut serializer, &SerializeOptions::new()).ok()?;
    Some(serializer.into_inner())
}

/// Calls the gRPC service in process; the answer's message, or its status and trailers.
async fn call_grpc(
    connect: &Connect,
    method: &MethodDescriptor,
    parts: &http::request::Parts,
    payload: Vec<u8>,
) -> Result<Vec<u8>, (tonic::Status, HeaderMap)> {
    let headers = &parts.headers;
    let internal =
        |what: &'static str| (status(Failure::internal(anyhow::anyhow!("connect bridge: {what}"))), HeaderMap::new());
    let length = u32::try_from(payload.len()).map_err(|_| internal("message too large"))?;
    let mut framed = Vec::with_capacity(payload.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(&payload);

    // gRPC is HTTP/2; tonic-web turns away other HTTP/1.1 requests.
    let mut request = http::Request::builder()
        .version(http::Version::HTTP_2)
        .method(Method::POST)
        .uri(format!("/{}/{}", connect.service.full_name(), method.name()))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers");
    for name in ["authorization", "x-request-id"] {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value);
        }
    }
    if let Some(ms) =
        headers.get("connect-timeout-ms").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && let Ok(timeout) = HeaderValue::from_str(&format!("{ms}m"))
    {
        request = request.header("grpc-timeout", timeout);
    }
    // Where the request came from, as the port's shared layers found it.
    if let Some(origin) = parts.extensions.get::<factors_domain::Origin>() {
        request = request.extension(origin.clone());
    }
    let request = request.body(Body::from(framed)).map_err(|_| internal("building the call"))?;

    let response = match connect.grpc.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.map_err(|_| internal("reading the answer"))?;
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let status = tonic::Status::from_header_map(&parts.headers).or_else(|| tonic::Status::from_header_map(&trailers));
    if let Some(status) = status.filter(|s| s.code() != Code::Ok) {
        return Err((status, trailers));
    }
    let bytes = collected.to_bytes();
    if bytes.len() < 5 || bytes[0] != 0 {
        return Err(internal("an unexpected answer frame"));
    }
    Ok(bytes[5..].to_vec())
}
