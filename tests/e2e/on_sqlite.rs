//! Every suite on SQLite (needs nothing installed).

pub(crate) type TestApp = factors_e2e::TestApp<factors_e2e::Sqlite>;

suites!();
