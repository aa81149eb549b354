//! The connections the store's statements run on: a pool (deadpool) of sqlx connections
//! that hands a connection out and takes it back without a round trip.
//!
//! sqlx's own pool pings every connection as it comes back (sqlx 0.8 does so on release,
//! whatever the options say), which doubles the round trips of a store whose every read
//! and write is one statement. Here a connection is only checked when the statement that
//! last used it did not finish: a cancelled request, an error. The check drains whatever
//! that statement left unread, or drops the connection if it broke.
//!
//! A connection must reach a server that takes writes: one in recovery (a standby, which a
//! proxy may still route to while its cluster elects the next leader) or read-only would
//! refuse every write and could serve reads older than a write already acknowledged. Such
//! a connection is refused when it opens, and dropped when it is checked, so the pool
//! opens the next one (through the proxy, to the new leader) instead.
//!
//! Behind a pooler in transaction mode ([`Pooler::Transaction`]: PgBouncer's
//! `pool_mode = transaction`), a client connection has a server of its own only while a
//! transaction is open, and loses it at every idle `ReadyForQuery`. So there each lease
//! opens a transaction (which [`Lease::settle`] commits), and statements are unnamed
//! ([`Lease::persistent`] is false): a named one would be prepared on one server and
//! executed on another. The extended protocol's two steps (parse, then bind and execute)
//! both fall inside the transaction, on its server. The checks outside a lease use the
//! simple protocol: one message, one server. A connection whose statement did not finish
//! is dropped rather than checked: what its transaction came to is not known.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool::Runtime;
use deadpool::managed::{self, Metrics, QueueMode, RecycleError, RecycleResult};
use factors_application::ports::{StoreUnreachable, Unexpected};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgTransactionManager};
use sqlx::{Connection, Executor, Row, TransactionManager};

/// What stands between the store and PostgreSQL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pooler {
    /// Nothing that shares server connections (PostgreSQL itself, HAProxy, a pooler in
    /// session mode): statements are prepared once per connection and kept.
    #[default]
    None,
    /// A pooler that gives a server connection only for the length of a transaction
    /// (PgBouncer's `pool_mode = transaction`): every statement runs unnamed, in a
    /// transaction of its own.
    Transaction,
}

/// A connection, whether the last statement on it may have left it mid-conversation, and
/// how many servers taking no writes the store had met when it was last checked.
pub(crate) struct Conn {
    raw: PgConnection,
    unsettled: bool,
    checked_at: u64,
    /// Behind a transaction pooler.
    pooled: bool,
}

pub(crate) struct Manager {
    options: PgConnectOptions,
    pooler: Pooler,
    /// How many times a connection was found on a server taking no writes. When it moves,
    /// every connection is checked once before its next statement: where one server turned
    /// standby, the others the pool holds may have too.
    demotions: AtomicU64,
}

impl Manager {
    /// Whether the server under `connection` takes writes; counts it when it does not.
    async fn check(&self, connection: &mut PgConnection) -> Result<(), sqlx::Error> {
        if takes_writes(connection).await? {
            Ok(())
        } else {
            self.demotions.fetch_add(1, Ordering::SeqCst);
            Err(sqlx::Error::Protocol("the server takes no writes: a standby, or read-only".into()))
        }
    }
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Conn, sqlx::Error> {
        let checked_at = self.demotions.load(Ordering::SeqCst);
        let mut raw = PgConnection::connect_with(&self.options).await?;
        self.check(&mut raw).await?;
        Ok(Conn { raw, unsettled: false, checked_at, pooled: self.pooler == Pooler::Transaction })
    }

    async fn recycle(&self, connection: &mut Conn, _: &Metrics) -> RecycleResult<sqlx::Error> {
        let demotions = self.demotions.load(Ordering::SeqCst);
        if connection.unsettled && connection.pooled {
            // Behind a transaction pooler every lease opened a transaction, and which of
            // its messages (BEGIN, the statement, COMMIT) the server saw before the
            // statement was cut off is not known: a ROLLBACK could come after a COMMIT. The
            // connection goes, which ends its transaction; a new one costs the pooler's
            // handshake, not a server process.
            return Err(RecycleError::message("a statement behind a transaction pooler did not finish"));
        }
        if connection.unsettled || connection.checked_at != demotions {
            self.check(&mut connection.raw).await?;
            connection.unsettled = false;
            connection.checked_at = demotions;
        }
        Ok(())
    }
}

/// Whether the server takes writes (not in recovery, not read-only): one round trip, which
/// also drains what a statement cut off left unread. In the simple protocol, so that
/// behind a transaction pooler it runs whole on one server.
async fn takes_writes(connection: &mut PgConnection) -> Result<bool, sqlx::Error> {
    // A bare string is sent in the simple protocol.
    let statement = "SELECT NOT (pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on')";
    connection.fetch_one(statement).await?.try_get(0)
}

