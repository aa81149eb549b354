//! The test harness of factors: finds PostgreSQL and Redis, and hands every test a fresh
//! database of its own (migrated, dropped when the test ends, pass or fail) and a Redis
//! key prefix of its own (its keys deleted at the end), or a SQLite file of its own. Also: a TCP proxy for Redis fault
//! tests, a three-master Redis Cluster on loopback ports, Redis Sentinels, and PgBouncer in
//! transaction mode.
//!
//! Each server is found in this order (docs/DESIGN.md, Tests):
//! 1. `TEST_DATABASE_URL` / `TEST_REDIS_URL`, when set;
//! 2. a container started through testcontainers, when a Docker engine answers (images
//!    from `FACTORS_TEST_POSTGRES_IMAGE` / `FACTORS_TEST_REDIS_IMAGE`, default
//!    `postgres:16-alpine` / `redis:7-alpine`);
//! 3. the conventional local servers, `postgres://postgres@127.0.0.1:5432/postgres` and
//!    `redis://127.0.0.1:6379`;
//! 4. else the test fails, with a message naming all three ways.
//!
//! The container is started once and kept (testcontainers' reuse, under a name derived
//! from the image) so that later test processes and runs start in milliseconds; remove
//! it with `docker rm -f` on the name the harness prints.

// The harness reports where its servers come from on stderr, once per process.
#![allow(clippy::print_stderr)]

use std::future::Future;

use tokio::sync::OnceCell;

mod cluster;
mod container;
mod docker;
mod own_postgres;
mod own_redis;
mod pgbouncer;
mod postgres;
mod proxy;
mod redis;
mod sentinel;
mod sqlite;

pub use cluster::RedisCluster;
pub use own_postgres::OwnPostgres;
pub use own_redis::OwnRedis;
pub use pgbouncer::TestPooler;
pub use postgres::TestDatabase;
pub use proxy::TcpProxy;
pub use redis::TestRedis;
pub use sentinel::{MASTER_NAME, RedisSentinels};
pub use sqlite::TestSqliteFile;

/// Which way a server was found, for the message a test run prints once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Environment(&'static str),
    Container(String),
    LocalDefault,
}

/// The server `cell` holds: found by `find` the first time a test of this process asks, and
/// then announced on stderr as `what` from its `source`.
///
/// # Panics
/// When `find` fails; its error says why (for want of a server, the ways to give one).
pub(crate) async fn found_once<T>(
    cell: &'static OnceCell<T>,
    what: &str,
    find: impl Future<Output = anyhow::Result<T>>,
    source: impl Fn(&T) -> &Source,
) -> &'static T {
    let found = cell
        .get_or_try_init(|| async {
            let server = find.await?;
            eprintln!("factors-testing: {what} from {}", source(&server));
            anyhow::Ok(server)
        })
        .await;
    found.unwrap_or_else(|e| panic!("{e:#}"))
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Environment(var) => write!(f, "${var}"),
            Self::Container(name) => write!(f, "container {name}"),
            Self::LocalDefault => f.write_str("the local default server"),
        }
    }
}
