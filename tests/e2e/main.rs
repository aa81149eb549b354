//! End-to-end suites: the real service over HTTP and gRPC, on a fresh database per test.
//! Every suite runs twice: on PostgreSQL (`on_postgres`) and on the embedded SQLite store
//! (`on_sqlite`), so each REST and gRPC behaviour is proven on both.

// Each suite file is compiled once per store, on purpose: the two copies differ in the
// `TestApp` they import from their parent.
#![allow(clippy::duplicate_mod)]

/// The suites, named once; each store's module includes them with its own `TestApp`.
macro_rules! suites {
    () => {
        #[path = "auth.rs"]
        mod auth;
        #[path = "bad_input.rs"]
        mod bad_input;
        #[path = "codes.rs"]
        mod codes;
        #[path = "events.rs"]
        mod events;
        #[path = "grpc.rs"]
        mod grpc;
        #[path = "http_rules.rs"]
        mod http_rules;
        #[path = "journey.rs"]
        mod journey;
        #[path = "openapi.rs"]
        mod openapi;
        #[path = "policies.rs"]
        mod policies;
        #[path = "redis.rs"]
        mod redis;
        #[path = "removal.rs"]
        mod removal;
        #[path = "removal_policy.rs"]
        mod removal_policy;
        #[path = "self_protection.rs"]
        mod self_protection;
        #[path = "sessions.rs"]
        mod sessions;
        #[path = "sms_guard.rs"]
        mod sms_guard;
        #[path = "users.rs"]
        mod users;
    };
}

mod on_postgres;
mod on_sqlite;
