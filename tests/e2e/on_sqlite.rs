//! Every suite on SQLite (needs nothing installed).

pub(crate) type TestApp = factors_e2e::TestApp<factors_e2e::Sqlite>;

#[path = "auth.rs"]
mod auth;

#[path = "codes.rs"]
mod codes;

#[path = "grpc.rs"]
mod grpc;

#[path = "http_rules.rs"]
mod http_rules;

#[path = "journey.rs"]
mod journey;

#[path = "openapi.rs"]
mod openapi;

#[path = "redis.rs"]
mod redis;

#[path = "removal.rs"]
mod removal;

#[path = "sessions.rs"]
mod sessions;

#[path = "users.rs"]
mod users;
