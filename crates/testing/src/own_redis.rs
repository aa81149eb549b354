//! A Redis server of one test's own, on a free loopback port, started from the
//! `redis-server` binary (`FACTORS_TEST_REDIS_SERVER`, else the one on `PATH`), so that the
//! test may change it in ways the shared server must not see: make it a read-only replica,
//! as a failover leaves a demoted master, and back.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A running server; its process and folder go when it is dropped.
#[derive(Debug)]
pub struct OwnRedis {
    port: u16,
    dir: std::path::PathBuf,
    _child: Child,
}

impl OwnRedis {
    /// Starts the server and waits until it answers.
    ///
    /// # Panics
    /// When `redis-server` cannot be found or does not answer: the test never passes
    /// without its server. The message says what to install or set.
    pub async fn start() -> Self {
        let binary = std::env::var("FACTORS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        for _ in 0..3 {
            // A port found free here may be taken before the server binds it: try another.
            let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port());
            let dir = std::env::temp_dir().join(format!("factors-redis-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).expect("a temporary folder");
            let child = Command::new(&binary)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {binary} ({e}); install Redis or set FACTORS_TEST_REDIS_SERVER"));
            let server = Self { port, dir, _child: child };
            for _ in 0..100 {
                if crate::redis::answers(&server.url()).await {
                    return server;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("{binary} did not answer on a loopback port");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Makes the server a replica of a master that is not there: it still answers `PING`
    /// and reads, and refuses every write (`READONLY`), as a master demoted by a failover
    /// does to clients that still hold a connection to it.
    ///
    /// # Panics
    /// When the server refuses the command.
    pub async fn demote(&self) {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(1, |a| a.port());
        self.command(redis::cmd("REPLICAOF").arg("127.0.0.1").arg(unused)).await;
    }

    /// Makes the server a master again.
    ///
    /// # Panics
    /// When the server refuses the command.
    pub async fn promote(&self) {
        self.command(redis::cmd("REPLICAOF").arg("NO").arg("ONE")).await;
    }

    async fn command(&self, command: &redis::Cmd) {
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        let mut connection = client.get_multiplexed_async_connection().await.expect("connects");
        let _: String = command.query_async(&mut connection).await.expect("the server takes the command");
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
