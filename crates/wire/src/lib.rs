//! What the deliveries of factors (REST, gRPC, gRPC-web, Connect) share and the application
//! need not know: the RPC tables with their REST mappings ([`rpc`]), the HTTP status and
//! gRPC code of each kind of failure ([`Codes`]), the failures of the delivery layers
//! themselves ([`RequestError`]), the body limit and the bearer token of a request.

mod codes;
mod request;
pub mod rpc;

pub use codes::{Codes, WireCodes};
pub use request::{MAX_BODY_BYTES, RequestError, bearer_token};
