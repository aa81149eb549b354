//! End-to-end suites: the real service over HTTP and gRPC, on a fresh database per test.
//! Every suite runs twice: on PostgreSQL (`on_postgres`) and on the embedded SQLite store
//! (`on_sqlite`), so each REST and gRPC behaviour is proven on both.

// Each suite file is compiled once per store, on purpose: the two copies differ in the
// `TestApp` they import from their parent.
#![allow(clippy::duplicate_mod)]

mod on_postgres;
mod on_sqlite;
