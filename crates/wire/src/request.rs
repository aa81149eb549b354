//! What a request must be before any RPC sees it: the failures of the delivery layers
//! themselves, the body limit, and the bearer token of its `Authorization`.

use factors_application::{ErrorKind, Failure};

/// The largest request taken, in bytes: a REST or Connect body, a gRPC message. Larger
/// ones answer RESOURCE_EXHAUSTED `REQ-TooLarge` (REST: HTTP 413), as soon as their size
/// is known, before the rest is read. The same as gRPC's customary limit for a message.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The token of an `Authorization` value (`Bearer <token>`, the scheme in any case), as
/// REST headers and gRPC metadata carry it.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Failures of the delivery layers themselves (routing, decoding, deadlines, panics) rather
/// than of a use case. REST, gRPC and Connect share them so that each id has one meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// A REST body without `Content-Type: application/json`.
    ContentType,
    /// A REST body that is not JSON.
    InvalidJson,
    /// A REST body that is JSON but not of the request message's shape.
    JsonShape,
    /// A body that could not be read at all.
    BodyUnreadable,
    InvalidPath,
    InvalidQuery,
    UnknownPath,
    /// A REST path that exists, with another method.
    MethodNotAllowed,
    /// The request ran longer than the server's (or the client's) deadline.
    Timeout,
    /// A handler panicked; the client sees an internal error.
    Panicked,
    /// A Connect call with another method than POST.
    ConnectNotPost,
    /// A Connect call with a compressed body.
    Compressed,
    /// A gRPC or gRPC-web message, or a Connect body, that is not the request message in
    /// binary protobuf; a gRPC frame that cannot be read.
    InvalidProto,
    /// A Connect body that is not the request message in protobuf JSON.
    InvalidProtoJson,
    /// A Connect call of a method the service does not declare.
    UnknownMethod,
    /// A body or message over [`MAX_BODY_BYTES`].
    TooLarge,
}

impl From<RequestError> for Failure {
    fn from(error: RequestError) -> Self {
        use ErrorKind::{DeadlineExceeded, InvalidArgument, NotFound, ResourceExhausted, Unimplemented};
        let (kind, id, message) = match error {
            RequestError::ContentType => {
                (InvalidArgument, "REQ-ContentType", "the body must be JSON (Content-Type: application/json)")
            }
            RequestError::InvalidJson => (InvalidArgument, "REQ-InvalidJson", "the body is not valid JSON"),
            RequestError::JsonShape => {
                (InvalidArgument, "REQ-JsonShape", "the body does not match the request message")
            }
            RequestError::BodyUnreadable => (InvalidArgument, "REQ-Body", "the body could not be read"),
            RequestError::InvalidPath => (InvalidArgument, "REQ-InvalidPath", "a path parameter is not valid"),
            RequestError::InvalidQuery => (InvalidArgument, "REQ-InvalidQuery", "the query parameters are not valid"),
            RequestError::UnknownPath => (NotFound, "REQ-UnknownPath", "no such path"),
            RequestError::MethodNotAllowed => {
                (Unimplemented, "REQ-MethodNotAllowed", "method not allowed on this path")
            }
            RequestError::Timeout => (DeadlineExceeded, "REQ-Timeout", "the request took too long"),
            RequestError::Panicked => return Self::internal(anyhow::anyhow!("a handler panicked")),
            RequestError::ConnectNotPost => (Unimplemented, "REQ-MethodNotAllowed", "Connect unary calls use POST"),
            RequestError::Compressed => (Unimplemented, "REQ-Compression", "compressed requests are not supported"),
            RequestError::InvalidProto => (InvalidArgument, "REQ-InvalidProto", "the body is not the request message"),
            RequestError::InvalidProtoJson => {
                (InvalidArgument, "REQ-InvalidJson", "the body is not the request message in protobuf JSON")
            }
            RequestError::UnknownMethod => (Unimplemented, "RPC-UnknownMethod", "the service has no such method"),
            RequestError::TooLarge => (ResourceExhausted, "REQ-TooLarge", "the request is larger than 4 MiB"),
        };
        Self::new(kind, id, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_limit_in_the_too_large_message_is_the_limit_applied() {
        assert_eq!(MAX_BODY_BYTES, 4 * 1024 * 1024);
        assert!(Failure::from(RequestError::TooLarge).message.ends_with("4 MiB"));
    }

    #[test]
    fn bearer_tokens_are_read_from_authorization_values() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
