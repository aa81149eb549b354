//! Every suite on PostgreSQL.

pub(crate) type TestApp = factors_e2e::TestApp<factors_e2e::Postgres>;

suites!();
