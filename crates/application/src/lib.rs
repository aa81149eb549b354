//! The application layer of factors: the ports (traits) the core needs from the outside
//! world, and one use case per RPC. It depends on the domain only; adapters implement the
//! ports and delivery crates (REST, gRPC) call the use cases through their traits.

mod code_checks;
pub mod error;
pub mod input;
pub mod notices;
pub mod ports;
pub mod scope;
pub mod sms_guard;
mod tasks;
pub mod use_cases;
pub mod write_pattern;

pub use error::{ErrorKind, Failure, InvalidInput};
pub use scope::{InstanceContext, InstanceSelector, OrgSelector, RequestScope, ScopeError};
pub use write_pattern::{Details, UserLookupError};
