//! The gRPC side of errors: a [`Failure`] becomes a `tonic::Status` with the gRPC code, the
//! contract's message, and a `google.rpc.Status` carrying the `zitadel.v1.ErrorDetail` in
//! `grpc-status-details-bin`, as ZITADEL's own clients read it.

use factors_application::{ErrorKind, Failure};
use factors_wire::{Codes, RequestError};
use prost::Message;
use tonic::{Code, Status};

use crate::pb::google::rpc;
use crate::pb::zitadel::v1::ErrorDetail;

pub const ERROR_DETAIL_TYPE: &str = "type.googleapis.com/zitadel.v1.ErrorDetail";

const GRPC_MESSAGE: http::HeaderName = http::HeaderName::from_static("grpc-message");
const GRPC_STATUS_DETAILS: http::HeaderName = http::HeaderName::from_static("grpc-status-details-bin");

/// The gRPC code of a kind of failure, from the application's one table of them.
pub fn grpc_code(kind: ErrorKind) -> Code {
    Code::from_i32(kind.codes().grpc)
}

/// The status of a failure. The cause of an internal failure is logged here, once, and
/// never sent.
pub fn status(failure: impl Into<Failure>) -> Status {
    let failure = failure.into();
    if let Some(cause) = &failure.cause {
        tracing::error!(error = format!("{cause:#}"), id = failure.id, "gRPC call failed");
    }
    let code = grpc_code(failure.kind);
    let message = format!("{} ({})", failure.message, failure.id);
    let detail = ErrorDetail { id: failure.id.to_owned(), message: failure.message.to_string() };
    let details = rpc::Status {
        code: code as i32,
        message: message.clone(),
        details: vec![prost_types::Any { type_url: ERROR_DETAIL_TYPE.to_owned(), value: detail.encode_to_vec() }],
    };
    let mut status = Status::with_details(code, message, details.encode_to_vec().into());
    if let Some(seconds) = failure.retry_after_seconds() {
        status.metadata_mut().insert("retry-after", seconds.into());
    }
    status
}

/// An answer of a tonic service in the contract's form. tonic answers some failures itself,
/// before the service sees a request message: bytes that do not decode (INTERNAL), a frame
/// it cannot read (INTERNAL; gRPC-web's broken base64 too), a message over the size limit
/// (OUT_OF_RANGE, or RESOURCE_EXHAUSTED once decompressed), each with tonic's own text and
/// no details. Those are the client's errors: they become INVALID_ARGUMENT `REQ-InvalidProto`
/// and RESOURCE_EXHAUSTED `REQ-TooLarge`, with the error detail.
///
/// Only trailers-only answers without details are tonic's: every status of ours carries
/// details, and a request message is read whole before any answer begins.
pub fn in_contract_form<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers();
    if headers.contains_key(GRPC_STATUS_DETAILS) {
        return response;
    }
    let refusal = match Status::from_header_map(headers).map(|s| s.code()) {
        Some(Code::Internal | Code::Unknown | Code::DataLoss) => RequestError::InvalidProto,
        Some(Code::OutOfRange | Code::ResourceExhausted) => RequestError::TooLarge,
        _ => return response,
    };
    let ours = status(refusal);
    let headers = response.headers_mut();
    headers.remove(GRPC_MESSAGE);
    if ours.add_header(headers).is_ok() {
        response.extensions_mut().insert(ours);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_carries_the_code_the_message_with_its_id_and_the_error_detail() {
        let status = status(Failure::new(ErrorKind::NotFound, "OTPSMS-NotFound", "OTP SMS authenticator not found"));

        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "OTP SMS authenticator not found (OTPSMS-NotFound)");
        let details = rpc::Status::decode(status.details()).expect("a google.rpc.Status");
        assert_eq!(details.code, 5);
        assert_eq!(details.details[0].type_url, ERROR_DETAIL_TYPE);
        let detail = ErrorDetail::decode(details.details[0].value.as_slice()).expect("an ErrorDetail");
        assert_eq!(
            (detail.id.as_str(), detail.message.as_str()),
            ("OTPSMS-NotFound", "OTP SMS authenticator not found")
        );
    }
}
