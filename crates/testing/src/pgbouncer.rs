//! PgBouncer in transaction mode (`pool_mode = transaction`, the mode that shares one server
//! connection between the transactions of many clients) in front of the test server,
//! started by the test itself from the `pgbouncer` binary (`FACTORS_TEST_PGBOUNCER`, else
//! the one on `PATH`; Debian's package `pgbouncer`). Any database of the server is reached
//! through it under its own name.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::Connection;
use tokio::process::{Child, Command};
use url::Url;

use crate::postgres::{TestDatabase, server_url};

/// A running PgBouncer; its process and files go when it is dropped.
#[derive(Debug)]
pub struct TestPooler {
    port: u16,
    dir: std::path::PathBuf,
    _child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port())
}

impl TestPooler {
    /// Starts PgBouncer on a free loopback port, in front of the server the test databases
    /// are on, and waits until it answers.
    ///
    /// # Panics
    /// When `pgbouncer` cannot be found or does not answer: a pooler test never passes
    /// without its pooler.
    pub async fn start() -> Self {
        Self::in_front_of(&server_url().await, 20).await.unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Starts PgBouncer on a free loopback port in front of the server `upstream` names
    /// (its host, port, user and password), with `pool` server connections per database,
    /// and waits until it answers. Like most deployments it ignores the startup parameters
    /// sqlx and factors send (`extra_float_digits`, `options`) rather than refusing them.
    ///
    /// # Errors
    /// When `pgbouncer` cannot be started or does not answer within 10 s.
    pub async fn in_front_of(upstream: &Url, pool: u64) -> anyhow::Result<Self> {
        let binary = std::env::var("FACTORS_TEST_PGBOUNCER").unwrap_or_else(|_| "pgbouncer".to_owned());
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("factors-pgbouncer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let mut target = format!(
            "host={} port={} user={}",
            upstream.host_str().unwrap_or("127.0.0.1"),
            upstream.port().unwrap_or(5432),
            upstream.username()
        );
        if let Some(password) = upstream.password() {
            target.push_str(&format!(" password={password}"));
        }
        let config = dir.join("pgbouncer.ini");
        let text = format!(
            "[databases]\n* = {target}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = any\npool_mode = transaction\nmax_client_conn = 2000\n\
             default_pool_size = {pool}\nignore_startup_parameters = extra_float_digits,options\n\
             logfile = {log}\n",
            log = dir.join("pgbouncer.log").display()
        );
        std::fs::write(&config, text)?;
        let mut command = Command::new(&binary);
        // PgBouncer refuses to run as root; it drops to another user when told to, and
        // that user must be able to read its configuration and write its log.
        if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            for path in [&dir, &config] {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))?;
            }
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "starting {binary} ({e}); install PgBouncer (apt-get install pgbouncer) or set FACTORS_TEST_PGBOUNCER"
                )
            })?;
        let pooler = Self { port, dir, _child: child };
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = pooler.url_to("postgres");
        while sqlx::PgConnection::connect(&url).await.is_err() {
            if Instant::now() >= deadline {
                let log = std::fs::read_to_string(pooler.dir.join("pgbouncer.log")).unwrap_or_default();
                anyhow::bail!("PgBouncer did not answer on port {port} in 10 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(pooler)
    }

    /// The URL of `database` through this pooler.
    pub fn url_to(&self, database: &str) -> String {
        format!("postgres://factors@127.0.0.1:{}/{database}", self.port)
    }

    /// The URL of the test's database through this pooler.
    pub fn url_of(&self, db: &TestDatabase) -> String {
        let direct = Url::parse(db.url()).expect("a test database URL parses");
        self.url_to(direct.path().trim_start_matches('/'))
    }
}

impl Drop for TestPooler {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
