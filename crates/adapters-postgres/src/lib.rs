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
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Postgres};

use crate::connections::Connections;

mod connections;
#[cfg(feature = "inspection")]
mod inspection;
mod policies;
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
/// A server that refuses connections, cannot be reached or is still starting up is tried
/// again for up to `wait` (each failed try logged), as happens while a container starts.
///
/// # Errors
/// Once, with what failed, where (host, port, database; never the password) and which
/// setting to change: a malformed URL, a server still unreachable after `wait`, refused
/// credentials, a missing database that may not be created, anything else the server
/// answers.
pub async fn connect(config: &PgConfig, wait: Duration) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(&config.url)
        .map_err(|e| {
            anyhow::anyhow!("database.url (FACTORS__DATABASE__URL) is not a valid PostgreSQL URL: {}", cause(&e))
        })?
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    let database = options.get_database().unwrap_or("postgres").to_owned();
    let target = format!("{}:{}/{database}", options.get_host(), options.get_port());
    let deadline = tokio::time::Instant::now() + wait;
    let mut created = false;
    loop {
        let failure = match PgConnection::connect_with(&options).await {
            Ok(connection) => {
                let _ = connection.close().await;
                break;
            }
            Err(e) => e,
        };
        match classify(&failure) {
            Failure::NotYet if tokio::time::Instant::now() < deadline => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                tracing::warn!(
                    target = %target,
                    cause = %cause(&failure),
                    left = ?Duration::from_secs(left.as_secs()),
                    "PostgreSQL is not accepting connections yet; trying again"
                );
                tokio::time::sleep(Duration::from_millis(500).min(left)).await;
            }
            Failure::NotYet => anyhow::bail!(
                "PostgreSQL at {target} cannot be reached ({}), also after waiting {}s (database.connect_wait). \
                 Start it, or point database.url (FACTORS__DATABASE__URL) at a server that runs",
                cause(&failure),
                wait.as_secs()
            ),
            Failure::Credentials => anyhow::bail!(
                "PostgreSQL at {target} refused the user or password of database.url ({}). \
                 Fix them in FACTORS__DATABASE__URL",
                cause(&failure)
            ),
            Failure::NoDatabase if config.create_database && !created => {
                create(&config.url).await.with_context(|| format!("creating database {database} at {target}"))?;
                tracing::info!(target = %target, "created the database");
                created = true;
            }
            Failure::NoDatabase => anyhow::bail!(
                "database {database:?} does not exist at {target}. Create it, or let factors create it with \
                 database.create_database = true (FACTORS__DATABASE__CREATE_DATABASE=true)"
            ),
            Failure::Other => anyhow::bail!("connecting to PostgreSQL at {target}: {}", cause(&failure)),
        }
    }
    PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        // This pool serves migrations and start-up, not the store's statements (see
        // `connections`): no ping before handing a connection out.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to PostgreSQL at {target}: {}", cause(&e)))
}

/// What a failed connection means for start-up.
enum Failure {
    /// Refused, unreachable, or starting up: worth another try.
    NotYet,
    Credentials,
    NoDatabase,
    Other,
}

fn classify(error: &sqlx::Error) -> Failure {
    match error {
        // A connection cut before the server spoke (a proxy or a container's published
        // port in front of a server not listening yet) reads as a protocol error.
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::PoolTimedOut => Failure::NotYet,
        sqlx::Error::Database(e) => match e.code().as_deref() {
            // cannot_connect_now: the server is starting up or shutting down.
            Some("57P03") => Failure::NotYet,
            // invalid_password; invalid_authorization_specification (no such role, or no
            // pg_hba.conf entry for it).
            Some("28P01" | "28000") => Failure::Credentials,
            // invalid_catalog_name: no such database.
            Some("3D000") => Failure::NoDatabase,
            _ => Failure::Other,
        },
        _ => Failure::Other,
    }
}

/// The innermost cause, once: sqlx's own messages repeat their source's.
fn cause(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Io(e) => e.to_string(),
        sqlx::Error::Database(e) => e.message().to_owned(),
        sqlx::Error::Configuration(e) => e.to_string(),
        other => other.to_string(),
    }
}

async fn create(url: &str) -> anyhow::Result<()> {
    match Postgres::create_database(url).await {
        Ok(()) => Ok(()),
        // Another replica created it in the meantime.
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => Ok(()),
        Err(e) => anyhow::bail!("{}", cause(&e)),
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
