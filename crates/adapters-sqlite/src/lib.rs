//! SQLite persistence of factors (sqlx): the embedded store, for a single node that runs
//! with nothing installed. It serves the same ports as the PostgreSQL store and passes the
//! same store contract suite; the schema is PostgreSQL's in SQLite's types
//! (`migrations/`), and the rows decode through the same code
//! ([`factors_adapters_sql`]).
//!
//! SQLite has no data-modifying CTEs, so a decision is applied as one `BEGIN IMMEDIATE`
//! transaction on the store's one writer connection: the user moves from the version read
//! to the next (the guard: no row moved, nothing written), then the change and the event.
//! The transaction takes the database's write lock first, so writes are serialised,
//! within this process by the writer pool and across processes sharing the file by the
//! lock (waited for up to `busy_timeout`). Reads run on their own connections beside it
//! (WAL: readers never wait for the writer). Nothing crosses a network, so a write's
//! several statements cost no round trips.
//!
//! Every statement finds its rows by a key or an index (checked by a test of their query
//! plans, `plans.rs`); where the planner could choose wrongly without statistics, the
//! statement names its index. Statistics are kept current as SQLite recommends for
//! long-lived connections: `PRAGMA optimize` after the migrations and then every hour, on
//! the writer (the one connection that may write them).

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use factors_adapters_sql::unexpected;
use factors_application::ports::Unexpected;
use factors_domain::InstanceId;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous, SqliteTransactionManager,
};
use sqlx::{Connection, Sqlite, SqlitePool, Transaction, TransactionManager};

#[cfg(test)]
mod connections;
#[cfg(feature = "inspection")]
mod inspection;
#[cfg(test)]
mod plans;
mod policies;
mod reads;
mod sessions;
mod writes;

/// The statements a removal and a sign-in send, for tools that replay them beside the
/// service (the benchmark's HTTP floor): the same text, whatever the store becomes.
pub mod sql {
    pub use crate::reads::LOAD_USER;
    pub use crate::sessions::{INSERT_SESSION, USER_AT};
    pub use crate::writes::{APPEND_EVENT, DELETE_CODE, MOVE_USER, POLICY_VERSIONS, REMOVE_AUTHENTICATOR};
}

/// How often the statistics the planner reads are brought up to date.
const OPTIMIZE_EVERY: Duration = Duration::from_secs(3600);

/// `PRAGMA optimize`, as SQLite recommends for long-lived connections: at most about a
/// thousand rows looked at per index, so it never takes long, and on the first run every
/// table (`0x10002`: also those no statement has used yet on this connection).
const OPTIMIZE_AT_OPEN: &str = "PRAGMA analysis_limit = 1000; PRAGMA optimize = 0x10002";
const OPTIMIZE: &str = "PRAGMA analysis_limit = 1000; PRAGMA optimize";

/// How much of the database file is read through a memory map (SQLite's ceiling).
const MMAP_SIZE: u64 = 0x7fff_0000;
/// The size the log file is cut back to after a checkpoint empties it, in bytes.
const JOURNAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

/// Where the database file is, and how many readers to keep. Built by the binary from its
/// settings.
#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// A `sqlite:` URL naming a file: `sqlite://data/factors.db` (relative to the working
    /// directory) or `sqlite:///var/lib/factors/factors.db`.
    pub url: String,
    /// Connections for reads; writes have one of their own.
    pub max_connections: u32,
    /// How long a statement waits for a connection, and a write for the file's write lock
    /// (which another process on the same file may hold).
    pub acquire_timeout: Duration,
}

/// The store: every port of the application that SQLite serves, for one instance.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    readers: SqlitePool,
    writer: SqlitePool,
    instance: InstanceId,
}

/// Brings the planner's statistics up to date every [`OPTIMIZE_EVERY`], until the store
/// is closed. A failed run is logged and tried again next time: the statements name their
/// indexes where it matters, so stale statistics cost little.
async fn keep_statistics(writer: SqlitePool) {
    loop {
        tokio::time::sleep(OPTIMIZE_EVERY).await;
        if writer.is_closed() {
            return;
        }
        if let Err(e) = sqlx::raw_sql(OPTIMIZE).execute(&writer).await {
            tracing::warn!(error = %e, "could not update the SQLite statistics; trying again in an hour");
        }
    }
}

/// The file a `sqlite:` URL names (`None` for an in-memory database).
///
/// # Errors
/// When the URL is not a `sqlite:` URL.
pub fn database_file(url: &str) -> anyhow::Result<Option<PathBuf>> {
    let options = SqliteConnectOptions::from_str(url).with_context(|| format!("{url:?} is not a sqlite: URL"))?;
    let file = options.get_filename();
    Ok((!url.contains(":memory:") && !file.as_os_str().is_empty()).then(|| file.to_path_buf()))
}