/// The pool of the store's connections.
#[derive(Clone)]
pub(crate) struct Connections(managed::Pool<Manager>);

impl std::fmt::Debug for Connections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connections").field("status", &self.0.status()).finish()
    }
}

impl Connections {
    /// At most `max` connections, each with [`crate::sql::SESSION_SETTINGS`] (none behind a
    /// transaction pooler, which would refuse them or apply them to one server only);
    /// waiting for one, or opening one, gives up after `timeout`.
    pub(crate) fn new(options: PgConnectOptions, pooler: Pooler, max: usize, timeout: Duration) -> Self {
        let options = match pooler {
            Pooler::None => options.options(crate::sql::SESSION_SETTINGS.iter().copied()),
            // PgBouncer refuses startup parameters it does not know, and sqlx sends
            // `extra_float_digits` unless told not to (no statement here reads a float).
            Pooler::Transaction => options.extra_float_digits(None),
        };
        let manager = Manager { options, pooler, demotions: AtomicU64::new(0) };
        let pool = managed::Pool::builder(manager)
            .max_size(max.max(1))
            // The connection returned last is lent first: the backends in use stay few and
            // warm (their caches, the CPU's), and the others idle. Round-robin over every
            // connection the pool ever opened cost PostgreSQL about a third more CPU per
            // statement once a burst had opened them all.
            .queue_mode(QueueMode::Lifo)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build();
        // The builder only refuses timeouts without a runtime, and one is given.
        Self(pool.expect("a runtime is given for the timeouts"))
    }

    /// A connection for one statement; call [`Lease::settle`] once it completed. Behind a
    /// transaction pooler, the statement runs in a transaction the lease opens.
    ///
    /// # Errors
    /// [`Unexpected`] when no connection can be had in time.
    pub(crate) async fn lease(&self) -> Result<Lease, Unexpected> {
        let mut lease = self.lease_for_transaction().await?;
        if lease.pooled() {
            PgTransactionManager::begin(lease.connection(), None)
                .await
                .map_err(factors_adapters_sql::unexpected("beginning a statement's transaction"))?;
        }
        Ok(lease)
    }

    /// A connection for statements in a transaction the caller begins and commits (on
    /// the connection, with sqlx's `begin`); call [`Lease::settle`] once it is over.
    ///
    /// # Errors
    /// [`Unexpected`] when no connection can be had in time.
    pub(crate) async fn lease_for_transaction(&self) -> Result<Lease, Unexpected> {
        let mut object = self.0.get().await.map_err(|e| {
            // No connection in time, or none could be opened: the database is out of reach
            // for now (a statement error would come later, on the connection).
            let e = match e {
                managed::PoolError::Backend(e) => anyhow::Error::new(e),
                other => anyhow::anyhow!("{other}"),
            };
            Unexpected(e.context("getting a database connection").context(StoreUnreachable))
        })?;
        object.unsettled = true;
        Ok(Lease(object))
    }
}

/// A connection lent for one statement.
pub(crate) struct Lease(managed::Object<Manager>);

impl Lease {
    pub(crate) fn connection(&mut self) -> &mut PgConnection {
        &mut self.0.raw
    }

    /// Whether statements may be prepared once and kept on this connection (each query's
    /// `.persistent(…)`): not behind a transaction pooler.
    pub(crate) fn persistent(&self) -> bool {
        !self.pooled()
    }

    fn pooled(&self) -> bool {
        self.0.pooled
    }

    /// The statement completed: what the lease began is committed, and the connection goes
    /// back ready for the next one.
    ///
    /// # Errors
    /// [`Unexpected`] when the commit fails: a write is then not acknowledged.
    pub(crate) async fn settle(mut self) -> Result<(), Unexpected> {
        while PgTransactionManager::get_transaction_depth(&self.0.raw) > 0 {
            PgTransactionManager::commit(&mut self.0.raw)
                .await
                .map_err(factors_adapters_sql::unexpected("committing a statement's transaction"))?;
        }
        self.0.unsettled = false;
        Ok(())
    }
}

/// Checks that the database answers, and still takes writes, on one of the store's
/// connections.
///
/// # Errors
/// [`Unexpected`] when it does not.
pub(crate) async fn ping(connections: &Connections) -> Result<(), Unexpected> {
    let mut lease = connections.lease_for_transaction().await?;
    let checked = connections.0.manager().check(lease.connection()).await;
    checked.map_err(factors_adapters_sql::unexpected("pinging the database"))?;
    lease.settle().await
}
