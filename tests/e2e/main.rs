//! End-to-end suites: the real service over HTTP on a fresh Postgres database per test.

mod auth;
mod codes;
mod grpc;
mod http_rules;
mod journey;
mod openapi;
mod redis;
mod removal;
mod sessions;
mod users;
