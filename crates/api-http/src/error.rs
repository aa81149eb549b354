//! The REST side of errors: a [`Failure`] becomes an HTTP status and a `google.rpc.Status`
//! JSON body with a `zitadel.v1.ErrorDetail`. Internal causes ride along in a response
//! extension so that the middleware logs them once; they never reach the body.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use factors_application::{ErrorKind, Failure};
use factors_wire::{Codes, RequestError};
use serde::Serialize;
use utoipa::ToSchema;

/// The HTTP status of a kind of failure, from the application's one table of them.
pub fn http_status(kind: ErrorKind) -> StatusCode {
    // The table holds valid statuses only; were one not, a 500 beats a panic.
    StatusCode::from_u16(kind.codes().http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `google.rpc.Status` as JSON.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Status, example = json!({
    "code": 5,
    "message": "OTP SMS authenticator not found (OTPSMS-NotFound)",
    "details": [{"@type": "type.googleapis.com/zitadel.v1.ErrorDetail", "id": "OTPSMS-NotFound", "message": "OTP SMS authenticator not found"}]
}))]
pub struct StatusBody {
    /// The gRPC code number.
    pub code: i32,
    /// `<text> (<ERROR-ID>)`.
    pub message: String,
    pub details: Vec<ErrorDetail>,
}

/// `zitadel.v1.ErrorDetail`, packed as a `google.protobuf.Any`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[serde(rename = "@type")]
    #[schema(example = "type.googleapis.com/zitadel.v1.ErrorDetail")]
    pub type_url: &'static str,
    /// The stable error id, for example `OTPSMS-NotFound`.
    pub id: &'static str,
    pub message: String,
}

/// The answers every authenticated operation may give whatever it does, written once for
/// the OpenAPI document: `responses(..., CommonFailures)`.
#[derive(utoipa::IntoResponses)]
pub enum CommonFailures {
    /// No valid token
    #[response(status = 401)]
    Unauthenticated(StatusBody),
    /// Internal error
    #[response(status = 500)]
    Internal(StatusBody),
    /// The request took longer than server.request_timeout
    #[response(status = 504)]
    Timeout(StatusBody),
}

impl StatusBody {
    pub fn from_failure(failure: &Failure) -> Self {
        Self {
            code: failure.kind.codes().grpc,
            message: format!("{} ({})", failure.message, failure.id),
            details: vec![ErrorDetail {
                type_url: "type.googleapis.com/zitadel.v1.ErrorDetail",
                id: failure.id,
                message: failure.message.to_string(),
            }],
        }
    }
}

/// The cause of an internal failure, for the logging middleware only.
#[derive(Debug, Clone)]
pub struct FailureCause(pub Arc<anyhow::Error>);

/// An error answer of the REST API.
#[derive(Debug)]
pub struct ApiError(pub Failure);

impl<E: Into<Failure>> From<E> for ApiError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let failure = self.0;
        let mut response = (http_status(failure.kind), Json(StatusBody::from_failure(&failure))).into_response();
        if let Some(seconds) = failure.retry_after_seconds() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(cause) = failure.cause {
            response.extensions_mut().insert(FailureCause(Arc::new(cause)));
        }
        response
    }
}

/// A body over the size limit: RESOURCE_EXHAUSTED `REQ-TooLarge` in the body, with HTTP's
/// own status for it, 413, rather than the table's 429, which would invite the same request
/// again.
pub fn too_large() -> Response {
    (StatusCode::PAYLOAD_TOO_LARGE, ApiError::from(RequestError::TooLarge)).into_response()
}