/// The settings every connection of the store has (WAL, `synchronous = NORMAL`, foreign
/// keys, the busy timeout, the memory map, the log's size limit), for tools that open the
/// file as the store does.
///
/// # Errors
/// When the URL is not a `sqlite:` URL.
pub fn connect_options(config: &SqliteConfig) -> anyhow::Result<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(&config.url)
        .with_context(|| format!("database.url {:?} is not a valid sqlite: URL", config.url))?
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        // With WAL, NORMAL keeps the database consistent through a crash of the process or
        // the machine; a power cut may lose the last transactions, never corrupt the file.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(config.acquire_timeout)
        // Reads straight from the operating system's page cache, shared by every
        // connection, instead of a read() into each connection's own 2 MB cache: on a file
        // of a million users a user's read went 1.7 times as fast (bench/REPORT.md). SQLite
        // caps the mapping at its own ceiling (2 GB); a larger file reads the rest as before.
        .pragma("mmap_size", MMAP_SIZE.to_string())
        // A log that a burst (or a reader held open) grew beyond this is cut back to it once
        // a checkpoint has emptied it, so the disk does not keep its high-water mark.
        .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string()))
}

/// A pool of `size` connections of the store, as the store keeps its readers and its
/// writer; for tools that open the file as the store does.
///
/// - No ping before a connection is lent: the connection is in this process, and sqlx
///   pings it when it comes back anyway; a ping is a round trip to the connection's
///   thread, as costly as a user's read.
/// - A connection that comes back still inside a transaction is closed instead of lent
///   again: a caller that went away (a client that disconnected) between SQLite's `BEGIN`
///   and sqlx's acknowledgement of it leaves a transaction no `Transaction` will ever
///   end. Lent again, the writer would refuse every later write ("non-zero transaction
///   depth"), and a reader would hold its snapshot, and so the write-ahead log, forever.
pub fn pool_options(size: u32, acquire_timeout: Duration) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(size)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(false)
        .after_release(|connection, _| {
            Box::pin(async move {
                // At depth 0 nothing can still open a transaction: a BEGIN whose caller is
                // gone and that SQLite has not run yet is rolled back by sqlx when it
                // cannot hand it over. Above 0, it may be a dropped `Transaction` whose
                // rollback is queued: the ping runs after it, so the depth read next is
                // the settled one.
                if SqliteTransactionManager::get_transaction_depth(connection) == 0 {
                    return Ok(true);
                }
                connection.ping().await?;
                let open = SqliteTransactionManager::get_transaction_depth(connection);
                if open > 0 {
                    // Handled, and a client that hangs up is no fault: not a warning.
                    tracing::info!(open, "closing a SQLite connection its caller left inside a transaction");
                }
                Ok(open == 0)
            })
        })
}

impl SqliteStore {
    /// Opens (creating the file and its folder when missing) and migrates the database.
    ///
    /// # Errors
    /// When the folder or file cannot be created or opened, or a migration fails. The
    /// messages name the file.
    pub async fn open(config: &SqliteConfig, instance: InstanceId) -> anyhow::Result<Self> {
        let options = connect_options(config)?;
        let file = database_file(&config.url)?.with_context(|| {
            format!(
                "database.url {:?}: factors keeps its SQLite database in a file, such as sqlite://data/factors.db",
                config.url
            )
        })?;
        let place = format!("at {}", file.display());
        if let Some(folder) = file.parent()
            && !folder.as_os_str().is_empty()
        {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("creating the folder of the SQLite database {place}"))?;
        }
        let writer = pool_options(1, config.acquire_timeout)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening the SQLite database {place}"))?;
        sqlx::migrate!("./migrations")
            .run(&writer)
            .await
            .with_context(|| format!("migrating the SQLite database {place}"))?;
        sqlx::raw_sql(OPTIMIZE_AT_OPEN)
            .execute(&writer)
            .await
            .with_context(|| format!("updating the statistics of the SQLite database {place}"))?;
        tokio::spawn(keep_statistics(writer.clone()));
        let readers = pool_options(config.max_connections.max(1), config.acquire_timeout)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the SQLite database {place} for reading"))?;
        Ok(Self { readers, writer, instance })
    }

    /// Whether the database answers, for `/readyz`.
    ///
    /// # Errors
    /// [`Unexpected`] when it does not.
    pub async fn ping(&self) -> Result<(), Unexpected> {
        sqlx::query("SELECT 1").execute(&self.readers).await.map_err(unexpected("pinging the database"))?;
        Ok(())
    }

    /// A node number for minting ids that no other process on this file took since
    /// 65,536 start-ups.
    ///
    /// # Errors
    /// When the database cannot be written.
    pub async fn allocate_id_node(&self) -> anyhow::Result<u16> {
        let next: i64 = sqlx::query_scalar("UPDATE id_nodes SET last = (last + 1) % 65536 RETURNING last")
            .fetch_one(&self.writer)
            .await
            .context("allocating an id node")?;
        Ok(u16::try_from(next).unwrap_or_default())
    }

    /// Closes every connection (the file stays).
    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

    /// A write transaction: the database's write lock taken at once, so the guard and
    /// the change it allows see no other write in between.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, Unexpected> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(unexpected("starting a write"))
    }
}
