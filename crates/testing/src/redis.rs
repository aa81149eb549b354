//! Redis for tests: one server per test process, a key prefix of its own per test.

use std::time::Duration;

use tokio::sync::OnceCell;

use crate::{Source, container, found_once};

const ENV_URL: &str = "TEST_REDIS_URL";
const ENV_IMAGE: &str = "FACTORS_TEST_REDIS_IMAGE";
const DEFAULT_IMAGE: &str = "redis:7-alpine";
const LOCAL_DEFAULT: &str = "redis://127.0.0.1:6379";

#[derive(Debug)]
struct Server {
    url: String,
    source: Source,
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

/// Whether a Redis answers PING at `url` within a second.
pub async fn answers(url: &str) -> bool {
    let ping = async {
        let client = redis::Client::open(url).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING").query_async::<String>(&mut connection).await.ok()
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), ping).await, Ok(Some(_)))
}

async fn find_server() -> anyhow::Result<Server> {
    if let Ok(url) = std::env::var(ENV_URL) {
        anyhow::ensure!(answers(&url).await, "${ENV_URL} is set, but no Redis answers at {url}");
        return Ok(Server { url, source: Source::Environment(ENV_URL) });
    }
    let container_failure = match container::try_start("Redis", start_container()).await {
        Ok(server) => return Ok(server),
        Err(failure) => failure,
    };
    if answers(LOCAL_DEFAULT).await {
        return Ok(Server { url: LOCAL_DEFAULT.to_owned(), source: Source::LocalDefault });
    }
    anyhow::bail!(
        "no Redis for the tests. Give one of:\n  \
         1. TEST_REDIS_URL=redis://host:6379\n  \
         2. a running Docker engine (testcontainers starts {DEFAULT_IMAGE}, or ${ENV_IMAGE})\n  \
         3. a local server at {LOCAL_DEFAULT}{container_failure}"
    )
}

async fn start_container() -> anyhow::Result<Server> {
    let started = container::start_reused(
        "redis",
        ENV_IMAGE,
        DEFAULT_IMAGE,
        testcontainers_modules::redis::Redis::default,
        &[],
        6379,
    )
    .await?;
    let url = format!("redis://{}:{}", started.host, started.port);
    container::ensure_answers(&started, "Redis", || answers(&url)).await?;
    Ok(Server { url, source: Source::Container(started.name) })
}

async fn server() -> &'static Server {
    found_once(&SERVER, "Redis", find_server(), |server| &server.source).await
}

/// Redis for one test: the shared server, and a key prefix no other test uses. The test's
/// keys are deleted when it ends.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    prefix: String,
}

impl TestRedis {
    /// # Panics
    /// When no Redis can be found; the message names the three ways to give one.
    pub async fn new() -> Self {
        let server = server().await;
        Self { url: server.url.clone(), prefix: format!("factors-test-{}:", uuid::Uuid::new_v4().simple()) }
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key prefix of this test (use it as `redis.key_prefix`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The server's host and port, for a proxy in front of it.
    ///
    /// # Panics
    /// When the server's URL has no host (it was checked when the server was found).
    pub fn addr(&self) -> String {
        let url = url::Url::parse(&self.url).unwrap_or_else(|e| panic!("the Redis URL does not parse: {e}"));
        format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(6379))
    }

    /// Deletes every key of this test, as a Redis restarted empty would have none.
    ///
    /// # Panics
    /// When Redis cannot be reached.
    pub async fn flush(&self) {
        delete_prefixed(&self.url, &self.prefix).await.unwrap_or_else(|e| panic!("flushing test keys: {e:#}"));
    }

    /// The keys of this test.
    ///
    /// # Panics
    /// When Redis cannot be reached.
    pub async fn keys(&self) -> Vec<String> {
        let scan = async {
            let client = redis::Client::open(self.url.as_str())?;
            let mut connection = client.get_multiplexed_async_connection().await?;
            scan_prefixed(&mut connection, &self.prefix).await
        };
        scan.await.unwrap_or_else(|e: anyhow::Error| panic!("listing test keys: {e:#}"))
    }
}

async fn scan_prefixed(
    connection: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> anyhow::Result<Vec<String>> {
    let pattern = format!("*{prefix}*");
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

async fn delete_prefixed(url: &str, prefix: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    for key in scan_prefixed(&mut connection, prefix).await? {
        let _: i64 = redis::cmd("DEL").arg(&key).query_async(&mut connection).await?;
    }
    Ok(())
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(delete_prefixed(&url, &prefix))
        });
        if let Ok(Err(e)) = cleaner.join() {
            eprintln!("factors-testing: could not delete the test's Redis keys: {e:#}");
        }
    }
}
