//! PostgreSQL persistence of factors (sqlx): users, OTP SMS authenticators, pending codes
//! and the append-only audit log. Implements the store ports of the application; sqlx
//! errors never leave this crate.
//!
//! Every read and every write is one statement, so one round trip (the statements are in
//! [`sql`]). A write applies a decision the domain made on one version of the user, and
//! only while the user is still at that version: the statement's first part moves the
//! user's row from that version to the next, locking it, and everything else runs only if
//! it did. All writes to one user are thereby serialised in one lock order (no deadlocks
//! between them), and of N concurrent decisions made on one version exactly one lands.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use factors_application::ports::Unexpected;
use factors_domain::InstanceId;
use sqlx::migrate::MigrateDatabase;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres};

use crate::connections::Connections;

mod connections;
mod reads;
mod sessions;
pub mod sql;
mod writes;

/// How to reach the database. Built by the binary from its settings.
#[derive(Clone)]
pub struct PgConfig {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Create the database when it does not exist (the server must allow it).
    pub create_database: bool,
}

/// The URL may hold a password: debug output shows where, never how.
impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = PgConnectOptions::from_str(&self.url).map_or_else(
            |_| "<unparsable url>".to_owned(),
            |o| format!("{}:{}/{}", o.get_host(), o.get_port(), o.get_database().unwrap_or("postgres")),
        );
        f.debug_struct("PgConfig")
            .field("target", &target)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("create_database", &self.create_database)
            .finish_non_exhaustive()
    }
}

/// Connects a pool, creating the database first when asked and missing.
///
/// # Errors
/// When the URL is malformed, the server cannot be reached, or the database is missing
/// and cannot be created. Messages name the host and database, never the password.
pub async fn connect(config: &PgConfig) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(&config.url)
        .context("database.url is not a valid PostgreSQL URL")?
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    let target =
        format!("{}:{}/{}", options.get_host(), options.get_port(), options.get_database().unwrap_or("postgres"));
    if config.create_database {
        create_if_missing(&config.url).await.with_context(|| format!("creating database {target}"))?;
    }
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        // This pool serves migrations and start-up, not the store's statements (see
        // `connections`): no ping before handing a connection out.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .with_context(|| format!("connecting to PostgreSQL at {target}"))
}

async fn create_if_missing(url: &str) -> anyhow::Result<()> {
    if Postgres::database_exists(url).await? {
        return Ok(());
    }
    match Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        // Another replica created it in the meantime.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Applies the migrations embedded from `migrations/`. Safe to run from several replicas
/// at once: sqlx holds an advisory lock while migrating.
///
/// # Errors
/// When a migration fails or an applied one was edited.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("../../migrations").run(pool).await.context("running database migrations")
}

/// The store: every port of the application that PostgreSQL serves, for one instance.
#[derive(Debug, Clone)]
pub struct PgStore {
    connections: Connections,
    instance: InstanceId,
}

impl PgStore {
    /// A store on the database `pool` connects to, with as many connections and the same
    /// acquire timeout. The store opens connections of its own (see
    /// [`connections`](crate::connections)); `pool` is for migrations and the like.
    pub fn new(pool: &PgPool, instance: InstanceId) -> Self {
        let options = pool.options();
        let connections = Connections::new(
            pool.connect_options().as_ref().clone(),
            usize::try_from(options.get_max_connections()).unwrap_or(usize::MAX),
            options.get_acquire_timeout(),
        );
        Self { connections, instance }
    }

    /// Whether the database answers, for `/readyz`.
    ///
    /// # Errors
    /// [`Unexpected`] when it does not.
    pub async fn ping(&self) -> Result<(), Unexpected> {
        connections::ping(&self.connections).await
    }
}

/// A node number for minting ids that no other process currently holds: sequence values
/// cycle after 65,536 start-ups, far beyond the lifetime of any replica set.
///
/// # Errors
/// When the database cannot be reached.
pub async fn allocate_id_node(pool: &PgPool) -> anyhow::Result<u16> {
    let next: i64 =
        sqlx::query_scalar("SELECT nextval('id_nodes')").fetch_one(pool).await.context("allocating an id node")?;
    Ok(u16::try_from(next.rem_euclid(1 << 16)).unwrap_or_default())
}
