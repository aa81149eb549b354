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
    /// are on, and waits until it answers. Like most deployments it ignores the startup
    /// parameters sqlx and factors send (`extra_float_digits`, `options`) rather than
    /// refusing them.
    ///
    /// # Panics
    /// When `pgbouncer` cannot be found or does not answer: a pooler test never passes
    /// without its pooler.
    pub async fn start() -> Self {
        let binary = std::env::var("FACTORS_TEST_PGBOUNCER").unwrap_or_else(|_| "pgbouncer".to_owned());
        let server = server_url().await;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("factors-pgbouncer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut target = format!(
            "host={} port={} user={}",
            server.host_str().unwrap_or("127.0.0.1"),
            server.port().unwrap_or(5432),
            server.username()
        );
        if let Some(password) = server.password() {
            target.push_str(&format!(" password={password}"));
        }
        let config = dir.join("pgbouncer.ini");
        let text = format!(
            "[databases]\n* = {target}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n\
             unix_socket_dir =\nauth_type = any\npool_mode = transaction\nmax_client_conn = 2000\n\
             default_pool_size = 20\nignore_startup_parameters = extra_float_digits,options\n\
             logfile = {log}\n",
            log = dir.join("pgbouncer.log").display()
        );
        std::fs::write(&config, text).expect("a PgBouncer configuration");
        let mut command = Command::new(&binary);
        // PgBouncer refuses to run as root; it drops to another user when told to, and
        // that user must be able to read its configuration and write its log.
        if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            for path in [&dir, &config] {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).expect("permissions");
            }
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {binary} ({e}); install PgBouncer (apt-get install pgbouncer) or set FACTORS_TEST_PGBOUNCER")
            });
        let pooler = Self { port, dir, _child: child };
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = pooler.url_to("postgres");
        while sqlx::PgConnection::connect(&url).await.is_err() {
            let log = std::fs::read_to_string(pooler.dir.join("pgbouncer.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "PgBouncer did not answer on port {port} in 10 s; its log:\n{log}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pooler
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
