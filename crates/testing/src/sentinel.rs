//! A Redis master with one replica, watched by three Sentinels, all on loopback ports and
//! started by the test itself from the `redis-server` binary (`FACTORS_TEST_REDIS_SERVER`,
//! else the one on `PATH`; Sentinel is `redis-server --sentinel`). The test can kill the
//! master as a crash would and wait for the Sentinels to promote the replica.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// The name the Sentinels know the master by.
pub const MASTER_NAME: &str = "factors-master";

/// A running set; its processes and files go when it is dropped.
#[derive(Debug)]
pub struct RedisSentinels {
    binary: String,
    dir: std::path::PathBuf,
    /// The master first, then the replica.
    servers: Vec<(u16, Option<Child>)>,
    sentinels: Vec<(u16, Child)>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port())
}

async fn query(port: u16, command: &redis::Cmd) -> anyhow::Result<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    Ok(command.query_async(&mut connection).await?)
}

impl RedisSentinels {
    /// Starts the master, its replica and three Sentinels (a quorum of two, a master
    /// deemed down after 500 ms), and waits until every Sentinel knows the replica.
    ///
    /// # Panics
    /// When `redis-server` cannot be found or the set does not form: a Sentinel test never
    /// passes without its Sentinels.
    pub async fn start() -> Self {
        let binary = std::env::var("FACTORS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned());
        let dir = std::env::temp_dir().join(format!("factors-sentinel-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut set = Self { binary, dir, servers: Vec::new(), sentinels: Vec::new() };
        let master = free_port();
        set.servers.push((master, Some(set.server(master, None))));
        let replica = free_port();
        set.servers.push((replica, Some(set.server(replica, Some(master)))));
        for _ in 0..3 {
            let port = free_port();
            let child = set.sentinel(port, master);
            set.sentinels.push((port, child));
        }
        if let Err(e) = set.formed().await {
            panic!("forming the Redis Sentinel set: {e:#}");
        }
        set
    }

    fn spawn(&self, args: &[String]) -> Child {
        Command::new(&self.binary)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {} ({e}); install Redis or set FACTORS_TEST_REDIS_SERVER", self.binary)
            })
    }

    fn server(&self, port: u16, replica_of: Option<u16>) -> Child {
        let node_dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).expect("a node directory");
        let mut args: Vec<String> =
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .map(str::to_owned)
                .into();
        args.extend(["--dir".to_owned(), node_dir.display().to_string()]);
        if let Some(master) = replica_of {
            args.extend(["--replicaof".to_owned(), "127.0.0.1".to_owned(), master.to_string()]);
        }
        self.spawn(&args)
    }

    fn sentinel(&self, port: u16, master: u16) -> Child {
        // Sentinel rewrites its configuration file: one each.
        let config = self.dir.join(format!("sentinel-{port}.conf"));
        let text = format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel monitor {MASTER_NAME} 127.0.0.1 {master} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} 500\nsentinel failover-timeout {MASTER_NAME} 5000\n",
            dir = self.dir.display()
        );
        std::fs::write(&config, text).expect("a Sentinel configuration");
        self.spawn(&[config.display().to_string(), "--sentinel".to_owned()])
    }

    /// Waits until the replica is in sync and every Sentinel lists it.
    async fn formed(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut ready = matches!(
                query(self.servers[1].0, redis::cmd("INFO").arg("replication")).await,
                Ok(redis::Value::BulkString(ref info)) if String::from_utf8_lossy(info).contains("master_link_status:up")
            );
            for (port, _) in &self.sentinels {
                let replicas = query(*port, redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME)).await;
                ready &= matches!(replicas, Ok(redis::Value::Array(ref list)) if !list.is_empty());
            }
            if ready {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the replica or the Sentinels were not ready in 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The Sentinels' URLs, separated by commas (as `redis.url` takes them).
    pub fn sentinel_urls(&self) -> String {
        self.sentinels.iter().map(|(port, _)| format!("redis://127.0.0.1:{port}")).collect::<Vec<_>>().join(",")
    }

    /// The URL of the server that is master now, by the Sentinels' word.
    ///
    /// # Panics
    /// When no Sentinel answers.
    pub async fn master_url(&self) -> String {
        for (port, _) in &self.sentinels {
            let asked = redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(MASTER_NAME).clone();
            if let Ok(redis::Value::Array(address)) = query(*port, &asked).await
                && let [redis::Value::BulkString(host), redis::Value::BulkString(port)] = address.as_slice()
            {
                return format!("redis://{}:{}", String::from_utf8_lossy(host), String::from_utf8_lossy(port));
            }
        }
        panic!("no Sentinel answered");
    }

    /// The URL of the replica the set started with.
    pub fn replica_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.servers[1].0)
    }

    /// Kills the master the set started with (`SIGKILL`, as a crash).
    pub async fn kill_master(&mut self) {
        if let Some(mut child) = self.servers[0].1.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
