//! PostgreSQL for tests: one server per test process, one database per test.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::sync::OnceCell;
use url::Url;

use crate::{Source, container, found_once};

const ENV_URL: &str = "TEST_DATABASE_URL";
const ENV_IMAGE: &str = "FACTORS_TEST_POSTGRES_IMAGE";
const DEFAULT_IMAGE: &str = "postgres:16-alpine";
const LOCAL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PREFIX: &str = "factors_test_";
/// Databases of crashed runs older than this are dropped when a process first connects.
const STALE_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug)]
struct Server {
    /// URL of the server's maintenance database, where test databases are created.
    admin_url: Url,
    source: Source,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

async fn answers(url: &Url) -> bool {
    let connect = PgConnection::connect(url.as_str());
    matches!(tokio::time::timeout(Duration::from_secs(3), connect).await, Ok(Ok(_)))
}

async fn find_server() -> anyhow::Result<Server> {
    if let Ok(url) = std::env::var(ENV_URL) {
        let url = Url::parse(&url).with_context(|| format!("${ENV_URL} is not a URL"))?;
        anyhow::ensure!(answers(&url).await, "${ENV_URL} is set, but no PostgreSQL answers there");
        return Ok(Server { admin_url: url, source: Source::Environment(ENV_URL) });
    }
    let container_failure = match container::try_start("PostgreSQL", start_container()).await {
        Ok(server) => return Ok(server),
        Err(failure) => failure,
    };
    let local = Url::parse(LOCAL_DEFAULT)?;
    if answers(&local).await {
        return Ok(Server { admin_url: local, source: Source::LocalDefault });
    }
    anyhow::bail!(
        "no PostgreSQL for the tests. Give one of:\n  \
         1. TEST_DATABASE_URL=postgres://user:password@host:port/postgres\n  \
         2. a running Docker engine (testcontainers starts {DEFAULT_IMAGE}, or ${ENV_IMAGE})\n  \
         3. a local server at {LOCAL_DEFAULT}{container_failure}"
    )
}

async fn start_container() -> anyhow::Result<Server> {
    // The port is named explicitly: an image whose packaged configuration picked another
    // port (Debian's does when 5432 was busy at install time) still listens where mapped.
    let args = ["-c", "fsync=off", "-c", "port=5432"];
    let started = container::start_reused(
        "postgres",
        ENV_IMAGE,
        DEFAULT_IMAGE,
        testcontainers_modules::postgres::Postgres::default,
        &args,
        5432,
    )
    .await?;
    let admin_url = Url::parse(&format!("postgres://postgres:postgres@{}:{}/postgres", started.host, started.port))?;
    container::ensure_answers(&started, "PostgreSQL", || answers(&admin_url)).await?;
    Ok(Server { admin_url, source: Source::Container(started.name) })
}

async fn server() -> &'static Server {
    let find = async {
        let server = find_server().await?;
        drop_stale_databases(&server.admin_url).await;
        anyhow::Ok(server)
    };
    found_once(&SERVER, "PostgreSQL", find, |server| &server.source).await
}

/// The maintenance URL of the server the test databases are on.
pub(crate) async fn server_url() -> Url {
    server().await.admin_url.clone()
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Best effort: a run that was killed cannot drop its databases itself.
async fn drop_stale_databases(admin_url: &Url) {
    let Ok(mut conn) = PgConnection::connect(admin_url.as_str()).await else { return };
    let names: Vec<String> = sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE 'factors_test_%'")
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
    let cutoff = unix_seconds().saturating_sub(STALE_AFTER.as_secs());
    for name in names {
        let created = name.trim_start_matches(PREFIX).split('_').next().and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|t| t < cutoff) {
            let _ = conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str()).await;
        }
    }
}

/// A database of one test: created empty on the test server, migrated, dropped on drop.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: Url,
    admin_url: Url,
}

impl TestDatabase {
    /// Creates and migrates a fresh database.
    ///
    /// # Panics
    /// When no PostgreSQL server can be found (the message names the three ways to give
    /// one) or the database cannot be created: a test never passes without its database.
    pub async fn new() -> Self {
        let server = server().await;
        let name = format!("{PREFIX}{}_{}", unix_seconds(), uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(server.admin_url.as_str())
            .await
            .unwrap_or_else(|e| panic!("connecting to the test server ({}): {e}", server.source));
        admin
            .execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap_or_else(|e| panic!("creating test database {name}: {e}"));
        let mut url = server.admin_url.clone();
        url.set_path(&name);
        let database = Self { name, url, admin_url: server.admin_url.clone() };
        let pool = database.pool().await;
        factors_adapters_postgres::migrate(&pool)
            .await
            .unwrap_or_else(|e| panic!("migrating {}: {e:#}", database.name));
        pool.close().await;
        database
    }

    /// A name and URL for a database that does not exist yet (for tests of creating and
    /// migrating it); dropped, if it was created, like any other test database.
    pub async fn reserve() -> Self {
        let server = server().await;
        let name = format!("{PREFIX}{}_{}", unix_seconds(), uuid::Uuid::new_v4().simple());
        let mut url = server.admin_url.clone();
        url.set_path(&name);
        Self { name, url, admin_url: server.admin_url.clone() }
    }

    /// The URL of this test's database.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// A small pool on this test's database.
    ///
    /// # Panics
    /// When the database cannot be reached.
    pub async fn pool(&self) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(5)
            .connect(self.url.as_str())
            .await
            .unwrap_or_else(|e| panic!("connecting to test database {}: {e}", self.name))
    }
}

impl Drop for TestDatabase {
    /// Drops the database from a thread of its own: `Drop` cannot await, and the test's
    /// runtime may be shutting down.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(admin_url.as_str()).await?;
                conn.execute(statement.as_str()).await?;
                anyhow::Ok(())
            })
        });
        if let Ok(Err(e)) = dropper.join() {
            eprintln!("factors-testing: could not drop test database {}: {e:#}", self.name);
        }
    }
}
