//! The HTTP status and gRPC code of each kind of failure.

use factors_application::ErrorKind;

/// How one kind of failure answers on each wire, as plain numbers so that this crate
/// needs neither `http` nor `tonic`; each delivery turns them into its own types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireCodes {
    /// The HTTP status of a REST answer.
    pub http: u16,
    /// The number of the gRPC code (`google.rpc.Code`): the gRPC status, and the `code` of
    /// REST's status body.
    pub grpc: i32,
}

/// The answer of a kind of failure on each wire.
pub trait Codes {
    /// The HTTP status and gRPC code of the kind (docs/CONTRACT.md, Errors).
    fn codes(self) -> WireCodes;
}

/// The one table of HTTP statuses and gRPC codes: REST and gRPC both read it, so the two
/// cannot drift apart.
impl Codes for ErrorKind {
    fn codes(self) -> WireCodes {
        let (http, grpc) = match self {
            Self::InvalidArgument => (400, 3),
            Self::FailedPrecondition => (400, 9),
            Self::Unauthenticated => (401, 16),
            Self::PermissionDenied => (403, 7),
            Self::NotFound => (404, 5),
            Self::AlreadyExists => (409, 6),
            Self::Aborted => (409, 10),
            Self::ResourceExhausted => (429, 8),
            Self::Internal => (500, 13),
            Self::Unimplemented => (501, 12),
            Self::Unavailable => (503, 14),
            Self::DeadlineExceeded => (504, 4),
        };
        WireCodes { http, grpc }
    }
}
