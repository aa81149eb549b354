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
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool, Postgres, Row};

use crate::connections::Connections;
pub use crate::connections::Pooler;

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
    /// What `url` leads through: a pooler in transaction mode needs statements that
    /// survive it.
    pub pooler: Pooler,
    /// Where migrations run instead of `url` (they hold a session's advisory lock, which
    /// a transaction pooler cannot keep).
    pub migration_url: Option<String>,
}

impl PgConfig {
    /// Where migrations connect when not on `url`'s pool (`None`): to `migration_url`,
    /// with no pooler and no more than two connections.
    ///
    /// # Errors
    /// Behind a transaction pooler with no `migration_url`: migrations cannot run there.
    pub fn for_migrations(&self) -> anyhow::Result<Option<Self>> {
        match (&self.migration_url, self.pooler) {
            (None, Pooler::None) => Ok(None),
            (Some(url), _) => Ok(Some(Self {
                url: url.clone(),
                max_connections: 2,
                pooler: Pooler::None,
                migration_url: None,
                ..self.clone()
            })),
            (None, Pooler::Transaction) => anyhow::bail!(
                "migrations cannot run through a pooler in transaction mode (database.pooler = \"transaction\"): \
                 set database.migration_url (FACTORS__DATABASE__MIGRATION_URL) to PostgreSQL itself, or turn \
                 database.migrate_on_start off and run `factors migrate` with database.url pointing there"
            ),
        }
    }
}

/// The URLs may hold a password: debug output shows where, never how.
impl std::fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let target = |url: &str| {
            PgConnectOptions::from_str(url).map_or_else(
                |_| "<unparsable url>".to_owned(),
                |o| format!("{}:{}/{}", o.get_host(), o.get_port(), o.get_database().unwrap_or("postgres")),
            )
        };
        f.debug_struct("PgConfig")
            .field("target", &target(&self.url))
            .field("migration_target", &self.migration_url.as_deref().map(target))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("create_database", &self.create_database)
            .field("pooler", &self.pooler)
            .finish_non_exhaustive()
    }
}

/// Connects a pool, creating the database first when asked and missing.
///
/// A server that refuses connections, cannot be reached or is still starting up is tried
/// again for up to `wait` (each failed try logged), as happens while a container starts.
///
/// With [`Pooler::None`], a `url` that leads through a pooler in transaction mode is found
/// out here, before any statement could run on the wrong server.
///
/// # Errors
/// Once, with what failed, where (host, port, database; never the password) and which
/// setting to change: a malformed URL, a server still unreachable after `wait`, refused
/// credentials, a missing database that may not be created, a transaction pooler that
/// `pooler` does not name, anything else the server answers.
pub async fn connect(config: &PgConfig, wait: Duration) -> anyhow::Result<PgPool> {
    let mut options = PgConnectOptions::from_str(&config.url)
        .map_err(|e| {
            anyhow::anyhow!("database.url (FACTORS__DATABASE__URL) is not a valid PostgreSQL URL: {}", cause(&e))
        })?
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
    if config.pooler == Pooler::Transaction {
        // PgBouncer refuses startup parameters it was not told to ignore.
        options = options.extra_float_digits(None);
    }
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
            Failure::Other if cause(&failure).contains("unsupported startup parameter") => anyhow::bail!(
                "connecting to PostgreSQL at {target}: {}. A pooler answers there: behind PgBouncer in \
                 transaction mode set database.pooler = \"transaction\" (FACTORS__DATABASE__POOLER); in \
                 session mode, give it ignore_startup_parameters = extra_float_digits,options",
                cause(&failure)
            ),
            Failure::Other => anyhow::bail!("connecting to PostgreSQL at {target}: {}", cause(&failure)),
        }
    }
    if config.pooler == Pooler::None && shares_servers(&options).await.context(format!("probing {target}"))? {
        anyhow::bail!(
            "database.url leads to {target} through a pooler in transaction mode (PgBouncer's pool_mode = \
             transaction): one connection's statements run on several servers. Set database.pooler = \
             \"transaction\" (FACTORS__DATABASE__POOLER=transaction), or point database.url at PostgreSQL \
             or a pooler in session mode"
        );
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

/// Whether connections to `options` share their servers between transactions (a pooler
/// in transaction mode): two connections each prepare a statement under the same name
/// (sqlx numbers them per connection) with different text, then run it again. On
/// connections of their own, each gets its own answer; sharing servers, one finds the
/// name taken, or missing, or the other's statement.
async fn shares_servers(options: &PgConnectOptions) -> Result<bool, sqlx::Error> {
    let mut connections = [PgConnection::connect_with(options).await?, PgConnection::connect_with(options).await?];
    let mut shared = false;
    'rounds: for _ in 0..2 {
        for (expected, connection) in (1_i32..).zip(connections.iter_mut()) {
            let statement = format!("SELECT {expected}::int4");
            match sqlx::query_scalar::<_, i32>(&statement).fetch_one(&mut *connection).await {
                Ok(answer) if answer == expected => {}
                Ok(_) => shared = true,
                // duplicate_prepared_statement, invalid_sql_statement_name
                Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P05" | "26000")) => {
                    shared = true;
                }
                Err(e) => return Err(e),
            }
            if shared {
                break 'rounds;
            }
        }
    }
    for connection in connections {
        let _ = connection.close().await;
    }
    Ok(shared)
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
        Self::behind(pool, instance, Pooler::None)
    }

    /// As [`PgStore::new`], with `pool`'s database reached through `pooler`.
    pub fn behind(pool: &PgPool, instance: InstanceId, pooler: Pooler) -> Self {
        let options = pool.options();
        let connections = Connections::new(
            pool.connect_options().as_ref().clone(),
            pooler,
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
/// cycle after 65,536 start-ups, far beyond the lifetime of any replica set. In the simple
/// protocol, which a transaction pooler passes whole to one server.
///
/// # Errors
/// When the database cannot be reached.
pub async fn allocate_id_node(pool: &PgPool) -> anyhow::Result<u16> {
    let row = pool.fetch_one("SELECT nextval('id_nodes')").await.context("allocating an id node")?;
    let next: i64 = row.try_get(0).context("allocating an id node")?;
    Ok(u16::try_from(next.rem_euclid(1 << 16)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pooler: Pooler, migration_url: Option<&str>) -> PgConfig {
        PgConfig {
            url: "postgres://app@pooler:6432/factors".to_owned(),
            max_connections: 20,
            acquire_timeout: Duration::from_secs(5),
            create_database: false,
            pooler,
            migration_url: migration_url.map(str::to_owned),
        }
    }

    #[test]
    fn migrations_run_on_the_service_url_unless_another_is_given_and_never_through_a_transaction_pooler() {
        assert!(config(Pooler::None, None).for_migrations().expect("direct").is_none(), "the service's own pool");

        let elsewhere = config(Pooler::None, Some("postgres://owner@leader/factors")).for_migrations();
        assert_eq!(elsewhere.expect("given").expect("elsewhere").url, "postgres://owner@leader/factors");

        let pooled = config(Pooler::Transaction, Some("postgres://owner@leader/factors")).for_migrations();
        let direct = pooled.expect("given").expect("elsewhere");
        assert_eq!((direct.url.as_str(), direct.pooler), ("postgres://owner@leader/factors", Pooler::None));

        let refused = config(Pooler::Transaction, None).for_migrations().expect_err("a session lock is needed");
        assert!(refused.to_string().contains("database.migration_url"), "{refused}");
    }
}
